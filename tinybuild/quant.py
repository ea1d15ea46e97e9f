"""Host-side quantization math for tinybuild's int8 kernels.

Every constant the C kernels in ``tinybuild/kernels`` need is computed here
exactly as TensorFlow Lite's Prepare steps compute it (TFLite builds without
TFLITE_SINGLE_ROUNDING and without TFLITE_EMULATE_FLOAT), so generated code is
bit-exact with ``tf.lite.Interpreter`` under ``OpResolverType.BUILTIN_REF``.

Precision rules copied from TFLite (they matter for the last bit):

* tensor scales are float32 in the flatbuffer; they are widened to double
  before the multiplier arithmetic unless noted otherwise;
* FULLY_CONNECTED (per-tensor) multiplies ``input_scale * filter_scale`` in
  float32 first (``GetQuantizedConvolutionMultipler``), while CONV_2D and
  DEPTHWISE_CONV_2D multiply in double (``PopulateConvolutionQuantizationParams``);
* TF 2.21's *reference* int8 FULLY_CONNECTED ignores the fixed-point
  multiplier and rescales in double: generate ``tb_fc_params.real_multiplier``
  with ``fc_real_multiplier`` (the fixed-point pair is still provided for
  the kernel's integer fallback, which matches optimized TFLite / TFLM);
* fused-activation bounds are quantized in float32 with round-half-away-from-zero
  (``CalculateActivationRangeQuantized``).

No TensorFlow import: this module runs inside the code generator.
"""

from __future__ import annotations

import math
import struct

__all__ = [
    "INT8_MIN",
    "INT8_MAX",
    "f32",
    "tflite_round",
    "quantize_multiplier",
    "quantize_multiplier_smaller_than_one_exp",
    "quantize_multiplier_greater_than_one",
    "conv_output_multipliers",
    "fc_output_multiplier",
    "fc_real_multiplier",
    "activation_range",
    "add_params",
    "softmax_params",
    "compute_padding",
    "conv_output_size",
    "mul_by_quant_mul",
    "fast_requant",
    "fast_requant_eval",
    "fc_double_fast",
]

INT8_MIN = -128
INT8_MAX = 127

_INT32_MAX = (1 << 31) - 1


def f32(x: float) -> float:
    """Round a Python float (double) to the nearest float32, returned as float."""
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


def tflite_round(x: float) -> float:
    """TfLiteRound / std::round: round half away from zero (not banker's)."""
    return float(_round_half_away(x))


