"""Data movement: PAD, PADV2, CONCATENATION, SPLIT, SPLIT_V, PACK, UNPACK,
STRIDED_SLICE, SLICE, TRANSPOSE, FILL, SHAPE (and GATHER, tinybuild/ops/gather.py).

Each op is described once, as a :class:`Movement`: which source's elements go
where in which output, as numpy views of index arrays (``np.arange`` shaped
like each tensor). From that one description come

* the build-time fold (every input constant): the same copies on the real data;
* the kernel call: ``tb_move`` (tinybuild/kernels/movement.c) with one row per
  copy in a constant table (offsets, dims, source and destination strides,
  read straight off the views, negative and zero strides included), and a fill
  value for PAD.

Values are copied as they are (TFLite's reference kernels for these ops copy
bytes; none requantizes int8), so any element type works: 1, 2 or 4 bytes,
int64 as pairs of int32, int32 shape tensors included. SHAPE always folds (shapes are static).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import shown
from ..lower import Const, Layer
from . import KERNEL_DIR, Folded, OpDef, OptionField, Options, unsupported
from ._common import ACTIVATION

SOURCE = KERNEL_DIR / "movement.c"
MOVE_TYPES = ("int8", "uint8", "int16", "int32", "float32", "int64")
MAX_RANK = 6                      # the kernel's loop nest; TFLite's TRANSPOSE allows 6 too
ROW = 4 + 3 * MAX_RANK            # src, dst, src offset, dst offset, dims, src strides, dst strides


@dataclass
class Copy:
    """Elements of source ``src`` (an op input position) at ``src_view`` go to
    output ``dst`` at ``dst_view``; both are views of index arrays, same shape."""

    src: int
    dst: int
    src_view: np.ndarray
    dst_view: np.ndarray


@dataclass
class Movement:
    sources: list[int]                       # op input tensors the copies read
    outputs: list[int]
    copies: list[Copy] = field(default_factory=list)
    fill: object = None                      # output 0's value where no copy writes (PAD)


def index_array(shape) -> np.ndarray:
    """Element numbers of a row-major tensor of ``shape`` (views of it carry strides)."""
    return np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64).reshape(shape)


# -- shared checks --------------------------------------------------------------------------

def const_ints(graph, op, position: int, what: str) -> np.ndarray:
    """Input ``position`` as constant integers (shapes, axes, paddings)."""
    t = graph.tensor(op.inputs[position]) if position < len(op.inputs) else None
    if t is None or not t.is_constant:
        raise unsupported(op, f"{what} computed at run time (only constant {what} is compiled)")
    if t.dtype not in ("int32", "int64"):
        raise unsupported(op, f"{what} of type {t.dtype} (int32 or int64 expected)")
    return np.asarray(t.data, dtype=np.int64)


def axis_of(op, axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < max(rank, 1):
        raise unsupported(op, f"{what} {axis} outside a rank-{rank} tensor")
    return axis % max(rank, 1)


def shape_of(graph, t: int) -> tuple[int, ...]:
    return tuple(int(d) for d in graph.tensors[t].shape)


# -- the ops as movements -------------------------------------------------------------------

def pad(graph, op) -> Movement:
    x, y = op.inputs[0], op.outputs[0]
    shape = shape_of(graph, x)
    paddings = const_ints(graph, op, 1, "paddings")
    if paddings.shape != (len(shape), 2) or (paddings < 0).any():
        raise unsupported(op, f"paddings {paddings.tolist()} (one non-negative (before, after) pair "
                              f"per dimension of {list(shape)} expected)")
    out = index_array([d + int(a) + int(b) for d, (a, b) in zip(shape, paddings)])
    inner = out[tuple(slice(int(a), int(a) + d) for d, (a, _) in zip(shape, paddings))]
    return Movement([x], [y], [Copy(0, 0, index_array(shape), inner)], pad_value(graph, op))


def pad_value(graph, op):
    """PADV2's constant value, else 0 (the output's zero point for quantized types, as TFLite)."""
    y = graph.tensors[op.outputs[0]]
    if op.op == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        v = graph.tensors[op.inputs[2]]
        if not v.is_constant or v.data.size != 1:
            raise unsupported(op, "a padding value computed at run time or not a scalar")
        if v.dtype != y.dtype:
            raise unsupported(op, f"padding value of type {v.dtype} for a {y.dtype} tensor")
        return np.asarray(v.data).reshape(-1)[0]
    if y.dtype in ("int8", "uint8", "int16") and y.zero_points:
        return y.zero_point
    return 0


def concatenation(graph, op) -> Movement:
    y = op.outputs[0]
    rank = len(shape_of(graph, y))
    axis = axis_of(op, op.options.get("Axis", 0), rank)
    if op.options.get("FusedActivationFunction", "NONE") != "NONE":
        raise unsupported(op, f"fused {op.options['FusedActivationFunction']} (TFLite's "
                              "concatenation refuses fused activations too)")
    out, at, copies = index_array(shape_of(graph, y)), 0, []
    for k, t in enumerate(op.inputs):
        check_same_quantization(graph, op, t, y)
        n = shape_of(graph, t)[axis]
        where = [slice(None)] * rank
        where[axis] = slice(at, at + n)
        copies.append(Copy(k, 0, index_array(shape_of(graph, t)), out[tuple(where)]))
        at += n
    return Movement(list(op.inputs), [y], copies)


def check_same_quantization(graph, op, t: int, y: int) -> None:
    a, b = graph.tensors[t], graph.tensors[y]
    if a.dtype in ("int8", "uint8", "int16") and (a.scales[:1], a.zero_points[:1]) != \
            (b.scales[:1], b.zero_points[:1]):
        raise unsupported(op, f"input '{shown(a.name)}' quantized ({a.scale:g}, {a.zero_point}) unlike the "
                              f"output ({b.scale:g}, {b.zero_point}); only the same scale and zero point "
                              "is compiled (TFLite's int8 and int16 kernels require it too)")


def split_along(graph, op, x: int, axis: int, sizes: list[int]) -> Movement:
    shape = shape_of(graph, x)
    src, at, copies = index_array(shape), 0, []
    for j, (t, n) in enumerate(zip(op.outputs, sizes)):
        where = [slice(None)] * len(shape)
        where[axis] = slice(at, at + n)
        copies.append(Copy(0, j, src[tuple(where)], index_array(shape_of(graph, t))))
        at += n
    return Movement([x], list(op.outputs), copies)


def split(graph, op) -> Movement:
    x = op.inputs[1]
    shape = shape_of(graph, x)
    axis = axis_of(op, int(const_ints(graph, op, 0, "axis").reshape(-1)[0]), len(shape))
    parts = len(op.outputs)
    if parts == 0 or shape[axis] % parts:
        raise unsupported(op, f"{shape[axis]} values along axis {axis} into {parts} equal parts")
    return split_along(graph, op, x, axis, [shape[axis] // parts] * parts)


def split_v(graph, op) -> Movement:
    x = op.inputs[0]
    shape = shape_of(graph, x)
    axis = axis_of(op, int(const_ints(graph, op, 2, "axis").reshape(-1)[0]), len(shape))
    sizes = [int(s) for s in const_ints(graph, op, 1, "size_splits").reshape(-1)]
    if sizes.count(-1) == 1:
        sizes[sizes.index(-1)] = shape[axis] - (sum(sizes) + 1)
    if len(sizes) != len(op.outputs) or any(s < 0 for s in sizes) or sum(sizes) != shape[axis]:
        raise unsupported(op, f"size_splits {sizes} for {shape[axis]} values and "
                              f"{len(op.outputs)} outputs")
    return split_along(graph, op, x, axis, sizes)


def pack(graph, op) -> Movement:
    y = op.outputs[0]
    out_shape = shape_of(graph, y)
    axis = axis_of(op, op.options.get("Axis", 0), len(out_shape))
    out, copies = index_array(out_shape), []
    for k, t in enumerate(op.inputs):
        check_same_quantization(graph, op, t, y)
        where = [slice(None)] * len(out_shape)
        where[axis] = k
        copies.append(Copy(k, 0, index_array(shape_of(graph, t)), out[tuple(where)]))
    return Movement(list(op.inputs), [y], copies)


def unpack(graph, op) -> Movement:
    x = op.inputs[0]
    shape = shape_of(graph, x)
    axis = axis_of(op, op.options.get("Axis", 0), len(shape))
    if len(op.outputs) != shape[axis]:
        raise unsupported(op, f"{len(op.outputs)} outputs for {shape[axis]} values along axis {axis}")
    src, copies = index_array(shape), []
    for j, t in enumerate(op.outputs):
        where = [slice(None)] * len(shape)
        where[axis] = j
        copies.append(Copy(0, j, src[tuple(where)], index_array(shape_of(graph, t))))
    return Movement([x], list(op.outputs), copies)


def transpose(graph, op) -> Movement:
    x, y = op.inputs[0], op.outputs[0]
    shape = shape_of(graph, x)
    perm = [int(p) for p in const_ints(graph, op, 1, "permutation").reshape(-1)]
    perm = [p + len(shape) if p < 0 else p for p in perm]
    if sorted(perm) != list(range(len(shape))):
        raise unsupported(op, f"permutation {perm} of a rank-{len(shape)} tensor")
    if len(shape) > MAX_RANK:
        raise unsupported(op, f"rank {len(shape)} (at most {MAX_RANK} is compiled, as TFLite)")
    return Movement([x], [y], [Copy(0, 0, index_array(shape).transpose(perm),
                                    index_array(shape_of(graph, y)))])


def slice_op(graph, op) -> Movement:
    x, y = op.inputs[0], op.outputs[0]
    shape = shape_of(graph, x)
    begin = [int(v) for v in const_ints(graph, op, 1, "begin").reshape(-1)]
    size = [int(v) for v in const_ints(graph, op, 2, "size").reshape(-1)]
    if len(begin) != len(shape) or len(size) != len(shape):
        raise unsupported(op, f"begin {begin} and size {size} for a rank-{len(shape)} tensor")
    size = [d - b if s == -1 else s for d, b, s in zip(shape, begin, size)]
    if any(b < 0 or s < 0 or b + s > d for d, b, s in zip(shape, begin, size)):
        raise unsupported(op, f"begin {begin} and size {size} outside {list(shape)}")
    view = index_array(shape)[tuple(slice(b, b + s) for b, s in zip(begin, size))]
    return Movement([x], [y], [Copy(0, 0, view, index_array(shape_of(graph, y)))])


def strided_slice(graph, op) -> Movement:
    x, y = op.inputs[0], op.outputs[0]
    shape = shape_of(graph, x)
    view = index_array(shape)[strided_index(graph, op, shape)]
    out_shape = shape_of(graph, y)
    if view.size != int(np.prod(out_shape, dtype=np.int64)):
        raise unsupported(op, f"output shape {list(out_shape)}, but the slice has {list(view.shape)}")
    return Movement([x], [y], [Copy(0, 0, view.reshape(out_shape), index_array(out_shape))])


def strided_index(graph, op, shape) -> tuple:
    """TFLite's StridedSlice (begin/end/stride, the five masks, offset) as a numpy index."""
    begin = [int(v) for v in const_ints(graph, op, 1, "begin").reshape(-1)]
    end = [int(v) for v in const_ints(graph, op, 2, "end").reshape(-1)]
    strides = ([int(v) for v in const_ints(graph, op, 3, "strides").reshape(-1)]
               if len(op.inputs) > 3 and op.inputs[3] >= 0 else [1] * len(begin))
    if not len(begin) == len(end) == len(strides) or 0 in strides:
        raise unsupported(op, f"begin {begin}, end {end}, strides {strides}")
    opt = op.options
    bit = lambda mask, i: bool(opt.get(mask, 0) >> i & 1)          # noqa: E731
    spans = len([i for i in range(len(begin)) if not bit("NewAxisMask", i) or bit("EllipsisMask", i)])
    index, dim = [], 0
    for i, (b, e, s) in enumerate(zip(begin, end, strides)):
        if bit("EllipsisMask", i):
            skipped = len(shape) - (spans - 1)
            index.append(Ellipsis)
            dim += max(skipped, 0)
            continue
        if bit("NewAxisMask", i):
            index.append(None)
            continue
        if dim >= len(shape):
            raise unsupported(op, f"{len(begin)} slice entries for a rank-{len(shape)} tensor")
        if opt.get("Offset", False):
            e = b + e
            if not 0 <= b <= e <= shape[dim] or s < 0 or bit("BeginMask", i) or bit("EndMask", i):
                raise unsupported(op, f"offset slice [{b}:{e}:{s}] of dimension {dim} (size "
                                      f"{shape[dim]}) with masks: compiled only inside the tensor, "
                                      "positive strides and no begin/end masks (TFLite reads past it)")
        if bit("ShrinkAxisMask", i):
            if bit("BeginMask", i):          # TFLite's start for a masked begin, as for a slice
                b = 0 if s > 0 else shape[dim] - 1
            at = b + shape[dim] if b < 0 else b
            if not 0 <= at < shape[dim]:
                raise unsupported(op, f"index {b} outside dimension {dim} of size {shape[dim]}")
            index.append(at)
        else:
            index.append(slice(None if bit("BeginMask", i) else b, None if bit("EndMask", i) else e, s))
        dim += 1
    return tuple(index)


