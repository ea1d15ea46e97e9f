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
/* Host build (tests, native validation): the inputs' bytes arrive on stdin,
 * one after the other, the outputs' bytes leave on stdout the same way; one
 * inference per run. */
#include <stdio.h>

int main(void) {
  uint32_t i;
  for (i = 0; i < tb_io_desc.num_inputs; ++i) {
    const tb_io_tensor_t in = TB_IO_INPUT(i);
    if (fread(in.data, 1, in.size, stdin) != in.size) {
      fprintf(stderr, "tb_host: expected %u bytes for input %u on stdin\n", (unsigned)in.size,
              (unsigned)i);
      return 2;
    }
  }
  tb_model_invoke();
  for (i = 0; i < tb_io_desc.num_outputs; ++i) {
    fwrite(TB_IO_OUTPUT(i).data, 1, TB_IO_OUTPUT(i).size, stdout);
  }
  return 0;
}
#else
int main(void) {
  tb_model_invoke();
  return 0;
}
#endif
