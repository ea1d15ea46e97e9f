/* DEPTHWISE_CONV_2D int8 for Cortex-M4 (DSP extension), channel by channel.
 *
 * Bit-exact with tb_depthwise_conv2d_s8
 * (tflite::reference_integer_ops::DepthwiseConvPerChannel).
 *
 * For each input channel the kernel copies the channel (a strided column of
 * the NHWC tensor) into a planar int16 image in the scratch buffer, framed by
 * the input zero point: a padded position then holds zp, and since the build
 * folded input_offset * sum(filter) into the bias, every tap contributes
 * w * (x + input_offset) exactly as the reference does, padded taps 0. Two
 * horizontally adjacent int16 values are one word, so SMLAD does two taps:
 *
 *  - 3x3, stride 1: two outputs at a time per row r, with A = (q[x], q[x+1])
 *    and B = (q[x+2], q[x+3]) and the filter row as W01 = (w0, w1),
 *    W12 = (w1, w2): out[x] += SMLAD(A, W01) + SMLABT(B, W12),
 *    out[x+1] += SMLATB(A, W01) + SMLAD(B, W12); B is the next A. The plane's
 *    rows share their zero column, so one sweep runs across rows.
 *  - 3x3, stride 2: out[x] += SMLAD(A, W01) + SMLABB(B, W2x) with A at 2x;
 *    B is again the next A. The plane holds its even rows, then its odd rows:
 *    output row y reads even row y, odd row y and even row y + 1, so here too
 *    one sweep runs across output rows.
 *  - anything else (any k, stride, dilation, depth multiplier): one SMLABB
 *    per tap.
 * The 3x3 paths run on the transposed problem when the output is taller than
 * wide (the build transposed the filter): fewer pad columns computed for
 * nothing. Requantization is the fast exact form (tb_rq) or the reference's.
 *
 * Arguments: params, input, filter (int16 per output channel: 12 values
 * W01,W12 / W01,W2x per row for the 3x3 paths, else k_h*k_w rounded up to
 * even), rq (header {flags, plane width | rows per sweep << 16, plane height |
 * rows of the even half << 16, path | planes << 8 | transposed << 16}, then
 * per output channel {bias', M, B, e} or {bias', M, shift, 0}), output,
 * scratch (the planes, then the int32 sums of one sweep).
 *
 * The output of channel c is written only after channel c was copied, and
 * only to channel c's bytes, so with depth multiplier 1 the output may be the
 * input itself (the planner's overlap (0, 0)).
 */
#include "tb_cm4.h"

#define TB_CM4_RQ_FAST 1
#define TB_CM4_RQ_FULLRANGE 2
#define TB_CM4_DW_GENERAL 0
#define TB_CM4_DW_3X3S1 1
#define TB_CM4_DW_3X3S2 2

static int32_t tb_cm4_dw_finish(int32_t acc, const int32_t *r, int32_t flags,
                                const tb_conv_params *p) {
  int32_t v;
  if (flags & TB_CM4_RQ_FAST) {
    v = tb_rq(acc, r[1], r[2], r[3]);
  } else {
    v = tb_mul_by_quant_mul(acc, r[1], r[2]) + p->output_offset;
  }
  return tb_clamp(v, p->act_min, p->act_max);
}

#define TB_CM4_DW_STEPS 32 /* output pairs per unrolled sweep (64 positions) */

/* 3x3 stride 1: sums (without bias) for the positions q .. q + 2n - 1 of the
 * flattened plane (n >= 1 pairs) into acc[0 .. 2n-1]. w: W01, W12 of the rows.
 * On the M4: 32 unrolled steps of 80 bytes (6 LDR, 12 MACs, two STR: 1 cycle
 * each where STRD takes 3), entered so that the first pass does n mod 32
 * pairs, then whole passes; weights in registers, the pass count in memory. */
