"""What a target's cost model needs to decide that its kernel beats the
reference one on a layer (shared by the cortex-m4 and RISC-V plugins).

A model is fitted per kernel to simulated layers: ``estimate(coefficients,
features)`` gives (instructions, cycles); ``clearly_faster`` takes a kernel
only with a margin; ``reference_features`` describes the portable reference
convolution and depthwise kernels, whose cost every target fits itself.
"""
from __future__ import annotations

import numpy as np

MARGIN = 0.8     # taken where estimated at most 0.8x the reference's instructions and cycles
SMALL = 20_000   # below this many reference instructions (a few outputs) the estimates are
SMALL_MARGIN = 0.6   # least sure: there the kernel must be estimated at most 0.6x


def taps_inside(out: int, stride: int, pad: int, dil: int, k: int, size: int) -> list[int]:
    """Per output position along one axis, how many of its k taps fall inside the input."""
    return [sum(1 for t in range(k) if 0 <= o * stride - pad + t * dil < size) for o in range(out)]


def inside(p: dict) -> tuple[list[int], list[int]]:
    return (taps_inside(p["out_h"], p["stride_h"], p["pad_top"], p["dil_h"], p["k_h"], p["in_h"]),
            taps_inside(p["out_w"], p["stride_w"], p["pad_left"], p["dil_w"], p["k_w"], p["in_w"]))


def reference_features(p: dict, depthwise: bool) -> list[int]:
    """tb_conv2d_s8 / tb_depthwise_conv2d_s8: per output (requantization), per
    kernel row, per tap of a row inside the input, per tap inside, per MAC."""
    rows, cols = inside(p)
    pixels, oc = p["out_h"] * p["out_w"], p["out_c"]
    taps = sum(rows) * sum(cols)
    f = [1, pixels * oc, pixels * oc * p["k_h"], oc * sum(rows) * p["out_w"] * p["k_w"], oc * taps]
    return f if depthwise else f + [oc * taps * p["in_c"]]


def estimate(model, features) -> tuple[float, float]:
    """(instructions, cycles)."""
    return tuple(float(np.dot(c, features)) for c in model)


def clearly_faster(opt: tuple[float, float], ref: tuple[float, float]) -> bool:
    margin = MARGIN if ref[0] >= SMALL else SMALL_MARGIN
    return opt[0] <= margin * ref[0] and opt[1] <= margin * ref[1]


def within(condition):
    """Records on an accepts function the ``condition`` it adds its estimate to
    (the layers the kernel computes correctly): the tests run the kernel on
    all of those."""
    def mark(accepts):
        accepts.condition = condition
        return accepts
    return mark
