/* FULLY_CONNECTED int8 for RV32IM (rv32imc, rv32imac), bit-exact with
 * tb_fully_connected_s8 (weights_offset 0): TF 2.21's double rescale,
 * per-tensor and per-channel weights alike, any number of rows of inputs
 * (p->rows, 0 reads as 1), one after the other.
 *
 * Outputs go in blocks of 8: one input load serves 8 weight loads and 8
 * multiply-adds. Weights were reordered at build time to [block][K][8]
 * (zero outputs for the padding) and input_offset * sum(w) was folded into the
 * bias. A remainder of at most 4 outputs (rv_prepare.fc_blocked_rows: a single
 * output, 10 = 8 + 2 classes) runs one by one from [K] rows after the blocks:
 * a padded block would cost 8 outputs for them.
 *
 * Requantization per output o: the reference rounds double(acc) * m_o half
 * away from zero (m_o: the per-tensor real_multiplier, or output o's own
 * multiplier for per-channel weights). With R_o = round(m_o * 2^(32+t_o)),
 * a = |acc| and Q = a*R_o + 2^(31+t_o): whenever a <= Q mod 2^(32+t_o) <
 * 2^(32+t_o) - a, floor(Q / 2^(32+t_o)) is that rounded value
 * (tinybuild.quant.fc_double_fast has the proof); near a tie the kernel
 * evaluates the double expression exactly as the reference does.
 *
 * Arguments: params, input, filter, rq (header {flags, real_mul stride, 0,
 * 0}, then tb_rv_chan {folded bias, R, t, 0} per output, padded to a multiple
 * of 8), real_mul (the double multipliers: one, stride 0, or one per output,
 * stride 1), output. Every block reads the whole input row again, so the
 * output may not share bytes with the input (no overlap is declared).
 */
#include "tb_rv.h"

/* round_half_away(double(acc) * *m) near a tie: the reference's expression. */
__attribute__((noinline)) static int32_t rv_fc_near_tie(int32_t acc, const double *m) {
  return tb_round_half_away((double)acc * *m);
}

/* round_half_away(double(acc) * *m), exactly: floor(Q / 2^(32+t)) with
 * Q = |acc| * r + 2^(31+t) in two words (MUL, MULHU, a carry), unless Q's
 * fraction is within |acc| of a tie (then rv_fc_near_tie). */
static inline __attribute__((always_inline)) int32_t rv_fc_double(int32_t acc, uint32_t r,
                                                                 int32_t t, const double *m) {
  const uint32_t a = acc < 0 ? 0u - (uint32_t)acc : (uint32_t)acc;
  const uint32_t half = 1u << t >> 1;                      /* 2^(31+t) / 2^32, or 0 */
  const uint32_t lo0 = a * r, lo = lo0 + (t == 0 ? 0x80000000u : 0u);
  const uint32_t hi = (uint32_t)(((uint64_t)a * r) >> 32) + half + (lo < lo0);
  const uint32_t mask = (1u << t) - 1u, frac_hi = hi & mask;
  if ((frac_hi == 0 && lo < a) || (frac_hi == mask && lo + a < lo)) return rv_fc_near_tie(acc, m);
  {
    const int32_t c = (int32_t)(hi >> t);
    return acc < 0 ? -c : c;
  }
}

#define RV_FC_ROWS 8
#define RV_FC_SINGLE_ROWS 4   /* rv_prepare.FC_SINGLE_ROWS */

/* 8 rows' dot products with x over k inputs; w is [k][8]. Every weight is
 * used once, so a MAC costs at least its load, MUL and ADD; one input load
 * serves 8 of them (25 instructions per 8 MACs, 2 inputs per iteration). */
__attribute__((optimize("no-schedule-insns")))
static void rv_fc_block(const int8_t *x, const int8_t *w, int32_t k, int32_t *acc) {
  int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
  const int8_t *const end2 = x + (k & ~1), *const end = x + k;
#define RV_FC_STEP(v, w)                                                  \
  s0 += (v) * (w)[0]; s1 += (v) * (w)[1]; s2 += (v) * (w)[2]; s3 += (v) * (w)[3]; \
  s4 += (v) * (w)[4]; s5 += (v) * (w)[5]; s6 += (v) * (w)[6]; s7 += (v) * (w)[7]
  while (x != end2) {
    const int32_t v0 = x[0], v1 = x[1];
    RV_FC_STEP(v0, w);
    RV_FC_STEP(v1, w + 8);
    x += 2;
    w += 16;
  }
  if (x != end) {
    const int32_t v0 = x[0];
    RV_FC_STEP(v0, w);
  }
#undef RV_FC_STEP
  acc[0] = s0; acc[1] = s1; acc[2] = s2; acc[3] = s3;
  acc[4] = s4; acc[5] = s5; acc[6] = s6; acc[7] = s7;
}

/* One row's dot product: 4 inputs per iteration (2 loads, MUL, ADD each). */
static int32_t rv_fc_row(const int8_t *x, const int8_t *w, int32_t k) {
  int32_t s0 = 0, s1 = 0, i;
  for (i = 0; i + 4 <= k; i += 4) {
    s0 += x[i] * w[i];
    s1 += x[i + 1] * w[i + 1];
    s0 += x[i + 2] * w[i + 2];
    s1 += x[i + 3] * w[i + 3];
  }
  for (; i < k; ++i) s0 += x[i] * w[i];
  return s0 + s1;
}

/* One row of k inputs to outs outputs; the parameters come in as values, so
 * that the output stores (which may alias anything) force no reloads. */
static void rv_fc_row_of_inputs(const int8_t *input, const int8_t *filter, const tb_rv_chan *q,
                                const double *real_mul, int32_t m_step, int32_t k, int32_t outs,
                                int32_t zp, int32_t lo, int32_t hi, int8_t *output) {
  const int32_t tail = outs % RV_FC_ROWS;
  const int32_t blocked = tail <= RV_FC_SINGLE_ROWS ? outs - tail : outs;
  int32_t acc[RV_FC_ROWS];
  int32_t o, j;
#define RV_FC_OUT(o, sum)                                                                       \
  ((int8_t)tb_rv_clamp(rv_fc_double((sum) + q[o].bias, (uint32_t)q[o].m, q[o].c,                \
                                    real_mul + m_step * (o)) + zp, lo, hi))
  for (o = 0; o < blocked; o += RV_FC_ROWS) {
    rv_fc_block(input, filter + o * k, k, acc);
    for (j = 0; j < RV_FC_ROWS && o + j < outs; ++j) output[o + j] = RV_FC_OUT(o + j, acc[j]);
  }
  for (o = blocked; o < outs; ++o) output[o] = RV_FC_OUT(o, rv_fc_row(input, filter + o * k, k));
#undef RV_FC_OUT
}

void tb_rv_fully_connected_s8(const tb_fc_params *p, const int8_t *input,
                              const int8_t *filter, const int32_t *rq, const double *real_mul,
                              int8_t *output) {
  const int32_t n_rows = p->rows > 0 ? p->rows : 1, k = p->in_features, outs = p->out_features;
  const int32_t zp = p->output_offset, lo = p->act_min, hi = p->act_max;
  const tb_rv_chan *q = (const tb_rv_chan *)(rq + 4);
  int32_t row;
  for (row = 0; row < n_rows; ++row) {
    rv_fc_row_of_inputs(input + row * k, filter, q, real_mul, rq[1], k, outs, zp, lo, hi,
                        output + row * outs);
  }
}
