/* Recurrent layers, bit-exact with TensorFlow Lite 2.21 (see recurrent.h).
 *
 * The int8 LSTM follows lstm_eval.cc's LstmStepInteger8x8_16 step by step;
 * its sigmoid and tanh are gemmlowp's int16 fixed-point functions
 * (portable_tensor_utils ApplySigmoid / ApplyTanh), re-done here on int16_t
 * values with gemmlowp's wrap-around int16 arithmetic. */
#include <math.h>
#include <string.h>

#include "tb_kernels.h"

/* -- gemmlowp int16 fixed point (fixedpoint.h, IntegerType = int16_t) ------------------- */

/* Inlined into their callers so the integer-bit counts fold as in gemmlowp's templates. */
#if defined(__GNUC__)
#define TB_FIXED static inline __attribute__((always_inline))
#else
#define TB_FIXED static inline
#endif

static inline int16_t q16(int32_t v) { return (int16_t)v; } /* int16 results wrap, as in gemmlowp */

static inline int16_t srdhm16(int16_t a, int16_t b) {
  int32_t ab;
  if (a == b && a == INT16_MIN) return INT16_MAX;
  ab = (int32_t)a * (int32_t)b;
  return q16((ab + (ab >= 0 ? (1 << 14) : (1 - (1 << 14)))) / (1 << 15));
}

static inline int16_t rdbp16(int16_t x, int exponent) {
  const int16_t mask = q16((1 << exponent) - 1);
  const int16_t remainder = (int16_t)(x & mask);
  const int16_t threshold = q16((mask >> 1) + (x < 0 ? 1 : 0));
  return q16((x >> exponent) + (remainder > threshold ? 1 : 0));
}

/* SaturatingRoundingMultiplyByPOT<exponent> on int16. */
static inline int16_t srmbp16(int16_t x, int exponent) {
  int32_t threshold;
  if (exponent < 0) return rdbp16(x, -exponent);
  if (exponent == 0) return x;
  threshold = (1 << (15 - exponent)) - 1;
  if (x > threshold) return INT16_MAX;
  if (x < -threshold) return INT16_MIN;
  return q16(x * (1 << exponent));
}

/* RescaleConstantInitializer: gemmlowp's int32 constants rounded to int16 (a local
 * RoundingDivideByPOT(x, 16), so the compiler folds every constant). */
static inline int16_t k16(int32_t int32_constant) {
  const int32_t remainder = int32_constant & 0xFFFF;
  const int32_t threshold = 0x7FFF + (int32_constant < 0 ? 1 : 0);
  return (int16_t)((int32_constant >> 16) + (remainder > threshold ? 1 : 0));
}

static inline int16_t sat_add16(int16_t a, int16_t b) {
  int32_t s = (int32_t)a + b;
  return (int16_t)(s > INT16_MAX ? INT16_MAX : s < INT16_MIN ? INT16_MIN : s);
}

/* exp(x) for x in [-1/4, 0), Q0.15 in and out. */
TB_FIXED int16_t exp_quarter16(int16_t a) {
  const int16_t constant_term = k16(1895147668), one_third = k16(715827883);
  const int16_t x = q16(a + (1 << 12));
  const int16_t x2 = srdhm16(x, x), x3 = srdhm16(x2, x), x4 = srdhm16(x2, x2);
  int16_t t = q16(srmbp16(x4, -2) + x3);
  t = srmbp16(q16(srdhm16(t, one_third) + x2), -1);
  return sat_add16(constant_term, srdhm16(constant_term, q16(x + t)));
}

/* exp(a) for a <= 0 with `ib` integer bits; Q0.15 result. */
TB_FIXED int16_t exp_negative16(int16_t a, int ib) {
  static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308,
                                         39332535, 720401, 242};
  const int fb = 15 - ib;
  const int16_t quarter = q16(1 << (fb - 2));
  const int16_t a_mod = q16((a & q16(quarter - 1)) - quarter);
  const int16_t remainder = q16(a_mod - a);
  int16_t result = exp_quarter16(srmbp16(a_mod, ib));
  int e;
  for (e = -2; e <= 4; e++) {
    if (ib > e && (remainder & q16(1 << (fb + e))))
      result = srdhm16(result, k16(multipliers[e + 2]));
  }
  if (ib > 5 && a < k16(-(1 << (36 - ib)))) result = 0;
  return a == 0 ? INT16_MAX : result;
}

