"""Build-time side of the RV32IM int8 LSTM kernel (rv_lstm_s8.c): the input and
recurrent weights reordered from TFLite's [gate][cell][column] to
[cell][column][gate], so the kernel loads each input byte once for the four
gates of a cell. Bias, multipliers, params and scratch stay the reference's.
One batch; other layers keep the reference kernel."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from tinybuild.kernel_registry import KernelImpl
from tinybuild.lower import Const, Layer

SOURCE = Path(__file__).parent / "rv_lstm_s8.c"


def accepts(layer: Layer) -> bool:
    return layer.params_type == "tb_lstm_s8_params" and layer.params["n_batch"] == 1


def gates_side_by_side(w: np.ndarray, n_cell: int) -> np.ndarray:
    """[4][n_cell][n] weights as [n_cell][n][4]."""
    return np.asarray(w, np.int8).reshape(4, n_cell, -1).transpose(1, 2, 0).reshape(-1)


def prepare(layer: Layer) -> Layer:
    consts = {c.role: c for c in layer.consts}
    n_cell = layer.params["n_cell"]
    return replace(layer, consts=[
        Const("w_in4", "int8_t", gates_side_by_side(consts["w_in"].values, n_cell)),
        Const("w_rec4", "int8_t", gates_side_by_side(consts["w_rec"].values, n_cell)),
        consts["bias"], consts["gate_mul"]],
        args=["w_in4", "w_rec4", "bias", "gate_mul"],
        notes=layer.notes + ["gate products four gates at a time (weights reordered to "
                             "[cell][column][gate]); activations and cell update: the reference's"])


def kernels() -> list[KernelImpl]:
    return [KernelImpl("UNIDIRECTIONAL_SEQUENCE_LSTM", "tb_rv_lstm_s8", (SOURCE,), priority=10,
                       accepts=accepts, prepare=prepare,
                       name="tb_rv_lstm_s8 (four gates per input load)")]
