"""Recurrent layers: UNIDIRECTIONAL_SEQUENCE_LSTM (int8 as TFLite's quantizer
writes a Keras LSTM: int8 activations, int16 cell state, the 8x8_16 integer
kernel; and float32) and SVDF (int8 and float32). Kernels:
tinybuild/kernels/recurrent.c.

The state tensors (TFLite variable tensors: the LSTM's output and cell state,
SVDF's activation state) are not arena tensors here: TFLite resets them before
each inference (``reset_all_variables``, int8 ones to their zero point, the
others to 0) and only this op reads and writes them, so the kernel keeps them
in its scratch buffer and starts each call from that reset value. A state
another op reads, or that is a model output, is refused.
"""
from __future__ import annotations

import math

import numpy as np

from .. import quant
from ..lower import Const, Layer
from . import KERNEL_DIR, OpDef, OptionField, Options, unsupported
from ._common import ACTIVATION, mul_array, tensor

LSTM_OPTIONS = Options("UnidirectionalSequenceLSTMOptions", (
    ACTIVATION, OptionField("CellClip", "cell_clip", 1, "f32", 0.0),
    OptionField("ProjClip", "proj_clip", 2, "f32", 0.0),
    OptionField("TimeMajor", "time_major", 3, "bool", False),
    OptionField("AsymmetricQuantizeInputs", "asymmetric_quantize_inputs", 4, "bool", False),
    OptionField("DiagonalRecurrentTensors", "diagonal_recurrent_tensors", 5, "bool", False)))

# lstm_shared.h's input indices (lstm::full)
INPUT, OUTPUT_STATE, CELL_STATE = 0, 18, 19
IN_WEIGHTS, REC_WEIGHTS, BIASES = (1, 2, 3, 4), (5, 6, 7, 8), (12, 13, 14, 15)
PEEPHOLE, PROJECTION, LAYER_NORM = (9, 10, 11), (16, 17), (20, 21, 22, 23)
GATES = ("input", "forget", "cell", "output")


def _present(op, index: int) -> bool:
    return index < len(op.inputs) and op.inputs[index] >= 0


def _refuse_variants(op) -> None:
    """One line naming the LSTM variant tinybuild does not compile."""
    if not _present(op, IN_WEIGHTS[0]):
        raise unsupported(op, "CIFG LSTM (coupled input and forget gates: no input gate weights) "
                              "is not compiled")
    if any(_present(op, i) for i in PEEPHOLE):
        raise unsupported(op, "peephole LSTM (cell-to-gate weights) is not compiled")
    if any(_present(op, i) for i in PROJECTION):
        raise unsupported(op, "LSTM with a projection layer is not compiled")
    if any(_present(op, i) for i in LAYER_NORM):
        raise unsupported(op, "layer-norm LSTM is not compiled")
    if op.options.get("DiagonalRecurrentTensors"):
        raise unsupported(op, "diagonal recurrent weights are not compiled")


def _private_state(graph, op, index: int, what: str, dtypes, values: int):
    """A state tensor of ``values`` elements: only this op may read it and it may
    not be a model output."""
    if not _present(op, index):
        raise unsupported(op, f"no {what} tensor")
    t = tensor(graph, op, op.inputs[index], what, dtypes)
    if int(np.prod(t.shape, dtype=np.int64)) != values:
        raise unsupported(op, f"{what} of shape {t.shape} ({values} values expected)")
    shared = [o for o in graph.operators if o.index != op.index and op.inputs[index] in o.inputs]
    if shared or op.inputs[index] in graph.outputs:
        raise unsupported(op, f"its {what} is read outside the layer (by another op or as a model "
                              "output); tinybuild keeps it inside the layer")
    return t


def _weights(graph, op, index: int, what: str, dtype: str, cols: int, rows: int) -> np.ndarray:
    t = tensor(graph, op, op.inputs[index], what, (dtype,))
    if t.data is None:
        raise unsupported(op, f"non-constant {what}")
    if t.shape != (rows, cols):
        raise unsupported(op, f"{what} of shape {t.shape}, expected ({rows}, {cols})")
    if dtype == "int8" and (len(t.scales) != 1 or t.zero_point != 0):
        raise unsupported(op, f"{what} must be per-tensor symmetric int8 (one scale, zero point 0)")
    return np.asarray(t.data)


