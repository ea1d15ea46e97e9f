/* ADD and AVERAGE_POOL_2D int8 for Cortex-M4 (DSP extension).
 *
 * ADD, bit-exact with tb_add_s8 (TFLite's general 8-bit add). The output
 * depends on the int8 pair (x1, x2) alone, so the build (cm4_prepare.
 * add_sum_tables) finds two tables of 256 int32, u1 by x1 and u2 by x2, whose
 * sum is the output x 2^16 + 128 x 2^16 plus rounding bits below, and checks
 * all 65,536 pairs: per element two table loads, one ADD, and the top
 * halfword saturated to 0..255 (USAT16 #8: the int8 limits) is the output
 * plus 128. The word loop (Cortex-M4) takes 16 elements per pass (a first 8
 * when size / 8 is odd), per word: 8 LDRB of indices and 8 LDR of table
 * entries in one pipelined run, 4 ADD, 2 PKHTB + 2 USAT16 + ORR pack 4
 * biased bytes, EOR 0x80808080 unbiases them, one STR; a fused activation
 * narrower than int8 clamps the 4 biased bytes with UQADD8, UQSUB8, UADD8
 * (the last also unbiases). When no such
 * tables exist (an input's range far wider than the output's), rq holds
 * {flags, M, B, e} and each input's rescale, and the sum is requantized with
 * tb_rq. All of an element's (a word's) inputs are read before its output is
 * written: the output may be either input or start before it (in place).
 *
 * AVERAGE_POOL_2D, bit-exact with tb_avg_pool2d_s8: the window sums of 8
 * (then 4) channels at a time accumulate in 16-bit lanes (SXTAB16 adds the
 * sign-extended bytes 0 and 2, or 1 and 3, of a word to two halfwords), exact
 * for windows of at most 256 positions (|sum| <= 256 * 128), two taps per
 * pass; then each channel is rounded and divided as the reference does, by
 * one multiply (tb_cm4_avg). The last 1-3 channels' sums take one pass over
 * the window together, in a function of their own (the reference's loop took
 * one per channel, slower than the reference itself on 1-2 tap windows of 3
 * channels; inlined, the loop over pixels spilled more: VWW's 3x3x256 pool
 * +3%). 4k+1 channels (k >= 1) have an entry point of their own,
 * tb_cm4_avg_pool2d_4k1_s8 (cm4_cost.accepts_avgpool_4k1_faster): the last
 * channel is byte 3 of the word of the last 4, summed before the 4k channels
 * (1x1x5: 413 cycles; through the tail function 477). Output pixels are
 * written in raster order after their window was read.
 */
#include "tb_cm4.h"

#define TB_CM4_RQ_FAST 1
#define TB_CM4_RQ_FULLRANGE 2
#define TB_CM4_ADD_SUMS 4 /* cm4_prepare.ADD_SUM_TABLES */

#ifdef TB_CM4_DSP
/* n8 = o_end - o > 0, a multiple of 8; u: u1 then u2 (1 KiB each). clamp[3]:
 * the UQADD8, UQSUB8, UADD8 operands (tb_cm4_add_clamp_words). */
void tb_cm4_add_sums8(const uint8_t *a, const uint8_t *c, int8_t *o, const int8_t *o_end,
                      const int32_t *u);
void tb_cm4_add_sums8_clamped(const uint8_t *a, const uint8_t *c, int8_t *o, const int8_t *o_end,
                              const int32_t *u, const uint32_t *clamp);

/* One word: elements a[off..off+3], c[off..off+3] -> o[off..off+3].
 * r0 a, r1 c, r2 o, r12 u1, lr u2; r4-r11 scratch. The 16 loads form one
 * run (each index register is used two loads after it was loaded). */
