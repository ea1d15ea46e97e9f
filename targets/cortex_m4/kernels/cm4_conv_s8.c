/* CONV_2D int8 for Cortex-M4 (DSP extension): a register-blocked matrix multiply.
 *
 * Bit-exact with tb_conv2d_s8 (tflite::reference_integer_ops::ConvPerChannel).
 *
 * Per block of 4 output pixels:
 *  1. im2col: each pixel's receptive field (K = k_h*k_w*in_c values, in the
 *     filter's (ky, kx, ic) order, K padded to K4, a multiple of 4) is written
 *     to the scratch buffer as int16 (x + input_offset); taps in the padding
 *     are 0, which is exactly the reference's "skip padded positions". Values
 *     are stored as pairs (k, k+2), (k+1, k+3) for every group of 4 (what
 *     SXTAB16 and SXTAB16 ROR #8 give), the 4 pixels interleaved pair by pair:
 *     word[j*4 + q] = pair j of pixel q. A 1x1 stride-1 unpadded convolution
 *     needs no patch extraction: its "column" is the input pixel itself.
 *  2. For every pair of output channels, 8 accumulators (4 pixels x 2
 *     channels) run over the K4/2 pairs: one weight word holds both channels'
 *     bytes for one pair (reordered at build time: [c k][c+1 k][c k'][c+1 k']),
 *     SXTB16 / SXTB16 ROR #8 split it per channel, and 8 SMLADs do 16 MACs.
 *     Per 16 MACs: 5 loads, 2 extends, 8 SMLADs (17 cycles on the M4's
 *     pipeline), fully unrolled: no loop counter.
 *  3. Requantization with the precomputed {M, B, e} per channel (tb_rq), or
 *     TFLite's MultiplyByQuantizedMultiplier when the layer needs it. With
 *     the fast form and a full int8 output range, steps 2-3 for all channel
 *     pairs of a block are one assembly loop (tb_cm4_conv_pairs) that stores
 *     both channels of a pixel with one STRH.
 *
 * Arguments after the input: the reordered filter ([C_out/2 pairs][K4/2] words,
 * odd C_out padded with a zero channel), the rq table (rq[0] flags: bit 0 fast
 * requantization, bit 1 activation is the full int8 range; rq[1] the forward
 * overlap limit, output - input offsets above it run backwards; rq[2] 4 when
 * in_c is 3 and the filter's taps were padded to 4 channels, 9 for a 3x3
 * kernel on 3 channels (kernel rows of 9 bytes, not padded); then per channel
 * pair {M_c, B_c, e_c, M_c+1, B_c+1, e_c+1, bias_c, bias_c+1}, with {M, shift,
 * 0} triples for MultiplyByQuantizedMultiplier), the output, and
 * the scratch buffer: 4 * K4 int16 for the columns, then K4 bytes for staging
 * rows when in_c is not a multiple of 4, then (when the pixel count is 3 mod
 * 4) 4 * C_out bytes where the last block is computed before its 3 valid
 * pixels are copied out; a last block of 1 or 2 pixels runs tb_cm4_conv_few.
 *
 * Writes happen per block after the block's inputs were read, in raster
 * order (or, when the output lies above the input in the arena, in reverse
 * block order), so the planner may let the output overlap the input (see
 * tinybuild.planner.raster_overlap).
 */
#include <stdint.h>
#include "tb_cm4.h"

#define TB_CM4_RQ_FAST 1
#define TB_CM4_RQ_FULLRANGE 2
#define TB_CM4_CONV_BLOCK 4   /* output pixels per block */
#define TB_CM4_CONV_STEPS 32  /* k-pairs per unrolled sweep */

/* Expand 4*n int8 values (n groups) starting at src into pixel q's column:
 * dst points at word (2g)*4 + q for g = 0; a group's two pairs are 4 words apart. */
static void tb_cm4_expand(const int8_t *src, int32_t n, uint32_t off2, uint32_t *dst) {
  for (; n >= 2; n -= 2) {
    const uint32_t v = tb_ld32(src), u = tb_ld32(src + 4);
    dst[0] = tb_sxtab16(off2, v);
    dst[4] = tb_sxtab16_ror8(off2, v);
    dst[8] = tb_sxtab16(off2, u);
    dst[12] = tb_sxtab16_ror8(off2, u);
    dst += 16;
    src += 8;
  }
  if (n) {
    const uint32_t v = tb_ld32(src);
    dst[0] = tb_sxtab16(off2, v);
    dst[4] = tb_sxtab16_ror8(off2, v);
  }
}

static void tb_cm4_zero(int32_t n, uint32_t *dst) {
  int32_t g;
  for (g = 0; g < n; ++g) {
    dst[0] = 0;
    dst[4] = 0;
    dst += 8;
  }
}

/* The general receptive field: stage it as int8 (padding = the input zero
 * point, which becomes 0 once the offset is added), then expand it. */
