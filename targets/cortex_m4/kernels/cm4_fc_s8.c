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
 * in tinybuild.quant.fc_double_fast; prepare_fc makes t_o >= 1, so the
 * rounding term only adds 2^(t_o-1) to the high word); otherwise the kernel
 * evaluates the double expression exactly like the reference (rare: near a
 * tie). All of it in 32-bit words: UMULL, one ADD, the tie test on the high
 * word's fraction bits, one LSR.
 *
 * Arguments: params, input, weights, rq, real_mul, output, scratch (K4 int16).
 * rq: header {flags, 0, 0, 0}, the biases (outputs padded to a multiple of
 * 4), then tb_cm4_fc_mult {R, 2^(t-1), 2^t - 1, t}: one for the layer, or one
 * per output (TB_CM4_FC_PER_CHANNEL). real_mul: the double multipliers (one,
 * or one per output), read only near a tie. The kernel is specialized for
 * per-tensor/per-channel and full-range/clamped outputs, so nothing is decided
 * per output and the per-tensor record is read once per block of 4 outputs.
 * A row's input is copied to the scratch buffer before its outputs are
 * written; with one row the output may overlap the input anywhere and the
 * scratch may start at the input's offset (or above: the copy runs back to
 * front); with several rows, prepare_fc declares the overlaps that leave later
 * rows' inputs intact.
 */
#include "tb_cm4.h"

#define TB_CM4_FC_FULLRANGE 2    /* act range = int8 range: SSAT alone */
#define TB_CM4_FC_PER_CHANNEL 4  /* one tb_cm4_fc_mult per output */

/* One output's fixed-point multiplier R / 2^(32+t), with its rounding term
 * 2^(t-1) (added to the product's high word) and fraction mask 2^t - 1. */
typedef struct {
  uint32_t r, half, mask;
  int32_t t;
} tb_cm4_fc_mult;

/* floor((|acc| R + 2^(31+t)) / 2^(32+t)) with acc's sign into *c, unless the
 * fraction is within |acc| of a tie: then 0 and the caller redoes the output
 * with tb_cm4_fc_exact (rare; no call in the hot path, which keeps registers). */
TB_INLINE int tb_cm4_fc_fixed(int32_t acc, tb_cm4_fc_mult q, int32_t *c) {
  const uint32_t a = acc < 0 ? 0u - (uint32_t)acc : (uint32_t)acc;
  const uint64_t prod = (uint64_t)a * q.r;
  const uint32_t lo = (uint32_t)prod, hi = (uint32_t)(prod >> 32) + q.half;
  const uint32_t frac_hi = hi & q.mask;
  if (frac_hi == 0 ? lo < a : frac_hi == q.mask && lo + a < lo) return 0;
  *c = acc < 0 ? -(int32_t)(hi >> q.t) : (int32_t)(hi >> q.t);
  return 1;
}

/* One row of inputs' work, in memory on the kernel's stack: read through a
 * pointer where needed (no spill slot for each), and after the output stores
 * (which may alias the parameters, never this). */
typedef struct {
  const uint32_t *px, *weights;   /* the expanded input; the block-ordered weights */
  const int32_t *bias;
  const tb_cm4_fc_mult *mult;
  const double *real_mul;
  int8_t *out;                    /* this row's outputs */
  int32_t nq, outs, zp;          /* groups of 4 inputs (K4 / 4), outputs, zero point */
  int8_t lo, hi;                  /* the activation range */
} tb_cm4_fc_ctx;

/* The clamped output byte of v = rescaled sum + zero point. */
TB_INLINE int8_t tb_cm4_fc_clamp(int32_t v, const tb_cm4_fc_ctx *c, int full) {
  return (int8_t)(full ? tb_ssat8(v) : tb_clamp(v, c->lo, c->hi));
}

/* 4 dot products of the expanded input with 4 interleaved rows, nq groups of
 * 4, on top of the 4 biases; returns the next block's weights. */
