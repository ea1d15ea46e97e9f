"""Which Cortex-M4 kernel a layer should get, from estimated costs: an optimized
kernel takes a layer only where it is estimated clearly faster than the
reference kernel (instructions and cycles, by MARGIN), and a depthwise layer on
one input channel runs as a convolution only where that is estimated faster
than the plane kernel. The accepts functions here add these estimates to the
kernels' correctness conditions (cm4_prepare). See docs/kernels.md, "No
cliffs".

Each estimate is linear in a few counts of the work a kernel does (outputs,
taps inside the input, blocks, plane sizes...), with coefficients fitted
(least squares on relative errors, non-negative) to the simulator's exact
instruction counts and modelled cycles of 600 random single layers per kernel
(maps 1x1..16x16, 1..128 channels, filters 1x1..10x8, strides 1-2,
dilations 1-2, SAME and VALID, 40% with random zero points and activations),
each run beside the reference kernel in a firmware built as bench/sweep.py
builds it (its every-kernel mode runs the same comparison). RMS errors: 4-8%
(reference kernels), 12-15% (optimized kernels); MARGIN (SMALL_MARGIN for
small layers) leaves room for them: fitted on one half of the layers, the
rule took no layer of the other half where the kernel was slower.
bench/sweep.py checks the outcome on its grid.
"""
from __future__ import annotations

import numpy as np

from tinybuild.kernel_cost import (clearly_faster, estimate, inside, reference_features,
                                   within)
from tinybuild.lower import Layer

from .cm4_prepare import (DW_3X3S1, DW_3X3S2, DW_GENERAL, RQ_FAST, RQ_FULLRANGE, _const,
                          _max_abs_input, accepts_avgpool, accepts_conv, accepts_conv_1x1_smallk,
                          accepts_depthwise_as_conv, accepts_depthwise_folded, conv_plane,
                          depthwise_as_conv, dw_oriented, dw_path, dw_plane, dw_s1_batch,
                          dw_transposed, requant)


# (instructions, cycles) coefficients of each model's features
REFERENCE_CONV = ((121.2, 101.2, 13.66, 10.72, 12.54, 6.048),
                  (187.1, 150.0, 19.6, 14.76, 14.62, 10.08))
REFERENCE_DW = ((225.9, 119.4, 15.2, 10.26, 10.9),
                (309.4, 163.5, 22.18, 14.33, 11.44))
CONV = ((569.7, 99.75, 7.671, 30.55, 0.4593, 14.16, 212.4, 1.858, 2.228, 62.68, 8.115, 72.2,
         2.809, 41.13, 2.394),
        (815.4, 177.1, 9.197, 60.13, 0.9949, 19.5, 332.5, 2.766, 3.286, 76.56, 9.391, 122.2,
         3.681, 71.67, 4.061))
PLANE = ((446.7, 106.6, 0.3036, 18.97, 33.35, 60.1, 13.3, 7.607, 16.65, 10.71),
         (644.2, 171.0, 0.4431, 22.51, 42.55, 74.85, 14.01, 11.82, 22.73, 15.62))

# -- counts ------------------------------------------------------------------------------


def border_pixels(p: dict) -> int:
    """Output pixels with a tap outside the input."""
    rows, cols = inside(p)
    return sum(1 for a in rows for b in cols if a < p["k_h"] or b < p["k_w"])


def conv_features(p: dict, fast: bool) -> list[int]:
    """tb_cm4_conv2d_s8: blocks of 4 pixels (im2col of K4 values each), border
    pixels (one by one, per value and per tap), pixels staged byte by byte, the padded plane, channel
    pairs per block (K4/2 SMLAD steps), 1-2 pixel remainders, and the C loop
    of a requantization other than the fast full-range form."""
    ic, pixels, oc = p["in_c"], p["out_h"] * p["out_w"], p["out_c"]
    rows9 = (ic, p["k_h"], p["k_w"], p["dil_w"]) == (3, 3, 3, 1)
    tap4 = ic == 3 and not rows9
    k4 = (p["k_h"] * p["k_w"] * (4 if tap4 else ic) + 3) // 4 * 4
    blocks, rest = pixels // 4 + (pixels % 4 == 3), pixels % 4 if pixels % 4 < 3 else 0
    pairs = (oc + 1) // 2
    plane_w, plane_h = conv_plane(p, tap4, rows9)
    words = tap4 or rows9 or ic % 4 == 0 or (p["dil_w"] == 1 and p["k_w"] * ic % 4 == 0)
    border = 0 if plane_w else border_pixels(p)
    staged = 0 if words else pixels
    f = [1, blocks, blocks * k4, border, border * k4, border * p["k_h"] * p["k_w"], staged,
         staged * k4, plane_w * plane_h * ic, blocks * pairs, blocks * pairs * k4, rest * pairs,
         rest * pairs * k4]
    return f + ([0, 0] if fast and oc >= 2 else [pixels * oc, (blocks + rest) * pairs * k4])


