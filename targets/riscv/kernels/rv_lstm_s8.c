/* RV32IM int8 LSTM (UNIDIRECTIONAL_SEQUENCE_LSTM, TFLite's 8x8_16 kernel), one
 * batch: the gate products with the four gates of one cell side by side. The
 * weights are reordered at build time (rv_lstm.py) to [cell][column][gate], so
 * each input (and output-state) byte is loaded once for four multiply-adds
 * instead of once per gate row, and the rescale of each product is
 * tb_mul_by_quant_mul inlined. The activations, the cell update and the output
 * state are the reference kernel's own (tb_lstm_s8_activate / _update in
 * tinybuild/kernels/recurrent.c), so the result is the reference's bit for bit.
 * Scratch: the reference's layout (cell, gates, output state). */
#include <string.h>

#include "tb_kernels.h"

void tb_rv_lstm_s8(const tb_lstm_s8_params *p, const int8_t *input, const int8_t *w_in4,
                   const int8_t *w_rec4, const int32_t *bias, const tb_quant_mul *gate_mul,
                   int8_t *output, void *scratch);

/* tb_mul_by_quant_mul (quant_s8.c), inlined: MUL and MULH give the 64-bit
 * product, then the rounding doubling high half and the rounding right shift. */
static inline __attribute__((always_inline)) int32_t requant(int32_t x, tb_quant_mul m) {
  const int32_t left = m.shift > 0 ? m.shift : 0, right = m.shift > 0 ? 0 : -m.shift;
  const int32_t a = (int32_t)((uint32_t)x << left);
  int32_t high, mask, remainder, threshold;
  if (a == INT32_MIN && m.multiplier == INT32_MIN) {
    high = INT32_MAX;
  } else {
    const int64_t ab = (int64_t)a * m.multiplier;
    high = (int32_t)((ab + (ab >= 0 ? (1 << 30) : (1 - (1 << 30)))) / ((int64_t)1 << 31));
  }
  mask = (int32_t)(((int64_t)1 << right) - 1);
  remainder = high & mask;
  threshold = (mask >> 1) + (high < 0 ? 1 : 0);
  return (high >> right) + (remainder > threshold ? 1 : 0);
}

static inline int16_t sat16(int32_t v) {
  return (int16_t)(v > INT16_MAX ? INT16_MAX : v < INT16_MIN ? INT16_MIN : v);
}

/* acc[g] += sum_col v[col] * w4[col][g] for the four gates of one cell. */
static inline __attribute__((always_inline)) void dot4(const int8_t *v, const int8_t *w4,
                                                        int32_t n, int32_t *acc) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], col;
  for (col = 0; col < n; col++, w4 += 4) {
    const int32_t x = v[col];
    a0 += x * w4[0];
    a1 += x * w4[1];
    a2 += x * w4[2];
    a3 += x * w4[3];
  }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
}

/* Every gate's pre-activation (the reference's two accumulations per row: the
 * input product rescaled and saturated, then the recurrent one added). */
static void gate_preactivations(const tb_lstm_s8_params *p, const int8_t *x, const int8_t *h,
                                const int8_t *w_in4, const int8_t *w_rec4, const int32_t *bias,
                                const tb_quant_mul *m, int16_t *gates) {
  const int32_t nc = p->n_cell, ni = p->n_input;
  int32_t r, g;
  for (r = 0; r < nc; r++) {
    int32_t in[4], rec[4];
    for (g = 0; g < 4; g++) {
      in[g] = bias[2 * g * nc + r];
      rec[g] = bias[(2 * g + 1) * nc + r];
    }
    dot4(x, w_in4 + r * ni * 4, ni, in);
    dot4(h, w_rec4 + r * nc * 4, nc, rec);
    for (g = 0; g < 4; g++)
      gates[g * nc + r] = sat16(requant(rec[g], m[2 * g + 1]) + sat16(requant(in[g], m[2 * g])));
  }
}

void tb_rv_lstm_s8(const tb_lstm_s8_params *p, const int8_t *input, const int8_t *w_in4,
                   const int8_t *w_rec4, const int32_t *bias, const tb_quant_mul *gate_mul,
                   int8_t *output, void *scratch) {
  const int32_t nc = p->n_cell, ni = p->n_input;
  int16_t *cell = (int16_t *)scratch;           /* the reference's layout, one batch */
  int16_t *gates = cell + nc;
  int8_t *h = (int8_t *)(gates + 4 * nc);
  int32_t t;
  memset(cell, 0, (size_t)nc * sizeof(int16_t));
  memset(h, (int8_t)p->output_state_zp, (size_t)nc);
  for (t = 0; t < p->n_time; t++) {
    gate_preactivations(p, input + t * ni, h, w_in4, w_rec4, bias, gate_mul, gates);
    tb_lstm_s8_activate(gates, nc);
    tb_lstm_s8_update(p, nc, cell, gates, h);
    memcpy(output + t * nc, h, (size_t)nc);
  }
}
