/* Entry code for the ESP32-C3 (ESP-RISC-V, RV32IMC), booted by the ROM's
 * "direct boot" (esp32c3.ld): flash offset 0 holds tb_direct_boot_magic, so
 * the ROM maps flash at 0x42000000/0x3C000000 and jumps to 0x42000008, which
 * the linker script makes _start (the ELF entry, where the simulator starts
 * too). The ROM sets up nothing else for us: _start sets gp (relaxation off
 * while doing so) and sp, then continues in C: copy .data from DROM, zero
 * .bss, run main() and stop in tb_exit(). Interrupts and mtvec stay as the
 * ROM left them, and the watchdogs are not touched here (io=uart's
 * tb_board_init stops them). */
#include <stdint.h>
#include "tb_runtime.h"

extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[];
extern int main(void);

/* 0xAEDB041D twice at flash offset 0: what the ROM checks before a direct boot. */
const uint32_t tb_direct_boot_magic[2] __attribute__((section(".tb_direct_boot"), used)) = {
    0xAEDB041Du, 0xAEDB041Du};

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
