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

/* ---- 3x3 kernels on a framed word plane: tb_cm4_dw_channels_3x3_s8 ---------------------
 *
 * The same arithmetic per group of 4 channels (a single first tap, then 4 tap pairs,
 * the fast full-range requantization on doubled sums), but the group's channels are
 * first copied, one word per pixel, into a plane of TB_CM4_DWC3_PITCH words per row
 * framed by words of input zero points (the scratch: filled once per call, its
 * interior overwritten per group). A tap of output pixel (y, x) is then the word at
 * plane row y * stride_h + ky, column x * stride_w + kx: a fixed immediate offset
 * from the pixel's top-left tap, for the border pixels too. No tap list, no
 * address loads: per tap pair the two tap words (one LDRD where they are neighbours
 * in a plane row), one LDM of the 4 weight words, then 2 PKH, 4 SXTB16, 4 SMLAD: 18
 * cycles per 8 MACs (22 with the tap list). The loop runs group by group (one call each: the
 * copy, then every output row), then pixel by pixel, so the group's record
 * (cm4_dw_channels.group_records: 4 doubled biases and tap 0's 2 weight words, the
 * pairs' 16 weight words, 4 x {M, B, e}) is read by 7 LDM from one pointer (an LDM
 * takes a cycle more than a run of LDR with immediate offsets but 3-5 instructions
 * less: no layer this kernel takes runs more instructions than before).
 *
 * groups: header {1: no sign term, the input zero point in every byte, plane rows,
 * 0}, then per group of 4 channels its 34-word record. In place only at offset 0:
 * group g of every pixel is written after group g's plane was copied, and no other
 * group's input bytes are touched. */
#define TB_CM4_DWC3_PITCH 16   /* words per plane row: cm4_dw_channels.PITCH */
#define TB_CM4_DWC3_WORDS 34   /* words per group record: cm4_dw_channels.RECORD_WORDS */
#define TB_CM4_DWC3_RECORD_BYTES 136

typedef struct {
  const int8_t *src;     /* 0: the group's first channel of input pixel 0 */
  uint32_t *dst;         /* 4: the plane word of input pixel 0 */
  int32_t in_h, in_w;    /* 8, 12 */
  int32_t in_c;          /* 16: bytes between pixels, in and out */
  const uint32_t *p;     /* 20: the plane (output pixel 0's top-left tap) */
  const int32_t *g;      /* 24: the group's record */
  int8_t *o;             /* 28: output pixel 0, the group's first channel */
  int32_t out_w;         /* 32 */
  int32_t pstep;         /* 36: bytes between output pixels in the plane: 4 * stride_w */
  int32_t row_step;      /* 40: bytes between output rows in the plane */
  int32_t out_h;         /* 44 */
  int32_t groups;        /* 48: groups of 4 channels (the assembly runs them all) */
  int32_t fill;          /* 52: plane words (a multiple of 16) */
  uint32_t zero;         /* 56: the input zero point in every byte */
  int32_t *record;       /* 60: scratch for a record read from flash */
  uint32_t copy_entry;   /* 64: where tb_cm4_dwc3_copy_rows enters for rows of in_w words */
  int32_t row_skip;      /* 68: plane bytes from a row's last copied word to the next row */
} tb_cm4_dwc3_job;

/* Plane word offsets of taps 0..8 (ky, kx) and the record's parts, in words, in
 * the order the kernel's LDMs read them: the 4 biases and tap 0's 2 weight words,
 * the 4 tap pairs' 16 weight words, the 4 x {M, B, e}. */
#define TB_CM4_DWC3_TAP(t) (((t) / 3) * TB_CM4_DWC3_PITCH + (t) % 3)
#define TB_CM4_DWC3_BIAS 0
#define TB_CM4_DWC3_W0 4
#define TB_CM4_DWC3_PAIRS 6
#define TB_CM4_DWC3_RQ 22

#ifdef TB_CM4_DSP
void tb_cm4_dwc3_group_sign(const tb_cm4_dwc3_job *job);
void tb_cm4_dwc3_group_nosign(const tb_cm4_dwc3_job *job);

/* One tap pair: the taps' words (LOAD_TAPS: an LDRD where they are neighbours in the
 * plane row, else two LDR), then the pair's 4 weight words by one LDM (channels c,
 * c+2, c+1, c+3): 18 cycles per 8 MACs, 12-13 instructions. */
