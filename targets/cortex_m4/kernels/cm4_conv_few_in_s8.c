/* tb_cm4_conv_few_in_s8: CONV_2D on 1-4 input channels (RGB / grayscale first
 * layers), dilation 1, K4 = ceil(k_h * k_w * in_c / 4) * 4 <= 100.
 *
 * Per batch of output pixels (raster order, TB_FEW_BATCH in the header) the
 * receptive fields are first gathered into int16 `x + input_offset` (padded
 * taps 0), k-pair by k-pair with the two pixels of each pair interleaved; then
 * one assembly loop runs every group of 4 output channels of every pair (each
 * loop stays in the instruction cache while it runs). The k order (cm4_conv_few_in.py, k_order): each kernel row's
 * whole groups of 4 values straight from the input row (one word load, SXTAB16
 * and SXTAB16 ROR 8 give the k-pairs (k, k+2), (k+1, k+3)), then the rows'
 * leftover values (k_w * in_c mod 4 per row) gathered into one tail.
 *
 * The weight stream (copied into the scratch once per call: no flash wait in
 * the inner loop) holds per group of 4 channels, per k-pair, the raw-B words of
 * channels (0, 1) and (2, 3) (cm4_prepare.conv_raw_b: SMLAD on the raw word
 * sums S_c + 256 S_c+1, on its SXTB16 S_c), then {M, B, e, 2*bias} per channel.
 * Register block 2 pixels x 4 channels: per k-pair 4 loads in one run, 2
 * SXTB16, 8 SMLAD = 15 cycles per 16 MACs, in a straight-line sweep of
 * TB_FEW_STEPS steps entered at a computed offset (no loop counter: the 8
 * accumulators, 4 operands and 2 pointers take all 14 registers). */
#include "tb_cm4.h"

#define TB_FEW_STEPS 49       /* k-pairs after the first: K4 <= 100 */
#define TB_FEW_STEP_BYTES 56  /* 4 LDR.W, 2 SXTB16, 8 SMLAD */
#define TB_FEW_RQ_WORDS 16    /* {M, B, e, 2*bias} x 4 channels after each group's weights */
#define TB_FEW_STR_(x) #x
#define TB_FEW_STR(x) TB_FEW_STR_(x)

/* rq header (cm4_conv_few_in.prepare) */
enum { TB_FEW_K4, TB_FEW_STREAM_BYTES, TB_FEW_TAIL, TB_FEW_BATCH, TB_FEW_NO_SIGN };

/* What the quad loop keeps in memory (all 14 registers hold the block). */
typedef struct {
  const uint32_t *col;   /* the current pair of pixels' column */
  int32_t adj;           /* 8 - 8 * skip: both bases' move before the sweep */
  int32_t entry;         /* TB_FEW_STEP_BYTES * skip: the jump into the sweep */
  int8_t *o;             /* pixel 0's next 4 outputs (pixel 1's at o + stride) */
  int32_t stride;
  const uint32_t *end;   /* end of the records */
  const uint32_t *w;     /* the first record */
  int32_t pairs;         /* pairs of pixels left, this one included */
  int32_t col_step;      /* bytes from one pair's column to the next */
  int32_t o_step;        /* bytes from the end of a pair's outputs to the next pair's */
  int32_t no_sign;       /* requantize without the sign term */
  uint32_t tail;         /* (the address of the requantization form) */
} tb_few_state;

#ifdef TB_CM4_DSP
#define TB_FEW_STEP(s)                                  \
  "ldr.w %[x0], [%[px], #(8*(" #s "))]\n\t"             \
  "ldr.w %[x1], [%[px], #(8*(" #s ")+4)]\n\t"           \
  "ldr.w %[wa], [%[pw], #(8*(" #s "))]\n\t"             \
  "ldr.w %[wb], [%[pw], #(8*(" #s ")+4)]\n\t"           \
  "smlad %[b0], %[x0], %[wa], %[b0]\n\t"                \
  "smlad %[b1], %[x1], %[wa], %[b1]\n\t"                \
  "sxtb16 %[wa], %[wa]\n\t"                             \
  "smlad %[a0], %[x0], %[wa], %[a0]\n\t"                \
  "smlad %[a1], %[x1], %[wa], %[a1]\n\t"                \
  "smlad %[d0], %[x0], %[wb], %[d0]\n\t"                \
  "smlad %[d1], %[x1], %[wb], %[d1]\n\t"                \
  "sxtb16 %[wb], %[wb]\n\t"                             \
  "smlad %[c0], %[x0], %[wb], %[c0]\n\t"                \
  "smlad %[c1], %[x1], %[wb], %[c1]\n\t"
