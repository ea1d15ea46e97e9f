"""The Renode backend (sim/renode): the generated platform (.repl) and script
(.resc) checked against the ELF and its linker map, the driver against a
stand-in `renode`, and a real run where Renode is on PATH."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import struct
import sys
from pathlib import Path

import pluggy
import pytest

from tinybuild import hookspecs
from tinybuild.errors import TinybuildError

from sim.renode import simulator as R

FAKE = Path(__file__).with_name("fake_renode") / "fake_renode.py"
ROOT = Path(__file__).resolve().parents[2]


def parse_repl(text: str) -> dict[str, dict]:
    """{name: {"type", "at", "props"}} from a platform description."""
    entries: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        m = re.match(r"^(\w+): ([\w.]+) @ (.+)$", line)
        if m:
            current = entries[m.group(1)] = {"type": m.group(2), "at": m.group(3), "props": {}}
            continue
        m = re.match(r"^    (\w+): (.+)$", line)
        if m and current is not None:
            current["props"][m.group(1)] = m.group(2)
            continue
        m = re.match(r"^    (\w+) -> (\w+)@(\d+)$", line)          # an interrupt connection
        assert m and current is not None, f"unexpected line {line!r}"
        current.setdefault("irq", {})[m.group(1)] = (m.group(2), int(m.group(3)))
    return entries


def map_memory(map_text: str) -> dict[str, tuple[int, int]]:
    """The linker map's "Memory Configuration" table: {name: (origin, length)}."""
    block = map_text.split("Memory Configuration", 1)[1].split("Linker script and memory map", 1)[0]
    out = {}
    for m in re.finditer(r"^(\w+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)", block, re.M):
        if m.group(1) != "Name":
            out[m.group(1)] = (int(m.group(2), 16), int(m.group(3), 16))
    return out


def map_symbol(map_text: str, name: str) -> int:
    m = re.search(rf"^\s+0x([0-9a-f]+)\s+{name}(?: = .*)?$", map_text, re.M)
    assert m, name
    return int(m.group(1), 16)


def memories(entries):
    return {n: (int(e["at"].split()[1], 16), int(e["props"]["size"], 16))
            for n, e in entries.items() if e["type"] == "Memory.MappedMemory"}


# -- plugin -------------------------------------------------------------------------------


def test_plugin_registers_the_simulator(target, monkeypatch):
    from sim.renode import plugin

    pm = pluggy.PluginManager("tinybuild")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin)
    sims = [s for group in pm.hook.tinybuild_simulators() for s in group]
    assert [s.name for s in sims] == ["renode"]
    assert sims[0].supports(target)
    monkeypatch.setenv("PATH", "/nonexistent")
    ok, status = sims[0].available()
    assert not ok and "renode is not on PATH" in status and "Renode 1.15.3" in status
    with pytest.raises(TinybuildError, match=r"^sim=renode: renode is not on PATH; get Renode 1\.15\.3"):
        sims[0].run(Path("firmware.elf"), target, b"")


# -- the version --------------------------------------------------------------------------


@pytest.mark.parametrize("text,version", [
    ("Renode, version 1.15.3.29366 (6c3ff5fa-202410021410)", (1, 15, 3)),
    ("Renode v1.15.3.xxxx", (1, 15, 3)),
    ("some log line\nRenode, version 1.13.3.27141 (0bd7bd7d-202304281400)\n", (1, 13, 3)),
    ("1.16", (1, 16, 0)),
    ("v1.15.2", (1, 15, 2)),
    ("Unexpected options detected: --version\n\nusage: Renode.exe [options] [script]", None),
    ("Renode (development build)", None),
    ("mono 6.12.0.200 crashed", None),
    ("", None)])
def test_parse_version(text, version):
    assert R.parse_version(text) == version


def test_available_reports_the_version(fake_renode):
    ok, status = R.RenodeSimulator().available()
    assert ok and status.startswith("Renode, version 1.15.3.29366") and str(fake_renode) in status


