"""Hypothesis strategies for kernel layers, and one check per op, shared by the
tests of every target's optimized kernels (test_opt_kernels.py for Cortex-M4,
test_rv_kernels.py for RV32, test_cm4_*.py).

Each ``check_*`` draws a layer and its inputs from a case dict, runs the
target's kernel out of place and in place at every overlap it declares, and
compares the bytes with the reference kernel (opt_harness.compare).
"""
from __future__ import annotations

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from opt_harness import (assert_same, compare, in_place_deltas, random_add_layer,
                         random_conv_layer, random_fc_layer, random_pool_layer, reference,
                         run_layer)

QUANT = dict(in_scale=st.floats(1e-3, 1.0), in_zp=st.integers(-128, 127),
             out_scale=st.floats(1e-3, 2.0), out_zp=st.integers(-128, 127),
             activation=st.sampled_from(["NONE", "NONE", "RELU", "RELU6"]),
             seed=st.integers(0, 2**32 - 1))

conv_cases = st.fixed_dictionaries({
    "in_h": st.integers(1, 10), "in_w": st.integers(1, 10), "in_c": st.integers(1, 24),
    "out_c": st.integers(1, 9), "k_h": st.integers(1, 4), "k_w": st.integers(1, 4),
    "stride": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "dilation": st.tuples(st.integers(1, 2), st.integers(1, 2)),
    "padding": st.sampled_from(["SAME", "VALID"]), "per_channel": st.booleans(),
    "use_bias": st.booleans(), "weight_range": st.sampled_from([1, 5, 127]), **QUANT})

# 1x1 stride 1 (the kernels' no-patch-extraction path) needs its own share of cases
conv_1x1_cases = st.fixed_dictionaries({
    "in_h": st.integers(1, 9), "in_w": st.integers(1, 9), "in_c": st.integers(1, 40),
    "out_c": st.integers(1, 13), "k_h": st.just(1), "k_w": st.just(1),
    "stride": st.just((1, 1)), "dilation": st.just((1, 1)),
    "padding": st.sampled_from(["SAME", "VALID"]), "per_channel": st.booleans(),
    "use_bias": st.booleans(), "weight_range": st.sampled_from([1, 127]), **QUANT})

dw_cases = st.fixed_dictionaries({
    "in_h": st.integers(1, 12), "in_w": st.integers(1, 12), "in_c": st.integers(1, 9),
    "k_h": st.sampled_from([1, 2, 3, 3, 3, 4]), "k_w": st.sampled_from([1, 2, 3, 3, 3, 5]),
    "stride": st.sampled_from([(1, 1), (1, 1), (2, 2), (2, 2), (1, 2), (3, 3)]),
    "dilation": st.sampled_from([(1, 1), (1, 1), (1, 1), (2, 2), (1, 2)]),
    "padding": st.sampled_from(["SAME", "VALID"]), "per_channel": st.booleans(),
    "use_bias": st.booleans(), "depth_multiplier": st.sampled_from([1, 1, 1, 2, 3]),
    "weight_range": st.sampled_from([1, 127]), **QUANT})

fc_cases = st.fixed_dictionaries({
    "in_features": st.integers(1, 300), "out_features": st.integers(1, 40),
    "per_channel": st.booleans(), "use_bias": st.booleans(),
    "in_scale": st.floats(1e-3, 1.0), "in_zp": st.integers(-128, 127),
    "w_scale": st.floats(1e-3, 0.1), "out_scale": st.floats(1e-3, 2.0),
    "out_zp": st.integers(-128, 127), "activation": st.sampled_from(["NONE", "RELU", "RELU6"]),
    "seed": st.integers(0, 2**32 - 1)})

add_cases = st.fixed_dictionaries({
    "size": st.integers(1, 300), "s1": st.floats(1e-3, 1.0), "z1": st.integers(-128, 127),
    "s2": st.floats(1e-3, 1.0), "z2": st.integers(-128, 127), "so": st.floats(1e-3, 2.0),
    "zo": st.integers(-128, 127), "activation": st.sampled_from(["NONE", "RELU", "RELU6"]),
    "seed": st.integers(0, 2**32 - 1)})


def valid_window(d) -> bool:
    """A VALID convolution needs its (dilated) window inside the input."""
    eff_h = (d["k_h"] - 1) * d["dilation"][0] + 1
    eff_w = (d["k_w"] - 1) * d["dilation"][1] + 1
    return d["padding"] == "SAME" or (eff_h <= d["in_h"] and eff_w <= d["in_w"])


