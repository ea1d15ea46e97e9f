/* DEPTHWISE_CONV_2D int8 for Cortex-M4 (DSP extension), channel-parallel,
 * straight from NHWC: no per-channel plane copy.
 *
 * Bit-exact with tb_depthwise_conv2d_s8
 * (tflite::reference_integer_ops::DepthwiseConvPerChannel), depth multiplier
 * 1, in_c a multiple of 4 (every pixel's channel group is one aligned word).
 *
 * Why: on maps of a few pixels per channel (str_ww's H x 1 maps, VWW's 6x6
 * and 3x3 maps with 128..256 channels) the plane kernel's work per channel
 * (copy, frame, sweep set-up, per-row store calls) costs far more than the
 * channel's few MACs. Here a word of the input holds 4 channels of one pixel
 * and all the per-pixel work (where the taps are) is shared by in_c / 4
 * channel groups.
 *
 * For one output pixel, the kernel first lists where each tap's pixel starts
 * (the filter's (ky, kx) order; a tap outside the input points at a pixel of
 * input zero points, and because the build folded input_offset * sum(w) into
 * the bias, such a tap contributes exactly 0, as the reference's skipped tap
 * does). Then, per group of 4 channels and per pair of taps (a, b), with the
 * words A = a[c..c+3] and B = b[c..c+3] (one aligned load each):
 *
 *   PKHBT(A, B << 16) = bytes (a[c], a[c+1], b[c], b[c+1])
 *   PKHTB(B, A >> 16) = bytes (a[c+2], a[c+3], b[c+2], b[c+3])
 *   SXTB16 of those = (a[c], b[c]), (a[c+2], b[c+2]); with ROR 8 = (a[c+1],
 *   b[c+1]), (a[c+3], b[c+3])
 *
 * so 2 PKH and 4 SXTB16 pair the two taps of all 4 channels, and one SMLAD
 * per channel does both taps with the weight word the build stored in exactly
 * that order: per group, per tap pair, (w_a[c], w_b[c]), (w_a[c+2], w_b[c+2]),
 * (w_a[c+1], w_b[c+1]), (w_a[c+3], w_b[c+3]). With an odd tap count the
 * first tap goes alone, before the pairs: SXTB16 / SXTB16 ROR 8 of its word
 * are (t[c], t[c+2]), (t[c+1], t[c+3]), and SMLABB / SMLATT with the weight
 * words (w[c], w[c+2]), (w[c+1], w[c+3]) (13 cycles, where a pair with a
 * weight-0 tap took 22: the 3x3 layers' 9 taps).
 *
 * With the fast requantization the build doubles weights and biases (int16
 * holds 2 * w), so the sums are 2 * acc: the form SMMLAR(2 * acc, M, B +
 * (acc >> 31)) >> e needs no shift (2 * |acc| < 2^31 is one of its conditions;
 * partial sums may wrap, the final one is exact mod 2^32).
 *
 * Arguments: params, input, filter (int16 pairs as above, groups of
 * taps * 2 words: 2 for the single first tap of an odd count, then 4 per
 * pair; at most TB_CM4_DWC_MAX_TAPS taps), rq (header {flags, taps, 0, 0}, then per group of
 * 4 channels the 4 folded biases (doubled with the fast form) and {M, B, e}
 * (fast form) or {M, shift, 0} per channel), zero_pixel (in flash: in_c bytes of the input zero point if
 * any tap is outside the input, else 4 unused bytes), output. No scratch: the
 * tap list is on the stack.
 *
 * In place: output pixels are written in raster order, each group after its
 * reads, so the output may start wherever the reference's raster order allows
 * (every byte written up to pixel q below every input byte read from pixel q
 * on: tinybuild.planner.raster_overlap). At offset 0 as well when no output
 * pixel reads an input pixel of a lower raster index: then group g of pixel q
 * overwrites only input pixel q's channels c..c+3, which only group g of
 * pixel q itself reads (cm4_dw_channels.in_place_at_zero).
 */
#include "tb_cm4.h"

#define TB_CM4_RQ_FAST 1
#define TB_CM4_RQ_FULLRANGE 2
#define TB_CM4_DWC_MAX_TAPS 32 /* cm4_dw_channels.MAX_TAPS */

