"""CONV_2D and DEPTHWISE_CONV_2D: int8 activations, int8 filters (per-channel
or per-tensor scales, zero point 0), int32 bias, fused NONE/RELU/RELU6,
dilation, SAME/VALID padding. Kernels: tinybuild/kernels/conv.c."""
from __future__ import annotations

from .. import quant
from ..lower import Const, Layer
from ..planner import raster_overlap
from . import KERNEL_DIR, OpDef, OptionField, Options, unsupported
from ._common import bias, mul_array, padding, tensor

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
    x = tensor(graph, op, op.inputs[0], "input")
    w = tensor(graph, op, op.inputs[1], "filter")
    y = tensor(graph, op, op.outputs[0], "output")
    if w.data is None:
        raise unsupported(op, "non-constant filter")
    if any(z != 0 for z in w.zero_points):
        raise unsupported(op, "filter zero point other than 0")
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
    act_min, act_max = quant.activation_range(o["FusedActivationFunction"], y.scale, y.zero_point)
    params = dict(
        in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c,
        k_h=k_h, k_w=k_w, stride_h=o["StrideH"], stride_w=o["StrideW"],
        dil_h=dil_h, dil_w=dil_w,
        pad_top=padding(o["Padding"], in_h, out_h, o["StrideH"], k_h, dil_h),
        pad_left=padding(o["Padding"], in_w, out_w, o["StrideW"], k_w, dil_w),
        depth_multiplier=mult, input_offset=-x.zero_point, output_offset=y.zero_point,
        act_min=act_min, act_max=act_max)
    muls = quant.conv_output_multipliers(x.scale, list(w.scales), y.scale, out_c)
    consts = [Const("filter", "int8_t", w.data.reshape(-1)),
              Const("bias", "int32_t", bias(graph, op, out_c)),
              Const("out_mul", "tb_quant_mul", mul_array(muls))]
    shape = (f"{in_h}x{in_w}x{in_c} -> {out_h}x{out_w}x{out_c}, k{k_h}x{k_w} "
             f"s{o['StrideH']} {o['Padding'].lower()}")
    return Layer(op.index, op.op, "tb_conv_params", params, [op.inputs[0]], [op.outputs[0]],
                 consts, macs, shape)


def raster_in_place(layer: Layer) -> dict:
    """The reference kernels write each output pixel in raster order while
    reading its receptive field (tinybuild.planner.raster_overlap)."""
    return {layer.inputs[0]: raster_overlap(layer.params)}


_C = KERNEL_DIR / "conv.c"
OPS = [
    OpDef("CONV_2D", lower_conv, "tb_conv2d_s8", _C, "tb_conv_params", CONV_OPTIONS,
          in_place=raster_in_place,
          doc="int8, per-channel or per-tensor filter, dilation, SAME/VALID, fused NONE/RELU/RELU6"),
    OpDef("DEPTHWISE_CONV_2D", lower_depthwise, "tb_depthwise_conv2d_s8", _C, "tb_conv_params",
          DEPTHWISE_OPTIONS, in_place=raster_in_place,
          doc="int8, any depth multiplier, dilation, SAME/VALID, fused NONE/RELU/RELU6"),
]
