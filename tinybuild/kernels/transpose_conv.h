/* TRANSPOSE_CONV (tinybuild/ops/transpose_conv.py, transpose_conv.c). */
#ifndef TB_TRANSPOSE_CONV_H
#define TB_TRANSPOSE_CONV_H
#include "tb_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* int8 NHWC input [in_h][in_w][in_c] -> output [out_h][out_w][out_c]; filter
 * OHWI [out_c][k_h][k_w][in_c] (TFLite's layout), int32 bias (zeros when the
 * op has none), one (multiplier, shift) per output channel. */
typedef struct {
  int32_t in_h, in_w, in_c, out_h, out_w, out_c;
  int32_t k_h, k_w, stride_h, stride_w, pad_top, pad_left;
  int32_t input_offset, output_offset;
  int32_t act_min, act_max;
} tb_transpose_conv_params;

void tb_transpose_conv_s8(const tb_transpose_conv_params *p, const int8_t *input,
                          const int8_t *filter, const int32_t *bias,
                          const tb_quant_mul *out_mul, int8_t *output);

/* 16x8: the same params (zero offsets, int16 act range), int16 in and out,
 * int64 bias and sums. */
void tb_transpose_conv_s16(const tb_transpose_conv_params *p, const int16_t *input,
                           const int8_t *filter, const int64_t *bias,
                           const tb_quant_mul *out_mul, int16_t *output);

typedef struct {
  int32_t in_h, in_w, in_c, out_h, out_w, out_c;
  int32_t k_h, k_w, stride_h, stride_w, pad_top, pad_left;
  float act_min, act_max;
} tb_transpose_conv_f32_params;

void tb_transpose_conv_f32(const tb_transpose_conv_f32_params *p, const float *input,
                           const float *filter, const float *bias, float *output);

#ifdef __cplusplus
}
#endif
#endif