static __attribute__((noinline)) void tb_cm4_dw3s1_sweep(const int16_t *q, int32_t row_bytes, int32_t n,
                               const uint32_t *w, int32_t *acc) {
#ifdef TB_CM4_DSP
  const int32_t e = (TB_CM4_DW_STEPS - n % TB_CM4_DW_STEPS) % TB_CM4_DW_STEPS; /* entry */
  uint32_t p0 = (uint32_t)q - 4u * (uint32_t)e;
  uint32_t p1 = p0 + (uint32_t)row_bytes, p2 = p1 + (uint32_t)row_bytes;
  uint32_t accp = (uint32_t)(acc - 2 * e);
  uint32_t s0 = (uint32_t)e * 80u, s1, ta, tb;
  int32_t passes = (n + e) / TB_CM4_DW_STEPS;
  __asm__ volatile(
      ".macro tb_dw3s1_step k\n\t"
      "ldr.w  %[ta], [%[p0], #(4*\\k)]\n\t"
      "ldr.w  %[tb], [%[p0], #(4*\\k+4)]\n\t"
      "smuad  %[s0], %[ta], %[w01a]\n\t"
      "smultb %[s1], %[ta], %[w01a]\n\t"
      "smlabt %[s0], %[tb], %[w12a], %[s0]\n\t"
      "smlad  %[s1], %[tb], %[w12a], %[s1]\n\t"
      "ldr.w  %[ta], [%[p1], #(4*\\k)]\n\t"
      "ldr.w  %[tb], [%[p1], #(4*\\k+4)]\n\t"
      "smlad  %[s0], %[ta], %[w01b], %[s0]\n\t"
      "smlatb %[s1], %[ta], %[w01b], %[s1]\n\t"
      "smlabt %[s0], %[tb], %[w12b], %[s0]\n\t"
      "smlad  %[s1], %[tb], %[w12b], %[s1]\n\t"
      "ldr.w  %[ta], [%[p2], #(4*\\k)]\n\t"
      "ldr.w  %[tb], [%[p2], #(4*\\k+4)]\n\t"
      "smlad  %[s0], %[ta], %[w01c], %[s0]\n\t"
      "smlatb %[s1], %[ta], %[w01c], %[s1]\n\t"
      "smlabt %[s0], %[tb], %[w12c], %[s0]\n\t"
      "smlad  %[s1], %[tb], %[w12c], %[s1]\n\t"
      "str.w  %[s0], [%[accp], #(8*\\k)]\n\t"
      "str.w  %[s1], [%[accp], #(8*\\k+4)]\n\t"
      ".endm\n\t"
      "adr.w  %[s1], 1f\n\t"
      "add    %[s1], %[s1], %[s0]\n\t"
      "orr    %[s1], %[s1], #1\n\t"
      "bx     %[s1]\n\t"
      ".p2align 2\n"
      "1:\n\t"
      ".irp k, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n\t"
      "tb_dw3s1_step \\k\n\t"
      ".endr\n\t"
      ".purgem tb_dw3s1_step\n\t"
      "ldr    %[ta], %[passes]\n\t"
      "subs   %[ta], %[ta], #1\n\t"
      "beq    9f\n\t"
      "str    %[ta], %[passes]\n\t"
      "add    %[p0], %[p0], #128\n\t"
      "add    %[p1], %[p1], #128\n\t"
      "add    %[p2], %[p2], #128\n\t"
      "add    %[accp], %[accp], #256\n\t"
      "b      1b\n"
      "9:\n\t"
      : [s0] "+r"(s0), [s1] "=&r"(s1), [ta] "=&r"(ta), [tb] "=&r"(tb), [p0] "+r"(p0),
        [p1] "+r"(p1), [p2] "+r"(p2), [accp] "+r"(accp), [passes] "+m"(passes)
      : [w01a] "r"(w[0]),
        [w12a] "r"(w[1]), [w01b] "r"(w[2]), [w12b] "r"(w[3]), [w01c] "r"(w[4]), [w12c] "r"(w[5])
      : "cc", "memory");
#else
  int32_t k;
  const char *r0 = (const char *)q;
  for (k = 0; k < n; ++k) {
    int32_t s0 = 0, s1 = 0, r;
    for (r = 0; r < 3; ++r) {
      const uint32_t a = tb_ld32(r0 + r * row_bytes + 4 * k);
      const uint32_t b = tb_ld32(r0 + r * row_bytes + 4 * k + 4);
      s0 = tb_smlad(a, w[2 * r], s0);
      s1 = tb_smlatb(a, w[2 * r], s1);
      s0 = tb_smlabt(b, w[2 * r + 1], s0);
      s1 = tb_smlad(b, w[2 * r + 1], s1);
    }
    acc[2 * k] = s0;
    acc[2 * k + 1] = s1;
  }
#endif
}

