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
# A last partial block costs about 500-700 cycles more here than in tb_cm4_conv2d_s8 (its
# copy and tb_cm4_conv2d_s8's set-up); each k-pair of a channel pair of a whole block saves
# a cycle (15 instead of 16), the block's fixed work a little more (measured on cortex-m4,
# unicorn: 5x1x8 -> 2, one block and a pixel, 1,576 cycles against 1,338; 1x7x8 -> 32
# 6,850 against 6,664; 1x7x128 -> 8, 256 steps, 12,839 against 12,800): a layer with a
# tail needs this many k-pair steps (whole blocks x channel pairs x in_c / 2). Measured with
# the tail through tb_cm4_conv2d_s8; the pixel tail (tb_cm4_sk_tail) costs less on the layers
# measured (VWW's 3x3 maps, KWS's 25x5), so the threshold errs on the safe side.
TAIL_MIN_STEPS = 512
# Refit with the pixel tail (cortex-m4, unicorn, both kernels forced on 1x1 layers of 1-3
# blocks and a tail, K 8-256, C_out 2-64): the tail's cost grows with K, and the layer wins
# it back wherever whole blocks x C_out >= K / TAIL_K_PER_BLOCK_CHANNEL (K 8-64: from 4
# k-pair steps, 1x5x8 -> 2 812 cycles against 1,326; K 128 from 256 steps; 1x5x128 -> 4,
# 128 steps, 6,210 against 6,034 stays on tb_cm4_conv2d_s8). Added to TAIL_MIN_STEPS, not
# in place of it: K 256 below 16 blocks x C_out measured mixed either side of 512 steps.
TAIL_K_PER_BLOCK_CHANNEL = 16


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
    """No last partial block, or enough k-pair steps to win its cost back."""
    npix = p["out_h"] * p["out_w"]
    blocks = npix // CONV_BLOCK
    steps = blocks * (p["out_c"] // 2) * (p["in_c"] // 2)
    return npix % CONV_BLOCK == 0 or steps >= TAIL_MIN_STEPS or \
        blocks * p["out_c"] * TAIL_K_PER_BLOCK_CHANNEL >= p["in_c"]


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