/* steps 7b .. 7b+6 */
#define TB_FEW_STEP7(b) TB_FEW_STEP(7*b+0) TB_FEW_STEP(7*b+1) TB_FEW_STEP(7*b+2) \
  TB_FEW_STEP(7*b+3) TB_FEW_STEP(7*b+4) TB_FEW_STEP(7*b+5) TB_FEW_STEP(7*b+6)

/* The 8 sums of one group of 4 channels over the two pixels' columns. The
 * first k-pair with SMUAD (sets the accumulators), then a jump to step
 * `skip` = TB_FEW_STEPS - (npairs - 1) of the sweep, with both bases moved back
 * by 8 * (skip - 1) bytes (adj) so that step s reads k-pair s - skip + 1. */
/* requantize the sums of one channel for both pixels in place: x0 = M, x1 = B,
 * wa = e, wb = 2*bias (LDM from the record), px temp; SH: the sum's scaling into
 * t = 2 * (sum + bias): LSL #1, or ASR #7 for a raw-B difference 256 * S */
#define TB_FEW_RQ1(A, SH)                              \
  "add %[px], %[wb], %[" #A "], " SH "\n\t"            \
  "add %[" #A "], %[x1], %[px], asr #31\n\t"          \
  "smmlar %[" #A "], %[px], %[x0], %[" #A "]\n\t"     \
  "asr %[" #A "], %[" #A "], %[wa]\n\t"               \
  "ssat %[" #A "], #8, %[" #A "]\n\t"
#define TB_FEW_RQ2(A, B, SH)                            \
  "ldmia %[pw]!, {%[x0], %[x1], %[wa], %[wb]}\n\t"    \
  TB_FEW_RQ1(A, SH) TB_FEW_RQ1(B, SH)
/* ... without the sign term (zero point -128, full range: cm4_prepare.conv_no_sign) */
#define TB_FEW_RQ1_NO_SIGN(A, SH)                      \
  "add %[px], %[wb], %[" #A "], " SH "\n\t"            \
  "smmlar %[" #A "], %[px], %[x0], %[x1]\n\t"         \
  "asr %[" #A "], %[" #A "], %[wa]\n\t"               \
  "ssat %[" #A "], #8, %[" #A "]\n\t"
#define TB_FEW_RQ2_NO_SIGN(A, B, SH)                    \
  "ldmia %[pw]!, {%[x0], %[x1], %[wa], %[wb]}\n\t"    \
  TB_FEW_RQ1_NO_SIGN(A, SH) TB_FEW_RQ1_NO_SIGN(B, SH)

/* Every group of 4 channels of one pair of pixels: per group the first k-pair
 * with SMUAD (sets the accumulators), then a jump to step `skip` = TB_FEW_STEPS -
 * (npairs - 1) of the sweep, both bases moved back by 8 * (skip - 1) bytes so
 * that step s reads k-pair s - skip + 1; then the record's {M, B, e, 2*bias}
 * (LDM per channel, shared by the two pixels), 4 outputs per pixel packed
 * into one word each (BFI) and stored with one STR. */