def _round_half_away(x: float) -> int:
    # For |x| < 2^52 adding 0.5 is exact or rounds the same way std::round does
    # for the values that occur here (q * 2^31 has at most 53 significant bits
    # and |q * 2^31| <= 2^31, so x + 0.5 is exact).
    r = math.floor(abs(x) + 0.5)
    return int(r) if x >= 0 else -int(r)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: ``real ~= multiplier * 2^(shift - 31)``.

    Returns ``(multiplier, shift)`` with multiplier in Q31 ([2^30, 2^31) for
    non-zero input) and shift > 0 meaning a left shift. Mirrors TFLite: frexp,
    round-half-away to Q31, the ``q == 2^31`` overflow case (halve, shift + 1),
    and shifts below -31 flushed to ``(0, 0)``.
    """
    real = float(real)
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * (1 << 31))
    if q_fixed > (1 << 31):
        raise ValueError("QuantizeMultiplier overflow")
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if q_fixed > _INT32_MAX:
        raise ValueError("QuantizeMultiplier overflow")
    if shift < -31:
        shift = 0
        q_fixed = 0
    return int(q_fixed), int(shift)


def quantize_multiplier_smaller_than_one_exp(real: float) -> tuple[int, int]:
    """QuantizeMultiplierSmallerThanOneExp: requires 0 < real < 1, shift <= 0."""
    if not (0.0 < real < 1.0):
        raise ValueError(f"multiplier {real!r} must be in (0, 1)")
    m, s = quantize_multiplier(real)
    if s > 0:
        raise ValueError("shift must be <= 0")
    return m, s


def quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    """QuantizeMultiplierGreaterThanOne: requires real > 1, shift >= 0."""
    if not real > 1.0:
        raise ValueError(f"multiplier {real!r} must be > 1")
    m, s = quantize_multiplier(real)
    if s < 0:
        raise ValueError("shift must be >= 0")
    return m, s


def conv_output_multipliers(
    input_scale: float,
    filter_scales: list[float],
    output_scale: float,
    out_channels: int,
    *,
    op: str = "CONV_2D",
) -> list[tuple[int, int]]:
    """Per-output-channel ``(multiplier, shift)`` for CONV_2D / DEPTHWISE_CONV_2D /
    FULLY_CONNECTED.

    A single (per-tensor) filter scale is broadcast to ``out_channels`` entries.

    * ``op="CONV_2D"`` or ``"DEPTHWISE_CONV_2D"`` (and per-channel
      FULLY_CONNECTED's out_mul, which TF 2.21's reference does not use:
      see ``fc_real_multiplier``): PopulateConvolutionQuantizationParams,
      ``double(in) * double(filter) / double(out)``.
    * ``op="FULLY_CONNECTED"`` with one filter scale:
      GetQuantizedConvolutionMultipler,
      ``double(float(in * filter)) / double(out)`` (float32 product).
    """
    scales = [f32(s) for s in filter_scales]
    if len(scales) not in (1, out_channels):
        raise ValueError(
            f"{len(scales)} filter scales for {out_channels} output channels")
    ins, outs = f32(input_scale), f32(output_scale)
    if op == "FULLY_CONNECTED" and len(scales) == 1:
        return [fc_output_multiplier(ins, scales[0], outs)] * out_channels
    if op not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        raise ValueError(f"unknown op {op!r}")
    result = []
    for i in range(out_channels):
        fs = scales[i] if len(scales) > 1 else scales[0]
        result.append(quantize_multiplier(ins * fs / outs))
    return result


def fc_output_multiplier(input_scale: float, filter_scale: float,
                         output_scale: float) -> tuple[int, int]:
    """Per-tensor FULLY_CONNECTED multiplier (GetQuantizedConvolutionMultipler):
    the scale product is rounded to float32 before widening to double."""
    product = f32(f32(input_scale) * f32(filter_scale))
    return quantize_multiplier(product / f32(output_scale))


def fc_real_multiplier(input_scale: float, filter_scale: float,
                       output_scale: float) -> float:
    """``tb_fc_params.real_multiplier`` (per-tensor) or one entry of the
    ``real_mul`` const (per-channel: one per output row) of int8 FULLY_CONNECTED.

    TF 2.21's reference int8 FULLY_CONNECTED kernel rescales the accumulator
    in double for per-tensor and per-channel weights alike:
    ``round_half_away(double(acc) * in * w / out)`` with the float32 scales
    widened to double (established against the BUILTIN_REF interpreter on
    exact and near ties; the fixed-point out_mul path differs there).
    """
    return f32(input_scale) * f32(filter_scale) / f32(output_scale)


def _quantize_f32(scale: float, zero_point: int, value: float) -> int:
    """kernel_util.cc Quantize(): float32 division, round half away from zero."""
    tmp = _round_half_away(f32(f32(value) / f32(scale)))
    return int(zero_point) + tmp


def activation_range(activation: str, output_scale: float,
                     output_zero_point: int,
                     qmin: int = INT8_MIN, qmax: int = INT8_MAX) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for an int8 output.

    activation is one of "NONE", "RELU", "RELU6", "RELU_N1_TO_1".
    """
    act = activation.upper()
    if act == "NONE":
        return qmin, qmax
    if act == "RELU":
        return max(qmin, _quantize_f32(output_scale, output_zero_point, 0.0)), qmax
    if act == "RELU6":
        return (max(qmin, _quantize_f32(output_scale, output_zero_point, 0.0)),
                min(qmax, _quantize_f32(output_scale, output_zero_point, 6.0)))
    if act == "RELU_N1_TO_1":
        return (max(qmin, _quantize_f32(output_scale, output_zero_point, -1.0)),
                min(qmax, _quantize_f32(output_scale, output_zero_point, 1.0)))
    raise ValueError(f"unsupported fused activation {activation!r}")


