"""Real-board mode (``io=uart``) and ``upload=1`` (docs/realboard.md).

``io=uart`` links the same model, kernels and runtime with a different main():
tb_uart_main.c brings the board up (clocks, console UART, cycle counter), copies
a built-in test vector (the first validation input, generated into
``tb_test_vector.c``) into the input, runs one inference and prints one line

    tinybuild: output <hex of every output byte> cycles <n>

over the board's UART. The board support comes from the target's ``realboard``
field (a :class:`RealBoard`); the simulator runs the same ELF with the
register model :class:`UartModel` describes, and the validate step checks the
printed bytes against TFLite's.

``upload=1`` runs the flasher the target's ``flasher`` field names
(:class:`Flasher`) from an argument list (never a shell).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import TinybuildError, shown

RUNTIME_DIR = Path(__file__).parent / "runtime"
IO_MODES = ("sim", "uart")
LINE = re.compile(r"tinybuild: output ([0-9a-f]*) cycles ([0-9]+)\r?\n")
# The board's startup calls main(); under io=uart the linker sends that call to
# tb_uart_main.c's __wrap_main, so startup files and tb_runtime.c stay as they are
# and an io=sim firmware is byte-identical to one built before io= existed.
WRAP_MAIN = "-Wl,--wrap=main"


# -- what a board declares --------------------------------------------------------------

@dataclass(frozen=True)
class Ready:
    """A status register that reads back "ready": on every read the value last
    written, plus ``(value & mask) << shift`` (an enable bit shown as its ready
    bit, e.g. RCC_CR PLLON -> PLLRDY) plus ``set_bits`` (always set, e.g. a UART's
    transmit-empty flag)."""

    address: int
    mask: int = 0
    shift: int = 0
    set_bits: int = 0

    def value(self, stored: int) -> int:
        return (stored | ((stored & self.mask) << self.shift) | self.set_bits) & 0xFFFFFFFF


@dataclass(frozen=True)
class UartModel:
    """Just enough of a board's peripherals for a simulator to run its io=uart
    firmware: the 4 KiB pages to map as registers (written values read back),
    the UART's transmit data register (each byte written there is console
    output), the registers whose polling loops must end, and the cycle
    counter's address (it reads the simulator's cycle count; 0: none)."""

    data: int
    pages: tuple[int, ...]
    ready: tuple[Ready, ...] = ()
    cycle_counter: int = 0
    # RISC-V CSRs the simulator lacks (a vendor's): their accesses are
    # emulated (written values read back); ``cycle_csr`` among them reads the
    # simulator's cycle count, as ``cycle_counter`` does for memory.
    csrs: tuple[int, ...] = ()
    cycle_csr: int = 0
    # (address, value) of registers whose reset value the firmware reads
    # back (read-modify-write): what they hold before the first write.
    resets: tuple[tuple[int, int], ...] = ()
    # ROM functions the firmware calls (they are not in the ELF): each entry
    # point returns at once; the call and its arguments are recorded.
    rom: tuple["RomFunction", ...] = ()


@dataclass(frozen=True)
class RomFunction:
    """A chip ROM function as the simulator models it: a ``ret`` at
    ``address``; a call records ``name`` and its first ``args`` argument
    registers (a0...)."""

    name: str
    address: int
    args: int


@dataclass(frozen=True)
class RealBoard:
    """A board's io=uart support: C sources defining tb_board_init,
    tb_board_putc and tb_board_cycles (tb_uart.h), what they set up (for the
    docs and the summary), and the simulator model (None: no simulator can run
    the io=uart firmware; it is built and sized only)."""

    sources: tuple[Path, ...]
    console: str                 # e.g. "USART2 TX on PA2, 115200 8N1"
    clock: str                   # what the clock setup does
    uart: UartModel | None = None


@dataclass(frozen=True)
class Flasher:
    """How ``upload=1`` writes a board: ``tool`` is "pyocd", "esptool" or
    "openocd"; ``chip`` is pyOCD's target name, esptool's --chip, or OpenOCD's
    config files (``configs``); ``address`` is where esptool writes firmware.bin."""

    tool: str
    chip: str = ""
    address: int = 0
    configs: tuple[str, ...] = ()


# -- the built-in boards ------------------------------------------------------------------

STM32F407 = RealBoard(
    sources=(RUNTIME_DIR / "tb_uart_stm32f407.c",),
    console="USART2 TX on PA2 (AF7), 115200 8N1",
    clock="HSI 16 MHz -> PLL (M=8, N=168, P=2, Q=7) = 168 MHz SYSCLK, AHB 168, APB1 42, APB2 84 MHz; "
          "flash 5 wait states + prefetch, instruction and data caches (RM0090 3.5.1, 6.3)",
    uart=UartModel(
        data=0x4000_4404,
        pages=(0x4000_4000, 0x4000_7000, 0x4002_0000, 0x4002_3000, 0xE000_1000),
        ready=(Ready(0x4002_3800, mask=0x0101_0001, shift=1),    # RCC_CR: xxxON -> xxxRDY
               Ready(0x4002_3808, mask=0x3, shift=2),            # RCC_CFGR: SW -> SWS
               Ready(0x4000_4400, set_bits=0xC0)),               # USART2_SR: TXE, TC
        cycle_counter=0xE000_1004))                              # DWT_CYCCNT

MPS2_AN386 = RealBoard(
    sources=(RUNTIME_DIR / "tb_uart_mps2.c",),
    console="CMSDK UART0 (0x40004000), 115200 8N1 (BAUDDIV 217 at 25 MHz)",
    clock="fixed 25 MHz by the FPGA image: nothing to set up",
    uart=UartModel(data=0x4000_4000, pages=(0x4000_4000, 0xE000_1000), cycle_counter=0xE000_1004))

STM32L4R5 = RealBoard(
    sources=(RUNTIME_DIR / "tb_uart_stm32l4r5.c",),
    console="LPUART1 TX on PG7 (AF8; the ST-LINK's virtual COM port), 115200 8N1",
    clock="MSI 4 MHz -> PLL (M=1, N=60, R=2) = 120 MHz SYSCLK in range 1 boost mode, AHB/APB "
          "120 MHz; flash 5 wait states + prefetch and the ART caches (RM0432 5.1.8, 6.2.9)",
    uart=UartModel(
        data=0x4000_8028,
        pages=(0x4000_7000, 0x4000_8000, 0x4002_1000, 0x4002_2000, 0x4800_1000, 0xE000_1000),
        ready=(Ready(0x4002_1000, mask=0x0100_0001, shift=1),    # RCC_CR: MSION, PLLON -> RDY
               Ready(0x4002_1008, mask=0x3, shift=2),            # RCC_CFGR: SW -> SWS
               Ready(0x4000_801C, set_bits=0xC0)),               # LPUART1_ISR: TXE, TC
        cycle_counter=0xE000_1004))

GD32VF103 = RealBoard(
    sources=(RUNTIME_DIR / "tb_uart_gd32vf103.c",),
    console="USART0 TX on PA9, 115200 8N1 (USARTDIV 938 at 108 MHz)",
    clock="IRC8M/2 = 4 MHz -> PLL x27 = 108 MHz CK_SYS, AHB and APB2 108 MHz, APB1 54 MHz; "
          "no flash wait states to set (GD32VF103 user manual 5.3)",
    uart=UartModel(
        data=0x4001_3804,
        pages=(0x4001_0000, 0x4001_3000, 0x4002_1000),
        ready=(Ready(0x4002_1000, mask=0x0101_0001, shift=1),    # RCU_CTL: IRC8MEN, PLLEN -> STB
               Ready(0x4002_1004, mask=0x3, shift=2),            # RCU_CFG0: SCS -> SCSS
               Ready(0x4001_3800, set_bits=0xC0)),               # USART0_STAT: TBE, TC
        cycle_counter=0))                                        # mcycle: a CSR, not memory

NRF52840 = RealBoard(
    sources=(RUNTIME_DIR / "tb_uart_nrf52840.c",),
    console="UART0 TX on P0.06 (the DK's virtual COM port), 115200 8N1",
    clock="64 MHz HFCLK (the CPU clock from reset); the 32 MHz crystal (HFXO) started for the "
          "UART's accuracy (nRF52840 PS v1.7, CLOCK)",
    uart=UartModel(
        data=0x4000_251C,                                        # UART0.TXD
        pages=(0x4000_0000, 0x4000_2000, 0x5000_0000, 0xE000_1000),
        ready=(Ready(0x4000_0100, set_bits=1),                   # CLOCK.EVENTS_HFCLKSTARTED
               Ready(0x4000_211C, set_bits=1)),                  # UART0.EVENTS_TXDRDY
        cycle_counter=0xE000_1004))                              # DWT_CYCCNT

ESP32C3 = RealBoard(
    sources=(RUNTIME_DIR / "tb_uart_esp32c3.c",),
    console="UART0 TX on GPIO21 (the DevKit's USB-UART bridge), 115200 8N1 as the ROM set it up "
            "(clocked from XTAL, so the PLL switch leaves the baud alone)",
    clock="XTAL 40 MHz -> BBPLL 480 MHz (configured over the internal I2C bus through the ROM's "
          "rom_i2c_writeReg/_Mask, as ESP-IDF's rtc_clk.c does) -> CPU 160 MHz, APB 80 MHz; RTC, "
          "timer group 0/1 watchdogs stopped, super watchdog auto-fed (ESP32-C3 TRM, Watchdog Timers)",
    uart=UartModel(
        data=0x6000_0000,                                        # UART_FIFO_REG
        # UART0, RTC_CNTL, I2C_MST/ANA_CONFIG, TIMG0/1, SYSTEM
        pages=(0x6000_0000, 0x6000_8000, 0x6000_E000, 0x6001_F000, 0x6002_0000, 0x600C_0000),
        csrs=(0x7E0, 0x7E1, 0x7E2),                              # mpcer, mpcmr, mpccr
        cycle_csr=0x7E2,
        # Chip reset values from ESP-IDF's soc/esp32c3 register headers. No
        # BBPLL lock or calibration-done bit is polled (IDF polls none on the C3).
        resets=((0x6000_0078, 0x0370_1000),                      # UART_CLK_CONF: SCLK_SEL 3 = XTAL
                (0x6000_8000, 0x1C00_A000),                      # RTC_CNTL_OPTIONS0
                (0x600C_0008, 0x0000_000C),                      # SYSTEM_CPU_PER_CONF: PLL_FREQ_SEL
                (0x600C_0058, 0x0000_0001)),                     # SYSTEM_SYSCLK_CONF: PRE_DIV_CNT 1
        rom=(RomFunction("rom_i2c_writeReg", 0x4000_195C, 4),    # esp32c3.rom.ld
             RomFunction("rom_i2c_writeReg_Mask", 0x4000_1960, 6))))

# io=uart refused with the reason, by architecture.
NO_UART_REASON = {
    "xtensa": "no tinybuild simulator runs Xtensa, so its printed line could not be checked "
              "against TFLite (its cycle counter would be the CCOUNT special register)",
}
WITH_UART = "cortex-m4, esp32c3, mps2-an386, nrf52840, nucleo-l4r5zi, riscv"


# -- build variables --------------------------------------------------------------------

def check_io(io: str, target) -> None:
    """io=uart needs the board's UART support: one line if it has none."""
    if io not in IO_MODES:
        raise TinybuildError(f"io={shown(io)}: give 'sim' (the simulator's I/O) or 'uart' "
                             "(the real board's UART)")
    if io == "uart" and getattr(target, "realboard", None) is None:
        why = NO_UART_REASON.get(target.arch, "its Target sets no realboard=")
        raise TinybuildError(f"io=uart: target '{target.name}' ({shown(target.plugin)}) has no UART "
                             f"support: {why}; boards with it: {WITH_UART}. "
                             "Fix: build with io=sim, or give the target a RealBoard (docs/realboard.md)")