#define TB_CM4_DWC3_PAIR(LOAD_TAPS)               \
  LOAD_TAPS                                       \
  "ldmia r5!, {r9, r10, r11, r12}\n\t"            \
  "pkhbt lr, r7, r8, lsl #16\n\t"                 \
  "pkhtb r8, r8, r7, asr #16\n\t"                 \
  "sxtb16 r7, lr\n\t"                             \
  "sxtb16 lr, lr, ror #8\n\t"                     \
  "smlad r0, r7, r9, r0\n\t"                      \
  "smlad r1, lr, r11, r1\n\t"                     \
  "sxtb16 r7, r8\n\t"                             \
  "sxtb16 r8, r8, ror #8\n\t"                     \
  "smlad r2, r7, r10, r2\n\t"                     \
  "smlad r3, r8, r12, r3\n\t"
#define TB_CM4_DWC3_TAPS_LDRD(T) "ldrd r7, r8, [r4, #" T "]\n\t"
#define TB_CM4_DWC3_TAPS_LDR(TA, TB) "ldr r7, [r4, #" TA "]\n\tldr r8, [r4, #" TB "]\n\t"

/* Two channels' requantization: {M, B, e} of A in r7-r9, of B in r10-r12; SIGN_*
 * adds the sign term (acc >> 31) to B. */
#define TB_CM4_DWC3_RQ2(A, B, SIGN_A, SIGN_B)     \
  SIGN_A                                          \
  "smmlar " A ", " A ", r7, r8\n\t"               \
  "asr " A ", " A ", r9\n\t"                      \
  "ssat " A ", #8, " A "\n\t"                     \
  SIGN_B                                          \
  "smmlar " B ", " B ", r10, r11\n\t"             \
  "asr " B ", " B ", r12\n\t"                     \
  "ssat " B ", #8, " B "\n\t"

/* The group's plane copy, every input row (r3 rows, r1 the group's word of input pixel
 * 0, r2 its plane word, r6 = in_c, r12 = 3 * in_c, r11 the plane bytes from a row's
 * last word to the next row): per row one jump (r4: job.copy_entry) into the chain
 * for in_w % 4 at the block that leaves in_w / 4 blocks of 4 words (4 pipelined loads
 * at register offsets, one STM: 11 cycles), then the last 1-3 words; no count or
 * tail tests inside a row (a row of 3 words: 15 cycles where a 4-word loop with an IT
 * tail took 25). Clobbers r1-r3, r7-r10; returns by lr. */
#define TB_CM4_DWC3_BLOCK                         \
  "ldr.w r7, [r1]\n\t"                            \
  "ldr.w r8, [r1, r6]\n\t"                        \
  "ldr.w r9, [r1, r6, lsl #1]\n\t"                \
  "ldr.w r10, [r1, r12]\n\t"                      \
  "add.w r1, r1, r6, lsl #2\n\t"                  \
  "stmia.w r2!, {r7, r8, r9, r10}\n\t"
#define TB_CM4_DWC3_BLOCK_BYTES 24   /* 6 instructions of 4 bytes */
#define TB_CM4_DWC3_ROW_END                       \
  "add.w r2, r2, r11\n\t"                         \
  "subs r3, r3, #1\n\t"                           \
  "it ne\n\t"                                     \
  "bxne r4\n\t"                                   \
  "bx lr\n\t"
void tb_cm4_dwc3_copy_rows(void);   /* not C-callable: the registers above */
extern const char tb_cm4_dwc3_chain0[], tb_cm4_dwc3_chain1[], tb_cm4_dwc3_chain2[],
    tb_cm4_dwc3_chain3[];
