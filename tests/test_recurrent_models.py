"""The recurrent corpus (tests/data/recurrent, made by models/corpus/make_recurrent.py):
an LSTM keyword spotter, an unrolled GRU, a 1-D CNN + LSTM for accelerometer data and
an SVDF stack, each as int8 and float32.

* every model through the host path against TFLite's reference kernels (fast);
* every model built by SCons for cortex-m4, riscv and esp32c3, run in the simulator
  and validated (slow);
* Keras recurrent layers through the converter: a tf_keras LSTM, a Keras 3 LSTM
  (rebuilt in tf_keras, whose converter writes one LSTM op), float32 agreement with
  the LSTM state reset per sample (slow).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tbtest import ROOT

sys.path.insert(0, str(ROOT / "tests" / "ops"))
from harness import check  # noqa: E402
import test_recurrent  # noqa: E402,F401  (its model builders)

from test_e2e import scons  # noqa: E402
from tinybuild import convert  # noqa: E402

DATA = ROOT / "tests" / "data" / "recurrent"
MODELS = ("lstm_kws", "gru", "cnn_lstm", "svdf_stack")
QUANTS = ("int8", "float32")
TARGETS = ("cortex-m4", "riscv", "esp32c3")
# float32 LSTMs and GRUs: TFLite's GEMM summation order and libm's expf/tanhf are
# not reproducible in C, so their float outputs agree within a tolerance (the SVDF
# stack is bit-exact).
FLOAT_TOLERANCE = {"lstm_kws": 1e-4, "gru": 1e-4, "cnn_lstm": 1e-4, "svdf_stack": None}


def model_path(name: str, quant: str) -> Path:
    return DATA / f"{name}_{quant}.tflite"


def test_corpus_files_are_committed_and_small():
    found = {p.name for p in DATA.glob("*.tflite")}
    assert found == {f"{m}_{q}.tflite" for m in MODELS for q in QUANTS}
    assert all(p.stat().st_size < 50_000 for p in DATA.glob("*.tflite"))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("quant", QUANTS)
def test_model_matches_tflite_on_the_host(name, quant):
    tolerance = FLOAT_TOLERANCE[name] if quant == "float32" else None
    check(model_path(name, quant).read_bytes(), inputs=3, float_tolerance=tolerance)


def test_int8_lstm_model_is_int8_inside():
    """Its empty float32 gate-scale intermediates and int16 cell state do not make
    it a float or 16x8 model."""
    model = convert.read_tflite(model_path("lstm_kws", "int8"))
    assert convert.tflite_kind(model) == "int8"
    assert convert.tflite_kind(convert.read_tflite(model_path("svdf_stack", "int8"))) == "int8"


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("quant", QUANTS)
def test_model_builds_and_validates_in_the_simulator(name, quant, target, tmp_path):
    path = model_path(name, quant)
    result = scons(tmp_path, f"target={target}", f"model={path}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "output matches TFLite reference: yes" in result.stdout
    report = json.loads((tmp_path / target / path.stem / "report.json").read_text())
    assert report["validation"]["match"] and report["inference"]["instructions"] > 0


def _keras_lstm(keras, path: Path, name: str) -> Path:
    x = keras.Input((12, 4), batch_size=1)
    y = keras.layers.Dense(3)(keras.layers.LSTM(8, name=name)(x))
    keras.Model(x, y).save(path)
    return path


@pytest.mark.slow
def test_tf_keras_lstm_converts_to_one_lstm_op_and_agrees(tmp_path):
    import tf_keras
    src = _keras_lstm(tf_keras, tmp_path / "lstm.h5", "my_lstm")
    report = convert.convert_model(src, tmp_path / "lstm.tflite", None, None, num_calibration=16)
    assert report["loader"] == "tf_keras"
    # every sample starts from a reset LSTM state, as Keras runs it: int8 agrees
    assert report["top1_agreement"] >= 0.9
    model = convert.read_tflite(tmp_path / "lstm.tflite")
    assert convert.tflite_kind(model) == "int8"


@pytest.mark.slow
def test_keras3_lstm_is_converted_through_tf_keras(tmp_path):
    import keras
    src = _keras_lstm(keras, tmp_path / "lstm.keras", "k3_lstm")
    report = convert.convert_model(src, tmp_path / "lstm.tflite", None, None, num_calibration=16,
                                   quant="float32")
    assert report["loader"] == "tf_keras (rebuilt from Keras 3)"
    assert report["max_abs_diff"] < 1e-4      # the twin has the Keras 3 model's weights
    from tinybuild.importer import load_graph
    ops = [op.op for op in load_graph(tmp_path / "lstm.tflite").operators]
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops


# -- the cortex-m4 LSTM kernel (targets/cortex_m4/kernels/cm4_lstm_s8.c) -----------------------

CM4_LSTM = ROOT / "targets" / "cortex_m4" / "kernels" / "cm4_lstm_s8.c"


def cm4_lstm_kernels() -> list:
    from tinybuild import plugins
    pm = plugins.make_plugin_manager()
    return [k for k in plugins.kernels(pm, plugins.find_target(pm, "cortex-m4"))
            if k.op == "UNIDIRECTIONAL_SEQUENCE_LSTM"]


def cm4_outputs(tflite: Path, data: list[bytes], folder: Path) -> list[bytes]:
    """The model built natively with the cortex-m4 LSTM kernel offered (its portable
    C: the DSP intrinsics' fallbacks compute what the instructions compute)."""
    from tinybuild import pipeline
    from tinybuild.host import build_host_model, run_host_model
    pipeline.generate(tflite, folder, cm4_lstm_kernels())
    exe = build_host_model(folder, folder / "model_host", extra_sources=(CM4_LSTM,))
    return [run_host_model(exe, d) for d in data]


@pytest.mark.parametrize("n_time, n_input, n_cell, time_major, cell_log2, zp", [
    (4, 3, 5, False, -15, -12), (7, 8, 16, False, -16, 5), (3, 13, 9, True, -11, 0),
    (16, 10, 32, False, -15, 40), (2, 1, 1, False, -12, -128), (5, 20, 4, True, -9, 7)])
def test_cm4_lstm_kernel_matches_tflite(n_time, n_input, n_cell, time_major, cell_log2, zp, tmp_path):
    from test_recurrent import lstm_s8_model
    from tinybuild.reference import make_inputs, reference_outputs
    tflite = tmp_path / "lstm.tflite"
    tflite.write_bytes(lstm_s8_model(1, n_time, n_input, n_cell, time_major, state_q=(0.01, zp),
                                     cell_log2=cell_log2))
    data = make_inputs(tflite, 3, 1)
    got = cm4_outputs(tflite, data, tmp_path / "build")
    assert "tb_cm4_lstm_s8(" in (tmp_path / "build" / "model.c").read_text()
    assert got == reference_outputs(tflite, data)


def test_cm4_lstm_kernel_leaves_batches_to_the_reference(tmp_path):
    from test_recurrent import lstm_s8_model
    from tinybuild import pipeline
    tflite = tmp_path / "lstm.tflite"
    tflite.write_bytes(lstm_s8_model(n_batch=2))
    pipeline.generate(tflite, tmp_path / "build", cm4_lstm_kernels())
    assert "tb_lstm_s8(" in (tmp_path / "build" / "model.c").read_text()


@pytest.mark.slow
def test_cm4_lstm_kernel_runs_fewer_instructions_in_the_simulator(tmp_path):
    path = model_path("lstm_kws", "int8")
    counts = {}
    for kernels in ("optimized", "reference"):
        result = scons(tmp_path / kernels, "target=cortex-m4", f"model={path}", f"kernels={kernels}")
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        assert "output matches TFLite reference: yes, byte for byte" in result.stdout
        report = json.loads(next((tmp_path / kernels).glob(f"cortex-m4/{path.stem}*/report.json")).read_text())
        lstm = [layer for layer in report["layers"] if layer["op"] == "UNIDIRECTIONAL_SEQUENCE_LSTM"]
        counts[kernels] = lstm[0]["instructions"]
    assert counts["optimized"] < counts["reference"]
