"""Which kernel takes a 1x1 layer whose pixels end in a partial block
(cm4_conv_1x1.tail_pays): tb_cm4_conv2d_1x1_any_k<K>_s8 (its pixel tail) on
K <= 64, deeper from enough whole blocks x channel pairs, else tb_cm4_conv2d_s8
(the refit's shapes: tests/test_cm4_choice_fixes.py).

On the host: the choice on both sides of the rule. In the simulator (slow),
both kernels forced on 1x1 layers of 1-3 blocks and a tail, K 8-128: where a
build picks the pixel tail it runs fewer cycles than tb_cm4_conv2d_s8, and so
does tb_cm4_conv2d_s8 on 1x5x128 -> 4, which the rule refuses (the rule errs
on the safe side: 1x5x64 -> 2 stays on tb_cm4_conv2d_s8, the tail would win).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from opt_harness import (assert_same, chosen, forced, kernel_named,  # noqa: E402
                         random_conv_layer, reference, simulate_cases, target_kernels)

# (h, w, K, C_out): 1-3 blocks of 4 pixels and 1-3 more
GRID = [(h, w, k, oc) for k in (8, 16, 64) for (h, w) in ((1, 5), (3, 3), (1, 7))
        for oc in (2, 4, 8)] + \
       [(h, w, 128, oc) for (h, w) in ((1, 5), (1, 6), (3, 3), (2, 5)) for oc in (2, 4, 6, 8)]


def layer_of(h: int, w: int, k: int, oc: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    layer = random_conv_layer(rng, in_h=h, in_w=w, in_c=k, out_c=oc, k_h=1, k_w=1,
                              padding="VALID", in_zp=-128, out_zp=-128, activation="RELU",
                              weight_range=20)
    return layer, rng.integers(-128, 128, h * w * k).astype(np.int8)


@pytest.fixture(scope="module")
def every():
    return target_kernels("cortex-m4")


@pytest.mark.parametrize("shape, kernel", [
    ((1, 5, 8, 2), "tb_cm4_conv2d_1x1_any_k8_s8"),        # 4 steps: was tb_cm4_conv2d_s8
    ((3, 3, 64, 4), "tb_cm4_conv2d_1x1_any_k64_s8"),      # 128 steps
    ((3, 3, 128, 4), "tb_cm4_conv2d_1x1_any_k128_s8"),    # 2 blocks x 2 pairs >= 3
    ((1, 5, 128, 4), "tb_cm4_conv2d_s8"),                 # 1 block x 2 pairs < 3
    ((1, 5, 256, 8), "tb_cm4_conv2d_1x1_any_k256_s8"),    # no channel pair left over
    ((1, 5, 256, 6), "tb_cm4_conv2d_s8"),                 # 1 block x 3 pairs < 11
])
def test_the_tail_rule_picks(every, shape, kernel):
    layer, _ = layer_of(*shape)
    assert chosen(layer, every).kernel == kernel


@pytest.mark.slow
def test_the_kernel_picked_is_never_slower_than_the_other(tmp_path, every):
    conv = kernel_named("tb_cm4_conv2d_s8")
    cases, picks = [], []
    for i, shape in enumerate(GRID):
        layer, x = layer_of(*shape, seed=i)
        anyk = kernel_named(f"tb_cm4_conv2d_1x1_any_k{shape[2]}_s8")
        picks.append(chosen(layer, every).kernel == anyk.function)
        cases += [(reference(layer), forced(layer, anyk), [x], None),
                  (reference(layer), forced(layer, conv), [x], None)]
    assert 0 < sum(picks) < len(picks)
    rows = simulate_cases(cases, tmp_path)
    for shape, pick_any, a, c in zip(GRID, picks, rows[0::2], rows[1::2]):
        assert_same(a["ref"], a["opt"], str(shape))
        assert_same(c["ref"], c["opt"], str(shape))
        if pick_any or shape == (1, 5, 128, 4):
            picked, other = (a, c) if pick_any else (c, a)
            assert picked["opt_cycles"] < other["opt_cycles"], (shape, pick_any, a["opt_cycles"],
                                                                c["opt_cycles"])
