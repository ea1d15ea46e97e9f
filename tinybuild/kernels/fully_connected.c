/* FULLY_CONNECTED int8 (p->rows rows of in_features inputs, per-tensor or per-channel weights, optional
 * weights_offset). TF 2.21's BUILTIN_REF int8 kernel rescales the int32
 * accumulator in double precision for per-tensor and per-channel weights
 * alike, verified against the interpreter on exact .5 ties (power-of-two
 * multipliers) and near-ties: the Q31 double-rounding path mismatches both.
 * We do the same: one IEEE double multiply per output (soft-float on
 * Cortex-M4, still correctly rounded, so bit-identical to x86-64 SSE2) and an
 * exact round-half-away-from-zero without libm. The multiplier is
 * p->real_multiplier when set (per-tensor), else real_mul[o] (per-channel);
 * with neither (real_mul NULL) the integer MultiplyByQuantizedMultiplier path
 * runs (TFLite Micro / optimized TFLite behaviour, for kernel tests). */
#include "tb_kernels.h"

/* std::round for |v| < 2^30, saturating beyond (outputs are int8 anyway);
 * declared in tb_common.h for QUANTIZE and the targets' FC kernels' tie fallback. */
int32_t tb_round_half_away(double v) {
  int32_t t;
  double frac;
  if (v >= 1073741824.0) return 1073741824;
  if (v <= -1073741824.0) return -1073741824;
  t = (int32_t)v;          /* truncates toward zero, exact */
  frac = v - (double)t;    /* exact: both operands share the exponent range */
  if (frac >= 0.5) {
    t += 1;
  } else if (frac <= -0.5) {
    t -= 1;
  }
  return t;
}

/* One row: out_features outputs from in_features inputs. */
static void fc_row(const tb_fc_params *p, const int8_t *input, const int8_t *weights,
                   const int32_t *bias, const tb_quant_mul *out_mul,
                   const double *real_mul, int8_t *output) {
  int32_t o, i;
  for (o = 0; o < p->out_features; ++o) {
    const int8_t *w = weights + o * p->in_features;
    int32_t acc = 0;
    for (i = 0; i < p->in_features; ++i) {
      acc += ((int32_t)w[i] + p->weights_offset) *
             ((int32_t)input[i] + p->input_offset);
    }
    if (bias) acc += bias[o];
    double rm = p->real_multiplier != 0.0 ? p->real_multiplier
                : (real_mul ? real_mul[o] : 0.0);
    if (rm != 0.0) {
      acc = tb_round_half_away((double)acc * rm);
    } else {
      acc = tb_mul_by_quant_mul(acc, out_mul[o].multiplier, out_mul[o].shift);
    }
    acc += p->output_offset;
    if (acc < p->act_min) acc = p->act_min;
    if (acc > p->act_max) acc = p->act_max;
    output[o] = (int8_t)acc;
  }
}

void tb_fully_connected_s8(const tb_fc_params *p, const int8_t *input,
                           const int8_t *weights, const int32_t *bias,
                           const tb_quant_mul *out_mul, const double *real_mul,
                           int8_t *output) {
  const int32_t rows = p->rows > 0 ? p->rows : 1;
  int32_t r;
  for (r = 0; r < rows; ++r) {
    fc_row(p, input + r * p->in_features, weights, bias, out_mul, real_mul,
           output + r * p->out_features);
  }
}

/* 16x8 FULLY_CONNECTED as TF 2.21's BUILTIN_REF runs it for int16 input and
 * int64 bias: zero points are 0; the int64 sum is rescaled in double and
 * rounded half away from zero, like the int8 kernel above (its int64
 * fixed-point MultiplyByQuantizedMultiplier differs by one near ties). */
void tb_fully_connected_s16(const tb_fc_params *p, const int16_t *input,
                            const int8_t *weights, const int64_t *bias,
                            const double *real_mul, int16_t *output) {
  int32_t r, o, i, out;
  for (r = 0; r < p->rows; ++r, input += p->in_features) {
    for (o = 0; o < p->out_features; ++o) {
      const int8_t *w = weights + o * p->in_features;
      int64_t acc = 0;
      for (i = 0; i < p->in_features; ++i) acc += (int32_t)w[i] * (int32_t)input[i];
      if (bias) acc += bias[o];
      out = tb_round_half_away((double)acc * real_mul[o]);
      if (out < p->act_min) out = p->act_min;
      if (out > p->act_max) out = p->act_max;
      *output++ = (int16_t)out;
    }
  }
}

/* float FULLY_CONNECTED, reference_ops::FullyConnected: the sum in input
 * order, + bias, then std::min(std::max(v, act_min), act_max). */
void tb_fully_connected_f32(const tb_fc_f32_params *p, const float *input,
                            const float *weights, const float *bias, float *output) {
  int32_t r, o, i;
  for (r = 0; r < p->rows; ++r, input += p->in_features) {
    for (o = 0; o < p->out_features; ++o) {
      const float *w = weights + o * p->in_features;
      float total = 0.0f, v;
      for (i = 0; i < p->in_features; ++i) total += input[i] * w[i];
      v = total + bias[o];
      v = v < p->act_min ? p->act_min : v;
      *output++ = p->act_max < v ? p->act_max : v;
    }
  }
}
