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
 *    out[x+1] += SMLATB(A, W01) + SMLAD(B, W12); B is the next A.
 *  - 3x3, stride 2: out[x] += SMLAD(A, W01) + SMLABB(B, W2x) with A at 2x;
 *    B is again the next A.
 *  - anything else (any k, stride, dilation, depth multiplier): one SMLABB
 *    per tap.
 * Requantization is the fast exact form (tb_rq) or the reference's.
 *
 * Arguments: params, input, filter (int16 per output channel: 12 values
 * W01,W12 / W01,W2x per row for the 3x3 paths, else k_h*k_w rounded up to
 * even), rq (header {flags, plane width, plane height, path}, then per output
 * channel {bias', M, B, e} or {bias', M, shift, 0}), output, scratch (the
 * plane, plane width * height int16).
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
 * flattened plane (n <= 32 pairs) into acc[0 .. 2n-1]. w: W01, W12 of the rows.
 * On the M4: 32 unrolled steps of 76 bytes (6 LDR, 12 MACs, STRD), entered at
 * step 32 - n: no loop counter, weights in registers. */
static __attribute__((noinline)) void tb_cm4_dw3s1_sweep(const int16_t *q, int32_t row_bytes, int32_t n,
                               const uint32_t *w, int32_t *acc) {
#ifdef TB_CM4_DSP
  const int32_t e = TB_CM4_DW_STEPS - n;      /* entry step */
  const uint32_t p0 = (uint32_t)q - 4u * (uint32_t)e;
  const uint32_t p1 = p0 + (uint32_t)row_bytes, p2 = p1 + (uint32_t)row_bytes;
  const uint32_t accp = (uint32_t)(acc - 2 * e);
  uint32_t s0 = (uint32_t)e * 76u, s1, ta, tb;
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
      "strd   %[s0], %[s1], [%[accp], #(8*\\k)]\n\t"
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
      : [s0] "+r"(s0), [s1] "=&r"(s1), [ta] "=&r"(ta), [tb] "=&r"(tb)
      : [p0] "r"(p0), [p1] "r"(p1), [p2] "r"(p2), [accp] "r"(accp), [w01a] "r"(w[0]),
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

/* 3x3 stride 2: n <= 32 outputs of one row, q at the plane position of the
 * first; w: W01, W2x of the rows. Steps of 52 bytes (6 LDR, 6 MACs, STR). */
static __attribute__((noinline)) void tb_cm4_dw3s2_sweep(const int16_t *q, int32_t row_bytes, int32_t n,
                               const uint32_t *w, int32_t *acc) {
#ifdef TB_CM4_DSP
  const int32_t e = TB_CM4_DW_STEPS - n;
  const uint32_t p0 = (uint32_t)q - 4u * (uint32_t)e;
  const uint32_t p1 = p0 + (uint32_t)row_bytes, p2 = p1 + (uint32_t)row_bytes;
  const uint32_t accp = (uint32_t)(acc - e);
  uint32_t s0 = (uint32_t)e * 52u, s1, ta, tb;
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
      : [s0] "+r"(s0), [s1] "=&r"(s1), [ta] "=&r"(ta), [tb] "=&r"(tb)
      : [p0] "r"(p0), [p1] "r"(p1), [p2] "r"(p2), [accp] "r"(accp), [w01a] "r"(w[0]),
        [w2a] "r"(w[1]), [w01b] "r"(w[2]), [w2b] "r"(w[3]), [w01c] "r"(w[4]), [w2c] "r"(w[5])
      : "cc", "memory");
#else
  int32_t k;
  const char *r0 = (const char *)q;
  for (k = 0; k < n; ++k) {
    int32_t s0 = 0, r;
    for (r = 0; r < 3; ++r) {
      const uint32_t a = tb_ld32(r0 + r * row_bytes + 4 * k);
      const uint32_t b = tb_ld32(r0 + r * row_bytes + 4 * k + 4);
      s0 = tb_smlad(a, w[2 * r], s0);
      s0 = tb_smlabb(b, w[2 * r + 1], s0);
    }
    acc[k] = s0;
  }
#endif
}

