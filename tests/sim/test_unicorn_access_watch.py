"""The static access watch (sim/unicorn/native_hook.c, docs/simulators.md
"Speed with memory hooks") against its oracle, Unicorn's memory hook on every
data access (``access_watch="hook"``): the same firmware, the same counts per
layer - instructions, cycles, misaligned accesses and their cycles, flash wait
cycles - on hand-written assembly that has every kind of access
(firmware/access_watch.S) and on a real model (slow)."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sim.unicorn import native, timing
from sim.unicorn.simulator import _Run

ROOT = Path(__file__).resolve().parents[2]
INPUT = bytes(range(64))
# (memory model, clock): the two STM32 ART models and none (misalignment only)
MEMORY = [("stm32f407-art", 168_000_000), ("stm32l4r5-art", 120_000_000), ("", 168_000_000)]


@pytest.fixture(scope="module")
def elf(build_arm):
    return build_arm("access_watch", ["access_watch_io.c", "access_watch.S"])


def counts(r) -> tuple:
    """Everything the watch feeds, per layer and for the whole run."""
    return (r.total_instructions, r.total_cycles, r.instructions, r.cycles, r.memory_cycles,
            r.misaligned_accesses, r.output,
            [(l.instructions, l.cycles, l.memory_cycles) for l in r.layers])


def run(elf, board, watch: str, detail: bool = True, cls=_Run):
    r = cls(elf, board, INPUT, 10**9, 60.0, detail=detail, access_watch=watch)
    return r.execute(), r


@pytest.mark.parametrize("model,clock", MEMORY)
@pytest.mark.parametrize("detail", [True, False])
def test_static_watch_counts_what_the_every_access_hook_counts(target, elf, model, clock, detail):
    board = replace(target, memory_model=model, clock_hz=clock)
    oracle, _ = run(elf, board, "hook", detail)
    static, r = run(elf, board, "static", detail)
    assert counts(static) == counts(oracle)
    assert r.access_watch == "static"
    if detail or model:       # something was watched: by both mechanisms
        assert r.counters.static_ops > 0 and r.counters.hooked_ops > 0
    if detail:
        assert oracle.misaligned_accesses > 100       # the firmware does misalign
    if model:
        assert oracle.layers[1].memory_cycles > 0     # ... and reads flash as data


def test_the_default_on_cortex_m_is_the_static_watch(target, elf):
    assert _Run(elf, target, INPUT, 10**9, 60.0).access_watch == "static"


def test_an_unmodelled_memory_instruction_redoes_the_run_with_the_hook(target, build_arm):
    ldrex = build_arm("access_watch_ldrex", ["access_watch_io.c", "access_watch.S"],
                      ("WITH_LDREX",))
    board = replace(target, memory_model="stm32f407-art")
    oracle, _ = run(ldrex, board, "hook")
    static, r = run(ldrex, board, "static")
    assert counts(static) == counts(oracle)
    assert r.access_watch == "hook"                   # it fell back


def test_an_access_left_without_its_code_hook_is_counted_on_a_second_run(target, elf,
                                                                          monkeypatch):
    """The scan gives a code hook to every access no block can resolve; one
    that had none (here: no scan on the first attempt) is recorded and the
    run is made again with a hook on it."""
    board = replace(target, memory_model="stm32l4r5-art", clock_hz=120_000_000)
    oracle, _ = run(elf, board, "hook")
    attempts = []
    real_call = native.call

    def call(name, counters):
        if name == "tb_scan":
            attempts.append(name)
            if len(attempts) == 1:
                return
        real_call(name, counters)
    monkeypatch.setattr(native, "call", call)
    static, r = run(elf, board, "static")
    assert len(attempts) == 2 and r.access_watch == "static"
    assert counts(static) == counts(oracle)


def test_a_second_shortfall_falls_back_to_the_every_access_hook(target, elf, monkeypatch):
    """Should the redo miss accesses again, the third run uses the hook: slow, exact."""
    board = replace(target, memory_model="stm32l4r5-art", clock_hz=120_000_000)
    oracle, _ = run(elf, board, "hook")
    shortfalls = []
    real = _Run.static_shortfall

    def static_shortfall(self):
        if self.static_watch() and len(shortfalls) < 2:
            shortfalls.append(1)
            return "1 access without a code hook"          # as if the redo missed again
        return real(self)
    monkeypatch.setattr(_Run, "static_shortfall", static_shortfall)
    static, r = run(elf, board, "static")
    assert len(shortfalls) == 2 and r.access_watch == "hook"
    assert counts(static) == counts(oracle)


def test_rv32_uses_the_static_watch_too(rv32_build):      # (tests/sim/test_rv_static_watch.py)
    elf, target = rv32_build
    assert _Run(elf, target, bytes(64), 10**9, 60.0).access_watch == "static"


def _decoded(asm: list[int], pc: int = 0x0800_0000) -> timing.Access:
    return timing.thumb_access(asm[0], asm[1] if len(asm) > 1 else 0, pc)


@pytest.mark.parametrize("halfwords,expect", [
    ([0xF853, 0x1B04], dict(rn=3, imm=0, size=4, count=1, wb=4)),      # ldr.w r1, [r3], #4
    ([0xF911, 0x2F01], dict(rn=1, imm=1, size=1, wb=1)),               # ldrsb.w r2, [r1, #1]!
    ([0xF828, 0x2019], dict(rn=8, rm=9, shift=1, size=2)),             # strh.w r2, [r8, r9, lsl #1]
    ([0xE951, 0x4004], dict(rn=1, imm=-16, size=4, count=2)),          # ldrd r4, r0, [r1, #-16]
    ([0xB570], dict(rn=13, imm=-16, size=4, count=4, wb=-16)),         # push {r4-r6, lr}
    ([0xBD70], dict(rn=13, imm=0, size=4, count=4, wb=16)),            # pop {r4-r6, pc}
    ([0x4801], dict(rn=-1, imm=0x0800_0008, size=4)),                  # ldr r0, [pc, #4]
    ([0xED95, 0x0B01], dict(rn=5, imm=4, size=8)),                     # vldr d0, [r5, #4]
    ([0xE8D6, 0xF011], dict(rn=6, rm=1, shift=1, size=2)),             # tbh [r6, r1, lsl #1]
])
def test_decoder_reads_the_access(halfwords, expect):
    a = _decoded(halfwords)
    assert a.flags & timing.ACC_ACCESS and not a.flags & timing.ACC_UNMODELLED
    for field, value in expect.items():
        assert getattr(a, field) == value, field


@pytest.mark.parametrize("halfwords,rd,rs,k", [
    ([0x3504], 5, 5, 4),                  # adds r5, #4
    ([0x1EEB], 3, 5, -3),                 # subs r3, r5, #3
    ([0x462F], 7, 5, 0),                  # mov r7, r5
    ([0xF1A4, 0x0C04], 12, 4, -4),        # sub.w ip, r4, #4
    ([0xB082], 13, 13, -8),               # sub sp, #8
])
def test_decoder_follows_immediate_register_updates(halfwords, rd, rs, k):
    a = _decoded(halfwords)
    assert (a.rd, a.rs, a.k, a.clobber) == (rd, rs, k, 0)


@pytest.mark.parametrize("halfwords,rd,rs,rs2,scale", [
    ([0x4496], 14, 14, 2, 1),             # add lr, r2
    ([0xEB0E, 0x0E46], 14, 14, 6, 2),     # add.w lr, lr, r6, lsl #1
    ([0x1AD1], 1, 2, 3, -1),              # subs r1, r2, r3
])
def test_decoder_follows_register_sums(halfwords, rd, rs, rs2, scale):
    a = _decoded(halfwords)
    assert a.flags & timing.ACC_ADDREG and (a.rd, a.rs, a.rs2, a.k, a.clobber) == (rd, rs, rs2, scale, 0)


@pytest.mark.parametrize("halfwords,clobbered", [
    ([0xFB03, 0xF803], {8}),              # mul r8, r3, r3
    ([0xE9DD, 0x2107], {1, 2}),           # ldrd r2, r1, [sp, #28]
    ([0xF000, 0xF800], {14}),             # bl
])
def test_decoder_forgets_registers_it_cannot_follow(halfwords, clobbered):
    a = _decoded(halfwords)
    assert {r for r in range(16) if a.clobber >> r & 1} == clobbered and a.rd == -1


SCONS = Path(sys.executable).with_name("scons")


@pytest.mark.slow
@pytest.mark.parametrize("target_name", ["nucleo-l4r5zi", "cortex-m4"])
def test_static_watch_counts_what_the_hook_counts_on_kws(tmp_path, target_name):
    from tinybuild import plugins
    board = plugins.targets(plugins.make_plugin_manager())[target_name]
    elf = tmp_path / target_name / "kws" / "firmware.elf"
    inputs = tmp_path / "models" / "kws" / "inputs-n4-s1.bin"
    cmd = [str(SCONS), "-C", str(ROOT), "-Q", f"build_dir={tmp_path}", f"target={target_name}",
           f"model={ROOT / 'models' / 'kws.h5'}", str(elf), str(inputs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    raw = inputs.read_bytes()
    data = raw[: len(raw) // 4]
    for detail in (True, False):
        oracle = _Run(elf, board, data, 2 * 10**9, 600.0, detail=detail, access_watch="hook")
        static = _Run(elf, board, data, 2 * 10**9, 600.0, detail=detail, access_watch="static")
        assert counts(static.execute()) == counts(oracle.execute())
        assert static.access_watch == "static"
        if detail or board.memory_model:          # (else nothing is watched)
            assert static.counters.static_ops > 10**5
