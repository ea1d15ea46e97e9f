"""Build-time side of the channel-parallel depthwise kernel
(cm4_dw_channels_s8.c): which layers it takes, the weights in the order the
kernel loads them, the folded biases and requantization constants, what may
run in place. See docs/kernels.md (Cortex-M4, "Channel-parallel depthwise").

cm4_prepare.kernels() lists KERNEL before the plane kernel: the build picks by
priority, and tests/kernels/opt_harness.cm4_kernels() (one implementation per
op, the last listed) keeps testing the plane kernel; tests/test_cm4_dw_channels.py
tests this one.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from tinybuild.kernel_registry import KernelImpl
from tinybuild.lower import Const, Layer
from tinybuild.planner import raster_overlap

from .cm4_prepare import (DW_3X3S1, DW_3X3S2, RQ_FAST, RQ_FULLRANGE, _const, _max_abs_input,
                          conv_no_sign, dw_oriented, dw_path, dw_s1_batch, dw_transposed, requant)

HERE = Path(__file__).parent
MAX_TAPS = 32            # the tap list lives on the stack (TB_CM4_DWC_MAX_TAPS)
PRIORITY = 20            # above the plane kernel (10) wherever it accepts


def has_padding(p: dict) -> bool:
    """Does any output pixel have a tap outside the input?"""
    def outside(out, stride, pad, dil, k, size):
        return any(not 0 <= o * stride - pad + t * dil < size for o in range(out) for t in range(k))
    return outside(p["out_h"], p["stride_h"], p["pad_top"], p["dil_h"], p["k_h"], p["in_h"]) or \
        outside(p["out_w"], p["stride_w"], p["pad_left"], p["dil_w"], p["k_w"], p["in_w"])


def channel_words(w: np.ndarray) -> np.ndarray:
    """(taps, C) int weights -> int16, per group of 4 channels: with an odd tap
    count first the single first tap t as (w_t[c], w_t[c+2]), (w_t[c+1],
    w_t[c+3]) (SXTB16 / SXTB16 ROR 8 of its word, SMLABB / SMLATT); then per
    tap pair (a, b): (w_a[c], w_b[c]), (w_a[c+2], w_b[c+2]), (w_a[c+1],
    w_b[c+1]), (w_a[c+3], w_b[c+3]) -- the order in which the kernel forms the
    channels' tap pairs (SXTB16 of PKHBT / PKHTB of the taps' words, then with
    ROR 8)."""
    taps, c = w.shape
    w = np.asarray(w, np.int64)
    single = taps % 2
    # (tap, group, lane) -> (group, lane in order 0, 2, 1, 3)
    first = w[:single].reshape(single, c // 4, 4)[:, :, [0, 2, 1, 3]].transpose(1, 0, 2)
    # (pair, s, group, lane) -> (group, pair, lane in order 0, 2, 1, 3, s)
    g = w[single:].reshape((taps - single) // 2, 2, c // 4, 4)[:, :, :, [0, 2, 1, 3]]
    pairs = g.transpose(2, 0, 3, 1).reshape(c // 4, -1)
    return np.concatenate([first.reshape(c // 4, -1), pairs], axis=1).reshape(-1).astype(np.int16)


def in_place_at_zero(p: dict) -> bool:
    """Writing output pixel q over input pixel q is safe when no later output
    pixel reads an input pixel of a lower raster index: each output pixel's
    first tap (lowest row, lowest column inside the input) is at raster index
    >= its own."""
    def first(o, stride, pad, dil, k, size):
        for t in range(k):
            i = o * stride - pad + t * dil
            if 0 <= i < size:
                return i
        return None
    if p["in_c"] != p["out_c"]:
        return False
    for oy in range(p["out_h"]):
        r = first(oy, p["stride_h"], p["pad_top"], p["dil_h"], p["k_h"], p["in_h"])
        for ox in range(p["out_w"]):
            c = first(ox, p["stride_w"], p["pad_left"], p["dil_w"], p["k_w"], p["in_w"])
            if r is not None and c is not None and r * p["in_w"] + c < oy * p["out_w"] + ox:
                return False
    return True


# -- which kernel is faster: estimates in Cortex-M4 cycles ------------------------------
# Least-squares fits of the simulator's per-layer cycles (unicorn, cortex-m4 model with
# the unaligned-access penalties) over the depthwise layers of str_ww, KWS and VWW, each
# built once with either kernel. This kernel's fit is within 1.6% on every layer, the
# plane kernel's within 5% (refitted after its two-row stride-1 sweep, gather and store:
# 3x3 s1 on 25x5x64, 48x48x8, 24x24x32, 12x12x64, 6x6x128, 3x3x256; 3x3 s2 on
# 48x48x16, 24x24x32, 12x12x64, 6x6x128); this kernel is taken where it is estimated
# at least 5% faster (docs/kernels.md; VWW's 12x12x64 stride-2 layer: 11% faster measured,
# estimated 9%). The plane kernel's batched stride-1 sweep (several channels side by side,
# cm4_prepare.dw_s1_batch) has its own fit, on VWW's 6x6x128 and 12x12x64 layers.
MARGIN = 0.95


def channels_cycles(p: dict) -> float:
    """This kernel: per output pixel the call and the tap list, per pixel and group
    of 4 channels the biases, 4 requantizations and stores, per tap pair 15
    instructions (22-23 cycles), the single first tap of an odd count 17 (its 9
    instructions and the jump to the pairs; refitted on str_ww's and VWW's odd-tap
    layers, within 1.6%)."""
    pixels, k = p["out_h"] * p["out_w"], p["k_h"] * p["k_w"]
    return pixels * (224 + 2.55 * k + p["in_c"] // 4 * (56 + 22.76 * (k // 2) + 17 * (k % 2)))


def plane_cycles(p: dict) -> float | None:
    """The plane kernel (cm4_depthwise_s8.c) on its 3x3 paths: per layer its set-up, per
    channel the set-up, the copy of the input pixels and the sweep and store of the output
    pixels, per channel and output row the row's bookkeeping. None for its general path
    (one SMLABB and about 18 cycles per MAC): slower than this kernel on every shape.
    Refitted (least squares on relative errors) on the layers it is compared on here (3x3,
    depth multiplier 1, 4-256 channels in 4s, maps 3x3-48x48, strides 1-2:
    124 single layers, mps2-an386 core cycles; tests/test_cm4_choice_fixes.py) after the
    sweeps' stores (batched, and one channel on even rows and columns): within 7.6% (batched
    1.4%), where the last fit was 17% under to 25% over (small maps at stride 2)."""
    path = dw_path(p)
    c, rows = p["in_c"], p["out_h"]
    in_px, out_px = p["in_h"] * p["in_w"], p["out_h"] * p["out_w"]
    if path == DW_3X3S1 and dw_s1_batch(dw_oriented(p, dw_transposed(p, path)), path):
        return 802 + c * (76.6 + 8.87 * (in_px + out_px) + 16.4 * rows)
    if path == DW_3X3S1:
        return 2244 + c * (486.4 + 9.24 * (in_px + out_px) + 2.38 * rows)
    if path == DW_3X3S2:
        return 782 + c * (440.8 - 0.88 * in_px + 35.66 * out_px - 12.1 * rows)
    return None


def requantization(layer: Layer):
    """The folded biases, and the requantization flags, triples and notes (cm4_prepare.requant)."""
    p = layer.params
    w = _const(layer, "filter").astype(np.int64).reshape(p["k_h"] * p["k_w"], p["out_c"])
    bias = _const(layer, "bias").astype(np.int64)
    off = p["input_offset"]
    # a tap outside the input reads the zero point: fold off * sum(w) into the bias
    bias_folded = bias + off * w.sum(axis=0)
    wsum = np.abs(w).sum(axis=0)
    bounds = np.abs(bias) + wsum * _max_abs_input(off)
    constants = [int(b) if s == 0 else None for b, s in zip(bias, wsum)]
    flags, triples, notes = requant(_const(layer, "out_mul"), p["output_offset"], bounds,
                                    p["act_min"], p["act_max"], p["out_c"], constants)
    return bias_folded, flags, triples, notes


def accepts(layer: Layer) -> bool:
    if layer.op != "DEPTHWISE_CONV_2D":
        return False
    p = layer.params
    if p["depth_multiplier"] != 1 or p["in_c"] % 4 or p["k_h"] * p["k_w"] > MAX_TAPS:
        return False
    bias_folded, flags, _, _ = requantization(layer)
    if np.abs(bias_folded).max(initial=0) >= 1 << 31:
        return False
    plane = plane_cycles(p)
    if plane is None:
        return True
    # the estimate is the assembly's; other requantizations run the C loop
    return flags == RQ_FAST | RQ_FULLRANGE and channels_cycles(p) < MARGIN * plane


def prepare(layer: Layer) -> Layer:
    p = layer.params
    c, off, ntaps = p["out_c"], p["input_offset"], p["k_h"] * p["k_w"]
    w = _const(layer, "filter").astype(np.int64).reshape(p["k_h"] * p["k_w"], c)   # 1HWC
    bias_folded, flags, triples, notes = requantization(layer)
    # the fast form runs on doubled sums (2 * w fits int16; a doubled bias may wrap:
    # the final sum is exact mod 2^32 and |2 * acc| < 2^31 is one of the form's conditions)
    scale = 2 if flags & RQ_FAST else 1
    # per group of 4 channels: the 4 folded biases, then {M, B, e} of each channel
    biases = (scale * bias_folded) & 0xFFFFFFFF
    groups = np.concatenate([biases.reshape(-1, 4), triples.reshape(-1, 12)], axis=1)
    rq = np.concatenate([[flags, ntaps, 0, 0], groups.reshape(-1)])
    padded = has_padding(p)
    # padded taps read this pixel of zero points (flash, not arena)
    zero_pixel = np.full(c if padded else 4, -off, np.int8)
    consts = [Const("filter", "int16_t", channel_words(scale * w)),
              Const("rq", "int32_t", rq.astype(np.int64).astype(np.int32)),
              Const("zero_pixel", "int8_t", zero_pixel)]
    _, forward = raster_overlap(p)
    allowed = [(None, forward)]
    if in_place_at_zero(p) and (forward is None or forward < 0):
        allowed.append((0, 0))
    notes = notes + [
        "channel-parallel: 4 channels per word straight from NHWC (no plane copy); "
        "PKH + SXTB16 pair two taps of each channel, one SMLAD per channel per tap pair",
        f"filter reordered to {c // 4} groups x ({'a single first tap x 2 words, ' if ntaps % 2 else ''}"
        f"{ntaps // 2} tap pairs x 4 words); "
        "input_offset * sum(filter) folded into the bias" +
        ("; weights and biases doubled (the fast form's 2 * acc)" if scale == 2 else ""),
        f"padded taps read a pixel of zero points ({c} B of flash)" if padded else
        "no padded taps",
        f"in place: output - input in {allowed}"]
    return replace(layer, consts=consts, args=["filter", "rq", "zero_pixel"], scratch_bytes=0,
                   overlap={layer.inputs[0]: allowed if len(allowed) > 1 else allowed[0]},
                   notes=notes)


KERNEL = KernelImpl("DEPTHWISE_CONV_2D", "tb_cm4_dw_channels_s8", (HERE / "cm4_dw_channels_s8.c",),
                    priority=PRIORITY, accepts=accepts, prepare=prepare,
                    name="tb_cm4_dw_channels_s8 (DSP, channel-parallel)")


# -- 3x3 on a framed word plane (tb_cm4_dw_channels_3x3_s8) ------------------------------
PITCH = 16               # words per plane row (TB_CM4_DWC3_PITCH): taps at immediate offsets
RECORD_WORDS = 34        # per group: 4 biases, tap 0, 4 tap pairs, 4 x {M, B, e}
PLANE_MAX_ROWS = 64      # 4 KB of scratch at most
PRIORITY_3X3 = PRIORITY + 1


def plane_shape(p: dict) -> tuple[int, int]:
    """Rows and columns of the framed plane: every input pixel at (pad_top + y,
    pad_left + x) and every tap of every output pixel inside."""
    rows = max(p["pad_top"] + p["in_h"], (p["out_h"] - 1) * p["stride_h"] + 3)
    cols = max(p["pad_left"] + p["in_w"], (p["out_w"] - 1) * p["stride_w"] + 3)
    return rows, cols


def channels_3x3_cycles(p: dict, sign: bool = True, record_copy: bool = True) -> float:
    """Cortex-M4 cycles, fitted on 16 single layers (mps2-an386, within 1.2%; the copy's
    terms refitted after its row chains, within 0.6%): per output pixel and group the 7
    LDM, the single tap, 4 tap pairs of 18 and the requantization (4 more with the sign
    term); per output row and group the row's bookkeeping; per group its plane copy (per
    input pixel), set-up and the copy of its record out of the code region (93 cycles:
    paid wherever the weights stay in flash, `record_copy`; it saves about 45 cycles of
    flash wait per pixel on the STM32F407); the plane's fill."""
    groups, rows = p["in_c"] // 4, plane_shape(p)[0]
    per_group = (p["out_h"] * p["out_w"] * (127.2 + 4 * sign) + p["out_h"] * 19.94 +
                 p["in_h"] * p["in_w"] * 3.33 + 33.8 + 93 * record_copy)
    return groups * per_group + rows * PITCH * 1.5 + 145


