"""Renode backend (``sim=renode``): runs a firmware ELF in Antmicro's Renode.

From the Target description (never from a board name) it writes, into a
temporary folder per run:

- ``board.repl``: a Renode platform with one ``Memory.MappedMemory`` per
  memory region of the target (so a Cortex-M4 target's CCM RAM is there too,
  which Renode's own ``platforms/cpus/stm32f4.repl`` lacks), the CPU
  (``CPU.CortexM`` with its NVIC at 0xE000E000, or ``CPU.RiscV32``) and
  ``PerformanceInMips`` = the target's clock in MHz (one instruction per
  cycle: Renode's virtual time is instructions / MIPS);
- ``run.resc``: creates the machine, loads the platform and the ELF
  (``sysbus LoadELF``), paints the stack and the arena with the same word the
  other simulators use (``sysbus LoadBinary``), places each input tensor where
  ``tb_io_desc`` says, points the core at the reset vector, adds a Python
  hook on ``tb_mark`` (appends ``cpu.ExecutedInstructions`` to a results
  file) and on ``tb_exit`` (appends the count, the outputs read with
  ``SystemBus.ReadBytes``, one after the other, the stack's low-water mark and the arena bytes
  touched, then halts the core), runs for at most ``max_instructions``
  instructions of virtual time (``emulation RunFor``, blocking), writes the
  PC if it got there without reaching ``tb_exit``, and quits.

Renode runs headless: ``renode --disable-gui --console --plain run.resc``.
The host watches the results file and stops Renode as soon as ``tb_exit`` has
reported (so a halted core does not have to wait out the rest of the virtual
time), or when ``timeout_s`` host seconds have passed.

Version: Renode 1.15.3 runs these scripts unmodified (its instruction counts
equal unicorn's); before 1.15.2 the monitor has no ``cpu SetRegister``, so
``renode --version`` is read first and an older (or unreadable) version stops
the run with one line naming the minimum, and shows as unusable in
``tinybuild simulators``.

Figures: instructions from ``ExecutedInstructions`` (per inference and per
layer as differences of the ``tb_mark`` snapshots, as for QEMU); cycles =
instructions (Renode has no pipeline timing model); peak stack and arena
touched by painting. Renode does not fault on unmapped accesses (it logs
them and reads 0), so a wild pointer shows as wrong output or a runaway.

Renode cannot be installed on the machines this was written on: the
generated files are tested against the ELF and its linker map, the driver
against a stand-in ``renode`` (tests/sim/fake_renode/), and the real run only
where ``renode`` is on PATH (see docs/simulators.md for a CI step that
installs Renode's portable release).
"""
from __future__ import annotations

import functools
import math
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from tinybuild.codegen import read_io_desc
from tinybuild.errors import TinybuildError, shown
from tinybuild.target import LayerProfile, RunResult, Target

from sim.unicorn.simulator import ARM_M_CPUS, PATTERN, PATTERN_WORD, ElfImage, load_elf

PAGE = 0x1000
NVIC_BASE = 0xE000E000
CYCLE_MODEL = "renode (no timing model: 1 cycle per instruction)"
RENODE_CPU_TYPES = {"cortex-m0": "cortex-m0", "cortex-m0plus": "cortex-m0+", "cortex-m0+": "cortex-m0+",
                    "cortex-m3": "cortex-m3", "cortex-m4": "cortex-m4", "cortex-m7": "cortex-m7",
                    "cortex-m23": "cortex-m23", "cortex-m33": "cortex-m33", "cortex-m55": "cortex-m55",
                    "cortex-m85": "cortex-m85"}


def _ident(name: str) -> str:
    s = re.sub(r"[^0-9A-Za-z_]", "_", name).lower()
    return s if s and not s[0].isdigit() else f"m_{s}"


def _round_page(n: int) -> int:
    return (n + PAGE - 1) // PAGE * PAGE


def _rv_cpu_type(target: Target) -> str:
    march = next((f.split("=", 1)[1] for f in target.cflags if f.startswith("-march=")), "rv32imac")
    base = march.split("_")[0]
    return f"{base}_zicsr_zifencei"


# -- the platform (.repl) ------------------------------------------------------------


