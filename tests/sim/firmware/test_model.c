/* A tiny stand-in for a generated model, for the simulator tests.
 *
 * Three "layers" with known behaviour:
 *   0: checksum of the input (loop of INPUT_SIZE iterations);
 *   1: a function with a known stack frame (a 512-byte volatile local);
 *   2: output[i] = input[i] * 3 + i, then output[14] = (int)(1.5f * input[0]
 *      * 4) (an FPU check) and output[15] = the checksum from layer 0;
 *   3: a dense-like int8 multiply-accumulate loop, repeated TB_TEST_REPEAT
 *      times (default 1; bench/run.py builds it with 20000 to time the simulator).
 * -DTB_TEST_FAULT reads unmapped memory in layer 1; -DTB_TEST_HANG spins
 * forever in layer 1; -DTB_TEST_STACK_OVERFLOW calls, in layer 1, a function
 * with a 16 KiB local array (the boards reserve 4 KiB of stack);
 * -DTB_TEST_MISALIGNED loads a word from an odd address in layer 1.
 */
#include <stdint.h>
#include "tb_runtime.h"

#define INPUT_SIZE 64
#define OUTPUT_SIZE 16
#define ARENA_SIZE 256
#ifndef TB_TEST_REPEAT
#define TB_TEST_REPEAT 1
#endif

__attribute__((section(".noinit"), aligned(16))) static uint8_t arena[ARENA_SIZE];

/* The build links with -Wl,--undefined=tb_io_desc: --gc-sections would
 * otherwise drop the descriptor once the compiler has constant-folded every
 * use of it (Debian's arm-none-eabi binutils ignores `retain`). */
__attribute__((used)) const tb_io_desc_t tb_io_desc =
    TB_IO_DESC_1_1(4, arena, INPUT_SIZE, arena + 128, OUTPUT_SIZE, arena, ARENA_SIZE);

volatile float tb_test_scale = 1.5f;
volatile int32_t tb_test_float_result;
volatile int32_t tb_test_dense_result;

__attribute__((noinline)) static int32_t layer_checksum(const int8_t *in) {
  int32_t acc = 0;
  for (int i = 0; i < INPUT_SIZE; i++) acc += in[i];
  return acc;
}

#if defined(TB_TEST_STACK_OVERFLOW)
__attribute__((noinline)) static int32_t too_deep(const int8_t *in) {
  volatile int32_t big[4096];
  for (int i = 0; i < 4096; i++) big[i] = in[i & (INPUT_SIZE - 1)];
  return big[0] + big[4095];
}
#endif

/* Touches a 512-byte local array so the frame is at least 512 bytes deep. */
__attribute__((noinline)) static int32_t layer_deep_frame(const int8_t *in) {
  volatile int32_t buf[128];
  for (int i = 0; i < 128; i++) buf[i] = in[i & (INPUT_SIZE - 1)];
#if defined(TB_TEST_FAULT)
  buf[0] += *(volatile int32_t *)0x30000000u;
#endif
#if defined(TB_TEST_HANG)
  for (;;) buf[1]++;
#endif
#if defined(TB_TEST_MISALIGNED)
  { /* in assembly: C would split a load it knows is misaligned into bytes */
    int32_t v;
#if defined(__riscv)
    __asm__ volatile("lw %0, 1(%1)" : "=r"(v) : "r"(in));
#else
    __asm__ volatile("ldr %0, [%1, #1]" : "=r"(v) : "r"(in));
#endif
    buf[3] += v;
  }
#endif
#if defined(TB_TEST_STACK_OVERFLOW)
  buf[2] += too_deep(in);
#endif
  return buf[0] + buf[127];
}

__attribute__((noinline)) static void layer_affine(const int8_t *in, int8_t *out, int32_t acc) {
  for (int i = 0; i < OUTPUT_SIZE; i++) out[i] = (int8_t)(in[i] * 3 + i);
  out[OUTPUT_SIZE - 1] = (int8_t)acc;
  tb_test_float_result = (int32_t)(tb_test_scale * (float)in[0] * 4.0f);
  out[OUTPUT_SIZE - 2] = (int8_t)tb_test_float_result;
}

/* acc[o] += sum_j in[j] * in[(j + o) % 64], the inner loop of a dense layer. */
__attribute__((noinline)) static void layer_dense(const int8_t *in, int32_t *acc) {
  for (int r = 0; r < TB_TEST_REPEAT; r++) {
    for (int o = 0; o < 16; o++) {
      int32_t s = acc[o];
      for (int j = 0; j < INPUT_SIZE; j++) s += in[j] * in[(j + o) & (INPUT_SIZE - 1)];
      acc[o] = s;
    }
  }
}

void tb_model_invoke(void) {
  const int8_t *in = (const int8_t *)TB_IO_INPUT(0).data;
  int8_t *out = (int8_t *)TB_IO_OUTPUT(0).data;
  tb_mark(0);
  int32_t acc = layer_checksum(in);
  tb_mark(1);
  acc += layer_deep_frame(in) & 0;
  tb_mark(2);
  layer_affine(in, out, acc);
  tb_mark(3);
  int32_t *dense = (int32_t *)(arena + 192);
  for (int o = 0; o < 16; o++) dense[o] = 0;
  layer_dense(in, dense);
  tb_test_dense_result = dense[0] + dense[15];
  tb_mark(TB_MARK_END);
}
