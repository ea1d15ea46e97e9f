"""Data movement (tinybuild/ops/movement.py, gather.py) against TFLite's reference
kernels: PAD, PADV2, CONCATENATION, SPLIT, SPLIT_V, PACK, UNPACK, STRIDED_SLICE,
SLICE, TRANSPOSE, FILL, GATHER; SHAPE and constant chains folded at build time."""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, check, rng_for
from tflite_builder import ModelBuilder

Q = (0.05, 3)


def quant(dtype, q=Q):
    if dtype == "int16":
        return q[0], 0                      # TFLite's int16 is symmetric
    return q if dtype in ("int8", "uint8") else (None, None)


def one_op(op, in_shapes, out_shapes, consts=(), options=None, dtype="int8", version=1,
           const_inputs=()) -> bytes:
    """``op`` over activation inputs of ``in_shapes`` (or constants from
    ``const_inputs``: position -> array) then ``consts`` (int32 arrays or tensors
    given as (array, dtype)), with outputs of ``out_shapes``."""
    b = ModelBuilder()
    q = quant(dtype)
    ins = []
    for k, shape in enumerate(in_shapes):
        if k in dict(const_inputs):
            ins.append(b.const(np.asarray(dict(const_inputs)[k]).reshape(shape), dtype, *q))
        else:
            ins.append(b.input(shape, dtype, *q))
    for c in consts:
        data, ctype = c if isinstance(c, tuple) else (c, "int32")
        ins.append(b.const(np.asarray(data), ctype, *(quant(ctype) if ctype != "int32" else ())))
    outs = [b.tensor(s, dtype, *q) for s in out_shapes]
    b.op(op, ins, outs, options and b.options(*options[:1], **options[1]), version=version)
    return b.build(outs)


def pad_model(shape=(1, 3, 4, 2), paddings=((0, 0), (1, 2), (0, 1), (0, 0)), dtype="int8",
              value=None) -> bytes:
    out = [d + a + b for d, (a, b) in zip(shape, paddings)]
    consts = [np.array(paddings, np.int32)]
    if value is not None:
        consts.append((np.array(value, dtype), dtype))
    return one_op("PADV2" if value is not None else "PAD", [shape], [out], consts, dtype=dtype)


def concat_model(shapes, axis, dtype="int8", const_inputs=()) -> bytes:
    rank = len(shapes[0])
    a = axis % rank
    out = list(shapes[0])
    out[a] = sum(s[a] for s in shapes)
    return one_op("CONCATENATION", shapes, [out], (), ("ConcatenationOptions", {"axis": axis}),
                  dtype, const_inputs=const_inputs)


def self_concat_model() -> bytes:
    """One tensor concatenated with itself, then packed with itself."""
    b = ModelBuilder()
    x = b.input((2, 3), "int8", *Q)
    y = b.tensor((2, 6), "int8", *Q)
    b.op("CONCATENATION", [x, x], [y], b.options("ConcatenationOptions", axis=1))
    z = b.tensor((2, 2, 6), "int8", *Q)
    b.op("PACK", [y, y], [z], b.options("PackOptions", valuesCount=2, axis=1), version=2)
    return b.build([z])


def split_model(shape, axis, parts, dtype="int8") -> bytes:
    b = ModelBuilder()
    q = quant(dtype)
    x = b.input(shape, dtype, *q)
    a = axis % len(shape)
    out = list(shape)
    out[a] //= parts
    outs = [b.tensor(out, dtype, *q) for _ in range(parts)]
    b.op("SPLIT", [b.const(np.array(axis, np.int32), "int32"), x], outs,
         b.options("SplitOptions", numSplits=parts))
    return b.build(outs)


def split_v_model(shape, axis, sizes, dtype="int8") -> bytes:
    a = axis % len(shape)
    real = [s if s >= 0 else shape[a] - (sum(sizes) + 1) for s in sizes]
    outs = [[*shape[:a], n, *shape[a + 1:]] for n in real]
    return one_op("SPLIT_V", [shape], outs, [np.array(sizes, np.int32), np.array(axis, np.int32)],
                  ("SplitVOptions", {"numSplits": len(sizes)}), dtype, version=2)