def platform_repl(target: Target) -> str:
    """A Renode platform description for ``target``, from its memory map and CPU."""
    lines = [f"// tinybuild: Renode platform for target {target.name} ({target.board}),",
             "// generated from the target's memory map; do not edit.", ""]
    used = set()
    for r in target.memory:
        name = _ident(r.name)
        while name in used or name in ("cpu", "nvic", "sysbus"):
            name += "_"
        used.add(name)
        lines += [f"{name}: Memory.MappedMemory @ sysbus 0x{r.origin:08X}",
                  f"    size: 0x{_round_page(r.length):X}", ""]
    mips = max(1, round(target.clock_hz / 1e6))
    if target.arch == "arm":
        cpu_type = RENODE_CPU_TYPES.get(target.cpu.lower(), target.cpu.lower())
        lines += [f"nvic: IRQControllers.NVIC @ sysbus 0x{NVIC_BASE:08X}",
                  "    priorityMask: 0xF0",
                  f"    systickFrequency: {target.clock_hz}",
                  "    IRQ -> cpu@0", "",
                  "cpu: CPU.CortexM @ sysbus",
                  f'    cpuType: "{cpu_type}"',
                  "    nvic: nvic",
                  f"    PerformanceInMips: {mips}", ""]
    elif target.arch == "riscv32":
        lines += ["cpu: CPU.RiscV32 @ sysbus",
                  f'    cpuType: "{_rv_cpu_type(target)}"',
                  "    privilegedArchitecture: PrivilegedArchitecture.Priv1_10",
                  "    timeProvider: empty",
                  f"    PerformanceInMips: {mips}", ""]
    else:
        raise TinybuildError(f"sim=renode: no Renode CPU for arch {target.arch} (target {target.name})")
    return "\n".join(lines)


# -- the script (.resc) ------------------------------------------------------------------


def _static(img: ElfImage, addr: int, size: int) -> bytes:
    for s in img.segments:
        if s.vaddr <= addr and addr + size <= s.vaddr + len(s.data):
            return s.data[addr - s.vaddr: addr - s.vaddr + size]
        if s.paddr <= addr and addr + size <= s.paddr + len(s.data):
            return s.data[addr - s.paddr: addr - s.paddr + size]
    raise TinybuildError(f"{shown(img.path, 160)}: 0x{addr:08x}+{size} is not initialised in the ELF")


class RunPlan:
    """Everything a Renode run of one ELF on one input needs to know."""

    def __init__(self, elf: Path, target: Target, input_size: int | None = None):
        self.elf = Path(elf).resolve()
        self.target = target
        self.img = load_elf(self.elf)
        if self.img.arch != target.arch:
            raise TinybuildError(f"{shown(elf, 160)} is a {self.img.arch} ELF but target {target.name} is "
                                 f"{target.arch}")
        sym = self.img.symbols
        for name in ("tb_io_desc", "tb_mark", "tb_exit"):
            if name not in sym:
                raise TinybuildError(f"{shown(elf, 160)} has no symbol `{name}`: is it a tinybuild firmware?")
        self.io = read_io_desc(lambda a, n: _static(self.img, a, n), sym["tb_io_desc"], shown(elf, 160))
        self.num_layers = self.io.num_layers
        self.arena_addr, self.arena_size = self.io.arena, self.io.arena_size
        self.mark_addr, self.exit_addr = sym["tb_mark"], sym["tb_exit"]
        self.stack_lo, self.stack_hi = sym.get("__stack_start__"), sym.get("__stack_end__")
        if target.arch == "arm":
            flash = target.regions("flash")
            self.vector_table = flash[0].origin if flash else 0
            self.reset_sp, pc = struct.unpack("<II", _static(self.img, self.vector_table, 8))
            self.reset_pc = pc & ~1
        else:
            self.vector_table = None
            self.reset_sp, self.reset_pc = self.stack_hi, self.img.entry

    def run_for_seconds(self, max_instructions: int) -> float:
        """Virtual time that executes ``max_instructions`` at the platform's MIPS."""
        mips = max(1, round(self.target.clock_hz / 1e6))
        return math.ceil(max_instructions / (mips * 1e6) * 1e6) / 1e6


def _set_block(name: str, lines: list[str]) -> str:
    """A monitor variable holding a multi-line (Python) script."""
    return f'set {name}\n"""\n' + "\n".join(lines) + '\n"""'