def test_an_old_renode_is_refused_in_one_line(make_fake_renode, mps2, build_mps2):
    """Renode 1.13.3 has no `cpu SetRegister`: refused before any script runs."""
    binary = make_fake_renode("Renode, version 1.13.3.27141 (0bd7bd7d-202304281400)")
    ok, status = R.RenodeSimulator().available()
    assert not ok and status.startswith(f"Renode 1.13.3 at {binary} is too old")
    assert "needs Renode 1.15.2 or newer" in status
    with pytest.raises(TinybuildError) as err:
        R.RenodeSimulator().run(build_mps2("test_model", ["test_model.c"]), mps2, bytes(64))
    message = str(err.value)
    assert message.startswith("sim=renode: Renode 1.13.3 at ") and "\n" not in message
    assert "needs Renode 1.15.2 or newer (1.15.3 is tested; https://github.com/renode/renode/releases)" in message


def test_the_minimum_version_runs(make_fake_renode, mps2, build_mps2):
    make_fake_renode("Renode v1.15.2.1234")
    assert R.RenodeSimulator().available()[0]
    r = R.RenodeSimulator().run(build_mps2("test_model", ["test_model.c"]), mps2, bytes(range(64)))
    assert r.simulator == "renode" and len(r.layers) == 4


@pytest.mark.parametrize("printed,quoted", [
    ("Unexpected options detected: --version", "Unexpected options detected: --version"),
    ("Renode \x1b[2J(dev)", "Renode \\x1b[2J(dev)"),        # an escape code is shown, not sent
    ("", "nothing")])
def test_an_unreadable_version_is_refused_clearly(make_fake_renode, mps2, build_mps2, printed, quoted):
    make_fake_renode(printed)
    ok, status = R.RenodeSimulator().available()
    assert not ok and status.startswith("cannot read a version from `")
    with pytest.raises(TinybuildError) as err:
        R.RenodeSimulator().run(build_mps2("test_model", ["test_model.c"]), mps2, bytes(64))
    message = str(err.value)
    assert message.startswith("sim=renode: cannot read a version from `") and "\n" not in message
    assert f'--version` (it printed "{quoted}"); tinybuild needs Renode 1.15.2 or newer' in message
    assert "\x1b" not in message


def _doctor_lines(capsys) -> tuple[dict[str, str], dict[str, str]]:
    """`tinybuild doctor`'s target rows and simulator rows, by first word."""
    from tinybuild import cli

    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    targets = out.split("\ntargets:\n", 1)[1].split("\nsimulators:\n", 1)
    rows = lambda text: {line.split()[0]: line for line in text.splitlines()[1:] if line.strip()}
    return rows(targets[0]), rows(targets[1])


@pytest.mark.parametrize("version,usable", [("Renode, version 1.15.3.29366 (6c3ff5fa-202410021410)", True),
                                            ("Renode, version 1.13.3.27141 (0bd7bd7d-202304281400)", False),
                                            ("Unexpected options detected: --version", False)])
def test_doctor_says_whether_renode_can_run(make_fake_renode, capsys, version, usable):
    make_fake_renode(version)
    boards, simulators = _doctor_lines(capsys)
    assert simulators["renode"].split()[1] == ("yes" if usable else "no")
    for board in ("cortex-m4", "riscv", "mps2-an386"):
        assert ("renode (not usable here)" in boards[board]) == (not usable)
        assert "unicorn" in boards[board] and "renode" in boards[board]
    if not usable:
        assert "needs Renode 1.15.2 or newer" in simulators["renode"]


# -- the platform --------------------------------------------------------------------------


@pytest.mark.parametrize("board", ["stm32f407", "mps2"])
def test_repl_memories_match_the_linker_map(board, target, mps2, build_arm, build_mps2):
    tgt, build = (target, build_arm) if board == "stm32f407" else (mps2, build_mps2)
    elf = build("test_model", ["test_model.c"])
    entries = parse_repl(R.platform_repl(tgt))
    mems = memories(entries)
    linker = map_memory(elf.with_suffix(".map").read_text())
    # one MappedMemory per linker-script region, at its origin, of its length
    assert {n.upper(): v for n, v in mems.items()} == {n: v for n, v in linker.items() if n != "*default*"}
    # every allocated section of the ELF lies inside one of them
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as f:
        for sec in ELFFile(f).iter_sections():
            if sec["sh_flags"] & 2 and sec["sh_size"]:
                lo, hi = sec["sh_addr"], sec["sh_addr"] + sec["sh_size"]
                assert any(o <= lo and hi <= o + n for o, n in mems.values()), sec.name
    cpu, nvic = entries["cpu"], entries["nvic"]
    assert cpu["type"] == "CPU.CortexM" and cpu["at"] == "sysbus"
    assert cpu["props"]["cpuType"] == '"cortex-m4"' and cpu["props"]["nvic"] == "nvic"
    assert int(cpu["props"]["PerformanceInMips"]) == tgt.clock_hz // 1_000_000
    assert nvic["at"] == "sysbus 0xE000E000" and nvic["irq"] == {"IRQ": ("cpu", 0)}
    assert int(nvic["props"]["systickFrequency"]) == tgt.clock_hz