def pack_model(shape, count, axis, dtype="int8") -> bytes:
    a = axis % (len(shape) + 1)
    out = [*shape[:a], count, *shape[a:]]
    return one_op("PACK", [shape] * count, [out], (), ("PackOptions", {"valuesCount": count, "axis": axis}),
                  dtype, version=2)


def unpack_model(shape, axis, dtype="int8") -> bytes:
    a = axis % len(shape)
    out = [*shape[:a], *shape[a + 1:]]
    return one_op("UNPACK", [shape], [out] * shape[a], (), ("UnpackOptions", {"num": shape[a], "axis": axis}),
                  dtype, version=2)


def transpose_model(shape, perm, dtype="int8") -> bytes:
    out = [shape[p] for p in perm]
    return one_op("TRANSPOSE", [shape], [out], [np.array(perm, np.int32)], dtype=dtype,
                  version=6 if len(shape) > 4 else 2)


def slice_model(shape, begin, size, dtype="int8") -> bytes:
    out = [d - b if s == -1 else s for d, b, s in zip(shape, begin, size)]
    return one_op("SLICE", [shape], [out], [np.array(begin, np.int32), np.array(size, np.int32)],
                  dtype=dtype, version=2)


def strided_model(shape, begin, end, strides, masks=(0, 0, 0, 0, 0), offset=False, dtype="int8") -> bytes:
    """The output shape from numpy's own slicing of the same index (checked by TFLite)."""
    import tensorflow as tf
    out = tf.strided_slice(np.zeros(shape, np.int8), begin, end, strides, *masks).shape if not offset \
        else None
    if offset:
        out = tf.strided_slice(np.zeros(shape, np.int8), begin, [b + e for b, e in zip(begin, end)],
                               strides, *masks).shape
    names = ("beginMask", "endMask", "ellipsisMask", "newAxisMask", "shrinkAxisMask")
    opts = dict(zip(names, masks), offset=offset)
    return one_op("STRIDED_SLICE", [shape], [list(out)],
                  [np.array(begin, np.int32), np.array(end, np.int32), np.array(strides, np.int32)],
                  ("StridedSliceOptions", opts), dtype, version=4)   # BUILTIN_REF registers 1-4


def gather_model(shape, indices, axis=0, batch_dims=0, dtype="int8", index_type="int32",
                 const_params=False, runtime_indices=False) -> bytes:
    """GATHER of an input (or a constant table) by constant indices, or by
    indices the model takes as its last input (``runtime_indices``)."""
    b = ModelBuilder()
    q = quant(dtype)
    indices = np.asarray(indices)
    if const_params:
        x = b.const(rng_for("gather", shape).integers(-100, 100, shape), dtype, *q)
    else:
        x = b.input(shape, dtype, *q)
    a = axis % len(shape)
    out = [*shape[:a], *indices.shape[batch_dims:], *shape[a + 1:]]
    idx = b.input(indices.shape, index_type) if runtime_indices else b.const(indices, index_type)
    y = b.tensor(out, dtype, *q)
    b.op("GATHER", [x, idx], [y], b.options("GatherOptions", axis=axis, batchDims=batch_dims), version=5)
    return b.build([y])


