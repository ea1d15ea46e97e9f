/* Entry code for the ESP32-C3 (ESP-RISC-V, RV32IMC).
 *
 * _start is the ELF entry, where the second-stage bootloader (or the ROM in
 * direct-boot mode) jumps once flash is mapped. It sets gp (relaxation off
 * while doing so) and sp, then continues in C: copy .data from DROM, zero
 * .bss, run main() and stop in tb_exit(). Interrupts stay as the loader left
 * them (disabled) and the watchdogs are not touched: one inference takes a
 * fraction of a second. */
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
      ".option push\n\t"
      ".option norelax\n\t"
      "la    gp, __global_pointer$\n\t"
      ".option pop\n\t"
      "la    sp, __stack_end__\n\t"
      "j     tb_reset_c\n\t");
}