def uart_target(target):
    """The target as an io=uart firmware links it: main() wrapped."""
    return dataclasses.replace(target, ldflags=(*target.ldflags, WRAP_MAIN))


def uart_sources(target) -> list[Path]:
    return [RUNTIME_DIR / "tb_uart_main.c", *map(Path, target.realboard.sources)]


def write_test_vector(inputs_bin: Path, input_bytes: int, out: Path) -> None:
    """tb_test_vector.c: the first validation input as a const array."""
    data = Path(inputs_bin).read_bytes()[:input_bytes]
    if len(data) != input_bytes:
        raise TinybuildError(f"{shown(inputs_bin, 200)} holds {len(data)} bytes, not one input of "
                             f"{input_bytes}: it is stale; build again")
    rows = [", ".join(f"0x{b:02x}" for b in data[i:i + 16]) for i in range(0, len(data), 16)]
    body = ",\n  ".join(rows) or "0"
    out.write_text("/* Generated by tinybuild (io=uart): the first validation input. */\n"
                   "#include <stdint.h>\n"
                   f"const uint32_t tb_test_vector_size = {len(data)}u;\n"
                   f"const uint8_t tb_test_vector[{max(len(data), 1)}] = {{\n  {body}\n}};\n")


class UartRun:
    """A simulator whose result is what the firmware printed: ``output`` is
    the hex of the ``tinybuild: output`` line, so validation checks the UART's
    bytes (the line must also equal the arena's, else the printing is wrong)."""

    def __init__(self, simulator):
        self.simulator = simulator
        self.name = simulator.name

    def run(self, elf, target, input_bytes, **limits):
        result = self.simulator.run(elf, target, input_bytes, **limits)
        output, cycles = parse_console(result.console, self.name)
        if output != result.output:
            raise TinybuildError(f"io=uart: the line printed over the UART ({len(output)} bytes) "
                                 f"differs from the output tensor in memory ({len(result.output)} "
                                 "bytes): the printing in tb_uart_main.c is wrong")
        print(f"[simulate] {self.name}: UART: {len(output)} output bytes, cycles {cycles:,}", flush=True)
        result.output = output
        return result


