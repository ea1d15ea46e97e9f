/* Reductions over any axes of an int8 tensor, bit-exact with the code paths
 * TF 2.21's reduce.cc runs under BUILTIN_REF (see tinybuild/ops/reduce.py).
 * Sums are int32, exact in any order, so each output is reduced at once
 * (TFLite's temp_sum buffer is not needed). */
#include "tb_kernels.h"

/* Step a row-major odometer over dims/strides; returns the offset change. */
static int32_t next_offset(int32_t rank, const int32_t *dims, const int32_t *strides,
                           int32_t *index) {
  int32_t d, delta = 0;
  for (d = rank - 1; d >= 0; --d) {
    delta += strides[d];
    if (++index[d] < dims[d]) return delta;
    delta -= strides[d] * dims[d];
    index[d] = 0;
  }
  return delta;
}

static int32_t clamp(int32_t v, int32_t lo, int32_t hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

/* Global pooling after merging: one reduced dim, a plain strided sum. */
static int32_t strided_sum(const int8_t *in, int32_t count, int32_t stride) {
  int32_t i, acc = 0;
  for (i = 0; i < count; ++i, in += stride) acc += *in;
  return acc;
}

/* The sum (mode SUM_U8: of the bytes as uint8) or the max/min of one output's
 * count input values, found at in[offsets of the inner walk]. */
static int32_t gather(const tb_reduce_params *p, const int8_t *in) {
  int32_t index[TB_REDUCE_MAX_DIMS] = {0};
  int32_t i, off = 0, acc = p->mode == TB_REDUCE_MAX || p->mode == TB_REDUCE_MIN ? in[0] : 0;
  if (p->mode == TB_REDUCE_MEAN && p->inner_rank == 1)
    return strided_sum(in, p->count, p->inner_strides[0]);
  for (i = 0; i < p->count; ++i) {
    const int32_t v = p->mode == TB_REDUCE_SUM_U8 ? (int32_t)(uint8_t)in[off] : in[off];
    if (p->mode == TB_REDUCE_MAX) acc = v > acc ? v : acc;
    else if (p->mode == TB_REDUCE_MIN) acc = v < acc ? v : acc;
    else acc += v;
    off += next_offset(p->inner_rank, p->inner_dims, p->inner_strides, index);
  }
  return acc;
}

static int8_t reduce_one(const tb_reduce_params *p, const int8_t *in) {
  const int32_t acc = gather(p, in);
  int32_t rescaled;
  if (p->mode == TB_REDUCE_MAX || p->mode == TB_REDUCE_MIN) return (int8_t)acc;
  rescaled = tb_mul_by_quant_mul(acc - p->input_zero_point * p->count, p->mul.multiplier,
                                 p->mul.shift) + p->output_zero_point;
  if (p->mode == TB_REDUCE_SUM_U8) return (int8_t)(uint8_t)clamp(rescaled, 0, 255);
  return (int8_t)clamp(rescaled, -128, 127);
}

void tb_reduce_s8(const tb_reduce_params *p, const int8_t *input, int8_t *output) {
  int32_t index[TB_REDUCE_MAX_DIMS] = {0};
  int32_t o, off = 0;
  for (o = 0; o < p->outputs; ++o) {
    output[o] = reduce_one(p, input + off);
    off += next_offset(p->outer_rank, p->outer_dims, p->outer_strides, index);
  }
}

/* int16: the int32 sum (or max/min) of one output's values, as gather(). */
static int32_t gather_s16(const tb_reduce_params *p, const int16_t *in) {
  int32_t index[TB_REDUCE_MAX_DIMS] = {0};
  int32_t i, off = 0, acc = p->mode == TB_REDUCE_MAX || p->mode == TB_REDUCE_MIN ? in[0] : 0;
  for (i = 0; i < p->count; ++i) {
    const int32_t v = in[off];
    if (p->mode == TB_REDUCE_MAX) acc = v > acc ? v : acc;
    else if (p->mode == TB_REDUCE_MIN) acc = v < acc ? v : acc;
    else acc += v;
    off += next_offset(p->inner_rank, p->inner_dims, p->inner_strides, index);
  }
  return acc;
}

void tb_reduce_s16(const tb_reduce_params *p, const int16_t *input, int16_t *output) {
  int32_t index[TB_REDUCE_MAX_DIMS] = {0};
  int32_t o, off = 0, acc;
  for (o = 0; o < p->outputs; ++o) {
    acc = gather_s16(p, input + off);
    if (p->mode == TB_REDUCE_MEAN) acc = tb_mul_by_quant_mul(acc, p->mul.multiplier, p->mul.shift);
    output[o] = (int16_t)clamp(acc, -32768, 32767);
    off += next_offset(p->outer_rank, p->outer_dims, p->outer_strides, index);
  }
}

/* float: reference_ops::Mean / ReduceSumImpl / ReduceMax / ReduceMin on one output. */
static float reduce_one_f32(const tb_reduce_params *p, const float *in) {
  int32_t index[TB_REDUCE_MAX_DIMS] = {0};
  int32_t i, off = 0;
  float acc = p->mode == TB_REDUCE_MAX ? -3.40282347e+38f
              : p->mode == TB_REDUCE_MIN ? 3.40282347e+38f : 0.0f;
  for (i = 0; i < p->count; ++i) {
    const float v = in[off];
    if (p->mode == TB_REDUCE_MAX) acc = v > acc ? v : acc;
    else if (p->mode == TB_REDUCE_MIN) acc = v < acc ? v : acc;
    else acc += v;
    off += next_offset(p->inner_rank, p->inner_dims, p->inner_strides, index);
  }
  return p->mode == TB_REDUCE_MEAN ? acc / (float)p->count : acc;
}

void tb_reduce_f32(const tb_reduce_params *p, const float *input, float *output) {
  int32_t index[TB_REDUCE_MAX_DIMS] = {0};
  int32_t o, off = 0;
  for (o = 0; o < p->outputs; ++o) {
    output[o] = reduce_one_f32(p, input + off);
    off += next_offset(p->outer_rank, p->outer_dims, p->outer_strides, index);
  }
}

/* Ties keep the first index (std::greater / std::less are strict). */
static int32_t arg_one(const tb_arg_params *p, const int8_t *in) {
  int32_t i, best = 0, value = in[0];
  for (i = 1; i < p->axis; ++i) {
    const int32_t v = in[i * p->inner];
    if (p->is_max ? v > value : v < value) {
      value = v;
      best = i;
    }
  }
  return best;
}

void tb_arg_min_max_s8(const tb_arg_params *p, const int8_t *input, void *output) {
  int32_t o, i;
  for (o = 0; o < p->outer; ++o) {
    for (i = 0; i < p->inner; ++i) {
      const int32_t at = o * p->inner + i;
      const int32_t best = arg_one(p, input + o * p->axis * p->inner + i);
      if (p->int64_output) ((int64_t *)output)[at] = best;
      else ((int32_t *)output)[at] = best;
    }
  }
}