static void tb_cm4_im2col_staged(const tb_conv_params *p, const int8_t *input, int32_t iy0,
                                 int32_t ix0, int32_t k4, uint32_t off2, uint32_t *dst,
                                 int8_t *stage) {
  const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
  const int8_t zp = (int8_t)(-p->input_offset);
  const uint32_t zp4 = (uint32_t)(uint8_t)zp * 0x01010101u;
  const int32_t row_bytes = p->k_w * in_c;
  int8_t *s = stage;
  int32_t ky, kx;
  for (ky = 0; ky < p->k_h; ++ky, s += row_bytes) {
    const int32_t iy = iy0 + ky * p->dil_h;
    int32_t kx0 = 0, kx1 = 0;
    if (iy >= 0 && iy < in_h) {
      if (p->dil_w == 1) {
        kx0 = ix0 < 0 ? -ix0 : 0;
        kx1 = in_w - ix0 < p->k_w ? in_w - ix0 : p->k_w;
        if (kx1 < kx0) kx1 = kx0;
      } else {
        for (kx = 0; kx < p->k_w; ++kx) {
          const int32_t ix = ix0 + kx * p->dil_w;
          const int8_t *src = input + (iy * in_w + ix) * in_c;
          int32_t i;
          if (ix >= 0 && ix < in_w) {
            for (i = 0; i < in_c; ++i) s[kx * in_c + i] = src[i];
          } else {
            for (i = 0; i < in_c; ++i) s[kx * in_c + i] = zp;
          }
        }
        continue;
      }
    }
    {
      /* zp before kx0, the input row segment, zp from kx1 on */
      const int32_t b0 = kx0 * in_c, b1 = kx1 * in_c;
      int32_t i = 0;
      for (; i < b0; ++i) s[i] = zp;
      if (b1 > b0) {
        const int8_t *src = input + (iy * in_w + ix0 + kx0) * in_c;
        for (; i + 4 <= b1; i += 4) tb_st32(s + i, tb_ld32(src + i - b0));
        for (; i < b1; ++i) s[i] = src[i - b0];
      }
      for (; i + 4 <= row_bytes; i += 4) tb_st32(s + i, zp4);
      for (; i < row_bytes; ++i) s[i] = zp;
    }
  }
  for (; s < stage + k4; ++s) *s = zp;
  tb_cm4_expand(stage, k4 >> 2, off2, dst);
}

/* A kernel row that is one word of input (k_w * in_c == 4, KWS's first layer:
 * 4 taps of 1 channel): a row outside the input is 0; a row that crosses the
 * left (right) edge loads the word that starts (ends) at the edge and shifts
 * the zero point in, so nothing outside the row is read. */
static __attribute__((noinline)) void tb_cm4_im2col_word_rows(const tb_conv_params *p,
                                                              const int8_t *input, int32_t iy0,
                                                              int32_t ix0, uint32_t off2,
                                                              uint32_t *dst) {
  const int32_t in_c = p->in_c, in_w = p->in_w, row_bytes = in_w * in_c;
  const int32_t lo = ix0 < 0 ? -ix0 * in_c : 0;                             /* bytes cut off */
  const int32_t hi = ix0 + p->k_w > in_w ? (ix0 + p->k_w - in_w) * in_c : 0;
  const uint32_t zp4 = (uint32_t)(uint8_t)(int8_t)(-p->input_offset) * 0x01010101u;
  const int32_t step = p->dil_h * row_bytes;
  int32_t ky, b, ky0 = 0, ky1 = p->k_h;       /* the kernel rows inside the input */
  uint32_t fill = 0, shl = 0, shr = 0;
  const int8_t *src;
  if (lo) fill = zp4 >> (32 - 8 * lo), shl = 8 * (uint32_t)lo;
  if (hi) fill = zp4 << (32 - 8 * hi), shr = 8 * (uint32_t)hi;
  while (ky0 < ky1 && iy0 + ky0 * p->dil_h < 0) ++ky0;
  while (ky1 > ky0 && iy0 + (ky1 - 1) * p->dil_h >= p->in_h) --ky1;
  for (ky = 0; ky < ky0; ++ky) dst[8 * ky] = 0, dst[8 * ky + 4] = 0;
  for (ky = ky1; ky < p->k_h; ++ky) dst[8 * ky] = 0, dst[8 * ky + 4] = 0;
  src = input + ((iy0 + ky0 * p->dil_h) * in_w + ix0) * in_c;
  dst += 8 * ky0;
  if (lo + hi < 4 && row_bytes >= 4) {
    for (ky = ky0; ky < ky1; ++ky, src += step, dst += 8) {
      const uint32_t v = ((tb_ld32(src + lo - hi) << shl) >> shr) | fill;
      dst[0] = tb_sxtab16(off2, v);
      dst[4] = tb_sxtab16_ror8(off2, v);
    }
    return;
  }
  for (ky = ky0; ky < ky1; ++ky, src += step, dst += 8) {
    /* the window sticks out on both sides of a row shorter than 4 bytes */
    uint32_t v = 0;
    for (b = 0; b < 4; ++b) {
      v |= (b >= lo && b < 4 - hi ? (uint32_t)(uint8_t)src[b] : zp4 & 0xFFu) << (8 * b);
    }
    dst[0] = tb_sxtab16(off2, v);
    dst[4] = tb_sxtab16_ror8(off2, v);
  }
}

