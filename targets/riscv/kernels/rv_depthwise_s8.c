/* DEPTHWISE_CONV_2D int8 for RV32IM (rv32imc, rv32imac), bit-exact with
 * tb_depthwise_conv2d_s8.
 *
 * Per input channel, the kernel copies the channel (a strided column of the
 * NHWC tensor) into a planar int8 image in the scratch buffer. The plane's
 * frame (padding) holds the input zero point: it is written once per call,
 * the channels only overwrite the interior. The build folded
 * input_offset * sum(filter) into the bias, so a padded tap contributes
 * exactly nothing and the sweeps need no bounds checks.
 *
 * 3x3 with stride 1 or 2 (fast paths): the 9 weights and the requantization
 * constants sit in registers for a whole channel; a sweep along one line of
 * outputs computes 2 outputs per step from 3 row pointers with immediate
 * offsets (stride 1: 12 loads, 18 MUL + 18 ADD per 2 outputs; stride 2: 15
 * loads) and requantizes them inline. The build transposes plane and filter
 * when the output is taller than wide (KWS: 25 x 5), so the sweeps run along
 * the long side: fewer sweeps, fewer odd single outputs.
 * Any other kernel size, stride or dilation: the general path, 4 outputs of
 * a line per pass over the taps, still without bounds checks, also along
 * the longer side.
 *
 * Arguments: params, input, filter (int8 [out_c][k_h][k_w], [k_w][k_h] when
 * transposed with the plane), rq (header {flags, plane_w, plane_h, path | transposed << 8},
 * then tb_rv_chan per output channel), output, scratch (the plane).
 *
 * In place: output channel c is written only after input channel c was
 * copied, and with depth multiplier 1 it overwrites no other channel, so the
 * output may be the input itself (overlap (0, 0)).
 */
#include "tb_rv.h"

#define RV_DW_GENERAL 0
#define RV_DW_3X3S1 1
#define RV_DW_3X3S2 2

/* Where one line of outputs goes: out[step * step_stride], n steps. */
typedef struct {
  int32_t lines, steps;            /* output lines and outputs per line */
  int32_t line_stride, step_stride; /* in output bytes */
} rv_dw_sweep;

/* Requantize and store one output of a fast path (registers hold the rest);
 * acc is 4 times the sum: weights and bias are scaled once per channel, which
 * saves the requantization's shift per output. */
#define RV_DW_OUT(dst, acc4) \
  (dst) = (int8_t)tb_rv_clamp(tb_rv_requant_fast4((acc4), m, c, e), lo, hi)

/* Wrapping multiplications by 4 (through uint32): a constant channel's bias
 * may exceed 2^29, its requantization does not depend on the wrapped value. */
#define RV_X4(v) ((int32_t)((uint32_t)(v) << 2))
#define RV_DW_LOAD_WEIGHTS                                                           \
  const int32_t w00 = 4 * w[0], w01 = 4 * w[1], w02 = 4 * w[2], w10 = 4 * w[3];      \
  const int32_t w11 = 4 * w[4], w12 = 4 * w[5], w20 = 4 * w[6], w21 = 4 * w[7];      \
  const int32_t w22 = 4 * w[8], bias = RV_X4(q->bias), m = q->m, c = q->c, e = q->e

/* 3x3 stride 1: outputs (i, j) and (i, j+1) from plane columns j..j+3. */
__attribute__((optimize("no-schedule-insns")))
static void rv_dw_3x3_s1(const int8_t *plane, int32_t pw, const rv_dw_sweep *s,
                         const int8_t *w, const tb_rv_chan *q, int32_t lo, int32_t hi,
                         int8_t *out) {
  RV_DW_LOAD_WEIGHTS;
  const int32_t pairs = s->steps >> 1, step = s->step_stride, step2 = 2 * step;
  const int32_t lines = s->lines, line_stride = s->line_stride, odd = s->steps & 1;
  int32_t line, k;
  for (line = 0; line < lines; ++line) {
    const int8_t *r0 = plane + line * pw, *r1 = r0 + pw, *r2 = r1 + pw;
    int8_t *o = out + line * line_stride;
    for (k = 0; k < pairs; ++k) {
      int32_t v0 = r0[0], v1 = r0[1], v2 = r0[2], v3 = r0[3];
      int32_t a = bias + w00 * v0 + w01 * v1 + w02 * v2;
      int32_t b = bias + w00 * v1 + w01 * v2 + w02 * v3;
      v0 = r1[0]; v1 = r1[1]; v2 = r1[2]; v3 = r1[3];
      a += w10 * v0 + w11 * v1 + w12 * v2;
      b += w10 * v1 + w11 * v2 + w12 * v3;
      v0 = r2[0]; v1 = r2[1]; v2 = r2[2]; v3 = r2[3];
      a += w20 * v0 + w21 * v1 + w22 * v2;
      b += w20 * v1 + w21 * v2 + w22 * v3;
      RV_DW_OUT(o[0], a);
      RV_DW_OUT(o[step], b);
      r0 += 2; r1 += 2; r2 += 2; o += step2;
    }
    if (odd) {
      const int32_t a = bias + w00 * r0[0] + w01 * r0[1] + w02 * r0[2] +
                        w10 * r1[0] + w11 * r1[1] + w12 * r1[2] +
                        w20 * r2[0] + w21 * r2[1] + w22 * r2[2];
      RV_DW_OUT(o[0], a);
    }
  }
}

