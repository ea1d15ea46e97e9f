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

/* ---- tb_cm4_fc_pairs_s8: two outputs per weight word -------------------------------
 *
 * Same arguments, requantization and exact fallback as tb_cm4_fully_connected_s8;
 * weights and biases laid out by targets/cortex_m4/kernels/cm4_fc_pairs.py.
 * Outputs go in pairs (A, B). For each pair and each two inputs (i0, i1) one
 * weight word holds the bytes [A_i0 + 128, B_i0, A_i1 + 128, B_i1] (A as an
 * unsigned byte, B signed), so the word's raw halfwords are the int16 values
 * 256 B_i + A_i + 128: one SMLAD on the raw word against the input pair
 * (x_i0, x_i1) adds 256 (B products) + (A products) + 128 (x_i0 + x_i1), and
 * SXTB16 ROR #8 of the word gives (B_i0, B_i1) for a second SMLAD: 4 MACs for
 * one SXTB16 and two SMLAD (the block-of-4 kernel above: two SXTB16). With
 * a = bias_A + 256 bias_B - 128 X + sum(raw words x inputs) and b = bias_B +
 * sum(B x inputs), X the sum of the row's expanded inputs (the pad's too:
 * the pad's A bytes are 128), A's accumulator is a - 256 b, all mod 2^32,
 * so exactly the reference's int32 sum.
 *
 * Per group of 4 inputs and 4 outputs (2 pairs): 2 LDM (the inputs' 2 words,
 * the weights' 4: 8 cycles), 4 SXTB16, 8 SMLAD = 20 cycles, 14 instructions
 * for 16 MACs (6 LDR in one pipelined run would save a cycle for 4 more
 * instructions); 8 groups per loop pass, entered part way (TBB) for K4 / 4
 * not a multiple of 8. With 4n + 1 outputs the first comes alone (its K4 plain
 * bytes, the one-row loop); with 4n + 3 a zero row completes the last block;
 * with 4n + 2 the last pair runs a one-pair loop.
 * rq: header {flags, 0, 0, 0}, per output slot its starting value (the lone
 * output: its bias; a pair: bias_A + 256 bias_B mod 2^32, bias_B), padded to
 * a multiple of 4, then the tb_cm4_fc_mult records as above. */

/* tb_cm4_fc_expand, also returning 128 times the sum of the expanded values
 * (mod 2^32; the pad's too): the pairs' correction. */
static uint32_t tb_cm4_fcp_expand(const int8_t *input, int32_t k, uint32_t off2, uint32_t *px) {
  const uint32_t ones = 0x00010001u;
  int32_t i = k & ~3, sum = 0;
  if (i < k) {
    uint32_t v = 0;
    int32_t j;
    for (j = k - 1; j >= i; --j) v = v << 8 | (uint8_t)input[j];
    px[(i >> 1) + 1] = tb_sxtab16_ror8(off2, v);
    px[i >> 1] = tb_sxtab16(off2, v);
    sum = tb_smlad(px[i >> 1], ones, tb_smlad(px[(i >> 1) + 1], ones, sum));
  }
  for (i -= 4; i >= 0; i -= 4) {
    const uint32_t v = tb_ld32(input + i);
    const uint32_t hi = tb_sxtab16_ror8(off2, v), lo = tb_sxtab16(off2, v);
    px[(i >> 1) + 1] = hi;
    px[i >> 1] = lo;
    sum = tb_smlad(lo, ones, tb_smlad(hi, ones, sum));
  }
  return (uint32_t)sum << 7;
}

#ifndef TB_CM4_DSP
/* The host's form of the pair blocks below (npairs 2 or 3): what their
 * assembly computes, for the tests that run the kernels on the host. */
static const uint32_t *tb_cm4_fc_pairs_c(const uint32_t *px, const uint32_t *pw, int32_t nq,
                                         const int32_t *init, uint32_t x128, int32_t *acc,
                                         int32_t npairs) {
  uint32_t a[3], b[3];
  int32_t g, r;
  for (r = 0; r < npairs; ++r) a[r] = (uint32_t)init[2 * r] - x128, b[r] = (uint32_t)init[2 * r + 1];
  for (g = 0; g < nq; ++g, px += 2, pw += 2 * npairs) {
    for (r = 0; r < npairs; ++r) {
      a[r] = (uint32_t)tb_smlad(pw[2 * r], px[0], (int32_t)a[r]);
      b[r] = (uint32_t)tb_smlad(tb_sxtb16_ror8(pw[2 * r]), px[0], (int32_t)b[r]);
      a[r] = (uint32_t)tb_smlad(pw[2 * r + 1], px[1], (int32_t)a[r]);
      b[r] = (uint32_t)tb_smlad(tb_sxtb16_ror8(pw[2 * r + 1]), px[1], (int32_t)b[r]);
    }
  }
  for (r = 0; r < npairs; ++r) acc[2 * r] = (int32_t)(a[r] - (b[r] << 8)), acc[2 * r + 1] = (int32_t)b[r];
  return pw;
}
#endif

/* Two pairs (4 outputs) over nq groups of 4 inputs, from the pairs' starting
 * values init[0..3]; acc[0..3] gets the 4 outputs' sums. Returns the next
 * block's weights. */
