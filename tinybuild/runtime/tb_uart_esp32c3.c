/* io=uart board support for the ESP32-C3 (ESP32-C3 Technical Reference
 * Manual; ESP-IDF's register headers for the same addresses).
 * Watchdogs: the ROM bootloader leaves the RTC watchdog and timer group 0's
 * watchdog (MWDT0) running when it boots from flash, and the super watchdog
 * (SWD) runs from reset; a firmware that takes longer than their timeouts
 * is reset. So tb_board_init stops RWDT, MWDT0 and MWDT1 (each behind its
 * write key 0x50D83AA1) and sets SWD_AUTO_FEED_EN (key 0x8F1D312A) (TRM
 * chapter "Watchdog Timers").
 * Clock: left as the ROM bootloader leaves it, the 40 MHz crystal (XTAL_CLK,
 * CPU and APB 40 MHz). 160 MHz needs the BBPLL powered and calibrated over
 * the chip's internal I2C bus, which ESP-IDF does through ROM functions; not
 * done here. The printed figure is cycles, so the clock does not change it
 * (flash cache misses aside).
 * Console: UART0 (TX on GPIO21, the DevKit's USB-UART bridge) at 115200 8N1
 * as the ROM configured it from the unchanged APB clock; a byte goes into the
 * 128-byte TX FIFO (UART_FIFO_REG) when UART_STATUS_REG.TXFIFO_CNT says there
 * is room.
 * Cycles: the vendor performance counter (TRM chapter "ESP-RISC-V CPU":
 * mpcer 0x7E0 selects the event, 1 = clock cycles; mpcmr 0x7E1 = 1 counts;
 * mpccr 0x7E2 is the count). The core has no mcycle. */
#include "tb_uart.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define UART0_FIFO REG(0x60000000u)
#define UART0_STATUS REG(0x6000001Cu)
#define RTC_CNTL_WDTCONFIG0 REG(0x60008090u)
#define RTC_CNTL_WDTWPROTECT REG(0x600080A8u)
#define RTC_CNTL_SWD_CONF REG(0x600080ACu)
#define RTC_CNTL_SWD_WPROTECT REG(0x600080B0u)
#define TIMG0_WDTCONFIG0 REG(0x6001F048u)
#define TIMG0_WDTWPROTECT REG(0x6001F064u)
#define TIMG1_WDTCONFIG0 REG(0x60020048u)
#define TIMG1_WDTWPROTECT REG(0x60020064u)

#define WDT_WKEY 0x50D83AA1u
#define SWD_WKEY 0x8F1D312Au
#define SWD_AUTO_FEED_EN (1u << 31)
#define WDT_CONF_UPDATE_EN (1u << 22)            /* timer groups: copy the config into the WDT's clock domain */
#define TX_FIFO_BYTES 128u

static void stop_watchdogs(void) {
  RTC_CNTL_WDTWPROTECT = WDT_WKEY;
  RTC_CNTL_WDTCONFIG0 = 0;                       /* WDT_EN and every stage off */
  RTC_CNTL_WDTWPROTECT = 0;
  TIMG0_WDTWPROTECT = WDT_WKEY;
  TIMG0_WDTCONFIG0 = 0;
  TIMG0_WDTCONFIG0 = WDT_CONF_UPDATE_EN;
  TIMG0_WDTWPROTECT = 0;
  TIMG1_WDTWPROTECT = WDT_WKEY;
  TIMG1_WDTCONFIG0 = 0;
  TIMG1_WDTCONFIG0 = WDT_CONF_UPDATE_EN;
  TIMG1_WDTWPROTECT = 0;
  RTC_CNTL_SWD_WPROTECT = SWD_WKEY;              /* the super watchdog cannot be stopped: */
  RTC_CNTL_SWD_CONF |= SWD_AUTO_FEED_EN;         /* the hardware feeds it */
  RTC_CNTL_SWD_WPROTECT = 0;
}

void tb_board_init(void) {
  stop_watchdogs();
  /* csrw mpcer, 1; csrw mpcmr, 1 (encoded: Debian's GCC 12 for rv32imc has no _zicsr). */
  __asm__ volatile(".insn i 0x73, 1, x0, %0, 0x7E0" : : "r"(1u));
  __asm__ volatile(".insn i 0x73, 1, x0, %0, 0x7E1" : : "r"(1u));
}

void tb_board_putc(char c) {
  while (((UART0_STATUS >> 16) & 0x3FFu) >= TX_FIFO_BYTES) {  /* TXFIFO_CNT */
  }
  UART0_FIFO = (uint8_t)c;
}

uint32_t tb_board_cycles(void) {
  uint32_t cycles;
  __asm__ volatile(".insn i 0x73, 2, %0, x0, 0x7E2" : "=r"(cycles));  /* csrr mpccr */
  return cycles;
}
