"""FULLY_CONNECTED (tinybuild/ops/fully_connected.py) against TFLite's reference kernels."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, check, rng_for
from tflite_builder import ModelBuilder


def fc_model(in_shape=(1, 8), out_f=5, per_channel=False, activation="NONE", in_q=(0.05, 3),
             w_scale=0.01, out_q=(0.1, -2), bias=True, dyadic=0) -> bytes:
    """``dyadic`` n > 0: per-channel scales ``w_scale * 2^(o % n)`` instead of
    random ones (1: all equal), so dyadic scales give exact multipliers and
    exact .5 ties."""
    key = (in_shape, out_f, per_channel, in_q, w_scale, out_q, bias)
    rng = rng_for(*key, dyadic) if dyadic else rng_for(*key)   # older cases keep their data
    in_f = int(np.prod(in_shape))
    if not per_channel:
        scales = np.array([w_scale])
    elif dyadic:
        scales = w_scale * 2.0 ** (np.arange(out_f) % dyadic)
    else:
        scales = rng.uniform(0.5, 2.0, out_f) * w_scale
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
    # Multipliers exact or close to 11/512 and its powers of two: accumulators on
    # or next to .5, where TFLite's double rescale and Q31's two roundings differ.
    Case("FULLY_CONNECTED per-channel 1 -> 9, exact ties (sweep failure)",
         lambda: fc_model((1, 1), 9, per_channel=True, in_q=(0.5, 0), w_scale=0.04296875,
                          out_q=(1.0, 0)), inputs=8),
    Case("FULLY_CONNECTED per-channel dyadic scales, exact ties",
         lambda: fc_model((1, 3), 12, per_channel=True, in_q=(0.25, 0), w_scale=0.04296875,
                          out_q=(0.5, 0), dyadic=3), inputs=8),
    Case("FULLY_CONNECTED per-channel, all scales equal, exact ties",
         lambda: fc_model((1, 2), 8, per_channel=True, in_q=(0.5, -3), w_scale=0.03125,
                          out_q=(0.25, 5), dyadic=1, activation="RELU"), inputs=8),
    Case("FULLY_CONNECTED per-tensor 1 -> 9, exact ties", lambda: fc_model(
        (1, 1), 9, in_q=(0.5, 0), w_scale=0.04296875, out_q=(1.0, 0)), inputs=8),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_fully_connected(case):
    check(case)


def dyadic(draw, low: int, high: int, odd: int = 1) -> float:
    """An exact binary fraction: an odd numerator up to ``odd`` over 2^n."""
    return (draw(st.integers(0, odd // 2)) * 2 + 1) / 2.0 ** draw(st.integers(low, high))


@st.composite
def fc_tie_params(draw):
    """Exact power-of-two scales (weights: an odd multiple): exact multipliers,
    so accumulators hit exact .5 ties of the rescale."""
    return dict(in_shape=(1, draw(st.integers(1, 6))), out_f=draw(st.integers(1, 12)),
                per_channel=draw(st.booleans()), bias=draw(st.booleans()),
                dyadic=draw(st.integers(1, 4)),
                activation=draw(st.sampled_from(["NONE", "RELU", "RELU6"])),
                in_q=(dyadic(draw, 1, 6), draw(st.integers(-20, 20))),
                w_scale=dyadic(draw, 5, 9, odd=15),
                out_q=(dyadic(draw, -1, 3), draw(st.integers(-20, 20))))


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


@FAST
@given(fc_tie_params())
def test_fully_connected_ties_property(params):
    check(fc_model(**params), inputs=2)


@pytest.mark.slow
@SWEEP
@given(st.one_of(fc_params(), fc_tie_params()))
def test_fully_connected_sweep(params):
    check(fc_model(**params), inputs=2)
