/* Shared pieces of the RV32IM int8 kernels (targets/riscv/kernels/).
 *
 * Plain C99: GCC -O2 for rv32im/rv32imc turns ((int64_t)a * b) >> 32 into one
 * MULH, and the kernels keep their block accumulators in registers. The same
 * source is compiled natively on the host for the tests.
 *
 * Requantization. The reference computes MultiplyByQuantizedMultiplier(acc,
 * multiplier, shift) + zero point (two roundings). The build step
 * (rv_prepare.py) proves per layer that, for every accumulator the layer can
 * produce, this equals
 *
 *     (MULH(4 * acc, M) + C + 2 * (acc >> 31)) >> E
 *
 * with per-channel constants {M, C, E}: M is TFLite's multiplier, C = 2B + 1
 * and E = e + 1 where {M, B, e} is tinybuild.quant.fast_requant's form
 * floor((2*acc*M + 2^31 + (B + [acc<0]*-1) * 2^32) / 2^(32+e)). MULH(4acc, M)
 * is floor(acc*M / 2^30) = F; floor((2acc*M + 2^31) / 2^32) is
 * floor((F + 1) / 2), and the nested floors of power-of-two divisions merge
 * into one shift (rv_prepare.rv_requant_constants has the bounds). Seven
 * instructions (SLLI, MULH, SRAI, three ADDs, SRA) instead of about 35 for
 * the reference's two roundings (64-bit product, nudge, truncating division,
 * rounding shift) on RV32. Layers where the proof fails keep
 * the reference arithmetic (flag TB_RV_RQ_FAST clear).
 */
#ifndef TB_RV_H
#define TB_RV_H
#include "tb_kernels.h"

#define TB_RV_RQ_FAST 1   /* rq[0]: the per-channel triples are {M, C, E} */
#define TB_RV_RQ_DOUBLE 4 /* FC: TFLite's double rescale, {bias, R, t, 0} per output */

/* Per output channel in every rq stream: folded bias, then the triple. */
typedef struct {
  int32_t bias;   /* bias + input_offset * sum(weights) */
  int32_t m;      /* M (fast) or TFLite's multiplier */
  int32_t c;      /* C (fast) or TFLite's shift */
  int32_t e;      /* E (fast), unused otherwise */
} tb_rv_chan;

static inline int32_t tb_rv_clamp(int32_t v, int32_t lo, int32_t hi) {
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
}

/* The fast exact form (zero point included in C), given acc4 = 4 * acc:
 * kernels whose weights sit in registers scale them by 4 once instead. */
static inline int32_t tb_rv_requant_fast4(int32_t acc4, int32_t m, int32_t c, int32_t e) {
  const int32_t f = (int32_t)(((int64_t)acc4 * m) >> 32);
  const int32_t neg = acc4 >> 31;
  return (f + c + neg + neg) >> e;
}

/* The same from acc. Through uint32: a constant channel (all weights 0,
 * M = 0) may carry a bias beyond 2^29; its product is 0 whatever the wrap,
 * and (C + 2 * neg) >> E is its constant for either sign. */
static inline int32_t tb_rv_requant_fast(int32_t acc, int32_t m, int32_t c, int32_t e) {
  return tb_rv_requant_fast4((int32_t)((uint32_t)acc << 2), m, c, e);
}

/* One output value, either form, clamped. */
static inline int32_t tb_rv_requant(int32_t acc, const tb_rv_chan *q, int32_t fast,
                                    int32_t zero_point, int32_t lo, int32_t hi) {
  const int32_t v = fast ? tb_rv_requant_fast(acc, q->m, q->c, q->e)
                         : tb_mul_by_quant_mul(acc, q->m, q->c) + zero_point;
  return tb_rv_clamp(v, lo, hi);
}

#endif
