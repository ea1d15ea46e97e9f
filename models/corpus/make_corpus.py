#!/usr/bin/env python3
"""Make tinybuild's own model corpus: small Keras models, as a user would write them,
that exercise the operators of issue 11, converted to int8 ``.tflite`` here.

Every model is tiny (a few K parameters), built with seeded random weights
(``tf_keras.utils.set_random_seed(0)``; no training: the point is the operators,
shapes and quantization parameters a real export has) and converted with
TensorFlow's full-integer quantization and a seeded representative dataset
(64 standard-normal samples per input, ``numpy.random.default_rng(1)``).

    ./tb python models/corpus/make_corpus.py            # every model
    ./tb python models/corpus/make_corpus.py attention  # only the ones named

writes ``models/corpus/<name>.tflite`` (each < 50 KB, committed) and prints each
model's size and its TFLite operators. docs/corpus.md lists the models and what
each one covers; tests/test_corpus.py builds every one for every target.
"""
from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

HERE = Path(__file__).resolve().parent
CALIBRATION_SAMPLES = 64


def _keras():
    import tf_keras
    return tf_keras


def _tf():
    import tensorflow as tf
    return tf


def _attention(name: str, projection):
    keras, tf = _keras(), _tf()
    x = keras.Input((8, 16), batch_size=1, name="tokens")
    h = keras.layers.LayerNormalization()(x)
    q, k, v = projection()(h), projection()(h), projection()(h)
    kt = tf.transpose(k, perm=[0, 2, 1])
    scores = tf.matmul(q, kt) * 0.25
    weights = keras.layers.Softmax(axis=-1)(scores)
    context = tf.matmul(weights, v)
    y = keras.layers.Add()([x, projection()(context)])
    return keras.Model(x, y, name=name)


def attention():
    """Single-head self-attention over 8 tokens of 16: LayerNormalization, Q/K/V
    Dense projections (FULLY_CONNECTED over 8 rows), Q.K^T (BATCH_MATMUL with an
    explicit TRANSPOSE), SOFTMAX, .V, output projection, residual ADD."""
    return _attention("attention", lambda: _keras().layers.Dense(16))


def attention_conv1d():
    """The same block with Conv1D(16, 1) projections (EXPAND_DIMS/CONV_2D/RESHAPE
    in TFLite instead of a FULLY_CONNECTED over several rows)."""
    return _attention("attention_conv1d", lambda: _keras().layers.Conv1D(16, 1))


def _hard_sigmoid(x):
    keras = _keras()
    return keras.layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)


def _hard_swish(x):
    keras = _keras()
    return keras.layers.Multiply()([x, _hard_sigmoid(x)])


def mobilenetv3_block():
    """A MobileNetV3 inverted residual: 1x1 expand + hard-swish, depthwise 3x3 +
    hard-swish, squeeze-excite (global average pooling as MEAN, hard-sigmoid gate
    MUL), a LOGISTIC gate, 1x1 project, residual ADD; classifier head."""
    keras = _keras()
    x = keras.Input((12, 12, 8), batch_size=1, name="image")
    h = _hard_swish(keras.layers.Conv2D(24, 1)(x))
    h = _hard_swish(keras.layers.DepthwiseConv2D(3, padding="same")(h))
    se = keras.layers.GlobalAveragePooling2D(keepdims=True)(h)
    se = keras.layers.Conv2D(8, 1, activation="relu")(se)
    se = _hard_sigmoid(keras.layers.Conv2D(24, 1)(se))
    h = keras.layers.Multiply()([h, se])
    gate = keras.layers.Conv2D(24, 1, activation="sigmoid")(h)
    h = keras.layers.Multiply()([h, gate])
    h = keras.layers.Add()([x, keras.layers.Conv2D(8, 1)(h)])
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(x, keras.layers.Dense(5, activation="softmax")(h), name="mobilenetv3_block")


def unet_decoder():
    """U-Net style: two stride-2 encoders, a nearest-neighbour and a bilinear
    UpSampling2D (RESIZE_*), skip connections joined by CONCATENATION."""
    keras = _keras()
    x = keras.Input((16, 16, 3), batch_size=1, name="image")
    e1 = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    e2 = keras.layers.Conv2D(12, 3, strides=2, padding="same", activation="relu")(e1)
    d1 = keras.layers.UpSampling2D(2, interpolation="nearest")(e2)
    d1 = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(
        keras.layers.Concatenate()([d1, e1]))
    d0 = keras.layers.UpSampling2D(2, interpolation="bilinear")(d1)
    d0 = keras.layers.Concatenate()([d0, x])
    return keras.Model(x, keras.layers.Conv2D(2, 1)(d0), name="unet_decoder")


def padding():
    """ZeroPadding2D (symmetric and asymmetric: PAD) before VALID convolutions
    and a max pool."""
    keras = _keras()
    x = keras.Input((10, 10, 2), batch_size=1, name="image")
    h = keras.layers.ZeroPadding2D(1)(x)
    h = keras.layers.Conv2D(6, 3, activation="relu")(h)
    h = keras.layers.ZeroPadding2D(((0, 1), (2, 1)))(h)
    h = keras.layers.DepthwiseConv2D(3, strides=2)(h)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Flatten()(h)
    return keras.Model(x, keras.layers.Dense(4)(h), name="padding")


def _small_cnn(name: str):
    keras = _keras()
    x = keras.Input((8, 8, 1), batch_size=1, name="image")
    h = keras.layers.Conv2D(4, 3, activation="relu")(x)
    h = keras.layers.Flatten()(h)
    return keras.Model(x, keras.layers.Dense(3, activation="softmax")(h), name=name)


def float_interface():
    """int8 inside, float32 input and output (QUANTIZE / DEQUANTIZE at the edges)."""
    return _small_cnn("float_interface")


