/* io=uart board support for the ESP32-C3 (ESP32-C3 Technical Reference
 * Manual; ESP-IDF's register headers for the same addresses).
 * Watchdogs: the ROM bootloader leaves the RTC watchdog and timer group 0's
 * watchdog (MWDT0) running when it boots from flash, and the super watchdog
 * (SWD) runs from reset; a firmware that takes longer than their timeouts
 * is reset. So tb_board_init stops RWDT, MWDT0 and MWDT1 (each behind its
 * write key 0x50D83AA1) and sets SWD_AUTO_FEED_EN (key 0x8F1D312A) (TRM
 * chapter "Watchdog Timers").
 * Clock: the ROM leaves the CPU on the 40 MHz crystal; tb_board_init moves
 * it to 160 MHz from the BBPLL at 480 MHz in ESP-IDF's order (v5.x
 * rtc_clk_init() and rtc_clk_cpu_freq_set_config(): esp_hw_support/port/
 * esp32c3/rtc_clk*.c, hal/esp32c3/clk_tree_ll.h and regi2c_ctrl_ll.h,
 * soc/esp32c3 regi2c_defs.h, regi2c_bbpll.h, rtc_cntl_reg.h, system_reg.h).
 * The BBPLL's analog registers sit on the chip's internal I2C bus; they are
 * written through the ROM's rom_i2c_writeReg/rom_i2c_writeReg_Mask (entry
 * points from esp32c3.rom.ld, ROM ECO 0 and later), as IDF's bootloader does
 * (esp32c3/regi2c_ctrl.h maps regi2c_ctrl_write_reg to them): the C3's
 * internal I2C master registers are not documented (IDF names only
 * ANA_CONF0/ANA_CONFIG), so driving them directly would be guesswork.
 * Console: UART0 (TX on GPIO21, the DevKit's USB-UART bridge) at 115200 8N1
 * as the ROM configured it. The ROM clocks UART0 from XTAL (IDF's
 * ESP_ROM_UART_CLK_IS_XTAL for the C3; UART_SCLK_SEL's reset value is 3,
 * XTAL), so the switch leaves its baud alone; UART_SCLK_SEL is written to
 * XTAL anyway, while APB still equals XTAL (40 MHz), so the ROM's divider
 * stays right whichever source it used. A byte goes into the 128-byte TX
 * FIFO (UART_FIFO_REG) when UART_STATUS_REG.TXFIFO_CNT says there is room.
 * Cycles: the vendor performance counter (TRM chapter "ESP-RISC-V CPU":
 * mpcer 0x7E0 selects the event, 1 = clock cycles; mpcmr 0x7E1 = 1 counts;
 * mpccr 0x7E2 is the count). The core has no mcycle. */
#include "tb_uart.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define UART0_FIFO REG(0x60000000u)
#define UART0_STATUS REG(0x6000001Cu)
#define UART0_FSM_STATUS REG(0x6000006Cu)
#define UART0_CLK_CONF REG(0x60000078u)
#define RTC_CNTL_OPTIONS0 REG(0x60008000u)
#define RTC_CNTL_WDTCONFIG0 REG(0x60008090u)
#define RTC_CNTL_WDTWPROTECT REG(0x600080A8u)
#define RTC_CNTL_SWD_CONF REG(0x600080ACu)
#define RTC_CNTL_SWD_WPROTECT REG(0x600080B0u)
#define I2C_MST_ANA_CONF0 REG(0x6000E040u)
#define ANA_CONFIG REG(0x6000E044u)
#define TIMG0_WDTCONFIG0 REG(0x6001F048u)
#define TIMG0_WDTWPROTECT REG(0x6001F064u)
#define TIMG1_WDTCONFIG0 REG(0x60020048u)
#define TIMG1_WDTWPROTECT REG(0x60020064u)
#define SYSTEM_CPU_PER_CONF REG(0x600C0008u)
#define SYSTEM_SYSCLK_CONF REG(0x600C0058u)

#define WDT_WKEY 0x50D83AA1u
#define SWD_WKEY 0x8F1D312Au
#define SWD_AUTO_FEED_EN (1u << 31)
#define WDT_CONF_UPDATE_EN (1u << 22)            /* timer groups: copy the config into the WDT's clock domain */
#define TX_FIFO_BYTES 128u

#define UART_SCLK_SEL_MASK (3u << 20)
#define UART_SCLK_XTAL (3u << 20)
#define ANA_CONFIG_I2C_OFF (0x3FFu << 8)         /* one "off" bit per internal I2C slave */
#define ANA_I2C_BBPLL_OFF (1u << 17)
#define BB_I2C_FORCE_PD (1u << 6)                /* RTC_CNTL_OPTIONS0 */
#define BBPLL_I2C_FORCE_PD (1u << 8)
#define BBPLL_FORCE_PD (1u << 10)
#define BBPLL_STOP_FORCE_HIGH (1u << 2)          /* I2C_MST_ANA_CONF0 */
#define BBPLL_STOP_FORCE_LOW (1u << 3)
#define PLL_FREQ_SEL_480M (1u << 2)              /* SYSTEM_CPU_PER_CONF */
#define CPUPERIOD_SEL_MASK 3u
#define CPUPERIOD_160M 1u
#define PRE_DIV_CNT_MASK 0x3FFu                  /* SYSTEM_SYSCLK_CONF */
#define SOC_CLK_SEL_MASK (3u << 10)
#define SOC_CLK_SEL_PLL (1u << 10)

