/* MUL and table activations, int8, for RV32IM; build-time side in
 * rv_elementwise.py (see docs/kernels.md, "MUL and table activations").
 *
 * MUL, bit-exact with tb_mul_s8 (TFLite's MulElementwise): the reference
 * spends about 35 instructions per element on MultiplyByQuantizedMultiplier's
 * 64-bit rounding; here the product times 4 goes through the fast exact form
 * tb_rv_requant_fast4 (MULH, six instructions; rv_elementwise.py proves it for
 * every product the layer can make). Forms (rq[0]): both operands the same
 * shape; one a per-channel vector [C] against [rows, C] (its values + offset,
 * times 4, computed once per call for up to MUL_CACHE channels); one a scalar.
 * Four elements per step. RV32IM has no byte-extract or pack instructions:
 * taking a byte out of a word costs one or two instructions (LB costs one)
 * and packing four into a word three each (SB costs one), so the operands are
 * read and written as bytes. Element i is written after element i of the
 * full-size operand(s) was read: the output may overlap them at or below
 * their start (overlap (None, 0)).
 *
 * Table activations (tb_lut_s8's layers, and MUL by a constant scalar): per
 * element LBU, ADD, LB, SB (four instructions: the least a lookup takes
 * here; words would need two per byte to extract and three to pack), 16 per
 * step so the loop's own work is shared. */
#include "tb_rv.h"

/* rq words of tb_rv_mul_s8 (rv_elementwise.py MUL_RQ_*). */
enum { MUL_FORM, MUL_OA, MUL_OB, MUL_M, MUL_C, MUL_E, MUL_ACT_MIN, MUL_ACT_MAX, MUL_CHANNELS };
enum { MUL_SAME = 0, MUL_CHANNEL = 1, MUL_SCALAR = 2 };
#define MUL_FORM_MASK 3
#define MUL_SMALL_FIRST 4 /* the broadcast operand is the call's first one */
#define MUL_CACHE 64      /* per-channel values kept on the stack (256 bytes) */

typedef struct {
  int32_t m, c, e, lo, hi;
} mul_rq;

static inline int8_t mul_out(int32_t product4, mul_rq q) {
  return (int8_t)tb_rv_clamp(tb_rv_requant_fast4(product4, q.m, q.c, q.e), q.lo, q.hi);
}

/* n elements of two full-size operands. */
static void mul_run(const int8_t *a, const int8_t *b, int8_t *out, int32_t n, int32_t oa,
                    int32_t ob, mul_rq q) {
  for (; n >= 4; n -= 4, a += 4, b += 4, out += 4) {
    const int32_t a0 = a[0] + oa, a1 = a[1] + oa, a2 = a[2] + oa, a3 = a[3] + oa;
    const int32_t b0 = b[0] + ob, b1 = b[1] + ob, b2 = b[2] + ob, b3 = b[3] + ob;
    out[0] = mul_out((a0 * b0) << 2, q);
    out[1] = mul_out((a1 * b1) << 2, q);
    out[2] = mul_out((a2 * b2) << 2, q);
    out[3] = mul_out((a3 * b3) << 2, q);
  }
  for (; n > 0; --n) *out++ = mul_out(((*a++ + oa) * (*b++ + ob)) << 2, q);
}

/* n elements of a times the values of s4 (4 * (b + ob)), s4 advancing by s_step (0 or 1). */
static void mul_cached_run(const int8_t *a, const int32_t *s4, int32_t s_step, int8_t *out,
                           int32_t n, int32_t oa, mul_rq q) {
  const int32_t s_step4 = 4 * s_step;
  for (; n >= 4; n -= 4, a += 4, s4 += s_step4, out += 4) {
    const int32_t a0 = a[0] + oa, a1 = a[1] + oa, a2 = a[2] + oa, a3 = a[3] + oa;
    out[0] = mul_out(a0 * s4[0], q);
    out[1] = mul_out(a1 * s4[s_step], q);
    out[2] = mul_out(a2 * s4[2 * s_step], q);
    out[3] = mul_out(a3 * s4[3 * s_step], q);
  }
  for (; n > 0; --n, s4 += s_step) *out++ = mul_out((*a++ + oa) * s4[0], q);
}