__asm__(
    ".macro tb_cm4_add_word off, clamp\n"
    "  ldrb r4, [r0, #\\off]\n"
    "  ldrb r5, [r0, #\\off+1]\n"
    "  ldrb r6, [r0, #\\off+2]\n"
    "  ldrb r7, [r0, #\\off+3]\n"
    "  ldrb r8, [r1, #\\off]\n"
    "  ldrb r9, [r1, #\\off+1]\n"
    "  ldrb r10, [r1, #\\off+2]\n"
    "  ldrb r11, [r1, #\\off+3]\n"
    "  ldr r4, [r12, r4, lsl #2]\n"
    "  ldr r5, [r12, r5, lsl #2]\n"
    "  ldr r6, [r12, r6, lsl #2]\n"
    "  ldr r7, [r12, r7, lsl #2]\n"
    "  ldr r8, [lr, r8, lsl #2]\n"
    "  ldr r9, [lr, r9, lsl #2]\n"
    "  ldr r10, [lr, r10, lsl #2]\n"
    "  ldr r11, [lr, r11, lsl #2]\n"
    "  add r4, r4, r8\n"
    "  add r5, r5, r9\n"
    "  add r6, r6, r10\n"
    "  add r7, r7, r11\n"
    "  pkhtb r4, r6, r4, asr #16\n" /* halfwords: sum0 >> 16, sum2 >> 16 */
    "  pkhtb r5, r7, r5, asr #16\n" /* sum1 >> 16, sum3 >> 16 */
    "  usat16 r4, #8, r4\n"
    "  usat16 r5, #8, r5\n"
    "  orr r4, r4, r5, lsl #8\n" /* bytes: out0..out3 + 128 */
    "  .if \\clamp\n"
    "  ldm sp, {r8, r9, r10}\n"
    "  uqadd8 r4, r4, r8\n"
    "  uqsub8 r4, r4, r9\n"
    "  uadd8 r4, r4, r10\n"
    "  .else\n"
    "  eor r4, r4, #0x80808080\n"
    "  .endif\n"
    "  str r4, [r2, #\\off]\n"
    ".endm\n"
    ".macro tb_cm4_add_loop clamp\n"
    "1:\n"
    "  tb_cm4_add_word 0, \\clamp\n"
    "  tb_cm4_add_word 4, \\clamp\n"
    "  adds r0, r0, #8\n"
    "  adds r1, r1, #8\n"
    "  adds r2, r2, #8\n"
    "  cmp r2, r3\n"
    "  bne 1b\n"
    ".endm\n"
    /* 16 per pass after a first 8 when n8 / 8 is odd */
    ".macro tb_cm4_add_loop16\n"
    "  subs r4, r3, r2\n"
    "  tst r4, #8\n"
    "  beq 2f\n"
    "  tb_cm4_add_word 0, 0\n"
    "  tb_cm4_add_word 4, 0\n"
    "  adds r0, r0, #8\n"
    "  adds r1, r1, #8\n"
    "  adds r2, r2, #8\n"
    "  cmp r2, r3\n"
    "  beq 3f\n"
    "2:\n"
    "  tb_cm4_add_word 0, 0\n"
    "  tb_cm4_add_word 4, 0\n"
    "  tb_cm4_add_word 8, 0\n"
    "  tb_cm4_add_word 12, 0\n"
    "  adds r0, r0, #16\n"
    "  adds r1, r1, #16\n"
    "  adds r2, r2, #16\n"
    "  cmp r2, r3\n"
    "  bne 2b\n"
    "3:\n"
    ".endm\n"
    "  .pushsection .text.tb_cm4_add_sums8,\"ax\",%progbits\n"
    "  .syntax unified\n"
    "  .thumb\n"
    "  .p2align 2\n"
    "  .global tb_cm4_add_sums8\n"
    "  .type tb_cm4_add_sums8, %function\n"
    "  .thumb_func\n"
    "tb_cm4_add_sums8:\n"
    "  push {r4-r11, lr}\n"
    "  ldr r12, [sp, #36]\n"
    "  add lr, r12, #1024\n"
    "  tb_cm4_add_loop16\n"
    "  pop {r4-r11, pc}\n"
    "  .size tb_cm4_add_sums8, .-tb_cm4_add_sums8\n"
    "  .popsection\n"
    "  .pushsection .text.tb_cm4_add_sums8_clamped,\"ax\",%progbits\n"
    "  .p2align 2\n"
    "  .global tb_cm4_add_sums8_clamped\n"
    "  .type tb_cm4_add_sums8_clamped, %function\n"
    "  .thumb_func\n"
    "tb_cm4_add_sums8_clamped:\n"
    "  push {r4-r11, lr}\n"
    "  ldr r12, [sp, #36]\n"
    "  ldr r4, [sp, #40]\n"
    "  ldm r4, {r4, r5, r6}\n"
    "  push {r4, r5, r6}\n"
    "  add lr, r12, #1024\n"
    "  tb_cm4_add_loop 1\n"
    "  add sp, sp, #12\n"
    "  pop {r4-r11, pc}\n"
    "  .size tb_cm4_add_sums8_clamped, .-tb_cm4_add_sums8_clamped\n"
    "  .popsection\n");

