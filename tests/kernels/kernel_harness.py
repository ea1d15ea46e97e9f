"""Harness for tinybuild's C int8 kernels.

* ``build_kernels(outdir, defines)`` compiles tinybuild/kernels/*.c with the
  host gcc into a shared library and returns a ``Kernels`` ctypes wrapper.
* ``tfl_*`` helpers write single-op int8 ``.tflite`` flatbuffers directly
  (TFLite's schema object API), so every scale / zero point / per-channel scale
  is chosen exactly, and ``run_tflite`` runs them with the BUILTIN_REF kernels.
* ``case_*`` helpers run one op both ways and return (ours, tflite).
"""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import numpy as np

from tinybuild import quant

REPO = Path(__file__).resolve().parents[2]
KERNEL_DIR = REPO / "tinybuild" / "kernels"
HOST_CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
               "-ffp-contract=off", "-fPIC", "-shared"]

ACT_CODES = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}


# --------------------------------------------------------------------------
# ctypes mirror of tb_kernels.h
# --------------------------------------------------------------------------
class QuantMul(ctypes.Structure):
    _fields_ = [("multiplier", ctypes.c_int32), ("shift", ctypes.c_int32)]


class ConvParams(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int16) for n in (
        "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w",
        "stride_h", "stride_w", "dil_h", "dil_w", "pad_top", "pad_left",
        "depth_multiplier")] + [(n, ctypes.c_int32) for n in (
            "input_offset", "output_offset", "act_min", "act_max")]


class PoolParams(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int16) for n in (
        "in_h", "in_w", "c", "out_h", "out_w", "k_h", "k_w", "stride_h",
        "stride_w", "pad_top", "pad_left")] + [
            ("act_min", ctypes.c_int32), ("act_max", ctypes.c_int32)]


class FcParams(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int32) for n in (
        "in_features", "out_features", "input_offset", "weights_offset",
        "output_offset", "act_min", "act_max")] + [("real_multiplier", ctypes.c_double),
                                                  ("rows", ctypes.c_int32)]   # 0 reads as 1


class AddParams(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int32) for n in (
        "size", "input1_offset", "input2_offset", "output_offset", "left_shift")] + [
            ("input1", QuantMul), ("input2", QuantMul), ("output", QuantMul),
            ("act_min", ctypes.c_int32), ("act_max", ctypes.c_int32),
            ("shape", ctypes.c_int32 * 20)]      # tb_bcast, all zero: same shapes


class SoftmaxParams(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int32) for n in (
        "outer", "depth", "input_multiplier", "input_left_shift", "diff_min",
        "output_offset")] + [
            ("exp_table", ctypes.POINTER(ctypes.c_float)),
            ("output_inv_scale", ctypes.c_float)]


def _ptr(a: np.ndarray, ctype):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


def _i8(a):
    return np.ascontiguousarray(a, dtype=np.int8)


def _qmuls(pairs):
    arr = (QuantMul * len(pairs))()
    for i, (m, s) in enumerate(pairs):
        arr[i].multiplier, arr[i].shift = m, s
    return arr


