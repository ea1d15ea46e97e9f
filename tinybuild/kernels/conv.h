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

#ifdef __cplusplus
}
#endif
#endif
