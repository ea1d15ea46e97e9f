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

int main(void) {
  tb_model_invoke();
  return 0;
}