TB_INLINE const uint32_t *tb_cm4_fcp_block(const uint32_t *px, const uint32_t *pw, int32_t nq,
                                           const int32_t *init, uint32_t x128, int32_t *acc) {
#ifdef TB_CM4_DSP
  register uint32_t a0 __asm__("r0");
  register uint32_t b0 __asm__("r1");
  register uint32_t a1 __asm__("r2");
  register uint32_t b1 __asm__("r3");
  register uint32_t w0 __asm__("r4") = (uint32_t)init;
  register uint32_t w1 __asm__("r5") = x128;
  register uint32_t w2 __asm__("r6");
  register uint32_t w3 __asm__("r7");
  register uint32_t xa __asm__("r8") = (uint32_t)nq;
  register uint32_t xb __asm__("r9");
  register const uint32_t *rx __asm__("r10") = px;
  register const uint32_t *rw __asm__("r11") = pw;
  register const uint32_t *end __asm__("r12") = px + 2 * nq;
  register int32_t *dst __asm__("lr") = acc;
#define TB_CM4_FCP_GROUP                                     \
  "ldmia %[rx]!, {%[xa], %[xb]}\n\t"                         \
  "ldmia %[rw]!, {%[w0], %[w1], %[w2], %[w3]}\n\t"           \
  "smlad %[a0], %[w0], %[xa], %[a0]\n\t"                     \
  "sxtb16 %[w0], %[w0], ror #8\n\t"                          \
  "smlad %[b0], %[w0], %[xa], %[b0]\n\t"                     \
  "smlad %[a0], %[w1], %[xb], %[a0]\n\t"                     \
  "sxtb16 %[w1], %[w1], ror #8\n\t"                          \
  "smlad %[b0], %[w1], %[xb], %[b0]\n\t"                     \
  "smlad %[a1], %[w2], %[xa], %[a1]\n\t"                     \
  "sxtb16 %[w2], %[w2], ror #8\n\t"                          \
  "smlad %[b1], %[w2], %[xa], %[b1]\n\t"                     \
  "smlad %[a1], %[w3], %[xb], %[a1]\n\t"                     \
  "sxtb16 %[w3], %[w3], ror #8\n\t"                          \
  "smlad %[b1], %[w3], %[xb], %[b1]\n\t"
  __asm__ volatile(
      "ldmia %[w0], {%[a0], %[b0], %[a1], %[b1]}\n\t"
      "sub %[a0], %[a0], %[w1]\n\t"
      "sub %[a1], %[a1], %[w1]\n\t"
      /* nq % 8 groups first: enter the 8-group body at group 8 - nq % 8 */
      "ands %[xa], %[xa], #7\n\t"
      "tbb [pc, %[xa]]\n\t"
      "0:\n\t"
      ".byte (1f-0b)/2, (17f-0b)/2, (16f-0b)/2, (15f-0b)/2\n\t"
      ".byte (14f-0b)/2, (13f-0b)/2, (12f-0b)/2, (11f-0b)/2\n\t"
      "1:\n\t" TB_CM4_FCP_GROUP
      "11:\n\t" TB_CM4_FCP_GROUP
      "12:\n\t" TB_CM4_FCP_GROUP
      "13:\n\t" TB_CM4_FCP_GROUP
      "14:\n\t" TB_CM4_FCP_GROUP
      "15:\n\t" TB_CM4_FCP_GROUP
      "16:\n\t" TB_CM4_FCP_GROUP
      "17:\n\t" TB_CM4_FCP_GROUP
      "cmp %[rx], %[end]\n\t"
      "bne 1b\n\t"
      "sub %[a0], %[a0], %[b0], lsl #8\n\t"
      "sub %[a1], %[a1], %[b1], lsl #8\n\t"
      "stmia %[dst], {%[a0], %[b0], %[a1], %[b1]}\n\t"
      : [a0] "=&r"(a0), [b0] "=&r"(b0), [a1] "=&r"(a1), [b1] "=&r"(b1), [w0] "+r"(w0),
        [w1] "+r"(w1), [w2] "=&r"(w2), [w3] "=&r"(w3), [xa] "+r"(xa), [xb] "=&r"(xb),
        [rx] "+r"(rx), [rw] "+r"(rw)
      : [end] "r"(end), [dst] "r"(dst)
      : "cc", "memory");
#undef TB_CM4_FCP_GROUP
  return rw;
#else
  return tb_cm4_fc_pairs_c(px, pw, nq, init, x128, acc, 2);
#endif
}

/* The sums of n outputs (whole blocks; n <= TB_CM4_FCP_CHUNK) into acc, from
 * their starting values init; returns the next weights. Out of line: one
 * copy of the block loop for the four specializations. */
__attribute__((noinline)) static const uint32_t *tb_cm4_fcp_sums(
    const uint32_t *px, const uint32_t *pw, int32_t nq, const int32_t *init, uint32_t x128,
    int32_t *acc, int32_t n) {
  int32_t j;
  for (j = 0; j < n; j += 4) pw = tb_cm4_fcp_block(px, pw, nq, init + j, x128, acc + j);
  return pw;
}

/* One pair over nq groups (the last pair of 4n + 2 outputs), two groups per pass. */
static void tb_cm4_fcp_pair(const uint32_t *px, const uint32_t *pw, int32_t nq,
                            const int32_t *init, uint32_t x128, int32_t *acc) {
  uint32_t a = (uint32_t)init[0] - x128, b = (uint32_t)init[1];
  const uint32_t *const end = px + 2 * nq;
  if (nq & 1) {
    const uint32_t w0 = pw[0], w1 = pw[1];
    a = (uint32_t)tb_smlad(w1, px[1], tb_smlad(w0, px[0], (int32_t)a));
    b = (uint32_t)tb_smlad(tb_sxtb16_ror8(w1), px[1],
                           tb_smlad(tb_sxtb16_ror8(w0), px[0], (int32_t)b));
    px += 2, pw += 2;
  }
  for (; px != end; px += 4, pw += 4) {
    const uint32_t x0 = px[0], x1 = px[1], x2 = px[2], x3 = px[3];
    const uint32_t w0 = pw[0], w1 = pw[1], w2 = pw[2], w3 = pw[3];
    a = (uint32_t)tb_smlad(w0, x0, (int32_t)a);
    b = (uint32_t)tb_smlad(tb_sxtb16_ror8(w0), x0, (int32_t)b);
    a = (uint32_t)tb_smlad(w1, x1, (int32_t)a);
    b = (uint32_t)tb_smlad(tb_sxtb16_ror8(w1), x1, (int32_t)b);
    a = (uint32_t)tb_smlad(w2, x2, (int32_t)a);
    b = (uint32_t)tb_smlad(tb_sxtb16_ror8(w2), x2, (int32_t)b);
    a = (uint32_t)tb_smlad(w3, x3, (int32_t)a);
    b = (uint32_t)tb_smlad(tb_sxtb16_ror8(w3), x3, (int32_t)b);
  }
  acc[0] = (int32_t)(a - (b << 8)), acc[1] = (int32_t)b;
}

/* Near a tie: the reference's double expression for output o. */
__attribute__((noinline)) static int32_t tb_cm4_fcp_double(const tb_cm4_fc_ctx *c, int32_t q,
                                                           int32_t acc) {
  return tb_round_half_away((double)acc * c->real_mul[q]);
}

/* tb_cm4_fc_fixed with one rarely taken branch: P = |acc| R + |acc| +
 * 2^(31+t) (one UMLAL onto the 64-bit {2^(t-1), |acc|}); with F = P mod 2^(32+t), F - |acc| is the fraction
 * tb_cm4_fc_fixed tests, and it is within |acc| of a tie exactly when
 * F < 2 |acc|, i.e. P's high word has no fraction bits and lo / 2 < |acc|;
 * otherwise subtracting |acc| does not cross a multiple of 2^(32+t), so the
 * rounded value is P's high word >> t. Returns 0 near a tie. */
