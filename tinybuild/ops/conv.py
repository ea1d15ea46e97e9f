"""CONV_2D and DEPTHWISE_CONV_2D: int8 activations, int8 filters (per-channel
or per-tensor scales, zero point 0), int32 bias, fused NONE/RELU/RELU6,
dilation, SAME/VALID padding; the same in 16x8 (int16 activations, int64
bias) and float32 (tinybuild/ops/_types.py). Kernels: tinybuild/kernels/conv.c."""
from __future__ import annotations

import numpy as np

from .. import quant
from ..lower import Const, Layer
from ..planner import raster_overlap
from . import KERNEL_DIR, OpDef, OptionField, Options, unsupported
from ._common import bias, mul_array, padding, tensor
from ._types import (ACTIVATIONS, ELEMENT_BYTES, float_activation_range, float_bias,
                     int16_activation_range, int16_bias, int16_zero_points, optional_input,
                     same_type, weights_for)

_SPATIAL = (OptionField("Padding", "padding", 0, "i8"),
            OptionField("StrideW", "stride_w", 1), OptionField("StrideH", "stride_h", 2))
CONV_OPTIONS = Options("Conv2DOptions", _SPATIAL + (
    OptionField("FusedActivationFunction", "fused_activation_function", 3, "i8"),
    OptionField("DilationWFactor", "dilation_w_factor", 4, "i32", 1),
    OptionField("DilationHFactor", "dilation_h_factor", 5, "i32", 1)))
DEPTHWISE_OPTIONS = Options("DepthwiseConv2DOptions", _SPATIAL + (
    OptionField("DepthMultiplier", "depth_multiplier", 3),
    OptionField("FusedActivationFunction", "fused_activation_function", 4, "i8"),
    OptionField("DilationWFactor", "dilation_w_factor", 5, "i32", 1),
    OptionField("DilationHFactor", "dilation_h_factor", 6, "i32", 1)))


def lower_conv(graph, op) -> Layer:
    return _conv_like(graph, op, depthwise=False)


def lower_depthwise(graph, op) -> Layer:
    return _conv_like(graph, op, depthwise=True)


def _conv_like(graph, op, depthwise: bool) -> Layer:
    x = tensor(graph, op, op.inputs[0], "input", ACTIVATIONS)
    w = weights_for(graph, op, op.inputs[1], x, "filter")
    y = tensor(graph, op, op.outputs[0], "output", ACTIVATIONS)
    same_type(op, x, y)
    geometry, macs, shape = _geometry(op, x, w, y, depthwise)
    typed = {"int8": _int8_layer, "int16": _int16_layer, "float32": _float_layer}[x.dtype]
    params, consts = typed(graph, op, x, w, y, geometry)
    return Layer(op.index, op.op, PARAMS[x.dtype], params, [op.inputs[0]], [op.outputs[0]],
                 consts, macs, shape, dtype=x.dtype)


def _geometry(op, x, w, y, depthwise: bool) -> tuple[dict, int, str]:
    """The shape part of the params every type shares, the MACs and the report's shape."""
    o = op.options
    _, in_h, in_w, in_c = x.shape
    _, out_h, out_w, out_c = y.shape
    _, k_h, k_w, w_in = w.shape
    if depthwise:
        mult = out_c // in_c
        if mult * in_c != out_c:
            raise unsupported(op, f"output channels {out_c} not a multiple of input channels {in_c}")
        macs = out_h * out_w * out_c * k_h * k_w
    else:
        if w_in != in_c:
            raise unsupported(op, f"grouped convolution ({in_c} input channels, filter has {w_in})")
        mult = 1
        macs = out_h * out_w * out_c * k_h * k_w * in_c
    dil_h, dil_w = o.get("DilationHFactor", 1), o.get("DilationWFactor", 1)
    geometry = dict(
        in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c,
        k_h=k_h, k_w=k_w, stride_h=o["StrideH"], stride_w=o["StrideW"],
        dil_h=dil_h, dil_w=dil_w,
        pad_top=padding(o["Padding"], in_h, out_h, o["StrideH"], k_h, dil_h),
        pad_left=padding(o["Padding"], in_w, out_w, o["StrideW"], k_w, dil_w),
        depth_multiplier=mult)
    shape = (f"{in_h}x{in_w}x{in_c} -> {out_h}x{out_w}x{out_c}, k{k_h}x{k_w} "
             f"s{o['StrideH']} {o['Padding'].lower()}")
    return geometry, macs, shape


