/* Reset and vector table for the STM32L4R5ZI (Cortex-M4F, NUCLEO-L4R5ZI).
 * Reset_Handler copies .data from flash, zeroes .bss, grants the FPU full
 * access (CPACR CP10/CP11, ARMv7-M ARM B3.2.20), then runs main() and stops in
 * tb_exit(). Every other exception lands in Default_Handler, which spins so a
 * debugger (or a simulator's instruction limit) sees where it went. */
#include <stdint.h>
#include "tb_runtime.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, __stack_end__;
extern int main(void);

void Reset_Handler(void);
void Default_Handler(void);

#define CPACR (*(volatile uint32_t *)0xE000ED88u)

#ifdef TB_PLACE_BANKS
/* place=auto|ram with constants beyond SRAM1 (docs/placement.md): the linker
 * script's .ramdata_SRAM3 (after the arena) and .ramdata_SRAM2 (above the
 * stack), copied from flash like .data. tinybuild/placement.py compiles this
 * file again with -DTB_PLACE_BANKS for such a firmware only, so every other
 * one stays byte for byte as it was. */
extern uint32_t __ramdata_SRAM3_load, __ramdata_SRAM3_start, __ramdata_SRAM3_end;
extern uint32_t __ramdata_SRAM2_load, __ramdata_SRAM2_start, __ramdata_SRAM2_end;

static void copy_ramdata_banks(void) {
  static const struct { const uint32_t *load; uint32_t *start, *end; } banks[] = {
      {&__ramdata_SRAM3_load, &__ramdata_SRAM3_start, &__ramdata_SRAM3_end},
      {&__ramdata_SRAM2_load, &__ramdata_SRAM2_start, &__ramdata_SRAM2_end},
  };
  for (uint32_t b = 0; b < sizeof banks / sizeof banks[0]; ++b) {
    const uint32_t *src = banks[b].load;
    for (uint32_t *dst = banks[b].start; dst < banks[b].end;) *dst++ = *src++;
  }
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

void Default_Handler(void) {
  for (;;) {
  }
}

void NMI_Handler(void) __attribute__((weak, alias("Default_Handler")));
void HardFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void MemManage_Handler(void) __attribute__((weak, alias("Default_Handler")));
void BusFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Default_Handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));

/* The 16 core exceptions; the STM32L4R5's 95 peripheral interrupts are unused
 * by an inference firmware, so the table stops here (they would all be
 * Default_Handler). */
__attribute__((section(".isr_vector"), used))
const void *const tb_vector_table[16] = {
    &__stack_end__,   Reset_Handler,    NMI_Handler,       HardFault_Handler,
    MemManage_Handler, BusFault_Handler, UsageFault_Handler, 0,
    0,                0,                0,                 SVC_Handler,
    DebugMon_Handler, 0,                PendSV_Handler,    SysTick_Handler,
};
