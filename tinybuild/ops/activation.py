"""Activations, int8 -> int8: RELU, RELU6, RELU_N1_TO_1, LEAKY_RELU, HARD_SWISH,
LOGISTIC, TANH, ELU (and, in tinybuild/ops/unary.py, ABS, NEG, RSQRT).

An int8 elementwise function has 256 possible inputs, so each layer becomes
one 256-entry table in flash, built here by evaluating TFLite's own per-value
computation (BUILTIN_REF, TF 2.21) on every int8 value:

* LOGISTIC, TANH, ELU: TFLite's Prepare builds this very table
  (PopulateLookupTable / LUTPopulate: float32 math, std::exp/std::tanh from
  the C library, which :func:`libm` calls too, so host and table agree);
* RELU, RELU6, RELU_N1_TO_1 (ReluX), LEAKY_RELU (QuantizeLeakyRelu),
  HARD_SWISH (reference_ops::HardSwish, int16 gemmlowp fixed point): integer
  math re-done here on Python ints with the same wrap, saturation and rounding.

The device kernel is ``tb_lut_s8`` (tinybuild/kernels/activation.c): one load
per element, bit-exact by construction.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math

import numpy as np

from .. import quant
from ..lower import Const, Layer
from . import KERNEL_DIR, OpDef, OptionField, Options, unsupported
from ._common import elements, tensor

INT8_VALUES = np.arange(-128, 128, dtype=np.int64)
LUT_SOURCE = KERNEL_DIR / "activation.c"
F32 = np.float32


# -- the layer every table op becomes ---------------------------------------------------------

def elementwise_tensor(graph, op, index: int, what: str, dtypes=("int8",)):
    """``tensor`` without its batch-1 rule: an elementwise op does not care
    how the elements are grouped."""
    t = graph.tensor(index)
    if t is not None and t.dtype in dtypes:
        return t
    return tensor(graph, op, index, what, dtypes)        # raises, naming what it got


def lut_layer(graph, op, function) -> Layer:
    """The int8 -> int8 layer computing ``function(x, y, v)`` (x, y: the input and
    output tensors; v: an int8 input value) for every element, as a table."""
    x = elementwise_tensor(graph, op, op.inputs[0], "input")
    y = elementwise_tensor(graph, op, op.outputs[0], "output")
    for t, what in ((x, "input"), (y, "output")):
        if len(t.scales) != 1:
            raise unsupported(op, f"{what} has {len(t.scales)} scales (per-tensor quantization only)",
                              graph)
        if not 0.0 < t.scale < math.inf:
            raise unsupported(op, f"{what} scale {t.scale} (a positive number expected)", graph)
    if x.shape != y.shape:
        raise unsupported(op, f"output shape {y.shape} differs from input shape {x.shape}", graph)
    try:
        with np.errstate(all="ignore"):
            table = np.array([function(x, y, int(v)) for v in INT8_VALUES], dtype=np.int64)
    except (ArithmeticError, ValueError):        # e.g. QuantizeMultiplier of an infinite ratio
        raise unsupported(op, f"input scale {x.scale} and output scale {y.scale} (their ratio is "
                              "beyond what TFLite's fixed point holds)", graph) from None
    return Layer(op.index, op.op, "tb_lut_params", {"size": elements(x)}, [op.inputs[0]],
                 [op.outputs[0]], [Const("lut", "int8_t", lut_order(table))], 0,
                 f"{elements(x)} values")


def lut_order(table_by_value: np.ndarray) -> np.ndarray:
    """Entries for inputs -128..127 reordered so the kernel indexes by (uint8_t)x."""
    return np.roll(np.clip(table_by_value, -128, 127).astype(np.int8), -128)


def fold_by_table(lower):
    """OpDef.fold for a table op: a constant input's outputs through the layer's table."""
    def fold(graph, op) -> dict | None:
        x = graph.tensors[op.inputs[0]]
        if x.dtype != "int8" or x.data is None:
            return None
        table = lower(graph, op).consts[0].values
        return {op.outputs[0]: table[np.asarray(x.data).astype(np.int8).view(np.uint8)]}
    return fold


def elementwise_in_place(layer: Layer) -> dict:
    """The kernel reads element i before it writes element i."""
    return {layer.inputs[0]: (None, 0)}


# -- float32 math as TFLite's PopulateLookupTable does it -------------------------------------

@functools.lru_cache(maxsize=None)
def libm():
    """The C library's expf and tanhf: std::exp(float) / std::tanh(float) in
    TFLite's Prepare call these, so the table matches the host's TFLite."""
    lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    for name in ("expf", "tanhf"):
        getattr(lib, name).restype = ctypes.c_float
        getattr(lib, name).argtypes = [ctypes.c_float]
    return lib


def populated(transform):
    """TFLite's PopulateLookupTable<int8_t> entry for one input value (float32 math)."""
    def entry(x, y, v: int) -> int:
        dequantized = F32(x.scale) * F32(v - x.zero_point)
        transformed = F32(transform(dequantized))
        rescaled = F32(quant.tflite_round(float(transformed * (F32(1) / F32(y.scale)))))
        total = F32(rescaled + F32(y.zero_point))
        if not math.isfinite(total):
            return 127 if total > 0 else -128
        return int(total)                   # static_cast<int32_t>: truncates (it is integral)
    return entry


