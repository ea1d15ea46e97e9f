/* Elementwise binary ops: SUB, MUL, SQUARED_DIFFERENCE, MAXIMUM, MINIMUM, DIV,
 * PRELU (tinybuild/ops/elementwise.py, elementwise.c). Each takes its two
 * operands in call order (activations first, then constants) and walks them
 * with tb_binary_s8 (add.h), which undoes the swap. */
#ifndef TB_ELEMENTWISE_H
#define TB_ELEMENTWISE_H
#include "tb_common.h"
#include "add.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int32_t size;
  tb_bcast shape;
  int32_t input1_offset, input2_offset, output_offset;
  tb_quant_mul output;
  int32_t act_min, act_max;
} tb_mul_params;

typedef struct {
  int32_t size;
  tb_bcast shape;
  int32_t input1_offset, input2_offset, output_offset;
  tb_quant_mul output; /* input1 scale / (input2 scale * output scale) */
  int32_t act_min, act_max;
} tb_div_params;

typedef struct {
  int32_t size;
  tb_bcast shape;
} tb_minmax_params;

typedef struct {
  int32_t size;
  tb_bcast shape;
  int32_t input_offset, alpha_offset, output_offset;
  tb_quant_mul identity; /* input scale / output scale: x >= 0 */
  tb_quant_mul alpha;    /* input scale * alpha scale / output scale: x < 0 */
} tb_prelu_params;

/* SUB: ADD's params with input 2's multiplier negated (sub.cc). */
void tb_sub_s8(const tb_add_params *p, const int8_t *a, const int8_t *b, int8_t *output);
void tb_mul_s8(const tb_mul_params *p, const int8_t *a, const int8_t *b, int8_t *output);
/* SQUARED_DIFFERENCE: ADD's params with left_shift 7 and the square's rescale. */
void tb_squared_difference_s8(const tb_add_params *p, const int8_t *a, const int8_t *b,
                              int8_t *output);
void tb_maximum_s8(const tb_minmax_params *p, const int8_t *a, const int8_t *b, int8_t *output);
void tb_minimum_s8(const tb_minmax_params *p, const int8_t *a, const int8_t *b, int8_t *output);
void tb_div_s8(const tb_div_params *p, const int8_t *a, const int8_t *b, int8_t *output);
void tb_prelu_s8(const tb_prelu_params *p, const int8_t *a, const int8_t *b, int8_t *output);

/* float32 (tb_binary_f32_params, add.h) and int16 (16x8) versions. SUB int16
 * takes ADD's int16 params with input 2's multiplier negated (or pot_sign -1);
 * MUL int16 takes tb_mul_params, PRELU int16 tb_prelu_params; MAXIMUM/MINIMUM compare
 * raw values. */
void tb_sub_f32(const tb_binary_f32_params *p, const float *a, const float *b, float *output);
void tb_mul_f32(const tb_binary_f32_params *p, const float *a, const float *b, float *output);
void tb_maximum_f32(const tb_binary_f32_params *p, const float *a, const float *b, float *output);
void tb_minimum_f32(const tb_binary_f32_params *p, const float *a, const float *b, float *output);
/* DIV: a / b then the clamp; SQUARED_DIFFERENCE: (a - b) * (a - b); PRELU:
 * x >= 0 ? x : x * alpha (reference ApplyPrelu). */
void tb_div_f32(const tb_binary_f32_params *p, const float *a, const float *b, float *output);
void tb_squared_difference_f32(const tb_binary_f32_params *p, const float *a, const float *b,
                               float *output);
void tb_prelu_f32(const tb_binary_f32_params *p, const float *a, const float *b, float *output);
void tb_sub_s16(const tb_add_s16_params *p, const int16_t *a, const int16_t *b, int16_t *output);
void tb_mul_s16(const tb_mul_params *p, const int16_t *a, const int16_t *b, int16_t *output);
void tb_prelu_s16(const tb_prelu_params *p, const int16_t *a, const int16_t *b, int16_t *output);
void tb_div_s16(const tb_div_params *p, const int16_t *a, const int16_t *b, int16_t *output);
void tb_maximum_s16(const tb_minmax_params *p, const int16_t *a, const int16_t *b,
                    int16_t *output);
void tb_minimum_s16(const tb_minmax_params *p, const int16_t *a, const int16_t *b,
                    int16_t *output);

#ifdef __cplusplus
}
#endif
#endif
