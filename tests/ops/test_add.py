"""ADD (tinybuild/ops/add.py) against TFLite's reference kernels: same shapes
(the form the target kernels take), every broadcast form and constant operands
(shared with the elementwise family: tests/ops/test_elementwise.py)."""
import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, check
from test_elementwise import (binary_model, binary_params, cases, check_or_refused, typed_cases,
                              typed_params)
from tflite_builder import ModelBuilder

from tinybuild.errors import TinybuildError
from tinybuild.graph import Graph, Operator, Tensor
from tinybuild.lower import lower_graph


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
    *cases("ADD"),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_add(case):
    check(case)


TYPED_CASES = typed_cases("ADD", "float32") + typed_cases("ADD", "int16") + [
    Case("ADD int16 general path, output scale below the inputs'", lambda: binary_model(
        "ADD", (1, 5, 3), (1, 5, 3), (0.004, 0), (0.0007, 0), (0.0001, 0), dtype="int16", pot=False)),
    Case("ADD int16 power-of-two scales broadcast: general path", lambda: binary_model(
        "ADD", (1, 4, 3), (3,), (1 / 1024, 0), (1 / 1024, 0), (1 / 512, 0), dtype="int16", pot=False)),
]


@pytest.mark.parametrize("case", TYPED_CASES, ids=str)
def test_add_typed(case):
    check(case)


@FAST
@given(st.sampled_from(["float32", "int16"]), st.data())
def test_add_typed_property(dtype, data):
    check(binary_model(**data.draw(typed_params("ADD", dtype))), inputs=2)


def test_int16_power_of_two_broadcast_is_refused_in_one_line():
    """TFLite's power-of-two int16 ADD kernel takes equal shapes only."""
    from tinybuild.importer import load_graph
    import tempfile
    from pathlib import Path
    model = binary_model("ADD", (1, 4, 3), (3,), (1 / 1024, 0), (1 / 1024, 0), (1 / 512, 0),
                         dtype="int16", pot=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.tflite"
        path.write_bytes(model)
        with pytest.raises(TinybuildError) as info:
            lower_graph(load_graph(path))
    assert "int16 power-of-two path" in str(info.value) and "\n" not in str(info.value)


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


@FAST
@given(binary_params("ADD"))
def test_add_broadcast_property(params):
    check_or_refused(binary_model(**params))


@pytest.mark.slow
@SWEEP
@given(add_params())
def test_add_sweep(params):
    check(add_model(**params), inputs=2)


@pytest.mark.slow
@SWEEP
@given(binary_params("ADD"))
def test_add_broadcast_sweep(params):
    check_or_refused(binary_model(**params))


def graph_of(s1, s2, out, const=None) -> Graph:
    """An ADD graph for the lowering alone (no TFLite run)."""
    import numpy as np
    t = lambda i, shape: Tensor(i, f"t{i}", shape, "int8", (0.1,), (0,),  # noqa: E731
                                data=np.zeros(shape, np.int8) if i == const else None)
    tensors = [t(0, s1), t(1, s2), t(2, out)]
    return Graph(name="add", tensors=tensors, operators=[Operator(0, "ADD", [0, 1], [2], {})],
                 inputs=[i for i in (0, 1) if i != const], outputs=[2])


def test_same_shape_add_keeps_the_target_kernels_form():
    """Two same-shape activations: params without 'shape' (the cortex-m4 and
    riscv ADD kernels accept only those); broadcast and constant forms have it."""
    same, = lower_graph(graph_of((1, 4, 3), (1, 4, 3), (1, 4, 3)))
    bcast, = lower_graph(graph_of((1, 4, 3), (3,), (1, 4, 3)))
    const, = lower_graph(graph_of((1, 4, 3), (1, 4, 3), (1, 4, 3), const=0))
    assert "shape" not in same.params and same.params["size"] == 12
    assert bcast.params["shape"][0] == 1 and const.params["shape"][:2] == (0, 1)
    assert const.inputs == [1] and [c.role for c in const.consts] == ["input1"]


def test_shapes_that_do_not_broadcast_are_refused_in_one_line():
    with pytest.raises(TinybuildError) as info:
        lower_graph(graph_of((1, 4, 3), (1, 2, 3), (1, 4, 3)))
    assert "shapes 1x4x3 and 1x2x3 do not broadcast" in str(info.value)
    assert "\n" not in str(info.value)


def test_int16_scales_beyond_the_rescale_are_refused_in_one_line(tmp_path):
    """An output scale below twice the inputs' / 32768 needs a multiplier >= 1 on
    TFLite's general int16 path: one line, not an encoding error."""
    from tinybuild.pipeline import generate
    path = tmp_path / "m.tflite"
    path.write_bytes(binary_model("ADD", (1, 4), (1, 4), (1.0, 0), (1.0, 0), (1e-5, 0), dtype="int16",
                                  pot=False))
    with pytest.raises(TinybuildError) as info:
        generate(path, tmp_path / "out", [])
    assert "rescale multiplier >= 1" in str(info.value) and "\n" not in str(info.value)