/* im2col of 4 pixels whose taps all lie inside the input (b[q]: pixel q's
 * top-left tap): per group of 4 input values, 4 loads and 8 stores to
 * consecutive column words, no checks. A kernel row is segs segments of
 * seg_groups groups, seg_step bytes apart: one contiguous span (dil_w 1 and
 * k_w * in_c a multiple of 4), one word per tap (tap4), or in_c / 4 groups per
 * tap. */
static __attribute__((noinline)) void tb_cm4_im2col4_inside(const int8_t *const *b,
                                                            int32_t k_h, int32_t row_step,
                                                            int32_t segs, int32_t seg_step,
                                                            int32_t seg_groups, uint32_t off2,
                                                            uint32_t *dst) {
  const int8_t *b0 = b[0], *b1 = b[1], *b2 = b[2], *b3 = b[3];
  int32_t ky, sg, g;
  if (seg_groups == 1) {
    /* one group per segment (a tap of a 3- or 4-channel input): one loop over
     * the taps, the offset stepping along the row, then to the next row */
    const int32_t row_skip = row_step - segs * seg_step;
    uint32_t *const end = dst + 8 * k_h * segs;
    int32_t o = 0, left = segs;
    for (; dst != end; dst += 8) {
      const uint32_t v0 = tb_ld32(b0 + o), v1 = tb_ld32(b1 + o);
      const uint32_t v2 = tb_ld32(b2 + o), v3 = tb_ld32(b3 + o);
      dst[0] = tb_sxtab16(off2, v0);
      dst[1] = tb_sxtab16(off2, v1);
      dst[2] = tb_sxtab16(off2, v2);
      dst[3] = tb_sxtab16(off2, v3);
      dst[4] = tb_sxtab16_ror8(off2, v0);
      dst[5] = tb_sxtab16_ror8(off2, v1);
      dst[6] = tb_sxtab16_ror8(off2, v2);
      dst[7] = tb_sxtab16_ror8(off2, v3);
      o += seg_step;
      if (--left == 0) o += row_skip, left = segs;
    }
    return;
  }
  for (ky = 0; ky < k_h; ++ky) {
    for (sg = 0; sg < segs; ++sg) {
      int32_t o = ky * row_step + sg * seg_step;
      for (g = 0; g < seg_groups; ++g, o += 4, dst += 8) {
        const uint32_t v0 = tb_ld32(b0 + o), v1 = tb_ld32(b1 + o);
        const uint32_t v2 = tb_ld32(b2 + o), v3 = tb_ld32(b3 + o);
        dst[0] = tb_sxtab16(off2, v0);
        dst[1] = tb_sxtab16(off2, v1);
        dst[2] = tb_sxtab16(off2, v2);
        dst[3] = tb_sxtab16(off2, v3);
        dst[4] = tb_sxtab16_ror8(off2, v0);
        dst[5] = tb_sxtab16_ror8(off2, v1);
        dst[6] = tb_sxtab16_ror8(off2, v2);
        dst[7] = tb_sxtab16_ror8(off2, v3);
      }
    }
  }
}

/* im2col of 4 pixels of a 3x3 convolution of a 3-channel input (VWW's and
 * ResNet-8's first layer) whose taps all lie inside the input: each kernel row
 * is 9 contiguous bytes, the 27 values (padded to 28; the build put a zero
 * weight there) are 7 words of the concatenated rows, each one or two
 * (unaligned) word loads, no per-tap work. row_step: bytes between kernel rows. */
static __attribute__((noinline)) void tb_cm4_im2col4_rows9(const int8_t *const *b,
                                                           int32_t row_step, uint32_t off2,
                                                           uint32_t *col) {
  int32_t q;
  for (q = 0; q < TB_CM4_CONV_BLOCK; ++q) {
    const int8_t *r0 = b[q], *r1 = r0 + row_step, *r2 = r1 + row_step;
    uint32_t *dst = col + q, g;
#define TB_CM4_ROWS9_GROUP(i, expr) \
    g = (expr);                      \
    dst[8 * (i)] = tb_sxtab16(off2, g); \
    dst[8 * (i) + 4] = tb_sxtab16_ror8(off2, g);
    TB_CM4_ROWS9_GROUP(0, tb_ld32(r0))
    TB_CM4_ROWS9_GROUP(1, tb_ld32(r0 + 4))
    TB_CM4_ROWS9_GROUP(2, (uint32_t)(uint8_t)r0[8] | (tb_ld32(r1) << 8))
    TB_CM4_ROWS9_GROUP(3, tb_ld32(r1 + 3))
    TB_CM4_ROWS9_GROUP(4, (tb_ld32(r1 + 7) & 0xFFFFu) | (tb_ld32(r2) << 16))
    TB_CM4_ROWS9_GROUP(5, tb_ld32(r2 + 2))
    TB_CM4_ROWS9_GROUP(6, tb_ld32(r2 + 6))   /* byte 3 (the next pixel's) meets weight 0 */
#undef TB_CM4_ROWS9_GROUP
  }
}

