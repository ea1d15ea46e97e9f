/* AVERAGE_POOL_2D and MAX_POOL_2D (tinybuild/ops/pool.py, pool.c). */
#ifndef TB_POOL_H
#define TB_POOL_H
#include "tb_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int16_t in_h, in_w, c;
  int16_t out_h, out_w;
  int16_t k_h, k_w;
  int16_t stride_h, stride_w;
  int16_t pad_top, pad_left;
  int32_t act_min, act_max;
} tb_pool_params;

void tb_avg_pool2d_s8(const tb_pool_params *p, const int8_t *input, int8_t *output);
void tb_max_pool2d_s8(const tb_pool_params *p, const int8_t *input, int8_t *output);
/* int16 (TFLite's 16x8 mode): the same params, act_min/act_max in the int16 range. */
void tb_avg_pool2d_s16(const tb_pool_params *p, const int16_t *input, int16_t *output);
void tb_max_pool2d_s16(const tb_pool_params *p, const int16_t *input, int16_t *output);

/* float32: the same geometry, the fused activation's clamp as floats. */
typedef struct {
  int16_t in_h, in_w, c;
  int16_t out_h, out_w;
  int16_t k_h, k_w;
  int16_t stride_h, stride_w;
  int16_t pad_top, pad_left;
  float act_min, act_max;
} tb_pool_f32_params;

void tb_avg_pool2d_f32(const tb_pool_f32_params *p, const float *input, float *output);
void tb_max_pool2d_f32(const tb_pool_f32_params *p, const float *input, float *output);

#ifdef __cplusplus
}
#endif
#endif