class Kernels:
    """ctypes wrapper; numpy in, numpy out."""

    def __init__(self, path: Path):
        self.path = path
        self.lib = ctypes.CDLL(str(path))
        P = ctypes.POINTER
        i8p, i32p = P(ctypes.c_int8), P(ctypes.c_int32)
        sig = {
            "tb_conv2d_s8": [P(ConvParams), i8p, i8p, i32p, P(QuantMul), i8p],
            "tb_depthwise_conv2d_s8": [P(ConvParams), i8p, i8p, i32p, P(QuantMul), i8p],
            "tb_fully_connected_s8": [P(FcParams), i8p, i8p, i32p, P(QuantMul),
                                      P(ctypes.c_double), i8p],
            "tb_avg_pool2d_s8": [P(PoolParams), i8p, i8p],
            "tb_max_pool2d_s8": [P(PoolParams), i8p, i8p],
            "tb_add_s8": [P(AddParams), i8p, i8p, i8p],
            "tb_softmax_s8": [P(SoftmaxParams), i8p, i8p],
            "tb_copy_s8": [ctypes.c_int32, i8p, i8p],
        }
        for name, args in sig.items():
            fn = getattr(self.lib, name)
            fn.argtypes, fn.restype = args, None
        for name in ("tb_mul_by_quant_mul", "tb_sat_rounding_doubling_high_mul",
                     "tb_rounding_divide_by_pot"):
            fn = getattr(self.lib, name)
            fn.argtypes = [ctypes.c_int32] * (3 if name == "tb_mul_by_quant_mul" else 2)
            fn.restype = ctypes.c_int32

    def mul_by_quant_mul(self, x, m, s):
        return self.lib.tb_mul_by_quant_mul(x, m, s)

    def conv(self, fn, p: ConvParams, x, w, bias, muls):
        out = np.zeros(p.out_h * p.out_w * p.out_c, dtype=np.int8)
        x, w = _i8(x), _i8(w)
        b = None if bias is None else np.ascontiguousarray(bias, dtype=np.int32)
        q = _qmuls(muls)
        getattr(self.lib, fn)(ctypes.byref(p), _ptr(x, ctypes.c_int8), _ptr(w, ctypes.c_int8),
                              None if b is None else _ptr(b, ctypes.c_int32), q,
                              _ptr(out, ctypes.c_int8))
        return out.reshape(1, p.out_h, p.out_w, p.out_c)

    def fc(self, p: FcParams, x, w, bias, muls, real_mul=None):
        """``real_mul``: per-row double multipliers (per-channel), else None."""
        out = np.zeros(p.out_features, dtype=np.int8)
        x, w = _i8(x), _i8(w)
        b = None if bias is None else np.ascontiguousarray(bias, dtype=np.int32)
        rm = None if real_mul is None else np.ascontiguousarray(real_mul, np.float64)
        self.lib.tb_fully_connected_s8(ctypes.byref(p), _ptr(x, ctypes.c_int8),
                                       _ptr(w, ctypes.c_int8),
                                       None if b is None else _ptr(b, ctypes.c_int32),
                                       _qmuls(muls),
                                       None if rm is None else _ptr(rm, ctypes.c_double),
                                       _ptr(out, ctypes.c_int8))
        return out.reshape(1, -1)

    def pool(self, fn, p: PoolParams, x):
        out = np.zeros(p.out_h * p.out_w * p.c, dtype=np.int8)
        x = _i8(x)
        getattr(self.lib, fn)(ctypes.byref(p), _ptr(x, ctypes.c_int8), _ptr(out, ctypes.c_int8))
        return out.reshape(1, p.out_h, p.out_w, p.c)

    def add(self, p: AddParams, a, b):
        a, b = _i8(a), _i8(b)
        out = np.zeros(a.size, dtype=np.int8)
        self.lib.tb_add_s8(ctypes.byref(p), _ptr(a, ctypes.c_int8), _ptr(b, ctypes.c_int8),
                           _ptr(out, ctypes.c_int8))
        return out

    def softmax(self, p: SoftmaxParams, x):
        x = _i8(x)
        out = np.zeros(x.size, dtype=np.int8)
        self.lib.tb_softmax_s8(ctypes.byref(p), _ptr(x, ctypes.c_int8), _ptr(out, ctypes.c_int8))
        return out

    def copy(self, x):
        x = _i8(x)
        out = np.zeros(x.size, dtype=np.int8)
        self.lib.tb_copy_s8(x.size, _ptr(x, ctypes.c_int8), _ptr(out, ctypes.c_int8))
        return out


