/* SOFTMAX (tinybuild/ops/softmax.py, softmax.c). */
#ifndef TB_SOFTMAX_H
#define TB_SOFTMAX_H
#include "tb_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* SOFTMAX on the last axis of an [outer][depth] int8 tensor. The host
 * precomputes whatever TFLite's reference Prepare step precomputes; see
 * tb_softmax_s8's definition for the exact fields.
 * TFLite's BUILTIN_REF softmax (SoftmaxPrepare/Eval<kReference>) takes the
 * integer gemmlowp path for int8 -> int8: only outer, depth, input_multiplier,
 * input_left_shift and diff_min are used (tinybuild.quant.softmax_params);
 * output_offset is fixed at -128 by TFLite, exp_table/output_inv_scale are
 * unused by the reference kernel (set them to 0). */
typedef struct {
  int32_t outer, depth;
  int32_t input_multiplier;
  int32_t input_left_shift;
  int32_t diff_min;
  int32_t output_offset; /* output zero point, -128 for TFLite's int8 softmax */
  const float *exp_table; /* 256 entries when the reference uses a lookup table, else 0 */
  float output_inv_scale;
} tb_softmax_params;

void tb_softmax_s8(const tb_softmax_params *p, const int8_t *input, int8_t *output);

/* float32 SOFTMAX (reference_ops::Softmax): per row the max, exp((x - max) *
 * beta) with the C library's expf (its last bit differs between C libraries:
 * the validation states the difference), their float sum in order, each
 * divided by it. */
typedef struct {
  int32_t outer, depth;
  float beta;
} tb_softmax_f32_params;

void tb_softmax_f32(const tb_softmax_f32_params *p, const float *input, float *output);

/* int16 SOFTMAX (16x8, reference_ops::SoftmaxInt16): exp(x - max) and 1 / (1 + x)
 * through 513-entry int16 tables with linear interpolation (TFLite's
 * LUTPopulate<int16_t> tables, built on the host in double as SoftmaxPrepare
 * does), output scale 1/32768. */
typedef struct {
  int32_t outer, depth;
  int32_t input_multiplier, input_left_shift; /* input scale * beta / (10 / 65535) */
} tb_softmax_s16_params;

void tb_softmax_s16(const tb_softmax_s16_params *p, const int16_t *input, const int16_t *exp_lut,
                    const int16_t *one_over_one_plus_x_lut, int16_t *output);

/* TFLite's LUTLookup for int16: lut[256 + (v >> 7)] plus the rounded slope
 * times v's low 7 bits. */
int16_t tb_lut_lookup_s16(int16_t value, const int16_t *lut);

#ifdef __cplusplus
}
#endif
#endif