/* The BBPLL on the internal I2C bus (regi2c_bbpll.h): block 0x66, host 0. */
#define I2C_BBPLL 0x66u
#define I2C_BBPLL_HOSTID 0u
#define BBPLL_MODE_HF 4u
#define BBPLL_OC_REF_DIV 2u                      /* DCHGP in bits 6:4, REF_DIV in 3:0 */
#define BBPLL_OC_DIV_7_0 3u
#define BBPLL_OC_DR 5u                           /* DR1 in bits 2:0, DR3 in 6:4 */
#define BBPLL_OC_DCUR 6u                         /* DLREF_SEL 7:6, DHREF_SEL 5:4, DCUR 2:0 */
#define BBPLL_OC_VCO_DBIAS 9u                    /* bits 1:0 */

typedef void (*rom_i2c_write_fn)(uint8_t block, uint8_t host_id, uint8_t reg, uint8_t data);
typedef void (*rom_i2c_write_mask_fn)(uint8_t block, uint8_t host_id, uint8_t reg, uint8_t msb,
                                      uint8_t lsb, uint8_t data);
#define rom_i2c_writeReg ((rom_i2c_write_fn)0x4000195Cu)
#define rom_i2c_writeReg_Mask ((rom_i2c_write_mask_fn)0x40001960u)

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

static void bbpll_write(uint8_t reg, uint8_t value) {
  rom_i2c_writeReg(I2C_BBPLL, I2C_BBPLL_HOSTID, reg, value);
}

static void bbpll_write_bits(uint8_t reg, uint8_t msb, uint8_t lsb, uint8_t value) {
  rom_i2c_writeReg_Mask(I2C_BBPLL, I2C_BBPLL_HOSTID, reg, msb, lsb, value);
}

/* The ROM's boot messages leave at the old clocks before anything changes
 * (IDF: esp_rom_uart_tx_wait_idle(0); idle = FIFO empty and TX FSM idle). */
static void uart0_wait_tx_idle(void) {
  while (((UART0_STATUS >> 16) & 0x3FFu) != 0 || ((UART0_FSM_STATUS >> 4) & 0xFu) != 0) {
  }
}

/* regi2c_ctrl_ll_i2c_reset() then regi2c_ctrl_ll_i2c_bbpll_enable(). */
static void open_bbpll_i2c(void) {
  ANA_CONFIG |= ANA_CONFIG_I2C_OFF;
  ANA_CONFIG &= ~ANA_I2C_BBPLL_OFF;
}

/* clk_ll_bbpll_enable(), then rtc_clk_bbpll_configure(40 MHz XTAL, 480 MHz):
 * the digital side told 480 MHz, self-calibration started, the analog
 * settings IDF gives for a 40 MHz crystal. IDF does not wait after this on
 * the C3 (its regi2c_defs.h has no calibration-done bit, later chips have
 * I2C_MST_BBPLL_CAL_DONE) and switches at once; so does this. */
static void start_bbpll_480mhz(void) {
  RTC_CNTL_OPTIONS0 &= ~(BB_I2C_FORCE_PD | BBPLL_FORCE_PD | BBPLL_I2C_FORCE_PD);
  SYSTEM_CPU_PER_CONF |= PLL_FREQ_SEL_480M;
  I2C_MST_ANA_CONF0 &= ~BBPLL_STOP_FORCE_HIGH;
  I2C_MST_ANA_CONF0 |= BBPLL_STOP_FORCE_LOW;
  bbpll_write(BBPLL_MODE_HF, 0x6B);
  bbpll_write(BBPLL_OC_REF_DIV, (5u << 4) | 0u);          /* DCHGP 5, REF_DIV 0 */
  bbpll_write(BBPLL_OC_DIV_7_0, 8);
  bbpll_write_bits(BBPLL_OC_DR, 2, 0, 0);                 /* DR1 */
  bbpll_write_bits(BBPLL_OC_DR, 6, 4, 0);                 /* DR3 */
  bbpll_write(BBPLL_OC_DCUR, (2u << 6) | (1u << 4) | 3u);
  bbpll_write_bits(BBPLL_OC_VCO_DBIAS, 1, 0, 2);
  bbpll_write_bits(BBPLL_OC_DCUR, 5, 4, 2);               /* DHREF_SEL */
  bbpll_write_bits(BBPLL_OC_DCUR, 7, 6, 1);               /* DLREF_SEL */
}

/* rtc_clk_cpu_freq_to_pll_mhz(160): 480 / 3; APB becomes 80 MHz. */
static void cpu_to_pll_160mhz(void) {
  SYSTEM_CPU_PER_CONF = (SYSTEM_CPU_PER_CONF & ~CPUPERIOD_SEL_MASK) | CPUPERIOD_160M;
  SYSTEM_SYSCLK_CONF &= ~PRE_DIV_CNT_MASK;                /* divider 1 */
  SYSTEM_SYSCLK_CONF = (SYSTEM_SYSCLK_CONF & ~SOC_CLK_SEL_MASK) | SOC_CLK_SEL_PLL;
}

static void clock_to_160mhz(void) {
  open_bbpll_i2c();
  uart0_wait_tx_idle();
  UART0_CLK_CONF = (UART0_CLK_CONF & ~UART_SCLK_SEL_MASK) | UART_SCLK_XTAL;
  start_bbpll_480mhz();
  cpu_to_pll_160mhz();
}

void tb_board_init(void) {
  stop_watchdogs();
  clock_to_160mhz();
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
