/* CONV_2D 1x1, stride 1, unpadded, with few input channels (in_c 8, 16, 32, 64
 * or 128: VWW's 48x48x8 -> 16 ... 6x6x128 -> 128), for Cortex-M4 (DSP extension).
 *
 * Bit-exact with tb_conv2d_s8 (tflite::reference_integer_ops::ConvPerChannel).
 * Same build-time data as tb_cm4_conv2d_s8 (cm4_prepare.prepare_conv: the
 * filter stream of channel-pair records, K4/2 weight words then 8 int32
 * {M, B, e, 2*bias} per pair; the rq header; the scratch column of 4 pixels),
 * and the same 4 pixels x 2 channels register block (raw-B weight words:
 * TB_CM4_CONV_STEP4; a layer the build refused the raw form goes to
 * tb_cm4_conv2d_s8 like one without the fast requantization). What differs is the
 * fixed work per channel pair: with K = 8 a pair's multiply-adds take only 4
 * k-pairs (about 65 cycles), and the general kernel's state loads, computed
 * entry into its unrolled sweep, sweep-end test and requantization-form test
 * cost about 20 cycles more per pair (147 cycles per pair and block there,
 * 128 here). Here each (depth, form) pair is its own straight-line assembly
 * loop: no entry computation, no sweep test, the column pointer stays in a
 * register. One entry point per depth (tb_cm4_conv2d_1x1_k8_s8 ... k128): a
 * build links only the depths it uses (1.3 KB for K 8 up to 8.5 KB for K 128,
 * both forms).
 *
 * A layer whose requantization is not the fast form (prepare_conv decides
 * that after this kernel accepted the layer's shape) goes to tb_cm4_conv2d_s8
 * at run time, with the same tables.
 *
 * Writes happen per block of 4 pixels after the block's inputs were read, in
 * raster order, or in reverse block order when the output lies above the
 * input (rq[1]), as in tb_cm4_conv2d_s8: the same in-place overlaps hold.
 */
#include <stdint.h>
#include "tb_cm4.h"

#define TB_CM4_SK_FAST 1
#define TB_CM4_SK_FULLRANGE 2
#define TB_CM4_SK_NO_SIGN 8   /* the fast form without its sign term (cm4_prepare.conv_no_sign) */
#define TB_CM4_SK_RAW_B 16    /* raw-B weight words (cm4_prepare.conv_raw_b, TB_CM4_CONV_STEP4) */
#define TB_CM4_SK_PAIR_RQ 8   /* int32 words after each channel pair's weights */
#define TB_CM4_SK_BLOCK 4     /* output pixels per block */

#ifdef TB_CM4_DSP
/* State the loop keeps in memory (all 14 registers hold data). */
typedef struct {
  int8_t *o;               /* output of pixel 0, channel c */
  int32_t stride;          /* out_c */
  int32_t stride3;         /* 3 * out_c */
  const uint32_t *pw_end;  /* end of the records */
  uint32_t col;            /* the column (reloaded after the sign form used its register) */
} tb_cm4_sk_state;


#define TB_CM4_SK_STEPS_4 TB_CM4_CONV_STEP4(1) TB_CM4_CONV_STEP4(2) TB_CM4_CONV_STEP4(3)
#define TB_CM4_SK_STEPS_8 \
  TB_CM4_SK_STEPS_4 TB_CM4_CONV_STEP4(4) TB_CM4_CONV_STEP4(5) TB_CM4_CONV_STEP4(6) TB_CM4_CONV_STEP4(7)
#define TB_CM4_SK_STEPS_16                                                                   \
  TB_CM4_SK_STEPS_8 TB_CM4_CONV_STEP4(8) TB_CM4_CONV_STEP4(9) TB_CM4_CONV_STEP4(10) TB_CM4_CONV_STEP4(11)  \
  TB_CM4_CONV_STEP4(12) TB_CM4_CONV_STEP4(13) TB_CM4_CONV_STEP4(14) TB_CM4_CONV_STEP4(15)
