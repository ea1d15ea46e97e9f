/* RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR (tinybuild/ops/resize.py, resize.c). */
#ifndef TB_RESIZE_H
#define TB_RESIZE_H
#include "tb_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An [in_h][in_w][c] int8 image resized to [out_h][out_w][c]. The host
 * computes, per output row and column, the source indices (and bilinear
 * weights) exactly as TFLite does; the kernels only gather and blend. */
typedef struct {
  int32_t in_h, in_w, c, out_h, out_w;
} tb_resize_params;

/* rows[out_h], cols[out_w]: the source row / column of each output one. */
void tb_resize_nearest_s8(const tb_resize_params *p, const int8_t *input, const int32_t *rows,
                          const int32_t *cols, int8_t *output);

/* float32 and int16 RESIZE_NEAREST_NEIGHBOR: the same gather of 4- or 2-byte values. */
void tb_resize_nearest_f32(const tb_resize_params *p, const float *input, const int32_t *rows,
                           const int32_t *cols, float *output);
void tb_resize_nearest_s16(const tb_resize_params *p, const int16_t *input, const int32_t *rows,
                           const int32_t *cols, int16_t *output);

/* rows[out_h][3], cols[out_w][3]: (lower index, upper index, weight of the
 * upper one in 1/1024) as TFLite's ComputeInterpolationValuesInteger gives them. */
void tb_resize_bilinear_s8(const tb_resize_params *p, const int8_t *input, const int32_t *rows,
                           const int32_t *cols, int8_t *output);

#ifdef __cplusplus
}
#endif
#endif