/* [size / c, c] times [c]. Up to MUL_CACHE channels: their values are
 * computed once, repeated to a run of up to MUL_CACHE values when there are
 * few, so each call of mul_cached_run covers several rows (a run per row of
 * 2 channels cost 45 instructions per element, 16 with the repeat). */
static void mul_channels(const int8_t *a, const int8_t *b, int8_t *out, int32_t size,
                         int32_t c, int32_t oa, int32_t ob, mul_rq q) {
  int32_t done;
  if (c <= MUL_CACHE) {
    const int32_t rows = size / c;
    const int32_t copies = rows < MUL_CACHE / c ? rows : MUL_CACHE / c, run = copies * c;
    int32_t s4[MUL_CACHE], k;
    for (k = 0; k < c; ++k) s4[k] = (b[k] + ob) << 2;
    for (k = c; k < run; ++k) s4[k] = s4[k - c];
    for (done = 0; done + run <= size; done += run, a += run, out += run)
      mul_cached_run(a, s4, 1, out, run, oa, q);
    if (done < size) mul_cached_run(a, s4, 1, out, size - done, oa, q);
    return;
  }
  for (done = 0; done < size; done += c, a += c, out += c) mul_run(a, b, out, c, oa, ob, q);
}

/* a, b: the operands in call order (swapped here when the broadcast one comes
 * first); rq: see MUL_* above, offsets already in the swapped order. */
void tb_rv_mul_s8(const tb_mul_params *p, const int8_t *a, const int8_t *b, const int32_t *rq,
                  int8_t *output) {
  const mul_rq q = {rq[MUL_M], rq[MUL_C], rq[MUL_E], rq[MUL_ACT_MIN], rq[MUL_ACT_MAX]};
  const int32_t form = rq[MUL_FORM] & MUL_FORM_MASK, oa = rq[MUL_OA], ob = rq[MUL_OB];
  if (rq[MUL_FORM] & MUL_SMALL_FIRST) {
    const int8_t *t = a;
    a = b;
    b = t;
  }
  if (form == MUL_SAME) {
    mul_run(a, b, output, p->size, oa, ob, q);
  } else if (form == MUL_SCALAR) {
    const int32_t s4 = (b[0] + ob) << 2;
    mul_cached_run(a, &s4, 0, output, p->size, oa, q);
  } else {
    mul_channels(a, b, output, p->size, rq[MUL_CHANNELS], oa, ob, q);
  }
}

/* Four lookups, read before written (LBU, ADD, LB, SB each). */
static inline void lut4(const uint8_t *in, const int8_t *lut, int8_t *out) {
  const int8_t v0 = lut[in[0]], v1 = lut[in[1]], v2 = lut[in[2]], v3 = lut[in[3]];
  out[0] = v0;
  out[1] = v1;
  out[2] = v2;
  out[3] = v3;
}

void tb_rv_lut_s8(const tb_lut_params *p, const int8_t *input, const int8_t *lut,
                  int8_t *output) {
  const uint8_t *in = (const uint8_t *)input;
  int32_t n = p->size;
  /* each group's inputs are read before its output is written: the output may
   * start at or below the input (in place) */
  for (; n >= 16; n -= 16, in += 16, output += 16) {
    lut4(in, lut, output);
    lut4(in + 4, lut, output + 4);
    lut4(in + 8, lut, output + 8);
    lut4(in + 12, lut, output + 12);
  }
  for (; n >= 4; n -= 4, in += 4, output += 4) lut4(in, lut, output);
  for (; n > 0; --n) *output++ = lut[*in++];
}
