/* FULLY_CONNECTED int8 for Cortex-M4 (DSP extension), any number of rows.
 *
 * Bit-exact with tb_fully_connected_s8: TF 2.21's reference rescales every
 * output in double, per-tensor and per-channel weights alike (see the
 * requantization note below).
 *
 * Per row of inputs (p->rows, 0 reads as 1), the input vector is expanded
 * once into the scratch buffer as int16 (x + input_offset), K padded to a
 * multiple of 4, stored as the pairs (k, k+2), (k+1, k+3) of every group of 4
 * (SXTAB16 / SXTAB16 ROR #8).
 * Weights are reordered at build time into blocks of 4 rows: for every group
 * of 4 inputs the 4 rows' words follow each other, so one LDM brings 16
 * weights and SXTB16 / SXTB16 ROR #8 split each row's word into the same
 * pairs. Per 16 MACs: 2 LDM, 8 SXTB16, 8 SMLAD. With out_features % 4 == 1
 * (a single output, 5, 9...) the first row is its K4 bytes alone, run by a
 * one-row loop before the blocks: a padded block of 4 would cost 4 rows for 1.
 *
 * Requantization per output o: the reference rounds double(acc) * m_o half
 * away from zero (m_o: the per-tensor real_multiplier, or output o's own
 * multiplier for per-channel weights). With R_o = round(m_o * 2^(32+t_o)),
 * a = |acc| and Q = a*R_o + 2^(31+t_o): whenever a <= Q mod 2^(32+t_o) <
 * 2^(32+t_o) - a, floor(Q / 2^(32+t_o)) is that rounded value (the proof is
 * in tinybuild.quant.fc_double_fast); otherwise the kernel evaluates the
 * double expression exactly like the reference (rare: near a tie).
 *
 * Arguments: params, input, weights, rq (header {flags, real_mul stride, 0,
 * 0}, then per output, padded to a multiple of 4: {bias, R, t, 0}), real_mul
 * (the double multipliers: one, stride 0, or one per output, stride 1),
 * output, scratch (K4 int16). A row's input is copied to the scratch buffer
 * before its outputs are written; with one row the output may overlap the
 * input anywhere and the scratch may start at the input's offset (or above:
 * the copy runs back to front); with several rows, prepare_fc declares the
 * overlaps that leave later rows' inputs intact.
 */
#include "tb_cm4.h"

#define TB_CM4_RQ_FULLRANGE 2

/* round_half_away(double(acc) * *m), exactly: a fixed-point product unless it
 * lands within |acc| / 2^(32+t) of a tie (see above). *m is read only then. */
static inline __attribute__((always_inline)) int32_t tb_cm4_fc_double(int32_t acc, uint32_t r,
                                                                    int32_t t, const double *m) {
  const uint32_t a = acc < 0 ? 0u - (uint32_t)acc : (uint32_t)acc;
  /* 2^(31+t) as two words */
  const uint64_t rnd = ((uint64_t)((1u << t) >> 1) << 32) | ((uint32_t)(t == 0) << 31);
  const uint64_t q = (uint64_t)a * r + rnd;
  const uint32_t lo = (uint32_t)q, hi = (uint32_t)(q >> 32);
  const uint32_t mask = (1u << t) - 1u, frac_hi = hi & mask;
  if ((frac_hi == 0 && lo < a) || (frac_hi == mask && lo + a < lo)) {
    return tb_round_half_away((double)acc * *m);   /* near a tie */
  }
  {
    const int32_t c = (int32_t)(hi >> t);
    return acc < 0 ? -c : c;
  }
}

