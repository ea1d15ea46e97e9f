"""The default tinybuild simulator: runs a firmware ELF headlessly in Unicorn.

What a run does (see the module docstrings of timing.py for the cycle model
and native.py for how the counting hook is built):

1. Maps the target's memory regions (plus, on Cortex-M, the System Control
   Space page at 0xE000E000 so the startup's CPACR write lands), paints every
   RAM byte with PATTERN, loads the ELF's PT_LOAD segments at their load
   (physical) addresses, writes the inputs where ``tb_io_desc`` says and
   resets the core like the hardware (Cortex-M: SP and PC from the vector
   table at the flash origin; RV32: PC = ELF entry).
2. Counts instructions and cycles per basic block in native code
   (UC_HOOK_BLOCK), snapshots the counters at every ``tb_mark`` call (a narrow
   Python UC_HOOK_CODE on that one address) and stops at ``tb_exit``. When
   the target names a memory model (``Target.memory_model``, docs/timing.md)
   the block hook also charges instruction-cache misses per block and the
   data reads from flash go through the data cache; their cycles are in
   ``cycles`` and counted apart in ``memory_cycles`` (per layer too). Data
   accesses (flash reads, and misaligned ones with ``detail``) are watched
   without a memory hook on Cortex-M and RV32 (the static access watch, see
   _Run and native_hook.c).
3. Reads the outputs (concatenated, in the model's order), the peak stack (distance from ``__stack_end__``
   to the lowest word no longer holding the pattern), the RAM touched (bytes
   no longer holding the pattern) and, of those, the ones inside the model's
   planned arena (``tb_io_desc.arena``/``arena_size``).

Faults (an unmapped read or write, a fetch from nowhere, an invalid
instruction) stop the run with the PC, its function and the layer running
(the last ``tb_mark``); a fault just below ``__stack_start__``, or with SP
below it, is reported as a stack overflow, and so is a run that reached
``tb_exit`` having written the stack's lowest word (a board whose stack does
not sit at the bottom of a RAM does not fault on an overflow). ``max_instructions`` (checked per
block in the native hook) and ``timeout_s`` (host time, Unicorn's own timer)
stop a runaway firmware the same way.

``UnicornSimulator.run_reading_arena`` runs the same way and also copies
parts of the arena when the firmware calls given ``tb_mark`` ids: before layer
k runs (its inputs; the outputs of layer k-1) or at ``TB_MARK_END`` (after the
last layer). The per-layer diagnosis (tinybuild/diagnose.py) reads every
layer's tensors that way, each right after the layer that writes it, so
tensors that later layers overwrite in place are still seen as written.

``UnicornSimulator(layer_profile=False)`` registers no ``tb_mark`` hook: no
per-layer figures, and the per-inference ones are those of the whole run. It
exists to measure what profiling costs (the snapshot hook fires once per
layer, so about nothing).

Blind spot of painting: a write that stores exactly the pattern's byte at
that position is invisible (counted as untouched); with a 4-byte pattern of
distinct, unusual bytes this needs a value like 0xC5 at offset 0 mod 4, which
only undercounts RAM touched by that byte and, for the stack, only matters if
the deepest stack word written happens to equal the whole pattern word.
"""
from __future__ import annotations

import bisect
import ctypes
import functools
import os
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinybuild.codegen import read_io_desc
from tinybuild.errors import TinybuildError, shown
from tinybuild.target import LayerProfile, RunResult, Target

from . import native, timing

PATTERN = bytes((0xC5, 0xA3, 0x5C, 0x3A))      # little-endian word 0x3A5CA3C5
PATTERN_WORD = struct.unpack("<I", PATTERN)[0]
PAGE = 0x1000
SCS_BASE = 0xE000E000                          # Cortex-M System Control Space
MARK_END = 0xFFFFFFFF
ARM_M_CPUS = ("cortex-m0", "cortex-m0plus", "cortex-m0+", "cortex-m1", "cortex-m3",
              "cortex-m4", "cortex-m7", "cortex-m23", "cortex-m33", "cortex-m35p",
              "cortex-m55", "cortex-m85")


def _align_down(x: int) -> int:
    return x & ~(PAGE - 1)


def _align_up(x: int) -> int:
    return (x + PAGE - 1) & ~(PAGE - 1)


# -- ELF ------------------------------------------------------------------------


@dataclass
class Segment:
    paddr: int
    vaddr: int
    data: bytes
    memsz: int
    executable: bool


@dataclass
class ElfImage:
    path: Path
    arch: str                                  # "arm" or "riscv32"
    entry: int
    segments: list[Segment]
    symbols: dict[str, int]
    funcs: list[tuple[int, int, str]]          # (start, end, name), sorted
    code_starts: list[int] = field(default_factory=list)
    data_ranges: list[tuple[int, int]] = field(default_factory=list)
    text_base: int = 0
    text: bytes = b""

    def symbol_at(self, addr: int) -> str:
        if self.arch == "arm":
            addr &= ~1
        i = bisect.bisect_right(self.funcs, (addr, 1 << 64, "")) - 1
        if i < 0:
            return "??"
        start, end, name = self.funcs[i]
        if end > start and addr >= end:
            return "??"
        return f"{name}+0x{addr - start:x}"