TB_INLINE int tb_cm4_fcp_fixed(int32_t acc, tb_cm4_fc_mult q, int32_t *c) {
  const uint32_t s = (uint32_t)(acc >> 31), a = ((uint32_t)acc ^ s) - s;
  uint32_t lo = a, hi = q.half;
#ifdef TB_CM4_DSP
  __asm__("umlal %0, %1, %2, %3" : "+r"(lo), "+r"(hi) : "r"(a), "r"(q.r));
#else
  const uint64_t prod = (uint64_t)a * q.r + a + ((uint64_t)q.half << 32);
  lo = (uint32_t)prod, hi = (uint32_t)(prod >> 32);
#endif
  if (__builtin_expect((hi & q.mask) == 0 && lo >> 1 < a, 0)) return 0;
  *c = (int32_t)(((hi >> q.t) ^ s) - s);
  return 1;
}

/* Outputs o..o+n-1 from their sums acc[0..n-1]: the fixed-point form, or
 * near a tie the double. The per-tensor record and the activation range are
 * read before the first store (the output may alias them). */
TB_INLINE void tb_cm4_fcp_outputs(const tb_cm4_fc_ctx *c, int32_t o, int32_t n,
                                  const int32_t *acc, int per_channel, int full) {
  const tb_cm4_fc_mult q0 = *c->mult;
  const tb_cm4_fc_mult *m = c->mult + o;      /* per-channel: output o's record */
  const int32_t zp = c->zp, lo = c->lo, hi = c->hi;
  int8_t *out = c->out + o, *const end = out + n;
  for (; out != end; ++out, ++acc) {
    const tb_cm4_fc_mult q = per_channel ? *m++ : q0;
    int32_t v;
    if (!tb_cm4_fcp_fixed(*acc, q, &v)) {
      v = tb_cm4_fcp_double(c, per_channel ? (int32_t)(out - c->out) : 0, *acc);
    }
    v += zp;
    *out = (int8_t)(full ? tb_ssat8(v) : tb_clamp(v, lo, hi));
  }
}

/* The four specializations, out of line: the loop gets every register. */
#define TB_CM4_FCP_RQ(name, per_channel, full)                                                \
  __attribute__((noinline)) static void name(const tb_cm4_fc_ctx *c, int32_t o, int32_t n,   \
                                             const int32_t *acc) {                            \
    tb_cm4_fcp_outputs(c, o, n, acc, per_channel, full);                                      \
  }
TB_CM4_FCP_RQ(tb_cm4_fcp_rq_tensor_full, 0, 1)
TB_CM4_FCP_RQ(tb_cm4_fcp_rq_tensor_clamp, 0, 0)
TB_CM4_FCP_RQ(tb_cm4_fcp_rq_channel_full, 1, 1)
TB_CM4_FCP_RQ(tb_cm4_fcp_rq_channel_clamp, 1, 0)
#undef TB_CM4_FCP_RQ

/* A specialization's requantization loop. */
typedef void (*tb_cm4_fcp_rq)(const tb_cm4_fc_ctx *c, int32_t o, int32_t n, const int32_t *acc);

#define TB_CM4_FCP_CHUNK 16   /* outputs summed before they are requantized */

/* One row of inputs (expanded in c->px) to its outputs: with 4n + 1 outputs
 * the first alone, then blocks of 2 pairs (their sums TB_CM4_FCP_CHUNK at a
 * time, then requantized by rq in one loop: the block's loop needs every
 * register; 4n + 3 outputs: the last block's fourth is a zero row), with
 * 4n + 2 the last pair alone. */
static void tb_cm4_fcp_row(const tb_cm4_fc_ctx *c, uint32_t x128, tb_cm4_fcp_rq rq) {
  const int32_t outs = c->outs, nq = c->nq, tail = outs & 3;
  const int32_t blocks_end = tail == 2 ? outs - 2 : outs;
  const uint32_t *pw = c->weights;
  int32_t o = 0, acc[TB_CM4_FCP_CHUNK];
  if (tail == 1) {
    acc[0] = tb_cm4_fc_row1(c->px, pw, nq, c->bias[0]);
    rq(c, 0, 1, acc);
    pw += nq, o = 1;
  }
  while (o < blocks_end) {
    const int32_t n = blocks_end - o < TB_CM4_FCP_CHUNK ? blocks_end - o : TB_CM4_FCP_CHUNK;
    pw = tb_cm4_fcp_sums(c->px, pw, nq, c->bias + o, x128, acc, n);
    rq(c, o, n, acc);
    o += n;
  }
  if (tail == 2) {
    tb_cm4_fcp_pair(c->px, pw, nq, c->bias + o, x128, acc);
    rq(c, o, 2, acc);
  }
}

/* The layer, one row of inputs after the other, requantized by the loop
 * rq[0]'s flags name (per-tensor or per-channel, full range or clamped). */
void tb_cm4_fc_pairs_s8(const tb_fc_params *p, const int8_t *input, const int8_t *weights,
                        const int32_t *rq, const double *real_mul, int8_t *output, void *scratch);
void tb_cm4_fc_pairs_s8(const tb_fc_params *p, const int8_t *input, const int8_t *weights,
                        const int32_t *rq, const double *real_mul, int8_t *output, void *scratch) {
  static const tb_cm4_fcp_rq loops[4] = {tb_cm4_fcp_rq_tensor_clamp, tb_cm4_fcp_rq_tensor_full,
                                         tb_cm4_fcp_rq_channel_clamp, tb_cm4_fcp_rq_channel_full};
  const tb_cm4_fcp_rq loop = loops[(rq[0] & TB_CM4_FC_PER_CHANNEL ? 2 : 0) +
                                   (rq[0] & TB_CM4_FC_FULLRANGE ? 1 : 0)];
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
    uint32_t x128 = 0;   /* one output: no pair, no correction */
    if (outs > 1) {
      x128 = tb_cm4_fcp_expand(input + row * k, k, off2, (uint32_t *)scratch);
    } else {
      tb_cm4_fc_expand(input + row * k, k, off2, (uint32_t *)scratch);
    }
    c.out = output + row * outs;
    tb_cm4_fcp_row(&c, x128, loop);
  }
}

