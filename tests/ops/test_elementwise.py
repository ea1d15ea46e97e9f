"""SUB, MUL, SQUARED_DIFFERENCE, MAXIMUM, MINIMUM, DIV and PRELU
(tinybuild/ops/elementwise.py) against TFLite's reference kernels, and the
broadcast and constant-operand forms ADD shares with them."""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, check, rng_for
from tflite_builder import ModelBuilder

from tinybuild.errors import TinybuildError
from tinybuild.graph import Graph, Operator, Tensor
from tinybuild.lower import lower_graph

OPTIONS = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions", "DIV": "DivOptions"}
VERSION = {"ADD": 2, "SUB": 3, "MUL": 4, "SQUARED_DIFFERENCE": 2, "MAXIMUM": 2, "MINIMUM": 2,
           "DIV": 1, "PRELU": 1}
RANK = {"ADD": 6, "SUB": 6, "MUL": 6, "SQUARED_DIFFERENCE": 6, "MAXIMUM": 5, "MINIMUM": 5,
        "DIV": 5, "PRELU": 4}


def binary_model(op="ADD", s1=(1, 4), s2=(1, 4), q1=(0.05, 0), q2=(0.07, 0), qo=(0.1, 0),
                 activation="NONE", const=None, dtype="int8", pot=None) -> bytes:
    """One ``op`` on two operands of ``dtype`` (float32: the q's are ignored);
    ``const``: 1 or 2 makes that operand a seeded constant (2 for both);
    ``pot``: ADD/SUB's pot_scale_int16 option (None: the schema default, true)."""
    b = ModelBuilder()
    out = tuple(np.broadcast_shapes(s1, s2))
    if op in ("MAXIMUM", "MINIMUM"):
        q2 = qo = q1                     # the converter gives them one quantization
    if dtype == "float32":
        q1 = q2 = qo = (None, None)
    operands = []
    for k, (shape, q) in enumerate(((s1, q1), (s2, q2)), 1):
        if const in (k, "both"):
            operands.append(b.const(constant_data(dtype, rng_for(op, shape, k), shape), dtype, *q))
        else:
            operands.append(b.input(shape, dtype, *q))
    y = b.tensor(out, dtype, *qo)
    fields = {} if pot is None else {"potScaleInt16": pot}
    options = (b.options(OPTIONS[op], fusedActivationFunction=activation, **fields)
               if op in OPTIONS else None)
    b.op(op, operands, [y], options, version=VERSION[op] if dtype == "int8" else TYPED_VERSION[op])
    return b.build([y])


# operator versions TFLite's resolver takes for int16 (and float32) models
TYPED_VERSION = {"ADD": 3, "SUB": 3, "MUL": 5, "MAXIMUM": 4, "MINIMUM": 4, "DIV": 1,
                 "SQUARED_DIFFERENCE": 1, "PRELU": 1}


def constant_data(dtype: str, rng, shape) -> np.ndarray:
    if dtype == "float32":
        return rng.standard_normal(shape).astype(np.float32)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=shape, dtype=dtype)


def cases(op: str) -> list:
    """Every broadcast form: same shapes, scalar, one axis, both sides, ranks 1..max."""
    act = "RELU" if op in OPTIONS else "NONE"
    rows = [
        (f"{op} same shapes", dict(s1=(1, 3, 5, 2), s2=(1, 3, 5, 2))),
        (f"{op} rank 1", dict(s1=(7,), s2=(7,))),
        (f"{op} scalar second", dict(s1=(1, 4, 4, 3), s2=())),
        (f"{op} scalar first", dict(s1=(1,), s2=(1, 2, 6))),
        (f"{op} per-channel vector", dict(s1=(1, 4, 4, 3), s2=(3,))),
        (f"{op} both broadcast", dict(s1=(1, 4, 1, 3), s2=(1, 1, 5, 1))),
        (f"{op} lower rank second", dict(s1=(2, 3, 4), s2=(3, 1))),
        (f"{op} different zero points, {act}", dict(
            s1=(1, 2, 3, 4), s2=(1, 1, 3, 1), q1=(0.02, -7), q2=(0.09, 30), qo=(0.1, -5),
            activation=act)),
        (f"{op} constant second", dict(s1=(1, 3, 3, 4), s2=(4,), const=2)),
        (f"{op} constant first", dict(s1=(1, 1, 4), s2=(1, 3, 4), const=1)),
        (f"{op} constant first, same shapes", dict(s1=(1, 6), s2=(1, 6), const=1)),
    ]
    if RANK[op] >= 5:
        rows.append((f"{op} rank 5", dict(s1=(2, 1, 3, 1, 2), s2=(1, 2, 1, 4, 1))))
    if RANK[op] >= 6:
        rows.append((f"{op} rank 6", dict(s1=(2, 1, 3, 1, 2, 2), s2=(1, 2, 1, 4, 1, 1))))
    if op in OPTIONS:
        rows.append((f"{op} RELU6", dict(s1=(1, 37), s2=(1, 37), q1=(0.2, 127), q2=(0.01, -128),
                                          qo=(0.05, 0), activation="RELU6")))
    return [Case(name, lambda op=op, kw=kw: binary_model(op, **kw)) for name, kw in rows]