def fill(graph, op) -> Movement:
    value, y = op.inputs[1], op.outputs[0]
    if graph.tensors[value].dtype != graph.tensors[y].dtype:
        raise unsupported(op, "value and output types differ")
    const_ints(graph, op, 0, "dims")
    scalar = index_array(()).reshape(())
    return Movement([value], [y], [Copy(0, 0, np.broadcast_to(scalar, shape_of(graph, y)),
                                        index_array(shape_of(graph, y)))])


# -- the fold and the kernel call, from a movement ------------------------------------------

def fold_movement(describe):
    def fold(graph, op) -> dict:
        move = describe(graph, op)
        flat_in = [np.asarray(graph.tensors[t].data).reshape(-1) for t in move.sources]
        outs = {}
        for j, t in enumerate(move.outputs):
            out = graph.tensors[t]
            data = np.zeros(int(np.prod(out.shape, dtype=np.int64)), dtype=out.dtype)
            if j == 0 and move.fill is not None:
                data[:] = move.fill
            outs[t] = data
        for c in move.copies:
            outs[move.outputs[c.dst]][c.dst_view.reshape(-1)] = flat_in[c.src][c.src_view.reshape(-1)]
        return {t: v.reshape(graph.tensors[t].shape) for t, v in outs.items()}
    return fold


