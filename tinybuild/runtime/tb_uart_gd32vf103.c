/* io=uart board support for the GD32VF103 (GD32VF103 user manual rev 1.2;
 * GigaDevice's system_gd32vf103.c, system_clock_108m_irc8m, does the same).
 * Clock: IRC8M / 2 = 4 MHz -> PLL x27 = 108 MHz CK_SYS, AHB /1, APB2 /1
 * (108 MHz), APB1 /2 (54 MHz, its maximum) (user manual 5.2, 5.3). IRC8M rather
 * than the 8 MHz HXTAL: it needs no crystal on the board (UART timing within
 * IRC8M's trimmed accuracy). No flash wait states to set: the GD32VF103's
 * flash controller has none (the vendor code sets none at 108 MHz).
 * Console: USART0 TX on PA9 (alternate push-pull) at 115200 8N1 from APB2's
 * 108 MHz (USARTDIV 937.5 -> 938, 0.05% fast).
 * Cycles: the mcycle CSR (RISC-V privileged spec), low word. */
#include "tb_uart.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define RCU_CTL REG(0x40021000u)
#define RCU_CFG0 REG(0x40021004u)
#define RCU_APB2EN REG(0x40021018u)
#define GPIOA_CTL1 REG(0x40010804u)
#define USART0_STAT REG(0x40013800u)
#define USART0_DATA REG(0x40013804u)
#define USART0_BAUD REG(0x40013808u)
#define USART0_CTL0 REG(0x4001380Cu)

#define APB2_HZ 108000000u
#define BAUD 115200u

/* RCU_CFG0 fields (user manual 5.3.2) */
#define CFG0_SCS_PLL 2u                          /* SCS[1:0]: CK_SYS = CK_PLL */
#define CFG0_SCSS_MASK (3u << 2)
#define CFG0_APB1_DIV2 (4u << 8)                 /* APB1PSC[10:8] = 0b100 */
#define CFG0_PRESCALERS ((0xFu << 4) | (7u << 8) | (7u << 11)) /* AHBPSC, APB1PSC, APB2PSC */
#define CFG0_PLL_SETUP ((1u << 16) | (0xFu << 18) | (1u << 29)) /* PLLSEL, PLLMF[3:0], PLLMF[4] */
#define CFG0_PLL_MUL27 ((10u << 18) | (1u << 29)) /* PLLMF = 0b11010: x27; PLLSEL 0: IRC8M/2 */

static void clock_108mhz(void) {
  RCU_CTL |= 1u;                                 /* IRC8MEN (on after reset) */
  while (!(RCU_CTL & (1u << 1))) {               /* IRC8MSTB */
  }
  RCU_CFG0 = (RCU_CFG0 & ~(CFG0_PRESCALERS | CFG0_PLL_SETUP)) | CFG0_APB1_DIV2 | CFG0_PLL_MUL27;
  RCU_CTL |= 1u << 24;                           /* PLLEN */
  while (!(RCU_CTL & (1u << 25))) {              /* PLLSTB */
  }
  RCU_CFG0 = (RCU_CFG0 & ~3u) | CFG0_SCS_PLL;
  while ((RCU_CFG0 & CFG0_SCSS_MASK) != (CFG0_SCS_PLL << 2)) {
  }
}

void tb_board_init(void) {
  clock_108mhz();
  RCU_APB2EN |= (1u << 14) | (1u << 2) | 1u;     /* USART0EN, PAEN, AFEN */
  GPIOA_CTL1 = (GPIOA_CTL1 & ~(0xFu << 4)) | (0xBu << 4); /* PA9: AF push-pull, 50 MHz */
  USART0_BAUD = (APB2_HZ + BAUD / 2u) / BAUD;    /* 16x oversampling: USARTDIV = f / baud */
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
