"""Built-in targets for Espressif's ESP32 family: ``esp32c3``, ``esp32``, ``esp32s3``.

One plugin for the family. Sources for every memory map are the chips'
Technical Reference Manuals (chapter "System and Memory"); each linker script
beside this file quotes the ranges it uses and says what it simplifies.

- ``esp32c3``: ESP-RISC-V core (RV32IMC, 4-stage pipeline), 160 MHz. Built
  with Debian's ``riscv64-unknown-elf-gcc`` and picolibc (its ``rv32im/ilp32``
  multilib: GCC 12 ships none for rv32imc and picks the compatible one), run
  in the default simulator (``unicorn``) with the ``rv32-esp32c3`` cycle model.
- ``esp32`` (Xtensa LX6) and ``esp32s3`` (Xtensa LX7), 240 MHz: built with
  Espressif's GCC (``xtensa-esp32-elf-gcc`` / ``xtensa-esp32s3-elf-gcc``,
  found on PATH or in ESP-IDF's tools folder by the provider below) and sized;
  no tinybuild simulator runs Xtensa, so these builds stop after link and
  size with a note saying so.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from tinybuild.hookspecs import hookimpl
from tinybuild import realboard
from tinybuild.target import MemoryRegion, Target, Toolchain
from tinybuild.toolchains import gcc_version

HERE = Path(__file__).parent

RV32IMC_FLAGS = ("-march=rv32imc", "-mabi=ilp32", "--specs=picolibc.specs")
# ESP-IDF builds every Xtensa chip with -mlongcalls: code in IROM calls across
# more than the CALLn instructions' 512 KB reach.
XTENSA_FLAGS = ("-mlongcalls",)


def _idf_hint(chip: str) -> str:
    return (f"ESP-IDF's installer: git clone --recursive https://github.com/espressif/esp-idf && "
            f"esp-idf/install.sh {chip} (tinybuild looks on PATH, then in ~/.espressif/tools)")


ESP32C3 = Target(
    name="esp32c3",
    description="ESP32-C3, ESP-RISC-V RV32IMC at 160 MHz, 4 MB flash (cached), 400 KB SRAM",
    board="ESP32-C3 (e.g. ESP32-C3-DevKitM-1, 4 MB flash)",
    arch="riscv32",
    cpu="esp-riscv",
    triple="riscv64-unknown-elf",
    clock_hz=160_000_000,
    memory=(
        MemoryRegion("IROM", 0x4200_0000, 2 * 1024 * 1024, "flash"),
        MemoryRegion("DROM", 0x3C00_0000, 2 * 1024 * 1024, "flash"),
        MemoryRegion("DRAM", 0x3FC8_0000, 312 * 1024, "ram"),
    ),
    cflags=RV32IMC_FLAGS,
    ldflags=RV32IMC_FLAGS,
    linker_script=HERE / "esp32c3.ld",
    startup_sources=(HERE / "startup_esp32c3.c",),
    libc="picolibc",
    default_simulator="unicorn",
    timing_model="rv32-esp32c3",
    toolchain_hint="Debian/Ubuntu: sudo apt-get install gcc-riscv64-unknown-elf "
                   "picolibc-riscv64-unknown-elf",
    realboard=realboard.ESP32C3,
    flasher=realboard.Flasher("esptool", "esp32c3", address=0x0),
)

ESP32 = Target(
    name="esp32",
    description="ESP32, Xtensa LX6 at 240 MHz, 4 MB flash (cached), 520 KB SRAM; not simulated",
    board="ESP32 (e.g. ESP32-DevKitC, ESP32-WROOM-32, 4 MB flash)",
    arch="xtensa",
    cpu="lx6",
    triple="xtensa-esp32-elf",
    clock_hz=240_000_000,
    memory=(
        MemoryRegion("IROM", 0x400D_0000, 2 * 1024 * 1024, "flash"),
        MemoryRegion("DROM", 0x3F40_0000, 2 * 1024 * 1024, "flash"),
        MemoryRegion("DRAM", 0x3FFB_0000, 176 * 1024, "ram"),
    ),
    cflags=XTENSA_FLAGS,
    ldflags=XTENSA_FLAGS,
    linker_script=HERE / "esp32.ld",
    startup_sources=(HERE / "startup_xtensa.c",),
    libc="newlib",
    default_simulator="",                 # none: built, linked and sized only
    toolchain_hint=_idf_hint("esp32"),
    flasher=realboard.Flasher("esptool", "esp32", address=0x1000),
)

ESP32S3 = Target(
    name="esp32s3",
    description="ESP32-S3, Xtensa LX7 at 240 MHz, 8 MB flash (cached), 512 KB SRAM; not simulated",
    board="ESP32-S3 (e.g. ESP32-S3-DevKitC-1, WROOM-1-N8, 8 MB flash)",
    arch="xtensa",
    cpu="lx7",
    triple="xtensa-esp32s3-elf",
    clock_hz=240_000_000,
    memory=(
        MemoryRegion("IROM", 0x4200_0000, 4 * 1024 * 1024, "flash"),
        MemoryRegion("DROM", 0x3C00_0000, 4 * 1024 * 1024, "flash"),
        MemoryRegion("DRAM", 0x3FC8_8000, 320 * 1024, "ram"),
    ),
    cflags=XTENSA_FLAGS,
    ldflags=XTENSA_FLAGS,
    linker_script=HERE / "esp32s3.ld",
    startup_sources=(HERE / "startup_xtensa.c",),
    libc="newlib",
    default_simulator="",
    toolchain_hint=_idf_hint("esp32s3"),
    flasher=realboard.Flasher("esptool", "esp32s3", address=0x0),
)


@hookimpl
def tinybuild_targets():
    return [ESP32C3, ESP32, ESP32S3]


# -- Espressif's Xtensa toolchains -----------------------------------------------


def idf_tools_dir() -> Path:
    """ESP-IDF's tools folder: ``$IDF_TOOLS_PATH/tools``, else ``~/.espressif/tools``."""
    base = os.environ.get("IDF_TOOLS_PATH")
    return (Path(base) if base else Path.home() / ".espressif") / "tools"