#define TB_CM4_SK_STEPS_32                                                                   \
  TB_CM4_SK_STEPS_16 TB_CM4_CONV_STEP4(16) TB_CM4_CONV_STEP4(17) TB_CM4_CONV_STEP4(18)               \
  TB_CM4_CONV_STEP4(19) TB_CM4_CONV_STEP4(20) TB_CM4_CONV_STEP4(21) TB_CM4_CONV_STEP4(22)               \
  TB_CM4_CONV_STEP4(23) TB_CM4_CONV_STEP4(24) TB_CM4_CONV_STEP4(25) TB_CM4_CONV_STEP4(26)               \
  TB_CM4_CONV_STEP4(27) TB_CM4_CONV_STEP4(28) TB_CM4_CONV_STEP4(29) TB_CM4_CONV_STEP4(30)               \
  TB_CM4_CONV_STEP4(31)
#define TB_CM4_SK_STEPS_64 TB_CM4_SK_STEPS_32 TB_CM4_CONV_STEP4(32) TB_CM4_CONV_STEP4(33) TB_CM4_CONV_STEP4(34) TB_CM4_CONV_STEP4(35) TB_CM4_CONV_STEP4(36) TB_CM4_CONV_STEP4(37) TB_CM4_CONV_STEP4(38) TB_CM4_CONV_STEP4(39) TB_CM4_CONV_STEP4(40) TB_CM4_CONV_STEP4(41) TB_CM4_CONV_STEP4(42) TB_CM4_CONV_STEP4(43) TB_CM4_CONV_STEP4(44) TB_CM4_CONV_STEP4(45) TB_CM4_CONV_STEP4(46) TB_CM4_CONV_STEP4(47) TB_CM4_CONV_STEP4(48) TB_CM4_CONV_STEP4(49) TB_CM4_CONV_STEP4(50) TB_CM4_CONV_STEP4(51) TB_CM4_CONV_STEP4(52) TB_CM4_CONV_STEP4(53) TB_CM4_CONV_STEP4(54) TB_CM4_CONV_STEP4(55) TB_CM4_CONV_STEP4(56) TB_CM4_CONV_STEP4(57) TB_CM4_CONV_STEP4(58) TB_CM4_CONV_STEP4(59) TB_CM4_CONV_STEP4(60) TB_CM4_CONV_STEP4(61) TB_CM4_CONV_STEP4(62) TB_CM4_CONV_STEP4(63)

/* requantize one sum in place: xa = M, xb = B, wa = e, w = 2*bias; the sum
 * becomes t = 2*(sum + bias) with one ADD. Without the sign term no temporary
 * is needed; with it, px (the column pointer, reloaded afterwards). */
#define TB_CM4_SK_RQ(A)                                             \
  "add %[" #A "], %[w], %[" #A "], lsl #1\n\t"                      \
  "smmlar %[" #A "], %[" #A "], %[xa], %[xb]\n\t"                   \
  "asr %[" #A "], %[" #A "], %[wa]\n\t"                             \
  "ssat %[" #A "], #8, %[" #A "]\n\t"
#define TB_CM4_SK_RQ_SIGN(A)                                        \
  "add %[px], %[w], %[" #A "], lsl #1\n\t"                          \
  "add %[" #A "], %[xb], %[px], asr #31\n\t"                        \
  "smmlar %[" #A "], %[px], %[xa], %[" #A "]\n\t"                   \
  "asr %[" #A "], %[" #A "], %[wa]\n\t"                             \
  "ssat %[" #A "], #8, %[" #A "]\n\t"
/* channel c+1 (raw-word sums, TB_CM4_CONV_STEP4): A holds 256 times its sum
 * (b - a, taken before a is requantized): t = 2*bias + (A >> 7) */
#define TB_CM4_SK_RQB(A)                                            \
  "add %[" #A "], %[w], %[" #A "], asr #7\n\t"                      \
  "smmlar %[" #A "], %[" #A "], %[xa], %[xb]\n\t"                   \
  "asr %[" #A "], %[" #A "], %[wa]\n\t"                             \
  "ssat %[" #A "], #8, %[" #A "]\n\t"
#define TB_CM4_SK_RQB_SIGN(A)                                       \
  "add %[px], %[w], %[" #A "], asr #7\n\t"                          \
  "add %[" #A "], %[xb], %[px], asr #31\n\t"                        \
  "smmlar %[" #A "], %[px], %[xa], %[" #A "]\n\t"                   \
  "asr %[" #A "], %[" #A "], %[wa]\n\t"                             \
  "ssat %[" #A "], #8, %[" #A "]\n\t"

/* All channel pairs of one block: per pair, k-pair 0 with SMUAD (sets the 8
 * accumulators), the other NP - 1 k-pairs, the record's 8 requantization
 * words with two LDMs, one STRH per pixel for the channel pair. Inlined into
 * the kernel: st is then a local, its fields addressed from sp (every other
 * register is an operand). */