/* The activation clamp on 4 bytes of out + 128 (lo, hi: the range + 128):
 * UQADD8 by 255 - hi caps at 255, UQSUB8 by 255 - hi + lo floors at 0 (the
 * clamped value - lo), UADD8 by lo + 128 gives the clamped value + 256. */
static void tb_cm4_add_clamp_words(const tb_add_params *p, uint32_t words[3]) {
  const uint32_t lo = (uint32_t)(p->act_min + 128), hi = (uint32_t)(p->act_max + 128);
  words[0] = (255u - hi) * 0x01010101u;
  words[1] = (255u - hi + lo) * 0x01010101u;
  words[2] = ((lo + 128u) & 255u) * 0x01010101u;
}
#endif

/* Elements [from, n) one at a time: the word loop's arithmetic. */
static void tb_cm4_add_sums(const tb_add_params *p, const uint8_t *a, const uint8_t *c,
                            const int32_t *u, int8_t *o, int32_t from) {
  int32_t i;
  for (i = from; i < p->size; ++i) {
    int32_t v = tb_asr(u[a[i]] + u[256 + c[i]], 16);
    v = (v < 0 ? 0 : (v > 255 ? 255 : v)) - 128;
    o[i] = (int8_t)tb_clamp(v, p->act_min, p->act_max);
  }
}

static void tb_cm4_add_sums_s8(const tb_add_params *p, const uint8_t *a, const uint8_t *c,
                               const int32_t *u, int8_t *o) {
  int32_t done = 0;
#ifdef TB_CM4_DSP
  done = p->size & ~7;
  if (done > 0 && p->act_min == -128 && p->act_max == 127) {
    tb_cm4_add_sums8(a, c, o, o + done, u);
  } else if (done > 0) {
    uint32_t words[3];
    tb_cm4_add_clamp_words(p, words);
    tb_cm4_add_sums8_clamped(a, c, o, o + done, u, words);
  }
#endif
  tb_cm4_add_sums(p, a, c, u, o, done);
}

void tb_cm4_add_s8(const tb_add_params *p, const int8_t *input1, const int8_t *input2,
                   const int32_t *rq, int8_t *output) {
  const int32_t n = p->size;
  const int32_t m = rq[1], b = rq[2], e = rq[3];
  const int32_t *t1 = rq + 4, *t2 = rq + 4 + 256;
  const uint8_t *a = (const uint8_t *)input1, *c = (const uint8_t *)input2;
  int32_t i;
  if (rq[0] & TB_CM4_ADD_SUMS) {
    tb_cm4_add_sums_s8(p, a, c, rq + 4, output);
  } else if (rq[0] == (TB_CM4_RQ_FAST | TB_CM4_RQ_FULLRANGE)) {
    for (i = 0; i + 2 <= n; i += 2) {
      const int32_t s0 = t1[a[i]] + t2[c[i]];
      const int32_t s1 = t1[a[i + 1]] + t2[c[i + 1]];
      output[i] = (int8_t)tb_ssat8(tb_rq(s0, m, b, e));
      output[i + 1] = (int8_t)tb_ssat8(tb_rq(s1, m, b, e));
    }
    for (; i < n; ++i) output[i] = (int8_t)tb_ssat8(tb_rq(t1[a[i]] + t2[c[i]], m, b, e));
  } else {
    for (i = 0; i < n; ++i) {
      output[i] = (int8_t)tb_clamp(tb_rq(t1[a[i]] + t2[c[i]], m, b, e), p->act_min, p->act_max);
    }
  }
}

