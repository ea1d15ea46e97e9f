/* Entry code for the Xtensa ESP32 and ESP32-S3 (windowed ABI).
 *
 * Not built in tinybuild's own CI (no Xtensa toolchain there) and not run by
 * any tinybuild simulator: it is written for Espressif's GCC and kept minimal.
 *
 * _start is the ELF entry, where the second-stage bootloader jumps once the
 * flash cache is mapped. It drops the loader's register windows (WINDOWBASE
 * 0, WINDOWSTART = window 0 only: we never return), sets PS for C code
 * (window overflow exceptions enabled, user vector mode, interrupts masked
 * up to the ESP32's EXCM level 3), sets the stack pointer a1 and calls into
 * C with callx8. Window overflow/underflow exceptions, which a deep call
 * chain raises, are served by the vector table the loader left in VECBASE.
 * The C part copies .data from DROM, zeroes .bss, runs main() and stops in
 * tb_exit(). */
#include <stdint.h>
#include "tb_runtime.h"

extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[];
extern int main(void);

void tb_reset_c(void) __attribute__((noreturn, used));

void tb_reset_c(void) {
  const uint32_t *src = _sidata;
  for (uint32_t *dst = _sdata; dst < _edata;) *dst++ = *src++;
  for (uint32_t *dst = _sbss; dst < _ebss;) *dst++ = 0;
  tb_exit(main());
}

__asm__(
    "  .section .text.tb_start, \"ax\"\n"
    "  .literal_position\n"
    "  .literal .Ltb_ps, 0x00040023\n"        /* PS.WOE | PS.UM | PS.INTLEVEL=3 */
    "  .literal .Ltb_sp, __stack_end__\n"
    "  .literal .Ltb_c, tb_reset_c\n"
    "  .align 4\n"
    "  .global _start\n"
    "  .type _start, @function\n"
    "_start:\n"
    "  movi   a0, 0\n"
    "  wsr    a0, WINDOWBASE\n"
    "  rsync\n"
    "  movi   a0, 1\n"
    "  wsr    a0, WINDOWSTART\n"
    "  rsync\n"
    "  l32r   a0, .Ltb_ps\n"
    "  wsr    a0, PS\n"
    "  rsync\n"
    "  l32r   a1, .Ltb_sp\n"
    "  l32r   a8, .Ltb_c\n"
    "  movi   a0, 0\n"                        /* no return address: backtraces end here */
    "  callx8 a8\n"
    "1:\n"
    "  j      1b\n"
    "  .size _start, . - _start\n");
