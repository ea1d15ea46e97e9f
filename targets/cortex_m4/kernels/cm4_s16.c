/* Cortex-M4 16x8 kernels (TFLite's int16 activations x int8 weights): CONV_2D,
 * DEPTHWISE_CONV_2D (depth multiplier 1) and FULLY_CONNECTED.
 *
 * The weights are widened to int16 at build time (cm4_s16.py), so one word of
 * weights and one word of activations feed one dual 16-bit MAC. The
 * convolution and FC sums are TFLite's int64 accumulator: SMLAD in int32 chunks
 * short enough never to overflow (PAIRS_PER_CHUNK), each added to the int64
 * sum: exact for any length (SMLALD, the 64-bit form, would take a register
 * pair per sum for the same instruction count). The depthwise sums
 * (at most cm4_s16.DW_MAX_TAPS taps of |x * w| <= 2^22) provably fit in int32:
 * SMLABB/SMLATT, the int64 bias added after. The rescale is the reference
 * kernels' own (tb_mul_by_quant_mul_s64's reduced multiplier, the FC's double
 * real_mul), so the output is the reference's bit for bit. */
#include "tb_cm4.h"

#ifdef TB_CM4_DSP
/* No IT blocks (branches instead): Unicorn 2.1.4 under a memory hook, as the
 * report's run has, misexecutes code after some of them, silently
 * (docs/simulators.md); seen on these kernels' clamps and 64-bit shifts. */
#pragma GCC optimize("no-if-conversion", "no-if-conversion2")
#endif

void tb_cm4_conv2d_s16(const tb_conv_params *p, const int16_t *input, const int16_t *filter,
                       const int64_t *bias, const int32_t *rq, int16_t *output, void *scratch);
void tb_cm4_depthwise_conv2d_s16(const tb_conv_params *p, const int16_t *input,
                                 const int16_t *filter, const int64_t *bias, const int32_t *rq,
                                 int16_t *output);
void tb_cm4_fully_connected_s16(const tb_fc_params *p, const int16_t *input,
                                const int16_t *weights, const int64_t *bias,
                                const double *real_mul, int16_t *output);

/* Products of int16 activations and int8 weights are at most 2^22 in
 * magnitude, an SMLAD adds two: 255 SMLADs cannot overflow int32, so the sums
 * run in int32 chunks of PAIRS_PER_CHUNK pairs, each added to the int64 sum. */
#define PAIRS_PER_CHUNK 255

/* tb_mul_by_quant_mul_s64 for multipliers below 1, with its reduced
 * multiplier from the build: rq = {reduced, r, rounding (2 words)} per channel,
 * total shift 15 + r (r in 0..31). (acc * reduced + rounding) >> (15 + r) is
 * taken as >> 15 then >> r, the low word only (the reference's int32 cast): no
 * variable 64-bit shift, whose IT blocks Unicorn 2.1.4 misexecutes under a
 * memory hook (docs/simulators.md). */
TB_INLINE int32_t rescale_s64(int64_t acc, const int32_t *rq) {
  const int64_t rounding = (int64_t)(((uint64_t)(uint32_t)rq[3] << 32) | (uint32_t)rq[2]);
  const int64_t q = (acc * rq[0] + rounding) >> 15;
#ifdef TB_CM4_DSP
  uint32_t out, t;
  __asm__("lsr %0, %2, %4\n\t"
          "rsb %1, %4, #32\n\t"
          "lsl %1, %3, %1\n\t"
          "orr %0, %0, %1"
          : "=&r"(out), "=&r"(t)
          : "r"((uint32_t)q), "r"((uint32_t)((uint64_t)q >> 32)), "r"(rq[1]));
  return (int32_t)out;  /* LSL by 32 (r = 0) gives 0 on Arm */
#else
  return (int32_t)(q >> rq[1]);
#endif
}

TB_INLINE int16_t clamp16(int32_t v, int32_t lo, int32_t hi) {
  return (int16_t)(v < lo ? lo : v > hi ? hi : v);
}

/* *p = v. On the M4 a plain STRH [Rn]: Unicorn 2.1.4 under a memory hook (the
 * report's run, docs/simulators.md) misexecutes GCC's register-offset
 * STRH [Rn, Rm, LSL #1] here, storing nowhere near p. */