/* The reference's acc / count rounded half away from zero (C truncation of
 * acc +- count / 2), by one multiply: with adj = count / 2 for acc >= 0, else
 * count - 1 - count / 2, it is floor(x / count) - 128 for x = acc + adj +
 * 128 * count in [0, 256 * count) (acc = 0 gives 0 with either adj).
 * floor(x / count) = (2x * r) >> 32 for r = ceil(2^31 / count): the error
 * x * (r - 2^31 / count) / 2^31 < x / 2^31 stays below 1 / count (the least
 * distance of x / count from the next integer above) since x * count < 2^25.
 * k = 2 * (count / 2 + 128 * count); k_neg: what a negative acc adds to k
 * (-2 when count is even, else 0). */
typedef struct {
  uint32_t r, k, k_neg;
} tb_cm4_avg_div;

static tb_cm4_avg_div tb_cm4_avg_divisor(int32_t count) {
  tb_cm4_avg_div d;
  d.r = (uint32_t)((0x80000000u + (uint32_t)count - 1u) / (uint32_t)count);
  d.k = 2u * ((uint32_t)count / 2u + 128u * (uint32_t)count);
  d.k_neg = count % 2 == 0 ? (uint32_t)-2 : 0u;
  return d;
}

TB_INLINE int32_t tb_cm4_avg(int32_t acc, const tb_cm4_avg_div *d) {
  const uint32_t x2 = d->k + 2u * (uint32_t)acc + ((uint32_t)(acc >> 31) & d->k_neg);
  return (int32_t)(uint32_t)(((uint64_t)x2 * d->r) >> 32) - 128;
}

/* round half away from zero of acc / count, as the reference (C truncation) */
static int32_t tb_cm4_avg_sdiv(int32_t acc, int32_t count) {
  return acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
}

#ifdef TB_CM4_DSP
/* pairs > 0 passes over two taps (x0 and x1 = x0 + c, then 2c further): the
 * four loads in one pipelined run, then 8 SXTAB16: 19 cycles per pass. */
#define TB_CM4_POOL_PAIRS(x0, x1, c2, pairs, s02, s13, t02, t13)                       \
  do {                                                                                \
    uint32_t v0_, w0_, v1_, w1_;                                                      \
    __asm__ volatile("1:\n\t"                                                         \
                     "ldr %[v0], [%[p0]]\n\t"                                         \
                     "ldr %[w0], [%[p0], #4]\n\t"                                     \
                     "ldr %[v1], [%[p1]]\n\t"                                         \
                     "ldr %[w1], [%[p1], #4]\n\t"                                     \
                     "add %[p0], %[p0], %[step]\n\t"                                  \
                     "add %[p1], %[p1], %[step]\n\t"                                  \
                     "sxtab16 %[a], %[a], %[v0]\n\t"                                  \
                     "sxtab16 %[b], %[b], %[v0], ror #8\n\t"                          \
                     "sxtab16 %[e], %[e], %[w0]\n\t"                                  \
                     "sxtab16 %[f], %[f], %[w0], ror #8\n\t"                          \
                     "sxtab16 %[a], %[a], %[v1]\n\t"                                  \
                     "sxtab16 %[b], %[b], %[v1], ror #8\n\t"                          \
                     "sxtab16 %[e], %[e], %[w1]\n\t"                                  \
                     "sxtab16 %[f], %[f], %[w1], ror #8\n\t"                          \
                     "subs %[n], %[n], #1\n\t"                                        \
                     "bne 1b\n\t"                                                     \
                     : [p0] "+r"(x0), [p1] "+r"(x1), [n] "+r"(pairs), [a] "+r"(s02),  \
                       [b] "+r"(s13), [e] "+r"(t02), [f] "+r"(t13), [v0] "=&r"(v0_),  \
                       [w0] "=&r"(w0_), [v1] "=&r"(v1_), [w1] "=&r"(w1_)              \
                     : [step] "r"(c2)                                                 \
                     : "cc", "memory");                                               \
  } while (0)
