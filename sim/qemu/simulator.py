"""QEMU backend (``sim=qemu``): runs a firmware ELF on a board QEMU emulates.

Used as the independent second opinion on the default simulator's
instruction counts: the same ELF runs in both (mps2-an386, hifive1, and the
cortex-m4 target's own ELF on -M netduinoplus2, an STM32F405).

How a run works (Debian 12's QEMU 7.2 here; any QEMU from 4.2 with TCG
plugins enabled):

- ``qemu-system-<arch> -M <machine> -kernel firmware.elf`` with
  ``-icount shift=0`` (deterministic: the virtual clock advances one
  nanosecond per instruction, no host-time dependence) and Arm semihosting
  (``-semihosting-config enable=on,target=native``) routed to a file.
- Each input tensor is placed where ``tb_io_desc`` says before reset by QEMU's
  generic loader (``-device loader,file=...,addr=...,force-raw=on``).
- The firmware's ``tb_exit`` (the target's startup code overrides the
  runtime's weak one) writes ``TB_STACK <addr>`` (the lowest stack word no
  longer holding the paint its Reset_Handler put there) and
  ``TB_OUTPUT <hex>`` (every output, in order) and exits through semihosting SYS_EXIT_EXTENDED; a
  fault handler writes ``TB_FAULT pc=...``. (The stack cannot be painted
  from outside: QEMU's ELF loader zero-fills the NOLOAD stack segment and
  refuses a second ROM blob over it.) A board whose startup does not paint
  its stack (cortex-m4: painting would add instructions to the whole run)
  sets ``stack_from_stores``: the counting plugin then records the lowest
  store into the stack before tb_exit, which is the same word.
- Instructions are counted by a TCG plugin of our own (tb_count.c, built once
  with the host C compiler and cached like the unicorn hook): an inline add
  per executed instruction, a snapshot at every ``tb_mark``, the count at
  ``tb_exit``, an instruction limit and the last block's address. Debian's
  QEMU is built with ``--enable-plugins`` (``-plugin`` works and the
  ``qemu_plugin_*`` API is exported) but ships neither the example plugins
  (``libinsn.so``) nor ``qemu-plugin.h``, hence our own file. The
  alternative, ``-d exec,nochain`` (a log line per executed block), managed
  about 5 M instructions/s and 12 bytes of log per instruction here, before
  any parsing; gdbstub single-stepping is slower still.

Counting conventions, which make the figures equal to unicorn's: the whole
run counts from the firmware's reset handler (the reset vector, or the ELF
entry; a boot ROM QEMU runs first is not counted) to the first instruction
of ``tb_exit`` (not included; unicorn stops there); per-inference and
per-layer counts are differences of the ``tb_mark`` snapshots, so where
exactly a snapshot is taken cancels out.
Instructions that an IT block skips are counted (the core spends a cycle on
each; unicorn's per-block count includes them too).

QEMU has no timing model: ``cycles`` is the icount clock, one per
instruction (``RunResult.cycle_model`` says so).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tinybuild.codegen import read_io_desc
from tinybuild.errors import TinybuildError, shown
from tinybuild.target import LayerProfile, RunResult, Target

from sim.unicorn.simulator import ElfImage, load_elf

PLUGIN_SOURCE = Path(__file__).with_name("tb_count.c")
MARK_END = 0xFFFFFFFF
FAULT_EXIT_CODE = 0xFA
CYCLE_MODEL = "qemu icount (shift=0: 1 cycle per instruction; QEMU has no timing model)"


@dataclass(frozen=True)
class QemuBoard:
    """How QEMU runs one tinybuild target."""

    binary: str                    # e.g. "qemu-system-arm"
    machine: str                   # -M value
    arch: str                      # Target.arch it runs
    extra_args: tuple[str, ...] = ()
    semihosting: str = "arm"       # calling convention of tb_exit's semihosting
    start_at_entry: bool = False   # set the PC to the ELF entry (skip the board's boot ROM)
    # Peak stack from the counting plugin's lowest store into the stack, for
    # firmware whose startup does not paint its stack (so no TB_STACK line).
    stack_from_stores: bool = False
    # (origin, bytes) of the memory the machine maps, for the check that every
    # part of the ELF lands in it; empty: not checked.
    memory: tuple[tuple[int, int], ...] = ()
    # Why an io=uart firmware (docs/realboard.md) cannot run here; empty: it can.
    no_uart: str = ""


# Targets QEMU runs, by tinybuild target name. Another plugin may add its own
# with register_board() (e.g. a board whose startup code semihosts like
# targets/mps2_an386/startup_mps2_an386.c).
BOARDS: dict[str, QemuBoard] = {
    "mps2-an386": QemuBoard("qemu-system-arm", "mps2-an386", "arm"),
    # The cortex-m4 target's own ELF (STM32F407) on QEMU's STM32F405: the same
    # flash at 0x08000000 (aliased at 0, where the core fetches its vector
    # table) and SRAM at 0x20000000 (192 KiB there, 128 KiB on the F407), but no
    # CCM at 0x10000000 (`info mtree`), so nothing may be placed there.
    "cortex-m4": QemuBoard("qemu-system-arm", "netduinoplus2", "arm", stack_from_stores=True,
                           memory=((0x0800_0000, 1024 * 1024), (0x2000_0000, 192 * 1024)),
                           no_uart="its RCC is not modelled (reads 0), so tb_board_init's clock "
                                   "setup would wait for the PLL forever"),
    # SiFive HiFive1 Rev B: the revb mask ROM at 0x1000 jumps to 0x20010000,
    # the ELF's entry (targets/hifive1/); the ROM's instructions are not counted.
    "hifive1": QemuBoard("qemu-system-riscv32", "sifive_e,revb=on", "riscv32", semihosting="riscv"),
}

# QEMU's generic RV32 board: 32 MiB NOR flash at 0x20000000 (the ELF's code and
# constants are written into it), RAM at 0x80000000. Its reset ROM at 0x1000
# would jump to the start of RAM, so the generic loader sets the PC to the
# ELF entry instead (-device loader,addr=<entry>,cpu-num=0). No built-in
# tinybuild target has this memory map; tests/sim registers it for its RV32
# test board, a plugin may for its own.
RISCV32_VIRT = QemuBoard("qemu-system-riscv32", "virt", "riscv32", extra_args=("-bios", "none"),
                         semihosting="riscv", start_at_entry=True)


def register_board(target_name: str, board: QemuBoard) -> None:
    BOARDS[target_name] = board


# -- the counting plugin -------------------------------------------------------------


def _compiler() -> str | None:
    for cand in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cand and shutil.which(cand):
            return cand
    return None


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tinybuild"


def plugin_path() -> Path:
    cc = _compiler() or "cc"
    digest = hashlib.sha256(PLUGIN_SOURCE.read_bytes() + cc.encode()).hexdigest()[:16]
    return _cache_dir() / f"tb_qemu_count-{digest}.so"


def build_plugin() -> Path:
    """Compile tb_count.c unless the cache already holds this version."""
    out = plugin_path()
    if out.exists():
        return out
    cc = _compiler()
    if cc is None:
        raise TinybuildError("the qemu simulator needs a host C compiler to build its counting "
                             "plugin: install one (e.g. `apt install gcc`) or set CC")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.stem, suffix=".so.tmp", dir=out.parent)
    os.close(fd)
    cmd = [cc, "-O2", "-shared", "-fPIC", "-o", tmp, str(PLUGIN_SOURCE)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        os.unlink(tmp)
        raise TinybuildError(f"building the QEMU counting plugin failed ({' '.join(cmd)}):\n"
                             f"{proc.stderr.strip()}")
    os.replace(tmp, out)
    return out


# -- ELF helpers ---------------------------------------------------------------------


def read_static(img: ElfImage, addr: int, size: int) -> bytes:
    """Bytes at ``addr`` as the ELF's loadable segments initialise them."""
    for s in img.segments:
        if s.vaddr <= addr and addr + size <= s.vaddr + len(s.data):
            return s.data[addr - s.vaddr: addr - s.vaddr + size]
    raise TinybuildError(f"{img.path}: 0x{addr:08x}+{size} is not initialised data in the ELF")