/* 4 dot products of the expanded input with 4 interleaved rows, nq groups of 4. */
static void tb_cm4_fc_rows4(const uint32_t *px, const uint32_t *pw, int32_t nq, int32_t *acc) {
#ifdef TB_CM4_DSP
  register uint32_t a0 __asm__("r0") = (uint32_t)acc[0];
  register uint32_t a1 __asm__("r1") = (uint32_t)acc[1];
  register uint32_t a2 __asm__("r2") = (uint32_t)acc[2];
  register uint32_t a3 __asm__("r3") = (uint32_t)acc[3];
  register uint32_t w0 __asm__("r4");
  register uint32_t w1 __asm__("r5");
  register uint32_t w2 __asm__("r6");
  register uint32_t w3 __asm__("r7");
  register uint32_t x0 __asm__("r8");
  register uint32_t x1 __asm__("r9");
  register uint32_t t __asm__("r12") = nq & 1;
  register const uint32_t *rx __asm__("r10") = px;
  register const uint32_t *rw __asm__("r11") = pw;
  register const uint32_t *end __asm__("lr") = px + 2 * nq;
#define TB_CM4_FC_QUAD                                       \
  "ldmia %[rx]!, {%[x0], %[x1]}\n\t"                         \
  "ldmia %[rw]!, {%[w0], %[w1], %[w2], %[w3]}\n\t"           \
  "sxtb16 %[t], %[w0]\n\t"                                   \
  "sxtb16 %[w0], %[w0], ror #8\n\t"                          \
  "smlad %[a0], %[t], %[x0], %[a0]\n\t"                      \
  "smlad %[a0], %[w0], %[x1], %[a0]\n\t"                     \
  "sxtb16 %[t], %[w1]\n\t"                                   \
  "sxtb16 %[w1], %[w1], ror #8\n\t"                          \
  "smlad %[a1], %[t], %[x0], %[a1]\n\t"                      \
  "smlad %[a1], %[w1], %[x1], %[a1]\n\t"                     \
  "sxtb16 %[t], %[w2]\n\t"                                   \
  "sxtb16 %[w2], %[w2], ror #8\n\t"                          \
  "smlad %[a2], %[t], %[x0], %[a2]\n\t"                      \
  "smlad %[a2], %[w2], %[x1], %[a2]\n\t"                     \
  "sxtb16 %[t], %[w3]\n\t"                                   \
  "sxtb16 %[w3], %[w3], ror #8\n\t"                          \
  "smlad %[a3], %[t], %[x0], %[a3]\n\t"                      \
  "smlad %[a3], %[w3], %[x1], %[a3]\n\t"
  __asm__ volatile(
      "cmp %[t], #0\n\t"
      "bne 2f\n\t"
      "1:\n\t" TB_CM4_FC_QUAD
      "2:\n\t" TB_CM4_FC_QUAD
      "cmp %[rx], %[end]\n\t"
      "bne 1b\n\t"
      : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [w0] "=&r"(w0),
        [w1] "=&r"(w1), [w2] "=&r"(w2), [w3] "=&r"(w3), [x0] "=&r"(x0), [x1] "=&r"(x1),
        [t] "+r"(t), [rx] "+r"(rx), [rw] "+r"(rw)
      : [end] "r"(end)
      : "cc", "memory");
#undef TB_CM4_FC_QUAD
  acc[0] = (int32_t)a0, acc[1] = (int32_t)a1, acc[2] = (int32_t)a2, acc[3] = (int32_t)a3;
#else
  int32_t g, r;
  for (g = 0; g < nq; ++g, px += 2, pw += 4) {
    for (r = 0; r < 4; ++r) {
      acc[r] = tb_smlad(tb_sxtb16(pw[r]), px[0], acc[r]);
      acc[r] = tb_smlad(tb_sxtb16_ror8(pw[r]), px[1], acc[r]);
    }
  }
#endif
}

/* One row's dot product with the expanded input: per group of 4 inputs one
 * weight word, two SXTB16 and two SMLAD (two groups per iteration). */
static int32_t tb_cm4_fc_row1(const uint32_t *px, const uint32_t *pw, int32_t nq, int32_t acc) {
  int32_t a = acc, b = 0, g;
  for (g = 0; g + 2 <= nq; g += 2, px += 4) {
    const uint32_t w0 = pw[g], w1 = pw[g + 1];
    a = tb_smlad(tb_sxtb16(w0), px[0], a);
    b = tb_smlad(tb_sxtb16_ror8(w0), px[1], b);
    a = tb_smlad(tb_sxtb16(w1), px[2], a);
    b = tb_smlad(tb_sxtb16_ror8(w1), px[3], b);
  }
  if (g < nq) {
    a = tb_smlad(tb_sxtb16(pw[g]), px[0], a);
    b = tb_smlad(tb_sxtb16_ror8(pw[g]), px[1], b);
  }
  return a + b;
}

