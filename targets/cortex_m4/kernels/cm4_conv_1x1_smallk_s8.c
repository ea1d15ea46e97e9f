/* CONV_2D 1x1, unpadded, with few input channels (in_c 8, 16, 32, 64, 128 or 256:
 * VWW's 48x48x8 -> 16 ... 3x3x256 -> 256, KWS's 25x5x64, ResNet-8's stride-2
 * shortcuts), for Cortex-M4 (DSP extension).
 *
 * Bit-exact with tb_conv2d_s8 (tflite::reference_integer_ops::ConvPerChannel).
 * Same build-time data as tb_cm4_conv2d_s8 (cm4_prepare.prepare_conv: the
 * filter stream of channel-pair records, K4/2 raw-B weight words then 8 int32
 * {M, B, e, 2*bias} per pair; the rq header), and the same 4 pixels x 2
 * channels register block. What differs: the fixed work per channel pair
 * (each (depth, form) pair is its own straight-line assembly loop: no computed
 * entry, no sweep test) and the column, which lives on the stack (see
 * TB_CM4_SK_BLOCK_FN): 15 cycles per 16 MACs instead of 16. Each of the
 * block's 4 pixels has its own pointer, so any stride works; a last block of
 * 2-3 pixels runs as one more block into the scratch, 1 pixel by 4 channel pairs per pass
 * (tb_cm4_sk_tail). One entry point per
 * depth, tb_cm4_conv2d_1x1_any_k<D>_s8 (cm4_conv_1x1.py), and
 * tb_cm4_conv2d_1x1_k<D>_s8 (stride 1, whole blocks: cm4_prepare.smallk_kernel),
 * a jump to it: a build links only the depths it uses (1.7 KB for K 8 up to
 * 12.3 KB for K 128, both forms).
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
/* The column lives on the stack, addressed from sp: the channel-pair loop then
 * has 13 registers beside its 8 accumulators and the weight pointer, so a
 * step loads its weight word and the 4 pixel words in one pipelined run
 * (6 cycles), runs the 4 raw-word SMLADs, widens the weight word in place with
 * one SXTB16 and runs the other 4: 15 cycles per 16 MACs (16 with the column
 * in a register-addressed buffer, whose pointer leaves 4 registers: two runs of
 * loads). One assembly block per block of 4 pixels: it lowers sp by the
 * column and 4 state words (so an interrupt's stacking lands below them),
 * builds the column, runs every channel pair and restores sp. Frame: column
 * (8 * depth bytes: k-pair j of pixel q at word 4j + q), then o, stride,
 * 3 * stride, end of the records. */
/* Column group g (input channels 4g..4g+3) of the 4 pixels at B0 + O0 ...
 * B3 + O3: 4 pipelined loads, 8 SXTAB16 (offset added), 8 stores. */
#define TB_CM4_SK_COL(g, B0, O0, B1, O1, B2, O2, B3, O3)                                      \
  "ldr %[a0], [%[" #B0 "], #(4*" #g "+" #O0 ")]\n\t"                                         \
  "ldr %[a1], [%[" #B1 "], #(4*" #g "+" #O1 ")]\n\t"                                         \
  "ldr %[a2], [%[" #B2 "], #(4*" #g "+" #O2 ")]\n\t"                                         \
  "ldr %[a3], [%[" #B3 "], #(4*" #g "+" #O3 ")]\n\t"                                         \
  "sxtab16 %[b0], %[w], %[a0]\n\t"                                                           \
  "sxtab16 %[b1], %[w], %[a1]\n\t"                                                           \
  "sxtab16 %[b2], %[w], %[a2]\n\t"                                                           \
  "sxtab16 %[b3], %[w], %[a3]\n\t"                                                           \
  "sxtab16 %[a0], %[w], %[a0], ror #8\n\t"                                                   \
  "sxtab16 %[a1], %[w], %[a1], ror #8\n\t"                                                   \
  "sxtab16 %[a2], %[w], %[a2], ror #8\n\t"                                                   \
  "sxtab16 %[a3], %[w], %[a3], ror #8\n\t"                                                   \
  "str %[b0], [sp, #(32*" #g ")]\n\t"                                                        \
  "str %[b1], [sp, #(32*" #g "+4)]\n\t"                                                      \
  "str %[b2], [sp, #(32*" #g "+8)]\n\t"                                                      \
  "str %[b3], [sp, #(32*" #g "+12)]\n\t"                                                     \
  "str %[a0], [sp, #(32*" #g "+16)]\n\t"                                                     \
  "str %[a1], [sp, #(32*" #g "+20)]\n\t"                                                     \
  "str %[a2], [sp, #(32*" #g "+24)]\n\t"                                                     \
  "str %[a3], [sp, #(32*" #g "+28)]\n\t"
/* each pixel has its own pointer x0..x3 */
#define TB_CM4_SK_COLS(g, D) TB_CM4_SK_COL(g, x0, 0, x1, 0, x2, 0, x3, 0)

/* k-pair k of a channel pair: b (channel c+1, raw word) first, then a
 * (channel c, the word widened in place). OP: smuad for k = 0 (sets the sums). */
#define TB_CM4_SK_LOADS(k)                                                                   \
  "ldr %[w], [%[pw], #(4*" #k ")]\n\t"                                                       \
  "ldr %[x0], [sp, #(16*" #k ")]\n\t"                                                        \
  "ldr %[x1], [sp, #(16*" #k "+4)]\n\t"                                                      \
  "ldr %[x2], [sp, #(16*" #k "+8)]\n\t"                                                      \
  "ldr %[x3], [sp, #(16*" #k "+12)]\n\t"
#define TB_CM4_SK_FIRST                                                                      \
  TB_CM4_SK_LOADS(0)                                                                         \
  "smuad %[b0], %[x0], %[w]\n\t"                                                             \
  "smuad %[b1], %[x1], %[w]\n\t"                                                             \
  "smuad %[b2], %[x2], %[w]\n\t"                                                             \
  "smuad %[b3], %[x3], %[w]\n\t"                                                             \
  "sxtb16 %[w], %[w]\n\t"                                                                    \
  "smuad %[a0], %[x0], %[w]\n\t"                                                             \
  "smuad %[a1], %[x1], %[w]\n\t"                                                             \
  "smuad %[a2], %[x2], %[w]\n\t"                                                             \
  "smuad %[a3], %[x3], %[w]\n\t"
