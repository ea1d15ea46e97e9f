"""The QEMU backend (sim/qemu) and the cross-check of the default simulator.

The same ELF, built for mps2-an386 (targets/mps2_an386: a board QEMU has),
runs in unicorn and in QEMU; their instruction counts must agree exactly,
per inference, per layer and for the whole run (reset to tb_exit).

The one documented difference: the whole-run figure is counted up to the first
instruction of tb_exit in both (unicorn stops there; QEMU runs on through
tb_exit's semihosting, which the plugin does not add to the run's total), so
they agree too; the figures that could differ are cycles (QEMU has no timing
model: its cycles are its icount clock, one per instruction) and the RAM
touched (QEMU cannot scan memory after the run: 0 = not measured).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pluggy
import pytest

from tinybuild import hookspecs
from tinybuild.errors import TinybuildError

from sim.qemu import simulator as Q

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-arm") is None,
                                reason="qemu-system-arm not installed")


@pytest.fixture(scope="module")
def qemu():
    sim = Q.QemuSimulator()
    ok, status = sim.available()
    if not ok:
        pytest.skip(status)
    return sim


def test_plugin_registers_the_simulator(mps2, target):
    from sim.qemu import plugin

    pm = pluggy.PluginManager("tinybuild")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin)
    sims = [s for group in pm.hook.tinybuild_simulators() for s in group]
    assert [s.name for s in sims] == ["qemu"]
    assert sims[0].supports(mps2)
    assert not sims[0].supports(target)           # the STM32F407 is not a QEMU board here
    ok, status = sims[0].available()
    assert ok, status
    assert "QEMU emulator version" in status and "mps2-an386" in status


def test_counting_plugin_builds_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lib = Q.build_plugin()
    assert lib.parent == tmp_path / "tinybuild" and lib.exists()
    assert Q.build_plugin() == lib


def _both(qemu, mps2, elf, inp):
    from sim.unicorn.simulator import UnicornSimulator
    return UnicornSimulator().run(elf, mps2, inp), qemu.run(elf, mps2, inp, timeout_s=120)


def _assert_agree(u, q):
    assert q.output == u.output
    assert q.instructions == u.instructions
    assert q.total_instructions == u.total_instructions
    assert [(l.index, l.instructions) for l in q.layers] == [(l.index, l.instructions) for l in u.layers]
    assert q.peak_stack_bytes == u.peak_stack_bytes
    assert q.exit_code == u.exit_code == 0
    assert q.cycles == q.instructions and q.cycle_model.startswith("qemu icount")
    assert u.cycle_model == "cortex-m4"


def test_c_model_counts_agree_exactly(qemu, mps2, build_mps2):
    elf = build_mps2("test_model", ["test_model.c"])
    u, q = _both(qemu, mps2, elf, bytes(range(64)))
    _assert_agree(u, q)
    assert len(q.layers) == 4


def test_it_blocks_count_the_same(qemu, mps2, build_mps2):
    # asm_model.S layer 2 has an ITTE whose two `addeq` are skipped: both
    # simulators count them (QEMU's per-instruction inline add sits before the
    # condition check; unicorn counts whole blocks).
    elf = build_mps2("asm_model", ["asm_io.c", "asm_model.S"])
    u, q = _both(qemu, mps2, elf, bytes(range(16)))
    _assert_agree(u, q)
    assert q.layers[2].instructions == 9


def test_every_instruction_class_counts_the_same(qemu, mps2, build_mps2):
    elf = build_mps2("cycles", ["cycles_io.c", "cycles.S"])
    u, q = _both(qemu, mps2, elf, bytes(range(64)))
    _assert_agree(u, q)
    assert len(q.layers) == 12


def test_fault_names_pc_symbol_and_layer(qemu, mps2, build_mps2):
    elf = build_mps2("fault", ["test_model.c"], ("TB_TEST_FAULT",))
    with pytest.raises(TinybuildError) as e:
        qemu.run(elf, mps2, bytes(64), timeout_s=120)
    msg = str(e.value)
    assert "bus fault at 0x30000000" in msg
    assert "layer_deep_frame" in msg and "during layer 1" in msg and "sim=qemu" in msg


def test_stack_overflow_is_named(qemu, mps2, build_mps2):
    # QEMU maps the region below mps2's data SSRAM as an unimplemented device
    # (reads 0, ignores writes), so the overflow does not fault: the painted
    # stack's lowest word being written gives it away.
    elf = build_mps2("overflow", ["test_model.c"], ("TB_TEST_STACK_OVERFLOW",))
    with pytest.raises(TinybuildError, match=r"stack overflow: .*lowest word of its 4,096-byte stack "
                                             r"\(0x20000000\.\.0x20001000\).*sim=qemu"):
        qemu.run(elf, mps2, bytes(64), timeout_s=120)


def test_fault_status_in_words():
    assert Q.describe_cfsr(1 << 15 | 1 << 9, 0x30000000, 0) == "bus fault at 0x30000000"
    assert Q.describe_cfsr(1 << 10, 0, 0) == "imprecise bus fault"
    assert Q.describe_cfsr(1 << 7 | 1 << 1, 0, 0x1234) == "memory management fault at 0x00001234"
    assert Q.describe_cfsr(1 << 16, 0, 0) == "undefined instruction"
    assert Q.describe_cfsr(1 << 12, 0, 0) == "bus fault, while stacking (stack overflow?)"
    assert Q.describe_cfsr(0, 0, 0) == "hard fault (CFSR=0x00000000)"


def test_instruction_limit(qemu, mps2, build_mps2):
    elf = build_mps2("hang", ["test_model.c"], ("TB_TEST_HANG",))
    with pytest.raises(TinybuildError,
                       match=r"runaway.*max_instructions=1,000,000.*layer_deep_frame.*layer 1"):
        qemu.run(elf, mps2, bytes(64), max_instructions=1_000_000, timeout_s=120)


def test_host_time_limit(qemu, mps2, build_mps2):
    elf = build_mps2("hang", ["test_model.c"], ("TB_TEST_HANG",))
    with pytest.raises(TinybuildError, match=r"runaway.*host time limit of 0.5 s.*layer_deep_frame"):
        qemu.run(elf, mps2, bytes(64), max_instructions=10**15, timeout_s=0.5)


def test_firmware_without_semihosting_is_refused(qemu, mps2, model_elf):
    # The STM32F407 startup's tb_exit spins: QEMU could neither stop nor report.
    with pytest.raises(TinybuildError, match="makes no semihosting call"):
        qemu.run(model_elf, mps2, bytes(64))


def test_unknown_board_is_refused(qemu, target, model_elf):
    with pytest.raises(TinybuildError, match="no QEMU machine for target stm32f407"):
        qemu.run(model_elf, target, bytes(64))


@pytest.mark.skipif(shutil.which("qemu-system-riscv32") is None, reason="qemu-system-riscv32 not installed")
def test_rv32_counts_agree_exactly(qemu, rv32_qemu_build, monkeypatch):
    """RV32IMC on QEMU's virt board (sim/qemu RISCV32_VIRT, registered here for
    the test board: flash at 0x20000000, RAM at 0x80000000 as on virt)."""
    from sim.unicorn.simulator import UnicornSimulator

    elf, target = rv32_qemu_build
    monkeypatch.setitem(Q.BOARDS, target.name, Q.RISCV32_VIRT)
    assert qemu.supports(target)
    inp = bytes([3] + list(range(1, 64)))
    u = UnicornSimulator().run(elf, target, inp)
    q = qemu.run(elf, target, inp, timeout_s=120)
    assert q.output == u.output
    assert q.instructions == u.instructions and q.total_instructions == u.total_instructions
    assert [l.instructions for l in q.layers] == [l.instructions for l in u.layers]
    assert q.peak_stack_bytes == u.peak_stack_bytes > 512


@pytest.mark.slow
def test_generated_model_counts_agree(qemu, mps2, tmp_path):
    """A real generated model (MLPerf Tiny KWS), built by SCons for mps2-an386:
    QEMU's counts on the build's validation inputs equal unicorn's run.json."""
    root = Path(__file__).resolve().parents[2]
    model = root.parent / "shared" / "models" / "mlperf_tiny" / "kws_ref_model.tflite"
    if not model.exists():
        pytest.skip(f"{model} not present")
    scons = Path(sys.executable).with_name("scons")
    proc = subprocess.run([str(scons), "-C", str(root), "-Q", f"build_dir={tmp_path}",
                           "target=mps2-an386", f"model={model}", "inputs=2"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "mps2-an386" / "kws_ref_model"
    runs = json.loads((out / "run.json").read_text())["runs"]
    ref = json.loads((tmp_path / "models" / "kws_ref_model" / "reference-n2-s1.json").read_text())
    blob = (tmp_path / "models" / "kws_ref_model" / "inputs-n2-s1.bin").read_bytes()
    size = ref["input_bytes"]
    for i, run in enumerate(runs):
        q = qemu.run(out / "firmware.elf", mps2, blob[i * size:(i + 1) * size], timeout_s=300)
        assert q.output.hex() == run["output"]
        assert q.instructions == run["instructions"]
        assert q.total_instructions == run["total_instructions"]
        assert [l.instructions for l in q.layers] == [l["instructions"] for l in run["layers"]]
        assert q.peak_stack_bytes == run["peak_stack_bytes"]
    # The same build with sim=qemu through SCons: the output still matches
    # TFLite, the counts are unicorn's.
    proc = subprocess.run([str(scons), "-C", str(root), "-Q", f"build_dir={tmp_path}",
                           "target=mps2-an386", f"model={model}", "inputs=2", "sim=qemu"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "[simulate] qemu" in proc.stderr
    assert "output matches TFLite reference: yes" in proc.stdout and "[qemu]" in proc.stdout
    assert "cycles (icount)" in proc.stdout
    qruns = json.loads((out / "run.json").read_text())["runs"]
    assert [r["instructions"] for r in qruns] == [r["instructions"] for r in runs]
    assert (out / "layers.svg").exists()
