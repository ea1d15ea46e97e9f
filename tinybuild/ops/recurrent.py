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


def _private_state(graph, op, index: int, what: str, dtypes):
    """A state tensor: only this op may read it and it may not be a model output."""
    if not _present(op, index):
        raise unsupported(op, f"no {what} tensor")
    t = tensor(graph, op, op.inputs[index], what, dtypes)
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
    h = _private_state(graph, op, OUTPUT_STATE, "output state", ("int8",))
    c = _private_state(graph, op, CELL_STATE, "cell state", ("int16",))
    hidden = _hidden(graph, op)
    w_in, w_rec, biases, muls = _lstm_s8_constants(graph, op, x, h, n_input, n_cell)
    f32 = np.float32
    eff_hidden = f32(f32(2.0 ** -15) / f32(hidden.scale)) * f32(2.0 ** -15)
    cell_clip = float(op.options.get("CellClip", 0.0) or 0.0)
    q_clip = 0
    if cell_clip > 0:
        q_clip = int(max(min(f32(cell_clip) / f32(c.scale), f32(32767.0)), f32(-32768.0)))
    params = dict(n_batch=n_batch, n_time=n_time, n_input=n_input, n_cell=n_cell,
                  time_major=int(time_major), output_state_zp=h.zero_point,
                  hidden_mul=quant.quantize_multiplier(float(eff_hidden)),
                  hidden_zp=hidden.zero_point, cell_log2=_log2_exact(op, c.scale, "cell state"),
                  cell_clip=q_clip)
    consts = [Const("w_in", "int8_t", w_in.reshape(-1)), Const("w_rec", "int8_t", w_rec.reshape(-1)),
              Const("bias", "int32_t", biases.reshape(-1)), Const("gate_mul", "tb_quant_mul", mul_array(muls))]
    n = n_batch * n_cell
    layer = Layer(op.index, op.op, "tb_lstm_s8_params", params, [op.inputs[INPUT]], [op.outputs[0]],
                  consts, n_batch * n_time * 4 * n_cell * (n_input + n_cell),
                  f"LSTM {n_input} -> {n_cell} x {n_time} steps (int8, int16 cell)")
    layer.scratch_bytes = 2 * n + 8 * n + n
    _check_output(op, y, n_batch * n_time * n_cell)
    return layer


def _check_output(op, y, values: int) -> None:
    if int(np.prod(y.shape, dtype=np.int64)) != values:
        raise unsupported(op, f"output of shape {y.shape} ({values} values expected)")


def _lower_lstm_f32(graph, op, x) -> Layer:
    raise unsupported(op, "float32 LSTM is not compiled yet")


OPS = [OpDef("UNIDIRECTIONAL_SEQUENCE_LSTM", lower_lstm, "tb_lstm_s8", KERNEL_DIR / "recurrent.c",
             "tb_lstm_s8_params", LSTM_OPTIONS,
             doc="int8 (TFLite's 8x8_16 kernel: int16 cell state, 5 intermediates) and float32; "
                 "time-major or not, state kept across steps; no CIFG/peephole/projection/layer norm")]