#define TB_CM4_SK_STEP(k)                                                                    \
  TB_CM4_SK_LOADS(k)                                                                         \
  "smlad %[b0], %[x0], %[w], %[b0]\n\t"                                                      \
  "smlad %[b1], %[x1], %[w], %[b1]\n\t"                                                      \
  "smlad %[b2], %[x2], %[w], %[b2]\n\t"                                                      \
  "smlad %[b3], %[x3], %[w], %[b3]\n\t"                                                      \
  "sxtb16 %[w], %[w]\n\t"                                                                    \
  "smlad %[a0], %[x0], %[w], %[a0]\n\t"                                                      \
  "smlad %[a1], %[x1], %[w], %[a1]\n\t"                                                      \
  "smlad %[a2], %[x2], %[w], %[a2]\n\t"                                                      \
  "smlad %[a3], %[x3], %[w], %[a3]\n\t"

/* columns: depth / 4 groups of G = TB_CM4_SK_COLS */
#define TB_CM4_SK_COLS_8(G) G(0, 8) G(1, 8)
#define TB_CM4_SK_COLS_16(G) G(0, 16) G(1, 16) G(2, 16) G(3, 16)
#define TB_CM4_SK_COLS_32(G) \
  G(0, 32) G(1, 32) G(2, 32) G(3, 32) G(4, 32) G(5, 32) G(6, 32) G(7, 32)
#define TB_CM4_SK_COLS_64(G)                                                                 \
  G(0, 64) G(1, 64) G(2, 64) G(3, 64) G(4, 64) G(5, 64) G(6, 64) G(7, 64) G(8, 64) G(9, 64)  \
  G(10, 64) G(11, 64) G(12, 64) G(13, 64) G(14, 64) G(15, 64)
#define TB_CM4_SK_COLS_128(G)                                                                \
  G(0, 128) G(1, 128) G(2, 128) G(3, 128) G(4, 128) G(5, 128) G(6, 128) G(7, 128) G(8, 128)  \
  G(9, 128) G(10, 128) G(11, 128) G(12, 128) G(13, 128) G(14, 128) G(15, 128) G(16, 128)     \
  G(17, 128) G(18, 128) G(19, 128) G(20, 128) G(21, 128) G(22, 128) G(23, 128) G(24, 128)    \
  G(25, 128) G(26, 128) G(27, 128) G(28, 128) G(29, 128) G(30, 128) G(31, 128)
/* steps 1 .. NP - 1 (k-pairs) */
#define TB_CM4_SK_STEPS_4 TB_CM4_SK_STEP(1) TB_CM4_SK_STEP(2) TB_CM4_SK_STEP(3)
#define TB_CM4_SK_STEPS_8                                                                    \
  TB_CM4_SK_STEPS_4 TB_CM4_SK_STEP(4) TB_CM4_SK_STEP(5) TB_CM4_SK_STEP(6) TB_CM4_SK_STEP(7)
#define TB_CM4_SK_STEPS_16                                                                   \
  TB_CM4_SK_STEPS_8 TB_CM4_SK_STEP(8) TB_CM4_SK_STEP(9) TB_CM4_SK_STEP(10) TB_CM4_SK_STEP(11) \
  TB_CM4_SK_STEP(12) TB_CM4_SK_STEP(13) TB_CM4_SK_STEP(14) TB_CM4_SK_STEP(15)
#define TB_CM4_SK_STEPS_16_31                                                                \
  TB_CM4_SK_STEP(16) TB_CM4_SK_STEP(17) TB_CM4_SK_STEP(18) TB_CM4_SK_STEP(19)                 \
  TB_CM4_SK_STEP(20) TB_CM4_SK_STEP(21) TB_CM4_SK_STEP(22) TB_CM4_SK_STEP(23)                 \
  TB_CM4_SK_STEP(24) TB_CM4_SK_STEP(25) TB_CM4_SK_STEP(26) TB_CM4_SK_STEP(27)                 \
  TB_CM4_SK_STEP(28) TB_CM4_SK_STEP(29) TB_CM4_SK_STEP(30) TB_CM4_SK_STEP(31)
#define TB_CM4_SK_STEPS_32 TB_CM4_SK_STEPS_16 TB_CM4_SK_STEPS_16_31
#define TB_CM4_SK_STEPS_32_63                                                                \
  TB_CM4_SK_STEP(32) TB_CM4_SK_STEP(33) TB_CM4_SK_STEP(34) TB_CM4_SK_STEP(35)                 \
  TB_CM4_SK_STEP(36) TB_CM4_SK_STEP(37) TB_CM4_SK_STEP(38) TB_CM4_SK_STEP(39)                 \
  TB_CM4_SK_STEP(40) TB_CM4_SK_STEP(41) TB_CM4_SK_STEP(42) TB_CM4_SK_STEP(43)                 \
  TB_CM4_SK_STEP(44) TB_CM4_SK_STEP(45) TB_CM4_SK_STEP(46) TB_CM4_SK_STEP(47)                 \
  TB_CM4_SK_STEP(48) TB_CM4_SK_STEP(49) TB_CM4_SK_STEP(50) TB_CM4_SK_STEP(51)                 \
  TB_CM4_SK_STEP(52) TB_CM4_SK_STEP(53) TB_CM4_SK_STEP(54) TB_CM4_SK_STEP(55)                 \
  TB_CM4_SK_STEP(56) TB_CM4_SK_STEP(57) TB_CM4_SK_STEP(58) TB_CM4_SK_STEP(59)                 \
  TB_CM4_SK_STEP(60) TB_CM4_SK_STEP(61) TB_CM4_SK_STEP(62) TB_CM4_SK_STEP(63)
#define TB_CM4_SK_STEPS_64 TB_CM4_SK_STEPS_32 TB_CM4_SK_STEPS_32_63
#define TB_CM4_SK_STEPS_64_127 \
  TB_CM4_SK_STEP(64) TB_CM4_SK_STEP(65) TB_CM4_SK_STEP(66) TB_CM4_SK_STEP(67) \
  TB_CM4_SK_STEP(68) TB_CM4_SK_STEP(69) TB_CM4_SK_STEP(70) TB_CM4_SK_STEP(71) \
  TB_CM4_SK_STEP(72) TB_CM4_SK_STEP(73) TB_CM4_SK_STEP(74) TB_CM4_SK_STEP(75) \
  TB_CM4_SK_STEP(76) TB_CM4_SK_STEP(77) TB_CM4_SK_STEP(78) TB_CM4_SK_STEP(79) \
  TB_CM4_SK_STEP(80) TB_CM4_SK_STEP(81) TB_CM4_SK_STEP(82) TB_CM4_SK_STEP(83) \
  TB_CM4_SK_STEP(84) TB_CM4_SK_STEP(85) TB_CM4_SK_STEP(86) TB_CM4_SK_STEP(87) \
  TB_CM4_SK_STEP(88) TB_CM4_SK_STEP(89) TB_CM4_SK_STEP(90) TB_CM4_SK_STEP(91) \
  TB_CM4_SK_STEP(92) TB_CM4_SK_STEP(93) TB_CM4_SK_STEP(94) TB_CM4_SK_STEP(95) \
  TB_CM4_SK_STEP(96) TB_CM4_SK_STEP(97) TB_CM4_SK_STEP(98) TB_CM4_SK_STEP(99) \
  TB_CM4_SK_STEP(100) TB_CM4_SK_STEP(101) TB_CM4_SK_STEP(102) TB_CM4_SK_STEP(103) \
  TB_CM4_SK_STEP(104) TB_CM4_SK_STEP(105) TB_CM4_SK_STEP(106) TB_CM4_SK_STEP(107) \
  TB_CM4_SK_STEP(108) TB_CM4_SK_STEP(109) TB_CM4_SK_STEP(110) TB_CM4_SK_STEP(111) \
  TB_CM4_SK_STEP(112) TB_CM4_SK_STEP(113) TB_CM4_SK_STEP(114) TB_CM4_SK_STEP(115) \
  TB_CM4_SK_STEP(116) TB_CM4_SK_STEP(117) TB_CM4_SK_STEP(118) TB_CM4_SK_STEP(119) \
  TB_CM4_SK_STEP(120) TB_CM4_SK_STEP(121) TB_CM4_SK_STEP(122) TB_CM4_SK_STEP(123) \
  TB_CM4_SK_STEP(124) TB_CM4_SK_STEP(125) TB_CM4_SK_STEP(126) TB_CM4_SK_STEP(127)
