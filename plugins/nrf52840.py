"""Example board plugin: the Nordic nRF52840 (Cortex-M4F, 64 MHz), e.g. the nRF52840 DK.

This file is the whole board: tinybuild loads every ``*.py`` in ``plugins/``
(and in folders named by ``plugins=`` / ``TINYBUILD_PLUGINS``), and the one
hook below tells it the CPU, compiler flags, memory map, clock, startup code
and linker script. Nothing in the core names this board.

Memory map from Nordic's nRF52840 Product Specification v1.7, "Memory"
chapter (memory map figure): 1 MB flash at 0x00000000, 256 KB RAM at 0x20000000 (Data RAM
view). No SoftDevice: the firmware owns all of flash and RAM. The startup
code is the built-in cortex-m4 target's (a Cortex-M4F vector table and
Reset_Handler that copies .data and zeroes .bss; nothing in it is specific to
the STM32), so the only board file besides this one is ``nrf52840.ld``. Its
``io=uart`` support (``realboard.NRF52840``) is tinybuild's
``runtime/tb_uart_nrf52840.c``.
"""
from pathlib import Path

from tinybuild import realboard
from tinybuild.hookspecs import hookimpl
from tinybuild.plugins import PROJECT_ROOT
from tinybuild.target import MemoryRegion, Target

HERE = Path(__file__).resolve().parent
M4F_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")

NRF52840 = Target(
    name="nrf52840",
    description="nRF52840, Cortex-M4F at 64 MHz, 1 MB flash, 256 KB RAM (example plugin)",
    board="nRF52840 (e.g. nRF52840 DK, PCA10056)",
    arch="arm",
    cpu="cortex-m4",
    triple="arm-none-eabi",
    clock_hz=64_000_000,
    memory=(
        MemoryRegion("FLASH", 0x0000_0000, 1024 * 1024, "flash"),
        MemoryRegion("RAM", 0x2000_0000, 256 * 1024, "ram"),
    ),
    cflags=M4F_FLAGS,
    ldflags=M4F_FLAGS + ("--specs=nano.specs", "--specs=nosys.specs"),
    linker_script=HERE / "nrf52840.ld",
    startup_sources=(PROJECT_ROOT / "targets" / "cortex_m4" / "startup_stm32f407.c",),
    libc="newlib-nano",
    default_simulator="unicorn",
    timing_model="cortex-m4",
    toolchain_hint="Debian/Ubuntu: sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi",
    xpack_package="@xpack-dev-tools/arm-none-eabi-gcc",
    # io=uart: UART0 on the DK's P0.06, HFXO started, DWT CYCCNT (tinybuild/runtime/tb_uart_nrf52840.c)
    realboard=realboard.NRF52840,
    # upload=1: pyOCD knows the part without a pack; the DK's J-Link OB needs SEGGER's J-Link software.
    flasher=realboard.Flasher("pyocd", "nrf52840"),
)


@hookimpl
def tinybuild_targets():
    return [NRF52840]
