"""RESHAPE, SQUEEZE, EXPAND_DIMS (tinybuild/ops/reshape.py): views the planner
aliases, a copy otherwise, folded when their input is constant."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, build_host, check, rng_for
from tflite_builder import ModelBuilder
from tinybuild import codegen, kernel_registry, lower, planner
from tinybuild.host import run_host_model
from tinybuild.importer import load_graph


def reshape_model(in_shape=(1, 4, 4, 2), out_shape=(1, 32), dtype="int8") -> bytes:
    b = ModelBuilder()
    q = {"float32": (None, None), "int16": (0.05, 0)}.get(dtype, (0.05, 3))
    x = b.input(in_shape, dtype, *q)
    shape = b.const(np.array(out_shape, np.int32), "int32")
    y = b.tensor(out_shape, dtype, *q)
    b.op("RESHAPE", [x, shape], [y], b.options("ReshapeOptions", newShape=list(out_shape)))
    return b.build([y])


def conv_reshape_fc_model() -> bytes:
    """CONV_2D -> RESHAPE -> FULLY_CONNECTED whose weights are a constant RESHAPE (folded)."""
    rng = rng_for("conv_reshape_fc")
    b = ModelBuilder()
    x = b.input((1, 4, 4, 2), "int8", 0.05, 0)
    w = b.const(rng.integers(-127, 128, (3, 1, 1, 2)), "int8", [0.02] * 3, [0] * 3)
    bias = b.const(np.zeros(3, np.int32), "int32", [0.001] * 3, [0] * 3)
    c = b.tensor((1, 4, 4, 3), "int8", 0.1, -4)
    b.op("CONV_2D", [x, w, bias], [c], b.options("Conv2DOptions", padding="SAME", strideH=1, strideW=1),
         version=3)
    flat = b.tensor((1, 48), "int8", 0.1, -4)
    b.op("RESHAPE", [c, b.const(np.array([1, 48], np.int32), "int32")], [flat])
    raw = b.const(rng.integers(-127, 128, (5, 6, 8)), "int8", 0.01, 0)
    fc_w = b.tensor((5, 48), "int8", 0.01, 0)
    b.op("RESHAPE", [raw, b.const(np.array([5, 48], np.int32), "int32")], [fc_w])
    y = b.tensor((1, 5), "int8", 0.2, 1)
    b.op("FULLY_CONNECTED", [flat, fc_w, -1], [y], b.options("FullyConnectedOptions"), version=4)
    return b.build([y])


def squeeze_expand_model(shape=(1, 3, 1, 4), squeeze_dims=(2,), axis=-1, dtype="int8") -> bytes:
    """EXPAND_DIMS then SQUEEZE, then a TRANSPOSE reading the view (a real consumer)."""
    b = ModelBuilder()
    q = {"float32": (None, None), "int16": (0.05, 0)}.get(dtype, (0.05, 3))
    x = b.input(shape, dtype, *q)
    a = axis % (len(shape) + 1)
    expanded = [*shape[:a], 1, *shape[a:]]
    e = b.tensor(expanded, dtype, *q)
    b.op("EXPAND_DIMS", [x, b.const(np.array(axis, np.int32), "int32")], [e])
    dims = [d % len(expanded) for d in squeeze_dims] or [i for i, d in enumerate(expanded) if d == 1]
    squeezed = [d for i, d in enumerate(expanded) if i not in dims]
    s = b.tensor(squeezed, dtype, *q)
    b.op("SQUEEZE", [e], [s], b.options("SqueezeOptions", squeezeDims=list(squeeze_dims)))
    y = b.tensor(squeezed[::-1], dtype, *q)
    b.op("TRANSPOSE", [s, b.const(np.arange(len(squeezed))[::-1].astype(np.int32), "int32")], [y])
    return b.build([y])


CASES = [
    Case("EXPAND_DIMS then SQUEEZE (views)", lambda: squeeze_expand_model()),
    Case("SQUEEZE of every size-1 dim, float32", lambda: squeeze_expand_model((1, 5, 1), (), 0, "float32")),
    Case("RESHAPE 4-D to 2-D (the output aliases the input)", lambda: reshape_model()),
    Case("RESHAPE float32", lambda: reshape_model((1, 6), (1, 2, 3), "float32")),
    Case("RESHAPE int16", lambda: reshape_model((1, 2, 6), (1, 12), "int16")),
    Case("EXPAND_DIMS then SQUEEZE, int16", lambda: squeeze_expand_model((1, 3, 1, 4), (3,), 1, "int16")),
    Case("RESHAPE between layers, constant RESHAPE folded", conv_reshape_fc_model),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_reshape(case):
    check(case)


def test_constant_reshape_is_folded_and_views_cost_no_copy(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(conv_reshape_fc_model())
    graph = load_graph(path)
    layers = lower.lower_graph(graph)
    assert [l.op for l in layers] == ["CONV_2D", "RESHAPE", "FULLY_CONNECTED"]   # one RESHAPE folded
    assert [l.op_index for l in layers] == [0, 1, 3] and [l.index for l in layers] == [0, 1, 2]
    plan = planner.plan_memory(graph, kernel_registry.select_kernels(layers, []))
    model_c, _ = codegen.generate(graph, layers, plan, "test")
    assert layers[1].aliased and "tb_copy(" not in model_c


def test_a_view_the_planner_keeps_apart_is_copied(tmp_path):
    """tb_copy in the call convention: move the output away from its input by hand."""
    path = tmp_path / "m.tflite"
    path.write_bytes(reshape_model((1, 3, 5, 2), (1, 30)))
    graph = load_graph(path)
    layers = kernel_registry.select_kernels(lower.lower_graph(graph), [])
    plan = planner.plan_memory(graph, layers)
    out = graph.outputs[0]
    plan.offsets[out] = plan.arena_size
    plan.arena_size += 32
    codegen.write_model(tmp_path, graph, layers, plan, "test")
    assert "tb_copy(&tb_L0_params, (const int8_t *)(tb_arena + 0), (int8_t *)(tb_arena + " \
        in (tmp_path / "model.c").read_text()
    data = bytes(range(30))
    assert run_host_model(build_host(tmp_path), data) == data


def test_squeeze_and_expand_dims_cost_no_copy(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(squeeze_expand_model())
    graph = load_graph(path)
    layers = kernel_registry.select_kernels(lower.lower_graph(graph), [])
    plan = planner.plan_memory(graph, layers)
    model_c, _ = codegen.generate(graph, layers, plan, "test")
    assert [l.op for l in layers] == ["EXPAND_DIMS", "SQUEEZE", "TRANSPOSE"]
    assert layers[0].aliased and layers[1].aliased and "tb_copy(" not in model_c
    assert len({plan.offsets[t] for t in (graph.inputs[0], layers[0].output, layers[1].output)}) == 1


@st.composite
def squeeze_expand_params(draw):
    shape = tuple(draw(st.lists(st.sampled_from([1, 1, 2, 3]), max_size=3))) + (2,)  # never a scalar
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    expanded = list(shape)
    expanded.insert(axis % (len(shape) + 1), 1)
    ones = [i for i, d in enumerate(expanded) if d == 1]
    chosen = draw(st.lists(st.sampled_from(ones), unique=True, max_size=len(ones)))
    negative = [d - len(expanded) if draw(st.booleans()) else d for d in chosen]
    return dict(shape=shape, squeeze_dims=tuple(negative), axis=axis,
                dtype=draw(st.sampled_from(["int8", "int16", "float32"])))


@FAST
@given(squeeze_expand_params())
def test_squeeze_expand_property(params):
    check(squeeze_expand_model(**params), inputs=2)


@pytest.mark.slow
@SWEEP
@given(squeeze_expand_params())
def test_squeeze_expand_sweep(params):
    check(squeeze_expand_model(**params), inputs=2)
