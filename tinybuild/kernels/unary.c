/* CAST, bit-exact with TFLite's cast.cc (copyCast) as built for x86-64, where
 * the host's validation runs it: the conversions the C++ leaves undefined
 * (float out of an int8's range) are written out as x86's cvttss2si does them. */
#include "tb_kernels.h"

static int32_t tb_cast_float_to_int(float f, int32_t out_type) {
  if (out_type == TB_DTYPE_INT32) {
    if (!(f <= 2147483520.0f)) return INT32_MAX;        /* nextafterf(2^31, 0); NaN too */
    return f < -2147483648.0f ? INT32_MIN : (int32_t)f;
  }
  if (out_type == TB_DTYPE_INT16 || out_type == TB_DTYPE_UINT8) {
    const float lo = out_type == TB_DTYPE_UINT8 ? 0.0f : -32768.0f;
    const float hi = out_type == TB_DTYPE_UINT8 ? 255.0f : 32767.0f;
    if (f != f) return 0;
    return (int32_t)(f < lo ? lo : f > hi ? hi : f);
  }
  /* int8: static_cast<int8_t>(float) is cvttss2si (int32, INT32_MIN outside) then the low byte */
  if (!(f > -2147483904.0f && f < 2147483648.0f)) return INT32_MIN;
  return (int32_t)f;
}

static void tb_cast_store_int(int32_t type, void *data, int32_t i, int32_t v) {
  if (type == TB_DTYPE_INT8) ((int8_t *)data)[i] = (int8_t)(uint8_t)((uint32_t)v & 0xffu);
  else if (type == TB_DTYPE_UINT8) ((uint8_t *)data)[i] = (uint8_t)((uint32_t)v & 0xffu);
  else if (type == TB_DTYPE_INT16) ((int16_t *)data)[i] = (int16_t)(uint16_t)((uint32_t)v & 0xffffu);
  else ((int32_t *)data)[i] = v;
}

static int32_t tb_cast_load_int(int32_t type, const void *data, int32_t i) {
  if (type == TB_DTYPE_INT8) return ((const int8_t *)data)[i];
  if (type == TB_DTYPE_UINT8) return ((const uint8_t *)data)[i];
  if (type == TB_DTYPE_INT16) return ((const int16_t *)data)[i];
  return ((const int32_t *)data)[i];
}

void tb_cast(const tb_cast_params *p, const void *input, void *output) {
  int32_t i;
  for (i = 0; i < p->size; ++i) {
    if (p->in_type == TB_DTYPE_FLOAT32) {
      const float f = ((const float *)input)[i];
      if (p->out_type == TB_DTYPE_FLOAT32) ((float *)output)[i] = f;
      else tb_cast_store_int(p->out_type, output, i, tb_cast_float_to_int(f, p->out_type));
    } else {
      const int32_t v = tb_cast_load_int(p->in_type, input, i);
      if (p->out_type == TB_DTYPE_FLOAT32) ((float *)output)[i] = (float)v;
      else tb_cast_store_int(p->out_type, output, i, v);
    }
  }
}

void tb_unary_f32(const tb_unary_f32_params *p, const float *input, float *output) {
  int32_t i;
  for (i = 0; i < p->size; ++i) {
    union {
      float f;
      uint32_t u;
    } v;
    v.f = input[i];
    v.u = p->negate ? v.u ^ 0x80000000u : v.u & 0x7fffffffu;
    output[i] = v.f;
  }
}

void tb_neg_s16(const tb_neg_s16_params *p, const int16_t *input, int16_t *output) {
  int32_t i;
  /* through uint16: the wrap of -(-32768) without a signed overflow */
  for (i = 0; i < p->size; ++i) output[i] = (int16_t)(uint16_t)(0u - (uint16_t)input[i]);
}
