/* RESHAPE: a plain byte copy (no libc needed). */
#include "tb_kernels.h"

void tb_copy_s8(int32_t size, const int8_t *input, int8_t *output) {
  int32_t i;
  if (input == output) return;
  for (i = 0; i < size; ++i) output[i] = input[i];
}