/* im2col of one output pixel (oy, ox) into slot q of the 4-pixel column.
 * tap4: in_c is 3 and the build padded every tap to 4 channels with a zero
 * weight, so each tap is one word (its 4th byte, the next pixel's, meets 0). */
static void tb_cm4_im2col(const tb_conv_params *p, const int8_t *input, int32_t oy, int32_t ox,
                          int32_t q, int32_t k4, uint32_t off2, uint32_t *col, int8_t *stage,
                          int tap4) {
  const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
  const int32_t k_w = p->k_w, dil_w = p->dil_w;
  const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
  const int row_in = ix0 >= 0 && ix0 + (k_w - 1) * dil_w < in_w;
  uint32_t *dst = col + q;
  int32_t ky, kx;
  if (tap4) {
    const int8_t *end = input + in_h * in_w * in_c;
    for (ky = 0; ky < p->k_h; ++ky) {
      const int32_t iy = iy0 + ky * p->dil_h;
      for (kx = 0; kx < k_w; ++kx, dst += 8) {
        const int32_t ix = ix0 + kx * dil_w;
        if (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) {
          const int8_t *src = input + (iy * in_w + ix) * 3;
          uint32_t v;
          if (src + 4 <= end) {
            v = tb_ld32(src);
          } else {           /* the tensor's last pixel: do not read past it */
            v = (uint32_t)(uint8_t)src[0] | ((uint32_t)(uint8_t)src[1] << 8) |
                ((uint32_t)(uint8_t)src[2] << 16);
          }
          dst[0] = tb_sxtab16(off2, v);
          dst[4] = tb_sxtab16_ror8(off2, v);
        } else {
          dst[0] = 0;
          dst[4] = 0;
        }
      }
    }
    return;
  }
  if (dil_w == 1 && k_w * in_c == 4) {
    tb_cm4_im2col_word_rows(p, input, iy0, ix0, off2, dst);
    return;
  }
  if (dil_w == 1 && ((k_w * in_c) & 3) == 0 && row_in) {
    /* a kernel row is one contiguous span of the input */
    const int32_t groups = (k_w * in_c) >> 2;
    const int8_t *src = input + (iy0 * in_w + ix0) * in_c;
    const int32_t row_step = p->dil_h * in_w * in_c;
    for (ky = 0; ky < p->k_h; ++ky, src += row_step, dst += 8 * groups) {
      const int32_t iy = iy0 + ky * p->dil_h;
      if (iy >= 0 && iy < in_h) {
        tb_cm4_expand(src, groups, off2, dst);
      } else {
        tb_cm4_zero(groups, dst);
      }
    }
    return;
  }
  if ((in_c & 3) == 0) {
    const int32_t groups = in_c >> 2;
    for (ky = 0; ky < p->k_h; ++ky) {
      const int32_t iy = iy0 + ky * p->dil_h;
      const int iy_in = iy >= 0 && iy < in_h;
      for (kx = 0; kx < k_w; ++kx, dst += 8 * groups) {
        const int32_t ix = ix0 + kx * dil_w;
        if (iy_in && ix >= 0 && ix < in_w) {
          tb_cm4_expand(input + (iy * in_w + ix) * in_c, groups, off2, dst);
        } else {
          tb_cm4_zero(groups, dst);
        }
      }
    }
    return;
  }
  tb_cm4_im2col_staged(p, input, iy0, ix0, k4, off2, dst, stage);
}

#ifdef TB_CM4_DSP
/* All channel pairs of one 4-pixel block, fast requantization, full int8
 * range, in one assembly loop: bias, the K sweep (32 unrolled k-pair steps of
 * 60 bytes entered at a computed offset, then whole sweeps), requantization of
 * the 8 sums in place and one STRH per pixel for the channel pair. State that
 * does not fit the 14 registers lives in st (memory operands); registers are
 * pinned so that LDM can load {M, B, e}. */
typedef struct {
  const int32_t *r;       /* rq stream: per pair {Ma, Ba, ea, Mb, Bb, eb, bias_a, bias_b} */
  int8_t *o;              /* output of pixel 0, channel c */
  uint32_t col;           /* column, less 16 * entry */
  uint32_t col_end;       /* col + 512 * sweeps */
  uint32_t target;        /* address of the entry step (Thumb bit set) */
  int32_t entry;          /* 60 * entry step of the first sweep */
  int32_t stride;         /* out_c */
  int32_t pw_adjust;      /* 4 * entry step */
  const int32_t *r_end;   /* end of the rq stream of this block's pairs */
} tb_cm4_conv_state;

