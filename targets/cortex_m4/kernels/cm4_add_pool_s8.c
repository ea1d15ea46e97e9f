/* ADD and AVERAGE_POOL_2D int8 for Cortex-M4 (DSP extension).
 *
 * ADD, bit-exact with tb_add_s8 (TFLite's general 8-bit add): each input's
 * rescale, MultiplyByQuantizedMultiplier((x + offset) << 20, ...), depends
 * on the int8 x alone, so the build tabulates it (256 int32 per input, in
 * the rq argument after a 4-word header {flags, M, B, e}); per element the
 * kernel adds the two table entries and requantizes the sum with the fast
 * exact form tb_rq. Element i is written after both inputs' element i were
 * read: the output may be either input (in place).
 *
 * AVERAGE_POOL_2D, bit-exact with tb_avg_pool2d_s8: the window sums of 4
 * channels at a time accumulate in 16-bit lanes (SXTAB16 adds the sign-
 * extended bytes 0 and 2, or 1 and 3, of a word to two halfwords), exact for
 * windows of at most 256 positions (|sum| <= 256 * 128); then each channel
 * is rounded and divided as the reference does. Output pixels are written in
 * raster order after their window was read.
 */
#include "tb_cm4.h"

#define TB_CM4_RQ_FAST 1
#define TB_CM4_RQ_FULLRANGE 2

void tb_cm4_add_s8(const tb_add_params *p, const int8_t *input1, const int8_t *input2,
                   const int32_t *rq, int8_t *output) {
  const int32_t n = p->size;
  const int32_t m = rq[1], b = rq[2], e = rq[3];
  const int32_t *t1 = rq + 4, *t2 = rq + 4 + 256;
  const uint8_t *a = (const uint8_t *)input1, *c = (const uint8_t *)input2;
  int32_t i;
  if (rq[0] == (TB_CM4_RQ_FAST | TB_CM4_RQ_FULLRANGE)) {
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

/* round half away from zero of acc / count, as the reference (C truncation) */
static int32_t tb_cm4_avg(int32_t acc, int32_t count) {
  return acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
}

void tb_cm4_avg_pool2d_s8(const tb_pool_params *p, const int8_t *input, int8_t *output) {
  const int32_t c = p->c, in_w = p->in_w;
  int32_t oy, ox, ch, ky, kx;
  for (oy = 0; oy < p->out_h; ++oy) {
    const int32_t in_y0 = oy * p->stride_h - p->pad_top;
    const int32_t ky0 = in_y0 < 0 ? -in_y0 : 0;
    const int32_t ky1 = p->in_h - in_y0 < p->k_h ? p->in_h - in_y0 : p->k_h;
    for (ox = 0; ox < p->out_w; ++ox) {
      const int32_t in_x0 = ox * p->stride_w - p->pad_left;
      const int32_t kx0 = in_x0 < 0 ? -in_x0 : 0;
      const int32_t kx1 = in_w - in_x0 < p->k_w ? in_w - in_x0 : p->k_w;
      const int32_t count = (ky1 - ky0) * (kx1 - kx0);
      int8_t *o = output + (oy * p->out_w + ox) * c;
      ch = 0;
      if (count > 0) {
        for (; ch + 8 <= c; ch += 8) {
          uint32_t s02 = 0, s13 = 0, t02 = 0, t13 = 0;
          int32_t j;
          for (ky = ky0; ky < ky1; ++ky) {
            const int8_t *row = input + ((in_y0 + ky) * in_w + in_x0 + kx0) * c + ch;
            for (kx = kx0; kx < kx1; ++kx, row += c) {
              const uint32_t v = tb_ld32(row), w = tb_ld32(row + 4);
              s02 = tb_sxtab16(s02, v);
              s13 = tb_sxtab16_ror8(s13, v);
              t02 = tb_sxtab16(t02, w);
              t13 = tb_sxtab16_ror8(t13, w);
            }
          }
          {
            const int32_t sums[8] = {(int16_t)s02, (int16_t)s13, (int16_t)(s02 >> 16),
                                     (int16_t)(s13 >> 16), (int16_t)t02, (int16_t)t13,
                                     (int16_t)(t02 >> 16), (int16_t)(t13 >> 16)};
            for (j = 0; j < 8; ++j) {
              o[ch + j] = (int8_t)tb_clamp(tb_cm4_avg(sums[j], count), p->act_min, p->act_max);
            }
          }
        }
      }
      for (; ch < c; ++ch) {
        int32_t acc = 0;
        for (ky = ky0; ky < ky1; ++ky) {
          for (kx = kx0; kx < kx1; ++kx) {
            acc += input[((in_y0 + ky) * in_w + (in_x0 + kx)) * c + ch];
          }
        }
        /* TFLite returns an error for an empty window; the reference emits act_min */
        acc = count == 0 ? p->act_min : tb_cm4_avg(acc, count);
        o[ch] = (int8_t)tb_clamp(acc, p->act_min, p->act_max);
      }
    }
  }
}
