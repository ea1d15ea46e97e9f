"""The Renode backend (sim/renode): the generated platform (.repl) and script
(.resc) checked against the ELF and its linker map, the driver against a
stand-in `renode`, and a real run where Renode is on PATH."""
from __future__ import annotations

import os
import re
import shutil
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
    assert not ok and "renode not on PATH" in status and "releases" in status


def test_available_reports_the_version(fake_renode):
    ok, status = R.RenodeSimulator().available()
    assert ok and status.startswith("Renode, version 0.0.0")


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
                            f"sysbus LoadELF @{elf.resolve()}"]
    assert commands[-3:] == ['emulation RunFor "0.400000"', "python $tb_limit_report", "quit"]
    assert parse_repl((tmp_path / "board.repl").read_text())           # the platform is there too
    loads = {Path(m.group(1)).name: int(m.group(2), 16) for m in
             (re.match(r"sysbus LoadBinary @(\S+) 0x(\w+)$", c) for c in commands) if m}
    # painted first, then the input over the painted arena
    assert list(loads) == ["stack_paint.bin", "arena_paint.bin", "input.bin"]
    stack_lo, stack_hi = map_symbol(map_text, "__stack_start__"), map_symbol(map_text, "__stack_end__")
    desc = map_symbol(map_text, "tb_io_desc")
    # tb_io_desc's words, read from the ELF by hand: magic, layers, input, size, output, size, arena, size
    with open(elf, "rb") as f:
        from elftools.elf.elffile import ELFFile
        e = ELFFile(f)
        sec = next(s for s in e.iter_sections() if s["sh_addr"] <= desc < s["sh_addr"] + s["sh_size"])
        words = struct.unpack("<8I", sec.data()[desc - sec["sh_addr"]: desc - sec["sh_addr"] + 32])
    assert loads["input.bin"] == words[2]
    assert loads["stack_paint.bin"] == stack_lo
    assert loads["arena_paint.bin"] == words[6]
    assert (tmp_path / "stack_paint.bin").stat().st_size == stack_hi - stack_lo
    assert (tmp_path / "arena_paint.bin").stat().st_size == words[7]
    assert (tmp_path / "input.bin").read_bytes() == bytes(64)
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
    assert f"ReadBytes(0x{words[4]:X}, {words[5]})" in exit_hook
    assert f"ReadBytes(0x{words[6]:X}, {words[7]})" in exit_hook
    for name, body in blocks.items():
        compile(body, name, "exec")
        assert "results.txt" in body


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
def fake_renode(monkeypatch, tmp_path):
    """Puts a `renode` on PATH that runs fake_renode/fake_renode.py with this Python."""
    bin_dir = tmp_path / "fake_bin"
    bin_dir.mkdir()
    (bin_dir / "renode").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    (bin_dir / "renode").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_RENODE_ROOT", str(ROOT))


def test_driver_stops_renode_once_tb_exit_reported(fake_renode, mps2, build_mps2):
    from sim.unicorn.simulator import UnicornSimulator

    elf = build_mps2("test_model", ["test_model.c"])
    r = R.RenodeSimulator().run(elf, mps2, bytes(range(64)), timeout_s=50)
    assert r.wall_seconds < 20                                    # did not wait out the fake's 60 s
    u = UnicornSimulator().run(elf, mps2, bytes(range(64)))
    assert r.output == u.output and r.instructions == u.instructions
    assert [l.instructions for l in r.layers] == [l.instructions for l in u.layers]
    assert r.peak_stack_bytes == u.peak_stack_bytes and r.arena_touched_bytes == u.arena_touched_bytes


def test_driver_reports_a_runaway(fake_renode, monkeypatch, mps2, build_mps2):
    monkeypatch.setenv("FAKE_RENODE_MODE", "runaway")
    elf = build_mps2("test_model", ["test_model.c"])
    with pytest.raises(TinybuildError, match="runaway firmware: stopped after 123,456 instructions"):
        R.RenodeSimulator().run(elf, mps2, bytes(64), max_instructions=1000)


def test_driver_host_time_limit(fake_renode, monkeypatch, mps2, build_mps2, tmp_path):
    # a "renode" that never reports
    slow = tmp_path / "bin"
    slow.mkdir()
    (slow / "renode").write_text('#!/bin/sh\ncase "$1" in --help|--version) echo "--disable-gui"; exit 0;; esac\n'
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
