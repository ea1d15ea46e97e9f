"""Built-in target ``mps2-an386``: Arm's MPS2+ FPGA board with the AN386 image (Cortex-M4F, 25 MHz).

The board QEMU emulates as ``-M mps2-an386``, so one ELF runs in the default
simulator (unicorn) and in QEMU (``sim=qemu``) for a cross-check of the
instruction counts. Memory map from Arm's "Application Note AN386: ARM
Cortex-M4 SMM on V2M-MPS2" (section "Memory map"): 4 MiB ZBT SSRAM1 at
0x00000000 for code (the board boots from it: the vector table is at 0), 4 MiB
ZBT SSRAM2/3 at 0x20000000 for data, CMSDK peripherals at 0x40000000; the
FPGA clocks the core at 25 MHz. On the board both are RAMs loaded by the
MPS2's configuration controller; tinybuild treats the code SSRAM as the
read-only image ("flash"): code and weights go there, the arena and stack to
the data SSRAM.

The startup code (startup_mps2_an386.c) follows the cortex-m4 target's
conventions and also overrides the runtime's weak ``tb_exit``: it writes the
output tensor in hex and exits through Arm semihosting (what QEMU reads).
The unicorn simulator stops at ``tb_exit``'s address before running it, so
semihosting never reaches it and the counts of the two agree.
"""
from pathlib import Path

from tinybuild.hookspecs import hookimpl
from tinybuild import realboard
from tinybuild.target import MemoryRegion, Target

HERE = Path(__file__).parent

CORTEX_M4F_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")

MPS2_AN386 = Target(
    name="mps2-an386",
    description="Arm MPS2+ AN386, Cortex-M4F at 25 MHz, 4 MiB code SSRAM, 4 MiB data SSRAM (QEMU: mps2-an386)",
    board="Arm MPS2+ with the AN386 FPGA image (QEMU -M mps2-an386)",
    arch="arm",
    cpu="cortex-m4",
    triple="arm-none-eabi",
    clock_hz=25_000_000,
    memory=(
        MemoryRegion("FLASH", 0x0000_0000, 4 * 1024 * 1024, "flash"),
        MemoryRegion("RAM", 0x2000_0000, 4 * 1024 * 1024, "ram"),
    ),
    cflags=CORTEX_M4F_FLAGS,
    ldflags=CORTEX_M4F_FLAGS + ("--specs=nano.specs", "--specs=nosys.specs"),
    linker_script=HERE / "mps2_an386.ld",
    startup_sources=(HERE / "startup_mps2_an386.c",),
    libc="newlib-nano",
    default_simulator="unicorn",
    timing_model="cortex-m4",
    toolchain_hint="Debian/Ubuntu: sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi",
    xpack_package="@xpack-dev-tools/arm-none-eabi-gcc",
    realboard=realboard.MPS2_AN386,
)


@hookimpl
def tinybuild_targets():
    return [MPS2_AN386]
