/* BATCH_MATMUL (tinybuild/ops/matmul.py, matmul.c). */
#ifndef TB_MATMUL_H
#define TB_MATMUL_H
#include "tb_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[b][m][n] = requantize(sum_k (lhs[b][m][k] + lhs_offset) * (rhs[b][k][n] + rhs_offset))
 * over up to 3 broadcast batch dims. Element strides make adj_x / adj_y free:
 * lhs (m, k) is at m * lhs_m + k * lhs_k, rhs (k, n) at k * rhs_k + n * rhs_n;
 * a batch dim an operand broadcasts has stride 0. */
typedef struct {
  int32_t batch[3];
  int32_t lhs_batch_stride[3], rhs_batch_stride[3];
  int32_t m, n, k;
  int32_t lhs_m, lhs_k, rhs_k, rhs_n;
  int32_t lhs_offset, rhs_offset, output_offset;
  tb_quant_mul output;
  int32_t lhs_second;            /* 1: the call passes rhs first (lhs is the constant) */
} tb_batch_matmul_params;

void tb_batch_matmul_s8(const tb_batch_matmul_params *p, const int8_t *first,
                        const int8_t *second, int8_t *output);
/* int16 (offsets 0): int64 sums, TFLite's int64 rescale, clamped to int16. */
void tb_batch_matmul_s16(const tb_batch_matmul_params *p, const int16_t *first,
                         const int16_t *second, int16_t *output);
/* float32 (offsets and output unused): float sums in k order. */
void tb_batch_matmul_f32(const tb_batch_matmul_params *p, const float *first,
                         const float *second, float *output);

#ifdef __cplusplus
}
#endif
#endif
