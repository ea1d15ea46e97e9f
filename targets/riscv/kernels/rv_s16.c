/* RV32IM 16x8 kernels (TFLite's int16 activations x int8 weights): CONV_2D,
 * DEPTHWISE_CONV_2D (depth multiplier 1) and FULLY_CONNECTED.
 *
 * The reference kernels add every product to an int64 sum (about five
 * instructions on RV32). A product of an int16 and an int8 is at most 2^22 in
 * magnitude, so up to CHUNK = 511 of them cannot overflow int32: the sums run
 * in int32 chunks, each added to the int64 sum, exact for any length. Each
 * activation load feeds four output channels (convolution, FC). The rescale is
 * the reference's own (tb_mul_by_quant_mul_s64 with its reduced multiplier
 * from the build; the FC's double real_mul), so the output is the reference's
 * bit for bit. Only halfword loads of int16 data: the Bumblebee traps on
 * misaligned words. */
#include "tb_kernels.h"

void tb_rv_conv2d_s16(const tb_conv_params *p, const int16_t *input, const int8_t *filter,
                      const int64_t *bias, const int32_t *rq, int16_t *output, void *scratch);
void tb_rv_depthwise_conv2d_s16(const tb_conv_params *p, const int16_t *input,
                                const int8_t *filter, const int64_t *bias, const int32_t *rq,
                                int16_t *output);
void tb_rv_fully_connected_s16(const tb_fc_params *p, const int16_t *input, const int8_t *weights,
                               const int64_t *bias, const double *real_mul, int16_t *output);

#define CHUNK 511 /* 511 * 2^22 < 2^31 */
#define TB_RV_INLINE static inline __attribute__((always_inline))

/* tb_mul_by_quant_mul_s64 with rq = {reduced multiplier, 15 - shift} from the build. */
TB_RV_INLINE int32_t rescale_s64(int64_t acc, const int32_t *rq) {
  return (int32_t)((acc * rq[0] + ((int64_t)1 << (rq[1] - 1))) >> rq[1]);
}

TB_RV_INLINE int16_t clamp16(int32_t v, int32_t lo, int32_t hi) {
  return (int16_t)(v < lo ? lo : v > hi ? hi : v);
}

/* acc[j] += sum_i x[i] * w[j * stride + i] for j < 4, in int32 chunks. */
TB_RV_INLINE void dot4(const int16_t *x, const int8_t *w, int32_t stride, int32_t n, int64_t *acc) {
  int32_t start, i;
  for (start = 0; start < n; start += CHUNK) {
    const int32_t end = n - start < CHUNK ? n : start + CHUNK;
    const int8_t *w0 = w, *w1 = w + stride, *w2 = w + 2 * stride, *w3 = w + 3 * stride;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (i = start; i < end; i++) {
      const int32_t v = x[i];
      a0 += v * w0[i];
      a1 += v * w1[i];
      a2 += v * w2[i];
      a3 += v * w3[i];
    }
    acc[0] += a0;
    acc[1] += a1;
    acc[2] += a2;
    acc[3] += a3;
  }
}

TB_RV_INLINE int64_t dot1(const int16_t *x, const int8_t *w, int32_t n, int64_t acc) {
  int32_t start, i;
  for (start = 0; start < n; start += CHUNK) {
    const int32_t end = n - start < CHUNK ? n : start + CHUNK;
    int32_t a = 0;
    for (i = start; i < end; i++) a += (int32_t)x[i] * w[i];
    acc += a;
  }
  return acc;
}

/* n int16 values; a loop, not a memcpy call, for the short runs of few
 * channels (GCC would make the loop a call again). */
__attribute__((optimize("no-tree-loop-distribute-patterns")))
static void copy16(int16_t *dst, const int16_t *src, int32_t n) {
  while (n-- > 0) *dst++ = *src++;
}

__attribute__((optimize("no-tree-loop-distribute-patterns")))
static void zero16(int16_t *dst, int32_t n) {
  while (n-- > 0) *dst++ = 0;
}

/* The receptive field of one output pixel as k int16 values in the filter's
 * (ky, kx, ic) order, 0 at padded taps (zero point 0: no term). */
static void gather_field(const tb_conv_params *p, const int16_t *input, int32_t oy, int32_t ox,
                         int16_t *field) {
  const int32_t in_c = p->in_c, y0 = oy * p->stride_h - p->pad_top;
  const int32_t x0 = ox * p->stride_w - p->pad_left, row = p->k_w * in_c;
  const int32_t whole_rows = p->dil_w == 1 && x0 >= 0 && x0 + p->k_w <= p->in_w;
  int32_t ky, kx;
  for (ky = 0; ky < p->k_h; ++ky, field += row) {
    const int32_t iy = y0 + p->dil_h * ky;
    if (iy < 0 || iy >= p->in_h) {
      zero16(field, row);
    } else if (whole_rows) {
      copy16(field, input + (iy * p->in_w + x0) * in_c, row);
    } else {
      for (kx = 0; kx < p->k_w; ++kx) {
        const int32_t ix = x0 + p->dil_w * kx;
        if (ix < 0 || ix >= p->in_w)
          zero16(field + kx * in_c, in_c);
        else
          copy16(field + kx * in_c, input + (iy * p->in_w + ix) * in_c, in_c);
      }
    }
  }
}

