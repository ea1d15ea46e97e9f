/* CONV_2D int8 for RV32IM (rv32imc, rv32imac), bit-exact with tb_conv2d_s8.
 *
 * Output pixels go in blocks of 4 and output channels in groups of 4: the
 * 16 sums of a block live in registers while the kernel sweeps the patch
 * length K once. Per k step: 4 input loads, 4 weight loads, 16 MUL + 16 ADD
 * (RV32IM has no multiply-accumulate); 2 steps per loop iteration, 84
 * instructions per 32 MACs (2.63 per MAC).
 *
 * The 4 pixels' patches are interleaved in the scratch buffer, [K4][4] bytes,
 * so that one pointer with immediate offsets reaches all of them: with four
 * pointers GCC runs out of RV32's 27 allocatable registers (16 sums, 4 inputs,
 * a weight, a product, pointers) and spills inside the loop (measured: 2.75
 * instead of 2.63 instructions per MAC).
 *  - 1x1, stride 1, no padding: no patch extraction. The 4 pixels' channel
 *    vectors are contiguous in the input and are only interleaved (4 * in_c
 *    byte copies per block, 1/out_c of the block's work);
 *  - anything else: each pixel's patch (ky, kx, ic order, as the filter) is
 *    gathered (im2col), padded taps filled with the input zero point.
 * K is padded to a multiple of 4 with zero weights. Weights were reordered at
 * build time to [channel group][K4][4] (zero rows for the padded channels)
 * and input_offset * sum(w) was folded into the bias, so the loop multiplies
 * raw int8 values and a padded tap (the zero point) contributes exactly
 * nothing, as the reference's skipped positions.
 *
 * Arguments: params, input, filter, rq (header {flags, K4, direct, forward
 * limit}, then per channel, padded to a multiple of 4, tb_rv_chan), output,
 * scratch (4 x K4 bytes).
 *
 * In place: a block is gathered before any of its outputs is written. Run
 * from the first block to the last, the output may start up to
 * raster_overlap(..., 4, reads_block_first) bytes above the input (the
 * "forward limit"); when the planner put it higher, the kernel runs from the
 * last block to the first, which is right from
 * raster_overlap(..., backward=True) up: that lets a 1x1 convolution that
 * widens the tensor start at its input's offset.
 */
#include "tb_rv.h"

#define RV_PIX 4
#define RV_CH 4

/* One k step: the 4 pixels' inputs at k, the 4 channels' weights at k. */
#define RV_STEP(i)                                                              \
  do {                                                                          \
    const int32_t a0 = x[4 * (i)], a1 = x[4 * (i) + 1];                         \
    const int32_t a2 = x[4 * (i) + 2], a3 = x[4 * (i) + 3];                     \
    int32_t b = w[4 * (i) + 0];                                                 \
    s00 += a0 * b; s01 += a1 * b; s02 += a2 * b; s03 += a3 * b;                 \
    b = w[4 * (i) + 1];                                                         \
    s10 += a0 * b; s11 += a1 * b; s12 += a2 * b; s13 += a3 * b;                 \
    b = w[4 * (i) + 2];                                                         \
    s20 += a0 * b; s21 += a1 * b; s22 += a2 * b; s23 += a3 * b;                 \
    b = w[4 * (i) + 3];                                                         \
    s30 += a0 * b; s31 += a1 * b; s32 += a2 * b; s33 += a3 * b;                 \
  } while (0)

/* The sweep over the patch shared by both block functions: x, w, k4 and the
 * 16 sums s00..s33 (s<channel><pixel>) are the caller's. */
#define RV_SWEEP                                                                \
  do {                                                                          \
    const int8_t *const end = x + 4 * k4;                                       \
    while (x != end) {                                                          \
      RV_STEP(0);                                                               \
      RV_STEP(1);                                                               \
      x += 8;                                                                   \
      w += 8;                                                                   \
    }                                                                           \
  } while (0)

/* acc[4 * channel + pixel] = sum over k < k4 of w[k][channel] * x[k][pixel].
 * GCC's pre-allocation scheduler hoists the loads of both unrolled steps and
 * then spills the sums (102 instead of 84 instructions per iteration);
 * without it the loop is 16 loads, 32 MUL, 32 ADD and 4 bookkeeping
 * instructions (pointer steps, the reload of the end pointer, the branch)
 * per 32 MACs. */