/* Requantize one channel's sum (bias included; doubled on the fast path). */
TB_INLINE int32_t tb_cm4_dwc_requant(int32_t sum, const int32_t *r, int32_t flags,
                                     const tb_conv_params *p) {
  if (flags & TB_CM4_RQ_FAST) {
    const int32_t v = tb_asr(tb_smmlar(sum, r[0], r[1] + tb_asr(sum, 31)), r[2]);
    return flags & TB_CM4_RQ_FULLRANGE ? tb_ssat8(v) : tb_clamp(v, p->act_min, p->act_max);
  }
  return tb_clamp(tb_mul_by_quant_mul(sum, r[0], r[1]) + p->output_offset, p->act_min, p->act_max);
}

/* The 4 channels of one group over all taps of one output pixel, from the
 * tap list `taps` (n entries, pointers to the taps' pixels) at byte offset
 * `c` of each pixel. `w`: the group's weight words, `r`: its rq block
 * (4 biases, then 4 x {M, B, e}). */
static void tb_cm4_dwc_group(const int8_t *const *taps, int32_t n, int32_t c,
                             const int16_t *w, const int32_t *r, int32_t flags,
                             const tb_conv_params *p, int8_t *o) {
  int32_t acc0 = r[0], acc1 = r[1], acc2 = r[2], acc3 = r[3];
  int32_t t = 0;
  if (n & 1) {  /* an odd count: the first tap alone */
    const uint32_t a = tb_ld32(taps[0] + c);
    const uint32_t a02 = tb_sxtb16(a), a13 = tb_sxtb16_ror8(a);
    const uint32_t w02 = tb_ld32(w), w13 = tb_ld32(w + 2);
    acc0 = tb_smlabb(a02, w02, acc0);
    acc2 = tb_smlatt(a02, w02, acc2);
    acc1 = tb_smlabb(a13, w13, acc1);
    acc3 = tb_smlatt(a13, w13, acc3);
    t = 1, w += 4;
  }
  for (; t < n; t += 2, w += 8) {
    const uint32_t a = tb_ld32(taps[t] + c), b = tb_ld32(taps[t + 1] + c);
    const uint32_t lo = tb_pkhbt16(a, b), hi = tb_pkhtb16(b, a); /* channels c, c+1 / c+2, c+3 */
    acc0 = tb_smlad(tb_sxtb16(lo), tb_ld32(w), acc0);
    acc2 = tb_smlad(tb_sxtb16(hi), tb_ld32(w + 2), acc2);
    acc1 = tb_smlad(tb_sxtb16_ror8(lo), tb_ld32(w + 4), acc1);
    acc3 = tb_smlad(tb_sxtb16_ror8(hi), tb_ld32(w + 6), acc3);
  }
  o[0] = (int8_t)tb_cm4_dwc_requant(acc0, r + 4, flags, p);
  o[1] = (int8_t)tb_cm4_dwc_requant(acc1, r + 7, flags, p);
  o[2] = (int8_t)tb_cm4_dwc_requant(acc2, r + 10, flags, p);
  o[3] = (int8_t)tb_cm4_dwc_requant(acc3, r + 13, flags, p);
}

#ifdef TB_CM4_DSP
/* One output pixel, every channel group, fast full-range requantization: the
 * loop of tb_cm4_dwc_group in assembly, because GCC spills the 4 sums and the
 * weights of the tap-pair step (35 instructions where 15 do). Per tap pair:
 *   LDRD (the two taps' pixel pointers), 2 LDR (their words at byte c),
 *   2 PKH + 4 SXTB16 (the 4 channels' tap pairs), 2 LDM (4 weight words),
 *   4 SMLAD
 * 15 instructions of 4 bytes (22 cycles), unrolled TB_CM4_DWC_MAX_TAPS / 2
 * times and entered `pairs` steps before the end (no loop counter: all 14
 * registers hold data); with an odd tap count each group first runs the
 * single-tap step, which then jumps to that entry. Then per two channels one
 * LDM of both {M, B, e} (7 cycles where two LDM took 8), per channel the fast
 * form on the doubled sum (ADD, SMMLAR, ASR, SSAT) and STRB; the next group
 * starts right there (its biases, tap list, entry), not after a jump back.
 * Registers: r0-r3 the sums of channels c .. c+3, r4 the weights, r5 the tap
 * list (then the group's output), r6 = c, r7-r10 the taps' words and then the
 * channels' tap pairs, r11/r12 weights, lr the rq stream; what does not fit
 * lives on the stack. */
typedef struct {
  const int8_t *const *taps;   /* the pixel's tap list (single + pairs * 2 pointers) */
  int32_t pairs, in_c;
  const int32_t *rq;           /* the first group's {4 biases, 4 x {M, B, e}} */
  int8_t *out;                 /* the pixel's channel 0 */
  const int16_t *w;            /* the first group's weight words */
  int32_t single;              /* 1: an odd tap count, the first tap goes alone */
} tb_cm4_dwc_job;

