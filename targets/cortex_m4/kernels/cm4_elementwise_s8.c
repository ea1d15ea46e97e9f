/* MUL and table activations, int8, for Cortex-M4 (DSP extension); build-time
 * side in cm4_elementwise.py (see docs/kernels.md, "MUL and table activations").
 *
 * MUL, bit-exact with tb_mul_s8 (TFLite's MulElementwise): per element
 * MultiplyByQuantizedMultiplier((a + oa) * (b + ob)) + zero point, clamped.
 * Four elements per step: one word of each operand, SXTAB16 adds the offset
 * to bytes 0/2 and 1/3 at once (two int16 lanes), SADD16 doubles one
 * operand's lanes, SMULBB/SMULTT make the four doubled products, and tb_rq's
 * fast exact requantization (SMMLAR on twice the product; the build proves it
 * equals the reference for every product the layer can make) replaces the
 * reference's 64-bit rounding. Forms (rq[0]): both operands the same shape;
 * one operand a per-channel vector [C] against [rows, C]; one a scalar.
 * Element i is written after element i of the full-size operand(s) was read,
 * so the output may overlap them at or below their start (overlap (None, 0)).
 *
 * Table activations (tb_lut_s8's layers, and MUL by a constant scalar): one
 * 256-entry table lookup per element, 16 per step. Byte loads and stores: per
 * element one LDRB of the input, one of the table and one STRB, the least a
 * lookup takes on this core (a word load needs an extraction per byte and a
 * word store three ORRs: one instruction more per word than four bytes). */
#include "tb_cm4.h"

/* rq words of tb_cm4_mul_s8 (cm4_elementwise.py MUL_RQ_*). */
enum { MUL_FORM, MUL_OA, MUL_OB, MUL_M, MUL_B, MUL_E, MUL_ACT_MIN, MUL_ACT_MAX, MUL_CHANNELS };
enum { MUL_SAME = 0, MUL_CHANNEL = 1, MUL_SCALAR = 2 };
#define MUL_FORM_MASK 3
#define MUL_SMALL_FIRST 4  /* the broadcast operand is the call's first one */
#define MUL_FULL_RANGE 8   /* act range is -128..127: one SSAT */

/* SMULBB / SMULTT / SMULTB: one halfword of a times one of b (GCC 12's
 * arm_acle.h has no intrinsic for them). */