TB_INLINE void store16(int16_t *p, int16_t v) {
#ifdef TB_CM4_DSP
  __asm__ volatile("strh %1, [%0]" : : "r"(p), "r"(v) : "memory");
#else
  *p = v;
#endif
}

/* Two int64 dot products of n2 halfword pairs sharing the activation words. */
TB_INLINE void dot2(const uint32_t *x, const int16_t *wa, const int16_t *wb, int32_t n2,
                    int64_t *acc_a, int64_t *acc_b) {
  int32_t start, i;
  for (start = 0; start < n2; start += PAIRS_PER_CHUNK) {
    const int32_t end = n2 - start < PAIRS_PER_CHUNK ? n2 : start + PAIRS_PER_CHUNK;
    int32_t a = 0, b = 0;
    for (i = start; i + 2 <= end; i += 2) {  /* two pairs per pass: half the loop's own work */
      const uint32_t v0 = tb_ld32(x + i), v1 = tb_ld32(x + i + 1);
      a = tb_smlad(v0, tb_ld32(wa + 2 * i), a);
      b = tb_smlad(v0, tb_ld32(wb + 2 * i), b);
      a = tb_smlad(v1, tb_ld32(wa + 2 * i + 2), a);
      b = tb_smlad(v1, tb_ld32(wb + 2 * i + 2), b);
    }
    if (i < end) {
      const uint32_t v = tb_ld32(x + i);
      a = tb_smlad(v, tb_ld32(wa + 2 * i), a);
      b = tb_smlad(v, tb_ld32(wb + 2 * i), b);
    }
    *acc_a += a;
    *acc_b += b;
  }
}

TB_INLINE int64_t dot1(const uint32_t *x, const int16_t *w, int32_t n2, int64_t acc) {
  int32_t start, i;
  for (start = 0; start < n2; start += PAIRS_PER_CHUNK) {
    const int32_t end = n2 - start < PAIRS_PER_CHUNK ? n2 : start + PAIRS_PER_CHUNK;
    int32_t a = 0;
    for (i = start; i < end; ++i) a = tb_smlad(tb_ld32(x + i), tb_ld32(w + 2 * i), a);
    acc += a;
  }
  return acc;
}

/* n int16 values; a loop, not a memcpy call, for the short runs of few
 * channels (GCC would make the loop a call again). */
__attribute__((optimize("no-tree-loop-distribute-patterns")))
static void copy16(int16_t *dst, const int16_t *src, int32_t n) {
  while (n-- > 0) *dst++ = *src++;
}

__attribute__((optimize("no-tree-loop-distribute-patterns")))
static void zero16(int16_t *dst, int32_t n) {
  while (n-- > 0) *dst++ = 0;
}

/* The receptive field of one output pixel as k (even) int16 values in the
 * filter's (ky, kx, ic) order, 0 at padded taps (zero point 0: no term). A
 * filter row inside the input without dilation is one run. */
static void gather_field(const tb_conv_params *p, const int16_t *input, int32_t oy, int32_t ox,
                         int16_t *field, int32_t k) {
  const int32_t in_c = p->in_c, y0 = oy * p->stride_h - p->pad_top;
  const int32_t x0 = ox * p->stride_w - p->pad_left, row = p->k_w * in_c;
  const int32_t whole_rows = p->dil_w == 1 && x0 >= 0 && x0 + p->k_w <= p->in_w;
  int16_t *dst = field;
  int32_t ky, kx;
  for (ky = 0; ky < p->k_h; ++ky) {
    const int32_t iy = y0 + p->dil_h * ky;
    if (iy < 0 || iy >= p->in_h) {
      zero16(dst, row);
      dst += row;
    } else if (whole_rows) {
      copy16(dst, input + (iy * p->in_w + x0) * in_c, row);
      dst += row;
    } else {
      for (kx = 0; kx < p->k_w; ++kx, dst += in_c) {
        const int32_t ix = x0 + p->dil_w * kx;
        if (ix < 0 || ix >= p->in_w)
          zero16(dst, in_c);
        else
          copy16(dst, input + (iy * p->in_w + ix) * in_c, in_c);
      }
    }
  }
  if (dst - field < k) *dst = 0;
}

