/* CAST, float32 ABS/NEG and int16 NEG (tinybuild/ops/unary.py, unary.c). */
#ifndef TB_UNARY_H
#define TB_UNARY_H
#include "tb_common.h"
#include "quantize.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TB_DTYPE_INT32 4 /* beside quantize.h's TB_DTYPE_INT8/UINT8/INT16/FLOAT32 */

typedef struct {
  int32_t size;              /* elements */
  int32_t in_type, out_type; /* TB_DTYPE_* */
} tb_cast_params;

/* CAST as TFLite's cast.cc does it on x86-64 (quantization ignored): integer
 * to integer wraps; float32 to int32 saturates (NaN -> INT32_MAX); to int16 or
 * uint8 clamps first (NaN -> 0); to int8 truncates to int32 (INT32_MIN outside
 * its range) and wraps. */
void tb_cast(const tb_cast_params *p, const void *input, void *output);

/* float32 ABS (std::abs: the sign bit cleared) and NEG (-x: the sign bit flipped). */
typedef struct {
  int32_t size;
  int32_t negate; /* 0: ABS, 1: NEG */
} tb_unary_f32_params;

void tb_unary_f32(const tb_unary_f32_params *p, const float *input, float *output);

/* int16 NEG as TF 2.21's reference_ops::Negate: -x on the raw values
 * (quantization ignored), -(-32768) wrapping to -32768. */
typedef struct {
  int32_t size;
} tb_neg_s16_params;

void tb_neg_s16(const tb_neg_s16_params *p, const int16_t *input, int16_t *output);

#ifdef __cplusplus
}
#endif
#endif
