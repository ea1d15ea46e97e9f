"""FULLY_CONNECTED (tinybuild/ops/fully_connected.py) against TFLite's reference kernels."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, check, rng_for
from tflite_builder import ModelBuilder


def fc_model(in_shape=(1, 8), out_f=5, per_channel=False, activation="NONE", in_q=(0.05, 3),
             w_scale=0.01, out_q=(0.1, -2), bias=True, dyadic=0, rows=1,
             keep_num_dims=False) -> bytes:
    """``dyadic`` n > 0: per-channel scales ``w_scale * 2^(o % n)`` instead of
    random ones (1: all equal), so dyadic scales give exact multipliers and
    exact .5 ties. ``rows``: the input holds that many rows of in_features
    (TFLite's batches); ``keep_num_dims``: the output keeps the input's leading
    dims (rows then = their product), else it is [rows, out_f]."""
    key = (in_shape, out_f, per_channel, in_q, w_scale, out_q, bias)
    extra = (dyadic,) if dyadic else ()
    extra += (rows, keep_num_dims) if rows > 1 or keep_num_dims else ()
    rng = rng_for(*key, *extra)   # older cases keep their data
    if keep_num_dims:
        rows = int(np.prod(in_shape[:-1]))
    in_f = int(np.prod(in_shape)) // rows
    if not per_channel:
        scales = np.array([w_scale])
    elif dyadic:
        scales = w_scale * 2.0 ** (np.arange(out_f) % dyadic)
    else:
        scales = rng.uniform(0.5, 2.0, out_f) * w_scale
    b = ModelBuilder()
    x = b.input(in_shape, "int8", *in_q)
    w = b.const(rng.integers(-127, 128, (out_f, in_f)), "int8", scales, [0] * len(scales))
    bias_t = b.const(rng.integers(-3000, 3000, out_f), "int32",
                     (np.float32(in_q[0]) * scales.astype(np.float32)), [0] * len(scales)) if bias else -1
    out_shape = tuple(in_shape[:-1]) + (out_f,) if keep_num_dims else (rows, out_f)
    y = b.tensor(out_shape, "int8", *out_q)
    b.op("FULLY_CONNECTED", [x, w, bias_t], [y],
         b.options("FullyConnectedOptions", fusedActivationFunction=activation,
                   keepNumDims=keep_num_dims), version=5 if keep_num_dims else 4)
    return b.build([y])


def typed_fc_model(dtype, in_shape=(1, 8), out_f=5, per_channel=False, activation="NONE",
                   bias=True, rows=1, keep_num_dims=False, in_scale=0.0004, w_scale=0.01,
                   out_scale=0.002) -> bytes:
    """One FULLY_CONNECTED in float32, or in 16x8 as TFLite's converter writes it
    (int16 activations with zero point 0, int8 weights, int64 bias)."""
    rng = rng_for("typed fc", dtype, in_shape, out_f, per_channel, bias, rows, in_scale, w_scale)
    if keep_num_dims:
        rows = int(np.prod(in_shape[:-1]))
    in_f = int(np.prod(in_shape)) // rows
    out_shape = tuple(in_shape[:-1]) + (out_f,) if keep_num_dims else (rows, out_f)
    b = ModelBuilder()
    if dtype == "float32":
        x = b.input(in_shape, "float32")
        w = b.const(rng.normal(0, 0.3, (out_f, in_f)).astype(np.float32), "float32")
        bias_t = b.const(rng.normal(0, 1, out_f).astype(np.float32), "float32") if bias else -1
        y = b.tensor(out_shape, "float32")
    else:
        scales = rng.uniform(0.5, 2.0, out_f) * w_scale if per_channel else np.array([w_scale])
        x = b.input(in_shape, "int16", in_scale, 0)
        w = b.const(rng.integers(-127, 128, (out_f, in_f)), "int8", scales, [0] * len(scales))
        bias_t = b.const(rng.integers(-3_000_000, 3_000_000, out_f), "int64",
                         np.float32(in_scale) * scales.astype(np.float32),
                         [0] * len(scales)) if bias else -1
        y = b.tensor(out_shape, "int16", out_scale, 0)
    b.op("FULLY_CONNECTED", [x, w, bias_t], [y],
         b.options("FullyConnectedOptions", fusedActivationFunction=activation,
                   keepNumDims=keep_num_dims), version=5 if keep_num_dims else 4)
    return b.build([y])


CASES = [
    Case("FULLY_CONNECTED 8 -> 5 per-tensor", lambda: fc_model()),
    Case("FULLY_CONNECTED 4x4x2 input, RELU, no bias", lambda: fc_model((1, 4, 4, 2), 7,
                                                                         activation="RELU", bias=False)),
    Case("FULLY_CONNECTED per-channel RELU6", lambda: fc_model((1, 16), 6, per_channel=True,
                                                               activation="RELU6")),
    # Multipliers exact or close to 11/512 and its powers of two: accumulators on
    # or next to .5, where TFLite's double rescale and Q31's two roundings differ.
    Case("FULLY_CONNECTED per-channel 1 -> 9, exact ties (sweep failure)",
         lambda: fc_model((1, 1), 9, per_channel=True, in_q=(0.5, 0), w_scale=0.04296875,
                          out_q=(1.0, 0)), inputs=8),
    Case("FULLY_CONNECTED per-channel dyadic scales, exact ties",
         lambda: fc_model((1, 3), 12, per_channel=True, in_q=(0.25, 0), w_scale=0.04296875,
                          out_q=(0.5, 0), dyadic=3), inputs=8),
    Case("FULLY_CONNECTED per-channel, all scales equal, exact ties",
         lambda: fc_model((1, 2), 8, per_channel=True, in_q=(0.5, -3), w_scale=0.03125,
                          out_q=(0.25, 5), dyadic=1, activation="RELU"), inputs=8),
    Case("FULLY_CONNECTED per-tensor 1 -> 9, exact ties", lambda: fc_model(
        (1, 1), 9, in_q=(0.5, 0), w_scale=0.04296875, out_q=(1.0, 0)), inputs=8),
] + [
    # Several rows (a Dense over a sequence): every row computed as TFLite does.
    Case(f"FULLY_CONNECTED [{n},6] -> 4 rows, {'per-channel' if pc else 'per-tensor'}"
         f"{'' if bias else ', no bias'}",
         lambda n=n, pc=pc, bias=bias: fc_model((n, 6), 4, per_channel=pc, bias=bias, rows=n))
    for n in (2, 3, 7) for pc in (False, True) for bias in (True, False)
] + [
    Case(f"FULLY_CONNECTED [1,5,8] -> 3, keep_num_dims {keep}, "
         f"{'per-channel' if pc else 'per-tensor'}{'' if bias else ', no bias'}",
         lambda keep=keep, pc=pc, bias=bias: fc_model(
             (1, 5, 8), 3, per_channel=pc, bias=bias, rows=5, keep_num_dims=keep,
             activation="RELU"))
    for keep in (True, False) for pc in (False, True) for bias in (True, False)
] + [
    Case("FULLY_CONNECTED per-channel 4 rows, exact ties", lambda: fc_model(
        (4, 2), 8, per_channel=True, in_q=(0.5, -3), w_scale=0.03125, out_q=(0.25, 5),
        dyadic=1, rows=4), inputs=4),
] + [
    # float32: bit-exact with reference_ops::FullyConnected (same summation order)
    Case("float FULLY_CONNECTED 8 -> 5", lambda: typed_fc_model("float32")),
    Case("float FULLY_CONNECTED 4x4x2 input, RELU, no bias", lambda: typed_fc_model(
        "float32", (1, 4, 4, 2), 7, activation="RELU", bias=False)),
    Case("float FULLY_CONNECTED RELU6 [3,40] -> 6, 3 rows", lambda: typed_fc_model(
        "float32", (3, 40), 6, activation="RELU6", rows=3)),
    Case("float FULLY_CONNECTED [1,5,8] keep_num_dims RELU_N1_TO_1", lambda: typed_fc_model(
        "float32", (1, 5, 8), 3, activation="RELU_N1_TO_1", keep_num_dims=True)),
    # 16x8: int16 activations, int8 weights, int64 bias and accumulator
    Case("int16 FULLY_CONNECTED 8 -> 5 per-tensor", lambda: typed_fc_model("int16")),
    Case("int16 FULLY_CONNECTED per-channel RELU6 16 -> 6", lambda: typed_fc_model(
        "int16", (1, 16), 6, per_channel=True, activation="RELU6")),
    Case("int16 FULLY_CONNECTED [3,6] -> 4 rows, no bias, RELU", lambda: typed_fc_model(
        "int16", (3, 6), 4, bias=False, rows=3, activation="RELU")),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_fully_connected(case):
    check(case)


def dyadic(draw, low: int, high: int, odd: int = 1) -> float:
    """An exact binary fraction: an odd numerator up to ``odd`` over 2^n."""
    return (draw(st.integers(0, odd // 2)) * 2 + 1) / 2.0 ** draw(st.integers(low, high))


def row_shape(draw, max_in_f: int) -> dict:
    """1..8 rows of up to max_in_f features: [rows, K], or [1, rows, K] with or
    without keep_num_dims."""
    rows, in_f = draw(st.integers(1, 8)), draw(st.integers(1, max_in_f))
    layout = draw(st.sampled_from(["2d", "3d", "3d keep"]))
    shape = (rows, in_f) if layout == "2d" else (1, rows, in_f)
    return dict(in_shape=shape, rows=rows, keep_num_dims=layout == "3d keep")


@st.composite
def fc_tie_params(draw):
    """Exact power-of-two scales (weights: an odd multiple): exact multipliers,
    so accumulators hit exact .5 ties of the rescale."""
    return dict(**row_shape(draw, 6), out_f=draw(st.integers(1, 12)),
                per_channel=draw(st.booleans()), bias=draw(st.booleans()),
                dyadic=draw(st.integers(1, 4)),
                activation=draw(st.sampled_from(["NONE", "RELU", "RELU6"])),
                in_q=(dyadic(draw, 1, 6), draw(st.integers(-20, 20))),
                w_scale=dyadic(draw, 5, 9, odd=15),
                out_q=(dyadic(draw, -1, 3), draw(st.integers(-20, 20))))


@st.composite
def fc_params(draw):
    return dict(**row_shape(draw, 40), out_f=draw(st.integers(1, 12)),
                per_channel=draw(st.booleans()), bias=draw(st.booleans()),
                activation=draw(st.sampled_from(["NONE", "RELU", "RELU6"])),
                in_q=(draw(st.floats(0.005, 0.5)), draw(st.integers(-128, 127))),
                w_scale=draw(st.floats(0.001, 0.05)),
                out_q=(draw(st.floats(0.01, 2.0)), draw(st.integers(-128, 127))))


@FAST
@given(fc_params())
def test_fully_connected_property(params):
    check(fc_model(**params), inputs=2)


@FAST
@given(fc_tie_params())
def test_fully_connected_ties_property(params):
    check(fc_model(**params), inputs=2)


@st.composite
def typed_fc_params(draw, dtype):
    return dict(**row_shape(draw, 40), dtype=dtype, out_f=draw(st.integers(1, 12)),
                per_channel=dtype == "int16" and draw(st.booleans()), bias=draw(st.booleans()),
                activation=draw(st.sampled_from(["NONE", "RELU", "RELU6"])),
                in_scale=draw(st.floats(0.00002, 0.002)), w_scale=draw(st.floats(0.001, 0.05)),
                out_scale=draw(st.floats(0.0001, 0.01)))


@FAST
@given(typed_fc_params("float32"))
def test_fully_connected_float_property(params):
    check(typed_fc_model(**params), inputs=2)


@FAST
@given(typed_fc_params("int16"))
def test_fully_connected_int16_property(params):
    check(typed_fc_model(**params), inputs=2)


@pytest.mark.slow
@SWEEP
@given(st.one_of(fc_params(), fc_tie_params()))
def test_fully_connected_sweep(params):
    check(fc_model(**params), inputs=2)


def test_input_not_whole_rows_is_refused_in_one_line(tmp_path):
    """7 input values for 3 input features: no whole number of rows."""
    from tinybuild.errors import TinybuildError
    from tinybuild.importer import load_graph
    from tinybuild.lower import lower_graph
    b = ModelBuilder()
    x = b.input((1, 7), "int8", 0.05, 0)
    w = b.const(np.ones((4, 3)), "int8", [0.01], [0])
    y = b.tensor((1, 4), "int8", 0.1, 0)
    b.op("FULLY_CONNECTED", [x, w, -1], [y], b.options("FullyConnectedOptions"), version=4)
    path = tmp_path / "model.tflite"
    path.write_bytes(b.build([y]))
    with pytest.raises(TinybuildError) as info:
        lower_graph(load_graph(path))
    assert "input of 7 values is not a whole number of rows of 3 input features" in str(info.value)
    assert "\n" not in str(info.value)


def test_rows_are_lowered_and_the_targets_kernels_take_them():
    """[1, 5, 8] with keep_num_dims: 5 rows, 5x the MACs; cortex-m4's and
    riscv's FC kernels loop over rows (tests/test_fc_kernels.py)."""
    import tempfile
    from pathlib import Path
    from tinybuild.importer import load_graph
    from tinybuild.lower import lower_graph
    cm4_prepare = module_at("targets/cortex_m4/kernels/cm4_prepare.py")
    rv_prepare = module_at("targets/riscv/kernels/rv_prepare.py")
    with tempfile.TemporaryDirectory(prefix="tb-fc-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(fc_model((1, 5, 8), 3, rows=5, keep_num_dims=True))
        layer, = lower_graph(load_graph(path))
    assert layer.params["rows"] == 5 and layer.macs == 5 * 8 * 3
    assert cm4_prepare.accepts_fc(layer) and rv_prepare.accepts_fc(layer)


def module_at(relative: str):
    """A target plugin's module by its path in the repository."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / relative
    spec = importlib.util.spec_from_file_location(path.stem + "_fc_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def transposed_float_fc_model() -> bytes:
    """TRANSPOSE (NHWC -> NCHW) -> RESHAPE -> float FULLY_CONNECTED: folding the
    permutation into the weight columns would change the float summation order."""
    rng = rng_for("transposed float fc")
    b = ModelBuilder()
    x = b.input((1, 4, 4, 6), "float32")
    t = b.tensor((1, 6, 4, 4), "float32")
    b.op("TRANSPOSE", [x, b.const(np.array([0, 3, 1, 2], np.int32), "int32")], [t], version=2)
    r = b.tensor((1, 96), "float32")
    b.op("RESHAPE", [t, b.const(np.array([1, 96], np.int32), "int32")], [r])
    w = b.const(rng.normal(0, 0.3, (5, 96)).astype(np.float32), "float32")
    y = b.tensor((1, 5), "float32")
    b.op("FULLY_CONNECTED", [r, w, b.const(rng.normal(0, 1, 5).astype(np.float32), "float32")],
         [y], b.options("FullyConnectedOptions"), version=4)
    return b.build([y])


def test_float_fc_after_a_transpose_keeps_tflite_order():
    check(transposed_float_fc_model(), inputs=4)