static __attribute__((noinline)) void tb_few_quads(tb_few_state *st_in) {
  /* a local copy: its fields are addressed from sp (every other register is taken) */
  tb_few_state local = *st_in, *const st = &local;
  register uint32_t a0 __asm__("r0"), a1 __asm__("r1"), b0 __asm__("r2"), b1 __asm__("r3");
  register uint32_t c0 __asm__("r4"), c1 __asm__("r5"), d0 __asm__("r6"), d1 __asm__("r7");
  register uint32_t x0 __asm__("r8"), x1 __asm__("r9"), wa __asm__("r10"), wb __asm__("r11");
  register const uint32_t *px __asm__("r12");
  register const uint32_t *pw __asm__("lr");
  __asm__ volatile(
      "ldr %[x0], %[st_no_sign]\n\t"
      "cmp %[x0], #0\n\t"
      "adr.w %[x1], 5f\n\t"
      "adr.w %[x0], 6f\n\t"
      "it eq\n\t"
      "moveq %[x1], %[x0]\n\t"
      "orr %[x1], %[x1], #1\n\t"  /* Thumb */
      "str %[x1], %[st_tail]\n\t"
      "ldr %[pw], %[st_w]\n"
      "3:\n\t"
      "ldr %[px], %[st_col]\n\t"
      "ldr.w %[wa], [%[pw]]\n\t"
      "ldr.w %[wb], [%[pw], #4]\n\t"
      "ldr.w %[x0], [%[px]]\n\t"
      "ldr.w %[x1], [%[px], #4]\n\t"
      "smuad %[b0], %[x0], %[wa]\n\t"
      "smuad %[b1], %[x1], %[wa]\n\t"
      "sxtb16 %[wa], %[wa]\n\t"
      "smuad %[a0], %[x0], %[wa]\n\t"
      "smuad %[a1], %[x1], %[wa]\n\t"
      "smuad %[d0], %[x0], %[wb]\n\t"
      "smuad %[d1], %[x1], %[wb]\n\t"
      "sxtb16 %[wb], %[wb]\n\t"
      "smuad %[c0], %[x0], %[wb]\n\t"
      "smuad %[c1], %[x1], %[wb]\n\t"
      "ldr %[x0], %[st_adj]\n\t"
      "ldr %[x1], %[st_entry]\n\t"
      "add %[px], %[px], %[x0]\n\t"
      "add %[pw], %[pw], %[x0]\n\t"
      "add pc, %[x1]\n\t"       /* pc reads as this instruction + 4: label 1 */
      "nop\n"
      "1:\n\t"
      TB_FEW_STEP7(0) TB_FEW_STEP7(1) TB_FEW_STEP7(2) TB_FEW_STEP7(3) TB_FEW_STEP7(4)
      TB_FEW_STEP7(5) TB_FEW_STEP7(6)
      /* the record's requantization words: 8 * (npairs - 1 + skip) bytes on */
      "add %[pw], %[pw], #(8*" TB_FEW_STR(TB_FEW_STEPS) ")\n\t"
      "sub %[b0], %[b0], %[a0]\n\t"
      "sub %[b1], %[b1], %[a1]\n\t"
      "sub %[d0], %[d0], %[c0]\n\t"
      "sub %[d1], %[d1], %[c1]\n\t"
      "ldr pc, %[st_tail]\n\t"  /* the requantization form, chosen once per call */
      ".p2align 1\n"
      "5:\n\t"
      TB_FEW_RQ2_NO_SIGN(a0, a1, "lsl #1") TB_FEW_RQ2_NO_SIGN(b0, b1, "asr #7")
      TB_FEW_RQ2_NO_SIGN(c0, c1, "lsl #1") TB_FEW_RQ2_NO_SIGN(d0, d1, "asr #7")
      "b 7f\n"
      "6:\n\t"
      TB_FEW_RQ2(a0, a1, "lsl #1") TB_FEW_RQ2(b0, b1, "asr #7")
      TB_FEW_RQ2(c0, c1, "lsl #1") TB_FEW_RQ2(d0, d1, "asr #7")
      "7:\n\t"
      "ldr %[x0], %[st_o]\n\t"
      "ldr %[x1], %[st_stride]\n\t"
      "ldr %[wa], %[st_end]\n\t"
      "bfi %[a0], %[b0], #8, #8\n\t"
      "bfi %[a1], %[b1], #8, #8\n\t"
      "bfi %[a0], %[c0], #16, #8\n\t"
      "bfi %[a1], %[c1], #16, #8\n\t"
      "bfi %[a0], %[d0], #24, #8\n\t"
      "bfi %[a1], %[d1], #24, #8\n\t"
      "str %[a1], [%[x0], %[x1]]\n\t"
      "str %[a0], [%[x0]], #4\n\t"
      "str %[x0], %[st_o]\n\t"
      "cmp %[pw], %[wa]\n\t"
      "bne 3b\n\t"
      /* the next pair of pixels */
      "ldr %[x0], %[st_pairs]\n\t"
      "subs %[x0], %[x0], #1\n\t"
      "beq 4f\n\t"
      "str %[x0], %[st_pairs]\n\t"
      "ldr %[x0], %[st_col]\n\t"
      "ldr %[x1], %[st_col_step]\n\t"
      "ldr %[wa], %[st_o]\n\t"
      "ldr %[wb], %[st_o_step]\n\t"
      "ldr %[pw], %[st_w]\n\t"
      "add %[x0], %[x0], %[x1]\n\t"
      "add %[wa], %[wa], %[wb]\n\t"
      "str %[x0], %[st_col]\n\t"
      "str %[wa], %[st_o]\n\t"
      "b 3b\n"
      "4:\n\t"
      : [a0] "=&r"(a0), [a1] "=&r"(a1), [b0] "=&r"(b0), [b1] "=&r"(b1), [c0] "=&r"(c0),
        [c1] "=&r"(c1), [d0] "=&r"(d0), [d1] "=&r"(d1), [x0] "=&r"(x0), [x1] "=&r"(x1),
        [wa] "=&r"(wa), [wb] "=&r"(wb), [px] "=&r"(px), [pw] "=&r"(pw), [st_o] "+m"(st->o),
        [st_col] "+m"(st->col), [st_pairs] "+m"(st->pairs), [st_tail] "=m"(st->tail)
      : [st_adj] "m"(st->adj), [st_entry] "m"(st->entry), [st_stride] "m"(st->stride),
        [st_end] "m"(st->end), [st_w] "m"(st->w), [st_col_step] "m"(st->col_step),
        [st_o_step] "m"(st->o_step), [st_no_sign] "m"(st->no_sign)
      : "cc", "memory");
  *st_in = local;
}
#endif

