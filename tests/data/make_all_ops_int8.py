"""Regenerate all_ops_int8.tflite: a small int8 model with every operator tinybuild
compiles (CONV_2D, DEPTHWISE_CONV_2D, ADD, MAX_POOL_2D, AVERAGE_POOL_2D, RESHAPE,
FULLY_CONNECTED, SOFTMAX), the seed of the mutation fuzzer (tests/test_fuzz.py).

    ./tb python tests/data/make_all_ops_int8.py
"""
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))


def main() -> None:
    import numpy as np
    import tf_keras as keras

    from tinybuild.convert import convert_model

    keras.utils.set_random_seed(0)
    inp = keras.layers.Input((8, 8, 2), batch_size=1)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    y = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = keras.layers.Add()([x, y])
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(3)(x)
    out = keras.layers.Softmax()(x)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "all_ops.h5"
        keras.Model(inp, out).save(src)
        calib = Path(tmp) / "calib.npy"
        np.save(calib, np.random.default_rng(0).standard_normal((32, 8, 8, 2)).astype("float32"))
        convert_model(src, HERE / "all_ops_int8.tflite", calib)


if __name__ == "__main__":
    main()
