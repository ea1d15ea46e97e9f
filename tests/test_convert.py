"""tinybuild.convert: Keras/SavedModel/.tflite -> fully int8 .tflite, with a float-vs-int8 report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinybuild.convert import check_fully_int8, convert_model, load_calibration, tflite_io
from tinybuild.errors import TinybuildError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "models" / "mlperf_tiny"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/models/mlperf_tiny")

SAMPLE_SHAPE = (8, 6, 1)


def _tiny_keras3_model(path: Path) -> Path:
    """A small conv classifier saved with Keras 3 (.keras)."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=SAMPLE_SHAPE)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5)(x)
    out = keras.layers.Softmax()(x)
    keras.Model(inp, out).save(path)
    return path


def _tiny_tf_keras_h5(path: Path) -> Path:
    """A small Keras 2 (tf_keras) .h5 with a DepthwiseConv2D: Keras 3 refuses its config."""
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    inp = tf_keras.Input(shape=SAMPLE_SHAPE)
    x = tf_keras.layers.Conv2D(4, 3, padding="same")(inp)
    x = tf_keras.layers.BatchNormalization()(x)
    x = tf_keras.layers.ReLU()(x)
    x = tf_keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    out = tf_keras.layers.Dense(3, activation="softmax")(x)
    tf_keras.Model(inp, out).save(path)
    return path


