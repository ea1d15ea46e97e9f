"""RESHAPE, SQUEEZE, EXPAND_DIMS: views. The planner gives its output its input's bytes, so it
runs no code; ``tb_copy`` (tinybuild/kernels/reshape.c) copies when they
are apart. A constant input is folded."""
from __future__ import annotations

import numpy as np

from ..lower import Layer
from . import KERNEL_DIR, OpDef, OptionField, Options, unsupported
from .movement import layer_dtype

VIEW_TYPES = ("int8", "uint8", "int16", "int32", "int64", "float32")


def lower(graph, op) -> Layer:
    x, y = view_tensor(graph, op, op.inputs[0], "input"), view_tensor(graph, op, op.outputs[0], "output")
    if x.dtype != y.dtype or x.size_bytes != y.size_bytes:     # TFLite copies the bytes as they are
        raise unsupported(op, f"input {x.dtype} {list(x.shape)} and output {y.dtype} "
                              f"{list(y.shape)} differ in type or size")
    return Layer(op.index, op.op, "tb_copy_params", {"bytes": x.size_bytes}, [op.inputs[0]],
                 [op.outputs[0]], [], 0, f"{x.size_bytes} bytes", dtype=layer_dtype(x.dtype))


def view_tensor(graph, op, index: int, what: str):
    """A view's tensor: any type the code generator knows, any batch (no data moves)."""
    t = graph.tensor(index)
    if t is None or t.dtype not in VIEW_TYPES:
        raise unsupported(op, f"{what} must be {' or '.join(VIEW_TYPES)}, got "
                              f"{'nothing' if t is None else t.dtype}")
    return t


def fold(graph, op) -> dict:
    x, y = graph.tensors[op.inputs[0]], op.outputs[0]
    return {y: np.asarray(x.data).reshape(graph.tensors[y].shape)}


def view_op(name: str, options=None) -> OpDef:
    """An op whose output is its input's bytes under another shape (taken from
    the output tensor, which TFLite's converter writes static)."""
    return OpDef(name, lower, "tb_copy", KERNEL_DIR / "reshape.c", "tb_copy_params", options,
                 fold=fold, view=True, doc="any type: no copy (the output aliases the input)",
                 typed={"float32": "tb_copy", "int16": "tb_copy"})


OPS = [view_op("RESHAPE"),
       view_op("SQUEEZE", Options("SqueezeOptions",
                                  (OptionField("SqueezeDims", "squeeze_dims", 0, ("vec", "i32")),))),
       view_op("EXPAND_DIMS")]
