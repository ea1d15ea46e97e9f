/* Cortex-M4 int8 LSTM (UNIDIRECTIONAL_SEQUENCE_LSTM, TFLite's 8x8_16 kernel):
 * the gate products with SMLAD, two int8 MACs per instruction, the input and
 * the previous output state sign-extended to halfword pairs once per step and
 * read by every gate row; the activations, the cell update and the output
 * state are the reference kernel's own (tb_lstm_s8_activate / _update in
 * tinybuild/kernels/recurrent.c), so the result is the reference's bit for
 * bit. One batch (the plugin refuses others). cm4_lstm.py sizes the scratch:
 * the reference's, then the two unpacked vectors. */
#include "tb_cm4.h"

void tb_cm4_lstm_s8(const tb_lstm_s8_params *p, const int8_t *input, const int8_t *w_in,
                    const int8_t *w_rec, const int32_t *bias, const tb_quant_mul *gate_mul,
                    int8_t *output, void *scratch);

/* Bytes 0,2 and 1,3 of each 4-byte group of v as halfword pairs (SXTB16). */
static void unpack_pairs(const int8_t *v, int32_t n, uint32_t *pairs) {
  int32_t i, j;
  for (i = 0, j = 0; i + 4 <= n; i += 4, j += 2) {
    const uint32_t word = tb_ld32(v + i);
    pairs[j] = tb_sxtb16(word);
    pairs[j + 1] = tb_sxtb16_ror8(word);
  }
}

/* acc + sum(v[i] * w[i]): the pairs from unpack_pairs, the tail one by one. */
static int32_t dot_pairs(const uint32_t *pairs, const int8_t *v, const int8_t *w, int32_t n,
                         int32_t acc) {
  int32_t i, j;
  for (i = 0, j = 0; i + 4 <= n; i += 4, j += 2) {
    const uint32_t word = tb_ld32(w + i);
    acc = tb_smlad(pairs[j], tb_sxtb16(word), acc);
    acc = tb_smlad(pairs[j + 1], tb_sxtb16_ror8(word), acc);
  }
  for (; i < n; i++) acc += (int32_t)v[i] * w[i];
  return acc;
}

/* tb_mul_by_quant_mul (quant_s8.c), inlined: two per gate row. SMULL's 64-bit
 * product, the rounding doubling high half, then the rounding right shift. */
TB_INLINE int32_t requant(int32_t x, tb_quant_mul m) {
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

static int16_t sat16(int32_t v) {
  return (int16_t)(v > INT16_MAX ? INT16_MAX : v < INT16_MIN ? INT16_MIN : v);
}

/* Every gate row: input product rescaled and saturated, then the recurrent product
 * rescaled and added with saturation (the reference's two accumulations). */
static void gate_preactivations(const tb_lstm_s8_params *p, const int8_t *x, const uint32_t *xw,
                                const int8_t *h, const uint32_t *hw, const int8_t *w_in,
                                const int8_t *w_rec, const int32_t *bias, const tb_quant_mul *m,
                                int16_t *gates) {
  const int32_t nc = p->n_cell, ni = p->n_input;
  int32_t g, r;
  for (g = 0; g < 4; g++) {
    for (r = 0; r < nc; r++) {
      const int32_t row = g * nc + r;
      int32_t in = dot_pairs(xw, x, w_in + row * ni, ni, bias[2 * g * nc + r]);
      int32_t rec = dot_pairs(hw, h, w_rec + row * nc, nc, bias[(2 * g + 1) * nc + r]);
      int16_t v = sat16(requant(in, m[2 * g]));
      gates[row] = sat16(requant(rec, m[2 * g + 1]) + v);
    }
  }
}

void tb_cm4_lstm_s8(const tb_lstm_s8_params *p, const int8_t *input, const int8_t *w_in,
                    const int8_t *w_rec, const int32_t *bias, const tb_quant_mul *gate_mul,
                    int8_t *output, void *scratch) {
  const int32_t nc = p->n_cell, ni = p->n_input;
  int16_t *cell = (int16_t *)scratch;           /* the reference's layout, one batch */
  int16_t *gates = cell + nc;
  int8_t *h = (int8_t *)(gates + 4 * nc);
  uint32_t *xw = (uint32_t *)((uintptr_t)(h + nc + 3) & ~(uintptr_t)3);
  uint32_t *hw = xw + ni / 4 * 2;
  int32_t t;
  memset(cell, 0, (size_t)nc * sizeof(int16_t));
  memset(h, (int8_t)p->output_state_zp, (size_t)nc);
  for (t = 0; t < p->n_time; t++) {
    const int8_t *x = input + t * ni;
    unpack_pairs(x, ni, xw);
    unpack_pairs(h, nc, hw);
    gate_preactivations(p, x, xw, h, hw, w_in, w_rec, bias, gate_mul, gates);
    tb_lstm_s8_activate(gates, nc);
    tb_lstm_s8_update(p, nc, cell, gates, h);
    memcpy(output + t * nc, h, (size_t)nc);
  }
}
