/* The convolution family (tinybuild/ops/conv.py): CONV_2D and DEPTHWISE_CONV_2D.
 *
 * CONV_2D int8, matches tflite::reference_integer_ops::ConvPerChannel:
 * per-output-channel requantization, padding positions skipped (they would
 * contribute input_offset * filter otherwise), bias added before requant. */
#include "tb_kernels.h"

void tb_conv2d_s8(const tb_conv_params *p, const int8_t *input,
                  const int8_t *filter, const int32_t *bias,
                  const tb_quant_mul *out_mul, int8_t *output) {
  const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
  const int32_t out_h = p->out_h, out_w = p->out_w, out_c = p->out_c;
  const int32_t k_h = p->k_h, k_w = p->k_w;
  int32_t oy, ox, oc, ky, kx, ic;
  for (oy = 0; oy < out_h; ++oy) {
    const int32_t in_y0 = oy * p->stride_h - p->pad_top;
    for (ox = 0; ox < out_w; ++ox) {
      const int32_t in_x0 = ox * p->stride_w - p->pad_left;
      for (oc = 0; oc < out_c; ++oc) {
        int32_t acc = 0;
        for (ky = 0; ky < k_h; ++ky) {
          const int32_t iy = in_y0 + p->dil_h * ky;
          if (iy < 0 || iy >= in_h) continue;
          for (kx = 0; kx < k_w; ++kx) {
            const int32_t ix = in_x0 + p->dil_w * kx;
            const int8_t *in_px;
            const int8_t *f_px;
            if (ix < 0 || ix >= in_w) continue;
            in_px = input + (iy * in_w + ix) * in_c;
            f_px = filter + ((oc * k_h + ky) * k_w + kx) * in_c;
            for (ic = 0; ic < in_c; ++ic) {
              acc += (int32_t)f_px[ic] * ((int32_t)in_px[ic] + p->input_offset);
            }
          }
        }
        if (bias) acc += bias[oc];
        acc = tb_mul_by_quant_mul(acc, out_mul[oc].multiplier, out_mul[oc].shift);
        acc += p->output_offset;
        if (acc < p->act_min) acc = p->act_min;
        if (acc > p->act_max) acc = p->act_max;
        output[(oy * out_w + ox) * out_c + oc] = (int8_t)acc;
      }
    }
  }
}

/* DEPTHWISE_CONV_2D int8, matches
 * tflite::reference_integer_ops::DepthwiseConvPerChannel: output channel
 * oc = ic * depth_multiplier + m, filter laid out 1 x k_h x k_w x out_c. */

void tb_depthwise_conv2d_s8(const tb_conv_params *p, const int8_t *input,
                            const int8_t *filter, const int32_t *bias,
                            const tb_quant_mul *out_mul, int8_t *output) {
  const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
  const int32_t out_h = p->out_h, out_w = p->out_w, out_c = p->out_c;
  const int32_t k_h = p->k_h, k_w = p->k_w;
  const int32_t dm = p->depth_multiplier;
  int32_t oy, ox, ic, m, ky, kx;
  for (oy = 0; oy < out_h; ++oy) {
    const int32_t in_y0 = oy * p->stride_h - p->pad_top;
    for (ox = 0; ox < out_w; ++ox) {
      const int32_t in_x0 = ox * p->stride_w - p->pad_left;
      for (ic = 0; ic < in_c; ++ic) {
        for (m = 0; m < dm; ++m) {
          const int32_t oc = ic * dm + m;
          int32_t acc = 0;
          for (ky = 0; ky < k_h; ++ky) {
            const int32_t iy = in_y0 + p->dil_h * ky;
            if (iy < 0 || iy >= in_h) continue;
            for (kx = 0; kx < k_w; ++kx) {
              const int32_t ix = in_x0 + p->dil_w * kx;
              int32_t iv, fv;
              if (ix < 0 || ix >= in_w) continue;
              iv = input[(iy * in_w + ix) * in_c + ic];
              fv = filter[(ky * k_w + kx) * out_c + oc];
              acc += fv * (iv + p->input_offset);
            }
          }
          if (bias) acc += bias[oc];
          acc = tb_mul_by_quant_mul(acc, out_mul[oc].multiplier, out_mul[oc].shift);
          acc += p->output_offset;
          if (acc < p->act_min) acc = p->act_min;
          if (acc > p->act_max) acc = p->act_max;
          output[(oy * out_w + ox) * out_c + oc] = (int8_t)acc;
        }
      }
    }
  }
}

