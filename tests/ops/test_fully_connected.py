"""FULLY_CONNECTED (tinybuild/ops/fully_connected.py) against TFLite's reference kernels."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, check, rng_for
from tflite_builder import ModelBuilder


def fc_model(in_shape=(1, 8), out_f=5, per_channel=False, activation="NONE", in_q=(0.05, 3),
             w_scale=0.01, out_q=(0.1, -2), bias=True) -> bytes:
    rng = rng_for(in_shape, out_f, per_channel, in_q, w_scale, out_q, bias)
    in_f = int(np.prod(in_shape))
    scales = rng.uniform(0.5, 2.0, out_f) * w_scale if per_channel else np.array([w_scale])
    b = ModelBuilder()
    x = b.input(in_shape, "int8", *in_q)
    w = b.const(rng.integers(-127, 128, (out_f, in_f)), "int8", scales, [0] * len(scales))
    bias_t = b.const(rng.integers(-3000, 3000, out_f), "int32",
                     (np.float32(in_q[0]) * scales.astype(np.float32)), [0] * len(scales)) if bias else -1
    y = b.tensor((1, out_f), "int8", *out_q)
    b.op("FULLY_CONNECTED", [x, w, bias_t], [y],
         b.options("FullyConnectedOptions", fusedActivationFunction=activation), version=4)
    return b.build([y])


CASES = [
    Case("FULLY_CONNECTED 8 -> 5 per-tensor", lambda: fc_model()),
    Case("FULLY_CONNECTED 4x4x2 input, RELU, no bias", lambda: fc_model((1, 4, 4, 2), 7,
                                                                         activation="RELU", bias=False)),
    Case("FULLY_CONNECTED per-channel RELU6", lambda: fc_model((1, 16), 6, per_channel=True,
                                                               activation="RELU6")),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_fully_connected(case):
    check(case)


@st.composite
def fc_params(draw):
    return dict(in_shape=(1, draw(st.integers(1, 40))), out_f=draw(st.integers(1, 12)),
                per_channel=draw(st.booleans()), bias=draw(st.booleans()),
                activation=draw(st.sampled_from(["NONE", "RELU", "RELU6"])),
                in_q=(draw(st.floats(0.005, 0.5)), draw(st.integers(-128, 127))),
                w_scale=draw(st.floats(0.001, 0.05)),
                out_q=(draw(st.floats(0.01, 2.0)), draw(st.integers(-128, 127))))


@FAST
@given(fc_params())
def test_fully_connected_property(params):
    check(fc_model(**params), inputs=2)


@pytest.mark.slow
@SWEEP
@given(fc_params())
def test_fully_connected_sweep(params):
    check(fc_model(**params), inputs=2)
