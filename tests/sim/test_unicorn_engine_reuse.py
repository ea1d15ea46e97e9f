"""Engines kept between runs (sim/unicorn/simulator.py _Engine,
docs/simulators.md "Speed with memory hooks"): a run on a kept engine reuses
its translated code and counts exactly what a run on a new engine counts, for
every input, with and without ``detail``, after a run that wrote to flash;
a run that failed leaves no engine behind, and a subclass that adds hooks
always gets a new one."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sim.unicorn import simulator as S
from sim.unicorn.simulator import UnicornSimulator, _Run
from tinybuild.errors import TinybuildError

INPUTS = [bytes(range(64)), bytes(np.random.default_rng(3).integers(0, 256, 64, dtype=np.uint8)),
          bytes(64)]
BOARDS = [("stm32l4r5-art", 120_000_000), ("stm32f407-art", 168_000_000), ("", 168_000_000)]


def figures(r) -> tuple:
    return (r.output, r.total_instructions, r.total_cycles, r.instructions, r.cycles,
            r.memory_cycles, r.misaligned_accesses, r.peak_stack_bytes, r.ram_touched_bytes,
            r.arena_touched_bytes, [(l.index, l.instructions, l.cycles, l.memory_cycles)
                                    for l in r.layers])


def run(elf, board, data: bytes, detail: bool, **kw) -> tuple[_Run, object]:
    r = _Run(elf, board, data, 10**9, 60.0, detail=detail, **kw)
    return r, r.execute()


@pytest.fixture(params=BOARDS, ids=[m or "core-only" for m, _ in BOARDS])
def board(request, target):
    memory_model, clock = request.param
    return replace(target, memory_model=memory_model, clock_hz=clock)


@pytest.fixture(scope="module")
def access_elf(build_arm):
    """Every kind of access, misaligned ones too (test_unicorn_access_watch.py)."""
    return build_arm("access_watch", ["access_watch_io.c", "access_watch.S"])


@pytest.mark.parametrize("firmware", ["model", "accesses"])
def test_a_kept_engine_counts_like_a_new_one(firmware, model_elf, access_elf, board, monkeypatch):
    elf = model_elf if firmware == "model" else access_elf
    monkeypatch.setattr(S, "REUSE_ENGINES", False)
    fresh = [figures(run(elf, board, data, detail)[1])
             for data in INPUTS for detail in (False, True)]
    monkeypatch.setattr(S, "REUSE_ENGINES", True)
    runs = [run(elf, board, data, detail) for data in INPUTS for detail in (False, True)]
    assert [figures(r) for _, r in runs] == fresh
    assert firmware == "model" or fresh[1][6] > 0          # (misaligned accesses counted)
    # With a memory model, plain and detailed runs share one engine (the same
    # hooks); without one, the detailed run's static watch is hooks the plain lacks.
    shared = {id(r.uc) for r, _ in runs}
    assert len(shared) == (1 if board.memory_model else 2)


def test_flash_a_run_wrote_is_loaded_again(model_elf, target, monkeypatch):
    board = replace(target, memory_model="stm32l4r5-art", clock_hz=120_000_000)
    monkeypatch.setattr(S, "REUSE_ENGINES", False)
    want = figures(run(model_elf, board, INPUTS[1], True)[1])
    monkeypatch.setattr(S, "REUSE_ENGINES", True)
    first, _ = run(model_elf, board, INPUTS[0], True)
    text = first.tables.base
    first.uc.mem_write(text, b"\xff" * 4096)        # as if the firmware had overwritten its code
    second, got = run(model_elf, board, INPUTS[1], True)
    assert second.uc is first.uc and figures(got) == want


def test_a_failed_run_leaves_no_engine(model_elf, target):
    board = replace(target, memory_model="stm32l4r5-art", clock_hz=120_000_000)
    with pytest.raises(TinybuildError, match="runaway firmware"):
        _Run(model_elf, board, INPUTS[0], 50, 60.0, detail=True).execute()
    assert not S._ENGINES
    first, _ = run(model_elf, board, INPUTS[0], True)
    assert len(S._ENGINES) == 1
    with pytest.raises(TinybuildError, match="runaway firmware"):
        _Run(model_elf, board, INPUTS[0], 50, 60.0, detail=True).execute()
    assert not S._ENGINES                           # taken out while it ran, not put back
    assert run(model_elf, board, INPUTS[0], True)[0].uc is not first.uc


def test_a_subclass_gets_a_new_engine(model_elf, target):
    class Traced(_Run):
        pass
    board = replace(target, memory_model="stm32l4r5-art", clock_hz=120_000_000)
    first, _ = run(model_elf, board, INPUTS[0], True)
    traced = Traced(model_elf, board, INPUTS[0], 10**9, 60.0, detail=True)
    traced.execute()
    assert traced.uc is not first.uc


def test_the_report_run_follows_its_plain_check_on_one_engine(model_elf, target, monkeypatch):
    """UnicornSimulator.run(detail=True) runs the plain check first, so the
    report run reuses its translations; the result is the detailed run's."""
    board = replace(target, memory_model="stm32l4r5-art", clock_hz=120_000_000)
    monkeypatch.setattr(S, "REUSE_ENGINES", False)
    want = figures(run(model_elf, board, INPUTS[0], True)[1])
    monkeypatch.setattr(S, "REUSE_ENGINES", True)
    started = []
    real = _Run.start_engine

    def start_engine(self):
        engine = real(self)
        started.append((self.detail, engine is not None and self.uc is engine.attrs["uc"]
                        and len(S._ENGINES) == 0, id(self.uc)))
        return engine
    monkeypatch.setattr(_Run, "start_engine", start_engine)
    got = UnicornSimulator().run(model_elf, board, INPUTS[0], detail=True)
    assert figures(got) == want
    assert [d for d, _, _ in started] == [False, True] and started[0][2] == started[1][2]
