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

/* int16 RESIZE_BILINEAR (16x8): the same tables, the blend in int64. */
void tb_resize_bilinear_s16(const tb_resize_params *p, const int16_t *input, const int32_t *rows,
                            const int32_t *cols, int16_t *output);

/* float32 RESIZE_BILINEAR (reference_ops::ResizeBilinear): rows[out_h][2] and
 * cols[out_w][2] hold (lower, upper) source indices, row_w[out_h][2] and
 * col_w[out_w][2] the float32 (d, 1 - d) the reference computes from the
 * position (d = position - lower); each output is
 * v00 * (1-dy) * (1-dx) + v10 * dy * (1-dx) + v01 * (1-dy) * dx + v11 * dy * dx
 * in that order. */
void tb_resize_bilinear_f32(const tb_resize_params *p, const float *input, const int32_t *rows,
                            const int32_t *cols, const float *row_w, const float *col_w,
                            float *output);

#ifdef __cplusplus
}
#endif
#endif