#define TB_CM4_STEP4(k)                                        \
  "ldr.w %[w], [%[pw], #(4*" #k ")]\n\t"                       \
  "ldr.w %[xa], [%[px], #(16*" #k ")]\n\t"                     \
  "ldr.w %[xb], [%[px], #(16*" #k "+4)]\n\t"                   \
  "sxtb16 %[wa], %[w]\n\t"                                     \
  "sxtb16 %[w], %[w], ror #8\n\t"                              \
  "smlad %[a0], %[xa], %[wa], %[a0]\n\t"                       \
  "smlad %[b0], %[xa], %[w], %[b0]\n\t"                        \
  "smlad %[a1], %[xb], %[wa], %[a1]\n\t"                       \
  "smlad %[b1], %[xb], %[w], %[b1]\n\t"                        \
  "ldr.w %[xa], [%[px], #(16*" #k "+8)]\n\t"                   \
  "ldr.w %[xb], [%[px], #(16*" #k "+12)]\n\t"                  \
  "smlad %[a2], %[xa], %[wa], %[a2]\n\t"                       \
  "smlad %[b2], %[xa], %[w], %[b2]\n\t"                        \
  "smlad %[a3], %[xb], %[wa], %[a3]\n\t"                       \
  "smlad %[b3], %[xb], %[w], %[b3]\n\t"

/* requantize 4 sums in place: xa = M, xb = B, wa = e, px temp */
#define TB_CM4_RQ1(A)                                               \
  "lsl %[px], %[" #A "], #1\n\t"                                    \
  "add %[" #A "], %[xb], %[" #A "], asr #31\n\t"                    \
  "smmlar %[" #A "], %[px], %[xa], %[" #A "]\n\t"                   \
  "asr %[" #A "], %[" #A "], %[wa]\n\t"                             \
  "ssat %[" #A "], #8, %[" #A "]\n\t"
#define TB_CM4_RQ4(A0, A1, A2, A3) TB_CM4_RQ1(A0) TB_CM4_RQ1(A1) TB_CM4_RQ1(A2) TB_CM4_RQ1(A3)

