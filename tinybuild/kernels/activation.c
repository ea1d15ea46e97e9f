/* Every int8 -> int8 elementwise op is a function of one byte, so the host
 * evaluates TFLite's reference math (LOGISTIC/TANH/ELU: TFLite's own int8
 * lookup table; RELU*, LEAKY_RELU, HARD_SWISH, ABS, NEG, RSQRT: their integer
 * code) on all 256 values at build time (tinybuild/ops/activation.py) and the
 * device does one table load per element: bit-exact by construction. */
#include "tb_kernels.h"

void tb_lut_s8(const tb_lut_params *p, const int8_t *input, const int8_t *lut,
               int8_t *output) {
  int32_t i = 0;
  /* Four at a time (about half the instructions on Cortex-M4 and RV32). The
   * four inputs are read before any output is written, so an output placed
   * at or before its input (the planner's in-place rule) is still correct. */
  for (; i + 4 <= p->size; i += 4) {
    const int8_t a = lut[(uint8_t)input[i]], b = lut[(uint8_t)input[i + 1]];
    const int8_t c = lut[(uint8_t)input[i + 2]], d = lut[(uint8_t)input[i + 3]];
    output[i] = a;
    output[i + 1] = b;
    output[i + 2] = c;
    output[i + 3] = d;
  }
  for (; i < p->size; ++i) output[i] = lut[(uint8_t)input[i]];
}
