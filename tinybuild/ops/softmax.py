"""SOFTMAX: int8 -> int8 on the last axis (output scale 1/256, zero point
-128 as TFLite requires), any beta. Kernel: tinybuild/kernels/softmax.c."""
from __future__ import annotations

from .. import quant
from ..lower import Layer
from . import KERNEL_DIR, OpDef, OptionField, Options, unsupported
from ._common import elements, tensor

OPTIONS = Options("SoftmaxOptions", (OptionField("Beta", "beta", 0, "f32", 0.0),))


def lower(graph, op) -> Layer:
    x = tensor(graph, op, op.inputs[0], "input", TYPES)
    y = tensor(graph, op, op.outputs[0], "output", TYPES)
    if x.dtype != y.dtype:
        raise unsupported(op, f"input {x.dtype} and output {y.dtype} (compiled: int8 -> int8, "
                              "int16 -> int16, float32 -> float32)")
    if x.dtype == "float32":
        return float_layer(op, x)
    if x.dtype == "int16":
        return int16_layer(op, x, y)
    try:
        params = quant.softmax_params(x.scale, x.zero_point, y.scale, y.zero_point,
                                      float(op.options.get("Beta", 1.0)))
    except ValueError as exc:
        raise unsupported(op, str(exc)) from None
    # BUILTIN_REF's int8 softmax is the integer gemmlowp path: no lookup table,
    # and the input zero point cancels in x - max(x).
    for unused in ("exp_table", "input_zero_point"):
        params.pop(unused, None)
    depth = x.shape[-1]
    params.update(outer=elements(x) // depth, depth=depth)
    return Layer(op.index, op.op, "tb_softmax_params", params, [op.inputs[0]], [op.outputs[0]],
                 [], 0, f"{depth} classes")


TYPES = ("int8", "float32")


def float_layer(op, x) -> Layer:
    """reference_ops::Softmax: beta is a double in SoftmaxParams, cast to float."""
    depth = x.shape[-1] if x.shape else 1
    return Layer(op.index, op.op, "tb_softmax_f32_params",
                 {"outer": elements(x) // depth, "depth": depth,
                  "beta": float(op.options.get("Beta", 1.0))},
                 [op.inputs[0]], [op.outputs[0]], [], 0, f"{depth} classes", dtype="float32")


def int16_layer(op, x, y) -> Layer:
    raise unsupported(op, "int16 activations (16x8 SOFTMAX is not compiled yet)")


OPS = [OpDef("SOFTMAX", lower, "tb_softmax_s8", KERNEL_DIR / "softmax.c", "tb_softmax_params",
             OPTIONS, typed={"float32": "tb_softmax_f32"},
             doc="int8 -> int8, float32 on the last axis, any beta")]
