/* Every int8 -> int8 elementwise op is a function of one byte, so the host
 * evaluates TFLite's reference math (LOGISTIC/TANH/ELU: TFLite's own int8
 * lookup table; RELU*, LEAKY_RELU, HARD_SWISH, ABS, NEG, RSQRT: their integer
 * code) on all 256 values at build time (tinybuild/ops/activation.py) and the
 * device does one table load per element: bit-exact by construction. */
#include "tb_kernels.h"

void tb_lut_s8(const tb_lut_params *p, const int8_t *input, const int8_t *lut,
               int8_t *output) {
  int32_t i;
  for (i = 0; i < p->size; ++i) output[i] = lut[(uint8_t)input[i]];
}
