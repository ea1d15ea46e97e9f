/* RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR for int8 (and int16, float32), bit-exact with TF
 * 2.21's reference_ops::ResizeNearestNeighbor and ResizeBilinearInteger (the
 * int8 path of resize_bilinear.cc: 10-bit fixed-point positions, no float).
 * The index and weight tables come from the host (tinybuild/ops/resize.py). */
#include "tb_kernels.h"

void tb_resize_nearest_s8(const tb_resize_params *p, const int8_t *input, const int32_t *rows,
                          const int32_t *cols, int8_t *output) {
  int32_t y, x, ch;
  for (y = 0; y < p->out_h; ++y) {
    const int8_t *row = input + rows[y] * p->in_w * p->c;
    for (x = 0; x < p->out_w; ++x) {
      const int8_t *pixel = row + cols[x] * p->c;
      for (ch = 0; ch < p->c; ++ch) *output++ = pixel[ch];
    }
  }
}

#define TB_NEAREST(name, type)                                                                  \
  void name(const tb_resize_params *p, const type *input, const int32_t *rows,                 \
            const int32_t *cols, type *output) {                                               \
    int32_t y, x, ch;                                                                          \
    for (y = 0; y < p->out_h; ++y) {                                                           \
      const type *row = input + rows[y] * p->in_w * p->c;                                      \
      for (x = 0; x < p->out_w; ++x) {                                                         \
        const type *pixel = row + cols[x] * p->c;                                              \
        for (ch = 0; ch < p->c; ++ch) *output++ = pixel[ch];                                   \
      }                                                                                        \
    }                                                                                          \
  }

TB_NEAREST(tb_resize_nearest_f32, float)
TB_NEAREST(tb_resize_nearest_s16, int16_t)

/* (output_20 + round) / 2^20, rounding half away from zero as TFLite does
 * without TFLITE_SINGLE_ROUNDING. |output_20| < 2^30 here, so int32 is exact. */
static int8_t blend(int32_t output_20) {
  const int32_t round = output_20 > 0 ? (1 << 19) : -(1 << 19);
  return (int8_t)((output_20 + round) / (1 << 20));
}

void tb_resize_bilinear_s8(const tb_resize_params *p, const int8_t *input, const int32_t *rows,
                           const int32_t *cols, int8_t *output) {
  const int32_t stride = p->in_w * p->c;
  int32_t y, x, ch;
  for (y = 0; y < p->out_h; ++y) {
    const int8_t *top = input + rows[3 * y] * stride, *bottom = input + rows[3 * y + 1] * stride;
    const int32_t dy = rows[3 * y + 2];
    for (x = 0; x < p->out_w; ++x) {
      const int32_t left = cols[3 * x] * p->c, right = cols[3 * x + 1] * p->c;
      const int32_t dx = cols[3 * x + 2];
      const int32_t w00 = (1024 - dy) * (1024 - dx), w10 = dy * (1024 - dx);
      const int32_t w01 = (1024 - dy) * dx, w11 = dy * dx;
      for (ch = 0; ch < p->c; ++ch) {
        *output++ = blend(top[left + ch] * w00 + bottom[left + ch] * w10 +
                          top[right + ch] * w01 + bottom[right + ch] * w11);
      }
    }
  }
}

/* int16 (ResizeBilinearInteger<int16_t>): the same blend in int64, since
 * |output_20| reaches 2^35 (the four weights sum to 2^20). */
void tb_resize_bilinear_s16(const tb_resize_params *p, const int16_t *input, const int32_t *rows,
                            const int32_t *cols, int16_t *output) {
  const int32_t stride = p->in_w * p->c;
  int32_t y, x, ch;
  for (y = 0; y < p->out_h; ++y) {
    const int16_t *top = input + rows[3 * y] * stride, *bottom = input + rows[3 * y + 1] * stride;
    const int64_t dy = rows[3 * y + 2];
    for (x = 0; x < p->out_w; ++x) {
      const int32_t left = cols[3 * x] * p->c, right = cols[3 * x + 1] * p->c;
      const int64_t dx = cols[3 * x + 2];
      const int64_t w00 = (1024 - dy) * (1024 - dx), w10 = dy * (1024 - dx);
      const int64_t w01 = (1024 - dy) * dx, w11 = dy * dx;
      for (ch = 0; ch < p->c; ++ch) {
        const int64_t output_20 = top[left + ch] * w00 + bottom[left + ch] * w10 +
                                  top[right + ch] * w01 + bottom[right + ch] * w11;
        const int64_t round = output_20 > 0 ? (1 << 19) : -(1 << 19);
        *output++ = (int16_t)((output_20 + round) / (1 << 20));
      }
    }
  }
}

void tb_resize_bilinear_f32(const tb_resize_params *p, const float *input, const int32_t *rows,
                            const int32_t *cols, const float *row_w, const float *col_w,
                            float *output) {
  const int32_t stride = p->in_w * p->c;
  int32_t y, x, ch;
  for (y = 0; y < p->out_h; ++y) {
    const float *top = input + rows[2 * y] * stride, *bottom = input + rows[2 * y + 1] * stride;
    const float dy = row_w[2 * y], one_minus_dy = row_w[2 * y + 1];
    for (x = 0; x < p->out_w; ++x) {
      const int32_t left = cols[2 * x] * p->c, right = cols[2 * x + 1] * p->c;
      const float dx = col_w[2 * x], one_minus_dx = col_w[2 * x + 1];
      for (ch = 0; ch < p->c; ++ch) {
        *output++ = top[left + ch] * one_minus_dy * one_minus_dx +
                    bottom[left + ch] * dy * one_minus_dx + top[right + ch] * one_minus_dy * dx +
                    bottom[right + ch] * dy * dx;
      }
    }
  }
}