__asm__("\t.text\n\t.syntax unified\n\t.thumb\n\t.p2align 2\n\t"
        ".type tb_cm4_dwc3_copy_rows, %function\n\t.thumb_func\n"
        "tb_cm4_dwc3_copy_rows:\n\t"
        "bx r4\n\t"
        ".p2align 2\n\t.global tb_cm4_dwc3_chain0\n"
        "tb_cm4_dwc3_chain0:\n\t"              /* in_w 4, 8, 12, 16 */
        TB_CM4_DWC3_BLOCK TB_CM4_DWC3_BLOCK TB_CM4_DWC3_BLOCK TB_CM4_DWC3_BLOCK
        TB_CM4_DWC3_ROW_END
        ".p2align 2\n\t.global tb_cm4_dwc3_chain1\n"
        "tb_cm4_dwc3_chain1:\n\t"              /* in_w 1, 5, 9, 13 */
        TB_CM4_DWC3_BLOCK TB_CM4_DWC3_BLOCK TB_CM4_DWC3_BLOCK
        "ldr.w r7, [r1]\n\t"
        "add.w r1, r1, r6\n\t"
        "str.w r7, [r2], #4\n\t"
        TB_CM4_DWC3_ROW_END
        ".p2align 2\n\t.global tb_cm4_dwc3_chain2\n"
        "tb_cm4_dwc3_chain2:\n\t"              /* in_w 2, 6, 10, 14 */
        TB_CM4_DWC3_BLOCK TB_CM4_DWC3_BLOCK TB_CM4_DWC3_BLOCK
        "ldr.w r7, [r1]\n\t"
        "ldr.w r8, [r1, r6]\n\t"
        "add.w r1, r1, r6, lsl #1\n\t"
        "stmia.w r2!, {r7, r8}\n\t"
        TB_CM4_DWC3_ROW_END
        ".p2align 2\n\t.global tb_cm4_dwc3_chain3\n"
        "tb_cm4_dwc3_chain3:\n\t"              /* in_w 3, 7, 11, 15 */
        TB_CM4_DWC3_BLOCK TB_CM4_DWC3_BLOCK TB_CM4_DWC3_BLOCK
        "ldr.w r7, [r1]\n\t"
        "ldr.w r8, [r1, r6]\n\t"
        "ldr.w r9, [r1, r6, lsl #1]\n\t"
        "add.w r1, r1, r12\n\t"
        "stmia.w r2!, {r7, r8, r9}\n\t"
        TB_CM4_DWC3_ROW_END
        ".size tb_cm4_dwc3_copy_rows, . - tb_cm4_dwc3_copy_rows\n");

/* Where tb_cm4_dwc3_copy_rows enters for rows of in_w (1..16) words. */
static uint32_t tb_cm4_dwc3_copy_entry(int32_t in_w) {
  static const char *const chains[4] = {tb_cm4_dwc3_chain0, tb_cm4_dwc3_chain1,
                                        tb_cm4_dwc3_chain2, tb_cm4_dwc3_chain3};
  const int32_t blocks = (in_w & 3) ? 3 : 4; /* blocks of 4 words in the chain */
  return ((uint32_t)chains[in_w & 3] + (blocks - (in_w >> 2)) * TB_CM4_DWC3_BLOCK_BYTES) | 1u;
}

/* Every group: the copy (tb_cm4_dwc3_copy_rows), then every output pixel:
 * r0-r3 the 4 channels' sums, r4 the pixel's top-left tap, r5 the record, r6 the
 * output, r7-r12 and lr the words. [sp]: in_c, pstep, the row's end, row_step,
 * rows left, the row's start, the group's input, its output, groups left, job, the
 * group's record in flash (0: read in place). First the whole plane is filled with
 * zero-point words (16 per pass). A record below 0x20000000 (flash on the STM32
 * boards) is first copied to the scratch (8 LDM/STM), so that each pixel's 7 LDM
 * read SRAM, not flash through the ART's small data cache (136 bytes per pixel). */
