/* ADD (tinybuild/ops/add.py, add.c) and the broadcast walk every elementwise
 * binary op shares (tinybuild/ops/elementwise.py, elementwise.c). */
#ifndef TB_ADD_H
#define TB_ADD_H
#include "tb_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TB_BCAST_RANK 6

/* How a binary op walks its operands. All zero (the same-shape ADD the target
 * kernels take): one pass over `size` elements in input order. */
typedef struct {
  int32_t broadcast; /* 1: walk dims/strides; 0: the inputs have the output's shape */
  int32_t swap;      /* 1: the call passes input 2 first (input 1 is a constant after it) */
  int32_t dims[TB_BCAST_RANK];    /* the output, outermost first, merged, padded with 1 */
  int32_t stride1[TB_BCAST_RANK]; /* the first pointer's element step per dim (0: broadcast) */
  int32_t stride2[TB_BCAST_RANK]; /* the second pointer's */
} tb_bcast;

/* One run of n outputs: x and y advance by their steps (0 or 1), in op order. */
typedef void (*tb_row_fn)(const void *p, const int8_t *x, int32_t x_step,
                          const int8_t *y, int32_t y_step, int8_t *out, int32_t n);

/* Calls row() over the output in order, swapping the operands back when the
 * call passed them swapped. */
void tb_binary_s8(const tb_bcast *shape, int32_t size, const void *p, tb_row_fn row,
                  const int8_t *a, const int8_t *b, int8_t *output);

typedef struct {
  int32_t size;
  int32_t input1_offset, input2_offset, output_offset;
  int32_t left_shift;
  tb_quant_mul input1, input2, output;
  int32_t act_min, act_max;
  tb_bcast shape;
} tb_add_params;

void tb_add_s8(const tb_add_params *p, const int8_t *input1,
               const int8_t *input2, int8_t *output);

/* -- other element types (Layer.dtype "float32" and "int16") ----------------------------- */

/* One run of n outputs of any element type: x and y advance by their steps
 * (in elements: 0 or 1), in op order. */
typedef void (*tb_row_any_fn)(const void *p, const void *x, int32_t x_step, const void *y,
                              int32_t y_step, void *out, int32_t n);

/* tb_binary_s8's walk for elements of elem_size bytes (2 or 4). */
void tb_binary_any(const tb_bcast *shape, int32_t size, int32_t elem_size, const void *p,
                   tb_row_any_fn row, const void *a, const void *b, void *output);

/* float32 ADD/SUB/MUL/MAXIMUM/MINIMUM: the fused activation as TFLite's
 * CalculateActivationRange<float> gives it (NONE: -FLT_MAX..FLT_MAX). */
typedef struct {
  int32_t size;
  tb_bcast shape;
  float act_min, act_max;
} tb_binary_f32_params;

/* ActivationFunctionWithMinMax: std::min(std::max(x, lo), hi). */
float tb_clamp_f32(float x, float lo, float hi);

void tb_add_f32(const tb_binary_f32_params *p, const float *input1, const float *input2,
                float *output);

/* int16 ADD/SUB (TFLite's 16x8): the general path is tb_add_params' arithmetic
 * with left_shift 15; pot = 1 is TFLite's power-of-two path (zero points 0):
 * the raw values added (pot_sign 1) or subtracted (-1) with saturation after
 * rounding one input right by pot_shift1 or pot_shift2 (add.cc Add, sub.cc Sub16). */
typedef struct {
  int32_t size;
  int32_t input1_offset, input2_offset, output_offset;
  int32_t left_shift;
  tb_quant_mul input1, input2, output;
  int32_t act_min, act_max;
  tb_bcast shape;
  int32_t pot, pot_shift1, pot_shift2, pot_sign;
} tb_add_s16_params;

void tb_add_s16(const tb_add_s16_params *p, const int16_t *input1, const int16_t *input2,
                int16_t *output);

#ifdef __cplusplus
}
#endif
#endif