def _sizes(graph, op, x):
    """(n_batch, n_time, n_input, n_cell) from the input and the output gate's weights."""
    if len(x.shape) != 3:
        raise unsupported(op, f"input of rank {len(x.shape)} (3 expected: batch, time, features)")
    w = graph.tensor(op.inputs[IN_WEIGHTS[3]])
    if w is None or len(w.shape) != 2:
        raise unsupported(op, "input-to-output weights missing or not 2-D")
    time_major = bool(op.options.get("TimeMajor", False))
    n_time, n_batch = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
    return n_batch, n_time, x.shape[2], w.shape[0], time_major


def lower_lstm(graph, op) -> Layer:
    _refuse_variants(op)
    x = tensor(graph, op, op.inputs[INPUT], "input", ("int8", "float32"))
    if x.dtype == "float32":
        return _lower_lstm_f32(graph, op, x)
    return _lower_lstm_s8(graph, op, x)


def _log2_exact(op, scale: float, what: str) -> int:
    """tensor_utils CheckedLog2: the scale must be a power of two (to 1e-3 in log2)."""
    log2 = math.log(scale) / math.log(2.0) if scale > 0 else float("nan")
    if not math.isfinite(log2) or abs(log2 - round(log2)) >= 1e-3:
        raise unsupported(op, f"{what} scale {scale:g} is not a power of two (TFLite's integer LSTM "
                              "needs one)")
    return int(round(log2))


def _lstm_s8_constants(graph, op, x, h, n_input: int, n_cell: int):
    """Weights, Prepare's effective biases and effective scales, gate by gate."""
    f32 = np.float32
    w_in = [_weights(graph, op, i, f"{g} gate input weights", "int8", n_input, n_cell)
            for i, g in zip(IN_WEIGHTS, GATES)]
    w_rec = [_weights(graph, op, i, f"{g} gate recurrent weights", "int8", n_cell, n_cell)
             for i, g in zip(REC_WEIGHTS, GATES)]
    biases, muls = [], []
    gate_scale = f32(2.0 ** -12)        # Q3.12 gate inputs (no layer norm)
    for g, (wi, wr, bi) in enumerate(zip(w_in, w_rec, BIASES)):
        b = graph.tensor(op.inputs[bi])
        if b is None or b.dtype != "int32" or b.data is None or b.data.size != n_cell:
            raise unsupported(op, f"{GATES[g]} gate bias must be {n_cell} int32 constants")
        rows_in = wi.astype(np.int64).sum(axis=1)
        rows_rec = wr.astype(np.int64).sum(axis=1)
        biases.append(_wrap32(b.data.astype(np.int64).reshape(-1) - x.zero_point * rows_in))
        biases.append(_wrap32(-h.zero_point * rows_rec))
        in_scale = graph.tensor(op.inputs[IN_WEIGHTS[g]]).scale
        rec_scale = graph.tensor(op.inputs[REC_WEIGHTS[g]]).scale
        muls.append(quant.quantize_multiplier(float(f32(f32(in_scale) * f32(x.scale)) / gate_scale)))
        muls.append(quant.quantize_multiplier(float(f32(f32(rec_scale) * f32(h.scale)) / gate_scale)))
    return np.stack(w_in), np.stack(w_rec), np.stack(biases).astype(np.int32), muls