void tb_cm4_dwc_pixel_fast(const tb_cm4_dwc_job *job);

#define TB_CM4_DWC_STEP_BYTES "60" /* 15 instructions of 4 bytes */
#define TB_CM4_DWC_STR_(x) #x
#define TB_CM4_DWC_STR(x) TB_CM4_DWC_STR_(x)

/* Two channels' {M, B, e} in one LDM (r7-r9, r10-r12), the fast form on
 * each doubled sum, two STRB at the group's output (r5). */
#define TB_CM4_DWC_RQ2(A, B, OFF_A, OFF_B)       \
  "ldmia lr!, {r7, r8, r9, r10, r11, r12}\n\t"   \
  "add r8, r8, " A ", asr #31\n\t"               \
  "smmlar " A ", " A ", r7, r8\n\t"              \
  "asr " A ", " A ", r9\n\t"                     \
  "ssat " A ", #8, " A "\n\t"                    \
  "add r11, r11, " B ", asr #31\n\t"             \
  "smmlar " B ", " B ", r10, r11\n\t"            \
  "asr " B ", " B ", r12\n\t"                    \
  "ssat " B ", #8, " B "\n\t"                    \
  "strb " A ", [r5, #" OFF_A "]\n\t"             \
  "strb " B ", [r5, #" OFF_B "]\n\t"

__asm__(
    "\t.text\n\t.syntax unified\n\t.thumb\n\t.p2align 2\n\t"
    ".type tb_cm4_dwc_pixel_fast, %function\n\t.thumb_func\n"
    "tb_cm4_dwc_pixel_fast:\n\t"
    "push {r4-r11, lr}\n\t"
    "sub sp, sp, #20\n\t"         /* [sp]: taps, entry, in_c, out, pairs' entry (8-aligned) */
    "ldr r1, [r0, #0]\n\t"
    "str r1, [sp, #0]\n\t"
    "ldr r1, [r0, #4]\n\t"
    "movs r2, #" TB_CM4_DWC_STEP_BYTES "\n\t"
    "mul r1, r1, r2\n\t"
    "adr.w r2, 9f\n\t"
    "sub r2, r2, r1\n\t"
    "orr r2, r2, #1\n\t"
    "str r2, [sp, #16]\n\t"
    "ldr r1, [r0, #24]\n\t"           /* odd tap count: each group enters at the single tap */
    "cbz r1, 3f\n\t"
    "adr.w r2, 8f\n\t"
    "orr r2, r2, #1\n"
    "3:\n\t"
    "str r2, [sp, #4]\n\t"
    "ldr r1, [r0, #8]\n\t"
    "str r1, [sp, #8]\n\t"
    "ldr r1, [r0, #16]\n\t"
    "str r1, [sp, #12]\n\t"
    "ldr r4, [r0, #20]\n\t"
    "ldr lr, [r0, #12]\n\t"
    "movs r6, #0\n"
    "1:\n\t"
    "ldmia lr!, {r0, r1, r2, r3}\n\t"   /* the sums start at the folded biases */
    "ldr r5, [sp, #0]\n\t"
    "ldr r11, [sp, #4]\n\t"
    "bx r11\n"
    "8:\n\t"                          /* the first tap alone: (t[c], t[c+2]), (t[c+1], t[c+3]) */
    "ldr r7, [r5], #4\n\t"
    "ldr.w r7, [r7, r6]\n\t"
    "sxtb16 r8, r7\n\t"
    "sxtb16 r7, r7, ror #8\n\t"
    "ldmia.w r4!, {r11, r12}\n\t"     /* (w[c], w[c+2]), (w[c+1], w[c+3]) */
    "smlabb r0, r8, r11, r0\n\t"
    "smlatt r2, r8, r11, r2\n\t"
    "smlabb r1, r7, r12, r1\n\t"
    "smlatt r3, r7, r12, r3\n\t"
    "ldr r11, [sp, #16]\n\t"
    "bx r11\n\t"
    ".p2align 2\n\t"
    ".rept " TB_CM4_DWC_STR(TB_CM4_DWC_MAX_TAPS) " / 2\n\t"
    "ldrd r7, r8, [r5], #8\n\t"
    "ldr.w r7, [r7, r6]\n\t"            /* A = a[c..c+3] */
    "ldr.w r8, [r8, r6]\n\t"            /* B = b[c..c+3] */
    "pkhbt r9, r7, r8, lsl #16\n\t"     /* a[c], a[c+1], b[c], b[c+1] */
    "pkhtb r10, r8, r7, asr #16\n\t"    /* a[c+2], a[c+3], b[c+2], b[c+3] */
    "sxtb16 r7, r9\n\t"
    "sxtb16 r8, r10\n\t"
    "ldmia.w r4!, {r11, r12}\n\t"
    "smlad r0, r7, r11, r0\n\t"
    "smlad r2, r8, r12, r2\n\t"
    "sxtb16 r9, r9, ror #8\n\t"
    "sxtb16 r10, r10, ror #8\n\t"
    "ldmia.w r4!, {r11, r12}\n\t"
    "smlad r1, r9, r11, r1\n\t"
    "smlad r3, r10, r12, r3\n\t"
    ".endr\n"
    "9:\n\t"
    "ldr r5, [sp, #12]\n\t"           /* the tap list is reloaded per group: r5 is free */
    "add r5, r5, r6\n\t"
    TB_CM4_DWC_RQ2("r0", "r1", "0", "1") TB_CM4_DWC_RQ2("r2", "r3", "2", "3")
    "adds r6, r6, #4\n\t"
    "ldr r7, [sp, #8]\n\t"
    "cmp r6, r7\n\t"
    "beq 7f\n\t"                       /* the next group: its entry here, not a jump to 1b */
    "ldmia lr!, {r0, r1, r2, r3}\n\t"
    "ldr r5, [sp, #0]\n\t"
    "ldr r11, [sp, #4]\n\t"
    "bx r11\n"
    "7:\n\t"
    "add sp, sp, #20\n\t"
    "pop {r4-r11, pc}\n\t"
    ".size tb_cm4_dwc_pixel_fast, . - tb_cm4_dwc_pixel_fast\n");
