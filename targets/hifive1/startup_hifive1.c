/* Reset code and semihosting exit for the HiFive1 Rev B (FE310-G002, RV32IMAC).
 *
 * _start is at 0x20010000, where the board's boot loader (and QEMU's sifive_e
 * mask ROM with revb=on) jumps. It sets gp (relaxation off while doing so)
 * and sp, then tb_reset_c paints the stack with TB_PAINT, copies .data,
 * zeroes .bss, runs main() and ends in tb_exit(). Interrupts stay disabled
 * (mstatus.MIE is 0 at reset).
 *
 * tb_exit() overrides the runtime's weak one, as on mps2-an386: it writes
 *   "TB_STACK <lowest stack word no longer painted>\n"
 *   "TB_OUTPUT <hex bytes of every output, in order>\n"
 * through RISC-V semihosting (SYS_WRITE0) and leaves with SYS_EXIT_EXTENDED,
 * which is how QEMU reports the result and stops. The unicorn simulator stops
 * at tb_exit's address before running it, so both count the same code. */
#include <stdint.h>
#include "tb_runtime.h"

extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[], __stack_start__[];
extern int main(void);

#define TB_PAINT 0x3A5CA3C5u   /* the word simulators paint RAM with */
#define SYS_WRITE0 0x04
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

void tb_reset_c(void) __attribute__((noreturn, used));
void _start(void) __attribute__((naked, noreturn, section(".text.tb_start")));

/* The RISC-V semihosting call: an uncompressed, 16-byte aligned
 * slli/ebreak/srai sequence with the operation in a0 and the argument in a1. */
static __attribute__((noinline)) long semihost(long op, const void *arg) {
  register long a0 __asm__("a0") = op;
  register const void *a1 __asm__("a1") = arg;
  __asm__ volatile(".option push\n\t.option norvc\n\t.balign 16\n\t"
                   "slli zero, zero, 0x1f\n\tebreak\n\tsrai zero, zero, 7\n\t.option pop"
                   : "+r"(a0) : "r"(a1) : "memory");
  return a0;
}

static char *put_str(char *p, const char *s) {
  while (*s) *p++ = *s++;
  return p;
}

static char *put_hex8(char *p, uint8_t v) {
  static const char digits[] = "0123456789abcdef";
  *p++ = digits[v >> 4];
  *p++ = digits[v & 15];
  return p;
}

/* Scans the stack before anything else touches it (naked: no prologue), then
 * hands the exit code and the lowest written stack word to tb_exit_report. */
__attribute__((naked, used, noreturn)) void tb_exit(int code) {
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
  char line[160];
  char *p = put_str(line, "TB_STACK ");
  for (int shift = 24; shift >= 0; shift -= 8) p = put_hex8(p, (uint8_t)(low >> shift));
  *p++ = '\n';
  *p = 0;
  semihost(SYS_WRITE0, line);
  p = put_str(line, "TB_OUTPUT ");
  for (uint32_t k = 0; k < tb_io_desc.num_outputs; k++) {   /* every output, in order */
    const uint8_t *out = TB_IO_OUTPUT(k).data;
    for (uint32_t i = 0; i < TB_IO_OUTPUT(k).size; i++) {
      if (p - line > (long)sizeof line - 4) {   /* flush a full buffer */
        *p = 0;
        semihost(SYS_WRITE0, line);
        p = line;
      }
      p = put_hex8(p, out[i]);
    }
  }
  *p++ = '\n';
  *p = 0;
  semihost(SYS_WRITE0, line);
  uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
  semihost(SYS_EXIT_EXTENDED, block);
  for (;;) {
  }
}

void tb_reset_c(void) {
  uint32_t *sp;
  __asm__ volatile("mv %0, sp" : "=r"(sp));
  for (uint32_t *w = __stack_start__; w < sp;) *w++ = TB_PAINT;
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