TB_INLINE const uint32_t *tb_cm4_fc_rows4(const uint32_t *px, const uint32_t *pw, int32_t nq,
                                          const int32_t *bias, int32_t *acc) {
#ifdef TB_CM4_DSP
  register uint32_t a0 __asm__("r0");
  register uint32_t a1 __asm__("r1");
  register uint32_t a2 __asm__("r2");
  register uint32_t a3 __asm__("r3");
  register uint32_t w0 __asm__("r4");
  register uint32_t w1 __asm__("r5");
  register uint32_t w2 __asm__("r6");
  register uint32_t w3 __asm__("r7");
  register uint32_t x0 __asm__("r8");
  register uint32_t x1 __asm__("r9");
  /* the biases' address, then the odd-group flag (nq & 1: bit 3 of end - px) */
  register uint32_t t __asm__("r12") = (uint32_t)bias;
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
      "ldmia %[t], {%[a0], %[a1], %[a2], %[a3]}\n\t"
      "sub %[t], %[end], %[rx]\n\t"
      "ands %[t], %[t], #8\n\t"
      "bne 2f\n\t"
      "1:\n\t" TB_CM4_FC_QUAD
      "2:\n\t" TB_CM4_FC_QUAD
      "cmp %[rx], %[end]\n\t"
      "bne 1b\n\t"
      : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [w0] "=&r"(w0),
        [w1] "=&r"(w1), [w2] "=&r"(w2), [w3] "=&r"(w3), [x0] "=&r"(x0), [x1] "=&r"(x1),
        [t] "+r"(t), [rx] "+r"(rx), [rw] "+r"(rw)
      : [end] "r"(end)
      : "cc", "memory");
#undef TB_CM4_FC_QUAD
  acc[0] = (int32_t)a0, acc[1] = (int32_t)a1, acc[2] = (int32_t)a2, acc[3] = (int32_t)a3;
  return rw;
#else
  int32_t g, r;
  for (r = 0; r < 4; ++r) acc[r] = bias[r];
  for (g = 0; g < nq; ++g, px += 2, pw += 4) {
    for (r = 0; r < 4; ++r) {
      acc[r] = tb_smlad(tb_sxtb16(pw[r]), px[0], acc[r]);
      acc[r] = tb_smlad(tb_sxtb16_ror8(pw[r]), px[1], acc[r]);
    }
  }
  return pw;
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

/* Expand one row of k inputs into px as int16 pairs, back to front (the pad
 * of K to K4 meets zero weights): group g's bytes are read before words 2g,
 * 2g+1 are written, so px may start at the input itself. */
static void tb_cm4_fc_expand(const int8_t *input, int32_t k, uint32_t off2, uint32_t *px) {
  int32_t i = k & ~3;
  if (i < k) {   /* the last 1..3 inputs as a little-endian word (no stack buffer) */
    uint32_t v = 0;
    int32_t j;
    for (j = k - 1; j >= i; --j) v = v << 8 | (uint8_t)input[j];
    px[(i >> 1) + 1] = tb_sxtab16_ror8(off2, v);
    px[i >> 1] = tb_sxtab16(off2, v);
  }
  for (i -= 4; i >= 0; i -= 4) {
    const uint32_t v = tb_ld32(input + i);
    px[(i >> 1) + 1] = tb_sxtab16_ror8(off2, v);
    px[i >> 1] = tb_sxtab16(off2, v);
  }
}

/* Outputs o..o+n-1 (n 1..4; n = 1: output o alone, its K4 bytes), slowly but
 * for any sum (how: multiplier stride (0 or 1) << 1 | full int8 range): the first output of 5, 9..., the last 2 or 3, and a block that
 * met a tie (done again from the start: the expanded input and the constants
 * are intact, its earlier bytes come out the same). Near a tie: the
 * reference's double expression. Output o's weights start at word o * nq. */
__attribute__((noinline)) static void tb_cm4_fc_exact(const tb_cm4_fc_ctx *c, int32_t o,
                                                      int32_t n, int32_t how) {
  const int32_t qs = how >> 1, full = how & 1;
  const uint32_t *pw = c->weights + o * c->nq;
  int32_t acc[4], j, v;
  if (n == 1) {
    acc[0] = tb_cm4_fc_row1(c->px, pw, c->nq, c->bias[o]);
  } else {
    tb_cm4_fc_rows4(c->px, pw, c->nq, c->bias + o, acc);
  }
  for (j = 0; j < n; ++j) {
    const int32_t q = (o + j) * qs;
    if (!tb_cm4_fc_fixed(acc[j], c->mult[q], &v)) {
      v = tb_round_half_away((double)acc[j] * c->real_mul[q]);
    }
    c->out[o + j] = tb_cm4_fc_clamp(v + c->zp, c, full);
  }
}

/* Output o + j from acc_j: the fixed-point form, or on to near_tie. */
#define TB_CM4_FC_OUT(j, acc_j, q_j)                            \
  do {                                                        \
    int32_t v_;                                               \
    if (!tb_cm4_fc_fixed(acc_j, q_j, &v_)) goto near_tie;     \
    out[j] = tb_cm4_fc_clamp(v_ + c->zp, c, full);            \
  } while (0)

/* One row of inputs (expanded in c->px) to its outputs. per_channel and full
 * are constants in each copy the entry point calls; whole blocks of 4 outputs
 * take the fixed-point form with no call and no per-output decision, the
 * per-tensor copy reading its one tb_cm4_fc_mult once per block (the block's
 * inner loop needs every register). */