/* 3x3 stride 2: n >= 1 output slots, q at the even-row position of the first,
 * its odd row off1 bytes and the next even row off2 bytes further; w: W01, W2x
 * of the rows. Steps of 52 bytes (6 LDR, 6 MACs, STR). */
static __attribute__((noinline)) void tb_cm4_dw3s2_sweep(const int16_t *q, int32_t off1,
                                                         int32_t off2, int32_t n,
                                                         const uint32_t *w, int32_t *acc) {
#ifdef TB_CM4_DSP
  const int32_t e = (TB_CM4_DW_STEPS - n % TB_CM4_DW_STEPS) % TB_CM4_DW_STEPS;
  uint32_t p0 = (uint32_t)q - 4u * (uint32_t)e;
  uint32_t p1 = p0 + (uint32_t)off1, p2 = p0 + (uint32_t)off2;
  uint32_t accp = (uint32_t)(acc - e);
  uint32_t s0 = (uint32_t)e * 52u, s1, ta, tb;
  int32_t passes = (n + e) / TB_CM4_DW_STEPS;
  __asm__ volatile(
      ".macro tb_dw3s2_step k\n\t"
      "ldr.w  %[ta], [%[p0], #(4*\\k)]\n\t"
      "ldr.w  %[tb], [%[p0], #(4*\\k+4)]\n\t"
      "smuad  %[s0], %[ta], %[w01a]\n\t"
      "smlabb %[s0], %[tb], %[w2a], %[s0]\n\t"
      "ldr.w  %[ta], [%[p1], #(4*\\k)]\n\t"
      "ldr.w  %[tb], [%[p1], #(4*\\k+4)]\n\t"
      "smlad  %[s0], %[ta], %[w01b], %[s0]\n\t"
      "smlabb %[s0], %[tb], %[w2b], %[s0]\n\t"
      "ldr.w  %[ta], [%[p2], #(4*\\k)]\n\t"
      "ldr.w  %[tb], [%[p2], #(4*\\k+4)]\n\t"
      "smlad  %[s0], %[ta], %[w01c], %[s0]\n\t"
      "smlabb %[s0], %[tb], %[w2c], %[s0]\n\t"
      "str.w  %[s0], [%[accp], #(4*\\k)]\n\t"
      ".endm\n\t"
      "adr.w  %[s1], 1f\n\t"
      "add    %[s1], %[s1], %[s0]\n\t"
      "orr    %[s1], %[s1], #1\n\t"
      "bx     %[s1]\n\t"
      ".p2align 2\n"
      "1:\n\t"
      ".irp k, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n\t"
      "tb_dw3s2_step \\k\n\t"
      ".endr\n\t"
      ".purgem tb_dw3s2_step\n\t"
      "ldr    %[ta], %[passes]\n\t"
      "subs   %[ta], %[ta], #1\n\t"
      "beq    9f\n\t"
      "str    %[ta], %[passes]\n\t"
      "add    %[p0], %[p0], #128\n\t"
      "add    %[p1], %[p1], #128\n\t"
      "add    %[p2], %[p2], #128\n\t"
      "add    %[accp], %[accp], #128\n\t"
      "b      1b\n"
      "9:\n\t"
      : [s0] "+r"(s0), [s1] "=&r"(s1), [ta] "=&r"(ta), [tb] "=&r"(tb), [p0] "+r"(p0),
        [p1] "+r"(p1), [p2] "+r"(p2), [accp] "+r"(accp), [passes] "+m"(passes)
      : [w01a] "r"(w[0]),
        [w2a] "r"(w[1]), [w01b] "r"(w[2]), [w2b] "r"(w[3]), [w01c] "r"(w[4]), [w2c] "r"(w[5])
      : "cc", "memory");
#else
  int32_t k;
  const char *r0 = (const char *)q;
  const int32_t off[3] = {0, off1, off2};
  for (k = 0; k < n; ++k) {
    int32_t s0 = 0, r;
    for (r = 0; r < 3; ++r) {
      const uint32_t a = tb_ld32(r0 + off[r] + 4 * k);
      const uint32_t b = tb_ld32(r0 + off[r] + 4 * k + 4);
      s0 = tb_smlad(a, w[2 * r], s0);
      s0 = tb_smlabb(b, w[2 * r + 1], s0);
    }
    acc[k] = s0;
  }
#endif
}

