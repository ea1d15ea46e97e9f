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

/* The batch offsets (in elements) of the lhs and rhs matrices of batch (b0, b1, b2). */
static int32_t batch_offset(const int32_t *stride, int32_t b0, int32_t b1, int32_t b2) {
  return b0 * stride[0] + b1 * stride[1] + b2 * stride[2];
}

static int16_t dot_s16(const tb_batch_matmul_params *p, const int16_t *lhs, const int16_t *rhs) {
  int32_t k, out;
  int64_t total = 0;
  for (k = 0; k < p->k; ++k) total += (int32_t)lhs[k * p->lhs_k] * (int32_t)rhs[k * p->rhs_k];
  out = tb_mul_by_quant_mul_s64(total, p->output.multiplier, p->output.shift);
  return (int16_t)(out < -32768 ? -32768 : out > 32767 ? 32767 : out);
}

void tb_batch_matmul_s16(const tb_batch_matmul_params *p, const int16_t *first,
                         const int16_t *second, int16_t *output) {
  const int16_t *lhs_base = p->lhs_second ? second : first;
  const int16_t *rhs_base = p->lhs_second ? first : second;
  int32_t b0, b1, b2, m, n;
  for (b0 = 0; b0 < p->batch[0]; ++b0) {
    for (b1 = 0; b1 < p->batch[1]; ++b1) {
      for (b2 = 0; b2 < p->batch[2]; ++b2) {
        const int16_t *lhs = lhs_base + batch_offset(p->lhs_batch_stride, b0, b1, b2);
        const int16_t *rhs = rhs_base + batch_offset(p->rhs_batch_stride, b0, b1, b2);
        for (m = 0; m < p->m; ++m) {
          for (n = 0; n < p->n; ++n) *output++ = dot_s16(p, lhs + m * p->lhs_m, rhs + n * p->rhs_n);
        }
      }
    }
  }
}

static float dot_f32(const tb_batch_matmul_params *p, const float *lhs, const float *rhs) {
  int32_t k;
  float total = 0.0f;
  for (k = 0; k < p->k; ++k) total += lhs[k * p->lhs_k] * rhs[k * p->rhs_k];
  return total;
}

void tb_batch_matmul_f32(const tb_batch_matmul_params *p, const float *first,
                         const float *second, float *output) {
  const float *lhs_base = p->lhs_second ? second : first;
  const float *rhs_base = p->lhs_second ? first : second;
  int32_t b0, b1, b2, m, n;
  for (b0 = 0; b0 < p->batch[0]; ++b0) {
    for (b1 = 0; b1 < p->batch[1]; ++b1) {
      for (b2 = 0; b2 < p->batch[2]; ++b2) {
        const float *lhs = lhs_base + batch_offset(p->lhs_batch_stride, b0, b1, b2);
        const float *rhs = rhs_base + batch_offset(p->rhs_batch_stride, b0, b1, b2);
        for (m = 0; m < p->m; ++m) {
          for (n = 0; n < p->n; ++n) *output++ = dot_f32(p, lhs + m * p->lhs_m, rhs + n * p->rhs_n);
        }
      }
    }
  }
}