static inline __attribute__((always_inline)) const uint32_t *tb_cm4_conv_pairs(
    tb_cm4_conv_state *st, const uint32_t *pw_in) {
  register uint32_t a0 __asm__("r0"), a1 __asm__("r1"), a2 __asm__("r2"), a3 __asm__("r3");
  register uint32_t b0 __asm__("r4"), b1 __asm__("r5"), b2 __asm__("r6"), b3 __asm__("r7");
  register uint32_t xa __asm__("r8"), xb __asm__("r9"), wa __asm__("r10"), w __asm__("r11");
  register uint32_t px __asm__("r12");
  register const uint32_t *pw __asm__("lr") = pw_in;
  __asm__ volatile(
      "adr.w %[xb], 1f\n\t"
      "ldr %[xa], %[st_entry]\n\t"
      "add %[xb], %[xb], %[xa]\n\t"
      "orr %[xb], %[xb], #1\n\t"
      "str %[xb], %[st_target]\n\t"
      "ldr %[w], %[st_r]\n\t"
      "2:\n\t"
      /* bias into the 8 accumulators (w: this pair's rq stream) */
      "ldrd %[a0], %[b0], [%[w], #24]\n\t"
      "mov %[a1], %[a0]\n\t"
      "mov %[a2], %[a0]\n\t"
      "mov %[a3], %[a0]\n\t"
      "mov %[b1], %[b0]\n\t"
      "mov %[b2], %[b0]\n\t"
      "mov %[b3], %[b0]\n\t"
      "ldr %[px], %[st_col]\n\t"
      "ldr %[xb], %[st_target]\n\t"
      "bx %[xb]\n\t"
      ".p2align 2\n"
      "1:\n\t"
      TB_CM4_STEP4(0) TB_CM4_STEP4(1) TB_CM4_STEP4(2) TB_CM4_STEP4(3)
      TB_CM4_STEP4(4) TB_CM4_STEP4(5) TB_CM4_STEP4(6) TB_CM4_STEP4(7)
      TB_CM4_STEP4(8) TB_CM4_STEP4(9) TB_CM4_STEP4(10) TB_CM4_STEP4(11)
      TB_CM4_STEP4(12) TB_CM4_STEP4(13) TB_CM4_STEP4(14) TB_CM4_STEP4(15)
      TB_CM4_STEP4(16) TB_CM4_STEP4(17) TB_CM4_STEP4(18) TB_CM4_STEP4(19)
      TB_CM4_STEP4(20) TB_CM4_STEP4(21) TB_CM4_STEP4(22) TB_CM4_STEP4(23)
      TB_CM4_STEP4(24) TB_CM4_STEP4(25) TB_CM4_STEP4(26) TB_CM4_STEP4(27)
      TB_CM4_STEP4(28) TB_CM4_STEP4(29) TB_CM4_STEP4(30) TB_CM4_STEP4(31)
      "add %[px], %[px], #512\n\t"
      "add %[pw], %[pw], #128\n\t"
      "ldr %[xa], %[st_col_end]\n\t"
      "cmp %[px], %[xa]\n\t"
      "bne 1b\n\t"
      /* requantize channel a, then b, in place */
      "ldr %[w], %[st_r]\n\t"
      "ldmia %[w]!, {%[xa], %[xb], %[wa]}\n\t"
      TB_CM4_RQ4(a0, a1, a2, a3)
      "ldmia %[w]!, {%[xa], %[xb], %[wa]}\n\t"
      TB_CM4_RQ4(b0, b1, b2, b3)
      "add %[w], %[w], #8\n\t"
      "str %[w], %[st_r]\n\t"
      /* two channels per pixel: one STRH each; the four loads back to back */
      "ldr %[xa], %[st_o]\n\t"
      "ldr %[xb], %[st_stride]\n\t"
      "ldr %[px], %[st_pw_adjust]\n\t"
      "ldr %[wa], %[st_r_end]\n\t"
      "bfi %[a0], %[b0], #8, #8\n\t"
      "bfi %[a1], %[b1], #8, #8\n\t"
      "bfi %[a2], %[b2], #8, #8\n\t"
      "bfi %[a3], %[b3], #8, #8\n\t"
      "add %[b0], %[xb], %[xb], lsl #1\n\t"
      "strh %[a0], [%[xa]]\n\t"
      "strh %[a1], [%[xa], %[xb]]\n\t"
      "strh %[a2], [%[xa], %[xb], lsl #1]\n\t"
      "strh %[a3], [%[xa], %[b0]]\n\t"
      "add %[xa], %[xa], #2\n\t"
      "str %[xa], %[st_o]\n\t"
      "sub %[pw], %[pw], %[px]\n\t"
      "cmp %[w], %[wa]\n\t"
      "bne 2b\n\t"
      : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [b0] "=&r"(b0),
        [b1] "=&r"(b1), [b2] "=&r"(b2), [b3] "=&r"(b3), [xa] "=&r"(xa), [xb] "=&r"(xb),
        [wa] "=&r"(wa), [w] "=&r"(w), [px] "=&r"(px), [pw] "+r"(pw),
        [st_r] "+m"(st->r), [st_o] "+m"(st->o), [st_target] "+m"(st->target)
      : [st_col] "m"(st->col), [st_entry] "m"(st->entry), [st_col_end] "m"(st->col_end),
        [st_stride] "m"(st->stride), [st_pw_adjust] "m"(st->pw_adjust),
        [st_r_end] "m"(st->r_end)
      : "cc", "memory");
  return pw;
}
#endif

/* Requantize one sum of channel c (rq triple r3) into an output byte. */
static int8_t tb_cm4_conv_out(int32_t acc, const int32_t *r3, int32_t flags,
                              const tb_conv_params *p) {
  int32_t v;
  if (flags & TB_CM4_RQ_FAST) {
    v = tb_rq(acc, r3[0], r3[1], r3[2]);
  } else {
    v = tb_mul_by_quant_mul(acc, r3[0], r3[1]) + p->output_offset;
  }
  return (int8_t)tb_clamp(v, p->act_min, p->act_max);
}

/* All channels of 1 or 2 pixels (slots 0 and 1 of the column): per k-pair one
 * weight word, two SXTB16 and 2 * nb SMLADs; about half the cycles of a
 * 4-pixel block for 1 pixel. */