#define TB_CM4_DWC3_GROUP(NAME, S0, S1, S2, S3)                                 \
  __asm__("\t.text\n\t.syntax unified\n\t.thumb\n\t.p2align 2\n\t"              \
          ".type " NAME ", %function\n\t.thumb_func\n"                          \
          NAME ":\n\t"                                                          \
          "push {r4-r11, lr}\n\t"                                               \
          "sub sp, sp, #48\n\t"                                                 \
          "ldr r1, [r0, #20]\n\t"      /* the plane's frame: zero points */   \
          "ldr r2, [r0, #52]\n\t"                                               \
          "ldr r3, [r0, #56]\n\t"                                               \
          "mov r4, r3\n\t"                                                      \
          "mov r5, r3\n\t"                                                      \
          "mov r6, r3\n"                                                         \
          "5:\n\t"                                                              \
          "stmia r1!, {r3, r4, r5, r6}\n\t"                                     \
          "stmia r1!, {r3, r4, r5, r6}\n\t"                                     \
          "stmia r1!, {r3, r4, r5, r6}\n\t"                                     \
          "stmia r1!, {r3, r4, r5, r6}\n\t"                                     \
          "subs r2, r2, #16\n\t"                                                \
          "bne 5b\n\t"                                                          \
          "ldr r1, [r0, #0]\n\t"                                                \
          "ldr r2, [r0, #28]\n\t"                                               \
          "ldr r3, [r0, #48]\n\t"                                               \
          "ldr r5, [r0, #24]\n\t"                                               \
          "ldr r6, [r0, #16]\n\t"                                               \
          "ldr r7, [r0, #36]\n\t"                                               \
          "ldr r8, [r0, #40]\n\t"                                               \
          "str r1, [sp, #24]\n\t"                                               \
          "str r2, [sp, #28]\n\t"                                               \
          "str r3, [sp, #32]\n\t"                                               \
          "str r0, [sp, #36]\n\t"                                               \
          "str r6, [sp, #0]\n\t"                                                \
          "str r7, [sp, #4]\n\t"                                                \
          "str r8, [sp, #12]\n"                                                 \
          "20:\n\t"                      /* a group: its record out of flash */ \
          "ldr r0, [sp, #36]\n\t"                                               \
          "movs r1, #0\n\t"                                                     \
          "cmp r5, #0x20000000\n\t"                                             \
          "bhs 21f\n\t"                                                         \
          "mov r1, r5\n\t"                                                      \
          "ldr r2, [r0, #60]\n\t"                                               \
          "ldmia r5!, {r3, r4, r6, r7, r8, r9, r10, r11}\n\t"                   \
          "stmia r2!, {r3, r4, r6, r7, r8, r9, r10, r11}\n\t"                   \
          "ldmia r5!, {r3, r4, r6, r7, r8, r9, r10, r11}\n\t"                   \
          "stmia r2!, {r3, r4, r6, r7, r8, r9, r10, r11}\n\t"                   \
          "ldmia r5!, {r3, r4, r6, r7, r8, r9, r10, r11}\n\t"                   \
          "stmia r2!, {r3, r4, r6, r7, r8, r9, r10, r11}\n\t"                   \
          "ldmia r5!, {r3, r4, r6, r7, r8, r9, r10, r11}\n\t"                   \
          "stmia r2!, {r3, r4, r6, r7, r8, r9, r10, r11}\n\t"                   \
          "ldmia r5!, {r3, r4}\n\t"                                             \
          "stmia r2!, {r3, r4}\n\t"                                             \
          "ldr r5, [r0, #60]\n"                                                  \
          "21:\n\t"                                                             \
          "str r1, [sp, #40]\n\t"      /* 0: the record is read in place */   \
          "ldr r1, [sp, #24]\n\t"                                               \
          "ldr r2, [r0, #4]\n\t"                                                \
          "ldr r3, [r0, #8]\n\t"                                                \
          "ldr r4, [r0, #64]\n\t"      /* the copy: its entry, row skip */        \
          "ldr r11, [r0, #68]\n\t"                                                \
          "ldr r6, [sp, #0]\n\t"                                                  \
          "add r12, r6, r6, lsl #1\n\t"                                           \
          "bl tb_cm4_dwc3_copy_rows\n\t"                                          \
          "ldr r4, [r0, #20]\n\t"        /* its output rows */                  \
          "ldr r7, [r0, #32]\n\t"                                               \
          "ldr r11, [r0, #44]\n\t"                                              \
          "ldr r6, [sp, #28]\n\t"                                               \
          "ldr r8, [sp, #4]\n\t"                                                \
          "mla r7, r7, r8, r4\n\t"                                              \
          "str r7, [sp, #8]\n\t"                                                \
          "str r11, [sp, #16]\n\t"                                              \
          "str r4, [sp, #20]\n"                                                 \
          "1:\n\t"                     /* doubled biases, tap 0's (w[c], w[c+2]), */ \
          "ldmia r5!, {r0, r1, r2, r3, r8, r9}\n\t" /* (w[c+1], w[c+3]); r5: rq */  \
          "ldr r7, [r4, #0]\n\t"         /* tap 0 alone */                      \
          "sxtb16 r10, r7\n\t"                                                  \
          "sxtb16 r7, r7, ror #8\n\t"                                           \
          "smlabb r0, r10, r8, r0\n\t"                                          \
          "smlatt r2, r10, r8, r2\n\t"                                          \
          "smlabb r1, r7, r9, r1\n\t"                                           \
          "smlatt r3, r7, r9, r3\n\t"                                           \
          TB_CM4_DWC3_PAIR(TB_CM4_DWC3_TAPS_LDRD("4"))                          \
          TB_CM4_DWC3_PAIR(TB_CM4_DWC3_TAPS_LDRD("64"))                         \
          TB_CM4_DWC3_PAIR(TB_CM4_DWC3_TAPS_LDR("72", "128"))                   \
          TB_CM4_DWC3_PAIR(TB_CM4_DWC3_TAPS_LDRD("132"))                        \
          "ldmia r5!, {r7, r8, r9, r10, r11, r12}\n\t"                           \
          TB_CM4_DWC3_RQ2("r0", "r1", S0, S1)                                   \
          "ldmia r5!, {r7, r8, r9, r10, r11, r12}\n\t"                           \
          TB_CM4_DWC3_RQ2("r2", "r3", S2, S3)                                   \
          "ldmia sp, {r7, r8, lr}\n\t"   /* in_c, pstep, the row's end */       \
          "strb r0, [r6, #0]\n\t"                                               \
          "strb r1, [r6, #1]\n\t"                                               \
          "strb r2, [r6, #2]\n\t"                                               \
          "strb r3, [r6, #3]\n\t"                                               \
          "add r6, r6, r7\n\t"                                                  \
          "add r4, r4, r8\n\t"                                                  \
          "sub r5, r5, #" TB_CM4_DWC_STR(TB_CM4_DWC3_RECORD_BYTES) "\n\t" /* its start */ \
          "cmp r4, lr\n\t"                                                      \
          "bne.w 1b\n\t"                 /* the next row: start, end, count */  \
          "ldr r4, [sp, #20]\n\t"                                               \
          "ldr r7, [sp, #12]\n\t"                                               \
          "ldr r8, [sp, #16]\n\t"                                               \
          "add r4, r4, r7\n\t"                                                  \
          "add lr, lr, r7\n\t"                                                  \
          "str r4, [sp, #20]\n\t"                                               \
          "str lr, [sp, #8]\n\t"                                                \
          "subs r8, r8, #1\n\t"                                                 \
          "str r8, [sp, #16]\n\t"                                               \
          "bne.w 1b\n\t"                 /* the next group */                   \
          "ldr r1, [sp, #40]\n\t"                                               \
          "cmp r1, #0\n\t"                                                      \
          "it ne\n\t"                                                           \
          "movne r5, r1\n\t"                                                    \
          "add r5, r5, #" TB_CM4_DWC_STR(TB_CM4_DWC3_RECORD_BYTES) "\n\t"       \
          "ldr r1, [sp, #24]\n\t"                                               \
          "ldr r2, [sp, #28]\n\t"                                               \
          "ldr r3, [sp, #32]\n\t"                                               \
          "adds r1, r1, #4\n\t"                                                 \
          "adds r2, r2, #4\n\t"                                                 \
          "str r1, [sp, #24]\n\t"                                               \
          "str r2, [sp, #28]\n\t"                                               \
          "subs r3, r3, #1\n\t"                                                 \
          "str r3, [sp, #32]\n\t"                                               \
          "bne.w 20b\n\t"                                                       \
          "add sp, sp, #48\n\t"                                                 \
          "pop {r4-r11, pc}\n\t"                                                \
          ".size " NAME ", . - " NAME "\n")

