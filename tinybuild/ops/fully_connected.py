"""FULLY_CONNECTED: int8 input of any shape holding rows x in_features values
(TFLite's batches; keep_num_dims only shapes the output), constant int8
weights (per-tensor or per-channel), int32 bias, fused NONE/RELU/RELU6; the
same in 16x8 (int16 activations, int64 bias) and float32 (ops/_types.py).
Kernel: tinybuild/kernels/fully_connected.c."""
from __future__ import annotations

import numpy as np

from .. import quant
from ..lower import CDouble, Const, Layer
from . import KERNEL_DIR, OpDef, OptionField, Options, unsupported
from ._common import ACTIVATION, bias, elements, mul_array, tensor
from ._types import (ACTIVATIONS, float_activation_range, float_bias, int16_activation_range,
                     int16_bias, int16_zero_points, optional_input, same_type, weights_for)

OPTIONS = Options("FullyConnectedOptions", (
    ACTIVATION, OptionField("WeightsFormat", "weights_format", 1, "i8"),
    OptionField("KeepNumDims", "keep_num_dims", 2, "bool")))


def lower(graph, op) -> Layer:
    x = tensor(graph, op, op.inputs[0], "input", ACTIVATIONS)
    w = weights_for(graph, op, op.inputs[1], x, "weights")
    y = tensor(graph, op, op.outputs[0], "output", ACTIVATIONS)
    same_type(op, x, y)
    if len(w.shape) != 2:
        raise unsupported(op, f"weights of shape {list(w.shape)} (2-D expected)")
    out_f, in_f = w.shape
    rows = fc_rows(op, elements(x), in_f, elements(y), out_f)
    typed = {"int8": _int8_layer, "int16": _int16_layer, "float32": _float_layer}[x.dtype]
    params_type, params, consts = typed(graph, op, x, w, y, rows)
    return Layer(op.index, op.op, params_type, params, [op.inputs[0]], [op.outputs[0]],
                 consts, rows * in_f * out_f,
                 f"{in_f} -> {out_f}" + (f" x {rows} rows" if rows > 1 else ""), dtype=x.dtype)


def _int8_layer(graph, op, x, w, y, rows):
    out_f, in_f = w.shape
    act_min, act_max = quant.activation_range(op.options.get("FusedActivationFunction", "NONE"),
                                              y.scale, y.zero_point)
    # TF 2.21's reference FULLY_CONNECTED rescales in double for per-tensor and
    # per-channel weights alike: round_half_away(acc * in * w[o] / out) (probed
    # against BUILTIN_REF on exact ties; the Q31 out_mul path rounds them
    # differently). real_multiplier: the per-tensor value the targets' fast
    # kernels use, 0.0 for per-channel (then the kernel reads real_mul[o]).
    real_muls = [quant.fc_real_multiplier(x.scale, s, y.scale) for s in w.scales]
    per_channel = len(real_muls) > 1
    params = dict(rows=rows, in_features=in_f, out_features=out_f, input_offset=-x.zero_point,
                  weights_offset=-w.zero_point, output_offset=y.zero_point,
                  act_min=act_min, act_max=act_max,
                  real_multiplier=CDouble(0.0 if per_channel else real_muls[0]))
    muls = quant.conv_output_multipliers(x.scale, list(w.scales), y.scale, out_f,
                                         op="FULLY_CONNECTED")
    return "tb_fc_params", params, [
        Const("filter", "int8_t", np.asarray(w.data).reshape(-1)),
        Const("bias", "int32_t", bias(graph, op, out_f)),
        Const("out_mul", "tb_quant_mul", mul_array(muls)),
        Const("real_mul", "double", np.asarray(real_muls, np.float64))]


def _int16_layer(graph, op, x, w, y, rows):
    """16x8: TF 2.21's reference FULLY_CONNECTED for int16 input, int64 bias."""
    out_f, in_f = w.shape
    int16_zero_points(op, x, y)
    act_min, act_max = int16_activation_range(op.options.get("FusedActivationFunction", "NONE"), y)
    params = dict(rows=rows, in_features=in_f, out_features=out_f, input_offset=0,
                  weights_offset=0, output_offset=0, act_min=act_min, act_max=act_max,
                  real_multiplier=CDouble(0.0))
    # The same double rescale as int8 (probed against BUILTIN_REF: the int64
    # fixed-point MultiplyByQuantizedMultiplier gave one output off by one).
    real_muls = [quant.fc_real_multiplier(x.scale, s, y.scale) for s in w.scales]
    return "tb_fc_params", params, [
        Const("filter", "int8_t", np.asarray(w.data).reshape(-1)),
        Const("bias", "int64_t", int16_bias(graph, op, optional_input(op, 2), out_f)),
        Const("real_mul", "double", np.resize(np.asarray(real_muls, np.float64), out_f))]


def _float_layer(graph, op, x, w, y, rows):
    """reference_ops::FullyConnected: one float sum per output, + bias, clamp."""
    out_f, in_f = w.shape
    act_min, act_max = float_activation_range(op.options.get("FusedActivationFunction", "NONE"))
    params = dict(rows=rows, in_features=in_f, out_features=out_f, act_min=act_min, act_max=act_max)
    return "tb_fc_f32_params", params, [
        Const("filter", "float", np.asarray(w.data, np.float32).reshape(-1)),
        Const("bias", "float", float_bias(graph, op, optional_input(op, 2), out_f))]


def fc_rows(op, in_values: int, in_f: int, out_values: int, out_f: int) -> int:
    """The rows (TFLite's batches) the input holds: every row of in_f values
    gives out_f outputs, as the reference kernel computes them."""
    if in_f == 0 or in_values % in_f:
        raise unsupported(op, f"input of {in_values} values is not a whole number of "
                              f"rows of {in_f} input features")
    rows = in_values // in_f
    if out_values != rows * out_f:
        raise unsupported(op, f"output of {out_values} values for {rows} rows of "
                              f"{out_f} outputs")
    return rows


OPS = [OpDef("FULLY_CONNECTED", lower, "tb_fully_connected_s8", KERNEL_DIR / "fully_connected.c",
             "tb_fc_params", OPTIONS,
             typed={"int16": "tb_fully_connected_s16", "float32": "tb_fully_connected_f32"},
             doc="int8, int16x8 (int64 bias), float32; any rows (batches, keep_num_dims), per-tensor or per-channel weights "
                 "(double rescale as TFLite), fused NONE/RELU/RELU6")]