#ifndef TB_CM4_DSP
/* One output: t = 2 * (sum + bias), the fast exact form with its sign term. */
TB_INLINE int32_t tb_few_rq(int32_t t, const int32_t *r) {
  return tb_ssat8(tb_asr(tb_smmlar(t, r[0], r[1] + tb_asr(t, 31)), r[2]));
}

/* 4 channels of one pixel, packed little-endian: channels 1 and 3 hold
 * S_c + 256 S_c+1 (raw-B): 256 S_c+1 = raw - S_c, exact. */
TB_INLINE uint32_t tb_few_pixel(const int32_t *s, const int32_t *r) {
  const int32_t o0 = tb_few_rq(r[3] + 2 * s[0], r);
  const int32_t o1 = tb_few_rq(r[7] + tb_asr((int32_t)((uint32_t)s[1] - (uint32_t)s[0]), 7), r + 4);
  const int32_t o2 = tb_few_rq(r[11] + 2 * s[2], r + 8);
  const int32_t o3 = tb_few_rq(r[15] + tb_asr((int32_t)((uint32_t)s[3] - (uint32_t)s[2]), 7), r + 12);
  return (uint32_t)(o0 & 0xFF) | (uint32_t)(o1 & 0xFF) << 8 | (uint32_t)(o2 & 0xFF) << 16 |
         (uint32_t)o3 << 24;
}

/* portable tb_few_quads: the same instructions' arithmetic, k-pair by k-pair */
static void tb_few_quads(tb_few_state *st) {
  const uint32_t *const w0 = st->w;
  const int32_t npairs = (TB_FEW_STEPS + 1) - (st->entry / TB_FEW_STEP_BYTES);
  for (;;) {
    for (const uint32_t *w = w0; w != st->end; w += 2 * npairs + TB_FEW_RQ_WORDS, st->o += 4) {
      int32_t s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      const uint32_t *px = st->col, *pw = w;
      for (int32_t j = 0; j < npairs; ++j, px += 2, pw += 2) {
        const uint32_t wa = pw[0], wb = pw[1], sa = tb_sxtb16(wa), sb = tb_sxtb16(wb);
        for (int q = 0; q < 2; ++q) {
          s[4 * q + 0] = tb_smlad(px[q], sa, s[4 * q + 0]);
          s[4 * q + 1] = tb_smlad(px[q], wa, s[4 * q + 1]);
          s[4 * q + 2] = tb_smlad(px[q], sb, s[4 * q + 2]);
          s[4 * q + 3] = tb_smlad(px[q], wb, s[4 * q + 3]);
        }
      }
      tb_st32(st->o, tb_few_pixel(s, (const int32_t *)pw));
      tb_st32(st->o + st->stride, tb_few_pixel(s + 4, (const int32_t *)pw));
    }
    if (--st->pairs == 0) return;
    st->col = (const uint32_t *)((const int8_t *)st->col + st->col_step);
    st->o += st->o_step;
  }
}
#endif

