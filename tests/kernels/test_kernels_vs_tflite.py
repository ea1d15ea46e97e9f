"""Byte-for-byte comparison of tinybuild's C int8 kernels with TFLite's
reference kernels (OpResolverType.BUILTIN_REF) on single-op int8 models."""

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel_harness import (case_add, case_conv, case_fc, case_pool, case_reshape,
                            case_softmax)

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")

FAST = settings(max_examples=15, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=1000, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_same(got, expected):
    got, expected = np.asarray(got).reshape(-1), np.asarray(expected).reshape(-1)
    assert got.dtype == np.int8 and expected.dtype == np.int8
    diff = np.flatnonzero(got != expected)
    assert diff.size == 0, (
        f"{diff.size}/{got.size} bytes differ; first at {diff[:8]}: "
        f"ours {got[diff[:8]]} tflite {expected[diff[:8]]}")


# ---------------------------------------------------------------- CONV_2D
@pytest.mark.parametrize(
    "per_channel,stride,padding,activation",
    list(itertools.product([True, False], [1, 2], ["SAME", "VALID"],
                           ["NONE", "RELU", "RELU6"])))
def test_conv2d(kernels, rng, per_channel, stride, padding, activation):
    got, exp = case_conv(kernels, rng, in_h=7, in_w=6, in_c=3, out_c=4,
                         stride=(stride, stride), padding=padding,
                         per_channel=per_channel, activation=activation,
                         in_scale=0.04, in_zp=-7, out_scale=0.2, out_zp=5)
    assert_same(got, exp)


@pytest.mark.parametrize("dilation,k,padding", [
    ((2, 2), (3, 3), "SAME"), ((2, 1), (3, 2), "VALID"), ((1, 3), (2, 2), "SAME")])
def test_conv2d_dilation(kernels, rng, dilation, k, padding):
    got, exp = case_conv(kernels, rng, in_h=8, in_w=9, in_c=2, out_c=3, k_h=k[0], k_w=k[1],
                         dilation=dilation, padding=padding, in_zp=12, out_zp=-20)
    assert_same(got, exp)


@pytest.mark.parametrize("in_zp,out_zp", [(-128, -128), (127, 127), (0, -128), (-50, 100)])
def test_conv2d_zero_points_no_bias(kernels, rng, in_zp, out_zp):
    got, exp = case_conv(kernels, rng, in_zp=in_zp, out_zp=out_zp, use_bias=False,
                         stride=(2, 1), padding="SAME", activation="RELU")
    assert_same(got, exp)


conv_strategy = st.fixed_dictionaries({
    "in_h": st.integers(1, 9), "in_w": st.integers(1, 9), "in_c": st.integers(1, 5),
    "out_c": st.integers(1, 5), "k_h": st.integers(1, 4), "k_w": st.integers(1, 4),
    "stride": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "dilation": st.tuples(st.integers(1, 2), st.integers(1, 2)),
    "padding": st.sampled_from(["SAME", "VALID"]),
    "per_channel": st.booleans(),
    "activation": st.sampled_from(["NONE", "RELU", "RELU6"]),
    "use_bias": st.booleans(),
    "in_scale": st.floats(1e-3, 1.0), "in_zp": st.integers(-128, 127),
    "out_scale": st.floats(1e-3, 2.0), "out_zp": st.integers(-128, 127),
    "seed": st.integers(0, 2**32 - 1),
})


def _valid_conv(d):
    eff_h = (d["k_h"] - 1) * d["dilation"][0] + 1
    eff_w = (d["k_w"] - 1) * d["dilation"][1] + 1
    return d["padding"] == "SAME" or (eff_h <= d["in_h"] and eff_w <= d["in_w"])


def _run_conv_hyp(kernels, d, depthwise=False):
    d = dict(d)
    if not _valid_conv(d):
        return
    rng = np.random.default_rng(d.pop("seed"))
    if depthwise:
        d.pop("out_c")
        d["depth_multiplier"] = d.pop("dm", 1)
    else:
        d.pop("dm", None)
    got, exp = case_conv(kernels, rng, depthwise=depthwise, **d)
    assert_same(got, exp)


@FAST
@given(d=conv_strategy)
def test_conv2d_random(kernels, d):
    _run_conv_hyp(kernels, d)


@pytest.mark.slow
@SLOW
@given(d=conv_strategy)
def test_conv2d_random_sweep(kernels, d):
    _run_conv_hyp(kernels, d)


# ------------------------------------------------------ DEPTHWISE_CONV_2D
@pytest.mark.parametrize("dm,k,stride,padding", [
    (1, (3, 3), 1, "SAME"), (2, (3, 3), 1, "SAME"), (1, (3, 3), 2, "VALID"),
    (2, (3, 3), 2, "SAME"), (1, (5, 5), 1, "SAME"), (2, (1, 1), 1, "VALID"),
    (1, (2, 3), 2, "SAME"), (2, (4, 2), 1, "VALID")])
def test_depthwise(kernels, rng, dm, k, stride, padding):
    got, exp = case_conv(kernels, rng, depthwise=True, depth_multiplier=dm, in_h=7, in_w=7,
                         in_c=3, k_h=k[0], k_w=k[1], stride=(stride, stride),
                         padding=padding, in_zp=9, out_zp=-3, activation="RELU6")
    assert_same(got, exp)


@pytest.mark.parametrize("per_channel,activation", [(False, "NONE"), (True, "RELU")])
def test_depthwise_dilated_per_tensor(kernels, rng, per_channel, activation):
    got, exp = case_conv(kernels, rng, depthwise=True, depth_multiplier=1, in_h=9, in_w=8,
                         in_c=4, dilation=(2, 2), per_channel=per_channel,
                         activation=activation, in_zp=-128, out_zp=30, use_bias=False)
    assert_same(got, exp)


dw_strategy = conv_strategy.flatmap(
    lambda d: st.integers(1, 3).map(lambda dm: {**d, "dm": dm}))


@FAST
@given(d=dw_strategy)
def test_depthwise_random(kernels, d):
    _run_conv_hyp(kernels, d, depthwise=True)


@pytest.mark.slow
@SLOW
@given(d=dw_strategy)
def test_depthwise_random_sweep(kernels, d):
    _run_conv_hyp(kernels, d, depthwise=True)


# --------------------------------------------------------- FULLY_CONNECTED
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("w_zp", [0, 3])
@pytest.mark.parametrize("activation", ["NONE", "RELU", "RELU6"])
def test_fully_connected(kernels, rng, use_bias, w_zp, activation):
    got, exp = case_fc(kernels, rng, in_features=17, out_features=6, use_bias=use_bias,
                       in_scale=0.03, in_zp=-11, w_scale=0.007, w_zp=w_zp,
                       out_scale=0.15, out_zp=4, activation=activation)
    assert_same(got, exp)


@pytest.mark.parametrize("seed", range(40))
def test_fully_connected_per_channel_weights(kernels, seed):
    """Per-channel FC weights (what TF 2.21's converter makes of a Keras Dense)
    take TFLite's per-channel Q31 fixed-point requantization."""
    rng = np.random.default_rng(1000 + seed)
    got, exp = case_fc(kernels, rng, in_features=int(rng.integers(1, 70)),
                       out_features=int(rng.integers(1, 20)), in_scale=0.03,
                       in_zp=int(rng.integers(-128, 128)), w_scale=0.004, out_scale=0.05,
                       out_zp=int(rng.integers(-128, 128)), per_channel=True,
                       activation=["NONE", "RELU", "RELU6"][seed % 3])
    assert_same(got, exp)


def test_fully_connected_reference_rescales_in_double(kernels, rng):
    """TF 2.21's reference int8 FC rounds double(acc) * in*w/out half away from
    zero. Near-tie accumulators (constructed via the bias) separate that from
    the fixed-point double-rounding path; the fixed-point path must mismatch."""
    import math
    from kernel_harness import FcParams, _ModelBuilder, _schema, run_tflite
    from test_quant_and_harness import ref_mbqm
    from tinybuild import quant
    S = _schema()
    si, sw, so = (float(np.float32(v)) for v in (0.37, 0.0123, 0.71))
    real = quant.fc_real_multiplier(si, sw, so)
    m, sh = quant.fc_output_multiplier(si, sw, so)
    accs = [a for a in range(-int(120 / real), int(120 / real))
            if ref_mbqm(a, m, sh) != math.floor(abs(a * real) + 0.5) * (1 if a >= 0 else -1)][:64]
    assert accs
    n = len(accs)
    mb = _ModelBuilder()
    ti = mb.tensor((1, 1), S.TensorType.INT8, [si], [0])
    tw = mb.tensor((n, 1), S.TensorType.INT8, [sw], [0], data=np.zeros((n, 1), np.int8))
    tb = mb.tensor((n,), S.TensorType.INT32, [float(np.float32(si) * np.float32(sw))], [0],
                   data=np.array(accs, np.int32))
    to = mb.tensor((1, n), S.TensorType.INT8, [so], [0])
    model = mb.finish(S.BuiltinOperator.FULLY_CONNECTED, 4, [ti, tw, tb], [to],
                      S.BuiltinOptions.FullyConnectedOptions, S.FullyConnectedOptionsT(), [ti])
    x = np.zeros((1, 1), np.int8)
    exp = run_tflite(model, [x])
    w = np.zeros((n, 1), np.int8)
    bias = np.array(accs, np.int32)
    muls = quant.conv_output_multipliers(si, [sw], so, n, op="FULLY_CONNECTED")
    p = FcParams(in_features=1, out_features=n, act_min=-128, act_max=127,
                 real_multiplier=real)
    assert_same(kernels.fc(p, x, w, bias, muls), exp)
    p.real_multiplier = 0.0
    assert not np.array_equal(kernels.fc(p, x, w, bias, muls), exp)


fc_strategy = st.fixed_dictionaries({
    "in_features": st.integers(1, 64), "out_features": st.integers(1, 16),
    "use_bias": st.booleans(), "in_scale": st.floats(1e-3, 1.0),
    "in_zp": st.integers(-128, 127), "w_scale": st.floats(1e-4, 0.1),
    "out_scale": st.floats(1e-3, 2.0), "out_zp": st.integers(-128, 127),
    "activation": st.sampled_from(["NONE", "RELU", "RELU6"]),
    "seed": st.integers(0, 2**32 - 1),
})


def _run_fc_hyp(kernels, d):
    d = dict(d)
    rng = np.random.default_rng(d.pop("seed"))
    assert_same(*case_fc(kernels, rng, **d))


@FAST
@given(d=fc_strategy)
def test_fully_connected_random(kernels, d):
    _run_fc_hyp(kernels, d)


@pytest.mark.slow
@SLOW
@given(d=fc_strategy)
def test_fully_connected_random_sweep(kernels, d):
    _run_fc_hyp(kernels, d)


# ------------------------------------------------------------------ POOLING
@pytest.mark.parametrize("kind", ["AVG", "MAX"])
@pytest.mark.parametrize("k,stride,padding", [
    ((2, 2), 2, "VALID"), ((3, 3), 2, "SAME"), ((3, 3), 1, "SAME"), ((2, 3), 1, "VALID"),
    ((3, 2), (2, 1), "SAME"), ((5, 5), 3, "SAME")])
def test_pool(kernels, rng, kind, k, stride, padding):
    stride = stride if isinstance(stride, tuple) else (stride, stride)
    got, exp = case_pool(kernels, rng, kind=kind, in_h=7, in_w=6, c=3, k_h=k[0], k_w=k[1],
                         stride=stride, padding=padding, scale=0.07, zp=-9)
    assert_same(got, exp)


@pytest.mark.parametrize("kind", ["AVG", "MAX"])
@pytest.mark.parametrize("activation", ["RELU", "RELU6", "RELU_N1_TO_1"])
def test_pool_fused_activation(kernels, rng, kind, activation):
    got, exp = case_pool(kernels, rng, kind=kind, k_h=3, k_w=3, stride=(1, 1),
                         padding="SAME", scale=0.02, zp=10, activation=activation)
    assert_same(got, exp)


@pytest.mark.parametrize("kind", ["AVG", "MAX"])
def test_pool_activation_float32_rounding(kernels, rng, kind):
    # RELU_N1_TO_1 at scale 0.4: the bound is round(float32(1)/float32(0.4)) = 3
    # only with float32 division (double would give 2).
    x_got, x_exp = case_pool(kernels, rng, kind=kind, k_h=1, k_w=1, stride=(1, 1),
                             scale=0.4, zp=0, activation="RELU_N1_TO_1")
    assert_same(x_got, x_exp)
    assert x_exp.max() == 3 and x_exp.min() == -3


pool_strategy = st.fixed_dictionaries({
    "kind": st.sampled_from(["AVG", "MAX"]), "in_h": st.integers(1, 10),
    "in_w": st.integers(1, 10), "c": st.integers(1, 4), "k_h": st.integers(1, 4),
    "k_w": st.integers(1, 4), "stride": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "padding": st.sampled_from(["SAME", "VALID"]), "scale": st.floats(1e-3, 1.0),
    "zp": st.integers(-128, 127), "activation": st.sampled_from(["NONE", "RELU", "RELU6"]),
    "seed": st.integers(0, 2**32 - 1),
})


def _run_pool_hyp(kernels, d):
    d = dict(d)
    if d["padding"] == "VALID" and (d["k_h"] > d["in_h"] or d["k_w"] > d["in_w"]):
        return
    rng = np.random.default_rng(d.pop("seed"))
    assert_same(*case_pool(kernels, rng, **d))


@FAST
@given(d=pool_strategy)
def test_pool_random(kernels, d):
    _run_pool_hyp(kernels, d)


@pytest.mark.slow
@SLOW
@given(d=pool_strategy)
def test_pool_random_sweep(kernels, d):
    _run_pool_hyp(kernels, d)


# ---------------------------------------------------------------------- ADD
@pytest.mark.parametrize("s1,z1,s2,z2,so,zo,activation", [
    (0.05, 0, 0.05, 0, 0.1, 0, "NONE"),
    (0.03, 5, 0.07, -9, 0.09, 3, "NONE"),
    (0.5, -128, 0.001, 127, 0.4, -20, "NONE"),
    (0.02, 10, 0.04, -30, 0.05, -60, "RELU"),
    (0.1, 0, 0.1, 0, 0.03, -128, "RELU6"),
    (0.011, 100, 0.0137, -100, 0.0071, 7, "RELU"),
])
def test_add(kernels, rng, s1, z1, s2, z2, so, zo, activation):
    got, exp = case_add(kernels, rng, shape=(1, 5, 4, 3), s1=s1, z1=z1, s2=s2, z2=z2,
                        so=so, zo=zo, activation=activation)
    assert_same(got, exp)


add_strategy = st.fixed_dictionaries({
    "s1": st.floats(1e-3, 1.0), "z1": st.integers(-128, 127),
    "s2": st.floats(1e-3, 1.0), "z2": st.integers(-128, 127),
    "so": st.floats(1e-3, 2.0), "zo": st.integers(-128, 127),
    "activation": st.sampled_from(["NONE", "RELU", "RELU6"]),
    "seed": st.integers(0, 2**32 - 1),
})


def _run_add_hyp(kernels, d):
    d = dict(d)
    # add.cc requires real_output_multiplier = 2*max(s1,s2)/(2^20*so) < 1.
    if 2 * max(d["s1"], d["s2"]) >= (1 << 20) * d["so"]:
        return
    rng = np.random.default_rng(d.pop("seed"))
    assert_same(*case_add(kernels, rng, shape=(2, 3, 7), **d))


@FAST
@given(d=add_strategy)
def test_add_random(kernels, d):
    _run_add_hyp(kernels, d)


@pytest.mark.slow
@SLOW
@given(d=add_strategy)
def test_add_random_sweep(kernels, d):
    _run_add_hyp(kernels, d)


# ------------------------------------------------------------------ SOFTMAX
@pytest.mark.parametrize("in_scale", [0.003, 0.01, 0.05, 0.0781, 0.1, 0.25, 0.5, 1.0, 3.0])
@pytest.mark.parametrize("in_zp", [0, -128, 17])
def test_softmax(kernels, rng, in_scale, in_zp):
    got, exp = case_softmax(kernels, rng, shape=(3, 11), in_scale=in_scale, in_zp=in_zp)
    assert_same(got, exp)


@pytest.mark.parametrize("row", [
    [0] * 10, [127] + [-128] * 9, [5, 5, 5, 4], [-128, -128], [127], list(range(-128, 128, 8))])
def test_softmax_edge_rows(kernels, rng, row):
    x = np.array([row], dtype=np.int8)
    for scale in (0.02, 0.1, 0.7):
        got, exp = case_softmax(kernels, rng, shape=x.shape, in_scale=scale, x=x)
        assert_same(got, exp)


def test_softmax_4d_and_beta(kernels, rng):
    got, exp = case_softmax(kernels, rng, shape=(1, 2, 3, 9), in_scale=0.06, in_zp=3)
    assert_same(got, exp)
    got, exp = case_softmax(kernels, rng, shape=(2, 13), in_scale=0.06, beta=0.5)
    assert_same(got, exp)


softmax_strategy = st.fixed_dictionaries({
    "outer": st.integers(1, 4), "depth": st.integers(1, 300),
    "in_scale": st.floats(1e-3, 4.0), "in_zp": st.integers(-128, 127),
    "seed": st.integers(0, 2**32 - 1),
})


def _run_softmax_hyp(kernels, d):
    rng = np.random.default_rng(d["seed"])
    got, exp = case_softmax(kernels, rng, shape=(d["outer"], d["depth"]),
                            in_scale=d["in_scale"], in_zp=d["in_zp"])
    assert_same(got, exp)


@FAST
@given(d=softmax_strategy)
def test_softmax_random(kernels, d):
    _run_softmax_hyp(kernels, d)


@pytest.mark.slow
@SLOW
@given(d=softmax_strategy)
def test_softmax_random_sweep(kernels, d):
    _run_softmax_hyp(kernels, d)


# ------------------------------------------------------------------ RESHAPE
@pytest.mark.parametrize("in_shape,out_shape", [
    ((1, 2, 3, 4), (1, 24)), ((1, 24), (1, 4, 6)), ((1, 1, 1, 7), (1, 7))])
def test_reshape(kernels, rng, in_shape, out_shape):
    assert_same(*case_reshape(kernels, rng, in_shape=in_shape, out_shape=out_shape))
