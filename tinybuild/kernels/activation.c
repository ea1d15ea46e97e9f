/* Every int8 -> int8 elementwise op is a function of one byte, so the host
 * evaluates TFLite's reference math (LOGISTIC/TANH/ELU: TFLite's own int8
 * lookup table; RELU*, LEAKY_RELU, HARD_SWISH, ABS, NEG, RSQRT: their integer
 * code) on all 256 values at build time (tinybuild/ops/activation.py) and the
 * device does one table load per element: bit-exact by construction. */
#include "tb_kernels.h"

void tb_lut_s8(const tb_lut_params *p, const int8_t *input, const int8_t *lut,
               int8_t *output) {
  int32_t i = 0;
  /* Four at a time (about half the instructions on Cortex-M4 and RV32). The
   * four inputs are read before any output is written, so an output placed
   * at or before its input (the planner's in-place rule) is still correct. */
  for (; i + 4 <= p->size; i += 4) {
    const int8_t a = lut[(uint8_t)input[i]], b = lut[(uint8_t)input[i + 1]];
    const int8_t c = lut[(uint8_t)input[i + 2]], d = lut[(uint8_t)input[i + 3]];
    output[i] = a;
    output[i + 1] = b;
    output[i + 2] = c;
    output[i + 3] = d;
  }
  for (; i < p->size; ++i) output[i] = lut[(uint8_t)input[i]];
}

/* -- float32: TFLite's float kernels (std::min(a, b) is b < a ? b : a, std::max(a, b) is
 * a < b ? b : a; the order matters for -0.0 and NaN) -------------------------------------- */

#include <math.h>

static float min_f32(float a, float b) { return b < a ? b : a; }
static float max_f32(float a, float b) { return a < b ? b : a; }

static float logistic_f32(float x) {
  if (x > 16.619047164916992188f) return 1.0f;
  if (x < -9.0f) return expf(x);
  return 1.0f / (1.0f + expf(-x));
}

static float activation_f32(int32_t kind, float alpha, float x) {
  switch (kind) {
  case TB_ACT_RELU: return x < 0.0f ? 0.0f : x;
  case TB_ACT_RELU6: return min_f32(max_f32(0.0f, x), 6.0f);
  case TB_ACT_RELU_N1_TO_1: return min_f32(max_f32(-1.0f, x), 1.0f);
  case TB_ACT_LEAKY_RELU: return x > 0.0f ? x : x * alpha;
  case TB_ACT_HARD_SWISH: return x * min_f32(6.0f, max_f32(0.0f, x + 3.0f)) / 6.0f;
  case TB_ACT_LOGISTIC: return logistic_f32(x);
  default: return tanhf(x);
  }
}

void tb_activation_f32(const tb_act_f32_params *p, const float *input, float *output) {
  int32_t i;
  for (i = 0; i < p->size; ++i) output[i] = activation_f32(p->kind, p->alpha, input[i]);
}

void tb_relu_s16(const tb_relu_s16_params *p, const int16_t *input, int16_t *output) {
  int32_t i;
  for (i = 0; i < p->size; ++i) {
    const int32_t v = input[i] - p->input_zero_point;
    const tb_quant_mul *m = v >= 0 ? &p->positive : &p->negative;
    int32_t out = p->output_zero_point + tb_mul_by_quant_mul(v, m->multiplier, m->shift);
    out = out < p->act_min ? p->act_min : out > p->act_max ? p->act_max : out;
    output[i] = (int16_t)out;
  }
}

/* x86-64's wrapping int32 arithmetic, which TFLite's kernels rely on here. */
static int32_t wrap_s32(uint32_t v) { return (int32_t)v; }

static int16_t logistic_s16(uint32_t magnitude, int32_t v, const uint16_t *table) {
  const uint32_t uh = magnitude >> 9;
  uint32_t result = 0x7FFFu << 10;
  if (uh < 255) result = ((uint32_t)table[uh] << 9) + (magnitude & 0x1ff) * ((uint32_t)table[uh + 1] - table[uh]);
  result = v >= 0 ? result + (1u << 9) : (1u << 25) - result + (1u << 9) - 1;
  return (int16_t)(uint16_t)(result >> 10);
}

static int16_t tanh_s16(uint32_t magnitude, int32_t v, const uint16_t *table) {
  const uint32_t uh = magnitude >> 8;
  int32_t result = wrap_s32(0xFFFFu << 8);
  if (uh < 255) {
    result = wrap_s32(((uint32_t)table[uh] << 8) +
                      (magnitude & 0xff) * ((uint32_t)table[uh + 1] - table[uh]));
  }
  result = v >= 0 ? result - (1 << 23) + (1 << 7) : -result + (1 << 23) + (1 << 7) - 1;
  return (int16_t)(result >> 8);
}

void tb_sigmoid_s16(const tb_sigmoid_s16_params *p, const int16_t *input, const uint16_t *table,
                    int16_t *output) {
  int32_t multiplier = p->input_multiplier, shift = p->input_left_shift, round, i;
  if (multiplier == 0) { /* power of two case */
    multiplier = 3 << shift;
    shift = 0;
  }
  round = shift > 0 ? 1 << (shift - 1) : 0;
  for (i = 0; i < p->size; ++i) {
    const int32_t v = wrap_s32((uint32_t)input[i] * (uint32_t)multiplier + (uint32_t)round) >> shift;
    const uint32_t magnitude = v >= 0 ? (uint32_t)v : 0u - (uint32_t)v;
    output[i] = p->tanh ? tanh_s16(magnitude, v, table) : logistic_s16(magnitude, v, table);
  }
}
