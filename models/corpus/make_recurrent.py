#!/usr/bin/env python3
"""Make tinybuild's recurrent corpus: small models of the kinds TinyML audio and
time-series work uses, each written as int8 and as float32 ``.tflite``.

* ``lstm_kws``   keyword spotter: 49 frames of 10 MFCCs -> LSTM(32) -> Dense(12) -> softmax
                 (tf_keras: one UNIDIRECTIONAL_SEQUENCE_LSTM)
* ``gru``        8 steps of 6 features -> GRU(12, unroll=True) -> Dense(4) -> softmax
                 (TFLite has no GRU op: unrolled, it is FULLY_CONNECTED, SPLIT, LOGISTIC,
                 TANH, MUL, SUB, ADD per step; not unrolled it is a WHILE loop)
* ``cnn_lstm``   accelerometer window: 64 samples x 3 axes -> Conv1D(8, 5, relu) ->
                 MaxPooling1D(2) -> LSTM(16) -> Dense(6) -> softmax
* ``svdf_stack`` one 40-feature frame -> SVDF(32 filters, rank 1, memory 8) ->
                 SVDF(16 filters, rank 2, memory 4) -> FULLY_CONNECTED(12) (Keras has no
                 SVDF layer: written with tinybuild.tflite_writer, as TFLite Micro's
                 speech models carry it)

Weights are seeded random (``tf_keras.utils.set_random_seed(0)``), the int8 models
calibrated on 64 seeded standard-normal samples (``numpy.random.default_rng(1)``),
as models/corpus/make_corpus.py does.

    ./tb python models/corpus/make_recurrent.py            # every model
    ./tb python models/corpus/make_recurrent.py gru        # only the ones named

writes ``tests/data/recurrent/<name>_<int8|float32>.tflite`` (each < 50 KB, committed);
tests/test_recurrent_models.py builds every one for cortex-m4, riscv and esp32c3.
"""
from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "recurrent"
CALIBRATION_SAMPLES = 64
QUANTS = ("int8", "float32")


def _keras():
    import tf_keras
    tf_keras.utils.set_random_seed(0)
    return tf_keras


def lstm_kws():
    keras = _keras()
    x = keras.Input((49, 10), batch_size=1, name="mfcc")
    h = keras.layers.LSTM(32, name="lstm")(x)
    y = keras.layers.Softmax()(keras.layers.Dense(12, name="classes")(h))
    return keras.Model(x, y, name="lstm_kws")


def gru():
    keras = _keras()
    x = keras.Input((8, 6), batch_size=1, name="features")
    h = keras.layers.GRU(12, unroll=True, name="gru")(x)
    y = keras.layers.Softmax()(keras.layers.Dense(4, name="classes")(h))
    return keras.Model(x, y, name="gru")


def cnn_lstm():
    keras = _keras()
    x = keras.Input((64, 3), batch_size=1, name="accel")
    h = keras.layers.Conv1D(8, 5, activation="relu", name="conv")(x)
    h = keras.layers.MaxPooling1D(2)(h)
    h = keras.layers.LSTM(16, name="lstm")(h)
    y = keras.layers.Softmax()(keras.layers.Dense(6, name="activities")(h))
    return keras.Model(x, y, name="cnn_lstm")


KERAS_MODELS = {"lstm_kws": lstm_kws, "gru": gru, "cnn_lstm": cnn_lstm}


def convert_keras(model, quant: str) -> bytes:
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quant == "int8":
        shape = (1, *model.inputs[0].shape[1:])
        rng = np.random.default_rng(1)

        def representative_dataset():
            for _ in range(CALIBRATION_SAMPLES):
                yield [rng.standard_normal(shape).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


# -- the SVDF stack, written directly ----------------------------------------------------------

def _svdf(b, x, quant, rng, n_in, n_filter, rank, memory, q_in, q_out):
    """One SVDF op (RELU) reading tensor x; its output tensor."""
    n_unit = n_filter // rank
    if quant == "int8":
        state_scale, wt_scale = 0.002, 1.0 / 16384
        wf = b.const(rng.integers(-127, 128, (n_filter, n_in)), "int8", 0.004, 0)
        wt = b.const(rng.integers(-16384, 16384, (n_filter, memory)), "int16", wt_scale, 0)
        bias = b.const(rng.integers(-2000, 2000, n_unit), "int32", state_scale * wt_scale, 0)
        state = b.tensor((1, memory * n_filter), "int16", state_scale, 0)
        y = b.tensor((1, n_unit), "int8", *q_out)
    else:
        wf = b.const(rng.normal(0, 0.3, (n_filter, n_in)).astype(np.float32), "float32")
        wt = b.const(rng.normal(0, 0.5, (n_filter, memory)).astype(np.float32), "float32")
        bias = b.const(rng.normal(0, 0.1, n_unit).astype(np.float32), "float32")
        state = b.tensor((1, memory * n_filter), "float32")
        y = b.tensor((1, n_unit), "float32")
    b.tensors[state].isVariable = True
    b.op("SVDF", [x, wf, wt, bias, state], [y], b.options("SVDFOptions", rank=rank,
                                                          fusedActivationFunction=1))
    return y


def svdf_stack(quant: str) -> bytes:
    from tinybuild.tflite_writer import ModelBuilder
    rng = np.random.default_rng(0)
    b = ModelBuilder("tinybuild recurrent corpus: svdf_stack")
    q = quant == "int8"
    x = b.input((1, 40), quant, *((0.05, 0) if q else ()), name="frame")
    h = _svdf(b, x, quant, rng, 40, 32, 1, 8, (0.05, 0), (0.03, -128))
    h = _svdf(b, h, quant, rng, 32, 16, 2, 4, (0.03, -128), (0.02, -128))
    if q:
        w = b.const(rng.integers(-127, 128, (12, 8)), "int8", 0.01, 0)
        bias = b.const(rng.integers(-500, 500, 12), "int32", 0.02 * 0.01, 0)
        y = b.tensor((1, 12), "int8", 0.1, 0, name="scores")
    else:
        w = b.const(rng.normal(0, 0.3, (12, 8)).astype(np.float32), "float32")
        bias = b.const(rng.normal(0, 0.1, 12).astype(np.float32), "float32")
        y = b.tensor((1, 12), "float32", name="scores")
    b.op("FULLY_CONNECTED", [h, w, bias], [y], b.options("FullyConnectedOptions"))
    return b.build([y])


def make(name: str, quant: str) -> bytes:
    if name == "svdf_stack":
        return svdf_stack(quant)
    return convert_keras(KERAS_MODELS[name](), quant)


def _ops(tflite: bytes) -> Counter:
    from tensorflow.lite.python import schema_py_generated as S
    model = S.ModelT.InitFromObj(S.Model.GetRootAsModel(tflite, 0))
    names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    return Counter(names[max(model.operatorCodes[op.opcodeIndex].builtinCode,
                             model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)]
                   for op in model.subgraphs[0].operators)


NAMES = ("lstm_kws", "gru", "cnn_lstm", "svdf_stack")


def main(argv: list[str]) -> int:
    wanted = argv or list(NAMES)
    unknown = sorted(set(wanted) - set(NAMES))
    if unknown:
        print(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(NAMES)}", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    for name in wanted:
        for quant in QUANTS:
            data = make(name, quant)
            path = OUT / f"{name}_{quant}.tflite"
            path.write_bytes(data)
            ops = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in sorted(_ops(data).items()))
            print(f"{path.name}: {len(data):,} B; {ops}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