/* Newton-Raphson 1 / (1 + a) (want_tanh: (1 - a) / (1 + a)) for a in (0, 1), Q0.15. */
TB_FIXED int16_t nr_divide16(int16_t a, int want_tanh) {
  const int32_t half_sum = (int32_t)a + INT16_MAX;
  const int16_t half_den = q16((half_sum + (half_sum >= 0 ? 1 : -1)) / 2);
  int16_t x = q16(k16(1515870810) + srdhm16(half_den, k16(-1010580540)));
  int i;
  for (i = 0; i < 3; i++) {
    const int16_t one_minus = q16((1 << 13) - srdhm16(half_den, x));
    x = q16(x + srmbp16(srdhm16(x, one_minus), 2));
  }
  return want_tanh ? srmbp16(q16(x - (1 << 13)), 2) : srmbp16(x, 1);
}

/* gemmlowp::logistic of a Q(ib).(15-ib) value, Q0.15 result. */
TB_FIXED int16_t logistic16(int16_t a, int ib) {
  const int16_t abs_a = a > 0 ? a : q16(-a);
  const int16_t positive = nr_divide16(exp_negative16(q16(-abs_a), ib), 0);
  if (a == 0) return k16(1 << 30);
  return a > 0 ? positive : q16(INT16_MAX - positive);
}

/* gemmlowp::tanh of a Q(ib).(15-ib) value, Q0.15 result. */
TB_FIXED int16_t tanh16(int16_t a, int ib) {
  const int16_t neg_abs = a < 0 ? a : q16(-a);
  const int16_t t = nr_divide16(exp_negative16(neg_abs, ib + 1), 1);
  if (a == 0) return 0;
  return a < 0 ? q16(-t) : t;
}

/* -- int8 LSTM ---------------------------------------------------------------------------- */

static inline int16_t sat16(int32_t v) {
  return (int16_t)(v > INT16_MAX ? INT16_MAX : v < INT16_MIN ? INT16_MIN : v);
}

/* MatrixBatchVectorMultiplyAccumulate (int8 x int8 -> int16 accumulate). */
static void gate_accumulate(const int8_t *x, const int8_t *w, const int32_t *bias, tb_quant_mul m,
                            int32_t n_batch, int32_t n_in, int32_t n_cell, int16_t *gate) {
  int32_t b, row, col;
  for (b = 0; b < n_batch; b++) {
    for (row = 0; row < n_cell; row++) {
      const int8_t *w_row = w + row * n_in;
      const int8_t *x_row = x + b * n_in;
      int32_t acc = bias[row];
      for (col = 0; col < n_in; col++) acc += (int32_t)x_row[col] * w_row[col];
      acc = tb_mul_by_quant_mul(acc, m.multiplier, m.shift);
      gate[b * n_cell + row] = sat16(acc + gate[b * n_cell + row]);
    }
  }
}

/* One gate's pre-activation (CalculateLstmGateInteger8x8_16 before its activation):
 * the input product, then the recurrent product, each rescaled and saturated. */
static void lstm_gate_s8(const tb_lstm_s8_params *p, int g, const int8_t *x, const int8_t *h,
                         const int8_t *w_in, const int8_t *w_rec, const int32_t *bias,
                         const tb_quant_mul *gate_mul, int32_t n_batch, int16_t *gate) {
  const int32_t n_cell = p->n_cell;
  memset(gate, 0, (size_t)(n_batch * n_cell) * sizeof(int16_t));
  gate_accumulate(x, w_in + g * n_cell * p->n_input, bias + (2 * g) * n_cell, gate_mul[2 * g],
                  n_batch, p->n_input, n_cell, gate);
  gate_accumulate(h, w_rec + g * n_cell * n_cell, bias + (2 * g + 1) * n_cell,
                  gate_mul[2 * g + 1], n_batch, n_cell, n_cell, gate);
}

/* The gates' activations on Q3.12: sigmoid, except tanh for the cell gate. */
void tb_lstm_s8_activate(int16_t *gates, int32_t n) {
  int32_t i;
  for (i = 0; i < 2 * n; i++) gates[i] = logistic16(gates[i], 3);   /* input, forget */
  for (; i < 3 * n; i++) gates[i] = tanh16(gates[i], 3);           /* cell */
  for (; i < 4 * n; i++) gates[i] = logistic16(gates[i], 3);       /* output */
}

