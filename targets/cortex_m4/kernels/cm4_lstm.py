"""Build-time side of the Cortex-M4 int8 LSTM kernel (cm4_lstm_s8.c): it takes
the reference kernel's params and constants as they are (weights in TFLite's
row order: SMLAD pairs bytes 0,2 and 1,3 of the input and of each weight row
alike) and needs scratch for the input and output state unpacked to halfword
pairs, after the reference's state and gates. One batch; other layers keep the
reference kernel."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tinybuild.kernel_registry import KernelImpl
from tinybuild.lower import Layer

SOURCE = Path(__file__).parent / "cm4_lstm_s8.c"


def accepts(layer: Layer) -> bool:
    return layer.params_type == "tb_lstm_s8_params" and layer.params["n_batch"] == 1


def unpacked_bytes(p: dict) -> int:
    """The two halfword-pair vectors, after up to 3 bytes that align them."""
    return 3 + 2 * (p["n_input"] // 4 * 4) + 2 * (p["n_cell"] // 4 * 4)


def prepare(layer: Layer) -> Layer:
    return replace(layer, scratch_bytes=layer.scratch_bytes + unpacked_bytes(layer.params),
                   notes=layer.notes + ["gate products with SMLAD (2 MACs per instruction); "
                                        "activations and cell update: the reference's"])


def kernels() -> list[KernelImpl]:
    return [KernelImpl("UNIDIRECTIONAL_SEQUENCE_LSTM", "tb_cm4_lstm_s8", (SOURCE,), priority=10,
                       accepts=accepts, prepare=prepare, name="tb_cm4_lstm_s8 (DSP gate products)")]
