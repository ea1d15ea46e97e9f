/* io=uart board support for the GD32VF103 (GD32VF103 user manual rev 1.2).
 * Clock: left on IRC8M (8 MHz) as after reset; raising it to 108 MHz through
 * the PLL is not done (docs/realboard.md). Console: USART0 TX on PA9
 * (alternate push-pull) at 115200 8N1 from APB2's 8 MHz (USARTDIV 69 =
 * 4 + 5/16). Cycles: the mcycle CSR (RISC-V privileged spec), low word. */
#include "tb_uart.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define RCU_APB2EN REG(0x40021018u)
#define GPIOA_CTL1 REG(0x40010804u)
#define USART0_STAT REG(0x40013800u)
#define USART0_DATA REG(0x40013804u)
#define USART0_BAUD REG(0x40013808u)
#define USART0_CTL0 REG(0x4001380Cu)

#define APB2_HZ 8000000u
#define BAUD 115200u

void tb_board_init(void) {
  RCU_APB2EN |= (1u << 14) | (1u << 2) | 1u;     /* USART0EN, PAEN, AFEN */
  GPIOA_CTL1 = (GPIOA_CTL1 & ~(0xFu << 4)) | (0xBu << 4); /* PA9: AF push-pull, 50 MHz */
  USART0_BAUD = (APB2_HZ + BAUD / 2u) / BAUD;
  USART0_CTL0 = (1u << 13) | (1u << 3);          /* UEN, TEN */
}

void tb_board_putc(char c) {
  while (!(USART0_STAT & (1u << 7))) {           /* TBE */
  }
  USART0_DATA = (uint8_t)c;
}

uint32_t tb_board_cycles(void) {
  uint32_t cycles;
  /* csrr %0, mcycle (0xB00) encoded: -march=rv32imac without _zicsr (GCC 12) rejects
   * the mnemonic; the immediate is the CSR number as a signed 12-bit field. */
  __asm__ volatile(".insn i 0x73, 2, %0, x0, -1280" : "=r"(cycles));
  return cycles;
}
