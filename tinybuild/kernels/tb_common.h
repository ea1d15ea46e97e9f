/* What every tinybuild reference kernel shares. The kernels are portable C99,
 * bit-exact with TensorFlow Lite's reference kernels
 * (tflite::reference_integer_ops / reference_ops, the BUILTIN_REF path).
 *
 * Conventions:
 *  - a call is kernel(&params, inputs..., constant arrays..., outputs...[, scratch]);
 *  - batch is 1; activations are NHWC, int8 unless an op says otherwise
 *    (QUANTIZE/DEQUANTIZE at a model's edges read or write float32/uint8);
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
#ifndef TB_COMMON_H
#define TB_COMMON_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int32_t multiplier; /* Q31 */
  int32_t shift;      /* >0: left shift, <0: right shift */
} tb_quant_mul;

/* Shared fixed-point helpers (TFLite's MultiplyByQuantizedMultiplier family). */
int32_t tb_mul_by_quant_mul(int32_t x, int32_t multiplier, int32_t shift);
/* std::round(v) for |v| < 2^30, saturating beyond: TFLite's per-tensor FC
 * rescale rounds double(acc) * real_multiplier this way. */
int32_t tb_round_half_away(double v);
/* gemmlowp SaturatingRoundingDoublingHighMul (ARM VQRDMULH semantics). */
int32_t tb_sat_rounding_doubling_high_mul(int32_t a, int32_t b);
/* TFLite's int64 MultiplyByQuantizedMultiplier (16x8 kernels' int64 sums):
 * the multiplier rounded to 16 bits, one rounding shift by 15 - shift. */
int32_t tb_mul_by_quant_mul_s64(int64_t x, int32_t multiplier, int32_t shift);
/* gemmlowp RoundingDivideByPOT: round-half-away-from-zero arithmetic right shift, 0 <= exponent <= 31. */
int32_t tb_rounding_divide_by_pot(int32_t x, int32_t exponent);

#ifdef __cplusplus
}
#endif
#endif