def add_params(in1_scale: float, in1_zp: int, in2_scale: float, in2_zp: int,
               out_scale: float, out_zp: int, activation: str = "NONE") -> dict:
    """ADD int8 constants, as add.cc Prepare computes them (8-bit general path).

    Returns the ``tb_add_params`` fields except ``size``: input offsets are the
    negated zero points, ``left_shift`` is 20, and ``input1``/``input2``/``output``
    are ``(multiplier, shift)`` from QuantizeMultiplierSmallerThanOneExp.
    The ratios are computed in double from the float32 scales, as add.cc does
    (``twice_max_input_scale`` is a double there).
    """
    s1, s2, so = f32(in1_scale), f32(in2_scale), f32(out_scale)
    left_shift = 20
    twice_max_input_scale = 2.0 * max(s1, s2)  # exact: float32 doubled
    real1 = s1 / twice_max_input_scale
    real2 = s2 / twice_max_input_scale
    # (1 << 20) * float32 is an exact float32 product (power of two).
    real_out = twice_max_input_scale / ((1 << left_shift) * so)
    act_min, act_max = activation_range(activation, so, out_zp)
    return {
        "input1_offset": -int(in1_zp),
        "input2_offset": -int(in2_zp),
        "output_offset": int(out_zp),
        "left_shift": left_shift,
        "input1": quantize_multiplier_smaller_than_one_exp(real1),
        "input2": quantize_multiplier_smaller_than_one_exp(real2),
        "output": quantize_multiplier_smaller_than_one_exp(real_out),
        "act_min": act_min,
        "act_max": act_max,
    }


_SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5


def softmax_params(input_scale: float, input_zp: int, output_scale: float,
                   output_zp: int, beta: float = 1.0) -> dict:
    """SOFTMAX int8 -> int8 constants for TFLite's reference (BUILTIN_REF) path.

    TF 2.21's SoftmaxPrepare<kReference> runs PreprocessSoftmaxScaling(beta,
    input_scale, 5) and diff_min = -CalculateInputRadius(5, input_left_shift);
    the kernel is the integer gemmlowp reference_ops::Softmax, so no lookup
    table is produced (``exp_table`` is None). TFLite requires output zero
    point -128 and output scale 1/256 (within 0.1%).
    """
    if int(output_zp) != -128:
        raise ValueError("TFLite int8 softmax requires output zero point -128")
    if abs(f32(output_scale) - 1.0 / 256) > 0.001 / 256:
        raise ValueError("TFLite int8 softmax requires output scale 1/256")
    ib = _SOFTMAX_SCALED_DIFF_INTEGER_BITS
    beta_d, scale_d = float(f32(beta)), float(f32(input_scale))
    real = min(beta_d * scale_d * float(1 << (31 - ib)), float((1 << 31) - 1))
    multiplier, left_shift = quantize_multiplier_greater_than_one(real)
    # CalculateInputRadius(5, left_shift, 31) in double, floored.
    radius = math.floor(1.0 * ((1 << ib) - 1) * float(1 << (31 - ib))
                        / float(1 << left_shift))
    return {
        "input_multiplier": multiplier,
        "input_left_shift": left_shift,
        "diff_min": -int(radius),
        "output_offset": -128,
        "exp_table": None,
        "output_inv_scale": 0.0,
        "input_zero_point": int(input_zp),  # informational: cancels in x - max
    }


