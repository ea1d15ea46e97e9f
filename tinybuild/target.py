"""Value types shared by the core and the plugins: boards, toolchains, runs.

Plugins build these; the core only reads them. Nothing here knows a board by
name or imports SCons.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import shown

ADDRESS_SPACE = 1 << 32                  # every supported core has 32-bit addresses
MEMORY_KINDS = ("flash", "ram")
# A target name becomes a folder name and the value of `target=`: no path
# separators, shell or SCons metacharacters, nothing that `target=all` means.
TARGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RESERVED_TARGET_NAMES = ("all",)
REGION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")     # a linker-script MEMORY name
TOOL_PREFIX = re.compile(r"[A-Za-z0-9._-]+")              # e.g. arm-none-eabi


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

    def problems(self) -> list[str]:
        """What is wrong with this region, each with its fix ([] if nothing)."""
        where = f"memory region {_show(self.name)}"
        if not isinstance(self.name, str) or not REGION_NAME.fullmatch(self.name):
            return [f"{where}: the name must be a linker-script region name (letters, digits, '_')"]
        if self.kind not in MEMORY_KINDS:
            return [f"{where}: kind {_show(self.kind)} is neither 'flash' nor 'ram'"]
        if not _is_int(self.origin) or not _is_int(self.length):
            return [f"{where}: origin and length must be integers (bytes)"]
        if self.length <= 0:
            return [f"{where}: length {self.length} must be more than 0 bytes"]
        if self.origin < 0 or self.end > ADDRESS_SPACE:
            return [f"{where}: 0x{self.origin:x} + {self.length} bytes is outside the 32-bit "
                    "address space"]
        return []


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
    memory_model: str = ""               # key of its flash/cache model ("": core-only cycles; docs/timing.md)
    toolchain_hint: str = ""            # how to install a toolchain, shown when none is found
    xpack_package: str = ""             # e.g. "@xpack-dev-tools/arm-none-eabi-gcc"
    plugin: str = ""                     # filled in by the plugin manager
    realboard: object = None             # tinybuild.realboard.RealBoard: io=uart support (None: none)
    flasher: object = None               # tinybuild.realboard.Flasher: what upload=1 runs (None: none)

    def float_arithmetic(self) -> str:
        """How float32 layers run, from the compile flags: "hardware FPU (...)" or
        "soft float (libgcc)"; "" when the flags do not say (e.g. Xtensa)."""
        flags = " ".join(self.cflags)
        if self.arch == "arm":
            fpu = next((f.split("=", 1)[1] for f in self.cflags if f.startswith("-mfpu=")), "")
            hard = "-mfloat-abi=hard" in flags or "-mfloat-abi=softfp" in flags
            return f"hardware FPU ({fpu})" if hard and fpu else "soft float (libgcc)"
        march = next((f.split("=", 1)[1] for f in self.cflags if f.startswith("-march=rv")), "")
        if march:
            letters = march[4:].split("_")[0]
            return "hardware FPU (F extension)" if set(letters) & set("fdg") else "soft float (libgcc)"
        return ""

    def regions(self, kind: str) -> list[MemoryRegion]:
        return [r for r in self.memory if r.kind == kind]

    def capacity(self, kind: str) -> int:
        return sum(r.length for r in self.regions(kind))

    def region_of(self, address: int) -> MemoryRegion | None:
        return next((r for r in self.memory if r.contains(address)), None)

    def problems(self) -> list[str]:
        """What makes this description unusable, each phrase with its fix ([]:
        none). Checked when the plugin loads, before anything is compiled,
        sized or simulated on a wrong memory map."""
        name_ok = isinstance(self.name, str) and TARGET_NAME.fullmatch(self.name) \
            and self.name not in RESERVED_TARGET_NAMES
        if not name_ok:
            return ["name must be 1-64 letters, digits, '.', '_' or '-' starting with a letter or "
                    "digit, and not 'all' (it becomes a folder name and the value of target=)"]
        if not _is_int(self.clock_hz) or self.clock_hz <= 0:
            return [f"clock_hz={_show(self.clock_hz)}: give the core clock in Hz, e.g. 64_000_000"]
        if not isinstance(self.triple, str) or not TOOL_PREFIX.fullmatch(self.triple):
            return [f"triple={_show(self.triple)}: give the GCC prefix, e.g. 'arm-none-eabi'"]
        for field_name in ("cflags", "ldflags"):
            flags = getattr(self, field_name)
            if not isinstance(flags, (tuple, list)) or not all(isinstance(f, str) for f in flags):
                return [f"{field_name} must be a tuple of strings, e.g. ('-mcpu=cortex-m4',)"]
        return self._memory_problems()

    def _memory_problems(self) -> list[str]:
        regions = self.memory
        if not isinstance(regions, (tuple, list)) or \
                not all(isinstance(r, MemoryRegion) for r in regions):
            return ["memory must be a tuple of tinybuild.target.MemoryRegion"]
        for region in regions:
            if region.problems():
                return region.problems()
        names = [r.name for r in regions]
        if len(set(names)) != len(names):
            return [f"memory names a region twice ({', '.join(names)}): give each a unique name"]
        if not self.regions("flash") or not self.regions("ram"):
            return ["memory needs at least one 'flash' region (code, weights) and one 'ram' region "
                    f"(arena, stack); it has {', '.join(f'{r.name} ({r.kind})' for r in regions)}"]
        ordered = sorted(regions, key=lambda r: r.origin)
        for low, high in zip(ordered, ordered[1:]):
            if high.origin < low.end:
                return [f"memory regions {low.name} (0x{low.origin:08x}-0x{low.end - 1:08x}) and "
                        f"{high.name} (0x{high.origin:08x}-0x{high.end - 1:08x}) overlap: "
                        "correct the origins and lengths from the board's datasheet"]
        return []


def _show(value) -> str:
    """A plugin-given value quoted for one terminal line."""
    return f"'{shown(value)}'" if isinstance(value, str) else shown(repr(value))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
    cycles: int                          # core + memory
    memory_cycles: int = 0               # of `cycles`, what the memory model charged


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
    memory_model: str = ""               # the memory model in `cycles` ("": core only)
    memory_cycles: int = 0               # of `cycles`, flash wait states / cache misses per inference
    memory_label: str = ""               # what those cycles are, e.g. "flash wait"
    console: str = ""                    # what an io=uart firmware printed over its UART

    @property
    def instructions_per_second(self) -> float:
        return self.total_instructions / self.wall_seconds if self.wall_seconds else 0.0