def build_kernels(outdir: Path, defines: tuple[str, ...] = (), name: str = "libtbkernels.so") -> Kernels:
    sources = sorted(str(p) for p in KERNEL_DIR.glob("*.c"))
    out = Path(outdir) / name
    cmd = ["gcc", *HOST_CFLAGS, *[f"-D{d}" for d in defines], "-I", str(KERNEL_DIR),
           *sources, "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return Kernels(out)


# --------------------------------------------------------------------------
# single-op .tflite writer (TFLite schema object API)
# --------------------------------------------------------------------------
def _schema():
    from tensorflow.lite.python import schema_py_generated as S
    return S


class _ModelBuilder:
    def __init__(self):
        S = _schema()
        self.S = S
        self.buffers = [S.BufferT()]
        self.tensors = []

    def tensor(self, shape, dtype, scale=None, zp=None, data=None, qdim=0):
        S = self.S
        t = S.TensorT()
        t.shape = np.array(shape, dtype=np.int32)
        t.type = dtype
        t.name = f"t{len(self.tensors)}".encode()
        t.buffer = 0
        if data is not None:
            b = S.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        if scale is not None:
            q = S.QuantizationParametersT()
            q.scale = np.array(scale, dtype=np.float32)
            q.zeroPoint = np.array(zp, dtype=np.int64)
            q.quantizedDimension = qdim
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def finish(self, builtin_code, version, inputs, outputs, options_type, options,
               graph_inputs):
        import flatbuffers
        S = self.S
        oc = S.OperatorCodeT()
        oc.builtinCode = builtin_code
        oc.deprecatedBuiltinCode = min(builtin_code, 127)
        oc.version = version
        op = S.OperatorT()
        op.opcodeIndex = 0
        op.inputs = np.array(inputs, dtype=np.int32)
        op.outputs = np.array(outputs, dtype=np.int32)
        op.builtinOptionsType = options_type
        op.builtinOptions = options
        sg = S.SubGraphT()
        sg.tensors = self.tensors
        sg.inputs = np.array(graph_inputs, dtype=np.int32)
        sg.outputs = np.array(outputs, dtype=np.int32)
        sg.operators = [op]
        sg.name = b"main"
        m = S.ModelT()
        m.version = 3
        m.description = b"tinybuild kernel test"
        m.operatorCodes = [oc]
        m.subgraphs = [sg]
        m.buffers = self.buffers
        b = flatbuffers.Builder(4096)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def _padding_code(padding):
    S = _schema()
    return S.Padding.SAME if padding == "SAME" else S.Padding.VALID


def run_tflite(model: bytes, inputs: list[np.ndarray]) -> np.ndarray:
    import tensorflow as tf
    interp = tf.lite.Interpreter(
        model_content=model,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    for detail, x in zip(interp.get_input_details(), inputs):
        interp.set_tensor(detail["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()


# --------------------------------------------------------------------------
# cases: run an op through TFLite and through the C kernel
# --------------------------------------------------------------------------
def case_conv(k: Kernels, rng, *, depthwise=False, in_h=5, in_w=5, in_c=3, out_c=4,
              k_h=3, k_w=3, stride=(1, 1), dilation=(1, 1), padding="SAME",
              per_channel=True, activation="NONE", use_bias=True,
              in_scale=0.05, in_zp=0, out_scale=0.1, out_zp=0, depth_multiplier=1,
              filter_scales=None):
    S = _schema()
    if depthwise:
        out_c = in_c * depth_multiplier
        w_shape = (1, k_h, k_w, out_c)
        qdim = 3
    else:
        w_shape = (out_c, k_h, k_w, in_c)
        qdim = 0
    if filter_scales is None:
        n = out_c if per_channel else 1
        filter_scales = list(rng.uniform(0.002, 0.05, size=n).astype(np.float32))
    filter_scales = [np.float32(s) for s in filter_scales]
    w = rng.integers(-127, 128, size=w_shape, dtype=np.int8)
    x = rng.integers(-128, 128, size=(1, in_h, in_w, in_c), dtype=np.int8)
    bias_scales = [np.float32(np.float32(in_scale) * s) for s in
                   (filter_scales if len(filter_scales) > 1 else filter_scales * out_c)]
    bias = rng.integers(-3000, 3000, size=out_c).astype(np.int32) if use_bias else None

    out_h, pad_t = quant.compute_padding(padding, in_h, k_h, stride[0], dilation[0])
    out_w, pad_l = quant.compute_padding(padding, in_w, k_w, stride[1], dilation[1])

    mb = _ModelBuilder()
    ti = mb.tensor((1, in_h, in_w, in_c), S.TensorType.INT8, [in_scale], [in_zp])
    tw = mb.tensor(w_shape, S.TensorType.INT8, filter_scales, [0] * len(filter_scales),
                   data=w, qdim=qdim)
    tb = -1
    # TFLite's int8 CONV_2D insists on a bias tensor (conv.cc: has_bias), so a
    # bias-less conv is modelled with zeros there while the C kernel gets NULL.
    model_bias = use_bias or not depthwise
    if model_bias:
        if bias is None:
            bias = np.zeros(out_c, dtype=np.int32)
        tb = mb.tensor((out_c,), S.TensorType.INT32,
                       bias_scales if len(filter_scales) > 1 else bias_scales[:1],
                       [0] * (out_c if len(filter_scales) > 1 else 1), data=bias)
    to = mb.tensor((1, out_h, out_w, out_c), S.TensorType.INT8, [out_scale], [out_zp])
    if depthwise:
        opt = S.DepthwiseConv2DOptionsT()
        opt.depthMultiplier = depth_multiplier
        code, ver, otype = S.BuiltinOperator.DEPTHWISE_CONV_2D, 3, \
            S.BuiltinOptions.DepthwiseConv2DOptions
    else:
        opt = S.Conv2DOptionsT()
        code, ver, otype = S.BuiltinOperator.CONV_2D, 3, S.BuiltinOptions.Conv2DOptions
    opt.padding = _padding_code(padding)
    opt.strideH, opt.strideW = stride
    opt.dilationHFactor, opt.dilationWFactor = dilation
    opt.fusedActivationFunction = ACT_CODES[activation]
    # CONV_2D/DEPTHWISE take an absent bias as a 2-input node, not index -1.
    model = mb.finish(code, ver, [ti, tw, tb] if model_bias else [ti, tw], [to], otype, opt,
                      [ti])
    expected = run_tflite(model, [x])

    p = ConvParams(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c,
                   k_h=k_h, k_w=k_w, stride_h=stride[0], stride_w=stride[1],
                   dil_h=dilation[0], dil_w=dilation[1], pad_top=pad_t, pad_left=pad_l,
                   depth_multiplier=depth_multiplier if depthwise else 1,
                   input_offset=-in_zp, output_offset=out_zp)
    p.act_min, p.act_max = quant.activation_range(activation, out_scale, out_zp)
    muls = quant.conv_output_multipliers(
        in_scale, [float(s) for s in filter_scales], out_scale, out_c,
        op="DEPTHWISE_CONV_2D" if depthwise else "CONV_2D")
    fn = "tb_depthwise_conv2d_s8" if depthwise else "tb_conv2d_s8"
    got = k.conv(fn, p, x, w, bias if use_bias else None, muls)
    return got, expected


def case_fc(k: Kernels, rng, *, in_features=8, out_features=5, use_bias=True,
            in_scale=0.05, in_zp=0, w_scale=0.01, w_zp=0, out_scale=0.1, out_zp=0,
            activation="NONE", fixed_point=False, per_channel=False):
    """fixed_point=True runs the kernel's integer out_mul path (real_multiplier
    0), which TF 2.21's reference per-tensor FC does not use; tests expect
    mismatches. per_channel=True gives every output its own weight scale:
    TFLite's reference then rescales each row in double with its own
    multiplier (the kernel's real_mul)."""
    S = _schema()
    w = rng.integers(-127, 128, size=(out_features, in_features), dtype=np.int8)
    x = rng.integers(-128, 128, size=(1, in_features), dtype=np.int8)
    bias = rng.integers(-3000, 3000, size=out_features).astype(np.int32) if use_bias else None
    mb = _ModelBuilder()
    ti = mb.tensor((1, in_features), S.TensorType.INT8, [in_scale], [in_zp])
    w_scales = ([float(v) for v in rng.uniform(0.5, 2.0, out_features) * w_scale]
                if per_channel else [w_scale])
    w_zps = [w_zp] * len(w_scales)
    tw = mb.tensor((out_features, in_features), S.TensorType.INT8, w_scales, w_zps, data=w)
    tb = -1
    if use_bias:
        tb = mb.tensor((out_features,), S.TensorType.INT32,
                       [np.float32(np.float32(in_scale) * np.float32(s)) for s in w_scales],
                       [0] * len(w_scales), data=bias)
    to = mb.tensor((1, out_features), S.TensorType.INT8, [out_scale], [out_zp])
    opt = S.FullyConnectedOptionsT()
    opt.fusedActivationFunction = ACT_CODES[activation]
    opt.keepNumDims = False
    model = mb.finish(S.BuiltinOperator.FULLY_CONNECTED, 4, [ti, tw, tb], [to],
                      S.BuiltinOptions.FullyConnectedOptions, opt, [ti])
    expected = run_tflite(model, [x])
    p = FcParams(in_features=in_features, out_features=out_features, input_offset=-in_zp,
                 weights_offset=-w_zp, output_offset=out_zp,
                 real_multiplier=0.0 if fixed_point or per_channel else
                 quant.fc_real_multiplier(in_scale, w_scale, out_scale))
    p.act_min, p.act_max = quant.activation_range(activation, out_scale, out_zp)
    muls = quant.conv_output_multipliers(in_scale, w_scales, out_scale, out_features,
                                         op="FULLY_CONNECTED")
    real_mul = ([quant.fc_real_multiplier(in_scale, s, out_scale) for s in w_scales]
                if per_channel and not fixed_point else None)
    got = k.fc(p, x, w, bias, muls, real_mul)
    return got, expected


def case_pool(k: Kernels, rng, *, kind="AVG", in_h=6, in_w=6, c=3, k_h=2, k_w=2,
              stride=(2, 2), padding="VALID", scale=0.05, zp=0, activation="NONE"):
    S = _schema()
    x = rng.integers(-128, 128, size=(1, in_h, in_w, c), dtype=np.int8)
    out_h, pad_t = quant.compute_padding(padding, in_h, k_h, stride[0])
    out_w, pad_l = quant.compute_padding(padding, in_w, k_w, stride[1])
    mb = _ModelBuilder()
    ti = mb.tensor((1, in_h, in_w, c), S.TensorType.INT8, [scale], [zp])
    to = mb.tensor((1, out_h, out_w, c), S.TensorType.INT8, [scale], [zp])
    opt = S.Pool2DOptionsT()
    opt.padding = _padding_code(padding)
    opt.strideH, opt.strideW = stride
    opt.filterHeight, opt.filterWidth = k_h, k_w
    opt.fusedActivationFunction = ACT_CODES[activation]
    code = S.BuiltinOperator.AVERAGE_POOL_2D if kind == "AVG" else S.BuiltinOperator.MAX_POOL_2D
    model = mb.finish(code, 2, [ti], [to], S.BuiltinOptions.Pool2DOptions, opt, [ti])
    expected = run_tflite(model, [x])
    p = PoolParams(in_h=in_h, in_w=in_w, c=c, out_h=out_h, out_w=out_w, k_h=k_h, k_w=k_w,
                   stride_h=stride[0], stride_w=stride[1], pad_top=pad_t, pad_left=pad_l)
    p.act_min, p.act_max = quant.activation_range(activation, scale, zp)
    got = k.pool("tb_avg_pool2d_s8" if kind == "AVG" else "tb_max_pool2d_s8", p, x)
    return got, expected


def case_add(k: Kernels, rng, *, shape=(1, 4, 4, 3), s1=0.05, z1=0, s2=0.05, z2=0,
             so=0.1, zo=0, activation="NONE"):
    S = _schema()
    a = rng.integers(-128, 128, size=shape, dtype=np.int8)
    b = rng.integers(-128, 128, size=shape, dtype=np.int8)
    mb = _ModelBuilder()
    t1 = mb.tensor(shape, S.TensorType.INT8, [s1], [z1])
    t2 = mb.tensor(shape, S.TensorType.INT8, [s2], [z2])
    to = mb.tensor(shape, S.TensorType.INT8, [so], [zo])
    opt = S.AddOptionsT()
    opt.fusedActivationFunction = ACT_CODES[activation]
    model = mb.finish(S.BuiltinOperator.ADD, 2, [t1, t2], [to], S.BuiltinOptions.AddOptions,
                      opt, [t1, t2])
    expected = run_tflite(model, [a, b]).reshape(-1)
    d = quant.add_params(s1, z1, s2, z2, so, zo, activation)
    p = AddParams(size=a.size, input1_offset=d["input1_offset"],
                  input2_offset=d["input2_offset"], output_offset=d["output_offset"],
                  left_shift=d["left_shift"], act_min=d["act_min"], act_max=d["act_max"])
    for f in ("input1", "input2", "output"):
        getattr(p, f).multiplier, getattr(p, f).shift = d[f]
    got = k.add(p, a, b)
    return got, expected


def case_softmax(k: Kernels, rng, *, shape=(1, 10), in_scale=0.1, in_zp=0, beta=1.0,
                 x=None):
    S = _schema()
    if x is None:
        x = rng.integers(-128, 128, size=shape, dtype=np.int8)
    mb = _ModelBuilder()
    ti = mb.tensor(shape, S.TensorType.INT8, [in_scale], [in_zp])
    to = mb.tensor(shape, S.TensorType.INT8, [1.0 / 256], [-128])
    opt = S.SoftmaxOptionsT()
    opt.beta = beta
    model = mb.finish(S.BuiltinOperator.SOFTMAX, 2, [ti], [to], S.BuiltinOptions.SoftmaxOptions,
                      opt, [ti])
    expected = run_tflite(model, [x]).reshape(-1)
    d = quant.softmax_params(in_scale, in_zp, 1.0 / 256, -128, beta)
    depth = shape[-1]
    p = SoftmaxParams(outer=x.size // depth, depth=depth,
                      input_multiplier=d["input_multiplier"],
                      input_left_shift=d["input_left_shift"], diff_min=d["diff_min"],
                      output_offset=d["output_offset"], exp_table=None, output_inv_scale=0.0)
    got = k.softmax(p, x)
    return got, expected


def case_reshape(k: Kernels, rng, *, in_shape=(1, 2, 3, 4), out_shape=(1, 24)):
    S = _schema()
    x = rng.integers(-128, 128, size=in_shape, dtype=np.int8)
    mb = _ModelBuilder()
    ti = mb.tensor(in_shape, S.TensorType.INT8, [0.1], [3])
    to = mb.tensor(out_shape, S.TensorType.INT8, [0.1], [3])
    opt = S.ReshapeOptionsT()
    opt.newShape = np.array(out_shape, dtype=np.int32)
    model = mb.finish(S.BuiltinOperator.RESHAPE, 1, [ti], [to], S.BuiltinOptions.ReshapeOptions,
                      opt, [ti])
    expected = run_tflite(model, [x]).reshape(-1)
    return k.copy(x), expected
