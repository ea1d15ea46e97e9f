/* ADD (tinybuild/ops/add.py, add.c). */
#ifndef TB_ADD_H
#define TB_ADD_H
#include "tb_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int32_t size;
  int32_t input1_offset, input2_offset, output_offset;
  int32_t left_shift;
  tb_quant_mul input1, input2, output;
  int32_t act_min, act_max;
} tb_add_params;

void tb_add_s8(const tb_add_params *p, const int8_t *input1,
               const int8_t *input2, int8_t *output);

#ifdef __cplusplus
}
#endif
#endif
