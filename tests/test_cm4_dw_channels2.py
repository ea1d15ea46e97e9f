"""The channel-parallel Cortex-M4 depthwise kernel's 3x3 form on a framed word
plane (tb_cm4_dw_channels_3x3_s8 in cm4_dw_channels_s8.c) against the reference
kernel, byte for byte.

On the host (the portable C of the row routine) with hypothesis over the shapes
it takes (3x3, strides 1 and 2, SAME and VALID, planes up to 16 words wide),
zero points (-128 runs the routine without the sign term), scales and
activations, each case also exactly in place; ties of the requantization and
extreme accumulators; the group records; which layers it takes. In the
simulator (slow): the assembly against the reference, both routines.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from kernel_cases import QUANT  # noqa: E402
from opt_harness import (assert_same, forced, kernel_fixtures, random_conv_layer,  # noqa: E402
                         reference, run_firmware, run_layer)

FUNCTION = "tb_cm4_dw_channels_3x3_s8"
FAST = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.filter_too_much])


impl, module, lib = kernel_fixtures(FUNCTION, "tbdwc3")


def compare(lib, impl, layer, x):
    opt = forced(layer, impl)
    want = run_layer(lib, reference(layer), [x])
    assert_same(want, run_layer(lib, opt, [x]), layer.shape)
    assert opt.overlap[0] == (0, 0), opt.overlap
    assert_same(want, run_layer(lib, opt, [x], overlap_delta=0), f"{layer.shape} in place")
    return opt


def layer_and_input(seed, **shape):
    rng = np.random.default_rng(seed)
    layer = random_conv_layer(rng, depthwise=True, k_h=3, k_w=3, **shape)
    x = rng.integers(-128, 128, size=shape["in_h"] * shape["in_w"] * shape["in_c"]).astype(np.int8)
    return layer, x


cases = st.fixed_dictionaries({
    "in_h": st.integers(1, 20), "in_w": st.integers(1, 14),
    "in_c": st.sampled_from([4, 8, 12, 20, 36]),
    "stride": st.tuples(st.integers(1, 2), st.integers(1, 2)),
    "padding": st.sampled_from(["SAME", "VALID"]), "per_channel": st.booleans(),
    "use_bias": st.booleans(), "weight_range": st.sampled_from([1, 127]), **QUANT,
    # RELU or NONE: the full int8 range the 3x3 form needs; zero point -128 often
    "activation": st.sampled_from(["NONE", "RELU"]),
    "out_zp": st.one_of(st.just(-128), st.integers(-128, 127))})


@FAST
@given(d=cases)
def test_matches_reference(lib, impl, module, d):
    d = dict(d)
    seed = d.pop("seed")
    assume(d["padding"] == "SAME" or (d["in_h"] >= 3 and d["in_w"] >= 3))
    layer, x = layer_and_input(seed, **d)
    assume(module.plane_shape(layer.params)[1] <= module.PITCH)
    # the 3x3 form needs the fast full-range requantization (else the other kernels run)
    _, flags, _, _ = module.requantization(layer)
    assume(flags == module.RQ_FAST | module.RQ_FULLRANGE)
    compare(lib, impl, layer, x)


# VWW's small maps, KWS's 25x5, a 14-wide map (the widest plane, 16 words), odd sizes
SHAPES = [
    dict(in_h=3, in_w=3, in_c=256, padding="SAME"),
    dict(in_h=6, in_w=6, in_c=128, padding="SAME"),
    dict(in_h=6, in_w=6, in_c=128, stride=(2, 2), padding="SAME"),
    dict(in_h=12, in_w=12, in_c=64, stride=(2, 2), padding="SAME"),
    dict(in_h=12, in_w=12, in_c=64, padding="SAME"),
    dict(in_h=25, in_w=5, in_c=64, padding="SAME"),
    dict(in_h=9, in_w=14, in_c=8, padding="SAME"),
    dict(in_h=7, in_w=16, in_c=4, padding="VALID"),
    dict(in_h=1, in_w=1, in_c=12, padding="SAME"),
    dict(in_h=5, in_w=7, in_c=4, stride=(1, 2), padding="VALID"),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s['in_h']}x{s['in_w']}x{s['in_c']}"
                                                         f"s{s.get('stride', (1, 1))[0]}")
@pytest.mark.parametrize("zps", [(-128, -128), (5, 17), (127, -128)])
def test_model_shapes(lib, impl, shape, zps):
    layer, x = layer_and_input(sum(map(ord, str(shape))), in_zp=zps[0], out_zp=zps[1], **shape)
    opt = compare(lib, impl, layer, x)
    no_sign = opt.consts[0].values[0]
    assert no_sign == (zps[1] == -128), opt.notes


def test_extreme_accumulators_and_ties(lib, impl, module):
    """Weights and inputs at the ends of int8 (|acc| near its bound, doubled), biases
    near the fast form's limit, multipliers that put outputs on rounding ties."""
    from tinybuild import quant
    for seed, sign in [(1, 1), (2, -1)]:
        layer, _ = layer_and_input(seed, in_h=4, in_w=5, in_c=8, in_zp=-128, out_zp=3,
                                   padding="SAME", weight_range=127)
        w = np.full(72, 127 * sign, np.int8)
        w[1::8] = -127 * sign
        layer.consts[0].values = w
        layer.consts[1].values = np.array([0, 1, -1, 1 << 20, -(1 << 20), 7, 0, 0], np.int32)
        # 2^-k multipliers: every accumulator that is a multiple of 2^(k-1) lies on a tie
        m = np.array([quant.quantize_multiplier(2.0 ** -k) for k in range(4, 12)],
                     np.int32)
        layer.consts[2].values = m
        for x in (np.full(160, 127, np.int8), np.full(160, -128, np.int8),
                  np.tile(np.array([127, -128], np.int8), 80)):
            opt = compare(lib, impl, layer, x)
        assert any("SMMLAR" in n for n in opt.notes), opt.notes


