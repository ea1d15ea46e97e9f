"""Recurrent layers (tinybuild/ops/recurrent.py) against TFLite's BUILTIN_REF:
UNIDIRECTIONAL_SEQUENCE_LSTM int8 (the 8x8_16 kernel TFLite's quantizer
targets: int16 cell state, 5 intermediates) and float32, SVDF int8 and float32.
One-op models written with ModelBuilder, state tensors marked variable as the
converter writes them."""
from __future__ import annotations

import numpy as np
import pytest
from harness import FAST, Case, check, rng_for
from hypothesis import given
from hypothesis import strategies as st
from tflite_builder import ModelBuilder

from tinybuild.errors import TinybuildError


def _variable(b: ModelBuilder, shape, dtype, scale=None, zero_point=None) -> int:
    t = b.tensor(shape, dtype, scale, zero_point)
    b.tensors[t].isVariable = True
    return t


def lstm_s8_model(n_batch=1, n_time=4, n_input=3, n_cell=5, time_major=False, in_q=(0.05, 3),
                  state_q=(0.008, -12), cell_log2=-15, hidden_q=None, cell_clip=10.0,
                  peephole=False, seed=0) -> bytes:
    """A one-op int8 LSTM as TF 2.21's converter writes a tf_keras LSTM."""
    rng = rng_for("lstm", n_batch, n_time, n_input, n_cell, seed)
    b = ModelBuilder()
    shape = (n_time, n_batch, n_input) if time_major else (n_batch, n_time, n_input)
    x = b.input(shape, "int8", *in_q)
    ins = [x]
    for cols in [n_input] * 4 + [n_cell] * 4:
        ins.append(b.const(rng.integers(-127, 128, (n_cell, cols)), "int8",
                           float(rng.uniform(0.002, 0.02)), 0))
    ins += [b.const(rng.integers(-1, 1, n_cell), "int16", 0.001, 0) if peephole else -1
            for _ in range(3)]
    for _ in range(4):
        ins.append(b.const(rng.integers(-3000, 3000, n_cell), "int32", 1e-5, 0))
    ins += [-1, -1]
    ins.append(_variable(b, (n_batch, n_cell), "int8", *state_q))
    ins.append(_variable(b, (n_batch, n_cell), "int16", 2.0 ** cell_log2, 0))
    ins += [-1] * 4
    inter = [b.tensor((0,), "float32") for _ in range(4)]
    inter.append(b.tensor((0,), "int8", *(hidden_q or state_q)))
    out_shape = shape[:2] + (n_cell,)
    y = b.tensor(out_shape, "int8", *state_q)
    b.op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [y],
         b.options("UnidirectionalSequenceLSTMOptions", fusedActivationFunction=4, cellClip=cell_clip,
                   projClip=0.0, timeMajor=time_major))
    b.operators[-1].intermediates = np.array(inter, dtype=np.int32)
    return b.build([y])


LSTM_S8 = [
    Case("LSTM int8 4 steps 3 -> 5", lambda: lstm_s8_model()),
    Case("LSTM int8 time major, 2 batches", lambda: lstm_s8_model(n_batch=2, time_major=True)),
    Case("LSTM int8 2 batches, batch major", lambda: lstm_s8_model(n_batch=2, n_time=3)),
    Case("LSTM int8 cell 2^-11, no clip", lambda: lstm_s8_model(cell_log2=-11, cell_clip=0.0)),
    Case("LSTM int8 cell 2^-16 (TFLite skips the tanh)", lambda: lstm_s8_model(cell_log2=-16)),
    Case("LSTM int8 hidden zero point apart", lambda: lstm_s8_model(hidden_q=(0.01, 20))),
    Case("LSTM int8 cell clip 0.05 (clips)", lambda: lstm_s8_model(n_time=8, cell_clip=0.05)),
    Case("LSTM int8 16 steps 8 -> 16", lambda: lstm_s8_model(n_time=16, n_input=8, n_cell=16)),
]


@pytest.mark.parametrize("case", LSTM_S8, ids=str)
def test_lstm_s8(case):
    check(case)


@FAST
@given(st.integers(1, 2), st.integers(1, 6), st.integers(1, 6), st.integers(1, 9), st.booleans(),
       st.integers(-16, -9), st.integers(-20, 20), st.integers(0, 5))
