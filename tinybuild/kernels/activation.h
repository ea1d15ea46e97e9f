/* Table ops (tinybuild/ops/activation.py, unary.py; activation.c): RELU,
 * RELU6, RELU_N1_TO_1, LEAKY_RELU, HARD_SWISH, LOGISTIC, TANH, ELU, ABS, NEG
 * and RSQRT, int8 -> int8. */
#ifndef TB_ACTIVATION_H
#define TB_ACTIVATION_H
#include "tb_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int32_t size; /* elements */
} tb_lut_params;

/* output[i] = lut[(uint8_t)input[i]]: the host built lut from TFLite's
 * per-value math for all 256 int8 inputs (entry k is the output for the input
 * whose byte is k). */
void tb_lut_s8(const tb_lut_params *p, const int8_t *input, const int8_t *lut,
               int8_t *output);

#ifdef __cplusplus
}
#endif
#endif
