/* Recurrent layers: UNIDIRECTIONAL_SEQUENCE_LSTM and SVDF
 * (tinybuild/ops/recurrent.py, recurrent.c). The state a layer carries from
 * one time step to the next lives in the call's scratch buffer and starts from
 * TFLite's reset value at every call (the validation resets TFLite's variable
 * tensors before each inference too). */
#ifndef TB_RECURRENT_H
#define TB_RECURRENT_H
#include "tb_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* int8 LSTM, TFLite's 8x8_16 integer path (lstm_eval.cc EvalInteger8x8_16):
 * no CIFG, peephole, projection or layer norm. Gates in the order input,
 * forget, cell, output. Constants:
 *   w_in  [4][n_cell][n_input], w_rec [4][n_cell][n_cell]  (int8)
 *   bias  [8][n_cell]: per gate the input then the recurrent effective bias
 *         (bias + zero point x row sum, Prepare's precomputation)   (int32)
 *   gate_mul[8]: the same order, input and recurrent effective scales.
 * Scratch: tb_lstm_s8_scratch_bytes(n_batch, n_cell). */
typedef struct {
  int32_t n_batch, n_time, n_input, n_cell;
  int32_t time_major;      /* input [time][batch][in], else [batch][time][in] */
  int32_t output_state_zp; /* the int8 output state resets to its zero point */
  tb_quant_mul hidden_mul; /* effective_hidden_scale */
  int32_t hidden_zp;
  int32_t cell_log2;       /* log2 of the cell state's power-of-two scale */
  int32_t cell_clip;       /* quantized cell clip, 0: none */
} tb_lstm_s8_params;

void tb_lstm_s8(const tb_lstm_s8_params *p, const int8_t *input, const int8_t *w_in,
                const int8_t *w_rec, const int32_t *bias, const tb_quant_mul *gate_mul,
                int8_t *output, void *scratch);

/* The steps of tb_lstm_s8 an optimized kernel reuses, bit-exact: the activations of
 * the four gates' pre-activations (gates [4][n], Q3.12 in, Q0.15 out), then
 * UpdateLstmCellInteger and the new output state h (n = n_batch * n_cell). */
void tb_lstm_s8_activate(int16_t *gates, int32_t n);
void tb_lstm_s8_update(const tb_lstm_s8_params *p, int32_t n, int16_t *cell, int16_t *gates,
                       int8_t *h);

/* float32 LSTM (lstm_eval.cc EvalFloat, no CIFG/peephole/projection/layer norm).
 * w_in [4][n_cell][n_input], w_rec [4][n_cell][n_cell], bias [4][n_cell].
 * Scratch: (n_batch * n_cell * 6) floats. */
typedef struct {
  int32_t n_batch, n_time, n_input, n_cell;
  int32_t time_major;
  int32_t activation;  /* cell/output activation: 0 none, 1 relu, 3 relu6, 4 tanh, 6 sigmoid */
  float cell_clip;     /* 0: none */
} tb_lstm_f32_params;

void tb_lstm_f32(const tb_lstm_f32_params *p, const float *input, const float *w_in,
                 const float *w_rec, const float *bias, float *output, void *scratch);

/* int8 SVDF (svdf.cc EvalIntegerSVDF): int16 activation state, int8 input
 * and output. weights_feature [n_filter][n_input] int8, weights_time
 * [n_filter][memory] int16, bias [n_unit] int32 (zeros when absent).
 * Scratch: state int16 [n_batch][n_filter][memory] then int32
 * [n_batch][n_filter] and [n_batch][n_unit]. */
typedef struct {
  int32_t n_batch, n_input, n_filter, n_unit, memory;
  int32_t input_zp, output_zp;
  tb_quant_mul mul1, mul2; /* effective_scale_1 / _2 */
  int32_t act_min, act_max; /* fused RELU/RELU6 folded into int8 */
} tb_svdf_s8_params;

void tb_svdf_s8(const tb_svdf_s8_params *p, const int8_t *input, const int8_t *w_feature,
                const int16_t *w_time, const int32_t *bias, int8_t *output, void *scratch);

/* float32 SVDF (svdf.h EvalFloatSVDF). Scratch: state [n_batch][n_filter][memory]
 * then [n_batch][n_filter] floats. */
typedef struct {
  int32_t n_batch, n_input, n_filter, n_unit, memory;
  int32_t activation; /* 0 none, 1 relu, 3 relu6 */
  int32_t has_bias;   /* 0: the model has no bias (nothing is added) */
} tb_svdf_f32_params;

void tb_svdf_f32(const tb_svdf_f32_params *p, const float *input, const float *w_feature,
                 const float *w_time, const float *bias, float *output, void *scratch);

#ifdef __cplusplus
}
#endif
#endif