def lower_movement(describe):
    def lower(graph, op) -> Layer:
        move = describe(graph, op)
        return movement_layer(graph, op, move)
    return lower


def movement_layer(graph, op, move: Movement) -> Layer:
    tensors = [graph.tensors[t] for t in move.sources + move.outputs]
    dtype = graph.tensors[move.outputs[0]].dtype
    for t in tensors:
        if t.dtype not in MOVE_TYPES or t.dtype != dtype:
            raise unsupported(op, f"tensor '{shown(t.name)}' of type {t.dtype} with a {dtype} output "
                                  f"(compiled: one of {', '.join(MOVE_TYPES)} throughout)")
    activations = [t for t in move.sources if not graph.tensors[t].is_constant]
    constants = [t for t in move.sources if graph.tensors[t].is_constant]
    order = activations + constants                      # the kernel numbers sources this way
    itemsize = np.dtype(dtype).itemsize
    copies = move.copies if itemsize < 8 else [as_int32_pairs(c) for c in move.copies]
    rows = [copy_row(op, order.index(move.sources[c.src]), c) for c in copies]
    rows = [r for r in rows if r is not None]
    params = {"elem_size": min(itemsize, 4), "inputs": len(activations), "consts": len(constants),
              "copies": len(rows), "fill_count": 0, "fill": 0}
    if move.fill is not None:
        params["fill_count"] = int(np.prod(graph.tensors[move.outputs[0]].shape, dtype=np.int64))
        params["fill"] = fill_bits(move.fill, dtype)
        params["fill_count"] *= itemsize // params["elem_size"]
        if itemsize == 8 and move.fill != 0:
            raise unsupported(op, f"an int64 padding value other than 0 ({move.fill})")
    from ..codegen import C_TYPES
    consts = [_const("copies", "int32_t", np.array(rows, np.int32).reshape(-1))]
    consts += [_const(f"source{k}", C_TYPES[dtype], np.asarray(graph.tensors[t].data).reshape(-1))
               for k, t in enumerate(constants)]
    moved = sum(int(np.prod(c.dst_view.shape, dtype=np.int64)) for c in move.copies)
    return Layer(op.index, op.op, "tb_move_params", params, activations, list(move.outputs), consts,
                 0, f"{moved * itemsize} bytes in {len(rows)} copies", dtype=layer_dtype(dtype))