def parse_console(text: str, simulator: str = "") -> tuple[bytes, int]:
    """The output bytes and cycles of the firmware's line; one line if absent."""
    found = LINE.search(text or "")
    if found is None:
        seen = (text or "")[-120:]
        raise TinybuildError(f"io=uart: the firmware printed no 'tinybuild: output <hex> cycles <n>' "
                             f"line over the UART{f' in {simulator}' if simulator else ''} "
                             f"(received '{shown(seen, 200)}')")
    return bytes.fromhex(found.group(1)), int(found.group(2))


# -- the simulator's register model (unicorn) ----------------------------------------------

class Console(bytearray):
    """The bytes the UART model collected; ``rom_calls`` the (name, args) of
    each modelled ROM function called, in order (each ran one block outside
    the ELF's text, which the simulator allows for these)."""

    def __init__(self):
        super().__init__()
        self.rom_calls: list[tuple[str, tuple[int, ...]]] = []


def attach_uart(uc, model: UartModel, cycles, trace: list | None = None) -> Console:
    """Map ``model``'s pages in Unicorn as MMIO (so only accesses there run
    Python) and return the buffer the UART's transmitted bytes collect in.
    ``cycles()`` is the simulator's cycle count, read through the counter.
    ``trace``, if given, receives every register access and ROM call in order:
    ("read"|"write", address, value) and ("rom", name, args)."""
    console = Console()
    stored: dict[int, int] = dict(model.resets)
    ready = {r.address: r for r in model.ready}

    def make(page):
        def read(uc_, offset, size, user):
            address = page + offset
            if address == model.cycle_counter:
                return cycles() & 0xFFFFFFFF
            value = stored.get(address & ~3, 0)
            rule = ready.get(address & ~3)
            value = rule.value(value) if rule else value
            if trace is not None:
                trace.append(("read", address & ~3, value))
            return (value >> (8 * (address & 3))) & ((1 << (8 * size)) - 1)

        def write(uc_, offset, size, value, user):
            address = page + offset
            if address == model.data:
                console.append(value & 0xFF)
            stored[address & ~3] = value & 0xFFFFFFFF
            if trace is not None:
                trace.append(("write", address & ~3, value & 0xFFFFFFFF))
        return read, write

    for page in model.pages:
        read, write = make(page)
        uc.mmio_map(page, 0x1000, read, None, write, None)
    if model.csrs:
        emulate_csrs(uc, model, cycles)
    if model.rom:
        attach_rom(uc, model.rom, console.rom_calls, trace)
    return console