def conv_output_size(padding: str, in_size: int, filter_size: int, stride: int,
                     dilation: int = 1) -> int:
    """TFLite ComputeOutSize for padding "SAME" or "VALID"."""
    eff = (filter_size - 1) * dilation + 1
    if padding.upper() == "SAME":
        return (in_size + stride - 1) // stride
    if padding.upper() == "VALID":
        return (in_size + stride - eff) // stride
    raise ValueError(f"unknown padding {padding!r}")


def compute_padding(padding: str, in_size: int, filter_size: int, stride: int,
                    dilation: int = 1) -> tuple[int, int]:
    """TFLite ComputePaddingHeightWidth for one axis: (out_size, pad_before).

    pad_before = max(((out - 1) * stride + eff_filter - in) // 2, 0); TFLite
    puts any odd extra padding after, which the kernels never read.
    """
    out = conv_output_size(padding, in_size, filter_size, stride, dilation)
    eff = (filter_size - 1) * dilation + 1
    total = (out - 1) * stride + eff - in_size
    return out, max(total // 2, 0)


# -- requantization in fewer instructions, exactly --------------------------------
#
# The reference requantizes an int32 accumulator with TFLite's
# MultiplyByQuantizedMultiplier (two roundings, ``mul_by_quant_mul`` below).
# Optimized kernels use an equivalent that costs a handful of instructions;
# these helpers compute its constants at build time and decide when it holds.

_I32 = 1 << 31


def _srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul on Python ints."""
    if a == b == -_I32:
        return _I32 - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    v = ab + nudge
    q = abs(v) >> 31
    return q if v >= 0 else -q          # C division truncates toward zero


def _rdbp(x: int, e: int) -> int:
    """gemmlowp RoundingDivideByPOT (half away from zero), 0 <= e <= 31."""
    mask = (1 << e) - 1
    rem = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > threshold else 0)


def _wrap32(x: int) -> int:
    return (x + _I32) % (1 << 32) - _I32


def mul_by_quant_mul(x: int, multiplier: int, shift: int) -> int:
    """tb_mul_by_quant_mul (TFLite MultiplyByQuantizedMultiplier) on Python ints."""
    left, right = max(shift, 0), max(-shift, 0)
    return _rdbp(_srdhm(_wrap32(x << left), multiplier), right)


def fast_requant(out_mul, output_zero_point: int, acc_bounds,
                 zero_point_in_b: bool = True,
                 constant_acc=None) -> list[tuple[int, int, int]] | None:
    """Per-channel ``(M, B, e)`` such that, for every int32 ``acc`` with
    ``|acc| <= acc_bounds[c]``::

        SMMLAR(2*acc, M, B + (acc >> 31)) >> e
            == MultiplyByQuantizedMultiplier(acc, multiplier, shift) + zero_point

    where ``SMMLAR(a, m, r) = floor((r * 2^32 + a*m + 2^31) / 2^32)`` (the
    Cortex-M4 instruction; ``mulh``-based elsewhere) and ``>>`` is arithmetic.
    Returns None when some channel cannot use it (the kernel then keeps the
    reference arithmetic).

    Why it holds, for ``shift = -e`` with ``e >= 1`` and ``M >= 0``: with
    ``h = acc * M``, gemmlowp's SRDHM truncates ``(h + nudge) / 2^31`` toward
    zero, which for either sign equals ``y = floor((h + 2^30) / 2^31)``.
    RoundingDivideByPOT is ``floor((y + 2^(e-1) - [y < 0]) / 2^e)``, and nested
    floors with power-of-two divisors merge: the result is
    ``floor((h + 2^30 + 2^(30+e) - [y<0] * 2^31) / 2^(31+e))``. ``[y < 0]``
    is replaced by ``[acc < 0]``: they differ only when ``acc < 0`` and
    ``y == 0``, where the numerator lies in ``[2^(30+e) - 2^31, 2^(30+e))``
    and the quotient is 0 either way. Doubling numerator and denominator
    gives ``floor((2h + 2^31 + (2^(e-1) - [acc<0]) * 2^32) / 2^(32+e))``:
    the high word of SMMLAR with accumulator ``B + (acc >> 31)``, then ``>> e``.
    Adding ``zp * 2^e`` to ``B`` adds ``zp`` after the shift. Every
    intermediate must fit in int32: ``2*|acc| < 2^31`` and
    ``|acc| + |B| + 2 < 2^31``.

    Special cases: ``M == 0`` gives ``zp`` for every acc, encoded as
    ``(0, 2*zp + 1, 1)``; so does a channel whose ``|acc|`` bound is below
    ``2^(e-1)`` (``|y| <= |acc|`` rounds to 0). A left shift (``shift > 0``)
    with ``M != 0`` is not covered.

    ``zero_point_in_b=False`` leaves ``zp`` out of ``B`` (the kernel adds it
    after the shift, one more instruction): then ``B = 2^(e-1)`` fits for any
    ``e <= 31``, which large right shifts (tiny multipliers) need.

    ``constant_acc[c]``, when not None, is the only value channel ``c``'s
    accumulator takes (all its weights are 0: it is the bias); the channel
    then outputs the requantized constant, ``(0, 2*v + 1, 1)``.
    """
    zp = int(output_zero_point) if zero_point_in_b else 0
    constants = list(constant_acc) if constant_acc is not None else [None] * len(acc_bounds)
    result = []
    for (m, shift), bound, const in zip(out_mul, acc_bounds, constants):
        m, shift, bound = int(m), int(shift), int(bound)
        if const is not None:
            v = mul_by_quant_mul(int(const), m, shift) + zp
            if abs(2 * v + 1) >= _I32:
                return None
            result.append((0, 2 * v + 1, 1))
            continue
        if 2 * bound >= _I32:
            return None
        constant = (0, 2 * zp + 1, 1)
        if m == 0:
            result.append(constant)
            continue
        if shift >= 0:
            return None
        e = -shift
        b = (1 << (e - 1)) + zp * (1 << e)
        if abs(b) + bound + 2 < _I32:
            result.append((m, b, e))
        elif bound < (1 << (e - 1)):
            result.append(constant)
        else:
            return None
    return result


def fast_requant_eval(acc: int, m: int, b: int, e: int) -> int:
    """The fast form on Python ints (what tb_rq computes), for tests."""
    s = -1 if acc < 0 else 0
    hi = ((b + s) * (1 << 32) + 2 * acc * m + (1 << 31)) >> 32
    return _wrap32(hi) >> e


def fc_double_fast(real_multiplier: float) -> tuple[int, int] | None:
    """Constants ``(R, t)`` for a fast, exact form of FULLY_CONNECTED's double
    rescale ``round_half_away(double(acc) * real_multiplier)``.

    With ``S = 32 + t`` and ``R = round(real_multiplier * 2^S) < 2^31``, let
    ``a = |acc|`` and ``Q = a*R + 2^(S-1)``. ``|a*R - v*2^S| <= a/2`` for the
    exact ``v = a * real_multiplier``, and the double product differs from
    ``v`` by at most ``v * 2^-53 < a * 2^-22 / 2^S``... in units of ``2^-S``
    at most ``a * 2^-22``. So ``|Q - (v_double + 1/2) * 2^S| < a`` and, when
    ``a <= Q mod 2^S < 2^S - a``, ``floor(Q / 2^S)`` is the reference's
    rounded value (negated for ``acc < 0``: both roundings are symmetric).
    Otherwise the kernel evaluates the double expression itself. Returns
    None when ``real_multiplier`` is not in ``(0, 0.5)``.
    """
    from fractions import Fraction
    rm = float(real_multiplier)
    if not 0.0 < rm < 0.5:
        return None
    exact = Fraction(rm)
    t = 0
    while round(exact * (1 << (32 + t + 1))) < _I32 and t < 30:
        t += 1
    r = round(exact * (1 << (32 + t)))
    if not 0 < r < _I32:
        return None
    return int(r), int(t)