def load_elf(path: Path) -> ElfImage:
    from elftools.elf.constants import P_FLAGS
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    try:
        f = open(path, "rb")
    except OSError as e:
        raise TinybuildError(f"cannot open firmware ELF {shown(path, 200)}: {e}") from e
    with f:
        try:
            elf = ELFFile(f)
        except Exception as e:   # ELFError and friends
            raise TinybuildError(f"{shown(path, 200)} is not an ELF file: {e}") from e
        machine = elf["e_machine"]
        if machine == "EM_ARM":
            arch = "arm"
        elif machine == "EM_RISCV" and elf.elfclass == 32:
            arch = "riscv32"
        else:
            raise TinybuildError(f"{shown(path, 200)}: the unicorn simulator runs 32-bit ARM or RISC-V ELFs, not {machine}/{elf.elfclass}-bit")
        segments = []
        for seg in elf.iter_segments():
            if seg["p_type"] != "PT_LOAD" or seg["p_memsz"] == 0:
                continue
            segments.append(Segment(seg["p_paddr"], seg["p_vaddr"], seg.data(), seg["p_memsz"],
                                    bool(seg["p_flags"] & P_FLAGS.PF_X)))
        symbols: dict[str, int] = {}
        funcs: list[tuple[int, int, str]] = []
        marks: list[tuple[int, str]] = []     # (addr, 'c' code | 'd' data | 'e' data end)
        for sec in elf.iter_sections():
            if not isinstance(sec, SymbolTableSection):
                continue
            for sym in sec.iter_symbols():
                name, value = sym.name, sym["st_value"]
                styp = sym["st_info"]["type"]
                if not name or sym["st_shndx"] == "SHN_UNDEF":
                    continue
                if name.startswith("$"):
                    kind = name[1:2]
                    if kind in ("t", "a", "x"):
                        marks.append((value & ~1 if arch == "arm" else value, "c"))
                    elif kind == "d":
                        marks.append((value, "d"))
                    continue
                if styp == "STT_FUNC":
                    start = value & ~1 if arch == "arm" else value
                    funcs.append((start, start + sym["st_size"], name))
                    marks.append((start, "c"))
                    symbols.setdefault(name, start)
                else:
                    symbols.setdefault(name, value)
                    if styp == "STT_OBJECT" and sym["st_size"]:
                        marks.append((value, "d"))
                        marks.append((value + sym["st_size"], "e"))
        entry = elf["e_entry"]
    funcs.sort()
    # Data ranges: from a $d (or a data object) to the next code symbol or object end.
    code_starts = sorted({a for a, k in marks if k == "c"})
    data_ranges = []
    open_at = None
    for addr, kind in sorted(marks, key=lambda m: (m[0], m[1] != "e")):
        if kind == "d":
            if open_at is None:
                open_at = addr
        elif open_at is not None:
            if addr > open_at:
                data_ranges.append((open_at, addr))
            open_at = None
    img = ElfImage(path, arch, entry, segments, symbols, funcs, code_starts, data_ranges)
    execs = [s for s in segments if s.executable and s.data]
    if execs:
        lo = min(s.vaddr for s in execs)
        hi = max(s.vaddr + len(s.data) for s in execs)
        buf = bytearray(hi - lo)
        for s in execs:
            buf[s.vaddr - lo: s.vaddr - lo + len(s.data)] = s.data
        if open_at is not None:
            data_ranges.append((open_at, max(hi, open_at)))
        img.text_base, img.text = lo, bytes(buf)
    return img