RET = 0x0000_8067                # jalr x0, 0(ra)


def attach_rom(uc, functions, calls: list, trace: list | None) -> None:
    """Map the ROM pages ``functions`` live in, a ``ret`` at each entry point,
    and record each call (its argument registers) in ``calls``; a narrow code
    hook on the entry points only."""
    import unicorn as U
    from unicorn import riscv_const as R
    by_address = {f.address: f for f in functions}
    for page in sorted({f.address & ~0xFFF for f in functions}):
        uc.mem_map(page, 0x1000, U.UC_PROT_READ | U.UC_PROT_EXEC)
    for f in functions:
        uc.mem_write(f.address, RET.to_bytes(4, "little"))

    def on_call(uc_, address, size, user):
        f = by_address.get(address)
        if f is None:
            return
        args = tuple(uc_.reg_read(R.UC_RISCV_REG_X10 + i) & 0xFFFFFFFF for i in range(f.args))
        calls.append((f.name, args))
        if trace is not None:
            trace.append(("rom", f.name, args))

    uc.hook_add(U.UC_HOOK_CODE, on_call, begin=min(by_address), end=max(by_address))


ILLEGAL_INSTRUCTION = 2          # RISC-V exception cause
SYSTEM_OPCODE = 0x73


def emulate_csrs(uc, model: UartModel, cycles) -> None:
    """Run the firmware's accesses to ``model.csrs``, which Unicorn does not
    implement: each traps as an illegal instruction; the hook does what the
    csrrw/csrrs/csrrc(i) would and execution continues after it. Any other
    trap stops the run as a CPU exception, as it does without the hook."""
    import unicorn as U
    from unicorn import riscv_const as R
    values = dict.fromkeys(model.csrs, 0)
    offset = [0]                 # what a write to the cycle CSR set, minus the cycles then

    def read(csr):
        return (cycles() + offset[0]) & 0xFFFFFFFF if csr == model.cycle_csr else values[csr]

    def write(csr, value):
        if csr == model.cycle_csr:
            offset[0] = value - cycles()
        values[csr] = value & 0xFFFFFFFF

    def on_trap(uc_, cause, user):
        pc = uc_.reg_read(R.UC_RISCV_REG_PC) - 4       # Unicorn reports the PC past the instruction
        insn = int.from_bytes(uc_.mem_read(pc, 4), "little")
        csr, funct3 = insn >> 20, (insn >> 12) & 7
        if (cause != ILLEGAL_INSTRUCTION or insn & 0x7F != SYSTEM_OPCODE or funct3 in (0, 4)
                or csr not in values):
            raise U.UcError(U.UC_ERR_EXCEPTION)
        rd, rs1 = (insn >> 7) & 31, (insn >> 15) & 31
        operand = rs1 if funct3 & 4 else uc_.reg_read(R.UC_RISCV_REG_X0 + rs1)
        old = read(csr)
        if funct3 & 3 == 1:
            write(csr, operand)
        elif rs1:                # csrrs/csrrc with x0 (or 0) only read
            write(csr, old | operand if funct3 & 3 == 2 else old & ~operand)
        if rd:
            uc_.reg_write(R.UC_RISCV_REG_X0 + rd, old)

    uc.hook_add(U.UC_HOOK_INTR, on_trap)


