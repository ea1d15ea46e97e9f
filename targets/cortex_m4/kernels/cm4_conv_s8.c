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
 *     needs no patch extraction: its "column" is the input pixel itself. A
 *     padded input is first copied once into a plane framed by the zero
 *     point (when small, or where it pays), so that no block needs bounds
 *     checks.
 *  2. For every pair of output channels, 8 accumulators (4 pixels x 2
 *     channels) run over the K4/2 pairs: one weight word holds both channels'
 *     bytes for one pair (reordered at build time: [c k][c+1 k][c k'][c+1 k']),
 *     and 8 SMLADs do 16 MACs: channel c with the word's SXTB16, channel c+1
 *     with the raw word, whose halfwords the build made 256 * w[c+1] + w[c]
 *     (rq[0] bit 4, cm4_prepare.conv_raw_b: the odd channel's sum is then
 *     (b - a) >> 8). Per 16 MACs: 5 loads, 1 extend, 8 SMLADs (16 cycles on
 *     the M4's pipeline: the 4 free registers allow two runs of pipelined
 *     loads per step), fully unrolled: no loop counter. Where the build
 *     refuses the raw form (a sum could reach 2^23), SXTB16 / SXTB16 ROR #8
 *     split the word per channel (tb_cm4_conv_pairs_split, 17 cycles).
 *  3. Requantization of sum + bias with the precomputed {M, B, e} per channel
 *     (the fast form of tb_rq), or TFLite's MultiplyByQuantizedMultiplier
 *     when the layer needs it. With the fast form and a full int8 output
 *     range, steps 2-3 for all channel pairs of a block are one assembly loop
 *     (tb_cm4_conv_pairs) that stores both channels of a pixel with one STRH.
 *
 * Arguments after the input: the filter stream, one record per channel pair
 * (odd C_out padded with a zero channel): its K4/2 weight words, then 8 int32
 * {M_c, B_c, e_c, bias_c, M_c+1, B_c+1, e_c+1, bias_c+1} (fast form: bias
 * doubled, {M, shift, 0, bias} for MultiplyByQuantizedMultiplier); the rq
 * header (rq[0] flags: bit 0 fast requantization, bit 1 activation is the
 * full int8 range, bit 3 the fast form may leave out its sign term; rq[1] the
 * forward overlap limit, output - input offsets above it run backwards; rq[2]
 * 4 when in_c is 3 and the filter's taps were padded to 4 channels, 9 for a
 * 3x3 kernel on 3 channels (kernel rows of 9 bytes, not padded); rq[3] the
 * padded plane's width | height << 16, or 0; rq[0] bit 5 and rq[4]: channel
 * quads, tb_cm4_conv_quads, and the offset of their copy in the scratch, or
 * -1: none, cm4_prepare.conv_quad_copy); the
 * output; and the scratch
 * buffer: 4 * K4 int16 for the columns, then K4 bytes for staging rows when
 * in_c is not a multiple of 4 (and not padded to 4 per tap), then (when the
 * pixel count is 3 mod 4, or with quads not 0 mod 4) 4 * C_out bytes where the
 * last block is computed before its valid pixels are copied out, then the
 * padded plane, then (quads, place=flash) room for the filter's copy; a last block of 1 or
 * 2 pixels runs tb_cm4_conv_few (with quads, the quad loop on pixels 0-1).
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
#define TB_CM4_RQ_NO_SIGN 8   /* the fast form without its sign term (cm4_prepare.conv_no_sign) */
#define TB_CM4_RQ_RAW_B 16    /* odd channels' weights for SMLAD on the raw word (cm4_prepare.conv_raw_b) */
#define TB_CM4_RQ_QUADS 32    /* channel quads x pixel pairs (tb_cm4_conv_quads), rq[4]: their scratch */
#define TB_CM4_QUAD_RQ 16     /* int32 words after each quad's interleaved weights */
#ifndef TB_CM4_SRAM_BASE   /* below: the code region (flash on the STM32 boards) */
#define TB_CM4_SRAM_BASE 0x20000000u
#endif
#define TB_CM4_PAIR_RQ 8      /* int32 words after each channel pair's weights */
#define TB_CM4_CONV_BLOCK 4   /* output pixels per block */
#define TB_CM4_CONV_STEPS_SPLIT 32   /* ... in tb_cm4_conv_pairs_split */
#define TB_CM4_CONV_STEPS 64  /* k-pairs per unrolled sweep (the asm below: 64 steps, 16 * 64 column bytes) */

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

/* tb_cm4_column4_1x1 (tb_cm4.h), out of line here: the general kernel calls
 * it once per block, code size matters more than the call. */
static __attribute__((noinline)) void tb_cm4_im2col4_1x1(const int8_t *b, int32_t in_c,
                                                         uint32_t off2, uint32_t *dst) {
  tb_cm4_column4_1x1(b, in_c, off2, dst);
}

/* im2col of n pixels (slots 0..n-1 from col) of a 3x3 convolution of a
 * 3-channel input (VWW's and ResNet-8's first layer) whose taps all lie inside
 * the input: each kernel row is 9 contiguous bytes; the 27 values (padded to
 * 28; the build put a zero weight there) are taken in the order the build
 * stored the weights (cm4_prepare.CONV_ROWS9_ORDER): each row's first 8 bytes
 * (two word loads, aligned as the row is), then one word of the rows' last
 * bytes; no per-tap work. row_step: bytes between kernel rows. */
static __attribute__((noinline)) void tb_cm4_im2col_rows9(const int8_t *const *b, int32_t n,
                                                          int32_t row_step, uint32_t off2,
                                                          uint32_t *col) {
  int32_t q;
  for (q = 0; q < n; ++q) {
    const int8_t *r0 = b[q], *r1 = r0 + row_step, *r2 = r1 + row_step;
    uint32_t *dst = col + q;
    uint32_t v0, v1, v2, v3, v4, v5, e0, e1, e2, g;
    /* the loads in two runs, each load after the first one cycle (between
     * the SXTAB16s, where GCC would put them, each costs two) */
#ifdef TB_CM4_DSP
    __asm__ volatile("ldr %0, [%6]\n\t"
                     "ldr %1, [%6, #4]\n\t"
                     "ldrb %2, [%6, #8]\n\t"
                     "ldr %3, [%7]\n\t"
                     "ldr %4, [%7, #4]\n\t"
                     "ldrb %5, [%7, #8]\n\t"
                     : "=&r"(v0), "=&r"(v1), "=&r"(e0), "=&r"(v2), "=&r"(v3), "=&r"(e1)
                     : "r"(r0), "r"(r1)
                     : "memory");
#else
    v0 = tb_ld32(r0), v1 = tb_ld32(r0 + 4), e0 = (uint8_t)r0[8];
    v2 = tb_ld32(r1), v3 = tb_ld32(r1 + 4), e1 = (uint8_t)r1[8];
#endif
#define TB_CM4_ROWS9_GROUP(i, expr) \
    g = (expr);                      \
    dst[8 * (i)] = tb_sxtab16(off2, g); \
    dst[8 * (i) + 4] = tb_sxtab16_ror8(off2, g);
    TB_CM4_ROWS9_GROUP(0, v0)
    TB_CM4_ROWS9_GROUP(1, v1)
    TB_CM4_ROWS9_GROUP(2, v2)
    TB_CM4_ROWS9_GROUP(3, v3)
#ifdef TB_CM4_DSP
    __asm__ volatile("ldr %0, [%3]\n\t"
                     "ldr %1, [%3, #4]\n\t"
                     "ldrb %2, [%3, #8]\n\t"
                     : "=&r"(v4), "=&r"(v5), "=&r"(e2)
                     : "r"(r2)
                     : "memory");
#else
    v4 = tb_ld32(r2), v5 = tb_ld32(r2 + 4), e2 = (uint8_t)r2[8];
#endif
    TB_CM4_ROWS9_GROUP(4, v4)
    TB_CM4_ROWS9_GROUP(5, v5)
    TB_CM4_ROWS9_GROUP(6, e0 | (e1 << 8) | (e2 << 16))   /* the fourth byte meets weight 0 */
#undef TB_CM4_ROWS9_GROUP
  }
}

#define TB_CM4_ROWS9_STAGE 12   /* bytes per kernel row in the border stage (9 + slack) */

/* im2col of a border pixel of a 3x3 convolution on 3 channels (rows9): its 3
 * kernel rows are staged as 9 bytes each, TB_CM4_ROWS9_STAGE apart, the taps
 * outside the input as the zero point (0 once the offset is added, what the
 * reference skips), then loaded like an interior pixel's rows. The general
 * per-pixel path would stage and expand byte by byte (3 channels are not a
 * whole word). stage: 3 * TB_CM4_ROWS9_STAGE bytes; the rows' last word loads
 * stay inside it. */
static __attribute__((noinline)) void tb_cm4_im2col_rows9_border(const tb_conv_params *p,
                                                                 const int8_t *input,
                                                                 int32_t iy0, int32_t ix0,
                                                                 uint32_t off2, uint32_t *dst,
                                                                 int8_t *stage) {
  const int8_t zp = (int8_t)(-p->input_offset);
  const uint32_t zp4 = (uint32_t)(uint8_t)zp * 0x01010101u;
  const int8_t *row = stage;
  int32_t ky, kx, i;
  for (i = 0; i < 3 * TB_CM4_ROWS9_STAGE; i += 4) tb_st32(stage + i, zp4);
  for (ky = 0; ky < 3; ++ky) {
    const int32_t iy = iy0 + ky * p->dil_h;
    if (iy < 0 || iy >= p->in_h) continue;
    for (kx = 0; kx < 3; ++kx) {
      const int32_t ix = ix0 + kx;
      if (ix >= 0 && ix < p->in_w) {
        const int8_t *src = input + (iy * p->in_w + ix) * 3;
        int8_t *d = stage + ky * TB_CM4_ROWS9_STAGE + kx * 3;
        d[0] = src[0];
        d[1] = src[1];
        d[2] = src[2];
      }
    }
  }
  tb_cm4_im2col_rows9(&row, 1, TB_CM4_ROWS9_STAGE, off2, dst);
}

/* im2col of one output pixel (oy, ox) into slot q of the 4-pixel column.
 * tap4: in_c is 3 and the build padded every tap to 4 channels with a zero
 * weight, so each tap is one word (its 4th byte, the next pixel's, meets 0).
 * Only border pixels come here: out of line, it costs less flash. */
