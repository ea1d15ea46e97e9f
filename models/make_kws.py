#!/usr/bin/env python3
"""Build and train tinybuild's example keyword-spotting model: ``models/kws.h5``.

Architecture
------------
The MLPerf Tiny keyword-spotting DS-CNN (mlcommons/tiny,
``benchmark/training/keyword_spotting/keras_model.py``, model ``ds_cnn``),
re-written here with the Keras 2 API of the ``tf_keras`` package (so the
``.h5`` file is a classic Keras 2 HDF5 file, like the MLPerf Tiny ones):

    Input 49x10x1 (49 frames x 10 MFCC coefficients)
    Conv2D 64, 10x4, stride 2, padding same, + BatchNorm + ReLU, Dropout 0.2
    4 x [ DepthwiseConv2D 3x3 same + BN + ReLU, Conv2D 64 1x1 same + BN + ReLU ]
    Dropout 0.4
    AveragePooling2D 25x5 (the whole remaining 25x5 map) -> 1x1x64
    Flatten, Dense 12, Softmax

L2 weight decay 1e-4 on the convolution kernels, as in the reference. Dropout is
an identity at inference, so the converted int8 model has the same ops as the
MLPerf ``kws_ref_model.tflite``: CONV_2D x5, DEPTHWISE_CONV_2D x4,
AVERAGE_POOL_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX (about 2.66 M MACs, ~24 k
parameters).

Data (made here, deterministically; nothing is downloaded)
----------------------------------------------------------
There is no Speech Commands data on this machine, so the model is trained on
synthetic "MFCC-like" 49x10 patterns. The 12 classes follow the MLPerf label
order: down, go, left, no, off, on, right, stop, up, yes, _silence_, _unknown_.

* Each of the 10 keywords has one fixed template (seeded): a 16..24-frame
  "word" of smooth per-frame MFCC vectors, with a large c0 (energy) and
  coefficients whose spread falls with their index, like real MFCCs.
* A sample of a keyword places its template at a random time shift inside the
  49 frames, scales it by a random amplitude (0.6..1.4), stretches each
  coefficient a little (+-10 %), and adds a background: a low, slowly
  varying floor plus white noise (sigma 0.3..0.8).
* ``_silence_`` is the background alone; ``_unknown_`` places one of 30 other
  seeded "non-keyword" templates the same way.

``make_dataset(n_per_class, seed)`` is the generator; the training split
uses seed 1, the held-out test split seed 2, the calibration set seed 3.

Training: Adam 1e-3, batch 32, 8 epochs over 12 x 400 samples, seeded
(``tf_keras.utils.set_random_seed(0)``); the script prints the held-out
accuracy on 12 x 50 samples (about 99.8 %: the synthetic task is easy, the
point is a realistically trained DS-CNN with real BatchNorm statistics and
weight/activation ranges, not a benchmark) and the wall time (about 20 s on
2 CPU cores). Fewer steps leave BatchNorm's moving averages unsettled and
the model at chance in inference mode, whatever its training accuracy.

Outputs
-------
* ``models/kws.h5``          the trained float model (Keras 2 HDF5, ~ 200 KB
                             with no optimizer state: saved with
                             ``include_optimizer=False``).
* ``models/kws_calib.npy``   float32 [100, 49, 10, 1] calibration samples from
                             the same generator (a balanced mix of all classes),
                             picked up by ``tinybuild.convert`` automatically as
                             ``<model stem>_calib.npy``.

Run:  ``.venv/bin/python models/make_kws.py``  (from the repo root; any cwd works)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

HERE = Path(__file__).resolve().parent
LABELS = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes",
          "_silence_", "_unknown_"]
FRAMES, COEFS = 49, 10
N_KEYWORDS = 10
N_UNKNOWN_TEMPLATES = 30
TEMPLATE_SEED = 1234


def _make_template(rng: np.random.Generator) -> np.ndarray:
    """One "word": [length, COEFS] smooth MFCC-like frames."""
    length = int(rng.integers(16, 25))
    # a few random anchor frames, linearly interpolated -> smooth trajectories
    n_anchor = 5
    spread = 4.0 / (1.0 + 0.5 * np.arange(COEFS))  # c0 widest, falling with index
    anchors = rng.normal(0.0, 1.0, size=(n_anchor, COEFS)) * spread
    anchors[:, 0] += 6.0  # energy of the spoken part
    t = np.linspace(0, n_anchor - 1, length)
    frames = np.stack([np.interp(t, np.arange(n_anchor), anchors[:, c])
                       for c in range(COEFS)], axis=1)
    # energy envelope: fade in / fade out
    env = np.sin(np.linspace(0.15, np.pi - 0.15, length))[:, None]
    return (frames * env).astype(np.float32)


def _templates() -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(TEMPLATE_SEED)
    keywords = [_make_template(rng) for _ in range(N_KEYWORDS)]
    unknown = [_make_template(rng) for _ in range(N_UNKNOWN_TEMPLATES)]
    return keywords, unknown


def _background(rng: np.random.Generator) -> np.ndarray:
    floor = rng.normal(0.0, 0.5, size=(1, COEFS)) + np.linspace(
        0, rng.normal(0, 0.3), FRAMES)[:, None]
    noise = rng.normal(0.0, rng.uniform(0.3, 0.8), size=(FRAMES, COEFS))
    return (floor + noise).astype(np.float32)


def make_dataset(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic synthetic MFCC-like data: x float32 [N,49,10,1], y int [N].

    Samples are ordered class-interleaved (0,1,...,11,0,1,...), so any prefix
    is roughly balanced.
    """
    keywords, unknown = _templates()
    rng = np.random.default_rng(seed)
    n = n_per_class * len(LABELS)
    x = np.empty((n, FRAMES, COEFS), np.float32)
    y = np.empty((n,), np.int64)
    for i in range(n):
        label = i % len(LABELS)
        sample = _background(rng)
        if label != LABELS.index("_silence_"):
            if label == LABELS.index("_unknown_"):
                tpl = unknown[int(rng.integers(len(unknown)))]
            else:
                tpl = keywords[label]
            amp = rng.uniform(0.6, 1.4)
            stretch = rng.uniform(0.9, 1.1, size=(1, COEFS))
            start = int(rng.integers(0, FRAMES - len(tpl) + 1))
            sample[start:start + len(tpl)] += amp * stretch * tpl
        x[i] = sample
        y[i] = label
    return x[..., None], y