def check_conv(lib, impls, d, depthwise=False):
    d = dict(d)
    assume(valid_window(d))
    rng = np.random.default_rng(d.pop("seed"))
    layer = random_conv_layer(rng, depthwise=depthwise, **d)
    x = rng.integers(-128, 128, size=d["in_h"] * d["in_w"] * d["in_c"]).astype(np.int8)
    return compare(lib, impls, layer, [x])


def check_fc(lib, impls, d, must_accept=False):
    d = dict(d)
    rng = np.random.default_rng(d.pop("seed"))
    layer = random_fc_layer(rng, **d)
    x = rng.integers(-128, 128, size=d["in_features"]).astype(np.int8)
    accept = must_accept(layer) if callable(must_accept) else must_accept
    return compare(lib, impls, layer, [x], must_accept=accept)


def check_add(lib, impls, d):
    """Out of place, in place over the first input, and over the second."""
    d = dict(d)
    rng = np.random.default_rng(d.pop("seed"))
    layer = random_add_layer(rng, **d)
    a = rng.integers(-128, 128, size=d["size"]).astype(np.int8)
    b = rng.integers(-128, 128, size=d["size"]).astype(np.int8)
    opt = compare(lib, impls, layer, [a, b], must_accept=False)
    if opt is not None:
        ref = run_layer(lib, reference(layer), [a, b])
        for delta in in_place_deltas(opt, 1):
            assert_same(ref, run_layer(lib, opt, [a, b], overlap_delta=delta, overlap_input=1))
    return opt


# Layer shapes of the MLPerf Tiny models (KWS, VWW, ResNet-8) and the usual
# edge cases (partial pixel blocks, odd channel counts, in_c % 4 != 0); each
# target's tests add the shapes its own kernels single out.
MODEL_CONV_SHAPES = [
    dict(in_h=49, in_w=10, in_c=1, out_c=64, k_h=10, k_w=4, stride=(2, 2), padding="SAME"),
    dict(in_h=25, in_w=5, in_c=64, out_c=64, k_h=1, k_w=1, padding="SAME"),
    dict(in_h=9, in_w=9, in_c=3, out_c=8, k_h=3, k_w=3, stride=(2, 2), padding="SAME"),
    dict(in_h=6, in_w=6, in_c=16, out_c=32, k_h=3, k_w=3, padding="SAME"),
    dict(in_h=5, in_w=3, in_c=64, out_c=5, k_h=3, k_w=3, padding="SAME"),
    dict(in_h=3, in_w=3, in_c=256, out_c=7, k_h=1, k_w=1, padding="VALID"),
    dict(in_h=8, in_w=8, in_c=32, out_c=64, k_h=1, k_w=1, stride=(2, 2), padding="SAME"),
    dict(in_h=4, in_w=4, in_c=130, out_c=3, k_h=1, k_w=1, padding="VALID"),
]
MODEL_DW_SHAPES = [
    dict(in_h=25, in_w=5, in_c=64, k_h=3, k_w=3, padding="SAME"),
    dict(in_h=48, in_w=48, in_c=4, k_h=3, k_w=3, padding="SAME"),
    dict(in_h=48, in_w=48, in_c=4, k_h=3, k_w=3, stride=(2, 2), padding="SAME"),
    dict(in_h=3, in_w=3, in_c=16, k_h=3, k_w=3, padding="SAME"),
    dict(in_h=7, in_w=70, in_c=3, k_h=3, k_w=3, stride=(2, 2), padding="VALID"),
    dict(in_h=70, in_w=7, in_c=3, k_h=3, k_w=3, stride=(2, 2), padding="VALID"),
    dict(in_h=4, in_w=140, in_c=2, k_h=3, k_w=3, padding="SAME"),
]


def conv_shape_id(s) -> str:
    return f"{s['in_h']}x{s['in_w']}x{s['in_c']}-{s['out_c']}k{s['k_h']}{s['k_w']}"


def dw_shape_id(s) -> str:
    return f"{s['in_h']}x{s['in_w']}x{s['in_c']}s{s.get('stride', (1, 1))[0]}"


def check_shape(lib, impls, shape, zps, depthwise=False):
    """One layer of ``shape`` with input/output zero points ``zps``, seeded by the shape."""
    rng = np.random.default_rng(sum(map(ord, str(shape))))
    layer = random_conv_layer(rng, depthwise=depthwise, in_zp=zps[0], out_zp=zps[1], **shape)
    x = rng.integers(-128, 128, size=shape["in_h"] * shape["in_w"] * shape["in_c"]).astype(np.int8)
    return compare(lib, impls, layer, [x])


SIM_KINDS = ("conv", "depthwise", "fc", "add", "avg_pool")