/* 3x3 stride 2: outputs (i, j) and (i, j+1) from plane columns 2j..2j+4. */
__attribute__((optimize("no-schedule-insns")))
static void rv_dw_3x3_s2(const int8_t *plane, int32_t pw, const rv_dw_sweep *s,
                         const int8_t *w, const tb_rv_chan *q, int32_t lo, int32_t hi,
                         int8_t *out) {
  RV_DW_LOAD_WEIGHTS;
  const int32_t pairs = s->steps >> 1, step = s->step_stride, step2 = 2 * step;
  const int32_t lines = s->lines, line_stride = s->line_stride, odd = s->steps & 1;
  int32_t line, k;
  for (line = 0; line < lines; ++line) {
    const int8_t *r0 = plane + 2 * line * pw, *r1 = r0 + pw, *r2 = r1 + pw;
    int8_t *o = out + line * line_stride;
    for (k = 0; k < pairs; ++k) {
      int32_t a = bias + w00 * r0[0] + w01 * r0[1];
      int32_t b = bias + w01 * r0[3] + w02 * r0[4];
      int32_t v = r0[2];
      a += w02 * v; b += w00 * v;
      a += w10 * r1[0] + w11 * r1[1];
      b += w11 * r1[3] + w12 * r1[4];
      v = r1[2];
      a += w12 * v; b += w10 * v;
      a += w20 * r2[0] + w21 * r2[1];
      b += w21 * r2[3] + w22 * r2[4];
      v = r2[2];
      a += w22 * v; b += w20 * v;
      RV_DW_OUT(o[0], a);
      RV_DW_OUT(o[step], b);
      r0 += 4; r1 += 4; r2 += 4; o += step2;
    }
    if (odd) {
      const int32_t a = bias + w00 * r0[0] + w01 * r0[1] + w02 * r0[2] +
                        w10 * r1[0] + w11 * r1[1] + w12 * r1[2] +
                        w20 * r2[0] + w21 * r2[1] + w22 * r2[2];
      RV_DW_OUT(o[0], a);
    }
  }
}

/* Kernel geometry along a line of outputs and across lines. */
typedef struct {
  int32_t k_along, stride_along, dil_along;
  int32_t k_across, stride_across, dil_across;
} rv_dw_taps;

/* One output at plane position r (its first tap). */
static int32_t rv_dw_any_one(const int8_t *r, int32_t pw, const rv_dw_taps *k,
                             const int8_t *w, int32_t bias) {
  int32_t acc = bias, a, b;
  for (a = 0; a < k->k_across; ++a, r += k->dil_across * pw) {
    for (b = 0; b < k->k_along; ++b) acc += *w++ * r[b * k->dil_along];
  }
  return acc;
}

/* Any kernel size, stride, dilation and depth multiplier: per tap, one weight
 * load serves 4 outputs of the line (19 instructions per 4 MACs); a line's
 * last outputs go one by one. The sweep runs along the longer side, as the
 * 3x3 paths (KWS-like 1-D models: k x 1 kernels on n x 1 maps). */
static void rv_dw_any(const int8_t *plane, int32_t pw, const rv_dw_sweep *s,
                      const rv_dw_taps *k, const int8_t *w, const tb_rv_chan *q,
                      int32_t fast, const tb_conv_params *p, int8_t *out) {
  const int32_t sa = k->stride_along, da = k->dil_along, step = s->step_stride;
  const int32_t zp = p->output_offset, lo = p->act_min, hi = p->act_max;
  int32_t line, j, a, b;
  for (line = 0; line < s->lines; ++line) {
    const int8_t *row = plane + line * k->stride_across * pw;
    int8_t *o = out + line * s->line_stride;
    for (j = 0; j + 4 <= s->steps; j += 4, row += 4 * sa, o += 4 * step) {
      int32_t a0 = q->bias, a1 = a0, a2 = a0, a3 = a0;
      const int8_t *t = w, *r = row;
      for (a = 0; a < k->k_across; ++a, r += k->dil_across * pw) {
        const int8_t *x = r;
        for (b = 0; b < k->k_along; ++b, x += da) {
          const int32_t v = *t++;
          a0 += v * x[0];
          a1 += v * x[sa];
          a2 += v * x[2 * sa];
          a3 += v * x[3 * sa];
        }
      }
      o[0] = (int8_t)tb_rv_requant(a0, q, fast, zp, lo, hi);
      o[step] = (int8_t)tb_rv_requant(a1, q, fast, zp, lo, hi);
      o[2 * step] = (int8_t)tb_rv_requant(a2, q, fast, zp, lo, hi);
      o[3 * step] = (int8_t)tb_rv_requant(a3, q, fast, zp, lo, hi);
    }
    for (; j < s->steps; ++j, row += sa, o += step) {
      *o = (int8_t)tb_rv_requant(rv_dw_any_one(row, pw, k, w, q->bias), q, fast, zp, lo, hi);
    }
  }
}