def test_repl_for_a_riscv_board(target):
    from dataclasses import replace
    from tinybuild.target import MemoryRegion

    rv = replace(target, name="rv", arch="riscv32", cpu="e31", cflags=("-march=rv32imac", "-mabi=ilp32"),
                 clock_hz=108_000_000, memory=(MemoryRegion("FLASH", 0x08000000, 128 * 1024, "flash"),
                                               MemoryRegion("RAM", 0x20000000, 32 * 1024 + 100, "ram")))
    entries = parse_repl(R.platform_repl(rv))
    assert entries["cpu"]["type"] == "CPU.RiscV32"
    assert entries["cpu"]["props"]["cpuType"] == '"rv32imac_zicsr_zifencei"'
    assert "nvic" not in entries
    assert memories(entries)["ram"] == (0x20000000, 0x9000)     # rounded up to whole 4 KiB pages


# -- the script -----------------------------------------------------------------------------


def _resc_commands(text: str) -> tuple[list[str], dict[str, str]]:
    """Top-level commands and the `set name` + \"\"\"...\"\"\" blocks of a script."""
    commands, blocks = [], {}
    lines = iter(text.splitlines())
    for line in lines:
        m = re.match(r'^set (\w+)$', line)
        if m:
            assert next(lines) == '"""'
            body = []
            for inner in lines:
                if inner == '"""':
                    break
                body.append(inner)
            blocks[m.group(1)] = "\n".join(body)
        elif line and not line.startswith("#"):
            commands.append(line)
    return commands, blocks


def test_resc_addresses_come_from_the_elf_and_map(tmp_path, mps2, build_mps2):
    elf = build_mps2("test_model", ["test_model.c"])
    map_text = elf.with_suffix(".map").read_text()
    plan = R.RunPlan(elf, mps2)
    resc = R.write_run_files(plan, tmp_path, bytes(64), 10_000_000)
    commands, blocks = _resc_commands(resc.read_text())
    assert commands[:4] == ["using sysbus", 'mach create "tinybuild"',
                            f"machine LoadPlatformDescription @{tmp_path.resolve() / 'board.repl'}",
                            f"sysbus LoadELF @{tmp_path.resolve() / 'firmware.elf'}"]
    assert (tmp_path / "firmware.elf").read_bytes() == elf.read_bytes()   # a copy: no user path in the script
    assert commands[-3:] == ['emulation RunFor "0.400000"', "python $tb_limit_report", "quit"]
    assert parse_repl((tmp_path / "board.repl").read_text())           # the platform is there too
    loads = {Path(m.group(1)).name: int(m.group(2), 16) for m in
             (re.match(r"sysbus LoadBinary @(\S+) 0x(\w+)$", c) for c in commands) if m}
    # painted first, then the input over the painted arena
    assert list(loads) == ["stack_paint.bin", "arena_paint.bin", "input0.bin"]
    stack_lo, stack_hi = map_symbol(map_text, "__stack_start__"), map_symbol(map_text, "__stack_end__")
    desc = map_symbol(map_text, "tb_io_desc")
    # tb_io_desc's words, read from the ELF by hand: magic, layers, arena, size, inputs, outputs,
    # then input 0's address and size, output 0's address and size
    with open(elf, "rb") as f:
        from elftools.elf.elffile import ELFFile
        e = ELFFile(f)
        sec = next(s for s in e.iter_sections() if s["sh_addr"] <= desc < s["sh_addr"] + s["sh_size"])
        words = struct.unpack("<10I", sec.data()[desc - sec["sh_addr"]: desc - sec["sh_addr"] + 40])
    assert words[4:6] == (1, 1) and loads["input0.bin"] == words[6]
    assert loads["stack_paint.bin"] == stack_lo
    assert loads["arena_paint.bin"] == words[2]
    assert (tmp_path / "stack_paint.bin").stat().st_size == stack_hi - stack_lo
    assert (tmp_path / "arena_paint.bin").stat().st_size == words[3]
    assert (tmp_path / "input0.bin").read_bytes() == bytes(64)
    hooks = {c.split()[3]: int(c.split()[2], 16) for c in commands if c.startswith("cpu AddHook")}
    assert hooks == {"$tb_mark_hook": map_symbol(map_text, "tb_mark"),
                     "$tb_exit_hook": map_symbol(map_text, "tb_exit")}
    # the reset vector: SP and PC from the vector table at the code SSRAM's start
    vt = struct.unpack("<II", elf.read_bytes()[0x1000:0x1008])       # .isr_vector is the first segment
    assert f"cpu VectorTableOffset 0x00000000" in commands
    assert f"cpu SetRegister 13 0x{vt[0]:08X}" in commands and vt[0] == stack_hi
    assert f"cpu PC 0x{vt[1] & ~1:08X}" in commands
    # the hooks read what tb_io_desc names, and are valid Python
    exit_hook = blocks["tb_exit_hook"]
    assert f"ReadBytes(0x{words[8]:X}, {words[9]})" in exit_hook
    assert f"ReadBytes(0x{words[2]:X}, {words[3]})" in exit_hook
    for name, body in blocks.items():
        compile(body, name, "exec")
        assert "results.txt" in body


