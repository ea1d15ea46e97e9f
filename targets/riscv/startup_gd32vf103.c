/* Reset code for the GD32VF103 (Nuclei Bumblebee core, RV32IMAC).
 *
 * _start is the first word of flash. At reset the core fetches from
 * 0x00000000, the boot alias of main flash, so it first jumps to its link
 * address in the 0x08000000 window with an absolute lui/jalr (PC-relative
 * addressing would otherwise compute alias-relative addresses). It then sets
 * gp (for gp-relative small-data accesses, linker relaxation off while doing
 * so) and sp, and continues in C: copy .data from flash, zero .bss, run
 * main() and stop in tb_exit(). Interrupts stay disabled (mstatus.MIE is 0
 * at reset) and no trap vector is installed: an inference firmware takes no
 * interrupts, and a fault shows up in the simulator as an error naming the
 * faulting instruction. */
#include <stdint.h>
#include "tb_runtime.h"

extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[];
extern int main(void);

void tb_reset_c(void) __attribute__((noreturn, used));
void _start(void) __attribute__((naked, noreturn, section(".text.tb_start")));

void tb_reset_c(void) {
  const uint32_t *src = _sidata;
  for (uint32_t *dst = _sdata; dst < _edata;) *dst++ = *src++;
  for (uint32_t *dst = _sbss; dst < _ebss;) *dst++ = 0;
  tb_exit(main());
}

void _start(void) {
  __asm__ volatile(
      "lui   t0, %hi(1f)\n\t"
      "jalr  zero, %lo(1f)(t0)\n"
      "1:\n\t"
      ".option push\n\t"
      ".option norelax\n\t"
      "la    gp, __global_pointer$\n\t"
      ".option pop\n\t"
      "la    sp, __stack_end__\n\t"
      "j     tb_reset_c\n\t");
}
