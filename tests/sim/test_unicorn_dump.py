"""The Unicorn simulator's arena reads at tb_mark (for the per-layer diagnosis)
and the phrases that say where a failing firmware was."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tinybuild.errors import TinybuildError

END = 0xFFFFFFFF
PAINT = bytes((0xC5, 0xA3, 0x5C, 0x3A))          # sim.unicorn.simulator.PATTERN: RAM never written


def test_arena_is_read_when_the_mark_is_called(simulator, target, model_elf):
    """test_model.c: layer 2 writes the 16-byte output at arena+128, layer 3
    zeroes and accumulates 64 bytes at arena+192 (see firmware/test_model.c)."""
    data = np.random.default_rng(3).integers(-128, 128, 64).astype(np.int8).tobytes()
    reads = [(0, 128, 16), (3, 128, 16), (3, 192, 64), (END, 192, 64), (1, 0, 64)]
    result, (before, after, dense_before, dense_after, seen_input) = simulator.run_reading_arena(
        model_elf, target, data, reads)
    assert before == PAINT * 4                   # not written yet before layer 0
    assert after == result.output                # written by layer 2, read before layer 3
    assert dense_before == PAINT * 16 and dense_after != dense_before
    assert seen_input == data
    # the figures are those of an ordinary run
    assert result.instructions == simulator.run(model_elf, target, data, detail=False).instructions


def test_arena_reads_outside_the_arena_or_at_a_missing_mark_are_errors(simulator, target, model_elf):
    with pytest.raises(TinybuildError, match=r"arena read of 16 bytes at offset 250 .*256-byte arena"):
        simulator.run_reading_arena(model_elf, target, bytes(64), [(1, 250, 16)])
    with pytest.raises(TinybuildError, match=r"never called tb_mark\(7\)"):
        simulator.run_reading_arena(model_elf, target, bytes(64), [(7, 0, 4)])


def test_a_fault_is_placed_in_its_layer_with_the_op_from_plan_json(simulator, target, build_arm, tmp_path):
    elf = tmp_path / "firmware.elf"
    shutil.copy(build_arm("fault", ["test_model.c"], ("TB_TEST_FAULT",)), elf)
    with pytest.raises(TinybuildError) as err:
        simulator.run(elf, target, bytes(64))
    assert "layer_deep_frame" in str(err.value) and ", in layer 1 (firmware" in str(err.value)
    (tmp_path / "plan.json").write_text(json.dumps({"layers": [{"index": 1, "op": "CONV_2D"}]}))
    with pytest.raises(TinybuildError, match=r"layer_deep_frame\S*, in layer 1 \(CONV_2D\) "
                                             r"\(firmware firmware.elf"):
        simulator.run(elf, target, bytes(64))


def test_where_the_firmware_was_reads_as_a_phrase(target, model_elf):
    from sim.unicorn.simulator import MARK_END, _Run

    run = _Run(model_elf, target, bytes(64), 1000, 1.0)
    assert run.current_layer() == "during startup, before the first layer"
    run.marks.append((2, 0, 0))
    assert run.current_layer() == "in layer 2"
    run.marks.append((MARK_END, 0, 0))
    assert run.current_layer() == "after the last layer"
    text = run.context(0x08000000)
    assert ", after the last layer (firmware" in text and "during" not in text