def test_user_paths_never_become_monitor_commands(tmp_path, mps2, build_mps2):
    """An ELF path with a newline and a monitor command stays data: the script
    names only the copy in its own folder, and a folder Renode would misread
    is refused."""
    evil = tmp_path / "m\nquit\n$x.elf"
    evil.write_bytes(build_mps2("test_model", ["test_model.c"]).read_bytes())
    work = tmp_path / "work"
    work.mkdir()
    commands, _ = _resc_commands(R.write_run_files(R.RunPlan(evil, mps2), work, bytes(64), 1000).read_text())
    assert commands.count("quit") == 1 and commands[-1] == "quit"
    assert not any("$x" in c for c in commands)
    spaced = tmp_path / "a b"
    spaced.mkdir()
    with pytest.raises(TinybuildError, match=r"^sim=renode: the temporary folder .*a b.* set TMPDIR"):
        R.write_run_files(R.RunPlan(evil, mps2), spaced, bytes(64), 1000)


def test_run_for_covers_the_instruction_limit(mps2, target, model_elf, build_mps2):
    plan = R.RunPlan(build_mps2("test_model", ["test_model.c"]), mps2)
    assert plan.run_for_seconds(2_000_000_000) == 80.0               # 25 MIPS
    assert R.RunPlan(model_elf, target).run_for_seconds(168_000_000) == 1.0


def test_results_become_a_run_result(mps2, build_mps2):
    plan = R.RunPlan(build_mps2("test_model", ["test_model.c"]), mps2)
    data = R.parse_results("TB_MARK 100\nTB_MARK 150\nTB_MARK 400\nTB_EXIT 420\nTB_OUTPUT 00ff10\n"
                           f"TB_STACK {plan.stack_hi - 96}\nTB_ARENA 80\nTB_DONE\n")
    r = R.RenodeSimulator().result(plan, data, 0.5, False, "", 60, 10**9)
    assert r.output == b"\x00\xff\x10" and r.instructions == 300 and r.total_instructions == 420
    assert [(l.index, l.instructions) for l in r.layers] == [(0, 50), (1, 250)]
    assert r.peak_stack_bytes == 96 and r.arena_touched_bytes == 80
    assert r.cycle_model.startswith("renode")
    full = R.parse_results(f"TB_MARK 1\nTB_MARK 2\nTB_EXIT 3\nTB_OUTPUT 00\nTB_STACK {plan.stack_lo}\nTB_DONE\n")
    with pytest.raises(TinybuildError, match=r"stack overflow: .*lowest word of its 4,096-byte stack"):
        R.RenodeSimulator().result(plan, full, 0.5, False, "", 60, 10**9)
    with pytest.raises(TinybuildError, match=r"runaway.*123,456 instructions.*PC=0x000002e4 in .*layer 0"):
        R.RenodeSimulator().result(plan, R.parse_results("TB_MARK 5\nTB_LIMIT 740 123456\n"), 1, False, "",
                                   60, 1000)