def semihosts(img: ElfImage) -> bool:
    """Whether any function of the firmware makes an Arm semihosting call
    (BKPT 0xAB) or the RISC-V one (slli zero,zero,0x1f; ebreak; srai zero,zero,7)."""
    for start, end, name in img.funcs:
        try:
            code = read_static(img, start, end - start) if end > start else b""
        except TinybuildError:
            continue
        if img.arch == "arm":
            if any(code[i:i + 2] == b"\xab\xbe" for i in range(0, len(code) - 1, 2)):
                return True
        elif b"\x13\x10\xf0\x01\x73\x00\x10\x00" in code:
            return True
    return False


# -- the simulator -------------------------------------------------------------------


class QemuSimulator:
    name = "qemu"

    def supports(self, target: Target) -> bool:
        board = BOARDS.get(target.name)
        return board is not None and board.arch == target.arch

    def available(self) -> tuple[bool, str]:
        binaries = sorted({b.binary for b in BOARDS.values()})
        found = [b for b in binaries if shutil.which(b)]
        if not found:
            return False, (f"{' / '.join(binaries)} not on PATH; Debian/Ubuntu: "
                           "sudo apt-get install qemu-system-arm qemu-system-misc")
        try:
            proc = subprocess.run([found[0], "--version"], capture_output=True, text=True, timeout=20)
            version = proc.stdout.splitlines()[0].strip() if proc.stdout else "unknown version"
            helptext = subprocess.run([found[0], "-help"], capture_output=True, text=True,
                                      timeout=20).stdout
        except (OSError, subprocess.SubprocessError) as e:
            return False, f"{found[0]} does not run: {e}"
        if "-plugin" not in helptext:
            return False, f"{version}: built without TCG plugin support (-plugin), cannot count instructions"
        if not plugin_path().exists() and _compiler() is None:
            return False, f"{version}, but no host C compiler to build the counting plugin (install gcc or set CC)"
        missing = [b for b in binaries if b not in found]
        note = f"; missing {', '.join(missing)}" if missing else ""
        return True, f"{version}; boards: {', '.join(sorted(BOARDS))}{note}"

    def run(self, elf: Path, target: Target, input_bytes: bytes, *,
            max_instructions: int = 2_000_000_000, timeout_s: float = 600.0) -> RunResult:
        board = BOARDS.get(target.name)
        if board is None:
            raise TinybuildError(f"sim=qemu: no QEMU machine for target {target.name}; QEMU runs "
                                 f"{', '.join(sorted(BOARDS))}")
        return _QemuRun(Path(elf), target, board, bytes(input_bytes), max_instructions,
                        timeout_s).execute()


