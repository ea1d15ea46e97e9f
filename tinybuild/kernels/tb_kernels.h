/* tinybuild reference int8 kernels: portable C99, bit-exact with TensorFlow Lite's
 * reference kernels (tflite::reference_integer_ops / reference_ops, the
 * OpResolverType.BUILTIN_REF path).
 *
 * Conventions shared by every kernel:
 *  - batch is 1; activations are NHWC int8;
 *  - CONV_2D filters are OHWI, DEPTHWISE_CONV_2D filters are 1HW(C*M),
 *    FULLY_CONNECTED weights are [out][in] (TFLite's own layouts);
 *  - requantization is per output channel: the code generator expands a
 *    per-tensor scale into one (multiplier, shift) per channel, computed on the
 *    host exactly as TFLite's QuantizeMultiplier does;
 *  - offsets are the negated zero points (TFLite's input_offset/output_offset
 *    convention: input_offset = -input_zero_point, output_offset = +output_zero_point);
 *  - act_min/act_max carry the fused activation (RELU, RELU6 or none) already
 *    folded into the int8 output range.
 * Optimized kernels from target plugins implement the same signatures.
 */
#ifndef TB_KERNELS_H
#define TB_KERNELS_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int32_t multiplier; /* Q31 */
  int32_t shift;      /* >0: left shift, <0: right shift */
} tb_quant_mul;

typedef struct {
  int16_t in_h, in_w, in_c;
  int16_t out_h, out_w, out_c;
  int16_t k_h, k_w;
  int16_t stride_h, stride_w;
  int16_t dil_h, dil_w;
  int16_t pad_top, pad_left;
  int16_t depth_multiplier; /* depthwise only */
  int32_t input_offset;
  int32_t output_offset;
  int32_t act_min, act_max;
} tb_conv_params;

typedef struct {
  int16_t in_h, in_w, c;
  int16_t out_h, out_w;
  int16_t k_h, k_w;
  int16_t stride_h, stride_w;
  int16_t pad_top, pad_left;
  int32_t act_min, act_max;
} tb_pool_params;

typedef struct {
  int32_t in_features, out_features;
  int32_t input_offset;
  int32_t weights_offset; /* -weights_zero_point, normally 0 for int8 */
  int32_t output_offset;
  int32_t act_min, act_max;
  /* TF 2.21's reference int8 FULLY_CONNECTED (per-tensor) does not use the
   * fixed-point multiplier: it rounds double(acc) * real_multiplier half away
   * from zero, real_multiplier = double(in_scale) * double(w_scale) /
   * double(out_scale) (tinybuild.quant.fc_real_multiplier). 0.0 selects the
   * integer out_mul path instead (TFLite optimized / TFLite Micro behaviour). */
  double real_multiplier;
} tb_fc_params;

typedef struct {
  int32_t size;
  int32_t input1_offset, input2_offset, output_offset;
  int32_t left_shift;
  tb_quant_mul input1, input2, output;
  int32_t act_min, act_max;
} tb_add_params;

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

void tb_conv2d_s8(const tb_conv_params *p, const int8_t *input,
                  const int8_t *filter, const int32_t *bias,
                  const tb_quant_mul *out_mul, int8_t *output);

void tb_depthwise_conv2d_s8(const tb_conv_params *p, const int8_t *input,
                            const int8_t *filter, const int32_t *bias,
                            const tb_quant_mul *out_mul, int8_t *output);

void tb_fully_connected_s8(const tb_fc_params *p, const int8_t *input,
                           const int8_t *weights, const int32_t *bias,
                           const tb_quant_mul *out_mul, int8_t *output);

void tb_avg_pool2d_s8(const tb_pool_params *p, const int8_t *input, int8_t *output);
void tb_max_pool2d_s8(const tb_pool_params *p, const int8_t *input, int8_t *output);

void tb_add_s8(const tb_add_params *p, const int8_t *input1,
               const int8_t *input2, int8_t *output);

void tb_softmax_s8(const tb_softmax_params *p, const int8_t *input, int8_t *output);

/* RESHAPE is a copy (or nothing at all when the planner aliases it). */
void tb_copy_s8(int32_t size, const int8_t *input, int8_t *output);

/* Shared fixed-point helpers (TFLite's MultiplyByQuantizedMultiplier family). */
int32_t tb_mul_by_quant_mul(int32_t x, int32_t multiplier, int32_t shift);
/* std::round(v) for |v| < 2^30, saturating beyond: TFLite's per-tensor FC
 * rescale rounds double(acc) * real_multiplier this way. */
int32_t tb_round_half_away(double v);
/* gemmlowp SaturatingRoundingDoublingHighMul (ARM VQRDMULH semantics). */
int32_t tb_sat_rounding_doubling_high_mul(int32_t a, int32_t b);
/* gemmlowp RoundingDivideByPOT: round-half-away-from-zero arithmetic right shift, 0 <= exponent <= 31. */
int32_t tb_rounding_divide_by_pot(int32_t x, int32_t exponent);

#ifdef __cplusplus
}
#endif
#endif
