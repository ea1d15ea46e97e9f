"""MEAN, SUM, REDUCE_MAX, REDUCE_MIN, ARG_MAX, ARG_MIN (tinybuild/ops/reduce.py)
against TFLite's reference kernels."""
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, check
from tflite_builder import ModelBuilder
from tinybuild.errors import TinybuildError


def out_shape(shape, axes, keep_dims):
    rank = len(shape)
    reduced = {a % rank for a in axes}
    if keep_dims:
        return tuple(1 if d in reduced else s for d, s in enumerate(shape))
    return tuple(s for d, s in enumerate(shape) if d not in reduced)


def reduce_model(op="MEAN", shape=(1, 4, 5, 3), axes=(1, 2), keep_dims=True, qi=(0.05, -3),
                 qo=(0.05, -3), dtype="int8") -> bytes:
    """One reduction in ``dtype``: int8, int16 (the scales / 256, zero points 0) or float32."""
    if dtype != "int8":
        qi, qo = ((qi[0] / 256, 0), (qo[0] / 256, 0)) if dtype == "int16" else ((None,), (None,))
    b = ModelBuilder()
    x = b.input(shape, dtype, *qi)
    a = b.const(np.array(axes, np.int32), "int32")
    y = b.tensor(out_shape(shape, axes, keep_dims), dtype, *qo)
    b.op(op, [x, a], [y], b.options("ReducerOptions", keepDims=keep_dims), version=2)
    return b.build([y])


def arg_model(op="ARG_MAX", shape=(1, 6, 5), axis=-1, out="int32", q=(0.1, 3)) -> bytes:
    b = ModelBuilder()
    x = b.input(shape, "int8", *q)
    a = b.const(np.array([axis], np.int32), "int32")
    y = b.tensor(out_shape(shape, [axis], False), out)
    table = "ArgMaxOptions" if op == "ARG_MAX" else "ArgMinOptions"
    b.op(op, [x, a], [y], b.options(table, outputType={"int32": 2, "int64": 4}[out]), version=2)
    return b.build([y])