def test_lstm_s8_property(n_batch, n_time, n_input, n_cell, time_major, cell_log2, zp, seed):
    check(lstm_s8_model(n_batch, n_time, n_input, n_cell, time_major, state_q=(0.01, zp),
                        cell_log2=cell_log2, seed=seed), inputs=2)


def test_lstm_peephole_refused(tmp_path):
    from tinybuild import pipeline
    model = tmp_path / "peephole.tflite"
    model.write_bytes(lstm_s8_model(peephole=True))
    with pytest.raises(TinybuildError, match="peephole LSTM"):
        pipeline.generate(model, tmp_path / "build", [])


ACT_CODES = {"NONE": 0, "RELU": 1, "RELU6": 3, "TANH": 4}   # schema.fbs ActivationFunctionType


def lstm_f32_model(n_batch=1, n_time=4, n_input=3, n_cell=5, time_major=False, cell_clip=0.0,
                   activation="TANH", seed=0) -> bytes:
    """A one-op float32 LSTM as TF 2.21's converter writes a Keras LSTM."""
    rng = rng_for("lstm_f32", n_batch, n_time, n_input, n_cell, seed)
    b = ModelBuilder()
    shape = (n_time, n_batch, n_input) if time_major else (n_batch, n_time, n_input)
    x = b.input(shape, "float32")
    ins = [x]
    for cols in [n_input] * 4 + [n_cell] * 4:
        ins.append(b.const(rng.normal(0, 0.4, (n_cell, cols)).astype(np.float32), "float32"))
    ins += [-1, -1, -1]
    ins += [b.const(rng.normal(0, 0.3, n_cell).astype(np.float32), "float32") for _ in range(4)]
    ins += [-1, -1, _variable(b, (n_batch, n_cell), "float32"), _variable(b, (n_batch, n_cell), "float32")]
    ins += [-1] * 4
    y = b.tensor(shape[:2] + (n_cell,), "float32")
    b.op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [y],
         b.options("UnidirectionalSequenceLSTMOptions", fusedActivationFunction=ACT_CODES[activation],
                   cellClip=cell_clip, projClip=0.0, timeMajor=time_major))
    return b.build([y])


# float32 LSTM: TFLite sums the gate products with its GEMM (ruy) in an order C does not
# follow, and its sigmoid/tanh are the host libm's expf/tanhf: a tolerance, not bytes.
LSTM_F32_TOLERANCE = 1e-5
LSTM_F32 = [
    Case("LSTM float32 4 steps 3 -> 5", lambda: lstm_f32_model(), float_tolerance=LSTM_F32_TOLERANCE),
    Case("LSTM float32 time major, 2 batches, cell clip",
         lambda: lstm_f32_model(n_batch=2, time_major=True, cell_clip=0.5),
         float_tolerance=LSTM_F32_TOLERANCE),
    Case("LSTM float32 2 batches, RELU", lambda: lstm_f32_model(n_batch=2, activation="RELU"),
         float_tolerance=LSTM_F32_TOLERANCE),
    Case("LSTM float32 20 steps 10 -> 16", lambda: lstm_f32_model(n_time=20, n_input=10, n_cell=16),
         float_tolerance=LSTM_F32_TOLERANCE),
]


@pytest.mark.parametrize("case", LSTM_F32, ids=str)
def test_lstm_f32(case):
    check(case)