def check_runtime_indices(model: bytes, axis_size: int, count=3) -> None:
    """Like harness.check, with valid run-time indices (TFLite refuses others)."""
    import tempfile
    from pathlib import Path
    from harness import first_difference, tinybuild_outputs
    from tinybuild.reference import io_record, make_inputs, reference_outputs
    with tempfile.TemporaryDirectory(prefix="tb-op-") as tmp:
        tflite = Path(tmp) / "model.tflite"
        tflite.write_bytes(model)
        record = io_record(tflite)
        data = []
        for k, raw in enumerate(make_inputs(tflite, count, 1)):
            idx_bytes, dtype = record["inputs"][-1]["bytes"], np.dtype(record["inputs"][-1]["dtype"])
            valid = rng_for("indices", k).integers(0, axis_size, idx_bytes // dtype.itemsize).astype(dtype)
            data.append(raw[:len(raw) - idx_bytes] + valid.tobytes())
        want = reference_outputs(tflite, data)
        got = tinybuild_outputs(tflite, data, Path(tmp) / "build")
        for i, (g, w) in enumerate(zip(got, want)):
            problem = first_difference(g, w, record["outputs"])
            assert problem is None, f"input {i}: {problem}"


CASES = [
    Case("PAD int8 H and W", lambda: pad_model()),
    Case("PAD rank 2 float32", lambda: pad_model((3, 5), ((2, 1), (0, 3)), "float32")),
    Case("PADV2 int8 value -7", lambda: pad_model((1, 2, 3, 4), ((0, 0), (1, 1), (2, 0), (0, 3)), value=-7)),
    Case("PAD rank 5 int16", lambda: pad_model((1, 2, 2, 2, 3), ((0, 1), (1, 0), (0, 0), (2, 2), (1, 1)),
                                               "int16")),
    Case("CONCATENATION channels", lambda: concat_model([(1, 2, 3, 4), (1, 2, 3, 1), (1, 2, 3, 5)], -1)),
    Case("CONCATENATION axis 1 int32", lambda: concat_model([(2, 3), (2, 4)], 1, "int32")),
    Case("CONCATENATION int64 with a constant", lambda: concat_model(
        [(2, 3), (2, 2)], -1, "int64", const_inputs=[(1, np.arange(4) - 2)])),
    Case("PAD int64", lambda: pad_model((2, 3), ((1, 0), (0, 2)), "int64")),
    Case("CONCATENATION axis 0 with a constant", lambda: concat_model(
        [(1, 4), (2, 4)], 0, const_inputs=[(1, np.arange(8) - 4)])),
    Case("CONCATENATION and PACK of one tensor with itself", self_concat_model),
    Case("SPLIT 3 ways on channels", lambda: split_model((1, 2, 2, 6), -1, 3)),
    Case("SPLIT_V with -1", lambda: split_v_model((1, 7, 3), 1, [2, -1, 1])),
    Case("PACK axis 1", lambda: pack_model((2, 3), 3, 1)),
    Case("PACK axis -1 float32", lambda: pack_model((2, 3), 2, -1, "float32")),
    Case("UNPACK axis 0", lambda: unpack_model((3, 2, 4), 0)),
    Case("UNPACK axis -1", lambda: unpack_model((2, 3, 4), -1)),
    Case("TRANSPOSE NHWC to NCHW", lambda: transpose_model((1, 3, 4, 5), (0, 3, 1, 2))),
    Case("TRANSPOSE rank 6", lambda: transpose_model((2, 1, 3, 2, 2, 3), (5, 3, 0, 4, 2, 1))),
    Case("SLICE with -1 size", lambda: slice_model((1, 5, 6, 3), (0, 1, 2, 1), (1, -1, 3, 2))),
    Case("STRIDED_SLICE masks", lambda: strided_model((1, 6, 8, 3), [0, 1, -1, 0], [1, 5, 0, 2],
                                                      [1, 2, -2, 1], (1, 0, 0, 0, 1))),
    Case("STRIDED_SLICE ellipsis and new axis", lambda: strided_model(
        (2, 5, 4), [0, 1, 0], [0, 4, 0], [1, 1, 1], (0, 0, 1, 4, 0))),
    Case("STRIDED_SLICE shrink with begin_mask (TFLite starts at 0)", lambda: strided_model(
        (2, 1, 1), [1, 0, 0], [0, 0, 0], [1, -3, -3], (1, 6, 0, 0, 1))),
    Case("STRIDED_SLICE offset", lambda: strided_model((4, 6), [1, 2], [2, 3], [1, 1], offset=True)),
    Case("GATHER axis 1 int64 indices", lambda: gather_model((2, 5, 3), [[4, 0], [1, 1]], 1,
                                                             index_type="int64")),
    Case("GATHER batch_dims 1", lambda: gather_model((2, 5, 3), [[4, 0, 2], [1, 1, 3]], 1, 1)),
]


# float32 and int16 (16x8) layers: the same byte moves, typed so that int8 plugin kernels
# never take them (test_layers_carry_their_element_type)
TYPED_CASES = [
    Case("CONCATENATION float32 channels", lambda: concat_model([(1, 2, 3, 4), (1, 2, 3, 1)], -1, "float32")),
    Case("CONCATENATION int16 axis 1 with a constant", lambda: concat_model(
        [(1, 2, 3), (1, 3, 3)], 1, "int16", const_inputs=[(1, np.arange(9) * 1000 - 4000)])),
    Case("SPLIT float32", lambda: split_model((1, 4, 6), -1, 2, "float32")),
    Case("SPLIT_V int16", lambda: split_v_model((1, 7, 3), 1, [2, -1, 1], "int16")),
    Case("PACK int16", lambda: pack_model((2, 3), 3, 0, "int16")),
    Case("UNPACK float32", lambda: unpack_model((2, 3, 4), 1, "float32")),
    Case("TRANSPOSE float32 NHWC to NCHW", lambda: transpose_model((1, 3, 4, 5), (0, 3, 1, 2), "float32")),
    Case("TRANSPOSE int16", lambda: transpose_model((2, 3, 4), (2, 0, 1), "int16")),
    Case("SLICE float32", lambda: slice_model((1, 5, 6, 3), (0, 1, 2, 1), (1, -1, 3, 2), "float32")),
    Case("STRIDED_SLICE int16 negative strides", lambda: strided_model(
        (1, 6, 8, 3), [0, 1, -1, 0], [1, 5, 0, 2], [1, 2, -2, 1], (1, 0, 0, 0, 1), dtype="int16")),
    Case("STRIDED_SLICE float32", lambda: strided_model((4, 6), [1, 0], [3, 6], [1, 2], dtype="float32")),
    Case("PADV2 float32 value -1.5", lambda: pad_model((1, 2, 3, 2), ((0, 0), (1, 1), (2, 0), (0, 1)),
                                                       "float32", value=-1.5)),
    Case("PADV2 int16 value", lambda: pad_model((1, 2, 3), ((0, 0), (1, 1), (2, 0)), "int16", value=-300)),
    Case("GATHER float32 axis 1", lambda: gather_model((2, 5, 3), [[4, 0], [1, 1]], 1, dtype="float32")),
    Case("GATHER int16", lambda: gather_model((6, 4), [5, 0, 2], 0, dtype="int16")),
]


@pytest.mark.parametrize("case", CASES + TYPED_CASES, ids=str)
def test_movement(case):
    check(case)


@pytest.mark.parametrize("dtype, expected", [("float32", "float32"), ("int16", "int16"),
                                             ("int8", "int8"), ("int32", "int8")])
def test_layers_carry_their_element_type(tmp_path, dtype, expected):
    """Layer.dtype picks the reference kernel and keeps int8 plugin kernels off
    float32/int16 layers; other element types (int32 shapes) stay "int8"."""
    from tinybuild.importer import load_graph
    from tinybuild.lower import lower_graph
    path = tmp_path / "m.tflite"
    path.write_bytes(concat_model([(1, 2, 3), (1, 2, 1)], -1, dtype))
    layer, = lower_graph(load_graph(path))
    assert layer.dtype == expected and layer.op == "CONCATENATION"


@pytest.mark.parametrize("const_params, index_type", [(False, "int32"), (True, "int32"), (True, "int64")],
                         ids=["params input", "constant table", "constant table, int64 indices"])
def test_gather_with_runtime_indices(const_params, index_type):
    check_runtime_indices(gather_model((10, 4), np.zeros((2, 3), np.int32), const_params=const_params,
                                       index_type=index_type, runtime_indices=True), 10)


# -- property tests: random shapes, parameters and types -------------------------------------

TYPES = st.sampled_from(["int8", "int8", "int16", "int32", "float32"])


def dims(rank_lo=1, rank_hi=4, lo=1, hi=4):
    return st.lists(st.integers(lo, hi), min_size=rank_lo, max_size=rank_hi).map(tuple)


@st.composite
def pads(draw):
    shape = draw(dims(1, 5))
    paddings = [(draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in shape]
    dtype = draw(TYPES)
    value = draw(st.one_of(st.none(), st.integers(-128, 127)))
    return dict(shape=shape, paddings=paddings, dtype=dtype, value=value)


@st.composite
def concats(draw):
    base = draw(dims(1, 5))
    axis = draw(st.integers(-len(base), len(base) - 1))
    shapes = []
    for _ in range(draw(st.integers(1, 4))):
        s = list(base)
        s[axis] = draw(st.integers(1, 4))
        shapes.append(tuple(s))
    return dict(shapes=shapes, axis=axis, dtype=draw(TYPES))


@st.composite
def splits(draw):
    base = list(draw(dims(1, 4)))
    axis = draw(st.integers(-len(base), len(base) - 1))
    parts = draw(st.integers(1, 3))
    base[axis] *= parts
    return dict(shape=tuple(base), axis=axis, parts=parts, dtype=draw(TYPES))


@st.composite
def split_vs(draw):
    shape = draw(dims(1, 4, 1, 6))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    left, sizes = shape[axis], []
    while left:
        n = draw(st.integers(0, left))
        sizes.append(n)
        left -= n
        if len(sizes) == 4:
            sizes[-1] += left
            break
    if draw(st.booleans()):
        sizes[draw(st.integers(0, len(sizes) - 1))] = -1
    return dict(shape=shape, axis=axis, sizes=sizes, dtype=draw(TYPES))


@st.composite
def packs(draw):
    shape = draw(dims(1, 4))
    return dict(shape=shape, count=draw(st.integers(1, 4)),
                axis=draw(st.integers(-len(shape) - 1, len(shape))), dtype=draw(TYPES))


@st.composite
def unpacks(draw):
    shape = draw(dims(1, 5))
    return dict(shape=shape, axis=draw(st.integers(-len(shape), len(shape) - 1)), dtype=draw(TYPES))


@st.composite
def transposes(draw):
    shape = draw(dims(1, 6, 1, 3))
    return dict(shape=shape, perm=draw(st.permutations(range(len(shape)))), dtype=draw(TYPES))


@st.composite
def slices(draw):
    shape = draw(dims(1, 5))
    begin = [draw(st.integers(0, d - 1)) for d in shape]
    size = [draw(st.sampled_from([-1, draw(st.integers(1, d - b))])) for d, b in zip(shape, begin)]
    return dict(shape=shape, begin=begin, size=size, dtype=draw(TYPES))


@st.composite
def strided_slices(draw):
    shape = draw(dims(1, 5, 1, 6))
    n = draw(st.integers(1, len(shape)))
    begin = [draw(st.integers(-7, 7)) for _ in range(n)]
    end = [draw(st.integers(-7, 7)) for _ in range(n)]
    strides = [draw(st.sampled_from([-3, -2, -1, 1, 1, 2, 3])) for _ in range(n)]
    mask = lambda: draw(st.integers(0, 2 ** n - 1))                # noqa: E731
    ellipsis = draw(st.sampled_from([0, 0, 1 << draw(st.integers(0, n - 1))]))
    new_axis = draw(st.sampled_from([0, 0, mask()]))
    shrink = draw(st.sampled_from([0, mask()]))
    masks = (mask(), mask(), ellipsis, new_axis, shrink)
    import tensorflow as tf
    from hypothesis import assume
    try:
        out = tf.strided_slice(np.zeros(shape, np.int8), begin, end, strides, *masks)
    except Exception:                   # what TensorFlow refuses is no test
        assume(False)
    assume(len(shape) + bin(new_axis).count("1") <= 5)   # TFLite's limit, added axes included
    return dict(shape=shape, begin=begin, end=end, strides=strides, masks=masks, dtype=draw(TYPES))


@st.composite
def gathers(draw):
    shape = draw(dims(1, 4))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    a = axis % len(shape)
    batch_dims = draw(st.integers(0, a))
    ishape = list(shape[:batch_dims]) + draw(st.lists(st.integers(1, 3), max_size=2))
    indices = np.array(draw(st.lists(st.integers(0, shape[a] - 1), min_size=int(np.prod(ishape)),
                                     max_size=int(np.prod(ishape))))).reshape(ishape)
    return dict(shape=shape, indices=indices, axis=axis, batch_dims=batch_dims, dtype=draw(TYPES),
                index_type=draw(st.sampled_from(["int32", "int64"])))


def fill_model(shape, dtype="int8") -> bytes:
    """FILL of a run-time scalar (a constant one folds)."""
    b = ModelBuilder()
    q = quant(dtype)
    value = b.input((), dtype, *q)
    y = b.tensor(shape, dtype, *q)
    b.op("FILL", [b.const(np.array(shape, np.int32), "int32"), value], [y], version=3)
    return b.build([y])


def shape_model(shape, out_type="int32") -> bytes:
    """SHAPE (folded) joined at run time with an input of its type."""
    b = ModelBuilder()
    x = b.input(shape, "int8", *Q)
    extra = b.input((2,), out_type)
    folded = b.tensor((len(shape),), out_type)
    b.op("SHAPE", [x], [folded], b.options("ShapeOptions", outType={"int32": 2, "int64": 4}[out_type]))
    y = b.tensor((len(shape) + 2,), out_type)
    b.op("CONCATENATION", [extra, folded], [y], b.options("ConcatenationOptions", axis=0))
    return b.build([y])


@st.composite
def fills(draw):
    return dict(shape=draw(dims(1, 4)), dtype=draw(TYPES))


@st.composite
def shapes(draw):
    return dict(shape=draw(dims(1, 5)), out_type=draw(st.sampled_from(["int32", "int64"])))


PROPERTIES = {
    "FILL": (fills(), fill_model),
    "SHAPE": (shapes(), shape_model),
    "PAD/PADV2": (pads(), pad_model),
    "CONCATENATION": (concats(), concat_model),
    "SPLIT": (splits(), split_model),
    "SPLIT_V": (split_vs(), split_v_model),
    "PACK": (packs(), pack_model),
    "UNPACK": (unpacks(), unpack_model),
    "TRANSPOSE": (transposes(), transpose_model),
    "SLICE": (slices(), slice_model),
    "STRIDED_SLICE": (strided_slices(), strided_model),
    "GATHER": (gathers(), gather_model),
}


def property_test(settings_, name):
    strategy, make = PROPERTIES[name]

    @settings_
    @given(strategy)
    def test(params):
        check(make(**params), inputs=2)
    return test


test_pad_property = property_test(FAST, "PAD/PADV2")
test_concatenation_property = property_test(FAST, "CONCATENATION")
test_split_property = property_test(FAST, "SPLIT")
test_split_v_property = property_test(FAST, "SPLIT_V")
test_pack_property = property_test(FAST, "PACK")
test_unpack_property = property_test(FAST, "UNPACK")
test_transpose_property = property_test(FAST, "TRANSPOSE")
test_slice_property = property_test(FAST, "SLICE")
test_strided_slice_property = property_test(FAST, "STRIDED_SLICE")
test_gather_property = property_test(FAST, "GATHER")
test_fill_property = property_test(FAST, "FILL")
test_shape_property = property_test(FAST, "SHAPE")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_movement_sweep(name):
    property_test(SWEEP, name)()


MODEL = Path(__file__).resolve().parents[1] / "data" / "movement_int8.tflite"


def test_keras_model_with_the_movement_ops():
    """tests/data/make_movement.py's model: SPLIT, TRANSPOSE, CONCATENATION, PAD,
    PADV2, STRIDED_SLICE, GATHER, UNPACK, PACK and a folded dynamic flatten."""
    check(MODEL.read_bytes(), inputs=4)
