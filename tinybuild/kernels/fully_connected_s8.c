/* FULLY_CONNECTED int8 (batch 1), matches
 * tflite::reference_integer_ops::FullyConnected: per-tensor requantization
 * (out_mul[0] is used for every output unless the host expands it; we index
 * per output so per-channel tables also work), weights_offset honoured. */
#include "tb_kernels.h"

void tb_fully_connected_s8(const tb_fc_params *p, const int8_t *input,
                           const int8_t *weights, const int32_t *bias,
                           const tb_quant_mul *out_mul, int8_t *output) {
  int32_t o, i;
  for (o = 0; o < p->out_features; ++o) {
    const int8_t *w = weights + o * p->in_features;
    int32_t acc = 0;
    for (i = 0; i < p->in_features; ++i) {
      acc += ((int32_t)w[i] + p->weights_offset) *
             ((int32_t)input[i] + p->input_offset);
    }
    if (bias) acc += bias[o];
    acc = tb_mul_by_quant_mul(acc, out_mul[o].multiplier, out_mul[o].shift);
    acc += p->output_offset;
    if (acc < p->act_min) acc = p->act_min;
    if (acc > p->act_max) acc = p->act_max;
    output[o] = (int8_t)acc;
  }
}
