"""Quantization as TFLite's converter does it: int8 activations asymmetric from the
calibration range (0 inside it), weights symmetric int8 per output channel (or the
scales a quantized model carries), int32 bias = round(b / (s_in * s_w))."""
from __future__ import annotations

import numpy as np


def activation_qparams(lo: float, hi: float) -> tuple[float, int]:
    """int8 scale and zero point for the range [lo, hi] as TFLite's converter picks
    them: the range always holds 0, zero point rounded and clamped to [-128, 127]."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-9:
        return 1.0 / 255, -128
    scale = (hi - lo) / 255.0
    zp = int(round(-128 - lo / scale))
    return float(np.float32(scale)), int(min(max(zp, -128), 127))


def int16_qparams(lo: float, hi: float) -> tuple[float, int]:
    """TFLite's 16x8 activations: symmetric int16, zero point 0, scale max|x| / 32767."""
    biggest = max(abs(float(lo)), abs(float(hi)))
    return (float(np.float32(biggest / 32767.0)) if biggest > 1e-9 else 1.0 / 32767), 0


def weight_scales(w: np.ndarray, axis: int) -> np.ndarray:
    """One symmetric int8 scale per slice along ``axis`` (1.0 for an all-zero slice)."""
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    scales = np.abs(moved).max(axis=1) / 127.0
    return np.where(scales > 0, scales, 1.0).astype(np.float32)


def quantize_weights(w: np.ndarray, axis: int, scales: np.ndarray) -> np.ndarray:
    """``w`` in int8 with one scale (per tensor) or one per slice along ``axis``."""
    shape = [1] * w.ndim
    shape[axis] = -1
    divisor = scales.reshape(shape) if scales.size > 1 else scales[0]
    return np.clip(np.round(w / divisor), -127, 127).astype(np.int8)


def quantize_bias(b: np.ndarray, scales: np.ndarray, bits: int = 32) -> np.ndarray:
    """int32 (int64 for 16x8) bias for the products' scales (input scale times each weight scale)."""
    q = np.clip(np.round(np.asarray(b, np.float64) / scales), -2.0**(bits - 1), 2.0**(bits - 1) - 1)
    return q.astype(np.int64 if bits == 64 else np.int32)


def quantize_values(v: np.ndarray, int16: bool = False) -> tuple[np.ndarray, float, int]:
    """A constant operand of an elementwise op: int8 over its own range (int16 symmetric for 16x8)."""
    lo, hi = float(v.min()), float(v.max())
    if int16:
        scale, zp = int16_qparams(lo, hi)
        return np.clip(np.round(v / scale), -32768, 32767).astype(np.int16), scale, zp
    scale, zp = activation_qparams(lo, hi)
    return np.clip(np.round(v / scale) + zp, -128, 127).astype(np.int8), scale, zp