#ifdef TB_CM4_DSP
#define TB_CM4_SMUL(NAME, INSN)                                          \
  TB_INLINE int32_t NAME(uint32_t a, uint32_t b) {                       \
    int32_t r;                                                           \
    __asm__(INSN " %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));              \
    return r;                                                            \
  }
TB_CM4_SMUL(mul_bb, "smulbb")
TB_CM4_SMUL(mul_tt, "smultt")
TB_CM4_SMUL(mul_tb, "smultb")
/* SADD16 x, x: both halfwords doubled (|x| <= 255 here: no wrap). */
TB_INLINE uint32_t twice16(uint32_t x) {
  uint32_t r;
  __asm__("sadd16 %0, %1, %1" : "=r"(r) : "r"(x));
  return r;
}
#else
TB_INLINE int32_t mul_bb(uint32_t a, uint32_t b) { return tb_lo16(a) * tb_lo16(b); }
TB_INLINE int32_t mul_tt(uint32_t a, uint32_t b) { return tb_hi16(a) * tb_hi16(b); }
TB_INLINE int32_t mul_tb(uint32_t a, uint32_t b) { return tb_hi16(a) * tb_lo16(b); }
TB_INLINE uint32_t twice16(uint32_t x) {
  return ((x << 1) & 0xFFFFu) | ((((x >> 16) << 1) & 0xFFFFu) << 16);
}
#endif

typedef struct {
  int32_t m, b, e, lo, hi;
} mul_rq;

/* One output byte from twice the product (one operand's lanes are doubled
 * once per word instead of each product: tb_rq's 2 * acc); `full` is a
 * compile-time constant at every call. */
TB_INLINE int8_t mul_out(int32_t product2, mul_rq q, int full) {
  const int32_t v = tb_asr(tb_smmlar(product2, q.m, q.b + tb_asr(product2, 31)), q.e);
  return (int8_t)(full ? tb_ssat8(v) : tb_clamp(v, q.lo, q.hi));
}

/* n elements of two full-size operands: 4 per step, then the tail. */
TB_INLINE void mul_run(const int8_t *a, const int8_t *b, int8_t *out, int32_t n, uint32_t oa2,
                       uint32_t ob2, mul_rq q, int full) {
  for (; n >= 4; n -= 4, a += 4, b += 4, out += 4) {
    const uint32_t va = tb_ld32(a), vb = tb_ld32(b);
    const uint32_t a02 = tb_sxtab16(oa2, va), a13 = tb_sxtab16_ror8(oa2, va);
    const uint32_t b02 = twice16(tb_sxtab16(ob2, vb)), b13 = twice16(tb_sxtab16_ror8(ob2, vb));
    out[0] = mul_out(mul_bb(a02, b02), q, full);
    out[1] = mul_out(mul_bb(a13, b13), q, full);
    out[2] = mul_out(mul_tt(a02, b02), q, full);
    out[3] = mul_out(mul_tt(a13, b13), q, full);
  }
  for (; n > 0; --n) {
    const int32_t oa = (int32_t)(int16_t)oa2, ob = (int32_t)(int16_t)ob2;
    *out++ = mul_out(2 * (*a++ + oa) * (*b++ + ob), q, full);
  }
}

/* n elements of a times one scalar (2 * (s + ob) in both halfwords of sb). */
TB_INLINE void mul_scalar_run(const int8_t *a, uint32_t sb, int8_t *out, int32_t n, uint32_t oa2,
                              mul_rq q, int full) {
  for (; n >= 4; n -= 4, a += 4, out += 4) {
    const uint32_t va = tb_ld32(a);
    const uint32_t a02 = tb_sxtab16(oa2, va), a13 = tb_sxtab16_ror8(oa2, va);
    out[0] = mul_out(mul_bb(a02, sb), q, full);
    out[1] = mul_out(mul_bb(a13, sb), q, full);
    out[2] = mul_out(mul_tb(a02, sb), q, full);
    out[3] = mul_out(mul_tb(a13, sb), q, full);
  }
  for (; n > 0; --n) *out++ = mul_out((*a++ + (int32_t)(int16_t)oa2) * (int32_t)(int16_t)sb, q, full);
}

/* [size / c, c] times [c]. A few channels are repeated in a stack buffer to
 * a run of up to MUL_REPEAT bytes, so each call of mul_run covers several
 * rows (a run per row of 2 channels cost 26 instructions per element, 10
 * with the buffer). */
#define MUL_REPEAT 64
TB_INLINE void mul_channels(const int8_t *a, const int8_t *b, int8_t *out, int32_t size, int32_t c,
                            uint32_t oa2, uint32_t ob2, mul_rq q, int full) {
  int8_t repeated[MUL_REPEAT] __attribute__((aligned(4)));
  const int32_t rows = size / c;
  int32_t run = c, done, r;
  if (rows > 1 && 2 * c <= MUL_REPEAT) {
    const int32_t copies = rows < MUL_REPEAT / c ? rows : MUL_REPEAT / c;
    run = copies * c;
    memcpy(repeated, b, (size_t)c);
    for (r = c; r < run; r *= 2) memcpy(repeated + r, repeated, (size_t)(2 * r <= run ? r : run - r));
    b = repeated;
  }
  for (done = 0; done + run <= size; done += run, a += run, out += run)
    mul_run(a, b, out, run, oa2, ob2, q, full);
  if (done < size) mul_run(a, b, out, size - done, oa2, ob2, q, full);
}

TB_INLINE void mul_form(const int32_t *rq, int32_t size, const int8_t *a, const int8_t *b,
                        int8_t *out, mul_rq q, int full) {
  const int32_t form = rq[MUL_FORM] & MUL_FORM_MASK;
  const uint32_t oa2 = tb_pkhbt16((uint32_t)rq[MUL_OA], (uint32_t)rq[MUL_OA]);
  const uint32_t ob2 = tb_pkhbt16((uint32_t)rq[MUL_OB], (uint32_t)rq[MUL_OB]);
  if (form == MUL_SAME) {
    mul_run(a, b, out, size, oa2, ob2, q, full);
  } else if (form == MUL_SCALAR) {
    const uint32_t s = (uint32_t)(2 * (b[0] + rq[MUL_OB]));
    mul_scalar_run(a, tb_pkhbt16(s, s), out, size, oa2, q, full);
  } else {
    mul_channels(a, b, out, size, rq[MUL_CHANNELS], oa2, ob2, q, full);
  }
}

/* a, b: the operands in call order (swapped here when the broadcast one comes
 * first); rq: see MUL_* above, offsets already in the swapped order. */
void tb_cm4_mul_s8(const tb_mul_params *p, const int8_t *a, const int8_t *b, const int32_t *rq,
                   int8_t *output) {
  const mul_rq q = {rq[MUL_M], rq[MUL_B], rq[MUL_E], rq[MUL_ACT_MIN], rq[MUL_ACT_MAX]};
  if (rq[MUL_FORM] & MUL_SMALL_FIRST) {
    const int8_t *t = a;
    a = b;
    b = t;
  }
  if (rq[MUL_FORM] & MUL_FULL_RANGE) mul_form(rq, p->size, a, b, output, q, 1);
  else mul_form(rq, p->size, a, b, output, q, 0);
}

/* GCC would merge the four byte stores of a group into one word store built
 * with BFI (six instructions instead of four STRB). */
#if defined(__GNUC__) && !defined(__clang__)
#define TB_NO_STORE_MERGING __attribute__((optimize("no-store-merging")))
#else
#define TB_NO_STORE_MERGING
#endif

/* Four lookups, read before written (LDRB, LDRB, STRB each). */
TB_INLINE void lut4(const uint8_t *in, const int8_t *lut, int8_t *out) {
  const int8_t v0 = lut[in[0]], v1 = lut[in[1]], v2 = lut[in[2]], v3 = lut[in[3]];
  out[0] = v0;
  out[1] = v1;
  out[2] = v2;
  out[3] = v3;
}

TB_NO_STORE_MERGING void tb_cm4_lut_s8(const tb_lut_params *p, const int8_t *input,
                                       const int8_t *lut, int8_t *output) {
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