DIFFERENT = dict(qi=(0.05, -3), qo=(0.02, 10))
CASES = [
    Case("MEAN 4-D over H,W keep_dims", lambda: reduce_model(**DIFFERENT)),
    Case("MEAN axis [2, 1] keep_dims, large rescale", lambda: reduce_model(
        axes=(2, 1), qi=(0.5, 100), qo=(0.004, -120))),
    Case("MEAN over H,W without keep_dims", lambda: reduce_model(keep_dims=False, **DIFFERENT)),
    Case("MEAN negative axes [-3, -2] keep_dims", lambda: reduce_model(axes=(-3, -2), **DIFFERENT)),
    Case("MEAN same quantization", lambda: reduce_model(axes=(1,), keep_dims=False)),
    Case("MEAN 4-D over H,W same quantization keep_dims", lambda: reduce_model()),
    Case("MEAN rank 5 axes 1 and 3", lambda: reduce_model(shape=(2, 3, 2, 4, 3), axes=(1, 3), **DIFFERENT)),
    Case("MEAN rank 1 all", lambda: reduce_model(shape=(17,), axes=(0,), keep_dims=False, **DIFFERENT)),
    Case("MEAN repeated axis", lambda: reduce_model(shape=(3, 4, 5), axes=(2, -1, 0), **DIFFERENT)),
    Case("SUM same quantization", lambda: reduce_model("SUM", axes=(2,))),
    Case("SUM rescaled", lambda: reduce_model("SUM", shape=(1, 3, 7), axes=(-1,), keep_dims=False,
                                              qi=(0.01, 5), qo=(0.2, -7))),
    Case("SUM rescaled, saturating range", lambda: reduce_model("SUM", shape=(1, 16, 8), axes=(1, 2),
                                                                qi=(0.05, -100), qo=(0.05, 0))),
    Case("REDUCE_MAX over channels", lambda: reduce_model("REDUCE_MAX", axes=(3,), keep_dims=False)),
    Case("REDUCE_MAX all axes", lambda: reduce_model("REDUCE_MAX", axes=(0, 1, 2, 3))),
    Case("REDUCE_MIN axes 0,2 of 3-D", lambda: reduce_model("REDUCE_MIN", shape=(3, 4, 5), axes=(0, 2))),
] + [
    Case(f"{dtype} {name}", lambda model=model, dtype=dtype: model(dtype))
    for dtype in ("float32", "int16")
    for name, model in [
        ("MEAN 4-D over H,W keep_dims", lambda t: reduce_model(dtype=t, **DIFFERENT)),
        ("MEAN rank 5 axes 1 and 3", lambda t: reduce_model(shape=(2, 3, 2, 4, 3), axes=(1, 3),
                                                            dtype=t, **DIFFERENT)),
        ("MEAN repeated axis", lambda t: reduce_model(shape=(3, 4, 5), axes=(2, -1, 0), dtype=t)),
        ("REDUCE_MAX over channels", lambda t: reduce_model("REDUCE_MAX", axes=(3,),
                                                            keep_dims=False, dtype=t)),
        ("REDUCE_MIN axes 0,2 of 3-D", lambda t: reduce_model("REDUCE_MIN", shape=(3, 4, 5),
                                                              axes=(0, 2), dtype=t)),
    ]
] + [
    Case("float SUM over the last axis", lambda: reduce_model(
        "SUM", shape=(1, 3, 7), axes=(-1,), keep_dims=False, dtype="float32")),
    Case("float SUM rank 5 axes 0, 2, 4", lambda: reduce_model(
        "SUM", shape=(2, 3, 2, 4, 3), axes=(0, 2, 4), dtype="float32")),
] + [
    Case("ARG_MAX last axis int32", lambda: arg_model()),
    Case("ARG_MAX axis 1 int64", lambda: arg_model(shape=(1, 7, 3, 2), axis=1, out="int64")),
    Case("ARG_MIN axis -2", lambda: arg_model("ARG_MIN", shape=(2, 9, 4), axis=-2)),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_reduce(case):
    check(case)


def test_arg_max_ties_take_the_first_index():
    # int8 inputs span the full range, so a 1-value axis of 300 has many ties
    check(arg_model(shape=(1, 300), axis=1, q=(1.0, 0)), inputs=3)


def test_empty_axis_list_is_refused_in_one_line():
    from tinybuild import importer, lower
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.tflite"
        path.write_bytes(reduce_model(shape=(2, 3), axes=()))
        with pytest.raises(TinybuildError, match="unsupported MEAN at layer 0 .*an empty axis list"):
            lower.lower_graph(importer.load_graph(path))


def test_reduce_max_with_requantization_is_refused():
    from tinybuild.graph import Graph, Operator, Tensor
    from tinybuild.ops.reduce import lower_reduce
    t = [Tensor(0, "in", (1, 4), "int8", (0.1,), (0,)), Tensor(1, "ax", (1,), "int32", data=np.array([1])),
         Tensor(2, "out\x1b[31m", (1,), "int8", (0.2,), (0,))]
    op = Operator(0, "REDUCE_MAX", [0, 1], [2], {"KeepDims": False})
    with pytest.raises(TinybuildError, match="quantization differ"):
        lower_reduce(Graph("g", t, [op], [0], [2]), op)


def batch_one(shape: list) -> tuple:
    """tinybuild compiles 4-D activations of batch 1 only: rank 4 and 5 shapes
    start with 1s (a 5-D input may lose its first axis to a 4-D output)."""
    lead = {4: 1, 5: 2}.get(len(shape), 0)
    return tuple([1] * lead + shape[lead:])


def test_int16_sum_is_refused_in_one_line():
    """TF 2.21's reference int16 SUM gives outputs that are not the sum (probed: it sums
    the int16 tensor's bytes as uint8 and fills only the first half of the output)."""
    from tinybuild import importer, lower
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.tflite"
        path.write_bytes(reduce_model("SUM", shape=(1, 3, 7), axes=(-1,), dtype="int16"))
        with pytest.raises(TinybuildError, match="unsupported SUM at layer 0 .*int16 SUM") as info:
            lower.lower_graph(importer.load_graph(path))
    assert "\n" not in str(info.value)


@st.composite
def reduce_params(draw, op, dtype="int8"):
    rank = draw(st.integers(1, 5))
    shape = batch_one(draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank)))
    axes = draw(st.lists(st.integers(-rank, rank - 1), min_size=1, max_size=rank))
    q = lambda: (draw(st.floats(0.005, 1.0)), draw(st.integers(-128, 127)))  # noqa: E731
    qi = q()
    qo = qi if op.startswith("REDUCE") or draw(st.booleans()) else q()
    return dict(op=op, shape=shape, axes=tuple(axes), keep_dims=draw(st.booleans()), qi=qi, qo=qo,
                dtype=dtype)