def layer_dtype(dtype: str) -> str:
    """The Layer.dtype of a layer that moves ``dtype`` values: float32 and int16
    layers are typed (so int8 plugin kernels never see them); the other element
    types keep "int8", as before types existed."""
    return dtype if dtype in ("float32", "int16") else "int8"


# Byte movers run one kernel whatever the element type (Layer.dtype picks it).
TYPED = {"float32": "tb_move", "int16": "tb_move"}


def _const(role, ctype, values):
    return Const(role, ctype, values)


def as_int32_pairs(c: Copy) -> Copy:
    """An int64 copy as one of int32 halves (the kernel moves 1, 2 or 4 bytes)."""
    pair = lambda view: (view[..., None] * 2 + np.array([0, 1])).reshape(*view.shape, 2)  # noqa: E731
    return Copy(c.src, c.dst, pair(c.src_view), pair(c.dst_view))


def fill_bits(value, dtype: str) -> int:
    """The fill value as the kernel's int32 (a float32 by its bits)."""
    if dtype == "float32":
        return int(np.array(value, np.float32).view(np.int32))
    return int(np.array(value).astype(dtype)) if dtype != "int64" else 0


def copy_row(op, src: int, c: Copy) -> list[int] | None:
    """One ``tb_move`` table row: dims and strides merged where both sides are
    contiguous, padded to MAX_RANK; None for an empty copy."""
    if c.src_view.size == 0:
        return None
    dims, s_str, d_str = merged(c.src_view, c.dst_view)
    if len(dims) > MAX_RANK:
        raise unsupported(op, f"a copy of rank {len(dims)} after merging dimensions (at most {MAX_RANK})")
    pad = MAX_RANK - len(dims)
    return ([src, c.dst, offset(c.src_view), offset(c.dst_view)] + [1] * pad + dims
            + [0] * pad + s_str + [0] * pad + d_str)


