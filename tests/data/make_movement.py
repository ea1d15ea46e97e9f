"""Regenerate movement_int8.tflite: an 8x8x3 -> 4 classes int8 model (dynamic
batch) whose middle is the data movement family: PAD, SPLIT, TRANSPOSE,
CONCATENATION, STRIDED_SLICE, GATHER, UNPACK/PACK and TF's dynamic flatten
(SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE, folded at build time), for the
end-to-end builds (cortex-m4, esp32c3).

    ./tb python tests/data/make_movement.py
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))


def build_model():
    import tensorflow as tf
    import tf_keras as keras

    L = keras.layers
    x = L.Input((8, 8, 3))                                                 # batch: dynamic
    c = L.Conv2D(8, 3, activation="relu")(L.ZeroPadding2D(1)(x))           # PAD
    a, b = L.Lambda(lambda t: tf.split(t, 2, axis=-1))(c)                  # SPLIT
    a = L.Permute((2, 1, 3))(a)                                            # TRANSPOSE
    j = L.Concatenate()([b, a])                                            # CONCATENATION
    j = L.Lambda(lambda t: tf.pad(t, [[0, 0], [1, 0], [0, 2], [0, 0]]))(j)  # PAD
    j = L.Lambda(lambda t: tf.pad(t, [[0, 0], [0, 1], [0, 0], [0, 0]], constant_values=0.5))(j)  # PADV2
    s = L.Lambda(lambda t: t[:, 1:7:2, ::-1, :])(j)                        # STRIDED_SLICE
    g = L.Lambda(lambda t: tf.gather(t, [7, 0, 3, 3, 5], axis=-1))(s)      # GATHER
    rows = L.Lambda(lambda t: tf.stack(tf.unstack(t, axis=1)[::-1], axis=1))(g)  # UNPACK, PACK
    flat = L.Lambda(lambda t: tf.reshape(t, [tf.shape(t)[0], 3 * 10 * 5]))(rows)  # SHAPE chain, RESHAPE
    return keras.Model(x, L.Softmax()(L.Dense(4)(flat)))


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
    (HERE / "movement_int8.tflite").write_bytes(converter.convert())


if __name__ == "__main__":
    main()