def _wrap32(v: np.ndarray) -> np.ndarray:
    return ((v + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int64)


def _hidden(graph, op):
    """Intermediate 4: the hidden state's scale and zero point (8x8_16 kernel)."""
    if len(op.intermediates) != 5:
        raise unsupported(op, f"{len(op.intermediates)} intermediate tensors (the int8 LSTM TFLite's "
                              "quantizer writes has 5: the 8x8_16 kernel)")
    t = graph.tensor(op.intermediates[4])
    if t is None or not t.scales:
        raise unsupported(op, "the hidden-state intermediate tensor has no quantization")
    return t


def _lower_lstm_s8(graph, op, x) -> Layer:
    n_batch, n_time, n_input, n_cell, time_major = _sizes(graph, op, x)
    y = tensor(graph, op, op.outputs[0], "output", ("int8",))
    h = _private_state(graph, op, OUTPUT_STATE, "output state", ("int8",), n_batch * n_cell)
    c = _private_state(graph, op, CELL_STATE, "cell state", ("int16",), n_batch * n_cell)
    hidden = _hidden(graph, op)
    w_in, w_rec, biases, muls = _lstm_s8_constants(graph, op, x, h, n_input, n_cell)
    f32 = np.float32
    eff_hidden = f32(f32(2.0 ** -15) / f32(hidden.scale)) * f32(2.0 ** -15)
    params = dict(n_batch=n_batch, n_time=n_time, n_input=n_input, n_cell=n_cell,
                  time_major=int(time_major), output_state_zp=h.zero_point,
                  hidden_mul=quant.quantize_multiplier(float(eff_hidden)),
                  hidden_zp=hidden.zero_point, cell_log2=_log2_exact(op, c.scale, "cell state"),
                  cell_clip=_quantized_cell_clip(op, c.scale))
    consts = [Const("w_in", "int8_t", w_in.reshape(-1)), Const("w_rec", "int8_t", w_rec.reshape(-1)),
              Const("bias", "int32_t", biases.reshape(-1)), Const("gate_mul", "tb_quant_mul", mul_array(muls))]
    n = n_batch * n_cell
    layer = Layer(op.index, op.op, "tb_lstm_s8_params", params, [op.inputs[INPUT]], [op.outputs[0]],
                  consts, n_batch * n_time * 4 * n_cell * (n_input + n_cell),
                  f"LSTM {n_input} -> {n_cell} x {n_time} steps (int8, int16 cell)")
    layer.scratch_bytes = 2 * n + 4 * 2 * n + n     # int16 cell, 4 int16 gates, int8 output state
    _check_output(op, y, n_batch * n_time * n_cell)
    return layer


def _quantized_cell_clip(op, cell_scale: float) -> int:
    """lstm.cc's quantized_cell_clip: the float32 quotient clamped to int16, truncated; 0: none."""
    f32 = np.float32
    clip = float(op.options.get("CellClip", 0.0) or 0.0)
    if clip <= 0:
        return 0
    return int(max(min(f32(clip) / f32(cell_scale), f32(32767.0)), f32(-32768.0)))


def _check_output(op, y, values: int) -> None:
    if int(np.prod(y.shape, dtype=np.int64)) != values:
        raise unsupported(op, f"output of shape {y.shape} ({values} values expected)")


# TFLite activation codes (ActivationFunctionType) the float kernels apply
ACTIVATION_CODES = {"NONE": 0, "RELU": 1, "RELU6": 3, "TANH": 4}


def _float_activation(op, allowed) -> int:
    act = op.options.get("FusedActivationFunction", "NONE")
    if act not in allowed:
        raise unsupported(op, f"fused activation {act} (compiled: {', '.join(allowed)})")
    return ACTIVATION_CODES[act]


def _lower_lstm_f32(graph, op, x) -> Layer:
    n_batch, n_time, n_input, n_cell, time_major = _sizes(graph, op, x)
    y = tensor(graph, op, op.outputs[0], "output", ("float32",))
    _private_state(graph, op, OUTPUT_STATE, "output state", ("float32",), n_batch * n_cell)
    _private_state(graph, op, CELL_STATE, "cell state", ("float32",), n_batch * n_cell)
    w_in = [_weights(graph, op, i, f"{g} gate input weights", "float32", n_input, n_cell)
            for i, g in zip(IN_WEIGHTS, GATES)]
    w_rec = [_weights(graph, op, i, f"{g} gate recurrent weights", "float32", n_cell, n_cell)
             for i, g in zip(REC_WEIGHTS, GATES)]
    biases = [_float_vector(graph, op, i, f"{g} gate bias", n_cell) for i, g in zip(BIASES, GATES)]
    params = dict(n_batch=n_batch, n_time=n_time, n_input=n_input, n_cell=n_cell,
                  time_major=int(time_major),
                  activation=_float_activation(op, ("NONE", "RELU", "RELU6", "TANH")),
                  cell_clip=float(op.options.get("CellClip", 0.0) or 0.0))
    consts = [Const("w_in", "float", np.stack(w_in).reshape(-1)),
              Const("w_rec", "float", np.stack(w_rec).reshape(-1)),
              Const("bias", "float", np.stack(biases).reshape(-1))]
    _check_output(op, y, n_batch * n_time * n_cell)
    layer = Layer(op.index, op.op, "tb_lstm_f32_params", params, [op.inputs[INPUT]], [op.outputs[0]],
                  consts, n_batch * n_time * 4 * n_cell * (n_input + n_cell),
                  f"LSTM {n_input} -> {n_cell} x {n_time} steps (float32)", dtype="float32")
    layer.scratch_bytes = 4 * (6 * n_batch * n_cell)
    layer.notes.append("float32 LSTM: TFLite sums the gate products with its GEMM in an order "
                       "C cannot follow, and its sigmoid/tanh come from the host's libm: outputs "
                       "match within the validation's float tolerance, not bit for bit")
    return layer


def _float_vector(graph, op, index: int, what: str, size: int) -> np.ndarray:
    t = graph.tensor(op.inputs[index]) if index < len(op.inputs) else None
    if t is None:
        return np.zeros(size, np.float32)
    if t.dtype != "float32" or t.data is None or t.data.size != size:
        raise unsupported(op, f"{what} must be {size} float32 constants")
    return np.asarray(t.data, np.float32).reshape(-1)


# -- SVDF ---------------------------------------------------------------------------------------

SVDF_OPTIONS = Options("SVDFOptions", (
    OptionField("Rank", "rank", 0, "i32", 0),
    OptionField("FusedActivationFunction", "fused_activation_function", 1, "i8"),
    OptionField("AsymmetricQuantizeInputs", "asymmetric_quantize_inputs", 2, "bool", False)))


def _svdf_sizes(graph, op, x):
    """(n_batch, n_input, n_filter, n_unit, memory) as svdf.cc Prepare reads them."""
    wf, wt = graph.tensor(op.inputs[1]), graph.tensor(op.inputs[2])
    rank = int(op.options.get("Rank", 0))
    if len(x.shape) != 2 or wf is None or wt is None or len(wf.shape) != 2 or len(wt.shape) != 2:
        raise unsupported(op, "input, feature and time weights must be 2-D")
    n_filter, memory = wf.shape[0], wt.shape[1]
    if rank <= 0 or n_filter % rank or wt.shape[0] != n_filter or wf.shape[1] != x.shape[1]:
        raise unsupported(op, f"rank {rank} with {n_filter} filters, time weights {wt.shape} and "
                              f"feature weights {wf.shape} do not fit together")
    return x.shape[0], x.shape[1], n_filter, n_filter // rank, memory


def lower_svdf(graph, op) -> Layer:
    x = tensor(graph, op, op.inputs[0], "input", ("int8", "float32"))
    if len(op.inputs) != 5:
        raise unsupported(op, f"{len(op.inputs)} inputs (5 expected)")
    sizes = _svdf_sizes(graph, op, x)
    if x.dtype == "float32":
        return _lower_svdf_f32(graph, op, x, sizes)
    return _lower_svdf_s8(graph, op, x, sizes)


def _svdf_layer(op, params_type, params, consts, sizes, dtype, state_bytes) -> Layer:
    n_batch, n_input, n_filter, n_unit, memory = sizes
    layer = Layer(op.index, op.op, params_type, params, [op.inputs[0]], [op.outputs[0]], consts,
                  n_batch * n_filter * (n_input + memory),
                  f"SVDF {n_input} -> {n_unit} ({n_filter} filters, memory {memory})", dtype=dtype)
    layer.scratch_bytes = state_bytes
    return layer


def _lower_svdf_s8(graph, op, x, sizes) -> Layer:
    n_batch, n_input, n_filter, n_unit, memory = sizes
    y = tensor(graph, op, op.outputs[0], "output", ("int8",))
    state = _private_state(graph, op, 4, "activation state", ("int16",), n_batch * n_filter * memory)
    wf = _weights(graph, op, 1, "feature weights", "int8", n_input, n_filter)
    wt_t = tensor(graph, op, op.inputs[2], "time weights", ("int16",))
    if wt_t.data is None or len(wt_t.scales) != 1:
        raise unsupported(op, "time weights must be constant int16 with one scale")
    f32 = np.float32
    wf_scale = graph.tensor(op.inputs[1]).scale
    scale_1 = float(f32(f32(x.scale) * f32(wf_scale)) / f32(state.scale))
    scale_2 = float(f32(f32(state.scale) * f32(wt_t.scale)) / f32(y.scale))
    bias = graph.tensor(op.inputs[3])
    if bias is not None and (bias.dtype != "int32" or bias.data is None or bias.data.size != n_unit):
        raise unsupported(op, f"bias must be {n_unit} int32 constants")
    bias_values = np.zeros(n_unit, np.int32) if bias is None else bias.data.astype(np.int32).reshape(-1)
    params = dict(n_batch=n_batch, n_input=n_input, n_filter=n_filter, n_unit=n_unit, memory=memory,
                  input_zp=x.zero_point, output_zp=y.zero_point,
                  mul1=quant.quantize_multiplier(scale_1), mul2=quant.quantize_multiplier(scale_2))
    consts = [Const("w_feature", "int8_t", wf.reshape(-1)),
              Const("w_time", "int16_t", np.asarray(wt_t.data, np.int16).reshape(-1)),
              Const("bias", "int32_t", bias_values)]
    state_values = n_batch * n_filter * memory
    return _svdf_layer(op, "tb_svdf_s8_params", params, consts, sizes, "int8",
                       2 * (state_values + state_values % 2) + 4 * n_filter)


def _lower_svdf_f32(graph, op, x, sizes) -> Layer:
    n_batch, n_input, n_filter, n_unit, memory = sizes
    tensor(graph, op, op.outputs[0], "output", ("float32",))
    _private_state(graph, op, 4, "activation state", ("float32",), n_batch * n_filter * memory)
    wf = _weights(graph, op, 1, "feature weights", "float32", n_input, n_filter)
    wt = _weights(graph, op, 2, "time weights", "float32", memory, n_filter)
    params = dict(n_batch=n_batch, n_input=n_input, n_filter=n_filter, n_unit=n_unit, memory=memory,
                  activation=_float_activation(op, ("NONE", "RELU", "RELU6")),
                  has_bias=int(op.inputs[3] >= 0))
    consts = [Const("w_feature", "float", wf.reshape(-1)), Const("w_time", "float", wt.reshape(-1)),
              Const("bias", "float", _float_vector(graph, op, 3, "bias", n_unit))]
    return _svdf_layer(op, "tb_svdf_f32_params", params, consts, sizes, "float32",
                       4 * (n_batch * n_filter * memory + n_filter))


OPS = [OpDef("UNIDIRECTIONAL_SEQUENCE_LSTM", lower_lstm, "tb_lstm_s8", KERNEL_DIR / "recurrent.c",
             "tb_lstm_s8_params", LSTM_OPTIONS, typed={"float32": "tb_lstm_f32"},
             doc="int8 (TFLite's 8x8_16 kernel: int16 cell state, 5 intermediates) and float32 "
                 "(within the float tolerance); time-major or not, state kept across steps and reset "
                 "each inference; no CIFG/peephole/projection/layer norm"),
       OpDef("SVDF", lower_svdf, "tb_svdf_s8", KERNEL_DIR / "recurrent.c", "tb_svdf_s8_params",
             SVDF_OPTIONS, typed={"float32": "tb_svdf_f32"},
             doc="int8 (int16 state, no activation as TF 2.21's integer kernel) and float32 "
                 "(bit-exact, NONE/RELU/RELU6); one time step per inference, state reset each one")]
