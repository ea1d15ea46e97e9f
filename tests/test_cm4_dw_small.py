"""The plane depthwise kernel's sweeps (cm4_depthwise_s8.c) after the step
changes of issue 14 item 5, against the reference kernel byte for byte.

Pinned: the stride-1 steps that load the first plane row's words into the sums
registers beside the second row's (two-row step, the odd last row's one-row
step, the batched small maps' sweep), and the stride-2 body of TB_CM4_DW_STEPS
= 32 slots (16 double steps per pass): sweeps whose double-step count is 0, 1,
15 and 16 mod 16, several passes, an odd last slot, rows swept in pieces of 32
slots. Each with the extreme sums (weights all +127 or all -127 against inputs
all 127 or -128, and random ones), both requantization variants, in place. In
the simulator (slow: the assembly); the C and Python constants agree (fast).
"""
from __future__ import annotations

import re
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from opt_harness import (CM4_DIR, assert_same, forced, kernel_named,  # noqa: E402
                         random_conv_layer, reference, run_firmware)

FUNCTION = "tb_cm4_depthwise_conv2d_s8"

# (in_h, in_w, in_c, stride, padding); stride 2: out_w slots per row, sweeps of
# rows * slots; stride 1: odd output row counts end with the one-row step
SHAPES = [
    # stride 2: double steps per sweep 0, 1, 15, 16, 17 and 33 mod 16, an odd slot,
    # a single slot, rows in pieces of 32 slots (over DW_SUMS per row)
    (2, 62, 4, 2, "SAME"), (2, 64, 4, 2, "SAME"), (4, 60, 4, 2, "SAME"),
    (6, 30, 4, 2, "SAME"), (3, 33, 4, 2, "VALID"), (1, 2, 4, 2, "SAME"),
    (2, 5, 4, 2, "VALID"), (3, 600, 1, 2, "SAME"), (8, 70, 2, 2, "SAME"),
    # stride 1: two-row steps, an odd last row, the batched small maps (8 channels of
    # 8 columns, 4 of 14), transposed (KWS-like), VALID
    (6, 6, 16, 1, "SAME"), (12, 12, 8, 1, "SAME"), (5, 7, 4, 1, "SAME"),
    (25, 5, 8, 1, "SAME"), (9, 13, 2, 1, "VALID"), (7, 20, 3, 1, "SAME"),
]


def extreme(layer, value: int):
    """The layer with every weight ``value`` (the largest sums of one sign)."""
    consts = [replace(k, values=np.full_like(k.values, value)) if k.role == "filter" else k
              for k in layer.consts]
    return replace(layer, consts=consts)


def layers():
    rng = np.random.default_rng(14)
    for i, (h, w, c, s, padding) in enumerate(SHAPES):
        in_zp, out_zp, act = ((-128, -128, "RELU"), (7, -3, "NONE"))[i % 2]
        layer = random_conv_layer(rng, depthwise=True, in_h=h, in_w=w, in_c=c, k_h=3, k_w=3,
                                  stride=(s, s), padding=padding, in_zp=in_zp, out_zp=out_zp,
                                  activation=act, bias_range=2**20)
        n = h * w * c
        yield layer, rng.integers(-128, 128, size=n).astype(np.int8)
        for weight, value in ((127, 127), (-127, -128), (127, -128)):
            yield extreme(layer, weight), np.full(n, value, np.int8)


@pytest.fixture(scope="module")
def impl():
    return kernel_named(FUNCTION)


def test_stride_2_steps_agree_between_c_and_the_build():
    """The stride-2 sums buffer the build sizes (cm4_prepare.DW_STEPS) holds the
    slots of one unrolled pass (TB_CM4_DW_STEPS): a smaller one would be overrun."""
    source = (CM4_DIR / "cm4_depthwise_s8.c").read_text()
    steps = int(re.search(r"#define TB_CM4_DW_STEPS (\d+)", source).group(1))
    prepare = sys.modules[kernel_named(FUNCTION).prepare.__module__]   # cm4_prepare
    assert (steps, prepare.DW_STEPS) == (32, 32)


@pytest.mark.slow
def test_sweeps_in_the_simulator_match_reference(tmp_path, impl):
    cases = []
    for layer, x in layers():
        opt = forced(layer, impl)
        cases += [(reference(layer), opt, [x], None), (reference(layer), opt, [x], 0)]
    rows = run_firmware(cases, tmp_path)
    for (ref_layer, _, x, delta), (ref, got, _, opt_instr) in zip(cases, rows):
        assert opt_instr > 0, f"{ref_layer.shape}: the plane kernel did not run"
        assert_same(ref, got, f"{ref_layer.shape} input {int(x[0][0])} in place {delta}")
