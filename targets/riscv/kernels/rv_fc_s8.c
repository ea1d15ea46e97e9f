/* FULLY_CONNECTED int8 for RV32IM (rv32imc, rv32imac), bit-exact with
 * tb_fully_connected_s8 (weights_offset 0), including TFLite's per-tensor
 * double rescale.
 *
 * Rows go in blocks of 8: one input load serves 8 weight loads and 8
 * multiply-adds. Weights were reordered at build time to [row block][K][8]
 * (zero rows for the padding) and input_offset * sum(w) was folded into the
 * bias. A remainder of at most 4 rows (rv_prepare.fc_blocked_rows: a single
 * output, 10 = 8 + 2 classes) runs row by row from [K] rows after the blocks:
 * a padded block would cost 8 rows for them.
 *
 * Requantization per output:
 *  - per-channel weights (real_multiplier == 0): MultiplyByQuantizedMultiplier
 *    in the fast exact form of tb_rv.h, or the reference's own function;
 *  - per-tensor weights: the reference rounds double(acc) * real_multiplier
 *    half away from zero. With R = round(real_multiplier * 2^(32+t)),
 *    a = |acc| and Q = a*R + 2^(31+t): whenever a <= Q mod 2^(32+t) <
 *    2^(32+t) - a, floor(Q / 2^(32+t)) is that rounded value
 *    (tinybuild.quant.fc_double_fast has the proof); near a tie the kernel
 *    evaluates the double expression exactly as the reference does.
 *
 * Arguments: params, input, filter, rq (header {flags, R, t, 0}, then
 * tb_rv_chan per row, rows padded to a multiple of 8), output. Every row
 * block reads the whole input again, so the output may not share bytes with
 * the input (no overlap is declared).
 */
#include "tb_rv.h"

/* round_half_away(double(acc) * real_multiplier), exactly. */
static int32_t rv_fc_double(int32_t acc, uint32_t r, int32_t t, double real_multiplier) {
  const uint32_t a = acc < 0 ? 0u - (uint32_t)acc : (uint32_t)acc;
  const int32_t shift = 32 + t;
  const uint64_t q = (uint64_t)a * r + ((uint64_t)1 << (shift - 1));
  const uint64_t frac = q & ((((uint64_t)1) << shift) - 1);
  if (frac >= a && frac < (((uint64_t)1) << shift) - a) {
    const int32_t v = (int32_t)(q >> shift);
    return acc < 0 ? -v : v;
  }
  return tb_round_half_away((double)acc * real_multiplier);
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

/* Output row r from its accumulated sum, requantized as the reference does
 * (inlined: a call per output would cost more than the requantization). */
static inline __attribute__((always_inline)) int8_t rv_fc_out(const tb_fc_params *p, const int32_t *rq, int32_t r, int32_t acc) {
  const tb_rv_chan *q = (const tb_rv_chan *)(rq + 4) + r;
  const int32_t sum = acc + q->bias;
  int32_t v;
  if (rq[0] & TB_RV_RQ_DOUBLE) {
    v = rv_fc_double(sum, (uint32_t)rq[1], rq[2], p->real_multiplier) + p->output_offset;
    return (int8_t)tb_rv_clamp(v, p->act_min, p->act_max);
  }
  return (int8_t)tb_rv_requant(sum, q, rq[0] & TB_RV_RQ_FAST, p->output_offset, p->act_min,
                               p->act_max);
}

void tb_rv_fully_connected_s8(const tb_fc_params *p, const int8_t *input,
                              const int8_t *filter, const int32_t *rq, int8_t *output) {
  const int32_t k = p->in_features, rows = p->out_features;
  const int32_t tail = rows % RV_FC_ROWS;
  const int32_t blocked = tail <= RV_FC_SINGLE_ROWS ? rows - tail : rows;
  int32_t acc[RV_FC_ROWS];
  int32_t r0, j;
  for (r0 = 0; r0 < blocked; r0 += RV_FC_ROWS) {
    rv_fc_block(input, filter + r0 * k, k, acc);
    for (j = 0; j < RV_FC_ROWS && r0 + j < rows; ++j) output[r0 + j] = rv_fc_out(p, rq, r0 + j, acc[j]);
  }
  for (r0 = blocked; r0 < rows; ++r0) {
    output[r0] = rv_fc_out(p, rq, r0, rv_fc_row(input, filter + r0 * k, k));
  }
}
