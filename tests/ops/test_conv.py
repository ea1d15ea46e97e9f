"""CONV_2D and DEPTHWISE_CONV_2D (tinybuild/ops/conv.py) against TFLite's reference kernels."""
import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, check, rng_for
from tflite_builder import ModelBuilder
from tinybuild import quant


def conv_model(in_shape=(1, 6, 6, 3), out_c=4, k=(3, 3), stride=(1, 1), dilation=(1, 1),
               padding="SAME", activation="NONE", per_channel=True, depthwise=False,
               in_q=(0.05, -3), out_q=(0.1, 4), bias=True) -> bytes:
    """One CONV_2D (or DEPTHWISE_CONV_2D: out_c is then in_c * depth multiplier)."""
    rng = rng_for(in_shape, out_c, k, stride, dilation, padding, per_channel, depthwise, in_q, out_q)
    _, h, w, c = in_shape
    out_h, _ = quant.compute_padding(padding, h, k[0], stride[0], dilation[0])
    out_w, _ = quant.compute_padding(padding, w, k[1], stride[1], dilation[1])
    scales = rng.uniform(0.004, 0.02, out_c if per_channel else 1)
    b = ModelBuilder()
    x = b.input(in_shape, "int8", *in_q)
    shape = (1, *k, out_c) if depthwise else (out_c, *k, c)
    wt = b.const(rng.integers(-127, 128, shape), "int8", scales, [0] * len(scales),
                 axis=3 if depthwise else 0)
    bias_t = b.const(rng.integers(-3000, 3000, out_c), "int32", in_q[0] * scales,
                     [0] * len(scales)) if bias else -1
    y = b.tensor((1, out_h, out_w, out_c), "int8", *out_q)
    common = dict(padding=padding, strideH=stride[0], strideW=stride[1], dilationHFactor=dilation[0],
                  dilationWFactor=dilation[1], fusedActivationFunction=activation)
    if depthwise:
        b.op("DEPTHWISE_CONV_2D", [x, wt, bias_t] if bias else [x, wt], [y],
             b.options("DepthwiseConv2DOptions", depthMultiplier=out_c // c, **common), version=3)
    else:
        b.op("CONV_2D", [x, wt, bias_t], [y],          # TFLite's int8 CONV_2D needs its bias
             b.options("Conv2DOptions", **common), version=3)
    return b.build([y])


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
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_conv(case):
    check(case)


@st.composite
def conv_params(draw, depthwise):
    c = draw(st.integers(1, 6))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    h = draw(st.integers((k[0] - 1) * dilation[0] + 1, 9))
    w = draw(st.integers((k[1] - 1) * dilation[1] + 1, 9))
    out_c = c * draw(st.integers(1, 3)) if depthwise else draw(st.integers(1, 6))
    return dict(in_shape=(1, h, w, c), out_c=out_c, k=k, dilation=dilation, depthwise=depthwise,
                stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                padding=draw(st.sampled_from(["SAME", "VALID"])),
                activation=draw(st.sampled_from(["NONE", "RELU", "RELU6"])),
                per_channel=draw(st.booleans()),
                in_q=(draw(st.floats(0.005, 0.5)), draw(st.integers(-128, 127))),
                out_q=(draw(st.floats(0.01, 2.0)), draw(st.integers(-128, 127))))


@FAST
@given(conv_params(depthwise=False))
def test_conv2d_property(params):
    check(conv_model(**params), inputs=2)


@FAST
@given(conv_params(depthwise=True))
def test_depthwise_property(params):
    check(conv_model(**params), inputs=2)


@pytest.mark.slow
@SWEEP
@given(conv_params(depthwise=False) | conv_params(depthwise=True))
def test_conv_sweep(params):
    check(conv_model(**params), inputs=2)
