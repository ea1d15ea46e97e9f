/* io=uart board support for the NUCLEO-L4R5ZI (STM32L4R5ZI: RM0432 rev 9;
 * the board's UM2179). Clock: MSI 4 MHz (as after reset) -> PLL M=1, N=60
 * (240 MHz VCO), R=2 = 120 MHz SYSCLK, in voltage range 1 boost mode
 * (PWR_CR5.R1MODE = 0) with 5 flash wait states, prefetch and the ART caches
 * (RM0432 6.2.9 and table 12); the switch above 80 MHz goes through AHB /2 for
 * at least 1 us (RM0432 5.1.8). MSI needs no crystal.
 * Console: LPUART1 TX on PG7 (AF8), which the board's ST-LINK exposes as its
 * virtual COM port; PG needs VDDIO2 (PWR_CR2.IOSV). 115200 8N1 from PCLK1's
 * 120 MHz: BRR = 256 * 120 MHz / 115200.
 * Cycles: DWT CYCCNT after DEMCR.TRCENA and DWT_CTRL.CYCCNTENA. */
#include "tb_uart.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define RCC_CR REG(0x40021000u)
#define RCC_CFGR REG(0x40021008u)
#define RCC_PLLCFGR REG(0x4002100Cu)
#define RCC_AHB2ENR REG(0x4002104Cu)
#define RCC_APB1ENR1 REG(0x40021058u)
#define RCC_APB1ENR2 REG(0x4002105Cu)
#define FLASH_ACR REG(0x40022000u)
#define PWR_CR2 REG(0x40007004u)
#define PWR_CR5 REG(0x40007080u)
#define GPIOG_MODER REG(0x48001800u)
#define GPIOG_AFRL REG(0x48001820u)
#define LPUART1_CR1 REG(0x40008000u)
#define LPUART1_BRR REG(0x4000800Cu)
#define LPUART1_ISR REG(0x4000801Cu)
#define LPUART1_TDR REG(0x40008028u)
#define DEMCR REG(0xE000EDFCu)
#define DWT_CTRL REG(0xE0001000u)
#define DWT_CYCCNT REG(0xE0001004u)

#define HCLK_HZ 120000000u
#define BAUD 115200u

static void settle_1us(void) {
  for (volatile uint32_t i = 0; i < 64u; ++i) {   /* >= 1 us at 60 MHz */
  }
}

static void clock_120mhz(void) {
  RCC_APB1ENR1 |= 1u << 28;                      /* PWREN */
  PWR_CR5 &= ~(1u << 8);                         /* R1MODE = 0: range 1 boost */
  FLASH_ACR = 5u | (1u << 8) | (1u << 9) | (1u << 10); /* 5 WS, PRFTEN, ICEN, DCEN */
  while ((FLASH_ACR & 0xFu) != 5u) {
  }
  RCC_PLLCFGR = 1u | (0u << 4) | (60u << 8) | (1u << 24); /* MSI, M=1, N=60, PLLREN, R=2 */
  RCC_CR |= 1u << 24;                            /* PLLON */
  while (!(RCC_CR & (1u << 25))) {               /* PLLRDY */
  }
  RCC_CFGR = (RCC_CFGR & ~0xF3u) | (8u << 4) | 3u; /* AHB /2 on the way, SW = PLL */
  while ((RCC_CFGR & (3u << 2)) != (3u << 2)) {  /* SWS = PLL */
  }
  settle_1us();
  RCC_CFGR &= ~(0xFu << 4);                      /* AHB /1: 120 MHz */
}

static void lpuart1_on_pg7(void) {
  PWR_CR2 |= 1u << 9;                            /* IOSV: VDDIO2 valid (port G) */
  RCC_AHB2ENR |= 1u << 6;                        /* GPIOGEN */
  RCC_APB1ENR2 |= 1u;                            /* LPUART1EN */
  GPIOG_MODER = (GPIOG_MODER & ~(3u << 14)) | (2u << 14);  /* PG7 alternate function */
  GPIOG_AFRL = (GPIOG_AFRL & ~(0xFu << 28)) | (8u << 28);   /* AF8 = LPUART1_TX */
  LPUART1_BRR = (uint32_t)((256ull * HCLK_HZ + BAUD / 2u) / BAUD);
  LPUART1_CR1 = (1u << 3) | 1u;                  /* TE, UE */
}

void tb_board_init(void) {
  clock_120mhz();
  lpuart1_on_pg7();
  DEMCR |= 1u << 24;                             /* TRCENA */
  DWT_CYCCNT = 0;
  DWT_CTRL |= 1u;                                /* CYCCNTENA */
}

void tb_board_putc(char c) {
  while (!(LPUART1_ISR & (1u << 7))) {           /* TXE */
  }
  LPUART1_TDR = (uint8_t)c;
}

uint32_t tb_board_cycles(void) { return DWT_CYCCNT; }