/* Requantize rows x cols sums (+ bias), sums a row apart by acc_row, outputs
 * out_c apart (rows follow each other in the output). */
static __attribute__((noinline)) int8_t *tb_cm4_dw_store(const int32_t *acc, int32_t rows,
                                                         int32_t cols, int32_t acc_row,
                                                         const int32_t *r, int32_t flags,
                                                         const tb_conv_params *p, int8_t *o) {
  const int32_t out_c = p->out_c;
  int32_t y, i;
  if (flags == (TB_CM4_RQ_FAST | TB_CM4_RQ_FULLRANGE)) {
    const int32_t bias2 = r[0] * 2, m = r[1], b = r[2], e = r[3];
    const int32_t skip = (acc_row - cols) * 4;
#ifdef TB_CM4_DSP
    uint32_t t0, t1, u0, u1, cnt, rr = (uint32_t)rows, ap = (uint32_t)acc;
    __asm__ volatile(
        "1:\n\t"
        "ldr %[cnt], %[cols]\n\t"
        "subs %[cnt], %[cnt], #2\n\t"
        "blt 3f\n\t"
        "2:\n\t"
        "ldrd %[t0], %[t1], [%[ap]], #8\n\t"
        "add %[t0], %[bias2], %[t0], lsl #1\n\t"
        "add %[t1], %[bias2], %[t1], lsl #1\n\t"
        "add %[u0], %[b], %[t0], asr #31\n\t"
        "add %[u1], %[b], %[t1], asr #31\n\t"
        "smmlar %[t0], %[t0], %[m], %[u0]\n\t"
        "smmlar %[t1], %[t1], %[m], %[u1]\n\t"
        "asr %[t0], %[t0], %[e]\n\t"
        "asr %[t1], %[t1], %[e]\n\t"
        "ssat %[t0], #8, %[t0]\n\t"
        "ssat %[t1], #8, %[t1]\n\t"
        "strb %[t0], [%[o]]\n\t"
        "strb %[t1], [%[o], %[stride]]\n\t"
        "add %[o], %[o], %[stride], lsl #1\n\t"
        "subs %[cnt], %[cnt], #2\n\t"
        "bge 2b\n\t"
        "3:\n\t"
        "adds %[cnt], %[cnt], #2\n\t"
        "beq 4f\n\t"
        "ldr %[t0], [%[ap]], #4\n\t"
        "add %[t0], %[bias2], %[t0], lsl #1\n\t"
        "add %[u0], %[b], %[t0], asr #31\n\t"
        "smmlar %[t0], %[t0], %[m], %[u0]\n\t"
        "asr %[t0], %[t0], %[e]\n\t"
        "ssat %[t0], #8, %[t0]\n\t"
        "strb %[t0], [%[o]]\n\t"
        "add %[o], %[o], %[stride]\n\t"
        "4:\n\t"
        "ldr %[u0], %[skip]\n\t"
        "add %[ap], %[ap], %[u0]\n\t"
        "subs %[rr], %[rr], #1\n\t"
        "bne 1b\n\t"
        : [t0] "=&r"(t0), [t1] "=&r"(t1), [u0] "=&r"(u0), [u1] "=&r"(u1), [cnt] "=&r"(cnt),
          [rr] "+r"(rr), [ap] "+r"(ap), [o] "+r"(o)
        : [cols] "m"(cols), [bias2] "r"(bias2), [b] "r"(b), [m] "r"(m), [e] "r"(e),
          [stride] "r"(out_c), [skip] "m"(skip)
        : "cc", "memory");
    (void)y;
    (void)i;
#else
    for (y = 0; y < rows; ++y, acc += skip / 4) {
      for (i = 0; i < cols; ++i) {
        /* tb_rq(acc + bias) with the doubling folded into one ADD */
        const int32_t t = (int32_t)((uint32_t)bias2 + ((uint32_t)acc[i] << 1));
        *o = (int8_t)tb_ssat8(tb_asr(tb_smmlar(t, m, b + tb_asr(t, 31)), e));
        o += out_c;
      }
      acc += cols;
    }
#endif
  } else {
    for (y = 0; y < rows; ++y, acc += acc_row) {
      for (i = 0; i < cols; ++i) {
        *o = (int8_t)tb_cm4_dw_finish(acc[i] + r[0], r, flags, p);
        o += out_c;
      }
    }
  }
  return o;
}