def _sigmoid(value):
    return F32(1) / (F32(1) + F32(libm().expf(float(-value))))


def _tanh(value):
    return F32(libm().tanhf(float(value)))


def _elu(value):
    return F32(libm().expf(float(value))) - F32(1) if value < 0 else value


def check_logistic(graph, op):
    y = graph.tensor(op.outputs[0])
    if y is not None and (F32(y.scale), y.zero_point) != (F32(1 / 256), -128):
        raise unsupported(op, f"output quantization scale {y.scale}, zero point {y.zero_point} "
                              "(TFLite requires 1/256 and -128)", graph)


def lower_logistic(graph, op) -> Layer:
    check_logistic(graph, op)
    return lut_layer(graph, op, populated(_sigmoid))


def lower_tanh(graph, op) -> Layer:
    return lut_layer(graph, op, populated(_tanh))


def lower_elu(graph, op) -> Layer:
    return lut_layer(graph, op, populated(_elu))


# -- ReluX (RELU, RELU6, RELU_N1_TO_1) ---------------------------------------------------------

def relu_x(act_min: float, act_max: float | None):
    """QuantizedReluX: requantize by input/output scale, clamp to the activation
    range (roundf(act / output scale) in float32, + zero point)."""
    def entry(x, y, v: int) -> int:
        m, s = quant.quantize_multiplier(float(F32(x.scale) / F32(y.scale)))   # float division
        lo = max(-128, y.zero_point + _roundf(F32(act_min) / F32(y.scale)))
        hi = 127 if act_max is None else min(127, y.zero_point + _roundf(F32(act_max) / F32(y.scale)))
        out = y.zero_point + quant.mul_by_quant_mul(v - x.zero_point, m, s)
        return min(max(out, lo), hi)
    return entry


def _roundf(value) -> int:
    return int(quant.tflite_round(float(value)))


def lower_relu(graph, op) -> Layer:
    return lut_layer(graph, op, relu_x(0.0, None))


def lower_relu6(graph, op) -> Layer:
    return lut_layer(graph, op, relu_x(0.0, 6.0))


def lower_relu_n1_to_1(graph, op) -> Layer:
    return lut_layer(graph, op, relu_x(-1.0, 1.0))


# -- LEAKY_RELU ---------------------------------------------------------------------------------

LEAKY_OPTIONS = Options("LeakyReluOptions", (OptionField("Alpha", "alpha", 0, "f32", 0.0),))


def lower_leaky_relu(graph, op) -> Layer:
    alpha = F32(op.options.get("Alpha", 0.0))
    if not math.isfinite(alpha):
        raise unsupported(op, f"alpha {alpha}", graph)

    def entry(x, y, v: int) -> int:
        # LeakyReluPrepare: float input scale * alpha / output scale, then double.
        alpha_m = quant.quantize_multiplier(float(F32(x.scale) * alpha / F32(y.scale)))
        identity_m = quant.quantize_multiplier(float(F32(x.scale) / F32(y.scale)))
        value = v - x.zero_point
        m, s = identity_m if value >= 0 else alpha_m
        return y.zero_point + quant.mul_by_quant_mul(value, m, s)
    return lut_layer(graph, op, entry)


