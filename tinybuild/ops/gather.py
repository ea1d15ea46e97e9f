"""GATHER: slices of ``params`` picked by ``indices`` along ``axis``, with
``batch_dims`` (TFLite's reference Gather). Params and indices may each be a
constant or an activation (constant int64 indices become int32);
both constant: folded. Kernel: ``tb_gather`` (tinybuild/kernels/movement.c)."""
from __future__ import annotations

import numpy as np

from ..errors import shown
from ..lower import Const, Layer
from . import KERNEL_DIR, OpDef, OptionField, Options, unsupported
from .movement import MOVE_TYPES, layer_dtype, shape_of


def geometry(graph, op) -> dict:
    """TFLite's batch/outer/axis/inner/coords sizes, checked."""
    shape, ishape = shape_of(graph, op.inputs[0]), shape_of(graph, op.inputs[1])
    axis, batch_dims = op.options.get("Axis", 0), op.options.get("BatchDims", 0)
    axis = axis + len(shape) if axis < 0 else axis
    batch_dims = batch_dims + len(ishape) if batch_dims < 0 else batch_dims
    if not 0 <= axis < len(shape) or not 0 <= batch_dims <= min(axis, len(ishape)) \
            or shape[:batch_dims] != ishape[:batch_dims]:
        raise unsupported(op, f"axis {op.options.get('Axis', 0)} with batch_dims "
                              f"{op.options.get('BatchDims', 0)} for params {list(shape)} and "
                              f"indices {list(ishape)}")
    size = lambda dims: int(np.prod(dims, dtype=np.int64))        # noqa: E731
    return {"batch": size(shape[:batch_dims]), "outer": size(shape[batch_dims:axis]),
            "axis_size": shape[axis], "inner": size(shape[axis + 1:]), "coords": size(ishape[batch_dims:])}


def constant_indices(graph, op, g: dict) -> np.ndarray:
    idx = np.asarray(graph.tensors[op.inputs[1]].data, dtype=np.int64).reshape(-1)
    bad = idx[(idx < 0) | (idx >= g["axis_size"])]
    if bad.size:
        raise unsupported(op, f"index {int(bad[0])} outside 0..{g['axis_size'] - 1}")
    return idx


def fold(graph, op) -> dict:
    g = geometry(graph, op)
    data = np.asarray(graph.tensors[op.inputs[0]].data)
    p = data.reshape(g["batch"], g["outer"], g["axis_size"], g["inner"])
    idx = constant_indices(graph, op, g).reshape(g["batch"], 1, g["coords"])
    out = p[np.arange(g["batch"])[:, None, None], np.arange(g["outer"])[None, :, None], idx]
    y = op.outputs[0]
    return {y: out.reshape(graph.tensors[y].shape)}


def lower(graph, op) -> Layer:
    g = geometry(graph, op)
    x, indices, y = (graph.tensors[t] for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
    for t in (x, y):
        if t.dtype not in MOVE_TYPES or t.dtype != y.dtype:
            raise unsupported(op, f"tensor '{shown(t.name)}' of type {t.dtype} (params and output: one "
                                  f"of {', '.join(MOVE_TYPES)})")
    if indices.dtype not in ("int32", "int64"):
        raise unsupported(op, f"indices of type {indices.dtype} (int32 or int64 expected)")
    params = {"elem_size": np.dtype(y.dtype).itemsize, "indices_first": 0,
              "index_size": 8 if indices.dtype == "int64" and not indices.is_constant else 4, **g}
    from ..codegen import C_TYPES
    if indices.is_constant:
        inputs, consts = [op.inputs[0]], [Const("indices", "int32_t",
                                                constant_indices(graph, op, g).astype(np.int32))]
    elif x.is_constant:
        params["indices_first"] = 1
        inputs, consts = [op.inputs[1]], [Const("table", C_TYPES[x.dtype], np.asarray(x.data).reshape(-1))]
    else:
        inputs, consts = [op.inputs[0], op.inputs[1]], []
    return Layer(op.index, op.op, "tb_gather_params", params, inputs, [op.outputs[0]], consts, 0,
                 f"{g['batch'] * g['outer'] * g['coords']} slices of {g['inner']}",
                 dtype=layer_dtype(y.dtype))


OPS = [OpDef("GATHER", lower, "tb_gather", KERNEL_DIR / "movement.c", "tb_gather_params",
             Options("GatherOptions", (OptionField("Axis", "axis", 0), OptionField("BatchDims", "batch_dims", 1))),
             fold=fold, typed={"float32": "tb_gather", "int16": "tb_gather"},
             doc="any axis, batch_dims, constant or run-time params and int32/int64 "
             "indices; a run-time index out of range gives zeros (TFLite: an error)")]