def _int8_layer(graph, op, x, w, y, geometry):
    act_min, act_max = quant.activation_range(op.options["FusedActivationFunction"], y.scale,
                                              y.zero_point)
    params = dict(geometry, input_offset=-x.zero_point, output_offset=y.zero_point,
                  act_min=act_min, act_max=act_max)
    out_c = geometry["out_c"]
    muls = quant.conv_output_multipliers(x.scale, list(w.scales), y.scale, out_c)
    return params, [Const("filter", "int8_t", w.data.reshape(-1)),
                    Const("bias", "int32_t", bias(graph, op, out_c)),
                    Const("out_mul", "tb_quant_mul", mul_array(muls))]


def _int16_layer(graph, op, x, w, y, geometry):
    """16x8: int16 in and out (zero point 0), int8 filter, int64 bias and
    accumulator (reference_integer_ops::ConvPerChannel / DepthwiseConvPerChannel)."""
    int16_zero_points(op, x, y)
    act_min, act_max = int16_activation_range(op.options["FusedActivationFunction"], y)
    params = dict(geometry, input_offset=0, output_offset=0, act_min=act_min, act_max=act_max)
    out_c = geometry["out_c"]
    muls = quant.conv_output_multipliers(x.scale, list(w.scales), y.scale, out_c)
    return params, [Const("filter", "int8_t", w.data.reshape(-1)),
                    Const("bias", "int64_t", int16_bias(graph, op, optional_input(op, 2), out_c)),
                    Const("out_mul", "tb_quant_mul", mul_array(muls))]


def _float_layer(graph, op, x, w, y, geometry):
    """reference_ops::Conv / DepthwiseConv: float sums, bias, activation clamp."""
    act_min, act_max = float_activation_range(op.options["FusedActivationFunction"])
    params = dict(geometry, act_min=act_min, act_max=act_max)
    out_c = geometry["out_c"]
    return params, [Const("filter", "float", np.asarray(w.data, np.float32).reshape(-1)),
                    Const("bias", "float", float_bias(graph, op, optional_input(op, 2), out_c))]


PARAMS = {"int8": "tb_conv_params", "int16": "tb_conv_params", "float32": "tb_conv_f32_params"}


def raster_in_place(layer: Layer) -> dict:
    """The reference kernels write each output pixel in raster order while
    reading its receptive field (tinybuild.planner.raster_overlap, in elements:
    scaled to bytes by the layer's element size)."""
    low, high = raster_overlap(layer.params)
    size = ELEMENT_BYTES[layer.dtype]
    return {layer.inputs[0]: (low, None if high is None else high * size)}


_C = KERNEL_DIR / "conv.c"
OPS = [
    OpDef("CONV_2D", lower_conv, "tb_conv2d_s8", _C, "tb_conv_params", CONV_OPTIONS,
          in_place=raster_in_place,
          typed={"int16": "tb_conv2d_s16", "float32": "tb_conv2d_f32"},
          doc="int8, int16x8 (int64 bias), float32; per-channel or per-tensor filter, dilation, "
              "SAME/VALID, fused NONE/RELU/RELU6"),
    OpDef("DEPTHWISE_CONV_2D", lower_depthwise, "tb_depthwise_conv2d_s8", _C, "tb_conv_params",
          DEPTHWISE_OPTIONS, in_place=raster_in_place,
          typed={"int16": "tb_depthwise_conv2d_s16", "float32": "tb_depthwise_conv2d_f32"},
          doc="int8, int16x8 (int64 bias), float32; any depth multiplier, dilation, SAME/VALID, "
              "fused NONE/RELU/RELU6"),
]
