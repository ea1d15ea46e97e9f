/* AVERAGE_POOL_2D / MAX_POOL_2D int8, matches
 * tflite::reference_integer_ops::AveragePool / MaxPool. Only in-bounds
 * positions count; TFLite requires equal input/output quantization for int8
 * average pooling, so no requantization happens here. */
#include "tb_kernels.h"

static int32_t tb_max_i32(int32_t a, int32_t b) { return a > b ? a : b; }
static int32_t tb_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }

void tb_avg_pool2d_s8(const tb_pool_params *p, const int8_t *input, int8_t *output) {
  int32_t oy, ox, c, ky, kx;
  for (oy = 0; oy < p->out_h; ++oy) {
    const int32_t in_y0 = oy * p->stride_h - p->pad_top;
    const int32_t ky0 = tb_max_i32(0, -in_y0);
    const int32_t ky1 = tb_min_i32(p->k_h, p->in_h - in_y0);
    for (ox = 0; ox < p->out_w; ++ox) {
      const int32_t in_x0 = ox * p->stride_w - p->pad_left;
      const int32_t kx0 = tb_max_i32(0, -in_x0);
      const int32_t kx1 = tb_min_i32(p->k_w, p->in_w - in_x0);
      for (c = 0; c < p->c; ++c) {
        int32_t acc = 0, count = 0;
        for (ky = ky0; ky < ky1; ++ky) {
          for (kx = kx0; kx < kx1; ++kx) {
            acc += input[((in_y0 + ky) * p->in_w + (in_x0 + kx)) * p->c + c];
            ++count;
          }
        }
        /* TFLite returns an error for an empty window; emit act_min. */
        if (count == 0) {
          acc = p->act_min;
        } else {
          /* Round half away from zero (C99 division truncates toward zero). */
          acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
        }
        if (acc < p->act_min) acc = p->act_min;
        if (acc > p->act_max) acc = p->act_max;
        output[(oy * p->out_w + ox) * p->c + c] = (int8_t)acc;
      }
    }
  }
}

void tb_max_pool2d_s8(const tb_pool_params *p, const int8_t *input, int8_t *output) {
  int32_t oy, ox, c, ky, kx;
  for (oy = 0; oy < p->out_h; ++oy) {
    const int32_t in_y0 = oy * p->stride_h - p->pad_top;
    const int32_t ky0 = tb_max_i32(0, -in_y0);
    const int32_t ky1 = tb_min_i32(p->k_h, p->in_h - in_y0);
    for (ox = 0; ox < p->out_w; ++ox) {
      const int32_t in_x0 = ox * p->stride_w - p->pad_left;
      const int32_t kx0 = tb_max_i32(0, -in_x0);
      const int32_t kx1 = tb_min_i32(p->k_w, p->in_w - in_x0);
      for (c = 0; c < p->c; ++c) {
        int32_t m = -128;
        for (ky = ky0; ky < ky1; ++ky) {
          for (kx = kx0; kx < kx1; ++kx) {
            m = tb_max_i32(m, input[((in_y0 + ky) * p->in_w + (in_x0 + kx)) * p->c + c]);
          }
        }
        if (m < p->act_min) m = p->act_min;
        if (m > p->act_max) m = p->act_max;
        output[(oy * p->out_w + ox) * p->c + c] = (int8_t)m;
      }
    }
  }
}
