/* ADD int8, matches TFLite's add.cc general 8-bit path (reference AddElementwise,
 * BroadcastAdd6DSlow): both inputs are shifted left by left_shift (20) for
 * headroom, rescaled to a common scale with multipliers < 1, summed, then
 * rescaled to the output. Every multiplier has shift <= 0 here, so
 * tb_mul_by_quant_mul equals MultiplyByQuantizedMultiplierSmallerThanOneExp.
 * SUB runs the same row with input 2's multiplier negated, as sub.cc does.
 * Also the broadcast walk (tb_binary_s8) every elementwise op uses. */
#include "tb_kernels.h"

static void add_row(const void *params, const int8_t *x, int32_t x_step, const int8_t *y,
                    int32_t y_step, int8_t *output, int32_t n) {
  const tb_add_params *p = (const tb_add_params *)params;
  int32_t i;
  for (i = 0; i < n; ++i, x += x_step, y += y_step) {
    const int32_t v1 = p->input1_offset + *x;
    const int32_t v2 = p->input2_offset + *y;
    const int32_t s1 = tb_mul_by_quant_mul(v1 * ((int32_t)1 << p->left_shift),
                                           p->input1.multiplier, p->input1.shift);
    const int32_t s2 = tb_mul_by_quant_mul(v2 * ((int32_t)1 << p->left_shift),
                                           p->input2.multiplier, p->input2.shift);
    int32_t out = tb_mul_by_quant_mul(s1 + s2, p->output.multiplier, p->output.shift) +
                  p->output_offset;
    if (out < p->act_min) out = p->act_min;
    if (out > p->act_max) out = p->act_max;
    output[i] = (int8_t)out;
  }
}

void tb_add_s8(const tb_add_params *p, const int8_t *input1,
               const int8_t *input2, int8_t *output) {
  tb_binary_s8(&p->shape, p->size, p, add_row, input1, input2, output);
}

void tb_binary_s8(const tb_bcast *s, int32_t size, const void *p, tb_row_fn row,
                  const int8_t *a, const int8_t *b, int8_t *output) {
  const int32_t n = s->dims[TB_BCAST_RANK - 1];
  const int32_t a_step = s->stride1[TB_BCAST_RANK - 1], b_step = s->stride2[TB_BCAST_RANK - 1];
  int32_t index[TB_BCAST_RANK - 1] = {0};
  int32_t rows = 1, r, d;
  if (!s->broadcast) { /* same shapes: one run (ADD's target kernels take these layers) */
    if (s->swap) row(p, b, 1, a, 1, output, size);
    else row(p, a, 1, b, 1, output, size);
    return;
  }
  for (d = 0; d < TB_BCAST_RANK - 1; ++d) rows *= s->dims[d];
  for (r = 0; r < rows; ++r, output += n) {
    int32_t at_a = 0, at_b = 0;
    for (d = 0; d < TB_BCAST_RANK - 1; ++d) {
      at_a += index[d] * s->stride1[d];
      at_b += index[d] * s->stride2[d];
    }
    if (s->swap) row(p, b + at_b, b_step, a + at_a, a_step, output, n);
    else row(p, a + at_a, a_step, b + at_b, b_step, output, n);
    for (d = TB_BCAST_RANK - 2; d >= 0 && ++index[d] == s->dims[d]; --d) index[d] = 0;
  }
}

/* -- other element types ------------------------------------------------------------------ */

