"""SOFTMAX (tinybuild/ops/softmax.py) against TFLite's reference kernels."""
import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, check
from tflite_builder import ModelBuilder


def softmax_model(shape=(1, 10), in_q=(0.1, 0), beta=1.0, dtype="int8") -> bytes:
    b = ModelBuilder()
    out_q = {"int8": (1 / 256, -128), "int16": (1 / 32768, 0)}.get(dtype, (None, None))
    if dtype == "float32":
        in_q = (None, None)
    x = b.input(shape, dtype, *in_q)
    y = b.tensor(shape, dtype, *out_q)            # what TFLite requires of int8/int16 softmax
    b.op("SOFTMAX", [x], [y], b.options("SoftmaxOptions", beta=beta), version=2)
    return b.build([y])


CASES = [
    Case("SOFTMAX 10 classes", lambda: softmax_model()),
    Case("SOFTMAX 4x20, beta 0.5, zero point -30", lambda: softmax_model((1, 4, 20), (0.05, -30), 0.5)),
    Case("SOFTMAX 1 class", lambda: softmax_model((1, 1))),
]


# float32: exp((x - max) * beta) with the C library's expf. The host build uses glibc's, as
# TFLite does here, so these compare byte for byte; on a device (newlib, picolibc) the last bit
# of expf may differ and the build's validation states the difference instead.
FLOAT_CASES = [
    Case("SOFTMAX float32 10 classes", lambda: softmax_model(dtype="float32")),
    Case("SOFTMAX float32 4x20, beta 0.5", lambda: softmax_model((1, 4, 20), beta=0.5, dtype="float32")),
    Case("SOFTMAX float32 rank 4, beta 2", lambda: softmax_model((1, 3, 2, 7), beta=2.0, dtype="float32")),
    Case("SOFTMAX float32 1 class", lambda: softmax_model((1, 1), dtype="float32")),
]


INT16_CASES = [
    Case("SOFTMAX int16 10 classes", lambda: softmax_model(in_q=(0.001, 0), dtype="int16")),
    Case("SOFTMAX int16 4x20, beta 0.5", lambda: softmax_model((1, 4, 20), (0.0005, 0), 0.5, "int16")),
    Case("SOFTMAX int16 rank 4, large scale", lambda: softmax_model((1, 2, 3, 9), (0.01, 0), 1.0, "int16")),
    Case("SOFTMAX int16 1 class", lambda: softmax_model((1, 1), (0.001, 0), dtype="int16")),
]


@pytest.mark.parametrize("case", CASES + FLOAT_CASES + INT16_CASES, ids=str)
def test_softmax(case):
    check(case)


@FAST
@given(st.lists(st.integers(1, 12), min_size=1, max_size=3), st.floats(0.1, 3.0))
def test_softmax_float_property(dims, beta):
    check(softmax_model(tuple([1] + dims), beta=beta, dtype="float32"), inputs=2)


@st.composite
def softmax_params(draw):
    shape = tuple([1] + draw(st.lists(st.integers(1, 12), min_size=1, max_size=2)))
    return dict(shape=shape, in_q=(draw(st.floats(0.005, 0.5)), draw(st.integers(-128, 127))),
                beta=draw(st.sampled_from([1.0, 0.5, 2.0])))


@FAST
@given(softmax_params())
def test_softmax_property(params):
    check(softmax_model(**params), inputs=2)


@pytest.mark.slow
@SWEEP
@given(softmax_params())
def test_softmax_sweep(params):
    check(softmax_model(**params), inputs=2)


@FAST
@given(st.lists(st.integers(1, 12), min_size=1, max_size=3), st.floats(1e-5, 0.01),
       st.sampled_from([1.0, 0.5, 2.0]))
def test_softmax_int16_property(dims, scale, beta):
    check(softmax_model(tuple([1] + dims), (scale, 0), beta, "int16"), inputs=2)
