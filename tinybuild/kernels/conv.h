/* CONV_2D and DEPTHWISE_CONV_2D (tinybuild/ops/conv.py, conv.c). */
#ifndef TB_CONV_H
#define TB_CONV_H
#include "tb_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int16_t in_h, in_w, in_c;
  int16_t out_h, out_w, out_c;
  int16_t k_h, k_w;
  int16_t stride_h, stride_w;
  int16_t dil_h, dil_w;
  int16_t pad_top, pad_left;
  int16_t depth_multiplier; /* depthwise only */
  int32_t input_offset;
  int32_t output_offset;
  int32_t act_min, act_max;
} tb_conv_params;

void tb_conv2d_s8(const tb_conv_params *p, const int8_t *input,
                  const int8_t *filter, const int32_t *bias,
                  const tb_quant_mul *out_mul, int8_t *output);

void tb_depthwise_conv2d_s8(const tb_conv_params *p, const int8_t *input,
                            const int8_t *filter, const int32_t *bias,
                            const tb_quant_mul *out_mul, int8_t *output);

/* 16x8 (TFLite's int16 activations, int8 weights): tb_conv_params with zero
 * offsets, act_min/act_max in the int16 range, an int64 bias and accumulator. */
void tb_conv2d_s16(const tb_conv_params *p, const int16_t *input,
                   const int8_t *filter, const int64_t *bias,
                   const tb_quant_mul *out_mul, int16_t *output);

void tb_depthwise_conv2d_s16(const tb_conv_params *p, const int16_t *input,
                             const int8_t *filter, const int64_t *bias,
                             const tb_quant_mul *out_mul, int16_t *output);

/* float32: the geometry of tb_conv_params and the fused activation's clamp. */
typedef struct {
  int16_t in_h, in_w, in_c;
  int16_t out_h, out_w, out_c;
  int16_t k_h, k_w;
  int16_t stride_h, stride_w;
  int16_t dil_h, dil_w;
  int16_t pad_top, pad_left;
  int16_t depth_multiplier; /* depthwise only */
  float act_min, act_max;
} tb_conv_f32_params;

void tb_conv2d_f32(const tb_conv_f32_params *p, const float *input,
                   const float *filter, const float *bias, float *output);

void tb_depthwise_conv2d_f32(const tb_conv_f32_params *p, const float *input,
                             const float *filter, const float *bias, float *output);

#ifdef __cplusplus
}
#endif
#endif
