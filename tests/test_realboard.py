"""io=uart (the firmware runs on the real board and prints its result over the
UART) and upload=1 (the board's flasher), docs/realboard.md.

The slow tests build KWS with io=uart for cortex-m4, nucleo-l4r5zi, riscv,
nrf52840 and esp32c3 (Unicorn with the boards' UART, clock and watchdog
register model) and mps2-an386 (QEMU's own CMSDK UART), and check the printed
line against TFLite's reference bytes for the built-in input. The fast ones
check the register models, the ESP32-C3's emulated performance-counter CSRs,
its 160 MHz clock sequence (tb_uart_esp32c3.c compiled and its tb_board_init run
in Unicorn: every clock write and ROM call, in order) and ROM stubs, the line parser, each flasher's command line (pyOCD run for real, with no
probe attached) and the one-line refusals.
"""
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tbtest import ROOT
from tinybuild import plugins, realboard
from tinybuild.errors import TinybuildError
from tinybuild.scons_tool import link_sources

SCONS = Path(sys.executable).with_name("scons")


def scons(build_dir, *args, env=None):
    cmd = [str(SCONS), "-C", str(ROOT), "-Q", f"build_dir={build_dir}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env or os.environ.copy(),
                          timeout=900)


def one_error_line(result) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and ".py, line" not in result.stderr, result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith("tinybuild: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def board(name):
    return plugins.targets(plugins.make_plugin_manager([]))[name]


# -- the register model ----------------------------------------------------------------------

class FakeUnicorn:
    """Records mmio_map's callbacks so the model's registers can be read and written."""

    def __init__(self):
        self.pages = {}

    def mmio_map(self, base, size, read, read_user, write, write_user):
        assert size == 0x1000 and base % 0x1000 == 0
        self.pages[base] = (read, write)

    def hook_add(self, kind, callback):
        self.hooks = getattr(self, "hooks", []) + [(kind, callback)]

    def read(self, address, size=4):
        return self.pages[address & ~0xFFF][0](self, address & 0xFFF, size, None)

    def write(self, address, value, size=4):
        self.pages[address & ~0xFFF][1](self, address & 0xFFF, size, value, None)


def test_stm32f407_model_ends_the_clock_polls_and_collects_usart2_bytes():
    uc = FakeUnicorn()
    console = realboard.attach_uart(uc, realboard.STM32F407.uart, lambda: 1234)
    assert uc.read(0x40023800) == 0                       # RCC_CR: nothing on, nothing ready
    uc.write(0x40023800, (1 << 24) | 1)                    # PLLON, HSION
    assert uc.read(0x40023800) == (1 << 25) | (1 << 24) | (1 << 1) | 1   # PLLRDY, HSIRDY
    uc.write(0x40023808, (5 << 10) | 2)                    # RCC_CFGR: SW = PLL
    assert uc.read(0x40023808) & 0xC == 0x8                # SWS = PLL
    uc.write(0x40023C00, 0x705)                            # FLASH_ACR reads back
    assert uc.read(0x40023C00) == 0x705
    assert uc.read(0x40004400) & 0x80                      # USART2_SR: TXE
    for c in b"ok\n":
        uc.write(0x40004404, c)
    uc.write(0x40004408, 365)                              # BRR: stored, not console output
    assert bytes(console) == b"ok\n"
    assert uc.read(0xE0001004) == 1234                     # DWT_CYCCNT: the simulator's cycles
    assert uc.read(0x40004400, size=1) == 0xC0             # a byte read of the status register


def test_gd32vf103_model_ends_the_108mhz_clock_polls():
    uc = FakeUnicorn()
    console = realboard.attach_uart(uc, realboard.GD32VF103.uart, lambda: 0)
    uc.write(0x40021000, (1 << 24) | 1)                    # RCU_CTL: PLLEN, IRC8MEN
    assert uc.read(0x40021000) == (1 << 25) | (1 << 24) | (1 << 1) | 1   # PLLSTB, IRC8MSTB
    uc.write(0x40021004, (1 << 29) | (10 << 18) | (4 << 8) | 2)   # RCU_CFG0: x27, APB1 /2, SCS=PLL
    assert uc.read(0x40021004) & 0xC == 0x8                # SCSS = PLL
    assert uc.read(0x40013800) & 0x80                      # USART0_STAT: TBE
    uc.write(0x40013804, ord("k"))
    assert bytes(console) == b"k"


def test_nrf52840_model_starts_hfxo_and_collects_uart0_bytes():
    uc = FakeUnicorn()
    console = realboard.attach_uart(uc, realboard.NRF52840.uart, lambda: 77)
    uc.write(0x40000100, 0)                                # EVENTS_HFCLKSTARTED cleared ...
    uc.write(0x40000000, 1)                                # ... TASKS_HFCLKSTART
    assert uc.read(0x40000100) == 1                        # the crystal "started"
    uc.write(0x40002524, 0x01D7E000)                       # BAUDRATE reads back
    assert uc.read(0x40002524) == 0x01D7E000
    for c in b"hi":
        uc.write(0x4000211C, 0)                            # EVENTS_TXDRDY cleared, byte, ready
        uc.write(0x4000251C, c)
        assert uc.read(0x4000211C) == 1
    assert bytes(console) == b"hi" and uc.read(0xE0001004) == 77


def rv32_program(*words) -> bytes:
    return b"".join(w.to_bytes(4, "little") for w in words)


def csr_insn(funct3, rd, rs1_or_imm, csr):
    return (csr << 20) | (rs1_or_imm << 15) | (funct3 << 12) | (rd << 7) | 0x73


def run_rv32(code: bytes, cycles=lambda: 5000):
    """Run ``code`` in a real Unicorn with the ESP32-C3's UART model attached."""
    import unicorn as U
    from unicorn import riscv_const as R
    uc = U.Uc(U.UC_ARCH_RISCV, U.UC_MODE_RISCV32)
    uc.mem_map(0x1000, 0x1000)
    uc.mem_write(0x1000, code)
    console = realboard.attach_uart(uc, realboard.ESP32C3.uart, cycles)
    uc.reg_write(R.UC_RISCV_REG_A0, 1)
    uc.emu_start(0x1000, 0x1000 + len(code))
    return uc, console, lambda n: uc.reg_read(R.UC_RISCV_REG_X0 + n)


def test_esp32c3_performance_counter_csrs_are_emulated():
    code = rv32_program(
        csr_insn(1, 0, 10, 0x7E0),        # csrw mpcer, a0 (a0 = 1: count cycles)
        csr_insn(5, 0, 1, 0x7E1),         # csrwi mpcmr, 1
        csr_insn(2, 11, 0, 0x7E2),        # csrr a1, mpccr: the simulator's cycles
        csr_insn(2, 12, 0, 0x7E0),        # csrr a2, mpcer: what was written
        csr_insn(6, 13, 2, 0x7E1),        # csrrsi a3, mpcmr, 2: old value, then 3
        csr_insn(2, 14, 0, 0x7E1),        # csrr a4, mpcmr
        csr_insn(7, 28, 1, 0x7E1),        # csrrci t3, mpcmr, 1: 3, then 2
        csr_insn(5, 0, 7, 0x7E2),         # csrwi mpccr, 7: the count goes on from 7
        csr_insn(2, 29, 0, 0x7E2),        # csrr t4, mpccr
        csr_insn(2, 30, 0, 0x7E1),        # csrr t5, mpcmr
        0x0FF00793,                       # li a5, 0xff
        0x60000837,                       # lui a6, 0x60000 (UART0)
        0x00F82023,                       # sw a5, 0(a6): UART_FIFO_REG
    )
    uc, console, x = run_rv32(code)
    assert (x(11), x(12), x(13), x(14), x(28), x(29), x(30)) == (5000, 1, 1, 3, 3, 7, 2)
    assert bytes(console) == b"\xff"


def test_esp32c3_other_traps_stay_cpu_exceptions():
    import unicorn as U
    for insn in (csr_insn(2, 11, 0, 0x7C0),    # a vendor CSR the model does not know
                 0x00000073):                  # ecall
        with pytest.raises(U.UcError) as exc:
            run_rv32(rv32_program(insn))
        assert exc.value.errno == U.UC_ERR_EXCEPTION


# -- ESP32-C3: 160 MHz from the BBPLL, run from the real tb_uart_esp32c3.c ----------------------

ESP32C3_START = """
    .globl _start
_start:
    li sp, 0x3000
    call tb_board_init
    .globl tb_done
tb_done:
    ebreak
"""


@pytest.fixture(scope="module")
def esp32c3_board_init(tmp_path_factory):
    """tb_uart_esp32c3.c compiled and linked at 0x1000 behind a _start that
    calls tb_board_init: (code, entry, the address it returns to)."""
    gcc = shutil.which("riscv64-unknown-elf-gcc")
    if gcc is None:
        pytest.skip("riscv64-unknown-elf-gcc not installed")
    tmp = tmp_path_factory.mktemp("c3init")
    (tmp / "start.S").write_text(ESP32C3_START)
    elf, arch = tmp / "init.elf", ["-march=rv32imc", "-mabi=ilp32"]
    subprocess.run([gcc, *arch, "--specs=picolibc.specs", "-O2", "-Wall", "-Wextra", "-Werror",
                    f"-I{realboard.RUNTIME_DIR}", "-c", str(realboard.RUNTIME_DIR / "tb_uart_esp32c3.c"),
                    "-o", str(tmp / "init.o")], check=True)
    subprocess.run([gcc, *arch, "-nostdlib", "-Wl,-Ttext=0x1000", str(tmp / "start.S"),
                    str(tmp / "init.o"), "-o", str(elf)], check=True)
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as f:
        e = ELFFile(f)
        text = e.get_section_by_name(".text")
        code, base = text.data(), text["sh_addr"]
        done = e.get_section_by_name(".symtab").get_symbol_by_name("tb_done")[0]["st_value"]
    return code, base, done


def run_board_init(board_init, model=realboard.ESP32C3.uart, count=0):
    """Run tb_board_init in Unicorn with ``model``; the register and ROM trace."""
    import unicorn as U
    code, base, done = board_init
    uc = U.Uc(U.UC_ARCH_RISCV, U.UC_MODE_RISCV32)
    uc.mem_map(0x1000, 0x2000)
    uc.mem_write(base, code)
    trace = []
    console = realboard.attach_uart(uc, model, lambda: 0, trace)
    uc.emu_start(base, done, count=count)
    return trace, console


SYSCLK_CONF, CPU_PER_CONF, OPTIONS0 = 0x600C0058, 0x600C0008, 0x60008000
ANA_CONF0, ANA_CONFIG, UART_CLK_CONF = 0x6000E040, 0x6000E044, 0x60000078


def writes_to(trace, address):
    return [value for kind, a, value in trace if kind == "write" and a == address]


def test_esp32c3_clock_goes_to_160mhz_the_way_esp_idf_does(esp32c3_board_init):
    trace, console = run_board_init(esp32c3_board_init)
    # The sequence, in order, as ESP-IDF's rtc_clk_init()/rtc_clk_cpu_freq_set_config(160) does it.
    steps = [(kind, a) for kind, a, _ in trace if kind in ("write", "rom")
             and a in (ANA_CONFIG, UART_CLK_CONF, OPTIONS0, CPU_PER_CONF, ANA_CONF0, SYSCLK_CONF,
                       "rom_i2c_writeReg", "rom_i2c_writeReg_Mask")]
    first = {}
    for i, step in enumerate(steps):
        first.setdefault(step[1], i)
    assert (first[ANA_CONFIG] < first[UART_CLK_CONF] < first[OPTIONS0] < first[CPU_PER_CONF]
            < first[ANA_CONF0] < first["rom_i2c_writeReg"] < first[SYSCLK_CONF])
    assert steps[-3:] == [("write", CPU_PER_CONF), ("write", SYSCLK_CONF), ("write", SYSCLK_CONF)]
    # Internal I2C: every slave off (regi2c reset), then the BBPLL's on.
    assert writes_to(trace, ANA_CONFIG) == [0x3FF00, 0x1FF00]
    # UART0 stays on XTAL (SCLK_SEL 3), everything else in CLK_CONF as it was.
    assert writes_to(trace, UART_CLK_CONF) == [0x03701000]
    # BBPLL powered: BB_I2C_FORCE_PD, BBPLL_I2C_FORCE_PD, BBPLL_FORCE_PD cleared.
    assert writes_to(trace, OPTIONS0)[-1] & ((1 << 6) | (1 << 8) | (1 << 10)) == 0
    assert writes_to(trace, OPTIONS0)[-1] | 0x540 == 0x1C00A540
    # PLL_FREQ_SEL = 480 MHz, then CPUPERIOD_SEL = 1 (160 MHz).
    assert writes_to(trace, CPU_PER_CONF) == [0x0C, 0x0D]
    # Calibration start: STOP_FORCE_HIGH (bit 2) cleared, then STOP_FORCE_LOW (bit 3) set.
    assert writes_to(trace, ANA_CONF0) == [0x0, 0x8]
    # PRE_DIV_CNT = 0 (divider 1), then SOC_CLK_SEL = 1 (PLL).
    assert writes_to(trace, SYSCLK_CONF) == [0x000, 0x400]
    # The BBPLL's registers for a 40 MHz crystal and 480 MHz (clk_ll_bbpll_set_config).
    assert console.rom_calls == [
        ("rom_i2c_writeReg", (0x66, 0, 4, 0x6B)),             # MODE_HF
        ("rom_i2c_writeReg", (0x66, 0, 2, 0x50)),             # DCHGP 5, REF_DIV 0
        ("rom_i2c_writeReg", (0x66, 0, 3, 8)),                # DIV_7_0
        ("rom_i2c_writeReg_Mask", (0x66, 0, 5, 2, 0, 0)),     # DR1
        ("rom_i2c_writeReg_Mask", (0x66, 0, 5, 6, 4, 0)),     # DR3
        ("rom_i2c_writeReg", (0x66, 0, 6, 0x93)),             # DLREF 2, DHREF 1, DCUR 3
        ("rom_i2c_writeReg_Mask", (0x66, 0, 9, 1, 0, 2)),     # VCO_DBIAS
        ("rom_i2c_writeReg_Mask", (0x66, 0, 6, 5, 4, 2)),     # DHREF_SEL
        ("rom_i2c_writeReg_Mask", (0x66, 0, 6, 7, 6, 1))]     # DLREF_SEL
    assert bbpll_registers(console.rom_calls) == {4: 0x6B, 2: 0x50, 3: 0x08, 5: 0x00, 6: 0x63,
                                                  9: 0x02}
    # The watchdogs are still stopped first.
    assert trace[0] == ("write", 0x600080A8, 0x50D83AA1)


def bbpll_registers(calls) -> dict:
    """The BBPLL register bytes the ROM calls leave (from zero)."""
    regs = {}
    for name, args in calls:
        if name == "rom_i2c_writeReg":
            regs[args[2]] = args[3]
        else:
            reg, msb, lsb, value = args[2:]
            mask = ((1 << (msb - lsb + 1)) - 1) << lsb
            regs[reg] = (regs.get(reg, 0) & ~mask) | ((value << lsb) & mask)
    return regs


def test_esp32c3_switches_no_clock_while_the_uart_still_sends(esp32c3_board_init):
    """UART0's TX state machine busy (ST_UTX_OUT != 0): the firmware waits
    before touching UART_CLK_CONF or the PLL."""
    busy = dataclasses.replace(realboard.ESP32C3.uart,
                               resets=(*realboard.ESP32C3.uart.resets, (0x6000006C, 0x10)))
    trace, console = run_board_init(esp32c3_board_init, busy, count=3000)
    assert ("read", 0x6000006C, 0x10) in trace
    assert not writes_to(trace, UART_CLK_CONF) and not writes_to(trace, SYSCLK_CONF)
    assert console.rom_calls == []
    trace, _ = run_board_init(esp32c3_board_init)
    reads = [i for i, (kind, a, v) in enumerate(trace) if kind == "read" and a == 0x6000006C]
    assert reads and reads[-1] < trace.index(("write", UART_CLK_CONF, 0x03701000))


def test_esp32c3_rom_stub_returns_and_records_only_its_entry_points():
    code = rv32_program(
        0x40002537,                       # lui a0, 0x40002
        0x96050513,                       # addi a0, a0, -1696: 0x40001960 (writeReg_Mask)
        0x00A00593,                       # li a1, 10 ... passed as a1
        0x000500E7,                       # jalr ra, 0(a0)
        0x00B00613,                       # li a2, 11: runs after the stub returned
    )
    uc, console, x = run_rv32(code)
    assert x(12) == 11
    assert console.rom_calls == [("rom_i2c_writeReg_Mask", (0x40001960, 10, 0, 0, 0, 0))]


def test_a_byte_of_a_ready_register_is_its_own_byte():
    rule = realboard.Ready(0x0, mask=0x0101_0001, shift=1)
    assert rule.value(0x0100_0000) == 0x0300_0000
    uc = FakeUnicorn()
    realboard.attach_uart(uc, realboard.UartModel(data=0x1000, pages=(0x1000,),
                                                  ready=(realboard.Ready(0x1004, set_bits=0x8000),)),
                          lambda: 0)
    assert uc.read(0x1005, size=1) == 0x80 and uc.read(0x1004, size=1) == 0


def test_the_printed_line_is_parsed_and_its_absence_is_one_line():
    out, cycles = realboard.parse_console("boot\r\ntinybuild: output 00ff7f cycles 42\r\n")
    assert out == b"\x00\xff\x7f" and cycles == 42
    with pytest.raises(TinybuildError, match=r"printed no 'tinybuild: output <hex> cycles <n>' line "
                                             r"over the UART in unicorn \(received 'garbage\\x1b"):
        realboard.parse_console("garbage\x1b[2J", "unicorn")


def test_the_test_vector_is_the_first_input(tmp_path):
    inputs = tmp_path / "inputs.bin"
    inputs.write_bytes(bytes(range(20)) * 2)
    realboard.write_test_vector(inputs, 20, tmp_path / "v.c")
    text = (tmp_path / "v.c").read_text()
    assert "tb_test_vector_size = 20u" in text and "0x13\n}" in text and text.count("0x") == 20
    with pytest.raises(TinybuildError, match="not one input of 50"):
        realboard.write_test_vector(inputs, 50, tmp_path / "w.c")


def test_io_sim_links_no_uart_code_and_io_uart_wraps_main():
    target = board("cortex-m4")
    assert not any("tb_uart" in p.name for p in link_sources(target, []))
    uart = realboard.board_target(target, "uart", False)
    assert uart.ldflags[-1] == "-Wl,--wrap=main" and target.ldflags == uart.ldflags[:-1]
    assert realboard.board_target(target, "sim", False) is target
    assert [p.name for p in realboard.uart_sources(uart)] == ["tb_uart_main.c", "tb_uart_stm32f407.c"]


# -- upload: each flasher's command line -------------------------------------------------------

def test_each_boards_flasher_command_line(tmp_path):
    hex_file, bin_file = tmp_path / "firmware.hex", tmp_path / "firmware.bin"
    argv = {name: realboard.upload_argv(board(name).flasher, hex_file, bin_file)
            for name in ("cortex-m4", "nucleo-l4r5zi", "nrf52840", "esp32c3", "esp32", "esp32s3",
                         "riscv")}
    assert argv["cortex-m4"] == [sys.executable, "-m", "pyocd", "flash", "--no-wait", "--target",
                                 "stm32f407vg", "--format", "hex", str(hex_file)]
    assert argv["nucleo-l4r5zi"][6] == "stm32l4r5zitx"
    assert argv["nrf52840"][6] == "nrf52840" and argv["nrf52840"][4] == "--no-wait"
    esptool = [sys.executable, "-m", "esptool", "--chip"]
    assert argv["esp32c3"] == [*esptool, "esp32c3", "write-flash", "0x0", str(bin_file)]
    assert argv["esp32"] == [*esptool, "esp32", "write-flash", "0x1000", str(bin_file)]
    assert argv["esp32s3"] == [*esptool, "esp32s3", "write-flash", "0x0", str(bin_file)]
    assert argv["riscv"] == ["openocd", "-f", "interface/cmsis-dap.cfg", "-f", "target/gd32vf103.cfg",
                             "-c", f"program {{{hex_file}}} verify reset exit"]


def test_a_path_openocd_cannot_quote_is_refused(tmp_path):
    assert realboard.tcl_word(Path("/a b/$x [y]/f.hex")) == "{/a b/$x [y]/f.hex}"
    with pytest.raises(TinybuildError, match="OpenOCD cannot take the path"):
        realboard.upload_argv(board("riscv").flasher, tmp_path / "a}b" / "f.hex", tmp_path / "f.bin")


def test_no_probe_is_one_line_naming_what_was_looked_for(tmp_path):
    said = "A fatal error occurred: Could not connect to an Espressif device on any of the 0 ports."
    calls = []

    def no_board(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 2, "Connecting....\n", said + "\n")

    with pytest.raises(TinybuildError) as exc:
        realboard.upload(board("esp32c3"), tmp_path / "f.hex", tmp_path / "f.bin", run=no_board)
    assert calls == [realboard.upload_argv(board("esp32c3").flasher, tmp_path / "f.hex",
                                           tmp_path / "f.bin")]
    assert str(exc.value) == ("upload=1: esptool found no board: looked for a serial port "
                              "(/dev/ttyUSB*, /dev/ttyACM*) with an esp32c3 in download mode "
                              f"(esptool exited with 2: {said})")


def test_upload_without_the_flasher_installed_is_one_line(monkeypatch):
    real_find_spec = realboard.importlib.util.find_spec
    monkeypatch.setattr(realboard.importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyocd" else real_find_spec(name, *a))
    with pytest.raises(TinybuildError) as exc:
        realboard.board_target(board("cortex-m4"), "sim", True)
    assert str(exc.value) == ("upload=1: pyocd is not installed (it would look for a CMSIS-DAP, "
                              "ST-Link or J-Link debug probe on USB for pyOCD target stm32f407vg); "
                              "install it: ./tb python -m pip install pyocd")


def test_pyocd_with_no_probe_attached_is_one_line(tmp_path):
    """requirements.txt pins pyOCD; with no probe it must stop at once (--no-wait), not wait."""
    pytest.importorskip("pyocd")
    (tmp_path / "firmware.hex").write_text(":00000001FF\n")
    with pytest.raises(TinybuildError) as exc:
        realboard.upload(board("cortex-m4"), tmp_path / "firmware.hex", tmp_path / "firmware.bin")
    assert str(exc.value).startswith(
        "upload=1: pyocd found no board: looked for a CMSIS-DAP, ST-Link or J-Link debug probe on "
        "USB for pyOCD target stm32f407vg (pyocd exited with 1: ")
    assert "No target device available" in str(exc.value) and "\n" not in str(exc.value)


def test_upload_for_a_board_without_flasher_and_for_all_boards_is_refused(tmp_path):
    line = one_error_line(scons(tmp_path / "b", "target=mps2-an386", "model=kws.h5", "upload=1"))
    assert "upload=1: target 'mps2-an386' names no flasher" in line
    line = one_error_line(scons(tmp_path / "b", "target=all", "model=kws.h5", "upload=1"))
    assert "upload=1 works on one board at a time" in line


# -- io=uart: bad input ------------------------------------------------------------------------

def test_io_uart_for_a_board_without_uart_support_is_one_line(tmp_path):
    for name in ("esp32", "esp32s3"):
        line = one_error_line(scons(tmp_path / "b", f"target={name}", "model=kws.h5", "io=uart"))
        assert f"io=uart: target '{name}'" in line and "has no UART support: no tinybuild " \
            "simulator runs Xtensa" in line
        assert ("boards with it: cortex-m4, esp32c3, mps2-an386, nrf52840, nucleo-l4r5zi, riscv"
                in line)
    with pytest.raises(TinybuildError, match="has no UART support: its Target sets no realboard="):
        realboard.check_io("uart", board("hifive1"))
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").glob("*/kws-uart"))
    line = one_error_line(scons(tmp_path / "b", "target=cortex-m4", "model=kws.h5", "io=usb"))
    assert "io" in line and "usb" in line


def test_the_refusal_names_exactly_the_boards_with_uart_support():
    known = plugins.targets(plugins.make_plugin_manager([]))
    with_uart = sorted(name for name, t in known.items() if t.realboard is not None)
    assert realboard.WITH_UART == ", ".join(with_uart)


def test_help_lists_io_and_upload():
    result = subprocess.run([str(SCONS), "-C", str(ROOT), "-h"], capture_output=True, text=True,
                            timeout=120)
    assert "io: 'uart': the firmware runs on the real board" in result.stdout
    assert "upload: after a build that validated, flash the board" in result.stdout


# -- io=uart: built and run in the simulators ----------------------------------------------------

@pytest.fixture(scope="module")
def uart_build(tmp_path_factory):
    return tmp_path_factory.mktemp("uart")


def build_uart(build_dir, name, *extra):
    result = scons(build_dir, f"target={name}", "model=kws.h5", "io=uart", *extra)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return build_dir / name / "kws-uart", result


def reference_output(build_dir) -> bytes:
    ref = json.loads((build_dir / "models" / "kws" / "reference-n1-s1.json").read_text())
    return (build_dir / "models" / "kws" / "reference-n1-s1.bin").read_bytes()[:ref["output_bytes"]]


def run_in_simulator(tdir, name, sim="unicorn"):
    pm = plugins.make_plugin_manager([])
    target = realboard.board_target(board(name), "uart", False)
    vector = (tdir / "tb_test_vector.c").read_text()
    size = int(vector.split("tb_test_vector_size = ")[1].split("u")[0])
    # The preloaded input is zeros: the firmware's own test vector must replace it.
    return plugins.simulators(pm)[sim].run(tdir / "firmware.elf", target, bytes(size))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cortex-m4", "nucleo-l4r5zi", "riscv", "nrf52840", "esp32c3"])
def test_uart_firmware_prints_tflites_output_in_unicorn(uart_build, name):
    tdir, result = build_uart(uart_build, name)
    validation = json.loads((tdir / "validation.json").read_text())
    assert validation["match"] is True and validation["inputs"] == 1
    assert "UART: 12 output bytes" in result.stdout
    run = run_in_simulator(tdir, name)
    out, cycles = realboard.parse_console(run.console)
    assert out == reference_output(uart_build) == run.output
    assert run.console.endswith(f"tinybuild: output {out.hex()} cycles {cycles}\r\n")
    if name != "riscv":              # DWT_CYCCNT / mpccr read the timing model's count
        assert run.cycles <= cycles <= run.cycles + 100
    report = json.loads((tdir / "report.json").read_text())
    assert (tdir / "firmware.hex").exists() and report["validation"]["match"] is True


@pytest.mark.slow
def test_uart_firmware_prints_tflites_output_in_qemu_mps2(uart_build):
    if not shutil.which("qemu-system-arm"):
        pytest.skip("qemu-system-arm not installed")
    tdir, _ = build_uart(uart_build, "mps2-an386", "sim=qemu")
    assert json.loads((tdir / "validation.json").read_text())["match"] is True
    run = run_in_simulator(tdir, "mps2-an386", sim="qemu")
    out, _ = realboard.parse_console(run.console)
    assert out == reference_output(uart_build) == run.output


@pytest.mark.slow
def test_io_sim_firmware_has_no_uart_code(uart_build):
    result = scons(uart_build, "target=cortex-m4", "model=kws.h5")
    assert result.returncode == 0, result.stderr[-3000:]
    map_text = (uart_build / "cortex-m4" / "kws" / "firmware.map").read_text()
    assert "tb_uart" not in map_text and "__wrap_main" not in map_text


@pytest.mark.slow
def test_esptool_with_no_board_attached_is_one_line(tmp_path):
    (tmp_path / "firmware.bin").write_bytes(b"\xe9" + bytes(31))
    with pytest.raises(TinybuildError, match=r"^upload=1: esptool found no board: looked for a serial "
                                             r"port .* with an esp32c3 in download mode \(esptool "
                                             r"exited with [12]: "):
        realboard.upload(board("esp32c3"), tmp_path / "firmware.hex", tmp_path / "firmware.bin")


@pytest.mark.slow
def test_upload_with_no_probe_stops_after_the_build_in_one_line(uart_build):
    pytest.importorskip("pyocd")
    line = one_error_line(scons(uart_build, "target=cortex-m4", "model=kws.h5", "upload=1"))
    assert line.startswith("tinybuild: error: upload=1: pyocd found no board: looked for a CMSIS-DAP, "
                           "ST-Link or J-Link debug probe on USB for pyOCD target stm32f407vg "
                           "(pyocd exited with 1: "), line
    tdir = uart_build / "cortex-m4" / "kws"
    assert (tdir / "firmware.hex").exists() and not (tdir / "upload.json").exists()