def test_group_records_are_what_the_kernel_loads(module):
    """Per group: the 4 biases and tap 0's 2 weight words, the 4 tap pairs' 16 weight
    words (channel_words' order: (1, 2) ... (7, 8)), then {M, B, e} of channels c .. c+3."""
    w = np.arange(9 * 8).reshape(9, 8)
    triples = np.arange(8 * 3).reshape(8, 3) + 1000
    rec = module.group_records(w, np.arange(8) - 4, triples)
    assert rec.shape == (2, module.RECORD_WORDS)
    assert rec[0, :4].tolist() == [-4, -3, -2, -1] and rec[1, :4].tolist() == [0, 1, 2, 3]
    tap0 = rec[:, 4:6].copy().view(np.int16)
    assert tap0[0].tolist() == [0, 2, 1, 3] and tap0[1].tolist() == [4, 6, 5, 7]
    assert rec[1, 22:].tolist() == list(range(1012, 1024))
    pairs = rec[:, 6:22].copy().view(np.int16)
    assert pairs[0, :8].tolist() == [8, 16, 10, 18, 9, 17, 11, 19]
    assert pairs[1].tolist() == module.channel_words(w)[36 + 4:].tolist()


def test_which_layers_it_takes(impl, module):
    """3x3, dilation 1, strides 1-2, planes of at most 16 words per row, the fast
    full-range requantization; where estimated faster than both other kernels:
    VWW's 3x3x256 and its 12x12x64 and 6x6x128 stride-2 maps (against the tap-list
    kernel without the record's copy: that kernel reads its weights where they lie
    too), not its 6x6x128 stride 1 (the plane kernel's sweep)."""
    rng = np.random.default_rng(0)
    take = lambda **s: impl.accepts(random_conv_layer(rng, depthwise=True, k_h=3, k_w=3, **s))
    assert take(in_h=3, in_w=3, in_c=256, padding="SAME")
    assert take(in_h=12, in_w=12, in_c=64, stride=(2, 2), padding="SAME")
    assert take(in_h=6, in_w=6, in_c=128, stride=(2, 2), padding="SAME")
    assert not take(in_h=6, in_w=6, in_c=128, padding="SAME")
    assert not take(in_h=3, in_w=3, in_c=256, padding="SAME", activation="RELU6")
    assert not take(in_h=24, in_w=24, in_c=32, stride=(2, 2), padding="SAME")   # 25 columns
    assert not take(in_h=48, in_w=48, in_c=8, padding="SAME")
    assert not take(in_h=6, in_w=6, in_c=6, padding="SAME")
    assert not take(in_h=6, in_w=6, in_c=8, padding="SAME", dilation=(2, 2))
    assert not take(in_h=9, in_w=9, in_c=8, stride=(3, 3), padding="SAME")
    assert not take(in_h=6, in_w=6, in_c=8, padding="SAME", depth_multiplier=2)
    big = random_conv_layer(rng, depthwise=True, in_h=12, in_w=12, in_c=64, padding="SAME")
    big.consts[0].values = np.zeros_like(big.consts[0].values)
    assert module.plane_shape(big.params) == (14, 14)


# -- in the simulator ---------------------------------------------------------------------

@pytest.mark.slow
def test_cortex_m4_build_matches_the_reference(tmp_path, impl, module):
    rng = np.random.default_rng(5)
    shapes = [dict(s) for s in SHAPES]
    while len(shapes) < 30:
        shapes.append(dict(in_h=int(rng.integers(1, 13)), in_w=int(rng.integers(3, 14)),
                           in_c=int(rng.choice([4, 8, 12, 24])),
                           stride=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
                           padding=str(rng.choice(["SAME", "VALID"])),
                           per_channel=bool(rng.integers(0, 2))))
        if shapes[-1]["in_h"] < 3:        # VALID needs a whole window
            shapes[-1]["padding"] = "SAME"
    cases = []
    for i, shape in enumerate(shapes):
        out_zp = -128 if i % 2 else int(rng.integers(-127, 128))     # both routines
        layer = random_conv_layer(rng, depthwise=True, k_h=3, k_w=3,
                                  activation="RELU" if i % 2 else "NONE",
                                  in_zp=int(rng.integers(-128, 128)), out_zp=out_zp, **shape)
        if module.requantization(layer)[1] != module.RQ_FAST | module.RQ_FULLRANGE:
            continue
        x = rng.integers(-128, 128, size=shape["in_h"] * shape["in_w"] * shape["in_c"]).astype(np.int8)
        opt = forced(layer, impl)
        cases.append((reference(layer), opt, [x], None))
        cases.append((reference(layer), opt, [x], 0))
    assert len(cases) >= 40
    rows = run_firmware(cases, tmp_path)
    for (ref, got, _, _), (layer, *_rest) in zip(rows, cases):
        assert_same(ref, got, f"{layer.shape} in the simulator")