static __attribute__((noinline)) void tb_cm4_im2col(const tb_conv_params *p,
                                                    const int8_t *input, int32_t oy, int32_t ox,
                                                    int32_t q, int32_t k4, uint32_t off2,
                                                    uint32_t *col, int8_t *stage, int tap4) {
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
 * range, in one assembly loop. Per pair (pw: its record):
 *  - the first k-pair with SMUAD, which initializes the 8 accumulators (the
 *    bias is added at requantization, where it costs nothing: see below);
 *  - the other npairs - 1 k-pairs: 64 unrolled steps of 56 bytes entered at a
 *    computed offset (no loop counter: all 14 registers hold data), repeated
 *    while more sweeps remain (64, not 32: each further sweep costs about 8
 *    cycles per pair, ResNet-8's 3x3 layers take 1-4 fewer; 1.9 KB of flash);
 *  - requantization of the 8 sums in place, {M, B, e, 2*bias} per channel
 *    loaded with one LDM from the record (the bias enters with the doubling:
 *    t = 2*bias + 2*sum is one ADD with a shifted operand), then one STRH per
 *    pixel for the channel pair.
 * The requantization has two forms: with the sign term B + (t >> 31), and
 * without it (TB_CM4_RQ_NO_SIGN: zero point -128, where a negative sum clamps
 * to -128 either way). The form is chosen by the sweep-end test: px_last is
 * the column pointer of the last sweep, minus 1 for the form with the sign
 * term, so one compare tells "more sweeps" (lower), "sign-free" (equal) and
 * "with sign" (higher). State that does not fit the registers lives in st
 * (memory operands); registers are pinned so that LDM can load {M, B, e, bias}. */
typedef struct {
  uint32_t col;           /* column: the first k-pair of the 4 pixels */
  uint32_t target;        /* address of the entry step (Thumb bit set) */
  int32_t pw_skip;        /* record start -> the sweep's weight base: 4 - 4 * entry */
  uint32_t sweep_col;     /* the sweep's column base: col + 16 - 16 * entry */
  uint32_t px_last;       /* sweep_col + 512 * (sweeps - 1), less 1 with the sign term */
  int8_t *o;              /* output of pixel 0, channel c */
  int32_t stride;         /* out_c */
  const uint32_t *pw_end; /* end of the records of this block's pairs */
  int32_t entry_bytes;    /* TB_CM4_CONV_STEP_BYTES * entry step */
} tb_cm4_conv_state;


/* requantize one sum in place: xa = M, xb = B, wa = e, w = 2*bias, px temp
 * (t = 2 * (sum + bias)); without and with the sign term */
#define TB_CM4_RQ1(A)                                               \
  "add %[px], %[w], %[" #A "], lsl #1\n\t"                          \
  "smmlar %[" #A "], %[px], %[xa], %[xb]\n\t"                       \
  "asr %[" #A "], %[" #A "], %[wa]\n\t"                             \
  "ssat %[" #A "], #8, %[" #A "]\n\t"
#define TB_CM4_RQ1_SIGN(A)                                          \
  "add %[px], %[w], %[" #A "], lsl #1\n\t"                          \
  "add %[" #A "], %[xb], %[px], asr #31\n\t"                        \
  "smmlar %[" #A "], %[px], %[xa], %[" #A "]\n\t"                   \
  "asr %[" #A "], %[" #A "], %[wa]\n\t"                             \
  "ssat %[" #A "], #8, %[" #A "]\n\t"
/* channel c+1 (raw-word sums, TB_CM4_CONV_STEP4): its sum is 256 * (b - a),
 * taken as b - a before a is requantized and t = 2*bias + ((b - a) >> 7) */
#define TB_CM4_RQ1B(A)                                              \
  "add %[px], %[w], %[" #A "], asr #7\n\t"                          \
  "smmlar %[" #A "], %[px], %[xa], %[xb]\n\t"                       \
  "asr %[" #A "], %[" #A "], %[wa]\n\t"                             \
  "ssat %[" #A "], #8, %[" #A "]\n\t"
#define TB_CM4_RQ1B_SIGN(A)                                         \
  "add %[px], %[w], %[" #A "], asr #7\n\t"                          \
  "add %[" #A "], %[xb], %[px], asr #31\n\t"                        \
  "smmlar %[" #A "], %[px], %[xa], %[" #A "]\n\t"                   \
  "asr %[" #A "], %[" #A "], %[wa]\n\t"                             \
  "ssat %[" #A "], #8, %[" #A "]\n\t"
#define TB_CM4_RQ4(A0, A1, A2, A3) TB_CM4_RQ1(A0) TB_CM4_RQ1(A1) TB_CM4_RQ1(A2) TB_CM4_RQ1(A3)
#define TB_CM4_RQ4_SIGN(A0, A1, A2, A3) \
  TB_CM4_RQ1_SIGN(A0) TB_CM4_RQ1_SIGN(A1) TB_CM4_RQ1_SIGN(A2) TB_CM4_RQ1_SIGN(A3)
#define TB_CM4_RQ4B(A0, A1, A2, A3) \
  TB_CM4_RQ1B(A0) TB_CM4_RQ1B(A1) TB_CM4_RQ1B(A2) TB_CM4_RQ1B(A3)
#define TB_CM4_RQ4B_SIGN(A0, A1, A2, A3) \
  TB_CM4_RQ1B_SIGN(A0) TB_CM4_RQ1B_SIGN(A1) TB_CM4_RQ1B_SIGN(A2) TB_CM4_RQ1B_SIGN(A3)

/* What tb_cm4_conv_pairs and tb_cm4_conv_pairs_split share: their registers, the
 * entry (the sweep's computed jump target), the store of a block's two channels
 * with the next pair's first k-pair (FIRST_B: how that pair's B weights are
 * formed), and the asm operands. */
#define TB_CM4_PAIRS_REGS \
  register uint32_t a0 __asm__("r0"), a1 __asm__("r1"), a2 __asm__("r2"), a3 __asm__("r3"); \
  register uint32_t b0 __asm__("r4"), b1 __asm__("r5"), b2 __asm__("r6"), b3 __asm__("r7"); \
  register uint32_t xa __asm__("r8"), xb __asm__("r9"), wa __asm__("r10"), w __asm__("r11"); \
  register uint32_t px __asm__("r12"); \
  register const uint32_t *pw __asm__("lr") = pw_in;
#define TB_CM4_PAIRS_ENTRY \
      "adr.w %[xb], 1f\n\t" \
      "ldr %[xa], %[st_entry_bytes]\n\t" \
      "add %[xb], %[xb], %[xa]\n\t" \
      "orr %[xb], %[xb], #1\n\t" \
      "str %[xb], %[st_target]\n\t" \
      "b 3f\n\t" \
      ".p2align 2\n" \
      "5:\n\t"                       /* another sweep of the same pair */
#define TB_CM4_PAIRS_STORE_NEXT(FIRST_B) \
      "7:\n\t" \
      /* two channels per pixel: one STRH each; pixel 0's last, advancing o */ \
      "ldr %[xa], %[st_o]\n\t" \
      "ldr %[xb], %[st_stride]\n\t" \
      "ldr %[px], %[st_pw_end]\n\t" \
      "bfi %[a0], %[b0], #8, #8\n\t" \
      "bfi %[a1], %[b1], #8, #8\n\t" \
      "bfi %[a2], %[b2], #8, #8\n\t" \
      "bfi %[a3], %[b3], #8, #8\n\t" \
      "add %[wa], %[xb], %[xb], lsl #1\n\t" \
      "strh %[a1], [%[xa], %[xb]]\n\t" \
      "strh %[a2], [%[xa], %[xb], lsl #1]\n\t" \
      "strh %[a3], [%[xa], %[wa]]\n\t" \
      "strh %[a0], [%[xa]], #2\n\t" \
      "str %[xa], %[st_o]\n\t" \
      "cmp %[pw], %[px]\n\t" \
      "beq 9f\n" \
      "3:\n\t" \
      /* the next pair's first k-pair: SMUAD sets the accumulators; the 4 \
       * column words go to a0..a3, free until their own SMUAD */ \
      "ldr %[xa], %[st_col]\n\t" \
      "ldr %[xb], %[st_target]\n\t" \
      "ldr %[wa], %[st_pw_skip]\n\t" \
      "ldr %[px], %[st_sweep_col]\n\t" \
      "ldr %[w], [%[pw]]\n\t" \
      "ldr %[a0], [%[xa]]\n\t" \
      "ldr %[a1], [%[xa], #4]\n\t" \
      "ldr %[a2], [%[xa], #8]\n\t" \
      "ldr %[a3], [%[xa], #12]\n\t" \
      "add %[pw], %[pw], %[wa]\n\t" \
      "sxtb16 %[wa], %[w]\n\t" \
      FIRST_B \
      "smuad %[b0], %[a0], %[w]\n\t" \
      "smuad %[a0], %[a0], %[wa]\n\t" \
      "smuad %[b1], %[a1], %[w]\n\t" \
      "smuad %[a1], %[a1], %[wa]\n\t" \
      "smuad %[b2], %[a2], %[w]\n\t" \
      "smuad %[a2], %[a2], %[wa]\n\t" \
      "smuad %[b3], %[a3], %[w]\n\t" \
      "smuad %[a3], %[a3], %[wa]\n\t" \
      "bx %[xb]\n"
#define TB_CM4_PAIRS_OPERANDS \
      : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [b0] "=&r"(b0), \
        [b1] "=&r"(b1), [b2] "=&r"(b2), [b3] "=&r"(b3), [xa] "=&r"(xa), [xb] "=&r"(xb), \
        [wa] "=&r"(wa), [w] "=&r"(w), [px] "=&r"(px), [pw] "+r"(pw), \
        [st_o] "+m"(st->o), [st_target] "+m"(st->target) \
      : [st_col] "m"(st->col), [st_pw_skip] "m"(st->pw_skip), [st_sweep_col] "m"(st->sweep_col), \
        [st_px_last] "m"(st->px_last), [st_stride] "m"(st->stride), \
        [st_pw_end] "m"(st->pw_end), [st_entry_bytes] "m"(st->entry_bytes) \
      : "cc", "memory"

static inline __attribute__((always_inline)) void tb_cm4_conv_pairs(tb_cm4_conv_state *st,
                                                                   const uint32_t *pw_in) {
  TB_CM4_PAIRS_REGS
  __asm__ volatile(
      TB_CM4_PAIRS_ENTRY
      "add %[px], %[px], #1024\n\t"
      "add %[pw], %[pw], #256\n"
      "1:\n\t"
      TB_CM4_CONV_STEP4(0) TB_CM4_CONV_STEP4(1) TB_CM4_CONV_STEP4(2) TB_CM4_CONV_STEP4(3)
      TB_CM4_CONV_STEP4(4) TB_CM4_CONV_STEP4(5) TB_CM4_CONV_STEP4(6) TB_CM4_CONV_STEP4(7)
      TB_CM4_CONV_STEP4(8) TB_CM4_CONV_STEP4(9) TB_CM4_CONV_STEP4(10) TB_CM4_CONV_STEP4(11)
      TB_CM4_CONV_STEP4(12) TB_CM4_CONV_STEP4(13) TB_CM4_CONV_STEP4(14) TB_CM4_CONV_STEP4(15)
      TB_CM4_CONV_STEP4(16) TB_CM4_CONV_STEP4(17) TB_CM4_CONV_STEP4(18) TB_CM4_CONV_STEP4(19)
      TB_CM4_CONV_STEP4(20) TB_CM4_CONV_STEP4(21) TB_CM4_CONV_STEP4(22) TB_CM4_CONV_STEP4(23)
      TB_CM4_CONV_STEP4(24) TB_CM4_CONV_STEP4(25) TB_CM4_CONV_STEP4(26) TB_CM4_CONV_STEP4(27)
      TB_CM4_CONV_STEP4(28) TB_CM4_CONV_STEP4(29) TB_CM4_CONV_STEP4(30) TB_CM4_CONV_STEP4(31)
      TB_CM4_CONV_STEP4(32) TB_CM4_CONV_STEP4(33) TB_CM4_CONV_STEP4(34) TB_CM4_CONV_STEP4(35) 
      TB_CM4_CONV_STEP4(36) TB_CM4_CONV_STEP4(37) TB_CM4_CONV_STEP4(38) TB_CM4_CONV_STEP4(39) 
      TB_CM4_CONV_STEP4(40) TB_CM4_CONV_STEP4(41) TB_CM4_CONV_STEP4(42) TB_CM4_CONV_STEP4(43) 
      TB_CM4_CONV_STEP4(44) TB_CM4_CONV_STEP4(45) TB_CM4_CONV_STEP4(46) TB_CM4_CONV_STEP4(47) 
      TB_CM4_CONV_STEP4(48) TB_CM4_CONV_STEP4(49) TB_CM4_CONV_STEP4(50) TB_CM4_CONV_STEP4(51) 
      TB_CM4_CONV_STEP4(52) TB_CM4_CONV_STEP4(53) TB_CM4_CONV_STEP4(54) TB_CM4_CONV_STEP4(55) 
      TB_CM4_CONV_STEP4(56) TB_CM4_CONV_STEP4(57) TB_CM4_CONV_STEP4(58) TB_CM4_CONV_STEP4(59) 
      TB_CM4_CONV_STEP4(60) TB_CM4_CONV_STEP4(61) TB_CM4_CONV_STEP4(62) TB_CM4_CONV_STEP4(63)
      "ldr %[xa], %[st_px_last]\n\t"
      "cmp %[px], %[xa]\n\t"
      "bcc 5b\n\t"
      "bhi 6f\n\t"
      /* the record's requantization words follow the last sweep's weights */
      "add %[pw], %[pw], #256\n\t"
      "ldmia %[pw]!, {%[xa], %[xb], %[wa], %[w]}\n\t"
      TB_CM4_RAW_B_SUMS
      TB_CM4_RQ4(a0, a1, a2, a3)
      "ldmia %[pw]!, {%[xa], %[xb], %[wa], %[w]}\n\t"
      TB_CM4_RQ4B(b0, b1, b2, b3)
      TB_CM4_PAIRS_STORE_NEXT("")
      "6:\n\t"
      "add %[pw], %[pw], #256\n\t"
      "ldmia %[pw]!, {%[xa], %[xb], %[wa], %[w]}\n\t"
      TB_CM4_RAW_B_SUMS
      TB_CM4_RQ4_SIGN(a0, a1, a2, a3)
      "ldmia %[pw]!, {%[xa], %[xb], %[wa], %[w]}\n\t"
      TB_CM4_RQ4B_SIGN(b0, b1, b2, b3)
      "b 7b\n"
      "9:\n\t"
      TB_CM4_PAIRS_OPERANDS);
}
/* The same loop for weights without the raw-B form (cm4_prepare.conv_raw_b
 * refused the layer: a channel's sum could reach 2^23), both channels split
 * by SXTB16 / SXTB16 ROR 8: 17-cycle steps of 60 bytes, sweeps of
 * TB_CM4_CONV_STEPS_SPLIT (32) steps. */
static inline __attribute__((always_inline)) void tb_cm4_conv_pairs_split(tb_cm4_conv_state *st,
                                                                         const uint32_t *pw_in) {
  TB_CM4_PAIRS_REGS
  __asm__ volatile(
      TB_CM4_PAIRS_ENTRY
      "add %[px], %[px], #512\n\t"
      "add %[pw], %[pw], #128\n"
      "1:\n\t"
      TB_CM4_CONV_STEP4_SPLIT(0) TB_CM4_CONV_STEP4_SPLIT(1) TB_CM4_CONV_STEP4_SPLIT(2) TB_CM4_CONV_STEP4_SPLIT(3)
      TB_CM4_CONV_STEP4_SPLIT(4) TB_CM4_CONV_STEP4_SPLIT(5) TB_CM4_CONV_STEP4_SPLIT(6) TB_CM4_CONV_STEP4_SPLIT(7)
      TB_CM4_CONV_STEP4_SPLIT(8) TB_CM4_CONV_STEP4_SPLIT(9) TB_CM4_CONV_STEP4_SPLIT(10) TB_CM4_CONV_STEP4_SPLIT(11)
      TB_CM4_CONV_STEP4_SPLIT(12) TB_CM4_CONV_STEP4_SPLIT(13) TB_CM4_CONV_STEP4_SPLIT(14) TB_CM4_CONV_STEP4_SPLIT(15)
      TB_CM4_CONV_STEP4_SPLIT(16) TB_CM4_CONV_STEP4_SPLIT(17) TB_CM4_CONV_STEP4_SPLIT(18) TB_CM4_CONV_STEP4_SPLIT(19)
      TB_CM4_CONV_STEP4_SPLIT(20) TB_CM4_CONV_STEP4_SPLIT(21) TB_CM4_CONV_STEP4_SPLIT(22) TB_CM4_CONV_STEP4_SPLIT(23)
      TB_CM4_CONV_STEP4_SPLIT(24) TB_CM4_CONV_STEP4_SPLIT(25) TB_CM4_CONV_STEP4_SPLIT(26) TB_CM4_CONV_STEP4_SPLIT(27)
      TB_CM4_CONV_STEP4_SPLIT(28) TB_CM4_CONV_STEP4_SPLIT(29) TB_CM4_CONV_STEP4_SPLIT(30) TB_CM4_CONV_STEP4_SPLIT(31)
      "ldr %[xa], %[st_px_last]\n\t"
      "cmp %[px], %[xa]\n\t"
      "bcc 5b\n\t"
      "bhi 6f\n\t"
      /* the record's requantization words follow the last sweep's weights */
      "add %[pw], %[pw], #128\n\t"
      "ldmia %[pw]!, {%[xa], %[xb], %[wa], %[w]}\n\t"
      TB_CM4_RQ4(a0, a1, a2, a3)
      "ldmia %[pw]!, {%[xa], %[xb], %[wa], %[w]}\n\t"
      TB_CM4_RQ4(b0, b1, b2, b3)
      TB_CM4_PAIRS_STORE_NEXT("sxtb16 %[w], %[w], ror #8\n\t")
      "6:\n\t"
      "add %[pw], %[pw], #128\n\t"
      "ldmia %[pw]!, {%[xa], %[xb], %[wa], %[w]}\n\t"
      TB_CM4_RQ4_SIGN(a0, a1, a2, a3)
      "ldmia %[pw]!, {%[xa], %[xb], %[wa], %[w]}\n\t"
      TB_CM4_RQ4_SIGN(b0, b1, b2, b3)
      "b 7b\n"
      "9:\n\t"
      TB_CM4_PAIRS_OPERANDS);
}

/* Channel quads x pixel pairs (rq[0] TB_CM4_RQ_QUADS): 2 pixels x 4 channels,
 * 8 accumulators, and per k-pair one run of 4 loads (the two pairs' raw-B
 * words, the two pixels' column words: 5 cycles), 2 SXTB16 in place (the raw
 * word's SMLADs first) and 8 SMLAD: 15 cycles per 16 MACs where the 4 x 2
 * block takes 16 (its fifth load needs a register it does not have). The
 * build stores each quad as [A_k, B_k] for every k-pair (A: channels c, c+1;
 * B: c+2, c+3; cm4_prepare.conv_quad_layout), then A's and B's 8
 * requantization words. A quad's weights are read once per pixel pair, twice
 * per block: a filter in flash is first copied into the scratch (rq[4]), so
 * that flash is read once per inference, not once per block. Register names
 * as in the pair loops (the requantization macros serve): xa, xb = the A and
 * B weight words, wa, w = the pixels' column words; {xa, xb, wa, w} = {M, B,
 * e, 2*bias} of one channel at requantization. */
#define TB_CM4_QUAD_STEP(k)                                    \
  "ldr.w %[xa], [%[pw], #(8*(" #k "))]\n\t"                    \
  "ldr.w %[xb], [%[pw], #(8*(" #k ")+4)]\n\t"                  \
  "ldr.w %[wa], [%[px], #(16*(" #k "))]\n\t"                   \
  "ldr.w %[w], [%[px], #(16*(" #k ")+4)]\n\t"                  \
  "smlad %[a1], %[wa], %[xa], %[a1]\n\t"                       \
  "smlad %[b1], %[w], %[xa], %[b1]\n\t"                        \
  "sxtb16 %[xa], %[xa]\n\t"                                    \
  "smlad %[a0], %[wa], %[xa], %[a0]\n\t"                       \
  "smlad %[b0], %[w], %[xa], %[b0]\n\t"                        \
  "smlad %[a3], %[wa], %[xb], %[a3]\n\t"                       \
  "smlad %[b3], %[w], %[xb], %[b3]\n\t"                        \
  "sxtb16 %[xb], %[xb]\n\t"                                    \
  "smlad %[a2], %[wa], %[xb], %[a2]\n\t"                       \
  "smlad %[b2], %[w], %[xb], %[b2]\n\t"
#define TB_CM4_QUAD_STEP8(k)                                                          \
  TB_CM4_QUAD_STEP(8 * k) TB_CM4_QUAD_STEP(8 * k + 1) TB_CM4_QUAD_STEP(8 * k + 2)     \
  TB_CM4_QUAD_STEP(8 * k + 3) TB_CM4_QUAD_STEP(8 * k + 4) TB_CM4_QUAD_STEP(8 * k + 5) \
  TB_CM4_QUAD_STEP(8 * k + 6) TB_CM4_QUAD_STEP(8 * k + 7)
/* the raw-B sums: channel c+1's (c+3's) is 256 times (b - a) */
#define TB_CM4_QUAD_RAW_B_SUMS                                      \
  "sub %[a1], %[a1], %[a0]\n\t"                                     \
  "sub %[b1], %[b1], %[b0]\n\t"                                     \
  "sub %[a3], %[a3], %[a2]\n\t"                                     \
  "sub %[b3], %[b3], %[b2]\n\t"
#define TB_CM4_QUAD_REQUANT(RQ, RQB)                                \
  "ldmia %[pw]!, {%[xa], %[xb], %[wa], %[w]}\n\t"                   \
  RQ(a0) RQ(b0)                                                     \
  "ldmia %[pw]!, {%[xa], %[xb], %[wa], %[w]}\n\t"                   \
  RQB(a1) RQB(b1)                                                   \
  "ldmia %[pw]!, {%[xa], %[xb], %[wa], %[w]}\n\t"                   \
  RQ(a2) RQ(b2)                                                     \
  "ldmia %[pw]!, {%[xa], %[xb], %[wa], %[w]}\n\t"                   \
  RQB(a3) RQB(b3)

/* The quad loop's state (a local of the caller: addressed from sp, no
 * register is left for a pointer). */
typedef struct {
  /* pairs of fields read with one LDRD (one instruction, one more cycle) */
  uint32_t col;           /* column: the first k-pair of this pixel pair */
  uint32_t target;        /* address of the entry step (Thumb bit set) */
  int32_t pw_skip;        /* quad start -> the sweep's weight base: 8 - 8 * entry */
  uint32_t sweep_col;     /* the sweep's column base: col + 16 - 16 * entry */
  int8_t *o;              /* output of the pair's first pixel, channel c */
  int32_t stride;         /* out_c */
  uint32_t px_last;       /* sweep_col + 1024 * (sweeps - 1), less 1 with the sign term */
  const uint32_t *pw_end; /* end of the quads */
  int32_t entry_bytes;    /* TB_CM4_CONV_STEP_BYTES * entry step */
  const uint32_t *pw_begin; /* the first quad */
  int8_t *o2;             /* pixels 2-3's output, or 0: pixels 0-1 only */
} tb_cm4_quad_state;

/* All quads of a block: pixels 0-1, then (o2 set) pixels 2-3, whose column
 * words are 8 bytes on (st->col, sweep_col and px_last advance by 8). */
static inline __attribute__((always_inline)) void tb_cm4_conv_quads(tb_cm4_quad_state *st,
                                                                   const uint32_t *pw_in) {
  TB_CM4_PAIRS_REGS
  __asm__ volatile(
      TB_CM4_PAIRS_ENTRY
      "add %[px], %[px], #1024\n\t"
      "add %[pw], %[pw], #512\n"
      "1:\n\t"
      TB_CM4_QUAD_STEP8(0) TB_CM4_QUAD_STEP8(1) TB_CM4_QUAD_STEP8(2) TB_CM4_QUAD_STEP8(3)
      TB_CM4_QUAD_STEP8(4) TB_CM4_QUAD_STEP8(5) TB_CM4_QUAD_STEP8(6) TB_CM4_QUAD_STEP8(7)
      "ldr %[xa], %[st_px_last]\n\t"
      "cmp %[px], %[xa]\n\t"
      "bcc 5b\n\t"
      "bhi 6f\n\t"
      /* the quad's requantization words follow the last sweep's weights */
      "add %[pw], %[pw], #512\n\t"
      TB_CM4_QUAD_RAW_B_SUMS
      TB_CM4_QUAD_REQUANT(TB_CM4_RQ1, TB_CM4_RQ1B)
      "7:\n\t"
      /* each pixel's 4 channels: one STR */
      "ldrd %[xa], %[xb], %[st_o]\n\t"          /* o, stride */
      "ldr %[px], %[st_pw_end]\n\t"
      "bfi %[a0], %[a1], #8, #8\n\t"
      "bfi %[b0], %[b1], #8, #8\n\t"
      "bfi %[a0], %[a2], #16, #8\n\t"
      "bfi %[b0], %[b2], #16, #8\n\t"
      "bfi %[a0], %[a3], #24, #8\n\t"
      "bfi %[b0], %[b3], #24, #8\n\t"
      "str %[b0], [%[xa], %[xb]]\n\t"
      "str %[a0], [%[xa]], #4\n\t"
      "str %[xa], %[st_o]\n\t"
      "cmp %[pw], %[px]\n\t"
      "beq 8f\n"
      "3:\n\t"
      /* the next quad's first k-pair: SMUAD sets the accumulators; the two
       * column words go to a0 and b0, free until their own SMUAD */
      "ldr %[wa], %[st_col]\n\t"
      "ldrd %[xa], %[xb], [%[pw]]\n\t"
      "ldrd %[a0], %[b0], [%[wa]]\n\t"
      "ldrd %[w], %[px], %[st_pw_skip]\n\t"   /* pw_skip, sweep_col */
      "ldr %[wa], %[st_target]\n\t"
      "add %[pw], %[pw], %[w]\n\t"
      "smuad %[a3], %[a0], %[xb]\n\t"
      "smuad %[b3], %[b0], %[xb]\n\t"
      "sxtb16 %[xb], %[xb]\n\t"
      "smuad %[a2], %[a0], %[xb]\n\t"
      "smuad %[b2], %[b0], %[xb]\n\t"
      "smuad %[a1], %[a0], %[xa]\n\t"
      "smuad %[b1], %[b0], %[xa]\n\t"
      "sxtb16 %[xa], %[xa]\n\t"
      "smuad %[a0], %[a0], %[xa]\n\t"
      "smuad %[b0], %[b0], %[xa]\n\t"
      "bx %[wa]\n"
      "6:\n\t"
      "add %[pw], %[pw], #512\n\t"
      TB_CM4_QUAD_RAW_B_SUMS
      TB_CM4_QUAD_REQUANT(TB_CM4_RQ1_SIGN, TB_CM4_RQ1B_SIGN)
      "b 7b\n"
      "8:\n\t"
      /* pixels 2-3, if any: the same quads from the first */
      "ldr %[xa], %[st_o2]\n\t"
      "cmp %[xa], #0\n\t"
      "beq 9f\n\t"
      "movs %[xb], #0\n\t"
      "str %[xb], %[st_o2]\n\t"
      "str %[xa], %[st_o]\n\t"
      "ldr %[xa], %[st_col]\n\t"
      "ldr %[xb], %[st_sweep_col]\n\t"
      "ldr %[wa], %[st_px_last]\n\t"
      "ldr %[pw], %[st_pw_begin]\n\t"
      "add %[xa], %[xa], #8\n\t"
      "add %[xb], %[xb], #8\n\t"
      "add %[wa], %[wa], #8\n\t"
      "str %[xa], %[st_col]\n\t"
      "str %[xb], %[st_sweep_col]\n\t"
      "str %[wa], %[st_px_last]\n\t"
      "b 3b\n"
      "9:\n\t"
      : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [b0] "=&r"(b0),
        [b1] "=&r"(b1), [b2] "=&r"(b2), [b3] "=&r"(b3), [xa] "=&r"(xa), [xb] "=&r"(xb),
        [wa] "=&r"(wa), [w] "=&r"(w), [px] "=&r"(px), [pw] "+r"(pw),
        [st_o] "+m"(st->o), [st_target] "+m"(st->target)
        /* written too (pixels 2-3), set again by the caller before every call
         * (GCC allows at most 30 operands: these are inputs, "memory" covers them) */
      : [st_o2] "m"(st->o2), [st_col] "m"(st->col), [st_sweep_col] "m"(st->sweep_col),
        [st_px_last] "m"(st->px_last),
        [st_pw_skip] "m"(st->pw_skip), [st_stride] "m"(st->stride),
        [st_pw_end] "m"(st->pw_end), [st_entry_bytes] "m"(st->entry_bytes),
        [st_pw_begin] "m"(st->pw_begin)
      : "cc", "memory");
}

/* 3x3 kernels on 3 channels (rows9) with the fast full-range requantization
 * and raw-B weights (VWW's and ResNet-8's first layers, K 27 -> 28: 14
 * k-pairs, too few for the quads): a run of blocks of 4 pixels is one
 * assembly block that lowers sp, and per block builds the column there and
 * runs every channel pair over it, as tb_cm4_conv2d_1x1_k*_s8 do. Addressed
 * from sp, the column needs no register: a step loads its weight word and
 * the 4 pixels' words in one pipelined run (6 cycles), 4 SMLAD on the raw
 * word, SXTB16, 4 more: 15 cycles per 16 MACs (16 in tb_cm4_conv_pairs),
 * straight-line over the 14 k-pairs (no computed entry, no sweep test). Each
 * pixel's column: its 3 kernel rows from x_q (its top-left tap), R bytes
 * apart, as 7 words in tb_cm4_im2col_rows9's order: 9 loads in three runs,
 * 2 ORR, 14 SXTAB16 and 14 STR. The next block's
 * pixels are step4 bytes on (negative: the blocks run backward), its output
 * o_skip bytes after the end of this one's first pixel. Frame: x0..x3, off2,
 * rec (one LDM per block), R, step4, blocks left, o, stride, 3 * stride, the
 * end of the records, o_skip, then the column (k-pair j of pixel q at word
 * 4j + q). */
#define TB_CM4_STR_(x) #x
#define TB_CM4_STR(x) TB_CM4_STR_(x)
#ifndef TB_CM4_R9_BLOCKS   /* 0: rows9 layers take the 4 x 2 block loop (tests compare) */
#define TB_CM4_R9_BLOCKS 1
#endif
#define TB_CM4_R9_FRAME 280       /* 56 + the column: 4 pixels x 14 k-pairs x 4 bytes */
#define TB_CM4_R9_GROUP(V, g, Q, T)                                                          \
  "sxtab16 %[" #T "], %[w], %[" #V "]\n\t"                                                   \
  "sxtab16 %[" #V "], %[w], %[" #V "], ror #8\n\t"                                           \
  "str %[" #T "], [sp, #(56+32*" #g "+4*" #Q ")]\n\t"                                        \
  "str %[" #V "], [sp, #(56+32*" #g "+16+4*" #Q ")]\n\t"
/* pixel Q from register X (consumed), R in a3: groups r0[0..3], r0[4..7],
 * r1[0..3], r1[4..7], r2[0..3], r2[4..7], then r0[8] | r1[8] << 8 | r2[8] << 16
 * (cm4_prepare.CONV_ROWS9_ORDER; the fourth byte meets the weight 0 the build
 * put there): the word loads as aligned as the rows */
#define TB_CM4_R9_COLUMN(X, Q)                                                               \
  "ldr %[a0], [%[" #X "]]\n\t"                                                               \
  "ldr %[a1], [%[" #X "], #4]\n\t"                                                           \
  "ldrb %[a2], [%[" #X "], #8]\n\t"                                                          \
  "ldr %[b0], [%[" #X "], %[a3]]\n\t"                                                        \
  "add %[" #X "], %[" #X "], %[a3]\n\t"                                                      \
  "ldr %[b1], [%[" #X "], #4]\n\t"                                                           \
  "ldrb %[b2], [%[" #X "], #8]\n\t"                                                          \
  "ldr %[b3], [%[" #X "], %[a3]]\n\t"                                                        \
  "add %[" #X "], %[" #X "], %[a3]\n\t"                                                      \
  "orr %[a2], %[a2], %[b2], lsl #8\n\t"                                                      \
  "ldr %[b2], [%[" #X "], #4]\n\t"                                                           \
  "ldrb %[" #X "], [%[" #X "], #8]\n\t"                                                      \
  "orr %[a2], %[a2], %[" #X "], lsl #16\n\t"                                                 \
  TB_CM4_R9_GROUP(a0, 0, Q, X) TB_CM4_R9_GROUP(a1, 1, Q, X) TB_CM4_R9_GROUP(b0, 2, Q, X)     \
  TB_CM4_R9_GROUP(b1, 3, Q, X) TB_CM4_R9_GROUP(b3, 4, Q, X) TB_CM4_R9_GROUP(b2, 5, Q, X)     \
  TB_CM4_R9_GROUP(a2, 6, Q, X)
/* k-pair k of a channel pair: channel c+1 (raw word) first, then channel c
 * (the word widened in place); OP smuad for k = 0 (sets the sums) */
#define TB_CM4_R9_STEP(k, OP, ACC)                                                           \
  "ldr %[w], [%[pw], #(4*" #k ")]\n\t"                                                       \
  "ldr %[x0], [sp, #(56+16*" #k ")]\n\t"                                                     \
  "ldr %[x1], [sp, #(56+16*" #k "+4)]\n\t"                                                   \
  "ldr %[x2], [sp, #(56+16*" #k "+8)]\n\t"                                                   \
  "ldr %[x3], [sp, #(56+16*" #k "+12)]\n\t"                                                  \
  #OP " %[b0], %[x0], %[w]" ACC(b0) "\n\t"                                                   \
  #OP " %[b1], %[x1], %[w]" ACC(b1) "\n\t"                                                   \
  #OP " %[b2], %[x2], %[w]" ACC(b2) "\n\t"                                                   \
  #OP " %[b3], %[x3], %[w]" ACC(b3) "\n\t"                                                   \
  "sxtb16 %[w], %[w]\n\t"                                                                    \
  #OP " %[a0], %[x0], %[w]" ACC(a0) "\n\t"                                                   \
  #OP " %[a1], %[x1], %[w]" ACC(a1) "\n\t"                                                   \
  #OP " %[a2], %[x2], %[w]" ACC(a2) "\n\t"                                                   \
  #OP " %[a3], %[x3], %[w]" ACC(a3) "\n\t"
#define TB_CM4_R9_SET(A)
#define TB_CM4_R9_ADD(A) ", %[" #A "]"
#define TB_CM4_R9_MAC(k) TB_CM4_R9_STEP(k, smlad, TB_CM4_R9_ADD)
#define TB_CM4_R9_BLOCKS_FN(NAME, RQ)                                                        \
  static __attribute__((noinline)) void NAME(const int8_t *const *q, int32_t row_step,       \
                                             uint32_t off2, int8_t *o, int32_t stride,       \
                                             const uint32_t *rec, const uint32_t *rec_end,   \
                                             int32_t blocks, int32_t step4,                  \
                                             int32_t o_skip) {                               \
    register uint32_t a0 __asm__("r0") = (uint32_t)o, a1 __asm__("r1") = (uint32_t)stride,  \
        a2 __asm__("r2") = (uint32_t)rec_end, a3 __asm__("r3") = (uint32_t)row_step;        \
    register uint32_t b0 __asm__("r4") = (uint32_t)blocks, b1 __asm__("r5") = (uint32_t)step4, \
        b2 __asm__("r6") = (uint32_t)o_skip, b3 __asm__("r7");                               \
    register uint32_t x0 __asm__("r8") = (uint32_t)q[0], x1 __asm__("r9") = (uint32_t)q[1], \
        x2 __asm__("r10") = (uint32_t)q[2], x3 __asm__("r11") = (uint32_t)q[3];              \
    register uint32_t w __asm__("r12") = off2;                                               \
    register const uint32_t *pw __asm__("lr") = rec;                                         \
    __asm__ volatile(                                                                        \
        "sub sp, sp, #" TB_CM4_STR(TB_CM4_R9_FRAME) "\n\t"                                   \
        "stmia sp, {r8, r9, r10, r11, r12, lr}\n\t"                                          \
        "str %[a3], [sp, #24]\n\t"                                                           \
        "str %[b1], [sp, #28]\n\t"                                                           \
        "str %[b0], [sp, #32]\n\t"                                                           \
        TB_CM4_STACK_FRAME("36")                                                             \
        "str %[b2], [sp, #52]\n"                                                             \
        "2:\n\t"                                                                             \
        /* a block: its pixels, off2, the first record; the next block's pixels */           \
        "ldmia sp, {r8, r9, r10, r11, r12, lr}\n\t"                                          \
        "ldr %[a3], [sp, #24]\n\t"                                                           \
        "ldr %[b0], [sp, #28]\n\t"                                                           \
        "add %[a0], %[x0], %[b0]\n\t"                                                        \
        "add %[a1], %[x1], %[b0]\n\t"                                                        \
        "add %[a2], %[x2], %[b0]\n\t"                                                        \
        "add %[b1], %[x3], %[b0]\n\t"                                                        \
        "stmia sp, {r0, r1, r2, r5}\n\t"                                                     \
        TB_CM4_R9_COLUMN(x0, 0) TB_CM4_R9_COLUMN(x1, 1) TB_CM4_R9_COLUMN(x2, 2)              \
        TB_CM4_R9_COLUMN(x3, 3)                                                              \
        "1:\n\t"                                                                             \
        TB_CM4_R9_STEP(0, smuad, TB_CM4_R9_SET)                                              \
        TB_CM4_R9_MAC(1) TB_CM4_R9_MAC(2) TB_CM4_R9_MAC(3) TB_CM4_R9_MAC(4)                  \
        TB_CM4_R9_MAC(5) TB_CM4_R9_MAC(6) TB_CM4_R9_MAC(7) TB_CM4_R9_MAC(8)                  \
        TB_CM4_R9_MAC(9) TB_CM4_R9_MAC(10) TB_CM4_R9_MAC(11) TB_CM4_R9_MAC(12)               \
        TB_CM4_R9_MAC(13)                                                                    \
        TB_CM4_STACK_PAIR_END(14, RQ, "36")                                                  \
        /* the next block: o advanced by stride in the pairs, o_skip more */                 \
        "ldr %[a0], [sp, #32]\n\t"                                                           \
        "ldr %[x1], [sp, #52]\n\t"                                                           \
        "add %[x0], %[x0], %[x1]\n\t"                                                        \
        "str %[x0], [sp, #36]\n\t"                                                           \
        "subs %[a0], %[a0], #1\n\t"                                                          \
        "str %[a0], [sp, #32]\n\t"                                                           \
        "bne 2b\n\t"                                                                         \
        "add sp, sp, #" TB_CM4_STR(TB_CM4_R9_FRAME) "\n\t"                                   \
        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [b0] "+r"(b0),         \
          [b1] "+r"(b1), [b2] "+r"(b2), [b3] "=&r"(b3), [x0] "+r"(x0), [x1] "+r"(x1),       \
          [x2] "+r"(x2), [x3] "+r"(x3), [w] "+r"(w), [pw] "+r"(pw)                          \
        :                                                                                    \
        : "cc", "memory");                                                                   \
  }
TB_CM4_R9_BLOCKS_FN(tb_cm4_rows9_blocks, TB_CM4_STACK_RQ)
TB_CM4_R9_BLOCKS_FN(tb_cm4_rows9_blocks_sign, TB_CM4_STACK_RQ_SIGN)

#define TB_CM4_R9_SLOT 12   /* bytes per kernel row of a staged pixel (9 + the last load's 3) */

/* A border block's 4 pixels for tb_cm4_rows9_blocks: pixel q's kernel row ky
 * as 9 bytes at stage + 4 * TB_CM4_R9_SLOT * ky + TB_CM4_R9_SLOT * q, the taps
 * outside the input as the zero point (0 once the offset is added, what the
 * reference skips); base[q]: pixel q's first row. A row inside the input is
 * two words and a byte; others are filled, then their taps inside copied.
 * stage: 12 * 12 bytes. */
static __attribute__((noinline)) void tb_cm4_rows9_stage4(const tb_conv_params *p,
                                                          const int8_t *input, int32_t p0,
                                                          int8_t *stage, const int8_t **base) {
  const uint32_t zp4 = (uint32_t)(uint8_t)(int8_t)(-p->input_offset) * 0x01010101u;
  const int32_t in_w = p->in_w, in_h = p->in_h, dil_h = p->dil_h, row = in_w * 3;
  int32_t y = p0 / p->out_w, x = p0 - y * p->out_w, q, ky, kx;
  for (q = 0; q < TB_CM4_CONV_BLOCK; ++q) {
    const int32_t ix0 = x * p->stride_w - p->pad_left;
    const int cols_in = ix0 >= 0 && ix0 + 3 <= in_w;
    int32_t iy = y * p->stride_h - p->pad_top;
    int8_t *d = stage + TB_CM4_R9_SLOT * q;
    base[q] = d;
    for (ky = 0; ky < 3; ++ky, d += 4 * TB_CM4_R9_SLOT, iy += dil_h) {
      const int8_t *src = input + iy * row + ix0 * 3;
      const int row_in = (uint32_t)iy < (uint32_t)in_h;
      if (row_in && cols_in) {
        tb_st32(d, tb_ld32(src));
        tb_st32(d + 4, tb_ld32(src + 4));
        d[8] = src[8];
        continue;
      }
      tb_st32(d, zp4);
      tb_st32(d + 4, zp4);
      tb_st32(d + 8, zp4);
      for (kx = 0; row_in && kx < 3; ++kx) {
        if ((uint32_t)(ix0 + kx) < (uint32_t)in_w) {
          d[3 * kx] = src[3 * kx];
          d[3 * kx + 1] = src[3 * kx + 1];
          d[3 * kx + 2] = src[3 * kx + 2];
        }
      }
    }
    if (++x == p->out_w) x = 0, ++y;
  }
}

/* n whole blocks of a rows9 layer from pixels base[0..3] and output o on,
 * each block's pixels step4 bytes after the previous one's, its output o_skip
 * bytes after the previous one's second pixel; the requantization form
 * chosen per layer. */
TB_INLINE void tb_cm4_rows9(const int8_t *const *base, int32_t row_step, uint32_t off2,
                            int8_t *o, int32_t out_c, const uint32_t *rec,
                            const uint32_t *rec_end, int32_t n, int32_t step4,
                            int32_t o_skip, int sign) {
  if (sign) {
    tb_cm4_rows9_blocks_sign(base, row_step, off2, o, out_c, rec, rec_end, n, step4, o_skip);
  } else {
    tb_cm4_rows9_blocks(base, row_step, off2, o, out_c, rec, rec_end, n, step4, o_skip);
  }
}
#endif

/* Requantize the sum (without bias) of the channel whose record words are r4
 * = {M, B, e, 2*bias} (fast form) or {M, shift, 0, bias}, into an output byte.
 * The sign term is always applied here: it is exact with or without
 * TB_CM4_RQ_NO_SIGN. */
static int8_t tb_cm4_conv_out(int32_t sum, const int32_t *r4, int32_t flags,
                              const tb_conv_params *p) {
  int32_t v;
  if (flags & TB_CM4_RQ_FAST) {
    const int32_t t = (int32_t)((uint32_t)sum * 2u + (uint32_t)r4[3]);
    v = tb_asr(tb_smmlar(t, r4[0], r4[1] + tb_asr(t, 31)), r4[2]);
  } else {
    v = tb_mul_by_quant_mul((int32_t)((uint32_t)sum + (uint32_t)r4[3]), r4[0], r4[1]) +
        p->output_offset;
  }
  return (int8_t)tb_clamp(v, p->act_min, p->act_max);
}

#ifdef TB_CM4_DSP
/* One pixel (column slot 0, a word every 16 bytes) times one channel pair
 * whose weights are raw-B words (TB_CM4_CONV_STEP4), n8 groups of 8 k-pairs:
 * per 2 k-pairs one run of 4 loads (5 cycles), 2 SXTB16 (4 for split words) and 4 SMLAD; GCC
 * spreads the loads of the C loop apart, where each costs 2 cycles instead of 1. */
#define TB_CM4_DOT1_2(i)                                      \
  "ldr.w %[w0], [%[pw], #(8*" #i ")]\n\t"                     \
  "ldr.w %[w1], [%[pw], #(8*" #i "+4)]\n\t"                   \
  "ldr.w %[x0], [%[px], #(32*" #i ")]\n\t"                    \
  "ldr.w %[x1], [%[px], #(32*" #i "+16)]\n\t"                 \
  "sxtb16 %[t], %[w0]\n\t"                                   \
  "smlad %[a], %[x0], %[t], %[a]\n\t"                        \
  "smlad %[b], %[x0], %[w0], %[b]\n\t"                       \
  "sxtb16 %[t], %[w1]\n\t"                                   \
  "smlad %[a], %[x1], %[t], %[a]\n\t"                        \
  "smlad %[b], %[x1], %[w1], %[b]\n\t"

/* ... and for split weight words: SXTB16 / SXTB16 ROR 8 per word */
#define TB_CM4_DOT1_2_SPLIT(i)                                \
  "ldr.w %[w0], [%[pw], #(8*" #i ")]\n\t"                     \
  "ldr.w %[w1], [%[pw], #(8*" #i "+4)]\n\t"                   \
  "ldr.w %[x0], [%[px], #(32*" #i ")]\n\t"                    \
  "ldr.w %[x1], [%[px], #(32*" #i "+16)]\n\t"                 \
  "sxtb16 %[t], %[w0]\n\t"                                   \
  "smlad %[a], %[x0], %[t], %[a]\n\t"                        \
  "sxtb16 %[w0], %[w0], ror #8\n\t"                          \
  "smlad %[b], %[x0], %[w0], %[b]\n\t"                       \
  "sxtb16 %[t], %[w1]\n\t"                                   \
  "smlad %[a], %[x1], %[t], %[a]\n\t"                        \
  "sxtb16 %[w1], %[w1], ror #8\n\t"                          \
  "smlad %[b], %[x1], %[w1], %[b]\n\t"

#define TB_CM4_DOT1_LOOP(STEP)                                                                \
  __asm__ volatile(                                                                          \
      "1:\n\t"                                                                               \
      STEP(0) STEP(1) STEP(2) STEP(3)                                                        \
      "add %[pw], %[pw], #32\n\t"                                                            \
      "add %[px], %[px], #128\n\t"                                                           \
      "subs %[n], %[n], #1\n\t"                                                              \
      "bne 1b\n\t"                                                                           \
      : [a] "+r"(a), [b] "+r"(b), [pw] "+r"(pw), [px] "+r"(px), [n] "+r"(n8), [w0] "=&r"(w0), \
        [w1] "=&r"(w1), [x0] "=&r"(x0), [x1] "=&r"(x1), [t] "=&r"(t)                         \
      :                                                                                      \
      : "cc", "memory")

static inline __attribute__((always_inline)) void tb_cm4_dot1(const uint32_t **ppx,
                                                             const uint32_t **ppw, int32_t n8,
                                                             int32_t *pa, int32_t *pb,
                                                             int raw_b) {
  const uint32_t *px = *ppx, *pw = *ppw;
  int32_t a = *pa, b = *pb;
  uint32_t w0, w1, x0, x1, t;
  if (raw_b) {
    TB_CM4_DOT1_LOOP(TB_CM4_DOT1_2);
  } else {
    TB_CM4_DOT1_LOOP(TB_CM4_DOT1_2_SPLIT);
  }
  *ppx = px, *ppw = pw, *pa = a, *pb = b;
}
#endif

/* Channel c+1's sum from the accumulators of a raw-B weight stream (b: the
 * raw words' sum, 256 * S_c+1 + S_c; a: S_c), or b itself. */
TB_INLINE int32_t tb_cm4_sum_b(int32_t b, int32_t a, int raw_b) {
  return raw_b ? tb_asr((int32_t)((uint32_t)b - (uint32_t)a), 8) : b;
}

#ifndef TB_CM4_DSP
/* Channel pair `pair`'s first weight word and (*r) its requantization words in
 * a stream of quads (TB_CM4_RQ_QUADS: a pair's words are every other word of
 * its quad, cm4_prepare.conv_quad_layout): off the Cortex-M4 the C path
 * computes those layers too. */
static const uint32_t *tb_cm4_quad_pair(const uint32_t *stream, int32_t pair, int32_t npairs,
                                        const int32_t **r) {
  const uint32_t *q = stream + (pair >> 1) * (2 * npairs + TB_CM4_QUAD_RQ);
  *r = (const int32_t *)(const void *)(q + 2 * npairs + TB_CM4_PAIR_RQ * (pair & 1));
  return q + (pair & 1);
}

/* tb_cm4_pair_sums for a pair of a quad (raw-B words, every other word) */
static void tb_cm4_quad_pair_sums(const uint32_t *px, const uint32_t *pw, int32_t npairs,
                                  int32_t acc[2][TB_CM4_CONV_BLOCK]) {
  int32_t j, q;
  for (q = 0; q < TB_CM4_CONV_BLOCK; ++q) acc[0][q] = 0, acc[1][q] = 0;
  for (j = 0; j < npairs; ++j, px += TB_CM4_CONV_BLOCK, pw += 2) {
    const uint32_t w = *pw, wa = tb_sxtb16(w);
    for (q = 0; q < TB_CM4_CONV_BLOCK; ++q) {
      acc[0][q] = tb_smlad(px[q], wa, acc[0][q]);
      acc[1][q] = tb_smlad(px[q], w, acc[1][q]);
    }
  }
  for (q = 0; q < TB_CM4_CONV_BLOCK; ++q) acc[1][q] = tb_cm4_sum_b(acc[1][q], acc[0][q], 1);
}
#endif

/* The C path's sums of one channel pair for the 4 pixels of the column (the
 * requantization other than the fast full-range form): raw_b a constant once
 * inlined, so each weight form has its own loop. */
TB_INLINE void tb_cm4_pair_sums(const uint32_t *px, const uint32_t *pw, int32_t npairs,
                                const int raw_b, int32_t acc[2][TB_CM4_CONV_BLOCK]) {
  int32_t j, q;
  for (q = 0; q < TB_CM4_CONV_BLOCK; ++q) acc[0][q] = 0, acc[1][q] = 0;
  for (j = 0; j < npairs; ++j, px += TB_CM4_CONV_BLOCK) {
    const uint32_t w = *pw++;
    const uint32_t wa = tb_sxtb16(w), wb = raw_b ? w : tb_sxtb16_ror8(w);
    for (q = 0; q < TB_CM4_CONV_BLOCK; ++q) {
      acc[0][q] = tb_smlad(px[q], wa, acc[0][q]);
      acc[1][q] = tb_smlad(px[q], wb, acc[1][q]);
    }
  }
  if (raw_b) {
    for (q = 0; q < TB_CM4_CONV_BLOCK; ++q) acc[1][q] = tb_cm4_sum_b(acc[1][q], acc[0][q], 1);
  }
}


/* All channels of 1 or 2 pixels (slots 0 and 1 of the column): per k-pair one
 * weight word, one or two SXTB16 and 2 * nb SMLADs (1 pixel on the Cortex-M4,
 * raw-B weights: whole groups of 8 k-pairs in tb_cm4_dot1). rec: the first
 * pair's record. */
TB_INLINE void tb_cm4_few(const uint32_t *col, int32_t nb, int32_t npairs, const uint32_t *rec,
                          const tb_conv_params *p, int32_t flags, int8_t *o, const int raw_b) {
  const int32_t out_c = p->out_c;
  int32_t c, j;
  for (c = 0; c < out_c; c += 2, rec += npairs + TB_CM4_PAIR_RQ) {
    const uint32_t *px = col, *pw = rec;
    const int32_t *r = (const int32_t *)(const void *)(rec + npairs);
    int32_t a0 = 0, b0 = 0, a1 = 0, b1 = 0;
    if (nb == 2) {
      for (j = 0; j < npairs; ++j, px += TB_CM4_CONV_BLOCK) {
        const uint32_t w = *pw++, x0 = px[0], x1 = px[1];
        const uint32_t wa = tb_sxtb16(w), wb = raw_b ? w : tb_sxtb16_ror8(w);
        a0 = tb_smlad(x0, wa, a0);
        b0 = tb_smlad(x0, wb, b0);
        a1 = tb_smlad(x1, wa, a1);
        b1 = tb_smlad(x1, wb, b1);
      }
    } else {
      j = 0;
#ifdef TB_CM4_DSP
      if (npairs >= 8) {
        tb_cm4_dot1(&px, &pw, npairs >> 3, &a0, &b0, raw_b);
        j = npairs & ~7;
      }
#endif
      for (; j < npairs; ++j, px += TB_CM4_CONV_BLOCK) {
        const uint32_t w = *pw++, x0 = px[0];
        a0 = tb_smlad(x0, tb_sxtb16(w), a0);
        b0 = tb_smlad(x0, raw_b ? w : tb_sxtb16_ror8(w), b0);
      }
    }
    b0 = tb_cm4_sum_b(b0, a0, raw_b);
    b1 = tb_cm4_sum_b(b1, a1, raw_b);
    o[c] = tb_cm4_conv_out(a0, r, flags, p);
    if (c + 1 < out_c) o[c + 1] = tb_cm4_conv_out(b0, r + 4, flags, p);
    if (nb == 2) {
      o[out_c + c] = tb_cm4_conv_out(a1, r, flags, p);
      if (c + 1 < out_c) o[out_c + c + 1] = tb_cm4_conv_out(b1, r + 4, flags, p);
    }
  }
}

/* raw_b a constant in each copy: no per-step test */
static __attribute__((noinline)) void tb_cm4_conv_few(const uint32_t *col, int32_t nb,
                                                      int32_t npairs, const uint32_t *rec,
                                                      const tb_conv_params *p, int32_t flags,
                                                      int8_t *o) {
  if (flags & TB_CM4_RQ_RAW_B) {
    tb_cm4_few(col, nb, npairs, rec, p, flags, o, 1);
  } else {
    tb_cm4_few(col, nb, npairs, rec, p, flags, o, 0);
  }
}

/* n bytes of v4's byte at d: whole words 4 at a time once d is aligned. */
static void tb_cm4_fill(int8_t *d, int32_t n, uint32_t v4) {
  uint32_t *w;
  for (; n > 0 && ((uintptr_t)d & 3); --n) *d++ = (int8_t)v4;
  for (w = (uint32_t *)(void *)d; n >= 16; n -= 16, w += 4) w[0] = v4, w[1] = v4, w[2] = v4, w[3] = v4;
  for (; n >= 4; n -= 4) *w++ = v4;
  for (d = (int8_t *)(void *)w; n > 0; --n) *d++ = (int8_t)v4;
}

/* n bytes from s to d, 16 per pass, then word by word and byte by byte. */
static void tb_cm4_copy(int8_t *d, const int8_t *s, int32_t n) {
  for (; n >= 16; n -= 16, d += 16, s += 16) {
    const uint32_t a = tb_ld32(s), b = tb_ld32(s + 4), c = tb_ld32(s + 8), e = tb_ld32(s + 12);
    tb_st32(d, a), tb_st32(d + 4, b), tb_st32(d + 8, c), tb_st32(d + 12, e);
  }
  for (; n >= 4; n -= 4, d += 4, s += 4) tb_st32(d, tb_ld32(s));
  for (; n > 0; --n) *d++ = *s++;
}

#define TB_CM4_PLANE_WIDE 256   /* plane words from which the 16-byte passes pay */

/* A padded input copied once into a plane framed by the zero point
 * (plane_w x plane_h pixels, the input at (pad_top, pad_left)), plus one word
 * of slack: every block then reads inside the plane (cm4_prepare.conv_plane).
 * A large plane (ResNet-8's 32x32x16: 18 KB) is filled and its rows copied 16
 * bytes per pass (unaligned word loads and stores are legal on the M4); a
 * small one (KWS's 58x12) word by word, where the passes' set-up would cost
 * more than they save. */
static __attribute__((noinline)) void tb_cm4_conv_plane(const tb_conv_params *p,
                                                        const int8_t *input, int8_t *plane,
                                                        int32_t plane_w, int32_t plane_h) {
  const int32_t in_c = p->in_c, row = p->in_w * in_c;
  const uint32_t zp4 = (uint32_t)(uint8_t)(int8_t)(-p->input_offset) * 0x01010101u;
  const int32_t words = (plane_w * plane_h * in_c + 3) / 4 + 1;
  uint32_t *w = (uint32_t *)(void *)plane;
  uint32_t *const end = w + words;
  int32_t y, i;
  if (words >= TB_CM4_PLANE_WIDE) {
    tb_cm4_fill(plane, 4 * words, zp4);
    for (y = 0; y < p->in_h; ++y) {
      tb_cm4_copy(plane + ((p->pad_top + y) * plane_w + p->pad_left) * in_c, input + y * row, row);
    }
    return;
  }
  for (; w != end; ++w) *w = zp4;
  for (y = 0; y < p->in_h; ++y) {
    int8_t *d = plane + ((p->pad_top + y) * plane_w + p->pad_left) * in_c;
    const int8_t *src = input + y * row;
    for (i = 0; i + 4 <= row; i += 4) tb_st32(d + i, tb_ld32(src + i));
    for (; i < row; ++i) d[i] = src[i];
  }
}

#ifdef TB_CM4_DSP
/* n16 blocks of 16 bytes (word aligned), LDM/STM of 8 registers: 4
 * instructions per 32 bytes (the copy is per inference: its instructions count) */
static __attribute__((noinline)) void tb_cm4_copy16(uint32_t *d, const uint32_t *s, int32_t n16) {
  register uint32_t a __asm__("r4"), b __asm__("r5"), c __asm__("r6"), e __asm__("r7");
  register uint32_t f __asm__("r8"), g __asm__("r9"), h __asm__("r10"), i __asm__("r11");
  int32_t n32 = n16 >> 1;
  if (n32) {
    __asm__ volatile("1:\n\t"
                     "ldmia %[s]!, {%[a], %[b], %[c], %[e], %[f], %[g], %[h], %[i]}\n\t"
                     "stmia %[d]!, {%[a], %[b], %[c], %[e], %[f], %[g], %[h], %[i]}\n\t"
                     "subs %[n], %[n], #1\n\t"
                     "bne 1b\n\t"
                     : [a] "=&r"(a), [b] "=&r"(b), [c] "=&r"(c), [e] "=&r"(e), [f] "=&r"(f),
                       [g] "=&r"(g), [h] "=&r"(h), [i] "=&r"(i), [s] "+r"(s), [d] "+r"(d),
                       [n] "+r"(n32)
                     :
                     : "cc", "memory");
  }
  if (n16 & 1) d[0] = s[0], d[1] = s[1], d[2] = s[2], d[3] = s[3];
}
#endif

/* The kernel, compiled twice: quads_form (rq[0] TB_CM4_RQ_QUADS: the build
 * stored the filter as quads) is a constant in each copy, so the layers
 * without quads run exactly the code they ran before quads existed. */
TB_INLINE void tb_cm4_conv2d_body(const tb_conv_params *p, const int8_t *input,
                                  const int8_t *filter, const int32_t *rq, int8_t *output,
                                  void *scratch, const int quads_form) {
  const int32_t in_c = p->in_c, out_c = p->out_c, out_w = p->out_w;
  const int tap4 = rq[2] == 4;   /* in_c 3, taps padded to 4 channels at build time */
  const int rows9 = rq[2] == 9;  /* 3x3 kernel, in_c 3: kernel rows of 9 bytes */
  const int32_t k = p->k_h * p->k_w * (tap4 ? 4 : in_c);
  const int32_t k4 = (k + 3) & ~3;
  const int32_t npairs = k4 >> 1;
  const int32_t npix = p->out_h * out_w;
  const int32_t flags = rq[0];
  const int raw_b = (flags & TB_CM4_RQ_RAW_B) != 0;
  const uint32_t off2 = ((uint32_t)p->input_offset & 0xFFFFu) * 0x10001u;
  const int is_1x1 = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
                     p->pad_top == 0 && p->pad_left == 0 && (in_c & 3) == 0;
  /* interior blocks: how a kernel row splits into segments of groups */
  const int32_t span_h = (p->k_h - 1) * p->dil_h, span_w = (p->k_w - 1) * p->dil_w;
  /* a small padded input is read from its zero-point-framed copy (rq[3]) */
  const int32_t plane_w = rq[3] & 0xFFFF, plane_h = (rq[3] >> 16) & 0xFFFF;
  const int32_t src_w = plane_w ? plane_w : p->in_w;
  const int32_t row_step = p->dil_h * src_w * in_c;
  const int row_span = p->dil_w == 1 && ((p->k_w * in_c) & 3) == 0;
  const int32_t segs = tap4 || (in_c & 3) == 0 ? (row_span && !tap4 ? 1 : p->k_w)
                                                : (row_span ? 1 : 0);
  const int32_t seg_step = tap4 ? p->dil_w * 3 : p->dil_w * in_c;
  const int32_t seg_groups = tap4 ? 1 : (row_span ? (p->k_w * in_c) >> 2 : in_c >> 2);
  const int32_t last_off = span_h * p->in_w * in_c + span_w * in_c;
  const int8_t *input_end = input + p->in_h * p->in_w * in_c;
  uint32_t *col = (uint32_t *)scratch;
  int8_t *stage = (int8_t *)(col + TB_CM4_CONV_BLOCK * npairs);
  /* rows9: the border stage of 3 kernel rows (cm4_prepare.prepare_conv) */
  int8_t *tail = stage + (rows9 ? 3 * TB_CM4_ROWS9_STAGE : (in_c & 3) && !tap4 ? k4 : 0);
  /* tail: 4 * out_c bytes */
  int8_t *plane = tail + ((npix & 3) == 3 || (quads_form && (npix & 3)) ? 4 * out_c : 0);
  const int8_t *src = input;   /* what the blocks read: the input or its plane */
  int32_t p0;
#ifdef TB_CM4_DSP
  /* the assembly loop: k-pair 0 by itself, then the other npairs - 1 in
   * sweeps of TB_CM4_CONV_STEPS steps, the first entered at step `entry` */
  const int fast = (flags & ~(TB_CM4_RQ_NO_SIGN | TB_CM4_RQ_RAW_B | TB_CM4_RQ_QUADS)) ==
                   (TB_CM4_RQ_FAST | TB_CM4_RQ_FULLRANGE) && out_c >= 2;
  /* channel quads x pixel pairs: the build gives the flag only to raw-B layers
   * (fast requantization, full range) with C_out a multiple of 4 */
  const int quads = quads_form;
  /* raw-B weights: tb_cm4_conv_pairs, else tb_cm4_conv_pairs_split */
  const int32_t steps = raw_b ? TB_CM4_CONV_STEPS : TB_CM4_CONV_STEPS_SPLIT;
  const int32_t sweeps = (npairs - 1 + steps - 1) / steps;
  const int32_t entry = sweeps * steps - (npairs - 1);
  /* 3x3 on 3 channels, raw-B, an even C_out: whole blocks in tb_cm4_rows9 */
  const int r9 = TB_CM4_R9_BLOCKS && rows9 && fast && raw_b && !quads_form && !(out_c & 1);
  const int r9_sign = !(flags & TB_CM4_RQ_NO_SIGN);
  const uint32_t *const r9_end = (const uint32_t *)(const void *)filter +
                                 (out_c >> 1) * (npairs + TB_CM4_PAIR_RQ);
#endif
  const int32_t rec_words = npairs + TB_CM4_PAIR_RQ;   /* one channel pair's record */
  /* In place, the planner may put the output above the input: then the
   * blocks run from the last to the first (rq[1]: the largest output - input
   * offset that is safe going forward). */
  const int backward = (intptr_t)(output - input) > (intptr_t)rq[1];
  const int32_t last = (npix - 1) / TB_CM4_CONV_BLOCK * TB_CM4_CONV_BLOCK;
  const int32_t step = backward ? -TB_CM4_CONV_BLOCK : TB_CM4_CONV_BLOCK;
#ifdef TB_CM4_DSP
  /* the assembly loop's state: all but the output pointer is the same for every block */
  tb_cm4_conv_state st;
  st.col = (uint32_t)col;
  st.target = 0;
  st.pw_skip = 4 - 4 * entry;
  st.sweep_col = (uint32_t)col + 16u - 16u * (uint32_t)entry;
  st.px_last = st.sweep_col + 16u * (uint32_t)steps * (uint32_t)(sweeps - 1) -
               ((flags & TB_CM4_RQ_NO_SIGN) ? 0u : 1u);
  st.o = output;
  st.stride = out_c;
  st.pw_end = (const uint32_t *)(const void *)filter + (out_c >> 1) * rec_words;
  st.entry_bytes = (raw_b ? TB_CM4_CONV_STEP_BYTES : TB_CM4_CONV_STEP_BYTES_SPLIT) * entry;
  /* the quads' weights: read twice per block, so a filter in the code region
   * (flash on the STM32 boards) is first copied into the scratch at rq[4];
   * rq[4] < 0: no room for it (place=auto|ram builds), read where it is */
  const uint32_t *quad_w = (const uint32_t *)(const void *)filter;
  tb_cm4_quad_state qs;
  if (quads && (uintptr_t)filter < TB_CM4_SRAM_BASE && rq[4] >= 0) {
    uint32_t *const copy = (uint32_t *)(void *)((int8_t *)scratch + rq[4]);
    /* out_c * (k4 + 16) bytes; unsigned: a shift, no rounding of a negative */
    tb_cm4_copy16(copy, quad_w, (int32_t)((uint32_t)((out_c >> 1) * rec_words) >> 2));
    quad_w = copy;
  }
  qs.target = 0;
  qs.pw_skip = 8 - 8 * entry;
  qs.stride = out_c;
  qs.pw_begin = quad_w;
  qs.pw_end = quad_w + (out_c >> 2) * (2 * npairs + TB_CM4_QUAD_RQ);
  qs.entry_bytes = st.entry_bytes;
#endif
  if (plane_w) {   /* the whole input is read here: any overlap is safe from now on */
    tb_cm4_conv_plane(p, input, plane, plane_w, plane_h);
    src = plane + (p->pad_top * plane_w + p->pad_left) * in_c;
  }
  /* A run: the blocks after an interior block in the same output row that
   * are interior too (counted once per row): they take the interior path with
   * no division or bounds checks. run_base: the run's last block's first tap. */
  const int32_t run_dx = p->stride_w * in_c;
  const int32_t run_step = step * run_dx;   /* input bytes between blocks */
  const int8_t *run_base = input;
  int32_t run_left = 0;
  for (p0 = backward ? last : 0; p0 >= 0 && p0 < npix; p0 += step) {
    const int32_t nb = npix - p0 < TB_CM4_CONV_BLOCK ? npix - p0 : TB_CM4_CONV_BLOCK;
    const uint32_t *rec = (const uint32_t *)(const void *)filter;
    int8_t *o = output + p0 * out_c;
    int32_t q, c = 0;
    if (is_1x1 && nb == TB_CM4_CONV_BLOCK) {
      tb_cm4_im2col4_1x1(input + p0 * in_c, in_c, off2, col);   /* consecutive pixels */
    } else if (is_1x1) {
      for (q = 0; q < nb; ++q) tb_cm4_expand(input + (p0 + q) * in_c, in_c >> 2, off2, col + q);
    } else if (run_left > 0) {
      const int8_t *base[TB_CM4_CONV_BLOCK];
      --run_left;
      run_base += run_step;
      base[0] = run_base;
      base[1] = base[0] + run_dx;
      base[2] = base[1] + run_dx;
      base[3] = base[2] + run_dx;
      if (rows9) {
#ifdef TB_CM4_DSP
#endif
        tb_cm4_im2col_rows9(base, TB_CM4_CONV_BLOCK, row_step, off2, col);
      } else {
        tb_cm4_im2col4_inside(base, p->k_h, row_step, segs, seg_step, seg_groups, off2, col);
      }
    } else {
      /* the 4 pixels' top-left taps; a block whose taps are all inside the
       * input (always, in the plane) takes the fast path */
      const int8_t *base[TB_CM4_CONV_BLOCK];
      int inside = (nb == TB_CM4_CONV_BLOCK || plane_w) && (segs > 0 || rows9);
      int32_t oy = p0 / out_w, ox = p0 - oy * out_w;   /* one division per block */
      if (ox + TB_CM4_CONV_BLOCK <= out_w) {
        /* the 4 pixels in one output row (then nb is 4): one bounds check */
        const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
        const int32_t dx = p->stride_w * in_c;
        base[0] = src + (iy0 * src_w + ix0) * in_c;
        base[1] = base[0] + dx;
        base[2] = base[1] + dx;
        base[3] = base[2] + dx;
        if (!plane_w) {
          inside = inside && iy0 >= 0 && iy0 + span_h < p->in_h && ix0 >= 0 &&
                   ix0 + 3 * p->stride_w + span_w < p->in_w && base[3] + last_off + 4 <= input_end;
        }
        if (inside) {
          /* the run after this block: whole blocks of this row, inside the
           * input (the window's right end, the last word load) */
          int32_t x = ox;
          const int8_t *b = base[0];
          run_base = b;
          if (!backward) {
            while (x + 2 * TB_CM4_CONV_BLOCK <= out_w &&
                   (plane_w || ((x + TB_CM4_CONV_BLOCK + 3) * p->stride_w - p->pad_left + span_w <
                                    p->in_w &&
                                b + run_step + 3 * run_dx + last_off + 4 <= input_end))) {
              x += TB_CM4_CONV_BLOCK, b += run_step, ++run_left;
            }
          } else {
            while (x >= TB_CM4_CONV_BLOCK &&
                   (plane_w || (x - TB_CM4_CONV_BLOCK) * p->stride_w - p->pad_left >= 0)) {
              x -= TB_CM4_CONV_BLOCK, ++run_left;
            }
          }
        }
      } else {
        for (q = 0; q < TB_CM4_CONV_BLOCK; ++q) {
          const int32_t iy0 = oy * p->stride_h - p->pad_top;
          const int32_t ix0 = ox * p->stride_w - p->pad_left;
          base[q] = src + (iy0 * src_w + ix0) * in_c;
          inside = inside && (plane_w || (iy0 >= 0 && iy0 + span_h < p->in_h && ix0 >= 0 &&
                                          ix0 + span_w < p->in_w &&
                                          base[q] + last_off + 4 <= input_end));
          /* in a partial block, the missing pixels repeat the last one (never stored) */
          if (q + 1 < nb && ++ox == out_w) ox = 0, ++oy;
        }
      }
#ifdef TB_CM4_DSP
      if (r9 && nb == TB_CM4_CONV_BLOCK) {
        /* this block and (forward) its run in one call; a border block: its
         * 4 pixels staged, rows 4 * TB_CM4_R9_SLOT apart */
        int32_t n = 1;
        if (inside) {
          n += run_left;
          run_left = 0;
        } else {
          tb_cm4_rows9_stage4(p, input, p0, (int8_t *)col, base);
        }
        tb_cm4_rows9(base, inside ? row_step : 4 * TB_CM4_R9_SLOT, off2, o, out_c, rec, r9_end,
                     n, run_step, (step - 1) * out_c, r9_sign);
        p0 += (n - 1) * step;
        continue;
      }
#endif
      if (inside && rows9) {
        tb_cm4_im2col_rows9(base, TB_CM4_CONV_BLOCK, row_step, off2, col);
      } else if (inside) {
        tb_cm4_im2col4_inside(base, p->k_h, row_step, segs, seg_step, seg_groups, off2, col);
      } else {
        /* a border block: its pixels one by one, those inside with the rows of 9 */
        for (q = 0; q < nb; ++q) {
          const int32_t y = (p0 + q) / out_w, x = (p0 + q) - y * out_w;
          const int32_t iy0 = y * p->stride_h - p->pad_top, ix0 = x * p->stride_w - p->pad_left;
          if (rows9 && iy0 >= 0 && iy0 + span_h < p->in_h && ix0 >= 0 &&
              ix0 + span_w < p->in_w && base[q] + last_off + 4 <= input_end) {
            tb_cm4_im2col_rows9(base + q, 1, row_step, off2, col + q);
          } else if (rows9) {
            tb_cm4_im2col_rows9_border(p, input, iy0, ix0, off2, col + q, stage);
          } else {
            tb_cm4_im2col(p, input, y, x, q, k4, off2, col, stage, tap4);
          }
        }
      }
    }
#ifdef TB_CM4_DSP
    if (quads) {
      /* a partial block: its pixel pairs into the scratch tail, then copied
       * (also 1-2 pixels: tb_cm4_conv_few reads pair records, not quads) */
      int8_t *dst = nb == TB_CM4_CONV_BLOCK ? o : tail;
      qs.col = st.col, qs.sweep_col = st.sweep_col, qs.px_last = st.px_last;
      qs.o = dst;
      qs.o2 = nb > 2 ? dst + 2 * out_c : 0;
      tb_cm4_conv_quads(&qs, quad_w);
      if (dst != o) {
        for (q = 0; q < nb * out_c; ++q) o[q] = tail[q];
      }
      continue;
    }
    if (fast && nb >= 3) {
      /* a partial block computes 4 pixels into the scratch tail, then copies */
      int8_t *dst = nb == TB_CM4_CONV_BLOCK ? o : tail;
      c = (out_c >> 1) * 2;
      st.o = dst;
      if (raw_b) {
        tb_cm4_conv_pairs(&st, rec);
      } else {
        tb_cm4_conv_pairs_split(&st, rec);
      }
      rec = st.pw_end;
      if (dst != o) {
        for (q = 0; q < nb * out_c; ++q) o[q] = tail[q];
      }
      o += c;
    }
#endif
    if (nb <= 2 && !quads_form) {
      /* the last block of 1 or 2 pixels (KWS's 125, VWW's 9): no 4-pixel work */
      tb_cm4_conv_few(col, nb, npairs, rec, p, flags, o);
      continue;
    }
    for (; c < out_c; c += 2, rec += rec_words, o += 2) {
      const uint32_t *px = col, *pw = rec;
      const int32_t *r = (const int32_t *)(const void *)(rec + npairs);
      int32_t acc[2][TB_CM4_CONV_BLOCK];
#ifdef TB_CM4_DSP
      /* On the Cortex-M4 a raw-B layer comes here only for its last channel
       * when C_out is odd (the assembly loop took the pairs; the build gives
       * the raw-B form only to layers that loop takes): channel c+1 is the
       * zero padding, never stored, so the split extraction serves both forms. */
      tb_cm4_pair_sums(px, pw, npairs, 0, acc);
#else
      if (quads_form) {
        pw = tb_cm4_quad_pair((const uint32_t *)(const void *)filter, c >> 1, npairs, &r);
        tb_cm4_quad_pair_sums(px, pw, npairs, acc);
      } else if (raw_b) {
        tb_cm4_pair_sums(px, pw, npairs, 1, acc);
      } else {
        tb_cm4_pair_sums(px, pw, npairs, 0, acc);
      }
#endif
      for (q = 0; q < nb; ++q) {
        o[q * out_c] = tb_cm4_conv_out(acc[0][q], r, flags, p);
        if (c + 1 < out_c) o[q * out_c + 1] = tb_cm4_conv_out(acc[1][q], r + 4, flags, p);
      }
    }
  }
}

/* the layers with quads: their own copy (out of line) */
static __attribute__((noinline)) void tb_cm4_conv2d_quads(const tb_conv_params *p,
                                                          const int8_t *input,
                                                          const int8_t *filter,
                                                          const int32_t *rq, int8_t *output,
                                                          void *scratch) {
  tb_cm4_conv2d_body(p, input, filter, rq, output, scratch, 1);
}

void tb_cm4_conv2d_s8(const tb_conv_params *p, const int8_t *input, const int8_t *filter,
                      const int32_t *rq, int8_t *output, void *scratch) {
  if (rq[0] & TB_CM4_RQ_QUADS) {
    tb_cm4_conv2d_quads(p, input, filter, rq, output, scratch);
    return;
  }
  tb_cm4_conv2d_body(p, input, filter, rq, output, scratch, 0);
}
