/* Reset code for the RV32 test board when it runs in QEMU (-M virt) as well
 * as in unicorn: rv32_start.c plus a stack paint and a tb_exit that reports
 * through RISC-V semihosting, like targets/mps2_an386/startup_mps2_an386.c
 * does on Arm:
 *   "TB_STACK <lowest stack word no longer painted>\n"
 *   "TB_OUTPUT <hex bytes of the output tensor>\n", then SYS_EXIT_EXTENDED.
 * Unicorn stops at tb_exit's address, so the two count the same code. */
#include <stdint.h>
#include "tb_runtime.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, __stack_start__, __stack_end__;
extern int main(void);

#define TB_PAINT 0x3A5CA3C5u
#define SYS_WRITE0 0x04
#define SYS_EXIT_EXTENDED 0x20

/* The RISC-V semihosting call: an uncompressed slli/ebreak/srai sequence,
 * aligned, with the operation in a0 and the argument in a1. */
static __attribute__((noinline)) long semihost(long op, const void *arg) {
  register long a0 __asm__("a0") = op;
  register const void *a1 __asm__("a1") = arg;
  __asm__ volatile(".option push\n\t.option norvc\n\t.balign 16\n\t"
                   "slli zero, zero, 0x1f\n\tebreak\n\tsrai zero, zero, 7\n\t.option pop"
                   : "+r"(a0) : "r"(a1) : "memory");
  return a0;
}

static char *put_hex8(char *p, uint8_t v) {
  static const char digits[] = "0123456789abcdef";
  *p++ = digits[v >> 4];
  *p++ = digits[v & 15];
  return p;
}

/* Scans the stack before anything else touches it (naked: no prologue). */
__attribute__((naked, noreturn)) void tb_exit(int code) {
  (void)code;
  __asm__ volatile(
      "la a1, __stack_start__\n\t"
      "la a2, __stack_end__\n\t"
      "li a3, 0x3A5CA3C5\n\t"
      "1: bgeu a1, a2, 2f\n\t"
      "lw a4, 0(a1)\n\t"
      "bne a4, a3, 2f\n\t"
      "addi a1, a1, 4\n\t"
      "j 1b\n\t"
      "2: j tb_exit_report\n\t");
}

__attribute__((noinline, used, noreturn)) void tb_exit_report(int code, uint32_t low) {
  char line[96];
  char *p = line;
  const char *s = "TB_STACK ";
  while (*s) *p++ = *s++;
  for (int shift = 24; shift >= 0; shift -= 8) p = put_hex8(p, (uint8_t)(low >> shift));
  *p++ = '\n';
  *p = 0;
  semihost(SYS_WRITE0, line);
  p = line;
  s = "TB_OUTPUT ";
  while (*s) *p++ = *s++;
  const uint8_t *out = TB_IO_OUTPUT(0).data;
  for (uint32_t i = 0; i < TB_IO_OUTPUT(0).size && i < 40; i++) p = put_hex8(p, out[i]);
  *p++ = '\n';
  *p = 0;
  semihost(SYS_WRITE0, line);
  uint32_t block[2] = {0x20026u, (uint32_t)code};
  semihost(SYS_EXIT_EXTENDED, block);
  for (;;) {
  }
}

__attribute__((noreturn)) void tb_c_start(void) {
  uint32_t *sp;
  __asm__ volatile("mv %0, sp" : "=r"(sp));
  for (uint32_t *w = &__stack_start__; w < sp;) *w++ = TB_PAINT;
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