TB_CM4_DWC3_GROUP("tb_cm4_dwc3_group_sign", "add r8, r8, r0, asr #31\n\t",
                  "add r11, r11, r1, asr #31\n\t", "add r8, r8, r2, asr #31\n\t",
                  "add r11, r11, r3, asr #31\n\t");
TB_CM4_DWC3_GROUP("tb_cm4_dwc3_group_nosign", "", "", "", "");
#else
/* What the assembly computes, in portable C: one output pixel of the group. */
static void tb_cm4_dwc3_pixel_c(const uint32_t *q, const int32_t *g, int32_t sign, int8_t *o) {
  const uint32_t *w = (const uint32_t *)g;
  const uint32_t a = q[0], a02 = tb_sxtb16(a), a13 = tb_sxtb16_ror8(a);
  int32_t acc[4], t, ch;
  acc[0] = tb_smlabb(a02, w[TB_CM4_DWC3_W0], g[TB_CM4_DWC3_BIAS + 0]);
  acc[2] = tb_smlatt(a02, w[TB_CM4_DWC3_W0], g[TB_CM4_DWC3_BIAS + 2]);
  acc[1] = tb_smlabb(a13, w[TB_CM4_DWC3_W0 + 1], g[TB_CM4_DWC3_BIAS + 1]);
  acc[3] = tb_smlatt(a13, w[TB_CM4_DWC3_W0 + 1], g[TB_CM4_DWC3_BIAS + 3]);
  for (t = 1; t < 9; t += 2) {
    const uint32_t *pw = w + TB_CM4_DWC3_PAIRS + 2 * (t - 1);
    const uint32_t x = q[TB_CM4_DWC3_TAP(t)], y = q[TB_CM4_DWC3_TAP(t + 1)];
    const uint32_t lo = tb_pkhbt16(x, y), hi = tb_pkhtb16(y, x);
    acc[0] = tb_smlad(tb_sxtb16(lo), pw[0], acc[0]);
    acc[1] = tb_smlad(tb_sxtb16_ror8(lo), pw[2], acc[1]);
    acc[2] = tb_smlad(tb_sxtb16(hi), pw[1], acc[2]);
    acc[3] = tb_smlad(tb_sxtb16_ror8(hi), pw[3], acc[3]);
  }
  for (ch = 0; ch < 4; ++ch) {
    const int32_t *r = g + TB_CM4_DWC3_RQ + 3 * ch;
    const int32_t b = sign ? r[1] + tb_asr(acc[ch], 31) : r[1];
    o[ch] = (int8_t)tb_ssat8(tb_asr(tb_smmlar(acc[ch], r[0], b), r[2]));
  }
}

