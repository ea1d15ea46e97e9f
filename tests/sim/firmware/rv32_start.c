/* Reset code for the RV32 test board: stack, .data copy, .bss clear, main. */
#include <stdint.h>
#include "tb_runtime.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss;
extern int main(void);

__attribute__((noreturn)) void tb_c_start(void) {
  uint32_t *src = &_sidata;
  for (uint32_t *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
  for (uint32_t *dst = &_sbss; dst < &_ebss;) *dst++ = 0;
  tb_exit(main());
}

__asm__(".section .text.start,\"ax\",@progbits\n"
        ".global _start\n"
        "_start:\n"
        ".option push\n.option norelax\n"
        "  la gp, __global_pointer$\n"
        ".option pop\n"
        "  la sp, __stack_end__\n"
        "  j tb_c_start\n");
