"""CONV_2D and DEPTHWISE_CONV_2D (tinybuild/ops/conv.py) against TFLite's reference kernels."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, check, rng_for
from tflite_builder import ModelBuilder
from tinybuild import quant


def conv_model(in_shape=(1, 6, 6, 3), out_c=4, k=(3, 3), stride=(1, 1), dilation=(1, 1),
               padding="SAME", activation="NONE", per_channel=True, depthwise=False,
               in_q=(0.05, -3), out_q=(0.1, 4), bias=True, dtype="int8") -> bytes:
    """One CONV_2D (or DEPTHWISE_CONV_2D: out_c is then in_c * depth multiplier) in
    ``dtype``: int8, int16 (16x8: int8 filter, int64 bias, zero points 0) or float32."""
    rng = rng_for(in_shape, out_c, k, stride, dilation, padding, per_channel, depthwise, in_q, out_q,
                  dtype)
    _, h, w, c = in_shape
    out_h, _ = quant.compute_padding(padding, h, k[0], stride[0], dilation[0])
    out_w, _ = quant.compute_padding(padding, w, k[1], stride[1], dilation[1])
    b = ModelBuilder()
    shape = (1, *k, out_c) if depthwise else (out_c, *k, c)
    x, wt, bias_t, y = TYPED[dtype](b, rng, in_shape, shape, out_c, (out_h, out_w), per_channel,
                                    depthwise, in_q, out_q, bias)
    common = dict(padding=padding, strideH=stride[0], strideW=stride[1], dilationHFactor=dilation[0],
                  dilationWFactor=dilation[1], fusedActivationFunction=activation)
    if depthwise:
        b.op("DEPTHWISE_CONV_2D", [x, wt, bias_t] if bias else [x, wt], [y],
             b.options("DepthwiseConv2DOptions", depthMultiplier=out_c // c, **common), version=3)
    else:
        b.op("CONV_2D", [x, wt, bias_t], [y],          # TFLite's CONV_2D needs its bias
             b.options("Conv2DOptions", **common), version=3)
    return b.build([y])


def _int_tensors(b, rng, in_shape, shape, out_c, out_hw, per_channel, depthwise, in_q, out_q, bias,
                 act="int8", bias_type="int32"):
    scales = rng.uniform(0.004, 0.02, out_c if per_channel else 1)
    x = b.input(in_shape, act, *in_q)
    wt = b.const(rng.integers(-127, 128, shape), "int8", scales, [0] * len(scales),
                 axis=3 if depthwise else 0)
    span = 3000 if act == "int8" else 3_000_000
    bias_t = b.const(rng.integers(-span, span, out_c), bias_type, in_q[0] * scales,
                     [0] * len(scales)) if bias or not depthwise else -1
    y = b.tensor((1, *out_hw, out_c), act, *out_q)
    return x, wt, bias_t, y


def _int16_tensors(b, rng, in_shape, shape, out_c, out_hw, per_channel, depthwise, in_q, out_q,
                   bias):
    """16x8 as TFLite's converter writes it: symmetric int16 activations, int64 bias."""
    return _int_tensors(b, rng, in_shape, shape, out_c, out_hw, per_channel, depthwise,
                        (in_q[0] / 200, 0), (out_q[0] / 100, 0), bias, "int16", "int64")


def _float_tensors(b, rng, in_shape, shape, out_c, out_hw, per_channel, depthwise, in_q, out_q,
                   bias):
    x = b.input(in_shape, "float32")
    wt = b.const(rng.normal(0, 0.5, shape).astype(np.float32), "float32")
    bias_t = (b.const(rng.normal(0, 1, out_c).astype(np.float32), "float32")
              if bias or not depthwise else -1)
    return x, wt, bias_t, b.tensor((1, *out_hw, out_c), "float32")


TYPED = {"int8": _int_tensors, "int16": _int16_tensors, "float32": _float_tensors}


