/* Elementwise binary int8 ops, bit-exact with TF 2.21's BUILTIN_REF kernels:
 * SUB (sub.cc: the add kernel with input 2's multiplier negated), MUL
 * (integer_ops MulElementwise), SQUARED_DIFFERENCE (squared_difference.cc),
 * MAXIMUM/MINIMUM (raw values), DIV (reference DivElementwise: gemmlowp
 * reciprocal), PRELU (reference BroadcastPrelu4DSlow). Each op is one row
 * function; tb_binary_s8 (add.c) walks the broadcast. */
#include "tb_kernels.h"

static int8_t clamp_s8(int32_t v, int32_t lo, int32_t hi) {
  return (int8_t)(v < lo ? lo : v > hi ? hi : v);
}

void tb_sub_s8(const tb_add_params *p, const int8_t *a, const int8_t *b, int8_t *output) {
  tb_add_s8(p, a, b, output);
}

static void mul_row(const void *params, const int8_t *x, int32_t x_step, const int8_t *y,
                    int32_t y_step, int8_t *out, int32_t n) {
  const tb_mul_params *p = (const tb_mul_params *)params;
  int32_t i;
  for (i = 0; i < n; ++i, x += x_step, y += y_step) {
    const int32_t product = (p->input1_offset + *x) * (p->input2_offset + *y);
    out[i] = clamp_s8(p->output_offset + tb_mul_by_quant_mul(product, p->output.multiplier,
                                                             p->output.shift),
                      p->act_min, p->act_max);
  }
}

void tb_mul_s8(const tb_mul_params *p, const int8_t *a, const int8_t *b, int8_t *output) {
  tb_binary_s8(&p->shape, p->size, p, mul_row, a, b, output);
}

static void squared_difference_row(const void *params, const int8_t *x, int32_t x_step,
                                   const int8_t *y, int32_t y_step, int8_t *out, int32_t n) {
  const tb_add_params *p = (const tb_add_params *)params;
  int32_t i;
  for (i = 0; i < n; ++i, x += x_step, y += y_step) {
    const int32_t s1 = tb_mul_by_quant_mul((p->input1_offset + *x) * ((int32_t)1 << p->left_shift),
                                           p->input1.multiplier, p->input1.shift);
    const int32_t s2 = tb_mul_by_quant_mul((p->input2_offset + *y) * ((int32_t)1 << p->left_shift),
                                           p->input2.multiplier, p->input2.shift);
    const int32_t diff = s1 - s2; /* |diff| <= 255 << 7: its square fits */
    out[i] = clamp_s8(tb_mul_by_quant_mul(diff * diff, p->output.multiplier, p->output.shift) +
                          p->output_offset,
                      p->act_min, p->act_max);
  }
}

void tb_squared_difference_s8(const tb_add_params *p, const int8_t *a, const int8_t *b,
                              int8_t *output) {
  tb_binary_s8(&p->shape, p->size, p, squared_difference_row, a, b, output);
}

static void maximum_row(const void *p, const int8_t *x, int32_t x_step, const int8_t *y,
                        int32_t y_step, int8_t *out, int32_t n) {
  int32_t i;
  (void)p;
  for (i = 0; i < n; ++i, x += x_step, y += y_step) out[i] = *x > *y ? *x : *y;
}

static void minimum_row(const void *p, const int8_t *x, int32_t x_step, const int8_t *y,
                        int32_t y_step, int8_t *out, int32_t n) {
  int32_t i;
  (void)p;
  for (i = 0; i < n; ++i, x += x_step, y += y_step) out[i] = *x < *y ? *x : *y;
}

void tb_maximum_s8(const tb_minmax_params *p, const int8_t *a, const int8_t *b, int8_t *output) {
  tb_binary_s8(&p->shape, p->size, p, maximum_row, a, b, output);
}

void tb_minimum_s8(const tb_minmax_params *p, const int8_t *a, const int8_t *b, int8_t *output) {
  tb_binary_s8(&p->shape, p->size, p, minimum_row, a, b, output);
}

/* -- DIV: gemmlowp fixed point, as TFLite's GetReciprocal uses it ------------------------ */

static int32_t clz32(uint32_t x) {
  int32_t n = 0;
  if (x == 0) return 32;
  while (!(x & 0x80000000u)) {
    x <<= 1;
    ++n;
  }
  return n;
}

