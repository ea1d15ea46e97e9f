"""SOFTMAX: int8 -> int8 on the last axis (output scale 1/256, zero point
-128 as TFLite requires), any beta. Kernel: tinybuild/kernels/softmax.c."""
from __future__ import annotations

import math

import numpy as np

from .. import quant
from ..lower import Const, Layer
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


TYPES = ("int8", "int16", "float32")


def float_layer(op, x) -> Layer:
    """reference_ops::Softmax: beta is a double in SoftmaxParams, cast to float."""
    depth = x.shape[-1] if x.shape else 1
    return Layer(op.index, op.op, "tb_softmax_f32_params",
                 {"outer": elements(x) // depth, "depth": depth,
                  "beta": float(op.options.get("Beta", 1.0))},
                 [op.inputs[0]], [op.outputs[0]], [], 0, f"{depth} classes", dtype="float32")


def int16_layer(op, x, y) -> Layer:
    """SoftmaxPrepare for int16: zero points 0, output scale 1/32768 (within
    0.1%), the input rescaled by input scale * beta / (10 / 65535), and the
    exp and 1/(1+x) tables of LUTPopulate<int16_t> in double."""
    if (x.zero_point, y.zero_point) != (0, 0) or \
            abs(quant.f32(y.scale) - quant.f32(1 / 32768)) > quant.f32(0.001 / 32768):
        raise unsupported(op, f"output scale {y.scale:g} (TFLite's int16 SOFTMAX requires 1/32768 "
                              "and zero points 0)")
    real = quant.f32(quant.f32(x.scale) * quant.f32(op.options.get("Beta", 1.0))) / (10.0 / 65535.0)
    multiplier, shift = quant.quantize_multiplier(real)
    depth = x.shape[-1] if x.shape else 1
    span = 65535                                  # int16 max - min
    exp_lut = lut_populate_s16(10.0 / span, 32767, 2.0 / span, math.exp)
    reciprocal_lut = lut_populate_s16(1.0 / span, -32768, 2.0 / span, lambda v: 1.0 / (1.0 + v))
    return Layer(op.index, op.op, "tb_softmax_s16_params",
                 {"outer": elements(x) // depth, "depth": depth, "input_multiplier": multiplier,
                  "input_left_shift": shift},
                 [op.inputs[0]], [op.outputs[0]],
                 [Const("exp_lut", "int16_t", exp_lut), Const("one_over_one_plus_x_lut", "int16_t",
                                                              reciprocal_lut)],
                 0, f"{depth} classes", dtype="int16")


def lut_populate_s16(input_scale: float, input_zero_point: int, output_scale: float,
                     transform) -> np.ndarray:
    """TFLite's LUTPopulateInt16<double> (output zero point 0): 512 samples of
    ``transform`` over the int16 input range, each lowered by half the error
    linear interpolation would make at its midpoint, and the end value."""
    input_min = input_scale * (-32768 - input_zero_point)
    input_max = input_scale * (32767 - input_zero_point)
    step = (input_max - input_min) / 512
    half_step = step / 2
    scaling_inv = 65536.0 / (output_scale * 32767 - output_scale * -32768)
    clamp = lambda v: int(min(max(v, -32768.0), 32767.0))             # noqa: E731
    lut = []
    for i in range(512):
        val = transform(input_min + i * step)
        val_midpoint = transform(input_min + i * step + half_step)
        val_next = transform(input_min + (i + 1) * step)
        sample = _round(val * scaling_inv)
        midpoint_interp = _round((val_next * scaling_inv + _round(val * scaling_inv)) / 2)
        bias = _round((midpoint_interp - _round(val_midpoint * scaling_inv)) / 2)
        lut.append(clamp(sample - bias))
    lut.append(clamp(_round(transform(input_max) * scaling_inv)))
    return np.array(lut, dtype=np.int16)


def _round(v: float) -> float:
    """std::round on a double: half away from zero."""
    whole = math.floor(abs(v))
    return math.copysign(whole + (1.0 if abs(v) - whole >= 0.5 else 0.0), v)


OPS = [OpDef("SOFTMAX", lower, "tb_softmax_s8", KERNEL_DIR / "softmax.c", "tb_softmax_params",
             OPTIONS, typed={"float32": "tb_softmax_f32", "int16": "tb_softmax_s16"},
             doc="int8 -> int8, int16 -> int16 (16x8: TFLite's interpolated tables), float32, on "
                 "the last axis, any beta")]
