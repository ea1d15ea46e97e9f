"""FULLY_CONNECTED: int8 input (batch 1, any shape of in_features values),
constant int8 weights (per-tensor or per-channel), int32 bias, fused
NONE/RELU/RELU6. Kernel: tinybuild/kernels/fully_connected.c."""
from __future__ import annotations

import numpy as np

from .. import quant
from ..lower import CDouble, Const, Layer
from . import KERNEL_DIR, OpDef, OptionField, Options, unsupported
from ._common import ACTIVATION, bias, elements, mul_array, tensor

OPTIONS = Options("FullyConnectedOptions", (
    ACTIVATION, OptionField("WeightsFormat", "weights_format", 1, "i8"),
    OptionField("KeepNumDims", "keep_num_dims", 2, "bool")))


def lower(graph, op) -> Layer:
    x = tensor(graph, op, op.inputs[0], "input")
    w = tensor(graph, op, op.inputs[1], "weights")
    y = tensor(graph, op, op.outputs[0], "output")
    if w.data is None:
        raise unsupported(op, "non-constant weights")
    out_f, in_f = w.shape
    if elements(x) != in_f:
        raise unsupported(op, f"input of {elements(x)} values for {in_f} input "
                              "features (only batch 1 is compiled)")
    act_min, act_max = quant.activation_range(op.options.get("FusedActivationFunction", "NONE"),
                                              y.scale, y.zero_point)
    # TFLite's reference FULLY_CONNECTED rescales per-tensor weights in double
    # (the kernel does so when real_multiplier is set) and per-channel weights
    # in Q31 fixed point per output (real_multiplier 0: the out_mul table).
    per_channel = len(w.scales) > 1
    params = dict(in_features=in_f, out_features=out_f, input_offset=-x.zero_point,
                  weights_offset=-w.zero_point, output_offset=y.zero_point,
                  act_min=act_min, act_max=act_max,
                  real_multiplier=CDouble(0.0 if per_channel else
                                          quant.fc_real_multiplier(x.scale, w.scale, y.scale)))
    muls = quant.conv_output_multipliers(x.scale, list(w.scales), y.scale, out_f,
                                         op="FULLY_CONNECTED")
    consts = [Const("filter", "int8_t", np.asarray(w.data).reshape(-1)),
              Const("bias", "int32_t", bias(graph, op, out_f)),
              Const("out_mul", "tb_quant_mul", mul_array(muls))]
    return Layer(op.index, op.op, "tb_fc_params", params, [op.inputs[0]], [op.outputs[0]],
                 consts, in_f * out_f, f"{in_f} -> {out_f}")


OPS = [OpDef("FULLY_CONNECTED", lower, "tb_fully_connected_s8", KERNEL_DIR / "fully_connected.c",
             "tb_fc_params", OPTIONS,
             doc="int8, batch 1, per-tensor (double rescale as TFLite) or per-channel weights, "
                 "fused NONE/RELU/RELU6")]