void tb_binary_any(const tb_bcast *s, int32_t size, int32_t elem_size, const void *p,
                   tb_row_any_fn row, const void *a, const void *b, void *output) {
  const char *pa = (const char *)a, *pb = (const char *)b;
  char *out = (char *)output;
  const int32_t n = s->dims[TB_BCAST_RANK - 1];
  const int32_t a_step = s->stride1[TB_BCAST_RANK - 1], b_step = s->stride2[TB_BCAST_RANK - 1];
  int32_t index[TB_BCAST_RANK - 1] = {0};
  int32_t rows = 1, r, d;
  if (!s->broadcast) {
    if (s->swap) row(p, pb, 1, pa, 1, out, size);
    else row(p, pa, 1, pb, 1, out, size);
    return;
  }
  for (d = 0; d < TB_BCAST_RANK - 1; ++d) rows *= s->dims[d];
  for (r = 0; r < rows; ++r, out += n * elem_size) {
    int32_t at_a = 0, at_b = 0;
    for (d = 0; d < TB_BCAST_RANK - 1; ++d) {
      at_a += index[d] * s->stride1[d];
      at_b += index[d] * s->stride2[d];
    }
    if (s->swap) row(p, pb + at_b * elem_size, b_step, pa + at_a * elem_size, a_step, out, n);
    else row(p, pa + at_a * elem_size, a_step, pb + at_b * elem_size, b_step, out, n);
    for (d = TB_BCAST_RANK - 2; d >= 0 && ++index[d] == s->dims[d]; --d) index[d] = 0;
  }
}

/* ActivationFunctionWithMinMax: std::min(std::max(x, lo), hi). */
float tb_clamp_f32(float x, float lo, float hi) {
  const float low = x < lo ? lo : x;
  return hi < low ? hi : low;
}

static void add_f32_row(const void *params, const void *x, int32_t x_step, const void *y,
                        int32_t y_step, void *out, int32_t n) {
  const tb_binary_f32_params *p = (const tb_binary_f32_params *)params;
  const float *a = (const float *)x, *b = (const float *)y;
  float *o = (float *)out;
  int32_t i;
  for (i = 0; i < n; ++i, a += x_step, b += y_step) o[i] = tb_clamp_f32(*a + *b, p->act_min, p->act_max);
}

void tb_add_f32(const tb_binary_f32_params *p, const float *input1, const float *input2,
                float *output) {
  tb_binary_any(&p->shape, p->size, 4, p, add_f32_row, input1, input2, output);
}

static int16_t clamp_s16(int32_t v, int32_t lo, int32_t hi) {
  return (int16_t)(v < lo ? lo : v > hi ? hi : v);
}

/* The general 16-bit path: AddElementwise's arithmetic on int16 values. */
static void add_s16_row(const void *params, const void *x, int32_t x_step, const void *y,
                        int32_t y_step, void *out, int32_t n) {
  const tb_add_s16_params *p = (const tb_add_s16_params *)params;
  const int16_t *a = (const int16_t *)x, *b = (const int16_t *)y;
  int16_t *o = (int16_t *)out;
  int32_t i;
  for (i = 0; i < n; ++i, a += x_step, b += y_step) {
    const int32_t s1 = tb_mul_by_quant_mul((p->input1_offset + *a) * ((int32_t)1 << p->left_shift),
                                           p->input1.multiplier, p->input1.shift);
    const int32_t s2 = tb_mul_by_quant_mul((p->input2_offset + *b) * ((int32_t)1 << p->left_shift),
                                           p->input2.multiplier, p->input2.shift);
    o[i] = clamp_s16(tb_mul_by_quant_mul(s1 + s2, p->output.multiplier, p->output.shift) +
                         p->output_offset, p->act_min, p->act_max);
  }
}

/* The power-of-two path (same shapes only): gemmlowp SaturatingAdd/Sub of Q0.15 values. */
static void add_pot_s16_row(const void *params, const void *x, int32_t x_step, const void *y,
                            int32_t y_step, void *out, int32_t n) {
  const tb_add_s16_params *p = (const tb_add_s16_params *)params;
  const int16_t *a = (const int16_t *)x, *b = (const int16_t *)y;
  int16_t *o = (int16_t *)out;
  int32_t i;
  for (i = 0; i < n; ++i, a += x_step, b += y_step) {
    const int32_t v = tb_rounding_divide_by_pot(*a, p->pot_shift1) +
                      p->pot_sign * tb_rounding_divide_by_pot(*b, p->pot_shift2);
    o[i] = clamp_s16(clamp_s16(v, -32768, 32767), p->act_min, p->act_max);
  }
}

void tb_add_s16(const tb_add_s16_params *p, const int16_t *input1, const int16_t *input2,
                int16_t *output) {
  tb_binary_any(&p->shape, p->size, 2, p, p->pot ? add_pot_s16_row : add_s16_row, input1, input2,
                output);
}