# -- upload ------------------------------------------------------------------------------

def upload_argv(flasher: Flasher, hex_file: Path, bin_file: Path) -> list[str]:
    """The command ``upload=1`` runs, as an argument list."""
    if flasher.tool == "pyocd":
        # --no-wait: with no probe attached pyOCD would otherwise wait for one forever.
        return [sys.executable, "-m", "pyocd", "flash", "--no-wait", "--target", flasher.chip,
                "--format", "hex", str(hex_file)]
    if flasher.tool == "esptool":
        return [sys.executable, "-m", "esptool", "--chip", flasher.chip, "write-flash",
                f"0x{flasher.address:x}", str(bin_file)]
    if flasher.tool == "openocd":
        configs = [a for c in flasher.configs for a in ("-f", c)]
        return ["openocd", *configs, "-c", f"program {tcl_word(hex_file)} verify reset exit"]
    raise TinybuildError(f"upload: unknown flasher {shown(flasher.tool)}; give pyocd, esptool or openocd")


def tcl_word(path: Path) -> str:
    """``path`` as one Tcl word for OpenOCD's -c (braces: no substitution inside)."""
    text = str(path)
    if any(c in text for c in "{}\\\n"):
        raise TinybuildError(f"upload: OpenOCD cannot take the path {shown(text, 200)} in its "
                             "command (braces or backslashes); build into a plainer build_dir=")
    return "{" + text + "}"


LOOKED_FOR = {
    "pyocd": "a CMSIS-DAP, ST-Link or J-Link debug probe on USB for pyOCD target {chip}",
    "esptool": "a serial port (/dev/ttyUSB*, /dev/ttyACM*) with an {chip} in download mode",
    "openocd": "a debug adapter through OpenOCD with {chip}",
}
INSTALL = {
    "pyocd": "./tb python -m pip install pyocd",
    "esptool": "./tb python -m pip install esptool",
    "openocd": "sudo apt-get install openocd",
}