/* Where and how the sums of one channel go: outputs col_step bytes apart
 * along a plane row, row_step apart from one plane row to the next. */
typedef struct {
  int32_t rows, cols, acc_row;    /* sums of row y at acc + y * acc_row */
  int32_t col_step, row_step;
} tb_cm4_dw_tile;

#ifdef TB_CM4_DSP
/* Fast requantization of a full-range output (tb_rq with the bias and the
 * doubling in one ADD), 4 sums per LDM: 35 cycles per 4 outputs. */
#define TB_CM4_DW_RQ1(T)                                 \
  "add " T ", %[bias2], " T ", lsl #1\n\t"               \
  "add %[u], %[b], " T ", asr #31\n\t"                   \
  "smmlar " T ", " T ", %[m], %[u]\n\t"                  \
  "asr " T ", " T ", %[e]\n\t"                           \
  "ssat " T ", #8, " T "\n\t"

/* The whole tile in one loop: per row, groups of 4 sums (LDM), then a pair
 * (LDRD) and a single for the rest. Row state that does not fit the
 * registers lives in `st` (memory operands). */
typedef struct {
  int32_t rows, cols, skip, row_step;   /* skip: bytes of sums past a row's last */
  int8_t *orow;
} tb_cm4_dw_rows;

static void tb_cm4_dw_store_fast(const int32_t *acc, tb_cm4_dw_rows *st, const int32_t *r,
                                 int32_t step) {
  register uint32_t t0 __asm__("r0"), t1 __asm__("r1"), t2 __asm__("r2"), t3 __asm__("r3");
  uint32_t u, ap = (uint32_t)acc;
  int32_t cnt;
  int8_t *o;
  __asm__ volatile(
      "1:\n\t"
      "ldr %[o], %[orow]\n\t"
      "ldr %[cnt], %[cols]\n\t"
      "subs %[cnt], %[cnt], #4\n\t"
      "blt 3f\n"
      "2:\n\t"
      "ldmia %[ap]!, {%[t0], %[t1], %[t2], %[t3]}\n\t"
      TB_CM4_DW_RQ1("%[t0]") TB_CM4_DW_RQ1("%[t1]") TB_CM4_DW_RQ1("%[t2]") TB_CM4_DW_RQ1("%[t3]")
      "strb %[t0], [%[o]]\n\t"
      "strb %[t1], [%[o], %[step]]\n\t"
      "add %[o], %[o], %[step], lsl #1\n\t"
      "strb %[t2], [%[o]]\n\t"
      "strb %[t3], [%[o], %[step]]\n\t"
      "add %[o], %[o], %[step], lsl #1\n\t"
      "subs %[cnt], %[cnt], #4\n\t"
      "bge 2b\n"
      "3:\n\t"
      "tst %[cnt], #2\n\t"
      "beq 4f\n\t"
      "ldrd %[t0], %[t1], [%[ap]], #8\n\t"
      TB_CM4_DW_RQ1("%[t0]") TB_CM4_DW_RQ1("%[t1]")
      "strb %[t0], [%[o]]\n\t"
      "strb %[t1], [%[o], %[step]]\n\t"
      "add %[o], %[o], %[step], lsl #1\n"
      "4:\n\t"
      "tst %[cnt], #1\n\t"
      "beq 5f\n\t"
      "ldr %[t0], [%[ap]], #4\n\t"
      TB_CM4_DW_RQ1("%[t0]")
      "strb %[t0], [%[o]]\n"
      "5:\n\t"
      "ldr %[t0], %[skip]\n\t"
      "ldr %[t1], %[orow]\n\t"
      "ldr %[t2], %[row_step]\n\t"
      "add %[ap], %[ap], %[t0]\n\t"
      "add %[t1], %[t1], %[t2]\n\t"
      "str %[t1], %[orow]\n\t"
      "ldr %[t0], %[rows]\n\t"
      "subs %[t0], %[t0], #1\n\t"
      "str %[t0], %[rows]\n\t"
      "bne 1b\n\t"
      : [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3), [u] "=&r"(u),
        [cnt] "=&r"(cnt), [ap] "+r"(ap), [o] "=&r"(o), [orow] "+m"(st->orow),
        [rows] "+m"(st->rows)
      : [bias2] "r"(r[0] * 2), [b] "r"(r[2]), [m] "r"(r[1]), [e] "r"(r[3]), [step] "r"(step),
        [cols] "m"(st->cols), [skip] "m"(st->skip), [row_step] "m"(st->row_step)
      : "cc", "memory");
}
#endif

