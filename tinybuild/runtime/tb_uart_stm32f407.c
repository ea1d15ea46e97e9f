/* io=uart board support for the STM32F407 (RM0090 rev 19; docs/realboard.md).
 * Clock: HSI 16 MHz -> PLL M=8 (2 MHz input), N=168 (336 MHz VCO), P=2
 * (168 MHz SYSCLK), Q=7 (48 MHz); AHB /1, APB1 /4 (42 MHz), APB2 /2; flash 5
 * wait states with prefetch and the ART caches (RM0090 table 10: 5 WS for
 * 150-168 MHz at 2.7-3.6 V), voltage scale 1. HSI rather than HSE: it needs no
 * crystal on the board (UART timing within HSI's 1%).
 * Console: USART2 TX on PA2 (AF7) at 115200 8N1 from APB1's 42 MHz.
 * Cycles: DWT CYCCNT after DEMCR.TRCENA and DWT_CTRL.CYCCNTENA. */
#include "tb_uart.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define RCC_CR REG(0x40023800u)
#define RCC_PLLCFGR REG(0x40023804u)
#define RCC_CFGR REG(0x40023808u)
#define RCC_AHB1ENR REG(0x40023830u)
#define RCC_APB1ENR REG(0x40023840u)
#define FLASH_ACR REG(0x40023C00u)
#define PWR_CR REG(0x40007000u)
#define GPIOA_MODER REG(0x40020000u)
#define GPIOA_AFRL REG(0x40020020u)
#define USART2_SR REG(0x40004400u)
#define USART2_DR REG(0x40004404u)
#define USART2_BRR REG(0x40004408u)
#define USART2_CR1 REG(0x4000440Cu)
#define DEMCR REG(0xE000EDFCu)
#define DWT_CTRL REG(0xE0001000u)
#define DWT_CYCCNT REG(0xE0001004u)

#define APB1_HZ 42000000u
#define BAUD 115200u

static void clock_168mhz(void) {
  RCC_APB1ENR |= 1u << 28;                       /* PWREN */
  PWR_CR |= 1u << 14;                            /* VOS: scale 1 */
  FLASH_ACR = 5u | (1u << 8) | (1u << 9) | (1u << 10); /* 5 WS, PRFTEN, ICEN, DCEN */
  while ((FLASH_ACR & 7u) != 5u) {
  }
  RCC_CR |= 1u;                                  /* HSION */
  while (!(RCC_CR & (1u << 1))) {                /* HSIRDY */
  }
  RCC_PLLCFGR = 8u | (168u << 6) | (0u << 16) | (7u << 24); /* M, N, P=2, source HSI, Q */
  RCC_CR |= 1u << 24;                            /* PLLON */
  while (!(RCC_CR & (1u << 25))) {               /* PLLRDY */
  }
  RCC_CFGR = (RCC_CFGR & ~0xFCF3u) | (5u << 10) | (4u << 13) | 2u; /* APB1 /4, APB2 /2, SW=PLL */
  while ((RCC_CFGR & (3u << 2)) != (2u << 2)) {  /* SWS = PLL */
  }
}

static void usart2_on_pa2(void) {
  RCC_AHB1ENR |= 1u;                             /* GPIOAEN */
  RCC_APB1ENR |= 1u << 17;                       /* USART2EN */
  GPIOA_MODER = (GPIOA_MODER & ~(3u << 4)) | (2u << 4);    /* PA2 alternate function */
  GPIOA_AFRL = (GPIOA_AFRL & ~(0xFu << 8)) | (7u << 8);     /* AF7 = USART2_TX */
  USART2_BRR = (APB1_HZ + BAUD / 2u) / BAUD;     /* 16x oversampling: BRR = f / baud */
  USART2_CR1 = (1u << 13) | (1u << 3);           /* UE, TE */
}

void tb_board_init(void) {
  clock_168mhz();
  usart2_on_pa2();
  DEMCR |= 1u << 24;                             /* TRCENA */
  DWT_CYCCNT = 0;
  DWT_CTRL |= 1u;                                /* CYCCNTENA */
}

void tb_board_putc(char c) {
  while (!(USART2_SR & (1u << 7))) {             /* TXE */
  }
  USART2_DR = (uint8_t)c;
}

uint32_t tb_board_cycles(void) { return DWT_CYCCNT; }
