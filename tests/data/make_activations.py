"""Regenerate activations_int8.tflite: an 8x8x3 -> 4 classes int8 model whose
layers exercise tinybuild's activation and unary ops end to end (LEAKY_RELU,
HARD_SWISH, LOGISTIC, TANH, ABS, RELU6 around CONV_2D,
DEPTHWISE_CONV_2D, ADD, AVERAGE_POOL_2D, FULLY_CONNECTED, SOFTMAX).

    ./tb python tests/data/make_activations.py [output.tflite]
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build_keras_model():
    import tensorflow as tf
    import tf_keras as keras
    L = keras.layers
    keras.utils.set_random_seed(0)
    x = L.Input((8, 8, 3), batch_size=1)
    y = L.LeakyReLU(0.2)(L.Conv2D(8, 3, padding="same")(x))                        # LEAKY_RELU
    y = L.DepthwiseConv2D(3, padding="same")(y)
    y = L.Lambda(lambda t: t * tf.nn.relu6(t + 3.0) * (1.0 / 6.0))(y)              # HARD_SWISH
    y = L.Conv2D(8, 1)(y)
    y = L.Add()([L.Activation("sigmoid")(y), L.Activation("tanh")(y)])            # LOGISTIC, TANH
    y = L.Conv2D(8, 1)(y)
    y = L.ReLU(max_value=6.0)(L.Lambda(tf.abs)(y))                                  # ABS, RELU6
    y = L.AveragePooling2D(8)(y)
    y = L.Dense(4)(L.Flatten()(y))
    return keras.Model(x, L.Softmax()(y))


def convert(model) -> bytes:
    import numpy as np
    import tensorflow as tf
    samples = np.random.default_rng(0).standard_normal((64, 1, 8, 8, 3)).astype("float32")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


# NEG is left out: the converter keeps it float (DEQUANTIZE, NEG, QUANTIZE).


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "activations_int8.tflite"
    out.write_bytes(convert(build_keras_model()))
    print(f"wrote {out} ({out.stat().st_size} B)")


if __name__ == "__main__":
    main()