def offset(view: np.ndarray) -> int:
    """Element number of ``view``'s first element in the index array it views."""
    return int(view.reshape(-1)[0]) if view.size else 0


def strides(view: np.ndarray) -> list[int]:
    """Element strides read off the values (element numbers), so a view numpy
    had to copy still gives its true steps; checked against every element."""
    origin = (0,) * view.ndim
    steps = [int(view[origin[:k] + (1,) + origin[k + 1:]] - view[origin]) if n > 1 else 0
             for k, n in enumerate(view.shape)]
    rebuilt = offset(view) + sum(np.arange(n).reshape([-1 if i == k else 1 for i in range(view.ndim)])
                                 * s for k, (n, s) in enumerate(zip(view.shape, steps)))
    if not np.array_equal(np.broadcast_to(rebuilt, view.shape), view):
        raise ValueError("a copy that is not a strided view")       # a tinybuild bug if ever
    return steps


def merged(src: np.ndarray, dst: np.ndarray) -> tuple[list[int], list[int], list[int]]:
    """Dims and element strides of both views, size-1 dims dropped and neighbours
    merged where each side steps through them as one."""
    if src.shape != dst.shape:
        raise ValueError(f"copy of {src.shape} into {dst.shape}")
    dims, s_str, d_str = [], [], []
    for n, s, d in zip(src.shape, strides(src), strides(dst)):
        if n == 1:
            continue
        if dims and s_str[-1] == s * n and d_str[-1] == d * n:
            dims[-1] *= n
            s_str[-1], d_str[-1] = s, d
            continue
        dims.append(n), s_str.append(s), d_str.append(d)
    return dims or [1], s_str or [1], d_str or [1]


