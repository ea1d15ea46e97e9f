/* TRANSPOSE_CONV int8 per-channel, bit-exact with TF 2.21's
 * reference_integer_ops::TransposeConv (transpose_conv.cc under BUILTIN_REF).
 * TFLite scatters each input pixel into an int32 scratch image; this kernel
 * gathers instead: each output element sums the (input + input_offset) *
 * filter products that land on it. Both add the same int32 terms, so the
 * sums are equal (wrap-around included) and no scratch buffer is needed. */
#include "tb_kernels.h"

/* The input row (or column) filter tap t maps to output position o from, or -1. */
static int32_t source(int32_t o, int32_t pad, int32_t t, int32_t stride, int32_t size) {
  const int32_t shifted = o + pad - t;
  if (shifted < 0 || shifted % stride != 0 || shifted / stride >= size) return -1;
  return shifted / stride;
}

static int32_t accumulate(const tb_transpose_conv_params *p, const int8_t *input,
                          const int8_t *filter, int32_t oy, int32_t ox, int32_t oc) {
  int32_t fy, fx, ic, acc = 0;
  for (fy = 0; fy < p->k_h; ++fy) {
    const int32_t iy = source(oy, p->pad_top, fy, p->stride_h, p->in_h);
    if (iy < 0) continue;
    for (fx = 0; fx < p->k_w; ++fx) {
      const int32_t ix = source(ox, p->pad_left, fx, p->stride_w, p->in_w);
      const int8_t *in, *w;
      if (ix < 0) continue;
      in = input + (iy * p->in_w + ix) * p->in_c;
      w = filter + ((oc * p->k_h + fy) * p->k_w + fx) * p->in_c;
      for (ic = 0; ic < p->in_c; ++ic) acc += (in[ic] + p->input_offset) * w[ic];
    }
  }
  return acc;
}

void tb_transpose_conv_s8(const tb_transpose_conv_params *p, const int8_t *input,
                          const int8_t *filter, const int32_t *bias,
                          const tb_quant_mul *out_mul, int8_t *output) {
  int32_t oy, ox, oc;
  for (oy = 0; oy < p->out_h; ++oy) {
    for (ox = 0; ox < p->out_w; ++ox) {
      for (oc = 0; oc < p->out_c; ++oc) {
        int32_t acc = accumulate(p, input, filter, oy, ox, oc) + bias[oc];
        acc = tb_mul_by_quant_mul(acc, out_mul[oc].multiplier, out_mul[oc].shift) +
              p->output_offset;
        if (acc < p->act_min) acc = p->act_min;
        if (acc > p->act_max) acc = p->act_max;
        *output++ = (int8_t)acc;
      }
    }
  }
}

/* 16x8: as tb_transpose_conv_s8 with int64 sums (zero points 0), then
 * TFLite's int64 MultiplyByQuantizedMultiplier. */
void tb_transpose_conv_s16(const tb_transpose_conv_params *p, const int16_t *input,
                           const int8_t *filter, const int64_t *bias,
                           const tb_quant_mul *out_mul, int16_t *output) {
  int32_t oy, ox, oc, fy, fx, ic, out;
  for (oy = 0; oy < p->out_h; ++oy) {
    for (ox = 0; ox < p->out_w; ++ox) {
      for (oc = 0; oc < p->out_c; ++oc) {
        int64_t acc = 0;
        for (fy = 0; fy < p->k_h; ++fy) {
          const int32_t iy = source(oy, p->pad_top, fy, p->stride_h, p->in_h);
          if (iy < 0) continue;
          for (fx = 0; fx < p->k_w; ++fx) {
            const int32_t ix = source(ox, p->pad_left, fx, p->stride_w, p->in_w);
            const int16_t *in;
            const int8_t *w;
            if (ix < 0) continue;
            in = input + (iy * p->in_w + ix) * p->in_c;
            w = filter + ((oc * p->k_h + fy) * p->k_w + fx) * p->in_c;
            for (ic = 0; ic < p->in_c; ++ic) acc += (int32_t)in[ic] * (int32_t)w[ic];
          }
        }
        out = tb_mul_by_quant_mul_s64(acc + bias[oc], out_mul[oc].multiplier, out_mul[oc].shift);
        if (out < p->act_min) out = p->act_min;
        if (out > p->act_max) out = p->act_max;
        *output++ = (int16_t)out;
      }
    }
  }
}

/* float: reference_ops::TransposeConv scatters input pixels in raster order,
 * so each output sums its terms by ascending input row, column, channel: the
 * taps from the last filter row/column to the first. Then + bias, clamp. */
void tb_transpose_conv_f32(const tb_transpose_conv_f32_params *p, const float *input,
                           const float *filter, const float *bias, float *output) {
  int32_t oy, ox, oc, fy, fx, ic;
  for (oy = 0; oy < p->out_h; ++oy) {
    for (ox = 0; ox < p->out_w; ++ox) {
      for (oc = 0; oc < p->out_c; ++oc) {
        float total = 0.0f, v;
        for (fy = p->k_h - 1; fy >= 0; --fy) {
          const int32_t iy = source(oy, p->pad_top, fy, p->stride_h, p->in_h);
          if (iy < 0) continue;
          for (fx = p->k_w - 1; fx >= 0; --fx) {
            const int32_t ix = source(ox, p->pad_left, fx, p->stride_w, p->in_w);
            const float *in, *w;
            if (ix < 0) continue;
            in = input + (iy * p->in_w + ix) * p->in_c;
            w = filter + ((oc * p->k_h + fy) * p->k_w + fx) * p->in_c;
            for (ic = 0; ic < p->in_c; ++ic) total += in[ic] * w[ic];
          }
        }
        v = total + bias[oc];
        v = v < p->act_min ? p->act_min : v;
        *output++ = p->act_max < v ? p->act_max : v;
      }
    }
  }
}