/* ---- tb_cm4_fc_fused_s8: pairs with the requantization in the block's assembly -----
 *
 * The inner loop of tb_cm4_fc_pairs_s8 (same pair words, same +128 algebra),
 * but each block of 4 outputs is requantized and stored while its sums are in
 * registers: no sums through the stack, no call per 16 outputs. Build side:
 * targets/cortex_m4/kernels/cm4_fc_fused.py. Out features a multiple of 4.
 *
 * Weights: per block of 4 outputs its 4 starting values (as the pairs kernel's
 * rq holds them) and then its nq groups of pair words; the pointer runs on
 * from block to block. rq: {flags, 0, 0, 0}, then {R, H, 2^t - 1, t}, one for
 * the layer or one per output, with R = round(m 2^(32+t)) < 2^31 (t >= 1:
 * quant.fc_double_fast) and H = 2^(t-1) + zp 2^t (zp folded: cm4_fc_fused
 * checks that no sum's top word can overflow).
 *
 * One output, acc signed: SMMLAR gives the top word of P4 = acc R + 2^31 +
 * H 2^32, so v = P4_hi >> t is round-half-up(acc m) + zp where P = acc R +
 * 2^(31+t) has its fraction F = P mod 2^(32+t) in [2^31, 2^(32+t) - 2^31):
 * exactly when P4_hi's t fraction bits are not all zero (one TST). There
 * a <= F < 2^(32+t) - a for a = |acc| <= 2^31, which is fc_double_fast's
 * condition for the reference's double rescale (rounding half away: for
 * acc < 0 it is symmetric, and floor(-y + 1/2) = -floor(y + 1/2) off a tie).
 * Otherwise (probability 2^-t) d = (acc R) mod 2^32 as a signed word is F + 2^31
 * - 2^31 mod 2^(32+t): |d| <= a is near a tie (the block leaves the assembly and
 * C computes the double), else v is right, less 1 when d < 0 (then F >=
 * 2^(32+t) - 2^31 and the 2^31 carried into the top word). */


/* The row's state; the assembly keeps its address in lr (offsets fixed). */
typedef struct {
  uint32_t r, h, mask, t;   /*  0: the per-tensor record */
  int32_t lo, hi;           /* 16: the activation range (clamped copies) */
  const uint32_t *px, *end; /* 24: the expanded input */
  uint32_t x128, entry;     /* 32: 128 X; nq % 8 */
  const uint32_t *rw;       /* 40: the next block's starting values and weights */
  int8_t *out, *out_end;    /* 44: the next block's outputs; the row's end */
  const uint32_t *q;        /* 52: per-channel: the next block's records */
  int32_t acc[4];           /* 56: a tie's sums (the block's last n of them) */
  uint32_t jump;            /* 72: the assembly's way into its loop for nq % 8 */
  int8_t *out_end6;         /* 76: the end of the row's blocks of 6 outputs */
  int32_t acc6[6];          /* 80: a tie's sums in a block of 6 */
} tb_cm4_fcf_frame;

/* Output v from acc with record q, as the assembly does; 0 near a tie. */
TB_INLINE int tb_cm4_fcf_fixed(int32_t acc, const uint32_t *q, int32_t *v) {
  int32_t hi = tb_smmlar(acc, (int32_t)q[0], (int32_t)q[1]);
  if (((uint32_t)hi & q[2]) == 0) {
    const int32_t d = (int32_t)((uint32_t)acc * q[0]);
    const uint32_t a = acc < 0 ? 0u - (uint32_t)acc : (uint32_t)acc;
    const uint32_t ad = d < 0 ? 0u - (uint32_t)d : (uint32_t)d;
    if (ad <= a) return 0;
    hi -= d < 0;
  }
  *v = hi >> q[3];
  return 1;
}

#ifdef TB_CM4_DSP
/* Output j (acc register ACC) of a block: record (per-channel: loaded from
 * r8), SMMLAR, the fraction test, shift, saturate, clamp, store. */
#define TB_CM4_FCF_OUT(ACC, j)                                                   \
  ".if %c[pc]\n\t ldmia r8!, {r4, r5, r6, r7}\n\t.endif\n\t"                      \
  "smmlar r10, " ACC ", r4, r5\n\t"                                              \
  "tst r10, r6\n\t"                                                              \
  "beq 4" #j "f\n\t"                                                             \
  "5" #j ":\n\t"                                                                 \
  "asr r10, r10, r7\n\t"                                                         \
  "ssat r10, #8, r10\n\t"                                                        \
  ".if %c[full] == 0\n\t"                                                        \
  ".if %c[pc]\n\t"                                                               \
  "ssub8 " ACC ", r10, r9\n\t sel r10, r10, r9\n\t"                             \
  "ssub8 " ACC ", r11, r10\n\t sel r10, r10, r11\n\t"                           \
  ".else\n\t"                                                                    \
  "ssub8 " ACC ", r10, r8\n\t sel r10, r10, r8\n\t"                             \
  "ssub8 " ACC ", r9, r10\n\t sel r10, r10, r9\n\t"                             \
  ".endif\n\t.endif\n\t"                                                         \
  "strb r10, [r12], #1\n\t"

/* Its rare path: d = acc R mod 2^32; |d| <= |acc|: near a tie, leave with
 * 4 - j outputs to do; else on, 1 less when d < 0. r8, r9 saved where they
 * hold the records' pointer or the activation range. */
#define TB_CM4_FCF_RARE(ACC, j)                                                  \
  "4" #j ":\n\t"                                                                 \
  ".if %c[pc] || %c[full] == 0\n\t push {r8, r9}\n\t.endif\n\t"                  \
  "mul r8, " ACC ", r4\n\t"                                                      \
  "eor r9, " ACC ", " ACC ", asr #31\n\t"                                        \
  "sub r9, r9, " ACC ", asr #31\n\t"                                             \
  "cmp r8, #0\n\t"                                                               \
  "itt lt\n\t"                                                                   \
  "sublt r10, r10, #1\n\t"                                                       \
  "rsblt r8, r8, #0\n\t"                                                         \
  "cmp r8, r9\n\t"                                                               \
  ".if %c[pc] || %c[full] == 0\n\t pop {r8, r9}\n\t.endif\n\t"                    \
  "bhi 5" #j "b\n\t"                                                             \
  "mov r10, #4 - " #j "\n\t"                                                     \
  "b 7f\n\t"