def random_sim_layer(rng, kind: str):
    """A small random layer of ``kind`` and its inputs, for the simulator
    comparisons (small enough that many fit one firmware)."""
    act = str(rng.choice(["NONE", "RELU", "RELU6"]))
    zp = lambda: int(rng.integers(-128, 128))   # noqa: E731
    if kind in ("conv", "depthwise"):
        d = dict(in_h=int(rng.integers(1, 9)), in_w=int(rng.integers(1, 9)), in_c=int(rng.integers(1, 20)),
                 k_h=int(rng.integers(1, 4)), k_w=int(rng.integers(1, 4)),
                 stride=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
                 dilation=(int(rng.integers(1, 3)), 1), padding="SAME", activation=act,
                 in_zp=zp(), out_zp=zp(), per_channel=bool(rng.integers(0, 2)))
        if kind == "conv":
            d["out_c"] = int(rng.integers(1, 9))
        else:
            d["depth_multiplier"] = int(rng.choice([1, 1, 2]))
        layer = random_conv_layer(rng, depthwise=kind == "depthwise", **d)
        return layer, [rng.integers(-128, 128, size=d["in_h"] * d["in_w"] * d["in_c"]).astype(np.int8)]
    if kind == "fc":
        d = dict(in_features=int(rng.integers(1, 200)), out_features=int(rng.integers(1, 30)),
                 per_channel=bool(rng.integers(0, 2)), in_zp=zp(), out_zp=zp(), activation=act)
        return random_fc_layer(rng, **d), [rng.integers(-128, 128, size=d["in_features"]).astype(np.int8)]
    if kind == "add":
        n = int(rng.integers(1, 200))
        layer = random_add_layer(rng, size=n, s1=float(rng.uniform(0.01, 1)), z1=zp(),
                                 s2=float(rng.uniform(0.01, 1)), z2=zp(),
                                 so=float(rng.uniform(0.01, 1)), zo=zp(), activation=act)
        return layer, [rng.integers(-128, 128, size=n).astype(np.int8) for _ in range(2)]
    h, w, c = int(rng.integers(2, 10)), int(rng.integers(2, 10)), int(rng.integers(1, 20))
    layer = random_pool_layer(rng, in_h=h, in_w=w, c=c, k_h=int(rng.integers(1, 3)),
                              k_w=int(rng.integers(1, 3)), stride=(1, 2), padding="SAME", zp=zp())
    return layer, [rng.integers(-128, 128, size=h * w * c).astype(np.int8)]


def check_requantization_edge_cases(lib, impls, depthwise: bool, fast_form_note: str,
                                    live_bias: int):
    """Power-of-two scales (M = 2^30), tiny multipliers (right shifts near 31),
    channels whose weights are all 0 with a bias near 2^30 (VWW has them), and
    a live bias (``live_bias``) so large that the kernel's fast requantization
    is not exact: its notes must name the form it took (``fast_form_note``, or
    the reference's MultiplyByQuantizedMultiplier)."""
    from tinybuild import quant
    rng = np.random.default_rng(3)
    for in_scale, out_scale in [(0.5, 0.25), (2.0 ** -7, 2.0 ** -3), (1e-3, 8.0), (0.9, 0.01)]:
        layer = random_conv_layer(rng, depthwise=depthwise, in_h=5, in_w=5, in_c=4, out_c=4,
                                  in_scale=in_scale, out_scale=out_scale, in_zp=-128,
                                  out_zp=-128)
        x = rng.integers(-128, 128, size=100).astype(np.int8)
        compare(lib, impls, layer, [x])
    for huge_live_bias, form in [(False, fast_form_note), (True, "MultiplyByQuantizedMultiplier")]:
        layer = random_conv_layer(rng, depthwise=depthwise, in_h=4, in_w=4, in_c=4, out_c=4,
                                  in_zp=-128, out_zp=-128)
        w = layer.consts[0].values.copy()
        b = layer.consts[1].values.copy()
        if depthwise:
            w.reshape(-1, 4)[:, 1] = 0
        else:
            w.reshape(4, -1)[1] = 0
        b[1] = (1 << 30) + 7               # a dead channel: its output is a constant
        if huge_live_bias:
            b[2] = live_bias
        layer.consts[0].values, layer.consts[1].values = w, b
        m = layer.consts[2].values.copy()
        m[1] = quant.quantize_multiplier(2.0 ** -27 * 0.77)
        m[3] = (0, 0)
        layer.consts[2].values = m
        x = rng.integers(-128, 128, size=64).astype(np.int8)
        opt = compare(lib, impls, layer, [x])
        assert any(form in n for n in opt.notes), opt.notes
