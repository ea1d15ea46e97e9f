/* Real-board mode (io=uart, docs/realboard.md): what a board provides so the
 * firmware runs one inference on a built-in test vector and prints the result
 * over its UART. Each board's tb_uart_<board>.c defines these three. */
#ifndef TB_UART_H
#define TB_UART_H
#include <stdint.h>

/* Clocks to the board's rated frequency, the console UART at 115200 8N1 and
 * the cycle counter; called first thing in main(). */
void tb_board_init(void);

/* Send one byte, waiting while the transmitter is busy. */
void tb_board_putc(char c);

/* The core's free-running cycle counter (DWT CYCCNT, mcycle), wrapping at 2^32. */
uint32_t tb_board_cycles(void);

#endif
