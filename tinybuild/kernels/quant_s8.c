/* Shared fixed-point helpers, bit-exact with gemmlowp/TFLite.
 * TFLite (not Micro) is built without TFLITE_SINGLE_ROUNDING, so
 * MultiplyByQuantizedMultiplier rounds twice: a rounding doubling high
 * multiply, then a rounding right shift. Signed right shifts are assumed
 * arithmetic (true for GCC/Clang on every supported target). */
#include "tb_kernels.h"

int32_t tb_sat_rounding_doubling_high_mul(int32_t a, int32_t b) {
  int64_t ab;
  int32_t nudge;
  /* The only overflow case: -1 * -1 in Q31 saturates to the max value. */
  if (a == b && a == INT32_MIN) return INT32_MAX;
  ab = (int64_t)a * (int64_t)b;
  nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  /* C99 division truncates toward zero, as gemmlowp relies on. */
  return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

int32_t tb_rounding_divide_by_pot(int32_t x, int32_t exponent) {
  const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
  const int32_t remainder = x & mask;
#ifdef TB_KERNELS_FAULT_INJECT_TRUNCATE
  /* Test-only fault injection: plain truncating shift. Never define this in
   * a real build; the test suite uses it to prove it can detect errors. */
  (void)remainder;
  return x >> exponent;
#else
  /* Ties round away from zero: negative values need one more to round up. */
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
#endif
}

int32_t tb_mul_by_quant_mul(int32_t x, int32_t multiplier, int32_t shift) {
  const int32_t left_shift = shift > 0 ? shift : 0;
  const int32_t right_shift = shift > 0 ? 0 : -shift;
  /* Shift through uint32 to avoid signed-overflow UB; wraps like TFLite's
   * x * (1 << left_shift) does in practice. */
  const int32_t shifted = (int32_t)((uint32_t)x << left_shift);
  return tb_rounding_divide_by_pot(
      tb_sat_rounding_doubling_high_mul(shifted, multiplier), right_shift);
}

int32_t tb_mul_by_quant_mul_s64(int64_t x, int32_t multiplier, int32_t shift) {
  const int32_t reduced = multiplier < 0x7FFF0000 ? (multiplier + (1 << 15)) >> 16 : 0x7FFF;
  const int32_t total_shift = 15 - shift;
  /* x * reduced stays far inside int64 for int16 x int8 sums (|x| < 2^47). */
  return (int32_t)((x * reduced + ((int64_t)1 << (total_shift - 1))) >> total_shift);
}
