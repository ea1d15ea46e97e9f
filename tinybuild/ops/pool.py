"""AVERAGE_POOL_2D and MAX_POOL_2D: int8, int16 (zero point 0) and float32,
SAME/VALID, fused NONE/RELU/RELU6.
Kernels: tinybuild/kernels/pool.c."""
from __future__ import annotations

from .. import quant
from ..lower import Layer
from . import KERNEL_DIR, OpDef, OptionField, Options, unsupported
from ._common import padding, tensor
from ._types import (ACTIVATIONS, float_activation_range, int16_activation_range,
                     int16_zero_points, same_type)
from .conv import raster_in_place

OPTIONS = Options("Pool2DOptions", (
    OptionField("Padding", "padding", 0, "i8"), OptionField("StrideW", "stride_w", 1),
    OptionField("StrideH", "stride_h", 2), OptionField("FilterWidth", "filter_width", 3),
    OptionField("FilterHeight", "filter_height", 4),
    OptionField("FusedActivationFunction", "fused_activation_function", 5, "i8")))


def lower(graph, op) -> Layer:
    x = tensor(graph, op, op.inputs[0], "input", ACTIVATIONS)
    y = tensor(graph, op, op.outputs[0], "output", ACTIVATIONS)
    same_type(op, x, y)
    if x.dtype == "int16":
        int16_zero_points(op, x, y)
    if (op.op == "AVERAGE_POOL_2D" and x.dtype != "float32"
            and (x.scale != y.scale or x.zero_point != y.zero_point)):
        raise unsupported(op, "input and output quantization differ (TFLite requires them equal)")
    o = op.options
    _, in_h, in_w, c = x.shape
    _, out_h, out_w, _ = y.shape
    act = o["FusedActivationFunction"]
    if x.dtype == "float32":
        act_min, act_max = float_activation_range(act)
    elif x.dtype == "int16":
        act_min, act_max = int16_activation_range(act, y)
    else:
        act_min, act_max = quant.activation_range(act, y.scale, y.zero_point)
    params = dict(in_h=in_h, in_w=in_w, c=c, out_h=out_h, out_w=out_w,
                  k_h=o["FilterHeight"], k_w=o["FilterWidth"],
                  stride_h=o["StrideH"], stride_w=o["StrideW"],
                  pad_top=padding(o["Padding"], in_h, out_h, o["StrideH"], o["FilterHeight"], 1),
                  pad_left=padding(o["Padding"], in_w, out_w, o["StrideW"], o["FilterWidth"], 1),
                  act_min=act_min, act_max=act_max)
    shape = f"{in_h}x{in_w}x{c} -> {out_h}x{out_w}x{c}, k{o['FilterHeight']}x{o['FilterWidth']}"
    params_type = "tb_pool_f32_params" if x.dtype == "float32" else "tb_pool_params"
    return Layer(op.index, op.op, params_type, params, [op.inputs[0]], [op.outputs[0]],
                 [], 0, shape, dtype=x.dtype)


_C = KERNEL_DIR / "pool.c"
OPS = [
    OpDef("AVERAGE_POOL_2D", lower, "tb_avg_pool2d_s8", _C, "tb_pool_params", OPTIONS,
          in_place=raster_in_place,
          typed={"int16": "tb_avg_pool2d_s16", "float32": "tb_avg_pool2d_f32"},
          doc="int8, int16 (zero point 0), float32; SAME/VALID, fused NONE/RELU/RELU6"),
    OpDef("MAX_POOL_2D", lower, "tb_max_pool2d_s8", _C, "tb_pool_params", OPTIONS,
          in_place=raster_in_place,
          typed={"int16": "tb_max_pool2d_s16", "float32": "tb_max_pool2d_f32"},
          doc="int8, int16 (zero point 0), float32; SAME/VALID, fused NONE/RELU/RELU6"),
]