/* Groups of 4 bytes -> k-pairs (k, k+2), (k+1, k+3) as int16 x + offset, at
 * words 0 and 2 of dst per group (the other pixel's words interleave). */
TB_INLINE uint32_t *tb_few_expand(const int8_t *src, int32_t groups, uint32_t off2, uint32_t *dst) {
  for (int32_t g = 0; g < groups; ++g, dst += 4) {
    const uint32_t v = tb_ld32(src + 4 * g);
    dst[0] = tb_sxtab16(off2, v);
    dst[2] = tb_sxtab16_ror8(off2, v);
  }
  return dst;
}

/* One group of 4 bytes at s + 4i -> k-pairs at words 4i and 4i + 2 of d. */
#define TB_FEW_G(i)                                      \
  do {                                                   \
    const uint32_t v = tb_ld32(s + 4 * (i));             \
    d[4 * (i)] = tb_sxtab16(off2, v);                    \
    d[4 * (i) + 2] = tb_sxtab16_ror8(off2, v);           \
  } while (0)

/* What the column gathers need per layer. */
typedef struct {
  int32_t row_bytes, k4, tail_groups;
  uint32_t off2;
} tb_few_geo;

static void tb_few_gather(const tb_conv_params *p, const int8_t *input, int32_t oy, int32_t ox,
                          uint32_t off2, uint32_t *dst, int8_t *tail, int8_t *row);

/* The columns of a batch of n pixels from pixel (oy, ox) on, for G groups and
 * L leftovers per kernel row known at compile time. A pixel whose window is
 * inside the input: per row G word loads, 2G SXTAB16 and stores, L byte copies
 * to the tail, then the tail's groups; the others take tb_few_gather. */
/* One kernel row: G groups to the column, L leftovers to the tail. */
#define TB_FEW_ROW(G, L)                                                                   \
  do {                                                                                     \
    const int8_t *s = src;                                                                 \
    for (int32_t j = 0; j < (G); ++j) TB_FEW_G(j);                                         \
    for (int32_t j = 0; j < (L); ++j) t[j] = s[4 * (G) + j];                               \
    src += row_bytes, d += 4 * (G), t += (L);                                              \
  } while (0)
#define TB_FEW_BATCH(G, L)                                                                 \
  static void tb_few_batch_##G##_##L(const tb_conv_params *p, const tb_few_geo *g,         \
                                     const int8_t *input, int32_t oy, int32_t ox, int32_t n, \
                                     uint32_t *col, int8_t *tail, int8_t *row) {           \
    /* locals: the byte stores below could alias p's fields */                             \
    const uint32_t off2 = g->off2;                                                         \
    const int32_t row_bytes = g->row_bytes, k4 = g->k4, c = p->in_c, kh = p->k_h;          \
    const int32_t stride_w = p->stride_w, stride_h = p->stride_h, out_w = p->out_w;        \
    const int32_t pad_left = p->pad_left, tail_groups = g->tail_groups;                    \
    const uint32_t max_y = (uint32_t)(p->in_h - kh), max_x = (uint32_t)(p->in_w - p->k_w); \
    int32_t iy0 = oy * stride_h - p->pad_top, ix0 = ox * stride_w - pad_left;              \
    for (int32_t i = 0; i < n; ++i) {                                                      \
      uint32_t *d = col + (i & 1);                                                         \
      col += (i & 1) * k4;                                                                 \
      if ((uint32_t)iy0 <= max_y && (uint32_t)ix0 <= max_x) {                              \
        const int8_t *src = input + iy0 * row_bytes + ix0 * c;                             \
        int8_t *t = tail;                                                                  \
        if (kh == 3) {                                                                     \
          TB_FEW_ROW(G, L); TB_FEW_ROW(G, L); TB_FEW_ROW(G, L);                            \
        } else {                                                                           \
          for (int32_t r = kh; r > 0; --r) TB_FEW_ROW(G, L);                               \
        }                                                                                  \
        if (L && tail_groups == 1) {                                                       \
          const int8_t *s = tail;                                                          \
          TB_FEW_G(0);                                                                     \
        } else if (L) {                                                                    \
          tb_few_expand(tail, tail_groups, off2, d);                                       \
        }                                                                                  \
      } else {                                                                             \
        tb_few_gather(p, input, oy, ox, off2, d, tail, row);                               \
      }                                                                                    \
      ix0 += stride_w;                                                                     \
      if (++ox == out_w) ox = 0, ix0 = -pad_left, ++oy, iy0 += stride_h;                   \
    }                                                                                      \
  }