/* Requantize a tile of one channel's sums (+ bias) into the output. */
static __attribute__((noinline)) void tb_cm4_dw_store(const int32_t *acc, const tb_cm4_dw_tile *t,
                                                      const int32_t *r, int32_t flags,
                                                      const tb_conv_params *p, int8_t *o) {
  int32_t y, i;
  if (flags == (TB_CM4_RQ_FAST | TB_CM4_RQ_FULLRANGE)) {
#ifdef TB_CM4_DSP
    tb_cm4_dw_rows st;
    st.rows = t->rows, st.cols = t->cols, st.skip = 4 * (t->acc_row - t->cols);
    st.row_step = t->row_step, st.orow = o;
    tb_cm4_dw_store_fast(acc, &st, r, t->col_step);
    (void)y, (void)i;
#else
    for (y = 0; y < t->rows; ++y, acc += t->acc_row, o += t->row_step) {
      /* tb_rq(acc + bias) with the doubling folded into one ADD */
      const int32_t bias2 = r[0] * 2, m = r[1], b = r[2], e = r[3];
      int8_t *oo = o;
      for (i = 0; i < t->cols; ++i, oo += t->col_step) {
        const int32_t v = (int32_t)((uint32_t)bias2 + ((uint32_t)acc[i] << 1));
        *oo = (int8_t)tb_ssat8(tb_asr(tb_smmlar(v, m, b + tb_asr(v, 31)), e));
      }
    }
#endif
  } else {
    for (y = 0; y < t->rows; ++y, acc += t->acc_row, o += t->row_step) {
      int8_t *oo = o;
      for (i = 0; i < t->cols; ++i, oo += t->col_step) {
        *oo = (int8_t)tb_cm4_dw_finish(acc[i] + r[0], r, flags, p);
      }
    }
  }
}

/* Where plane row pr starts: row-major, or for stride 2 even rows first. */
static int16_t *tb_cm4_dw_row(int16_t *plane, int32_t pr, int32_t wp, int32_t even_rows) {
  if (even_rows) return plane + ((pr & 1) ? even_rows + (pr >> 1) : (pr >> 1)) * wp;
  return plane + pr * wp;
}

/* The problem as the kernel runs it: the layer's, or its transpose. */
typedef struct {
  int32_t in_h, in_w, out_h, out_w, pt, pl;
  int32_t src_col, src_row;       /* input bytes to the next plane column / row */
  int32_t out_col, out_row;       /* output bytes to the next column / row */
} tb_cm4_dw_view;