/* UpdateLstmCellInteger, then CalculateLstmOutputInteger8x8_16 (no projection). */
void tb_lstm_s8_update(const tb_lstm_s8_params *p, int32_t n, int16_t *cell, int16_t *gates,
                       int8_t *h) {
  int16_t *in_gate = gates, *forget = gates + n;
  const int16_t *cell_gate = gates + 2 * n, *out_gate = gates + 3 * n;
  const int tanh_bits = 15 + p->cell_log2;
  int32_t i;
  for (i = 0; i < n; i++) {
    int32_t c = tb_rounding_divide_by_pot((int32_t)forget[i] * cell[i], 15);
    int32_t ic = tb_rounding_divide_by_pot((int32_t)in_gate[i] * cell_gate[i], 30 + p->cell_log2);
    int16_t sum = sat16((int32_t)(int16_t)c + (int16_t)ic);
    if (p->cell_clip > 0) {
      if (sum > p->cell_clip) sum = (int16_t)p->cell_clip;
      if (sum < -p->cell_clip) sum = (int16_t)-p->cell_clip;
    }
    cell[i] = sum;
  }
  /* ApplyTanh(15 + cell_log2) writes nothing outside 0..6 integer bits (TFLite's
   * switch has no such case): its output buffer, the input gate's, is used as is. */
  if (tanh_bits >= 0 && tanh_bits <= 6)
    for (i = 0; i < n; i++) in_gate[i] = tanh16(cell[i], tanh_bits);
  for (i = 0; i < n; i++) {
    int32_t v = tb_mul_by_quant_mul((int32_t)out_gate[i] * in_gate[i], p->hidden_mul.multiplier,
                                    p->hidden_mul.shift);
    v += p->hidden_zp;
    h[i] = (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
  }
}

/* LstmStepInteger8x8_16 for n_batch rows: the four gates (the output gate reads
 * neither the cell state nor the other gates, so computing it before the cell
 * update changes nothing), the cell update, the new output state. */
static void lstm_step_s8(const tb_lstm_s8_params *p, const int8_t *x, const int8_t *w_in,
                         const int8_t *w_rec, const int32_t *bias, const tb_quant_mul *gate_mul,
                         int32_t n_batch, int16_t *cell, int8_t *h, int16_t *gates, int8_t *out) {
  const int32_t n = n_batch * p->n_cell;
  int g;
  for (g = 0; g < 4; g++)
    lstm_gate_s8(p, g, x, h, w_in, w_rec, bias, gate_mul, n_batch, gates + g * n);
  tb_lstm_s8_activate(gates, n);
  tb_lstm_s8_update(p, n, cell, gates, h);
  memcpy(out, h, (size_t)n);
}

/* Scratch layout: cell state int16 [n_batch][n_cell], gates int16 [4][n_batch][n_cell],
 * output state int8 [n_batch][n_cell]. */
void tb_lstm_s8(const tb_lstm_s8_params *p, const int8_t *input, const int8_t *w_in,
                const int8_t *w_rec, const int32_t *bias, const tb_quant_mul *gate_mul,
                int8_t *output, void *scratch) {
  const int32_t nb = p->n_batch, nc = p->n_cell, ni = p->n_input;
  int16_t *cell = (int16_t *)scratch;
  int16_t *gates = cell + nb * nc;
  int8_t *h = (int8_t *)(gates + 4 * nb * nc);
  int32_t t, b;
  memset(cell, 0, (size_t)(nb * nc) * sizeof(int16_t));
  memset(h, (int8_t)p->output_state_zp, (size_t)(nb * nc));
  if (p->time_major) {
    for (t = 0; t < p->n_time; t++)
      lstm_step_s8(p, input + t * nb * ni, w_in, w_rec, bias, gate_mul, nb, cell, h, gates,
                   output + t * nb * nc);
    return;
  }
  for (b = 0; b < nb; b++)
    for (t = 0; t < p->n_time; t++)
      lstm_step_s8(p, input + (b * p->n_time + t) * ni, w_in, w_rec, bias, gate_mul, 1,
                   cell + b * nc, h + b * nc, gates, output + (b * p->n_time + t) * nc);
}

/* -- float32 LSTM ------------------------------------------------------------------------- */

/* tensor_utils::ApplyActivationToVector for the activations an LSTM or SVDF carries. */
static float activate_f32(float v, int32_t activation) {
  switch (activation) {
    case 1: return 0.0f < v ? v : 0.0f;                                  /* RELU */
    case 3: { float m = 6.0f < v ? 6.0f : v; return 0.0f < m ? m : 0.0f; } /* RELU6 */
    case 4: return tanhf(v);                                              /* TANH */
    case 6: return 1.0f / (1.0f + expf(-v));                              /* SIGMOID */
    default: return v;                                                    /* NONE */
  }
}

static float dot_f32(const float *a, const float *b, int32_t n) {
  float sum = 0.0f;
  int32_t i;
  for (i = 0; i < n; i++) sum += a[i] * b[i];
  return sum;
}

/* CalculateLstmGateFloat: (W_rec . h) + ((W_in . x) + bias), then the activation.
 * TFLite sums with its GEMM (ruy), in an order C cannot reproduce: outputs agree
 * within a tolerance, not bit for bit. */
static void lstm_gate_f32(const tb_lstm_f32_params *p, int g, const float *x, const float *h,
                          const float *w_in, const float *w_rec, const float *bias, int32_t n_batch,
                          int32_t activation, float *gate) {
  const int32_t nc = p->n_cell, ni = p->n_input;
  int32_t b, r;
  for (b = 0; b < n_batch; b++) {
    for (r = 0; r < nc; r++) {
      float v = dot_f32(w_in + (g * nc + r) * ni, x + b * ni, ni) + bias[g * nc + r];
      v = dot_f32(w_rec + (g * nc + r) * nc, h + b * nc, nc) + v;
      gate[b * nc + r] = activate_f32(v, activation);
    }
  }
}

/* LstmStepFloat: gates, cell update (UpdateLstmCellFloat), output state. */
static void lstm_step_f32(const tb_lstm_f32_params *p, const float *x, const float *w_in,
                          const float *w_rec, const float *bias, int32_t n_batch, float *cell,
                          float *h, float *gates, float *out) {
  const int32_t n = n_batch * p->n_cell;
  float *in_gate = gates, *forget = gates + n, *cell_gate = gates + 2 * n, *out_gate = gates + 3 * n;
  int32_t i;
  lstm_gate_f32(p, 0, x, h, w_in, w_rec, bias, n_batch, 6, in_gate);
  lstm_gate_f32(p, 1, x, h, w_in, w_rec, bias, n_batch, 6, forget);
  lstm_gate_f32(p, 2, x, h, w_in, w_rec, bias, n_batch, p->activation, cell_gate);
  lstm_gate_f32(p, 3, x, h, w_in, w_rec, bias, n_batch, 6, out_gate);
  for (i = 0; i < n; i++) {
    float c = forget[i] * cell[i];
    c += cell_gate[i] * in_gate[i];
    if (p->cell_clip > 0.0f) {
      if (c > p->cell_clip) c = p->cell_clip;
      if (c < -p->cell_clip) c = -p->cell_clip;
    }
    cell[i] = c;
    h[i] = out_gate[i] * activate_f32(c, p->activation);
  }
  memcpy(out, h, (size_t)n * sizeof(float));
}

/* Scratch: cell [n_batch][n_cell], output state [n_batch][n_cell], gates [4][n_batch][n_cell]. */
void tb_lstm_f32(const tb_lstm_f32_params *p, const float *input, const float *w_in,
                 const float *w_rec, const float *bias, float *output, void *scratch) {
  const int32_t nb = p->n_batch, nc = p->n_cell, ni = p->n_input;
  float *cell = (float *)scratch, *h = cell + nb * nc, *gates = h + nb * nc;
  int32_t t, b;
  memset(cell, 0, (size_t)(2 * nb * nc) * sizeof(float));
  if (p->time_major) {
    for (t = 0; t < p->n_time; t++)
      lstm_step_f32(p, input + t * nb * ni, w_in, w_rec, bias, nb, cell, h, gates,
                    output + t * nb * nc);
    return;
  }
  for (b = 0; b < nb; b++)
    for (t = 0; t < p->n_time; t++)
      lstm_step_f32(p, input + (b * p->n_time + t) * ni, w_in, w_rec, bias, 1, cell + b * nc,
                    h + b * nc, gates, output + (b * p->n_time + t) * nc);
}

/* -- SVDF ---------------------------------------------------------------------------------- */
/* One SVDF call is one time step. Its state (n_filter rows of `memory` values,
 * the newest last) starts from TFLite's reset value, zeros, at every call. */

/* reference_ops::EvalIntegerSVDF. TF 2.21's integer path applies no fused
 * activation: the result is only clamped to int8. */
void tb_svdf_s8(const tb_svdf_s8_params *p, const int8_t *input, const int8_t *w_feature,
                const int16_t *w_time, const int32_t *bias, int8_t *output, void *scratch) {
  const int32_t nf = p->n_filter, nm = p->memory, nu = p->n_unit, rank = nf / nu;
  int16_t *state = (int16_t *)scratch;
  int32_t *filter_out = (int32_t *)(state + ((p->n_batch * nf * nm + 1) & ~1));
  int32_t b, f, u, i;
  memset(state, 0, (size_t)(p->n_batch * nf * nm) * sizeof(int16_t));
  for (b = 0; b < p->n_batch; b++) {
    int16_t *st = state + b * nf * nm;
    for (f = 0; f < nf; f++) {
      int32_t acc = 0;
      for (i = 0; i < p->n_input; i++)
        acc += (int32_t)w_feature[f * p->n_input + i] * (input[b * p->n_input + i] - p->input_zp);
      acc = tb_mul_by_quant_mul(acc, p->mul1.multiplier, p->mul1.shift);
      st[f * nm + nm - 1] = (int16_t)(acc > INT16_MAX ? INT16_MAX : acc < INT16_MIN ? INT16_MIN : acc);
    }
    for (f = 0; f < nf; f++) {
      int32_t acc = 0;
      for (i = 0; i < nm; i++) acc += (int32_t)w_time[f * nm + i] * st[f * nm + i];
      filter_out[f] = acc;
    }
    for (u = 0; u < nu; u++) {
      int32_t acc = bias ? bias[u] : 0, v;
      for (i = 0; i < rank; i++) acc += filter_out[u * rank + i];
      v = tb_mul_by_quant_mul(acc, p->mul2.multiplier, p->mul2.shift) + p->output_zp;
      output[b * nu + u] = (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
    }
  }
}

/* TFLite's float MatrixBatchVectorMultiplyAccumulate on x86-64 (SSE): four
 * running sums over i % 4, added in lane order, then the tail in order. */
static float dot_f32_4lanes(const float *a, const float *b, int32_t n) {
  float l0 = 0.0f, l1 = 0.0f, l2 = 0.0f, l3 = 0.0f, sum;
  int32_t i;
  for (i = 0; i + 4 <= n; i += 4) {
    l0 += a[i] * b[i];
    l1 += a[i + 1] * b[i + 1];
    l2 += a[i + 2] * b[i + 2];
    l3 += a[i + 3] * b[i + 3];
  }
  sum = ((l0 + l1) + l2) + l3;
  for (; i < n; i++) sum += a[i] * b[i];
  return sum;
}

/* reference_ops::EvalFloatSVDF, summing as TFLite's x86-64 build does (the
 * feature products four lanes wide; the time products meet a zero state but
 * for the newest column, so their order cannot matter; the rank's sums, then
 * the bias). */
void tb_svdf_f32(const tb_svdf_f32_params *p, const float *input, const float *w_feature,
                 const float *w_time, const float *bias, float *output, void *scratch) {
  const int32_t nf = p->n_filter, nm = p->memory, nu = p->n_unit, rank = nf / nu;
  float *state = (float *)scratch, *filter_out = state + p->n_batch * nf * nm;
  int32_t b, f, u, i;
  memset(state, 0, (size_t)(p->n_batch * nf * nm) * sizeof(float));
  for (b = 0; b < p->n_batch; b++) {
    float *st = state + b * nf * nm;
    for (f = 0; f < nf; f++) {
      float acc = 0.0f;
      acc += dot_f32_4lanes(w_feature + f * p->n_input, input + b * p->n_input, p->n_input);
      st[f * nm + nm - 1] = acc;
    }
    for (f = 0; f < nf; f++) filter_out[f] = dot_f32(w_time + f * nm, st + f * nm, nm);
    for (u = 0; u < nu; u++) { /* TF 2.21 reduces over the rank first, then adds the bias */
      float acc = 0.0f;
      for (i = 0; i < rank; i++) acc += filter_out[u * rank + i];
      if (p->has_bias) acc += bias[u];
      output[b * nu + u] = activate_f32(acc, p->activation);
    }
  }
}
