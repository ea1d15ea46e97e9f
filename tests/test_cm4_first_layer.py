"""tb_cm4_conv2d_s8 on 3x3 kernels over 3 input channels (VWW's and ResNet-8's
first layers: the rows-of-9 path, K 27 -> 28): with the fast full-range
requantization and raw-B weights, whole blocks of 4 pixels run in
tb_cm4_rows9_blocks (the column on the stack, a run of blocks per call,
border blocks staged), Cortex-M4 only.

In the simulator (slow): odd shapes (strides, dilation in height, partial last
blocks, odd and even C_out, blocks that span two output rows, border blocks),
both requantization forms, in place at every overlap the build declares
(forward and backward runs), the largest accumulators; and never slower than
the 4 x 2 block loop it replaced (the same firmware built with
-DTB_CM4_R9_BLOCKS=0), by a clear margin on VWW's and ResNet-8's first layers.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from opt_harness import (assert_same, in_place_deltas, optimized, random_conv_layer,  # noqa: E402
                         reference, simulate_cases, target_kernels)


@pytest.fixture(scope="module")
def conv():
    found = [k for k in target_kernels("cortex-m4") if k.op == "CONV_2D" and
             k.function == "tb_cm4_conv2d_s8"]
    assert found, "the cortex-m4 plugin offers no tb_cm4_conv2d_s8"
    return {"CONV_2D": found[0]}


def rows9_layer(rng, shape, out_zp=-128, weight_range=127, in_zp=None):
    layer = random_conv_layer(rng, in_c=3, k_h=3, k_w=3, out_zp=out_zp,
                              in_zp=int(rng.integers(-128, 128)) if in_zp is None else in_zp,
                              activation="RELU" if out_zp == -128 else "NONE",
                              weight_range=weight_range, **shape)
    x = rng.integers(-128, 128, size=shape["in_h"] * shape["in_w"] * 3).astype(np.int8)
    return layer, x


def takes_rows9_blocks(opt) -> bool:
    """The build chose what tb_cm4_rows9_blocks needs: rows of 9 bytes, raw-B."""
    notes = " ".join(opt.notes)
    return "kernel rows of 9 bytes" in notes and "raw word" in notes


SHAPES = [
    dict(in_h=7, in_w=9, out_c=8, stride=(2, 2), padding="SAME"),     # blocks span two rows
    dict(in_h=6, in_w=6, out_c=6, padding="SAME"),                    # 36 pixels, border blocks
    dict(in_h=5, in_w=11, out_c=2, padding="VALID"),                  # 27 pixels: a last block of 3
    dict(in_h=9, in_w=10, out_c=10, stride=(1, 2), padding="SAME"),   # 45: a last pixel alone
    dict(in_h=11, in_w=8, out_c=4, dilation=(2, 1), padding="SAME"),  # rows 2 input rows apart
    dict(in_h=13, in_w=13, out_c=8, stride=(2, 2), padding="VALID"),
    dict(in_h=8, in_w=8, out_c=5, padding="SAME"),                    # odd C_out: the 4 x 2 loop
    dict(in_h=20, in_w=20, out_c=12, padding="SAME"),                 # runs of 4 blocks, a plane
    dict(in_h=17, in_w=19, out_c=16, stride=(2, 2), padding="SAME"),  # pad right/bottom only
]


def cases_for(conv, rng, shapes, in_place=True):
    cases = []
    for i, shape in enumerate(shapes):
        layer, x = rows9_layer(rng, shape, out_zp=-128 if i % 2 == 0 else 9)
        opt = optimized(layer, conv)
        assert takes_rows9_blocks(opt), shape
        cases.append((reference(layer), opt, [x], None))
        if in_place:
            cases += [(reference(layer), opt, [x], d) for d in in_place_deltas(opt)]
    return cases


def assert_rows(cases, rows):
    assert len(rows) == len(cases)
    for (_, opt, _, d), row in zip(cases, rows):
        assert_same(row["ref"], row["opt"], f"{opt.shape} in place at {d}")
        assert row["opt_cycles"] > 0


@pytest.mark.slow
def test_rows9_blocks_match_the_reference_in_the_simulator(tmp_path, conv):
    """Odd shapes, both requantization forms (zero point -128 without the sign
    term, 9 with it), out of place and at every declared overlap."""
    cases = cases_for(conv, np.random.default_rng(41), SHAPES)
    assert_rows(cases, simulate_cases(cases, tmp_path, target_name="nucleo-l4r5zi"))


@pytest.mark.slow
def test_rows9_blocks_with_the_largest_accumulators(tmp_path, conv):
    """Weights at +-127 on inputs 255 from the zero point (the largest sums a
    3x3x3 layer can make: 27 * 127 * 255, raw-B still exact), biases near the
    requantization's limit, one dead channel."""
    rng = np.random.default_rng(42)
    cases = []
    for in_zp, x_end, out_zp in ((-128, 127, -128), (127, -128, 5)):
        layer, _ = rows9_layer(rng, dict(in_h=10, in_w=12, out_c=8, padding="SAME"),
                               out_zp=out_zp, in_zp=in_zp)
        w = layer.consts[0].values.reshape(8, -1).copy()
        w[:] = np.where(rng.integers(0, 2, w.shape) == 1, 127, -127)
        w[0], w[1], w[3] = 127, -127, 0
        layer.consts[0].values = w.reshape(-1)
        layer.consts[1].values = np.array([30000, -30000, 5, 1 << 20, 7, -7, 0, 99], np.int32)
        x = np.full(10 * 12 * 3, x_end, np.int8)
        x[::7] = -1 - x_end
        opt = optimized(layer, conv)
        assert takes_rows9_blocks(opt)
        cases.append((reference(layer), opt, [x], None))
    assert_rows(cases, simulate_cases(cases, tmp_path, target_name="nucleo-l4r5zi"))