def layer_ops(elf: Path) -> dict[int, str]:
    """Layer index -> op, from the plan.json that code generation writes
    beside a tinybuild firmware (empty for other ELFs): error messages name
    the layer's op, which the ELF does not hold."""
    import json
    try:
        plan = json.loads((Path(elf).parent / "plan.json").read_text())
        return {int(l["index"]): shown(l["op"]) for l in plan["layers"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


@functools.lru_cache(maxsize=16)
def _prepared(path: str, mtime_ns: int, size: int, model_name: str):
    img = load_elf(Path(path))
    model = timing.model_for(img.arch, model_name)
    tables = timing.build_tables(img.text, img.text_base, img.arch, model,
                                 img.code_starts, img.data_ranges)
    return img, tables


def prepare(elf: Path, model_name: str = ""):
    st = os.stat(elf)
    return _prepared(str(Path(elf).resolve()), st.st_mtime_ns, st.st_size, model_name)


# -- the simulator ---------------------------------------------------------------


class UnicornSimulator:
    """Unicorn-based simulator with exact instruction counts and a cycle model."""

    name = "unicorn"

    def __init__(self, layer_profile: bool = True):
        self.layer_profile = layer_profile

    def supports(self, target: Target) -> bool:
        if target.arch == "riscv32":
            return True
        if target.arch == "arm":
            return target.cpu.lower() in ARM_M_CPUS
        return False

    def available(self) -> tuple[bool, str]:
        try:
            import unicorn
        except Exception as e:   # ImportError, or the shared library failing to load
            return False, f"unicorn not importable ({e}); install with `pip install unicorn`"
        lib = native.library_path()
        if lib.exists():
            how = f"native hook cached at {lib}"
        elif native.compiler():
            how = f"native hook will be built with {native.compiler()}"
        else:
            return False, (f"unicorn {unicorn.__version__}, but no host C compiler to build "
                           "its native counting hook (install gcc or set CC)")
        return True, f"{native.unicorn_label()}; {how}"

    def run(self, elf: Path, target: Target, input_bytes: bytes, *,
            max_instructions: int = 2_000_000_000, timeout_s: float = 600.0,
            detail: bool = True) -> RunResult:
        """Run ``elf`` once from reset to ``tb_exit`` on ``input_bytes``.

        ``max_instructions`` bounds the whole run (reset to exit; checked per
        block, so it may overshoot by one block); ``timeout_s`` is host time.
        The per-inference figures span the first ``tb_mark(0)`` to the next
        ``tb_mark(TB_MARK_END)``; without marks they equal the totals.
        ``detail`` watches every data access for misalignment (the timing
        model's penalty, or the core's trap), exactly (docs/simulators.md
        "Speed with memory hooks"). Without it misaligned accesses are not
        counted (``misaligned_accesses`` is -1) and cost nothing extra.
        """
        def run(watch: bool) -> _Run:
            return _Run(Path(elf), target, bytes(input_bytes), max_instructions, timeout_s,
                        layer_profile=self.layer_profile, detail=watch)

        plain_run = run(False)
        if not detail:
            return plain_run.execute()
        if plain_run.tables.model.traps_misaligned:
            return run(True).execute()      # the watch is how a trapping core's fault is seen
        # The plain run first: the report run then reuses its engine and
        # translations (the same hooks, _Engine).
        plain = plain_run.execute()
        try:
            watched = run(True).execute()
        except TinybuildError as fault:
            # Unicorn 2.1.4 itself misexecutes some code (seen: returning from
            # libgcc's __aeabi_dcmpge after its IT block) whenever any memory
            # hook is installed, even a no-op one. A real fault faults without
            # the watch too; otherwise report the plain run, labelled.
            print(f"[simulate] unicorn: {fault}; without the memory-access watch the same firmware "
                  "runs (a Unicorn fault under memory hooks, docs/simulators.md): this run's "
                  "cycles leave out misaligned-access penalties", file=sys.stderr, flush=True)
            plain.cycle_model += (" | misaligned-access penalties not counted: Unicorn faults "
                                  "under its memory watch on this firmware")
            return plain
        return self._checked_against_plain(plain, watched)

    @staticmethod
    def _checked_against_plain(plain: RunResult, watched: RunResult) -> RunResult:
        """The watched run against a plain one: Unicorn 2.1.4 can also compute
        wrong bytes under a memory hook without faulting (seen: GCC's IT blocks
        and register-offset STRH in 16x8 kernels). Outputs that differ mean the
        watched run is wrong: the plain run is reported, labelled."""
        if plain.output == watched.output:
            return watched
        print("[simulate] unicorn: the run watching memory accesses computed other output bytes "
              "than the same firmware without the watch (a Unicorn bug under memory hooks, "
              "docs/simulators.md): reporting the plain run, without misaligned-access penalties",
              file=sys.stderr, flush=True)
        plain.cycle_model += (" | misaligned-access penalties not counted: Unicorn misexecutes "
                              "this firmware under its memory watch")
        return plain

    def run_reading_arena(self, elf: Path, target: Target, input_bytes: bytes,
                          reads: list[tuple[int, int, int]], *,
                          max_instructions: int = 2_000_000_000,
                          timeout_s: float = 600.0) -> tuple[RunResult, list[bytes]]:
        """Run like :meth:`run` (without ``detail``) and return, with the
        result, the arena bytes each ``(mark, offset, size)`` of ``reads``
        names: ``size`` bytes at ``offset`` in the model's arena, copied when
        the firmware first calls ``tb_mark(mark)`` (before layer ``mark``
        runs; ``MARK_END``: after the last layer)."""
        run = _Run(Path(elf), target, bytes(input_bytes), max_instructions, timeout_s,
                   layer_profile=True, detail=False, arena_reads=reads)
        result = run.execute()
        return result, run.arena_copies()


_EMULATION_LOCK = threading.Lock()

# Engines kept between runs (docs/simulators.md "Speed with memory hooks"):
# the report run, its check without the watch and the other validation
# inputs run the same firmware with the same hooks, so all but the first
# reuse its translated code instead of translating it again. False: a new
# engine for every run (tests compare the two).
REUSE_ENGINES = True
MAX_ENGINES = 2
_ENGINES: dict[tuple, "_Engine"] = {}


def clear_engines() -> None:
    """Drop every kept engine (tests; bench/sim_speed.py's cold runs)."""
    while _ENGINES:
        _ENGINES.popitem()[1].release()


@dataclass
class _Current:
    run: "_Run"          # the run an engine's Python hooks record into


class _Engine:
    """A set-up Unicorn engine with its hooks, counters and the state to put
    back before its next run: the counters and hooked-instruction flags as
    set up, the registers at reset, and flash (any memory that is not RAM)
    as loaded. Kept only after a run that succeeded."""

    # (tables: the cost arrays and descriptors the counters point to)
    ATTRS = ("uc", "reg_pc", "reg_sp", "reg_a0", "ram", "start", "pc0", "sp0", "exit_addr",
             "mark_addr", "counters", "cache_tags", "access_arrays", "current", "tables")

    def __init__(self, key: tuple, run: "_Run"):
        self.key = key
        self.attrs = {a: getattr(run, a) for a in self.ATTRS if hasattr(run, a)}
        c = run.counters
        self.counters0 = ctypes.string_at(ctypes.addressof(c), ctypes.sizeof(c))
        self.hooked0 = run.access_arrays[0].copy() if hasattr(run, "access_arrays") else None
        self.context = run.uc.context_save()
        uc = run.uc
        self.rom = [(lo, bytes(uc.mem_read(lo, hi - lo))) for lo, hi in _page_spans(
            r for r in run.target.memory if r.kind != "ram")]
        if run.img.arch == "arm" and not any(lo <= SCS_BASE < hi for lo, hi in _page_spans(run.target.memory)):
            self.rom.append((SCS_BASE, bytes(PAGE)))

    def attach(self, run: "_Run") -> None:
        """Make ``run`` this engine's: its attributes, counters as set up."""
        for a, v in self.attrs.items():
            setattr(run, a, v)
        run.console = bytearray()
        run.current.run = run
        c = run.counters
        ctypes.memmove(ctypes.addressof(c), self.counters0, len(self.counters0))
        c.count_misaligned = int(run.detail)
        c.max_insns = max(0, int(run.max_instructions))
        for tags in getattr(run, "cache_tags", ()):
            tags.fill(0xFFFFFFFF)
        if self.hooked0 is not None:
            run.access_arrays[0][:] = self.hooked0

    def restore_rom(self) -> None:
        """Memory that is not RAM back as loaded where a run wrote it."""
        uc = self.attrs["uc"]
        for lo, data in self.rom:
            if bytes(uc.mem_read(lo, len(data))) != data:
                uc.mem_write(lo, data)

    def keep(self) -> None:
        while len(_ENGINES) >= MAX_ENGINES:
            _ENGINES.pop(next(iter(_ENGINES))).release()
        _ENGINES[self.key] = self

    def release(self) -> None:
        """Free the compiled blocks the counters point to."""
        native.call("tb_release", self.attrs["counters"])


def _page_spans(memory) -> list[tuple[int, int]]:
    """The board's regions widened to Unicorn's 4 KiB pages, with spans that
    touch or overlap merged: two regions may share a page (a boot ROM and a
    RAM bank back to back), but Unicorn maps a page only once."""
    spans: list[tuple[int, int]] = []
    for lo, hi in sorted((_align_down(r.origin), _align_up(r.end)) for r in memory):
        if spans and lo <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], hi))
        else:
            spans.append((lo, hi))
    return spans