static void tb_cm4_dwc3_group_c(const tb_cm4_dwc3_job *job, int32_t sign) {
  const int32_t in_c = job->in_c;
  int32_t y, x;
  int8_t *o = job->o;
  for (y = 0; y < job->in_h; ++y) {
    for (x = 0; x < job->in_w; ++x) {
      job->dst[y * TB_CM4_DWC3_PITCH + x] = tb_ld32(job->src + (y * job->in_w + x) * in_c);
    }
  }
  for (y = 0; y < job->out_h; ++y) {
    const uint32_t *q = job->p + y * (job->row_step / 4);
    for (x = 0; x < job->out_w; ++x, q += job->pstep / 4, o += in_c) {
      tb_cm4_dwc3_pixel_c(q, job->g, sign, o);
    }
  }
}
#endif

void tb_cm4_dw_channels_3x3_s8(const tb_conv_params *p, const int8_t *input, const int32_t *groups,
                               int8_t *output, void *scratch) {
  uint32_t *plane = (uint32_t *)scratch;
  const int32_t rows = groups[2], sign = !(groups[0] & 1);
  tb_cm4_dwc3_job job;
  job.fill = rows * TB_CM4_DWC3_PITCH, job.zero = (uint32_t)groups[1];
  job.record = (int32_t *)(plane + job.fill);
  job.dst = plane + p->pad_top * TB_CM4_DWC3_PITCH + p->pad_left;
  job.in_h = p->in_h, job.in_w = p->in_w, job.in_c = p->in_c;
  job.p = plane, job.out_w = p->out_w, job.out_h = p->out_h;
  job.pstep = 4 * p->stride_w, job.row_step = 4 * TB_CM4_DWC3_PITCH * p->stride_h;
  job.g = groups + 4, job.groups = p->in_c / 4;
  job.src = input, job.o = output;
#ifdef TB_CM4_DSP
  job.copy_entry = tb_cm4_dwc3_copy_entry(p->in_w);
  job.row_skip = 4 * (TB_CM4_DWC3_PITCH - p->in_w);
  if (sign) tb_cm4_dwc3_group_sign(&job);
  else tb_cm4_dwc3_group_nosign(&job);
#else
  for (int32_t i = 0; i < job.fill; ++i) plane[i] = job.zero;
  for (int32_t c = 0; c < p->in_c; c += 4, job.g += TB_CM4_DWC3_WORDS) {
    job.src = input + c, job.o = output + c;
    tb_cm4_dwc3_group_c(&job, sign);
  }
#endif
}
