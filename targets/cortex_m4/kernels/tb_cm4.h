/* tinybuild's Cortex-M4 int8 kernels: DSP-extension intrinsics and the kernels' entry points.
 *
 * On a core with the DSP extension (__ARM_FEATURE_DSP: Cortex-M4/M7/M33...) the
 * helpers below are single instructions (ACLE from arm_acle.h, or one line of
 * inline assembly where GCC 12 has no intrinsic or does not fold the rotation).
 * Everywhere else (the host, for the tests) they are portable C99 that computes
 * exactly what the instruction computes, including its wrap-around: the same
 * kernel source runs in the simulator and natively, and the tests compare both
 * with the reference kernels byte for byte.
 *
 * Data layouts the kernels rely on are produced at build time by
 * targets/cortex_m4/kernels/cm4_prepare.py (see docs/kernels.md).
 */
#ifndef TB_CM4_H
#define TB_CM4_H
#include <stdint.h>
#include <string.h>
#include "tb_kernels.h"

#if defined(__ARM_FEATURE_DSP) && !defined(TB_CM4_PORTABLE)
#define TB_CM4_DSP 1
#include <arm_acle.h>
#endif

#define TB_INLINE static inline __attribute__((always_inline))

/* ---- unaligned-safe 32-bit load/store (one LDR/STR on the M4) ---------- */
TB_INLINE uint32_t tb_ld32(const void *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
TB_INLINE void tb_st32(void *p, uint32_t v) { memcpy(p, &v, 4); }

#ifdef TB_CM4_DSP
/* SXTB16: sign-extend bytes 0 and 2 into the two halfwords. */
TB_INLINE uint32_t tb_sxtb16(uint32_t x) { return (uint32_t)__sxtb16((int8x4_t)x); }
/* SXTB16 with ROR #8: bytes 1 and 3. */
TB_INLINE uint32_t tb_sxtb16_ror8(uint32_t x) {
  uint32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}
/* SXTAB16: a's halfwords plus sign-extended bytes 0 and 2 of x (mod 2^16). */
TB_INLINE uint32_t tb_sxtab16(uint32_t a, uint32_t x) {
  return (uint32_t)__sxtab16((int16x2_t)a, (int8x4_t)x);
}
TB_INLINE uint32_t tb_sxtab16_ror8(uint32_t a, uint32_t x) {
  uint32_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
  return r;
}
/* SMLAD: acc + lo(a)*lo(b) + hi(a)*hi(b), wrapping mod 2^32. */
TB_INLINE int32_t tb_smlad(uint32_t a, uint32_t b, int32_t acc) {
  return __smlad((int16x2_t)a, (int16x2_t)b, acc);
}
/* SMLABB / SMLABT / SMLATB / SMLATT: acc + half(a)*half(b). */
TB_INLINE int32_t tb_smlabb(uint32_t a, uint32_t b, int32_t acc) {
  return __smlabb((int32_t)a, (int32_t)b, acc);
}
TB_INLINE int32_t tb_smlabt(uint32_t a, uint32_t b, int32_t acc) {
  int32_t r;
  __asm__("smlabt %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
  return r;
}
TB_INLINE int32_t tb_smlatb(uint32_t a, uint32_t b, int32_t acc) {
  return __smlatb((int32_t)a, (int32_t)b, acc);
}
TB_INLINE int32_t tb_smlatt(uint32_t a, uint32_t b, int32_t acc) {
  return __smlatt((int32_t)a, (int32_t)b, acc);
}
/* SMMLAR: (acc * 2^32 + a * b + 2^31) >> 32, the rounded high word. */
TB_INLINE int32_t tb_smmlar(int32_t a, int32_t b, int32_t acc) {
  int32_t r;
  __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
  return r;
}
/* SSAT #8 / USAT #8 */
TB_INLINE int32_t tb_ssat8(int32_t x) { return __ssat(x, 8); }
/* PKHBT: low half of a, high half of (b << 16). */
TB_INLINE uint32_t tb_pkhbt16(uint32_t a, uint32_t b) {
  uint32_t r;
  __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
/* PKHTB: high half of a, low half of (b >> 16). */
TB_INLINE uint32_t tb_pkhtb16(uint32_t a, uint32_t b) {
  uint32_t r;
  __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
#else /* portable C: exactly what the instructions compute */
TB_INLINE uint32_t tb_sxtb16(uint32_t x) {
  uint32_t lo = (uint32_t)(int32_t)(int8_t)(x & 0xFFu) & 0xFFFFu;
  uint32_t hi = (uint32_t)(int32_t)(int8_t)((x >> 16) & 0xFFu) & 0xFFFFu;
  return lo | (hi << 16);
}
TB_INLINE uint32_t tb_sxtb16_ror8(uint32_t x) { return tb_sxtb16((x >> 8) | (x << 24)); }
TB_INLINE uint32_t tb_sxtab16(uint32_t a, uint32_t x) {
  uint32_t e = tb_sxtb16(x);
  uint32_t lo = ((a & 0xFFFFu) + (e & 0xFFFFu)) & 0xFFFFu;
  uint32_t hi = ((a >> 16) + (e >> 16)) & 0xFFFFu;
  return lo | (hi << 16);
}
TB_INLINE uint32_t tb_sxtab16_ror8(uint32_t a, uint32_t x) {
  return tb_sxtab16(a, (x >> 8) | (x << 24));
}
TB_INLINE int32_t tb_lo16(uint32_t a) { return (int32_t)(int16_t)(a & 0xFFFFu); }
TB_INLINE int32_t tb_hi16(uint32_t a) { return (int32_t)(int16_t)(a >> 16); }
TB_INLINE int32_t tb_smlad(uint32_t a, uint32_t b, int32_t acc) {
  uint32_t s = (uint32_t)acc + (uint32_t)(tb_lo16(a) * tb_lo16(b)) +
               (uint32_t)(tb_hi16(a) * tb_hi16(b));
  return (int32_t)s;
}
TB_INLINE int32_t tb_smlabb(uint32_t a, uint32_t b, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(tb_lo16(a) * tb_lo16(b)));
}
TB_INLINE int32_t tb_smlabt(uint32_t a, uint32_t b, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(tb_lo16(a) * tb_hi16(b)));
}
TB_INLINE int32_t tb_smlatb(uint32_t a, uint32_t b, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(tb_hi16(a) * tb_lo16(b)));
}
TB_INLINE int32_t tb_smlatt(uint32_t a, uint32_t b, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(tb_hi16(a) * tb_hi16(b)));
}
TB_INLINE int32_t tb_smmlar(int32_t a, int32_t b, int32_t acc) {
  /* (acc << 32) + a*b + 2^31, bits 63..32, all mod 2^64 */
  uint64_t v = ((uint64_t)(uint32_t)acc << 32) + (uint64_t)((int64_t)a * (int64_t)b) +
               (uint64_t)0x80000000u;
  return (int32_t)(uint32_t)(v >> 32);
}
TB_INLINE int32_t tb_ssat8(int32_t x) { return x < -128 ? -128 : (x > 127 ? 127 : x); }
TB_INLINE uint32_t tb_pkhbt16(uint32_t a, uint32_t b) { return (a & 0xFFFFu) | (b << 16); }
TB_INLINE uint32_t tb_pkhtb16(uint32_t a, uint32_t b) { return (a & 0xFFFF0000u) | (b >> 16); }
#endif

