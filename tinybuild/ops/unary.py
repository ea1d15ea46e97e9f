"""Unary math: ABS, NEG, RSQRT (int8 -> int8, as 256-entry tables like the
activations in tinybuild/ops/activation.py) and CAST between int8, uint8,
int16, int32 and float32 (tinybuild/kernels/unary.c).

The tables evaluate TFLite's per-value integer math (BUILTIN_REF, TF 2.21) on
every int8 value: elementwise.cc's AbsEvalQuantized and
RsqrtEvalQuantizedInt8 (GetInvSqrtQuantizedMultiplierExp's gemmlowp
Newton-Raphson), and reference_ops::Negate (-x on the raw int8 values).
int16 (16x8) ABS is AbsEvalQuantized<int16_t> on tb_relu_s16, int16 NEG is
Negate by tb_neg_s16; float32 ABS/NEG flip or clear the sign bit.
"""
from __future__ import annotations

import math

import numpy as np

from .. import quant
from . import KERNEL_DIR, OpDef, unsupported
from ._common import elements
from .activation import (F32, LUT_SOURCE, elementwise_in_place, elementwise_tensor, fold_by_table,
                         lut_layer, rdbp, same_type_tensors)
from ..lower import Layer

_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1


# -- ABS, NEG -----------------------------------------------------------------------------------

def lower_abs(graph, op) -> Layer:
    def entry(x, y, v: int) -> int:
        value = abs(v - x.zero_point)
        if F32(x.scale) == F32(y.scale):
            return value + y.zero_point
        m, s = quant.quantize_multiplier(float(F32(x.scale) / F32(y.scale)))
        return quant.mul_by_quant_mul(value, m, s) + y.zero_point
    return lut_layer(graph, op, entry)


def lower_neg(graph, op) -> Layer:
    # TF 2.21's int8 NEG is reference_ops::Negate: -x on the raw values, zero
    # points and scales ignored, -(-128) wrapping to -128.
    return lut_layer(graph, op, lambda x, y, v: -128 if v == -128 else -v)


# -- RSQRT ---------------------------------------------------------------------------------------

def _wrap32(v: int) -> int:
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


