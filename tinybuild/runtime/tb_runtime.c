/* Device runtime: the layer marker, the exit point and main(). Targets may
 * override the weak symbols (e.g. to stop a hardware debugger or to signal
 * exit through semihosting). */
#include "tb_runtime.h"

__attribute__((weak, noinline, used)) void tb_mark(uint32_t id) {
  /* The empty asm keeps the call from being optimized away or merged. */
  __asm__ volatile("" : : "r"(id) : "memory");
}

__attribute__((weak, noinline, used, noreturn)) void tb_exit(int code) {
  for (;;) {
    __asm__ volatile("" : : "r"(code) : "memory");
  }
}

#ifdef TB_HOST
/* Host build (tests, native validation): the input tensor's bytes arrive on
 * stdin, the output tensor's bytes leave on stdout, one inference per run. */
#include <stdio.h>

int main(void) {
  if (fread(tb_io_desc.input, 1, tb_io_desc.input_size, stdin) != tb_io_desc.input_size) {
    fprintf(stderr, "tb_host: expected %u input bytes on stdin\n", (unsigned)tb_io_desc.input_size);
    return 2;
  }
  tb_model_invoke();
  fwrite(tb_io_desc.output, 1, tb_io_desc.output_size, stdout);
  return 0;
}
#else
int main(void) {
  tb_model_invoke();
  return 0;
}
#endif