/* Arithmetic shift right for a signed value (GCC/Clang: arithmetic). */
TB_INLINE int32_t tb_asr(int32_t x, int32_t n) { return x >> n; }

/* ---- requantization, the fast exact form ------------------------------------
 * TFLite's MultiplyByQuantizedMultiplier with a right shift e >= 1, plus the
 * output zero point, equals for any int32 acc with |2*acc| < 2^31:
 *     SMMLAR(2*acc, M, B + (acc >> 31)) >> e,   B = 2^(e-1) + zp * 2^e
 * (tinybuild.quant.fast_requant derives it and decides per layer when it
 * holds; the rq table holds {M, B, e} per output channel). */
TB_INLINE int32_t tb_rq(int32_t acc, int32_t m, int32_t b, int32_t e) {
  return tb_asr(tb_smmlar(acc * 2, m, b + tb_asr(acc, 31)), e);
}

/* Clamp to the fused activation range; full int8 range is one SSAT. */
TB_INLINE int32_t tb_clamp(int32_t v, int32_t lo, int32_t hi) {
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
}

/* ---- kernels (same order of arguments as the reference ones, then build-time
 * tables, then the output, then the scratch buffer the planner reserved) ---- */
void tb_cm4_conv2d_s8(const tb_conv_params *p, const int8_t *input, const int8_t *filter,
                      const int32_t *rq, int8_t *output, void *scratch);
