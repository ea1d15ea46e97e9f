/* Data movement (tinybuild/ops/movement.py, movement.c; GATHER: gather.py):
 * PAD, PADV2, CONCATENATION, SPLIT, SPLIT_V, PACK, UNPACK, STRIDED_SLICE,
 * SLICE, TRANSPOSE and FILL are all strided copies, described at build time
 * as rows of a constant table. Values are copied as they are (1, 2 or 4-byte
 * elements), as TFLite's reference kernels do. */
#ifndef TB_MOVEMENT_H
#define TB_MOVEMENT_H
#include "tb_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TB_MOVE_RANK 6
/* One table row (int32 each): source, output, source offset, output offset
 * (in elements), then dims[6], source strides[6], output strides[6]. */
#define TB_MOVE_ROW (4 + 3 * TB_MOVE_RANK)

typedef struct {
  int32_t elem_size;  /* bytes per element: 1, 2 or 4 */
  int32_t inputs;     /* activation sources (the first arguments) */
  int32_t consts;     /* constant sources (after the table) */
  int32_t copies;     /* rows in the table */
  int32_t fill_count; /* elements of output 0 set to fill first (PAD), 0: none */
  int32_t fill;       /* the fill value (int8/int16/int32 value; float32 bits) */
} tb_move_params;

/* tb_move(&params, input 0.., const int32_t *table, const source 0..,
 * output 0..): sources are numbered inputs first, then constants. int64
 * tensors are moved as pairs of int32 (the table says so). */
void tb_move(const tb_move_params *p, ...);

typedef struct {
  int32_t elem_size;      /* bytes per element of params and output: 1, 2 or 4 */
  int32_t indices_first;  /* 1: the call passes (indices, params), else (params, indices) */
  int32_t index_size;     /* bytes per index: 4 (int32) or 8 (int64) */
  int32_t batch;          /* product of the batch_dims leading dimensions */
  int32_t outer;          /* product of the dimensions between batch and axis */
  int32_t axis_size;      /* params' size along axis */
  int32_t inner;          /* elements after axis */
  int32_t coords;         /* indices per batch */
} tb_gather_params;

/* GATHER: output[b][o][i][inner] = params[b][o][indices[b][i]][inner]; an index
 * outside 0..axis_size-1 (TFLite: an error) gives zeros. */
void tb_gather(const tb_gather_params *p, const void *first, const void *second, void *output);
/* int64 params/outputs are moved as 8-byte elements (elem_size 8). */

#ifdef __cplusplus
}
#endif
#endif