def svdf_model(dtype="int8", n_batch=1, n_input=6, n_filter=4, rank=2, memory=5, activation="RELU",
               in_q=(0.05, -4), state_scale=0.004, out_q=(0.03, 7), bias=True, seed=0) -> bytes:
    """A one-op SVDF: int8 (int16 time weights and state) or float32."""
    rng = rng_for("svdf", dtype, n_batch, n_input, n_filter, rank, memory, seed)
    b = ModelBuilder()
    n_unit = n_filter // rank
    if dtype == "int8":
        x = b.input((n_batch, n_input), "int8", *in_q)
        wf = b.const(rng.integers(-127, 128, (n_filter, n_input)), "int8", 0.01, 0)
        wt_scale = 0.0005
        wt = b.const(rng.integers(-32767, 32768, (n_filter, memory)), "int16", wt_scale, 0)
        bias_t = (b.const(rng.integers(-20000, 20000, n_unit), "int32", state_scale * wt_scale, 0)
                  if bias else -1)
        state = _variable(b, (n_batch, memory * n_filter), "int16", state_scale, 0)
        y = b.tensor((n_batch, n_unit), "int8", *out_q)
    else:
        x = b.input((n_batch, n_input), "float32")
        wf = b.const(rng.normal(0, 0.5, (n_filter, n_input)).astype(np.float32), "float32")
        wt = b.const(rng.normal(0, 0.5, (n_filter, memory)).astype(np.float32), "float32")
        bias_t = b.const(rng.normal(0, 0.5, n_unit).astype(np.float32), "float32") if bias else -1
        state = _variable(b, (n_batch, memory * n_filter), "float32")
        y = b.tensor((n_batch, n_unit), "float32")
    b.op("SVDF", [x, wf, wt, bias_t, state], [y],
         b.options("SVDFOptions", rank=rank, fusedActivationFunction=ACT_CODES[activation]))
    return b.build([y])


SVDF = [
    Case("SVDF int8 6 -> 2 units, rank 2, RELU (not applied by TFLite's int8 kernel)",
         lambda: svdf_model()),
    Case("SVDF int8 no bias, rank 1, 2 batches", lambda: svdf_model(n_batch=2, rank=1, bias=False)),
    Case("SVDF int8 32 inputs, 16 filters, memory 10",
         lambda: svdf_model(n_input=32, n_filter=16, rank=4, memory=10)),
    Case("SVDF float32 RELU", lambda: svdf_model("float32")),
    Case("SVDF float32 NONE, 2 batches, no bias",
         lambda: svdf_model("float32", n_batch=2, activation="NONE", bias=False)),
    Case("SVDF float32 RELU6, 40 inputs", lambda: svdf_model("float32", n_input=40, n_filter=8,
                                                              activation="RELU6")),
]


@pytest.mark.parametrize("case", SVDF, ids=str)
def test_svdf(case):
    check(case)


@FAST
@given(st.sampled_from(["int8", "float32"]), st.integers(1, 2), st.integers(1, 20),
       st.integers(1, 4), st.integers(1, 3), st.integers(1, 8), st.integers(-30, 30))
def test_svdf_property(dtype, n_batch, n_input, n_unit, rank, memory, zp):
    check(svdf_model(dtype, n_batch, n_input, n_unit * rank, rank, memory, in_q=(0.05, zp)), inputs=2)


def _refusal(tmp_path, model: bytes) -> str:
    from tinybuild import pipeline
    path = tmp_path / "model.tflite"
    path.write_bytes(model)
    with pytest.raises(TinybuildError) as info:
        pipeline.generate(path, tmp_path / "build", [])
    return str(info.value)


def test_lstm_8x8_8_kernel_refused(tmp_path):
    """12 intermediates: TFLite's 8x8_8 integer kernel, which tinybuild does not compile."""
    from tflite_builder import schema
    model = lstm_s8_model()
    S = schema()
    m = S.ModelT.InitFromObj(S.Model.GetRootAsModel(model, 0))
    op = m.subgraphs[0].operators[0]
    op.intermediates = np.array(list(op.intermediates) * 3)[:12].astype(np.int32)
    import flatbuffers
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    message = _refusal(tmp_path, bytes(b.Output()))
    assert "12 intermediate tensors" in message and "UNIDIRECTIONAL_SEQUENCE_LSTM" in message


def test_svdf_state_of_the_wrong_size_refused(tmp_path):
    b = ModelBuilder()
    x = b.input((1, 4), "float32")
    wf = b.const(np.ones((2, 4), np.float32), "float32")
    wt = b.const(np.ones((2, 3), np.float32), "float32")
    state = _variable(b, (1, 5), "float32")
    y = b.tensor((1, 2), "float32")
    b.op("SVDF", [x, wf, wt, -1, state], [y], b.options("SVDFOptions", rank=1))
    message = _refusal(tmp_path, b.build([y]))
    assert "activation state of shape (1, 5) (6 values expected)" in message
