"""Built-in target ``cortex-m4``: an STM32F407VG (Cortex-M4F, 168 MHz).

Memory map from ST's RM0090 (section 2.3): 1 MiB flash at 0x08000000,
128 KiB SRAM1+SRAM2 at 0x20000000, 64 KiB CCM data RAM at 0x10000000
(192 KiB RAM in all). Startup code and linker script live beside this file.
"""
from pathlib import Path

from tinybuild.hookspecs import hookimpl
from tinybuild import realboard
from tinybuild.target import MemoryRegion, Target

HERE = Path(__file__).parent

CORTEX_M4F_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
# Every kernel below: their inline assembly (r7, a dozen register operands) does not
# compile at -O0/-O1, so opt=O0/O1 builds compile their files at -O2 (kernel_registry.KernelImpl).
KERNEL_MIN_OPT = "O2"

STM32F407 = Target(
    name="cortex-m4",
    description="STM32F407VG, Cortex-M4F at 168 MHz, 1 MiB flash, 192 KiB RAM",
    board="STM32F407VG (e.g. STM32F4-Discovery)",
    arch="arm",
    cpu="cortex-m4",
    triple="arm-none-eabi",
    clock_hz=168_000_000,
    memory=(
        MemoryRegion("FLASH", 0x0800_0000, 1024 * 1024, "flash"),
        MemoryRegion("RAM", 0x2000_0000, 128 * 1024, "ram"),
        MemoryRegion("CCMRAM", 0x1000_0000, 64 * 1024, "ram"),
    ),
    cflags=CORTEX_M4F_FLAGS,
    ldflags=CORTEX_M4F_FLAGS + ("--specs=nano.specs", "--specs=nosys.specs"),
    linker_script=HERE / "stm32f407.ld",
    startup_sources=(HERE / "startup_stm32f407.c",),
    libc="newlib-nano",
    default_simulator="unicorn",
    timing_model="cortex-m4",
    memory_model="stm32f407-art",     # 5 wait states at 168 MHz behind the ART (docs/timing.md)
    toolchain_hint="Debian/Ubuntu: sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi",
    xpack_package="@xpack-dev-tools/arm-none-eabi-gcc",
    realboard=realboard.STM32F407,
    flasher=realboard.Flasher("pyocd", "stm32f407vg"),
)


@hookimpl
def tinybuild_targets():
    return [STM32F407]


# Cores with the DSP extension (SMLAD, SXTB16, SMMLAR...): the kernels in
# kernels/ run on them; elsewhere the reference kernels are used.
DSP_CPUS = ("cortex-m4", "cortex-m7", "cortex-m33", "cortex-m35p", "cortex-m55", "cortex-m85")


@hookimpl
def tinybuild_kernels(target):
    """Optimized int8 kernels for Arm cores with the DSP extension (see docs/kernels.md)."""
    if target.arch != "arm" or target.cpu not in DSP_CPUS:
        return []
    from .kernels import cm4_elementwise, cm4_fc_pairs, cm4_lstm, cm4_prepare, cm4_s16
    from .kernels import cm4_conv_few_in   # first: opt_harness.cm4_kernels() keeps the last per op
    return ([cm4_conv_few_in.KERNEL] + cm4_prepare.kernels() + cm4_elementwise.kernels()
            + cm4_lstm.kernels() + cm4_s16.kernels() + cm4_fc_pairs.kernels())