/* filter: TFLite's [out_c][k_h][k_w][in_c]; scratch: one field (1x1 unpadded
 * filters read the input pixel itself). */
void tb_rv_conv2d_s16(const tb_conv_params *p, const int16_t *input, const int8_t *filter,
                      const int64_t *bias, const int32_t *rq, int16_t *output, void *scratch) {
  const int32_t k = p->k_h * p->k_w * p->in_c, out_c = p->out_c;
  const int32_t direct = p->k_h == 1 && p->k_w == 1 && p->pad_top == 0 && p->pad_left == 0;
  const int32_t lo = p->act_min, hi = p->act_max;
  int16_t *field = (int16_t *)scratch;
  int32_t oy, ox, oc, j;
  for (oy = 0; oy < p->out_h; ++oy) {
    for (ox = 0; ox < p->out_w; ++ox, output += out_c) {
      const int16_t *x = field;
      if (direct)
        x = input + (oy * p->stride_h * p->in_w + ox * p->stride_w) * p->in_c;
      else
        gather_field(p, input, oy, ox, field);
      for (oc = 0; oc + 4 <= out_c; oc += 4) {
        int64_t acc[4] = {bias[oc], bias[oc + 1], bias[oc + 2], bias[oc + 3]};
        dot4(x, filter + oc * k, k, k, acc);
        for (j = 0; j < 4; j++)
          output[oc + j] = clamp16(rescale_s64(acc[j], rq + 2 * (oc + j)), lo, hi);
      }
      for (; oc < out_c; oc++)
        output[oc] = clamp16(rescale_s64(dot1(x, filter + oc * k, k, bias[oc]), rq + 2 * oc),
                             lo, hi);
    }
  }
}

/* One output pixel, channel by channel over the taps inside the input (int32
 * sums: rv_s16.DW_MAX_TAPS = 511 taps at most). filter: [k_h][k_w][c]. */
static void depthwise_pixel(const tb_conv_params *p, const int16_t *input, const int8_t *filter,
                            const int64_t *bias, const int32_t *rq, int16_t *out, int32_t y0,
                            int32_t x0) {
  const int32_t c = p->in_c, lo = p->act_min, hi = p->act_max;
  const int32_t ky0 = y0 >= 0 ? 0 : (-y0 + p->dil_h - 1) / p->dil_h;
  const int32_t kx0 = x0 >= 0 ? 0 : (-x0 + p->dil_w - 1) / p->dil_w;
  const int32_t x_step = p->dil_w * c, y_step = p->dil_h * p->in_w * c, w_row = p->k_w * c;
  int32_t ky1 = p->k_h, kx1 = p->k_w, ch, ky, kx;
  while (ky1 > ky0 && y0 + p->dil_h * (ky1 - 1) >= p->in_h) --ky1;
  while (kx1 > kx0 && x0 + p->dil_w * (kx1 - 1) >= p->in_w) --kx1;
  if (ky0 < ky1 && kx0 < kx1) {
    input += ((y0 + p->dil_h * ky0) * p->in_w + x0 + p->dil_w * kx0) * c;  /* first tap inside */
    filter += (ky0 * p->k_w + kx0) * c;
  }
  for (ch = 0; ch < c; ch++) {
    int32_t a = 0;
    for (ky = ky0; ky < ky1; ++ky) {
      const int16_t *x = input + (ky - ky0) * y_step + ch;
      const int8_t *w = filter + (ky - ky0) * w_row + ch;
      for (kx = kx0; kx < kx1; ++kx, x += x_step, w += c) a += (int32_t)*x * *w;
    }
    out[ch] = clamp16(rescale_s64(bias[ch] + a, rq + 2 * ch), lo, hi);
  }
}

void tb_rv_depthwise_conv2d_s16(const tb_conv_params *p, const int16_t *input,
                                const int8_t *filter, const int64_t *bias, const int32_t *rq,
                                int16_t *output) {
  int32_t oy, ox;
  for (oy = 0; oy < p->out_h; ++oy)
    for (ox = 0; ox < p->out_w; ++ox, output += p->out_c)
      depthwise_pixel(p, input, filter, bias, rq, output, oy * p->stride_h - p->pad_top,
                      ox * p->stride_w - p->pad_left);
}

/* TFLite's weights [out_features][in_features]; four outputs per pass. */
void tb_rv_fully_connected_s16(const tb_fc_params *p, const int16_t *input, const int8_t *weights,
                               const int64_t *bias, const double *real_mul, int16_t *output) {
  const int32_t n = p->in_features, m = p->out_features, lo = p->act_min, hi = p->act_max;
  int32_t r, o, j;
  for (r = 0; r < p->rows; ++r, input += n, output += m) {
    for (o = 0; o + 4 <= m; o += 4) {
      int64_t acc[4] = {bias[o], bias[o + 1], bias[o + 2], bias[o + 3]};
      dot4(input, weights + o * n, n, n, acc);
      for (j = 0; j < 4; j++)
        output[o + j] = clamp16(tb_round_half_away((double)acc[j] * real_mul[o + j]), lo, hi);
    }
    for (; o < m; o++)
      output[o] = clamp16(tb_round_half_away((double)dot1(input, weights + o * n, n, bias[o]) *
                                             real_mul[o]), lo, hi);
  }
}
