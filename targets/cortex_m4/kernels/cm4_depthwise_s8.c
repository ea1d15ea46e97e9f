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
 *    out[x+1] += SMLATB(A, W01) + SMLAD(B, W12). The plane rows have a fixed
 *    pitch (TB_CM4_DW_PITCH values), so one pointer reaches four rows with
 *    immediate offsets and a step computes two output rows at once: the
 *    middle two plane rows serve both (8 loads for 4 outputs instead of 12).
 *  - 3x3, stride 2: out[x] += SMLAD(A, W01) + SMLABB(B, W2x) with A at 2x;
 *    B is again the next A, so a step computes two slots from 3 words per row.
 *    The plane holds its even rows, then its odd rows:
 *    output row y reads even row y, odd row y and even row y + 1, so here too
 *    one sweep runs across output rows.
 *  - anything else (any k, stride, dilation, depth multiplier): one SMLABB
 *    per tap.
 * The 3x3 paths run on the transposed problem when the output is taller than
 * wide (the build transposed the filter): fewer pad columns computed for
 * nothing. Requantization is the fast exact form (tb_rq) or the reference's.
 *
 * Arguments: params, input, filter (int16 per output channel: for the 3x3
 * paths 12 values W01,W12 / W01,W2x per row, then the bias as one word; the
 * sweeps start the sums there, so the stores add no bias; with the fast
 * full-range form weights and bias doubled, so the sums are the form's 2 * acc;
 * else k_h*k_w rounded up to even), rq (header {flags, plane width (stride 1: the pitch) | rows per
 * sweep (stride 1: per store) << 16, plane height | rows of the even half << 16,
 * path | planes << 8 | transposed << 16}, then per output channel {bias', M,
 * B, e} or {bias', M, shift, 0}), output, scratch (the planes, then the int32
 * sums of one sweep). Flags: fast form, full int8 range, and TB_CM4_RQ_NO_SIGN
 * where the build proved the fast form's sign term changes nothing.
 *
 * The output of channel c is written only after channel c was copied, and
 * only to channel c's bytes, so with depth multiplier 1 the output may be the
 * input itself (the planner's overlap (0, 0)).
 */
#include "tb_cm4.h"

#define TB_CM4_RQ_FAST 1
#define TB_CM4_RQ_FULLRANGE 2
#define TB_CM4_RQ_NO_SIGN 8 /* cm4_prepare.DW_RQ_NO_SIGN */
#define TB_CM4_DW_RQ_PAIRS 32 /* cm4_prepare.DW_RQ_PAIRS: the stores take the pair units */
#define TB_CM4_DW_GENERAL 0
#define TB_CM4_DW_3X3S1 1
#define TB_CM4_DW_3X3S2 2
/* rq[3] bit 23, just below the batch field: the sweeps store their outputs
 * (cm4_prepare.DW_SWEEP_STORES), one channel per sweep or batched */
#define TB_CM4_DW_SWEEP_STORES 1
/* int16 per output channel in the 3x3 paths' filter: W01, W12 (stride 2: W01,
 * W2x) of each row, then the bias word the sums start from
 * (cm4_prepare.DW_3X3_RECORD) */
#define TB_CM4_DW_3X3_RECORD 14

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

/* stride 2: output slots per unrolled sweep (cm4_prepare.DW_STEPS); 32: the
 * pass bookkeeping (about 11 cycles) once per 16 double steps, not 8 (VWW's
 * stride-2 layers about 1% faster for 768 bytes of flash) */
#define TB_CM4_DW_STEPS 32

/* 3x3 stride 1 planes have a fixed pitch, so that the sweeps reach every row
 * with an immediate offset from one pointer (registers are what limits the
 * sweeps): rows of TB_CM4_DW_PITCH int16 values (cm4_prepare.DW_PITCH), sums
 * rows of as many int32. */
#define TB_CM4_DW_PITCH 64
/* column pairs per unrolled pass: 7, not 8, saves 224 bytes of flash (KWS's
 * 13-pair rows take 2 passes either way; VWW's 48x48x8 rows 4 instead of 3) */
#define TB_CM4_DW_S1_STEPS 7

/* One step of the stride-1 sweeps: the word pair (A, B) = (q[x], q[x+1]),
 * (q[x+2], q[x+3]) of one plane row times the filter row (W01, W12) into the
 * sums of outputs x (S0) and x + 1 (S1); FIRST starts the sums at the bias,
 * which register BIAS holds (it may be S0: S1 is started first). */
#define TB_CM4_DW_ROW_FIRST(S0, S1, W01, W12, BIAS)                                            \
  "smlatb " S1 ", %[ta], " W01 ", " BIAS "\n\t"                                                \
  "smlad  " S0 ", %[ta], " W01 ", " BIAS "\n\t"                                                \
  "smlabt " S0 ", %[tb], " W12 ", " S0 "\n\t"                                                  \
  "smlad  " S1 ", %[tb], " W12 ", " S1 "\n\t"
#define TB_CM4_DW_ROW_NEXT(S0, S1, W01, W12)                                                   \
  "smlad  " S0 ", %[ta], " W01 ", " S0 "\n\t"                                                  \
  "smlatb " S1 ", %[ta], " W01 ", " S1 "\n\t"                                                  \
  "smlabt " S0 ", %[tb], " W12 ", " S0 "\n\t"                                                  \
  "smlad  " S1 ", %[tb], " W12 ", " S1 "\n\t"
#define TB_CM4_DW_LOAD(ROW)                                                                    \
  "ldr.w  %[ta], [%[q], #(" #ROW " * 128 + 4 * \\k)]\n\t"                                       \
  "ldr.w  %[tb], [%[q], #(" #ROW " * 128 + 4 * \\k + 4)]\n\t"

/* The sums start at the channel's bias (its filter record's last word: 2 *
 * bias' with the doubled weights of the fast full-range form), loaded into s2
 * beside the first row's words (one more pipelined LDR, 1 cycle per step): the
 * store then takes the sums as they are, without an ADD per output. */
#define TB_CM4_DW_LOAD_BIAS "ldr.w  %[s2], %[bias]\n\t"

/* The first row's words into the sums registers s0, s1 beside the second
 * row's (ta, tb) and the bias (s2): 5 pipelined LDR (6 cycles, where the
 * first row's words and the bias, then the second row's took 7), then the
 * first row's products with the sums started at the bias (s3 holds the
 * second sum while s1 still holds the word B). */
#define TB_CM4_DW_LOAD01_FIRST                                                                 \
  TB_CM4_DW_LOAD(1)                                                                            \
  "ldr.w  %[s0], [%[q], #(4 * \\k)]\n\t"                                                        \
  "ldr.w  %[s1], [%[q], #(4 * \\k + 4)]\n\t"                                                    \
  TB_CM4_DW_LOAD_BIAS                                                                          \
  "smlatb %[s3], %[s0], %[w01a], %[s2]\n\t"                                                   \
  "smlad  %[s0], %[s0], %[w01a], %[s2]\n\t"                                                   \
  "smlabt %[s0], %[s1], %[w12a], %[s0]\n\t"                                                   \
  "smlad  %[s1], %[s1], %[w12a], %[s3]\n\t"

/* The sums of one step of the two-row stride-1 sweep (inside an assembler
 * macro with argument k, the step's column pair): outputs 2k, 2k + 1 of the
 * first row in s0, s1, of the second in s2, s3; 9 LDR, 24 MACs, 33
 * instructions of 4 bytes, 36 cycles. */
#define TB_CM4_DW_ROWS2_MACS                                                                   \
  TB_CM4_DW_LOAD01_FIRST                                                                       \
  TB_CM4_DW_ROW_NEXT("%[s0]", "%[s1]", "%[w01b]", "%[w12b]")                                   \
  TB_CM4_DW_ROW_FIRST("%[s2]", "%[s3]", "%[w01a]", "%[w12a]", "%[s2]")                         \
  TB_CM4_DW_LOAD(2)                                                                            \
  TB_CM4_DW_ROW_NEXT("%[s0]", "%[s1]", "%[w01c]", "%[w12c]")                                   \
  TB_CM4_DW_ROW_NEXT("%[s2]", "%[s3]", "%[w01b]", "%[w12b]")                                   \
  TB_CM4_DW_LOAD(3)                                                                            \
  TB_CM4_DW_ROW_NEXT("%[s2]", "%[s3]", "%[w01c]", "%[w12c]")

/* One step of the two-row stride-1 sweep: the sums, then 4 STR; 148 bytes,
 * 40 cycles. */
#define TB_CM4_DW_ROWS2_STEP                                                                   \
  TB_CM4_DW_ROWS2_MACS                                                                         \
  "str.w  %[s0], [%[accp], #(8 * \\k)]\n\t"                                                     \
  "str.w  %[s1], [%[accp], #(8 * \\k + 4)]\n\t"                                                 \
  "str.w  %[s2], [%[accp], #(256 + 8 * \\k)]\n\t"                                               \
  "str.w  %[s3], [%[accp], #(256 + 8 * \\k + 4)]\n\t"

/* Where the stride-1 sweep is between row sweeps (the registers are all taken
 * by the steps). */
typedef struct {
  int32_t passes, passes_init;   /* passes of TB_CM4_DW_S1_STEPS left in this row sweep, per row */
  int32_t pairs, odd;            /* row pairs left, and 1 if an odd last row follows */
  int32_t q_next, acc_next;      /* bytes from where a sweep ends to where the next one starts */
  uint32_t entry2, entry1;       /* where the first pass of a 2-row / 1-row sweep enters */
  int32_t bias;                  /* where the sums start (the filter record's last word) */
} tb_cm4_dw_s1_state;

/* 3x3 stride 1, `rows` output rows from plane row q (column 0), n >= 1 column
 * pairs per row: sums of output row j (from the bias on) into
 * acc[j * TB_CM4_DW_PITCH ..]. Two rows at a time, sharing the middle two of
 * the four plane rows they read, so a step loads 8 words and the bias for 4
 * outputs (9 LDR, 24 MACs, 4 STR: 40 cycles); an odd last row alone (7 LDR,
 * 12 MACs, 2 STR: 23 cycles for 2). One call for all the rows: between row
 * sweeps the loop state lives in memory. Each row sweep enters its unrolled
 * body so that the first pass does n mod 7 steps; weights in registers (w:
 * W01, W12 of the filter rows, then the bias word). */
static __attribute__((noinline)) void tb_cm4_dw3s1_rows(const int16_t *q, int32_t n, int32_t rows,
                                                        const int16_t *w, int32_t *acc) {
#ifdef TB_CM4_DSP
  const int32_t e = (TB_CM4_DW_S1_STEPS - n % TB_CM4_DW_S1_STEPS) % TB_CM4_DW_S1_STEPS;
  uint32_t qp = (uint32_t)q - 4u * (uint32_t)e, accp = (uint32_t)(acc - 2 * e);
  uint32_t s0 = (uint32_t)e, s1, s2, s3, ta, tb;
  tb_cm4_dw_s1_state st;
  st.passes_init = st.passes = (n + e) / TB_CM4_DW_S1_STEPS;
  st.pairs = rows >> 1, st.odd = rows & 1;
  st.q_next = 2 * 2 * TB_CM4_DW_PITCH - (st.passes_init - 1) * 4 * TB_CM4_DW_S1_STEPS;
  st.acc_next = 2 * 4 * TB_CM4_DW_PITCH - (st.passes_init - 1) * 8 * TB_CM4_DW_S1_STEPS;
  st.bias = (int32_t)tb_ld32(w + 12);
  __asm__ volatile(
      ".macro tb_dw3s1_rows2_step k\n\t"
      TB_CM4_DW_ROWS2_STEP
      ".endm\n\t"
      ".macro tb_dw3s1_row_step k\n\t"
      TB_CM4_DW_LOAD01_FIRST
      TB_CM4_DW_ROW_NEXT("%[s0]", "%[s1]", "%[w01b]", "%[w12b]")
      TB_CM4_DW_LOAD(2)
      TB_CM4_DW_ROW_NEXT("%[s0]", "%[s1]", "%[w01c]", "%[w12c]")
      "str.w  %[s0], [%[accp], #(8 * \\k)]\n\t"
      "str.w  %[s1], [%[accp], #(8 * \\k + 4)]\n\t"
      ".endm\n\t"
      /* entries: step e of each body (148 = 4 * 37 and 84 = 4 * 21 bytes per step) */
      "add    %[s1], %[s0], %[s0], lsl #2\n\t"
      "add    %[s1], %[s1], %[s0], lsl #5\n\t"
      "adr.w  %[s2], 1f\n\t"
      "add    %[s2], %[s2], %[s1], lsl #2\n\t"
      "orr    %[s2], %[s2], #1\n\t"
      "str    %[s2], %[entry2]\n\t"
      "add    %[s1], %[s0], %[s0], lsl #2\n\t"
      "add    %[s1], %[s1], %[s0], lsl #4\n\t"
      "adr.w  %[s3], 2f\n\t"
      "add    %[s3], %[s3], %[s1], lsl #2\n\t"
      "orr    %[s3], %[s3], #1\n\t"
      "str    %[s3], %[entry1]\n\t"
      "ldr    %[s1], %[pairs]\n\t"
      "cmp    %[s1], #0\n\t"
      "it     eq\n\t"
      "moveq  %[s2], %[s3]\n\t"
      "bx     %[s2]\n\t"
      ".p2align 2\n"
      "1:\n\t"
      ".irp k, 0,1,2,3,4,5,6\n\t"            /* TB_CM4_DW_S1_STEPS */
      "tb_dw3s1_rows2_step \\k\n\t"
      ".endr\n\t"
      ".if (. - 1b) - 148 * 7\n\t"
      ".error \"tb_cm4_dw3s1_rows: a two-row step is not 148 bytes\"\n\t"
      ".endif\n\t"
      "ldr    %[ta], %[passes]\n\t"
      "subs   %[ta], %[ta], #1\n\t"
      "beq    3f\n\t"
      "str    %[ta], %[passes]\n\t"
      "add    %[q], %[q], #(4 * 7)\n\t"
      "add    %[accp], %[accp], #(8 * 7)\n\t"
      "b      1b\n"
      "3:\n\t"                      /* a row pair done: the next pair, the odd row, or out */
      "ldr    %[ta], %[q_next]\n\t"
      "ldr    %[tb], %[acc_next]\n\t"
      "add    %[q], %[q], %[ta]\n\t"
      "add    %[accp], %[accp], %[tb]\n\t"
      "ldr    %[ta], %[passes_init]\n\t"
      "str    %[ta], %[passes]\n\t"
      "ldr    %[ta], %[pairs]\n\t"
      "subs   %[ta], %[ta], #1\n\t"
      "str    %[ta], %[pairs]\n\t"
      "itt    ne\n\t"
      "ldrne  %[ta], %[entry2]\n\t"
      "bxne   %[ta]\n\t"
      "ldr    %[ta], %[odd]\n\t"
      "cmp    %[ta], #0\n\t"
      "beq    9f\n\t"
      "ldr    %[ta], %[entry1]\n\t"
      "bx     %[ta]\n\t"
      ".p2align 2\n"
      "2:\n\t"
      ".irp k, 0,1,2,3,4,5,6\n\t"            /* TB_CM4_DW_S1_STEPS */
      "tb_dw3s1_row_step \\k\n\t"
      ".endr\n\t"
      ".if (. - 2b) - 84 * 7\n\t"
      ".error \"tb_cm4_dw3s1_rows: a one-row step is not 84 bytes\"\n\t"
      ".endif\n\t"
      ".purgem tb_dw3s1_rows2_step\n\t"
      ".purgem tb_dw3s1_row_step\n\t"
      "ldr    %[ta], %[passes]\n\t"
      "subs   %[ta], %[ta], #1\n\t"
      "beq    9f\n\t"
      "str    %[ta], %[passes]\n\t"
      "add    %[q], %[q], #(4 * 7)\n\t"
      "add    %[accp], %[accp], #(8 * 7)\n\t"
      "b      2b\n"
      "9:\n\t"
      : [s0] "+r"(s0), [s1] "=&r"(s1), [s2] "=&r"(s2), [s3] "=&r"(s3), [ta] "=&r"(ta),
        [tb] "=&r"(tb), [q] "+r"(qp), [accp] "+r"(accp), [passes] "+m"(st.passes),
        [pairs] "+m"(st.pairs), [entry1] "=m"(st.entry1), [entry2] "=m"(st.entry2)
      : [w01a] "r"(tb_ld32(w)), [w12a] "r"(tb_ld32(w + 2)), [w01b] "r"(tb_ld32(w + 4)), [w12b] "r"(tb_ld32(w + 6)),
        [w01c] "r"(tb_ld32(w + 8)), [w12c] "r"(tb_ld32(w + 10)), [passes_init] "m"(st.passes_init),
        [odd] "m"(st.odd), [q_next] "m"(st.q_next), [acc_next] "m"(st.acc_next),
        [bias] "m"(st.bias)
      : "cc", "memory");
#else
  int32_t j, k, r;
  for (j = 0; j < rows; ++j, q += TB_CM4_DW_PITCH, acc += TB_CM4_DW_PITCH) {
    for (k = 0; k < n; ++k) {
      int32_t s0 = (int32_t)tb_ld32(w + 12), s1 = s0;
      for (r = 0; r < 3; ++r) {
        const uint32_t a = tb_ld32(q + r * TB_CM4_DW_PITCH + 2 * k);
        const uint32_t b = tb_ld32(q + r * TB_CM4_DW_PITCH + 2 * k + 2);
        s0 = tb_smlabt(b, tb_ld32(w + 4 * r + 2), tb_smlad(a, tb_ld32(w + 4 * r), s0));
        s1 = tb_smlad(b, tb_ld32(w + 4 * r + 2), tb_smlatb(a, tb_ld32(w + 4 * r), s1));
      }
      acc[2 * k] = s0, acc[2 * k + 1] = s1;
    }
  }
#endif
}

/* Column pairs per channel in the batched sweep's unrolled body
 * (cm4_prepare.DW_BATCH_STEPS): 6 covers VWW's 12x12 and 6x6 maps; each step
 * is 144 bytes of flash on every model with a depthwise layer. */
#define TB_CM4_DW_BATCH_STEPS 6

/* Where the channel-batched stride-1 sweep is between row pairs and channels
 * (the registers are all taken by the steps and the weights). */
typedef struct {
  const int16_t *w;              /* the next channel's filter record */
  int32_t left;                  /* channels left */
  int32_t pairs, pairs0;         /* row pairs left in this channel; per channel */
  int32_t q_chan, acc_chan;      /* bytes from past a channel's last row pair to the next channel */
  uint32_t entry;                /* where a row pair's steps enter the unrolled body */
  int32_t bias;                  /* the channel's bias word (where its sums start) */
} tb_cm4_dw_batch_state;

/* The batched sweeps' start of a channel: its 3 rows' weight pairs into
 * registers, its bias to st, the record pointer past them (7 words). */
#define TB_CM4_DW_BATCH_CHANNEL                                                                \
      "ldr    %[ta], %[wp]\n\t"                                                                \
      "ldr    %[w01a], [%[ta]]\n\t"                                                            \
      "ldr    %[w12a], [%[ta], #4]\n\t"                                                        \
      "ldr    %[w01b], [%[ta], #8]\n\t"                                                        \
      "ldr    %[w12b], [%[ta], #12]\n\t"                                                       \
      "ldr    %[w01c], [%[ta], #16]\n\t"                                                       \
      "ldr    %[w12c], [%[ta], #20]\n\t"                                                       \
      "ldr    %[tb], [%[ta], #24]\n\t"                                                         \
      "adds   %[ta], %[ta], #28\n\t"                                                           \
      "str    %[tb], %[bias]\n\t"                                                              \
      "str    %[ta], %[wp]\n\t"

/* 3x3 stride 1 on small maps, `batch` channels side by side in one plane
 * (channel k's columns at k * cw values, its sums at k * cw int32): `rows`
 * (even) output rows, 1 <= n <= TB_CM4_DW_BATCH_STEPS column pairs per
 * channel row. Why: on a 6x6 map a channel has 9 two-row steps, and the
 * per-channel sweep call, its set-up and its per-row-pair bookkeeping cost
 * about as much as the steps; here one call sweeps the batch, channel by
 * channel: its 6 weight words and its bias (from the filter: 14 int16 per
 * channel, W01, W12 of each row, then the bias word) are loaded once, then
 * its row pairs (the next one 2 plane rows and 2 sums rows on: 12 cycles
 * between them, where reloading the weights per row pair took 34). The steps
 * are those of tb_cm4_dw3s1_rows. */
static __attribute__((noinline)) void tb_cm4_dw3s1_batch(const int16_t *q, int32_t n,
                                                         int32_t rows, int32_t batch, int32_t cw,
                                                         const int16_t *filter, int32_t *acc) {
#ifdef TB_CM4_DSP
  const int32_t e = TB_CM4_DW_BATCH_STEPS - n;
  uint32_t qp = (uint32_t)q - 4u * (uint32_t)e, accp = (uint32_t)(acc - 2 * e);
  uint32_t s0 = (uint32_t)e, s1, s2, s3, ta, tb;
  uint32_t w01a, w12a, w01b, w12b, w01c, w12c;  /* the channel's filter rows, loaded in the loop */
  tb_cm4_dw_batch_state st;
  st.w = filter;
  st.left = batch;
  st.pairs0 = rows >> 1;
  /* the last row pair leaves q and accp at its own start */
  st.q_chan = 2 * cw - (st.pairs0 - 1) * 2 * 2 * TB_CM4_DW_PITCH;
  st.acc_chan = 4 * cw - (st.pairs0 - 1) * 2 * 4 * TB_CM4_DW_PITCH;
  __asm__ volatile(
      ".macro tb_dw3s1_batch_step k\n\t"
      TB_CM4_DW_ROWS2_STEP
      ".endm\n\t"
      /* entry: step e of the body (148 = 4 * 37 bytes per step) */
      "add    %[s1], %[s0], %[s0], lsl #2\n\t"
      "add    %[s1], %[s1], %[s0], lsl #5\n\t"
      "adr.w  %[s2], 1f\n\t"
      "add    %[s2], %[s2], %[s1], lsl #2\n\t"
      "orr    %[s2], %[s2], #1\n\t"
      "str    %[s2], %[entry]\n"
      "5:\n\t"                      /* a channel: its weights and bias, then its row pairs */
      TB_CM4_DW_BATCH_CHANNEL
      "ldr    %[ta], %[pairs0]\n\t"
      "str    %[ta], %[pairs]\n\t"
      "ldr    %[ta], %[entry]\n\t"
      "bx     %[ta]\n\t"
      ".p2align 2\n"
      "1:\n\t"
      ".irp k, 0,1,2,3,4,5\n\t"            /* TB_CM4_DW_BATCH_STEPS */
      "tb_dw3s1_batch_step \\k\n\t"
      ".endr\n\t"
      ".if (. - 1b) - 148 * 6\n\t"
      ".error \"tb_cm4_dw3s1_batch: a step is not 148 bytes\"\n\t"
      ".endif\n\t"
      ".purgem tb_dw3s1_batch_step\n\t"
      "ldr    %[ta], %[pairs]\n\t"   /* the channel's next row pair, or the next channel */
      "subs   %[ta], %[ta], #1\n\t"
      "beq    6f\n\t"
      "str    %[ta], %[pairs]\n\t"
      "add    %[q], %[q], #(2 * 2 * 64)\n\t"     /* TB_CM4_DW_PITCH */
      "add    %[accp], %[accp], #(2 * 4 * 64)\n\t"
      "ldr    %[ta], %[entry]\n\t"
      "bx     %[ta]\n"
      "6:\n\t"
      "ldr    %[ta], %[q_chan]\n\t"
      "ldr    %[tb], %[acc_chan]\n\t"
      "add    %[q], %[q], %[ta]\n\t"
      "add    %[accp], %[accp], %[tb]\n\t"
      "ldr    %[ta], %[left]\n\t"
      "subs   %[ta], %[ta], #1\n\t"
      "str    %[ta], %[left]\n\t"
      "bne    5b\n\t"
      : [s0] "+r"(s0), [s1] "=&r"(s1), [s2] "=&r"(s2), [s3] "=&r"(s3), [ta] "=&r"(ta),
        [tb] "=&r"(tb), [q] "+r"(qp), [accp] "+r"(accp), [w01a] "=&r"(w01a), [w12a] "=&r"(w12a),
        [w01b] "=&r"(w01b), [w12b] "=&r"(w12b), [w01c] "=&r"(w01c), [w12c] "=&r"(w12c),
        [wp] "+m"(st.w), [left] "+m"(st.left), [pairs] "=m"(st.pairs), [entry] "=m"(st.entry),
        [bias] "=m"(st.bias)
      : [pairs0] "m"(st.pairs0), [q_chan] "m"(st.q_chan), [acc_chan] "m"(st.acc_chan)
      : "cc", "memory");
#else
  int32_t k;
  for (k = 0; k < batch; ++k) {
    tb_cm4_dw3s1_rows(q + k * cw, n, rows, filter + TB_CM4_DW_3X3_RECORD * k, acc + k * cw);
  }
#endif
}

#ifdef TB_CM4_DSP
/* Where the requantizing batched sweep is between row pairs and channels. */
typedef struct {
  const int16_t *w;              /* the next channel's filter record */
  const int32_t *r;              /* the next channel's {bias', M, B, e} */
  int32_t left;                  /* channels left */
  int32_t pairs, pairs0;         /* row pairs left in this channel; per channel */
  int32_t q_chan, o_chan;        /* from past a channel's last row pair to the next channel */
  int32_t o_pair;                /* output bytes from past a row pair's last step to the next */
  uint32_t entry;                /* where a row pair's steps enter the unrolled body (set up:
                                    the steps skipped) */
  int32_t bias, m, b, e;         /* the channel's bias word and {M, B, e} (M, B one LDRD) */
  int32_t row, col;              /* output bytes to the next row, column (one LDRD) */
} tb_cm4_dw_batch_rq_state;

/* The requantization and store of a step's 4 sums (no sign term: the build
 * proved it changes nothing): {M, B}, 4 SMMLAR, e, 4 ASR, 4 SSAT, then the
 * bytes of the step's two columns in its two rows; o on by two columns. 21
 * instructions of 4 bytes, 26 cycles, where storing the sums (4 STR) and the
 * pair units' store of them took about 36. */
#define TB_CM4_DW_ROWS2_RQ_NO_SIGN                                                             \
  "ldrd   %[ta], %[tb], %[mb]\n\t"                                                              \
  "smmlar %[s0], %[s0], %[ta], %[tb]\n\t"                                                      \
  "smmlar %[s1], %[s1], %[ta], %[tb]\n\t"                                                      \
  "smmlar %[s2], %[s2], %[ta], %[tb]\n\t"                                                      \
  "smmlar %[s3], %[s3], %[ta], %[tb]\n\t"                                                      \
  "ldr.w  %[ta], %[e]\n\t"                                                                     \
  "asr.w  %[s0], %[s0], %[ta]\n\t"                                                             \
  "asr.w  %[s1], %[s1], %[ta]\n\t"                                                             \
  "asr.w  %[s2], %[s2], %[ta]\n\t"                                                             \
  "asr.w  %[s3], %[s3], %[ta]\n\t"                                                             \
  "ssat   %[s0], #8, %[s0]\n\t"                                                                \
  "ssat   %[s1], #8, %[s1]\n\t"                                                                \
  "ssat   %[s2], #8, %[s2]\n\t"                                                                \
  "ssat   %[s3], #8, %[s3]\n\t"                                                                \
  "ldrd   %[ta], %[tb], %[rowcol]\n\t"                                                          \
  "add.w  %[ta], %[o], %[ta]\n\t"                                                              \
  "strb.w %[s0], [%[o]]\n\t"                                                                   \
  "strb.w %[s1], [%[o], %[tb]]\n\t"                                                            \
  "strb.w %[s2], [%[ta]]\n\t"                                                                  \
  "strb.w %[s3], [%[ta], %[tb]]\n\t"                                                           \
  "add.w  %[o], %[o], %[tb], lsl #1\n\t"

/* The requantizing sweeps' entry: the address of step `entry` of the body at
 * local label 1 (216 = 27 * 8 bytes per step), Thumb bit set, into s2. */
#define TB_CM4_DW_RQ_ENTRY                                                                     \
      "ldr    %[s0], %[entry]\n\t"                                                             \
      "add    %[s1], %[s0], %[s0], lsl #1\n\t"                                                 \
      "add    %[s1], %[s1], %[s1], lsl #3\n\t"                                                 \
      "adr.w  %[s2], 1f\n\t"                                                                   \
      "add    %[s2], %[s2], %[s1], lsl #3\n\t"                                                 \
      "orr    %[s2], %[s2], #1\n\t"

/* tb_cm4_dw3s1_batch with the store inside: each step requantizes its 4 sums
 * in registers and writes the bytes to the output (channel k's at o + k),
 * where the sweep stored the sums and a second pass (tb_cm4_dw_store_pairs_batch)
 * loaded, requantized and stored them: on VWW's 6x6 maps the store was a
 * third of the layer, its loads, row ends and channel ends 4 of its 8 cycles
 * per output. For the fast full-range form without the sign term and an even
 * out_w (no column past the row's end to write); `rows` even, 1 <= n <=
 * TB_CM4_DW_BATCH_STEPS column pairs, the channels' records r (4 words
 * apart). */
static __attribute__((noinline)) void tb_cm4_dw3s1_batch_rq(const int16_t *q, int32_t n,
                                                            int32_t rows, int32_t batch,
                                                            int32_t cw, const int16_t *filter,
                                                            const int32_t *r, int8_t *out,
                                                            int32_t col, int32_t row) {
  const int32_t e = TB_CM4_DW_BATCH_STEPS - n;
  uint32_t qp = (uint32_t)q - 4u * (uint32_t)e, o = (uint32_t)out;
  uint32_t s0, s1, s2, s3, ta, tb;
  uint32_t w01a, w12a, w01b, w12b, w01c, w12c;  /* the channel's filter rows, loaded in the loop */
  tb_cm4_dw_batch_rq_state st;
  st.w = filter, st.r = r, st.left = batch, st.pairs0 = rows >> 1, st.entry = (uint32_t)e;
  st.col = col, st.row = row;
  /* the last row pair leaves q at its own start, o past its last step */
  st.q_chan = 2 * cw - (st.pairs0 - 1) * 2 * 2 * TB_CM4_DW_PITCH;
  st.o_pair = 2 * row - 2 * n * col;
  st.o_chan = 1 - (st.pairs0 - 1) * 2 * row - 2 * n * col;
  __asm__ volatile(
      ".macro tb_dw3s1_batch_rq_step k\n\t"
      TB_CM4_DW_ROWS2_MACS
      TB_CM4_DW_ROWS2_RQ_NO_SIGN
      ".endm\n\t"
      TB_CM4_DW_RQ_ENTRY
      "str    %[s2], %[entry]\n"
      "5:\n\t"                      /* a channel: its weights, bias and {M, B, e}, then its row pairs */
      TB_CM4_DW_BATCH_CHANNEL
      "ldr    %[ta], %[rp]\n\t"
      "ldr    %[tb], [%[ta], #4]\n\t"
      "str    %[tb], %[mb]\n\t"
      "ldr    %[tb], [%[ta], #8]\n\t"
      "str    %[tb], %[bb]\n\t"
      "ldr    %[tb], [%[ta], #12]\n\t"
      "str    %[tb], %[e]\n\t"
      "adds   %[ta], %[ta], #16\n\t"
      "str    %[ta], %[rp]\n\t"
      "ldr    %[ta], %[pairs0]\n\t"
      "str    %[ta], %[pairs]\n\t"
      "ldr    %[ta], %[entry]\n\t"
      "bx     %[ta]\n\t"
      ".p2align 2\n"
      "1:\n\t"
      ".irp k, 0,1,2,3,4,5\n\t"            /* TB_CM4_DW_BATCH_STEPS */
      "tb_dw3s1_batch_rq_step \\k\n\t"
      ".endr\n\t"
      ".if (. - 1b) - 216 * 6\n\t"
      ".error \"tb_cm4_dw3s1_batch_rq: a step is not 216 bytes\"\n\t"
      ".endif\n\t"
      ".purgem tb_dw3s1_batch_rq_step\n\t"
      "ldr    %[ta], %[pairs]\n\t"   /* the channel's next row pair, or the next channel */
      "subs   %[ta], %[ta], #1\n\t"
      "beq    6f\n\t"
      "str    %[ta], %[pairs]\n\t"
      "add    %[q], %[q], #(2 * 2 * 64)\n\t"     /* TB_CM4_DW_PITCH */
      "ldr    %[ta], %[o_pair]\n\t"
      "add    %[o], %[o], %[ta]\n\t"
      "ldr    %[ta], %[entry]\n\t"
      "bx     %[ta]\n"
      "6:\n\t"
      "ldrd   %[ta], %[tb], %[chan]\n\t"
      "add    %[q], %[q], %[ta]\n\t"
      "add    %[o], %[o], %[tb]\n\t"
      "ldr    %[ta], %[left]\n\t"
      "subs   %[ta], %[ta], #1\n\t"
      "str    %[ta], %[left]\n\t"
      "bne    5b\n\t"
      /* (st's fields as "m" inputs, written too: nothing reads st after the
       * asm, and "+m" operands would pass the limit of 30) */
      : [s0] "=&r"(s0), [s1] "=&r"(s1), [s2] "=&r"(s2), [s3] "=&r"(s3), [ta] "=&r"(ta),
        [tb] "=&r"(tb), [q] "+r"(qp), [o] "+r"(o), [w01a] "=&r"(w01a), [w12a] "=&r"(w12a),
        [w01b] "=&r"(w01b), [w12b] "=&r"(w12b), [w01c] "=&r"(w01c), [w12c] "=&r"(w12c)
      : [wp] "m"(st.w), [rp] "m"(st.r), [left] "m"(st.left), [pairs] "m"(st.pairs),
        [entry] "m"(st.entry), [bias] "m"(st.bias), [mb] "m"(st.m), [bb] "m"(st.b),
        [e] "m"(st.e), [pairs0] "m"(st.pairs0), [chan] "m"(st.q_chan),
        [o_pair] "m"(st.o_pair), [rowcol] "m"(st.row)
      : "cc", "memory");
}
#endif

#ifdef TB_CM4_DSP
/* Where the requantizing stride-1 sweep is between passes and row pairs. */
typedef struct {
  int32_t passes, passes_init;   /* passes of TB_CM4_DW_S1_STEPS left in this row pair, per pair */
  int32_t pairs;                 /* row pairs left */
  int32_t q_next, o_next;        /* from where a row pair's sweep ends to where the next starts */
  uint32_t entry;                /* where a row pair's first pass enters (set up: the steps skipped) */
  int32_t bias, m, b, e;         /* the channel's bias word and {M, B, e} (M, B one LDRD) */
  int32_t row, col;              /* output bytes to the next row, column (one LDRD) */
} tb_cm4_dw_rows_rq_state;

/* tb_cm4_dw3s1_rows with the store inside (the steps of tb_cm4_dw3s1_batch_rq):
 * `rows` (even) output rows of n column pairs (2n = out_w: even) requantized
 * in registers and written to the output at `out`, columns col bytes apart,
 * rows row apart. For the fast full-range form without the sign term: VWW's
 * 48x48x8 and 24x24x32 stride-1 layers, where the sums rows, their pair-unit
 * store and its row ends cost about 9 cycles per 4 outputs more. */
static __attribute__((noinline)) void tb_cm4_dw3s1_rows_rq(const int16_t *q, int32_t n,
                                                           int32_t rows, const int16_t *w,
                                                           const int32_t *r, int8_t *out,
                                                           int32_t col, int32_t row) {
  const int32_t e = (TB_CM4_DW_S1_STEPS - n % TB_CM4_DW_S1_STEPS) % TB_CM4_DW_S1_STEPS;
  uint32_t qp = (uint32_t)q - 4u * (uint32_t)e, o = (uint32_t)out;
  uint32_t s0, s1, s2, s3, ta, tb;
  tb_cm4_dw_rows_rq_state st;
  st.passes_init = st.passes = (n + e) / TB_CM4_DW_S1_STEPS;
  st.pairs = rows >> 1;
  st.q_next = 2 * 2 * TB_CM4_DW_PITCH - (st.passes_init - 1) * 4 * TB_CM4_DW_S1_STEPS;
  st.o_next = 2 * row - 2 * n * col;
  st.entry = (uint32_t)e;
  st.bias = (int32_t)tb_ld32(w + 12), st.m = r[1], st.b = r[2], st.e = r[3];
  st.row = row, st.col = col;
  __asm__ volatile(
      ".macro tb_dw3s1_rows_rq_step k\n\t"
      TB_CM4_DW_ROWS2_MACS
      TB_CM4_DW_ROWS2_RQ_NO_SIGN
      ".endm\n\t"
      TB_CM4_DW_RQ_ENTRY
      "str    %[s2], %[entry]\n\t"
      "bx     %[s2]\n\t"
      ".p2align 2\n"
      "1:\n\t"
      ".irp k, 0,1,2,3,4,5,6\n\t"            /* TB_CM4_DW_S1_STEPS */
      "tb_dw3s1_rows_rq_step \\k\n\t"
      ".endr\n\t"
      ".if (. - 1b) - 216 * 7\n\t"
      ".error \"tb_cm4_dw3s1_rows_rq: a step is not 216 bytes\"\n\t"
      ".endif\n\t"
      ".purgem tb_dw3s1_rows_rq_step\n\t"
      "ldr    %[ta], %[passes]\n\t"
      "subs   %[ta], %[ta], #1\n\t"
      "beq    3f\n\t"
      "str    %[ta], %[passes]\n\t"
      "add    %[q], %[q], #(4 * 7)\n\t"
      "b      1b\n"
      "3:\n\t"                      /* a row pair done: the next, or out */
      "ldr    %[ta], %[pairs]\n\t"
      "subs   %[ta], %[ta], #1\n\t"
      "beq    9f\n\t"
      "str    %[ta], %[pairs]\n\t"
      "ldr    %[ta], %[q_next]\n\t"
      "ldr    %[tb], %[o_next]\n\t"
      "add    %[q], %[q], %[ta]\n\t"
      "add    %[o], %[o], %[tb]\n\t"
      "ldr    %[ta], %[passes_init]\n\t"
      "str    %[ta], %[passes]\n\t"
      "ldr    %[ta], %[entry]\n\t"
      "bx     %[ta]\n"
      "9:\n\t"
      /* (st's fields as "m" inputs, written too: nothing reads st after the asm) */
      : [s0] "=&r"(s0), [s1] "=&r"(s1), [s2] "=&r"(s2), [s3] "=&r"(s3), [ta] "=&r"(ta),
        [tb] "=&r"(tb), [q] "+r"(qp), [o] "+r"(o)
      : [w01a] "r"(tb_ld32(w)), [w12a] "r"(tb_ld32(w + 2)), [w01b] "r"(tb_ld32(w + 4)),
        [w12b] "r"(tb_ld32(w + 6)), [w01c] "r"(tb_ld32(w + 8)), [w12c] "r"(tb_ld32(w + 10)),
        [passes] "m"(st.passes), [pairs] "m"(st.pairs), [entry] "m"(st.entry),
        [bias] "m"(st.bias), [mb] "m"(st.m), [e] "m"(st.e), [rowcol] "m"(st.row),
        [passes_init] "m"(st.passes_init), [q_next] "m"(st.q_next), [o_next] "m"(st.o_next)
      : "cc", "memory");
}
#endif

/* 3x3 stride 2: n >= 1 output slots, q at the even-row position of the first,
 * its odd row off1 bytes and the next even row off2 bytes further; w: W01, W2x
 * of the rows. Two slots per step: slot x reads the words (q[2x], q[2x+1]),
 * (q[2x+2], q[2x+3]) of each row, slot x + 1 the second of them and the next,
 * so a step loads 3 words per row for 2 outputs (9 LDR, 12 MACs, 2 STR: 26
 * cycles, where one slot at a time took 16 per output; the sums start at the
 * bias, loaded beside the first row's words: 27 cycles). The rows' w2 live in
 * two registers (w2 of the first two rows as the halves of one, SMLABB /
 * SMLABT), so the step has the third word's register. Steps of 96 bytes, the
 * body entered so that its first pass does n / 2 mod 16 steps; an odd n ends
 * with one single-slot step (56 bytes). */
static __attribute__((noinline)) void tb_cm4_dw3s2_sweep(const int16_t *q, int32_t off1,
                                                         int32_t off2, int32_t n,
                                                         const int16_t *w, int32_t *acc) {
#ifdef TB_CM4_DSP
  const int32_t pairs = n >> 1;
  const int32_t e = (TB_CM4_DW_STEPS / 2 - pairs % (TB_CM4_DW_STEPS / 2)) % (TB_CM4_DW_STEPS / 2);
  uint32_t p0 = (uint32_t)q - 8u * (uint32_t)e;
  uint32_t p1 = p0 + (uint32_t)off1, p2 = p0 + (uint32_t)off2;
  uint32_t accp = (uint32_t)(acc - 2 * e);
  uint32_t s0 = (uint32_t)e * 96u, s1, ta, tb, tc;
  int32_t passes = (pairs + e) / (TB_CM4_DW_STEPS / 2), odd = n & 1;
  const int32_t bias = (int32_t)tb_ld32(w + 12);
  if (!pairs) {                 /* a single slot: the tail step at the body's end */
    p0 -= 4 * TB_CM4_DW_STEPS, p1 -= 4 * TB_CM4_DW_STEPS, p2 -= 4 * TB_CM4_DW_STEPS;
    accp -= 4 * TB_CM4_DW_STEPS;
  }
  __asm__ volatile(
      ".macro tb_dw3s2_row2 k, p, wa, wb, mb, first\n\t"
      "ldr.w  %[ta], [\\p, #(8*\\k)]\n\t"
      "ldr.w  %[tb], [\\p, #(8*\\k+4)]\n\t"
      "ldr.w  %[tc], [\\p, #(8*\\k+8)]\n\t"
      ".if \\first\n\t"
      "ldr.w  %[s1], %[bias_m]\n\t"
      "smlad  %[s0], %[ta], \\wa, %[s1]\n\t"
      "smlad  %[s1], %[tb], \\wa, %[s1]\n\t"
      ".else\n\t"
      "smlad  %[s0], %[ta], \\wa, %[s0]\n\t"
      "smlad  %[s1], %[tb], \\wa, %[s1]\n\t"
      ".endif\n\t"
      "\\mb   %[s0], %[tb], \\wb, %[s0]\n\t"
      "\\mb   %[s1], %[tc], \\wb, %[s1]\n\t"
      ".endm\n\t"
      ".macro tb_dw3s2_step2 k\n\t"
      "tb_dw3s2_row2 \\k, %[p0], %[w01a], %[w2ab], smlabb, 1\n\t"
      "tb_dw3s2_row2 \\k, %[p1], %[w01b], %[w2ab], smlabt, 0\n\t"
      "tb_dw3s2_row2 \\k, %[p2], %[w01c], %[w2c], smlabb, 0\n\t"
      "str.w  %[s0], [%[accp], #(8*\\k)]\n\t"
      "str.w  %[s1], [%[accp], #(8*\\k+4)]\n\t"
      ".endm\n\t"
      "ldr    %[ta], %[pass_m]\n\t"
      "cmp    %[ta], #0\n\t"
      "beq    8f\n\t"
      "adr.w  %[s1], 1f\n\t"
      "add    %[s1], %[s1], %[s0]\n\t"
      "orr    %[s1], %[s1], #1\n\t"
      "bx     %[s1]\n\t"
      ".p2align 2\n"
      "1:\n\t"
      ".irp k, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n\t"   /* TB_CM4_DW_STEPS / 2 */
      "tb_dw3s2_step2 \\k\n\t"
      ".endr\n\t"
      ".if (. - 1b) - 96 * 16\n\t"
      ".error \"tb_cm4_dw3s2_sweep: a step is not 96 bytes\"\n\t"
      ".endif\n\t"
      ".purgem tb_dw3s2_step2\n\t"
      ".purgem tb_dw3s2_row2\n\t"
      "ldr    %[ta], %[pass_m]\n\t"
      "subs   %[ta], %[ta], #1\n\t"
      "beq    8f\n\t"
      "str    %[ta], %[pass_m]\n\t"
      "add    %[p0], %[p0], #(4 * 32)\n\t"   /* TB_CM4_DW_STEPS slots */
      "add    %[p1], %[p1], #(4 * 32)\n\t"
      "add    %[p2], %[p2], #(4 * 32)\n\t"
      "add    %[accp], %[accp], #(4 * 32)\n\t"
      "b      1b\n"
      "8:\n\t"                               /* an odd n: the last slot alone */
      "ldr    %[ta], %[odd_m]\n\t"
      "cmp    %[ta], #0\n\t"
      "beq    9f\n\t"
      "ldr.w  %[ta], [%[p0], #(4 * 32)]\n\t"
      "ldr.w  %[tb], [%[p0], #(4 * 32 + 4)]\n\t"
      "ldr.w  %[s1], %[bias_m]\n\t"
      "smlad  %[s0], %[ta], %[w01a], %[s1]\n\t"
      "smlabb %[s0], %[tb], %[w2ab], %[s0]\n\t"
      "ldr.w  %[ta], [%[p1], #(4 * 32)]\n\t"
      "ldr.w  %[tb], [%[p1], #(4 * 32 + 4)]\n\t"
      "smlad  %[s0], %[ta], %[w01b], %[s0]\n\t"
      "smlabt %[s0], %[tb], %[w2ab], %[s0]\n\t"
      "ldr.w  %[ta], [%[p2], #(4 * 32)]\n\t"
      "ldr.w  %[tb], [%[p2], #(4 * 32 + 4)]\n\t"
      "smlad  %[s0], %[ta], %[w01c], %[s0]\n\t"
      "smlabb %[s0], %[tb], %[w2c], %[s0]\n\t"
      "str.w  %[s0], [%[accp], #(4 * 32)]\n"
      "9:\n\t"
      : [s0] "+r"(s0), [s1] "=&r"(s1), [ta] "=&r"(ta), [tb] "=&r"(tb), [tc] "=&r"(tc),
        [p0] "+r"(p0), [p1] "+r"(p1), [p2] "+r"(p2), [accp] "+r"(accp), [pass_m] "+m"(passes)
      : [odd_m] "m"(odd), [bias_m] "m"(bias), [w01a] "r"(tb_ld32(w)),
        [w2ab] "r"(tb_pkhbt16(tb_ld32(w + 2), tb_ld32(w + 6))), [w01b] "r"(tb_ld32(w + 4)),
        [w01c] "r"(tb_ld32(w + 8)), [w2c] "r"(tb_ld32(w + 10))
      : "cc", "memory");
#else
  int32_t k;
  const char *r0 = (const char *)q;
  const int32_t off[3] = {0, off1, off2};
  for (k = 0; k < n; ++k) {
    int32_t s0 = (int32_t)tb_ld32(w + 12), r;
    for (r = 0; r < 3; ++r) {
      const uint32_t a = tb_ld32(r0 + off[r] + 4 * k);
      const uint32_t b = tb_ld32(r0 + off[r] + 4 * k + 4);
      s0 = tb_smlad(a, tb_ld32(w + 4 * r), s0);
      s0 = tb_smlabb(b, tb_ld32(w + 4 * r + 2), s0);
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
/* Fast requantization of a full-range output: tb_rq on a sum that the sweep
 * started at the bias with doubled weights (it is the form's 2 * acc);
 * without the sign term where the build proved it changes nothing
 * (TB_CM4_RQ_NO_SIGN). */
#define TB_CM4_DW_RQ_SIGN(T)                             \
  "add %[u], %[b], " T ", asr #31\n\t"                   \
  "smmlar " T ", " T ", %[m], %[u]\n\t"                  \
  "asr " T ", " T ", %[e]\n\t"                           \
  "ssat " T ", #8, " T "\n\t"
#define TB_CM4_DW_RQ_NO_SIGN(T)                          \
  "smmlar " T ", " T ", %[m], %[b]\n\t"                  \
  "asr " T ", " T ", %[e]\n\t"                           \
  "ssat " T ", #8, " T "\n\t"

/* Row state the loop reloads once per row (the registers are all taken). */
typedef struct {
  int32_t cols, skip, adjust;  /* skip: bytes of sums past a row's last; adjust: output
                                  bytes from past a row's last to the next row's first */
} tb_cm4_dw_rows;

/* Four sums: LDM, requantize, 4 STRB (23 cycles without the sign term). */
#define TB_CM4_DW_STORE4(RQ1)                                                                  \
  "ldmia %[ap]!, {%[t0], %[t1], %[t2], %[t3]}\n\t"                                             \
  RQ1("%[t0]") RQ1("%[t1]") RQ1("%[t2]") RQ1("%[t3]")                                          \
  "strb %[t0], [%[o]]\n\t"                                                                     \
  "strb %[t1], [%[o], %[step]]\n\t"                                                            \
  "add %[o], %[o], %[step], lsl #1\n\t"                                                        \
  "strb %[t2], [%[o]]\n\t"                                                                     \
  "strb %[t3], [%[o], %[step]]\n\t"                                                            \
  "add %[o], %[o], %[step], lsl #1\n\t"

/* The whole tile in one loop, rows counted in a register: per row, groups of
 * 8 sums (two LDM, 50 cycles without the sign term, 58 with), then 4, a pair
 * (LDRD) and a single for the rest. */
#define TB_CM4_DW_STORE_LOOP(RQ1)                                                              \
  "1:\n\t"                                                                                     \
  "ldr %[cnt], %[cols]\n\t"                                                                    \
  "subs %[cnt], %[cnt], #8\n\t"                                                                \
  "blt 6f\n"                                                                                   \
  "2:\n\t"                                                                                     \
  TB_CM4_DW_STORE4(RQ1)                                                                        \
  TB_CM4_DW_STORE4(RQ1)                                                                        \
  "subs %[cnt], %[cnt], #8\n\t"                                                                \
  "bge 2b\n"                                                                                   \
  "6:\n\t"                     /* cnt = cols mod 8 - 8: its low 3 bits are what is left */     \
  "tst %[cnt], #4\n\t"                                                                         \
  "beq 3f\n\t"                                                                                 \
  TB_CM4_DW_STORE4(RQ1)                                                                        \
  "3:\n\t"                                                                                     \
  "lsls %[cnt], %[cnt], #31\n\t" /* C: bit 1 of cnt (a pair left), N: bit 0 (a single) */      \
  "bcc 4f\n\t"                                                                                 \
  "ldrd %[t0], %[t1], [%[ap]], #8\n\t"                                                         \
  RQ1("%[t0]") RQ1("%[t1]")                                                                    \
  "strb %[t0], [%[o]]\n\t"                                                                     \
  "strb %[t1], [%[o], %[step]]\n\t"                                                            \
  "add %[o], %[o], %[step], lsl #1\n\t"                                                        \
  "4:\n\t"                                                                                     \
  "bpl 5f\n\t"                                                                                 \
  "ldr %[t0], [%[ap]], #4\n\t"                                                                 \
  RQ1("%[t0]")                                                                                 \
  "strb %[t0], [%[o]]\n\t"                                                                     \
  "add %[o], %[o], %[step]\n"                                                                  \
  "5:\n\t"                                                                                     \
  "ldr %[t0], %[skip]\n\t"                                                                     \
  "ldr %[t1], %[adjust]\n\t"                                                                   \
  "add %[ap], %[ap], %[t0]\n\t"                                                                \
  "add %[o], %[o], %[t1]\n\t"                                                                  \
  "subs %[rows], %[rows], #1\n\t"                                                              \
  "bne 1b\n\t"

static void tb_cm4_dw_store_fast(const int32_t *acc, const tb_cm4_dw_rows *st, int32_t rows,
                                 const int32_t *r, int32_t step, int8_t *out, int32_t no_sign) {
  register uint32_t t0 __asm__("r0"), t1 __asm__("r1"), t2 __asm__("r2"), t3 __asm__("r3");
  uint32_t u, ap = (uint32_t)acc;
  int32_t cnt;
  if (no_sign) {
    __asm__ volatile(TB_CM4_DW_STORE_LOOP(TB_CM4_DW_RQ_NO_SIGN)
                     : [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3),
                       [cnt] "=&r"(cnt), [ap] "+r"(ap), [o] "+r"(out), [rows] "+r"(rows)
                     : [b] "r"(r[2]), [m] "r"(r[1]), [e] "r"(r[3]),
                       [step] "r"(step), [cols] "m"(st->cols), [skip] "m"(st->skip),
                       [adjust] "m"(st->adjust)
                     : "cc", "memory");
  } else {
    __asm__ volatile(TB_CM4_DW_STORE_LOOP(TB_CM4_DW_RQ_SIGN)
                     : [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3),
                       [u] "=&r"(u), [cnt] "=&r"(cnt), [ap] "+r"(ap), [o] "+r"(out),
                       [rows] "+r"(rows)
                     : [b] "r"(r[2]), [m] "r"(r[1]), [e] "r"(r[3]),
                       [step] "r"(step), [cols] "m"(st->cols), [skip] "m"(st->skip),
                       [adjust] "m"(st->adjust)
                     : "cc", "memory");
  }
  (void)u;
}
#endif

#ifdef TB_CM4_DSP
/* Rows of at most 2 * units + 1 sums (units: 24 pair units in the form
 * without the sign term, VWW's and KWS's, 12 in the one with it): per row a
 * jump into an unrolled body of pair units (LDRD at an immediate offset, two
 * requantizations, two STRB: 12 cycles without the sign term, the sums
 * carrying the bias), entered so that it does cols / 2 of them; the
 * row's end is 2 ADD, SUBS and a conditional jump back to the entry. No
 * per-row count and no tests for groups of 4, a pair or a single: 7 cycles a
 * row where the 8-sum loop spends 20-35 on them (its groups of 8 cost 7.25
 * cycles a sum, a pair unit 7). An odd last column goes after all the rows,
 * down the column. Every instruction has its 32-bit encoding, so the units
 * have one size (the entry is e * size bytes in; the assembler checks the
 * body's length). The build chooses it per layer (cm4_prepare.dw_store_pairs,
 * flag TB_CM4_DW_RQ_PAIRS). */
#define TB_CM4_DW_PAIRS_NO_SIGN 24  /* cm4_prepare.DW_PAIRS_MAX_COLS: 49 */
#define TB_CM4_DW_PAIRS_SIGN 12     /* ... 25 */
#define TB_CM4_DW_IRP_12 "0,1,2,3,4,5,6,7,8,9,10,11"
#define TB_CM4_DW_IRP_24 TB_CM4_DW_IRP_12 ",12,13,14,15,16,17,18,19,20,21,22,23"
#define TB_CM4_DW_PAIR_BYTES_NO_SIGN 40
#define TB_CM4_DW_PAIR_BYTES_SIGN 48
#define TB_CM4_DW_STR_(x) #x
#define TB_CM4_DW_STR(x) TB_CM4_DW_STR_(x)
#define TB_CM4_DW_RQW_SIGN(T)                            \
  "add.w %[u], %[b], " T ", asr #31\n\t"                 \
  "smmlar " T ", " T ", %[m], %[u]\n\t"                  \
  "asr.w " T ", " T ", %[e]\n\t"                         \
  "ssat " T ", #8, " T "\n\t"
#define TB_CM4_DW_RQW_NO_SIGN(T)                         \
  "smmlar " T ", " T ", %[m], %[b]\n\t"                  \
  "asr.w " T ", " T ", %[e]\n\t"                         \
  "ssat " T ", #8, " T "\n\t"
/* the rows' pairs (rows >= 1; entry = e * unit bytes, e = units skipped) */
#define TB_CM4_DW_STORE_PAIRS(RQW, BYTES, UNITS, IRP)                                                      \
  "adr.w %[t0], 2f\n\t"                                                                        \
  "add %[entry], %[entry], %[t0]\n\t"                                                          \
  "orr %[entry], %[entry], #1\n\t"                                                             \
  "bx %[entry]\n\t"                                                                            \
  ".p2align 2\n"                                                                               \
  "2:\n\t"                                                                                     \
  ".irp k, " IRP "\n\t"                                                                         \
  "ldrd %[t0], %[t1], [%[ap], #(8 * \\k)]\n\t"                                                 \
  RQW("%[t0]") RQW("%[t1]")                                                                    \
  "strb.w %[t0], [%[o]]\n\t"                                                                   \
  "strb.w %[t1], [%[o], %[step]]\n\t"                                                          \
  "add.w %[o], %[o], %[step], lsl #1\n\t"                                                      \
  ".endr\n"                                                                                    \
  "3:\n\t"                                                                                     \
  ".if (3b - 2b) - " BYTES " * " UNITS "\n\t"                                                  \
  ".error \"tb_cm4_dw_store_pairs: a pair unit is not " BYTES " bytes\"\n\t"                   \
  ".endif\n\t"                                                                                 \
  "add %[ap], %[ap], %[row]\n\t"                                                               \
  "add %[o], %[o], %[adjust]\n\t"                                                              \
  "subs %[rows], %[rows], #1\n\t"                                                              \
  "it ne\n\t"                                                                                  \
  "bxne %[entry]\n\t"
/* one column, down the rows (rows >= 1) */
#define TB_CM4_DW_STORE_COLUMN(RQW)                                                            \
  "1:\n\t"                                                                                     \
  "ldr %[t0], [%[ap]]\n\t"                                                                     \
  "add %[ap], %[ap], %[row]\n\t"                                                               \
  RQW("%[t0]")                                                                                 \
  "strb %[t0], [%[o]]\n\t"                                                                     \
  "add %[o], %[o], %[adjust]\n\t"                                                              \
  "subs %[rows], %[rows], #1\n\t"                                                              \
  "bne 1b\n\t"
#define TB_CM4_DW_PAIRS_IN                                                                     \
  [b] "r"(r[2]), [m] "r"(r[1]), [e] "r"(r[3]), [step] "r"(t->col_step),                     \
  [row] "r"(row), [adjust] "r"(adjust)

TB_INLINE void tb_cm4_dw_store_pairs(const int32_t *acc, const tb_cm4_dw_tile *t,
                                     const int32_t *r, int8_t *o, int32_t no_sign) {
  const int32_t even = t->cols & ~1, row = 4 * t->acc_row;
  const int32_t units = no_sign ? TB_CM4_DW_PAIRS_NO_SIGN : TB_CM4_DW_PAIRS_SIGN;
  const int32_t e = units - (even >> 1);                 /* units skipped at the entry */
  int32_t rows = t->rows, adjust = t->row_step - even * t->col_step;
  uint32_t t0, t1, u, ap = (uint32_t)acc - 8u * (uint32_t)e, out = (uint32_t)o;
  if (no_sign) {
    uint32_t entry = (uint32_t)e * TB_CM4_DW_PAIR_BYTES_NO_SIGN;
    __asm__ volatile(TB_CM4_DW_STORE_PAIRS(TB_CM4_DW_RQW_NO_SIGN,
                                           TB_CM4_DW_STR(TB_CM4_DW_PAIR_BYTES_NO_SIGN),
                                           TB_CM4_DW_STR(TB_CM4_DW_PAIRS_NO_SIGN),
                                           TB_CM4_DW_IRP_24)
                     : [t0] "=&r"(t0), [t1] "=&r"(t1), [entry] "+r"(entry), [ap] "+r"(ap),
                       [o] "+r"(out), [rows] "+r"(rows)
                     : TB_CM4_DW_PAIRS_IN : "cc", "memory");
  } else {
    uint32_t entry = (uint32_t)e * TB_CM4_DW_PAIR_BYTES_SIGN;
    __asm__ volatile(TB_CM4_DW_STORE_PAIRS(TB_CM4_DW_RQW_SIGN,
                                           TB_CM4_DW_STR(TB_CM4_DW_PAIR_BYTES_SIGN),
                                           TB_CM4_DW_STR(TB_CM4_DW_PAIRS_SIGN), TB_CM4_DW_IRP_12)
                     : [t0] "=&r"(t0), [t1] "=&r"(t1), [u] "=&r"(u), [entry] "+r"(entry),
                       [ap] "+r"(ap), [o] "+r"(out), [rows] "+r"(rows)
                     : TB_CM4_DW_PAIRS_IN : "cc", "memory");
  }
  if (t->cols & 1) {           /* the last column */
    rows = t->rows, adjust = t->row_step;
    ap = (uint32_t)(acc + even), out = (uint32_t)(o + even * t->col_step);
    if (no_sign) {
      __asm__ volatile(TB_CM4_DW_STORE_COLUMN(TB_CM4_DW_RQW_NO_SIGN)
                       : [t0] "=&r"(t0), [ap] "+r"(ap), [o] "+r"(out), [rows] "+r"(rows)
                       : TB_CM4_DW_PAIRS_IN : "cc", "memory");
    } else {
      __asm__ volatile(TB_CM4_DW_STORE_COLUMN(TB_CM4_DW_RQW_SIGN)
                       : [t0] "=&r"(t0), [u] "=&r"(u), [ap] "+r"(ap), [o] "+r"(out),
                         [rows] "+r"(rows)
                       : TB_CM4_DW_PAIRS_IN : "cc", "memory");
    }
  }
  (void)t0, (void)t1, (void)u;
}

/* Where the batched store is between channels (its registers are taken). */
typedef struct {
  const int32_t *r;              /* the next channel's {bias', M, B, e} */
  int32_t left, rows;            /* channels left; rows per channel */
  int32_t d_ap, d_o;             /* from past a channel's last row to the next channel's first */
} tb_cm4_dw_pairs_batch;

/* After a channel's rows (the pair units' loop fell through): the next
 * channel's sums (cw int32 on), output byte (1 on), requantization record and
 * rows, then its rows at the same entry (even columns: no last column). About
 * 25 cycles a channel where a call of the store per channel takes about 58. */
#define TB_CM4_DW_PAIRS_NEXT_CHANNEL                                                           \
  "ldr %[t0], %[left]\n\t"                                                                      \
  "subs %[t0], %[t0], #1\n\t"                                                                  \
  "beq 9f\n\t"                                                                                 \
  "str %[t0], %[left]\n\t"                                                                      \
  "ldr %[t0], %[d_ap]\n\t"                                                                      \
  "ldr %[t1], %[d_o]\n\t"                                                                       \
  "add %[ap], %[ap], %[t0]\n\t"                                                                \
  "add %[o], %[o], %[t1]\n\t"                                                                  \
  "ldr %[t0], %[rp]\n\t"                                                                        \
  "ldr %[m], [%[t0], #4]\n\t"                                                                   \
  "ldr %[b], [%[t0], #8]\n\t"                                                                   \
  "ldr %[e], [%[t0], #12]\n\t"                                                                  \
  "adds %[t0], %[t0], #16\n\t"                                                                 \
  "str %[t0], %[rp]\n\t"                                                                        \
  "ldr %[rows], %[rows0]\n\t"                                                                   \
  "bx %[entry]\n"                                                                               \
  "9:\n\t"
#define TB_CM4_DW_BATCH_OUT                                                                    \
  [t0] "=&r"(t0), [t1] "=&r"(t1), [entry] "+r"(entry), [ap] "+r"(ap), [o] "+r"(out),        \
  [rows] "+r"(rows), [m] "+r"(m), [b] "+r"(b), [e] "+r"(e), [rp] "+m"(st.r),               \
  [left] "+m"(st.left)
#define TB_CM4_DW_BATCH_IN                                                                     \
  [step] "r"(t->col_step), [row] "r"(row), [adjust] "r"(adjust), [rows0] "m"(st.rows),      \
  [d_ap] "m"(st.d_ap), [d_o] "m"(st.d_o)

/* `count` channels' tiles (t: even cols, sums cw int32 apart, output bytes 1
 * apart, records 4 words apart) in one call: the batched small maps' stores
 * (tb_cm4_dw_3x3s1_batched). */
TB_INLINE void tb_cm4_dw_store_pairs_batch(const int32_t *acc, const tb_cm4_dw_tile *t,
                                           const int32_t *r, int8_t *o, int32_t count,
                                           int32_t cw, int32_t no_sign) {
  const int32_t row = 4 * t->acc_row;
  const int32_t units = no_sign ? TB_CM4_DW_PAIRS_NO_SIGN : TB_CM4_DW_PAIRS_SIGN;
  const int32_t e0 = units - (t->cols >> 1);             /* units skipped at the entry */
  int32_t rows = t->rows, adjust = t->row_step - t->cols * t->col_step;
  uint32_t t0, t1, u, ap = (uint32_t)acc - 8u * (uint32_t)e0, out = (uint32_t)o;
  uint32_t m = (uint32_t)r[1], b = (uint32_t)r[2], e = (uint32_t)r[3];
  tb_cm4_dw_pairs_batch st;
  st.r = r + 4, st.left = count, st.rows = t->rows;
  st.d_ap = 4 * cw - t->rows * row, st.d_o = 1 - t->rows * t->row_step;
  if (no_sign) {
    uint32_t entry = (uint32_t)e0 * TB_CM4_DW_PAIR_BYTES_NO_SIGN;
    __asm__ volatile(TB_CM4_DW_STORE_PAIRS(TB_CM4_DW_RQW_NO_SIGN,
                                           TB_CM4_DW_STR(TB_CM4_DW_PAIR_BYTES_NO_SIGN),
                                           TB_CM4_DW_STR(TB_CM4_DW_PAIRS_NO_SIGN),
                                           TB_CM4_DW_IRP_24)
                     TB_CM4_DW_PAIRS_NEXT_CHANNEL
                     : TB_CM4_DW_BATCH_OUT : TB_CM4_DW_BATCH_IN : "cc", "memory");
  } else {
    uint32_t entry = (uint32_t)e0 * TB_CM4_DW_PAIR_BYTES_SIGN;
    __asm__ volatile(TB_CM4_DW_STORE_PAIRS(TB_CM4_DW_RQW_SIGN,
                                           TB_CM4_DW_STR(TB_CM4_DW_PAIR_BYTES_SIGN),
                                           TB_CM4_DW_STR(TB_CM4_DW_PAIRS_SIGN), TB_CM4_DW_IRP_12)
                     TB_CM4_DW_PAIRS_NEXT_CHANNEL
                     : TB_CM4_DW_BATCH_OUT, [u] "=&r"(u) : TB_CM4_DW_BATCH_IN : "cc", "memory");
  }
  (void)t0, (void)t1, (void)u;
}
static __attribute__((noinline)) void tb_cm4_dw_store_batch_sign(const int32_t *acc,
                                                                 const tb_cm4_dw_tile *t,
                                                                 const int32_t *r, int8_t *o,
                                                                 int32_t count, int32_t cw) {
  tb_cm4_dw_store_pairs_batch(acc, t, r, o, count, cw, 0);
}
static __attribute__((noinline)) void tb_cm4_dw_store_batch_no_sign(const int32_t *acc,
                                                                    const tb_cm4_dw_tile *t,
                                                                    const int32_t *r, int8_t *o,
                                                                    int32_t count, int32_t cw) {
  tb_cm4_dw_store_pairs_batch(acc, t, r, o, count, cw, 1);
}

/* The two variants, apart: each keeps its registers to itself. */
static __attribute__((noinline)) void tb_cm4_dw_store_pairs_sign(const int32_t *acc,
                                                                 const tb_cm4_dw_tile *t,
                                                                 const int32_t *r, int8_t *o) {
  tb_cm4_dw_store_pairs(acc, t, r, o, 0);
}
static __attribute__((noinline)) void tb_cm4_dw_store_pairs_no_sign(const int32_t *acc,
                                                                    const tb_cm4_dw_tile *t,
                                                                    const int32_t *r, int8_t *o) {
  tb_cm4_dw_store_pairs(acc, t, r, o, 1);
}
#endif

/* Requantize a tile of one channel's sums (+ bias) into the output. */
static __attribute__((noinline)) void tb_cm4_dw_store_rows(const int32_t *acc,
                                                           const tb_cm4_dw_tile *t,
                                                           const int32_t *r, int32_t flags,
                                                           const tb_conv_params *p, int8_t *o) {
  int32_t y, i;
  if ((flags & ~(TB_CM4_RQ_NO_SIGN | TB_CM4_DW_RQ_PAIRS)) == (TB_CM4_RQ_FAST | TB_CM4_RQ_FULLRANGE)) {
#ifdef TB_CM4_DSP
    tb_cm4_dw_rows st;
    st.cols = t->cols, st.skip = 4 * (t->acc_row - t->cols);
    st.adjust = t->row_step - t->cols * t->col_step;
    tb_cm4_dw_store_fast(acc, &st, t->rows, r, t->col_step, o, flags & TB_CM4_RQ_NO_SIGN);
    (void)y, (void)i;
#else
    for (y = 0; y < t->rows; ++y, acc += t->acc_row, o += t->row_step) {
      /* tb_rq on the sums as they are (2 * acc: doubled weights and bias); the
       * sign term is left out where the build proved it changes nothing */
      const int32_t m = r[1], b = r[2], e = r[3];
      const int32_t sign = (flags & TB_CM4_RQ_NO_SIGN) ? 0 : -1;
      int8_t *oo = o;
      for (i = 0; i < t->cols; ++i, oo += t->col_step) {
        const int32_t v = acc[i];
        *oo = (int8_t)tb_ssat8(tb_asr(tb_smmlar(v, m, b + (tb_asr(v, 31) & sign)), e));
      }
    }
#endif
  } else {
    for (y = 0; y < t->rows; ++y, acc += t->acc_row, o += t->row_step) {
      int8_t *oo = o;
      for (i = 0; i < t->cols; ++i, oo += t->col_step) {
        *oo = (int8_t)tb_cm4_dw_finish(acc[i], r, flags, p);   /* the sums carry the bias */
      }
    }
  }
}

/* The store of a tile: the pair units where the build set TB_CM4_DW_RQ_PAIRS
 * (the test inlined at each call site, so that neither store pays for the
 * other), else the loops above. */
TB_INLINE void tb_cm4_dw_store(const int32_t *acc, const tb_cm4_dw_tile *t, const int32_t *r,
                               int32_t flags, const tb_conv_params *p, int8_t *o) {
#ifdef TB_CM4_DSP
  if (flags & TB_CM4_DW_RQ_PAIRS) {   /* fast form, full range, rows of at most 49 / 25 */
    if (flags & TB_CM4_RQ_NO_SIGN) {
      tb_cm4_dw_store_pairs_no_sign(acc, t, r, o);
    } else {
      tb_cm4_dw_store_pairs_sign(acc, t, r, o);
    }
    return;
  }
#endif
  tb_cm4_dw_store_rows(acc, t, r, flags, p, o);
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

/* One channel's n values of a row, src_col bytes apart, into a plane row at d
 * (d word-aligned): 4, 2, then 1 at a time, for the ends of rows. */
TB_INLINE void tb_cm4_dw_gather1_tail(const int8_t *s, int32_t n, int32_t src_col, int16_t *d) {
  if (n & 4) {
    tb_st32(d, tb_pkhbt16((uint32_t)(int32_t)s[0], (uint32_t)(int32_t)s[src_col]));
    tb_st32(d + 2, tb_pkhbt16((uint32_t)(int32_t)s[2 * src_col], (uint32_t)(int32_t)s[3 * src_col]));
    s += 4 * src_col, d += 4;
  }
  if (n & 2) {
    tb_st32(d, tb_pkhbt16((uint32_t)(int32_t)s[0], (uint32_t)(int32_t)s[src_col]));
    s += 2 * src_col, d += 2;
  }
  if (n & 1) *d = (int16_t)s[0];
}

/* One channel (the plane path for layers whose 4 planes do not fit the
 * scratch: VWW's 48x48 maps): `rows` rows of n values (src_col bytes apart,
 * rows src_row apart) into a plane, rows d_row values apart (all rows start
 * at positions of one parity). A row starting at an odd position copies that
 * value alone first, so that every word store is aligned (a halfword-aligned
 * STR costs a cycle more); then per 8 values two groups of 4 pipelined LDRSB,
 * 2 PKHBT, 2 STR: 26 cycles on the M4 (the C loop it replaces: 4.5 per value,
 * its stores misaligned); the rest 4, 2, 1 at a time. */
static __attribute__((noinline)) void tb_cm4_dw_gather1_rows(const int8_t *src, int32_t rows,
                                                             int32_t n, int32_t src_col,
                                                             int32_t src_row, int16_t *d0,
                                                             int32_t d_row) {
  const int32_t lead = n > 0 && ((uintptr_t)d0 & 2) ? 1 : 0;
  const int32_t octs = (n - lead) >> 3, rest = (n - lead) & 7;
  for (; rows > 0; --rows, src += src_row, d0 += d_row) {
    const int8_t *s = src;
    int16_t *d = d0;
    if (lead) *d++ = (int16_t)*s, s += src_col;
    if (octs) {
#ifdef TB_CM4_DSP
      uint32_t v0, v1, v2, v3, cnt = (uint32_t)octs;
      __asm__ volatile(
          "1:\n\t"
          "ldrsb  %[v0], [%[s]]\n\t"
          "ldrsb  %[v1], [%[s], %[st]]\n\t"
          "ldrsb  %[v2], [%[s], %[st2]]\n\t"
          "ldrsb  %[v3], [%[s], %[st3]]\n\t"
          "add    %[s], %[s], %[st], lsl #2\n\t"
          "pkhbt  %[v0], %[v0], %[v1], lsl #16\n\t"
          "pkhbt  %[v2], %[v2], %[v3], lsl #16\n\t"
          "str    %[v0], [%[d]]\n\t"
          "str    %[v2], [%[d], #4]\n\t"
          "ldrsb  %[v0], [%[s]]\n\t"
          "ldrsb  %[v1], [%[s], %[st]]\n\t"
          "ldrsb  %[v2], [%[s], %[st2]]\n\t"
          "ldrsb  %[v3], [%[s], %[st3]]\n\t"
          "add    %[s], %[s], %[st], lsl #2\n\t"
          "pkhbt  %[v0], %[v0], %[v1], lsl #16\n\t"
          "pkhbt  %[v2], %[v2], %[v3], lsl #16\n\t"
          "str    %[v0], [%[d], #8]\n\t"
          "str    %[v2], [%[d], #12]\n\t"
          "adds   %[d], %[d], #16\n\t"
          "subs   %[cnt], %[cnt], #1\n\t"
          "bne    1b\n\t"
          : [v0] "=&r"(v0), [v1] "=&r"(v1), [v2] "=&r"(v2), [v3] "=&r"(v3), [s] "+r"(s),
            [d] "+r"(d), [cnt] "+r"(cnt)
          : [st] "r"(src_col), [st2] "r"(2 * src_col), [st3] "r"(3 * src_col)
          : "cc", "memory");
#else
      int32_t k;
      for (k = 0; k < octs; ++k, s += 8 * src_col, d += 8) {
        tb_cm4_dw_gather1_tail(s, 4, src_col, d);
        tb_cm4_dw_gather1_tail(s + 4 * src_col, 4, src_col, d + 4);
      }
#endif
    }
    tb_cm4_dw_gather1_tail(s, rest, src_col, d);
  }
}

/* Two pixels' channels c, c+1 (halfwords h0, h1) as two plane words: the
 * word h0 | h1 << 16 holds c, c+1, c, c+1; SXTB16 takes bytes 0 and 2
 * (channel c of both pixels), SXTB16 ROR 8 bytes 1 and 3 (channel c+1). */
TB_INLINE uint32_t tb_cm4_dw_ld16(const int8_t *s) {
  uint16_t h;
  memcpy(&h, s, 2);
  return h;
}
TB_INLINE void tb_cm4_dw_gather2_pair(const int8_t *s, int32_t src_col, int16_t *d,
                                      int32_t plane) {
  const uint32_t u = tb_cm4_dw_ld16(s) | (tb_cm4_dw_ld16(s + src_col) << 16);
  tb_st32(d, tb_sxtb16(u));
  tb_st32(d + plane, tb_sxtb16_ror8(u));
}

/* 4 pixels' halfwords as two words h0 | h1 << 16, each split by SXTB16
 * (channel c) and SXTB16 ROR 8 (channel c + 1); the stores at OFF + 4,
 * OFF + 8 of the pointers lagging by one word, WB: the last with write-back */
#define TB_CM4_DW_G2_QUAD_MACRO \
  ".macro tb_dw_g2_quad off, wb\n\t" \
  "ldrh   %[u0], [%[s]]\n\t" \
  "ldrh   %[u1], [%[s], %[st]]\n\t" \
  "ldrh   %[u2], [%[s], %[st2]]\n\t" \
  "ldrh   %[u3], [%[s], %[st3]]\n\t" \
  "add    %[s], %[s], %[st], lsl #2\n\t" \
  "orr    %[u0], %[u0], %[u1], lsl #16\n\t" \
  "orr    %[u2], %[u2], %[u3], lsl #16\n\t" \
  "sxtb16 %[u1], %[u0]\n\t" \
  "sxtb16 %[u0], %[u0], ror #8\n\t" \
  "sxtb16 %[u3], %[u2]\n\t" \
  "sxtb16 %[u2], %[u2], ror #8\n\t" \
  "str    %[u1], [%[d], #(\\off + 4)]\n\t" \
  ".if \\wb\n\t" \
  "str    %[u3], [%[d], #(\\off + 8)]!\n\t" \
  "str    %[u0], [%[d1], #(\\off + 4)]\n\t" \
  "str    %[u2], [%[d1], #(\\off + 8)]!\n\t" \
  ".else\n\t" \
  "str    %[u3], [%[d], #(\\off + 8)]\n\t" \
  "str    %[u0], [%[d1], #(\\off + 4)]\n\t" \
  "str    %[u2], [%[d1], #(\\off + 8)]\n\t" \
  ".endif\n\t" \
  ".endm\n"

/* Where the 2-channel copy is between rows (its loop takes the registers). */
typedef struct {
  const int8_t *src;             /* the next row's first pixel */
  int16_t *d;                    /* the next row's first value in the first plane */
  int32_t rows, lead, octs, pairs, odd; /* rows left; per row: 1 if the first pixel goes
                                           alone (odd plane position), groups of 8, pairs
                                           and a single pixel after them */
  int32_t src_row, d_row;        /* bytes to the next row */
} tb_cm4_dw_copy2;

/* Channels c, c+1 (the plane path for layers whose 4 planes do not fit the
 * scratch but 2 do: VWW's 48x48 maps): `rows` rows of n pixels (src_col
 * bytes apart, rows src_row apart) into 2 planes `plane` values apart, rows
 * d_row values apart (all rows start at positions of one parity). A row
 * starting at an odd position copies that pixel alone first (every word
 * store aligned); then per 8 pixels 8 pipelined LDRH, 4 ORR, 8 SXTB16, 8 STR,
 * the last store of each plane advancing its pointer (36 cycles for 16
 * values, where the one-channel copy takes 52); the rest 2 pixels, then 1,
 * at a time. One loop for all the rows, the row state in memory (a C loop
 * per row with the rest in C cost 45-100 cycles a row on VWW's 48x48 maps). */
static __attribute__((noinline)) void tb_cm4_dw_gather2_rows(const int8_t *src, int32_t rows,
                                                             int32_t n, int32_t src_col,
                                                             int32_t src_row, int16_t *d0,
                                                             int32_t d_row, int32_t plane) {
  const int32_t lead = n > 0 && ((uintptr_t)d0 & 2) ? 1 : 0;
  const int32_t octs = (n - lead) >> 3, rest = (n - lead) & 7;
  if (rows <= 0 || n <= 0) return;
#ifdef TB_CM4_DSP
  if (!lead && !rest) {
    /* whole groups of 8 in every row (VWW's 48x48 stride 2): the row state in
     * registers, 10 cycles a row where the general loop's tests take about 40 */
    uint32_t u0, u1, u2, u3, cnt, s = (uint32_t)src, left = (uint32_t)rows;
    uint32_t d = (uint32_t)d0 - 4u, d1 = d + 2u * (uint32_t)plane;
    const int32_t s_adj = src_row - 8 * octs * src_col, d_adj = 2 * d_row - 16 * octs;
    __asm__ volatile(
        TB_CM4_DW_G2_QUAD_MACRO
        "1:\n\t"
        "mov    %[cnt], %[octs]\n"
        "2:\n\t"
        "tb_dw_g2_quad 0, 0\n\t"
        "tb_dw_g2_quad 8, 1\n\t"
        "subs   %[cnt], %[cnt], #1\n\t"
        "bne    2b\n\t"
        "ldr    %[u0], %[s_adj]\n\t"
        "add    %[s], %[s], %[u0]\n\t"
        "add    %[d], %[d], %[d_adj]\n\t"
        "add    %[d1], %[d1], %[d_adj]\n\t"
        "subs   %[left], %[left], #1\n\t"
        "bne    1b\n\t"
        ".purgem tb_dw_g2_quad\n\t"
        : [u0] "=&r"(u0), [u1] "=&r"(u1), [u2] "=&r"(u2), [u3] "=&r"(u3), [cnt] "=&r"(cnt),
          [s] "+r"(s), [d] "+r"(d), [d1] "+r"(d1), [left] "+r"(left)
        : [st] "r"(src_col), [st2] "r"(2 * src_col), [st3] "r"(3 * src_col),
          [octs] "r"(octs), [d_adj] "r"(d_adj), [s_adj] "m"(s_adj)
        : "cc", "memory");
    return;
  }
  {
    uint32_t u0, u1, u2, u3, s, d, d1, cnt;
    tb_cm4_dw_copy2 st;
    st.src = src, st.d = d0, st.rows = rows, st.lead = lead;
    st.octs = octs, st.pairs = rest >> 1, st.odd = rest & 1;
    st.src_row = src_row, st.d_row = 2 * d_row;
    __asm__ volatile(
        TB_CM4_DW_G2_QUAD_MACRO
        "1:\n\t"
        "ldr    %[s], %[src]\n\t"
        "ldr    %[d], %[dst]\n\t"
        "add    %[d1], %[d], %[pb]\n\t"
        "ldr    %[cnt], %[lead]\n\t"
        "cmp    %[cnt], #0\n\t"
        "beq    2f\n\t"
        "ldrh   %[u0], [%[s]]\n\t"
        "add    %[s], %[s], %[st]\n\t"
        "sxtb16 %[u1], %[u0]\n\t"
        "sxtb16 %[u0], %[u0], ror #8\n\t"
        "strh   %[u1], [%[d]], #2\n\t"
        "strh   %[u0], [%[d1]], #2\n"
        "2:\n\t"
        "ldr    %[cnt], %[octs]\n\t"
        "cmp    %[cnt], #0\n\t"
        "beq    4f\n\t"
        "subs   %[d], %[d], #4\n\t"        /* lagging by one word: the last stores write back */
        "subs   %[d1], %[d1], #4\n"
        "3:\n\t"
        "tb_dw_g2_quad 0, 0\n\t"
        "tb_dw_g2_quad 8, 1\n\t"
        "subs   %[cnt], %[cnt], #1\n\t"
        "bne    3b\n\t"
        "adds   %[d], %[d], #4\n\t"
        "adds   %[d1], %[d1], #4\n"
        "4:\n\t"
        "ldr    %[cnt], %[pairs]\n\t"
        "cmp    %[cnt], #0\n\t"
        "beq    6f\n"
        "5:\n\t"
        "ldrh   %[u0], [%[s]]\n\t"
        "ldrh   %[u1], [%[s], %[st]]\n\t"
        "add    %[s], %[s], %[st], lsl #1\n\t"
        "orr    %[u0], %[u0], %[u1], lsl #16\n\t"
        "sxtb16 %[u1], %[u0]\n\t"
        "sxtb16 %[u0], %[u0], ror #8\n\t"
        "str    %[u1], [%[d]], #4\n\t"
        "str    %[u0], [%[d1]], #4\n\t"
        "subs   %[cnt], %[cnt], #1\n\t"
        "bne    5b\n"
        "6:\n\t"
        "ldr    %[cnt], %[odd]\n\t"
        "cmp    %[cnt], #0\n\t"
        "beq    7f\n\t"
        "ldrh   %[u0], [%[s]]\n\t"
        "sxtb16 %[u1], %[u0]\n\t"
        "sxtb16 %[u0], %[u0], ror #8\n\t"
        "strh   %[u1], [%[d]]\n\t"
        "strh   %[u0], [%[d1]]\n"
        "7:\n\t"
        "ldr    %[u0], %[src]\n\t"
        "ldr    %[u1], %[src_row]\n\t"
        "ldr    %[u2], %[dst]\n\t"
        "ldr    %[u3], %[d_row]\n\t"
        "add    %[u0], %[u0], %[u1]\n\t"
        "add    %[u2], %[u2], %[u3]\n\t"
        "str    %[u0], %[src]\n\t"
        "str    %[u2], %[dst]\n\t"
        "ldr    %[cnt], %[rows]\n\t"
        "subs   %[cnt], %[cnt], #1\n\t"
        "str    %[cnt], %[rows]\n\t"
        "bne    1b\n\t"
        ".purgem tb_dw_g2_quad\n\t"
        : [u0] "=&r"(u0), [u1] "=&r"(u1), [u2] "=&r"(u2), [u3] "=&r"(u3), [s] "=&r"(s),
          [d] "=&r"(d), [d1] "=&r"(d1), [cnt] "=&r"(cnt),
          [src] "+m"(st.src), [dst] "+m"(st.d), [rows] "+m"(st.rows)
        : [st] "r"(src_col), [st2] "r"(2 * src_col), [st3] "r"(3 * src_col),
          [pb] "r"(2 * plane), [lead] "m"(st.lead), [octs] "m"(st.octs),
          [pairs] "m"(st.pairs), [odd] "m"(st.odd), [src_row] "m"(st.src_row),
          [d_row] "m"(st.d_row)
        : "cc", "memory");
  }
#else
  for (; rows > 0; --rows, src += src_row, d0 += d_row) {
    const int8_t *s = src;
    int16_t *d = d0;
    int32_t k;
    if (lead) d[0] = s[0], d[plane] = s[1], ++d, s += src_col;
    for (k = 0; k < 4 * octs + (rest >> 1); ++k, s += 2 * src_col, d += 2) {
      tb_cm4_dw_gather2_pair(s, src_col, d, plane);
    }
    if (rest & 1) d[0] = s[0], d[plane] = s[1];
  }
#endif
}

/* Channels c .. c+3 of one pixel (one aligned word) into the 4 planes: the
 * low halves of SXTB16 and SXTB16 ROR 8 are channels c and c+1, the high
 * halves c+2 and c+3. */
TB_INLINE void tb_cm4_dw_gather4_one(uint32_t u, int16_t *d0, int32_t plane) {
  const uint32_t u02 = tb_sxtb16(u), u13 = tb_sxtb16_ror8(u);
  d0[0] = (int16_t)u02;
  d0[2 * plane] = (int16_t)(u02 >> 16);
  d0[plane] = (int16_t)u13;
  d0[3 * plane] = (int16_t)(u13 >> 16);
}

/* One group of 4 pixels of the 4-channel copy (32 cycles): 4 pipelined word
 * loads; per two pixels PKHBT / PKHTB pair their channels c, c+1 and
 * c+2, c+3, SXTB16 plain and ROR 8 split each pair into two plane words. */
#define TB_CM4_DW_G4_QUAD \
  "ldr %[u0], [%[s]]\n\t" \
  "ldr %[u1], [%[s], %[ss]]\n\t" \
  "ldr %[u2], [%[s], %[ss], lsl #1]\n\t" \
  "ldr %[u3], [%[s], %[ss3]]\n\t" \
  "add %[s], %[s], %[ss], lsl #2\n\t" \
  "pkhbt %[t], %[u0], %[u1], lsl #16\n\t" \
  "pkhtb %[u1], %[u1], %[u0], asr #16\n\t" \
  "sxtb16 %[u0], %[t]\n\t" \
  "sxtb16 %[t], %[t], ror #8\n\t" \
  "sxtb16 %[x], %[u1]\n\t" \
  "sxtb16 %[u1], %[u1], ror #8\n\t" \
  "str %[u0], [%[d]]\n\t" \
  "str %[t], [%[d], %[pb]]\n\t" \
  "str %[x], [%[d], %[pb], lsl #1]\n\t" \
  "str %[u1], [%[d], %[pb3]]\n\t" \
  "adds %[d], %[d], #4\n\t" \
  "pkhbt %[t], %[u2], %[u3], lsl #16\n\t" \
  "pkhtb %[u3], %[u3], %[u2], asr #16\n\t" \
  "sxtb16 %[u2], %[t]\n\t" \
  "sxtb16 %[t], %[t], ror #8\n\t" \
  "sxtb16 %[x], %[u3]\n\t" \
  "sxtb16 %[u3], %[u3], ror #8\n\t" \
  "str %[u2], [%[d]]\n\t" \
  "str %[t], [%[d], %[pb]]\n\t" \
  "str %[x], [%[d], %[pb], lsl #1]\n\t" \
  "str %[u3], [%[d], %[pb3]]\n\t" \
  "adds %[d], %[d], #4\n\t"

/* pixel pairs per pass of the 4-channel copy's unrolled row (56 bytes each) */
#define TB_CM4_DW_G4_UNITS 12

/* One pixel pair of the 4-channel copy (PAIR: the word pair (u0, u1); its
 * channels c, c+1 in t and c+2, c+3 in u1 by PKH, then SXTB16 plain and ROR 8
 * split each into two plane words), stored at d in the 4 planes, d on by a
 * word. Every instruction 32-bit: the units have one size. */
#define TB_CM4_DW_G4_SPLIT(A, B)                                                               \
  "pkhbt  %[t], " A ", " B ", lsl #16\n\t"                                                     \
  "pkhtb  %[u1], " B ", " A ", asr #16\n\t"                                                    \
  "sxtb16 %[u0], %[t]\n\t"                                                                     \
  "sxtb16 %[t], %[t], ror #8\n\t"                                                              \
  "sxtb16 %[x], %[u1]\n\t"                                                                     \
  "sxtb16 %[u1], %[u1], ror #8\n\t"                                                            \
  "str.w  %[u0], [%[d]]\n\t"                                                                   \
  "str.w  %[t], [%[d], %[pb]]\n\t"                                                             \
  "str.w  %[x], [%[d], %[pb], lsl #1]\n\t"                                                     \
  "str.w  %[u1], [%[d], %[pb3]]\n\t"                                                           \
  "add.w  %[d], %[d], #4\n\t"

/* Channels c .. c+3 of `rows` rows of n pixels (src_col bytes apart, rows
 * src_row apart) into 4 planes `plane` values apart, rows d_row values apart
 * (all rows start at positions of the same parity); zz: the input zero point
 * in every byte. Every plane word is stored whole and aligned: a row that
 * starts at an odd position begins with the word (zero point, pixel 0), one
 * that ends at an even position ends with (last pixel, zero point) - both
 * positions are the plane's frame (a pad column, or the slack of a row
 * rounded up to even), which holds the zero point already. Between them the
 * pixel pairs, each 2 pipelined word loads, 2 PKH, 4 SXTB16, 4 STR (15
 * cycles; SXTB16 before PKH took 18); a row is one jump into an unrolled body
 * of TB_CM4_DW_G4_UNITS pairs (more passes for longer rows), no tests for a
 * lead or a tail inside the row: VWW's 24x24x32 stride-1 rows (a lead word,
 * 11 pairs, a trailing word) 220 cycles where a loop copying the lone pixels
 * with STRH took 248. Rows of whole groups of 4 from an even position take a
 * plain loop (no jumps: 11 cycles a row beside the groups). */
static __attribute__((noinline)) void tb_cm4_dw_gather4_rows(const int8_t *src, int32_t rows, int32_t n, int32_t src_col,
                                   int32_t src_row, int16_t *d0, int32_t d_row, int32_t plane,
                                   uint32_t zz) {
  const int32_t lead = n > 0 && ((uintptr_t)d0 & 2) ? 1 : 0;
  const int32_t pairs = (n - lead) >> 1, tail = (n - lead) & 1;
  if (rows <= 0 || n <= 0) return;
#ifdef TB_CM4_DSP
  if (!lead && !(n & 3)) {
    /* whole groups of 4 in every row (VWW's 24x24x32 stride 2): no tests per
     * row, the next row's pointers from two adjustments (about 11 cycles a row
     * where the general loop takes about 37) */
    uint32_t u0, u1, u2, u3, x, t, cnt, s = (uint32_t)src, d = (uint32_t)d0;
    uint32_t left = (uint32_t)rows;
    const int32_t quads = n >> 2;
    const int32_t s_adj = src_row - 4 * quads * src_col, d_adj = 2 * d_row - 8 * quads;
    __asm__ volatile(
        "1:\n\t"
        "ldr %[cnt], %[quads]\n"
        "2:\n\t"
        TB_CM4_DW_G4_QUAD
        "subs %[cnt], %[cnt], #1\n\t"
        "bne 2b\n\t"
        "ldr %[u0], %[s_adj]\n\t"
        "ldr %[u1], %[d_adj]\n\t"
        "add %[s], %[s], %[u0]\n\t"
        "add %[d], %[d], %[u1]\n\t"
        "subs %[left], %[left], #1\n\t"
        "bne 1b\n\t"
        : [u0] "=&r"(u0), [u1] "=&r"(u1), [u2] "=&r"(u2), [u3] "=&r"(u3), [x] "=&r"(x),
          [t] "=&r"(t), [cnt] "=&r"(cnt), [s] "+r"(s), [d] "+r"(d), [left] "+r"(left)
        : [ss] "r"(src_col), [ss3] "r"(3 * src_col), [pb] "r"(2 * plane), [pb3] "r"(6 * plane),
          [quads] "m"(quads), [s_adj] "m"(s_adj), [d_adj] "m"(d_adj)
        : "cc", "memory");
    return;
  }
  if (pairs) {
    /* e units skipped at a row's first pass; the row state: passes, the tail,
     * where a row starts (the lead word or the entry) and the adjustments from
     * a row's end to the next row's start */
    const int32_t e = (TB_CM4_DW_G4_UNITS - pairs % TB_CM4_DW_G4_UNITS) % TB_CM4_DW_G4_UNITS;
    const int32_t passes = (pairs + e) / TB_CM4_DW_G4_UNITS;
    const int32_t s_adj = src_row - n * src_col;
    const int32_t d_adj = 2 * d_row - 4 * (lead + pairs + tail);
    uint32_t u0, u1, t, x, cnt, first, s = (uint32_t)src, d = (uint32_t)(d0 - lead);
    uint32_t left = (uint32_t)rows, entry = (uint32_t)e * 56u;
    __asm__ volatile(
        "adr.w  %[t], 5f\n\t"
        "add    %[entry], %[entry], %[t]\n\t"
        "orr    %[entry], %[entry], #1\n\t"
        "adr.w  %[first], 4f\n\t"
        "orr    %[first], %[first], #1\n\t"
        "ldr    %[t], %[lead]\n\t"
        "cmp    %[t], #0\n\t"
        "it     eq\n\t"
        "moveq  %[first], %[entry]\n"
        "1:\n\t"
        "ldr    %[cnt], %[passes]\n\t"
        "bx     %[first]\n\t"
        ".p2align 2\n"
        "4:\n\t"                                     /* (zero point, pixel 0) */
        "ldr.w  %[u0], [%[s]]\n\t"
        "add.w  %[s], %[s], %[ss]\n\t"
        TB_CM4_DW_G4_SPLIT("%[zz]", "%[u0]")
        "bx     %[entry]\n\t"
        ".p2align 2\n"
        "5:\n\t"
        ".rept " TB_CM4_DW_STR(TB_CM4_DW_G4_UNITS) "\n\t"
        "ldr.w  %[u0], [%[s]]\n\t"
        "ldr.w  %[u1], [%[s], %[ss]]\n\t"
        "add.w  %[s], %[s], %[ss], lsl #1\n\t"
        TB_CM4_DW_G4_SPLIT("%[u0]", "%[u1]")
        ".endr\n"
        "6:\n\t"
        ".if (6b - 5b) - 56 * " TB_CM4_DW_STR(TB_CM4_DW_G4_UNITS) "\n\t"
        ".error \"tb_cm4_dw_gather4_rows: a pair unit is not 56 bytes\"\n\t"
        ".endif\n\t"
        "subs   %[cnt], %[cnt], #1\n\t"
        "bne    5b\n\t"
        "ldr    %[t], %[tail]\n\t"
        "cmp    %[t], #0\n\t"
        "beq    7f\n\t"
        "ldr.w  %[u0], [%[s]]\n\t"                   /* (last pixel, zero point) */
        "add.w  %[s], %[s], %[ss]\n\t"
        TB_CM4_DW_G4_SPLIT("%[u0]", "%[zz]")
        "7:\n\t"
        "ldr    %[t], %[s_adj]\n\t"
        "ldr    %[u0], %[d_adj]\n\t"
        "add    %[s], %[s], %[t]\n\t"
        "add    %[d], %[d], %[u0]\n\t"
        "subs   %[left], %[left], #1\n\t"
        "bne    1b\n\t"
        : [u0] "=&r"(u0), [u1] "=&r"(u1), [t] "=&r"(t), [x] "=&r"(x), [cnt] "=&r"(cnt),
          [first] "=&r"(first), [s] "+r"(s), [d] "+r"(d), [left] "+r"(left), [entry] "+r"(entry)
        : [ss] "r"(src_col), [pb] "r"(2 * plane), [pb3] "r"(6 * plane), [zz] "r"(zz),
          [lead] "m"(lead), [passes] "m"(passes), [tail] "m"(tail), [s_adj] "m"(s_adj),
          [d_adj] "m"(d_adj)
        : "cc", "memory");
    return;
  }
  /* rows of one pixel, or two from an odd position: one pixel at a time */
  (void)zz;
  for (; rows > 0; --rows, src += src_row, d0 += d_row) {
    int32_t i;
    for (i = 0; i < n; ++i) tb_cm4_dw_gather4_one(tb_ld32(src + i * src_col), d0 + i, plane);
  }
#else
  (void)zz, (void)pairs, (void)tail;
  for (; rows > 0; --rows, src += src_row, d0 += d_row) {
    const int8_t *sp = src;
    int32_t i = 0, m = n;
    int16_t *d1 = d0 + plane, *d2 = d0 + 2 * plane, *d3 = d0 + 3 * plane;
    if (lead) {
      tb_cm4_dw_gather4_one(tb_ld32(sp), d0, plane);
      sp += src_col, i = 1, --m;
    }
    for (; m >= 4; m -= 4, i += 4) {
      const uint32_t u0 = tb_ld32(sp), u1 = tb_ld32(sp + src_col);
      const uint32_t u2 = tb_ld32(sp + 2 * src_col), u3 = tb_ld32(sp + 3 * src_col);
      const uint32_t a0 = tb_sxtb16(u0), a1 = tb_sxtb16(u1), a2 = tb_sxtb16(u2), a3 = tb_sxtb16(u3);
      const uint32_t b0 = tb_sxtb16_ror8(u0), b1 = tb_sxtb16_ror8(u1);
      const uint32_t b2 = tb_sxtb16_ror8(u2), b3 = tb_sxtb16_ror8(u3);
      tb_st32(d0 + i, tb_pkhbt16(a0, a1));
      tb_st32(d0 + i + 2, tb_pkhbt16(a2, a3));
      tb_st32(d2 + i, tb_pkhtb16(a1, a0));
      tb_st32(d2 + i + 2, tb_pkhtb16(a3, a2));
      tb_st32(d1 + i, tb_pkhbt16(b0, b1));
      tb_st32(d1 + i + 2, tb_pkhbt16(b2, b3));
      tb_st32(d3 + i, tb_pkhtb16(b1, b0));
      tb_st32(d3 + i + 2, tb_pkhtb16(b3, b2));
      sp += 4 * src_col;
    }
    for (; m > 0; --m, ++i, sp += src_col) tb_cm4_dw_gather4_one(tb_ld32(sp), d0 + i, plane);
  }
#endif
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

/* Copy channel c (groups == 1) or channels c .. c + groups - 1 (2 or 4)
 * into the plane(s), row by row; planes are plane_values apart; zz: the
 * input zero point in every byte (the 4-channel copy's frame words). */
static __attribute__((noinline)) void tb_cm4_dw_gather(const int8_t *src, const tb_cm4_dw_view *v,
                                                       int16_t *planes, int32_t wp,
                                                       int32_t even_rows, int32_t groups,
                                                       int32_t plane_values, uint32_t zz) {
  int32_t y;
  if (groups == 4) {
    /* plane rows at one pitch: all rows at once; stride 2: the even plane rows,
     * then the odd ones */
    if (!even_rows) {
      tb_cm4_dw_gather4_rows(src, v->in_h, v->in_w, v->src_col, v->src_row,
                             planes + v->pt * wp + v->pl, wp, plane_values, zz);
    } else {
      for (y = 0; y < 2 && y < v->in_h; ++y) {
        tb_cm4_dw_gather4_rows(src + y * v->src_row, (v->in_h - y + 1) >> 1, v->in_w, v->src_col,
                               2 * v->src_row,
                               tb_cm4_dw_row(planes, v->pt + y, wp, even_rows) + v->pl, wp,
                               plane_values, zz);
      }
    }
    return;
  }
  if (groups == 2) {
    /* two channels: all rows in one call; stride 2: the even plane rows, then the odd ones */
    for (y = 0; y < (even_rows ? 2 : 1) && y < v->in_h; ++y) {
      const int32_t step = even_rows ? 2 : 1;
      tb_cm4_dw_gather2_rows(src + y * v->src_row, (v->in_h - y + step - 1) / step, v->in_w,
                             v->src_col, step * v->src_row,
                             tb_cm4_dw_row(planes, v->pt + y, wp, even_rows) + v->pl, wp,
                             plane_values);
    }
    return;
  }
  /* one channel: all rows in one call; stride 2: the even plane rows, then the odd ones */
  if (!even_rows) {
    tb_cm4_dw_gather1_rows(src, v->in_h, v->in_w, v->src_col, v->src_row,
                           planes + v->pt * wp + v->pl, wp);
    return;
  }
  for (y = 0; y < 2 && y < v->in_h; ++y) {
    tb_cm4_dw_gather1_rows(src + y * v->src_row, (v->in_h - y + 1) >> 1, v->in_w, v->src_col,
                           2 * v->src_row, tb_cm4_dw_row(planes, v->pt + y, wp, even_rows) + v->pl,
                           wp);
  }
}

/* 3x3 stride 1, one channel: per chunk of rows_per output rows (even; the
 * build sized the sums buffer), the rows two at a time and an odd last one
 * alone, then one store of the chunk. A row's sweep runs over column pairs;
 * an odd out_w computes one column past the row's end, not stored. */
static void tb_cm4_dw_3x3s1(const int16_t *plane, const tb_cm4_dw_view *v, int32_t rows_per,
                            const int16_t *w, int32_t *acc, const int32_t *r, int32_t flags,
                            const tb_conv_params *p, int8_t *out) {
  const int32_t pairs = (v->out_w + 1) >> 1;
  tb_cm4_dw_tile t;
  int32_t y;
  t.col_step = v->out_col, t.row_step = v->out_row;
  t.cols = v->out_w, t.acc_row = TB_CM4_DW_PITCH;
  for (y = 0; y < v->out_h; y += rows_per) {
    t.rows = v->out_h - y < rows_per ? v->out_h - y : rows_per;
    tb_cm4_dw3s1_rows(plane + y * TB_CM4_DW_PITCH, pairs, t.rows, w, acc);
    tb_cm4_dw_store(acc, &t, r, flags, p, out + y * v->out_row);
  }
}

#ifdef TB_CM4_DSP
/* A 3x3 stride-1 layer whose sweeps store their outputs (tb_cm4_dw3s1_rows_rq;
 * cm4_prepare.dw_sweep_stores: the pair units' form without the sign term, an
 * even number of rows and of columns, depth multiplier 1), channel by channel
 * (copied `groups` at a time into planes plane_values apart), in a loop of its
 * own: the other layers' channel loop stays as it was. */
static __attribute__((noinline)) void tb_cm4_dw_3x3s1_rq_layer(const tb_conv_params *p,
                                                               const int8_t *input,
                                                               const int16_t *filter,
                                                               const int32_t *rq, int8_t *output,
                                                               int16_t *planes) {
  const tb_cm4_dw_view v = tb_cm4_dw_orient(p, (rq[3] >> 16) & 1);
  const int32_t wp = rq[1] & 0xFFFF, hp = rq[2] & 0xFFFF;
  const int32_t groups = (rq[3] >> 8) & 0xFF ? (rq[3] >> 8) & 0xFF : 1;
  const int32_t plane_values = (wp * hp + 1) & ~1;
  const uint32_t zz = (uint32_t)(uint8_t)(-p->input_offset) * 0x01010101u;
  int32_t ic;
  for (ic = 0; ic < p->in_c; ++ic) {
    if ((ic & (groups - 1)) == 0) {
      tb_cm4_dw_gather(input + ic, &v, planes, wp, 0, groups, plane_values, zz);
    }
    tb_cm4_dw3s1_rows_rq(planes + (ic & (groups - 1)) * plane_values,
                         (v.out_w + 1) >> 1, v.out_h, filter + TB_CM4_DW_3X3_RECORD * ic,
                         rq + 4 + 4 * ic, output + ic, v.out_col, v.out_row);
  }
}
#endif

/* 3x3 stride 1 on small maps, `batch` channels (a multiple of 4) at a time
 * side by side in one plane, cw values apart (cm4_prepare.dw_s1_batch): copy
 * the batch 4 channels per gather, then per chunk of rows_per output rows one
 * sweep of the whole batch and each channel's store. */
static __attribute__((noinline)) void tb_cm4_dw_3x3s1_batched(const int8_t *input, const tb_cm4_dw_view *v,
                                    int16_t *plane, int32_t batch, int32_t rows_per,
                                    const int16_t *filter, int32_t *acc, const int32_t *rq,
                                    int32_t flags, const tb_conv_params *p, int8_t *out) {
  const int32_t pairs = (v->out_w + 1) >> 1;
  const int32_t cw = ((v->pl + v->in_w > 2 * pairs + 2 ? v->pl + v->in_w : 2 * pairs + 2) + 1) & ~1;
  const uint32_t zz = (uint32_t)(uint8_t)(-p->input_offset) * 0x01010101u;
  tb_cm4_dw_tile t;
  int32_t ic, k, y;
  t.col_step = v->out_col, t.row_step = v->out_row;
  t.cols = v->out_w, t.acc_row = TB_CM4_DW_PITCH;
  for (ic = 0; ic < p->in_c; ic += batch) {
    for (k = 0; k < batch; k += 4) {
      tb_cm4_dw_gather4_rows(input + ic + k, v->in_h, v->in_w, v->src_col, v->src_row,
                             plane + v->pt * TB_CM4_DW_PITCH + v->pl + k * cw, TB_CM4_DW_PITCH,
                             cw, zz);
    }
    for (y = 0; y < v->out_h; y += rows_per) {
      t.rows = v->out_h - y < rows_per ? v->out_h - y : rows_per;
      tb_cm4_dw3s1_batch(plane + y * TB_CM4_DW_PITCH, pairs, t.rows, batch, cw, filter + TB_CM4_DW_3X3_RECORD * ic,
                         acc);
#ifdef TB_CM4_DSP
      if ((flags & TB_CM4_DW_RQ_PAIRS) && !(t.cols & 1)) {
        /* the batch's channels in one call (channel k's output byte k on) */
        if (flags & TB_CM4_RQ_NO_SIGN) {
          tb_cm4_dw_store_batch_no_sign(acc, &t, rq + 4 + 4 * ic, out + ic + y * v->out_row,
                                        batch, cw);
        } else {
          tb_cm4_dw_store_batch_sign(acc, &t, rq + 4 + 4 * ic, out + ic + y * v->out_row,
                                     batch, cw);
        }
        continue;
      }
#endif
      for (k = 0; k < batch; ++k) {
        tb_cm4_dw_store(acc + k * cw, &t, rq + 4 + 4 * (ic + k), flags, p,
                        out + ic + k + y * v->out_row);
      }
    }
  }
}

#ifdef TB_CM4_DSP
/* The batched small maps whose sweeps store their outputs (tb_cm4_dw3s1_batch_rq;
 * cm4_prepare.dw_sweep_stores: the pair units' form without the sign term, an
 * even out_w): per batch the 4-channel copies, then per chunk of rows_per output
 * rows one sweep of the whole batch, which writes the output. */
static __attribute__((noinline)) void tb_cm4_dw_3x3s1_batched_rq(
    const int8_t *input, const tb_cm4_dw_view *v, int16_t *plane, int32_t batch,
    int32_t rows_per, const int16_t *filter, const int32_t *rq, const tb_conv_params *p,
    int8_t *out) {
  const int32_t pairs = (v->out_w + 1) >> 1;
  const int32_t cw = ((v->pl + v->in_w > 2 * pairs + 2 ? v->pl + v->in_w : 2 * pairs + 2) + 1) & ~1;
  const uint32_t zz = (uint32_t)(uint8_t)(-p->input_offset) * 0x01010101u;
  int32_t ic, k, y, rows;
  for (ic = 0; ic < p->in_c; ic += batch) {
    for (k = 0; k < batch; k += 4) {
      tb_cm4_dw_gather4_rows(input + ic + k, v->in_h, v->in_w, v->src_col, v->src_row,
                             plane + v->pt * TB_CM4_DW_PITCH + v->pl + k * cw, TB_CM4_DW_PITCH,
                             cw, zz);
    }
    for (y = 0; y < v->out_h; y += rows_per) {
      rows = v->out_h - y < rows_per ? v->out_h - y : rows_per;
      tb_cm4_dw3s1_batch_rq(plane + y * TB_CM4_DW_PITCH, pairs, rows, batch, cw,
                            filter + TB_CM4_DW_3X3_RECORD * ic, rq + 4 + 4 * ic,
                            out + ic + y * v->out_row, v->out_col, v->out_row);
    }
  }
}
#endif

#ifdef TB_CM4_DSP
/* A layer whose sweeps store their outputs (rq[3] bit 23): batched (batch
 * channels side by side) or one channel per sweep (batch 0); a function of its
 * own, so that the other layers' code stays as it was. */
static __attribute__((noinline)) void tb_cm4_dw_stores(
    const int8_t *input, const tb_cm4_dw_view *v, int16_t *plane, int32_t batch,
    int32_t rows_per, const int16_t *filter, const int32_t *rq, const tb_conv_params *p,
    int8_t *out) {
  if (batch) {
    tb_cm4_dw_3x3s1_batched_rq(input, v, plane, batch, rows_per, filter, rq, p, out);
  } else {
    tb_cm4_dw_3x3s1_rq_layer(p, input, filter, rq, out, plane);
  }
}
#endif

/* 3x3 stride 2, one channel: wp / 2 output slots per plane row pair (the
 * ones past out_w are computed, not stored); sweeps over rows_per output rows,
 * or pieces of TB_CM4_DW_STEPS slots of a row when rows_per is 0. */
static void tb_cm4_dw_3x3s2(const int16_t *plane, const tb_cm4_dw_view *v, int32_t wp,
                            int32_t rows_per, int32_t even_rows, const int16_t *w,
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
  /* rq[3] bits 8..15: number of planes (1, 2 or 4: channels copied at once where they fit) */
  const int32_t groups = (rq[3] >> 8) & 0xFF ? (rq[3] >> 8) & 0xFF : 1;
  const tb_cm4_dw_view v = tb_cm4_dw_orient(p, (rq[3] >> 16) & 1);
  /* rq[3] bits 24..31: channels side by side per stride-1 sweep (0: one channel per sweep);
   * with bit 23 (one test for all): 2 * batch + TB_CM4_DW_SWEEP_STORES where the sweeps store
   * their outputs */
  const int32_t batch2 = (rq[3] >> 23) & 0x1FF;
  const int32_t in_c = p->in_c, dm = p->depth_multiplier;
  const int32_t wstride = path == TB_CM4_DW_GENERAL ? ((p->k_h * p->k_w + 1) & ~1)
                                                      : TB_CM4_DW_3X3_RECORD;
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
    for (i = 0; i + 8 <= words; i += 8) {  /* 8 STR per loop test: 1.5 cycles per word */
      pw32[i] = zz, pw32[i + 1] = zz, pw32[i + 2] = zz, pw32[i + 3] = zz;
      pw32[i + 4] = zz, pw32[i + 5] = zz, pw32[i + 6] = zz, pw32[i + 7] = zz;
    }
    for (; i < words; ++i) pw32[i] = zz;
  }
#ifdef TB_CM4_DSP
  if (batch2) {
#else
  if (batch2 >> 1) {             /* (the portable build: one channel per sweep in the loop below) */
#endif
#ifdef TB_CM4_DSP
    if (batch2 & TB_CM4_DW_SWEEP_STORES) {
      tb_cm4_dw_stores(input, &v, planes, batch2 >> 1, rows_per, filter, rq, p, output);
      return;
    }
#endif
    tb_cm4_dw_3x3s1_batched(input, &v, planes, batch2 >> 1, rows_per, filter, accbuf, rq, flags,
                            p, output);
    return;
  }
  for (ic = 0; ic < in_c; ++ic) {
    int32_t m;
    int16_t *plane = planes + (ic & (groups - 1)) * plane_words * 2;
    /* copy channel ic (or channels ic .. ic + groups - 1) into the plane(s), row by row */
    if ((ic & (groups - 1)) == 0) {
      tb_cm4_dw_gather(input + ic, &v, planes, wp, even_rows, groups, plane_words * 2,
                       (uint32_t)(uint8_t)zp * 0x01010101u);
    }
    for (m = 0; m < dm; ++m) {
      const int32_t oc = ic * dm + m;
      const int32_t *r = rq + 4 + 4 * oc;
      const int16_t *wc = filter + oc * wstride;
      if (path == TB_CM4_DW_GENERAL) {
        tb_cm4_dw_general(plane, p, wp, wc, r, flags, output + oc);
      } else {
        if (path == TB_CM4_DW_3X3S1) {
          tb_cm4_dw_3x3s1(plane, &v, rows_per, wc, accbuf, r, flags, p, output + oc);
        } else {
          tb_cm4_dw_3x3s2(plane, &v, wp, rows_per, even_rows, wc, accbuf, r, flags, p,
                          output + oc);
        }
      }
    }
  }
}