# -- the driver, with a stand-in renode ---------------------------------------------------


@pytest.fixture
def make_fake_renode(monkeypatch, tmp_path):
    """make_fake_renode(version_text=None) puts a `renode` first on PATH that runs
    fake_renode/fake_renode.py with this Python and prints version_text for
    `--version` (None: what Renode 1.15.3 prints); returns its path. Each call
    makes a new file, so a cached version of an earlier one does not apply."""
    made = []

    def make(version_text: str | None = None) -> Path:
        bin_dir = tmp_path / f"fake_bin{len(made)}"
        bin_dir.mkdir()
        version = "" if version_text is None else f"FAKE_RENODE_VERSION={shlex.quote(version_text)} "
        (bin_dir / "renode").write_text(f'#!/bin/sh\n{version}exec "{sys.executable}" "{FAKE}" "$@"\n')
        (bin_dir / "renode").chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        made.append(bin_dir / "renode")
        return made[-1]

    monkeypatch.setenv("FAKE_RENODE_ROOT", str(ROOT))
    return make


@pytest.fixture
def fake_renode(make_fake_renode) -> Path:
    """A stand-in Renode 1.15.3 first on PATH (see make_fake_renode)."""
    return make_fake_renode()


def test_driver_stops_renode_once_tb_exit_reported(fake_renode, monkeypatch, mps2, build_mps2, tmp_path):
    from sim.unicorn.simulator import UnicornSimulator

    # The fake idles 30 s after reporting, far less than the host time limit:
    # only the driver can have stopped it (a signal), not the limit.
    log = tmp_path / "fake_renode.log"
    monkeypatch.setenv("FAKE_RENODE_LOG", str(log))
    elf = build_mps2("test_model", ["test_model.c"])
    r = R.RenodeSimulator().run(elf, mps2, bytes(range(64)), timeout_s=600)
    assert log.read_text() == f"stopped by signal {signal.SIGTERM.value}\n"
    u = UnicornSimulator().run(elf, mps2, bytes(range(64)))
    assert r.output == u.output and r.instructions == u.instructions
    assert [l.instructions for l in r.layers] == [l.instructions for l in u.layers]
    assert r.peak_stack_bytes == u.peak_stack_bytes and r.arena_touched_bytes == u.arena_touched_bytes


def test_driver_reports_a_runaway(fake_renode, monkeypatch, mps2, build_mps2):
    monkeypatch.setenv("FAKE_RENODE_MODE", "runaway")
    elf = build_mps2("test_model", ["test_model.c"])
    with pytest.raises(TinybuildError, match="runaway firmware: stopped after 123,456 instructions"):
        R.RenodeSimulator().run(elf, mps2, bytes(64), max_instructions=1000)


def test_driver_host_time_limit(monkeypatch, mps2, build_mps2, tmp_path):
    # a "renode" that never reports
    slow = tmp_path / "bin"
    slow.mkdir()
    (slow / "renode").write_text('#!/bin/sh\ncase "$1" in --version) echo "Renode v1.15.3.1"; exit 0;; esac\n'
                                 "sleep 30\n")
    (slow / "renode").chmod(0o755)
    monkeypatch.setenv("PATH", f"{slow}{os.pathsep}{os.environ['PATH']}")
    elf = build_mps2("test_model", ["test_model.c"])
    with pytest.raises(TinybuildError, match=r"host time limit of 0.5 s"):
        R.RenodeSimulator().run(elf, mps2, bytes(64), timeout_s=0.5)


# -- the real thing -------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("renode") is None, reason="renode not on PATH")
@pytest.mark.parametrize("board", ["stm32f407", "mps2"])
def test_renode_run_agrees_with_unicorn(board, target, mps2, build_arm, build_mps2):
    from sim.unicorn.simulator import UnicornSimulator

    tgt, build = (target, build_arm) if board == "stm32f407" else (mps2, build_mps2)
    elf = build("test_model", ["test_model.c"])
    inp = bytes(range(64))
    r = R.RenodeSimulator().run(elf, tgt, inp, timeout_s=300)
    u = UnicornSimulator().run(elf, tgt, inp)
    assert r.output == u.output
    assert r.instructions == u.instructions
    assert [l.instructions for l in r.layers] == [l.instructions for l in u.layers]
    assert r.peak_stack_bytes == u.peak_stack_bytes
