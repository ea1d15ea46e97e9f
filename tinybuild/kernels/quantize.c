/* QUANTIZE and DEQUANTIZE, bit-exact with TFLite's reference kernels:
 *  - float32 -> int: q = round_half_away(x / scale) in float32, + zero point,
 *    saturated (reference_ops::AffineQuantize);
 *  - int -> int: MultiplyByQuantizedMultiplier(x - in_zp) + out_zp, saturated
 *    (reference_ops::Requantize; the int8 <-> uint8 "xor 0x80" fast path
 *    gives the same bytes);
 *  - int -> float32: float(double(scale) * (x - zp)) (reference_ops::Dequantize).
 * Double arithmetic is correctly rounded everywhere (soft-float included), so
 * host and device agree byte for byte. */
#include "tb_kernels.h"

static int32_t tb_load(int32_t type, const void *data, int32_t i) {
  if (type == TB_DTYPE_UINT8) return ((const uint8_t *)data)[i];
  if (type == TB_DTYPE_INT16) return ((const int16_t *)data)[i];
  return ((const int8_t *)data)[i];
}

static void tb_store(int32_t type, void *data, int32_t i, int32_t v) {
  const int32_t lo = type == TB_DTYPE_UINT8 ? 0 : type == TB_DTYPE_INT16 ? -32768 : -128;
  const int32_t hi = type == TB_DTYPE_UINT8 ? 255 : type == TB_DTYPE_INT16 ? 32767 : 127;
  if (v < lo) v = lo;
  if (v > hi) v = hi;
  if (type == TB_DTYPE_UINT8) ((uint8_t *)data)[i] = (uint8_t)v;
  else if (type == TB_DTYPE_INT16) ((int16_t *)data)[i] = (int16_t)v;
  else ((int8_t *)data)[i] = (int8_t)v;
}

/* round_half_away(x / scale) + zero point. Beyond +-65536 every output type
 * saturates, so clamping first keeps the conversion to int defined. */
static int32_t tb_affine_quantize(float x, float scale, int32_t zero_point) {
  float v = x / scale;
  if (v > 65536.0f) v = 65536.0f;
  if (v < -65536.0f) v = -65536.0f;
  return tb_round_half_away((double)v) + zero_point;
}

void tb_quantize(const tb_quantize_params *p, const void *input, void *output) {
  int32_t i;
  for (i = 0; i < p->size; ++i) {
    int32_t q;
    if (p->in_type == TB_DTYPE_FLOAT32) {
      q = tb_affine_quantize(((const float *)input)[i], p->scale, p->output_zero_point);
    } else {
      q = tb_mul_by_quant_mul(tb_load(p->in_type, input, i) - p->input_zero_point,
                              p->requant.multiplier, p->requant.shift) + p->output_zero_point;
    }
    tb_store(p->out_type, output, i, q);
  }
}

void tb_dequantize(const tb_quantize_params *p, const void *input, float *output) {
  int32_t i;
  for (i = 0; i < p->size; ++i) {
    const int32_t v = tb_load(p->in_type, input, i) - p->input_zero_point;
    output[i] = (float)((double)p->scale * (double)v);
  }
}