def monitor_safe(work: Path) -> Path:
    """``work``, if Renode's monitor can take it in ``@path`` arguments and
    Python string literals as it is (no spaces, quotes, ``$`` or newlines)."""
    if re.search(r"[^\w/.+\-]", str(work)):
        raise TinybuildError(f"sim=renode: the temporary folder {shown(work, 160)} has characters Renode's "
                             "monitor would read as syntax; set TMPDIR to a plain path")
    return work


def script_resc(plan: RunPlan, work: Path, max_instructions: int) -> str:
    """The Renode script of one run. Every file it names lives in ``work``
    (the ELF is copied there), so a path from the user never becomes
    monitor syntax."""
    work = monitor_safe(Path(work).resolve())
    results = work / "results.txt"
    t = plan.target
    out = [f"# tinybuild: run firmware.elf on target {t.name} in Renode; generated, do not edit.",
           "using sysbus",
           'mach create "tinybuild"',
           f"machine LoadPlatformDescription @{work / 'board.repl'}",
           f"sysbus LoadELF @{work / 'firmware.elf'}"]
    if plan.stack_lo is not None and plan.stack_hi is not None and plan.stack_hi > plan.stack_lo:
        out.append(f"sysbus LoadBinary @{work / 'stack_paint.bin'} 0x{plan.stack_lo:08X}")
    if plan.arena_size:
        out.append(f"sysbus LoadBinary @{work / 'arena_paint.bin'} 0x{plan.arena_addr:08X}")
    for i, (addr, size) in enumerate(plan.io.inputs):
        if size:
            out.append(f"sysbus LoadBinary @{work / f'input{i}.bin'} 0x{addr:08X}")
    if plan.vector_table is not None:
        out.append(f"cpu VectorTableOffset 0x{plan.vector_table:08X}")
    if plan.reset_sp is not None and t.arch == "arm":
        out.append(f"cpu SetRegister 13 0x{plan.reset_sp:08X}")      # SP
    out.append(f"cpu PC 0x{plan.reset_pc:08X}")
    mark_hook = [f"f = open(r'{results}', 'a')",
                 "f.write('TB_MARK %d\\n' % self.ExecutedInstructions)",
                 "f.close()"]
    exit_hook = [f"f = open(r'{results}', 'a')",
                 "f.write('TB_EXIT %d\\n' % self.ExecutedInstructions)",
                 "data = []",
                 *(f"data += list(machine.SystemBus.ReadBytes(0x{addr:X}, {size}))"
                   for addr, size in plan.io.outputs if size),
                 "f.write('TB_OUTPUT %s\\n' % ''.join(['%02x' % int(b) for b in data]))"]
    if plan.stack_lo is not None and plan.stack_hi is not None and plan.stack_hi > plan.stack_lo:
        n = (plan.stack_hi - plan.stack_lo) // 4
        exit_hook += [f"low = 0x{plan.stack_hi:X}",
                      f"for i in range({n}):",
                      f"    if machine.SystemBus.ReadDoubleWord(0x{plan.stack_lo:X} + 4 * i) != 0x{PATTERN_WORD:X}:",
                      f"        low = 0x{plan.stack_lo:X} + 4 * i",
                      "        break",
                      "f.write('TB_STACK %d\\n' % low)"]
    if plan.arena_size:
        exit_hook += [f"arena = machine.SystemBus.ReadBytes(0x{plan.arena_addr:X}, {plan.arena_size})",
                      f"paint = [{', '.join(str(b) for b in PATTERN)}]",
                      "touched = 0",
                      "for i in range(len(arena)):",
                      "    if int(arena[i]) != paint[i % 4]:",
                      "        touched += 1",
                      "f.write('TB_ARENA %d\\n' % touched)"]
    exit_hook += ["f.write('TB_DONE\\n')", "f.close()", "self.IsHalted = True"]
    limit_py = [f"f = open(r'{results}', 'a')",
                "cpu = monitor.Machine['sysbus.cpu']",
                "f.write('TB_LIMIT %d %d\\n' % (cpu.PC.RawValue, cpu.ExecutedInstructions))",
                "f.close()"]
    out += [_set_block("tb_mark_hook", mark_hook),
            f"cpu AddHook 0x{plan.mark_addr:08X} $tb_mark_hook",
            _set_block("tb_exit_hook", exit_hook),
            f"cpu AddHook 0x{plan.exit_addr:08X} $tb_exit_hook",
            _set_block("tb_limit_report", limit_py),
            f'emulation RunFor "{plan.run_for_seconds(max_instructions):.6f}"',
            "python $tb_limit_report",
            "quit", ""]
    return "\n".join(out)