BINARY = ["ADD", "SUB", "MUL", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM", "DIV"]
CASES = [c for op in BINARY[1:-1] for c in cases(op)]      # DIV: DIV_CASES


@pytest.mark.parametrize("case", CASES, ids=str)
def test_elementwise(case):
    check(case)


# -- float32 and int16 (16x8): ADD, SUB, MUL, MAXIMUM, MINIMUM --------------------------------

Q16 = (1 / 2048, 0)          # 16x8: symmetric int16 (zero point 0)


def typed_cases(op: str, dtype: str) -> list:
    """float32 (bit-exact: one IEEE operation and a clamp per element) or int16
    rows: same shapes, broadcast forms, constants, fused activations, and for
    ADD/SUB both of TFLite's int16 paths (general and power-of-two)."""
    q = dict(q1=(0.0004, 0), q2=(0.0007, 0), qo=(0.001, 0)) if dtype == "int16" else {}
    general = dict(pot=False) if dtype == "int16" and op in ("ADD", "SUB") else {}
    act = "RELU" if op in OPTIONS else "NONE"
    rows = [
        ("same shapes", dict(s1=(1, 3, 5, 2), s2=(1, 3, 5, 2))),
        ("scalar second", dict(s1=(1, 4, 4, 3), s2=())),
        ("per-channel vector", dict(s1=(1, 4, 4, 3), s2=(3,))),
        ("both broadcast", dict(s1=(1, 4, 1, 3), s2=(1, 1, 5, 1))),
        (f"fused {act}", dict(s1=(1, 2, 3, 4), s2=(1, 1, 3, 1), activation=act)),
        ("constant first", dict(s1=(1, 1, 4), s2=(1, 3, 4), const=1)),
        ("constant second, same shapes", dict(s1=(1, 6), s2=(1, 6), const=2)),
    ]
    if op != "SQUARED_DIFFERENCE":        # TFLite's float SQUARED_DIFFERENCE broadcasts in 4-D
        rows.append(("rank 5", dict(s1=(2, 1, 3, 1, 2), s2=(1, 2, 1, 4, 1))))
    if op in OPTIONS:
        rows.append(("RELU6", dict(s1=(1, 37), s2=(1, 37), activation="RELU6")))
    if dtype == "int16" and op in ("ADD", "SUB"):
        rows += [("power-of-two scales", dict(s1=(1, 3, 7), s2=(1, 3, 7), q1=(1 / 4096, 0),
                                              q2=(1 / 1024, 0), qo=(1 / 1024, 0), pot=True)),
                 ("power-of-two scales, first input shifted, RELU", dict(
                     s1=(1, 20), s2=(1, 20), q1=(1 / 512, 0), q2=(1 / 128, 0), qo=(1 / 128, 0),
                     pot=True, activation="RELU"))]
    return [Case(f"{op} {dtype} {name}", lambda op=op, kw=kw: binary_model(
        op, **{**q, **general, **kw}, dtype=dtype)) for name, kw in rows]


TYPED_OPS = ["SUB", "MUL", "MAXIMUM", "MINIMUM"]
FLOAT_ONLY_OPS = ["DIV", "SQUARED_DIFFERENCE"]        # (and PRELU: PRELU_FLOAT_CASES)
TYPED_CASES = [c for op in TYPED_OPS for dtype in ("float32", "int16") for c in typed_cases(op, dtype)] + \
    [c for op in FLOAT_ONLY_OPS for c in typed_cases(op, "float32")]


@pytest.mark.parametrize("case", TYPED_CASES, ids=str)
def test_elementwise_typed(case):
    check(case)


@st.composite
def typed_params(draw, op: str, dtype: str):
    """Random broadcastable shapes (rank <= 4), constant operands, activations;
    int16 scales drawn around 16x8's (zero point 0)."""
    params = draw(binary_params(op))
    params["dtype"] = dtype
    if dtype == "int16":
        scale = lambda: draw(st.floats(1e-5, 0.01))         # noqa: E731
        params.update(q1=(scale(), 0), q2=(scale(), 0), qo=(scale(), 0))
        if op in ("ADD", "SUB"):
            params["pot"] = False
    return params


@FAST
@given(st.sampled_from(TYPED_OPS), st.sampled_from(["float32", "int16"]), st.data())
def test_elementwise_typed_property(op, dtype, data):
    check(binary_model(**data.draw(typed_params(op, dtype))), inputs=2)


@FAST
@given(st.sampled_from(FLOAT_ONLY_OPS), st.data())
def test_elementwise_float_property(op, data):
    params = data.draw(typed_params(op, "float32"))
    if op == "SQUARED_DIFFERENCE" and max(len(params["s1"]), len(params["s2"])) > 4:
        params["s1"], params["s2"] = params["s1"][-4:], params["s2"][-4:]
    check(binary_model(**params), inputs=2)


@pytest.mark.parametrize("op, why", [
    ("SQUARED_DIFFERENCE", "TFLite's own SQUARED_DIFFERENCE refuses int16")])
def test_int16_of_an_int8_and_float_op_is_refused_in_one_line(op, why, tmp_path):
    from tinybuild.pipeline import generate
    path = tmp_path / "m.tflite"
    path.write_bytes(binary_model(op, (1, 4), (1, 4), (0.001, 0), (0.001, 0), (0.001, 0), dtype="int16"))
    with pytest.raises(TinybuildError) as err:
        generate(path, tmp_path / "out", [])
    assert why in str(err.value) and "\n" not in str(err.value)


def div_model(s1=(1, 4), s2=(1, 4), q1=(0.05, 0), q2=(0.07, 0), qo=(0.1, 0), activation="NONE",
              divisor=None, const1=False, dtype="int8") -> bytes:
    """DIV whose divisor is a constant without raw zeros (TFLite's int8 DIV stops
    on a raw 0 in the divisor, div.cc: 'data[i] != 0'). int16: the scales / 256,
    zero points 0 (16x8)."""
    b = ModelBuilder()
    top = 1 << (8 if dtype == "int8" else 16) - 1
    if dtype == "int16":
        q1, q2, qo = ((q[0] / 256, 0) for q in (q1, q2, qo))
    if divisor is None:
        divisor = rng_for("div", s2).integers(1, top, size=s2) * rng_for("sign", s2).choice([-1, 1], s2)
    x = b.const(rng_for("x", s1).integers(-top, top, size=s1), dtype, *q1) if const1 else \
        b.input(s1, dtype, *q1)
    d = b.const(np.asarray(divisor, dtype=dtype), dtype, *q2)
    y = b.tensor(tuple(np.broadcast_shapes(s1, s2)), dtype, *qo)
    b.op("DIV", [x, d], [y], b.options("DivOptions", fusedActivationFunction=activation))
    return b.build([y])


DIV_CASES = [
    Case("DIV same shapes", lambda: div_model((1, 3, 4, 2), (1, 3, 4, 2))),
    Case("DIV scalar divisor", lambda: div_model((1, 4, 4, 3), ())),
    Case("DIV per-channel divisor, RELU", lambda: div_model((1, 4, 4, 3), (3,), (0.02, -7),
                                                            (0.09, 30), (0.1, -5), "RELU")),
    Case("DIV rank 5", lambda: div_model((2, 1, 3, 1, 2), (1, 2, 1, 4, 1))),
    Case("DIV int16 same shapes", lambda: div_model((1, 3, 4, 2), (1, 3, 4, 2), dtype="int16")),
    Case("DIV int16 per-channel divisor, RELU", lambda: div_model((1, 4, 4, 3), (3,), (0.02, 0), (0.09, 0),
                                                                  (0.1, 0), "RELU", dtype="int16")),
    Case("DIV int16 scalar divisor", lambda: div_model((1, 4, 4, 3), (), dtype="int16")),
    Case("DIV RELU6, divisor at its zero point", lambda: div_model(
        (1, 37), (37,), (0.2, 127), (0.01, 5), (0.05, 0), "RELU6",
        divisor=np.arange(-18, 19) + 5 * (np.arange(-18, 19) == 0))),
]


@pytest.mark.parametrize("case", DIV_CASES, ids=str)
def test_div(case):
    check(case)


def prelu_model(shape=(1, 4, 4, 3), alpha_shape=(3,), q=(0.05, 3), qa=(0.01, -20), qo=(0.04, -1),
                alpha_const=True, dtype="int8", alpha_type=None) -> bytes:
    """int16 (16x8): input and output scales / 256, zero points 0, an int8 alpha
    (what TFLite's int16 PRELU reads) unless ``alpha_type`` says otherwise."""
    b = ModelBuilder()
    if dtype == "float32":
        q = qa = qo = (None, None)
    elif dtype == "int16":
        q, qo = (q[0] / 256, 0), (qo[0] / 256, 0)
    a_type = alpha_type or ("int8" if dtype == "int16" else dtype)
    x = b.input(shape, dtype, *q)
    if alpha_const:
        a = b.const(constant_data(a_type, rng_for("alpha", alpha_shape), alpha_shape), a_type, *qa)
    else:
        a = b.input(alpha_shape, a_type, *qa)
    y = b.tensor(shape, dtype, *qo)
    b.op("PRELU", [x, a], [y])
    return b.build([y])


PRELU_CASES = [
    Case("PRELU per-channel alpha", lambda: prelu_model()),
    Case("PRELU shared axes (1x1xC)", lambda: prelu_model((1, 5, 3, 4), (1, 1, 4))),
    Case("PRELU full alpha", lambda: prelu_model((1, 2, 3, 4), (1, 2, 3, 4))),
    Case("PRELU scalar alpha", lambda: prelu_model((1, 6, 2), ())),
    Case("PRELU rank 2, big scales", lambda: prelu_model((1, 30), (30,), (0.5, -100), (0.3, 40),
                                                         (0.02, 7))),
    Case("PRELU alpha not constant", lambda: prelu_model((1, 3, 4), (1, 4), alpha_const=False)),
    Case("PRELU int16 per-channel alpha", lambda: prelu_model(dtype="int16")),
    Case("PRELU int16 full alpha", lambda: prelu_model((1, 2, 3, 4), (1, 2, 3, 4), dtype="int16")),
    Case("PRELU int16 scalar alpha, big scales", lambda: prelu_model((1, 30), (), (0.5, 0), (0.3, 0),
                                                                     (0.02, 0), dtype="int16")),
]


PRELU_FLOAT_CASES = [
    Case("PRELU float32 per-channel alpha", lambda: prelu_model(dtype="float32")),
    Case("PRELU float32 shared axes", lambda: prelu_model((1, 5, 3, 4), (1, 1, 4), dtype="float32")),
    Case("PRELU float32 alpha not constant", lambda: prelu_model((1, 3, 4), (1, 4), alpha_const=False,
                                                                 dtype="float32")),
]


@pytest.mark.parametrize("case", PRELU_CASES + PRELU_FLOAT_CASES, ids=str)
def test_prelu(case):
    check(case)


# -- property tests: random broadcast shapes and quantization ------------------------------

@st.composite
def quant(draw):
    return draw(st.floats(0.005, 1.0)), draw(st.integers(-128, 127))


@st.composite
def broadcast_shapes(draw, max_rank):
    """Two shapes that broadcast: an output shape, each input dropping leading
    dimensions and setting others to 1."""
    out = draw(st.lists(st.integers(1, 5), min_size=1, max_size=max_rank))
    shapes = []
    for _ in range(2):
        keep = draw(st.integers(0, len(out)))
        ones = draw(st.lists(st.booleans(), min_size=keep, max_size=keep))
        shapes.append(tuple(1 if one else d for d, one in zip(out[len(out) - keep:], ones)))
    return shapes


@st.composite
def binary_params(draw, op):
    s1, s2 = draw(broadcast_shapes(RANK[op]))
    return dict(op=op, s1=s1, s2=s2, q1=draw(quant()), q2=draw(quant()), qo=draw(quant()),
                activation=draw(st.sampled_from(["NONE", "RELU", "RELU6"])) if op in OPTIONS
                else "NONE", const=draw(st.sampled_from([None, None, 1, 2])))


@st.composite
def div_params(draw):
    s1, s2 = draw(broadcast_shapes(RANK["DIV"]))
    return dict(s1=s1, s2=s2, q1=draw(quant()), q2=draw(quant()), qo=draw(quant()),
                activation=draw(st.sampled_from(["NONE", "RELU", "RELU6"])))


@st.composite
def prelu_params(draw):
    shape, alpha = draw(broadcast_shapes(RANK["PRELU"]))
    shape = tuple(np.broadcast_shapes(shape, alpha))      # alpha broadcasts to the input
    return dict(shape=shape, alpha_shape=alpha, q=draw(quant()), qa=draw(quant()),
                qo=draw(quant()), alpha_const=draw(st.booleans()))


def check_or_refused(model: bytes) -> None:
    """Equal to TFLite, or refused with one line for scales TFLite's kernel refuses."""
    try:
        check(model, inputs=2)
    except TinybuildError as exc:
        assert "unsupported" in str(exc) and "\n" not in str(exc), exc


@pytest.mark.parametrize("op", BINARY[1:-1])
@FAST
@given(data=st.data())
def test_binary_property(op, data):
    check_or_refused(binary_model(**data.draw(binary_params(op))))


@FAST
@given(div_params())
def test_div_property(params):
    check_or_refused(div_model(**params))


@FAST
@given(div_params())
def test_div_int16_property(params):
    check_or_refused(div_model(**params, dtype="int16"))


@FAST
@given(prelu_params())
def test_prelu_property(params):
    check(prelu_model(**params), inputs=2)


@FAST
@given(prelu_params())
def test_prelu_int16_property(params):
    check(prelu_model(**{**params, "alpha_const": True}, dtype="int16"), inputs=2)


@pytest.mark.parametrize("alpha_type, alpha_const", [("int16", True), ("int8", False)])
def test_int16_prelu_alpha_other_than_constant_int8_is_one_line(alpha_type, alpha_const, tmp_path):
    """TFLite's 16x8 PRELU reads alpha as int8 (an int16 alpha's bytes as int8 values)."""
    from tinybuild.pipeline import generate
    path = tmp_path / "m.tflite"
    path.write_bytes(prelu_model(qa=(0.01, 0), dtype="int16", alpha_type=alpha_type,
                                 alpha_const=alpha_const))
    with pytest.raises(TinybuildError) as err:
        generate(path, tmp_path / "out", [])
    assert "reads alpha as int8" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
@pytest.mark.parametrize("op", BINARY[1:-1])
@SWEEP
@given(data=st.data())
def test_binary_sweep(op, data):
    check_or_refused(binary_model(**data.draw(binary_params(op))))


@pytest.mark.slow
@SWEEP
@given(div_params())
def test_div_sweep(params):
    check_or_refused(div_model(**params))


@pytest.mark.slow
@SWEEP
@given(prelu_params())
def test_prelu_sweep(params):
    check(prelu_model(**params), inputs=2)


# -- end to end and refusals ---------------------------------------------------------------

MODEL = Path(__file__).resolve().parents[1] / "data" / "elementwise_int8.tflite"


def test_keras_model_with_every_broadcast_form():
    """tests/data/make_elementwise.py's model: PRELU, MUL, SUB, SQUARED_DIFFERENCE,
    MAXIMUM, MINIMUM, ADD between conv, pooling and dense layers."""
    check(MODEL.read_bytes())


def one_op_graph(op, shapes, scales=((0.1,), (0.1,), (0.1,)), data=(None, None, None)) -> Graph:
    """A one-op graph for the lowering alone (no TFLite run)."""
    tensors = [Tensor(i, f"t{i}\x1b[31m", shape, "int8", s, (0,) * len(s), data=d)
               for i, (shape, s, d) in enumerate(zip(shapes, scales, data))]
    return Graph(name="one", tensors=tensors, operators=[Operator(0, op, [0, 1], [2], {})],
                 inputs=[i for i in (0, 1) if data[i] is None], outputs=[2])


@pytest.mark.parametrize("op, shapes, data, why", [
    ("MAXIMUM", [(1, 2, 1, 2, 1, 2)] * 3, (None,) * 3,
     "first input of rank 6 (TFLite's reference MAXIMUM handles rank 5 at most)"),
    ("PRELU", [(1, 4), (3, 4), (3, 4)], (None,) * 3, "alpha 3x4 broadcasts the input 1x4"),
    ("SUB", [(1, 4, 3), (1, 2, 3), (1, 4, 3)], (None,) * 3, "shapes 1x4x3 and 1x2x3 do not broadcast"),
    ("MUL", [(1, 4, 3), (3,), (1, 4, 4)], (None,) * 3, "output shape 1x4x4 is not the broadcast"),
    ("DIV", [(1, 4), (4,), (1, 4)], (None, np.full(4, 1, np.int8), None), "left shift"),
])
def test_refused_in_one_line(op, shapes, data, why):
    scales = ((0.1,), (0.1,), (1e-9,)) if op == "DIV" else ((0.1,),) * 3
    with pytest.raises(TinybuildError) as info:
        lower_graph(one_op_graph(op, shapes, scales, data))
    message = str(info.value)
    assert why in message and f"unsupported {op} at layer 0" in message, message
    assert "\n" not in message and "\x1b" not in message      # the tensor name is escaped


def test_per_channel_operand_refused():
    with pytest.raises(TinybuildError, match="per channel"):
        lower_graph(one_op_graph("MUL", [(1, 2), (1, 2), (1, 2)], ((0.1, 0.2), (0.1,), (0.1,))))
