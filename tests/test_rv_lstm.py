"""The RV32IM int8 LSTM kernel (targets/riscv/kernels/rv_lstm_s8.c): on the host
(its C compiled natively) against TFLite's reference kernels on LSTMs of several
shapes, time orders, cell scales and state zero points; batches left to the
reference; the weight reorder; in the simulator (slow) the LSTM keyword
spotter on riscv and esp32c3 matches TFLite byte for byte and its LSTM runs
fewer instructions and cycles than with kernels=reference."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tbtest import ROOT

sys.path.insert(0, str(ROOT / "tests" / "ops"))
import test_recurrent  # noqa: E402,F401  (its model builders)

from test_e2e import scons  # noqa: E402

RV_LSTM = ROOT / "targets" / "riscv" / "kernels" / "rv_lstm_s8.c"
LSTM_KWS = ROOT / "tests" / "data" / "recurrent" / "lstm_kws_int8.tflite"


def rv_lstm_kernels() -> list:
    from tinybuild import plugins
    pm = plugins.make_plugin_manager()
    return [k for k in plugins.kernels(pm, plugins.find_target(pm, "riscv"))
            if k.op == "UNIDIRECTIONAL_SEQUENCE_LSTM"]


def rv_outputs(tflite: Path, data: list[bytes], folder: Path) -> list[bytes]:
    """The model built natively with the riscv LSTM kernel offered."""
    from tinybuild import pipeline
    from tinybuild.host import build_host_model, run_host_model
    pipeline.generate(tflite, folder, rv_lstm_kernels())
    exe = build_host_model(folder, folder / "model_host", extra_sources=(RV_LSTM,))
    return [run_host_model(exe, d) for d in data]


@pytest.mark.parametrize("n_time, n_input, n_cell, time_major, cell_log2, zp", [
    (4, 3, 5, False, -15, -12), (7, 8, 16, False, -16, 5), (3, 13, 9, True, -11, 0),
    (16, 10, 32, False, -15, 40), (2, 1, 1, False, -12, -128), (5, 20, 4, True, -9, 7)])
def test_rv_lstm_kernel_matches_tflite(n_time, n_input, n_cell, time_major, cell_log2, zp, tmp_path):
    from test_recurrent import lstm_s8_model
    from tinybuild.reference import make_inputs, reference_outputs
    tflite = tmp_path / "lstm.tflite"
    tflite.write_bytes(lstm_s8_model(1, n_time, n_input, n_cell, time_major, state_q=(0.01, zp),
                                     cell_log2=cell_log2))
    data = make_inputs(tflite, 3, 1)
    got = rv_outputs(tflite, data, tmp_path / "build")
    assert "tb_rv_lstm_s8(" in (tmp_path / "build" / "model.c").read_text()
    assert got == reference_outputs(tflite, data)


def test_rv_lstm_kernel_leaves_batches_to_the_reference(tmp_path):
    from test_recurrent import lstm_s8_model
    from tinybuild import pipeline
    tflite = tmp_path / "lstm.tflite"
    tflite.write_bytes(lstm_s8_model(n_batch=2))
    pipeline.generate(tflite, tmp_path / "build", rv_lstm_kernels())
    assert "tb_lstm_s8(" in (tmp_path / "build" / "model.c").read_text()


def test_weights_reordered_gates_side_by_side():
    sys.path.insert(0, str(ROOT / "targets" / "riscv" / "kernels"))
    from rv_lstm import gates_side_by_side
    n_cell, n = 3, 5
    w = np.arange(4 * n_cell * n).astype(np.int8)
    got = gates_side_by_side(w, n_cell).reshape(n_cell, n, 4)
    for g in range(4):
        for r in range(n_cell):
            assert list(got[r, :, g]) == list(w[(g * n_cell + r) * n:(g * n_cell + r + 1) * n])


def lstm_figures(build_dir: Path, target: str) -> dict:
    report = json.loads(next(build_dir.glob(f"{target}/{LSTM_KWS.stem}*/report.json")).read_text())
    return next(layer for layer in report["layers"] if layer["op"] == "UNIDIRECTIONAL_SEQUENCE_LSTM")


@pytest.mark.slow
@pytest.mark.parametrize("target", ["riscv", "esp32c3"])
def test_rv_lstm_kernel_runs_fewer_instructions_in_the_simulator(target, tmp_path):
    figures = {}
    for kernels in ("optimized", "reference"):
        result = scons(tmp_path / kernels, f"target={target}", f"model={LSTM_KWS}",
                       f"kernels={kernels}")
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        assert "output matches TFLite reference: yes, byte for byte" in result.stdout
        figures[kernels] = lstm_figures(tmp_path / kernels, target)
    assert figures["optimized"]["kernel"] == "tb_rv_lstm_s8"
    assert figures["optimized"]["instructions"] < figures["reference"]["instructions"]
    assert figures["optimized"]["cycles"] < figures["reference"]["cycles"]