/* CountLeadingSignBits: 31 for 0. */
static int32_t clrsb32(int32_t x) { return clz32((uint32_t)(x >= 0 ? x : ~x)) - 1; }

static int32_t add_wrap(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }

/* gemmlowp RoundingHalfSum for int32. */
static int32_t rounding_half_sum(int32_t a, int32_t b) {
  const int64_t sum = (int64_t)a + b;
  return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

/* gemmlowp SaturatingRoundingMultiplyByPOT<e>, e > 0 (a saturating left shift). */
static int32_t saturating_shift_left(int32_t x, int32_t e) {
  const int32_t threshold = ((int32_t)1 << (31 - e)) - 1;
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return (int32_t)((uint32_t)x << e);
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1: Newton-Raphson in Q2.29 (F2),
 * constants 48/17 and -32/17; input and result in Q0.31. */
static int32_t one_over_one_plus_x(int32_t a) {
  const int32_t half_denominator = rounding_half_sum(a, INT32_MAX);
  int32_t x = add_wrap(1515870810, tb_sat_rounding_doubling_high_mul(half_denominator, -1010580540));
  int i;
  for (i = 0; i < 3; ++i) {
    const int32_t one_minus = (int32_t)((uint32_t)1 << 29) -
                              tb_sat_rounding_doubling_high_mul(half_denominator, x);
    x = add_wrap(x, saturating_shift_left(tb_sat_rounding_doubling_high_mul(x, one_minus), 2));
  }
  return saturating_shift_left(x, 1);
}

/* TFLite GetReciprocal(x, 31, &shift). x == 0 (division by zero) gives what
 * TFLite computes for it: shift -1 and the reciprocal of 0.5. */
static int32_t reciprocal(int32_t x, int32_t *num_bits_over_unit) {
  const int32_t headroom_plus_one = clz32((uint32_t)x);
  const uint32_t shifted = headroom_plus_one < 32 ? (uint32_t)x << headroom_plus_one : 0u;
  *num_bits_over_unit = 31 - headroom_plus_one;
  return one_over_one_plus_x((int32_t)(shifted - 0x80000000u));
}

/* gemmlowp RoundingDivideByPOT as TFLite's x86-64 build runs it. A small
 * dividend (large headroom) can ask for a shift past 31, which gemmlowp leaves
 * undefined; there the 64-bit mask keeps its low 32 bits (all ones) and the
 * 32-bit shift uses its count mod 32, so the result saturates instead of
 * rounding to 0. The lowering refuses left shifts (right < 0). */
static int32_t div_rounding_shift(int32_t x, int32_t right) {
  int32_t mask, threshold;
  if (right <= 31) return tb_rounding_divide_by_pot(x, right < 0 ? 0 : right);
  mask = (int32_t)(uint32_t)((((uint64_t)1) << (right & 63)) - 1);
  threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> (right & 31)) + ((x & mask) > threshold ? 1 : 0);
}

/* One DivElementwise quotient (v2 != 0 unless TFLite's own division by zero). */
static int32_t div_quotient(const tb_div_params *p, int32_t v1, int32_t v2) {
  int32_t recip_shift, inv, headroom, unscaled;
  if (v2 < 0) { /* the reciprocal needs a positive divisor */
    v1 = -v1;
    v2 = -v2;
  }
  inv = reciprocal(v2, &recip_shift);
  headroom = clrsb32(v1); /* 31 for 0 */
  unscaled = tb_sat_rounding_doubling_high_mul((int32_t)((uint32_t)v1 << headroom), inv);
  return div_rounding_shift(tb_sat_rounding_doubling_high_mul(unscaled, p->output.multiplier),
                            -(p->output.shift - recip_shift - headroom));
}

static void div_row(const void *params, const int8_t *x, int32_t x_step, const int8_t *y,
                    int32_t y_step, int8_t *out, int32_t n) {
  const tb_div_params *p = (const tb_div_params *)params;
  int32_t i;
  for (i = 0; i < n; ++i, x += x_step, y += y_step) {
    const int32_t q = div_quotient(p, p->input1_offset + *x, p->input2_offset + *y);
    out[i] = clamp_s8(p->output_offset + q, p->act_min, p->act_max);
  }
}

void tb_div_s8(const tb_div_params *p, const int8_t *a, const int8_t *b, int8_t *output) {
  tb_binary_s8(&p->shape, p->size, p, div_row, a, b, output);
}

/* DIV int16 (16x8): DivElementwise's int8 math, clamped to the int16 activation range. */
static void div_s16_row(const void *params, const void *x, int32_t x_step, const void *y,
                        int32_t y_step, void *out, int32_t n) {
  const tb_div_params *p = (const tb_div_params *)params;
  const int16_t *a = (const int16_t *)x, *b = (const int16_t *)y;
  int16_t *o = (int16_t *)out;
  int32_t i;
  for (i = 0; i < n; ++i, a += x_step, b += y_step) {
    const int32_t v = p->output_offset + div_quotient(p, p->input1_offset + *a, p->input2_offset + *b);
    o[i] = (int16_t)(v < p->act_min ? p->act_min : v > p->act_max ? p->act_max : v);
  }
}

void tb_div_s16(const tb_div_params *p, const int16_t *a, const int16_t *b, int16_t *output) {
  tb_binary_any(&p->shape, p->size, 2, p, div_s16_row, a, b, output);
}

static void prelu_row(const void *params, const int8_t *x, int32_t x_step, const int8_t *alpha,
                      int32_t alpha_step, int8_t *out, int32_t n) {
  const tb_prelu_params *p = (const tb_prelu_params *)params;
  int32_t i;
  for (i = 0; i < n; ++i, x += x_step, alpha += alpha_step) {
    const int32_t v = p->input_offset + *x;
    const int32_t scaled =
        v >= 0 ? tb_mul_by_quant_mul(v, p->identity.multiplier, p->identity.shift)
               : tb_mul_by_quant_mul(v * (p->alpha_offset + *alpha), p->alpha.multiplier,
                                     p->alpha.shift);
    out[i] = clamp_s8(p->output_offset + scaled, -128, 127);
  }
}

void tb_prelu_s8(const tb_prelu_params *p, const int8_t *a, const int8_t *b, int8_t *output) {
  tb_binary_s8(&p->shape, p->size, p, prelu_row, a, b, output);
}

/* -- float32 (reference_ops Add/SubWithActivation/Mul, MaximumMinimumBroadcastSlow) ------ */

#define TB_F32_ROW(name, expr)                                                                  \
  static void name(const void *params, const void *x, int32_t x_step, const void *y,           \
                   int32_t y_step, void *out, int32_t n) {                                     \
    const tb_binary_f32_params *p = (const tb_binary_f32_params *)params;                      \
    const float *a = (const float *)x, *b = (const float *)y;                                  \
    float *o = (float *)out;                                                                   \
    int32_t i;                                                                                 \
    (void)p;                                                                                   \
    for (i = 0; i < n; ++i, a += x_step, b += y_step) o[i] = (expr);                           \
  }

TB_F32_ROW(sub_f32_row, tb_clamp_f32(*a - *b, p->act_min, p->act_max))
TB_F32_ROW(mul_f32_row, tb_clamp_f32(*a * *b, p->act_min, p->act_max))
TB_F32_ROW(maximum_f32_row, *a > *b ? *a : *b)
TB_F32_ROW(div_f32_row, tb_clamp_f32(*a / *b, p->act_min, p->act_max))
TB_F32_ROW(squared_difference_f32_row, (*a - *b) * (*a - *b))
TB_F32_ROW(prelu_f32_row, *a >= 0.0f ? *a : *a * *b)
TB_F32_ROW(minimum_f32_row, *a < *b ? *a : *b)

void tb_sub_f32(const tb_binary_f32_params *p, const float *a, const float *b, float *output) {
  tb_binary_any(&p->shape, p->size, 4, p, sub_f32_row, a, b, output);
}

void tb_mul_f32(const tb_binary_f32_params *p, const float *a, const float *b, float *output) {
  tb_binary_any(&p->shape, p->size, 4, p, mul_f32_row, a, b, output);
}

void tb_maximum_f32(const tb_binary_f32_params *p, const float *a, const float *b, float *output) {
  tb_binary_any(&p->shape, p->size, 4, p, maximum_f32_row, a, b, output);
}

void tb_minimum_f32(const tb_binary_f32_params *p, const float *a, const float *b, float *output) {
  tb_binary_any(&p->shape, p->size, 4, p, minimum_f32_row, a, b, output);
}

void tb_div_f32(const tb_binary_f32_params *p, const float *a, const float *b, float *output) {
  tb_binary_any(&p->shape, p->size, 4, p, div_f32_row, a, b, output);
}

void tb_squared_difference_f32(const tb_binary_f32_params *p, const float *a, const float *b,
                               float *output) {
  tb_binary_any(&p->shape, p->size, 4, p, squared_difference_f32_row, a, b, output);
}

void tb_prelu_f32(const tb_binary_f32_params *p, const float *a, const float *b, float *output) {
  tb_binary_any(&p->shape, p->size, 4, p, prelu_f32_row, a, b, output);
}

/* -- int16 (16x8) ------------------------------------------------------------------------- */

void tb_sub_s16(const tb_add_s16_params *p, const int16_t *a, const int16_t *b, int16_t *output) {
  tb_add_s16(p, a, b, output);
}

static void mul_s16_row(const void *params, const void *x, int32_t x_step, const void *y,
                        int32_t y_step, void *out, int32_t n) {
  const tb_mul_params *p = (const tb_mul_params *)params;
  const int16_t *a = (const int16_t *)x, *b = (const int16_t *)y;
  int16_t *o = (int16_t *)out;
  int32_t i;
  for (i = 0; i < n; ++i, a += x_step, b += y_step) {
    const int32_t product = (p->input1_offset + *a) * (p->input2_offset + *b);
    const int32_t v = p->output_offset + tb_mul_by_quant_mul(product, p->output.multiplier,
                                                             p->output.shift);
    o[i] = (int16_t)(v < p->act_min ? p->act_min : v > p->act_max ? p->act_max : v);
  }
}

void tb_mul_s16(const tb_mul_params *p, const int16_t *a, const int16_t *b, int16_t *output) {
  tb_binary_any(&p->shape, p->size, 2, p, mul_s16_row, a, b, output);
}

/* PRELU int16 (BroadcastPrelu4DSlow<int16_t>): the int8 math, clamped to int16. */
static void prelu_s16_row(const void *params, const void *x, int32_t x_step, const void *y,
                          int32_t y_step, void *out, int32_t n) {
  const tb_prelu_params *p = (const tb_prelu_params *)params;
  const int16_t *a = (const int16_t *)x, *alpha = (const int16_t *)y;
  int16_t *o = (int16_t *)out;
  int32_t i;
  for (i = 0; i < n; ++i, a += x_step, alpha += y_step) {
    const int32_t v = p->input_offset + *a;
    const int32_t scaled =
        v >= 0 ? tb_mul_by_quant_mul(v, p->identity.multiplier, p->identity.shift)
               : tb_mul_by_quant_mul(v * (p->alpha_offset + *alpha), p->alpha.multiplier,
                                     p->alpha.shift);
    const int32_t r = p->output_offset + scaled;
    o[i] = (int16_t)(r < -32768 ? -32768 : r > 32767 ? 32767 : r);
  }
}

void tb_prelu_s16(const tb_prelu_params *p, const int16_t *a, const int16_t *b, int16_t *output) {
  tb_binary_any(&p->shape, p->size, 2, p, prelu_s16_row, a, b, output);
}

static void maximum_s16_row(const void *p, const void *x, int32_t x_step, const void *y,
                            int32_t y_step, void *out, int32_t n) {
  const int16_t *a = (const int16_t *)x, *b = (const int16_t *)y;
  int16_t *o = (int16_t *)out;
  int32_t i;
  (void)p;
  for (i = 0; i < n; ++i, a += x_step, b += y_step) o[i] = *a > *b ? *a : *b;
}

static void minimum_s16_row(const void *p, const void *x, int32_t x_step, const void *y,
                            int32_t y_step, void *out, int32_t n) {
  const int16_t *a = (const int16_t *)x, *b = (const int16_t *)y;
  int16_t *o = (int16_t *)out;
  int32_t i;
  (void)p;
  for (i = 0; i < n; ++i, a += x_step, b += y_step) o[i] = *a < *b ? *a : *b;
}

void tb_maximum_s16(const tb_minmax_params *p, const int16_t *a, const int16_t *b,
                    int16_t *output) {
  tb_binary_any(&p->shape, p->size, 2, p, maximum_s16_row, a, b, output);
}

void tb_minimum_s16(const tb_minmax_params *p, const int16_t *a, const int16_t *b,
                    int16_t *output) {
  tb_binary_any(&p->shape, p->size, 2, p, minimum_s16_row, a, b, output);
}