class _Run:
    """One run. ``access_watch`` says how data accesses are watched (for
    ``detail``'s misalignment count and the memory model's flash reads):
    "static" (the default: resolved per block from the decoded instructions,
    docs/simulators.md "Speed with memory hooks") or "hook" (Unicorn's
    memory hook on every access: the fallback, and the oracle the static
    watch is tested against)."""

    def __init__(self, elf: Path, target: Target, input_bytes: bytes,
                 max_instructions: int, timeout_s: float, layer_profile: bool = True,
                 detail: bool = True, arena_reads: list[tuple[int, int, int]] = (),
                 access_watch: str | None = None):
        self.layer_profile = layer_profile
        self.arena_reads = list(arena_reads)
        self.copies: dict[int, bytes] = {}            # index in arena_reads -> bytes
        self.detail = detail
        self.elf_path = elf
        self.target = target
        self.input = input_bytes
        self.max_instructions = max_instructions
        self.timeout_s = timeout_s
        if not self.elf_path.exists():
            raise TinybuildError(f"firmware ELF not found: {shown(elf, 200)}")
        self.img, self.tables = prepare(elf, target.timing_model)
        self.memory = timing.memory_model_for(target)     # None: core-only cycles
        if self.img.arch != target.arch:
            raise TinybuildError(f"{shown(elf, 200)} is a {self.img.arch} ELF but target {target.name} is {target.arch}")
        self.marks: list[tuple[int, int, int, int]] = []   # (id, insns, cycles, memory cycles)
        self.fault: tuple[int, int, int] | None = None
        if access_watch not in (None, "static", "hook"):
            raise ValueError(f"access_watch must be 'static' or 'hook', not {access_watch!r}")
        self.access_watch = access_watch or "static"
        self.extra_hooks = np.zeros(0, dtype=np.int64)  # halfwords a previous attempt missed

    # -- helpers --
    def sym(self, name: str, required: bool = True) -> int | None:
        v = self.img.symbols.get(name)
        if v is None and required:
            raise TinybuildError(
                f"{shown(self.elf_path, 200)} has no symbol `{name}`: is it a tinybuild firmware "
                f"(linked with tinybuild/runtime/tb_runtime.c)?")
        return v

    def current_layer(self) -> str:
        """Where the firmware was, as a phrase that follows a PC: "during
        startup, before the first layer", "in layer 3 (CONV_2D)", "after the
        last layer"."""
        if not self.marks:
            return "during startup, before the first layer"
        last = self.marks[-1][0]
        if last == MARK_END:
            return "after the last layer"
        op = layer_ops(self.elf_path).get(last)
        return f"in layer {last} ({op})" if op else f"in layer {last}"

    def context(self, pc: int) -> str:
        return (f"PC=0x{pc:08x} in {self.img.symbol_at(pc)}, {self.current_layer()} "
                f"(firmware {shown(self.elf_path.name)}, target {self.target.name})")

    def arena_copies(self) -> list[bytes]:
        missing = sorted({m for i, (m, _, _) in enumerate(self.arena_reads) if i not in self.copies})
        if missing:
            names = ", ".join("TB_MARK_END" if m == MARK_END else str(m) for m in missing)
            raise TinybuildError(f"{shown(self.elf_path.name)} never called tb_mark({names}), so "
                                 "the arena could not be read there")
        return [self.copies[i] for i in range(len(self.arena_reads))]

    def check_arena_reads(self) -> None:
        for mark, offset, size in self.arena_reads:
            if offset < 0 or size < 0 or offset + size > self.arena_size:
                raise TinybuildError(
                    f"arena read of {size} bytes at offset {offset} (at tb_mark {mark}) is outside "
                    f"the {self.arena_size:,}-byte arena of {shown(self.elf_path.name)}")

    # -- setup --
    def setup(self):
        """A new engine with the board's memory mapped, then the image and inputs loaded."""
        import unicorn as U
        img, t = self.img, self.target
        if img.arch == "arm":
            from unicorn import arm_const as A
            uc = U.Uc(U.UC_ARCH_ARM, U.UC_MODE_THUMB | U.UC_MODE_MCLASS)
            cpu = {"cortex-m0": A.UC_CPU_ARM_CORTEX_M0, "cortex-m3": A.UC_CPU_ARM_CORTEX_M3,
                   "cortex-m7": A.UC_CPU_ARM_CORTEX_M7, "cortex-m33": A.UC_CPU_ARM_CORTEX_M33}.get(
                       t.cpu.lower(), A.UC_CPU_ARM_CORTEX_M4)
            uc.ctl_set_cpu_model(cpu)
            self.reg_pc, self.reg_sp, self.reg_a0 = A.UC_ARM_REG_PC, A.UC_ARM_REG_SP, A.UC_ARM_REG_R0
        else:
            from unicorn import riscv_const as R
            uc = U.Uc(U.UC_ARCH_RISCV, U.UC_MODE_RISCV32)
            self.reg_pc, self.reg_sp, self.reg_a0 = R.UC_RISCV_REG_PC, R.UC_RISCV_REG_SP, R.UC_RISCV_REG_A0
        self.uc = uc
        mapped = _page_spans(t.memory)
        for lo, hi in mapped:
            uc.mem_map(lo, hi - lo, self.span_prot(lo, hi))
        if img.arch == "arm" and not any(lo <= SCS_BASE < hi for lo, hi in mapped):
            # System Control Space (CPACR at 0xE000ED88, SCB, NVIC, SysTick): plain
            # RAM here, so the startup's FPU-enable write lands. Unicorn's FPU for
            # Cortex-M models is usable regardless (see the report / tests).
            uc.mem_map(SCS_BASE, PAGE, U.UC_PROT_READ | U.UC_PROT_WRITE)
        self.console = bytearray()
        board = getattr(t, "realboard", None)
        if board is not None and board.uart is not None and "__wrap_main" in img.symbols:
            # An io=uart firmware: its UART and clock registers as MMIO (tinybuild/realboard.py).
            from tinybuild.realboard import attach_uart
            self.console = attach_uart(uc, board.uart, lambda: self.counters.cycles)
            self.reusable = False
        self.ram = [r for r in t.memory if r.kind == "ram"]
        self.load_image(engine=None)

    def load_image(self, engine: _Engine | None) -> None:
        """Paint RAM, load the image at its load addresses, write the inputs
        and reset the core. On a kept ``engine`` only what a run can change
        is written: RAM (never executable unless it holds code), and flash
        or other memory only where the last run wrote it (a write to code
        throws its translations away)."""
        img, t, uc = self.img, self.target, self.uc
        self.loaded_ram: list[tuple[int, int]] = []
        for r in self.ram:
            uc.mem_write(r.origin, PATTERN * (r.length // 4) + PATTERN[: r.length % 4])
        if engine is not None:
            engine.restore_rom()
        for s in img.segments:
            if not s.data:
                continue
            region = t.region_of(s.paddr)
            if region is None or s.paddr + len(s.data) > region.end:
                raise TinybuildError(
                    f"{shown(self.elf_path, 200)}: segment at 0x{s.paddr:08x}..0x{s.paddr + len(s.data):08x} "
                    f"lies outside target {t.name}'s memory map "
                    f"({', '.join(f'{m.name} 0x{m.origin:08x}+0x{m.length:x}' for m in t.memory)})")
            if region.kind == "ram":
                uc.mem_write(s.paddr, s.data)
                self.loaded_ram.append((s.paddr, s.paddr + len(s.data)))
            elif engine is None:
                uc.mem_write(s.paddr, s.data)

        # The model's I/O descriptor and its inputs (concatenated in self.input).
        desc = read_io_desc(lambda a, n: uc.mem_read(a, n), self.sym("tb_io_desc"),
                            shown(self.elf_path, 200))
        self.num_layers = desc.num_layers
        desc.check_input(self.input, shown(self.elf_path.name))
        tensors = [("input", *io) for io in desc.inputs] + [("output", *io) for io in desc.outputs]
        for name, addr, size in tensors:
            reg = t.region_of(addr)
            if size and (reg is None or addr + size > reg.end):
                raise TinybuildError(f"{shown(self.elf_path, 200)}: tb_io_desc {name} 0x{addr:08x}+{size} is outside the memory map")
        self.outputs = desc.outputs
        self.arena_addr, self.arena_size = desc.arena, desc.arena_size
        self.check_arena_reads()
        for addr, data in desc.input_parts(self.input):
            if data:
                uc.mem_write(addr, data)

        if engine is not None:           # the registers as they were before the first run
            uc.context_restore(engine.context)
            return
        # Reset.
        if img.arch == "arm":
            flash = t.regions("flash")
            vt = flash[0].origin if flash else 0
            sp, pc = struct.unpack("<II", bytes(uc.mem_read(vt, 8)))
            if not pc & 1:
                raise TinybuildError(f"{shown(self.elf_path, 200)}: reset vector 0x{pc:08x} at 0x{vt + 4:08x} is not a Thumb address")
            uc.reg_write(self.reg_sp, sp)
            self.start = pc
            self.pc0 = pc & ~1
        else:
            sp = self.sym("__stack_end__", required=False)
            if sp is not None:
                uc.reg_write(self.reg_sp, sp)
            self.start = self.pc0 = img.entry
            sp = sp or 0
        self.sp0 = sp
        self.exit_addr = self.sym("tb_exit")
        self.mark_addr = self.sym("tb_mark")

    def span_prot(self, lo: int, hi: int) -> int:
        """Unicorn's protection for the mapped span [lo, hi): RAM that holds
        no code is not executable. Unicorn 2.1.4 sends every store to an
        executable page through notdirty_write -> tb_invalidate_phys_page_fast
        (a page look-up per store, even with no code on the page: 151 k per
        kws run) and skips that on pages mapped without UC_PROT_EXEC. Code in
        RAM still runs: a span that holds (or is the load or run address of)
        an executable segment, or any flash, stays executable."""
        import unicorn as U
        flash = any(r.kind != "ram" and r.origin < hi and lo < r.end for r in self.target.memory)
        code = any(s.executable and s.memsz and min(s.paddr, s.vaddr) < hi
                   and lo < max(s.paddr, s.vaddr) + s.memsz for s in self.img.segments)
        return U.UC_PROT_ALL if flash or code else U.UC_PROT_READ | U.UC_PROT_WRITE

    def hooks(self):
        import unicorn as U
        uc, tb = self.uc, self.tables
        c = native.Counters()
        c.prev_end = self.pc0
        c.base = tb.base
        c.nhw = tb.nhw
        c.cum_n = tb.cum_n.ctypes.data
        c.cum_c = tb.cum_c.ctypes.data
        c.fresh_adj = tb.fresh_adj.ctypes.data
        c.taken_penalty = tb.model.taken_penalty
        c.max_insns = max(0, int(self.max_instructions))
        c.pen_half_odd, c.pen_word_half, c.pen_word_byte = tb.model.misaligned_penalty
        c.trap_misaligned = int(tb.model.traps_misaligned)
        c.pc_id = self.reg_pc
        self.counters = c
        native.add_block_hook(uc, c)
        c.count_misaligned = int(self.detail)
        if self.static_watch():
            self.add_static_watch(c)
        elif self.detail:
            native.add_mem_hook(uc, c)
        if self.memory is not None:
            self.add_memory_model(c)

        reg_a0 = self.reg_a0
        self.current = current = _Current(self)      # the run the hooks report to (a kept engine's next)

        def on_mark(uc_, address, size, user):
            if c.trap_misaligned and c.misaligned:
                return          # the run stops at the trap: this block runs after it
            run = current.run
            mark = uc_.reg_read(reg_a0)
            run.marks.append((mark, c.insns, c.cycles, c.mem_cycles))
            for i in run.pending.pop(mark, ()):
                _, offset, nbytes = run.arena_reads[i]
                run.copies[i] = bytes(uc_.mem_read(run.arena_addr + offset, nbytes))

        if self.layer_profile:
            uc.hook_add(U.UC_HOOK_CODE, on_mark, begin=self.mark_addr, end=self.mark_addr)

        def on_invalid(uc_, access, address, size, value, user):
            current.run.fault = (access, address, size)
            return False

        uc.hook_add(U.UC_HOOK_MEM_INVALID, on_invalid)

    def add_memory_model(self, c: native.Counters) -> None:
        """Set up the memory model's caches in ``c``: instruction fetches are
        charged by the block hook inside the flash region that holds the
        text, data reads by a hook on the flash regions only."""
        m = self.memory
        flash = self.target.regions("flash")
        text = self.target.region_of(self.tables.base) or flash[0]
        c.mm_on = 1
        c.flash_lo, c.flash_hi = text.origin, text.end
        c.line_shift = m.line_bytes.bit_length() - 1
        c.miss_cycles = m.wait_states(self.target.clock_hz)
        c.prefetch = int(m.prefetch)
        c.last_iline = (1 << 64) - 2                 # nothing fetched yet: no line is "next"
        self.cache_tags = [np.full(max(1, k.lines), 0xFFFFFFFF, dtype=np.uint32)
                           for k in (m.icache, m.dcache)]
        if m.unified:
            self.cache_tags[1] = self.cache_tags[0]
        for cache, spec, tags in ((c.icache, m.icache, self.cache_tags[0]),
                                  (c.dcache, m.dcache, self.cache_tags[1])):
            cache.tags, cache.sets, cache.ways = tags.ctypes.data, max(1, spec.sets), spec.ways
        if len(flash) > len(c.flash_ranges):
            raise TinybuildError(f"target {shown(self.target.name)}: the memory model handles at most "
                                 f"{len(c.flash_ranges)} flash regions")
        from unicorn import UC_MEM_READ
        c.read_type, c.nflash = UC_MEM_READ, len(flash)
        for i, region in enumerate(flash):
            c.flash_ranges[i][0], c.flash_ranges[i][1] = region.origin, region.end
            if not self.detail and not self.static_watch():   # else a watch sees every access
                native.add_flash_read_hook(self.uc, c, region.origin, region.end)

    def static_watch(self) -> bool:
        """Whether this run watches data accesses statically (something needs
        watching and the watch is "static")."""
        return self.access_watch == "static" and (self.detail or self.memory is not None)

    # Hooked instructions closer than this share one code hook. Unicorn's
    # helper_uc_tracecode walks every code hook on each instruction inside
    # any hook's range, so fewer, wider hooks win until the ranges take in
    # hot loops: helper_uc_tracecode's share of the report run (perf, cortex-m4)
    # at 64 / 256 / 1024 / 4096 bytes: vww_96_int8 16.5 / 9.2 / 7.6 / 23%,
    # pretrainedResnet_quant 8.5 / 4.6 / 4.7%.
    HOOK_GAP = 256

    def add_static_watch(self, c: native.Counters) -> None:
        """The static access watch (native_hook.c): per-block resolution, code
        hooks on the accesses no block resolves."""
        tb = self.tables
        self.access_arrays = (np.zeros(tb.nhw, dtype=np.uint8),      # hooked
                              np.zeros(tb.nhw, dtype=np.uint64))     # compiled blocks
        hooked, progs = self.access_arrays
        c.static_on = 1
        c.insn, c.hooked, c.progs = tb.access.ctypes.data, hooked.ctypes.data, progs.ctypes.data
        ids = self.register_ids()
        c.nregs, c.pc_reg = len(ids), (15 if self.img.arch == "arm" else -1)
        for r, reg_id in enumerate(ids):
            c.reg_ids[r] = reg_id
        native.call("tb_scan", c)
        hooked[self.extra_hooks] = 1
        native.add_access_hooks(self.uc, c, self.hook_ranges(np.flatnonzero(hooked == 1)))

    def register_ids(self) -> list[int]:
        """Unicorn's ids of the registers the decoder numbers: r0..r15 on
        Cortex-M, x0..x31 on RV32."""
        if self.img.arch == "arm":
            from unicorn import arm_const as A
            return [A.UC_ARM_REG_R0 + r for r in range(13)] + [
                A.UC_ARM_REG_SP, A.UC_ARM_REG_LR, A.UC_ARM_REG_PC]
        from unicorn import riscv_const as R
        return [R.UC_RISCV_REG_X0 + r for r in range(32)]

    def hook_ranges(self, halfwords: np.ndarray) -> list[tuple[int, int]]:
        """Address ranges covering ``halfwords``, neighbours within HOOK_GAP merged."""
        ranges: list[tuple[int, int]] = []
        for i in halfwords.tolist():
            a = self.tables.base + 2 * i
            if ranges and a - ranges[-1][1] <= self.HOOK_GAP:
                ranges[-1] = (ranges[-1][0], a + 2)
            else:
                ranges.append((a, a + 2))
        return ranges

    def static_shortfall(self) -> str:
        """Why the static watch's counts of the run just made are not exact
        ("" when they are, or the run did not use it): an access that needed
        a code hook it did not have, or an instruction the decoder does not
        model."""
        c = self.counters
        if not self.static_watch():
            return ""
        if c.unmodelled:
            return f"unmodelled memory instruction at 0x{c.unmodelled_at:08x}"
        if c.missing:
            return f"{c.missing} accesses without a code hook"
        return ""

    def cycle_model(self) -> str:
        core = self.tables.model.name
        if self.memory is None:
            return core
        return f"{core} + {self.memory.name} ({self.memory.wait_states(self.target.clock_hz)}-cycle " \
               f"line miss)"

    # -- run --
    def execute(self) -> RunResult:
        # One emulation at a time per process: Unicorn instances are not safe to
        # run side by side in threads (unicorn-engine/unicorn#636, #1355), and
        # `scons -j2` runs two simulate steps in two threads. Seen here: a run
        # stopped mid-layer, without error, when a second one started.
        with _EMULATION_LOCK:
            attempt = 0
            while True:
                try:
                    result = self._execute()
                finally:
                    if self.engine is None and hasattr(self, "counters"):
                        native.call("tb_release", self.counters)   # its compiled blocks
                if not self.static_shortfall():
                    if self.engine is not None:
                        self.engine.keep()
                    return result
                if self.engine is not None:
                    self.engine.release()
                attempt += 1
                self.redo(last_static=attempt == 2)

    def redo(self, last_static: bool) -> None:
        """Prepare another attempt: the accesses that lacked a code hook get
        one; an unmodelled memory instruction, or a second shortfall, means
        the every-access watch (exact, slow)."""
        hooked = self.access_arrays[0]
        if self.counters.unmodelled or last_static:
            self.access_watch = "hook"
        self.extra_hooks = np.union1d(self.extra_hooks, np.flatnonzero(hooked == 2))
        self.marks, self.copies, self.fault = [], {}, None

    def engine_key(self) -> tuple:
        """What decides an engine's hooks and counters' setup: runs with the
        same key can share one engine (and its translations)."""
        st = os.stat(self.elf_path)
        return (str(self.elf_path.resolve()), st.st_mtime_ns, st.st_size, repr(self.target),
                self.layer_profile, self.access_watch, self.static_watch() or self.detail,
                tuple(self.extra_hooks.tolist()))

    def start_engine(self) -> _Engine | None:
        """A kept engine for this run (taken out of the cache while it runs), or
        a new one (None: set up here)."""
        self.pending: dict[int, list[int]] = {}           # mark id -> indices into arena_reads
        for i, (mark, _, _) in enumerate(self.arena_reads):
            self.pending.setdefault(mark, []).append(i)
        # (a subclass may add hooks of its own that a kept engine lacks)
        key = self.engine_key() if REUSE_ENGINES and type(self) is _Run else None
        engine = _ENGINES.pop(key, None)
        if engine is None:
            self.reusable = key is not None
            self.setup()
            self.hooks()
            return _Engine(key, self) if self.reusable else None
        engine.attach(self)
        self.load_image(engine)
        return engine

    def _execute(self) -> RunResult:
        import unicorn as U
        self.engine = None
        engine = self.start_engine()
        t0, cpu0 = time.perf_counter(), time.thread_time()
        err = None
        try:
            self.uc.emu_start(self.start, self.exit_addr, timeout=int(self.timeout_s * 1e6), count=0)
        except U.UcError as e:
            err = e
        wall = time.perf_counter() - t0
        self.emu_cpu_seconds = time.thread_time() - cpu0      # host CPU time (bench/sim_speed.py)
        pc = self.uc.reg_read(self.reg_pc)
        c = self.counters
        if self.static_watch() and c.last_block != self.exit_addr:   # (a block at tb_exit did not run)
            native.call("tb_flush_accesses", c)        # the last block's accesses
        native.call("tb_release_caches", c)            # (compiled blocks: execute)
        if c.trap_misaligned and c.misaligned:        # (first: the trap came before any fault)
            raise TinybuildError(
                f"firmware fault: misaligned {c.first_misaligned_size}-byte access at "
                f"0x{c.first_misaligned:08x}, which the {self.tables.model.name} core traps on "
                f"(at {self.context(c.first_misaligned_pc or pc)})")
        if err is not None:
            self.raise_fault(err, pc)
        if pc != self.exit_addr:
            if c.limit_hit:
                raise TinybuildError(
                    f"runaway firmware: stopped after {c.insns:,} instructions "
                    f"(max_instructions={self.max_instructions:,}) without reaching tb_exit; "
                    f"{self.context(pc)}")
            if wall >= self.timeout_s * 0.99:
                raise TinybuildError(
                    f"runaway firmware: host time limit of {self.timeout_s:g} s reached after "
                    f"{c.insns:,} instructions without reaching tb_exit; {self.context(pc)}")
            raise TinybuildError(f"simulation stopped before tb_exit; {self.context(pc)}")
        # A realboard UART model's ROM stubs (io=uart, realboard.attach_rom) run one block per call.
        if c.oob_blocks > len(getattr(self.console, "rom_calls", ())):
            raise TinybuildError(
                f"the firmware executed {c.oob_blocks} blocks ({c.oob_bytes} bytes) outside its "
                f"decoded text (code in RAM?); the unicorn simulator cannot count them exactly")
        exit_code = self.uc.reg_read(self.reg_a0)
        exit_code = exit_code - (1 << 32) if exit_code & 0x80000000 else exit_code
        result = self.result(wall, exit_code)
        self.engine = engine                          # kept if exact (a failed run's is dropped)
        return result

    def raise_fault(self, err, pc: int):
        import unicorn as U
        kinds = {
            U.UC_MEM_READ_UNMAPPED: "read of unmapped memory",
            U.UC_MEM_WRITE_UNMAPPED: "write to unmapped memory",
            U.UC_MEM_FETCH_UNMAPPED: "instruction fetch from unmapped memory",
            U.UC_MEM_WRITE_PROT: "write to write-protected memory",
            U.UC_MEM_READ_PROT: "read of read-protected memory",
            U.UC_MEM_FETCH_PROT: "instruction fetch from non-executable memory",
        }
        if self.fault is not None:
            access, address, size = self.fault
            if access == U.UC_MEM_FETCH_UNMAPPED:
                pc = address
            what = f"{kinds.get(access, f'memory fault (access {access})')} at 0x{address:08x} (size {size})"
            overflow = self.stack_overflow(access, address)
            if overflow:
                what = f"{overflow}: {what}"
        elif err.errno == U.UC_ERR_INSN_INVALID:
            what = "invalid instruction"
        elif err.errno == U.UC_ERR_EXCEPTION:
            what = "unhandled CPU exception (e.g. UDF, BKPT, SVC or a usage fault)"
        else:
            what = f"unicorn error: {err}"
        raise TinybuildError(f"firmware fault: {what}; {self.context(pc)}") from None

    # A data access this far below the stack's lowest address counts as the
    # stack running off its end (a frame or a local array reaches at most
    # this far past the end before touching it).
    STACK_GUARD = 64 * 1024

    def stack_overflow(self, access: int, address: int) -> str:
        """"stack overflow ..." if the faulting access is the stack running off its
        bottom (the address just below ``__stack_start__`` or SP already below it)."""
        import unicorn as U
        lo = self.sym("__stack_start__", required=False)
        hi = self.sym("__stack_end__", required=False)
        if lo is None or hi is None or access in (U.UC_MEM_FETCH_UNMAPPED, U.UC_MEM_FETCH_PROT):
            return ""
        sp = self.uc.reg_read(self.reg_sp)
        if lo - self.STACK_GUARD <= address < lo or (sp < lo and address < hi and sp - 4096 <= address):
            return (f"stack overflow (SP=0x{sp:08x}; the stack is {hi - lo:,} bytes, "
                    f"0x{lo:08x}..0x{hi:08x}; reserve more with -Wl,--defsym=STACK_SIZE=<bytes> "
                    f"in the target's ldflags)")
        return ""

    def result(self, wall: float, exit_code: int) -> RunResult:
        uc, c = self.uc, self.counters
        output = b"".join(bytes(uc.mem_read(a, n)) for a, n in self.outputs if n)
        layers: list[LayerProfile] = []
        marks = self.marks
        begin = next((i for i, m in enumerate(marks) if m[0] == 0), None)
        end = None if begin is None else next(
            (i for i in range(begin + 1, len(marks)) if marks[i][0] == MARK_END), None)
        if begin is not None and end is not None and end > begin:
            for a, b in zip(marks[begin:end], marks[begin + 1:end + 1]):
                layers.append(LayerProfile(index=a[0], instructions=b[1] - a[1], cycles=b[2] - a[2],
                                           memory_cycles=b[3] - a[3]))
            inf_insns = marks[end][1] - marks[begin][1]
            inf_cycles = marks[end][2] - marks[begin][2]
            inf_memory = marks[end][3] - marks[begin][3]
        else:
            inf_insns, inf_cycles, inf_memory = c.insns, c.cycles, c.mem_cycles
        ram_touched, arena_touched = self.ram_touched()
        peak = self.peak_stack()
        lo, hi = self.sym("__stack_start__", required=False), self.sym("__stack_end__", required=False)
        if lo is not None and hi is not None and hi > lo and peak >= hi - (lo & ~3):
            # The lowest stack word was written: on a board whose stack does not
            # sit at the bottom of a RAM, an overflow corrupts memory instead of faulting.
            raise TinybuildError(
                f"stack overflow: the firmware wrote the lowest word of its {hi - lo:,}-byte stack "
                f"(0x{lo:08x}..0x{hi:08x}), so it used all of it and most likely more; reserve more "
                f"with -Wl,--defsym=STACK_SIZE=<bytes> in the target's ldflags "
                f"(firmware {shown(self.elf_path.name)}, target {self.target.name})")
        return RunResult(
            simulator="unicorn", output=output,
            instructions=inf_insns, cycles=inf_cycles, layers=layers,
            total_instructions=c.insns, total_cycles=c.cycles,
            peak_stack_bytes=peak, ram_touched_bytes=ram_touched,
            arena_touched_bytes=arena_touched,
            wall_seconds=wall, exit_code=exit_code, cycle_model=self.cycle_model(),
            misaligned_accesses=c.misaligned if self.detail else -1,
            memory_model=self.memory.name if self.memory else "", memory_cycles=inf_memory,
            memory_label=self.memory.label if self.memory else "",
            console=self.console.decode("latin-1"))

    def peak_stack(self) -> int:
        lo = self.sym("__stack_start__", required=False)
        hi = self.sym("__stack_end__", required=False)
        if lo is None or hi is None:
            reg = self.target.region_of(self.sp0 - 1) if self.sp0 else None
            if reg is None:
                return 0
            lo, hi = reg.origin, self.sp0
        lo &= ~3
        n = (hi - lo) // 4
        if n <= 0:
            return 0
        words = np.frombuffer(bytes(self.uc.mem_read(lo, n * 4)), dtype="<u4")
        changed = np.flatnonzero(words != PATTERN_WORD)
        if changed.size == 0:
            return 0
        return hi - (lo + 4 * int(changed[0]))

    def ram_touched(self) -> tuple[int, int]:
        """(RAM bytes touched, of those inside the planned arena)."""
        total = arena = 0
        a_lo, a_hi = self.arena_addr, self.arena_addr + self.arena_size
        for r in self.ram:
            mem = np.frombuffer(bytes(self.uc.mem_read(r.origin, r.length)), dtype=np.uint8)
            pat = np.resize(np.frombuffer(PATTERN, dtype=np.uint8), r.length)
            touched = mem != pat
            for a, b in self.loaded_ram:
                lo, hi = max(a, r.origin), min(b, r.end)
                if lo < hi:
                    touched[lo - r.origin: hi - r.origin] = True
            total += int(touched.sum())
            lo, hi = max(a_lo, r.origin), min(a_hi, r.end)
            if lo < hi:
                arena += int(touched[lo - r.origin: hi - r.origin].sum())
        return total, arena