#endif

void tb_cm4_dw_channels_s8(const tb_conv_params *p, const int8_t *input, const int16_t *filter,
                           const int32_t *rq, const int8_t *zero_pixel, int8_t *output) {
  const int32_t flags = rq[0], ntaps = rq[1];
  const int32_t in_c = p->in_c, in_w = p->in_w, in_h = p->in_h;
  const int32_t kh = p->k_h, kw = p->k_w;
  const int32_t group_values = 4 * ntaps; /* int16 weights of one group */
  const int32_t row_step = p->dil_h * in_w * in_c, col_step = p->dil_w * in_c;
  const int8_t *taps[TB_CM4_DWC_MAX_TAPS];
  int32_t oy, ox;
  for (oy = 0; oy < p->out_h; ++oy) {
    const int32_t iy0 = oy * p->stride_h - p->pad_top;
    for (ox = 0; ox < p->out_w; ++ox) {
      const int32_t ix0 = ox * p->stride_w - p->pad_left;
      int8_t *o = output + (oy * p->out_w + ox) * in_c;
      const int32_t *r = rq + 4;
      const int16_t *w = filter;
      int32_t ky, kx, n = 0, c;
      if (iy0 >= 0 && iy0 + (kh - 1) * p->dil_h < in_h && ix0 >= 0 &&
          ix0 + (kw - 1) * p->dil_w < in_w) {
        /* the whole window inside the input (every pixel of a VALID layer) */
        const int8_t *row = input + (iy0 * in_w + ix0) * in_c;
        for (ky = 0; ky < kh; ++ky, row += row_step) {
          const int8_t *q = row;
          for (kx = 0; kx < kw; ++kx, q += col_step) taps[n++] = q;
        }
      } else {
        for (ky = 0; ky < kh; ++ky) {
          const int32_t iy = iy0 + ky * p->dil_h;
          for (kx = 0; kx < kw; ++kx) {
            const int32_t ix = ix0 + kx * p->dil_w;
            taps[n++] = (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w)
                            ? input + (iy * in_w + ix) * in_c : zero_pixel;
          }
        }
      }
#ifdef TB_CM4_DSP
      if (flags == (TB_CM4_RQ_FAST | TB_CM4_RQ_FULLRANGE)) {
        tb_cm4_dwc_job job;
        job.taps = taps, job.pairs = ntaps >> 1, job.in_c = in_c;
        job.rq = r, job.out = o, job.w = w, job.single = ntaps & 1;
        tb_cm4_dwc_pixel_fast(&job);
        continue;
      }
#endif
      for (c = 0; c < in_c; c += 4, r += 16, w += group_values) {
        tb_cm4_dwc_group(taps, ntaps, c, w, r, flags, p, o + c);
      }
    }
  }
}