def srdhm32(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul for int32."""
    if a == b == _I32_MIN:
        return _I32_MAX
    ab = a * b
    v = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    q = abs(v) >> 31
    return q if v >= 0 else -q


def _saturating_shift_left(x: int, exponent: int) -> int:
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent > 0> (Rescale up)."""
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return _I32_MAX
    if x < -threshold:
        return _I32_MIN
    return x << exponent


def inv_sqrt_multiplier_exp(value: int) -> tuple[int, int]:
    """GetInvSqrtQuantizedMultiplierExp(value, kReverseShift = -1)."""
    if value <= 1:
        return _I32_MAX, 0
    shift = 11
    while value >= (1 << 29):
        value //= 4
        shift += 1
    pairs = ((32 - value.bit_length()) - 1) // 2 - 1
    shift -= pairs
    value <<= 2 * pairs
    half_input = rdbp(value >> 1, 1)                      # F3
    half_three = (1 << 28) + (1 << 27)                     # F3 1.5
    x = 1 << 28                                            # F3 1.0
    for _ in range(5):
        x3 = _saturating_shift_left(srdhm32(srdhm32(x, x), x), 6)       # F9 -> F3
        x = _saturating_shift_left(_wrap32(srdhm32(half_three, x) - srdhm32(half_input, x3)), 3)
    x = srdhm32(x, 1518500250)                             # * sqrt(2) / 2 (F0)
    if shift < 0:
        x = _wrap32(x << -shift)
        shift = 0
    return x, -shift


def lower_rsqrt(graph, op) -> Layer:
    def entry(x, y, v: int) -> int:
        value = v - x.zero_point
        if value <= 0:              # 0: TFLite's maximum; below the zero point TFLite stops
            return 127
        # SetRsqrtOutputMultiplier: 1. / (sqrtf(input scale) * output scale)
        m, s = quant.quantize_multiplier(1.0 / float(np.sqrt(F32(x.scale)) * F32(y.scale)))
        inv, inv_shift = inv_sqrt_multiplier_exp(value)
        data = quant.mul_by_quant_mul(1, inv, inv_shift + 20)
        return quant.mul_by_quant_mul(data, m, s - 20) + y.zero_point
    return lut_layer(graph, op, entry)


# -- CAST ----------------------------------------------------------------------------------------

# TB_DTYPE_* in tinybuild/kernels/quantize.h (TB_DTYPE_INT32 in unary.h)
CAST_TYPES = {"int8": 0, "uint8": 1, "int16": 2, "float32": 3, "int32": 4}
_INT_BITS = {"int8": 8, "uint8": 8, "int16": 16, "int32": 32}


def lower_cast(graph, op) -> Layer:
    x = elementwise_tensor(graph, op, op.inputs[0], "input", tuple(CAST_TYPES))
    y = elementwise_tensor(graph, op, op.outputs[0], "output", tuple(CAST_TYPES))
    return Layer(op.index, op.op, "tb_cast_params",
                 {"size": elements(x), "in_type": CAST_TYPES[x.dtype], "out_type": CAST_TYPES[y.dtype]},
                 [op.inputs[0]], [op.outputs[0]], [], 0, f"{elements(x)} {x.dtype} -> {y.dtype}")


def cast_values(data: np.ndarray, to: str) -> np.ndarray:
    """What tb_cast (and TFLite's cast.cc on x86-64) computes."""
    data = np.asarray(data)
    if to == "float32":
        return data.astype(np.float32)
    if data.dtype != np.float32:
        return _wrap(data.astype(np.int64), to)
    f = data.astype(np.float64)
    if to == "int32":           # saturating; NaN -> INT32_MAX
        limit = float(np.nextafter(np.float32(2 ** 31), np.float32(0)))
        return np.where(f <= limit, np.trunc(np.maximum(np.nan_to_num(f, nan=0.0), -2.0 ** 31)),
                        _I32_MAX).astype(np.int32)
    if to in ("int16", "uint8"):  # clamped to the type first; NaN -> 0
        info = np.iinfo(to)
        return np.trunc(np.clip(np.nan_to_num(f, nan=0.0), info.min, info.max)).astype(to)
    inside = (f > -2.0 ** 31 - 1) & (f < 2.0 ** 31)   # int8: to int32 (x86: INT32_MIN outside), then wrap
    as_int = np.where(inside, np.trunc(np.nan_to_num(f, nan=0.0)), _I32_MIN).astype(np.int64)
    return _wrap(as_int, to)


def _wrap(values: np.ndarray, to: str) -> np.ndarray:
    bits = _INT_BITS[to]
    v = values % (1 << bits)
    if not to.startswith("u"):
        v = np.where(v >= 1 << (bits - 1), v - (1 << bits), v)
    return v.astype(to)


def fold_cast(graph, op) -> dict | None:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if x.dtype not in CAST_TYPES or y.dtype not in CAST_TYPES:
        return None
    return {y.index: cast_values(x.data, y.dtype)}


# -- int16 (16x8) ABS, NEG ---------------------------------------------------------------------

def lower_abs_s16(graph, op) -> Layer:
    """AbsEvalQuantized<int16_t>: |x - zero point| rescaled (tb_relu_s16, the negative
    side by the negated multiplier: the same product, so the same rounding)."""
    x, y = same_type_tensors(graph, op, "int16")
    for t, what in ((x, "input"), (y, "output")):
        if len(t.scales) != 1 or not 0.0 < t.scale < math.inf:
            raise unsupported(op, f"{what} quantization (one positive scale expected)", graph)
    same = F32(x.scale) == F32(y.scale)
    m, s = (1 << 30, 1) if same else quant.quantize_multiplier(float(F32(x.scale) / F32(y.scale)))
    if s > 15:       # |x| << s would wrap in int32 (TFLite's wrap differs from the negated one)
        raise unsupported(op, f"input scale {x.scale:g} / output scale {y.scale:g} (a rescale of "
                              "2^15 or more)", graph)
    params = {"size": elements(x), "input_zero_point": x.zero_point,
              "output_zero_point": y.zero_point, "positive": (m, s), "negative": (-m, s),
              "act_min": -32768, "act_max": 32767}
    return Layer(op.index, op.op, "tb_relu_s16_params", params, [op.inputs[0]], [op.outputs[0]],
                 [], 0, f"{elements(x)} values", dtype="int16")


def lower_neg_s16(graph, op) -> Layer:
    # reference_ops::Negate<int16_t>, as for int8: quantization ignored, -(-32768) wraps.
    x, _ = same_type_tensors(graph, op, "int16")
    return Layer(op.index, op.op, "tb_neg_s16_params", {"size": elements(x)}, [op.inputs[0]],
                 [op.outputs[0]], [], 0, f"{elements(x)} values", dtype="int16")


def refuse_rsqrt_s16(graph, op) -> Layer:
    # TF 2.21 runs it through an interpolated 513-entry table (as int16 SOFTMAX's);
    # probed: every entry but the one at input 0 (1/sqrt(0)) follows LUTPopulate.
    raise unsupported(op, "int16 RSQRT (16x8) is not compiled yet (TFLite runs it; quantize this op "
                          "to int8 or keep it float32)", graph)


INT16_LOWER = {"ABS": lower_abs_s16, "NEG": lower_neg_s16, "RSQRT": refuse_rsqrt_s16}


def float_or(int8_lower):
    """ABS/NEG: float32 inputs by tb_unary_f32 (sign bit cleared or flipped), int16 by
    INT16_LOWER, int8 by table."""
    def lower(graph, op) -> Layer:
        x = graph.tensor(op.inputs[0])
        if x is not None and x.dtype == "int16" and op.op in INT16_LOWER:
            return INT16_LOWER[op.op](graph, op)
        if x is None or x.dtype != "float32" or op.op not in ("ABS", "NEG"):
            return int8_lower(graph, op)
        y = elementwise_tensor(graph, op, op.outputs[0], "output", ("float32",))
        if x.shape != y.shape:
            raise unsupported(op, f"output shape {y.shape} differs from input shape {x.shape}", graph)
        return Layer(op.index, op.op, "tb_unary_f32_params",
                     {"size": elements(x), "negate": int(op.op == "NEG")}, [op.inputs[0]],
                     [op.outputs[0]], [], 0, f"{elements(x)} values", dtype="float32")
    return lower


def _lut_op(name: str, lower, doc: str, typed=None) -> OpDef:
    return OpDef(name, float_or(lower), "tb_lut_s8", LUT_SOURCE, "tb_lut_params",
                 fold=fold_by_table(lower), in_place=elementwise_in_place, doc=doc, typed=typed or {})


OPS = [
    _lut_op("ABS", lower_abs, "int8, any input/output quantization, as a 256-entry table; int16 "
            "(16x8, rescaled); float32", {"float32": "tb_unary_f32", "int16": "tb_relu_s16"}),
    _lut_op("NEG", lower_neg, "int8 and int16: -x on the raw values as TFLite does (quantization "
            "ignored), int8 as a table; float32", {"float32": "tb_unary_f32", "int16": "tb_neg_s16"}),
    _lut_op("RSQRT", lower_rsqrt, "int8 (elementwise.cc fixed point), as a 256-entry table; inputs "
                                  "below the zero point give 127 (TFLite stops)"),
    OpDef("CAST", lower_cast, "tb_cast", KERNEL_DIR / "unary.c", "tb_cast_params", fold=fold_cast,
          doc="between int8, uint8, int16, int32 and float32 (cast.cc's conversions)"),
]