#else
#define TB_CM4_POOL_PAIRS(x0, x1, c2, pairs, s02, s13, t02, t13)                       \
  do {                                                                                \
    for (; pairs > 0; --pairs, x0 += c2, x1 += c2) {                                  \
      const uint32_t v0_ = tb_ld32(x0), w0_ = tb_ld32(x0 + 4);                        \
      const uint32_t v1_ = tb_ld32(x1), w1_ = tb_ld32(x1 + 4);                        \
      s02 = tb_sxtab16(tb_sxtab16(s02, v0_), v1_);                                    \
      s13 = tb_sxtab16_ror8(tb_sxtab16_ror8(s13, v0_), v1_);                          \
      t02 = tb_sxtab16(tb_sxtab16(t02, w0_), w1_);                                    \
      t13 = tb_sxtab16_ror8(tb_sxtab16_ror8(t13, w0_), w1_);                          \
    }                                                                                 \
  } while (0)
#endif

/* One output pixel's channels 0..4k-1 (with `last` first channel 4k of 4k+1:
 * before any output byte is written, in place too), before the activation
 * clamp (an int8 average is int8): per 8 channels the window sums in four 16-bit-lane words
 * (s02: channels 0 and 2, s13: 1 and 3, t02: 4 and 6, t13: 5 and 7) over
 * `rows` runs of `taps` taps c bytes apart, `row_step` bytes apart. */
TB_INLINE void tb_cm4_pool_pixel4k(const int8_t *window, int32_t c, int32_t rows, int32_t taps,
                                   int32_t row_step, const tb_cm4_avg_div *divisor, int8_t *o,
                                   int32_t last) {
  const tb_cm4_avg_div div = *divisor, *d = &div; /* in registers, not reloaded per store */
  int32_t ch, r;
  if (last) { /* channel c-1: byte 3 of the word at c-4 */
    uint32_t s13 = 0;
    const int8_t *first = window + c - 4;
    for (r = 0; r < rows; ++r, first += row_step) {
      const int8_t *x = first;
      int32_t k = taps;
      for (; k >= 2; k -= 2, x += 2 * c) { /* two loads in one run */
        const uint32_t v0 = tb_ld32(x), v1 = tb_ld32(x + c);
        s13 = tb_sxtab16_ror8(tb_sxtab16_ror8(s13, v0), v1);
      }
      if (k) s13 = tb_sxtab16_ror8(s13, tb_ld32(x));
    }
    o[c - 1] = (int8_t)tb_cm4_avg((int32_t)s13 >> 16, d);
  }
  for (ch = 0; ch + 8 <= c; ch += 8) {
    uint32_t s02 = 0, s13 = 0, t02 = 0, t13 = 0;
    const int8_t *first = window + ch;
    int8_t *at = o + ch;
    for (r = 0; r < rows; ++r, first += row_step) {
      const int8_t *x0 = first, *x1 = first + c;
      int32_t pairs = taps >> 1;
      if (pairs > 0) TB_CM4_POOL_PAIRS(x0, x1, 2 * c, pairs, s02, s13, t02, t13);
      if (taps & 1) {
        const uint32_t v = tb_ld32(x0), w = tb_ld32(x0 + 4);
        s02 = tb_sxtab16(s02, v);
        s13 = tb_sxtab16_ror8(s13, v);
        t02 = tb_sxtab16(t02, w);
        t13 = tb_sxtab16_ror8(t13, w);
      }
    }
    at[0] = (int8_t)tb_cm4_avg((int16_t)s02, d);
    at[1] = (int8_t)tb_cm4_avg((int16_t)s13, d);
    at[2] = (int8_t)tb_cm4_avg((int32_t)s02 >> 16, d);
    at[3] = (int8_t)tb_cm4_avg((int32_t)s13 >> 16, d);
    at[4] = (int8_t)tb_cm4_avg((int16_t)t02, d);
    at[5] = (int8_t)tb_cm4_avg((int16_t)t13, d);
    at[6] = (int8_t)tb_cm4_avg((int32_t)t02 >> 16, d);
    at[7] = (int8_t)tb_cm4_avg((int32_t)t13 >> 16, d);
  }
  if (ch + 4 <= c) { /* 4 more channels: one word per tap */
    uint32_t s02 = 0, s13 = 0;
    const int8_t *first = window + ch;
    int32_t k;
    for (r = 0; r < rows; ++r, first += row_step) {
      for (k = 0; k < taps; ++k) {
        const uint32_t v = tb_ld32(first + k * c);
        s02 = tb_sxtab16(s02, v);
        s13 = tb_sxtab16_ror8(s13, v);
      }
    }
    o[ch] = (int8_t)tb_cm4_avg((int16_t)s02, d);
    o[ch + 1] = (int8_t)tb_cm4_avg((int16_t)s13, d);
    o[ch + 2] = (int8_t)tb_cm4_avg((int32_t)s02 >> 16, d);
    o[ch + 3] = (int8_t)tb_cm4_avg((int32_t)s13 >> 16, d);
  }
}

