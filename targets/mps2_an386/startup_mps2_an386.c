/* Reset, vector table and semihosting exit for Arm's MPS2+ AN386 (Cortex-M4F).
 *
 * Reset_Handler paints the stack with TB_PAINT (so tb_exit can measure the
 * peak use, on any simulator or the board), copies .data, zeroes .bss, grants
 * the FPU full access (CPACR CP10/CP11, ARMv7-M ARM B3.2.20), runs main() and
 * ends in tb_exit().
 *
 * tb_exit() overrides the runtime's weak one: it writes one line
 *   "TB_OUTPUT <hex bytes of the output tensor>\n"
 * and leaves through Arm semihosting (SYS_WRITE0, then SYS_EXIT_EXTENDED with
 * the exit code), which is how QEMU (-semihosting-config enable=on) reports
 * the result and stops. Before that it writes "TB_STACK <address>\n", the
 * lowest stack word that no longer holds TB_PAINT (peak stack use =
 * __stack_end__ - address).
 * The unicorn simulator stops at tb_exit's address before running it, so the
 * same ELF runs in both and every instruction up to tb_exit is common to the
 * two.
 *
 * A fault (HardFault, MemManage, BusFault, UsageFault) writes
 *   "TB_FAULT pc=<stacked PC> lr=<stacked LR> cfsr=<CFSR> bfar=<BFAR> mmfar=<MMFAR>\n"
 * and exits with code 0xFA, so the simulator can name the faulting PC. */
#include <stdint.h>
#include "tb_runtime.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, __stack_start__, __stack_end__;
extern int main(void);

void Reset_Handler(void);
void Default_Handler(void);
void Fault_Handler(void);

#define CPACR (*(volatile uint32_t *)0xE000ED88u)
#define CFSR (*(volatile uint32_t *)0xE000ED28u)
#define MMFAR (*(volatile uint32_t *)0xE000ED34u)
#define BFAR (*(volatile uint32_t *)0xE000ED38u)

#define SYS_WRITE0 0x04
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define TB_FAULT_EXIT_CODE 0xFA
#define TB_PAINT 0x3A5CA3C5u   /* the word simulators paint RAM with */

static int semihost(int op, const void *arg) {
  register int r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

static __attribute__((noreturn)) void semihost_exit(int code) {
  uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
  semihost(SYS_EXIT_EXTENDED, block);
  for (;;) {
  }
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

static char *put_hex32(char *p, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) p = put_hex8(p, (uint8_t)(v >> shift));
  return p;
}

/* tb_exit scans the stack before it pushes anything (so its own frame does
 * not count), then hands the exit code and the lowest written stack word to
 * tb_exit_report. Written in assembly: a C function may push registers
 * before its first statement. */
__attribute__((naked, used, noreturn)) void tb_exit(int code) {
  (void)code;
  __asm__ volatile(
      "movw r1, #:lower16:__stack_start__\n\t"
      "movt r1, #:upper16:__stack_start__\n\t"
      "movw r2, #:lower16:__stack_end__\n\t"
      "movt r2, #:upper16:__stack_end__\n\t"
      "movw r3, #0xA3C5\n\t"          /* TB_PAINT */
      "movt r3, #0x3A5C\n\t"
      "1: cmp r1, r2\n\t"
      "bhs 2f\n\t"
      "ldr r12, [r1]\n\t"
      "cmp r12, r3\n\t"
      "bne 2f\n\t"
      "adds r1, r1, #4\n\t"
      "b 1b\n\t"
      "2: b tb_exit_report\n\t");
}

__attribute__((noinline, used, noreturn)) void tb_exit_report(int code, uint32_t low) {
  char line[160];
  char *p = put_str(line, "TB_STACK ");
  p = put_hex32(p, low);
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
  semihost_exit(code);
}

__attribute__((used)) void tb_fault_report(const uint32_t *frame) {
  char line[128];
  char *p = put_str(line, "TB_FAULT pc=");
  p = put_hex32(p, frame[6]);
  p = put_str(p, " lr=");
  p = put_hex32(p, frame[5]);
  p = put_str(p, " cfsr=");
  p = put_hex32(p, CFSR);
  p = put_str(p, " bfar=");
  p = put_hex32(p, BFAR);
  p = put_str(p, " mmfar=");
  p = put_hex32(p, MMFAR);
  *p++ = '\n';
  *p = 0;
  semihost(SYS_WRITE0, line);
  semihost_exit(TB_FAULT_EXIT_CODE);
}

/* The stacked exception frame (r0-r3, r12, lr, pc, xpsr) is on MSP or PSP
 * (EXC_RETURN bit 2). */
__attribute__((naked)) void Fault_Handler(void) {
  __asm__ volatile(
      "tst lr, #4\n\t"
      "ite eq\n\t"
      "mrseq r0, msp\n\t"
      "mrsne r0, psp\n\t"
      "b tb_fault_report\n\t");
}

__attribute__((noreturn)) void Reset_Handler(void) {
  uint32_t *sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  for (uint32_t *w = &__stack_start__; w < sp;) *w++ = TB_PAINT;   /* below this frame (no red zone on Arm) */
  uint32_t *src = &_sidata;
  for (uint32_t *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
  for (uint32_t *dst = &_sbss; dst < &_ebss;) *dst++ = 0;
#if defined(__ARM_FP)
  CPACR |= (0xFu << 20);
  __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
  tb_exit(main());
}

void Default_Handler(void) {
  for (;;) {
  }
}

void NMI_Handler(void) __attribute__((weak, alias("Default_Handler")));
void HardFault_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void MemManage_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void BusFault_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Default_Handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));

/* The 16 core exceptions; the AN386's 32 peripheral interrupts are unused by
 * an inference firmware. */
__attribute__((section(".isr_vector"), used))
const void *const tb_vector_table[16] = {
    &__stack_end__,   Reset_Handler,    NMI_Handler,       HardFault_Handler,
    MemManage_Handler, BusFault_Handler, UsageFault_Handler, 0,
    0,                0,                0,                 SVC_Handler,
    DebugMon_Handler, 0,                PendSV_Handler,    SysTick_Handler,
};