TB_INLINE void tb_cm4_fc_row(const tb_cm4_fc_ctx *c, int per_channel, int full) {
  const int32_t outs = c->outs, how = per_channel << 1 | full;
  int32_t o = 0;
  if ((outs & 3) == 1) {   /* the first output, alone: its K4 bytes come first */
    tb_cm4_fc_exact(c, 0, 1, how);
    o = 1;
  }
  for (; outs - o >= 4; o += 4) {
    int8_t *out;
    int32_t acc[4];
    tb_cm4_fc_rows4(c->px, c->weights + o * c->nq, c->nq, c->bias + o, acc);
    out = c->out + o;
    if (per_channel) {
      const tb_cm4_fc_mult *q = c->mult + o;
      TB_CM4_FC_OUT(0, acc[0], q[0]);
      TB_CM4_FC_OUT(1, acc[1], q[1]);
      TB_CM4_FC_OUT(2, acc[2], q[2]);
      TB_CM4_FC_OUT(3, acc[3], q[3]);
    } else {   /* read before the first store: the output may alias it */
      const tb_cm4_fc_mult q = *c->mult;
      TB_CM4_FC_OUT(0, acc[0], q);
      TB_CM4_FC_OUT(1, acc[1], q);
      TB_CM4_FC_OUT(2, acc[2], q);
      TB_CM4_FC_OUT(3, acc[3], q);
    }
    continue;
  near_tie:
    tb_cm4_fc_exact(c, o, 4, how);
  }
  if (o < outs) tb_cm4_fc_exact(c, o, outs - o, how);
}
#undef TB_CM4_FC_OUT

/* The layer, one row of inputs after the other. */
TB_INLINE void tb_cm4_fc_layer(const tb_fc_params *p, const int8_t *input, const int8_t *weights,
                               const int32_t *rq, const double *real_mul, int8_t *output,
                               void *scratch, int per_channel, int full) {
  const int32_t k = p->in_features, outs = p->out_features;
  const int32_t n_rows = p->rows > 0 ? p->rows : 1;
  const uint32_t off2 = ((uint32_t)p->input_offset & 0xFFFFu) * 0x10001u;
  tb_cm4_fc_ctx c;
  int32_t row;
  c.px = (const uint32_t *)scratch;
  c.weights = (const uint32_t *)(const void *)weights;
  c.bias = rq + 4;
  c.mult = (const tb_cm4_fc_mult *)(const void *)(c.bias + ((outs + 3) & ~3));
  c.real_mul = real_mul;
  c.nq = (k + 3) >> 2, c.outs = outs;
  c.zp = p->output_offset, c.lo = (int8_t)p->act_min, c.hi = (int8_t)p->act_max;
  for (row = 0; row < n_rows; ++row) {
    tb_cm4_fc_expand(input + row * k, k, off2, (uint32_t *)scratch);
    c.out = output + row * outs;
    tb_cm4_fc_row(&c, per_channel, full);
  }
}

/* The four specializations, each its own function (its own, smaller frame). */
#define TB_CM4_FC_VARIANT(name, per_channel, full)                                            \
  __attribute__((noinline)) static void name(const tb_fc_params *p, const int8_t *input,      \
                                             const int8_t *weights, const int32_t *rq,        \
                                             const double *real_mul, int8_t *output,          \
                                             void *scratch) {                                 \
    tb_cm4_fc_layer(p, input, weights, rq, real_mul, output, scratch, per_channel, full);     \
  }
TB_CM4_FC_VARIANT(tb_cm4_fc_tensor_full, 0, 1)
TB_CM4_FC_VARIANT(tb_cm4_fc_tensor_clamp, 0, 0)
TB_CM4_FC_VARIANT(tb_cm4_fc_channel_full, 1, 1)
TB_CM4_FC_VARIANT(tb_cm4_fc_channel_clamp, 1, 0)
#undef TB_CM4_FC_VARIANT

void tb_cm4_fully_connected_s8(const tb_fc_params *p, const int8_t *input,
                               const int8_t *weights, const int32_t *rq, const double *real_mul,
                               int8_t *output, void *scratch) {
  const int32_t flags = rq[0];
  if (flags & TB_CM4_FC_PER_CHANNEL) {
    if (flags & TB_CM4_FC_FULLRANGE) {
      tb_cm4_fc_channel_full(p, input, weights, rq, real_mul, output, scratch);
    } else {
      tb_cm4_fc_channel_clamp(p, input, weights, rq, real_mul, output, scratch);
    }
  } else if (flags & TB_CM4_FC_FULLRANGE) {
    tb_cm4_fc_tensor_full(p, input, weights, rq, real_mul, output, scratch);
  } else {
    tb_cm4_fc_tensor_clamp(p, input, weights, rq, real_mul, output, scratch);
  }
}