/* Copy channel c of an NHWC tensor into the plane (rows wp apart). */
static __attribute__((noinline)) void tb_cm4_dw_gather(const int8_t *src, int32_t h, int32_t w,
                                                       int32_t stride, int16_t *dst,
                                                       int32_t wp) {
  int32_t y;
  for (y = 0; y < h; ++y, dst += wp) {
    int16_t *d = dst;
    int32_t x = w;
    for (; x >= 4; x -= 4) {
      const int32_t v0 = src[0], v1 = src[stride], v2 = src[2 * stride], v3 = src[3 * stride];
      d[0] = (int16_t)v0;
      d[1] = (int16_t)v1;
      d[2] = (int16_t)v2;
      d[3] = (int16_t)v3;
      d += 4;
      src += 4 * stride;
    }
    for (; x > 0; --x, src += stride) *d++ = (int16_t)src[0];
  }
}

/* Copy channels c .. c+3 (c a multiple of 4, stride = in_c) into 4 planes
 * plane_words apart: one word load and two SXTB16 per pixel, PKH pairs pixels. */
static __attribute__((noinline)) void tb_cm4_dw_gather4(const int8_t *src, int32_t h, int32_t w,
                                                        int32_t stride, int16_t *dst,
                                                        int32_t wp, int32_t plane) {
  int32_t y;
  int16_t *d1 = dst + plane, *d2 = dst + 2 * plane, *d3 = dst + 3 * plane;
  for (y = 0; y < h; ++y) {
    int32_t x = w, i = 0;
    for (; x >= 2; x -= 2, i += 2) {
      const uint32_t u = tb_ld32(src), v = tb_ld32(src + stride);
      const uint32_t u02 = tb_sxtb16(u), v02 = tb_sxtb16(v);
      const uint32_t u13 = tb_sxtb16_ror8(u), v13 = tb_sxtb16_ror8(v);
      tb_st32(dst + i, tb_pkhbt16(u02, v02));
      tb_st32(d2 + i, tb_pkhtb16(v02, u02));
      tb_st32(d1 + i, tb_pkhbt16(u13, v13));
      tb_st32(d3 + i, tb_pkhtb16(v13, u13));
      src += 2 * stride;
    }
    if (x) {
      const uint32_t u = tb_ld32(src);
      const uint32_t u02 = tb_sxtb16(u), u13 = tb_sxtb16_ror8(u);
      dst[i] = (int16_t)u02;
      d2[i] = (int16_t)(u02 >> 16);
      d1[i] = (int16_t)u13;
      d3[i] = (int16_t)(u13 >> 16);
      src += stride;
    }
    dst += wp, d1 += wp, d2 += wp, d3 += wp;
  }
}

