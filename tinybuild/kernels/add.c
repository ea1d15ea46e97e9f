/* ADD int8 (same shapes), matches TFLite's add.cc general 8-bit path
 * (reference AddElementwise): both inputs are shifted left by left_shift (20)
 * for headroom, rescaled to a common scale with multipliers < 1, summed, then
 * rescaled to the output. Every multiplier has shift <= 0 here, so
 * tb_mul_by_quant_mul equals MultiplyByQuantizedMultiplierSmallerThanOneExp. */
#include "tb_kernels.h"

void tb_add_s8(const tb_add_params *p, const int8_t *input1,
               const int8_t *input2, int8_t *output) {
  int32_t i;
  for (i = 0; i < p->size; ++i) {
    const int32_t v1 = p->input1_offset + input1[i];
    const int32_t v2 = p->input2_offset + input2[i];
    const int32_t s1 = tb_mul_by_quant_mul(v1 * ((int32_t)1 << p->left_shift),
                                           p->input1.multiplier, p->input1.shift);
    const int32_t s2 = tb_mul_by_quant_mul(v2 * ((int32_t)1 << p->left_shift),
                                           p->input2.multiplier, p->input2.shift);
    int32_t out = tb_mul_by_quant_mul(s1 + s2, p->output.multiplier, p->output.shift) +
                  p->output_offset;
    if (out < p->act_min) out = p->act_min;
    if (out > p->act_max) out = p->act_max;
    output[i] = (int8_t)out;
  }
}