MARGIN_CHANNELS = 0.98   # against channels_cycles: both fits within 1.6%


def accepts_3x3(layer: Layer) -> bool:
    if layer.op != "DEPTHWISE_CONV_2D":
        return False
    p = layer.params
    if p["depth_multiplier"] != 1 or p["in_c"] % 4 or (p["k_h"], p["k_w"]) != (3, 3) or \
            (p["dil_h"], p["dil_w"]) != (1, 1) or max(p["stride_h"], p["stride_w"]) > 2:
        return False
    rows, cols = plane_shape(p)
    if cols > PITCH or rows > PLANE_MAX_ROWS:
        return False
    bias_folded, flags, triples, _ = requantization(layer)
    if flags != RQ_FAST | RQ_FULLRANGE or np.abs(bias_folded).max(initial=0) >= 1 << 31:
        return False
    sign = not conv_no_sign(flags, triples, p["output_offset"])
    mine = channels_3x3_cycles(p, sign)
    plane = plane_cycles(p)
    # against the tap-list kernel without the record's copy: that kernel reads its weights
    # where they lie too (its fit: from SRAM; from flash it pays the wait states instead)
    return channels_3x3_cycles(p, sign, record_copy=False) < MARGIN_CHANNELS * channels_cycles(p) \
        and (plane is None or mine < MARGIN * plane)


