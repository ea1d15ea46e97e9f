"""Build-time layer analysis the targets' 16x8 kernels share
(targets/cortex_m4/kernels/cm4_s16.py, targets/riscv/kernels/rv_s16.py;
docs/kernels.md): which CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED layers a
16x8 kernel computes correctly, and the size thresholds under which the
reference kernel is kept (no cliffs). Each target keeps its own rescale rule,
constants and C kernels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .lower import Const, Layer

# A depthwise kernel sums a channel's taps in int32: |x * w| <= 2^15 * 2^7, so
# up to 511 taps (511 * 2^22 < 2^31) cannot overflow before the int64 bias is added.
DW_MAX_TAPS = (2**31 - 1) // 2**22


def const(layer: Layer, role: str) -> np.ndarray:
    return const_of(layer, role).values


def const_of(layer: Layer, role: str) -> Const:
    return next(c for c in layer.consts if c.role == role)


def out_shifts(layer: Layer) -> np.ndarray:
    """The per-channel shifts of the layer's (multiplier, shift) pairs."""
    return np.asarray(const(layer, "out_mul")).reshape(-1, 2)[:, 1]


@dataclass(frozen=True)
class Thresholds:
    """Smallest layers a target's 16x8 kernels take (below: the reference ran as fast)."""

    conv_min_out_c: int
    dw_min_taps_x_channels: int
    fc_min_in: int
    fc_min_out: int
    fc_min_macs: int = 0
    dw_min_channels: int = 1


def acceptors(rescale_ok: Callable[[Layer], bool], limits: Thresholds):
    """(accepts_conv, accepts_depthwise, accepts_fc) for KernelImpl.accepts; each
    carries ``condition``: what the kernel computes correctly, cost rules aside
    (tests: opt_harness.condition)."""

    def computes_conv(layer: Layer) -> bool:
        return layer.params_type == "tb_conv_params" and rescale_ok(layer)

    def computes_depthwise(layer: Layer) -> bool:
        p = layer.params
        return (layer.params_type == "tb_conv_params" and p["depth_multiplier"] == 1
                and p["k_h"] * p["k_w"] <= DW_MAX_TAPS and rescale_ok(layer))

    def computes_fc(layer: Layer) -> bool:
        return layer.params_type == "tb_fc_params"

    def accepts_conv(layer: Layer) -> bool:
        return computes_conv(layer) and layer.params["out_c"] >= limits.conv_min_out_c

    def accepts_depthwise(layer: Layer) -> bool:
        p = layer.params
        return (computes_depthwise(layer) and p["in_c"] >= limits.dw_min_channels
                and p["k_h"] * p["k_w"] * p["in_c"] >= limits.dw_min_taps_x_channels)

    def accepts_fc(layer: Layer) -> bool:
        p = layer.params
        return (computes_fc(layer) and p["in_features"] >= limits.fc_min_in
                and p["out_features"] >= limits.fc_min_out
                and p["in_features"] * p["out_features"] >= limits.fc_min_macs)

    accepts_conv.condition = computes_conv
    accepts_depthwise.condition = computes_depthwise
    accepts_fc.condition = computes_fc
    return accepts_conv, accepts_depthwise, accepts_fc