static __attribute__((noinline)) void tb_cm4_conv_few(const uint32_t *col, int32_t nb,
                                                      int32_t npairs, const uint32_t *pw,
                                                      const int32_t *r,
                                                      const tb_conv_params *p, int32_t flags,
                                                      int8_t *o) {
  const int32_t out_c = p->out_c;
  int32_t c, j;
  for (c = 0; c < out_c; c += 2, r += 8) {
    const uint32_t *px = col;
    int32_t a0 = r[6], b0 = r[7], a1 = r[6], b1 = r[7];
    if (nb == 2) {
      for (j = 0; j < npairs; ++j, px += TB_CM4_CONV_BLOCK) {
        const uint32_t w = *pw++, x0 = px[0], x1 = px[1];
        const uint32_t wa = tb_sxtb16(w), wb = tb_sxtb16_ror8(w);
        a0 = tb_smlad(x0, wa, a0);
        b0 = tb_smlad(x0, wb, b0);
        a1 = tb_smlad(x1, wa, a1);
        b1 = tb_smlad(x1, wb, b1);
      }
    } else {
      /* two k-pairs per pass (the loads pair up, half the loop overhead) */
      for (j = 0; j + 2 <= npairs; j += 2, px += 2 * TB_CM4_CONV_BLOCK, pw += 2) {
        const uint32_t w = pw[0], v = pw[1], x0 = px[0], x1 = px[TB_CM4_CONV_BLOCK];
        a0 = tb_smlad(x0, tb_sxtb16(w), a0);
        b0 = tb_smlad(x0, tb_sxtb16_ror8(w), b0);
        a0 = tb_smlad(x1, tb_sxtb16(v), a0);
        b0 = tb_smlad(x1, tb_sxtb16_ror8(v), b0);
      }
      if (j < npairs) {
        const uint32_t w = *pw++, x0 = px[0];
        a0 = tb_smlad(x0, tb_sxtb16(w), a0);
        b0 = tb_smlad(x0, tb_sxtb16_ror8(w), b0);
      }
    }
    o[c] = tb_cm4_conv_out(a0, r, flags, p);
    if (c + 1 < out_c) o[c + 1] = tb_cm4_conv_out(b0, r + 3, flags, p);
    if (nb == 2) {
      o[out_c + c] = tb_cm4_conv_out(a1, r, flags, p);
      if (c + 1 < out_c) o[out_c + c + 1] = tb_cm4_conv_out(b1, r + 3, flags, p);
    }
  }
}

