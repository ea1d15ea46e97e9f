"""Which RV32IM kernel a layer should get, from estimated costs: the convolution
and depthwise kernels take a layer only where they are estimated clearly
faster than the reference kernel (instructions and cycles, by MARGIN), and a
depthwise layer on one input channel runs as a convolution only where that is
estimated faster than the depthwise kernel. The accepts functions here add
these estimates to the kernels' correctness conditions (rv_prepare). See
docs/kernels.md, "No cliffs".

Each estimate is linear in a few counts of the work a kernel does (outputs,
taps inside the input, blocks of 4 pixels x 4 channels, plane sizes...), with
coefficients fitted (least squares on relative errors, non-negative) to the
simulator's exact instruction counts and modelled cycles (riscv, Bumblebee
model) of 600 random single layers per kernel (maps 1x1..16x16, 1..128
channels, filters 1x1..10x8, strides 1-2, dilations 1-2, SAME and VALID, 40%
with random zero points and activations), each run beside the reference kernel
as bench/sweep.py runs it. RMS errors: 4-7% (reference), 8-13% (optimized);
MARGIN (SMALL_MARGIN for small layers) leaves room for them: fitted on one half
of the layers, the rule took no layer of the other half where the kernel was
slower. bench/sweep.py checks the outcome on its grid (esp32c3 included: the
same kernels, another timing model).
"""
from __future__ import annotations

import numpy as np

from tinybuild.kernel_cost import (clearly_faster, estimate, inside, reference_features,
                                   within)
from tinybuild.lower import Layer

from .rv_prepare import (DW_3X3S1, DW_3X3S2, DW_GENERAL, _bounds, _const, _dw_weights,
                         accepts_conv, accepts_depthwise, accepts_depthwise_as_conv,
                         depthwise_as_conv, dw_path, dw_plane, is_direct_1x1,
                         rv_requant_constants)


# (instructions, cycles) coefficients of each model's features
REFERENCE_CONV = ((148.1, 103.7, 6.989, 7.844, 11.32, 8.055),
                  (150.0, 112.9, 8.577, 9.289, 11.96, 9.053))
REFERENCE_DW = ((232.2, 91.99, 6.631, 7.036, 7.929),
                (242.0, 102.0, 8.237, 9.007, 7.037))
CONV = ((409.4, 293.7, 5.299, 6.34, 2.01, 289.6, 40.95, 201.3, 15.36),
        (548.1, 373.7, 6.839, 8.974, 1.242, 331.2, 43.85, 227.5, 16.25))
DEPTHWISE = ((258.6, 4.338, 8.999, 2.875, 44.39, 25.26, 21.74, 7.881, 170.8),
             (270.3, 3.909, 9.577, 3.842, 44.83, 27.6, 22.98, 8.798, 185.4))

# -- counts ------------------------------------------------------------------------------


def conv_features(p: dict) -> list[int]:
    """tb_rv_conv2d_s8: blocks of 4 pixels, their im2col (per value, per tap)
    or the 1x1 interleave, blocks x groups of 4 channels (K4 steps each), and
    the 1-3 pixel remainder (one pixel at a time)."""
    ic, pixels, oc = p["in_c"], p["out_h"] * p["out_w"], p["out_c"]
    taps = p["k_h"] * p["k_w"]
    k4 = (taps * ic + 3) // 4 * 4
    blocks, rest, groups = pixels // 4, pixels % 4, (oc + 3) // 4
    direct = is_direct_1x1(p)
    return [1, blocks, 0 if direct else pixels * taps * ic, 0 if direct else pixels * taps,
            pixels * ic if direct else 0, blocks * groups, blocks * groups * k4, rest * groups,
            rest * groups * k4]


def depthwise_features(p: dict, fast: bool) -> list[int]:
    """tb_rv_depthwise_conv2d_s8: the channel copies and the plane's frame, per
    pair of outputs of the 3x3 paths, per output and tap of the general path (4
    at a time, then one by one; a requantization other than the fast form
    takes it), per output line."""
    path = dw_path(p) if fast else DW_GENERAL
    transposed = p["out_h"] > p["out_w"]
    plane_w, plane_h = dw_plane(p, path, transposed)
    oc, taps = p["out_c"], p["k_h"] * p["k_w"]
    lines, steps = (p["out_w"], p["out_h"]) if transposed else (p["out_h"], p["out_w"])
    pairs = oc * lines * ((steps + 1) // 2)
    general = int(path == DW_GENERAL)
    return [1, oc, p["in_c"] * p["in_h"] * p["in_w"], plane_w * plane_h,
            pairs * (path == DW_3X3S1), pairs * (path == DW_3X3S2),
            general * oc * lines * (steps // 4) * taps, general * oc * lines * (steps % 4) * taps,
            oc * lines]


def fast_form(layer: Layer, weights: np.ndarray) -> bool:
    """Does the layer requantize in the fast exact form? ``weights``: [out_c][taps]."""
    p = layer.params
    bounds, constants = _bounds(weights.astype(np.int64), _const(layer, "bias").astype(np.int64),
                                p["input_offset"])
    return rv_requant_constants(_const(layer, "out_mul"), p["output_offset"], bounds,
                                constants) is not None


def conv_estimate(layer: Layer) -> tuple[float, float]:
    return estimate(CONV, conv_features(layer.params))


def depthwise_estimate(layer: Layer) -> tuple[float, float]:
    return estimate(DEPTHWISE, depthwise_features(layer.params,
                                                  fast_form(layer, _dw_weights(layer))))


def reference_estimate(layer: Layer) -> tuple[float, float]:
    depthwise = layer.op == "DEPTHWISE_CONV_2D"
    return estimate(REFERENCE_DW if depthwise else REFERENCE_CONV,
                    reference_features(layer.params, depthwise))


# -- accepts -----------------------------------------------------------------------------


@within(accepts_conv)
def accepts_conv_faster(layer: Layer) -> bool:
    """tb_rv_conv2d_s8 where it beats the reference (not, e.g., 2 output
    channels of a 4-channel block on a tiny map)."""
    return accepts_conv(layer) and clearly_faster(conv_estimate(layer), reference_estimate(layer))


@within(accepts_depthwise)
def accepts_depthwise_faster(layer: Layer) -> bool:
    """tb_rv_depthwise_conv2d_s8 where it beats the reference (not on 1x1 or
    2x2 maps, where copying each channel into its plane costs more than the
    few outputs save)."""
    return accepts_depthwise(layer) and \
        clearly_faster(depthwise_estimate(layer), reference_estimate(layer))


@within(accepts_depthwise_as_conv)
def accepts_depthwise_as_conv_faster(layer: Layer) -> bool:
    """One input channel, depth multiplier > 1, as a convolution: where it beats
    the reference, and the depthwise kernel unless that one is not taken."""
    if not accepts_depthwise_as_conv(layer):
        return False
    conv = conv_estimate(depthwise_as_conv(layer))
    if not clearly_faster(conv, reference_estimate(layer)):
        return False
    if not accepts_depthwise_faster(layer):
        return True
    dw = depthwise_estimate(layer)
    return conv[0] < dw[0] and conv[1] < dw[1]
