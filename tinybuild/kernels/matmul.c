/* BATCH_MATMUL int8, bit-exact with TF 2.21's reference_ops::BatchMatMul<int8_t,
 * int32_t> (batch_matmul.cc under BUILTIN_REF): int32 accumulation of
 * offset-corrected products, MultiplyByQuantizedMultiplier, the output zero
 * point, clamped to int8 (BATCH_MATMUL has no fused activation). TFLite
 * transposes operands into scratch first; here strides read them in place. */
#include "tb_kernels.h"

static int8_t dot(const tb_batch_matmul_params *p, const int8_t *lhs, const int8_t *rhs) {
  int32_t k, total = 0, out;
  for (k = 0; k < p->k; ++k) {
    total += (lhs[k * p->lhs_k] + p->lhs_offset) * (rhs[k * p->rhs_k] + p->rhs_offset);
  }
  out = tb_mul_by_quant_mul(total, p->output.multiplier, p->output.shift) + p->output_offset;
  return (int8_t)(out < -128 ? -128 : out > 127 ? 127 : out);
}

void tb_batch_matmul_s8(const tb_batch_matmul_params *p, const int8_t *first,
                        const int8_t *second, int8_t *output) {
  const int8_t *lhs_base = p->lhs_second ? second : first;
  const int8_t *rhs_base = p->lhs_second ? first : second;
  int32_t b0, b1, b2, m, n;
  for (b0 = 0; b0 < p->batch[0]; ++b0) {
    for (b1 = 0; b1 < p->batch[1]; ++b1) {
      for (b2 = 0; b2 < p->batch[2]; ++b2) {
        const int8_t *lhs = lhs_base + b0 * p->lhs_batch_stride[0] +
                            b1 * p->lhs_batch_stride[1] + b2 * p->lhs_batch_stride[2];
        const int8_t *rhs = rhs_base + b0 * p->rhs_batch_stride[0] +
                            b1 * p->rhs_batch_stride[1] + b2 * p->rhs_batch_stride[2];
        for (m = 0; m < p->m; ++m) {
          for (n = 0; n < p->n; ++n) *output++ = dot(p, lhs + m * p->lhs_m, rhs + n * p->rhs_n);
        }
      }
    }
  }
}
