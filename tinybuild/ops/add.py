"""ADD: two int8 activations of the same shape, fused NONE/RELU/RELU6
(broadcasting and constant operands are not compiled yet). Kernel:
tinybuild/kernels/add.c."""
from __future__ import annotations

from .. import quant
from ..lower import Layer
from . import KERNEL_DIR, OpDef, Options, unsupported
from ._common import ACTIVATION, elements, tensor

OPTIONS = Options("AddOptions", (ACTIVATION,))


def lower(graph, op) -> Layer:
    a = tensor(graph, op, op.inputs[0], "first input")
    b = tensor(graph, op, op.inputs[1], "second input")
    y = tensor(graph, op, op.outputs[0], "output")
    if a.shape != b.shape or a.is_constant or b.is_constant:
        raise unsupported(op, f"broadcasting or constant operand ({a.shape} + {b.shape})")
    params = quant.add_params(a.scale, a.zero_point, b.scale, b.zero_point, y.scale,
                              y.zero_point, op.options.get("FusedActivationFunction", "NONE"))
    params["size"] = elements(a)
    return Layer(op.index, op.op, "tb_add_params", params, [op.inputs[0], op.inputs[1]],
                 [op.outputs[0]], [], 0, "x".join(map(str, a.shape[1:])))


def elementwise_in_place(layer: Layer) -> dict:
    """The kernel reads element i of every input before writing element i."""
    return {t: (None, 0) for t in layer.inputs}


OPS = [OpDef("ADD", lower, "tb_add_s8", KERNEL_DIR / "add.c", "tb_add_params", OPTIONS,
             in_place=elementwise_in_place, doc="int8, same shapes, fused NONE/RELU/RELU6")]