/* Input channel ic into the plane's interior. The inner loop runs along the
 * plane's rows (input columns, or input rows when transposed), 4 values per
 * iteration: 2.75 instructions per value instead of 5. */
static void rv_dw_copy_channel(const tb_conv_params *p, const int8_t *input, int32_t ic,
                               int8_t *interior, int32_t pw, int32_t transposed) {
  const int32_t in_c = p->in_c;
  const int32_t pixel = in_c, row = p->in_w * in_c;
  /* along: the input stride of consecutive plane bytes; across: of plane rows */
  const int32_t along = transposed ? row : pixel, across = transposed ? pixel : row;
  const int32_t n = transposed ? p->in_h : p->in_w, rows = transposed ? p->in_w : p->in_h;
  int32_t r, i;
  for (r = 0; r < rows; ++r) {
    const int8_t *src = input + r * across + ic;
    int8_t *dst = interior + r * pw;
    for (i = 0; i + 4 <= n; i += 4) {
      const int8_t a = src[0], b = src[along], c = src[2 * along], d = src[3 * along];
      dst[i] = a; dst[i + 1] = b; dst[i + 2] = c; dst[i + 3] = d;
      src += 4 * along;
    }
    for (; i < n; ++i) {
      dst[i] = *src;
      src += along;
    }
  }
}

void tb_rv_depthwise_conv2d_s8(const tb_conv_params *p, const int8_t *input,
                               const int8_t *filter, const int32_t *rq, int8_t *output,
                               void *scratch) {
  const int32_t fast = rq[0] & TB_RV_RQ_FAST, pw = rq[1], ph = rq[2];
  const int32_t path = rq[3] & 0xFF, transposed = rq[3] >> 8;
  const tb_rv_chan *chan = (const tb_rv_chan *)(rq + 4);
  const int32_t dm = p->depth_multiplier, taps = p->k_h * p->k_w, out_c = p->out_c;
  const int32_t row = p->out_w * out_c;
  int8_t *plane = (int8_t *)scratch;
  int8_t *interior = plane + (transposed ? p->pad_left * pw + p->pad_top
                                         : p->pad_top * pw + p->pad_left);
  rv_dw_sweep sweep;
  rv_dw_taps k;
  int32_t i, ic, mult;
  if (transposed) {
    sweep.lines = p->out_w; sweep.steps = p->out_h;
    sweep.line_stride = out_c; sweep.step_stride = row;
    k.k_along = p->k_h; k.stride_along = p->stride_h; k.dil_along = p->dil_h;
    k.k_across = p->k_w; k.stride_across = p->stride_w; k.dil_across = p->dil_w;
  } else {
    sweep.lines = p->out_h; sweep.steps = p->out_w;
    sweep.line_stride = row; sweep.step_stride = out_c;
    k.k_along = p->k_w; k.stride_along = p->stride_w; k.dil_along = p->dil_w;
    k.k_across = p->k_h; k.stride_across = p->stride_h; k.dil_across = p->dil_h;
  }
  for (i = 0; i < pw * ph; ++i) plane[i] = (int8_t)(-p->input_offset);
  for (ic = 0; ic < p->in_c; ++ic) {
    rv_dw_copy_channel(p, input, ic, interior, pw, transposed);
    for (mult = 0; mult < dm; ++mult) {
      const int32_t oc = ic * dm + mult;
      const int8_t *w = filter + oc * taps;
      if (path == RV_DW_3X3S1) {
        rv_dw_3x3_s1(plane, pw, &sweep, w, chan + oc, p->act_min, p->act_max, output + oc);
      } else if (path == RV_DW_3X3S2) {
        rv_dw_3x3_s2(plane, pw, &sweep, w, chan + oc, p->act_min, p->act_max, output + oc);
      } else {
        rv_dw_any(plane, pw, &sweep, &k, w, chan + oc, fast, p, output + oc);
      }
    }
  }
}