def plane_features(p: dict, fast: bool) -> list[int]:
    """tb_cm4_depthwise_conv2d_s8: per channel its plane, per output of each
    path (3x3 stride 1, stride 2, general with its taps, batched stride 1), per
    output row, and the C requantization loop."""
    path = dw_path(p)
    q = dw_oriented(p, dw_transposed(p, path))
    plane_w, plane_h, _ = dw_plane(q, path)
    batch = bool(dw_s1_batch(q, path))
    oc, pixels = p["out_c"], p["out_h"] * p["out_w"]
    paths = [path == DW_3X3S1 and not batch, path == DW_3X3S2, path == DW_GENERAL, batch]
    return [1, oc, oc * plane_w * plane_h, *[oc * pixels * int(on) for on in paths],
            oc * pixels * p["k_h"] * p["k_w"] * int(path == DW_GENERAL), oc * p["out_h"],
            0 if fast else oc * pixels]


def fast_full_range(layer: Layer, weights: np.ndarray) -> bool:
    """Does the layer requantize in the fast exact form with the full int8
    range (the kernels' assembly paths)? ``weights``: [out_c][taps]."""
    p = layer.params
    bias = _const(layer, "bias").astype(np.int64)
    wsum = np.abs(weights.astype(np.int64)).sum(axis=1)
    bounds = np.abs(bias) + wsum * _max_abs_input(p["input_offset"])
    constants = [int(b) if s == 0 else None for b, s in zip(bias, wsum)]
    flags, _, _ = requant(_const(layer, "out_mul"), p["output_offset"], bounds, p["act_min"],
                          p["act_max"], p["out_c"], constants)
    return flags == RQ_FAST | RQ_FULLRANGE


def _conv_weights(layer: Layer) -> np.ndarray:
    return _const(layer, "filter").reshape(layer.params["out_c"], -1)


def _dw_weights(layer: Layer) -> np.ndarray:
    return _const(layer, "filter").reshape(-1, layer.params["out_c"]).T


def conv_estimate(layer: Layer) -> tuple[float, float]:
    return estimate(CONV, conv_features(layer.params, fast_full_range(layer, _conv_weights(layer))))


def plane_estimate(layer: Layer) -> tuple[float, float]:
    return estimate(PLANE, plane_features(layer.params, fast_full_range(layer, _dw_weights(layer))))


def reference_estimate(layer: Layer) -> tuple[float, float]:
    depthwise = layer.op == "DEPTHWISE_CONV_2D"
    return estimate(REFERENCE_DW if depthwise else REFERENCE_CONV,
                    reference_features(layer.params, depthwise))


# -- accepts -----------------------------------------------------------------------------


@within(accepts_conv)

def accepts_conv_faster(layer: Layer) -> bool:
    """tb_cm4_conv2d_s8 where it beats the reference (not, e.g., a 10x4 filter
    on a 2x2 map, where the reference skips most taps as padding)."""
    return accepts_conv(layer) and clearly_faster(conv_estimate(layer), reference_estimate(layer))


@within(accepts_conv_1x1_smallk)
def accepts_conv_1x1_smallk_faster(layer: Layer, depth: int) -> bool:
    return accepts_conv_1x1_smallk(layer, depth) and \
        clearly_faster(conv_estimate(layer), reference_estimate(layer))


@within(accepts_depthwise_folded)
def accepts_plane_faster(layer: Layer) -> bool:
    return accepts_depthwise_folded(layer) and \
        clearly_faster(plane_estimate(layer), reference_estimate(layer))


@within(accepts_depthwise_as_conv)
def accepts_depthwise_as_conv_faster(layer: Layer) -> bool:
    """One input channel, depth multiplier > 1, as a convolution: where it beats
    the reference, and the plane kernel unless that one is not taken."""
    if not accepts_depthwise_as_conv(layer):
        return False
    conv = conv_estimate(depthwise_as_conv(layer))
    if not clearly_faster(conv, reference_estimate(layer)):
        return False
    if not accepts_plane_faster(layer):
        return True
    plane = plane_estimate(layer)
    return conv[0] < plane[0] and conv[1] < plane[1]


AVGPOOL_MIN_CHANNELS = 3   # with 1 or 2 the 4-channel words are mostly padding


@within(accepts_avgpool)
def accepts_avgpool_faster(layer: Layer) -> bool:
    """tb_cm4_avg_pool2d_s8 on 3 channels or more (measured: 1 channel runs
    10-15% slower than the reference, 2 channels about as fast)."""
    return accepts_avgpool(layer) and layer.params["c"] >= AVGPOOL_MIN_CHANNELS


@within(accepts_avgpool)
def accepts_avgpool_4k1_faster(layer: Layer) -> bool:
    """tb_cm4_avg_pool2d_4k1_s8 on 4k+1 channels, k >= 1: the last channel in the
    4-channel pass, at most the cycles of tb_cm4_avg_pool2d_s8's tail call
    (tests/test_cm4_choice_fixes.py)."""
    c = layer.params["c"]
    return accepts_avgpool_faster(layer) and c > 4 and c % 4 == 1