def write_run_files(plan: RunPlan, work: Path, input_bytes: bytes, max_instructions: int) -> Path:
    """Write board.repl, run.resc and the binaries they load into ``work``;
    returns run.resc."""
    work = monitor_safe(Path(work).resolve())
    shutil.copyfile(plan.elf, work / "firmware.elf")
    (work / "board.repl").write_text(platform_repl(plan.target))
    if plan.stack_lo is not None and plan.stack_hi is not None and plan.stack_hi > plan.stack_lo:
        (work / "stack_paint.bin").write_bytes(PATTERN * ((plan.stack_hi - plan.stack_lo) // 4))
    if plan.arena_size:
        (work / "arena_paint.bin").write_bytes((PATTERN * (plan.arena_size // 4 + 1))[: plan.arena_size])
    for i, (_, data) in enumerate(plan.io.input_parts(input_bytes)):
        if data:
            (work / f"input{i}.bin").write_bytes(data)
    resc = work / "run.resc"
    resc.write_text(script_resc(plan, work, max_instructions))
    return resc


def parse_results(text: str) -> dict:
    data: dict = {"marks": []}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        key = parts[0]
        if key == "TB_MARK":
            data["marks"].append(int(parts[1]))
        elif key == "TB_OUTPUT":
            data["output"] = bytes.fromhex(parts[1] if len(parts) > 1 else "")
        elif key in ("TB_EXIT", "TB_STACK", "TB_ARENA"):
            data[key[3:].lower()] = int(parts[1])
        elif key == "TB_LIMIT":
            data["limit_pc"], data["limit_insns"] = int(parts[1]), int(parts[2])
        elif key == "TB_DONE":
            data["done"] = True
    return data


# -- the simulator -----------------------------------------------------------------------


# Renode before 1.15.2 has no `cpu SetRegister` (the generated script sets SP
# with it); 1.15.3 is the release the backend was run against.
MIN_VERSION = (1, 15, 2)
TESTED_VERSION = "1.15.3"
RELEASES = "https://github.com/renode/renode/releases"
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def renode_binary() -> str | None:
    return shutil.which("renode")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) from ``renode --version`` output, liberally:
    "Renode, version 1.15.3.12345 (hash-date)", "Renode v1.15.3.xxxx", "1.15"."""
    for line in text.splitlines():
        if "renode" in line.lower() or _VERSION.match(line.strip().lstrip("vV")):
            m = _VERSION.search(line)
            if m:
                return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    return None


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


@functools.lru_cache(maxsize=8)
def _version_output(binary: str, mtime_ns: int) -> str:
    """What ``renode --version`` prints (once per binary and modification)."""
    try:
        proc = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        raise TinybuildError(f"sim=renode: {shown(binary, 160)} --version does not run ({e})") from None
    return (proc.stdout + "\n" + proc.stderr).strip()


def renode_version(binary: str) -> tuple[tuple[int, int, int], str]:
    """(version, its first line), or a TinybuildError naming the minimum when
    the version is older than MIN_VERSION or cannot be read."""
    text = _version_output(binary, os.stat(binary).st_mtime_ns)
    version = parse_version(text)
    need = f"tinybuild needs Renode {_dotted(MIN_VERSION)} or newer ({TESTED_VERSION} is tested; {RELEASES})"
    if version is None:
        first = text.splitlines()[0] if text else "nothing"
        raise TinybuildError(f"sim=renode: cannot read a version from `{shown(binary, 160)} --version` "
                             f'(it printed "{shown(first)}"); {need}')
    if version < MIN_VERSION:
        raise TinybuildError(f"sim=renode: Renode {_dotted(version)} at {shown(binary, 160)} is too old "
                             f"(no `cpu SetRegister` before {_dotted(MIN_VERSION)}); {need}")
    return version, shown(text.splitlines()[0])


def usable_renode() -> tuple[str, str]:
    """(path, version line) of a Renode new enough to run tinybuild's
    scripts, or a TinybuildError saying what is missing."""
    binary = renode_binary()
    if binary is None:
        raise TinybuildError(f"sim=renode: renode is not on PATH; get Renode {TESTED_VERSION}'s portable "
                             f"Linux release from {RELEASES} (docs/simulators.md)")
    return binary, renode_version(binary)[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop Renode and whatever it started (it runs in a session of its own)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


class RenodeSimulator:
    name = "renode"

    def supports(self, target: Target) -> bool:
        if target.arch == "arm":
            return target.cpu.lower() in ARM_M_CPUS
        return target.arch == "riscv32"

    def available(self) -> tuple[bool, str]:
        try:
            binary, version = usable_renode()
        except TinybuildError as e:
            return False, str(e).removeprefix("sim=renode: ")
        return True, f"{version} ({shown(binary, 160)})"

    def run(self, elf: Path, target: Target, input_bytes: bytes, *,
            max_instructions: int = 2_000_000_000, timeout_s: float = 600.0) -> RunResult:
        binary, _ = usable_renode()
        plan = RunPlan(Path(elf), target)
        plan.io.check_input(input_bytes, shown(Path(elf).name))
        with tempfile.TemporaryDirectory(prefix="tb_renode_") as tmp:
            work = Path(tmp)
            resc = write_run_files(plan, work, bytes(input_bytes), max_instructions)
            cmd = [binary, "--disable-gui", "--console", "--plain", str(resc)]
            results = work / "results.txt"
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)
            timed_out = False
            while proc.poll() is None:
                if results.exists() and "TB_DONE" in results.read_text():
                    break
                if time.perf_counter() - t0 > timeout_s:
                    timed_out = True
                    break
                time.sleep(0.02)
            wall = time.perf_counter() - t0
            if proc.poll() is None:
                _stop(proc)
            log = proc.stdout.read() if proc.stdout else ""
            data = parse_results(results.read_text() if results.exists() else "")
        return self.result(plan, data, wall, timed_out, log, timeout_s, max_instructions)

    def result(self, plan: RunPlan, data: dict, wall: float, timed_out: bool, log: str,
               timeout_s: float, max_instructions: int) -> RunResult:
        marks = data["marks"]

        def where(pc: int | None) -> str:
            layer = ("before the first layer (startup)" if not marks else
                     f"layer {len(marks) - 1}" if len(marks) <= plan.num_layers else "after the last layer")
            at = f"PC=0x{pc:08x} in {plan.img.symbol_at(pc)}, " if pc is not None else ""
            return f"{at}during {layer} (firmware {shown(plan.elf.name)}, target {plan.target.name}, sim=renode)"

        if not data.get("done"):
            if "limit_pc" in data:
                raise TinybuildError(
                    f"runaway firmware: stopped after {data['limit_insns']:,} instructions "
                    f"(max_instructions={max_instructions:,}) without reaching tb_exit; "
                    f"{where(data['limit_pc'])}")
            if timed_out:
                raise TinybuildError(f"runaway firmware: host time limit of {timeout_s:g} s reached "
                                     f"without reaching tb_exit; {where(None)}")
            raise TinybuildError(f"Renode stopped before tb_exit reported; {where(None)}\n"
                                 f"{log.strip()[-3000:]}")
        total = data["exit"]
        layers = []
        for i, (a, b) in enumerate(zip(marks, marks[1:])):
            layers.append(LayerProfile(index=i, instructions=b - a, cycles=b - a))
        inference = marks[-1] - marks[0] if len(marks) >= 2 else total
        peak = plan.stack_hi - data["stack"] if "stack" in data and plan.stack_hi else 0
        if "stack" in data and plan.stack_lo is not None and data["stack"] <= plan.stack_lo:
            raise TinybuildError(
                f"stack overflow: the firmware wrote the lowest word of its "
                f"{plan.stack_hi - plan.stack_lo:,}-byte stack (0x{plan.stack_lo:08x}.."
                f"0x{plan.stack_hi:08x}), so it used all of it and most likely more (Renode does not "
                f"fault on unmapped accesses); reserve more with -Wl,--defsym=STACK_SIZE=<bytes> in "
                f"the target's ldflags; {where(None)}")
        return RunResult(simulator="renode", output=data.get("output", b""), instructions=inference,
                         cycles=inference, layers=layers, total_instructions=total, total_cycles=total,
                         peak_stack_bytes=max(0, peak), ram_touched_bytes=0,
                         arena_touched_bytes=data.get("arena", 0), wall_seconds=wall,
                         exit_code=0, cycle_model=CYCLE_MODEL)
