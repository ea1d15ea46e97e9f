"""Regenerate tiny_int8.tflite: a 4x4x1 -> 3 classes int8 model (CONV_2D,
RESHAPE, FULLY_CONNECTED, SOFTMAX) small enough for fast SCons tests.

    ./tb python tests/data/make_tiny_int8.py
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
    model = keras.Sequential([
        keras.layers.Input((4, 4, 1), batch_size=1),
        keras.layers.Conv2D(2, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(3),
        keras.layers.Softmax(),
    ])
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "tiny.h5"
        model.save(src)
        np.save(Path(tmp) / "tiny_calib.npy",
                np.random.default_rng(0).standard_normal((32, 4, 4, 1)).astype("float32"))
        convert_model(src, HERE / "tiny_int8.tflite", Path(tmp) / "tiny_calib.npy")


if __name__ == "__main__":
    main()