def group_records(w: np.ndarray, bias2: np.ndarray, triples: np.ndarray) -> np.ndarray:
    """(9, C) doubled weights, doubled biases (mod 2^32), (C, 3) {M, B, e} -> per group
    of 4 channels 34 int32 in the order the kernel's LDMs read them: the 4 biases and
    tap 0's 2 weight words, the 4 tap pairs' 16 weight words (channel_words' order),
    the 4 channels' {M, B, e}."""
    c = w.shape[1]
    words = channel_words(w).view(np.int32).reshape(c // 4, 18)
    biases = (np.asarray(bias2, np.int64) & 0xFFFFFFFF).astype(np.uint32).view(np.int32)
    rq = np.asarray(triples, np.int64).reshape(c // 4, 12).astype(np.int32)
    return np.concatenate([biases.reshape(c // 4, 4), words, rq], axis=1)


def prepare_3x3(layer: Layer) -> Layer:
    p = layer.params
    c, off = p["out_c"], p["input_offset"]
    w = _const(layer, "filter").astype(np.int64).reshape(9, c)
    bias_folded, flags, triples, notes = requantization(layer)
    no_sign = conv_no_sign(flags, triples, p["output_offset"])
    rows, cols = plane_shape(p)
    zero_word = int(np.array([-off] * 4, np.int8).view(np.int32)[0])
    header = np.array([int(no_sign), zero_word, rows, 0], np.int64)
    records = group_records(2 * w, 2 * bias_folded, triples)
    groups = np.concatenate([header.astype(np.int32), records.reshape(-1)])
    notes = notes + [
        f"channel-parallel 3x3 on a word plane: per group of 4 channels its pixels copied into "
        f"a plane of {rows} x {PITCH} words framed by the input zero point ({rows * PITCH * 4} B "
        "of scratch, then a group record's copy when it lies in flash), taps at immediate "
        "offsets; 2 PKH + 4 SXTB16 + 4 SMLAD per tap pair",
        f"{c // 4} group records of {RECORD_WORDS} words (weights and biases doubled, "
        "input_offset * sum(filter) folded into the bias)" +
        ("; zero point -128, full range: the sign term is left out" if no_sign else ""),
        "in place: output - input in (0, 0) (group by group)"]
    return replace(layer, consts=[Const("groups", "int32_t", groups)], args=["groups"],
                   scratch_bytes=rows * PITCH * 4 + RECORD_WORDS * 4,
                   overlap={layer.inputs[0]: (0, 0)},
                   notes=notes)


KERNEL_3X3 = KernelImpl("DEPTHWISE_CONV_2D", "tb_cm4_dw_channels_3x3_s8",
                        (HERE / "cm4_dw_channels_s8.c",), priority=PRIORITY_3X3,
                        accepts=accepts_3x3, prepare=prepare_3x3,
                        name="tb_cm4_dw_channels_3x3_s8 (DSP, channel-parallel, word plane)")