FIRST_LAYERS = [dict(in_h=96, in_w=96, out_c=8, stride=(2, 2), padding="SAME"),   # VWW
                dict(in_h=32, in_w=32, out_c=16, padding="SAME")]                  # ResNet-8


@pytest.mark.slow
def test_rows9_blocks_never_slower_than_the_pair_loop(tmp_path, conv, monkeypatch):
    """The same layers with TB_CM4_R9_BLOCKS 0 (the 4 x 2 block loop with its
    computed entry, the column in the scratch): fewer cycles on every shape
    (on small maps whose blocks span two output rows, one call per block, a
    few more instructions: 13x13x3 -> 6x6x8 +2%), and on the two first layers
    fewer instructions and at least 10% fewer cycles."""
    from dataclasses import replace

    from tinybuild import plugins
    rng = np.random.default_rng(43)
    cases = cases_for(conv, rng, SHAPES + FIRST_LAYERS, in_place=False)
    new = simulate_cases(cases, tmp_path / "new", target_name="nucleo-l4r5zi", ram_budget=120_000)
    find = plugins.find_target

    def without(pm, name):
        t = find(pm, name)
        return replace(t, cflags=t.cflags + ("-DTB_CM4_R9_BLOCKS=0",))

    monkeypatch.setattr(plugins, "find_target", without)
    old = simulate_cases(cases, tmp_path / "old", target_name="nucleo-l4r5zi", ram_budget=120_000)
    assert_rows(cases, new)
    assert_rows(cases, old)
    for (_, opt, _, _), a, b in zip(cases, new, old):
        if opt.params["out_c"] % 2:
            continue   # not taken: the 4 x 2 loop in both
        assert a["opt_cycles"] < b["opt_cycles"], (opt.shape, a["opt_cycles"], b["opt_cycles"])
    for a, b in zip(new[-2:], old[-2:]):
        assert a["opt_instr"] < b["opt_instr"], (a["opt_instr"], b["opt_instr"])
        assert a["opt_cycles"] < 0.9 * b["opt_cycles"], (a["opt_cycles"], b["opt_cycles"])