def uint8_interface():
    """int8 inside, uint8 input and output (TFLite still converts it)."""
    return _small_cnn("uint8_interface")


def two_in_two_out():
    """Two inputs (an image and a feature vector), two outputs (class
    probabilities and a regression head), joined by CONCATENATION."""
    keras = _keras()
    image = keras.Input((8, 8, 1), batch_size=1, name="image")
    features = keras.Input((6,), batch_size=1, name="features")
    h = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(image)
    h = keras.layers.Flatten()(h)
    f = keras.layers.Dense(8, activation="relu")(features)
    joint = keras.layers.Concatenate()([h, f])
    classes = keras.layers.Dense(3, activation="softmax", name="classes")(joint)
    value = keras.layers.Dense(2, name="value")(joint)
    return keras.Model([image, features], [classes, value], name="two_in_two_out")


def split_unpack():
    """tf.split into equal parts (SPLIT) and uneven parts (SPLIT_V), tf.unstack
    (UNPACK), each part through its own Dense, recombined."""
    keras, tf = _keras(), _tf()
    x = keras.Input((4, 12), batch_size=1, name="sequence")
    a, b, c = tf.split(x, 3, axis=-1)
    p, q = tf.split(x, [5, 7], axis=-1)
    rows = tf.unstack(x, axis=1)
    parts = [keras.layers.Flatten()(t) for t in (a, b, c, p, q)]
    parts += [keras.layers.Dense(4)(r) for r in rows]
    h = keras.layers.Concatenate()(parts)
    return keras.Model(x, keras.layers.Dense(4)(h), name="split_unpack")


def leaky_prelu():
    """LeakyReLU (LEAKY_RELU) and PReLU with a per-channel slope shared over
    height and width (PRELU)."""
    keras = _keras()
    x = keras.Input((8, 8, 3), batch_size=1, name="image")
    h = keras.layers.LeakyReLU(0.2)(keras.layers.Conv2D(6, 3)(x))
    prelu = keras.layers.PReLU(shared_axes=[1, 2],
                               alpha_initializer=keras.initializers.RandomUniform(0.05, 0.5))
    h = prelu(keras.layers.Conv2D(6, 3)(h))
    h = keras.layers.Flatten()(h)
    return keras.Model(x, keras.layers.Dense(3)(h), name="leaky_prelu")


def conv_transpose():
    """Conv2DTranspose (TRANSPOSE_CONV), stride 2 SAME and stride 1 VALID."""
    keras = _keras()
    x = keras.Input((6, 6, 4), batch_size=1, name="features")
    h = keras.layers.Conv2DTranspose(6, 3, strides=2, padding="same", activation="relu")(x)
    h = keras.layers.Conv2DTranspose(2, 2, padding="valid")(h)
    return keras.Model(x, h, name="conv_transpose")


def argmax():
    """A classifier that returns the class index: ARG_MAX (int32 output)."""
    keras, tf = _keras(), _tf()
    x = keras.Input((8, 8, 1), batch_size=1, name="image")
    h = keras.layers.Conv2D(4, 3, activation="relu")(x)
    h = keras.layers.Dense(5)(keras.layers.Flatten()(h))
    return keras.Model(x, tf.argmax(h, axis=-1, output_type=tf.int32), name="argmax")


# name -> (builder, inference_input_type, inference_output_type); None: float32
MODELS = {
    "attention": (attention, "int8", "int8"),
    "attention_conv1d": (attention_conv1d, "int8", "int8"),
    "mobilenetv3_block": (mobilenetv3_block, "int8", "int8"),
    "unet_decoder": (unet_decoder, "int8", "int8"),
    "padding": (padding, "int8", "int8"),
    "float_interface": (float_interface, None, None),
    "uint8_interface": (uint8_interface, "uint8", "uint8"),
    "two_in_two_out": (two_in_two_out, "int8", "int8"),
    "split_unpack": (split_unpack, "int8", "int8"),
    "leaky_prelu": (leaky_prelu, "int8", "int8"),
    "conv_transpose": (conv_transpose, "int8", "int8"),
    "argmax": (argmax, "int8", None),
}


def representative_dataset(model):
    """Seeded standard-normal samples, one array per model input, keyed by the
    input's name (the converted model may order its inputs differently)."""
    rng = np.random.default_rng(1)
    inputs = {t.name.split(":")[0]: tuple(t.shape) for t in model.inputs}
    samples = [{name: rng.standard_normal(shape).astype(np.float32)
                for name, shape in inputs.items()}
               for _ in range(CALIBRATION_SAMPLES)]

    def gen():
        yield from samples
    return gen


def convert(model, input_type: str | None, output_type: str | None) -> bytes:
    tf = _tf()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if input_type:
        converter.inference_input_type = getattr(tf, input_type)
    if output_type:
        converter.inference_output_type = getattr(tf, output_type)
    return converter.convert()


def operators(tflite_bytes: bytes) -> Counter:
    import tflite
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    model = tflite.Model.GetRootAsModel(tflite_bytes, 0)
    graph = model.Subgraphs(0)
    counts = Counter()
    for i in range(graph.OperatorsLength()):
        code = model.OperatorCodes(graph.Operators(i).OpcodeIndex())
        counts[names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")] += 1
    return counts


def make(name: str) -> Path:
    build, input_type, output_type = MODELS[name]
    _keras().utils.set_random_seed(0)
    data = convert(build(), input_type, output_type)
    out = HERE / f"{name}.tflite"
    out.write_bytes(data)
    ops = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in sorted(operators(data).items()))
    print(f"{out.name}: {len(data):,} B: {ops}")
    return out


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        print(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}", file=sys.stderr)
        return 2
    for name in names or MODELS:
        make(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