/* filter: out_c rows of k = k_h*k_w*in_c int16 weights, each padded to an even
 * length; scratch: one field (1x1 unpadded filters read the input pixel itself
 * when it is word-aligned). */
void tb_cm4_conv2d_s16(const tb_conv_params *p, const int16_t *input, const int16_t *filter,
                       const int64_t *bias, const int32_t *rq, int16_t *output, void *scratch) {
  const int32_t k = (p->k_h * p->k_w * p->in_c + 1) & ~1, n2 = k / 2, out_c = p->out_c;
  const int32_t direct = p->k_h == 1 && p->k_w == 1 && (p->in_c & 1) == 0 &&
                         p->pad_top == 0 && p->pad_left == 0;  /* cm4_s16.conv_reads_input */
  const int32_t lo = p->act_min, hi = p->act_max;
  int16_t *field = (int16_t *)scratch;
  int32_t oy, ox, oc;
  for (oy = 0; oy < p->out_h; ++oy) {
    for (ox = 0; ox < p->out_w; ++ox, output += out_c) {
      const uint32_t *x;
      if (direct) {
        x = (const uint32_t *)(input + (oy * p->stride_h * p->in_w + ox * p->stride_w) * p->in_c);
      } else {
        gather_field(p, input, oy, ox, field, k);
        x = (const uint32_t *)field;
      }
      for (oc = 0; oc + 2 <= out_c; oc += 2) {
        int64_t a = bias[oc], b = bias[oc + 1];
        dot2(x, filter + oc * k, filter + (oc + 1) * k, n2, &a, &b);
        store16(output + oc, clamp16(rescale_s64(a, rq + 4 * oc), lo, hi));
        store16(output + oc + 1, clamp16(rescale_s64(b, rq + 4 * oc + 4), lo, hi));
      }
      if (oc < out_c)
        store16(output + oc, clamp16(rescale_s64(dot1(x, filter + oc * k, n2, bias[oc]), rq + 4 * oc),
                             lo, hi));
    }
  }
}

/* Up to this many taps inside the input, a pixel's taps are listed once
 * (input and filter offsets) and every channel pair runs down the list. */
#define DW_LISTED_TAPS 25

/* Two channels' outputs from their int32 tap sums (the int64 bias added after). */
TB_INLINE void depthwise_store(const int64_t *bias, const int32_t *rq, int16_t *out, int32_t ch,
                               int32_t c, int32_t a, int32_t b, int32_t lo, int32_t hi) {
  store16(out + ch, clamp16(rescale_s64(bias[ch] + a, rq + 4 * ch), lo, hi));
  if (ch + 1 < c) store16(out + ch + 1, clamp16(rescale_s64(bias[ch + 1] + b, rq + 4 * ch + 4), lo, hi));
}

/* One output pixel's channel pairs: each tap's input word (two channels) and
 * weight word into two int32 sums (SMLABB, SMLATT). filter: taps x c2 int16,
 * c2 = channels rounded up to even. */
