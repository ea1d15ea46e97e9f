/* Reset, vector table and semihosting exit for the STM32F407 (Cortex-M4F).
 * Reset_Handler copies .data from flash, zeroes .bss, grants the FPU full
 * access (CPACR CP10/CP11, ARMv7-M ARM B3.2.20), then runs main() and stops in
 * tb_exit().
 *
 * tb_exit() overrides the runtime's weak one with the Arm semihosting exit of
 * tinybuild/runtime/tb_semihost_arm.h (shared with mps2-an386): it writes the
 * outputs in hex and leaves through SYS_EXIT_EXTENDED, which is how QEMU's
 * netduinoplus2 (STM32F405: this ELF runs there unchanged, sim=qemu) reports
 * the result and stops. The unicorn simulator stops at tb_exit's first
 * instruction, so none of it is counted. Nothing here paints the stack (that
 * would add instructions to the whole run): unicorn paints it from outside,
 * QEMU's counting plugin tracks the lowest store into it. Faults go to the
 * shared Fault_Handler (TB_FAULT line, exit code 0xFA); every other exception
 * lands in Default_Handler, which spins so a debugger (or a simulator's
 * instruction limit) sees where it went.
 *
 * plugins/nrf52840.py links this file too (nothing in it is STM32-specific). */
#include <stdint.h>
#include "tb_runtime.h"
#include "../../tinybuild/runtime/tb_semihost_arm.h"   /* by path: also without -I (export builds) */

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, __stack_end__;
extern int main(void);

void Reset_Handler(void);
void Default_Handler(void);

#define CPACR (*(volatile uint32_t *)0xE000ED88u)

#ifdef TB_PLACE_BANKS
/* place=auto|ram with constants beyond SRAM (docs/placement.md): the linker
 * script's .ramdata_CCMRAM, copied from flash like .data. tinybuild/placement.py
 * compiles this file again with -DTB_PLACE_BANKS for such a firmware only, so
 * every other one (nrf52840's too) stays byte for byte as it was. */
extern uint32_t __ramdata_CCMRAM_load, __ramdata_CCMRAM_start, __ramdata_CCMRAM_end;

static void copy_ramdata_banks(void) {
  const uint32_t *src = &__ramdata_CCMRAM_load;
  for (uint32_t *dst = &__ramdata_CCMRAM_start; dst < &__ramdata_CCMRAM_end;) *dst++ = *src++;
}
#endif

__attribute__((noreturn)) void Reset_Handler(void) {
  uint32_t *src = &_sidata;
  for (uint32_t *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
#ifdef TB_PLACE_BANKS
  copy_ramdata_banks();
#endif
  for (uint32_t *dst = &_sbss; dst < &_ebss;) *dst++ = 0;
#if defined(__ARM_FP)
  CPACR |= (0xFu << 20);
  __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
  tb_exit(main());
}

/* The lowest stack word written is measured by the simulator (0: no TB_STACK line). */
__attribute__((noreturn, noinline, used)) void tb_exit(int code) { tb_exit_report(code, 0); }

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

/* The 16 core exceptions; the STM32F407's 82 peripheral interrupts are unused
 * by an inference firmware, so the table stops here (they would all be
 * Default_Handler). */
__attribute__((section(".isr_vector"), used))
const void *const tb_vector_table[16] = {
    &__stack_end__,   Reset_Handler,    NMI_Handler,       HardFault_Handler,
    MemManage_Handler, BusFault_Handler, UsageFault_Handler, 0,
    0,                0,                0,                 SVC_Handler,
    DebugMon_Handler, 0,                PendSV_Handler,    SysTick_Handler,
};
