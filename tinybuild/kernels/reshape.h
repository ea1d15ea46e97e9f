/* RESHAPE (tinybuild/ops/reshape.py, reshape.c): views that move no data when the
 * planner aliases them, else one copy. */
#ifndef TB_RESHAPE_H
#define TB_RESHAPE_H
#include "tb_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int32_t bytes; /* the tensor's size in bytes */
} tb_copy_params;

/* The view ops' copy, in the generated calls' convention (params, input, output). */
void tb_copy(const tb_copy_params *p, const void *input, void *output);

/* A plain byte copy (no libc needed). */
void tb_copy_s8(int32_t size, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif
#endif
