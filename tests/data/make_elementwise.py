"""Regenerate elementwise_int8.tflite: a 6x6x3 -> 3 classes int8 model whose
middle is the elementwise family with broadcasting and constant operands
(PRELU with shared axes, MUL by a constant vector, SUB and SQUARED_DIFFERENCE
of a pooled 1x1 tensor, MAXIMUM, MINIMUM with a constant, ADD), for the
end-to-end builds (cortex-m4, esp32c3).

    ./tb python tests/data/make_elementwise.py
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))


def build_model():
    import tensorflow as tf
    import tf_keras as keras

    L = keras.layers
    x = L.Input((6, 6, 3), batch_size=1)
    c = L.Conv2D(4, 3, padding="same")(x)
    p = L.PReLU(shared_axes=[1, 2])(c)
    m = L.Lambda(lambda t: t * tf.constant([0.5, -1.5, 2.0, 1.0]))(p)       # MUL, constant (4,)
    g = L.AveragePooling2D(pool_size=6)(m)                                  # 1x1x1x4
    sub = L.Lambda(lambda t: t[0] - t[1])([m, g])                          # SUB, broadcast
    sq = L.Lambda(lambda t: tf.math.squared_difference(t[0], t[1]))([p, g])
    mx = L.Maximum()([sub, sq])
    mn = L.Lambda(lambda t: tf.minimum(t, 0.75))(sub)                       # MINIMUM, constant
    a = L.Add()([mx, mn])
    y = L.Dense(3)(L.Flatten()(a))
    return keras.Model(x, L.Softmax()(y))


def main() -> None:
    """Converted in-process (the Lambda layers do not survive an .h5 file) the
    way tinybuild.convert does: full-integer int8 with a representative dataset."""
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    model = build_model()
    samples = np.random.default_rng(0).standard_normal((32, 1, 6, 6, 3)).astype("float32")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    (HERE / "elementwise_int8.tflite").write_bytes(converter.convert())


if __name__ == "__main__":
    main()