#define TB_CM4_SK_PAIRS(NAME, NP, STEPS, RQ, RQB, RELOAD_PX)                               \
  TB_INLINE void NAME(tb_cm4_sk_state *st, const uint32_t *rec, const uint32_t *col) {      \
    register uint32_t a0 __asm__("r0"), a1 __asm__("r1"), a2 __asm__("r2"),                 \
        a3 __asm__("r3");                                                                    \
    register uint32_t b0 __asm__("r4"), b1 __asm__("r5"), b2 __asm__("r6"),                 \
        b3 __asm__("r7");                                                                    \
    register uint32_t xa __asm__("r8"), xb __asm__("r9"), wa __asm__("r10"),                \
        w __asm__("r11");                                                                    \
    register uint32_t px __asm__("r12") = (uint32_t)col;                                     \
    register const uint32_t *pw __asm__("lr") = rec;                                         \
    __asm__ volatile(                                                                        \
        "1:\n\t"                                                                             \
        "ldr %[w], [%[pw]]\n\t"                                                              \
        "ldr %[a0], [%[px]]\n\t"                                                             \
        "ldr %[a1], [%[px], #4]\n\t"                                                         \
        "ldr %[a2], [%[px], #8]\n\t"                                                         \
        "ldr %[a3], [%[px], #12]\n\t"                                                        \
        "sxtb16 %[wa], %[w]\n\t"                                                             \
        "smuad %[b0], %[a0], %[w]\n\t"                                                       \
        "smuad %[a0], %[a0], %[wa]\n\t"                                                      \
        "smuad %[b1], %[a1], %[w]\n\t"                                                       \
        "smuad %[a1], %[a1], %[wa]\n\t"                                                      \
        "smuad %[b2], %[a2], %[w]\n\t"                                                       \
        "smuad %[a2], %[a2], %[wa]\n\t"                                                      \
        "smuad %[b3], %[a3], %[w]\n\t"                                                       \
        "smuad %[a3], %[a3], %[wa]\n\t"                                                      \
        STEPS                                                                                \
        "add %[pw], %[pw], #(4*" #NP ")\n\t"                                                 \
        "ldmia %[pw]!, {%[xa], %[xb], %[wa], %[w]}\n\t"                                      \
        "sub %[b0], %[b0], %[a0]\n\t"                                                        \
        "sub %[b1], %[b1], %[a1]\n\t"                                                        \
        "sub %[b2], %[b2], %[a2]\n\t"                                                        \
        "sub %[b3], %[b3], %[a3]\n\t"                                                        \
        RQ(a0) RQ(a1) RQ(a2) RQ(a3)                                                          \
        "ldmia %[pw]!, {%[xa], %[xb], %[wa], %[w]}\n\t"                                      \
        RQB(b0) RQB(b1) RQB(b2) RQB(b3)                                                      \
        "ldr %[xa], %[st_o]\n\t"                                                             \
        "ldr %[xb], %[st_stride]\n\t"                                                        \
        "ldr %[wa], %[st_stride3]\n\t"                                                       \
        "ldr %[w], %[st_pw_end]\n\t"                                                         \
        RELOAD_PX                                                                            \
        "bfi %[a0], %[b0], #8, #8\n\t"                                                       \
        "bfi %[a1], %[b1], #8, #8\n\t"                                                       \
        "bfi %[a2], %[b2], #8, #8\n\t"                                                       \
        "bfi %[a3], %[b3], #8, #8\n\t"                                                       \
        "strh %[a1], [%[xa], %[xb]]\n\t"                                                     \
        "strh %[a2], [%[xa], %[xb], lsl #1]\n\t"                                             \
        "strh %[a3], [%[xa], %[wa]]\n\t"                                                     \
        "strh %[a0], [%[xa]], #2\n\t"                                                        \
        "str %[xa], %[st_o]\n\t"                                                             \
        "cmp %[pw], %[w]\n\t"                                                                \
        "bne 1b\n\t"                                                                         \
        : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [b0] "=&r"(b0),    \
          [b1] "=&r"(b1), [b2] "=&r"(b2), [b3] "=&r"(b3), [xa] "=&r"(xa), [xb] "=&r"(xb),    \
          [wa] "=&r"(wa), [w] "=&r"(w), [px] "+r"(px), [pw] "+r"(pw), [st_o] "+m"(st->o)     \
        : [st_stride] "m"(st->stride), [st_stride3] "m"(st->stride3),                       \
          [st_pw_end] "m"(st->pw_end), [st_col] "m"(st->col)                                \
        : "cc", "memory");                                                                   \
  }