void tb_cm4_depthwise_conv2d_s8(const tb_conv_params *p, const int8_t *input,
                                const int16_t *filter, const int32_t *rq, int8_t *output,
                                void *scratch) {
  const int32_t flags = rq[0], wp = rq[1], hp = rq[2], path_groups = rq[3];
  const int32_t path = path_groups & 0xFF;
  const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
  const int32_t out_h = p->out_h, out_w = p->out_w, out_c = p->out_c;
  const int32_t dm = p->depth_multiplier;
  const int32_t pt = p->pad_top, pl = p->pad_left;
  const int16_t *w16 = filter;
  const int32_t wstride = path == TB_CM4_DW_GENERAL ? ((p->k_h * p->k_w + 1) & ~1) : 12;
  /* rq[3] bits 8..: number of planes (1 or 4; 4 when in_c % 4 == 0 and they fit) */
  const int32_t groups = path_groups >> 8 ? path_groups >> 8 : 1;
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
    int32_t y, m;
    int16_t *plane = planes;
    /* copy channel ic (or channels ic .. ic+3) into the plane(s) */
    if (groups == 4) {
      const int32_t g = ic & 3;
      if (g == 0) {
        tb_cm4_dw_gather4(input + ic, in_h, in_w, in_c, planes + pt * wp + pl, wp,
                          plane_words * 2);
      }
      plane += g * plane_words * 2;
    } else {
      tb_cm4_dw_gather(input + ic, in_h, in_w, in_c, plane + pt * wp + pl, wp);
    }
    for (m = 0; m < dm; ++m) {
      const int32_t oc = ic * dm + m;
      const int32_t *r = rq + 4 + 4 * oc;
      const int16_t *wc = w16 + oc * wstride;
      int8_t *out = output + oc;
      const int32_t bias = r[0];
      (void)bias;
      if (path == TB_CM4_DW_3X3S1) {
        /* the plane's rows share their zero column, so a sweep runs across
         * whole rows; positions x >= out_w of a row are computed, not stored */
        uint32_t w[6];
        int8_t *o = out;
        for (i = 0; i < 6; ++i) w[i] = tb_ld32(wc + 2 * i);
        if (wp <= 2 * TB_CM4_DW_STEPS) {
          const int32_t rows_per = (2 * TB_CM4_DW_STEPS) / wp;
          for (y = 0; y < out_h; y += rows_per) {
            const int32_t rows = out_h - y < rows_per ? out_h - y : rows_per;
            tb_cm4_dw3s1_sweep(plane + y * wp, 2 * wp, (rows * wp) >> 1, w, accbuf);
            o = tb_cm4_dw_store(accbuf, rows, out_w, wp, r, flags, p, o);
          }
        } else {
          for (y = 0; y < out_h; ++y) {
            int32_t x0;
            for (x0 = 0; x0 < out_w; x0 += 2 * TB_CM4_DW_STEPS) {
              const int32_t n = out_w - x0 < 2 * TB_CM4_DW_STEPS ? out_w - x0 : 2 * TB_CM4_DW_STEPS;
              tb_cm4_dw3s1_sweep(plane + y * wp + x0, 2 * wp, (n + 1) >> 1, w, accbuf);
              o = tb_cm4_dw_store(accbuf, 1, n, 0, r, flags, p, o);
            }
          }
        }
      } else if (path == TB_CM4_DW_3X3S2) {
        uint32_t w[6];
        int8_t *o = out;
        for (i = 0; i < 6; ++i) w[i] = tb_ld32(wc + 2 * i);
        for (y = 0; y < out_h; ++y) {
          int32_t x0;
          for (x0 = 0; x0 < out_w; x0 += TB_CM4_DW_STEPS) {
            const int32_t n = out_w - x0 < TB_CM4_DW_STEPS ? out_w - x0 : TB_CM4_DW_STEPS;
            tb_cm4_dw3s2_sweep(plane + 2 * y * wp + 2 * x0, 2 * wp, n, w, accbuf);
            o = tb_cm4_dw_store(accbuf, 1, n, 0, r, flags, p, o);
          }
        }
      } else {
        const int32_t kh = p->k_h, kw = p->k_w, sh = p->stride_h, sw = p->stride_w;
        const int32_t dh = p->dil_h, dw = p->dil_w;
        for (y = 0; y < out_h; ++y) {
          int8_t *o = out + y * out_w * out_c;
          int32_t x;
          for (x = 0; x < out_w; ++x) {
            const int16_t *q = plane + y * sh * wp + x * sw;
            int32_t s0 = bias, ky, kx;
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
    }
  }
}