class _QemuRun:
    def __init__(self, elf: Path, target: Target, board: QemuBoard, input_bytes: bytes,
                 max_instructions: int, timeout_s: float):
        if not elf.exists():
            raise TinybuildError(f"firmware ELF not found: {elf}")
        self.elf, self.target, self.board = elf, target, board
        self.input = input_bytes
        self.max_instructions = int(max_instructions)
        self.timeout_s = timeout_s
        self.img = load_elf(elf)
        if self.img.arch != target.arch:
            raise TinybuildError(f"{elf} is a {self.img.arch} ELF but target {target.name} is {target.arch}")

    def sym(self, name: str) -> int:
        v = self.img.symbols.get(name)
        if v is None:
            raise TinybuildError(f"{self.elf} has no symbol `{name}`: is it a tinybuild firmware?")
        return v

    def context(self, pc: int, marks: int) -> str:
        layer = ("before the first layer (startup)" if marks == 0 else
                 f"layer {marks - 1}" if marks <= self.num_layers else "after the last layer")
        return (f"PC=0x{pc:08x} in {self.img.symbol_at(pc)}, during {layer} "
                f"(firmware {self.elf.name}, target {self.target.name}, sim=qemu)")

    def command(self, work: Path, plugin: Path) -> list[str]:
        b = self.board
        desc = read_io_desc(lambda a, n: read_static(self.img, a, n), self.sym("tb_io_desc"),
                            str(self.elf))
        self.num_layers = desc.num_layers
        desc.check_input(self.input, self.elf.name)
        self.check_memory_map()
        if self.board.no_uart and "tb_board_init" in self.img.symbols:
            raise TinybuildError(f"sim=qemu: an io=uart firmware does not run on QEMU's "
                                 f"{self.board.machine}: {self.board.no_uart}; use sim=unicorn "
                                 f"(its UART model) for io=uart on {self.target.name}")
        if not semihosts(self.img):
            raise TinybuildError(
                f"{self.elf.name} makes no semihosting call, so QEMU cannot return the output or "
                f"stop it; the target's startup code must override tb_exit as "
                f"targets/mps2_an386/startup_mps2_an386.c does")
        args = [b.binary, "-M", b.machine, *b.extra_args, "-display", "none", "-monitor", "none",
                "-serial", f"file:{work / 'serial.txt'}", "-nodefaults",   # io=uart's console
                "-chardev", f"file,id=tbsemi,path={work / 'semihosting.txt'}",
                "-semihosting-config", "enable=on,target=native,chardev=tbsemi",
                "-icount", "shift=0", "-kernel", str(self.elf)]
        if b.start_at_entry:
            args += ["-device", f"loader,addr=0x{self.img.entry:x},cpu-num=0"]
        for i, (addr, data) in enumerate(desc.input_parts(self.input)):
            if data:
                (work / f"input{i}.bin").write_bytes(data)
                args += ["-device", f"loader,file={work / f'input{i}.bin'},addr=0x{addr:x},force-raw=on"]
        self.stack_end = self.img.symbols.get("__stack_end__")
        limit = max(0, self.max_instructions)
        extra = (f",stack_lo=0x{self.sym('__stack_start__'):x},stack_hi=0x{self.sym('__stack_end__'):x}"
                 if b.stack_from_stores else "")
        handler = self.img.symbols.get("Fault_Handler")       # the shared semihosting one
        extra += f",fault=0x{handler:x}" if handler is not None else ""
        args += ["-plugin", f"{plugin},mark=0x{self.sym('tb_mark'):x},exit=0x{self.sym('tb_exit'):x},"
                            f"start=0x{self.reset_pc():x},limit={limit},out={work / 'counts.txt'}{extra}"]
        return args

    def check_memory_map(self) -> None:
        """One line, before QEMU starts, if part of the ELF lies where the
        machine has no memory (e.g. CCM on netduinoplus2): QEMU would fault."""
        mapped = self.board.memory
        for seg in self.img.segments if mapped else ():
            if not any(o <= seg.vaddr and seg.vaddr + seg.memsz <= o + n for o, n in mapped):
                region = self.target.region_of(seg.vaddr)
                where = f" ({region.name})" if region else ""
                have = ", ".join(f"0x{o:08x}..0x{o + n:08x}" for o, n in mapped)
                raise TinybuildError(
                    f"sim=qemu: {shown(self.elf.name)} puts {seg.memsz:,} B at 0x{seg.vaddr:08x}{where}, "
                    f"which QEMU's {self.board.machine} does not have (it maps {have}); keep code in "
                    f"flash and data and stack in SRAM, or use sim=unicorn")

    def reset_pc(self) -> int:
        """Where the firmware's own code starts: the reset vector (Arm M-profile,
        from the vector table at the first flash region) or the ELF entry."""
        if self.img.arch == "arm":
            flash = self.target.regions("flash")
            vt = flash[0].origin if flash else 0
            return struct.unpack("<II", read_static(self.img, vt, 8))[1] & ~1
        return self.img.entry

    def fault_message(self, fault: re.Match, counts: dict, marks: int) -> str:
        pc, lr, cfsr, bfar, mmfar = (int(x, 16) for x in fault.groups()[:5])
        what = describe_cfsr(cfsr, bfar, mmfar)
        lo, hi = self.img.symbols.get("__stack_start__"), self.img.symbols.get("__stack_end__")
        sp = int(fault.group(6), 16) if fault.group(6) else None
        if pc == 0 and sp is not None and lo is not None and hi is not None and sp < lo:
            # No frame (stacking it faulted): where the firmware was is the
            # block the plugin saw run last before the fault handler.
            block = counts.get("fault_block", -1)
            where = (f"near {self.context(block, marks)}" if block >= 0 else
                     f"(firmware {shown(self.elf.name)}, target {self.target.name}, sim=qemu)")
            return (f"firmware fault: stack overflow (SP=0x{sp:08x}; the stack is {hi - lo:,} bytes, "
                    f"0x{lo:08x}..0x{hi:08x}; reserve more with -Wl,--defsym=STACK_SIZE=<bytes> in the "
                    f"target's ldflags): {what}; {where}")
        return f"firmware fault: {what}; {self.context(pc, marks)} (LR=0x{lr:08x})"

    def lowest_stack_word(self, semi: str, counts: dict) -> int | None:
        """The lowest stack word the firmware wrote: from its TB_STACK line (a
        painted stack) or the plugin's lowest store (None: not measured)."""
        if self.board.stack_from_stores:
            low = counts.get("stack_low", -1)
            return low & ~3 if low >= 0 else None
        s = re.search(r"TB_STACK ([0-9a-f]{8})", semi)
        return int(s.group(1), 16) if s else None

    def execute(self) -> RunResult:
        if not shutil.which(self.board.binary):
            raise TinybuildError(f"sim=qemu: {self.board.binary} not found; Debian/Ubuntu: "
                                 "sudo apt-get install qemu-system-arm qemu-system-misc")
        plugin = build_plugin()
        with tempfile.TemporaryDirectory(prefix="tb_qemu_") as tmp:
            work = Path(tmp)
            cmd = self.command(work, plugin)
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            timed_out = False
            try:
                out, err = proc.communicate(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                proc.send_signal(signal.SIGTERM)      # QEMU shuts down; the plugin writes its counts
                try:
                    out, err = proc.communicate(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    out, err = proc.communicate()
            wall = time.perf_counter() - t0
            semi = (work / "semihosting.txt").read_text(errors="replace") \
                if (work / "semihosting.txt").exists() else ""
            counts = parse_counts(work / "counts.txt")
            serial = work / "serial.txt"
            self.console = serial.read_bytes().decode("latin-1") if serial.exists() else ""
        return self.result(proc.returncode, out + err, semi, counts, wall, timed_out, cmd)

    def result(self, rc, qemu_output, semi, counts, wall, timed_out, cmd) -> RunResult:
        marks = counts.get("marks", []) if counts else []
        last_pc = counts.get("last_pc", 0) if counts else 0
        if counts is None:
            raise TinybuildError(
                f"QEMU ended (exit status {rc}) without the counting plugin's results; "
                f"command: {' '.join(cmd)}\n{qemu_output.strip()[-2000:]}")
        fault = re.search(r"TB_FAULT pc=([0-9a-f]{8}) lr=([0-9a-f]{8}) cfsr=([0-9a-f]{8}) "
                          r"bfar=([0-9a-f]{8}) mmfar=([0-9a-f]{8})(?: sp=([0-9a-f]{8}))?", semi)
        if fault:
            raise TinybuildError(self.fault_message(fault, counts, len(marks)))
        if counts.get("limit_hit"):
            raise TinybuildError(
                f"runaway firmware: stopped after {counts['insns']:,} instructions "
                f"(max_instructions={self.max_instructions:,}) without reaching tb_exit; "
                f"{self.context(last_pc, len(marks))}")
        if timed_out:
            raise TinybuildError(
                f"runaway firmware: host time limit of {self.timeout_s:g} s reached after "
                f"{counts['insns']:,} instructions without reaching tb_exit; "
                f"{self.context(last_pc, len(marks))}")
        m = re.search(r"TB_OUTPUT ([0-9a-f]*)\n", semi)
        if counts.get("exit", -1) < 0 or m is None:
            raise TinybuildError(
                f"QEMU stopped (exit status {rc}) before tb_exit reported the output; "
                f"{self.context(last_pc, len(marks))}\n{qemu_output.strip()[-2000:]}")
        output = bytes.fromhex(m.group(1))
        total = counts["exit"] - max(0, counts.get("start", -1))
        layers: list[LayerProfile] = []
        if len(marks) >= 2:
            ids = list(range(len(marks) - 1))
            for i, (a, b) in enumerate(zip(marks, marks[1:])):
                layers.append(LayerProfile(index=ids[i], instructions=b - a, cycles=b - a))
            inference = marks[-1] - marks[0]
        else:
            inference = total
        peak = 0
        low = self.lowest_stack_word(semi, counts)
        if low is not None and self.stack_end:
            peak = max(0, self.stack_end - low)
            lo = self.img.symbols.get("__stack_start__")
            if lo is not None and low <= lo:
                raise TinybuildError(
                    f"stack overflow: the firmware wrote the lowest word of its {self.stack_end - lo:,}-byte "
                    f"stack (0x{lo:08x}..0x{self.stack_end:08x}), so it used all of it and most likely "
                    f"more (QEMU's {self.board.machine} raised no fault below it); reserve more with "
                    f"-Wl,--defsym=STACK_SIZE=<bytes> in the target's ldflags "
                    f"(firmware {self.elf.name}, target {self.target.name}, sim=qemu)")
        return RunResult(simulator="qemu", output=output, instructions=inference, cycles=inference,
                         layers=layers, total_instructions=total, total_cycles=total,
                         peak_stack_bytes=peak, ram_touched_bytes=0, wall_seconds=wall,
                         exit_code=rc if rc < 128 else rc - 256, cycle_model=CYCLE_MODEL,
                         console=self.console)


def parse_counts(path: Path) -> dict | None:
    if not path.exists():
        return None
    lines = path.read_text().split("\n")
    data: dict = {}
    i = 0
    while i < len(lines):
        parts = lines[i].split()
        i += 1
        if len(parts) != 2:
            continue
        key, value = parts[0], int(parts[1])
        if key == "marks":
            data["marks"] = [int(x) for x in lines[i:i + value]]
            i += value
        else:
            data[key] = value
    return data


def describe_cfsr(cfsr: int, bfar: int, mmfar: int) -> str:
    """The Configurable Fault Status Register in words (ARMv7-M ARM B3.2.15:
    MemManage bits 0-7, BusFault bits 8-15, UsageFault bits 16-31)."""
    bits = []
    if cfsr & (1 << 15):                                   # BFARVALID
        bits.append(f"bus fault at 0x{bfar:08x}")
    elif cfsr & (1 << 10):                                 # IMPRECISERR
        bits.append("imprecise bus fault")
    elif cfsr & 0xFF00:
        bits.append("bus fault")
    if cfsr & (1 << 7):                                    # MMARVALID
        bits.append(f"memory management fault at 0x{mmfar:08x}")
    elif cfsr & 0xFF:
        bits.append("memory management fault")
    usage = {16: "undefined instruction", 17: "invalid state (e.g. not Thumb)",
             18: "invalid exception return", 19: "coprocessor disabled",
             24: "unaligned access", 25: "divide by zero"}
    bits += [text for bit, text in usage.items() if cfsr & (1 << bit)]
    if cfsr & (1 << 12) or cfsr & (1 << 4):                # STKERR, MSTKERR
        bits.append("while stacking (stack overflow?)")
    return ", ".join(bits) or f"hard fault (CFSR=0x{cfsr:08x})"
