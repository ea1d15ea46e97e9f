/* FULLY_CONNECTED (tinybuild/ops/fully_connected.py, fully_connected.c). */
#ifndef TB_FULLY_CONNECTED_H
#define TB_FULLY_CONNECTED_H
#include "tb_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int32_t in_features, out_features;
  int32_t input_offset;
  int32_t weights_offset; /* -weights_zero_point, normally 0 for int8 */
  int32_t output_offset;
  int32_t act_min, act_max;
  /* TF 2.21's reference int8 FULLY_CONNECTED does not use the fixed-point
   * multiplier: it rounds double(acc) * real_multiplier half away from zero,
   * real_multiplier = double(in_scale) * double(w_scale) / double(out_scale)
   * (tinybuild.quant.fc_real_multiplier). Set for per-tensor weights; 0.0 for
   * per-channel ones, whose multipliers are the kernel's real_mul[out_features]
   * (with real_mul NULL too: the integer out_mul path, TFLite Micro's). */
  double real_multiplier;
  /* Rows of in_features inputs (TFLite's batches), each giving out_features
   * outputs; 0 reads as 1 (params written before rows existed). */
  int32_t rows;
} tb_fc_params;

void tb_fully_connected_s8(const tb_fc_params *p, const int8_t *input,
                           const int8_t *weights, const int32_t *bias,
                           const tb_quant_mul *out_mul, const double *real_mul,
                           int8_t *output);

/* 16x8: tb_fc_params with zero offsets (real_multiplier unused), int16 in
 * and out, an int64 bias and accumulator, rescaled in double by real_mul[o]
 * (one per output feature) as TF 2.21's reference does. */
void tb_fully_connected_s16(const tb_fc_params *p, const int16_t *input,
                            const int8_t *weights, const int64_t *bias,
                            const double *real_mul, int16_t *output);

typedef struct {
  int32_t rows, in_features, out_features;
  float act_min, act_max;   /* the fused activation's clamp */
} tb_fc_f32_params;

void tb_fully_connected_f32(const tb_fc_f32_params *p, const float *input,
                            const float *weights, const float *bias, float *output);

#ifdef __cplusplus
}
#endif
#endif