__attribute__((optimize("no-schedule-insns")))
static void rv_conv_block(const int8_t *x, const int8_t *w, int32_t k4, int32_t *acc) {
  int32_t s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
  int32_t s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
  RV_SWEEP;
  acc[0] = s00; acc[1] = s01; acc[2] = s02; acc[3] = s03;
  acc[4] = s10; acc[5] = s11; acc[6] = s12; acc[7] = s13;
  acc[8] = s20; acc[9] = s21; acc[10] = s22; acc[11] = s23;
  acc[12] = s30; acc[13] = s31; acc[14] = s32; acc[15] = s33;
}

/* Requantize and store channel ch's 4 pixels (o: the channel's first byte). */
#define RV_STORE_CHANNEL(ch, a0, a1, a2, a3)                                     \
  do {                                                                          \
    const int32_t m = q[ch].m, c = q[ch].c, e = q[ch].e;                        \
    int8_t *const oc = o + (ch);                                                \
    oc[0] = (int8_t)tb_rv_clamp(tb_rv_requant_fast(a0, m, c, e), lo, hi);       \
    oc[out_c] = (int8_t)tb_rv_clamp(tb_rv_requant_fast(a1, m, c, e), lo, hi);   \
    oc[2 * out_c] = (int8_t)tb_rv_clamp(tb_rv_requant_fast(a2, m, c, e), lo, hi); \
    oc[3 * out_c] = (int8_t)tb_rv_clamp(tb_rv_requant_fast(a3, m, c, e), lo, hi); \
  } while (0)

/* The common case, a whole block with the fast requantization: the sums
 * start at the folded biases and are requantized straight from registers
 * (no round trip through memory, no per-output checks). */
__attribute__((optimize("no-schedule-insns")))
static void rv_conv_block_store(const int8_t *x, const int8_t *w, int32_t k4,
                                const tb_rv_chan *q, int32_t out_c, int32_t lo, int32_t hi,
                                int8_t *o) {
  int32_t s00 = q[0].bias, s01 = s00, s02 = s00, s03 = s00;
  int32_t s10 = q[1].bias, s11 = s10, s12 = s10, s13 = s10;
  int32_t s20 = q[2].bias, s21 = s20, s22 = s20, s23 = s20;
  int32_t s30 = q[3].bias, s31 = s30, s32 = s30, s33 = s30;
  RV_SWEEP;
  RV_STORE_CHANNEL(0, s00, s01, s02, s03);
  RV_STORE_CHANNEL(1, s10, s11, s12, s13);
  RV_STORE_CHANNEL(2, s20, s21, s22, s23);
  RV_STORE_CHANNEL(3, s30, s31, s32, s33);
}

/* One pixel (column of the interleaved block) x 4 channels, the sums to
 * acc[4 * channel]: for a layer's last one or two pixels, where a 4-pixel
 * block would mostly compute copies (3.6 instead of 5.2 or 10.5 instructions
 * per useful MAC). */
static void rv_conv_pixel(const int8_t *x, const int8_t *w, int32_t k4, int32_t *acc) {
  int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  const int8_t *const end = x + 4 * k4;
  while (x != end) {
    int32_t v = x[0];
    s0 += v * w[0]; s1 += v * w[1]; s2 += v * w[2]; s3 += v * w[3];
    v = x[4];
    s0 += v * w[4]; s1 += v * w[5]; s2 += v * w[6]; s3 += v * w[7];
    x += 8;
    w += 8;
  }
  acc[0] = s0; acc[RV_PIX] = s1; acc[2 * RV_PIX] = s2; acc[3 * RV_PIX] = s3;
}

/* n bytes from src to every 4th byte of dst. */
static int8_t *rv_copy4(int8_t *dst, const int8_t *src, int32_t n) {
  const int8_t *const end = src + n;
  while (src != end) {
    *dst = *src++;
    dst += 4;
  }
  return dst;
}

/* n copies of v to every 4th byte of dst. */
static int8_t *rv_fill4(int8_t *dst, int8_t v, int32_t n) {
  int8_t *const end = dst + 4 * n;
  while (dst != end) {
    *dst = v;
    dst += 4;
  }
  return dst;
}

/* Pixel q's patch into column j of the interleaved block (dst[k * 4 + j]),
 * zeros from K up to k4. Without dilation a kernel row's taps inside the
 * input are one contiguous run of bytes: one copy, the padded taps before
 * and after filled with the zero point. */
