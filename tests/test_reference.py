"""tinybuild.reference: deterministic validation inputs and TFLite reference-kernel outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinybuild.errors import TinybuildError
from tinybuild.reference import make_inputs, reference_outputs

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHAPE = (6, 5, 2)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny int8 classifier converted by tinybuild: (tflite path, calibration path)."""
    import keras

    from tinybuild.convert import convert_model

    d = tmp_path_factory.mktemp("ref")
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=SHAPE)
    x = keras.layers.Conv2D(3, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Softmax()(keras.layers.Dense(4)(x))
    src = d / "tiny.keras"
    keras.Model(inp, out).save(src)
    calib = d / "cal.npy"
    np.save(calib, np.random.default_rng(0).normal(size=(10, *SHAPE)).astype(np.float32))
    dst = d / "tiny_int8.tflite"
    convert_model(src, dst, calib, None)
    return dst, calib


def test_make_inputs_needs_no_tensorflow(model):
    tfl, calib = model
    code = ("import sys; from tinybuild.reference import make_inputs; "
            f"xs = make_inputs({str(tfl)!r}, 5, 3, {str(calib)!r}); "
            "assert len(xs) == 5; sys.exit(1 if 'tensorflow' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_make_inputs_deterministic_and_sized(model):
    tfl, calib = model
    a = make_inputs(tfl, 6, 7, calib)
    assert a == make_inputs(tfl, 6, 7, calib)
    assert len(a) == 6 and all(len(b) == int(np.prod(SHAPE)) for b in a)
    assert a[3:] != make_inputs(tfl, 6, 8, calib)[3:]  # the random part follows the seed
    assert make_inputs(tfl, 0, 0, calib) == []


def test_make_inputs_quantizes_calibration_first(model):
    from tinybuild.convert import tflite_io

    tfl, calib = model
    spec = tflite_io(tfl)["inputs"][0]
    x = np.load(calib)
    want = np.clip(np.round(x / spec["scale"]) + spec["zero_point"], -128, 127).astype(np.int8)
    got = make_inputs(tfl, 5, 0, calib)
    assert got[:3] == [w.tobytes() for w in want[:3]]  # ceil(5/2) calibration samples
    rand = np.frombuffer(b"".join(got[3:]), np.int8)
    assert rand.min() < -100 and rand.max() > 100  # full int8 range


def test_make_inputs_without_calibration_is_random(model):
    tfl, _ = model
    xs = make_inputs(tfl, 3, 0, None)
    assert len(xs) == 3 and len(set(xs)) == 3


def test_make_inputs_wrong_calibration_shape(model, tmp_path):
    tfl, _ = model
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 5, 6, 2), np.float32))
    with pytest.raises(TinybuildError, match=r"bad.npy.*\[2, 5, 6, 2\].*\[N, 6, 5, 2\]"):
        make_inputs(tfl, 4, 0, bad)


def test_reference_outputs_deterministic_and_input_dependent(model):
    tfl, calib = model
    xs = make_inputs(tfl, 6, 1, calib)
    out = reference_outputs(tfl, xs)
    assert len(out) == 6 and all(len(o) == 4 for o in out)  # 4 int8 scores
    assert reference_outputs(tfl, xs) == out
    assert reference_outputs(tfl, xs[::-1]) == out[::-1]  # no state carried between inputs
    assert len(set(out)) > 1


def test_reference_outputs_match_float_model_roughly(model):
    """The int8 reference on a quantized calibration sample tracks the softmax."""
    tfl, calib = model
    out = np.frombuffer(reference_outputs(tfl, make_inputs(tfl, 1, 0, calib))[0], np.int8)
    probs = (out.astype(np.float32) + 128) / 256.0  # softmax output: scale 1/256, zp -128
    assert abs(probs.sum() - 1.0) < 0.05


def test_reference_outputs_rejects_wrong_size(model):
    tfl, _ = model
    with pytest.raises(TinybuildError, match="input 0 has 3 bytes"):
        reference_outputs(tfl, [b"abc"])


def test_reference_outputs_corrupt_file(tmp_path):
    bad = tmp_path / "corrupt.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(TinybuildError, match="corrupt.tflite"):
        reference_outputs(bad, [b""])