/* Copy n values of one channel, src_step bytes apart, into a plane row. */
static void tb_cm4_dw_gather_row(const int8_t *src, int32_t n, int32_t src_step, int16_t *d) {
  for (; n >= 4; n -= 4) {
    const int32_t v0 = src[0], v1 = src[src_step], v2 = src[2 * src_step], v3 = src[3 * src_step];
    tb_st32(d, tb_pkhbt16((uint32_t)v0, (uint32_t)v1));
    tb_st32(d + 2, tb_pkhbt16((uint32_t)v2, (uint32_t)v3));
    d += 4;
    src += 4 * src_step;
  }
  for (; n > 0; --n, src += src_step) *d++ = (int16_t)src[0];
}

/* The same for channels c .. c+3 (one aligned word per position) into 4
 * planes `plane` values apart: two SXTB16 per position, PKH pairs positions. */
static void tb_cm4_dw_gather4_row(const int8_t *src, int32_t n, int32_t src_step, int16_t *d0,
                                  int32_t plane) {
  int16_t *d1 = d0 + plane, *d2 = d0 + 2 * plane, *d3 = d0 + 3 * plane;
  int32_t i = 0;
  for (; n >= 2; n -= 2, i += 2) {
    const uint32_t u = tb_ld32(src), v = tb_ld32(src + src_step);
    const uint32_t u02 = tb_sxtb16(u), v02 = tb_sxtb16(v);
    const uint32_t u13 = tb_sxtb16_ror8(u), v13 = tb_sxtb16_ror8(v);
    tb_st32(d0 + i, tb_pkhbt16(u02, v02));
    tb_st32(d2 + i, tb_pkhtb16(v02, u02));
    tb_st32(d1 + i, tb_pkhbt16(u13, v13));
    tb_st32(d3 + i, tb_pkhtb16(v13, u13));
    src += 2 * src_step;
  }
  if (n) {
    const uint32_t u = tb_ld32(src);
    const uint32_t u02 = tb_sxtb16(u), u13 = tb_sxtb16_ror8(u);
    d0[i] = (int16_t)u02;
    d2[i] = (int16_t)(u02 >> 16);
    d1[i] = (int16_t)u13;
    d3[i] = (int16_t)(u13 >> 16);
  }
}

static tb_cm4_dw_view tb_cm4_dw_orient(const tb_conv_params *p, int transposed) {
  tb_cm4_dw_view v;
  const int32_t c = p->in_c, oc = p->out_c;
  if (transposed) {
    v.in_h = p->in_w, v.in_w = p->in_h, v.out_h = p->out_w, v.out_w = p->out_h;
    v.pt = p->pad_left, v.pl = p->pad_top;
    v.src_col = p->in_w * c, v.src_row = c;
    v.out_col = p->out_w * oc, v.out_row = oc;
  } else {
    v.in_h = p->in_h, v.in_w = p->in_w, v.out_h = p->out_h, v.out_w = p->out_w;
    v.pt = p->pad_top, v.pl = p->pad_left;
    v.src_col = c, v.src_row = p->in_w * c;
    v.out_col = oc, v.out_row = p->out_w * oc;
  }
  return v;
}

/* Copy channel c (planes == 1) or channels c .. c+3 into the plane(s),
 * row by row; planes are plane_values apart. */
static __attribute__((noinline)) void tb_cm4_dw_gather(const int8_t *src, const tb_cm4_dw_view *v,
                                                       int16_t *planes, int32_t wp,
                                                       int32_t even_rows, int32_t groups,
                                                       int32_t plane_values) {
  int32_t y;
  for (y = 0; y < v->in_h; ++y, src += v->src_row) {
    int16_t *d = tb_cm4_dw_row(planes, v->pt + y, wp, even_rows) + v->pl;
    if (groups == 4) {
      tb_cm4_dw_gather4_row(src, v->in_w, v->src_col, d, plane_values);
    } else {
      tb_cm4_dw_gather_row(src, v->in_w, v->src_col, d);
    }
  }
}

/* 3x3 stride 1, one channel: sweeps over rows_per whole plane rows at a
 * time (the build sized the sums buffer; a row's pad columns are computed, not
 * stored), or, when rows_per is 0 (rows wider than the buffer), over pieces of
 * at most 62 positions of a row. A sweep starts at an even position (aligned
 * words), one early if the row starts at an odd one. */
