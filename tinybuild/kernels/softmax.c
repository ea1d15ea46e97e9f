/* SOFTMAX int8 -> int8, bit-exact with TFLite's BUILTIN_REF kernel.
 * In TF 2.21, Register_SOFTMAX_REF uses SoftmaxPrepare/Eval<kReference>,
 * which for int8 takes the integer gemmlowp path reference_ops::Softmax
 * (not the float lookup table of the optimized kernel):
 *  - diff = x - row_max, skipped (exp = 0) when diff < diff_min;
 *  - diff is rescaled by input_multiplier/input_left_shift to Q5.26;
 *  - exp() in Q0.31 via gemmlowp's exp_on_negative_values;
 *  - the sum in Q12.19, 1/sum via one_over_one_plus_x_for_x_in_0_1;
 *  - output = round(exp * recip >> exponent) - 128, saturated.
 * Pure integer arithmetic, so host and Cortex-M give identical bytes.
 * The exp is recomputed in the second pass rather than cached, so no scratch
 * buffer is needed. Fixed-point formats are noted as Qm (integer bits). */
#include "tb_kernels.h"

#define TB_SRDHM tb_sat_rounding_doubling_high_mul
#define TB_RDBPOT tb_rounding_divide_by_pot

/* gemmlowp SaturatingRoundingMultiplyByPOT<+n> (saturating left shift). */
static int32_t tb_sat_shl(int32_t x, int n) {
  const int32_t threshold = (int32_t)(((uint32_t)1 << (31 - n)) - 1u);
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return (int32_t)((uint32_t)x << n);
}

/* gemmlowp RoundingHalfSum for int32. */
static int32_t tb_rounding_half_sum(int32_t a, int32_t b) {
  const int64_t sum = (int64_t)a + (int64_t)b;
  const int64_t sign = sum >= 0 ? 1 : -1;
  return (int32_t)((sum + sign) / 2);
}

/* exp(a) for a in [-1/4, 0), Q0 in and out (Taylor series around -1/8). */
static int32_t tb_exp_quarter(int32_t a) {
  const int32_t constant_term = 1895147668;    /* exp(-1/8) */
  const int32_t constant_1_over_3 = 715827883; /* 1/3 */
  const int32_t x = a + (1 << 28);             /* a + 1/8 */
  const int32_t x2 = TB_SRDHM(x, x);
  const int32_t x3 = TB_SRDHM(x2, x);
  const int32_t x4 = TB_SRDHM(x2, x2);
  const int32_t x4_over_4 = TB_RDBPOT(x4, 2);
  const int32_t poly =
      TB_RDBPOT(TB_SRDHM(x4_over_4 + x3, constant_1_over_3) + x2, 1);
  return constant_term + TB_SRDHM(constant_term, x + poly);
}

/* exp(a) for a <= 0: a in Q5 (26 fractional bits), result in Q0. */
static int32_t tb_exp_on_negative_values_q5(int32_t a) {
  static const int32_t kMultipliers[7] = {
      1672461947, /* exp(-1/4) */
      1302514674, /* exp(-1/2) */
      790015084,  /* exp(-1) */
      290630308,  /* exp(-2) */
      39332535,   /* exp(-4) */
      720401,     /* exp(-8) */
      242         /* exp(-16) */
  };
  const int32_t one_quarter = 1 << 24;
  const int32_t mask = one_quarter - 1;
  const int32_t a_mod_quarter_minus_quarter = (a & mask) - one_quarter;
  /* Rescale Q5 -> Q0 is a saturating shift left by 5. */
  int32_t result = tb_exp_quarter(tb_sat_shl(a_mod_quarter_minus_quarter, 5));
  const int32_t remainder = a_mod_quarter_minus_quarter - a;
  int k;
  /* Barrel shifter over bits 2^-2 .. 2^4 of -a. */
  for (k = 0; k < 7; ++k) {
    if (remainder & ((int32_t)1 << (24 + k))) {
      result = TB_SRDHM(result, kMultipliers[k]);
    }
  }
  if (a == 0) result = INT32_MAX; /* exp(0) = One in Q0 */
  return result;
}

/* 1 / (1 + a) for a in [0, 1), Q0 in and out (Newton-Raphson, 3 steps). */
static int32_t tb_one_over_one_plus_x(int32_t a) {
  const int32_t half_denominator = tb_rounding_half_sum(a, INT32_MAX);
  const int32_t c48_over_17 = 1515870810;      /* Q2 */
  const int32_t cneg32_over_17 = -1010580540;  /* Q2 */
  const int32_t one_q2 = 1 << 29; /* 1.0 in Q2 (29 fractional bits) */
  int32_t x = c48_over_17 + TB_SRDHM(half_denominator, cneg32_over_17);
  int i;
  for (i = 0; i < 3; ++i) {
    const int32_t hd_times_x = TB_SRDHM(half_denominator, x);   /* Q2 */
    const int32_t one_minus = one_q2 - hd_times_x;              /* Q2 */
    x = x + tb_sat_shl(TB_SRDHM(x, one_minus), 2);              /* Q4 -> Q2 */
  }
  /* x / 2 reinterpreted as Q1, rescaled to Q0. */
  return tb_sat_shl(x, 1);
}

static int32_t tb_clz32(uint32_t x) {
  int32_t n = 0;
  if (x == 0) return 32;
  while (!(x & 0x80000000u)) {
    x <<= 1;
    ++n;
  }
  return n;
}