/* Requantize the n sums acc[0..n-1] of outputs o.. (r: output o's {bias, R,
 * t, 0}) into out[o..]. A macro over the caller's locals: the block loop and
 * the single first row share it, and neither reloads the parameters after
 * each output store (the output may alias them). */
#define TB_CM4_FC_STORE(n)                                                                   \
  do {                                                                                       \
    int32_t j;                                                                               \
    for (j = 0; j < (n); ++j) {                                                              \
      const int32_t *rj = r + 4 * j;                                                         \
      const int32_t v = tb_cm4_fc_double(acc[j], (uint32_t)rj[1], rj[2],                      \
                                         real_mul + m_step * (o + j)) + zp;                   \
      out[o + j] = (int8_t)(full ? tb_ssat8(v) : tb_clamp(v, lo, hi));                       \
    }                                                                                        \
  } while (0)

/* Expand one row of k inputs into px as int16 pairs, back to front (the pad
 * of K to K4 meets zero weights): group g's bytes are read before words 2g,
 * 2g+1 are written, so px may start at the input itself. */
static void tb_cm4_fc_expand(const int8_t *input, int32_t k, uint32_t off2, uint32_t *px) {
  int32_t i = k & ~3;
  if (i < k) {
    uint8_t last[4] = {0, 0, 0, 0};
    int32_t j;
    for (j = 0; i + j < k; ++j) last[j] = (uint8_t)input[i + j];
    {
      const uint32_t v = tb_ld32(last);
      px[(i >> 1) + 1] = tb_sxtab16_ror8(off2, v);
      px[i >> 1] = tb_sxtab16(off2, v);
    }
  }
  for (i -= 4; i >= 0; i -= 4) {
    const uint32_t v = tb_ld32(input + i);
    px[(i >> 1) + 1] = tb_sxtab16_ror8(off2, v);
    px[i >> 1] = tb_sxtab16(off2, v);
  }
}

void tb_cm4_fully_connected_s8(const tb_fc_params *p, const int8_t *input,
                               const int8_t *weights, const int32_t *rq, const double *real_mul,
                               int8_t *output, void *scratch) {
  const int32_t k = p->in_features, outs = p->out_features;
  const int32_t n_rows = p->rows > 0 ? p->rows : 1;
  const int32_t blocked = (outs & 3) == 1 ? outs - 1 : outs;   /* outputs in blocks of 4 */
  const int32_t nq = (k + 3) >> 2;
  const int32_t flags = rq[0], m_step = rq[1];
  const uint32_t off2 = ((uint32_t)p->input_offset & 0xFFFFu) * 0x10001u;
  const int32_t zp = p->output_offset, lo = p->act_min, hi = p->act_max;
  const int full = (flags & TB_CM4_RQ_FULLRANGE) != 0;
  uint32_t *px = (uint32_t *)scratch;
  int32_t row;
  for (row = 0; row < n_rows; ++row) {
    const int8_t *in = input + row * k;
    int8_t *out = output + row * outs;
    const uint32_t *pw = (const uint32_t *)(const void *)weights;
    const int32_t *r = rq + 4;
    int32_t acc[4], o = 0;
    tb_cm4_fc_expand(in, k, off2, px);
    if (blocked < outs) {   /* the first output, alone: its K4 bytes come first */
      acc[0] = tb_cm4_fc_row1(px, pw, nq, r[0]);
      TB_CM4_FC_STORE(1);
      o = 1, pw += nq, r += 4;
    }
    for (; o < outs; o += 4, pw += 4 * nq, r += 16) {
      const int32_t n = outs - o < 4 ? outs - o : 4;
      acc[0] = r[0], acc[1] = r[4], acc[2] = r[8], acc[3] = r[12];
      tb_cm4_fc_rows4(px, pw, nq, acc);
      TB_CM4_FC_STORE(n);
    }
  }
}