# -- SHAPE: always folded -------------------------------------------------------------------

def shape_lower(graph, op):
    return Folded(shape_fold(graph, op))


def shape_fold(graph, op) -> dict:
    y = graph.tensors[op.outputs[0]]
    if y.dtype not in ("int32", "int64"):
        raise unsupported(op, f"output of type {y.dtype} (int32 or int64 expected)")
    return {op.outputs[0]: np.array(shape_of(graph, op.inputs[0]), dtype=y.dtype)}


def movement_op(name, describe, doc, options=None) -> OpDef:
    return OpDef(name, lower_movement(describe), "tb_move", SOURCE, "tb_move_params", options,
                 fold=fold_movement(describe), doc=doc, typed=TYPED)


OPS = [
    movement_op("PAD", pad, "any type of 1-4 bytes, rank 1-6, constant paddings; int8 pads with "
                "the zero point"),
    movement_op("PADV2", pad, "as PAD, with a constant padding value"),
    movement_op("CONCATENATION", concatenation, "any axis, any inputs (constants too); int8 inputs "
                "quantized as the output (as TFLite requires)",
                Options("ConcatenationOptions", (OptionField("Axis", "axis", 0),
                                                 OptionField(ACTIVATION.key, ACTIVATION.field, 1, "i8")))),
    movement_op("SPLIT", split, "constant axis, equal parts, several outputs",
                Options("SplitOptions", (OptionField("NumSplits", "num_splits", 0),))),
    movement_op("SPLIT_V", split_v, "constant sizes (one -1) and axis, several outputs",
                Options("SplitVOptions", (OptionField("NumSplits", "num_splits", 0),))),
    movement_op("PACK", pack, "any axis (negative too)",
                Options("PackOptions", (OptionField("ValuesCount", "values_count", 0),
                                        OptionField("Axis", "axis", 1)))),
    movement_op("UNPACK", unpack, "any axis, several outputs",
                Options("UnpackOptions", (OptionField("Num", "num", 0), OptionField("Axis", "axis", 1)))),
    movement_op("STRIDED_SLICE", strided_slice, "constant begin/end/strides (negative too), all "
                "five masks, offset",
                Options("StridedSliceOptions", (
                    OptionField("BeginMask", "begin_mask", 0), OptionField("EndMask", "end_mask", 1),
                    OptionField("EllipsisMask", "ellipsis_mask", 2),
                    OptionField("NewAxisMask", "new_axis_mask", 3),
                    OptionField("ShrinkAxisMask", "shrink_axis_mask", 4),
                    OptionField("Offset", "offset", 5, "bool", False)))),
    movement_op("SLICE", slice_op, "constant begin and size (-1: to the end)"),
    movement_op("TRANSPOSE", transpose, "any permutation, rank 1-6"),
    movement_op("FILL", fill, "constant dims; folded when the value is constant"),
    OpDef("SHAPE", shape_lower, "tb_move", SOURCE, "tb_move_params",
          Options("ShapeOptions", (OptionField("OutType", "out_type", 0, "i8"),)),
          fold=shape_fold, doc="always folded (shapes are static)"),
]