/* 16x8 CONV_2D, matches reference_integer_ops::ConvPerChannel for int16
 * input and int64 bias: zero points are 0, so no offsets; the int64 sum is
 * rescaled by TFLite's int64 MultiplyByQuantizedMultiplier. */
void tb_conv2d_s16(const tb_conv_params *p, const int16_t *input,
                   const int8_t *filter, const int64_t *bias,
                   const tb_quant_mul *out_mul, int16_t *output) {
  const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
  const int32_t out_h = p->out_h, out_w = p->out_w, out_c = p->out_c;
  const int32_t k_h = p->k_h, k_w = p->k_w;
  int32_t oy, ox, oc, ky, kx, ic, out;
  for (oy = 0; oy < out_h; ++oy) {
    const int32_t in_y0 = oy * p->stride_h - p->pad_top;
    for (ox = 0; ox < out_w; ++ox) {
      const int32_t in_x0 = ox * p->stride_w - p->pad_left;
      for (oc = 0; oc < out_c; ++oc) {
        int64_t acc = 0;
        for (ky = 0; ky < k_h; ++ky) {
          const int32_t iy = in_y0 + p->dil_h * ky;
          if (iy < 0 || iy >= in_h) continue;
          for (kx = 0; kx < k_w; ++kx) {
            const int32_t ix = in_x0 + p->dil_w * kx;
            const int16_t *in_px;
            const int8_t *f_px;
            if (ix < 0 || ix >= in_w) continue;
            in_px = input + (iy * in_w + ix) * in_c;
            f_px = filter + ((oc * k_h + ky) * k_w + kx) * in_c;
            for (ic = 0; ic < in_c; ++ic) acc += (int32_t)f_px[ic] * (int32_t)in_px[ic];
          }
        }
        if (bias) acc += bias[oc];
        out = tb_mul_by_quant_mul_s64(acc, out_mul[oc].multiplier, out_mul[oc].shift);
        if (out < p->act_min) out = p->act_min;
        if (out > p->act_max) out = p->act_max;
        output[(oy * out_w + ox) * out_c + oc] = (int16_t)out;
      }
    }
  }
}

/* 16x8 DEPTHWISE_CONV_2D (reference_integer_ops::DepthwiseConvPerChannel,
 * int16 input, int64 bias). */
void tb_depthwise_conv2d_s16(const tb_conv_params *p, const int16_t *input,
                             const int8_t *filter, const int64_t *bias,
                             const tb_quant_mul *out_mul, int16_t *output) {
  const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
  const int32_t out_h = p->out_h, out_w = p->out_w, out_c = p->out_c;
  const int32_t k_h = p->k_h, k_w = p->k_w;
  const int32_t dm = p->depth_multiplier;
  int32_t oy, ox, ic, m, ky, kx, out;
  for (oy = 0; oy < out_h; ++oy) {
    const int32_t in_y0 = oy * p->stride_h - p->pad_top;
    for (ox = 0; ox < out_w; ++ox) {
      const int32_t in_x0 = ox * p->stride_w - p->pad_left;
      for (ic = 0; ic < in_c; ++ic) {
        for (m = 0; m < dm; ++m) {
          const int32_t oc = ic * dm + m;
          int64_t acc = 0;
          for (ky = 0; ky < k_h; ++ky) {
            const int32_t iy = in_y0 + p->dil_h * ky;
            if (iy < 0 || iy >= in_h) continue;
            for (kx = 0; kx < k_w; ++kx) {
              const int32_t ix = in_x0 + p->dil_w * kx;
              if (ix < 0 || ix >= in_w) continue;
              acc += (int32_t)filter[(ky * k_w + kx) * out_c + oc] *
                     (int32_t)input[(iy * in_w + ix) * in_c + ic];
            }
          }
          if (bias) acc += bias[oc];
          out = tb_mul_by_quant_mul_s64(acc, out_mul[oc].multiplier, out_mul[oc].shift);
          if (out < p->act_min) out = p->act_min;
          if (out > p->act_max) out = p->act_max;
          output[(oy * out_w + ox) * out_c + oc] = (int16_t)out;
        }
      }
    }
  }
}