static void depthwise_pixel(const tb_conv_params *p, const int16_t *input, const int16_t *filter,
                            const int64_t *bias, const int32_t *rq, int16_t *out, int32_t y0,
                            int32_t x0) {
  const int32_t c = p->in_c, c2 = (c + 1) & ~1, lo = p->act_min, hi = p->act_max;
  const int32_t ky0 = y0 >= 0 ? 0 : (-y0 + p->dil_h - 1) / p->dil_h;
  const int32_t kx0 = x0 >= 0 ? 0 : (-x0 + p->dil_w - 1) / p->dil_w;
  int32_t offsets[2 * DW_LISTED_TAPS];  /* per tap: input, filter offset in halfwords */
  int32_t ky1 = p->k_h, kx1 = p->k_w, ch, ky, kx, n = 0, t;
  while (ky1 > ky0 && y0 + p->dil_h * (ky1 - 1) >= p->in_h) --ky1;
  while (kx1 > kx0 && x0 + p->dil_w * (kx1 - 1) >= p->in_w) --kx1;
  input += ((y0 + p->dil_h * ky0) * p->in_w + x0 + p->dil_w * kx0) * c;  /* first tap inside */
  filter += (ky0 * p->k_w + kx0) * c2;
  if ((ky1 - ky0) * (kx1 - kx0) <= DW_LISTED_TAPS) {
    for (ky = 0; ky < ky1 - ky0; ++ky)
      for (kx = 0; kx < kx1 - kx0; ++kx, n += 2) {
        offsets[n] = (ky * p->dil_h * p->in_w + kx * p->dil_w) * c;
        offsets[n + 1] = (ky * p->k_w + kx) * c2;
      }
    for (ch = 0; ch < c; ch += 2) {
      const int16_t *x = input + ch, *w = filter + ch;
      int32_t a = 0, b = 0;
      if (ch + 1 < c) {
        for (t = 0; t < n; t += 2) {
          const uint32_t v = tb_ld32(x + offsets[t]), f = tb_ld32(w + offsets[t + 1]);
          a = tb_smlabb(v, f, a);
          b = tb_smlatt(v, f, b);
        }
      } else {  /* an odd last channel: halfwords, nothing read past the input */
        for (t = 0; t < n; t += 2) a += (int32_t)x[offsets[t]] * w[offsets[t + 1]];
      }
      depthwise_store(bias, rq, out, ch, c, a, b, lo, hi);
    }
    return;
  }
  for (ch = 0; ch < c; ch += 2) {
    int32_t a = 0, b = 0;
    for (ky = ky0; ky < ky1; ++ky) {
      const int16_t *x = input + (ky - ky0) * p->dil_h * p->in_w * c + ch;
      const int16_t *w = filter + (ky - ky0) * p->k_w * c2 + ch;
      if (ch + 1 < c) {
        for (kx = kx0; kx < kx1; ++kx, x += p->dil_w * c, w += c2) {
          const uint32_t v = tb_ld32(x), f = tb_ld32(w);
          a = tb_smlabb(v, f, a);
          b = tb_smlatt(v, f, b);
        }
      } else {  /* an odd last channel */
        for (kx = kx0; kx < kx1; ++kx, x += p->dil_w * c, w += c2) a += (int32_t)x[0] * w[0];
      }
    }
    depthwise_store(bias, rq, out, ch, c, a, b, lo, hi);
  }
}

void tb_cm4_depthwise_conv2d_s16(const tb_conv_params *p, const int16_t *input,
                                 const int16_t *filter, const int64_t *bias, const int32_t *rq,
                                 int16_t *output) {
  int32_t oy, ox;
  for (oy = 0; oy < p->out_h; ++oy)
    for (ox = 0; ox < p->out_w; ++ox, output += p->out_c)
      depthwise_pixel(p, input, filter, bias, rq, output, oy * p->stride_h - p->pad_top,
                      ox * p->stride_w - p->pad_left);
}

/* weights: out_features rows of in_features int16, each padded to an even
 * length; an odd in_features reads the input's last element alone. */
void tb_cm4_fully_connected_s16(const tb_fc_params *p, const int16_t *input,
                                const int16_t *weights, const int64_t *bias,
                                const double *real_mul, int16_t *output) {
  const int32_t n = p->in_features, k = (n + 1) & ~1, n2 = n / 2, m = p->out_features;
  /* an odd length: the last input times each row's last weight, added alone */
  const int32_t lo = p->act_min, hi = p->act_max;
  int32_t r, o;
  for (r = 0; r < p->rows; ++r, input += n, output += m) {
    const uint32_t *x = (const uint32_t *)input;
    const int32_t last = (n & 1) ? input[n - 1] : 0;
    for (o = 0; o < m; o += 2) {
      const int16_t *wa = weights + o * k;
      const int32_t two = o + 1 < m;
      const int16_t *wb = two ? wa + k : wa;
      int64_t a = bias[o], b = two ? bias[o + 1] : 0;
      dot2(x, wa, wb, n2, &a, &b);
      a += (int64_t)(last * wa[n - 1]);
      store16(output + o, clamp16(tb_round_half_away((double)a * real_mul[o]), lo, hi));
      if (two) {
        b += (int64_t)(last * wb[n - 1]);
        store16(output + o + 1, clamp16(tb_round_half_away((double)b * real_mul[o + 1]), lo, hi));
      }
    }
  }
}