/* 1x1 stride 1 unpadded, in_c 8, 16, 32, 64, 128 (others go to tb_cm4_conv2d_s8); same tables */
#define TB_CM4_CONV_1X1_DECL(DEPTH)                                                        \
  void tb_cm4_conv2d_1x1_k##DEPTH##_s8(const tb_conv_params *p, const int8_t *input,       \
                                       const int8_t *filter, const int32_t *rq,            \
                                       int8_t *output, void *scratch);
TB_CM4_CONV_1X1_DECL(8)
TB_CM4_CONV_1X1_DECL(16)
TB_CM4_CONV_1X1_DECL(32)
TB_CM4_CONV_1X1_DECL(64)
TB_CM4_CONV_1X1_DECL(128)
void tb_cm4_depthwise_conv2d_s8(const tb_conv_params *p, const int8_t *input,
                                const int16_t *filter, const int32_t *rq, int8_t *output,
                                void *scratch);
void tb_cm4_fully_connected_s8(const tb_fc_params *p, const int8_t *input,
                               const int8_t *weights, const int32_t *rq, const double *real_mul,
                               int8_t *output, void *scratch);
void tb_cm4_avg_pool2d_s8(const tb_pool_params *p, const int8_t *input, int8_t *output);
void tb_cm4_add_s8(const tb_add_params *p, const int8_t *input1, const int8_t *input2,
                   const int32_t *rq, int8_t *output);

/* One k-pair step of the convolutions' 4 pixels x 2 channels block (the
 * general kernel's sweep and the small-K kernels' loops): k-pair k's weight
 * word times the column's 4 pixel words, channel c with its SXTB16 (bytes 0
 * and 2), channel c+1 with the raw word (cm4_prepare.conv_raw_b: its int16
 * halfwords are 256 * w[c+1] + w[c], so b - a is 256 times channel c+1's sum);
 * 5 loads in two pipelined runs, 1 SXTB16, 8 SMLAD: 16 cycles per 16 MACs,
 * 14 instructions (56 bytes). Operands: w, wa, xa, xb, pw (weights), px
 * (column), a0..a3 / b0..b3 (accumulators). */
/* ... and the step for weights without the raw-B form: both channels split by
 * SXTB16 / SXTB16 ROR 8, 2 SXTB16, 17 cycles, 60 bytes. */
#define TB_CM4_CONV_STEP4_SPLIT(k)                             \
  "ldr.w %[w], [%[pw], #(4*" #k ")]\n\t"                       \
  "ldr.w %[xa], [%[px], #(16*" #k ")]\n\t"                     \
  "ldr.w %[xb], [%[px], #(16*" #k "+4)]\n\t"                   \
  "sxtb16 %[wa], %[w]\n\t"                                     \
  "sxtb16 %[w], %[w], ror #8\n\t"                              \
  "smlad %[a0], %[xa], %[wa], %[a0]\n\t"                       \
  "smlad %[b0], %[xa], %[w], %[b0]\n\t"                        \
  "smlad %[a1], %[xb], %[wa], %[a1]\n\t"                       \
  "smlad %[b1], %[xb], %[w], %[b1]\n\t"                        \
  "ldr.w %[xa], [%[px], #(16*" #k "+8)]\n\t"                   \
  "ldr.w %[xb], [%[px], #(16*" #k "+12)]\n\t"                  \
  "smlad %[a2], %[xa], %[wa], %[a2]\n\t"                       \
  "smlad %[b2], %[xa], %[w], %[b2]\n\t"                        \
  "smlad %[a3], %[xb], %[wa], %[a3]\n\t"                       \
  "smlad %[b3], %[xb], %[w], %[b3]\n\t"