static void rv_im2col(const tb_conv_params *p, const int8_t *input, int32_t q, int32_t k4,
                      int8_t *dst) {
  const int32_t in_c = p->in_c, k_w = p->k_w, oy = q / p->out_w, ox = q - oy * p->out_w;
  const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
  const int8_t zero_point = (int8_t)(-p->input_offset);
  int8_t *d = dst;
  int32_t ky, kx;
  for (ky = 0; ky < p->k_h; ++ky) {
    const int32_t iy = iy0 + ky * p->dil_h;
    const int8_t *row = input + iy * p->in_w * in_c;
    if (iy < 0 || iy >= p->in_h) {
      d = rv_fill4(d, zero_point, k_w * in_c);
    } else if (p->dil_w == 1) {
      const int32_t first = ix0 < 0 ? -ix0 : 0;
      const int32_t last = ix0 + k_w > p->in_w ? p->in_w - ix0 : k_w;   /* exclusive */
      if (last <= first) {
        d = rv_fill4(d, zero_point, k_w * in_c);
      } else {
        d = rv_fill4(d, zero_point, first * in_c);
        d = rv_copy4(d, row + (ix0 + first) * in_c, (last - first) * in_c);
        d = rv_fill4(d, zero_point, (k_w - last) * in_c);
      }
    } else {
      for (kx = 0; kx < k_w; ++kx) {
        const int32_t ix = ix0 + kx * p->dil_w;
        d = ix >= 0 && ix < p->in_w ? rv_copy4(d, row + ix * in_c, in_c)
                                    : rv_fill4(d, zero_point, in_c);
      }
    }
  }
  rv_fill4(d, 0, k4 - (int32_t)(d - dst) / 4);
}

/* 1x1 stride 1: pixel q's channels are its patch. */
static void rv_interleave(const int8_t *src, int32_t in_c, int32_t k4, int8_t *dst) {
  rv_fill4(rv_copy4(dst, src, in_c), 0, k4 - in_c);
}

/* Requantize a block's 4 x 4 sums and store the ones that exist. */
static void rv_store_block(const tb_conv_params *p, const int32_t *acc, const tb_rv_chan *q,
                           int32_t fast, int32_t c0, int32_t q0, int32_t npix,
                           int8_t *output) {
  const int32_t out_c = p->out_c;
  int32_t ch, px;
  for (ch = 0; ch < RV_CH && c0 + ch < out_c; ++ch) {
    int8_t *o = output + q0 * out_c + c0 + ch;
    for (px = 0; px < RV_PIX && q0 + px < npix; ++px) {
      o[px * out_c] = (int8_t)tb_rv_requant(acc[ch * RV_PIX + px] + q[ch].bias, &q[ch], fast,
                                            p->output_offset, p->act_min, p->act_max);
    }
  }
}

void tb_rv_conv2d_s8(const tb_conv_params *p, const int8_t *input, const int8_t *filter,
                     const int32_t *rq, int8_t *output, void *scratch) {
  const int32_t fast = rq[0] & TB_RV_RQ_FAST, k4 = rq[1], direct = rq[2];
  const tb_rv_chan *chan = (const tb_rv_chan *)(rq + 4);
  const int32_t npix = p->out_h * p->out_w, out_c = p->out_c;
  const int32_t last = (npix - 1) / RV_PIX * RV_PIX;
  /* in place above the forward limit: blocks from the last to the first */
  const int32_t backward = (intptr_t)output - (intptr_t)input > (intptr_t)rq[3];
  const int32_t step = backward ? -RV_PIX : RV_PIX;
  int8_t *block = (int8_t *)scratch;
  int32_t acc[RV_PIX * RV_CH];
  int32_t q0, c0, j;
  for (q0 = backward ? last : 0; q0 >= 0 && q0 < npix; q0 += step) {
    for (j = 0; j < RV_PIX; ++j) {
      /* a partial last block repeats its last pixel (computed, not stored) */
      const int32_t q = q0 + j < npix ? q0 + j : npix - 1;
      if (direct) {
        rv_interleave(input + q * p->in_c, p->in_c, k4, block + j);
      } else {
        rv_im2col(p, input, q, k4, block + j);
      }
    }
    for (c0 = 0; c0 < out_c; c0 += RV_CH) {
      const int8_t *const w = filter + c0 * k4;
      if (fast && q0 + RV_PIX <= npix && c0 + RV_CH <= out_c) {
        rv_conv_block_store(block, w, k4, chan + c0, out_c, p->act_min, p->act_max,
                            output + q0 * out_c + c0);
        continue;
      }
      if (npix - q0 <= 2) {
        for (j = 0; j < npix - q0; ++j) rv_conv_pixel(block + j, w, k4, acc + j);
      } else {
        rv_conv_block(block, w, k4, acc);
      }
      rv_store_block(p, acc, chan + c0, fast, c0, q0, npix, output);
    }
  }
}
