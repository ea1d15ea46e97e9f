/* Reset, vector table and semihosting exit for Arm's MPS2+ AN386 (Cortex-M4F).
 *
 * Reset_Handler paints the stack with TB_PAINT (so tb_exit can measure the
 * peak use, on any simulator or the board), copies .data, zeroes .bss, grants
 * the FPU full access (CPACR CP10/CP11, ARMv7-M ARM B3.2.20), runs main() and
 * ends in tb_exit().
 *
 * tb_exit() overrides the runtime's weak one: it finds the lowest stack word
 * that no longer holds TB_PAINT (peak stack use = __stack_end__ - address) and
 * hands it to tb_exit_report (tinybuild/runtime/tb_semihost_arm.h, shared with
 * the cortex-m4 target), which writes "TB_STACK <address>\n" and
 * "TB_OUTPUT <hex bytes of every output>\n" and leaves through Arm semihosting:
 * how QEMU (-semihosting-config enable=on) reports the result and stops.
 * The unicorn simulator stops at tb_exit's address before running it, so the
 * same ELF runs in both and every instruction up to tb_exit is common to the
 * two. A fault (HardFault, MemManage, BusFault, UsageFault) goes to the shared
 * Fault_Handler, which writes "TB_FAULT pc=... " and exits with code 0xFA. */
#include <stdint.h>
#include "tb_runtime.h"
#include "../../tinybuild/runtime/tb_semihost_arm.h"   /* tb_exit_report, Fault_Handler (shared with cortex-m4) */

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, __stack_start__, __stack_end__;
extern int main(void);

void Reset_Handler(void);
void Default_Handler(void);

#define CPACR (*(volatile uint32_t *)0xE000ED88u)
#define TB_PAINT 0x3A5CA3C5u   /* the word simulators paint RAM with */

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
