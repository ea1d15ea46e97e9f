"""RESHAPE, SQUEEZE, EXPAND_DIMS: views. The planner gives its output its input's bytes, so it
runs no code; ``tb_copy`` (tinybuild/kernels/reshape.c) copies when they
are apart. A constant input is folded."""
from __future__ import annotations

import numpy as np

from ..lower import Layer
from . import KERNEL_DIR, OpDef, OptionField, Options, unsupported
from ._common import tensor

VIEW_TYPES = ("int8", "uint8", "int16", "int32", "float32")


def lower(graph, op) -> Layer:
    x = tensor(graph, op, op.inputs[0], "input", VIEW_TYPES)
    y = tensor(graph, op, op.outputs[0], "output", VIEW_TYPES)
    if x.dtype != y.dtype or x.size_bytes != y.size_bytes:     # TFLite copies the bytes as they are
        raise unsupported(op, f"input {x.dtype} {list(x.shape)} and output {y.dtype} "
                              f"{list(y.shape)} differ in type or size")
    return Layer(op.index, op.op, "tb_copy_params", {"bytes": x.size_bytes}, [op.inputs[0]],
                 [op.outputs[0]], [], 0, f"{x.size_bytes} bytes")


def fold(graph, op) -> dict:
    x, y = graph.tensors[op.inputs[0]], op.outputs[0]
    return {y: np.asarray(x.data).reshape(graph.tensors[y].shape)}


def view_op(name: str, options=None) -> OpDef:
    """An op whose output is its input's bytes under another shape (taken from
    the output tensor, which TFLite's converter writes static)."""
    return OpDef(name, lower, "tb_copy", KERNEL_DIR / "reshape.c", "tb_copy_params", options,
                 fold=fold, view=True, doc="any type: no copy (the output aliases the input)")


OPS = [view_op("RESHAPE"),
       view_op("SQUEEZE", Options("SqueezeOptions",
                                  (OptionField("SqueezeDims", "squeeze_dims", 0, ("vec", "i32")),))),
       view_op("EXPAND_DIMS")]
