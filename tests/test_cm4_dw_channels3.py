"""The plane copy of tb_cm4_dw_channels_3x3_s8 (cm4_dw_channels_s8.c): per input row one
jump into the chain for in_w % 4 at the block that leaves in_w / 4 blocks of 4 words.

On the host: the entry the C side computes for every row width, from the chains'
layout (the assembly is Cortex-M4 only). In the simulator (slow): every row width
1..16 (each chain at each entry), both strides, SAME and VALID, one and several rows,
exactly in place too, byte for byte against the reference; and which kernel VWW's
stride-2 6x6x128 layer gets.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from opt_harness import (assert_same, forced, kernel_fixtures, random_conv_layer,  # noqa: E402
                         reference, run_firmware)

FUNCTION = "tb_cm4_dw_channels_3x3_s8"
SOURCE = Path(__file__).parent.parent / "targets/cortex_m4/kernels/cm4_dw_channels_s8.c"

impl, module, lib = kernel_fixtures(FUNCTION, "tbdwc3c")


def chain_entry(in_w: int) -> tuple[int, int]:
    """(chain, blocks skipped) as tb_cm4_dwc3_copy_entry computes them."""
    blocks = 3 if in_w % 4 else 4
    return in_w % 4, blocks - in_w // 4


def test_every_row_width_enters_inside_its_chain():
    """A row of in_w words copies in_w // 4 blocks then in_w % 4 words: the entry
    skips the chain's other blocks and never lies before the chain's start or
    past its blocks."""
    src = SOURCE.read_text()
    assert "#define TB_CM4_DWC3_BLOCK_BYTES 24" in src
    block = re.search(r"#define TB_CM4_DWC3_BLOCK\s+\\\n((?:.*\\\n)*.*\n)", src).group(1)
    assert len(re.findall(r'"[a-z]+\.w ', block)) == 6      # 6 wide instructions: 24 bytes
    for in_w in range(1, 17):
        chain, skipped = chain_entry(in_w)
        blocks = 3 if chain else 4
        assert 0 <= skipped < blocks + (chain != 0)
        assert blocks - skipped == in_w // 4 and 4 * (blocks - skipped) + chain == in_w


def test_the_estimate_counts_the_copy_per_input_pixel(module):
    """Refitted after the chains: a wider input costs more, the same output map no
    more than the copy's share, and the record's copy is the 93 cycles per group."""
    p = dict(in_h=12, in_w=12, in_c=64, out_h=6, out_w=6, stride_h=2, stride_w=2,
             pad_top=0, pad_left=0)
    base = module.channels_3x3_cycles(p, sign=False)
    wider = module.channels_3x3_cycles(dict(p, in_w=13), sign=False)
    assert 0 < wider - base < 16 * 12 * 4.5
    assert base - module.channels_3x3_cycles(p, False, record_copy=False) == pytest.approx(16 * 93)


@pytest.mark.slow
def test_every_row_width_in_the_simulator(tmp_path, impl, module):
    rng = np.random.default_rng(11)
    cases = []
    for in_w in range(1, 17):
        for stride, padding, in_h in ((1, "SAME", 1 + in_w % 3), (2, "SAME", 4), (1, "VALID", 3)):
            if padding == "VALID" and in_w < 3:
                continue
            for _ in range(20):
                layer = random_conv_layer(rng, depthwise=True, k_h=3, k_w=3, in_h=in_h,
                                          in_w=in_w, in_c=8, stride=(stride, stride),
                                          padding=padding, in_zp=int(rng.integers(-128, 128)),
                                          out_zp=-128 if in_w % 2 else 5)
                if module.requantization(layer)[1] == module.RQ_FAST | module.RQ_FULLRANGE:
                    break
            else:
                continue
            if module.plane_shape(layer.params)[1] > module.PITCH:     # SAME 15, 16 wide
                continue
            x = rng.integers(-128, 128, size=in_h * in_w * 8).astype(np.int8)
            opt = forced(layer, impl)
            cases.append((reference(layer), opt, [x], None))
            if in_w % 5 == 0:
                cases.append((reference(layer), opt, [x], 0))     # exactly in place
    widths = {c[1].params["in_w"] for c in cases}
    assert widths == set(range(1, 17)) and len(cases) >= 40
    rows = run_firmware(cases, tmp_path)
    for (ref, got, _, _), (layer, *_rest) in zip(rows, cases):
        assert_same(ref, got, f"{layer.shape} in the simulator")
