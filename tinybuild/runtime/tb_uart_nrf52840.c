/* io=uart board support for the nRF52840 (nRF52840 Product Specification
 * v1.7; the nRF52840 DK, PCA10056).
 * Clock: the CPU runs at 64 MHz from HFCLK whatever its source: nothing to
 * raise. HFCLK starts on the internal RC oscillator (HFINT), whose tolerance
 * (PS, HFINT electrical specification) takes a large part of what 8N1 at
 * 115200 tolerates, so the 32 MHz crystal (HFXO) is started first
 * (CLOCK.TASKS_HFCLKSTART, wait for EVENTS_HFCLKSTARTED).
 * Console: UART0 TX on P0.06 (the DK's interface MCU's virtual COM port), 115200
 * 8N1 (BAUDRATE 0x01D7E000). The legacy UART, not UARTE0: one byte per TXD
 * write, no EasyDMA buffer (same registers, base 0x40002000).
 * Cycles: DWT CYCCNT after DEMCR.TRCENA and DWT_CTRL.CYCCNTENA. */
#include "tb_uart.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define CLOCK_TASKS_HFCLKSTART REG(0x40000000u)
#define CLOCK_EVENTS_HFCLKSTARTED REG(0x40000100u)
#define UART0_TASKS_STARTTX REG(0x40002008u)
#define UART0_EVENTS_TXDRDY REG(0x4000211Cu)
#define UART0_ENABLE REG(0x40002500u)
#define UART0_PSEL_TXD REG(0x4000250Cu)
#define UART0_TXD REG(0x4000251Cu)
#define UART0_BAUDRATE REG(0x40002524u)
#define UART0_CONFIG REG(0x4000256Cu)
#define P0_OUTSET REG(0x50000508u)
#define P0_DIRSET REG(0x50000518u)
#define DEMCR REG(0xE000EDFCu)
#define DWT_CTRL REG(0xE0001000u)
#define DWT_CYCCNT REG(0xE0001004u)

#define TX_PIN 6u                                /* P0.06 */
#define BAUD_115200 0x01D7E000u

static void start_hfxo(void) {
  CLOCK_EVENTS_HFCLKSTARTED = 0;
  CLOCK_TASKS_HFCLKSTART = 1;
  while (!CLOCK_EVENTS_HFCLKSTARTED) {
  }
}

static void uart0_on_p006(void) {
  P0_OUTSET = 1u << TX_PIN;                      /* idle high before the UART drives it */
  P0_DIRSET = 1u << TX_PIN;
  UART0_PSEL_TXD = TX_PIN;                       /* port 0, CONNECT = 0 */
  UART0_BAUDRATE = BAUD_115200;
  UART0_CONFIG = 0;                              /* no parity, no flow control, 1 stop bit */
  UART0_ENABLE = 4;                              /* UART (not UARTE) */
  UART0_TASKS_STARTTX = 1;
}

void tb_board_init(void) {
  start_hfxo();
  uart0_on_p006();
  DEMCR |= 1u << 24;                             /* TRCENA */
  DWT_CYCCNT = 0;
  DWT_CTRL |= 1u;                                /* CYCCNTENA */
}

void tb_board_putc(char c) {
  UART0_EVENTS_TXDRDY = 0;
  UART0_TXD = (uint8_t)c;
  while (!UART0_EVENTS_TXDRDY) {
  }
}

uint32_t tb_board_cycles(void) { return DWT_CYCCNT; }