CASES = [
    Case("CONV_2D 6x6x3 k3 SAME, per-channel", lambda: conv_model()),
    Case("CONV_2D stride 2 VALID RELU6, per-tensor", lambda: conv_model(
        (1, 7, 6, 2), 5, stride=(2, 2), padding="VALID", activation="RELU6", per_channel=False)),
    Case("CONV_2D dilation 2x1, zero points at the ends", lambda: conv_model(
        (1, 8, 9, 2), 3, dilation=(2, 1), in_q=(0.03, -128), out_q=(0.2, 127))),
    Case("CONV_2D 1x1, RELU", lambda: conv_model((1, 4, 4, 8), 6, k=(1, 1), activation="RELU")),
    Case("DEPTHWISE_CONV_2D without bias", lambda: conv_model((1, 5, 5, 3), 3, depthwise=True,
                                                               bias=False)),
    Case("DEPTHWISE_CONV_2D multiplier 1", lambda: conv_model((1, 6, 6, 4), 4, depthwise=True)),
    Case("DEPTHWISE_CONV_2D multiplier 3, stride 2, RELU", lambda: conv_model(
        (1, 7, 7, 2), 6, stride=(2, 2), depthwise=True, activation="RELU")),
    # float32: bit-exact with reference_ops::Conv / DepthwiseConv (same summation order)
    Case("float CONV_2D 6x6x3 k3 SAME", lambda: conv_model(dtype="float32")),
    Case("float CONV_2D stride 2 VALID RELU6, dilation 2x1", lambda: conv_model(
        (1, 9, 7, 2), 5, stride=(2, 2), dilation=(2, 1), padding="VALID", activation="RELU6",
        dtype="float32")),
    Case("float CONV_2D 1x1 RELU", lambda: conv_model(
        (1, 4, 4, 8), 6, k=(1, 1), activation="RELU", dtype="float32")),
    Case("float CONV_2D RELU_N1_TO_1", lambda: conv_model(activation="RELU_N1_TO_1",
                                                          dtype="float32")),
    Case("float DEPTHWISE_CONV_2D multiplier 3, stride 2, RELU", lambda: conv_model(
        (1, 7, 7, 2), 6, stride=(2, 2), depthwise=True, activation="RELU", dtype="float32")),
    Case("float DEPTHWISE_CONV_2D without bias, dilation 2", lambda: conv_model(
        (1, 8, 8, 3), 3, dilation=(2, 2), depthwise=True, bias=False, dtype="float32")),
    # 16x8: int16 activations (zero point 0), int8 filter, int64 bias and accumulator
    Case("int16 CONV_2D 6x6x3 k3 SAME, per-channel", lambda: conv_model(dtype="int16")),
    Case("int16 CONV_2D stride 2 VALID RELU6, per-tensor", lambda: conv_model(
        (1, 7, 6, 2), 5, stride=(2, 2), padding="VALID", activation="RELU6", per_channel=False,
        dtype="int16")),
    Case("int16 CONV_2D dilation 2x1, RELU", lambda: conv_model(
        (1, 8, 9, 2), 3, dilation=(2, 1), activation="RELU", dtype="int16")),
    Case("int16 DEPTHWISE_CONV_2D multiplier 3, stride 2", lambda: conv_model(
        (1, 7, 7, 2), 6, stride=(2, 2), depthwise=True, dtype="int16")),
    Case("int16 DEPTHWISE_CONV_2D without bias", lambda: conv_model(
        (1, 5, 5, 3), 3, depthwise=True, bias=False, dtype="int16")),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_conv(case):
    check(case)


@st.composite
def conv_params(draw, depthwise, dtype="int8"):
    c = draw(st.integers(1, 6))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    h = draw(st.integers((k[0] - 1) * dilation[0] + 1, 9))
    w = draw(st.integers((k[1] - 1) * dilation[1] + 1, 9))
    out_c = c * draw(st.integers(1, 3)) if depthwise else draw(st.integers(1, 6))
    return dict(in_shape=(1, h, w, c), out_c=out_c, k=k, dilation=dilation, depthwise=depthwise,
                stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                padding=draw(st.sampled_from(["SAME", "VALID"])),
                activation=draw(st.sampled_from(["NONE", "RELU", "RELU6"] +
                                                (["RELU_N1_TO_1"] if dtype == "float32" else []))),
                per_channel=draw(st.booleans()),
                in_q=(draw(st.floats(0.005, 0.5)), draw(st.integers(-128, 127))),
                out_q=(draw(st.floats(0.01, 2.0)), draw(st.integers(-128, 127))),
                dtype=dtype)


@FAST
@given(conv_params(depthwise=False))
def test_conv2d_property(params):
    check(conv_model(**params), inputs=2)


@FAST
@given(conv_params(depthwise=True))
def test_depthwise_property(params):
    check(conv_model(**params), inputs=2)


@FAST
@given(conv_params(depthwise=False, dtype="float32") | conv_params(depthwise=True, dtype="float32"))
def test_conv_float_property(params):
    check(conv_model(**params), inputs=2)


@FAST
@given(conv_params(depthwise=False, dtype="int16") | conv_params(depthwise=True, dtype="int16"))
def test_conv_int16_property(params):
    check(conv_model(**params), inputs=2)


@pytest.mark.slow
@SWEEP
@given(st.sampled_from(["int8", "int16", "float32"]).flatmap(
    lambda t: conv_params(depthwise=False, dtype=t) | conv_params(depthwise=True, dtype=t)))
def test_conv_sweep(params):
    check(conv_model(**params), inputs=2)


def mac_chain_model(dtype: str) -> bytes:
    """CONV_2D -> DEPTHWISE_CONV_2D -> MAX_POOL_2D -> AVERAGE_POOL_2D -> MEAN ->
    FULLY_CONNECTED in one type: the planner overlaps dying inputs with outputs
    (in_place, scaled by the element size), so wide types are checked there too."""
    rng = rng_for("chain", dtype)
    b = ModelBuilder()
    q = (lambda s: (s / 100, 0)) if dtype == "int16" else (
        (lambda s: (s, 0)) if dtype == "int8" else (lambda s: (None, None)))

    def weights(shape, axis):
        if dtype == "float32":
            return b.const(rng.normal(0, 0.4, shape).astype(np.float32), "float32"), None
        scales = rng.uniform(0.004, 0.02, shape[axis])
        return b.const(rng.integers(-127, 128, shape), "int8", scales, [0] * len(scales),
                       axis=axis), scales

    def bias(n, in_scale, scales):
        if dtype == "float32":
            return b.const(rng.normal(0, 1, n).astype(np.float32), "float32")
        kind = "int32" if dtype == "int8" else "int64"
        return b.const(rng.integers(-3000, 3000, n), kind, q(in_scale)[0] * scales, [0] * n)

    x = b.input((1, 10, 10, 3), dtype, *q(0.05))
    w1, s1 = weights((8, 3, 3, 3), 0)
    h1 = b.tensor((1, 10, 10, 8), dtype, *q(0.1))
    b.op("CONV_2D", [x, w1, bias(8, 0.05, s1)], [h1], b.options(
        "Conv2DOptions", padding="SAME", strideH=1, strideW=1, fusedActivationFunction="RELU"),
         version=3)
    w2, s2 = weights((1, 3, 3, 8), 3)
    h2 = b.tensor((1, 5, 5, 8), dtype, *q(0.1))
    b.op("DEPTHWISE_CONV_2D", [h1, w2, bias(8, 0.1, s2)], [h2], b.options(
        "DepthwiseConv2DOptions", padding="SAME", strideH=2, strideW=2, depthMultiplier=1,
        fusedActivationFunction="RELU6"), version=3)
    pools = []
    for op, k, out_hw in (("MAX_POOL_2D", 2, 4), ("AVERAGE_POOL_2D", 2, 3)):
        pools.append(b.tensor((1, out_hw, out_hw, 8), dtype, *q(0.1)))
        b.op(op, [h2 if op == "MAX_POOL_2D" else pools[0]], [pools[-1]], b.options(
            "Pool2DOptions", padding="VALID", strideH=1, strideW=1, filterHeight=k,
            filterWidth=k), version=2)
    m = b.tensor((1, 8), dtype, *q(0.1))
    b.op("MEAN", [pools[-1], b.const(np.array([1, 2], np.int32), "int32")], [m],
         b.options("ReducerOptions", keepDims=False), version=2)
    w3, s3 = weights((5, 8), 0)
    y = b.tensor((1, 5), dtype, *q(0.2))
    b.op("FULLY_CONNECTED", [m, w3, bias(5, 0.1, s3)], [y], b.options("FullyConnectedOptions"),
         version=4)
    return b.build([y])


@pytest.mark.parametrize("dtype", ["int8", "int16", "float32"])
def test_mac_chain(dtype):
    check(mac_chain_model(dtype), inputs=3)


def test_hybrid_and_mixed_types_are_refused_in_one_line(tmp_path):
    """int8 weights under float activations (a dynamic-range model) and an int16
    input with a float output: one line naming the op and what to do."""
    from tinybuild.errors import TinybuildError
    from tinybuild.importer import load_graph
    from tinybuild.lower import lower_graph

    def refusal(x_type, y_type, w_type):
        b = ModelBuilder()
        q = (0.01, 0) if x_type == "int16" else (None, None)
        x = b.input((1, 4, 4, 2), x_type, *q)
        w = b.const(np.ones((3, 1, 1, 2)), w_type, *((0.1, 0) if w_type == "int8" else (None,)))
        bias = b.const(np.zeros(3), "float32" if x_type == "float32" else "int64")
        y = b.tensor((1, 4, 4, 3), y_type, *((0.01, 0) if y_type == "int16" else (None, None)))
        b.op("CONV_2D", [x, w, bias], [y], b.options("Conv2DOptions", padding="SAME", strideH=1,
                                                    strideW=1), version=3)
        path = tmp_path / f"{x_type}_{y_type}_{w_type}.tflite"
        path.write_bytes(b.build([y]))
        with pytest.raises(TinybuildError) as info:
            lower_graph(load_graph(path))
        assert "\n" not in str(info.value) and "unsupported CONV_2D at layer 0" in str(info.value)
        return str(info.value)

    assert "dynamic-range or hybrid model" in refusal("float32", "float32", "int8")
    assert "int16 input with float32 output" in refusal("int16", "float32", "int8")