/* One tail channel's output: the reference's division (one SDIV: no divisor
 * set-up). */
TB_INLINE int8_t tb_cm4_pool_out(int32_t acc, int32_t count, int32_t lo, int32_t hi) {
  return (int8_t)tb_clamp(tb_cm4_avg_sdiv(acc, count), lo, hi);
}

/* The last n (1-3) channels of one output pixel, all n sums in one pass over
 * the window (rows runs of taps taps, c bytes apart, row_step apart). n is a
 * constant at each call: three loops without per-tap tests. */
TB_INLINE void tb_cm4_pool_tail_n(const tb_pool_params *p, const int8_t *window, int32_t rows,
                                  int32_t taps, int32_t row_step, int32_t n, int8_t *o) {
  const int32_t c = p->c, count = rows * taps, lo = p->act_min, hi = p->act_max;
  int32_t a0 = 0, a1 = 0, a2 = 0, r, k;
  for (r = 0; r < rows; ++r, window += row_step) {
    const int8_t *x = window;
    for (k = 0; k < taps; ++k, x += c) {
      a0 += x[0];
      if (n > 1) a1 += x[1];
      if (n > 2) a2 += x[2];
    }
  }
  o[0] = tb_cm4_pool_out(a0, count, lo, hi);
  if (n > 1) o[1] = tb_cm4_pool_out(a1, count, lo, hi);
  if (n > 2) o[2] = tb_cm4_pool_out(a2, count, lo, hi);
}

/* The last 1-3 channels of a pixel. Not inlined: its loops would take
 * registers from the 4-channel words' loop (VWW's 3x3x256 pool: +3% cycles). */
__attribute__((noinline)) static void tb_cm4_pool_tail(const tb_pool_params *p,
                                                        const int8_t *window, int32_t rows,
                                                        int32_t taps, int8_t *o) {
  const int32_t n = p->c & 3, row_step = p->in_w * p->c;
  if (taps == p->in_w) { /* the window's rows are one run */
    taps *= rows;
    rows = 1;
  }
  if (n == 1) tb_cm4_pool_tail_n(p, window, rows, taps, row_step, 1, o);
  else if (n == 2) tb_cm4_pool_tail_n(p, window, rows, taps, row_step, 2, o);
  else tb_cm4_pool_tail_n(p, window, rows, taps, row_step, 3, o);
}

/* The pixel's window (rows x taps from `window`) as runs (a window as wide as
 * the input is one), then the activation clamp where it is narrower than int8. */
