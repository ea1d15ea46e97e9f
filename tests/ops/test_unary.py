"""Unary math (tinybuild/ops/unary.py): ABS, NEG, RSQRT (int8 tables, every
int8 value compared) and CAST between int8, uint8, int16, int32 and float32,
against TFLite's reference kernels byte for byte."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, check
from test_activation import SHAPES_OF_256, check_all_int16_values, check_all_values, quantization, unary_model
from tflite_builder import ModelBuilder


def _q(dtype: str):
    """Integer tensors carry a quantization (the model check wants one; CAST ignores it)."""
    return (None, None) if dtype in ("float32", "int32") else (1.0, 0)


def cast_model(src: str, dst: str, shape=(1, 5, 7)) -> bytes:
    """CAST from ``src`` to ``dst``."""
    b = ModelBuilder()
    x = b.input(shape, src, *_q(src))
    y = b.tensor(shape, dst, *_q(dst))
    b.op("CAST", [x], [y])
    return b.build([y])


CASTS = [("int8", "int32"), ("int32", "int8"), ("uint8", "int8"), ("int8", "uint8"), ("int8", "float32"),
         ("float32", "int8"), ("float32", "int32"), ("float32", "uint8"), ("float32", "int16"),
         ("int16", "float32"), ("int32", "float32"), ("int16", "int8"), ("uint8", "float32"),
         ("int32", "int16")]

CASES = [
    Case("ABS same quantization", lambda: unary_model("ABS", (1, 7, 5, 3), (0.05, -3), (0.05, -3))),
    Case("ABS rescaled", lambda: unary_model("ABS", (2, 33), (0.05, 20), (0.03, -128))),
    Case("NEG", lambda: unary_model("NEG", (1, 4, 4, 3), (0.05, 7), (0.05, -2))),
    Case("NEG different scales", lambda: unary_model("NEG", (2, 9), (0.05, 7), (0.1, 0))),
    Case("RSQRT", lambda: unary_model("RSQRT", (1, 40), (0.02, -128), (0.05, -100))),
    *[Case(f"CAST {src} -> {dst}", lambda s=src, d=dst: cast_model(s, d)) for src, dst in CASTS],
]


def float_unary_model(op: str, shape=(1, 5, 7)) -> bytes:
    b = ModelBuilder()
    x = b.input(shape, "float32")
    y = b.tensor(shape, "float32")
    b.op(op, [x], [y])
    return b.build([y])


FLOAT_CASES = [Case(f"{op} float32", lambda op=op: float_unary_model(op)) for op in ("ABS", "NEG")]


INT16_OPS = ["ABS", "NEG"]


def int16_unary_model(op: str, shape=(1, 5, 7), q_in=(0.001, 0), q_out=(0.001, 0)) -> bytes:
    """One int16 (16x8) unary op, zero points 0 as TFLite's 16x8 mode writes them."""
    b = ModelBuilder()
    x = b.input(shape, "int16", *q_in)
    y = b.tensor(shape, "int16", *q_out)
    b.op(op, [x], [y], version=1)
    return b.build([y])


INT16_CASES = [
    Case("ABS int16 same scale", lambda: int16_unary_model("ABS", (1, 4, 4, 3))),
    Case("ABS int16 rescaled", lambda: int16_unary_model("ABS", (2, 33), (0.003, 0), (0.0007, 0))),
    Case("NEG int16", lambda: int16_unary_model("NEG", (1, 4, 4, 3))),
    Case("NEG int16 different scales", lambda: int16_unary_model("NEG", (2, 9), (0.003, 0), (0.0007, 0))),
]


@pytest.mark.parametrize("op", INT16_OPS)
@pytest.mark.parametrize("q_in, q_out", [((0.001, 0), (0.001, 0)), ((0.001, 0), (0.0007, 0)),
                                         ((0.0003, 0), (0.002, 0)), ((0.01, 0), (0.0001, 0))])
def test_int16_every_value(op, q_in, q_out):
    """All 65536 int16 inputs, -32768 included (ABS saturates |x| = 32768, NEG wraps it)."""
    check_all_int16_values(int16_unary_model(op, (1, 65536), q_in, q_out))


@FAST
@given(st.sampled_from(INT16_OPS), st.sampled_from(SHAPES_OF_256), st.floats(1e-5, 0.01),
       st.floats(1e-5, 0.01))
