"""Regenerate reduce_resize_int8.tflite: an 8x8x3 -> 4 classes int8 model for
the end-to-end builds of the reduce / matmul / resize / transposed-convolution
family (cortex-m4, esp32c3): TRANSPOSE_CONV (Conv2DTranspose, stride 2),
RESIZE_BILINEAR (UpSampling2D bilinear), RESIZE_NEAREST_NEIGHBOR, an
attention-style pair of BATCH_MATMULs (scores = t t^T, softmax, scores t),
REDUCE_MAX over channels, SUM and MEAN (global average pooling).

    ./tb python tests/data/make_reduce_resize.py
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))


def build_model():
    import tensorflow as tf
    import tf_keras as keras

    L = keras.layers
    x = L.Input((8, 8, 3), batch_size=1)
    c = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)        # 4x4x8
    up = L.Conv2DTranspose(4, 3, strides=2, padding="same")(c)                  # 8x8x4
    bi = L.UpSampling2D(interpolation="bilinear")(up)                           # 16x16x4
    nn = L.Lambda(lambda t: tf.image.resize(t, (6, 6), method="nearest"))(bi)   # 6x6x4
    tokens = L.Reshape((36, 4))(nn)
    scores = L.Lambda(lambda t: tf.matmul(t, t, transpose_b=True) * 0.5)(tokens)
    attn = L.Lambda(lambda s: tf.matmul(tf.nn.softmax(s), s[:, :, :4]))(scores)   # 36x4
    peak = L.Lambda(lambda t: tf.reduce_max(t, axis=-1, keepdims=True))(attn)     # 36x1
    total = L.Lambda(lambda t: tf.reduce_sum(t, axis=1))(L.Concatenate()([attn, peak]))
    pooled = L.GlobalAveragePooling2D()(nn)                                     # MEAN
    y = L.Dense(4)(L.Concatenate()([pooled, total]))
    return keras.Model(x, L.Softmax()(y))


def main() -> None:
    """Converted in-process (Lambda layers do not survive an .h5 file) as
    tinybuild.convert does: full-integer int8 with a representative dataset."""
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    model = build_model()
    samples = np.random.default_rng(0).standard_normal((32, 1, 8, 8, 3)).astype("float32")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    (HERE / "reduce_resize_int8.tflite").write_bytes(converter.convert())


if __name__ == "__main__":
    main()
