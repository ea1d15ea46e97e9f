"""Value types shared by the core and the plugins: boards, toolchains, runs.

Plugins build these; the core only reads them. Nothing here knows a board by
name or imports SCons.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class MemoryRegion:
    """One address range of the board, as its linker script names it."""

    name: str          # linker script region name, e.g. "FLASH", "RAM"
    origin: int
    length: int
    kind: str          # "flash" (read-only, holds code and weights) or "ram"

    @property
    def end(self) -> int:
        return self.origin + self.length

    def contains(self, address: int) -> bool:
        return self.origin <= address < self.end


@dataclass(frozen=True)
class Target:
    """A board: CPU, compiler flags, memory map, startup code and linker script.

    `arch` is the simulator-facing instruction set ("arm" for Thumb-2 M-profile,
    "riscv32", "xtensa"); `triple` is the GCC prefix the toolchain providers
    look for ("arm-none-eabi"); `toolchain_hint` tells a user how to install one.
    """

    name: str
    description: str
    board: str
    arch: str
    cpu: str
    triple: str
    clock_hz: int
    memory: tuple[MemoryRegion, ...]
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    linker_script: Path
    startup_sources: tuple[Path, ...]
    include_dirs: tuple[Path, ...] = ()
    libc: str = "newlib-nano"            # or "picolibc"
    default_simulator: str = "unicorn"
    timing_model: str = ""               # key of the simulator's per-core cycle model
    toolchain_hint: str = ""            # how to install a toolchain, shown when none is found
    xpack_package: str = ""             # e.g. "@xpack-dev-tools/arm-none-eabi-gcc"
    plugin: str = ""                     # filled in by the plugin manager

    def regions(self, kind: str) -> list[MemoryRegion]:
        return [r for r in self.memory if r.kind == kind]

    def capacity(self, kind: str) -> int:
        return sum(r.length for r in self.regions(kind))

    def region_of(self, address: int) -> MemoryRegion | None:
        return next((r for r in self.memory if r.contains(address)), None)


@dataclass(frozen=True)
class Toolchain:
    """A GCC cross toolchain: tool paths plus how it was found."""

    triple: str
    bin_dir: Path
    version: str
    source: str                          # "explicit", "PATH", "xpack", ...

    def tool(self, name: str) -> str:
        return str(self.bin_dir / f"{self.triple}-{name}")


@dataclass
class LayerProfile:
    index: int
    instructions: int
    cycles: int


@dataclass
class RunResult:
    """What a simulator reports for one inference on one input."""

    simulator: str
    output: bytes
    instructions: int                    # per inference (first to last layer mark)
    cycles: int
    layers: list[LayerProfile] = field(default_factory=list)
    total_instructions: int = 0          # whole program, reset to exit
    total_cycles: int = 0
    peak_stack_bytes: int = 0
    ram_touched_bytes: int = 0
    wall_seconds: float = 0.0
    exit_code: int = 0
    arena_touched_bytes: int = 0         # bytes of the planned arena the run wrote (0: not measured)
    cycle_model: str = ""                # where `cycles` comes from, e.g. "cortex-m4" (a timing model)
    misaligned_accesses: int = -1        # data accesses not aligned to their size, whole run (-1: not counted)

    @property
    def instructions_per_second(self) -> float:
        return self.total_instructions / self.wall_seconds if self.wall_seconds else 0.0
