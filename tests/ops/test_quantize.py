"""QUANTIZE and DEQUANTIZE (tinybuild/ops/quantize.py): float32, uint8 and int16
interfaces and requantization, against TFLite's reference kernels."""
import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, check, rng_for
from tflite_builder import ModelBuilder


def edges_model(interface="float32", inner=(0.05, -10), io_q=(None, None), shape=(1, 4, 4, 3),
                requant=None) -> bytes:
    """interface input -> QUANTIZE -> int8 (-> QUANTIZE int8->int8 at ``requant``) ->
    AVERAGE_POOL_2D -> DEQUANTIZE (float32) or QUANTIZE (integer) -> interface output."""
    b = ModelBuilder()
    x = b.input(shape, interface, *io_q)
    q = b.tensor(shape, "int8", *inner)
    b.op("QUANTIZE", [x], [q])
    if requant is not None:
        r = b.tensor(shape, "int8", *requant)
        b.op("QUANTIZE", [q], [r])
        q, inner = r, requant
    p = b.tensor(shape, "int8", *inner)
    b.op("AVERAGE_POOL_2D", [q], [p], b.options("Pool2DOptions", padding="SAME", strideH=1,
                                                 strideW=1, filterHeight=2, filterWidth=2))
    y = b.tensor(shape, interface, *io_q)
    b.op("DEQUANTIZE" if interface == "float32" else "QUANTIZE", [p], [y])
    return b.build([y])


CASES = [
    Case("float32 interface: QUANTIZE in, DEQUANTIZE out", lambda: edges_model()),
    Case("uint8 interface: QUANTIZE uint8->int8 in, int8->uint8 out",
         lambda: edges_model("uint8", (0.05, -10), (0.05, 118))),
    Case("int8 -> int8 requantization", lambda: edges_model("int8", (0.05, -10), (0.05, -10),
                                                            requant=(0.07, 20))),
    Case("float32 -> int16 -> float32", lambda: _int16_model()),
]


def _int16_model() -> bytes:
    b = ModelBuilder()
    x = b.input((1, 40), "float32")
    q = b.tensor((1, 40), "int16", 0.001, 0)
    b.op("QUANTIZE", [x], [q])
    y = b.tensor((1, 40), "float32")
    b.op("DEQUANTIZE", [q], [y], version=2)
    return b.build([y])


@pytest.mark.parametrize("case", CASES, ids=str)
def test_quantize(case):
    check(case, inputs=4)


@st.composite
def edge_params(draw):
    interface = draw(st.sampled_from(["float32", "uint8", "int8"]))
    inner = (draw(st.floats(0.001, 1.0)), draw(st.integers(-128, 127)))
    io_q = (None, None) if interface == "float32" else (
        draw(st.floats(0.001, 1.0)), draw(st.integers(0, 255) if interface == "uint8" else st.integers(-128, 127)))
    requant = draw(st.none() | st.tuples(st.floats(0.001, 1.0), st.integers(-128, 127)))
    shape = (1, draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 3)))
    return dict(interface=interface, inner=inner, io_q=io_q, shape=shape, requant=requant)


@FAST
@given(edge_params())
def test_quantize_property(params):
    check(edges_model(**params), inputs=3)


@pytest.mark.slow
@SWEEP
@given(edge_params())
def test_quantize_sweep(params):
    check(edges_model(**params), inputs=3)


# -- one QUANTIZE or DEQUANTIZE between every pair of types TFLite's reference kernels take ---------

REQUANTIZE_PAIRS = [("int8", "int8"), ("int8", "uint8"), ("uint8", "int8"), ("uint8", "uint8"),
                    ("int16", "int8"), ("int16", "int16")]
DEQUANTIZE_TYPES = ["int8", "uint8", "int16"]
_ZERO_POINTS = {"int8": st.integers(-128, 127), "uint8": st.integers(0, 255), "int16": st.just(0)}


def single_op_model(op: str, src: str, dst: str, q_in, q_out, shape) -> bytes:
    b = ModelBuilder()
    x = b.input(shape, src, *q_in)
    y = b.tensor(shape, dst, *q_out)
    b.op(op, [x], [y], version=2 if op == "DEQUANTIZE" else 1)
    return b.build([y])


@st.composite
def single_op_params(draw):
    op = draw(st.sampled_from(["QUANTIZE", "DEQUANTIZE"]))
    src, dst = (draw(st.sampled_from(REQUANTIZE_PAIRS)) if op == "QUANTIZE"
                else (draw(st.sampled_from(DEQUANTIZE_TYPES)), "float32"))
    scale = st.floats(0.0001, 0.01) if src == "int16" else st.floats(0.001, 1.0)
    q_in = (draw(scale), draw(_ZERO_POINTS[src]))
    q_out = (None, None) if dst == "float32" else (
        draw(st.floats(0.0001, 0.01) if dst == "int16" else st.floats(0.001, 1.0)), draw(_ZERO_POINTS[dst]))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 5))))
    return dict(op=op, src=src, dst=dst, q_in=q_in, q_out=q_out, shape=shape)


@pytest.mark.parametrize("src,dst", REQUANTIZE_PAIRS)
def test_requantize_between_types(src, dst):
    q = {"int8": (0.05, -3), "uint8": (0.07, 120), "int16": (0.002, 0)}
    check(single_op_model("QUANTIZE", src, dst, q[src], (q[dst][0] * 1.3, q[dst][1]), (1, 37)), inputs=2)


@pytest.mark.parametrize("src", DEQUANTIZE_TYPES)
def test_dequantize_from_each_type(src):
    q = {"int8": (0.05, -3), "uint8": (0.07, 120), "int16": (0.002, 0)}
    check(single_op_model("DEQUANTIZE", src, "float32", q[src], (None, None), (2, 3, 7)), inputs=2)


@FAST
@given(single_op_params())
def test_single_quantize_or_dequantize_property(params):
    check(single_op_model(**params), inputs=2)


@pytest.mark.slow
@SWEEP
@given(single_op_params())
def test_single_quantize_or_dequantize_sweep(params):
    check(single_op_model(**params), inputs=2)


@pytest.mark.parametrize("src,dst", [("int8", "int16"), ("uint8", "int16"), ("int16", "uint8")])
def test_requantization_tflite_does_not_define_is_one_line(src, dst, tmp_path):
    """quantize.cc refuses these pairs; so does the lowering, naming both types."""
    from tinybuild.errors import TinybuildError
    from tinybuild.pipeline import generate
    q = {"int8": (0.05, -3), "uint8": (0.07, 120), "int16": (0.002, 0)}
    path = tmp_path / "m.tflite"
    path.write_bytes(single_op_model("QUANTIZE", src, dst, q[src], q[dst], (1, 8)))
    with pytest.raises(TinybuildError) as err:
        generate(path, tmp_path / "out", [])
    assert f"{src} -> {dst}" in str(err.value) and "\n" not in str(err.value)