#define TB_CM4_SK_NO_RELOAD ""
#define TB_CM4_SK_RELOAD "ldr %[px], %[st_col]\n\t"
TB_CM4_SK_PAIRS(tb_cm4_sk_pairs4, 4, TB_CM4_SK_STEPS_4, TB_CM4_SK_RQ, TB_CM4_SK_RQB, TB_CM4_SK_NO_RELOAD)
TB_CM4_SK_PAIRS(tb_cm4_sk_pairs4_sign, 4, TB_CM4_SK_STEPS_4, TB_CM4_SK_RQ_SIGN, TB_CM4_SK_RQB_SIGN, TB_CM4_SK_RELOAD)
TB_CM4_SK_PAIRS(tb_cm4_sk_pairs8, 8, TB_CM4_SK_STEPS_8, TB_CM4_SK_RQ, TB_CM4_SK_RQB, TB_CM4_SK_NO_RELOAD)
TB_CM4_SK_PAIRS(tb_cm4_sk_pairs8_sign, 8, TB_CM4_SK_STEPS_8, TB_CM4_SK_RQ_SIGN, TB_CM4_SK_RQB_SIGN, TB_CM4_SK_RELOAD)
TB_CM4_SK_PAIRS(tb_cm4_sk_pairs16, 16, TB_CM4_SK_STEPS_16, TB_CM4_SK_RQ, TB_CM4_SK_RQB, TB_CM4_SK_NO_RELOAD)
TB_CM4_SK_PAIRS(tb_cm4_sk_pairs16_sign, 16, TB_CM4_SK_STEPS_16, TB_CM4_SK_RQ_SIGN, TB_CM4_SK_RQB_SIGN,
                TB_CM4_SK_RELOAD)
TB_CM4_SK_PAIRS(tb_cm4_sk_pairs32, 32, TB_CM4_SK_STEPS_32, TB_CM4_SK_RQ, TB_CM4_SK_RQB, TB_CM4_SK_NO_RELOAD)
TB_CM4_SK_PAIRS(tb_cm4_sk_pairs32_sign, 32, TB_CM4_SK_STEPS_32, TB_CM4_SK_RQ_SIGN, TB_CM4_SK_RQB_SIGN,
                TB_CM4_SK_RELOAD)
TB_CM4_SK_PAIRS(tb_cm4_sk_pairs64, 64, TB_CM4_SK_STEPS_64, TB_CM4_SK_RQ, TB_CM4_SK_RQB, TB_CM4_SK_NO_RELOAD)
TB_CM4_SK_PAIRS(tb_cm4_sk_pairs64_sign, 64, TB_CM4_SK_STEPS_64, TB_CM4_SK_RQ_SIGN, TB_CM4_SK_RQB_SIGN,
                TB_CM4_SK_RELOAD)
#else
/* Portable C: the same sums and the same requantization (with the sign term,
 * exact with or without TB_CM4_SK_NO_SIGN), for the host tests. */
static void tb_cm4_sk_pairs_c(const uint32_t *col, const uint32_t *rec, int32_t npairs,
                              int32_t out_c, int8_t *o) {
  int32_t c, j, q;
  for (c = 0; c < out_c; c += 2, rec += npairs + TB_CM4_SK_PAIR_RQ, o += 2) {
    const int32_t *r = (const int32_t *)(const void *)(rec + npairs);
    int32_t acc[2][TB_CM4_SK_BLOCK] = {{0}};
    for (j = 0; j < npairs; ++j) {
      const uint32_t wa = tb_sxtb16(rec[j]), wb = rec[j];   /* raw-B words */
      for (q = 0; q < TB_CM4_SK_BLOCK; ++q) {
        acc[0][q] = tb_smlad(col[TB_CM4_SK_BLOCK * j + q], wa, acc[0][q]);
        acc[1][q] = tb_smlad(col[TB_CM4_SK_BLOCK * j + q], wb, acc[1][q]);
      }
    }
    for (q = 0; q < TB_CM4_SK_BLOCK; ++q) {
      acc[1][q] = tb_asr((int32_t)((uint32_t)acc[1][q] - (uint32_t)acc[0][q]), 8);
      int32_t h;
      for (h = 0; h < 2; ++h) {
        const int32_t *rh = r + 4 * h;
        const int32_t t = (int32_t)((uint32_t)acc[h][q] * 2u + (uint32_t)rh[3]);
        o[q * out_c + h] =
            (int8_t)tb_ssat8(tb_asr(tb_smmlar(t, rh[0], rh[1] + tb_asr(t, 31)), rh[2]));
      }
    }
  }
}
#endif

