"""Built-in target ``hifive1``: SiFive's HiFive1 Rev B (FE310-G002, E31 core, RV32IMAC, 320 MHz).

The RISC-V board both simulators run, as mps2-an386 is for Cortex-M4: QEMU
emulates it as ``-M sifive_e,revb=on`` (sim/qemu), so one ELF runs in unicorn
and in QEMU for a cross-check of the instruction counts. Memory map from
SiFive's "FE310-G002 Manual" (chapter "Memory Map"): 16 KiB DTIM at
0x80000000 (data and stack), flash execute-in-place at 0x20000000 with the
board's boot loader in its first 64 KiB: applications start at 0x20010000,
where QEMU's revb mask ROM jumps too. The FE310-G002 datasheet gives 320 MHz
as the core's maximum clock (PLL from the board's 16 MHz crystal).

Cycle model: "rv32-e31" (SiFive E31 Core Complex Manual, sim/unicorn/timing.py).
Memory model: none (core-only cycles, labelled so): the FE310's 16 KiB
instruction cache in front of the SPI flash is not modelled, and constants
read from flash go through the uncached XIP window at SPI speed on the real
board, so a model built on flash weights is much slower there than the core
figures say. 16 KiB of DTIM limits the models that fit (the arena, the
stack and .data/.bss share it).

The startup code (startup_hifive1.c) overrides the runtime's weak
``tb_exit`` with RISC-V semihosting (what QEMU reads), as mps2-an386's does
with Arm semihosting.
"""
from pathlib import Path

from tinybuild.hookspecs import hookimpl
from tinybuild.target import MemoryRegion, Target

HERE = Path(__file__).parent

RV32IMAC_FLAGS = ("-march=rv32imac", "-mabi=ilp32", "--specs=picolibc.specs")

HIFIVE1 = Target(
    name="hifive1",
    description="SiFive HiFive1 Rev B, FE310-G002 E31 RV32IMAC at 320 MHz, 16 KiB DTIM, "
                "4 MiB XIP flash (QEMU: sifive_e,revb=on)",
    board="SiFive HiFive1 Rev B (FE310-G002; QEMU -M sifive_e,revb=on)",
    arch="riscv32",
    cpu="e31",
    triple="riscv64-unknown-elf",
    clock_hz=320_000_000,
    memory=(
        MemoryRegion("FLASH", 0x2001_0000, 4 * 1024 * 1024 - 64 * 1024, "flash"),
        MemoryRegion("RAM", 0x8000_0000, 16 * 1024, "ram"),
    ),
    cflags=RV32IMAC_FLAGS,
    ldflags=RV32IMAC_FLAGS,
    linker_script=HERE / "hifive1.ld",
    startup_sources=(HERE / "startup_hifive1.c",),
    libc="picolibc",
    default_simulator="unicorn",
    timing_model="rv32-e31",
    toolchain_hint="Debian/Ubuntu: sudo apt-get install gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf",
)


@hookimpl
def tinybuild_targets():
    return [HIFIVE1]
