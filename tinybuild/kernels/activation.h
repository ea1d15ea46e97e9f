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

/* float32 activations, as TFLite's float kernels compute them (kind: TB_ACT_*). */
#define TB_ACT_RELU 0         /* x < 0 ? 0 : x */
#define TB_ACT_RELU6 1        /* std::min(std::max(0.f, x), 6.f) */
#define TB_ACT_RELU_N1_TO_1 2 /* std::min(std::max(-1.f, x), 1.f) */
#define TB_ACT_LEAKY_RELU 3   /* x > 0 ? x : x * alpha */
#define TB_ACT_HARD_SWISH 4   /* x * std::min(6.f, std::max(0.f, x + 3)) / 6 */
#define TB_ACT_LOGISTIC 5     /* 1 / (1 + expf(-x)), expf(x) below -9, 1 above 16.619047 */
#define TB_ACT_TANH 6         /* tanhf(x) */

typedef struct {
  int32_t size; /* elements */
  int32_t kind; /* TB_ACT_* */
  float alpha;  /* LEAKY_RELU */
} tb_act_f32_params;

/* LOGISTIC and TANH call the C library's expf/tanhf (the reference does):
 * their last bit may differ between C libraries. */
void tb_activation_f32(const tb_act_f32_params *p, const float *input, float *output);

/* int16 (16x8) RELU, RELU6, RELU_N1_TO_1 (ReluX) and LEAKY_RELU
 * (QuantizeLeakyRelu): x - input_zero_point rescaled by `positive` (x >= zero
 * point) or `negative`, plus output_zero_point, clamped to act_min..act_max. */
typedef struct {
  int32_t size;
  int32_t input_zero_point, output_zero_point;
  tb_quant_mul positive, negative;
  int32_t act_min, act_max;
} tb_relu_s16_params;

void tb_relu_s16(const tb_relu_s16_params *p, const int16_t *input, int16_t *output);

/* int16 LOGISTIC and TANH (16x8, reference_integer_ops::Logistic/Tanh): the input
 * rescaled by input_multiplier / 2^input_left_shift (multiplier 0: the
 * power-of-two case, 3 << input_left_shift), then a 256-entry sigmoid table
 * (round(65536 * sigmoid(i / 24)), passed as a constant) interpolated;
 * output scale 1/32768. */
typedef struct {
  int32_t size;
  int32_t tanh; /* 0: LOGISTIC, 1: TANH */
  int32_t input_multiplier, input_left_shift;
} tb_sigmoid_s16_params;

void tb_sigmoid_s16(const tb_sigmoid_s16_params *p, const int16_t *input, const uint16_t *table,
                    int16_t *output);

#ifdef __cplusplus
}
#endif
#endif