def test_int16_property(op, shape, s_in, s_out):
    check(int16_unary_model(op, shape, (s_in, 0), (s_out, 0)), inputs=2)


@pytest.mark.parametrize("case", CASES + FLOAT_CASES + INT16_CASES, ids=str)
def test_unary(case):
    check(case)


@FAST
@given(st.sampled_from(["ABS", "NEG"]), st.sampled_from(SHAPES_OF_256))
def test_float_abs_neg_property(op, shape):
    check(float_unary_model(op, shape), inputs=2)


def test_float_rsqrt_is_refused_in_one_line(tmp_path):
    """float32 RSQRT is not compiled: one line naming the type and the op."""
    from tinybuild.errors import TinybuildError
    from tinybuild.pipeline import generate
    path = tmp_path / "m.tflite"
    path.write_bytes(float_unary_model("RSQRT"))
    with pytest.raises(TinybuildError) as err:
        generate(path, tmp_path / "out", [])
    assert "float32" in str(err.value) and "RSQRT" in str(err.value) and "\n" not in str(err.value)


def test_int16_rsqrt_is_refused_in_one_line(tmp_path):
    """TFLite runs 16x8 RSQRT (an interpolated table); tinybuild does not compile it yet."""
    from tinybuild.errors import TinybuildError
    from tinybuild.pipeline import generate
    path = tmp_path / "m.tflite"
    path.write_bytes(int16_unary_model("RSQRT"))
    with pytest.raises(TinybuildError) as err:
        generate(path, tmp_path / "out", [])
    assert "int16 RSQRT (16x8) is not compiled" in str(err.value) and "\n" not in str(err.value)


def test_every_value():
    check_all_values(unary_model("ABS", (1, 256), (0.07, 3), (0.05, -128)))
    check_all_values(unary_model("NEG", (1, 256), (0.07, 3), (0.07, -5)))
    check_all_values(unary_model("RSQRT", (1, 256), (0.003, -128), (0.02, -128)))


EDGES = np.array([np.nan, -np.inf, -1e10, -2.0 ** 31, -32769.0, -129.5, -128.9, -0.7, 0.0, 0.7, 127.9,
                  255.5, 300.0, 32768.5, 2.0 ** 31, 1e10, np.inf], np.float32)


@pytest.mark.parametrize("dst", ["int8", "uint8", "int16", "int32"])
def test_cast_float_edges(dst, tmp_path):
    """NaN, infinities and out-of-range floats: tb_cast (host build) and
    fold_cast (numpy, for constants) give TFLite's bytes."""
    from harness import tinybuild_outputs
    from tinybuild.ops.unary import cast_values
    from tinybuild.reference import reference_outputs
    path = tmp_path / "m.tflite"
    path.write_bytes(cast_model("float32", dst, (len(EDGES),)))
    want = reference_outputs(path, [EDGES.tobytes()])[0]
    assert tinybuild_outputs(path, [EDGES.tobytes()], tmp_path / "build")[0] == want
    assert cast_values(EDGES, dst).tobytes() == want


@st.composite
def abs_neg_rsqrt_case(draw, op):
    shape = draw(st.sampled_from(SHAPES_OF_256))
    if op == "RSQRT":           # TFLite stops on inputs below the zero point: feed none
        zero_point = draw(st.integers(-128, 120))
        return unary_model(op, shape, (draw(st.floats(0.0005, 0.5)), zero_point),
                           draw(quantization())), zero_point
    return unary_model(op, shape, draw(quantization()), draw(quantization())), -128


def _property(op, settings=FAST):
    @settings
    @given(abs_neg_rsqrt_case(op))
    def run(case):
        model, lowest = case
        check_all_values(model, lowest=lowest)
    return run


test_abs_property = _property("ABS")
test_neg_property = _property("NEG")
test_rsqrt_property = _property("RSQRT")


@st.composite
def cast_case(draw):
    src, dst = draw(st.sampled_from(CASTS))
    rank = draw(st.integers(1, 5))
    return cast_model(src, dst, tuple(draw(st.integers(1, 4)) for _ in range(rank)))


@FAST
@given(cast_case())
def test_cast_property(model):
    check(model, inputs=2)


@pytest.mark.slow
@pytest.mark.parametrize("op", ["ABS", "NEG", "RSQRT"])
def test_unary_sweep(op):
    _property(op, SWEEP)()


@pytest.mark.slow
@SWEEP
@given(cast_case())
def test_cast_sweep(model):
    check(model, inputs=2)
