"""AVERAGE_POOL_2D and MAX_POOL_2D: int8, SAME/VALID, fused NONE/RELU/RELU6.
Kernels: tinybuild/kernels/pool.c."""
from __future__ import annotations

from .. import quant
from ..lower import Layer
from . import KERNEL_DIR, OpDef, OptionField, Options, unsupported
from ._common import padding, tensor
from .conv import raster_in_place

OPTIONS = Options("Pool2DOptions", (
    OptionField("Padding", "padding", 0, "i8"), OptionField("StrideW", "stride_w", 1),
    OptionField("StrideH", "stride_h", 2), OptionField("FilterWidth", "filter_width", 3),
    OptionField("FilterHeight", "filter_height", 4),
    OptionField("FusedActivationFunction", "fused_activation_function", 5, "i8")))


def lower(graph, op) -> Layer:
    x = tensor(graph, op, op.inputs[0], "input")
    y = tensor(graph, op, op.outputs[0], "output")
    if op.op == "AVERAGE_POOL_2D" and (x.scale != y.scale or x.zero_point != y.zero_point):
        raise unsupported(op, "input and output quantization differ (TFLite requires them equal)")
    o = op.options
    _, in_h, in_w, c = x.shape
    _, out_h, out_w, _ = y.shape
    act_min, act_max = quant.activation_range(o["FusedActivationFunction"], y.scale, y.zero_point)
    params = dict(in_h=in_h, in_w=in_w, c=c, out_h=out_h, out_w=out_w,
                  k_h=o["FilterHeight"], k_w=o["FilterWidth"],
                  stride_h=o["StrideH"], stride_w=o["StrideW"],
                  pad_top=padding(o["Padding"], in_h, out_h, o["StrideH"], o["FilterHeight"], 1),
                  pad_left=padding(o["Padding"], in_w, out_w, o["StrideW"], o["FilterWidth"], 1),
                  act_min=act_min, act_max=act_max)
    shape = f"{in_h}x{in_w}x{c} -> {out_h}x{out_w}x{c}, k{o['FilterHeight']}x{o['FilterWidth']}"
    return Layer(op.index, op.op, "tb_pool_params", params, [op.inputs[0]], [op.outputs[0]],
                 [], 0, shape)


_C = KERNEL_DIR / "pool.c"
OPS = [
    OpDef("AVERAGE_POOL_2D", lower, "tb_avg_pool2d_s8", _C, "tb_pool_params", OPTIONS,
          in_place=raster_in_place, doc="int8, SAME/VALID, fused NONE/RELU/RELU6"),
    OpDef("MAX_POOL_2D", lower, "tb_max_pool2d_s8", _C, "tb_pool_params", OPTIONS,
          in_place=raster_in_place, doc="int8, SAME/VALID, fused NONE/RELU/RELU6"),
]
