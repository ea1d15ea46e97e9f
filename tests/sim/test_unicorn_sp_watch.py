"""The static access watch charges nothing for an access at SP plus an aligned
offset while SP is word-aligned and far from flash (native_hook.c,
tb_make_lean: 57-63% of kws/vww's resolved accesses). firmware/sp_watch.S
breaks each condition - SP misaligned by MOV, SP in flash, SP moved by an
unaligned amount inside a block, unaligned offsets - and the counts must be
the every-access hook's, per layer."""
from __future__ import annotations

from dataclasses import replace

import pytest

from sim.unicorn.simulator import _Run

INPUT = bytes(range(64))
MEMORY = [("stm32f407-art", 168_000_000), ("stm32l4r5-art", 120_000_000), ("", 168_000_000)]


@pytest.fixture(scope="module")
def elf(build_arm):
    return build_arm("sp_watch", ["access_watch_io.c", "sp_watch.S"])


def run(elf, board, watch: str, detail: bool):
    r = _Run(elf, board, INPUT, 10**9, 60.0, detail=detail, access_watch=watch)
    return r.execute(), r


def counts(r) -> tuple:
    return (r.total_instructions, r.total_cycles, r.memory_cycles, r.misaligned_accesses, r.output,
            [(l.instructions, l.cycles, l.memory_cycles) for l in r.layers])


@pytest.mark.parametrize("model,clock", MEMORY)
@pytest.mark.parametrize("detail", [True, False])
def test_stack_accesses_count_what_the_every_access_hook_counts(target, elf, model, clock, detail):
    board = replace(target, memory_model=model, clock_hz=clock)
    oracle, _ = run(elf, board, "hook", detail)
    static, r = run(elf, board, "static", detail)
    assert counts(static) == counts(oracle)
    assert r.access_watch == "static"
    layers = oracle.layers
    if detail:
        assert oracle.misaligned_accesses == 10 * (2 + 2 + 3)     # layers 1, 3 and 4 misalign
    if model:
        assert layers[2].memory_cycles > 9 * 14 * 5                # layer 2 misses every pass
    assert layers[0].memory_cycles == 0
