"""MEAN, SUM, REDUCE_MAX, REDUCE_MIN (int8, any constant axes incl. negative and
repeated, keep_dims or not) and ARG_MAX, ARG_MIN (int8 in, int32 or int64 out).
Kernels: tinybuild/kernels/reduce.c.

The math is what TF 2.21's reduce.cc runs under BUILTIN_REF: MEAN and SUM both
go through reference_ops::QuantizedMeanOrSum, i.e. the int32 sum minus
zero_point * count, times QuantizeMultiplier(input scale / output scale)
(MEAN folds 1/count into that multiplier in integer arithmetic, as TFLite
does; its fixed-point H,W special case is only in the optimized resolver).
TF 2.21's reference SUM reads the int8 bytes as uint8 and clamps to 0..255
(a TFLite quirk, copied so the output matches). REDUCE_MAX/MIN need equal
input and output quantization (TFLite refuses others)."""
from __future__ import annotations

import numpy as np

from .. import quant
from ..lower import Layer
from . import KERNEL_DIR, OpDef, OptionField, Options, unsupported
from ._common import elements, tensor
from ._types import ACTIVATIONS, int16_zero_points, same_type

REDUCER_OPTIONS = Options("ReducerOptions", (OptionField("KeepDims", "keep_dims", 0, "bool", False),))
MAX_DIMS = 6                                      # TB_REDUCE_MAX_DIMS in reduce.h
MODES = {"MEAN": 0, "SUM": 1, "REDUCE_MAX": 2, "REDUCE_MIN": 3}   # TB_REDUCE_* in reduce.h


def constant_axes(graph, op, rank: int) -> list[int]:
    """The raw axis values (a constant int32/int64 vector), each checked in range."""
    axis = graph.tensor(op.inputs[1]) if len(op.inputs) > 1 else None
    if axis is not None and 0 in axis.shape:
        raise unsupported(op, "an empty axis list (the op copies its input; re-export without it)")
    if axis is None or axis.data is None or axis.dtype not in ("int32", "int64"):
        raise unsupported(op, "the axis must be a constant int32 (or int64) tensor")
    raw = [int(a) for a in np.asarray(axis.data).reshape(-1)]
    bad = [a for a in raw if not -rank <= a < rank]
    if bad:
        raise unsupported(op, f"axis {bad[0]} out of range for a rank-{rank} input")
    return raw


def walk(shape, reduced: set[int]) -> tuple[list, list]:
    """(outer, inner): the kept and the reduced dims as (size, stride) lists,
    size-1 dims dropped and contiguous neighbours merged."""
    strides = [int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape))]
    outer, inner = [], []
    for d, (size, stride) in enumerate(zip(shape, strides)):
        if size == 1:
            continue
        group = inner if d in reduced else outer
        if group and group[-1][1] == stride * size:     # contiguous with the previous one
            group[-1] = (group[-1][0] * size, stride)
        else:
            group.append((size, stride))
    return outer, inner


def rescale(op, x, y, count: int) -> tuple[int, int]:
    """PrepareMeanOrSum's multiplier; for MEAN, QuantizedMeanOrSum's 1/count
    folded in: shift by floor(log2(count)) (at most 32 and 31 + shift), then
    an int64 division that truncates."""
    multiplier, shift = quant.quantize_multiplier(quant.f32(x.scale) / quant.f32(y.scale))
    if op.op != "MEAN":
        return multiplier, shift
    extra = max(0, min(count.bit_length() - 1, 32, 31 + shift))
    return (multiplier << extra) // count, shift - extra


