/* The Arm semihosting end of a firmware, shared by the boards QEMU runs
 * (targets/cortex_m4 on -M netduinoplus2, targets/mps2_an386 on -M mps2-an386).
 * Include it from exactly one file of a firmware: the board's startup code.
 *
 * tb_exit_report(code, low) writes
 *   "TB_STACK <low>\n"                     (only when low != 0: the lowest stack
 *                                           word no longer painted, see mps2)
 *   "TB_OUTPUT <hex bytes of every output, in order>\n"
 * with SYS_WRITE0 and leaves with SYS_EXIT_EXTENDED, which is how QEMU
 * (-semihosting-config enable=on) reports the result and stops.
 * Fault_Handler (for HardFault, MemManage, BusFault, UsageFault) writes
 *   "TB_FAULT pc=<stacked PC> lr=<stacked LR> cfsr=<CFSR> bfar=<BFAR> mmfar=<MMFAR> sp=<frame>\n"
 * and exits with code 0xFA, so the simulator can name the faulting PC. When the
 * frame lies below __stack_start__ (the stack ran off the bottom of RAM, so
 * stacking it faulted too), it first moves SP back into the stack (else its
 * own pushes would lock the core up) and reports pc=lr=0.
 *
 * The unicorn simulator stops at tb_exit's first instruction, so none of this
 * runs there and it adds no counted instruction: only flash. On a board
 * without a debugger, the BKPT escalates to a HardFault and the core locks up
 * at the end instead of spinning. */
#ifndef TB_SEMIHOST_ARM_H
#define TB_SEMIHOST_ARM_H

#include <stdint.h>
#include "tb_runtime.h"

#define TB_SYS_WRITE0 0x04
#define TB_SYS_EXIT_EXTENDED 0x20
#define TB_ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define TB_FAULT_EXIT_CODE 0xFA
#define TB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define TB_MMFAR (*(volatile uint32_t *)0xE000ED34u)
#define TB_BFAR (*(volatile uint32_t *)0xE000ED38u)

void Fault_Handler(void);
void tb_exit_report(int code, uint32_t low) __attribute__((noreturn));
/* A program without a model (no outputs) still links, also with the build's
 * -Wl,--undefined=tb_io_desc; a model's descriptor replaces this one. */
__attribute__((weak)) const tb_io_desc_t tb_io_desc = {0, 0, 0, 0, 0, 0};

static int tb_semihost(int op, const void *arg) {
  register int r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

static __attribute__((noreturn)) void tb_semihost_exit(int code) {
  uint32_t block[2] = {TB_ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
  tb_semihost(TB_SYS_EXIT_EXTENDED, block);
  for (;;) {
  }
}

static __attribute__((noinline)) char *tb_put_str(char *p, const char *s) {
  while (*s) *p++ = *s++;
  return p;
}

static char *tb_put_hex8(char *p, uint8_t v) {
  static const char digits[] = "0123456789abcdef";
  *p++ = digits[v >> 4];
  *p++ = digits[v & 15];
  return p;
}

static __attribute__((noinline)) char *tb_put_hex32(char *p, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) p = tb_put_hex8(p, (uint8_t)(v >> shift));
  return p;
}

static __attribute__((noinline)) void tb_write_line(char *line, char *end) {
  *end++ = '\n';
  *end = 0;
  tb_semihost(TB_SYS_WRITE0, line);
}

__attribute__((noinline, used, noreturn)) void tb_exit_report(int code, uint32_t low) {
  char line[160];
  char *p;
  if (low) {
    p = tb_put_hex32(tb_put_str(line, "TB_STACK "), low);
    tb_write_line(line, p);
  }
  /* The linked descriptor, which the compiler must not take for the empty weak one above. */
  const tb_io_desc_t *desc = &tb_io_desc;
  __asm__("" : "+r"(desc));
  p = tb_put_str(line, "TB_OUTPUT ");
  for (uint32_t k = 0; k < desc->num_outputs; k++) {   /* every output, in order */
    const tb_io_tensor_t *t = &desc->tensors[desc->num_inputs + k];
    for (uint32_t i = 0; i < t->size; i++) {
      if (p - line > (long)sizeof line - 4) {   /* flush a full buffer */
        *p = 0;
        tb_semihost(TB_SYS_WRITE0, line);
        p = line;
      }
      p = tb_put_hex8(p, t->data[i]);
    }
  }
  tb_write_line(line, p);
  tb_semihost_exit(code);
}

__attribute__((used)) void tb_fault_report(const uint32_t *frame, uint32_t sp) {
  static const char *const names[] = {"TB_FAULT pc=", " lr=", " cfsr=", " bfar=", " mmfar=", " sp="};
  const uint32_t values[] = {frame ? frame[6] : 0, frame ? frame[5] : 0, TB_CFSR, TB_BFAR, TB_MMFAR, sp};
  char line[128];
  char *p = line;
  for (unsigned i = 0; i < sizeof values / sizeof values[0]; i++)
    p = tb_put_hex32(tb_put_str(p, names[i]), values[i]);
  tb_write_line(line, p);
  tb_semihost_exit(TB_FAULT_EXIT_CODE);
}

/* The stacked exception frame (r0-r3, r12, lr, pc, xpsr) is on MSP or PSP
 * (EXC_RETURN bit 2); below __stack_start__ it was not stacked. */
__attribute__((naked)) void Fault_Handler(void) {
  __asm__ volatile(
      "tst lr, #4\n\t"
      "ite eq\n\t"
      "mrseq r0, msp\n\t"
      "mrsne r0, psp\n\t"
      "mov r1, r0\n\t"
      "movw r2, #:lower16:__stack_start__\n\t"
      "movt r2, #:upper16:__stack_start__\n\t"
      "cmp r0, r2\n\t"
      "bhs 1f\n\t"
      "movw r2, #:lower16:__stack_end__\n\t"
      "movt r2, #:upper16:__stack_end__\n\t"
      "mov sp, r2\n\t"
      "movs r0, #0\n\t"
      "1: b tb_fault_report\n\t");
}

#endif
