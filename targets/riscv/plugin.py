"""Built-in target ``riscv``: a GigaDevice GD32VF103CB (Nuclei Bumblebee, RV32IMAC, 108 MHz).

The board: any GD32VF103CBT6 board, e.g. the Sipeed Longan Nano. Memory map
from GigaDevice's GD32VF103 Datasheet (the "Memory map" section) and User
Manual: 128 KiB main flash at 0x08000000 (aliased at 0x00000000 when booting
from flash), 32 KiB SRAM at 0x20000000. Core: Nuclei's Bumblebee (N200
class, two-stage pipeline, RV32IMAC), 108 MHz maximum.

Toolchain: Debian's ``gcc-riscv64-unknown-elf`` (a multilib GCC whose
``rv32imac/ilp32`` libraries match this core) with picolibc
(``picolibc-riscv64-unknown-elf``) selected by ``--specs=picolibc.specs``;
the march has no ``_zicsr``: GCC 12 picks the multilib by the exact -march
string and has none for ``rv32imac_zicsr``, and neither the startup nor the
kernels use CSR instructions.

Kernels: ``kernels/`` holds int8 kernels for RV32 cores with MUL/MULH (register
blocked convolution, depthwise, fully connected, add, mul, table activations;
docs/kernels.md, section
"RISC-V (rv32imc)"). ``tinybuild_kernels`` below offers them to every riscv32
target whose -march has the M extension, whichever plugin defines the board
(the esp32c3 too).
"""
from pathlib import Path

from tinybuild.hookspecs import hookimpl
from tinybuild import realboard
from tinybuild.target import MemoryRegion, Target

HERE = Path(__file__).parent

RV32IMAC_FLAGS = ("-march=rv32imac", "-mabi=ilp32", "--specs=picolibc.specs")
RISCV_TOOLCHAIN_HINT = ("Debian/Ubuntu: sudo apt-get install gcc-riscv64-unknown-elf "
                        "picolibc-riscv64-unknown-elf")

GD32VF103 = Target(
    name="riscv",
    description="GD32VF103CB, Nuclei Bumblebee RV32IMAC at 108 MHz, 128 KiB flash, 32 KiB SRAM",
    board="GD32VF103CB (e.g. Sipeed Longan Nano)",
    arch="riscv32",
    cpu="bumblebee",
    triple="riscv64-unknown-elf",
    clock_hz=108_000_000,
    memory=(
        MemoryRegion("FLASH", 0x0800_0000, 128 * 1024, "flash"),
        MemoryRegion("RAM", 0x2000_0000, 32 * 1024, "ram"),
    ),
    cflags=RV32IMAC_FLAGS,
    ldflags=RV32IMAC_FLAGS,
    linker_script=HERE / "gd32vf103.ld",
    startup_sources=(HERE / "startup_gd32vf103.c",),
    libc="picolibc",
    default_simulator="unicorn",
    timing_model="rv32-bumblebee",
    toolchain_hint=RISCV_TOOLCHAIN_HINT,
    realboard=realboard.GD32VF103,
    flasher=realboard.Flasher("openocd", configs=("interface/cmsis-dap.cfg", "target/gd32vf103.cfg")),
)


@hookimpl
def tinybuild_targets():
    return [GD32VF103]


def has_m_extension(cflags) -> bool:
    """Whether the -march in ``cflags`` has MUL and MULH: the M extension (``g``
    implies it) or Zmmul, e.g. rv32imac, rv32imc, rv32im_zicsr, rv32gc,
    rv32ic_zmmul; not rv32ec or rv32iac."""
    for flag in cflags:
        if flag.startswith("-march=rv32"):
            letters, *extensions = flag[len("-march=rv32"):].split("_")
            return "m" in letters or "g" in letters or "zmmul" in extensions
    return False


@hookimpl
def tinybuild_kernels(target):
    """Int8 kernels for RV32 cores with the M extension (MUL/MULH), whichever
    plugin defines the board (see docs/kernels.md, "RISC-V (rv32imc)")."""
    if target.arch != "riscv32" or not has_m_extension(target.cflags):
        return []
    from .kernels import rv_elementwise, rv_lstm, rv_prepare, rv_s16
    return (rv_prepare.kernels() + rv_elementwise.kernels() + rv_lstm.kernels()
            + rv_s16.kernels())