def _calib(n: int = 16, shape=SAMPLE_SHAPE, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-2, 2, size=(n, *shape)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A converted tiny Keras 3 model: (src, calib path, dst, report path, report)."""
    d = tmp_path_factory.mktemp("tiny")
    src = _tiny_keras3_model(d / "tiny.keras")
    calib = d / "samples.npy"
    np.save(calib, _calib())
    dst, rep = d / "out" / "tiny_int8.tflite", d / "out" / "report.json"
    report = convert_model(src, dst, calib, rep)
    return src, calib, dst, rep, report


def test_import_does_not_import_tensorflow():
    code = ("import sys, tinybuild.convert, tinybuild.reference, tinybuild.importer, "
            "tinybuild.flatbuffer_check, tinybuild.isolated, tinybuild.pipeline; "
            "sys.exit(1 if 'tensorflow' in sys.modules or 'keras' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_keras3_model_converts_to_full_int8(tiny):
    src, calib, dst, rep, report = tiny
    check_fully_int8(dst)  # raises if not
    io = tflite_io(dst)
    assert [t["type"] for t in io["inputs"] + io["outputs"]] == ["INT8", "INT8"]
    assert io["inputs"][0]["shape"] == [1, *SAMPLE_SHAPE]
    assert io["outputs"][0]["shape"] == [1, 5]
    assert report["mode"] == "quantized"
    assert report["loader"] == "keras"
    assert report["num_samples"] == 16
    assert report["calibration"] == str(calib)
    assert 0.0 <= report["top1_agreement"] <= 1.0
    assert report["top1_agreement"] >= 0.75  # a tiny softmax model quantizes well
    assert 0.0 <= report["mean_abs_diff"] <= report["max_abs_diff"] < 0.25
    assert json.loads(rep.read_text()) == report


def test_num_calibration_limits_samples(tiny, tmp_path):
    src, calib, *_ = tiny
    report = convert_model(src, tmp_path / "m.tflite", calib, None, num_calibration=5)
    assert report["num_samples"] == 5


def test_int8_tflite_is_copied(tiny, tmp_path):
    _, _, dst, _, _ = tiny
    out = tmp_path / "copy.tflite"
    report = convert_model(dst, out, None, tmp_path / "r.json")
    assert out.read_bytes() == dst.read_bytes()
    assert report["mode"] == "copied" and report["top1_agreement"] is None
    assert json.loads((tmp_path / "r.json").read_text())["mode"] == "copied"


def _float_tflite(tiny, path, dynamic_range=False):
    """The tiny Keras model as a float .tflite (or, with ``dynamic_range``, with
    int8 weights and float activations: no representative dataset)."""
    import tensorflow as tf

    from tinybuild import convert
    fm = convert._load_keras(tf, tiny[0])        # its variables frozen as tinybuild does
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fm.concrete_fn], fm.trackable)
    if dynamic_range:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    path.write_bytes(conv.convert())
    return path


def test_float_tflite_is_copied_as_float32_and_quant_on_it_is_refused(tiny, tmp_path):
    flt = _float_tflite(tiny, tmp_path / "float.tflite")
    report = convert_model(flt, tmp_path / "out.tflite", None, None)
    assert report["mode"] == "copied" and report["quant"] == "float32"
    with pytest.raises(TinybuildError, match=r"quant=int16x8: .*float\.tflite is a \.tflite, which "
                                             r"keeps the types.*\(float32 inside\)"):
        convert_model(flt, tmp_path / "out2.tflite", None, None, quant="int16x8")
    assert not (tmp_path / "out2.tflite").exists()
    same = convert_model(flt, tmp_path / "out3.tflite", None, None, quant="float32")
    assert same["quant"] == "float32"                     # asking for what it already is is fine


def test_dynamic_range_tflite_is_refused_saying_what_it_is(tmp_path):
    import keras

    keras.utils.set_random_seed(0)          # TFLite leaves weights under 1024 values float
    inp = keras.Input(shape=(32,))
    keras.Model(inp, keras.layers.Dense(64)(inp)).save(tmp_path / "dense.keras")
    path = _float_tflite([tmp_path / "dense.keras"], tmp_path / "hybrid.tflite", dynamic_range=True)
    with pytest.raises(TinybuildError, match=r"hybrid\.tflite: a dynamic-range \(hybrid\).*"
                                             r"FULLY_CONNECTED \(layer 0\).*Fix: export with a "
                                             r"representative"):
        convert_model(path, tmp_path / "out.tflite", None, None)
    assert not (tmp_path / "out.tflite").exists()


def test_unknown_quant_is_one_line(tiny, tmp_path):
    with pytest.raises(TinybuildError, match=r"quant=int4: not a quantization.*int8, int16x8, float32"):
        convert_model(tiny[0], tmp_path / "out.tflite", None, None, quant="int4")


@pytest.mark.slow
@pytest.mark.parametrize("quant,dtype", [("int16x8", "INT16"), ("float32", "FLOAT32")])
def test_keras_model_converted_with_quant(tiny, tmp_path, quant, dtype):
    from tinybuild.convert import read_tflite, tflite_kind
    out = tmp_path / f"{quant}.tflite"
    report = convert_model(tiny[0], out, tiny[1], None, num_calibration=8, quant=quant)
    assert report["quant"] == quant and report["input"]["type"] == dtype
    assert tflite_kind(read_tflite(out)) == quant
    assert report["top1_agreement"] is not None and report["max_abs_diff"] >= 0


def test_tf_keras_h5_fallback_and_default_calibration_beside_model(tmp_path, capsys):
    src = _tiny_tf_keras_h5(tmp_path / "dw.h5")
    np.save(tmp_path / "dw_calib.npy", _calib(12))
    report = convert_model(src, tmp_path / "dw.tflite", None, None)
    assert report["loader"] == "tf_keras"  # Keras 3 refuses DepthwiseConv2D's `groups`
    assert report["calibration"] == str(tmp_path / "dw_calib.npy")
    assert report["num_samples"] == 12
    check_fully_int8(tmp_path / "dw.tflite")
    err = capsys.readouterr().err
    assert "[convert] loading" in err and "[convert] calibrating on 12 samples" in err


def test_random_default_calibration_warns(tiny, tmp_path, capsys):
    src = tmp_path / "nocal.keras"
    src.write_bytes(tiny[0].read_bytes())
    report = convert_model(src, tmp_path / "nocal.tflite", None, None, num_calibration=8)
    assert report["calibration"].startswith("default")
    assert report["num_samples"] == 8
    assert "WARNING" in capsys.readouterr().err


def test_corrupt_h5_names_the_file(tmp_path):
    bad = tmp_path / "broken_model.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 50)
    with pytest.raises(TinybuildError, match="broken_model.h5") as ei:
        convert_model(bad, tmp_path / "o.tflite", None, None)
    assert "Fix" in str(ei.value)


def test_corrupt_tflite_names_the_file(tmp_path):
    bad = tmp_path / "junk.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(TinybuildError, match="junk.tflite.*not a TFLite flatbuffer"):
        convert_model(bad, tmp_path / "o.tflite", None, None)


def test_missing_and_unsupported(tmp_path):
    with pytest.raises(TinybuildError, match="nope.h5.*not found"):
        convert_model(tmp_path / "nope.h5", tmp_path / "o.tflite", None, None)
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(TinybuildError, match=r"model.onnx.*unsupported model format '\.onnx'"):
        convert_model(onnx, tmp_path / "o.tflite", None, None)


def test_wrong_shape_calibration_file(tmp_path):
    f = tmp_path / "cal.npy"
    np.save(f, np.zeros((4, 49, 10), np.float32))
    with pytest.raises(TinybuildError) as ei:
        load_calibration(f, (49, 10, 1))
    msg = str(ei.value)
    assert "cal.npy" in msg and "[4, 49, 10]" in msg and "[N, 49, 10, 1]" in msg


def test_npz_calibration_uses_first_array(tmp_path):
    f = tmp_path / "cal.npz"
    np.savez(f, a=np.ones((3, 2, 2), np.float64), b=np.zeros((5, 7)))
    x = load_calibration(f, (2, 2), limit=2)
    assert x.shape == (2, 2, 2) and x.dtype == np.float32


def test_wrong_shape_calibration_in_convert(tiny, tmp_path):
    f = tmp_path / "bad_cal.npy"
    np.save(f, _calib(4, shape=(6, 8, 1)))
    with pytest.raises(TinybuildError, match=r"bad_cal.npy.*\[4, 6, 8, 1\].*\[N, 8, 6, 1\]"):
        convert_model(tiny[0], tmp_path / "o.tflite", f, None)


def test_two_input_model_is_refused(tmp_path):
    import keras

    a, b = keras.Input(shape=(4,)), keras.Input(shape=(4,))
    out = keras.layers.Dense(2)(keras.layers.Concatenate()([a, b]))
    src = tmp_path / "two_in.keras"
    keras.Model([a, b], out).save(src)
    with pytest.raises(TinybuildError, match="two_in.keras.*2 inputs.*exactly one input"):
        convert_model(src, tmp_path / "o.tflite", None, None)


@pytest.mark.slow
def test_mlperf_ad01_h5(tmp_path):
    src = SHARED / "ad01.h5"
    if not src.is_file():
        pytest.skip(f"{src} absent")
    report = convert_model(src, tmp_path / "ad01.tflite", None, None, num_calibration=8)
    assert report["loader"] in ("keras", "tf_keras")
    check_fully_int8(tmp_path / "ad01.tflite")
    assert tflite_io(tmp_path / "ad01.tflite")["inputs"][0]["shape"] == [1, 640]


@pytest.mark.slow
@pytest.mark.parametrize("name,shape,loader", [("vww_96.h5", [1, 96, 96, 3], "tf_keras"),
                                                ("pretrainedResnet.h5", [1, 32, 32, 3], "keras"),
                                                ("str_ww_ref_model.h5", [1, 30, 1, 40], "tf_keras")])
def test_mlperf_h5_models(tmp_path, name, shape, loader):
    src = SHARED / name
    if not src.is_file():
        pytest.skip(f"{src} absent")
    out = tmp_path / (src.stem + ".tflite")
    report = convert_model(src, out, None, None, num_calibration=4)
    assert report["loader"] == loader
    check_fully_int8(out)
    assert tflite_io(out)["inputs"][0]["shape"] == shape


@pytest.mark.slow
def test_mlperf_kws_saved_model(tmp_path):
    src = SHARED / "kws_ref_model_savedmodel"
    if not src.is_dir():
        pytest.skip(f"{src} absent")
    report = convert_model(src, tmp_path / "kws.tflite", None, None, num_calibration=8)
    assert report["loader"] == "saved_model"
    check_fully_int8(tmp_path / "kws.tflite")


@pytest.mark.slow
def test_project_kws_h5_agreement(tmp_path):
    src = REPO / "models" / "kws.h5"
    if not src.is_file():
        pytest.skip("models/kws.h5 not built (python models/make_kws.py)")
    report = convert_model(src, tmp_path / "kws.tflite", None, tmp_path / "kws.json")
    assert report["calibration"].endswith("kws_calib.npy")
    assert report["num_samples"] == 100
    assert report["top1_agreement"] >= 0.95


# -- calibration files that are not arrays ------------------------------------------------

def test_text_file_named_npy_is_not_an_array_file(tmp_path):
    f = tmp_path / "samples.npy"
    f.write_text("0.1, 0.2, 0.3\n0.4, 0.5, 0.6\n")
    with pytest.raises(TinybuildError) as info:
        load_calibration(f, (3,))
    message = str(info.value)
    assert message.startswith(f"{f}: not a .npy array file")
    assert "np.save('calib.npy', samples)" in message and "allow_pickle" not in message


def test_pickled_object_array_is_never_loaded(tmp_path):
    f = tmp_path / "objects.npy"
    np.save(f, np.array([{"x": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(TinybuildError) as info:
        load_calibration(f, (1,))
    message = str(info.value)
    assert "holds Python objects (pickled data), which tinybuild never loads" in message
    assert "allow_pickle" not in message and "np.save(" in message


def test_calibration_messages_escape_the_path(tmp_path):
    f = tmp_path / "bad\x1b[2Kname.npy"
    f.write_bytes(b"junk")
    with pytest.raises(TinybuildError) as info:
        load_calibration(f, (1,))
    assert "\x1b" not in str(info.value) and "bad\\x1b[2Kname.npy" in str(info.value)


# -- Keras layers TFLite keeps in float ---------------------------------------------------

@pytest.mark.slow
def test_elu_layer_is_named_as_float_leftover(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=SAMPLE_SHAPE)
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)
    x = keras.layers.ELU(name="my_elu")(x)
    out = keras.layers.Dense(3)(keras.layers.Flatten()(x))
    src = tmp_path / "elu.keras"
    keras.Model(inp, out).save(src)
    dst = tmp_path / "elu.tflite"
    with pytest.raises(TinybuildError) as info:
        convert_model(src, dst, None, None, num_calibration=4)
    message = str(info.value)
    assert message.startswith(f"{src}: TFLite could not quantize every operator to int8: ELU (layer ")
    assert "my_elu" in message and "stayed float" in message
    assert "quant=float32" in message
    assert ".tmp" not in message and "give tinybuild the float model" not in message
    assert not dst.exists() and not list(tmp_path.glob("*.tmp"))


@pytest.mark.slow
def test_gru_not_unrolled_is_refused_before_the_converter(tmp_path):
    import keras

    inp = keras.Input(shape=(10, 4))
    out = keras.layers.Dense(3)(keras.layers.GRU(5, name="my_gru")(inp))
    src = tmp_path / "gru.keras"
    keras.Model(inp, out).save(src)
    with pytest.raises(TinybuildError) as info:
        convert_model(src, tmp_path / "gru.tflite", None, None, num_calibration=4)
    message = str(info.value)
    assert "recurrent layer(s) 'my_gru' (GRU) are not unrolled" in message
    assert "WHILE" in message and "Fix: build the layer with unroll=True" in message
