"""TRANSPOSE_CONV: int8 input, int8 filter (per-channel or per-tensor scales,
zero point 0), optional int32 bias, SAME/VALID padding, strides, fused
NONE/RELU/RELU6; the same in 16x8 (int16 activations, int64 bias) and float32.
Kernel: tinybuild/kernels/transpose_conv.c.

Padding is TFLite's: ComputePaddingHeightWidth run on the *output* size (the
transposed convolution's input in the forward view); multipliers as CONV_2D's
(PopulateConvolutionQuantizationParams, in double)."""
from __future__ import annotations

import numpy as np

from .. import quant
from ..lower import Const, Layer
from . import KERNEL_DIR, OpDef, OptionField, Options, unsupported
from ._common import mul_array, padding, tensor
from ._types import (ACTIVATIONS, float_activation_range, float_bias, int16_activation_range,
                     int16_bias, int16_zero_points, optional_input, same_type, weights_for)

OPTIONS = Options("TransposeConvOptions", (
    OptionField("Padding", "padding", 0, "i8"), OptionField("StrideW", "stride_w", 1),
    OptionField("StrideH", "stride_h", 2),
    OptionField("FusedActivationFunction", "fused_activation_function", 3, "i8")))


def forward_padding(mode: str, out_size: int, k: int, stride: int) -> int:
    """The top/left padding TFLite computes from the output size."""
    forward_out = (out_size + stride - 1) // stride if mode == "SAME" else (out_size - k + stride) // stride
    return padding(mode, out_size, forward_out, stride, k, 1)


def bias_values(graph, op, channels: int) -> np.ndarray:
    """The int32 bias (input 3), zeros when the op has none."""
    b = graph.tensor(op.inputs[3]) if len(op.inputs) > 3 else None
    if b is None:
        return np.zeros(channels, np.int32)
    if b.dtype != "int32" or b.data is None or b.data.size != channels:
        raise unsupported(op, f"bias of type {b.dtype} with shape {list(b.shape)} "
                              f"({channels} int32 constants expected)")
    return b.data.astype(np.int32).reshape(-1)


def lower(graph, op) -> Layer:
    shape_t = graph.tensor(op.inputs[0])
    x = tensor(graph, op, op.inputs[2], "input", ACTIVATIONS)
    w = weights_for(graph, op, op.inputs[1], x, "filter")
    y = tensor(graph, op, op.outputs[0], "output", ACTIVATIONS)
    same_type(op, x, y)
    if shape_t is None or shape_t.data is None:
        raise unsupported(op, "the output shape must be a constant tensor")
    if len(x.shape) != 4 or len(w.shape) != 4 or len(y.shape) != 4:
        raise unsupported(op, "input, filter and output must be 4-D")
    if [int(v) for v in np.asarray(shape_t.data).reshape(-1)] != list(y.shape):
        raise unsupported(op, f"output shape {list(np.asarray(shape_t.data).reshape(-1))} differs "
                              f"from the output tensor {list(y.shape)}")
    _, in_h, in_w, in_c = x.shape
    _, out_h, out_w, out_c = y.shape
    w_out, k_h, k_w, w_in = w.shape
    if (w_out, w_in) != (out_c, in_c):
        raise unsupported(op, f"filter {list(w.shape)} does not map {in_c} to {out_c} channels")
    o = op.options
    sh, sw = o["StrideH"], o["StrideW"]
    geometry = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c,
                    k_h=k_h, k_w=k_w, stride_h=sh, stride_w=sw,
                    pad_top=forward_padding(o["Padding"], out_h, k_h, sh),
                    pad_left=forward_padding(o["Padding"], out_w, k_w, sw))
    typed = {"int8": _int8_layer, "int16": _int16_layer, "float32": _float_layer}[x.dtype]
    params_type, params, consts = typed(graph, op, x, w, y, geometry)
    return Layer(op.index, op.op, params_type, params, [op.inputs[2]],
                 [op.outputs[0]], consts, in_h * in_w * in_c * k_h * k_w * out_c,
                 f"{in_h}x{in_w}x{in_c} -> {out_h}x{out_w}x{out_c}, k{k_h}x{k_w} s{sh} "
                 f"{o['Padding'].lower()}", dtype=x.dtype)


def _activation(op) -> str:
    return op.options.get("FusedActivationFunction", "NONE")


def _int8_layer(graph, op, x, w, y, geometry):
    act_min, act_max = quant.activation_range(_activation(op), y.scale, y.zero_point)
    params = dict(geometry, input_offset=-x.zero_point, output_offset=y.zero_point,
                  act_min=act_min, act_max=act_max)
    out_c = geometry["out_c"]
    return "tb_transpose_conv_params", params, [
        Const("filter", "int8_t", w.data.reshape(-1)),
        Const("bias", "int32_t", bias_values(graph, op, out_c)),
        Const("out_mul", "tb_quant_mul", mul_array(
            quant.conv_output_multipliers(x.scale, list(w.scales), y.scale, out_c)))]


def _int16_layer(graph, op, x, w, y, geometry):
    """16x8 (reference_integer_ops::TransposeConv, int16): int64 sums and bias."""
    int16_zero_points(op, x, y)
    act_min, act_max = int16_activation_range(_activation(op), y)
    params = dict(geometry, input_offset=0, output_offset=0, act_min=act_min, act_max=act_max)
    out_c = geometry["out_c"]
    return "tb_transpose_conv_params", params, [
        Const("filter", "int8_t", w.data.reshape(-1)),
        Const("bias", "int64_t", int16_bias(graph, op, optional_input(op, 3), out_c)),
        Const("out_mul", "tb_quant_mul", mul_array(
            quant.conv_output_multipliers(x.scale, list(w.scales), y.scale, out_c)))]


def _float_layer(graph, op, x, w, y, geometry):
    """reference_ops::TransposeConv: scattered float sums, + bias, clamp."""
    act_min, act_max = float_activation_range(_activation(op))
    out_c = geometry["out_c"]
    return "tb_transpose_conv_f32_params", dict(geometry, act_min=act_min, act_max=act_max), [
        Const("filter", "float", np.asarray(w.data, np.float32).reshape(-1)),
        Const("bias", "float", float_bias(graph, op, optional_input(op, 3), out_c))]


OPS = [OpDef("TRANSPOSE_CONV", lower, "tb_transpose_conv_s8", KERNEL_DIR / "transpose_conv.c",
             "tb_transpose_conv_params", OPTIONS,
             typed={"int16": "tb_transpose_conv_s16", "float32": "tb_transpose_conv_f32"},
             doc="int8, int16x8 (int64 bias), float32; per-channel or per-tensor filter, optional bias, SAME/VALID, strides, "
                 "fused NONE/RELU/RELU6")]
