"""ADD: int8, fused NONE/RELU/RELU6, every broadcast form TFLite's reference
kernel accepts (rank <= 6) and constant operands. Kernel: tinybuild/kernels/add.c.

Two activations of one shape lower exactly as before broadcasting existed
(params without ``shape``): the target plugins' ADD kernels take those layers
by their params, and must refuse a layer whose params have ``shape``
(broadcast or a constant operand)."""
from __future__ import annotations

from .. import quant
from ..lower import Layer
from . import KERNEL_DIR, OpDef, Options, unsupported
from ._common import ACTIVATION, elements
from .elementwise import binary_layer, in_place, operands

OPTIONS = Options("AddOptions", (ACTIVATION,))


def lower(graph, op) -> Layer:
    ops = operands(graph, op)
    params = add_params(op, ops.a, ops.b, ops.y)
    if ops.a.shape == ops.b.shape and not ops.consts:
        params["size"] = elements(ops.a)
        return Layer(op.index, op.op, "tb_add_params", params, [op.inputs[0], op.inputs[1]],
                     [op.outputs[0]], [], 0, "x".join(map(str, ops.a.shape[1:])))
    return binary_layer(op, ops, "tb_add_params", params)


def add_params(op, a, b, y) -> dict:
    """add.cc/sub.cc Prepare's int8 constants; one line when TFLite would refuse them."""
    try:
        return quant.add_params(a.scale, a.zero_point, b.scale, b.zero_point, y.scale,
                                y.zero_point, op.options.get("FusedActivationFunction", "NONE"))
    except ValueError:
        raise unsupported(op, f"scales {a.scale:g}, {b.scale:g} -> {y.scale:g} need a rescale "
                              "multiplier >= 1, which TFLite's int8 kernel refuses") from None


def elementwise_in_place(layer: Layer) -> dict:
    """The kernel reads element i of every input before writing element i
    (broadcast inputs excepted)."""
    if "shape" in layer.params:
        return in_place(layer)
    return {t: (None, 0) for t in layer.inputs}


OPS = [OpDef("ADD", lower, "tb_add_s8", KERNEL_DIR / "add.c", "tb_add_params", OPTIONS,
             in_place=elementwise_in_place,
             doc="int8, every broadcast form (rank <= 6), constant operands, fused NONE/RELU/RELU6")]