def _version_key(path: Path) -> tuple:
    return tuple(int(n) for n in re.findall(r"\d+", path.parent.parent.name))


def idf_bin_dirs(triple: str, tools: Path | None = None) -> list[Path]:
    """Where ``idf_tools.py install`` puts a chip's GCC, newest version first.

    ESP-IDF up to v5.1 installs one toolchain per chip
    (``tools/xtensa-esp32-elf/<version>/xtensa-esp32-elf/bin``); from v5.2 one
    for all Xtensa chips (``tools/xtensa-esp-elf/<version>/xtensa-esp-elf/bin``)
    whose ``xtensa-esp32-elf-gcc``-style wrappers add the chip's
    ``-mdynconfig``. Both are searched.
    """
    tools = tools or idf_tools_dir()
    dirs: list[Path] = []
    for package in (triple, "xtensa-esp-elf"):
        dirs += sorted(tools.glob(f"{package}/*/{package}/bin"), key=_version_key, reverse=True)
    return dirs


def find_espressif_toolchain(target: Target) -> Toolchain | None:
    if not target.triple.startswith("xtensa-esp"):
        return None
    gcc = shutil.which(f"{target.triple}-gcc")
    if gcc:
        return Toolchain(target.triple, Path(gcc).parent, gcc_version(Path(gcc)), "PATH")
    for bin_dir in idf_bin_dirs(target.triple):
        gcc_path = bin_dir / f"{target.triple}-gcc"
        if gcc_path.is_file() and os.access(gcc_path, os.X_OK):
            return Toolchain(target.triple, bin_dir, gcc_version(gcc_path), "ESP-IDF")
    return None


@hookimpl
def tinybuild_find_toolchain(target, explicit_path):
    """Espressif's GCC for the Xtensa chips: PATH first (ESP-IDF's export.sh
    puts it there), then ESP-IDF's tools folder. ``toolchain=`` still wins
    (the core's explicit-path provider runs first)."""
    return find_espressif_toolchain(target)