/* kernel rows of k_w * in_c bytes, k_w <= 5: (groups, leftovers) */
TB_FEW_BATCH(0, 1) TB_FEW_BATCH(0, 2) TB_FEW_BATCH(0, 3) TB_FEW_BATCH(1, 0)
TB_FEW_BATCH(1, 1) TB_FEW_BATCH(1, 2) TB_FEW_BATCH(2, 0) TB_FEW_BATCH(2, 1)
TB_FEW_BATCH(2, 2) TB_FEW_BATCH(3, 0) TB_FEW_BATCH(3, 3) TB_FEW_BATCH(4, 0)
TB_FEW_BATCH(5, 0)

typedef void (*tb_few_batch_fn)(const tb_conv_params *, const tb_few_geo *, const int8_t *,
                                int32_t, int32_t, int32_t, uint32_t *, int8_t *, int8_t *);
static void tb_few_batch_any(const tb_conv_params *p, const tb_few_geo *g, const int8_t *input,
                             int32_t oy, int32_t ox, int32_t n, uint32_t *col, int8_t *tail,
                             int8_t *row);
/* by row bytes k_w * in_c (1..20) */
static const tb_few_batch_fn tb_few_batch_fns[21] = {
    tb_few_batch_any, tb_few_batch_0_1, tb_few_batch_0_2, tb_few_batch_0_3, tb_few_batch_1_0,
    tb_few_batch_1_1, tb_few_batch_1_2, tb_few_batch_any, tb_few_batch_2_0, tb_few_batch_2_1,
    tb_few_batch_2_2, tb_few_batch_any, tb_few_batch_3_0, tb_few_batch_any, tb_few_batch_any,
    tb_few_batch_3_3, tb_few_batch_4_0, tb_few_batch_any, tb_few_batch_any, tb_few_batch_any,
    tb_few_batch_5_0};

/* Other kernel rows: every pixel through tb_few_gather. */
static void tb_few_batch_any(const tb_conv_params *p, const tb_few_geo *g, const int8_t *input,
                             int32_t oy, int32_t ox, int32_t n, uint32_t *col, int8_t *tail,
                             int8_t *row) {
  for (int32_t i = 0; i < n; ++i) {
    tb_few_gather(p, input, oy, ox, g->off2, col + (i >> 1) * g->k4 + (i & 1), tail, row);
    if (++ox == p->out_w) ox = 0, ++oy;
  }
}

/* One pixel's column into the words of slot `dst` (stride 2 words per k-pair). */
static __attribute__((noinline)) void tb_few_gather(const tb_conv_params *p, const int8_t *input, int32_t oy, int32_t ox,
                          uint32_t off2, uint32_t *dst, int8_t *tail, int8_t *row) {
  const int32_t c = p->in_c, kw = p->k_w, r = kw * c, groups = r >> 2, left = r & 3;
  const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
  const int8_t zp = (int8_t)(-p->input_offset);
  const int inside_x = ix0 >= 0 && ix0 + kw <= p->in_w;
  int8_t *t = tail;
  for (int32_t ky = 0; ky < p->k_h; ++ky) {
    const int32_t iy = iy0 + ky;
    if (iy < 0 || iy >= p->in_h) {
      for (int32_t g = 0; g < groups; ++g, dst += 4) dst[0] = dst[2] = 0;
      for (int32_t l = 0; l < left; ++l) *t++ = zp;
      continue;
    }
    const int8_t *src = input + (iy * p->in_w + ix0) * c;
    if (!inside_x) {   /* the row with the zero point where a tap is outside */
      for (int32_t kx = 0; kx < kw; ++kx) {
        const int inside = ix0 + kx >= 0 && ix0 + kx < p->in_w;
        for (int32_t i = 0; i < c; ++i) row[kx * c + i] = inside ? src[kx * c + i] : zp;
      }
      src = row;
    }
    dst = tb_few_expand(src, groups, off2, dst);
    for (int32_t l = 0; l < left; ++l) *t++ = src[4 * groups + l];
  }
  /* the tail's padding bytes (weight 0) were set once per call */
  tb_few_expand(tail, (p->k_h * left + 3) >> 2, off2, dst);
}

