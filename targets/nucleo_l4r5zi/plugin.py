"""Built-in target ``nucleo-l4r5zi``: ST's NUCLEO-L4R5ZI, the MLPerf Tiny reference board.

STM32L4R5ZI: Cortex-M4F at 120 MHz (voltage range 1 boost mode), 2 MiB flash,
640 KiB SRAM in three banks. Memory map from ST's RM0432 (STM32L4+ reference
manual), section 2.2 "Memory organization" / "Memory map and register
boundary addresses": flash at 0x08000000 (2 MiB), SRAM1 192 KiB at
0x20000000, SRAM2 64 KiB at 0x20030000 and aliased at 0x10000000 (the
"SRAM2 alias" the Cortex-M4 reaches over the I-Code/D-Code buses), SRAM3
384 KiB at 0x20040000.

tinybuild maps SRAM2 at its 0x10000000 view only (one physical memory may be
mapped once): it holds the stack, so an overflow runs off the bottom of SRAM2
and faults instead of overwriting tensors, as the cortex-m4 target does with
the F407's CCM. .data/.bss go to SRAM1 and the arena (.noinit) to SRAM3, the
largest bank. Flash latency at 120 MHz: 5 wait states (RM0432 "Read access
latency", table "Number of wait states according to CPU clock (HCLK)
frequency", range 1 boost); the memory model that charges them is
sim/unicorn/timing.py's ``stm32l4r5-art`` (docs/timing.md).
"""
from pathlib import Path

from tinybuild.hookspecs import hookimpl
from tinybuild import realboard
from tinybuild.target import MemoryRegion, Target

HERE = Path(__file__).parent

CORTEX_M4F_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")

NUCLEO_L4R5ZI = Target(
    name="nucleo-l4r5zi",
    description="STM32L4R5ZI, Cortex-M4F at 120 MHz, 2 MiB flash, 640 KiB SRAM (MLPerf Tiny reference board)",
    board="ST NUCLEO-L4R5ZI (STM32L4R5ZI)",
    arch="arm",
    cpu="cortex-m4",
    triple="arm-none-eabi",
    clock_hz=120_000_000,
    memory=(
        MemoryRegion("FLASH", 0x0800_0000, 2048 * 1024, "flash"),
        MemoryRegion("SRAM1", 0x2000_0000, 192 * 1024, "ram"),
        MemoryRegion("SRAM3", 0x2004_0000, 384 * 1024, "ram"),
        MemoryRegion("SRAM2", 0x1000_0000, 64 * 1024, "ram"),
    ),
    cflags=CORTEX_M4F_FLAGS,
    ldflags=CORTEX_M4F_FLAGS + ("--specs=nano.specs", "--specs=nosys.specs"),
    linker_script=HERE / "stm32l4r5zi.ld",
    startup_sources=(HERE / "startup_stm32l4r5.c",),
    libc="newlib-nano",
    default_simulator="unicorn",
    timing_model="cortex-m4",
    memory_model="stm32l4r5-art",
    toolchain_hint="Debian/Ubuntu: sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi",
    xpack_package="@xpack-dev-tools/arm-none-eabi-gcc",
    realboard=realboard.STM32L4R5,
    flasher=realboard.Flasher("pyocd", "stm32l4r5zitx"),
)


@hookimpl
def tinybuild_targets():
    return [NUCLEO_L4R5ZI]