def lower_reduce(graph, op) -> Layer:
    x = tensor(graph, op, op.inputs[0], "input", ACTIVATIONS)
    y = tensor(graph, op, op.outputs[0], "output", ACTIVATIONS)
    same_type(op, x, y)
    raw = constant_axes(graph, op, len(x.shape))
    reduced = {a % len(x.shape) for a in raw}
    if x.dtype == "int16":
        int16_zero_points(op, x, y)
        if op.op == "SUM":
            # probed: TFLite sums the tensor's bytes as uint8 (as for int8) and writes
            # uint8 results into the first half of the int16 output, the rest left as it was
            raise unsupported(op, "int16 SUM (TF 2.21's reference kernel reads the int16 tensor as "
                                  "uint8 bytes: its outputs are not the sum; use MEAN or int8)")
    if (x.dtype != "float32" and op.op.startswith("REDUCE_")
            and (x.scale, x.zero_point) != (y.scale, y.zero_point)):
        raise unsupported(op, "input and output quantization differ (TFLite requires them equal)")
    outer, inner = walk(x.shape, reduced)
    if len(outer) > MAX_DIMS or len(inner) > MAX_DIMS:
        raise unsupported(op, f"more than {MAX_DIMS} separate kept or reduced dimension groups")
    count = int(np.prod([x.shape[a] for a in reduced], dtype=np.int64))
    if count == 0 or elements(x) == 0:
        raise unsupported(op, "an empty input")
    pad = lambda dims, k: [d[k] for d in dims] + [0] * (MAX_DIMS - len(dims))  # noqa: E731
    params = dict(mode=MODES[op.op], outer_rank=len(outer), inner_rank=len(inner),
                  outer_dims=pad(outer, 0), outer_strides=pad(outer, 1),
                  inner_dims=pad(inner, 0), inner_strides=pad(inner, 1),
                  outputs=elements(x) // count, count=count,
                  input_zero_point=x.zero_point, output_zero_point=y.zero_point,
                  mul=rescale(op, x, y, count) if _rescaled(op, x) else (0, 0))
    return Layer(op.index, op.op, "tb_reduce_params", params, [op.inputs[0]], [op.outputs[0]],
                 [], 0, f"{'x'.join(map(str, x.shape))} over axes {sorted(reduced)}",
                 dtype=x.dtype)


def _rescaled(op, x) -> bool:
    """Integer MEAN and SUM rescale (int16 SUM is refused); float needs none."""
    return op.op in ("MEAN", "SUM") and x.dtype != "float32"


ARG_OPTIONS = {name: Options(table, (OptionField("OutputType", "output_type", 0, "i8", 0),))
               for name, table in (("ARG_MAX", "ArgMaxOptions"), ("ARG_MIN", "ArgMinOptions"))}


def lower_arg(graph, op) -> Layer:
    x = tensor(graph, op, op.inputs[0], "input")
    y = tensor(graph, op, op.outputs[0], "output", ("int32", "int64"))
    raw = constant_axes(graph, op, len(x.shape))
    if len(raw) != 1:
        raise unsupported(op, f"{len(raw)} axis values (exactly one expected)")
    axis = raw[0] % len(x.shape)
    params = dict(outer=int(np.prod(x.shape[:axis], dtype=np.int64)), axis=x.shape[axis],
                  inner=int(np.prod(x.shape[axis + 1:], dtype=np.int64)),
                  is_max=int(op.op == "ARG_MAX"), int64_output=int(y.dtype == "int64"))
    if params["axis"] == 0:
        raise unsupported(op, "an empty axis")
    return Layer(op.index, op.op, "tb_arg_params", params, [op.inputs[0]], [op.outputs[0]],
                 [], 0, f"{'x'.join(map(str, x.shape))} over axis {axis}")


_C = KERNEL_DIR / "reduce.c"
_REDUCE_DOC = "int8, int16 (zero point 0), float32; any constant axes (negative, repeated), keep_dims or not"
_TYPED = {"int16": "tb_reduce_s16", "float32": "tb_reduce_f32"}
OPS = [
    OpDef("MEAN", lower_reduce, "tb_reduce_s8", _C, "tb_reduce_params", REDUCER_OPTIONS,
          typed=_TYPED, doc=_REDUCE_DOC + ", any quantization"),
    OpDef("SUM", lower_reduce, "tb_reduce_s8", _C, "tb_reduce_params", REDUCER_OPTIONS,
          typed=_TYPED, doc=_REDUCE_DOC + ", any quantization (int8 bytes summed as uint8, as "
                                          "TF 2.21's reference)"),
    OpDef("REDUCE_MAX", lower_reduce, "tb_reduce_s8", _C, "tb_reduce_params", REDUCER_OPTIONS,
          typed=_TYPED, doc=_REDUCE_DOC + " (same quantization in and out)"),
    OpDef("REDUCE_MIN", lower_reduce, "tb_reduce_s8", _C, "tb_reduce_params", REDUCER_OPTIONS,
          typed=_TYPED, doc=_REDUCE_DOC + " (same quantization in and out)"),
    OpDef("ARG_MAX", lower_arg, "tb_arg_min_max_s8", _C, "tb_arg_params", ARG_OPTIONS["ARG_MAX"],
          doc="int8 -> int32 or int64, one constant axis (negative allowed), first index on ties"),
    OpDef("ARG_MIN", lower_arg, "tb_arg_min_max_s8", _C, "tb_arg_params", ARG_OPTIONS["ARG_MIN"],
          doc="int8 -> int32 or int64, one constant axis (negative allowed), first index on ties"),
]