static void tb_cm4_dw_3x3s1(const int16_t *plane, const tb_cm4_dw_view *v, int32_t wp,
                            int32_t rows_per, const uint32_t *w, int32_t *acc,
                            const int32_t *r, int32_t flags, const tb_conv_params *p,
                            int8_t *out) {
  const int32_t piece = 2 * TB_CM4_DW_STEPS - 2;
  tb_cm4_dw_tile t;
  int32_t y;
  t.col_step = v->out_col, t.row_step = v->out_row;
  if (rows_per) {
    t.cols = v->out_w, t.acc_row = wp;
    for (y = 0; y < v->out_h; y += rows_per) {
      const int32_t s0 = y * wp, early = s0 & 1;
      t.rows = v->out_h - y < rows_per ? v->out_h - y : rows_per;
      tb_cm4_dw3s1_sweep(plane + s0 - early, 2 * wp, (t.rows * wp + early + 1) >> 1, w, acc);
      tb_cm4_dw_store(acc + early, &t, r, flags, p, out + y * v->out_row);
    }
  } else {
    int32_t x0;
    t.rows = 1, t.acc_row = 0;
    for (y = 0; y < v->out_h; ++y) {
      for (x0 = 0; x0 < v->out_w; x0 += piece) {
        const int32_t s0 = y * wp + x0, early = s0 & 1;
        t.cols = v->out_w - x0 < piece ? v->out_w - x0 : piece;
        tb_cm4_dw3s1_sweep(plane + s0 - early, 2 * wp, (t.cols + early + 1) >> 1, w, acc);
        tb_cm4_dw_store(acc + early, &t, r, flags, p,
                        out + y * v->out_row + x0 * v->out_col);
      }
    }
  }
}

/* 3x3 stride 2, one channel: wp / 2 output slots per plane row pair (the
 * ones past out_w are computed, not stored); sweeps over rows_per output rows,
 * or pieces of 32 slots of a row when rows_per is 0. */
static void tb_cm4_dw_3x3s2(const int16_t *plane, const tb_cm4_dw_view *v, int32_t wp,
                            int32_t rows_per, int32_t even_rows, const uint32_t *w,
                            int32_t *acc, const int32_t *r, int32_t flags,
                            const tb_conv_params *p, int8_t *out) {
  const int32_t slots = wp >> 1, off1 = 2 * even_rows * wp, off2 = 2 * wp;
  tb_cm4_dw_tile t;
  int32_t y;
  t.col_step = v->out_col, t.row_step = v->out_row;
  if (rows_per) {
    t.cols = v->out_w, t.acc_row = slots;
    for (y = 0; y < v->out_h; y += rows_per) {
      t.rows = v->out_h - y < rows_per ? v->out_h - y : rows_per;
      tb_cm4_dw3s2_sweep(plane + y * wp, off1, off2, t.rows * slots, w, acc);
      tb_cm4_dw_store(acc, &t, r, flags, p, out + y * v->out_row);
    }
  } else {
    int32_t x0;
    t.rows = 1, t.acc_row = 0;
    for (y = 0; y < v->out_h; ++y) {
      for (x0 = 0; x0 < v->out_w; x0 += TB_CM4_DW_STEPS) {
        t.cols = v->out_w - x0 < TB_CM4_DW_STEPS ? v->out_w - x0 : TB_CM4_DW_STEPS;
        tb_cm4_dw3s2_sweep(plane + y * wp + 2 * x0, off1, off2, t.cols, w, acc);
        tb_cm4_dw_store(acc, &t, r, flags, p, out + y * v->out_row + x0 * v->out_col);
      }
    }
  }
}

