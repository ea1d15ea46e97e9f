"""ADD (tinybuild/ops/add.py) against TFLite's reference kernels."""
import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, check
from tflite_builder import ModelBuilder


def add_model(shape=(1, 4, 4, 3), q1=(0.05, 0), q2=(0.05, 0), qo=(0.1, 0), activation="NONE") -> bytes:
    b = ModelBuilder()
    x1 = b.input(shape, "int8", *q1)
    x2 = b.input(shape, "int8", *q2)
    y = b.tensor(shape, "int8", *qo)
    b.op("ADD", [x1, x2], [y], b.options("AddOptions", fusedActivationFunction=activation), version=2)
    return b.build([y])


CASES = [
    Case("ADD same scales", lambda: add_model()),
    Case("ADD different scales and zero points, RELU", lambda: add_model(
        (1, 3, 5, 2), (0.02, -7), (0.09, 30), (0.1, -5), "RELU")),
    Case("ADD 2-D, RELU6", lambda: add_model((1, 37), (0.2, 127), (0.01, -128), (0.05, 0), "RELU6")),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_add(case):
    check(case)


@st.composite
def add_params(draw):
    shape = tuple([1] + draw(st.lists(st.integers(1, 6), min_size=1, max_size=3)))
    q = lambda: (draw(st.floats(0.005, 1.0)), draw(st.integers(-128, 127)))  # noqa: E731
    return dict(shape=shape, q1=q(), q2=q(), qo=q(),
                activation=draw(st.sampled_from(["NONE", "RELU", "RELU6"])))


@FAST
@given(add_params())
def test_add_property(params):
    check(add_model(**params), inputs=2)


@pytest.mark.slow
@SWEEP
@given(add_params())
def test_add_sweep(params):
    check(add_model(**params), inputs=2)