def build_model():
    """The MLPerf Tiny DS-CNN (tf_keras / Keras 2 API)."""
    import tf_keras as keras
    from tf_keras import layers
    from tf_keras.regularizers import l2

    filters = 64
    reg = l2(1e-4)
    inputs = keras.Input(shape=(FRAMES, COEFS, 1), name="input")
    x = layers.Conv2D(filters, (10, 4), strides=(2, 2), padding="same",
                      kernel_regularizer=reg)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.2)(x)
    for _ in range(4):
        x = layers.DepthwiseConv2D((3, 3), padding="same", depth_multiplier=1,
                                   depthwise_regularizer=reg)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.Conv2D(filters, (1, 1), padding="same", kernel_regularizer=reg)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    x = layers.Dropout(0.4)(x)
    x = layers.AveragePooling2D(pool_size=(25, 5))(x)  # 49x10 -> 25x5 after stride 2
    x = layers.Flatten()(x)
    x = layers.Dense(len(LABELS))(x)
    outputs = layers.Softmax()(x)
    return keras.Model(inputs, outputs, name="kws_ds_cnn")


def main() -> int:
    t0 = time.time()
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    x_train, y_train = make_dataset(400, seed=1)
    x_test, y_test = make_dataset(50, seed=2)
    x_cal, _ = make_dataset(9, seed=3)  # 108 samples, class-interleaved
    x_cal = x_cal[:100].astype(np.float32)

    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=32, epochs=8, shuffle=True, verbose=2,
              validation_split=0.0)
    _, acc = model.evaluate(x_test, y_test, verbose=0)

    model.save(HERE / "kws.h5", include_optimizer=False)
    np.save(HERE / "kws_calib.npy", x_cal)
    dt = time.time() - t0
    print(f"held-out synthetic accuracy: {acc:.4f} ({len(y_test)} samples)")
    print(f"wrote {HERE / 'kws.h5'} ({(HERE / 'kws.h5').stat().st_size} B) and "
          f"{HERE / 'kws_calib.npy'} {x_cal.shape} in {dt:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