#define TB_CM4_SK_STEPS_128 TB_CM4_SK_STEPS_64 TB_CM4_SK_STEPS_64_127

/* Every channel pair of a block (label 1): its NP k-pairs, then the record's
 * requantization and the store (RQ: TB_CM4_STACK_RQ or _SIGN). The frame's 4
 * words (TB_CM4_STACK_FRAME) lie above the column, 8 * DEPTH bytes above sp. */
#define TB_CM4_SK_PAIRS(DEPTH, NP, STEPS, RQ)                                                \
        "1:\n\t"                                                                             \
        TB_CM4_SK_FIRST                                                                      \
        STEPS                                                                                \
        TB_CM4_STACK_PAIR_END(NP, RQ, "8*" #DEPTH)

/* One block of 4 pixels (input pixels q0..q3, output o): the frame, the
 * column, every channel pair (TB_CM4_SK_PAIRS). */
#define TB_CM4_SK_BLOCK_FN(NAME, DEPTH, NP, COLS, STEPS, RQ)                                 \
  TB_INLINE void NAME(const int8_t *q0, const int8_t *q1, const int8_t *q2, const int8_t *q3, \
                      uint32_t off2, int8_t *o, int32_t stride, const uint32_t *rec,         \
                      const uint32_t *rec_end) {                                              \
    register uint32_t a0 __asm__("r0") = (uint32_t)o, a1 __asm__("r1") = (uint32_t)stride,  \
        a2 __asm__("r2") = (uint32_t)rec_end, a3 __asm__("r3");                              \
    register uint32_t b0 __asm__("r4"), b1 __asm__("r5"), b2 __asm__("r6"),                 \
        b3 __asm__("r7");                                                                    \
    register uint32_t x0 __asm__("r8") = (uint32_t)q0, x1 __asm__("r9") = (uint32_t)q1,     \
        x2 __asm__("r10") = (uint32_t)q2, x3 __asm__("r11") = (uint32_t)q3;                  \
    register uint32_t w __asm__("r12") = off2;                                               \
    register const uint32_t *pw __asm__("lr") = rec;                                         \
    __asm__ volatile(                                                                        \
        "sub sp, sp, #(8*" #DEPTH "+16)\n\t"                                                 \
        TB_CM4_STACK_FRAME("8*" #DEPTH)                                                      \
        COLS                                                                                 \
        TB_CM4_SK_PAIRS(DEPTH, NP, STEPS, RQ)                                                \
        "add sp, sp, #(8*" #DEPTH "+16)\n\t"                                                 \
        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "=&r"(a3), [b0] "=&r"(b0),       \
          [b1] "=&r"(b1), [b2] "=&r"(b2), [b3] "=&r"(b3), [x0] "+r"(x0), [x1] "+r"(x1),      \
          [x2] "+r"(x2), [x3] "+r"(x3), [w] "+r"(w), [pw] "+r"(pw)                          \
        :                                                                                    \
        : "cc", "memory");                                                                   \
  }
/* Per depth: without and with the sign term. */
#define TB_CM4_SK_DEPTH(D, NP, STEPS)                                                         \
  TB_CM4_SK_BLOCK_FN(tb_cm4_sk_block##D, D, NP, TB_CM4_SK_COLS_##D(TB_CM4_SK_COLS), STEPS,     \
                     TB_CM4_STACK_RQ)                                                        \
  TB_CM4_SK_BLOCK_FN(tb_cm4_sk_block##D##_sign, D, NP, TB_CM4_SK_COLS_##D(TB_CM4_SK_COLS),     \
                     STEPS, TB_CM4_STACK_RQ_SIGN)
TB_CM4_SK_DEPTH(8, 4, TB_CM4_SK_STEPS_4)
TB_CM4_SK_DEPTH(16, 8, TB_CM4_SK_STEPS_8)
TB_CM4_SK_DEPTH(32, 16, TB_CM4_SK_STEPS_16)
TB_CM4_SK_DEPTH(64, 32, TB_CM4_SK_STEPS_32)
TB_CM4_SK_DEPTH(128, 64, TB_CM4_SK_STEPS_64)

/* K 256 (VWW's 3x3x256 -> 256): the same pair loop, its 128 steps once for both
 * requantization forms (a test of the frame's sign word per pair, 4 cycles in
 * about 2,000) and the column built by a loop, group by group from the last,
 * each group's 8 words with one PUSH (26 cycles per group, 21 unrolled: 1% of a
 * block), 7 KB instead of 2 x 11. Frame above the 2 KB column: o, stride,
 * 3 * stride, end of the records, sign, the records' start (the loop's index
 * borrows its register). */
TB_INLINE void tb_cm4_sk_block256(const int8_t *q0, const int8_t *q1, const int8_t *q2,
                                  const int8_t *q3, uint32_t off2, int8_t *o, int32_t stride,
                                  const uint32_t *rec, const uint32_t *rec_end, int sign) {
  register uint32_t a0 __asm__("r0") = (uint32_t)o, a1 __asm__("r1") = (uint32_t)stride,
      a2 __asm__("r2") = (uint32_t)rec_end, a3 __asm__("r3") = (uint32_t)sign;
  register uint32_t b0 __asm__("r4"), b1 __asm__("r5"), b2 __asm__("r6"), b3 __asm__("r7");
  register uint32_t x0 __asm__("r8") = (uint32_t)q0, x1 __asm__("r9") = (uint32_t)q1,
      x2 __asm__("r10") = (uint32_t)q2, x3 __asm__("r11") = (uint32_t)q3;
  register uint32_t w __asm__("r12") = off2;
  register const uint32_t *pw __asm__("lr") = rec;
  __asm__ volatile(
      "sub sp, sp, #24\n\t"
      TB_CM4_STACK_FRAME("0")
      "str %[a3], [sp, #16]\n\t"
      "str %[pw], [sp, #20]\n\t"
      "mov %[pw], #(256-4)\n\t"
      "2:\n\t"
      "ldr %[b0], [%[x0], %[pw]]\n\t"
      "ldr %[b1], [%[x1], %[pw]]\n\t"
      "ldr %[b2], [%[x2], %[pw]]\n\t"
      "ldr %[b3], [%[x3], %[pw]]\n\t"
      "sxtab16 %[a0], %[w], %[b0]\n\t"
      "sxtab16 %[a1], %[w], %[b1]\n\t"
      "sxtab16 %[a2], %[w], %[b2]\n\t"
      "sxtab16 %[a3], %[w], %[b3]\n\t"
      "sxtab16 %[b0], %[w], %[b0], ror #8\n\t"
      "sxtab16 %[b1], %[w], %[b1], ror #8\n\t"
      "sxtab16 %[b2], %[w], %[b2], ror #8\n\t"
      "sxtab16 %[b3], %[w], %[b3], ror #8\n\t"
      "push {%[a0], %[a1], %[a2], %[a3], %[b0], %[b1], %[b2], %[b3]}\n\t"
      "subs %[pw], %[pw], #4\n\t"
      "bpl 2b\n\t"
      "ldr %[pw], [sp, #(8*256+20)]\n\t"
      "1:\n\t"
      TB_CM4_SK_FIRST
      TB_CM4_SK_STEPS_128
      "add %[pw], %[pw], #(4*128)\n\t"
      "ldr %[w], [sp, #(8*256+16)]\n\t"
      "ldmia %[pw]!, {%[x0], %[x1], %[x2], %[x3]}\n\t"
      TB_CM4_RAW_B_SUMS
      "cmp %[w], #0\n\t"
      "bne 3f\n\t"
      TB_CM4_STACK_RQ_STORE(TB_CM4_STACK_RQ, "8*256")
      "b 4f\n\t"
      "3:\n\t"
      TB_CM4_STACK_RQ_STORE(TB_CM4_STACK_RQ_SIGN, "8*256")
      "4:\n\t"
      "add sp, sp, #(8*256+24)\n\t"
      : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [b0] "=&r"(b0),
        [b1] "=&r"(b1), [b2] "=&r"(b2), [b3] "=&r"(b3), [x0] "+r"(x0), [x1] "+r"(x1),
        [x2] "+r"(x2), [x3] "+r"(x3), [w] "+r"(w), [pw] "+r"(pw)
      :
      : "cc", "memory");
}

/* K <= 64, stride 1: a run of consecutive blocks in one assembly block (the C
 * loop around a block cost about 50 cycles per block: the asm takes every
 * register, so its state went through memory; VWW's 48x48x8 -> 16 has 576
 * blocks of 8 channel pairs). The frame adds the block step: o's adjustment
 * (the pair loop leaves o out_c past the block's first pixel), the block's
 * input q, its step dq (+-4 * depth: backward in place), the end q_end, the
 * records' start and off2; the 4 pixels are at q + j * depth (immediate
 * offsets, one base). About 15 cycles per block. */
#define TB_CM4_SK_COLS1(g, D) TB_CM4_SK_COL(g, x0, 0, x0, D, x0, 2*D, x0, 3*D)
#define TB_CM4_SK_RUN_FN(NAME, DEPTH, NP, COLS, STEPS, RQ)                                   \
  TB_INLINE void NAME(const int8_t *q, const int8_t *q_end, int32_t dq, int8_t *o,          \
                      int32_t stride, int32_t adjust, const uint32_t *rec,                  \
                      const uint32_t *rec_end, uint32_t off2) {                             \
    register uint32_t a0 __asm__("r0") = (uint32_t)o, a1 __asm__("r1") = (uint32_t)stride,  \
        a2 __asm__("r2") = (uint32_t)rec_end, a3 __asm__("r3") = (uint32_t)adjust;          \
    register uint32_t b0 __asm__("r4") = (uint32_t)dq, b1 __asm__("r5") = (uint32_t)q_end,  \
        b2 __asm__("r6"), b3 __asm__("r7");                                                  \
    register uint32_t x0 __asm__("r8") = (uint32_t)q, x1 __asm__("r9"), x2 __asm__("r10"),  \
        x3 __asm__("r11");                                                                   \
    register uint32_t w __asm__("r12") = off2;                                               \
    register const uint32_t *pw __asm__("lr") = rec;                                         \
    __asm__ volatile(                                                                        \
        "sub sp, sp, #(8*" #DEPTH "+40)\n\t"                                                 \
        TB_CM4_STACK_FRAME("8*" #DEPTH)                                                      \
        "str %[a3], [sp, #(8*" #DEPTH "+16)]\n\t"                                            \
        "str %[x0], [sp, #(8*" #DEPTH "+20)]\n\t"                                            \
        "str %[b0], [sp, #(8*" #DEPTH "+24)]\n\t"                                            \
        "str %[b1], [sp, #(8*" #DEPTH "+28)]\n\t"                                            \
        "str %[pw], [sp, #(8*" #DEPTH "+32)]\n\t"                                            \
        "str %[w], [sp, #(8*" #DEPTH "+36)]\n\t"                                             \
        "5:\n\t"                                                                             \
        COLS                                                                                 \
        TB_CM4_SK_PAIRS(DEPTH, NP, STEPS, RQ)                                                \
        "ldr %[x1], [sp, #(8*" #DEPTH "+16)]\n\t"                                            \
        "ldr %[x2], [sp, #(8*" #DEPTH "+20)]\n\t"                                            \
        "ldr %[x3], [sp, #(8*" #DEPTH "+24)]\n\t"                                            \
        "ldr %[a0], [sp, #(8*" #DEPTH "+28)]\n\t"                                            \
        "ldr %[pw], [sp, #(8*" #DEPTH "+32)]\n\t"                                            \
        "ldr %[w], [sp, #(8*" #DEPTH "+36)]\n\t"                                             \
        "add %[x0], %[x0], %[x1]\n\t"                                                        \
        "str %[x0], [sp, #(8*" #DEPTH ")]\n\t"                                               \
        "add %[x0], %[x2], %[x3]\n\t"                                                        \
        "str %[x0], [sp, #(8*" #DEPTH "+20)]\n\t"                                            \
        "cmp %[x0], %[a0]\n\t"                                                               \
        "bne 5b\n\t"                                                                         \
        "add sp, sp, #(8*" #DEPTH "+40)\n\t"                                                 \
        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [b0] "+r"(b0),         \
          [b1] "+r"(b1), [b2] "=&r"(b2), [b3] "=&r"(b3), [x0] "+r"(x0), [x1] "=&r"(x1),      \
          [x2] "=&r"(x2), [x3] "=&r"(x3), [w] "+r"(w), [pw] "+r"(pw)                        \
        :                                                                                    \
        : "cc", "memory");                                                                   \
  }
#define TB_CM4_SK_RUN_DEPTH(D, NP, STEPS)                                                     \
  TB_CM4_SK_RUN_FN(tb_cm4_sk_run##D, D, NP, TB_CM4_SK_COLS_##D(TB_CM4_SK_COLS1), STEPS,        \
                   TB_CM4_STACK_RQ)                                                          \
  TB_CM4_SK_RUN_FN(tb_cm4_sk_run##D##_sign, D, NP, TB_CM4_SK_COLS_##D(TB_CM4_SK_COLS1), STEPS, \
                   TB_CM4_STACK_RQ_SIGN)
TB_CM4_SK_RUN_DEPTH(8, 4, TB_CM4_SK_STEPS_4)
TB_CM4_SK_RUN_DEPTH(16, 8, TB_CM4_SK_STEPS_8)
TB_CM4_SK_RUN_DEPTH(32, 16, TB_CM4_SK_STEPS_16)
TB_CM4_SK_RUN_DEPTH(64, 32, TB_CM4_SK_STEPS_32)
/* Runs from the stride-1 entry up to K 64 (it holds only runs: no more flash;
 * K 128 would add 12 KB beside VWW's any_k128), not from the any entry (it would
 * hold both runs and blocks: ResNet-8's stride-2 K 16 and 32, +5.5 KB, no run). */
#define TB_CM4_SK_RUN_MAX 64

/* The stride-1 blocks first..first+n*4 (backward: from the last), as runs. */
TB_INLINE void tb_cm4_sk_run(const int8_t *input, int8_t *output, int32_t whole, int backward,
                             uint32_t off2, int32_t out_c, const uint32_t *rec,
                             const uint32_t *rec_end, int32_t depth, int sign) {
  const int32_t last = whole - TB_CM4_SK_BLOCK;
  const int8_t *q = input + (backward ? last * depth : 0);
  const int8_t *q_end = backward ? input - TB_CM4_SK_BLOCK * depth : input + whole * depth;
  const int32_t dq = (backward ? -TB_CM4_SK_BLOCK : TB_CM4_SK_BLOCK) * depth;
  int8_t *o = output + (backward ? last * out_c : 0);
  const int32_t adjust = (backward ? -TB_CM4_SK_BLOCK - 1 : TB_CM4_SK_BLOCK - 1) * out_c;
#define TB_CM4_SK_RUN_CALL(D)                                                                \
  if (depth == D) {                                                                          \
    if (sign) tb_cm4_sk_run##D##_sign(q, q_end, dq, o, out_c, adjust, rec, rec_end, off2);     \
    else tb_cm4_sk_run##D(q, q_end, dq, o, out_c, adjust, rec, rec_end, off2);               \
    return;                                                                                  \
  }
  TB_CM4_SK_RUN_CALL(8)
  TB_CM4_SK_RUN_CALL(16)
  TB_CM4_SK_RUN_CALL(32)
  TB_CM4_SK_RUN_CALL(64)
#undef TB_CM4_SK_RUN_CALL
}

/* One block for a depth (constants once inlined). */
TB_INLINE void tb_cm4_sk_block(const int8_t *const q[TB_CM4_SK_BLOCK], uint32_t off2, int8_t *o,
                               int32_t out_c, const uint32_t *rec, const uint32_t *rec_end,
                               int32_t depth, int sign) {
#define TB_CM4_SK_CALL(D)                                                                    \
  if (depth == D) {                                                                          \
    if (sign) tb_cm4_sk_block##D##_sign(q[0], q[1], q[2], q[3], off2, o, out_c, rec, rec_end); \
    else tb_cm4_sk_block##D(q[0], q[1], q[2], q[3], off2, o, out_c, rec, rec_end);           \
    return;                                                                                  \
  }
  TB_CM4_SK_CALL(8)
  TB_CM4_SK_CALL(16)
  TB_CM4_SK_CALL(32)
  TB_CM4_SK_CALL(64)
  TB_CM4_SK_CALL(128)
#undef TB_CM4_SK_CALL
  if (depth == 256)
    tb_cm4_sk_block256(q[0], q[1], q[2], q[3], off2, o, out_c, rec, rec_end, sign);
}
#else
/* Portable C: the same column, sums and requantization (with the sign term,
 * exact with or without TB_CM4_SK_NO_SIGN), for the host tests. */
TB_INLINE void tb_cm4_sk_block(const int8_t *const q[TB_CM4_SK_BLOCK], uint32_t off2, int8_t *o,
                               int32_t out_c, const uint32_t *rec, const uint32_t *rec_end,
                               int32_t depth, int sign) {
  const int32_t npairs = depth >> 1;
  uint32_t col[2 * 256];
  int32_t c, j, g;
  (void)rec_end;
  (void)sign;
  for (g = 0; g < depth; g += 4)
    for (j = 0; j < TB_CM4_SK_BLOCK; ++j) {
      const uint32_t v = tb_ld32(q[j] + g);
      col[2 * g + j] = tb_sxtab16(off2, v);
      col[2 * g + 4 + j] = tb_sxtab16_ror8(off2, v);
    }
  for (c = 0; c < out_c; c += 2, rec += npairs + TB_CM4_SK_PAIR_RQ, o += 2) {
    const int32_t *r = (const int32_t *)(const void *)(rec + npairs);
    int32_t acc[2][TB_CM4_SK_BLOCK] = {{0}};
    for (j = 0; j < npairs; ++j) {
      const uint32_t wa = tb_sxtb16(rec[j]), wb = rec[j];   /* raw-B words */
      for (g = 0; g < TB_CM4_SK_BLOCK; ++g) {
        acc[0][g] = tb_smlad(col[TB_CM4_SK_BLOCK * j + g], wa, acc[0][g]);
        acc[1][g] = tb_smlad(col[TB_CM4_SK_BLOCK * j + g], wb, acc[1][g]);
      }
    }
    for (g = 0; g < TB_CM4_SK_BLOCK; ++g) {
      int32_t h;
      acc[1][g] = tb_asr((int32_t)((uint32_t)acc[1][g] - (uint32_t)acc[0][g]), 8);
      for (h = 0; h < 2; ++h) {
        const int32_t *rh = r + 4 * h;
        const int32_t t = (int32_t)((uint32_t)acc[h][g] * 2u + (uint32_t)rh[3]);
        o[g * out_c + h] =
            (int8_t)tb_ssat8(tb_asr(tb_smmlar(t, rh[0], rh[1] + tb_asr(t, 31)), rh[2]));
      }
    }
  }
}
#endif

/* The block's 4 input pixels from output pixel p0 on: a 1x1 convolution
 * reads input row y * stride_h, column x * stride_w (one division per block). */
TB_INLINE void tb_cm4_sk_pixels(const tb_conv_params *p, const int8_t *input, int32_t p0,
                                int32_t depth, const int8_t *q[TB_CM4_SK_BLOCK]) {
  int32_t y = p0 / p->out_w, x = p0 - y * p->out_w, j;
  for (j = 0; j < TB_CM4_SK_BLOCK; ++j) {
    q[j] = input + (y * p->stride_h * p->in_w + x * p->stride_w) * depth;
    if (++x == p->out_w) x = 0, ++y;
  }
}

/* A last partial block: its 1-3 pixels one at a time, 4 channel pairs per pass
 * (tb_cm4_conv2d_s8's one-pixel path ran VWW's 3x3 maps' ninth pixel at about
 * 1.8-2.1 cycles/MAC). Per k-pair the pixel's column word and the 4 pairs'
 * weight words (records R words apart) in two pipelined runs, 4 SXTB16, 8
 * SMLAD: 19 cycles per 16 MACs, 4 k-pairs per loop pass. One function per
 * depth (R a constant), passed to tb_cm4_sk_tail by its entry point: a build
 * links the depths it uses. Sums: channel c of the 4 pairs, then the raw-B
 * sums (256 * S_c+1 + S_c). */
typedef void tb_cm4_sk_quad_fn(const uint32_t *col, const uint32_t *col_end,
                               const uint32_t *rec, int32_t sums[8]);
#ifdef TB_CM4_DSP
#define TB_CM4_SK_QSTEP(k, R)                                                                \
  "ldr %[x], [%[c], #(4*" #k ")]\n\t"                                                        \
  "ldr %[t0], [%[pw], #(4*" #k ")]\n\t"                                                      \
  "ldr %[t1], [%[pw], #(4*(" #k "+" #R "))]\n\t"                                             \
  "smlad %[b0], %[x], %[t0], %[b0]\n\t"                                                      \
  "sxtb16 %[t0], %[t0]\n\t"                                                                  \
  "smlad %[a0], %[x], %[t0], %[a0]\n\t"                                                      \
  "smlad %[b1], %[x], %[t1], %[b1]\n\t"                                                      \
  "sxtb16 %[t1], %[t1]\n\t"                                                                  \
  "smlad %[a1], %[x], %[t1], %[a1]\n\t"                                                      \
  "ldr %[t0], [%[pw], #(4*(" #k "+2*" #R "))]\n\t"                                           \
  "ldr %[t1], [%[pw], #(4*(" #k "+3*" #R "))]\n\t"                                           \
  "smlad %[b2], %[x], %[t0], %[b2]\n\t"                                                      \
  "sxtb16 %[t0], %[t0]\n\t"                                                                  \
  "smlad %[a2], %[x], %[t0], %[a2]\n\t"                                                      \
  "smlad %[b3], %[x], %[t1], %[b3]\n\t"                                                      \
  "sxtb16 %[t1], %[t1]\n\t"                                                                  \
  "smlad %[a3], %[x], %[t1], %[a3]\n\t"
#define TB_CM4_SK_QUAD_FN(D)                                                                  \
  static void tb_cm4_sk_quad##D(const uint32_t *col, const uint32_t *col_end,                 \
                                const uint32_t *rec, int32_t sums[8]) {                       \
    register uint32_t a0 __asm__("r0") = 0, a1 __asm__("r1") = 0, a2 __asm__("r2") = 0,     \
        a3 __asm__("r3") = 0, b0 __asm__("r4") = 0, b1 __asm__("r5") = 0,                    \
        b2 __asm__("r6") = 0, b3 __asm__("r7") = 0;                                          \
    register uint32_t x __asm__("r8"), t0 __asm__("r9"), t1 __asm__("r10");                 \
    register const uint32_t *c __asm__("r11") = col, *end __asm__("r12") = col_end;          \
    register const uint32_t *pw __asm__("lr") = rec;                                         \
    __asm__ volatile(                                                                        \
        "1:\n\t"                                                                             \
        TB_CM4_SK_QSTEP(0, (D/2+8)) TB_CM4_SK_QSTEP(1, (D/2+8))                              \
        TB_CM4_SK_QSTEP(2, (D/2+8)) TB_CM4_SK_QSTEP(3, (D/2+8))                              \
        "add %[c], %[c], #16\n\t"                                                            \
        "add %[pw], %[pw], #16\n\t"                                                          \
        "cmp %[c], %[end]\n\t"                                                               \
        "bne 1b\n\t"                                                                         \
        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [b0] "+r"(b0),         \
          [b1] "+r"(b1), [b2] "+r"(b2), [b3] "+r"(b3), [x] "=&r"(x), [t0] "=&r"(t0),         \
          [t1] "=&r"(t1), [c] "+r"(c), [pw] "+r"(pw)                                         \
        : [end] "r"(end)                                                                     \
        : "cc", "memory");                                                                   \
    sums[0] = (int32_t)a0, sums[1] = (int32_t)a1, sums[2] = (int32_t)a2;                     \
    sums[3] = (int32_t)a3, sums[4] = (int32_t)b0, sums[5] = (int32_t)b1;                     \
    sums[6] = (int32_t)b2, sums[7] = (int32_t)b3;                                            \
  }
#else
/* Portable C: the same sums (wrapping), for the host tests. */
#define TB_CM4_SK_QUAD_FN(D)                                                                  \
  static void tb_cm4_sk_quad##D(const uint32_t *col, const uint32_t *col_end,                 \
                                const uint32_t *rec, int32_t sums[8]) {                       \
    int32_t i;                                                                               \
    for (i = 0; i < 8; ++i) sums[i] = 0;                                                     \
    for (; col != col_end; ++col, ++rec)                                                     \
      for (i = 0; i < 4; ++i) {                                                              \
        const uint32_t w = rec[i * (D / 2 + TB_CM4_SK_PAIR_RQ)];                              \
        sums[4 + i] = tb_smlad(*col, w, sums[4 + i]);                                        \
        sums[i] = tb_smlad(*col, tb_sxtb16(w), sums[i]);                                     \
      }                                                                                      \
  }
#endif
TB_CM4_SK_QUAD_FN(8)
TB_CM4_SK_QUAD_FN(16)
TB_CM4_SK_QUAD_FN(32)
TB_CM4_SK_QUAD_FN(64)
TB_CM4_SK_QUAD_FN(128)
TB_CM4_SK_QUAD_FN(256)

/* Channel pair (c, c+1) of one pixel from its sums (a: S_c, b: the raw-B sum
 * 256 * S_c+1 + S_c) and its record's 8 requantization words r, with the sign
 * term (exact with or without TB_CM4_SK_NO_SIGN). */
TB_INLINE void tb_cm4_sk_rq_pair(int32_t a, int32_t b, const int32_t *r, int8_t *o) {
  const int32_t sb = tb_asr((int32_t)((uint32_t)b - (uint32_t)a), 8);
  const int32_t t0 = (int32_t)((uint32_t)a * 2u + (uint32_t)r[3]);
  const int32_t t1 = (int32_t)((uint32_t)sb * 2u + (uint32_t)r[7]);
  o[0] = (int8_t)tb_ssat8(tb_asr(tb_smmlar(t0, r[0], r[1] + tb_asr(t0, 31)), r[2]));
  o[1] = (int8_t)tb_ssat8(tb_asr(tb_smmlar(t1, r[4], r[5] + tb_asr(t1, 31)), r[6]));
}

/* One pixel's outputs from its column (np words): 4 channel pairs per pass,
 * the last 1-3 pairs one by one in C. */
static void tb_cm4_sk_pixel(const uint32_t *col, int32_t np, const uint32_t *rec, int32_t out_c,
                            tb_cm4_sk_quad_fn *quad, int8_t *o) {
  const int32_t rlen = np + TB_CM4_SK_PAIR_RQ, pairs = out_c >> 1;
  int32_t c = 0, i, k;
  for (; c + 4 <= pairs; c += 4) {
    int32_t sums[8];
    quad(col, col + np, rec + c * rlen, sums);
    for (i = 0; i < 4; ++i)
      tb_cm4_sk_rq_pair(sums[i], sums[4 + i],
                        (const int32_t *)(const void *)(rec + (c + i) * rlen + np), o + 2 * (c + i));
  }
  for (; c < pairs; ++c) {
    const uint32_t *w = rec + c * rlen;
    int32_t a = 0, b = 0;
    for (k = 0; k < np; ++k) {
      b = tb_smlad(col[k], w[k], b);
      a = tb_smlad(col[k], tb_sxtb16(w[k]), a);
    }
    tb_cm4_sk_rq_pair(a, b, (const int32_t *)(const void *)(w + np), o + 2 * c);
  }
}

/* The last n = npix % 4 pixels (from pixel first on) copied together into rest
 * (a block reads all its pixels before it writes: the overlap the build allowed). */
TB_INLINE void tb_cm4_sk_copy_rest(const tb_conv_params *p, const int8_t *input, int32_t first,
                                   int32_t n, int32_t depth, int8_t *rest) {
  int32_t j;
  for (j = 0; j < n; ++j) {
    const int32_t y = (first + j) / p->out_w, x = (first + j) - y * p->out_w;
    memcpy(rest + j * depth, input + (y * p->stride_h * p->in_w + x * p->stride_w) * depth,
           (size_t)depth);
  }
}

/* The kernel's entry point (tb_cm4_conv2d_1x1_any_k<D>_s8), for the tail's block. */
typedef void tb_cm4_sk_entry_fn(const tb_conv_params *p, const int8_t *input,
                                const int8_t *filter, const int32_t *rq, int8_t *output,
                                void *scratch);

/* A last 2-3 pixels as one whole block (the last pixel repeated) by the entry
 * point itself, a 1x4 layer on their copy, into the scratch (4 * out_c bytes,
 * cm4_conv_1x1.tail_scratch_bytes), then copied out: the weights read once.
 * tb_cm4_sk_pixel reads them once per pixel, and in flash every pass misses
 * the data cache (str_ww's 15x1x128 -> 128 on cortex-m4: 12,300 cycles of
 * flash wait more for 3 pixels). */
static __attribute__((noinline)) void tb_cm4_sk_tail_block(const tb_conv_params *p,
                                                            const int8_t *input,
                                                            const int8_t *filter,
                                                            const int32_t *rq, int8_t *output,
                                                            void *scratch, int32_t first,
                                                            int32_t n, int32_t depth,
                                                            tb_cm4_sk_entry_fn *entry) {
  int8_t rest[TB_CM4_SK_BLOCK * 256];
  tb_conv_params row = *p;
  int32_t j;
  tb_cm4_sk_copy_rest(p, input, first, n, depth, rest);
  for (j = n; j < TB_CM4_SK_BLOCK; ++j)
    memcpy(rest + j * depth, rest + (n - 1) * depth, (size_t)depth);
  row.in_h = row.out_h = 1;
  row.in_w = row.out_w = TB_CM4_SK_BLOCK;
  row.stride_h = row.stride_w = 1;
  entry(&row, rest, filter, rq, (int8_t *)scratch, NULL);
  memcpy(output + first * p->out_c, scratch, (size_t)(n * p->out_c));
}

/* The last npix % 4 pixels pixel by pixel from their copy (tb_cm4_sk_pixel:
 * 19 cycles per 16 MACs where a block for 1 pixel would take 60). */
static __attribute__((noinline)) void tb_cm4_sk_tail_pixels(const tb_conv_params *p,
                                                            const int8_t *input,
                                                            const uint32_t *rec, int8_t *output,
                                                            int32_t first, int32_t n,
                                                            tb_cm4_sk_quad_fn *quad) {
  const int32_t depth = p->in_c;   /* the kernel's (tb_cm4_sk_conv checked) */
  int8_t rest[(TB_CM4_SK_BLOCK - 1) * 256];
  uint32_t col[256 / 2];
  const uint32_t off2 = ((uint32_t)p->input_offset & 0xFFFFu) * 0x10001u;
  int32_t j, g;
  tb_cm4_sk_copy_rest(p, input, first, n, depth, rest);
  for (j = 0; j < n; ++j) {
    for (g = 0; g < depth; g += 4) {
      const uint32_t v = tb_ld32(rest + j * depth + g);
      col[g >> 1] = tb_sxtab16(off2, v);
      col[(g >> 1) + 1] = tb_sxtab16_ror8(off2, v);
    }
    tb_cm4_sk_pixel(col, depth >> 1, rec, p->out_c, quad, output + (first + j) * p->out_c);
  }
}

/* The last n = npix % 4 pixels (from pixel first on): 2-3 as a block where
 * the entry point gave itself (entry; the build reserves the scratch), else
 * pixel by pixel (the two apart: only one's stack frame at a time). */
TB_INLINE void tb_cm4_sk_tail(const tb_conv_params *p, const int8_t *input, const int8_t *filter,
                              const int32_t *rq, int8_t *output, void *scratch, int32_t first,
                              int32_t n, int32_t depth, tb_cm4_sk_quad_fn *quad,
                              tb_cm4_sk_entry_fn *entry) {
  if (entry && n >= 2)
    tb_cm4_sk_tail_block(p, input, filter, rq, output, scratch, first, n, depth, entry);
  else
    tb_cm4_sk_tail_pixels(p, input, (const uint32_t *)(const void *)filter, output, first, n,
                          quad);
}

/* The kernel for one input depth (a constant once inlined into its entry
 * point below, so each entry point holds only its depth's loops: a build
 * links the depths its model uses): any stride, blocks of 4 pixels, each
 * pixel found from its row and column (consecutive at stride 1), a last
 * partial block through tb_cm4_sk_tail. */
TB_INLINE void tb_cm4_sk_conv(const tb_conv_params *p, const int8_t *input, const int8_t *filter,
                              const int32_t *rq, int8_t *output, void *scratch,
                              const int32_t depth, tb_cm4_sk_quad_fn *quad,
                              tb_cm4_sk_entry_fn *entry, const int stride1_entry) {
  const int32_t out_c = p->out_c, npix = p->out_h * p->out_w;
  const int32_t whole = npix & ~(TB_CM4_SK_BLOCK - 1);
  const int32_t flags = rq[0];
  const uint32_t off2 = ((uint32_t)p->input_offset & 0xFFFFu) * 0x10001u;
  const uint32_t *rec = (const uint32_t *)(const void *)filter;
  const uint32_t *rec_end = rec + (out_c >> 1) * ((depth >> 1) + TB_CM4_SK_PAIR_RQ);
  const int sign = !(flags & TB_CM4_SK_NO_SIGN);
  const int stride1 = p->stride_h == 1 && p->stride_w == 1;
  /* In place, the planner may put the output above the input: then the
   * blocks run from the last to the first (rq[1], as in tb_cm4_conv2d_s8). */
  const int backward = (intptr_t)(output - input) > (intptr_t)rq[1];
  const int32_t step = backward ? -TB_CM4_SK_BLOCK : TB_CM4_SK_BLOCK;
  int32_t p0;
  if ((flags & ~TB_CM4_SK_NO_SIGN) != (TB_CM4_SK_FAST | TB_CM4_SK_FULLRANGE | TB_CM4_SK_RAW_B) ||
      p->in_c != depth || (out_c & 1) || whole == 0) {
    tb_cm4_conv2d_s8(p, input, filter, rq, output, scratch);
    return;
  }
  if (backward && whole != npix)
    tb_cm4_sk_tail(p, input, filter, rq, output, scratch, whole, npix - whole, depth, quad, entry);
  (void)stride1_entry;   /* the runs are assembly only */
#ifdef TB_CM4_DSP
  if (stride1_entry && depth <= TB_CM4_SK_RUN_MAX) {
    tb_cm4_sk_run(input, output, whole, backward, off2, out_c, rec, rec_end, depth, sign);
    if (!backward && whole != npix)
      tb_cm4_sk_tail(p, input, filter, rq, output, scratch, whole, npix - whole, depth, quad,
                     entry);
    return;
  }
#endif
  for (p0 = backward ? whole - TB_CM4_SK_BLOCK : 0; p0 >= 0 && p0 < whole; p0 += step) {
    const int8_t *q[TB_CM4_SK_BLOCK];
    if (stride1) {
      q[0] = input + p0 * depth;
      q[1] = q[0] + depth;
      q[2] = q[1] + depth;
      q[3] = q[2] + depth;
    } else {
      tb_cm4_sk_pixels(p, input, p0, depth, q);
    }
    tb_cm4_sk_block(q, off2, output + p0 * out_c, out_c, rec, rec_end, depth, sign);
  }
  if (!backward && whole != npix)
    tb_cm4_sk_tail(p, input, filter, rq, output, scratch, whole, npix - whole, depth, quad, entry);
}

/* tb_cm4_conv2d_1x1_any_k<D>_s8 takes any 1x1 unpadded layer on D channels
 * (cm4_conv_1x1.py); tb_cm4_conv2d_1x1_k<D>_s8, the stride-1 layers of whole
 * blocks (cm4_prepare.accepts_conv_1x1_smallk), is the same code (a model
 * with both links it once), except for K <= 64, where it holds only the runs
 * (TB_CM4_SK_RUN_FN) and the any entry only the blocks. */
#define TB_CM4_SK_ENTRY_ANY(DEPTH)                                                          \
  void tb_cm4_conv2d_1x1_any_k##DEPTH##_s8(const tb_conv_params *p, const int8_t *input,    \
                                           const int8_t *filter, const int32_t *rq,         \
                                           int8_t *output, void *scratch) {                 \
    tb_cm4_sk_conv(p, input, filter, rq, output, scratch, DEPTH, tb_cm4_sk_quad##DEPTH,       \
                   tb_cm4_conv2d_1x1_any_k##DEPTH##_s8, 0);                                 \
  }
#define TB_CM4_SK_ENTRY(DEPTH)                                                              \
  TB_CM4_SK_ENTRY_ANY(DEPTH)                                                                \
  void tb_cm4_conv2d_1x1_k##DEPTH##_s8(const tb_conv_params *p, const int8_t *input,        \
                                       const int8_t *filter, const int32_t *rq,             \
                                       int8_t *output, void *scratch) {                     \
    tb_cm4_conv2d_1x1_any_k##DEPTH##_s8(p, input, filter, rq, output, scratch);             \
  }
#ifdef TB_CM4_DSP
#define TB_CM4_SK_ENTRY_RUNS(DEPTH)                                                         \
  TB_CM4_SK_ENTRY_ANY(DEPTH)                                                                \
  void tb_cm4_conv2d_1x1_k##DEPTH##_s8(const tb_conv_params *p, const int8_t *input,        \
                                       const int8_t *filter, const int32_t *rq,             \
                                       int8_t *output, void *scratch) {                     \
    tb_cm4_sk_conv(p, input, filter, rq, output, scratch, DEPTH, tb_cm4_sk_quad##DEPTH, NULL, \
                   1);                                                                      \
  }
#else
#define TB_CM4_SK_ENTRY_RUNS TB_CM4_SK_ENTRY
#endif
TB_CM4_SK_ENTRY_RUNS(8)
TB_CM4_SK_ENTRY_RUNS(16)
TB_CM4_SK_ENTRY_RUNS(32)
TB_CM4_SK_ENTRY_RUNS(64)
TB_CM4_SK_ENTRY(128)
TB_CM4_SK_ENTRY(256)