@st.composite
def hw_mean_params(draw):
    shape = (1, draw(st.integers(1, 9)), draw(st.integers(1, 9)), draw(st.integers(1, 5)))
    q = lambda: (draw(st.floats(0.005, 1.0)), draw(st.integers(-128, 127)))  # noqa: E731
    return dict(shape=shape, axes=draw(st.sampled_from([(1, 2), (2, 1)])), qi=q(), qo=q())


@st.composite
def arg_params(draw, op):
    rank = draw(st.integers(1, 4))
    shape = batch_one(draw(st.lists(st.integers(1, 6), min_size=rank, max_size=rank)))
    return dict(op=op, shape=shape, axis=draw(st.integers(-rank, rank - 1)),
                out=draw(st.sampled_from(["int32", "int64"])))


@FAST
@given(reduce_params("MEAN"))
def test_mean_property(params):
    check(reduce_model(**params), inputs=2)


@FAST
@given(hw_mean_params())
def test_mean_hw_property(params):
    check(reduce_model(**params), inputs=2)


@FAST
@given(reduce_params("SUM"))
def test_sum_property(params):
    check(reduce_model(**params), inputs=2)


@FAST
@given(reduce_params("REDUCE_MAX"))
def test_reduce_max_property(params):
    check(reduce_model(**params), inputs=2)


@FAST
@given(reduce_params("REDUCE_MIN"))
def test_reduce_min_property(params):
    check(reduce_model(**params), inputs=2)


@FAST
@given(st.sampled_from(["MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"]).flatmap(
    lambda op: reduce_params(op, "float32")))
def test_reduce_float_property(params):
    check(reduce_model(**params), inputs=2)


@FAST
@given(st.sampled_from(["MEAN", "REDUCE_MAX", "REDUCE_MIN"]).flatmap(
    lambda op: reduce_params(op, "int16")))
def test_reduce_int16_property(params):
    check(reduce_model(**params), inputs=2)


@FAST
@given(arg_params("ARG_MAX"))
def test_arg_max_property(params):
    check(arg_model(**params), inputs=2)


@FAST
@given(arg_params("ARG_MIN"))
def test_arg_min_property(params):
    check(arg_model(**params), inputs=2)


@pytest.mark.slow
@SWEEP
@given(st.sampled_from(["MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"]).flatmap(reduce_params))
def test_reduce_sweep(params):
    check(reduce_model(**params), inputs=2)


@pytest.mark.slow
@SWEEP
@given(hw_mean_params())
def test_mean_hw_sweep(params):
    check(reduce_model(**params), inputs=2)


@pytest.mark.slow
@SWEEP
@given(st.sampled_from(["ARG_MAX", "ARG_MIN"]).flatmap(arg_params))
def test_arg_sweep(params):
    check(arg_model(**params), inputs=2)


MODEL = Path(__file__).resolve().parents[1] / "data" / "reduce_resize_int8.tflite"


def test_keras_model_with_the_family():
    """tests/data/make_reduce_resize.py's model: TRANSPOSE_CONV, RESIZE_BILINEAR,
    RESIZE_NEAREST_NEIGHBOR, MEAN, two BATCH_MATMULs (attention), REDUCE_MAX, SUM
    between conv, softmax and dense layers."""
    check(MODEL.read_bytes())
