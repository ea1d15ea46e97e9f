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

/* The in-bounds part of one output pixel's window (any params struct with
 * TFLite's pooling geometry): rows y0 + [ky0, ky1), columns x0 + [kx0, kx1). */
typedef struct {
  int32_t y0, ky0, ky1, x0, kx0, kx1;
} tb_window;

static tb_window window_at(int32_t y0, int32_t x0, int32_t k_h, int32_t k_w,
                           int32_t in_h, int32_t in_w) {
  tb_window w;
  w.y0 = y0;
  w.ky0 = tb_max_i32(0, -y0);
  w.ky1 = tb_min_i32(k_h, in_h - y0);
  w.x0 = x0;
  w.kx0 = tb_max_i32(0, -x0);
  w.kx1 = tb_min_i32(k_w, in_w - x0);
  return w;
}

static int32_t window_count(const tb_window *w) {
  return tb_max_i32(0, w->ky1 - w->ky0) * tb_max_i32(0, w->kx1 - w->kx0);
}

#define TB_WINDOW(p, oy, ox)                                                    \
  window_at((oy) * (p)->stride_h - (p)->pad_top, (ox) * (p)->stride_w - (p)->pad_left, \
            (p)->k_h, (p)->k_w, (p)->in_h, (p)->in_w)

/* int16 AVERAGE_POOL_2D (reference_integer_ops::AveragePool, int16): int32
 * sum, rounded division by the in-bounds count, clamp. */
void tb_avg_pool2d_s16(const tb_pool_params *p, const int16_t *input, int16_t *output) {
  int32_t oy, ox, c, ky, kx;
  for (oy = 0; oy < p->out_h; ++oy) {
    for (ox = 0; ox < p->out_w; ++ox) {
      const tb_window w = TB_WINDOW(p, oy, ox);
      const int32_t count = window_count(&w);
      for (c = 0; c < p->c; ++c) {
        int32_t acc = 0;
        for (ky = w.ky0; ky < w.ky1; ++ky) {
          for (kx = w.kx0; kx < w.kx1; ++kx) {
            acc += input[((w.y0 + ky) * p->in_w + (w.x0 + kx)) * p->c + c];
          }
        }
        if (count <= 0) acc = p->act_min;   /* TFLite: an error; never for valid shapes */
        else acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
        output[(oy * p->out_w + ox) * p->c + c] = (int16_t)tb_min_i32(tb_max_i32(acc, p->act_min),
                                                                      p->act_max);
      }
    }
  }
}

/* int16 MAX_POOL_2D (reference_integer_ops::MaxPool, int16). */
void tb_max_pool2d_s16(const tb_pool_params *p, const int16_t *input, int16_t *output) {
  int32_t oy, ox, c, ky, kx;
  for (oy = 0; oy < p->out_h; ++oy) {
    for (ox = 0; ox < p->out_w; ++ox) {
      const tb_window w = TB_WINDOW(p, oy, ox);
      for (c = 0; c < p->c; ++c) {
        int32_t m = -32768;
        for (ky = w.ky0; ky < w.ky1; ++ky) {
          for (kx = w.kx0; kx < w.kx1; ++kx) {
            m = tb_max_i32(m, input[((w.y0 + ky) * p->in_w + (w.x0 + kx)) * p->c + c]);
          }
        }
        output[(oy * p->out_w + ox) * p->c + c] = (int16_t)tb_min_i32(tb_max_i32(m, p->act_min),
                                                                      p->act_max);
      }
    }
  }
}

/* ActivationFunctionWithMinMax: std::min(std::max(v, lo), hi). */
static float clamp_f32(float v, float lo, float hi) {
  const float low_clamped = v < lo ? lo : v;
  return hi < low_clamped ? hi : low_clamped;
}

/* float AVERAGE_POOL_2D (reference_ops::AveragePool): the in-bounds values
 * summed in (ky, kx) order, divided by their count, clamped. */
void tb_avg_pool2d_f32(const tb_pool_f32_params *p, const float *input, float *output) {
  int32_t oy, ox, c, ky, kx;
  for (oy = 0; oy < p->out_h; ++oy) {
    for (ox = 0; ox < p->out_w; ++ox) {
      const tb_window w = TB_WINDOW(p, oy, ox);
      const float count = (float)window_count(&w);
      for (c = 0; c < p->c; ++c) {
        float total = 0.0f;
        for (ky = w.ky0; ky < w.ky1; ++ky) {
          for (kx = w.kx0; kx < w.kx1; ++kx) {
            total += input[((w.y0 + ky) * p->in_w + (w.x0 + kx)) * p->c + c];
          }
        }
        output[(oy * p->out_w + ox) * p->c + c] = clamp_f32(total / count, p->act_min, p->act_max);
      }
    }
  }
}

/* float MAX_POOL_2D (reference_ops::MaxPool): from -FLT_MAX, std::max. */
void tb_max_pool2d_f32(const tb_pool_f32_params *p, const float *input, float *output) {
  int32_t oy, ox, c, ky, kx;
  for (oy = 0; oy < p->out_h; ++oy) {
    for (ox = 0; ox < p->out_w; ++ox) {
      const tb_window w = TB_WINDOW(p, oy, ox);
      for (c = 0; c < p->c; ++c) {
        float m = -3.40282347e+38f;
        for (ky = w.ky0; ky < w.ky1; ++ky) {
          for (kx = w.kx0; kx < w.kx1; ++kx) {
            const float v = input[((w.y0 + ky) * p->in_w + (w.x0 + kx)) * p->c + c];
            m = m < v ? v : m;
          }
        }
        output[(oy * p->out_w + ox) * p->c + c] = clamp_f32(m, p->act_min, p->act_max);
      }
    }
  }
}
