"""The 1x1 CONV_2D layers on cortex-m4 that the stride-1 small-K kernels do not
take (tb_cm4_conv2d_1x1_any_k<depth>_s8 in cm4_conv_1x1_smallk_s8.c): any
stride (ResNet-8's 32x32x16 -> 16x16x32 and 16x16x32 -> 8x8x64 stride-2
shortcuts) and pixel counts that are not whole blocks of 4 (KWS's 25x5 maps,
VWW's 3x3 ones). The small-K kernels' block with each of its 4 input pixels
found from its output row and column; a last 2-3 pixels as one more block (the
last repeated) into the scratch, so the weights are read once (pixel by pixel,
in flash, each pass missed the data cache); a last single pixel 4 channel pairs
per pass; the same tables (cm4_prepare.prepare_conv). A layer whose
requantization is not the fast form goes to tb_cm4_conv2d_s8 at run time. K 256
(WIDE_DEPTHS) registers both entry points here. See docs/kernels.md (Cortex-M4,
Convolution).
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

from tinybuild.kernel_cost import clearly_faster, within
from tinybuild.kernel_registry import KernelImpl
from tinybuild.lower import Layer

from .cm4_prepare import CONV_BLOCK, CONV_SMALLK_DEPTHS, prepare_conv

HERE = Path(__file__).parent
# K 256 (VWW's 3x3x256 -> 256 ran on tb_cm4_conv2d_s8, 1.14 cycles/MAC): its column
# built by a loop and its steps shared by both requantization forms, 8 KB; beside the
# smaller depths of cm4_prepare.CONV_SMALLK_DEPTHS, with their stride-1 entry point too.
WIDE_DEPTHS = (256,)
PRIORITY = 15                  # above tb_cm4_conv2d_s8 (10); the small-K kernels take no layer of these
# A last partial block (1-3 pixels) costs this kernel more than tb_cm4_conv2d_s8, and each
# k-pair step of a whole block's channel pair saves a little; with K <= 64 the layer wins it
# back from one block, deeper it needs enough blocks x channel pairs. Refitted on both kernels
# forced (cortex-m4, unicorn, each case run twice and the second measured; 1x1 layers of 1-8
# blocks and a tail, K 8-256, C_out 2-16; tests/test_cm4_choice_fixes.py): the last single pixel
# runs 4 channel pairs per pass and its pairs % 4 left over one by one, the dearer the deeper:
# at K 256 and C_out 6 (3 pairs left over) it pays from 4 blocks (3x3x256 -> 6, 2 blocks:
# 24,649 cycles against 23,503), at C_out 8 from one (1x5x256 -> 8: 15,832 against 17,501).
# K 128 and 256: the least blocks x channel pairs with a last single pixel, by pairs % 4.
TAIL_PIXEL_MIN_BLOCK_PAIRS = {128: (0, 1, 3, 6), 256: (0, 3, 6, 11)}
# K 256, a last 2 pixels (one more block into the scratch): from 4 channel pairs (C_out 8:
# 3x2x256 22,855 against 23,073), else from 2 blocks and 3 block pairs (1x14x256 -> 2, 3
# blocks: 18,343 against 18,624; 3x2x256 -> 6, 1 block: 18,517 against 18,437); a last 3
# pixels from 2 block pairs (1x7x256 -> 2: 9,987 against 9,791; -> 4: 14,312 against 14,425).
TAIL_BLOCK_PAIRS_K256 = {2: 3, 3: 2}
TAIL_PAIRS_K256 = 4


def accepts_conv_1x1_any(layer: Layer, depth: int) -> bool:
    """1x1 unpadded on ``depth`` input channels, an even number of output
    channels, at least one block of 4 output pixels, full int8 output range;
    not the stride-1 layers of whole blocks (accepts_conv_1x1_smallk's)."""
    p = layer.params
    npix = p["out_h"] * p["out_w"]
    return layer.op == "CONV_2D" and (p["k_h"], p["k_w"], p["pad_top"], p["pad_left"]) == \
        (1, 1, 0, 0) and p["in_c"] == depth and p["out_c"] % 2 == 0 and npix >= CONV_BLOCK and \
        (p["act_min"], p["act_max"]) == (-128, 127) and \
        ((p["stride_h"], p["stride_w"]) != (1, 1) or npix % CONV_BLOCK != 0)


def tail_pays(p: dict) -> bool:
    """No last partial block, or enough whole blocks x channel pairs to win its cost back."""
    npix, k, pairs = p["out_h"] * p["out_w"], p["in_c"], p["out_c"] // 2
    blocks, rest = npix // CONV_BLOCK, npix % CONV_BLOCK
    if rest == 0 or k <= 64:
        return True
    if rest == 1:
        return blocks * pairs >= TAIL_PIXEL_MIN_BLOCK_PAIRS[k][pairs % 4]
    if k == 128:
        return True
    return pairs >= TAIL_PAIRS_K256 or \
        (blocks >= 2 or rest == 3) and blocks * pairs >= TAIL_BLOCK_PAIRS_K256[rest]


@within(accepts_conv_1x1_any)
def accepts_conv_1x1_any_faster(layer: Layer, depth: int) -> bool:
    from .cm4_cost import conv_estimate, reference_estimate
    return accepts_conv_1x1_any(layer, depth) and tail_pays(layer.params) and \
        clearly_faster(conv_estimate(layer), reference_estimate(layer))


def prepare_conv_1x1_any(layer: Layer) -> Layer:
    out = prepare_conv(layer)
    p = layer.params
    rest = p["out_h"] * p["out_w"] % CONV_BLOCK
    return replace(out, scratch_bytes=tail_scratch_bytes(p, out.scratch_bytes), notes=out.notes + [
        f"1x1, stride {p['stride_h']}x{p['stride_w']}, K {p['in_c']}: each block's 4 input pixels "
        "read directly by row and column, no im2col" + tail_note(rest)])


def tail_scratch_bytes(p: dict, scratch: int) -> int:
    """A last block of 2-3 pixels runs as a whole block into the scratch (its
    4 pixels' outputs), so the weights are read once, not once per pixel."""
    rest = p["out_h"] * p["out_w"] % CONV_BLOCK
    return max(scratch, CONV_BLOCK * p["out_c"]) if rest >= 2 else scratch


def tail_note(rest: int) -> str:
    """How the build note names the last ``rest`` pixels' path."""
    if rest == 1:
        return "; the last pixel 4 channel pairs per pass"
    return f"; the last {rest} pixels as one more block (the last repeated) into the scratch" \
        if rest else ""


def any_kernel(depth: int) -> KernelImpl:
    return KernelImpl("CONV_2D", f"tb_cm4_conv2d_1x1_any_k{depth}_s8",
                      (HERE / "cm4_conv_1x1_smallk_s8.c", HERE / "cm4_conv_s8.c"), priority=PRIORITY,
                      accepts=partial(accepts_conv_1x1_any_faster, depth=depth),
                      prepare=prepare_conv_1x1_any,
                      name=f"tb_cm4_conv2d_1x1_any_k{depth}_s8 (DSP, 4x2 block, K {depth}, any stride)")


def kernels() -> list[KernelImpl]:
    from .cm4_prepare import smallk_kernel
    return [any_kernel(d) for d in CONV_SMALLK_DEPTHS + WIDE_DEPTHS] + \
        [smallk_kernel(d) for d in WIDE_DEPTHS]