# -- HARD_SWISH (reference_ops::HardSwish, int16 fixed point) -----------------------------------

_I16_MIN, _I16_MAX = -32768, 32767


def _sat16(v: int) -> int:
    return min(max(v, _I16_MIN), _I16_MAX)


def _wrap16(v: int) -> int:
    return (v + 32768) % 65536 - 32768


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def srdhm16(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul for int16."""
    if a == b == _I16_MIN:
        return _I16_MAX
    ab = a * b
    nudge = (1 << 14) if ab >= 0 else 1 - (1 << 14)
    return _wrap16(_trunc_div(ab + nudge, 1 << 15))


def sdhm16(a: int, b: int) -> int:
    """TFLite's SaturatingDoublingHighMul for int16 (truncating, no rounding)."""
    if a == b == _I16_MIN:
        return _I16_MAX
    return _wrap16(_trunc_div(a * b, 1 << 15))


def rdbp(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT: round half away from zero."""
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def _downscale_int16(m32: int) -> int:
    """DownScaleInt32ToInt16Multiplier."""
    if m32 >= (1 << 31) - 1 - (1 << 15):
        return _I16_MAX
    return (m32 + (1 << 15)) >> 16


def hard_swish_params(op, graph, x, y) -> dict:
    """HardSwishPrepare (float32 scales, QuantizeMultiplier, int16 multipliers)."""
    hires = F32(1.0 / 128.0) * F32(x.scale)
    out_m, out_e = quant.quantize_multiplier(float(hires / F32(y.scale)))
    if out_e > 0:
        raise unsupported(op, f"output scale {y.scale} below input scale / 128 = "
                              f"{float(hires)} (TFLite's HARD_SWISH refuses it too)", graph)
    relu_m, relu_e = quant.quantize_multiplier(float(hires / F32(3.0 / 32768.0)))
    return dict(out_m=_downscale_int16(out_m), out_e=out_e, relu_m=_downscale_int16(relu_m),
                relu_e=relu_e)


def hard_swish_value(p: dict, in_zp: int, out_zp: int, v: int) -> int:
    hires = _wrap16((v - in_zp) * 128)
    preshift_out = srdhm16(hires, p["out_m"])
    reluish = hires
    if p["relu_e"] > 0:
        reluish = _sat16(reluish * (1 << (p["relu_e"] - 1)))
    reluish = srdhm16(reluish, p["relu_m"])
    if p["relu_e"] > 0:
        reluish = _sat16(reluish * 2)
    if p["relu_e"] < 0:
        reluish = rdbp(reluish, -p["relu_e"])
    reluish = _wrap16((reluish + (1 << 15)) >> 1)
    out = rdbp(sdhm16(reluish, preshift_out), -p["out_e"]) + out_zp
    return min(max(_wrap16(out), -128), 127)


def lower_hard_swish(graph, op) -> Layer:
    x = elementwise_tensor(graph, op, op.inputs[0], "input")
    y = elementwise_tensor(graph, op, op.outputs[0], "output")
    try:
        with np.errstate(all="ignore"):
            params = hard_swish_params(op, graph, x, y)
    except (ArithmeticError, ValueError):
        raise unsupported(op, f"input scale {x.scale} and output scale {y.scale} (their ratio is "
                              "beyond what TFLite's fixed point holds)", graph) from None
    return lut_layer(graph, op, lambda x, y, v: hard_swish_value(params, x.zero_point,
                                                                 y.zero_point, v))


# -- float32 and int16 (16x8) ------------------------------------------------------------------

FLOAT_KINDS = {"RELU": 0, "RELU6": 1, "RELU_N1_TO_1": 2, "LEAKY_RELU": 3, "HARD_SWISH": 4,
               "LOGISTIC": 5, "TANH": 6}                   # TB_ACT_* in activation.h
RELU_RANGES = {"RELU": (0.0, None), "RELU6": (0.0, 6.0)}
NO_INT16 = ("RELU_N1_TO_1", "HARD_SWISH", "ELU")         # TF 2.21's kernels refuse int16 there


def by_type(int8_lower):
    """The op's lowering: int8 as a table, float32 and int16 by their kernels."""
    def lower(graph, op) -> Layer:
        x = graph.tensor(op.inputs[0])
        if x is not None and x.dtype == "float32":
            return float_layer(graph, op)
        if x is not None and x.dtype == "int16":
            return int16_layer(graph, op)
        return int8_lower(graph, op)
    return lower


def same_type_tensors(graph, op, dtype: str):
    x = elementwise_tensor(graph, op, op.inputs[0], "input", (dtype,))
    y = elementwise_tensor(graph, op, op.outputs[0], "output", (dtype,))
    if x.shape != y.shape:
        raise unsupported(op, f"output shape {y.shape} differs from input shape {x.shape}", graph)
    return x, y


def float_layer(graph, op) -> Layer:
    """TFLite's float kernel for the op, one call per element (tb_activation_f32)."""
    if op.op not in FLOAT_KINDS:
        raise unsupported(op, f"float32 {op.op} is not compiled (int8 only)", graph)
    x, _ = same_type_tensors(graph, op, "float32")
    alpha = float(op.options.get("Alpha", 0.0)) if op.op == "LEAKY_RELU" else 0.0
    return Layer(op.index, op.op, "tb_act_f32_params",
                 {"size": elements(x), "kind": FLOAT_KINDS[op.op], "alpha": alpha},
                 [op.inputs[0]], [op.outputs[0]], [], 0, f"{elements(x)} values", dtype="float32")


def int16_layer(graph, op) -> Layer:
    """16x8 RELU, RELU6, RELU_N1_TO_1 (QuantizedReluX<int16_t>) and LEAKY_RELU
    (QuantizeLeakyRelu<int16_t>): integer rescales (tb_relu_s16)."""
    if op.op in NO_INT16:
        raise unsupported(op, f"int16 activations (TFLite's {op.op} takes float32, uint8 and int8 "
                              "only)", graph)
    if op.op in ("LOGISTIC", "TANH"):
        return sigmoid_s16_layer(graph, op)
    if op.op not in RELU_RANGES and op.op != "LEAKY_RELU":
        raise unsupported(op, f"int16 activations ({op.op} in 16x8 is not compiled)", graph)
    x, y = same_type_tensors(graph, op, "int16")
    for t, what in ((x, "input"), (y, "output")):
        if len(t.scales) != 1 or not 0.0 < t.scale < math.inf:
            raise unsupported(op, f"{what} quantization (one positive scale expected)", graph)
    identity = quant.quantize_multiplier(float(F32(x.scale) / F32(y.scale)))
    params = {"size": elements(x), "input_zero_point": x.zero_point,
              "output_zero_point": y.zero_point, "positive": identity, "negative": identity,
              "act_min": -32768, "act_max": 32767}
    if op.op == "LEAKY_RELU":
        alpha = F32(op.options.get("Alpha", 0.0))
        params["negative"] = quant.quantize_multiplier(float(F32(x.scale) * alpha / F32(y.scale)))
    else:
        low, high = RELU_RANGES[op.op]
        params["act_min"] = max(-32768, y.zero_point + _roundf(F32(low) / F32(y.scale)))
        if high is not None:
            params["act_max"] = min(32767, y.zero_point + _roundf(F32(high) / F32(y.scale)))
    return Layer(op.index, op.op, "tb_relu_s16_params", params, [op.inputs[0]], [op.outputs[0]],
                 [], 0, f"{elements(x)} values", dtype="int16")


# The table TF 2.21's int16 LOGISTIC and TANH interpolate (sigmoid_table_uint16 in
# tensorflow/lite/kernels/internal/common.h): about 65536 * sigmoid(i / 24), i = 0..255, with
# TFLite's own off-by-one entries (no formula reproduces all of them, so the values are kept).
SIGMOID_TABLE = (
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794,
    41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443,
    48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169, 53581, 53983, 54374,
    54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544,
    58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279,
    61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990,
    63090, 63186, 63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030,
    64090, 64148, 64204, 64257, 64308, 64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652,
    64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019,
    65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234,
    65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360,
    65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476,
    65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498, 65500, 65501,
    65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516,
    65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529,
    65529, 65530, 65530, 65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532,
    65532, 65532, 65532, 65533, 65533, 65533, 65533, 65533, 65533, 65533, 65533, 65534, 65534,
    65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535)


def sigmoid_table() -> np.ndarray:
    return np.array(SIGMOID_TABLE, dtype=np.uint16)


def sigmoid_s16_layer(graph, op) -> Layer:
    """SigmoidPrepare/TanhPrepare for int16: zero points 0, output scale 2^-15;
    a power-of-two input scale 2^-12 (TANH also 2^-11) uses the fixed
    multiplier 3 << shift, any other the multiplier scale * 4096 * 3 doubled
    until above 32767 / 2 (at most 31 times)."""
    from .add import _checked_log2
    x, y = same_type_tensors(graph, op, "int16")
    if (x.zero_point, y.zero_point) != (0, 0) or _checked_log2(y.scale) != -15:
        raise unsupported(op, f"output scale {y.scale:g} (TFLite's int16 {op.op} requires 1/32768 "
                              "and zero points 0)", graph)
    log2 = _checked_log2(x.scale)
    shift = 12 + log2 if log2 is not None else None
    multiplier = 0
    if shift is None or shift not in ((0, 1) if op.op == "TANH" else (0,)):
        real, shift = float(F32(x.scale)) * 4096.0 * 3.0, 0
        while real <= 32767.0 / 2.0 and shift <= 30:
            shift, real = shift + 1, real * 2.0
        if not real < 2 ** 31:
            raise unsupported(op, f"input scale {x.scale:g} (beyond TFLite's int16 multiplier)", graph)
        multiplier = int(real)
    params = {"size": elements(x), "tanh": int(op.op == "TANH"), "input_multiplier": multiplier,
              "input_left_shift": shift}
    return Layer(op.index, op.op, "tb_sigmoid_s16_params", params, [op.inputs[0]], [op.outputs[0]],
                 [Const("table", "uint16_t", sigmoid_table())], 0, f"{elements(x)} values",
                 dtype="int16")


TYPED = {"float32": "tb_activation_f32", "int16": "tb_relu_s16"}
SIGMOID_TYPED = {"float32": "tb_activation_f32", "int16": "tb_sigmoid_s16"}


def _lut_op(name: str, lower, doc: str, options=None, typed=None) -> OpDef:
    return OpDef(name, by_type(lower), "tb_lut_s8", LUT_SOURCE, "tb_lut_params", options,
                 fold=fold_by_table(lower), in_place=elementwise_in_place, doc=doc,
                 typed=TYPED if typed is None else typed)


OPS = [
    _lut_op("RELU", lower_relu, "int8, any input/output quantization (ReluX), as a 256-entry table; "
            "int16 (ReluX), float32"),
    _lut_op("RELU6", lower_relu6, "int8, any input/output quantization (ReluX), as a 256-entry table; "
            "int16 (ReluX), float32"),
    _lut_op("RELU_N1_TO_1", lower_relu_n1_to_1, "int8 (ReluX), as a 256-entry table; float32",
            typed={"float32": "tb_activation_f32"}),
    _lut_op("LEAKY_RELU", lower_leaky_relu, "int8, any alpha (QuantizeLeakyRelu), as a 256-entry table; "
            "int16, float32", LEAKY_OPTIONS),
    _lut_op("HARD_SWISH", lower_hard_swish,
            "int8 (reference HardSwish fixed point; output scale >= input scale / 128), as a table; "
            "float32", typed={"float32": "tb_activation_f32"}),
    _lut_op("LOGISTIC", lower_logistic, "int8, output 1/256 and -128: TFLite's int8 lookup table; "
            "int16 (TFLite's interpolated table); float32 (expf)", typed=SIGMOID_TYPED),
    _lut_op("TANH", lower_tanh, "int8: TFLite's int8 lookup table; int16 (TFLite's interpolated "
            "table); float32 (tanhf)", typed=SIGMOID_TYPED),
    _lut_op("ELU", lower_elu, "int8: TFLite's int8 lookup table", typed={}),
]
