"""Cortex-M4 kernel choices that must pick the faster kernel (issue 14 item 5,
"never slower, right choice").

1x1 convolutions whose pixels end in a partial block (cm4_conv_1x1.tail_pays):
tb_cm4_conv2d_1x1_any_k<K>_s8 where its pixel tail pays, else tb_cm4_conv2d_s8.
On the host: the choice on both sides of the rule (3x3x256 -> 4, 512 k-pair
steps, was the pixel tail: 18,357 cycles against 17,770). In the simulator
(slow): both kernels forced on 1x1 layers of 1-8 blocks and a 1-3 pixel tail,
K 128 and 256, C_out 2-16: the kernel a build picks runs fewer cycles.

Depthwise 3x3, the plane kernel's estimate (cm4_dw_channels.plane_cycles), which
decides between it and the channel-parallel kernels: on the host, the choice on
shapes where the refit changed it (25x5x8 stride 2: the word-plane kernel,
12,376 core cycles against the plane kernel's 13,243) or kept it; in the
simulator (slow, mps2-an386 core cycles), the estimate within 8% of the plane
kernel's cycles and the kernel picked the faster of the plane kernel and the
channel-parallel one the build would take instead.

Average pool on 4k+1 channels (k >= 1): tb_cm4_avg_pool2d_4k1_s8 takes the
last channel in the 4-channel pass (byte 3 of the word of the last 4
channels), no call of tb_cm4_avg_pool2d_s8's 1-3 channel tail. On the host:
byte for byte against the reference (clamped, in place, extreme inputs) and
which kernel a build picks. In the simulator (slow): fewer cycles than
tb_cm4_avg_pool2d_s8 on the same 4k+1 layers (core cycles, mps2-an386), and
1x1x3 and 1x1x5 at or below their figures before the tail pass came in
(cortex-m4: 375 and 430 cycles).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from opt_harness import (assert_same, build_library, chosen, forced, in_place_deltas,  # noqa: E402
                         kernel_named, random_conv_layer, random_pool_layer, reference,
                         run_layer, simulate_cases, target_kernels)

CONV = "tb_cm4_conv2d_s8"
# (h, w, K, C_out): both sides of tail_pays at K 128 and 256 (a last 1, 2 or 3 pixels)
TAIL_GRID = [(h, w, 256, oc) for oc in (2, 4, 6)
             for h, w in ((1, 5), (3, 3), (1, 17), (3, 2), (1, 10), (1, 14), (1, 7))] + \
            [(1, 13, 256, 2), (1, 13, 256, 6), (1, 5, 256, 14), (3, 3, 256, 14), (1, 5, 256, 8),
             (3, 2, 256, 8), (1, 5, 256, 10), (1, 5, 128, 2), (1, 5, 128, 4), (1, 5, 128, 6),
             (3, 2, 128, 4), (1, 7, 128, 6), (1, 5, 128, 14), (1, 5, 64, 2), (1, 5, 64, 6)]
POOL_4K1 = "tb_cm4_avg_pool2d_4k1_s8"
POOL = "tb_cm4_avg_pool2d_s8"
# (in_h, in_w, k_h, k_w, stride, padding): 1 to 64 taps, windows cut by SAME padding, a
# window as wide as the input (one run), odd tap counts (the pass's single last tap)
POOL_SHAPES = [(1, 1, 1, 1, 1, "VALID"), (1, 2, 1, 2, 1, "VALID"), (2, 1, 2, 1, 1, "VALID"),
               (2, 2, 2, 2, 2, "VALID"), (4, 4, 1, 1, 2, "VALID"), (3, 3, 3, 3, 1, "SAME"),
               (5, 5, 2, 2, 1, "SAME"), (6, 6, 3, 3, 2, "SAME"), (8, 8, 8, 8, 1, "VALID"),
               (5, 3, 5, 3, 1, "VALID"), (4, 7, 3, 1, 1, "SAME")]
CHANNELS_4K1 = (5, 9, 13, 17, 33)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return build_library(tmp_path_factory.mktemp("tbchoice"), name="libtbchoice.so")


@pytest.fixture(scope="module")
def every():
    return target_kernels("cortex-m4")


def pool_cases(channels, activation="NONE", seed=0):
    rng = np.random.default_rng(seed)
    cases = []
    for c in channels:
        for h, w, kh, kw, s, pad in POOL_SHAPES:
            layer = random_pool_layer(rng, in_h=h, in_w=w, c=c, k_h=kh, k_w=kw, stride=(s, s),
                                      padding=pad, activation=activation, zp=5)
            cases.append((layer, rng.integers(-128, 128, h * w * c).astype(np.int8)))
    return cases


def conv_1x1(h: int, w: int, k: int, oc: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    layer = random_conv_layer(rng, in_h=h, in_w=w, in_c=k, out_c=oc, k_h=1, k_w=1,
                              padding="VALID", in_zp=-128, out_zp=-128, activation="RELU",
                              weight_range=20)
    return layer, rng.integers(-128, 128, h * w * k).astype(np.int8)


# -- 1x1 convolutions with a pixel tail ---------------------------------------------------


@pytest.mark.parametrize("shape, kernel", [
    ((3, 3, 256, 4), CONV),                              # 2 blocks x 2 pairs < 6 (was the tail)
    ((3, 3, 256, 6), CONV),                              # 2 x 3 < 11: 768 steps (was the tail)
    ((1, 13, 256, 6), CONV),                             # 3 x 3 < 11 (was the tail)
    ((1, 17, 256, 6), "tb_cm4_conv2d_1x1_any_k256_s8"),  # 4 x 3 >= 11
    ((1, 13, 256, 2), "tb_cm4_conv2d_1x1_any_k256_s8"),  # 3 x 1 >= 3 (was tb_cm4_conv2d_s8)
    ((1, 5, 256, 8), "tb_cm4_conv2d_1x1_any_k256_s8"),   # no pair left over
    ((3, 2, 256, 6), CONV),                              # a last 2 pixels, 1 block
    ((1, 7, 256, 4), "tb_cm4_conv2d_1x1_any_k256_s8"),   # a last 3 pixels, 2 block pairs
    ((1, 5, 128, 2), "tb_cm4_conv2d_1x1_any_k128_s8"),   # 1 pair, 1 left over (was conv)
    ((1, 5, 128, 6), CONV),                              # 1 x 3 < 6
    ((3, 2, 128, 4), "tb_cm4_conv2d_1x1_any_k128_s8"),   # a last 2 pixels (was conv)
    ((1, 5, 64, 2), "tb_cm4_conv2d_1x1_any_k64_s8"),     # K 64: from one block (was conv)
])
def test_the_1x1_tail_rule_picks(every, shape, kernel):
    layer, _ = conv_1x1(*shape)
    assert chosen(layer, every).kernel == kernel


@pytest.mark.slow
def test_the_1x1_kernel_picked_runs_fewer_cycles(tmp_path, every):
    conv = kernel_named(CONV)
    cases, picks = [], []
    for i, shape in enumerate(TAIL_GRID):
        layer, x = conv_1x1(*shape, seed=i)
        anyk = kernel_named(f"tb_cm4_conv2d_1x1_any_k{shape[2]}_s8")
        picks.append(chosen(layer, every).kernel == anyk.function)
        cases += [(reference(layer), forced(layer, anyk), [x], None),
                  (reference(layer), forced(layer, conv), [x], None)]
    assert 0 < sum(picks) < len(picks)
    rows = _warm_rows(cases, tmp_path, "cortex-m4")
    for shape, pick_any, a, c in zip(TAIL_GRID, picks, rows[0::2], rows[1::2]):
        assert_same(a["ref"], a["opt"], str(shape))
        assert_same(c["ref"], c["opt"], str(shape))
        picked, other = (a, c) if pick_any else (c, a)
        assert picked["opt_cycles"] < other["opt_cycles"], (shape, pick_any, a["opt_cycles"],
                                                            c["opt_cycles"])


# -- depthwise 3x3: the plane kernel's estimate --------------------------------------------
PLANE = "tb_cm4_depthwise_conv2d_s8"
CHANNELS, CHANNELS_3X3 = "tb_cm4_dw_channels_s8", "tb_cm4_dw_channels_3x3_s8"
# (h, w, C, stride): both sides of the plane / channel-parallel choice, every plane path
DW_SHAPES = [(25, 5, 8, 2), (25, 5, 4, 2), (25, 5, 64, 1), (25, 5, 64, 2), (12, 12, 64, 1),
             (12, 12, 64, 2), (6, 6, 128, 1), (6, 6, 128, 2), (48, 48, 8, 1), (24, 24, 32, 2),
             (10, 7, 16, 1), (16, 16, 32, 2), (8, 8, 16, 2), (4, 4, 32, 1)]


def depthwise(h: int, w: int, c: int, s: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    layer = random_conv_layer(rng, depthwise=True, in_h=h, in_w=w, in_c=c, k_h=3, k_w=3,
                              stride=(s, s), padding="SAME", in_zp=-128, out_zp=-128,
                              activation="RELU", out_scale=0.05)
    return layer, rng.integers(-128, 128, h * w * c).astype(np.int8)


@pytest.mark.parametrize("shape, kernel", [
    ((25, 5, 8, 2), CHANNELS_3X3),   # the plane estimate was 4.6% under: the plane kernel
    ((25, 5, 4, 2), CHANNELS_3X3),   # 11.8% under: the plane kernel
    ((25, 5, 64, 1), PLANE),
    ((12, 12, 64, 2), CHANNELS_3X3),
    ((6, 6, 128, 1), PLANE),
    ((48, 48, 8, 1), PLANE),
])
def test_the_depthwise_choice_picks(every, shape, kernel):
    layer, _ = depthwise(*shape)
    assert chosen(layer, every).kernel == kernel


@pytest.mark.slow
def test_the_plane_estimate_and_the_depthwise_choice(tmp_path, every):
    from targets.cortex_m4.kernels.cm4_dw_channels import plane_cycles
    cases, picks = [], []
    for i, shape in enumerate(DW_SHAPES):
        layer, x = depthwise(*shape, seed=i)
        picked = chosen(layer, every).kernel
        other = CHANNELS_3X3 if picked == PLANE else PLANE
        if picked == PLANE and not kernel_named(CHANNELS_3X3).accepts(layer):
            other = CHANNELS
        picks.append((layer, picked))
        cases += [(reference(layer), forced(layer, kernel_named(PLANE)), [x], None),
                  (reference(layer), forced(layer, kernel_named(picked)), [x], None),
                  (reference(layer), forced(layer, kernel_named(other)), [x], None)]
    rows = simulate_cases(cases, tmp_path, target_name="mps2-an386", ram_budget=1_000_000,
                          flash_budget=1_000_000)
    for (layer, picked), plane, mine, other in zip(picks, rows[0::3], rows[1::3], rows[2::3]):
        for row in (plane, mine, other):
            assert_same(row["ref"], row["opt"], layer.shape)
        estimate = plane_cycles(layer.params)
        assert abs(estimate / plane["opt_cycles"] - 1) < 0.08, (layer.shape, estimate,
                                                                plane["opt_cycles"])
        assert mine["opt_cycles"] < other["opt_cycles"], (layer.shape, picked,
                                                          mine["opt_cycles"], other["opt_cycles"])


# -- average pool, 4k+1 channels: the host ------------------------------------------------


@pytest.mark.parametrize("activation", ["NONE", "RELU6"])
def test_pool_4k1_matches_the_reference_in_and_out_of_place(lib, activation):
    impl = kernel_named(POOL_4K1)
    for layer, x in pool_cases(CHANNELS_4K1, activation, seed=5):
        opt = forced(layer, impl)
        for inputs in ([x], [np.full_like(x, -128)], [np.full_like(x, 127)]):
            ref = run_layer(lib, reference(layer), inputs)
            assert_same(ref, run_layer(lib, opt, inputs), f"{layer.shape} {activation}")
            for delta in in_place_deltas(opt):
                got = run_layer(lib, opt, inputs, overlap_delta=delta)
                assert_same(ref, got, f"{layer.shape} {activation} in place at {delta}")


def test_pool_picks_the_4k1_kernel_on_4k_plus_1_channels_only(every):
    for layer, _ in pool_cases(range(1, 19)):
        c = layer.params["c"]
        picked = chosen(layer, every)
        want = None if c < 3 else POOL_4K1 if c > 4 and c % 4 == 1 else POOL
        assert (picked.kernel if picked else None) == want, layer.shape


# -- average pool, 4k+1 channels: the simulator -------------------------------------------


def _warm_rows(cases, tmp_path, target):
    """Each case twice in one firmware, the second run's row: both kernels
    measured with their code in the instruction cache."""
    rows = simulate_cases([c for c in cases for _ in (0, 1)], tmp_path, target_name=target,
                          flash_budget=60_000)
    return rows[1::2]


@pytest.mark.slow
def test_pool_4k1_runs_fewer_core_cycles_than_the_tail_call(tmp_path):
    new, old = kernel_named(POOL_4K1), kernel_named(POOL)
    cases = []
    for layer, x in pool_cases(CHANNELS_4K1, seed=3):
        cases += [(reference(layer), forced(layer, new), [x], None),
                  (reference(layer), forced(layer, old), [x], None)]
    rows = _warm_rows(cases, tmp_path, "mps2-an386")
    for (_, opt, _, _), a, b in zip(cases[0::2], rows[0::2], rows[1::2]):
        assert_same(a["ref"], a["opt"], opt.shape)
        assert_same(b["ref"], b["opt"], opt.shape)
        assert a["opt_cycles"] < b["opt_cycles"], (opt.shape, a["opt_cycles"], b["opt_cycles"])


@pytest.mark.slow
def test_small_pools_keep_their_figures_on_cortex_m4(tmp_path, every):
    """1x1 pools as the build picks their kernel: 3 channels <= 375 cycles (the
    one-pass tail), 5 channels <= 430 (before the tail pass came in: 477)."""
    cases = [(reference(layer), chosen(layer, every), [x], None)
             for layer, x in pool_cases((3, 5), seed=3)[::len(POOL_SHAPES)]]
    rows = _warm_rows(cases, tmp_path, "cortex-m4")
    for (_, opt, _, _), row, most in zip(cases, rows, (375, 430)):
        assert_same(row["ref"], row["opt"], opt.shape)
        assert row["opt_cycles"] <= most, (opt.shape, opt.kernel, row["opt_cycles"])
