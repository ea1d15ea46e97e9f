"""Build-time side of the RV32IM 16x8 kernels (rv_s16.c): int16 activations x
int8 weights for CONV_2D, DEPTHWISE_CONV_2D (depth multiplier 1) and
FULLY_CONNECTED. The weights stay in TFLite's layout (LB reads int8 as cheaply
as int16); the convolutions' rescale is precomputed as tb_mul_by_quant_mul_s64
computes it; scratch for the convolution's gathered field. Which layers the
kernels take: tinybuild/s16_forms.py, shared with the cortex-m4 module."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from tinybuild.kernel_registry import KernelImpl
from tinybuild.lower import Const, Layer
from tinybuild.ops.conv import raster_in_place
from tinybuild.s16_forms import DW_MAX_TAPS, Thresholds, acceptors, const, const_of, out_shifts

SOURCE = Path(__file__).parent / "rv_s16.c"
INT16 = ("int16",)


def rescale_constants(out_mul: np.ndarray) -> np.ndarray:
    """Per channel {reduced multiplier, total shift}: tb_mul_by_quant_mul_s64's
    first two lines (quant_s8.c), done once at build time."""
    mul = np.asarray(out_mul, np.int64).reshape(-1, 2)
    reduced = np.where(mul[:, 0] < 0x7FFF0000, (mul[:, 0] + (1 << 15)) >> 16, 0x7FFF)
    return np.stack([reduced, 15 - mul[:, 1]], axis=1).astype(np.int32).reshape(-1)


def rescale_ok(layer: Layer) -> bool:
    """The reference's rounding term 1 << (total_shift - 1) needs total_shift >= 1."""
    return bool(np.all(out_shifts(layer) <= 14))


# No cliffs (tests/test_s16_kernels.py's sweep in the simulator): one output
# channel, a 1x1 depthwise filter on one channel and small FCs stay on the reference.
accepts_conv, accepts_depthwise, accepts_fc = acceptors(
    rescale_ok, Thresholds(conv_min_out_c=2, dw_min_taps_x_channels=4, fc_min_in=16, fc_min_out=2))


def conv_reads_input(p: dict) -> bool:
    """1x1 unpadded filters read the input pixel itself (rv_s16.c ``direct``)."""
    return p["k_h"] == 1 and p["k_w"] == 1 and p["pad_top"] == 0 and p["pad_left"] == 0


def prepare_conv(layer: Layer) -> Layer:
    p = layer.params
    # always some scratch: every call of one C function has the same arguments
    scratch = 4 if conv_reads_input(p) else 2 * p["k_h"] * p["k_w"] * p["in_c"]
    return replace(layer, consts=[const_of(layer, "filter"), const_of(layer, "bias"),
                                  Const("rq", "int32_t", rescale_constants(const(layer, "out_mul")))],
                   args=["filter", "bias", "rq"], scratch_bytes=scratch,
                   overlap=raster_in_place(layer),
                   notes=layer.notes + ["16x8: int32 chunks of the int64 sums, 4 channels per pass"])


def prepare_depthwise(layer: Layer) -> Layer:
    return replace(layer, consts=[const_of(layer, "filter"), const_of(layer, "bias"),
                                  Const("rq", "int32_t", rescale_constants(const(layer, "out_mul")))],
                   args=["filter", "bias", "rq"], overlap=raster_in_place(layer),
                   notes=layer.notes + [f"16x8: int32 tap sums (<= {DW_MAX_TAPS} taps cannot "
                                        "overflow)"])


def prepare_fc(layer: Layer) -> Layer:
    return replace(layer, args=["filter", "bias", "real_mul"],
                   notes=layer.notes + ["16x8: int32 chunks of the int64 sums, 4 outputs per pass"])


def kernels() -> list[KernelImpl]:
    return [
        KernelImpl("CONV_2D", "tb_rv_conv2d_s16", (SOURCE,), priority=10, accepts=accepts_conv,
                   prepare=prepare_conv, name="tb_rv_conv2d_s16 (16x8)", dtypes=INT16),
        KernelImpl("DEPTHWISE_CONV_2D", "tb_rv_depthwise_conv2d_s16", (SOURCE,), priority=10,
                   accepts=accepts_depthwise, prepare=prepare_depthwise,
                   name="tb_rv_depthwise_conv2d_s16 (16x8)", dtypes=INT16),
        KernelImpl("FULLY_CONNECTED", "tb_rv_fully_connected_s16", (SOURCE,), priority=10,
                   accepts=accepts_fc, prepare=prepare_fc, name="tb_rv_fully_connected_s16 (16x8)",
                   dtypes=INT16),
    ]