#define TB_CM4_CONV_STEP_BYTES_SPLIT 60
#define TB_CM4_CONV_STEP_BYTES 56
#define TB_CM4_CONV_STEP4(k)                                   \
  "ldr.w %[w], [%[pw], #(4*" #k ")]\n\t"                       \
  "ldr.w %[xa], [%[px], #(16*" #k ")]\n\t"                     \
  "ldr.w %[xb], [%[px], #(16*" #k "+4)]\n\t"                   \
  "sxtb16 %[wa], %[w]\n\t"                                     \
  "smlad %[a0], %[xa], %[wa], %[a0]\n\t"                       \
  "smlad %[b0], %[xa], %[w], %[b0]\n\t"                        \
  "smlad %[a1], %[xb], %[wa], %[a1]\n\t"                       \
  "smlad %[b1], %[xb], %[w], %[b1]\n\t"                        \
  "ldr.w %[xa], [%[px], #(16*" #k "+8)]\n\t"                   \
  "ldr.w %[xb], [%[px], #(16*" #k "+12)]\n\t"                  \
  "smlad %[a2], %[xa], %[wa], %[a2]\n\t"                       \
  "smlad %[b2], %[xa], %[w], %[b2]\n\t"                        \
  "smlad %[a3], %[xb], %[wa], %[a3]\n\t"                       \
  "smlad %[b3], %[xb], %[w], %[b3]\n\t"

/* Channel c+1's raw-B sums (b0..b3: 256 * S_c+1 + S_c) less channel c's
 * (a0..a3): 256 * S_c+1. */
#define TB_CM4_RAW_B_SUMS                                                   \
  "sub %[b0], %[b0], %[a0]\n\t"                                             \
  "sub %[b1], %[b1], %[a1]\n\t"                                             \
  "sub %[b2], %[b2], %[a2]\n\t"                                             \
  "sub %[b3], %[b3], %[a3]\n\t"

/* What the 4 pixels x 2 channels raw-B blocks with their column on the stack
 * share (the 1x1 small-K kernels' blocks and runs, the rows9 blocks): a frame
 * of 4 words at sp + AT (an assembler expression): o, stride, 3 * stride, the
 * end of the records; per channel pair, after its k-pairs, each channel's
 * {M, B, e, 2*bias} by one LDM into x0..x3, its 4 sums requantized, then one
 * STRH per pixel. Requantize one sum in place: t = 2 * (sum + bias) with one
 * ADD (SH: lsl #1, or asr #7 for channel c+1, 256 times its sum); with the
 * sign term w (free after the steps) holds t. */
#define TB_CM4_STACK_RQ(A, SH)                                              \
  "add %[" #A "], %[x3], %[" #A "], " SH "\n\t"                             \
  "smmlar %[" #A "], %[" #A "], %[x0], %[x1]\n\t"                           \
  "asr %[" #A "], %[" #A "], %[x2]\n\t"                                     \
  "ssat %[" #A "], #8, %[" #A "]\n\t"
#define TB_CM4_STACK_RQ_SIGN(A, SH)                                         \
  "add %[w], %[x3], %[" #A "], " SH "\n\t"                                  \
  "add %[" #A "], %[x1], %[w], asr #31\n\t"                                 \
  "smmlar %[" #A "], %[w], %[x0], %[" #A "]\n\t"                            \
  "asr %[" #A "], %[" #A "], %[x2]\n\t"                                     \
  "ssat %[" #A "], #8, %[" #A "]\n\t"
/* the frame from a0 = o, a1 = stride (left as 3 * stride), a2 = the end */
#define TB_CM4_STACK_FRAME(AT)                                              \
  "str %[a0], [sp, #(" AT ")]\n\t"                                          \
  "str %[a1], [sp, #(" AT "+4)]\n\t"                                        \
  "add %[a1], %[a1], %[a1], lsl #1\n\t"                                     \
  "str %[a1], [sp, #(" AT "+8)]\n\t"                                        \
  "str %[a2], [sp, #(" AT "+12)]\n\t"