/* exp(diff) in Q0 for a diff already known to be >= diff_min. */
static int32_t tb_softmax_exp(const tb_softmax_params *p, int32_t diff) {
  /* MultiplyByQuantizedMultiplierGreaterThanOne; wraps like TFLite. */
  const int32_t rescaled = TB_SRDHM(
      (int32_t)((uint32_t)diff << p->input_left_shift), p->input_multiplier);
  return tb_exp_on_negative_values_q5(rescaled);
}

void tb_softmax_s8(const tb_softmax_params *p, const int8_t *input, int8_t *output) {
  int32_t row, c;
  for (row = 0; row < p->outer; ++row) {
    const int8_t *in = input + row * p->depth;
    int8_t *out = output + row * p->depth;
    int32_t max_in_row = -128;
    int32_t sum_of_exps = 0; /* Q12 */
    int32_t headroom_plus_one, num_bits_over_unit, shifted_scale, exponent;
    for (c = 0; c < p->depth; ++c) {
      if (in[c] > max_in_row) max_in_row = in[c];
    }
    for (c = 0; c < p->depth; ++c) {
      const int32_t diff = (int32_t)in[c] - max_in_row;
      if (diff >= p->diff_min) {
        /* Rescale Q0 -> Q12 is a rounding shift right by 12. */
        sum_of_exps += TB_RDBPOT(tb_softmax_exp(p, diff), 12);
      }
    }
    /* GetReciprocal(sum_of_exps, 12): normalize to [1, 2), invert. */
    headroom_plus_one = tb_clz32((uint32_t)sum_of_exps);
    num_bits_over_unit = 12 - headroom_plus_one;
    shifted_scale = tb_one_over_one_plus_x((int32_t)(
        ((uint32_t)sum_of_exps << headroom_plus_one) - ((uint32_t)1 << 31)));
    exponent = num_bits_over_unit + 31 - 8;
    for (c = 0; c < p->depth; ++c) {
      const int32_t diff = (int32_t)in[c] - max_in_row;
      int32_t v = -128;
      if (diff >= p->diff_min) {
        v = TB_RDBPOT(TB_SRDHM(shifted_scale, tb_softmax_exp(p, diff)), exponent) - 128;
        if (v < -128) v = -128;
        if (v > 127) v = 127;
      }
      out[c] = (int8_t)v;
    }
  }
}

/* -- float32 -------------------------------------------------------------------------------- */

#include <math.h>

void tb_softmax_f32(const tb_softmax_f32_params *p, const float *input, float *output) {
  int32_t i, c;
  for (i = 0; i < p->outer; ++i, input += p->depth, output += p->depth) {
    float max = -3.40282347e+38f, sum = 0.0f; /* numeric_limits<float>::lowest() */
    for (c = 0; c < p->depth; ++c) max = max < input[c] ? input[c] : max; /* std::max */
    for (c = 0; c < p->depth; ++c) {
      const float e = expf((input[c] - max) * p->beta);
      output[c] = e;
      sum += e;
    }
    for (c = 0; c < p->depth; ++c) output[c] = output[c] / sum;
  }
}

/* -- int16 (16x8) --------------------------------------------------------------------------- */

int16_t tb_lut_lookup_s16(int16_t value, const int16_t *lut) {
  const int32_t index = 256 + (value >> 7);
  const int32_t offset = value & 0x7f;
  const int16_t slope = (int16_t)(lut[index + 1] - lut[index]);
  return (int16_t)(lut[index] + ((slope * offset + 64) >> 7));
}

static int16_t sat_s16(int32_t v) { return (int16_t)(v < -32768 ? -32768 : v > 32767 ? 32767 : v); }

static int32_t clz32_u(uint32_t x) {
  int32_t n = 0;
  if (x == 0) return 32;
  while (!(x & 0x80000000u)) {
    x <<= 1;
    ++n;
  }
  return n;
}

void tb_softmax_s16(const tb_softmax_s16_params *p, const int16_t *input, const int16_t *exp_lut,
                    const int16_t *one_over_one_plus_x_lut, int16_t *output) {
  int32_t i, c;
  for (i = 0; i < p->outer; ++i, input += p->depth, output += p->depth) {
    int16_t max = -32768;
    int32_t sum = 0, headroom_plus_one, shifted_sum, right_shift;
    int16_t reciprocal;
    for (c = 0; c < p->depth; ++c) max = max < input[c] ? input[c] : max;
    /* exp(x - max) in Q0.15, cached in the output (as the reference does) */
    for (c = 0; c < p->depth; ++c) {
      const int32_t scaled = tb_mul_by_quant_mul(input[c] - max, p->input_multiplier,
                                                 p->input_left_shift);
      output[c] = tb_lut_lookup_s16(sat_s16(scaled + 32767), exp_lut);
      sum += output[c];
    }
    headroom_plus_one = clz32_u((uint32_t)sum);
    shifted_sum = (int32_t)((((int64_t)sum << (headroom_plus_one - 1)) + (1 << 13)) >> 14);
    reciprocal = tb_lut_lookup_s16(sat_s16(shifted_sum - ((1 << 15) + (1 << 16))),
                                   one_over_one_plus_x_lut);
    right_shift = 31 - headroom_plus_one;
    for (c = 0; c < p->depth; ++c) {
      const int64_t round = (int64_t)1 << (right_shift - 1);
      const int32_t r = (int32_t)(((int64_t)output[c] * reciprocal + round) >> right_shift);
      output[c] = (int16_t)(r < 0 ? 0 : r > 32767 ? 32767 : r);
    }
  }
}
