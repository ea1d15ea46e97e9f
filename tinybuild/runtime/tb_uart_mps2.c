/* io=uart board support for Arm's MPS2+ AN386 (Cortex-M4 FPGA image; AN386
 * and the CMSDK APB UART TRM, DDI0479). The FPGA image runs at a fixed
 * 25 MHz: no clock to set. Console: CMSDK UART0 at 0x40004000, 115200 8N1
 * (BAUDDIV = 25 MHz / 115200 = 217). Cycles: DWT CYCCNT. */
#include "tb_uart.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define UART0_DATA REG(0x40004000u)
#define UART0_STATE REG(0x40004004u)
#define UART0_CTRL REG(0x40004008u)
#define UART0_BAUDDIV REG(0x40004010u)
#define DEMCR REG(0xE000EDFCu)
#define DWT_CTRL REG(0xE0001000u)
#define DWT_CYCCNT REG(0xE0001004u)

void tb_board_init(void) {
  UART0_BAUDDIV = 25000000u / 115200u;
  UART0_CTRL = 1u;                               /* TX enable */
  DEMCR |= 1u << 24;                             /* TRCENA */
  DWT_CYCCNT = 0;
  DWT_CTRL |= 1u;                                /* CYCCNTENA */
}

void tb_board_putc(char c) {
  while (UART0_STATE & 1u) {                     /* TX buffer full */
  }
  UART0_DATA = (uint8_t)c;
}

uint32_t tb_board_cycles(void) { return DWT_CYCCNT; }