#define TB_CM4_FCF_GROUP                                     \
  "ldmia r10!, {r8, r9}\n\t"                                 \
  "ldmia r11!, {r4, r5, r6, r7}\n\t"                         \
  "smlad r0, r4, r8, r0\n\t"                                 \
  "sxtb16 r4, r4, ror #8\n\t"                                \
  "smlad r1, r4, r8, r1\n\t"                                 \
  "smlad r0, r5, r9, r0\n\t"                                 \
  "sxtb16 r5, r5, ror #8\n\t"                                \
  "smlad r1, r5, r9, r1\n\t"                                 \
  "smlad r2, r6, r8, r2\n\t"                                 \
  "sxtb16 r6, r6, ror #8\n\t"                                \
  "smlad r3, r6, r8, r3\n\t"                                 \
  "smlad r2, r7, r9, r2\n\t"                                 \
  "sxtb16 r7, r7, ror #8\n\t"                                \
  "smlad r3, r7, r9, r3\n\t"

/* Blocks from f->rw / f->out to f->out_end; returns 0, or after a block met a
 * tie n (1..4): its last n sums in f->acc[4-n..3], f->out at the first of
 * those n outputs, f->rw after the block. */
#define TB_CM4_FCF_BLOCKS(name, PER_CHANNEL, FULL)                                          \
  __attribute__((noinline)) static int32_t name(tb_cm4_fcf_frame *f) {                      \
    register tb_cm4_fcf_frame *fr __asm__("lr") = f;                                        \
    register int32_t n __asm__("r0");                                                       \
    __asm__ volatile(                                                                       \
        "ldr r11, [lr, #40]\n\t"                                                        \
        "ldr r8, [lr, #36]\n\t"                                                         \
        "adr.w r9, 0f\n\t"                                                              \
        "ldrb r8, [r9, r8]\n\t"                                                         \
        "add r8, r9, r8, lsl #1\n\t"                                                    \
        "add r8, r8, #1\n\t"                                                            \
        "str r8, [lr, #72]\n\t"                                                         \
        "b 10f\n\t"                                                                     \
        ".align 2\n\t"                                                                  \
        "0:\n\t"                                                                        \
        ".byte (1f-0b)/2, (17f-0b)/2, (16f-0b)/2, (15f-0b)/2\n\t"                       \
        ".byte (14f-0b)/2, (13f-0b)/2, (12f-0b)/2, (11f-0b)/2\n\t"                      \
        ".align 1\n\t"                                                                  \
        "1:\n\t" TB_CM4_FCF_GROUP "11:\n\t" TB_CM4_FCF_GROUP "12:\n\t" TB_CM4_FCF_GROUP     \
        "13:\n\t" TB_CM4_FCF_GROUP "14:\n\t" TB_CM4_FCF_GROUP "15:\n\t" TB_CM4_FCF_GROUP    \
        "16:\n\t" TB_CM4_FCF_GROUP "17:\n\t" TB_CM4_FCF_GROUP                               \
        "cmp r10, r12\n\t"                                                                  \
        "bne 1b\n\t"                                                                        \
        "sub r0, r0, r1, lsl #8\n\t"                                                        \
        "sub r2, r2, r3, lsl #8\n\t"                                                        \
        ".if %c[pc]\n\t"                                                                    \
        "ldr r8, [lr, #52]\n\t"                                                             \
        ".if %c[full] == 0\n\t"                                                             \
        "ldr r9, [lr, #16]\n\t str r11, [lr, #40]\n\t ldr r11, [lr, #20]\n\t"               \
        ".endif\n\t"                                                                        \
        ".elseif %c[full]\n\t"                                                              \
        "ldmia lr, {r4, r5, r6, r7}\n\t"                                                    \
        ".else\n\t"                                                                         \
        "ldmia lr, {r4, r5, r6, r7, r8, r9}\n\t"                                            \
        ".endif\n\t"                                                                        \
        "ldr r12, [lr, #44]\n\t"                                                            \
        TB_CM4_FCF_OUT("r0", 0) TB_CM4_FCF_OUT("r1", 1)                                     \
        TB_CM4_FCF_OUT("r2", 2) TB_CM4_FCF_OUT("r3", 3)                                     \
        "str r12, [lr, #44]\n\t"                                                            \
        ".if %c[pc]\n\t str r8, [lr, #52]\n\t"                                              \
        ".if %c[full] == 0\n\t ldr r11, [lr, #40]\n\t .endif\n\t .endif\n\t"                \
        "ldr r10, [lr, #48]\n\t"                                                        \
        "cmp r12, r10\n\t"                                                              \
        "beq 8f\n\t"                                                                    \
        "10:\n\t"                                                                       \
        "ldmia r11!, {r0, r1, r2, r3}\n\t"                                              \
        "ldr r5, [lr, #32]\n\t"                                                         \
        "ldr r10, [lr, #24]\n\t"                                                        \
        "ldr r12, [lr, #28]\n\t"                                                        \
        "ldr r8, [lr, #72]\n\t"                                                         \
        "sub r0, r0, r5\n\t"                                                            \
        "sub r2, r2, r5\n\t"                                                            \
        "bx r8\n\t"                                                                     \
        "8:\n\t"                                                                        \
        "movs r0, #0\n\t"                                                               \
        "b 9f\n\t"                                                                      \
        TB_CM4_FCF_RARE("r0", 0) TB_CM4_FCF_RARE("r1", 1)                                   \
        TB_CM4_FCF_RARE("r2", 2) TB_CM4_FCF_RARE("r3", 3)                                   \
        "7:\n\t"                                                                            \
        "add r8, lr, #56\n\t"                                                               \
        "stmia r8, {r0, r1, r2, r3}\n\t"                                                    \
        "str r12, [lr, #44]\n\t"                                                            \
        ".if %c[pc] == 0 || %c[full]\n\t str r11, [lr, #40]\n\t .endif\n\t"                 \
        "mov r0, r10\n\t"                                                                   \
        "9:\n\t"                                                                            \
        : "=r"(n), "+r"(fr)                                                                 \
        : [pc] "i"(PER_CHANNEL), [full] "i"(FULL)                                           \
        : "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "cc",  \
          "memory");                                                                        \
    return n;                                                                               \
  }

/* Blocks of 6 outputs (3 pairs; per-tensor, full range): 29 cycles per group
 * of 4 inputs (24 MACs: 3 LDM, 6 SXTB16, 12 SMLAD) against 30 for the 4-block
 * loop's 24 MACs, and a block's set-up and stores shared by 6 outputs. The
 * loop needs 14 registers (6 sums, 2 input words, 3 weight words, 2 pointers,
 * the end), so the row's constants live on the stack (sp: x128, jump, px,
 * end, R, H, mask, t, out, out_end6, the frame, a spill slot). Output j's rare
 * path takes lr and the finished sum register r(j-1) as scratch (output 0: r12,
 * spilled), so it needs no push. */
#define TB_CM4_FCF6_GROUP                                    \
  "ldmia r11!, {r6, r7}\n\t"                                 \
  "ldmia r12!, {r8, r9, r10}\n\t"                            \
  "smlad r0, r8, r6, r0\n\t"                                 \
  "sxtb16 r8, r8, ror #8\n\t"                                \
  "smlad r1, r8, r6, r1\n\t"                                 \
  "smlad r0, r9, r7, r0\n\t"                                 \
  "sxtb16 r9, r9, ror #8\n\t"                                \
  "smlad r1, r9, r7, r1\n\t"                                 \
  "smlad r2, r10, r6, r2\n\t"                                \
  "sxtb16 r10, r10, ror #8\n\t"                              \
  "smlad r3, r10, r6, r3\n\t"                                \
  "ldmia r12!, {r8, r9, r10}\n\t"                            \
  "smlad r2, r8, r7, r2\n\t"                                 \
  "sxtb16 r8, r8, ror #8\n\t"                                \
  "smlad r3, r8, r7, r3\n\t"                                 \
  "smlad r4, r9, r6, r4\n\t"                                 \
  "sxtb16 r9, r9, ror #8\n\t"                                \
  "smlad r5, r9, r6, r5\n\t"                                 \
  "smlad r4, r10, r7, r4\n\t"                                \
  "sxtb16 r10, r10, ror #8\n\t"                              \
  "smlad r5, r10, r7, r5\n\t"

/* Output j of a block of 6 (sum in ACC): R r6, H r7, mask r8, t r9, out r10. */
#define TB_CM4_FCF6_OUT(ACC, j)                                                  \
  "smmlar r11, " ACC ", r6, r7\n\t"                                              \
  "tst r11, r8\n\t"                                                              \
  "beq 4" #j "f\n\t"                                                             \
  "5" #j ":\n\t"                                                                 \
  "asr r11, r11, r9\n\t"                                                         \
  "ssat r11, #8, r11\n\t"                                                        \
  "strb r11, [r10], #1\n\t"

/* Its rare path (TB_CM4_FCF_RARE's test), scratch lr and SCR. */
#define TB_CM4_FCF6_RARE(ACC, j, SCR, SAVE, RESTORE)                             \
  "4" #j ":\n\t"                                                                 \
  SAVE                                                                           \
  "mul lr, " ACC ", r6\n\t"                                                      \
  "eor " SCR ", " ACC ", " ACC ", asr #31\n\t"                                   \
  "sub " SCR ", " SCR ", " ACC ", asr #31\n\t"                                   \
  "cmp lr, #0\n\t"                                                               \
  "itt lt\n\t"                                                                   \
  "sublt r11, r11, #1\n\t"                                                       \
  "rsblt lr, lr, #0\n\t"                                                         \
  "cmp lr, " SCR "\n\t"                                                          \
  RESTORE                                                                        \
  "bhi 5" #j "b\n\t"                                                             \
  "mov r11, #6 - " #j "\n\t"                                                     \
  "b 7f\n\t"

/* Blocks of 6 from f->rw / f->out to f->out_end6 (at least one); returns 0,
 * or after a block met a tie n (1..6): its last n sums in f->acc6[6-n..5],
 * f->out at the first of those n outputs, f->rw after the block. */
__attribute__((noinline)) static int32_t tb_cm4_fcf_tensor_full6(tb_cm4_fcf_frame *f) {
  register tb_cm4_fcf_frame *fr __asm__("lr") = f;
  register int32_t n __asm__("r0");
  __asm__ volatile(
      "ldr r8, [lr, #36]\n\t"
      "adr.w r9, 0f\n\t"
      "ldrh r8, [r9, r8, lsl #1]\n\t"
      "add r1, r9, r8, lsl #1\n\t"
      "add r1, r1, #1\n\t"
      "ldmia lr, {r4, r5, r6, r7}\n\t"
      "ldr r2, [lr, #24]\n\t"
      "ldr r3, [lr, #28]\n\t"
      "ldr r0, [lr, #32]\n\t"
      "ldr r8, [lr, #44]\n\t"
      "ldr r9, [lr, #76]\n\t"
      "ldr r12, [lr, #40]\n\t"
      "mov r10, lr\n\t"
      "push {r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11}\n\t"
      "b 10f\n\t"
      ".align 2\n\t"
      "0:\n\t"
      ".hword (1f-0b)/2, (17f-0b)/2, (16f-0b)/2, (15f-0b)/2\n\t"
      ".hword (14f-0b)/2, (13f-0b)/2, (12f-0b)/2, (11f-0b)/2\n\t"
      "1:\n\t" TB_CM4_FCF6_GROUP "11:\n\t" TB_CM4_FCF6_GROUP "12:\n\t" TB_CM4_FCF6_GROUP
      "13:\n\t" TB_CM4_FCF6_GROUP "14:\n\t" TB_CM4_FCF6_GROUP "15:\n\t" TB_CM4_FCF6_GROUP
      "16:\n\t" TB_CM4_FCF6_GROUP "17:\n\t" TB_CM4_FCF6_GROUP
      "cmp r11, lr\n\t"
      "bne 1b\n\t"
      "sub r0, r0, r1, lsl #8\n\t"
      "sub r2, r2, r3, lsl #8\n\t"
      "sub r4, r4, r5, lsl #8\n\t"
      "add r6, sp, #16\n\t"
      "ldmia r6, {r6, r7, r8, r9, r10}\n\t"
      TB_CM4_FCF6_OUT("r0", 0) TB_CM4_FCF6_OUT("r1", 1) TB_CM4_FCF6_OUT("r2", 2)
      TB_CM4_FCF6_OUT("r3", 3) TB_CM4_FCF6_OUT("r4", 4) TB_CM4_FCF6_OUT("r5", 5)
      "str r10, [sp, #32]\n\t"
      "ldr r11, [sp, #36]\n\t"
      "cmp r10, r11\n\t"
      "beq 8f\n\t"
      "10:\n\t"
      "ldmia r12!, {r0, r1, r2, r3, r4, r5}\n\t"
      "ldmia sp, {r6, r7, r11, lr}\n\t"
      "sub r0, r0, r6\n\t"
      "sub r2, r2, r6\n\t"
      "sub r4, r4, r6\n\t"
      "bx r7\n\t"
      TB_CM4_FCF6_RARE("r0", 0, "r12", "str r12, [sp, #44]\n\t", "ldr r12, [sp, #44]\n\t")
      TB_CM4_FCF6_RARE("r1", 1, "r0", "", "") TB_CM4_FCF6_RARE("r2", 2, "r1", "", "")
      TB_CM4_FCF6_RARE("r3", 3, "r2", "", "") TB_CM4_FCF6_RARE("r4", 4, "r3", "", "")
      TB_CM4_FCF6_RARE("r5", 5, "r4", "", "")
      "7:\n\t"
      "ldr lr, [sp, #40]\n\t"
      "add sp, sp, #48\n\t"
      "add r6, lr, #80\n\t"
      "stmia r6, {r0, r1, r2, r3, r4, r5}\n\t"
      "str r12, [lr, #40]\n\t"
      "str r10, [lr, #44]\n\t"
      "mov r0, r11\n\t"
      "b 9f\n\t"
      "8:\n\t"
      "ldr lr, [sp, #40]\n\t"
      "add sp, sp, #48\n\t"
      "str r12, [lr, #40]\n\t"
      "str r10, [lr, #44]\n\t"
      "movs r0, #0\n\t"
      "9:\n\t"
      : "=r"(n), "+r"(fr)
      :
      : "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "cc",
        "memory");
  return n;
}
#else
/* The same, in C (the host tests). */
#define TB_CM4_FCF_BLOCKS(name, PER_CHANNEL, FULL)                                          \
  static int32_t name(tb_cm4_fcf_frame *f) {                                                \
    const int32_t nq = (int32_t)(f->end - f->px) / 2;                                       \
    while (f->out != f->out_end) {                                                          \
      int32_t acc[4], j, v;                                                                 \
      const uint32_t *init = f->rw;                                                         \
      f->rw = tb_cm4_fcp_block(f->px, init + 4, nq, (const int32_t *)init, f->x128, acc);   \
      for (j = 0; j < 4; ++j) {                                                             \
        const uint32_t *q = PER_CHANNEL ? f->q : &f->r;                                     \
        if (!tb_cm4_fcf_fixed(acc[j], q, &v)) {                                             \
          memcpy(f->acc, acc, sizeof acc);                                                  \
          return 4 - j;                                                                     \
        }                                                                                   \
        if (PER_CHANNEL) f->q += 4;                                                         \
        v = tb_ssat8(v);                                                                    \
        *f->out++ = (int8_t)(FULL ? v : tb_clamp(v, f->lo, f->hi));                         \
      }                                                                                     \
    }                                                                                       \
    return 0;                                                                               \
  }

/* A block of 6 (3 pairs) over nq groups, from its starting values init; the
 * sums into acc; returns the next block's weights. */
static const uint32_t *tb_cm4_fcf_block6(const uint32_t *px, const uint32_t *pw, int32_t nq,
                                         const int32_t *init, uint32_t x128, int32_t *acc) {
  return tb_cm4_fc_pairs_c(px, pw, nq, init, x128, acc, 3);
}

/* tb_cm4_fcf_tensor_full6 in C (the host tests). */
static int32_t tb_cm4_fcf_tensor_full6(tb_cm4_fcf_frame *f) {
  const int32_t nq = (int32_t)(f->end - f->px) / 2;
  while (f->out != f->out_end6) {
    int32_t acc[6], j, v;
    const uint32_t *init = f->rw;
    f->rw = tb_cm4_fcf_block6(f->px, init + 6, nq, (const int32_t *)init, f->x128, acc);
    for (j = 0; j < 6; ++j) {
      if (!tb_cm4_fcf_fixed(acc[j], &f->r, &v)) {
        memcpy(f->acc6, acc, sizeof acc);
        return 6 - j;
      }
      *f->out++ = (int8_t)tb_ssat8(v);
    }
  }
  return 0;
}
#endif

TB_CM4_FCF_BLOCKS(tb_cm4_fcf_tensor_full, 0, 1)
TB_CM4_FCF_BLOCKS(tb_cm4_fcf_tensor_clamp, 0, 0)
TB_CM4_FCF_BLOCKS(tb_cm4_fcf_channel_full, 1, 1)
TB_CM4_FCF_BLOCKS(tb_cm4_fcf_channel_clamp, 1, 0)

/* tb_cm4_fcp_expand with two groups of 4 inputs per pass (back to front:
 * the 8 bytes are read before the 16 they become are written, so px may start
 * at the input): 2 LDR, 4 SXTAB16, one STMDB, 4 SMLAD for the sum. */
static uint32_t tb_cm4_fcf_expand(const int8_t *input, int32_t k, uint32_t off2, uint32_t *px) {
  const uint32_t ones = 0x00010001u;
  int32_t i = k & ~3, sum = 0;
  if (i < k) {   /* the last 1..3 inputs as a little-endian word */
    uint32_t v = 0;
    int32_t j;
    for (j = k - 1; j >= i; --j) v = v << 8 | (uint8_t)input[j];
    px[(i >> 1) + 1] = tb_sxtab16_ror8(off2, v);
    px[i >> 1] = tb_sxtab16(off2, v);
    sum = tb_smlad(px[i >> 1], ones, tb_smlad(px[(i >> 1) + 1], ones, sum));
  }
  if (i & 4) {   /* an odd number of whole groups: the last one alone */
    const uint32_t v = tb_ld32(input + i - 4);
    i -= 4;
    px[(i >> 1) + 1] = tb_sxtab16_ror8(off2, v);
    px[i >> 1] = tb_sxtab16(off2, v);
    sum = tb_smlad(px[i >> 1], ones, tb_smlad(px[(i >> 1) + 1], ones, sum));
  }
#ifdef TB_CM4_DSP
  if (i > 0) {
    register uint32_t v0 __asm__("r2");
    register uint32_t v1 __asm__("r3");
    register uint32_t l0 __asm__("r4");
    register uint32_t h0 __asm__("r5");
    register uint32_t l1 __asm__("r6");
    register uint32_t h1 __asm__("r7");
    const int8_t *in = input + i;
    uint32_t *out = px + (i >> 1);
    __asm__ volatile(
        "1:\n\t"
        "ldr %[v0], [%[in], #-8]\n\t"
        "ldr %[v1], [%[in], #-4]\n\t"
        "sub %[in], %[in], #8\n\t"
        "sxtab16 %[l0], %[off], %[v0]\n\t"
        "sxtab16 %[h0], %[off], %[v0], ror #8\n\t"
        "sxtab16 %[l1], %[off], %[v1]\n\t"
        "sxtab16 %[h1], %[off], %[v1], ror #8\n\t"
        "stmdb %[out]!, {%[l0], %[h0], %[l1], %[h1]}\n\t"
        "smlad %[s], %[l0], %[ones], %[s]\n\t"
        "smlad %[s], %[h0], %[ones], %[s]\n\t"
        "smlad %[s], %[l1], %[ones], %[s]\n\t"
        "smlad %[s], %[h1], %[ones], %[s]\n\t"
        "cmp %[in], %[start]\n\t"
        "bne 1b\n\t"
        : [v0] "=&r"(v0), [v1] "=&r"(v1), [l0] "=&r"(l0), [h0] "=&r"(h0), [l1] "=&r"(l1),
          [h1] "=&r"(h1), [in] "+r"(in), [out] "+r"(out), [s] "+r"(sum)
        : [off] "r"(off2), [ones] "r"(ones), [start] "r"(input)
        : "cc", "memory");
  }
#else
  for (i -= 4; i >= 0; i -= 4) {
    const uint32_t v = tb_ld32(input + i);
    const uint32_t hi = tb_sxtab16_ror8(off2, v), lo = tb_sxtab16(off2, v);
    px[(i >> 1) + 1] = hi;
    px[i >> 1] = lo;
    sum = tb_smlad(lo, ones, tb_smlad(hi, ones, sum));
  }
#endif
  return (uint32_t)sum << 7;
}

typedef int32_t (*tb_cm4_fcf_blocks)(tb_cm4_fcf_frame *f);

/* One row (expanded in f->px): the blocks, and after a tie the reference's
 * double for the block's remaining outputs. */
static void tb_cm4_fcf_row(tb_cm4_fcf_frame *f, tb_cm4_fcf_blocks blocks, const uint32_t *records,
                           const double *real_mul, int32_t per_channel, int32_t zp) {
  int8_t *const first = f->out;
  for (;;) {
    int32_t n, j;
    if (per_channel) f->q = records + 4 * (f->out - first);
    n = blocks(f);
    if (n == 0) return;
    for (j = 4 - n; j < 4; ++j) {
      const int32_t o = (int32_t)(f->out - first);
      const int32_t v = tb_round_half_away((double)f->acc[j] * real_mul[per_channel ? o : 0]) + zp;
      *f->out++ = (int8_t)tb_clamp(v, f->lo, f->hi);
    }
    if (f->out == f->out_end) return;
  }
}

/* A per-tensor full-range row's blocks of 6 (blocks6, up to f->out_end6),
 * and after a tie the reference's double for the block's remaining outputs. */
__attribute__((noinline)) static void tb_cm4_fcf_row6(tb_cm4_fcf_frame *f,
                                                      tb_cm4_fcf_blocks blocks6,
                                                      const double *real_mul, int32_t zp) {
  while (f->out != f->out_end6) {
    int32_t n = blocks6(f), j;
    if (n == 0) return;
    for (j = 6 - n; j < 6; ++j) {
      const int32_t v = tb_round_half_away((double)f->acc6[j] * real_mul[0]) + zp;
      *f->out++ = (int8_t)tb_ssat8(v);
    }
  }
}

/* The layer, one row of inputs after the other, its blocks run by the
 * specialization `blocks` (inlined in each entry point below: a model links
 * only the entry points it calls, and a small layer's call costs less). */
TB_INLINE void tb_cm4_fcf_layer(const tb_fc_params *p, const int8_t *input, const int8_t *weights,
                                const int32_t *rq, const double *real_mul, int8_t *output,
                                void *scratch, tb_cm4_fcf_blocks blocks,
                                tb_cm4_fcf_blocks blocks6, int32_t per_channel) {
  const int32_t k = p->in_features, outs = p->out_features, nq = (k + 3) >> 2;
  const int32_t n_rows = p->rows > 0 ? p->rows : 1;
  const uint32_t off2 = ((uint32_t)p->input_offset & 0xFFFFu) * 0x10001u;
  const uint32_t *records = (const uint32_t *)(const void *)(rq + 4);
  tb_cm4_fcf_frame f;
  int32_t row;
  memcpy(&f.r, records, 4 * sizeof(uint32_t));
  f.lo = p->act_min, f.hi = p->act_max;
  f.px = (const uint32_t *)scratch, f.end = f.px + 2 * nq;
  f.entry = (uint32_t)nq & 7u;
  for (row = 0; row < n_rows; ++row) {
    f.x128 = tb_cm4_fcf_expand(input + row * k, k, off2, (uint32_t *)scratch);
    f.rw = (const uint32_t *)(const void *)weights;
    f.out = output + row * outs, f.out_end = f.out + outs;
    if (blocks6) {   /* tb_cm4_fc_fused6_s8: rq[1] outputs in blocks of 6 first */
      f.out_end6 = f.out + rq[1];
      tb_cm4_fcf_row6(&f, blocks6, real_mul, p->output_offset);
      if (f.out == f.out_end) continue;
    }
    tb_cm4_fcf_row(&f, blocks, records, real_mul, per_channel, p->output_offset);
  }
}

/* One entry point per specialization (cm4_fc_fused.py picks it by the layer's
 * per-channel weights and activation range). */
#define TB_CM4_FCF_ENTRY(name, blocks, blocks6, per_channel)                                  \
  void name(const tb_fc_params *p, const int8_t *input, const int8_t *weights,              \
            const int32_t *rq, const double *real_mul, int8_t *output, void *scratch);      \
  void name(const tb_fc_params *p, const int8_t *input, const int8_t *weights,              \
            const int32_t *rq, const double *real_mul, int8_t *output, void *scratch) {     \
    tb_cm4_fcf_layer(p, input, weights, rq, real_mul, output, scratch, blocks, blocks6,    \
                     per_channel);                                                          \
  }
TB_CM4_FCF_ENTRY(tb_cm4_fc_fused_s8, tb_cm4_fcf_tensor_full, 0, 0)
TB_CM4_FCF_ENTRY(tb_cm4_fc_fused6_s8, tb_cm4_fcf_tensor_full, tb_cm4_fcf_tensor_full6, 0)
TB_CM4_FCF_ENTRY(tb_cm4_fc_fused_clamp_s8, tb_cm4_fcf_tensor_clamp, 0, 0)
TB_CM4_FCF_ENTRY(tb_cm4_fc_fused_pc_s8, tb_cm4_fcf_channel_full, 0, 1)
TB_CM4_FCF_ENTRY(tb_cm4_fc_fused_pc_clamp_s8, tb_cm4_fcf_channel_clamp, 0, 1)
#undef TB_CM4_FCF_ENTRY