def flasher_available(flasher: Flasher) -> bool:
    if flasher.tool in ("esptool", "pyocd"):     # Python packages, run with this interpreter
        return importlib.util.find_spec(flasher.tool) is not None
    return shutil.which(flasher.tool) is not None


def upload(target, hex_file: Path, bin_file: Path, run=subprocess.run) -> None:
    """Flash the board with its flasher; one line when the tool or the probe is missing."""
    check_flasher(target)
    flasher = target.flasher
    looked = looked_for(flasher)
    argv = upload_argv(flasher, hex_file, bin_file)
    print(f"[upload] {' '.join(shown(a, 200) for a in argv)}", flush=True)
    proc = run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        said = next((l.strip() for l in reversed((proc.stdout + proc.stderr).splitlines())
                     if l.strip()), "")
        raise TinybuildError(f"upload=1: {flasher.tool} found no board: looked for {looked} "
                             f"({flasher.tool} exited with {proc.returncode}: {shown(said, 200)})")


# -- SCons steps (``st`` is tinybuild.scons_tool) ------------------------------------------

def check_one_board(io: str, upload_requested: bool) -> None:
    if io == "uart" or upload_requested:
        raise TinybuildError(f"{'io=uart' if io == 'uart' else 'upload=1'} works on one board at a "
                             "time, not target=all. Fix: name the board, e.g. target=cortex-m4")


def board_target(target, io: str, upload_requested: bool):
    """``target`` as this build uses it; refuses, before anything is built,
    io=uart without UART support and upload=1 without a flasher or its tool."""
    check_io(io, target)
    if upload_requested:
        check_flasher(target)
    return uart_target(target) if io == "uart" else target


def check_flasher(target) -> None:
    flasher = getattr(target, "flasher", None)
    if flasher is None:
        raise TinybuildError(f"upload=1: target '{target.name}' names no flasher (its Target sets no "
                             "flasher=); write firmware.hex or firmware.bin with the board's own tool")
    if not flasher_available(flasher):
        raise TinybuildError(f"upload=1: {flasher.tool} is not installed (it would look for "
                             f"{looked_for(flasher)}); install it: {INSTALL[flasher.tool]}")


def looked_for(flasher: Flasher) -> str:
    chip = flasher.chip or " ".join(flasher.configs)
    return LOOKED_FOR.get(flasher.tool, "{chip}").format(chip=chip)


def declare_sources(env, st, tdir: Path, target, toolchain, odir: Path, inputs_bin, ref_json) -> list:
    """The io=uart objects: tb_uart_main.c and the board's support (shared per
    board) and the generated test vector (per model)."""
    compiler, objects = st._board_objects(env, target, toolchain, odir)
    shared = [st._board_object(env, compiler, objects, odir, src) for src in uart_sources(target)]
    vector_c = env.Command(
        st._file(env, tdir / "tb_test_vector.c"), [inputs_bin, ref_json],
        st._action(lambda t, s, e: write_test_vector(
            s[0], st.pipeline.read_json(s[1])["input_bytes"], t[0]), "test vector",
            st._downstream([tdir], "codegen")))
    vector_o = st._object(env, compiler, tdir / "tb_test_vector.c", tdir / "tb_test_vector.o",
                          compiler["include_dirs"], st._downstream([tdir], "cc"))
    env.Depends(vector_o, vector_c)
    return [*shared, vector_o]


def declare_upload(env, st, tdir: Path, target, images, report) -> None:
    """The ``upload`` alias (and, with upload=1, a default): flashes the board
    after the build validated; ``upload.json`` records the command it ran."""
    if getattr(target, "flasher", None) is None or env.get("target") == "all":
        return
    hex_file, bin_file = (tdir / "firmware.hex", tdir / "firmware.bin")
    node = env.Command(
        st._file(env, tdir / "upload.json"), [*images, report],
        st._action(lambda t, s, e: record_upload(t[0], target, hex_file, bin_file), "upload"))
    env.AlwaysBuild(node)
    env.Alias("upload", node)
    if env.get("upload"):
        env.Default(node)


def record_upload(record: Path, target, hex_file: Path, bin_file: Path) -> None:
    import json
    upload(target, hex_file, bin_file)
    argv = upload_argv(target.flasher, hex_file, bin_file)
    record.write_text(json.dumps({"target": target.name, "argv": argv}, indent=1) + "\n")
