/* main() of an io=uart firmware (docs/realboard.md). The board's startup
 * still calls main(); the link's -Wl,--wrap=main sends that call here, so
 * tb_runtime.c and the startup files are the same as in an io=sim build.
 *
 * One inference on the built-in test vector (tb_test_vector.c, generated from
 * the first validation input), then one line over the UART:
 *   tinybuild: output <hex of every output byte, in order> cycles <n>\r\n
 * and main returns to the startup, which ends in tb_exit (a loop on the
 * board; a simulator stops there). */
#include <stdint.h>
#include "tb_runtime.h"
#include "tb_uart.h"

extern const uint8_t tb_test_vector[];
extern const uint32_t tb_test_vector_size;

int __wrap_main(void);

static void put_str(const char *s) {
  while (*s) tb_board_putc(*s++);
}

static void put_hex(uint8_t byte) {
  static const char digits[] = "0123456789abcdef";
  tb_board_putc(digits[byte >> 4]);
  tb_board_putc(digits[byte & 0xF]);
}

static void put_dec(uint32_t value) {
  char text[11];
  int n = 0;
  do {
    text[n++] = (char)('0' + value % 10u);
    value /= 10u;
  } while (value);
  while (n) tb_board_putc(text[--n]);
}

/* The vector holds every input's bytes one after the other (as the
 * simulators' inputs do); the build checks its size against the model's. */
static void load_test_vector(void) {
  uint32_t at = 0;
  for (uint32_t i = 0; i < tb_io_desc.num_inputs; ++i) {
    const tb_io_tensor_t in = TB_IO_INPUT(i);
    for (uint32_t k = 0; k < in.size && at < tb_test_vector_size; ++k) in.data[k] = tb_test_vector[at++];
  }
}

int __wrap_main(void) {
  tb_board_init();
  load_test_vector();
  const uint32_t start = tb_board_cycles();
  tb_model_invoke();
  const uint32_t cycles = tb_board_cycles() - start;
  put_str("tinybuild: output ");
  for (uint32_t i = 0; i < tb_io_desc.num_outputs; ++i) {
    const tb_io_tensor_t out = TB_IO_OUTPUT(i);
    for (uint32_t k = 0; k < out.size; ++k) put_hex(out.data[k]);
  }
  put_str(" cycles ");
  put_dec(cycles);
  put_str("\r\n");
  return 0;
}
