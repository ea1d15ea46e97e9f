/* MEAN, SUM, REDUCE_MAX, REDUCE_MIN, ARG_MAX, ARG_MIN
 * (tinybuild/ops/reduce.py, reduce.c). */
#ifndef TB_REDUCE_H
#define TB_REDUCE_H
#include "tb_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TB_REDUCE_MAX_DIMS 6

/* What a reduction computes (tinybuild/ops/reduce.py). MEAN and SUM follow
 * TF 2.21's reference_ops::QuantizedMeanOrSum: the zero-point-corrected int32
 * sum rescaled by one fixed-point multiplier (MEAN's already holds 1/count). */
enum {
  TB_REDUCE_MEAN = 0,
  TB_REDUCE_SUM_U8 = 1,  /* SUM: TF 2.21's reference reads and writes the int8 bytes as uint8 */
  TB_REDUCE_MAX = 2,
  TB_REDUCE_MIN = 3
};

/* The input is walked as outer (kept) dims x inner (reduced) dims, each a
 * list of (size, stride in elements); one output per outer position, in
 * row-major order. */
typedef struct {
  int32_t mode;
  int32_t outer_rank, inner_rank;
  int32_t outer_dims[TB_REDUCE_MAX_DIMS], outer_strides[TB_REDUCE_MAX_DIMS];
  int32_t inner_dims[TB_REDUCE_MAX_DIMS], inner_strides[TB_REDUCE_MAX_DIMS];
  int32_t outputs, count;          /* output elements; input elements per output */
  int32_t input_zero_point, output_zero_point;
  tb_quant_mul mul;                /* MEAN, SUM: the output rescale */
} tb_reduce_params;

void tb_reduce_s8(const tb_reduce_params *p, const int8_t *input, int8_t *output);
/* int16 (zero points 0): the same params; mode SUM_U8 sums int16 values. */
void tb_reduce_s16(const tb_reduce_params *p, const int16_t *input, int16_t *output);
/* float32: mul and the zero points unused; MEAN and SUM add from 0.0f in
 * TFLite's order (row-major over the reduced dims), MAX/MIN start at -/+FLT_MAX. */
void tb_reduce_f32(const tb_reduce_params *p, const float *input, float *output);

/* ARG_MAX / ARG_MIN over one axis of an [outer][axis][inner] int8 tensor:
 * the first index of the largest (smallest) value, as TFLite's ArgMinMax. */
typedef struct {
  int32_t outer, axis, inner;
  int32_t is_max;
  int32_t int64_output;            /* the output is int64_t[], else int32_t[] */
} tb_arg_params;

void tb_arg_min_max_s8(const tb_arg_params *p, const int8_t *input, void *output);

#ifdef __cplusplus
}
#endif
#endif