TB_INLINE void tb_cm4_pool_pixel_n(const tb_pool_params *p, const int8_t *window, int32_t rows,
                                   int32_t taps, const tb_cm4_avg_div *d, int8_t *o,
                                   int32_t last) {
  const int32_t wide = taps == p->in_w, n = p->c / 4 * 4 + last;
  int32_t ch;
  tb_cm4_pool_pixel4k(window, p->c, wide ? 1 : rows, wide ? rows * taps : taps, p->in_w * p->c,
                      d, o, last);
  if (p->act_min != -128 || p->act_max != 127) {
    for (ch = 0; ch < n; ++ch) o[ch] = (int8_t)tb_clamp(o[ch], p->act_min, p->act_max);
  }
}

/* Not inlined: the loop over pixels keeps its registers. */
__attribute__((noinline)) static void tb_cm4_pool_pixel(const tb_pool_params *p,
                                                         const int8_t *window, int32_t rows,
                                                         int32_t taps, const tb_cm4_avg_div *d,
                                                         int8_t *o) {
  tb_cm4_pool_pixel_n(p, window, rows, taps, d, o, 0);
}

/* 4k+1 channels: the last one from the word of the last 4 channels. */
__attribute__((noinline)) static void tb_cm4_pool_pixel_last(const tb_pool_params *p,
                                                              const int8_t *window, int32_t rows,
                                                              int32_t taps,
                                                              const tb_cm4_avg_div *d, int8_t *o) {
  tb_cm4_pool_pixel_n(p, window, rows, taps, d, o, 1);
}

/* The output pixels in raster order. `last` (a constant: each entry point's loop
 * has only its own work): 4k+1 channels, k >= 1, the last one in tb_cm4_pool_pixel_last. */
TB_INLINE void tb_cm4_pool_pixels(const tb_pool_params *p, const int8_t *input, int8_t *output,
                                  int32_t last) {
  const int32_t c = p->c, in_w = p->in_w, c4 = c / 4 * 4 + last;
  int32_t oy, ox, ch;
  for (oy = 0; oy < p->out_h; ++oy) {
    const int32_t in_y0 = oy * p->stride_h - p->pad_top;
    const int32_t ky0 = in_y0 < 0 ? -in_y0 : 0;
    const int32_t ky1 = p->in_h - in_y0 < p->k_h ? p->in_h - in_y0 : p->k_h;
    for (ox = 0; ox < p->out_w; ++ox) {
      const int32_t in_x0 = ox * p->stride_w - p->pad_left;
      const int32_t kx0 = in_x0 < 0 ? -in_x0 : 0;
      const int32_t kx1 = in_w - in_x0 < p->k_w ? in_w - in_x0 : p->k_w;
      const int32_t count = (ky1 - ky0) * (kx1 - kx0);
      const int8_t *window = input + ((in_y0 + ky0) * in_w + in_x0 + kx0) * c;
      int8_t *o = output + (oy * p->out_w + ox) * c;
      if (ky1 <= ky0 || kx1 <= kx0) { /* TFLite returns an error for an empty window; the reference emits act_min */
        for (ch = 0; ch < c; ++ch) o[ch] = (int8_t)p->act_min;
        continue;
      }
      if (c4 > 0) {
        const tb_cm4_avg_div d = tb_cm4_avg_divisor(count);
        if (last) tb_cm4_pool_pixel_last(p, window, ky1 - ky0, kx1 - kx0, &d, o);
        else tb_cm4_pool_pixel(p, window, ky1 - ky0, kx1 - kx0, &d, o);
      }
      if (c4 < c) tb_cm4_pool_tail(p, window + c4, ky1 - ky0, kx1 - kx0, o + c4);
    }
  }
}

void tb_cm4_avg_pool2d_s8(const tb_pool_params *p, const int8_t *input, int8_t *output) {
  tb_cm4_pool_pixels(p, input, output, 0);
}

/* 4k+1 channels, k >= 1 (the build picks it: cm4_cost.accepts_avgpool_4k1_faster). Their
 * last channel through tb_cm4_avg_pool2d_s8's tb_cm4_pool_tail paid its call and set-up
 * (1x1x5: 430 -> 477 cycles when the tail pass came in). */
void tb_cm4_avg_pool2d_4k1_s8(const tb_pool_params *p, const int8_t *input, int8_t *output) {
  tb_cm4_pool_pixels(p, input, output, 1);
}