/* each pixel's two outputs with one STRH, o advanced, the next pair (label 1)
 * unless the records end */
#define TB_CM4_STACK_STORE(AT)                                              \
  "ldr %[x0], [sp, #(" AT ")]\n\t"                                          \
  "ldr %[x1], [sp, #(" AT "+4)]\n\t"                                        \
  "ldr %[x2], [sp, #(" AT "+8)]\n\t"                                        \
  "ldr %[x3], [sp, #(" AT "+12)]\n\t"                                       \
  "bfi %[a0], %[b0], #8, #8\n\t"                                            \
  "bfi %[a1], %[b1], #8, #8\n\t"                                            \
  "bfi %[a2], %[b2], #8, #8\n\t"                                            \
  "bfi %[a3], %[b3], #8, #8\n\t"                                            \
  "strh %[a1], [%[x0], %[x1]]\n\t"                                          \
  "strh %[a2], [%[x0], %[x1], lsl #1]\n\t"                                  \
  "strh %[a3], [%[x0], %[x2]]\n\t"                                          \
  "strh %[a0], [%[x0]], #2\n\t"                                             \
  "str %[x0], [sp, #(" AT ")]\n\t"                                          \
  "cmp %[pw], %[x3]\n\t"                                                    \
  "bne 1b\n\t"
/* both channels' requantizations (RQ: TB_CM4_STACK_RQ or _SIGN; the record's
 * first 4 words loaded), then the store */
#define TB_CM4_STACK_RQ_STORE(RQ, AT)                                       \
  RQ(a0, "lsl #1") RQ(a1, "lsl #1") RQ(a2, "lsl #1") RQ(a3, "lsl #1")       \
  "ldmia %[pw]!, {%[x0], %[x1], %[x2], %[x3]}\n\t"                          \
  RQ(b0, "asr #7") RQ(b1, "asr #7") RQ(b2, "asr #7") RQ(b3, "asr #7")       \
  TB_CM4_STACK_STORE(AT)
/* after the pair's NP k-pairs (pw at its record's start) */
#define TB_CM4_STACK_PAIR_END(NP, RQ, AT)                                   \
  "add %[pw], %[pw], #(4*" #NP ")\n\t"                                      \
  "ldmia %[pw]!, {%[x0], %[x1], %[x2], %[x3]}\n\t"                          \
  TB_CM4_RAW_B_SUMS                                                         \
  TB_CM4_STACK_RQ_STORE(RQ, AT)

/* The int16 column of 4 consecutive pixels of a 1x1 stride-1 convolution
 * (in_c a multiple of 4) starting at b, input offset added (off2 = offset in
 * both halves): channel pair j of pixel q at word 4*j + q, per group of 4
 * channels 4 loads and 8 stores. */
TB_INLINE void tb_cm4_column4_1x1(const int8_t *b, int32_t in_c, uint32_t off2, uint32_t *dst) {
  const int8_t *const end = b + in_c;
  const int32_t in_c2 = 2 * in_c, in_c3 = 3 * in_c;
  for (; b != end; b += 4, dst += 8) {
    const uint32_t v0 = tb_ld32(b), v1 = tb_ld32(b + in_c);
    const uint32_t v2 = tb_ld32(b + in_c2), v3 = tb_ld32(b + in_c3);
    dst[0] = tb_sxtab16(off2, v0);
    dst[1] = tb_sxtab16(off2, v1);
    dst[2] = tb_sxtab16(off2, v2);
    dst[3] = tb_sxtab16(off2, v3);
    dst[4] = tb_sxtab16_ror8(off2, v0);
    dst[5] = tb_sxtab16_ror8(off2, v1);
    dst[6] = tb_sxtab16_ror8(off2, v2);
    dst[7] = tb_sxtab16_ror8(off2, v3);
  }
}

#endif
