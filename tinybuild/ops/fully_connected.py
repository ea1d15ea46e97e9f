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
    # TF 2.21's reference FULLY_CONNECTED rescales in double for per-tensor and
    # per-channel weights alike: round_half_away(acc * in * w[o] / out) (probed
    # against BUILTIN_REF on exact ties; the Q31 out_mul path rounds them
    # differently). real_multiplier: the per-tensor value the targets' fast
    # kernels use, 0.0 for per-channel (then the kernel reads real_mul[o]).
    real_muls = [quant.fc_real_multiplier(x.scale, s, y.scale) for s in w.scales]
    per_channel = len(real_muls) > 1
    params = dict(in_features=in_f, out_features=out_f, input_offset=-x.zero_point,
                  weights_offset=-w.zero_point, output_offset=y.zero_point,
                  act_min=act_min, act_max=act_max,
                  real_multiplier=CDouble(0.0 if per_channel else real_muls[0]))
    muls = quant.conv_output_multipliers(x.scale, list(w.scales), y.scale, out_f,
                                         op="FULLY_CONNECTED")
    consts = [Const("filter", "int8_t", np.asarray(w.data).reshape(-1)),
              Const("bias", "int32_t", bias(graph, op, out_f)),
              Const("out_mul", "tb_quant_mul", mul_array(muls)),
              Const("real_mul", "double", np.asarray(real_muls, np.float64))]
    return Layer(op.index, op.op, "tb_fc_params", params, [op.inputs[0]], [op.outputs[0]],
                 consts, in_f * out_f, f"{in_f} -> {out_f}")


OPS = [OpDef("FULLY_CONNECTED", lower, "tb_fully_connected_s8", KERNEL_DIR / "fully_connected.c",
             "tb_fc_params", OPTIONS,
             doc="int8, batch 1, per-tensor or per-channel weights (double rescale as TFLite), "
                 "fused NONE/RELU/RELU6")]