/* ActivationFunctionWithMinMax: std::min(std::max(v, lo), hi), NaN kept. */
static float clamp_f32(float v, float lo, float hi) {
  const float low_clamped = v < lo ? lo : v;
  return hi < low_clamped ? hi : low_clamped;
}

/* float CONV_2D, matches reference_ops::Conv: one float sum per output in
 * (ky, kx, ic) order over the taps inside the input, then + bias, then the
 * activation clamp. Built with -ffp-contract=off, so no FMA changes a sum. */
void tb_conv2d_f32(const tb_conv_f32_params *p, const float *input,
                   const float *filter, const float *bias, float *output) {
  const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
  const int32_t out_h = p->out_h, out_w = p->out_w, out_c = p->out_c;
  const int32_t k_h = p->k_h, k_w = p->k_w;
  int32_t oy, ox, oc, ky, kx, ic;
  for (oy = 0; oy < out_h; ++oy) {
    const int32_t in_y0 = oy * p->stride_h - p->pad_top;
    for (ox = 0; ox < out_w; ++ox) {
      const int32_t in_x0 = ox * p->stride_w - p->pad_left;
      for (oc = 0; oc < out_c; ++oc) {
        float total = 0.0f;
        for (ky = 0; ky < k_h; ++ky) {
          const int32_t iy = in_y0 + p->dil_h * ky;
          if (iy < 0 || iy >= in_h) continue;
          for (kx = 0; kx < k_w; ++kx) {
            const int32_t ix = in_x0 + p->dil_w * kx;
            const float *in_px;
            const float *f_px;
            if (ix < 0 || ix >= in_w) continue;
            in_px = input + (iy * in_w + ix) * in_c;
            f_px = filter + ((oc * k_h + ky) * k_w + kx) * in_c;
            for (ic = 0; ic < in_c; ++ic) total += in_px[ic] * f_px[ic];
          }
        }
        output[(oy * out_w + ox) * out_c + oc] =
            clamp_f32(total + bias[oc], p->act_min, p->act_max);
      }
    }
  }
}

/* float DEPTHWISE_CONV_2D, matches reference_ops::DepthwiseConv: the same
 * order over (ky, kx) for output channel ic * depth_multiplier + m. */
void tb_depthwise_conv2d_f32(const tb_conv_f32_params *p, const float *input,
                             const float *filter, const float *bias, float *output) {
  const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
  const int32_t out_h = p->out_h, out_w = p->out_w, out_c = p->out_c;
  const int32_t k_h = p->k_h, k_w = p->k_w;
  const int32_t dm = p->depth_multiplier;
  int32_t oy, ox, ic, m, ky, kx;
  for (oy = 0; oy < out_h; ++oy) {
    const int32_t in_y0 = oy * p->stride_h - p->pad_top;
    for (ox = 0; ox < out_w; ++ox) {
      const int32_t in_x0 = ox * p->stride_w - p->pad_left;
      for (ic = 0; ic < in_c; ++ic) {
        for (m = 0; m < dm; ++m) {
          const int32_t oc = ic * dm + m;
          float total = 0.0f;
          for (ky = 0; ky < k_h; ++ky) {
            const int32_t iy = in_y0 + p->dil_h * ky;
            if (iy < 0 || iy >= in_h) continue;
            for (kx = 0; kx < k_w; ++kx) {
              const int32_t ix = in_x0 + p->dil_w * kx;
              if (ix < 0 || ix >= in_w) continue;
              total += input[(iy * in_w + ix) * in_c + ic] * filter[(ky * k_w + kx) * out_c + oc];
            }
          }
          output[(oy * out_w + ox) * out_c + oc] =
              clamp_f32(total + bias[oc], p->act_min, p->act_max);
        }
      }
    }
  }
}
