"""SOFTMAX (tinybuild/ops/softmax.py) against TFLite's reference kernels."""
import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, check
from tflite_builder import ModelBuilder


def softmax_model(shape=(1, 10), in_q=(0.1, 0), beta=1.0) -> bytes:
    b = ModelBuilder()
    x = b.input(shape, "int8", *in_q)
    y = b.tensor(shape, "int8", 1 / 256, -128)            # what TFLite requires of int8 softmax
    b.op("SOFTMAX", [x], [y], b.options("SoftmaxOptions", beta=beta), version=2)
    return b.build([y])


CASES = [
    Case("SOFTMAX 10 classes", lambda: softmax_model()),
    Case("SOFTMAX 4x20, beta 0.5, zero point -30", lambda: softmax_model((1, 4, 20), (0.05, -30), 0.5)),
    Case("SOFTMAX 1 class", lambda: softmax_model((1, 1))),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_softmax(case):
    check(case)


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