/* The outputs of one pair of pixels (or one: both slots hold it) through the
 * spill buffer: out_c not a multiple of 4, or the last odd pixel. */
static void tb_few_spilled(tb_few_state *st, const uint32_t *col, int8_t *spill, int32_t quads,
                           int8_t *out, int32_t out_c, int two) {
  st->col = col;
  st->o = spill;
  st->stride = 4 * quads;
  st->pairs = 1;
  tb_few_quads(st);
  memcpy(out, spill, (size_t)out_c);
  if (two) memcpy(out + out_c, spill + 4 * quads, (size_t)out_c);
}

void tb_cm4_conv_few_in_s8(const tb_conv_params *p, const int8_t *input, const int8_t *stream,
                           const int32_t *hdr, int8_t *output, void *scratch) {
  const int32_t k4 = hdr[TB_FEW_K4], npairs = k4 / 2, bytes = hdr[TB_FEW_STREAM_BYTES];
  const int32_t out_c = p->out_c, quads = (out_c + 3) / 4, npix = p->out_h * p->out_w;
  const int32_t tail_bytes = hdr[TB_FEW_TAIL], batch = hdr[TB_FEW_BATCH];
  /* scratch: weights | columns (batch pixels x K4 int16) | tail | row stage |
   * 2 pixels x 4 * quads outputs (out_c not a multiple of 4, an odd last pixel) */
  uint32_t *w = (uint32_t *)scratch;
  uint32_t *col = w + bytes / 4;
  int8_t *tail = (int8_t *)(col + batch / 2 * k4);
  int8_t *row = tail + tail_bytes;
  int8_t *spill = row + (p->k_w * p->in_c + 3) / 4 * 4;
  memcpy(w, stream, (size_t)bytes);
  memset(tail, (int8_t)(-p->input_offset), (size_t)tail_bytes);
  const int32_t left = p->k_w * p->in_c & 3;
  tb_few_geo g;
  g.row_bytes = p->in_w * p->in_c;
  g.k4 = k4;
  g.tail_groups = (p->k_h * left + 3) >> 2;
  g.off2 = ((uint32_t)p->input_offset & 0xFFFFu) * 0x10001u;
  const int32_t row_values = p->k_w * p->in_c;
  const tb_few_batch_fn gather = row_values <= 20 ? tb_few_batch_fns[row_values] : tb_few_batch_any;
  const int32_t skip = TB_FEW_STEPS - (npairs - 1);
  tb_few_state st;
  st.adj = 8 - 8 * skip;
  st.entry = TB_FEW_STEP_BYTES * skip;
  st.w = w;
  st.end = w + bytes / 4;
  st.col_step = 4 * k4;
  st.o_step = 2 * out_c - 4 * quads;
  st.no_sign = hdr[TB_FEW_NO_SIGN];
  int32_t oy = 0, ox = 0;
  for (int32_t q0 = 0; q0 < npix; q0 += batch) {
    const int32_t n = npix - q0 < batch ? npix - q0 : batch;
    /* the batch's columns, then every group of channels of every pair */
    gather(p, &g, input, oy, ox, n, col, tail, row);
    ox += n;
    oy += ox / p->out_w;
    ox %= p->out_w;
    int8_t *out = output + q0 * out_c;
    if (out_c % 4 == 0 && n >= 2) {
      st.col = col;
      st.o = out;
      st.stride = out_c;
      st.pairs = n >> 1;
      tb_few_quads(&st);
    } else {
      for (int32_t i = 0; i + 1 < n; i += 2)
        tb_few_spilled(&st, col + (i >> 1) * k4, spill, quads, out + i * out_c, out_c, 1);
    }
    if (n & 1)  /* the last pixel alone: slot 1 holds whatever was there */
      tb_few_spilled(&st, col + (n >> 1) * k4, spill, quads, out + (n - 1) * out_c, out_c, 0);
  }
}