/* Any kernel size, stride, dilation: one SMLABB per tap. */
static __attribute__((noinline)) void tb_cm4_dw_general(const int16_t *plane, const tb_conv_params *p, int32_t wp,
                              const int16_t *wc, const int32_t *r, int32_t flags, int8_t *out) {
  const int32_t kh = p->k_h, kw = p->k_w, sh = p->stride_h, sw = p->stride_w;
  const int32_t dh = p->dil_h, dw = p->dil_w, out_c = p->out_c;
  int32_t y, x, ky, kx;
  for (y = 0; y < p->out_h; ++y) {
    int8_t *o = out + y * p->out_w * out_c;
    for (x = 0; x < p->out_w; ++x) {
      const int16_t *q = plane + y * sh * wp + x * sw;
      int32_t s0 = r[0];
      for (ky = 0; ky < kh; ++ky) {
        const int16_t *row = q + ky * dh * wp;
        const int16_t *wr = wc + ky * kw;
        for (kx = 0; kx < kw; ++kx) {
          s0 = tb_smlabb((uint32_t)(uint16_t)row[kx * dw], (uint32_t)(uint16_t)wr[kx], s0);
        }
      }
      o[0] = (int8_t)tb_cm4_dw_finish(s0, r, flags, p);
      o += out_c;
    }
  }
}

void tb_cm4_depthwise_conv2d_s8(const tb_conv_params *p, const int8_t *input,
                                const int16_t *filter, const int32_t *rq, int8_t *output,
                                void *scratch) {
  const int32_t flags = rq[0], wp = rq[1] & 0xFFFF, rows_per = rq[1] >> 16;
  const int32_t hp = rq[2] & 0xFFFF, even_rows = rq[2] >> 16;
  const int32_t path = rq[3] & 0xFF;
  /* rq[3] bits 8..15: number of planes (1 or 4; 4 when in_c % 4 == 0 and they fit) */
  const int32_t groups = (rq[3] >> 8) & 0xFF ? (rq[3] >> 8) & 0xFF : 1;
  const tb_cm4_dw_view v = tb_cm4_dw_orient(p, (rq[3] >> 16) & 1);
  const int32_t in_c = p->in_c, dm = p->depth_multiplier;
  const int32_t wstride = path == TB_CM4_DW_GENERAL ? ((p->k_h * p->k_w + 1) & ~1) : 12;
  const int32_t plane_words = (wp * hp + 1) >> 1;
  int16_t *planes = (int16_t *)scratch;
  int32_t *accbuf = (int32_t *)scratch + groups * plane_words;
  const int16_t zp = (int16_t)(-p->input_offset);
  int32_t ic, i;
  {
    /* frame the planes with the zero point once; channels overwrite the inside */
    const uint32_t zz = ((uint32_t)(uint16_t)zp) * 0x10001u;
    uint32_t *pw32 = (uint32_t *)scratch;
    const int32_t words = groups * plane_words;
    for (i = 0; i < words; ++i) pw32[i] = zz;
  }
  for (ic = 0; ic < in_c; ++ic) {
    int32_t m;
    int16_t *plane = planes + (groups == 4 ? (ic & 3) * plane_words * 2 : 0);
    /* copy channel ic (or channels ic .. ic+3) into the plane(s), row by row */
    if (groups == 1 || (ic & 3) == 0) {
      tb_cm4_dw_gather(input + ic, &v, planes, wp, even_rows, groups, plane_words * 2);
    }
    for (m = 0; m < dm; ++m) {
      const int32_t oc = ic * dm + m;
      const int32_t *r = rq + 4 + 4 * oc;
      const int16_t *wc = filter + oc * wstride;
      if (path == TB_CM4_DW_GENERAL) {
        tb_cm4_dw_general(plane, p, wp, wc, r, flags, output + oc);
      } else {
        uint32_t w[6];
        for (i = 0; i < 6; ++i) w[i] = tb_ld32(wc + 2 * i);
        if (path == TB_CM4_DW_3X3S1) {
          tb_cm4_dw_3x3s1(plane, &v, wp, rows_per, w, accbuf, r, flags, p, output + oc);
        } else {
          tb_cm4_dw_3x3s2(plane, &v, wp, rows_per, even_rows, w, accbuf, r, flags, p,
                          output + oc);
        }
      }
    }
  }
}
