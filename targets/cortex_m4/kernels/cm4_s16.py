"""Build-time side of the Cortex-M4 16x8 kernels (cm4_s16.c): int16 activations
x int8 weights for CONV_2D, DEPTHWISE_CONV_2D (depth multiplier 1) and
FULLY_CONNECTED. The weights are widened to int16 rows padded to an even
length (one word of weights per dual MAC: twice the reference's weight flash),
and the convolutions' per-channel rescale is precomputed as
tb_mul_by_quant_mul_s64 computes it. Everything else is the reference layer's."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from tinybuild.kernel_registry import KernelImpl
from tinybuild.lower import Const, Layer
from tinybuild.ops.conv import raster_in_place
from tinybuild.s16_forms import DW_MAX_TAPS, Thresholds, acceptors, const, out_shifts

SOURCE = Path(__file__).parent / "cm4_s16.c"
INT16 = ("int16",)


def rescale_constants(out_mul: np.ndarray) -> np.ndarray:
    """Per channel {reduced multiplier, r, rounding low word, high word}:
    tb_mul_by_quant_mul_s64's (quant_s8.c) reduced multiplier and total shift
    15 + r, done once at build time (cm4_s16.c rescale_s64)."""
    mul = np.asarray(out_mul, np.int64).reshape(-1, 2)
    reduced = np.where(mul[:, 0] < 0x7FFF0000, (mul[:, 0] + (1 << 15)) >> 16, 0x7FFF)
    r = -mul[:, 1]
    rounding = np.left_shift(np.int64(1), 14 + r).astype(np.uint64)
    words = [reduced, r, rounding & 0xFFFFFFFF, rounding >> np.uint64(32)]
    return np.stack([np.asarray(w, np.int64) for w in words], axis=1).astype(np.uint32) \
        .view(np.int32).reshape(-1)


def rescale_ok(layer: Layer) -> bool:
    """Multipliers below 1 (shift <= 0), as real 16x8 layers have: the kernel's
    total shift is 15 + (-shift)."""
    return bool(np.all(out_shifts(layer) <= 0))


def widened_rows(w: np.ndarray, rows: int) -> np.ndarray:
    """``rows`` int8 weight rows as int16 rows padded with 0 to an even length."""
    w = np.asarray(w, np.int16).reshape(rows, -1)
    return np.pad(w, ((0, 0), (0, w.shape[1] % 2))).reshape(-1)


# No cliffs (the sweep in tests/test_s16_kernels.py, measured in the simulator):
# one output channel pays the field copy for too few MACs; the depthwise kernel
# works on channel pairs, so one channel wastes half of it (8x8x1 3x3: fewer
# instructions but 3 cycles more than the reference once the STM32F407's flash
# wait is counted); small FCs are ruled by the per-output double rescale both
# kernels share (17 -> 3 was 7 instructions slower).
accepts_conv, accepts_depthwise, accepts_fc = acceptors(
    rescale_ok, Thresholds(conv_min_out_c=2, dw_min_taps_x_channels=4, fc_min_in=16, fc_min_out=2,
                           fc_min_macs=128, dw_min_channels=2))


def conv_reads_input(p: dict) -> bool:
    """1x1 filters on an even number of channels read the (word-aligned) input pixel itself."""
    return p["k_h"] == 1 and p["k_w"] == 1 and p["in_c"] % 2 == 0 and p["pad_top"] == 0 \
        and p["pad_left"] == 0


def prepare_conv(layer: Layer) -> Layer:
    p = layer.params
    field = p["k_h"] * p["k_w"] * p["in_c"]
    filt = widened_rows(const(layer, "filter"), p["out_c"])
    # always some scratch: every call of one C function has the same arguments
    scratch = 4 if conv_reads_input(p) else 2 * (field + field % 2)
    return replace(layer, consts=[Const("filter16", "int16_t", filt),
                                  Const("bias", "int64_t", const(layer, "bias")),
                                  Const("rq", "int32_t", rescale_constants(const(layer, "out_mul")))],
                   args=["filter16", "bias", "rq"], scratch_bytes=scratch,
                   overlap=raster_in_place(layer),
                   notes=layer.notes + ["16x8: filter widened to int16, SMLALD (int64 sums)"])


def prepare_depthwise(layer: Layer) -> Layer:
    p = layer.params
    taps = p["k_h"] * p["k_w"]
    filt = np.asarray(const(layer, "filter"), np.int16).reshape(taps, p["out_c"])
    filt = np.pad(filt, ((0, 0), (0, p["out_c"] % 2))).reshape(-1)
    return replace(layer, consts=[Const("filter16", "int16_t", filt),
                                  Const("bias", "int64_t", const(layer, "bias")),
                                  Const("rq", "int32_t", rescale_constants(const(layer, "out_mul")))],
                   args=["filter16", "bias", "rq"], overlap=raster_in_place(layer),
                   notes=layer.notes + [f"16x8: channel pairs, int32 tap sums (<= {DW_MAX_TAPS} "
                                        "taps cannot overflow), SMLABB/SMLATT"])


def prepare_fc(layer: Layer) -> Layer:
    p = layer.params
    weights = widened_rows(const(layer, "filter"), p["out_features"])
    return replace(layer, consts=[Const("filter16", "int16_t", weights),
                                  Const("bias", "int64_t", const(layer, "bias")),
                                  Const("real_mul", "double", const(layer, "real_mul"))],
                   args=["filter16", "bias", "real_mul"],
                   notes=layer.notes + ["16x8: weights widened to int16, SMLALD (int64 sums), "
                                        "two outputs per pass"])


def kernels() -> list[KernelImpl]:
    return [
        KernelImpl("CONV_2D", "tb_cm4_conv2d_s16", (SOURCE,), priority=10, accepts=accepts_conv,
                   prepare=prepare_conv, name="tb_cm4_conv2d_s16 (16x8, SMLALD)", dtypes=INT16),
        KernelImpl("DEPTHWISE_CONV_2D", "tb_cm4_depthwise_conv2d_s16", (SOURCE,), priority=10,
                   accepts=accepts_depthwise, prepare=prepare_depthwise,
                   name="tb_cm4_depthwise_conv2d_s16 (16x8, channel pairs)", dtypes=INT16),
        KernelImpl("FULLY_CONNECTED", "tb_cm4_fully_connected_s16", (SOURCE,), priority=10,
                   accepts=accepts_fc, prepare=prepare_fc,
                   name="tb_cm4_fully_connected_s16 (16x8, SMLALD)", dtypes=INT16),
    ]
