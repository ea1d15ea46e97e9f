"""Keras models exported with tf2onnx into the ONNX importer (issue 13, "ONNX models made here").

Two Keras models are made here with seeded weights (so BatchNormalization has real statistics
and the float-vs-int8 agreement means something): a small DS-CNN like models/make_kws.py's KWS
(1-channel 49x10 input) and a CNN with BatchNormalization after its convolutions and after a
Dense. tf2onnx (from_function on a tf.function with a fixed [1, H, W, C] signature, opset 13)
writes them with NHWC<->NCHW Transposes (or, for one channel, Reshapes) around the convolutions;
the importer must relabel them, so no TRANSPOSE reaches the device. The fast tests check the
export and the float32 import against onnxruntime; the slow ones build through SCons in the
simulator and validate byte for byte against TFLite's BUILTIN_REF.
"""
import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf2onnx = pytest.importorskip("tf2onnx")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
tf = pytest.importorskip("tensorflow")
tf_keras = pytest.importorskip("tf_keras")

from tinybuild import onnx_import  # noqa: E402
from tinybuild.importer import load_graph  # noqa: E402

OPSET = 13
SHAPES = {"kws_tf2onnx": (49, 10, 1), "bn_cnn_tf2onnx": (12, 12, 3)}


def _ds_cnn():
    """KWS's DS-CNN shape, narrower: Conv 10x4/2 + BN + ReLU, 2 x (depthwise + BN + ReLU,
    1x1 conv + BN + ReLU), AveragePooling over the whole map, Flatten, Dense 12, Softmax."""
    layers = tf_keras.layers
    x = layers.Input(SHAPES["kws_tf2onnx"], batch_size=1)
    h = _bn_relu(layers.Conv2D(16, (10, 4), strides=2, padding="same")(x))
    for _ in range(2):
        h = _bn_relu(layers.DepthwiseConv2D(3, padding="same")(h))
        h = _bn_relu(layers.Conv2D(16, 1)(h))
    h = layers.Flatten()(layers.AveragePooling2D((25, 5))(h))
    return tf_keras.Model(x, layers.Dense(12, activation="softmax")(h))


def _bn_cnn():
    """3-channel input (tf2onnx writes a real Transpose to NCHW), Conv + BN + ReLU twice with a
    MaxPool between, Flatten of a 4x4x8 map (NHWC order matters), Dense + BN + ReLU, Dense 5."""
    layers = tf_keras.layers
    x = layers.Input(SHAPES["bn_cnn_tf2onnx"], batch_size=1)
    h = layers.MaxPooling2D(2)(_bn_relu(layers.Conv2D(8, 3, padding="same")(x)))
    h = layers.Flatten()(_bn_relu(layers.Conv2D(8, 3)(h)))
    h = _bn_relu(layers.Dense(16)(h))
    return tf_keras.Model(x, layers.Dense(5, activation="softmax")(h))


def _bn_relu(h):
    return tf_keras.layers.ReLU()(tf_keras.layers.BatchNormalization()(h))


def _seed_weights(model, seed=5):
    """Untrained Keras BN is the identity (tf2onnx then drops it); seeded statistics make it real."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if isinstance(layer, tf_keras.layers.BatchNormalization):   # gamma, beta, mean, variance
            weights = [rng.uniform(0.5, 1.5, w.shape) if i in (0, 3) else rng.normal(0, 0.2, w.shape)
                       for i, w in enumerate(weights)]
        else:
            weights = [rng.normal(0, 1 / np.sqrt(max(np.prod(w.shape[:-1]), 1)), w.shape) for w in weights]
        layer.set_weights([w.astype(np.float32) for w in weights])
    return model


def _export(keras_model, shape, path):
    """tf2onnx's from_function on a fixed batch-1 NHWC signature, opset 13."""
    spec = (tf.TensorSpec((1, *shape), tf.float32, name="x"),)
    proto, _ = tf2onnx.convert.from_function(
        tf.function(lambda x: keras_model(x, training=False)), input_signature=spec, opset=OPSET)
    onnx.save(proto, str(path))
    return path


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Both models exported once, each with <stem>_calib.npy (NHWC, as the ONNX input) beside it."""
    folder = tmp_path_factory.mktemp("tf2onnx")
    rng = np.random.default_rng(3)
    paths = {}
    for stem, make in (("kws_tf2onnx", _ds_cnn), ("bn_cnn_tf2onnx", _bn_cnn)):
        paths[stem] = _export(_seed_weights(make()), SHAPES[stem], folder / f"{stem}.onnx")
        np.save(folder / f"{stem}_calib.npy", rng.standard_normal((32, *SHAPES[stem])).astype(np.float32))
    return paths


@pytest.mark.parametrize("stem", sorted(SHAPES))
def test_the_export_is_a_checker_valid_opset_13_model_with_a_fixed_nhwc_input(exports, stem):
    model = onnx.load(str(exports[stem]))
    onnx.checker.check_model(model, full_check=True)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, *SHAPES[stem]]
    assert "Conv" in {node.op_type for node in model.graph.node}


@pytest.mark.parametrize("stem", sorted(SHAPES))
def test_the_float32_import_matches_onnxruntime_with_no_transpose(exports, stem, tmp_path):
    """quant=float32 leaves no quantization error: a mis-relabelled Transpose or a wrongly
    permuted Flatten/Dense shows as a difference against onnxruntime running the export."""
    dst = tmp_path / f"{stem}.tflite"
    report = onnx_import.convert_onnx(exports[stem], dst, None, None, quant="float32")
    assert report["max_abs_diff"] < 1e-5, report
    ops = [op.op for op in load_graph(dst).operators]
    assert "TRANSPOSE" not in ops and "CONV_2D" in ops, ops
    assert report["input_layout"] == "as ONNX"                 # tf2onnx's input is already NHWC


@pytest.mark.slow
@pytest.mark.parametrize("stem,target", [("kws_tf2onnx", "cortex-m4"), ("kws_tf2onnx", "esp32c3"),
                                         ("bn_cnn_tf2onnx", "cortex-m4")])
def test_a_tf2onnx_export_builds_and_matches_tflite(exports, stem, target, tmp_path):
    from test_e2e import scons
    result = scons(tmp_path / "build", f"target={target}", f"model={exports[stem]}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "output matches TFLite reference: yes, byte for byte" in result.stdout
    report = json.loads((tmp_path / "build" / target / stem / "report.json").read_text())
    assert "TRANSPOSE" not in [layer["op"] for layer in report["layers"]]
    assert report["conversion"]["top1_agreement"] >= 0.9, report["conversion"]
