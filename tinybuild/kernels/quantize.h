/* QUANTIZE and DEQUANTIZE (tinybuild/ops/quantize.py, quantize.c): the edges of
 * models with an int8 inside and a float32 or uint8 interface, and the
 * requantization between two integer quantizations. */
#ifndef TB_QUANTIZE_H
#define TB_QUANTIZE_H
#include "tb_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element types of the tensors the kernel reads and writes. */
#define TB_DTYPE_INT8 0
#define TB_DTYPE_UINT8 1
#define TB_DTYPE_INT16 2
#define TB_DTYPE_FLOAT32 3

typedef struct {
  int32_t size;                       /* elements */
  int32_t in_type, out_type;          /* TB_DTYPE_* */
  int32_t input_zero_point, output_zero_point;
  float scale;          /* from float32: the output's scale; DEQUANTIZE: the input's scale */
  tb_quant_mul requant; /* between integer types: input scale / output scale (QuantizeMultiplier) */
} tb_quantize_params;

/* QUANTIZE: float32 -> integer (reference_ops::AffineQuantize) or integer ->
 * integer (reference_ops::Requantize). */
void tb_quantize(const tb_quantize_params *p, const void *input, void *output);
/* DEQUANTIZE: integer -> float32 (reference_ops::Dequantize). */
void tb_dequantize(const tb_quantize_params *p, const void *input, float *output);

#ifdef __cplusplus
}
#endif
#endif
