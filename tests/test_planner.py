"""The memory planner: live tensors never share bytes; the bound is honest."""
import numpy as np
from hypothesis import given, settings, strategies as st

from tinybuild.graph import Graph, Operator, Tensor
from tinybuild.planner import ALIGNMENT, buffers_with_lifetimes, lower_bound, plan_memory
from tbtest import mlperf_model
from tinybuild.importer import load_graph


def _graph(sizes, edges, reshape_at=()):
    """A graph whose op i reads the tensors in edges[i] and writes tensor i+1."""
    tensors = [Tensor(i, f"t{i}", (1, s), "int8") for i, s in enumerate(sizes)]
    ops = [Operator(i, "RESHAPE" if i in reshape_at else "ADD", ins, [i + 1])
           for i, ins in enumerate(edges)]
    return Graph("g", tensors, ops, [0], [len(sizes) - 1])


@st.composite
def dags(draw):
    n = draw(st.integers(2, 12))
    sizes = [draw(st.integers(1, 5000)) for _ in range(n)]
    edges = [sorted(set(draw(st.lists(st.integers(0, i), min_size=1, max_size=3)))) for i in range(n - 1)]
    return sizes, edges


def _assert_no_overlap(graph, plan):
    bufs = buffers_with_lifetimes(graph)
    for b in bufs:
        b.offset = plan.offsets[b.tensors[0]]
        assert b.offset % ALIGNMENT == 0
        assert b.offset + b.size <= plan.arena_size
    for i, a in enumerate(bufs):
        for b in bufs[i + 1:]:
            if a.overlaps_in_time(b):
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (a, b)


@settings(max_examples=200, deadline=None)
@given(dags())
def test_live_tensors_never_overlap(dag):
    graph = _graph(*dag)
    plan = plan_memory(graph)
    _assert_no_overlap(graph, plan)
    assert plan.lower_bound <= plan.arena_size


def test_chain_reuses_memory_at_the_bound():
    # a -> b -> c -> d: only two tensors are ever live at once.
    graph = _graph([1000, 2000, 1000, 500], [[0], [1], [2]])
    plan = plan_memory(graph)
    assert plan.lower_bound == 3000       # 1000 + 2000
    assert plan.arena_size == 3008        # 2000 at 0, 1000 at 2000, rounded to 16
    assert plan.offsets[3] == 0           # d reuses b's bytes once b is dead


def test_reshape_aliases_its_input():
    graph = _graph([64, 64, 16], [[0], [1]], reshape_at={0})
    plan = plan_memory(graph)
    assert plan.offsets[0] == plan.offsets[1]


def test_planner_can_detect_overlap():
    """The overlap check itself fails on a plan that stacks two live tensors."""
    graph = _graph([100, 100, 100], [[0], [0, 1]])
    plan = plan_memory(graph)
    plan.offsets[1] = plan.offsets[0]
    try:
        _assert_no_overlap(graph, plan)
    except AssertionError:
        return
    raise AssertionError("overlapping plan was not detected")


def test_mlperf_kws_arena_is_at_its_lower_bound():
    graph = load_graph(mlperf_model("kws_ref_model.tflite"))
    plan = plan_memory(graph)
    _assert_no_overlap(graph, plan)
    assert plan.arena_size == plan.lower_bound == 16000
