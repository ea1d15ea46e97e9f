"""Cortex-M4 elementwise, ADD and average-pool kernels at their smallest sizes
(issue 14: an optimized kernel is never slower than the reference on a layer
it accepts, no small-size cliff).

In the simulator (slow): ADD at every size 1..64 (the table word loop, its
activation clamp, the requantizing path), MUL in each form it takes (same
shapes, a scalar, a constant scalar as a table, per channel), table
activations 1..64, and average pools of 1..17 channels on windows of 1 to 64
taps: byte for byte against the reference kernel in the same firmware, and
where a build picks the optimized kernel its modelled cycles are at most the
reference's (4k+1 channels against their figures before: tests/test_cm4_choice_fixes.py). On the host: tb_cm4_avg_pool2d_s8's one-pass loop for the last
1-3 channels (with and without 4-channel words before them, clamped, in
place) against the reference.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "kernels"))
sys.path.insert(0, str(Path(__file__).parent))

from opt_harness import (assert_same, build_library, chosen, cm4_kernels,  # noqa: E402
                         in_place_deltas, optimized, random_add_layer, random_pool_layer,
                         reference, run_layer, simulate_cases, target_kernels)
from test_target_elementwise import lut_layer, mul_layer  # noqa: E402

SIZES = range(1, 65)
# ADD quantizations: tables, full range; tables with a RELU clamp; inputs too wide for tables
ADD_QUANTS = [dict(s1=0.05, s2=0.05, so=0.1),
              dict(s1=0.1, z1=5, s2=0.3, z2=-20, so=0.2, zo=10, activation="RELU"),
              dict(s1=0.9, z1=3, s2=0.8, z2=-5, so=0.0004)]
MUL_SCALES = (0.05, 0.04, 0.1)
# (in_h, in_w, k_h, k_w, stride, padding): 1 to 64 taps, windows cut by SAME padding
POOL_SHAPES = [(1, 1, 1, 1, 1, "VALID"), (1, 2, 1, 2, 1, "VALID"), (2, 1, 2, 1, 1, "VALID"),
               (2, 2, 2, 2, 2, "VALID"), (4, 4, 1, 1, 2, "VALID"), (3, 3, 3, 3, 1, "SAME"),
               (5, 5, 2, 2, 1, "SAME"), (6, 6, 3, 3, 2, "SAME"), (8, 8, 8, 8, 1, "VALID")]
POOL_CHANNELS = (1, 2, 3, 4, 5, 6, 7, 9, 13, 17)   # 5, 9, 13, 17: tb_cm4_avg_pool2d_4k1_s8


def _bytes(rng, n: int) -> np.ndarray:
    return rng.integers(-128, 128, n).astype(np.int8)


def add_layers(rng):
    return [(random_add_layer(rng, size=n, **ADD_QUANTS[n % 3]), [_bytes(rng, n), _bytes(rng, n)])
            for n in SIZES]


def mul_layers(rng):
    forms = [lambda n: mul_layer(rng, (n,), (n,), quant_params=MUL_SCALES),
             lambda n: mul_layer(rng, (n,), (1,), quant_params=MUL_SCALES),
             lambda n: mul_layer(rng, (1,), (n,), const="input1", quant_params=MUL_SCALES)]
    layers = [forms[n % 3](n) for n in SIZES]
    return layers + [mul_layer(rng, (1, hw, 1, c), (1, 1, 1, c), quant_params=MUL_SCALES)
                     for c in (1, 2, 3, 5, 16) for hw in (1, 2, 5)]


def lut_layers(rng):
    return [lut_layer(rng, n, "HARD_SWISH") for n in SIZES]


def pool_layers(rng, activation="NONE"):
    layers = []
    for c in POOL_CHANNELS:
        for h, w, kh, kw, s, pad in POOL_SHAPES:
            layer = random_pool_layer(rng, in_h=h, in_w=w, c=c, k_h=kh, k_w=kw, stride=(s, s),
                                      padding=pad, activation=activation, zp=5)
            layers.append((layer, [_bytes(rng, h * w * c)]))
    return layers


# -- the host: the average pool's last 1-3 channels ----------------------------------------


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return build_library(tmp_path_factory.mktemp("tbsmall"), name="libtbsmall.so")


@pytest.mark.parametrize("activation", ["NONE", "RELU6"])
def test_pool_tail_channels_match_the_reference_in_and_out_of_place(lib, activation):
    impls = cm4_kernels()
    rng = np.random.default_rng(21)
    for layer, x in pool_layers(rng, activation):
        opt = optimized(layer, impls)
        assert opt is not None, layer.shape
        for inputs in (x, [np.full_like(x[0], -128)], [np.full_like(x[0], 127)]):
            ref = run_layer(lib, reference(layer), inputs)
            assert_same(ref, run_layer(lib, opt, inputs), f"{layer.shape} {activation}")
            for delta in in_place_deltas(opt):
                got = run_layer(lib, opt, inputs, overlap_delta=delta)
                assert_same(ref, got, f"{layer.shape} {activation} in place at {delta}")


def test_pool_takes_three_channels_and_more():
    """1 and 2 channels stay on the reference (1: slower below 8x8 windows; 2: a
    tie on one tap); from 3 the one-pass tail loop wins on every window."""
    every = target_kernels("cortex-m4")
    for layer, _ in pool_layers(np.random.default_rng(0)):
        picked = chosen(layer, every)
        assert (picked is not None) == (layer.params["c"] >= 3), layer.shape


# -- the simulator: never slower than the reference ------------------------------------------


def _sweep_rows(layers, tmp_path):
    every = target_kernels("cortex-m4")
    cases = [(reference(layer), opt, x, None) for layer, x in layers
             if (opt := chosen(layer, every)) is not None]
    return cases, simulate_cases(cases, tmp_path, flash_budget=60_000)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["add", "mul", "lut", "pool"])
def test_never_slower_than_the_reference_at_small_sizes(tmp_path, family):
    make = {"add": add_layers, "mul": mul_layers, "lut": lut_layers, "pool": pool_layers}[family]
    layers = make(np.random.default_rng(3))
    cases, rows = _sweep_rows(layers, tmp_path)
    taken = {"add": len(layers), "mul": len(layers), "lut": len(layers) - 15,   # tables: from 16
             "pool": len(layers) * 8 // 10}                                     # 3 channels and more
    assert len(cases) == taken[family]
    for (ref, opt, _, _), row in zip(cases, rows):
        what = f"{opt.op} {opt.shape} ({opt.kernel})"
        assert row["opt_cycles"] > 0, f"{what}: the optimized kernel did not run"
        assert_same(row["ref"], row["opt"], what)
        assert row["opt_cycles"] <= row["ref_cycles"], (what, row["opt_cycles"], row["ref_cycles"])
