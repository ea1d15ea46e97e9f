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
from .elementwise import (INT16_MAX, INT16_MIN, POT_SCALE_INT16, TYPED, Operands, activation,
                          binary_layer, float_layer, in_place, operands)

OPTIONS = Options("AddOptions", (ACTIVATION, POT_SCALE_INT16))


def lower(graph, op) -> Layer:
    ops = operands(graph, op, dtypes=TYPED)
    if ops.y.dtype == "float32":
        return float_layer(op, ops, 0)
    if ops.y.dtype == "int16":
        return add_s16_layer(op, ops, sign=1)
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


def add_s16_layer(op, ops: Operands, sign: int) -> Layer:
    """int16 ADD (sign 1) or SUB (-1), as add.cc/sub.cc Prepare choose: the
    power-of-two path when pot_scale_int16 is set and every scale is a power
    of two with zero point 0, else the general path with left shift 15."""
    a, b, y = ops.a, ops.b, ops.y
    act_min, act_max = activation(op, y)
    pot = _pot_exponents(op, a, b, y)
    params = {"left_shift": 15, "input1_offset": -a.zero_point, "input2_offset": -b.zero_point,
              "output_offset": y.zero_point, "act_min": act_min, "act_max": act_max,
              "input1": (0, 0), "input2": (0, 0), "output": (0, 0),
              "pot": 0, "pot_shift1": 0, "pot_shift2": 0, "pot_sign": sign}
    for t, what in ((a, "first input"), (b, "second input"), (y, "output")):
        if not INT16_MIN <= t.zero_point <= INT16_MAX:
            raise unsupported(op, f"{what} zero point {t.zero_point} outside int16")
    if pot is not None:
        shift1, shift2 = pot
        if ops.shape[0]:
            raise unsupported(op, "broadcasting on TFLite's int16 power-of-two path (its kernel "
                                  "takes equal shapes only)")
        if not (shift1 == 0 or shift2 == 0) or shift1 > 0 or shift2 > 0:
            raise unsupported(op, f"power-of-two scales {a.scale:g}, {b.scale:g} -> {y.scale:g}: "
                                  "TFLite's int16 path needs one input at the output's scale and "
                                  "the other at a smaller one")
        params.update(pot=1, pot_shift1=-shift1, pot_shift2=-shift2)
    else:
        try:
            params.update(_general_s16(a, b, y, sign))
        except ValueError:
            raise unsupported(op, f"int16 scales {a.scale:g}, {b.scale:g} -> {y.scale:g} need a "
                                  "rescale multiplier >= 1, which TFLite's int16 kernel refuses") from None
    layer = binary_layer(op, ops, "tb_add_s16_params", params)
    layer.dtype = "int16"
    return layer


def _general_s16(a, b, y, sign: int) -> dict:
    """add.cc/sub.cc Prepare's general path for int16: left shift 15, the
    ratios in double from the float32 scales."""
    s1, s2, so = quant.f32(a.scale), quant.f32(b.scale), quant.f32(y.scale)
    twice_max = 2.0 * max(s1, s2)
    m2, e2 = quant.quantize_multiplier_smaller_than_one_exp(s2 / twice_max)
    return {"input1": quant.quantize_multiplier_smaller_than_one_exp(s1 / twice_max),
            "input2": (m2 * sign, e2),
            "output": quant.quantize_multiplier_smaller_than_one_exp(twice_max / ((1 << 15) * so))}


def _pot_exponents(op, a, b, y) -> tuple[int, int] | None:
    """The input shifts of TFLite's int16 power-of-two path, or None for the general one."""
    if not op.options.get("PotScaleInt16", True):
        return None
    logs = [_checked_log2(t.scale) for t in (a, b, y)]
    if None in logs or (a.zero_point, b.zero_point, y.zero_point) != (0, 0, 0):
        return None
    return logs[0] - logs[2], logs[1] - logs[2]


def _checked_log2(scale: float) -> int | None:
    """TFLite's CheckedLog2: the rounded log2 when within 1e-3 of an integer."""
    import math
    value = quant.f32(math.log(quant.f32(scale))) * quant.f32(1.0 / math.log(2.0))
    rounded = quant.tflite_round(value)
    return int(rounded) if abs(value - rounded) < 1e-3 else None


def elementwise_in_place(layer: Layer) -> dict:
    """The kernel reads element i of every input before writing element i
    (broadcast inputs excepted)."""
    if "shape" in layer.params:
        return in_place(layer)
    return {t: (None, 0) for t in layer.inputs}


OPS = [OpDef("ADD", lower, "tb_add_s8", KERNEL_DIR / "add.c", "tb_add_params", OPTIONS,
             in_place=elementwise_in_place, typed={"float32": "tb_add_f32", "int16": "tb_add_s16"},
             doc="int8, int16 (16x8), float32, every broadcast form (rank <= 6), constant operands, "
                 "fused NONE/RELU/RELU6")]
