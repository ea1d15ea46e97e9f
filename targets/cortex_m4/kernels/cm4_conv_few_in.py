"""Build-time side of tb_cm4_conv_few_in_s8 (cm4_conv_few_in_s8.c): CONV_2D on
1-4 input channels (RGB / grayscale first layers). Which layers it takes, the
weights in the order the kernel loads them (k order, groups of 4 channels,
raw-B words), the requantization records, the scratch. See docs/kernels.md
("Few input channels").
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from tinybuild.kernel_registry import KernelImpl
from tinybuild.lower import Const, Layer
from tinybuild.planner import raster_overlap

from .cm4_prepare import (RQ_FAST, RQ_FULLRANGE, _const, _max_abs_input, conv_filter_layout,
                          conv_no_sign, conv_raw_b, requant)

HERE = Path(__file__).parent
PRIORITY = 16            # above tb_cm4_conv2d_s8 (10) and the 1x1 kernels (15, never in_c < 8)
MAX_IN_C = 4
MAX_K4 = 100             # 1 + TB_FEW_STEPS k-pairs: e.g. 5x5x4
RQ_WORDS = 16            # {M, B, e, 2*bias} x 4 channels after each group's weights
PIXELS = 2               # output pixels per register block
BATCH = 32               # pixels whose columns are gathered before the channel loop runs


def batch_pixels(p: dict) -> int:
    """Pixels per batch: their columns are gathered first, then the assembly
    runs every group of channels of every pair (each loop stays in the
    instruction cache); even, at most the layer's pixels rounded up."""
    pixels = p["out_h"] * p["out_w"]
    return min(BATCH, (pixels + 1) // 2 * 2)


def k4_of(p: dict) -> int:
    return (p["k_h"] * p["k_w"] * p["in_c"] + 3) // 4 * 4


def k_order(p: dict) -> np.ndarray:
    """Filter positions (OHWI, within one output channel) in the kernel's k order,
    -1 for padding: each kernel row's whole groups of 4 values, then the rows'
    leftover values (k_w * in_c mod 4 each) as one tail, padded to a multiple of 4."""
    r = p["k_w"] * p["in_c"]
    whole = r // 4 * 4
    rows = [ky * r + i for ky in range(p["k_h"]) for i in range(whole)]
    tail = [ky * r + i for ky in range(p["k_h"]) for i in range(whole, r)]
    order = rows + tail
    return np.array(order + [-1] * (k4_of(p) - len(order)), np.int64)


def tail_bytes(p: dict) -> int:
    return (p["k_h"] * (p["k_w"] * p["in_c"] % 4) + 3) // 4 * 4


def _weights(layer: Layer) -> np.ndarray:
    p = layer.params
    return _const(layer, "filter").reshape(p["out_c"], -1).astype(np.int64)


def requantization(layer: Layer, channels: int):
    """Flags, {M, B, e} per channel (padded to ``channels``), the doubled biases, notes."""
    p = layer.params
    w = _weights(layer)
    bias = np.zeros(channels, np.int64)
    bias[:p["out_c"]] = _const(layer, "bias")
    wsum = np.abs(w).sum(axis=1)
    bounds = np.abs(bias[:p["out_c"]]) + wsum * _max_abs_input(p["input_offset"])
    constants = [int(b) if s == 0 else None for b, s in zip(bias[:p["out_c"]], wsum)]
    flags, triples, notes = requant(_const(layer, "out_mul"), p["output_offset"], bounds,
                                    p["act_min"], p["act_max"], channels, constants)
    live = np.zeros(channels, bool)
    live[:p["out_c"]] = wsum != 0
    return flags, triples, np.where(live, 2 * bias, 0), notes


def fits(layer: Layer) -> bool:
    """The kernel computes this layer exactly: 1-4 input channels, dilation 1,
    K4 <= MAX_K4, the fast requantization with the full int8 range, and the
    raw-B form (every channel pair's sums within 2^31 / 256)."""
    p = layer.params
    if layer.op != "CONV_2D" or not 1 <= p["in_c"] <= MAX_IN_C or (p["dil_h"], p["dil_w"]) != (1, 1):
        return False
    if k4_of(p) > MAX_K4:
        return False
    quads = (p["out_c"] + 3) // 4
    flags, _, _, _ = requantization(layer, 4 * quads)
    if flags != RQ_FAST | RQ_FULLRANGE:
        return False
    w = np.zeros((4 * quads, _weights(layer).shape[1]), np.int64)
    w[:p["out_c"]] = _weights(layer)
    return conv_raw_b(w, 4 * quads, _max_abs_input(p["input_offset"]))


def weight_stream(layer: Layer, triples: np.ndarray, bias2: np.ndarray) -> np.ndarray:
    """Per group of 4 channels: per k-pair the raw-B words of channels (0, 1) and
    (2, 3) (cm4_prepare.conv_filter_layout), then {M, B, e, 2*bias} per channel."""
    p = layer.params
    k4, quads = k4_of(p), (p["out_c"] + 3) // 4
    w = np.zeros((4 * quads, k4), np.int64)
    order = k_order(p)
    w[:p["out_c"], order >= 0] = _weights(layer)[:, order[order >= 0]]
    pairs = conv_filter_layout(w, 4 * quads, k4, raw_b=True).reshape(quads, 2, k4 // 2, 4)
    words = pairs.transpose(0, 2, 1, 3).reshape(quads, -1)
    rq = np.concatenate([triples, bias2[:, None]], axis=1).reshape(quads, RQ_WORDS)
    rq = rq.astype(np.int64).astype(np.int32).astype("<i4").view(np.int8).reshape(quads, -1)
    return np.concatenate([words, rq], axis=1).reshape(-1).copy()


def prepare(layer: Layer) -> Layer:
    p = layer.params
    k4, quads = k4_of(p), (p["out_c"] + 3) // 4
    flags, triples, bias2, notes = requantization(layer, 4 * quads)
    stream = weight_stream(layer, triples, bias2)
    tail = tail_bytes(p)
    batch = batch_pixels(p)
    no_sign = conv_no_sign(flags, triples, p["output_offset"])
    if no_sign:
        notes = notes + ["zero point -128, full range: the sign term is left out"]
    hdr = np.array([k4, stream.size, tail, batch, int(no_sign)], np.int64).astype(np.int32)
    row = (p["k_w"] * p["in_c"] + 3) // 4 * 4
    # weights | columns of a batch | tail | row stage | the outputs of 2 pixels
    scratch = stream.size + batch * k4 * 2 + tail + row + PIXELS * 4 * quads
    _, forward = raster_overlap(p, batch, reads_block_first=True)
    notes = notes + [
        f"few input channels ({p['in_c']}): columns of {batch} pixels gathered once as int16 "
        f"(K {p['k_h'] * p['k_w'] * p['in_c']} -> {k4}: kernel rows' groups of 4, then their "
        "leftovers as one tail), reused by every group of 4 channels",
        f"weights: {quads} groups of 4 channels x {k4 // 2} k-pairs, raw-B words for channels "
        "1 and 3, each group followed by {M, B, e, 2*bias} x 4; copied to scratch once per call",
        f"{PIXELS} pixels x 4 channels register block, SMLAD, straight-line sweep"]
    return replace(layer, consts=[Const("filter", "int8_t", stream), Const("rq", "int32_t", hdr)],
                   args=["filter", "rq"], scratch_bytes=scratch,
                   overlap={layer.inputs[0]: (None, forward)}, notes=notes)


# -- which layers it takes: estimated cycles and instructions ---------------------------
# Least-squares fits (non-negative, relative errors) of the simulator's exact
# instruction counts and modelled cycles (nucleo-l4r5zi: the stm32l4r5-art flash
# wait included) of 85 single layers (tests/test_cm4_conv_few_in.py's sweep and 40
# random ones: 1-4 channels, 1x1..5x5, strides 1-2, SAME/VALID, 4-64 outputs, maps up
# to 96x96): RMS error 4.7% (instructions) and 5.0% (cycles), at most 16% and 21%.
# Features: the call, per group of 4 channels its record (copied once), per pixel,
# per inside pixel its K4 values and kernel rows, per border pixel its taps and rows
# (tb_few_gather, byte by byte), per pair of pixels and group of channels its fixed
# work and its K4 multiply-adds, per batch.
FEW = ((297.3, 0.0, 34.75, 1.764, 1.947, 4.93, 93.96, 69.94, 7.079, 336.0),
       (1111.6, 0.0, 47.48, 2.694, 2.151, 6.866, 129.8, 95.95, 8.051, 387.6))
# Taken where estimated at most TODAY_MARGIN x tb_cm4_conv2d_s8 (its cm4_cost estimate)
# in both instructions and cycles, and clearly faster than the reference: on the 85
# layers none was taken where the kernel is slower than either.
TODAY_MARGIN = 0.9


def features(p: dict) -> list[int]:
    from tinybuild.kernel_cost import inside
    rows, cols = inside(p)
    pixels = p["out_h"] * p["out_w"]
    border = sum(1 for a in rows for b in cols if a < p["k_h"] or b < p["k_w"])
    k4, quads, pairs = k4_of(p), (p["out_c"] + 3) // 4, (pixels + 1) // 2
    taps = p["k_h"] * p["k_w"] * p["in_c"]
    return [1, quads * (k4 + RQ_WORDS), pixels, (pixels - border) * k4,
            (pixels - border) * p["k_h"], border * taps, border * p["k_h"], pairs * quads,
            pairs * quads * k4, (pixels + BATCH - 1) // BATCH]


def estimate(p: dict) -> tuple[float, float]:
    f = features(p)
    return tuple(float(np.dot(c, f)) for c in FEW)


# tb_cm4_conv2d_s8 on the layers where it runs its channel quads (a20ad85: 2 pixels
# x 4 channels): cm4_cost.CONV was fitted before them and overestimates those
# layers (RMS 10-14%, up to 1.4x, on 1-4 input channels), so this kernel was taken on
# two layers where it is 1-4% slower. Fitted as FEW on 106 single layers it fits and
# the quads take (1-4 channels, 3x3..5x5, tall and wide kernels up to 15x3, strides
# 1-2, 4-64 outputs, maps up to 39x39; nucleo-l4r5zi, weights in flash): RMS 2.1%
# (instructions) and 2.5% (cycles), at most 8.3% and 9.2%.
QUADS = ((1129, 193.1, 7.383, 16.82, 0, 0.005894, 155, 2.527, 1.358, 62.31, 69.41, 6.918, 1.308),
         (2267, 334.4, 9.725, 20.14, 0, 2.399, 251.5, 3.103, 1.727, 92.65, 106.9, 7.459, 7.038))


def conv_quads_features(p: dict) -> list[float]:
    """tb_cm4_conv2d_s8's quads path: cm4_cost.conv_features' call, im2col,
    border, staging and plane counts, the staged pixels' kernel rows, then per
    pixel pair and quad its fixed work and K4 multiply-adds, and the quads'
    weight copy (words)."""
    from .cm4_cost import conv_features
    f = conv_features(p, True)
    k4 = f[2] // max(f[1], 1)
    pairs, quads = (p["out_h"] * p["out_w"] + 1) // 2, p["out_c"] // 4
    return f[:9] + [f[6] * p["k_h"], pairs * quads, pairs * quads * k4, quads * (k4 + RQ_WORDS)]


def runs_quads(p: dict) -> bool:
    """Does tb_cm4_conv2d_s8 run this layer (one fits() accepts: raw-B, fast
    full range) as channel quads?"""
    from .cm4_cost import conv_features
    from .cm4_prepare import conv_quads
    f = conv_features(p, True)
    return f[1] > 0 and conv_quads(p, True, f[2] // f[1])


def today_estimate(layer: Layer) -> tuple[float, float]:
    """tb_cm4_conv2d_s8's estimated (instructions, cycles) on a layer fits() accepts."""
    from .cm4_cost import conv_estimate
    if runs_quads(layer.params):
        f = conv_quads_features(layer.params)
        return tuple(float(np.dot(c, f)) for c in QUADS)
    return conv_estimate(layer)


def accepts(layer: Layer) -> bool:
    from tinybuild.kernel_cost import clearly_faster
    from .cm4_cost import reference_estimate
    if not fits(layer):
        return False
    mine = estimate(layer.params)
    if not clearly_faster(mine, reference_estimate(layer)):
        return False
    today = today_estimate(layer)
    return mine[0] <= TODAY_MARGIN * today[0] and mine[1] <= TODAY_MARGIN * today[1]


KERNEL = KernelImpl("CONV_2D", "tb_cm4_conv_few_in_s8", (HERE / "cm4_conv_few_in_s8.c",),
                    priority=PRIORITY, accepts=accepts, prepare=prepare,
                    name="tb_cm4_conv_few_in_s8 (DSP, 2x4 block, 1-4 input channels)")
