"""The memory-system models (sim/unicorn/timing.py, MemoryModel; docs/timing.md)
on hand-written assembly (firmware/memory_model.S): one effect per pair of
layers whose code differs in one immediate only, so the difference of their
memory cycles is the effect alone, worked out here from the manuals:

STM32F407 at 168 MHz (ST RM0090): 5 wait states (3.4.1, Table 10, one per
30 MHz at 2.7-3.6 V); flash read 128 bits at a time; ART (3.2, 3.4.2): I-Code
prefetch, 64 I-cache lines and 8 D-cache lines of 128 bits.
STM32L4R5 at 120 MHz (ST RM0432): 5 wait states (3.3.3, range 1 boost, one
per 20 MHz); 64-bit reads; ART (3.3.4): prefetch, I-cache 32 x 4 x 64 bits,
D-cache 8 x 4 x 64 bits.
A line read from flash costs the wait states on top of the core model; a
line a cache holds or the prefetcher read costs nothing; SRAM costs nothing.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from sim.unicorn import timing
from tinybuild.errors import TinybuildError
from tinybuild.target import RunResult

# (memory model, clock, wait states, line bytes) from the manuals (see above)
BOARDS = {
    "stm32f407-art": (168_000_000, 5, 16),
    "stm32l4r5-art": (120_000_000, 5, 8),
}
SMALL_LOOP, BIG_LOOP = 32, 1280          # bytes of the loops in memory_model.S (1 KiB I-caches)
ITERATIONS = 50
BIG_TABLE, SMALL_TABLE = 512, 64         # bytes read twice (D-caches: 128 B on the F407, 256 B on the L4R5)
INPUT = bytes(range(64))


@pytest.fixture(scope="module")
def elf(build_arm):
    return build_arm("memory_model", ["memory_model_io.c", "memory_model.S"])


def _run(simulator, target, elf, model: str, clock: int, detail=False, prefetch=True):
    board = replace(target, memory_model=model, clock_hz=clock)
    if not prefetch:
        name = f"{model}-no-prefetch"
        timing.MEMORY_MODELS[name] = replace(timing.MEMORY_MODELS[model], name=name, prefetch=False)
        board = replace(board, memory_model=name)
    try:
        return simulator.run(elf, board, INPUT, detail=detail)
    finally:
        timing.MEMORY_MODELS.pop(f"{model}-no-prefetch", None)


def _memory(run) -> list[int]:
    return [layer.memory_cycles for layer in run.layers]


@pytest.mark.parametrize("model", BOARDS)
@pytest.mark.parametrize("prefetch", [True, False])
def test_a_loop_that_fits_the_icache_misses_only_on_its_first_pass(simulator, target, elf, model, prefetch):
    clock, ws, line = BOARDS[model]
    mem = _memory(_run(simulator, target, elf, model, clock, prefetch=prefetch))
    assert mem[1] - mem[0] == 0
    if not prefetch:                         # (with it, straight-line code arrives prefetched)
        assert mem[0] >= (SMALL_LOOP // line) * ws   # its lines did come from flash once


@pytest.mark.parametrize("model", BOARDS)
def test_a_loop_larger_than_the_icache_misses_every_pass(simulator, target, elf, model):
    clock, ws, line = BOARDS[model]
    with_prefetch = _memory(_run(simulator, target, elf, model, clock))
    without = _memory(_run(simulator, target, elf, model, clock, prefetch=False))
    # Every line was evicted before the next pass (LRU, the loop is larger
    # than the cache). The prefetcher supplies each sequential line: only
    # the branch target (the loop's first line) waits.
    assert with_prefetch[3] - with_prefetch[2] == (ITERATIONS - 1) * 1 * ws
    assert without[3] - without[2] == (ITERATIONS - 1) * (BIG_LOOP // line) * ws


@pytest.mark.parametrize("model", BOARDS)
@pytest.mark.parametrize("detail", [False, True])
def test_flash_loads_wait_per_line_and_sram_loads_do_not(simulator, target, elf, model, detail):
    clock, ws, line = BOARDS[model]
    mem = _memory(_run(simulator, target, elf, model, clock, detail=detail))
    # 512 bytes exceed both D-caches: both passes read every line from flash.
    assert mem[4] - mem[5] == 2 * (BIG_TABLE // line) * ws
    # 64 bytes fit both: the second pass hits.
    assert mem[6] - mem[7] == (SMALL_TABLE // line) * ws


@pytest.mark.parametrize("model", BOARDS)
def test_instructions_and_core_cycles_are_unchanged(simulator, target, elf, model):
    clock = BOARDS[model][0]
    on = _run(simulator, target, elf, model, clock)
    off = simulator.run(elf, replace(target, memory_model="", clock_hz=clock), INPUT, detail=False)
    assert on.instructions == off.instructions and on.total_instructions == off.total_instructions
    assert [l.instructions for l in on.layers] == [l.instructions for l in off.layers]
    assert [l.cycles - l.memory_cycles for l in on.layers] == [l.cycles for l in off.layers]
    assert on.cycles == off.cycles + on.memory_cycles and on.memory_cycles > 0
    assert on.memory_cycles == sum(_memory(on))
    assert off.memory_cycles == 0 and off.memory_model == "" and off.cycle_model == "cortex-m4"
    assert on.cycle_model == f"cortex-m4 + {model} (5-cycle line miss)"
    assert on.memory_label == "flash wait"


def test_the_same_run_twice_gives_the_same_cycles(simulator, target, elf):
    runs = [_run(simulator, target, elf, "stm32f407-art", 168_000_000) for _ in range(2)]
    assert runs[0].cycles == runs[1].cycles and _memory(runs[0]) == _memory(runs[1])


def test_detail_and_plain_runs_charge_the_same_memory_cycles(simulator, target, elf):
    plain = _run(simulator, target, elf, "stm32l4r5-art", 120_000_000)
    detail = _run(simulator, target, elf, "stm32l4r5-art", 120_000_000, detail=True)
    assert _memory(plain) == _memory(detail)


def test_wait_states_follow_the_clock_tables():
    f407, l4r5 = timing.MEMORY_MODELS["stm32f407-art"], timing.MEMORY_MODELS["stm32l4r5-art"]
    # RM0090 Table 10: one wait state per 30 MHz; RM0432: one per 20 MHz
    assert [f407.wait_states(f * 1_000_000) for f in (24, 30, 31, 100, 150, 168)] == [0, 0, 1, 3, 4, 5]
    assert [l4r5.wait_states(f * 1_000_000) for f in (16, 20, 21, 80, 110, 120)] == [0, 0, 1, 3, 5, 5]


def test_a_clock_outside_the_table_stops_with_one_line(target):
    board = replace(target, memory_model="stm32l4r5-art", clock_hz=168_000_000)
    with pytest.raises(TinybuildError, match=r"stm32l4r5-art has flash wait states for clocks up to "
                                             r"120 MHz, not 168 MHz"):
        timing.memory_model_for(board)


def test_an_unknown_memory_model_stops_naming_the_known_ones(target):
    board = replace(target, memory_model="stm32-art-\x1b[31m")
    with pytest.raises(TinybuildError) as err:
        timing.memory_model_for(board)
    message = str(err.value)
    assert "\x1b" not in message and "\n" not in message
    assert "esp32c3-flash-cache" in message and "stm32f407-art" in message


def test_no_memory_model_is_core_only(target):
    assert timing.memory_model_for(replace(target, memory_model="")) is None
    assert timing.memory_model_for(replace(target, memory_model="none")) is None


def test_esp32c3_cache_is_unified_16_kb_8_way_32_byte_blocks():
    m = timing.MEMORY_MODELS["esp32c3-flash-cache"]
    assert m.unified and m.line_bytes == 32 and m.icache.ways == 8
    assert m.icache.lines * m.line_bytes == 16 * 1024 and not m.prefetch


def test_built_in_boards_name_memory_models_the_simulator_has():
    from tinybuild import plugins
    for board in plugins.targets(plugins.make_plugin_manager()).values():
        if board.default_simulator == "unicorn":
            timing.memory_model_for(board)          # raises on a bad name or clock


def _record(memory_model: str, layer_memory=(0, 0, 0, 0)):
    """A report record (tests/sim/test_report.py's toy model) whose run had
    ``memory_model`` charge ``layer_memory`` cycles per layer."""
    from test_report import _parts

    from tinybuild import pipeline, report
    parts = _parts()
    run = parts["run"]["runs"][0]
    for layer, memory in zip(run["layers"], layer_memory):
        layer["memory_cycles"] = memory
    run.update(memory_model=memory_model, memory_cycles=sum(layer_memory),
               memory_label="flash wait" if memory_model else "")
    if memory_model:
        run["cycle_model"] = f"cortex-m4 + {memory_model} (5-cycle line miss)"
    assert set(run) <= set(pipeline.run_to_json(RunResult("unicorn", b"", 0, 0)))  # run.json's keys
    return report.build_record(**parts)


def test_summary_and_report_split_core_and_memory_cycles():
    from tinybuild import report
    r = _record("stm32l4r5-art", (500, 0, 0, 1500))           # 10,000 cycles in all
    line = next(l for l in report.summary(r).splitlines() if "inference" in l)
    assert "10,000 cycles (est.: 8,000 core + 2,000 flash wait) =" in line
    md = report.markdown(r)
    assert "estimated, cortex-m4 + stm32l4r5-art (5-cycle line miss) timing model " \
           "(8,000 core + 2,000 flash wait)" in md
    assert "| 6,000 (4,500 core + 1,500 flash wait) |" in md        # per layer
    assert [l["memory_cycles"] for l in r["layers"]] == [500, 0, 0, 1500]


def test_a_board_without_a_memory_model_is_labelled_core_only():
    from tinybuild import report
    r = _record("")
    assert "cycles (est., core only) =" in report.summary(r)
    assert "core only: this board has no memory model" in report.markdown(r)