void tb_cm4_conv2d_s8(const tb_conv_params *p, const int8_t *input, const int8_t *filter,
                      const int32_t *rq, int8_t *output, void *scratch) {
  const int32_t in_c = p->in_c, out_c = p->out_c, out_w = p->out_w;
  const int tap4 = rq[2] == 4;   /* in_c 3, taps padded to 4 channels at build time */
  const int rows9 = rq[2] == 9;  /* 3x3 kernel, in_c 3: kernel rows of 9 bytes */
  const int32_t k = p->k_h * p->k_w * (tap4 ? 4 : in_c);
  const int32_t k4 = (k + 3) & ~3;
  const int32_t npairs = k4 >> 1;
  const int32_t npix = p->out_h * out_w;
  const int32_t flags = rq[0];
  const int32_t act_min = p->act_min, act_max = p->act_max;
  const uint32_t off2 = ((uint32_t)p->input_offset & 0xFFFFu) * 0x10001u;
  const int is_1x1 = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
                     p->pad_top == 0 && p->pad_left == 0 && (in_c & 3) == 0;
  /* interior blocks: how a kernel row splits into segments of groups */
  const int32_t span_h = (p->k_h - 1) * p->dil_h, span_w = (p->k_w - 1) * p->dil_w;
  const int32_t row_step = p->dil_h * p->in_w * in_c;
  const int row_span = p->dil_w == 1 && ((p->k_w * in_c) & 3) == 0;
  const int32_t segs = tap4 || (in_c & 3) == 0 ? (row_span && !tap4 ? 1 : p->k_w)
                                                : (row_span ? 1 : 0);
  const int32_t seg_step = tap4 ? p->dil_w * 3 : p->dil_w * in_c;
  const int32_t seg_groups = tap4 ? 1 : (row_span ? (p->k_w * in_c) >> 2 : in_c >> 2);
  const int32_t last_off = span_h * p->in_w * in_c + span_w * in_c;
  const int8_t *input_end = input + p->in_h * p->in_w * in_c;
  uint32_t *col = (uint32_t *)scratch;
  int8_t *stage = (int8_t *)(col + TB_CM4_CONV_BLOCK * npairs);
#ifdef TB_CM4_DSP
  int8_t *tail = stage + ((in_c & 3) ? k4 : 0);   /* 4 * out_c bytes */
#endif
  int32_t p0;
#ifdef TB_CM4_DSP
  const int fast = flags == (TB_CM4_RQ_FAST | TB_CM4_RQ_FULLRANGE) && out_c >= 2;
  const int32_t first = npairs - ((npairs - 1) / TB_CM4_CONV_STEPS) * TB_CM4_CONV_STEPS;
  const int32_t entry = TB_CM4_CONV_STEPS - first;
#endif
  /* In place, the planner may put the output above the input: then the
   * blocks run from the last to the first (rq[1]: the largest output - input
   * offset that is safe going forward). */
  const int backward = (intptr_t)(output - input) > (intptr_t)rq[1];
  const int32_t last = (npix - 1) / TB_CM4_CONV_BLOCK * TB_CM4_CONV_BLOCK;
  const int32_t step = backward ? -TB_CM4_CONV_BLOCK : TB_CM4_CONV_BLOCK;
  for (p0 = backward ? last : 0; p0 >= 0 && p0 < npix; p0 += step) {
    const int32_t nb = npix - p0 < TB_CM4_CONV_BLOCK ? npix - p0 : TB_CM4_CONV_BLOCK;
    const uint32_t *pw = (const uint32_t *)(const void *)filter;
    const int32_t *r = rq + 4;
    int8_t *o = output + p0 * out_c;
    int32_t q, c = 0;
    if (is_1x1 && nb == TB_CM4_CONV_BLOCK) {
      /* the 4 pixels follow each other: one "kernel row" of in_c / 4 groups */
      const int8_t *base[TB_CM4_CONV_BLOCK];
      for (q = 0; q < TB_CM4_CONV_BLOCK; ++q) base[q] = input + (p0 + q) * in_c;
      tb_cm4_im2col4_inside(base, 1, 0, 1, 0, in_c >> 2, off2, col);
    } else if (is_1x1) {
      for (q = 0; q < nb; ++q) tb_cm4_expand(input + (p0 + q) * in_c, in_c >> 2, off2, col + q);
    } else {
      /* the 4 pixels' top-left taps; a block whose taps are all inside the
       * input takes the fast path */
      const int8_t *base[TB_CM4_CONV_BLOCK];
      int inside = nb == TB_CM4_CONV_BLOCK && (segs > 0 || rows9);
      for (q = 0; q < nb; ++q) {
        const int32_t oy = (p0 + q) / out_w, ox = (p0 + q) - oy * out_w;
        const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
        base[q] = input + (iy0 * p->in_w + ix0) * in_c;
        inside = inside && iy0 >= 0 && iy0 + span_h < p->in_h && ix0 >= 0 &&
                 ix0 + span_w < p->in_w && base[q] + last_off + 4 <= input_end;
      }
      if (inside && rows9) {
        tb_cm4_im2col4_rows9(base, row_step, off2, col);
      } else if (inside) {
        tb_cm4_im2col4_inside(base, p->k_h, row_step, segs, seg_step, seg_groups, off2, col);
      } else {
        for (q = 0; q < nb; ++q) {
          const int32_t pix = p0 + q;
          tb_cm4_im2col(p, input, pix / out_w, pix % out_w, q, k4, off2, col, stage, tap4);
        }
      }
    }
#ifdef TB_CM4_DSP
    if (fast && nb >= 3) {
      /* a partial block computes 4 pixels into the scratch tail, then copies */
      int8_t *dst = nb == TB_CM4_CONV_BLOCK ? o : tail;
      tb_cm4_conv_state st;
      st.r = r;
      st.o = dst;
      st.col = (uint32_t)col - 16u * (uint32_t)entry;
      st.col_end = st.col + 512u * (uint32_t)((npairs + entry) / TB_CM4_CONV_STEPS);
      st.target = 0;
      st.entry = 60 * entry;
      st.stride = out_c;
      st.pw_adjust = 4 * entry;
      st.r_end = r + 8 * (out_c >> 1);
      pw = tb_cm4_conv_pairs(&st, pw - entry) + entry;
      c = (out_c >> 1) * 2;
      r = st.r;
      if (dst != o) {
        for (q = 0; q < nb * out_c; ++q) o[q] = tail[q];
      }
      o += c;
    }
#endif
    if (nb <= 2) {
      /* the last block of 1 or 2 pixels (KWS's 125, VWW's 9): no 4-pixel work */
      tb_cm4_conv_few(col, nb, npairs, pw, r, p, flags, o);
      continue;
    }
    for (; c < out_c; c += 2, r += 8, o += 2) {
      const uint32_t *px = col;
      int32_t acc[2][TB_CM4_CONV_BLOCK], j;
      for (q = 0; q < TB_CM4_CONV_BLOCK; ++q) acc[0][q] = r[6], acc[1][q] = r[7];
      for (j = 0; j < npairs; ++j, px += TB_CM4_CONV_BLOCK) {
        const uint32_t w = *pw++;
        const uint32_t wa = tb_sxtb16(w), wb = tb_sxtb16_ror8(w);
        for (q = 0; q < TB_CM4_CONV_BLOCK; ++q) {
          acc[0][q] = tb_smlad(px[q], wa, acc[0][q]);
          acc[1][q] = tb_smlad(px[q], wb, acc[1][q]);
        }
      }
      for (q = 0; q < nb; ++q) {
        int32_t v0, v1;
        if (flags & TB_CM4_RQ_FAST) {
          v0 = tb_rq(acc[0][q], r[0], r[1], r[2]);
          v1 = tb_rq(acc[1][q], r[3], r[4], r[5]);
        } else {
          v0 = tb_mul_by_quant_mul(acc[0][q], r[0], r[1]) + p->output_offset;
          v1 = tb_mul_by_quant_mul(acc[1][q], r[3], r[4]) + p->output_offset;
        }
        o[q * out_c] = (int8_t)tb_clamp(v0, act_min, act_max);
        if (c + 1 < out_c) o[q * out_c + 1] = (int8_t)tb_clamp(v1, act_min, act_max);
      }
    }
  }
}