/* The kernel for one input depth: a constant once inlined into its entry
 * point below, so each entry point holds only its depth's two loops (a build
 * links the depths its model uses). */
TB_INLINE void tb_cm4_sk_conv(const tb_conv_params *p, const int8_t *input, const int8_t *filter,
                              const int32_t *rq, int8_t *output, void *scratch,
                              const int32_t depth) {
  const int32_t out_c = p->out_c, npix = p->out_h * p->out_w;
  const int32_t flags = rq[0];
  const uint32_t off2 = ((uint32_t)p->input_offset & 0xFFFFu) * 0x10001u;
  const uint32_t *rec = (const uint32_t *)(const void *)filter;
  uint32_t *col = (uint32_t *)scratch;
  /* In place, the planner may put the output above the input: then the
   * blocks run from the last to the first (rq[1], as in tb_cm4_conv2d_s8). */
  const int backward = (intptr_t)(output - input) > (intptr_t)rq[1];
  const int32_t step = backward ? -TB_CM4_SK_BLOCK : TB_CM4_SK_BLOCK;
  int32_t p0;
#ifdef TB_CM4_DSP
  const int sign = !(flags & TB_CM4_SK_NO_SIGN);
  tb_cm4_sk_state st;
#endif
  if ((flags & ~TB_CM4_SK_NO_SIGN) != (TB_CM4_SK_FAST | TB_CM4_SK_FULLRANGE | TB_CM4_SK_RAW_B) ||
      p->in_c != depth || (out_c & 1) || (npix & 3) || npix == 0) {
    tb_cm4_conv2d_s8(p, input, filter, rq, output, scratch);
    return;
  }
#ifdef TB_CM4_DSP
  st.stride = out_c;
  st.stride3 = 3 * out_c;
  st.pw_end = rec + (out_c >> 1) * ((depth >> 1) + TB_CM4_SK_PAIR_RQ);
  st.col = (uint32_t)col;
#endif
  for (p0 = backward ? npix - TB_CM4_SK_BLOCK : 0; p0 >= 0 && p0 < npix; p0 += step) {
    tb_cm4_column4_1x1(input + p0 * depth, depth, off2, col);
#ifdef TB_CM4_DSP
    st.o = output + p0 * out_c;
    if (depth == 8) {
      if (sign) tb_cm4_sk_pairs4_sign(&st, rec, col);
      else tb_cm4_sk_pairs4(&st, rec, col);
    } else if (depth == 16) {
      if (sign) tb_cm4_sk_pairs8_sign(&st, rec, col);
      else tb_cm4_sk_pairs8(&st, rec, col);
    } else if (depth == 32) {
      if (sign) tb_cm4_sk_pairs16_sign(&st, rec, col);
      else tb_cm4_sk_pairs16(&st, rec, col);
    } else if (depth == 64) {
      if (sign) tb_cm4_sk_pairs32_sign(&st, rec, col);
      else tb_cm4_sk_pairs32(&st, rec, col);
    } else {
      if (sign) tb_cm4_sk_pairs64_sign(&st, rec, col);
      else tb_cm4_sk_pairs64(&st, rec, col);
    }
#else
    tb_cm4_sk_pairs_c(col, rec, depth >> 1, out_c, output + p0 * out_c);
#endif
  }
}

#define TB_CM4_SK_ENTRY(DEPTH)                                                              \
  void tb_cm4_conv2d_1x1_k##DEPTH##_s8(const tb_conv_params *p, const int8_t *input,        \
                                       const int8_t *filter, const int32_t *rq,             \
                                       int8_t *output, void *scratch) {                     \
    tb_cm4_sk_conv(p, input, filter, rq, output, scratch, DEPTH);                           \
  }
TB_CM4_SK_ENTRY(8)
TB_CM4_SK_ENTRY(16)
TB_CM4_SK_ENTRY(32)
TB_CM4_SK_ENTRY(64)
TB_CM4_SK_ENTRY(128)
