"""The plane depthwise kernel's channel copies (cm4_depthwise_s8.c) where rows
start at an even plane position and hold whole groups - VWW's stride-2 layers
(SAME on an even width has no pad column on the left) - against the reference
kernel byte for byte.

Pinned: the 2-channel copy's loop over all rows (tb_cm4_dw_gather2_rows: an odd
first pixel alone, groups of 8, then pairs and a single) and its path for rows
of whole groups of 8 without a lead (the row state in registers); the 4-channel
copy's path for rows of whole groups of 4 without a lead (PKH before SXTB16),
next to its general rows (tb_cm4_dw_gather4_rows: pixel pairs in an unrolled
body entered per row, a zero-point word before an odd first position and after
an odd last one, several passes, rows too short for a pair); row counts of
1, odd and even (stride 2 copies the even rows, then the odd ones); extreme
inputs (all -128, all 127); in place. On the host (portable fallbacks) and in
the simulator (the assembly; slow).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from opt_harness import (assert_same, forced, kernel_fixtures, random_conv_layer,  # noqa: E402
                         reference, run_firmware, run_layer)

# (h, w, c, stride, padding, planes copied at once): 2 planes where 4 do not fit the
# scratch budget or in_c is not a multiple of 4, else 4
SHAPES = [
    # 2 channels, rows of whole groups of 8 from an even position (the fast rows)
    (48, 48, 16, 2, "SAME", 2), (48, 48, 8, 2, "SAME", 2), (5, 16, 2, 2, "SAME", 2),
    (1, 8, 6, 2, "SAME", 2), (2, 24, 2, 1, "VALID", 2), (7, 8, 10, 2, "SAME", 2),
    # 2 channels, the general rows: a lead (SAME stride 1), pairs and a single after
    # the groups of 8, rows shorter than 8
    (48, 48, 8, 1, "SAME", 2), (5, 23, 2, 2, "SAME", 2), (4, 14, 6, 1, "VALID", 2),
    (3, 7, 2, 1, "SAME", 2), (6, 5, 2, 2, "VALID", 2),
    # 4 channels, rows of whole groups of 4 from an even position (the fast rows)
    (24, 24, 32, 2, "SAME", 4), (12, 12, 64, 2, "SAME", 4), (1, 4, 4, 2, "SAME", 4),
    (9, 8, 8, 2, "SAME", 4), (6, 12, 4, 1, "VALID", 4),   # batched: channels side by side
    # 4 channels, the general rows (pixel pairs, one jump into a body of 12 per pass):
    # a leading (zero point, pixel 0) word, a trailing (pixel, zero point) word, both,
    # neither; 12 and 24 pairs (whole passes), 19 (two passes); rows of 1 pixel and of
    # 2 from an odd position (no pair: one pixel at a time)
    (24, 24, 32, 1, "SAME", 4), (5, 10, 4, 2, "SAME", 4), (7, 9, 8, 2, "VALID", 4),
    (3, 11, 4, 1, "VALID", 4), (4, 40, 4, 1, "SAME", 4), (3, 25, 4, 1, "VALID", 4),
    (2, 49, 4, 2, "SAME", 4), (25, 5, 8, 1, "SAME", 4), (6, 6, 8, 1, "SAME", 4),
    (1, 2, 4, 1, "SAME", 4), (1, 1, 4, 1, "SAME", 4),
]


impl, module, lib = kernel_fixtures("tb_cm4_depthwise_conv2d_s8", "tbdws2")
def channels_per_copy(opt) -> int:
    """Planes copied at once (header bits 8..15), 4 for the batched small maps
    (bits 24..31: channels side by side, copied 4 at a time)."""
    header = int(next(k for k in opt.consts if k.role == "rq").values[3])
    return 4 if (header >> 24) & 0xFF else (header >> 8) & 0xFF


def inputs(rng, n: int) -> list[np.ndarray]:
    """Random bytes, then the extremes (the largest sums of either sign)."""
    return [rng.integers(-128, 128, size=n).astype(np.int8), np.full(n, -128, np.int8),
            np.full(n, 127, np.int8)]


def layers(seed: int):
    """Each shape with the requantization without and with the sign term, its
    prepared form checked to copy as many planes at once as the shape says."""
    rng = np.random.default_rng(seed)
    for i, (h, w, c, s, padding, planes) in enumerate(SHAPES):
        in_zp, out_zp, act = ((5, -128, "RELU"), (-3, 7, "NONE"))[i % 2]
        layer = random_conv_layer(rng, depthwise=True, in_h=h, in_w=w, in_c=c, k_h=3, k_w=3,
                                  stride=(s, s), padding=padding, in_zp=in_zp, out_zp=out_zp,
                                  activation=act)
        yield rng, layer, planes


def test_shapes_take_the_copy_they_pin(impl):
    """Each shape copies as many channels at once as listed, and the list holds
    rows of both kinds for both copies: the fast rows need no pad column on the
    left (SAME stride 2 on an even width, VALID) and whole groups (8 pixels for
    2 planes, 4 for 4)."""
    kinds = set()
    for _, layer, planes in layers(1):
        p = layer.params
        assert channels_per_copy(forced(layer, impl)) == planes, layer.shape
        kinds.add((planes, p["pad_left"] == 0 and p["in_w"] % (8 if planes == 2 else 4) == 0))
    assert kinds == {(2, True), (2, False), (4, True), (4, False)}


def test_copies_on_the_host_match_reference(lib, impl):
    for rng, layer, _ in layers(2):
        opt = forced(layer, impl)
        p = layer.params
        for x in inputs(rng, p["in_h"] * p["in_w"] * p["in_c"]):
            ref = run_layer(lib, reference(layer), [x])
            assert_same(ref, run_layer(lib, opt, [x]), f"{layer.shape}")
            assert_same(ref, run_layer(lib, opt, [x], overlap_delta=0), f"{layer.shape} in place")


@pytest.mark.slow
def test_copies_in_the_simulator_match_reference(tmp_path, impl):
    cases = []
    for rng, layer, _ in layers(3):
        p = layer.params
        opt = forced(layer, impl)
        for j, x in enumerate(inputs(rng, p["in_h"] * p["in_w"] * p["in_c"])):
            cases.append((reference(layer), opt, [x], None if j % 2 else 0))
    rows = run_firmware(cases, tmp_path)
    for (ref_layer, _, x, delta), (ref, got, _, _) in zip(cases, rows):
        assert_same(ref, got, f"{ref_layer.shape} input {int(x[0][0])} in place {delta}")
