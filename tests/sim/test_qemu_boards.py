"""QEMU boards beyond mps2-an386 (issue 14 item 7): the built-in RISC-V board
``hifive1`` (SiFive HiFive1 Rev B, FE310-G002, QEMU ``-M sifive_e,revb=on``)
runs the same ELF in unicorn and in QEMU, and the instruction counts agree
exactly: per inference, per layer and for the whole run (from the firmware's
``_start`` at 0x20010000 to tb_exit; the revb mask ROM's jump at 0x1000 runs
before ``_start`` and is not counted, the one difference by construction).

QEMU's ``netduinoplus2`` (STM32F405) runs the cortex-m4 target's own ELF
(stack at the bottom of SRAM, semihosting tb_exit): tests/sim/test_qemu_sim.py.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinybuild import plugins
from sim.qemu import simulator as Q
from sim.unicorn.simulator import UnicornSimulator

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = Path(__file__).with_name("firmware")
HIFIVE1 = ROOT / "targets" / "hifive1"
RUNTIME = ROOT / "tinybuild" / "runtime"
MLPERF = ROOT.parent / "shared" / "models" / "mlperf_tiny"

needs_qemu_rv32 = pytest.mark.skipif(shutil.which("qemu-system-riscv32") is None,
                                     reason="qemu-system-riscv32 not installed")


@pytest.fixture(scope="module")
def boards():
    return plugins.targets(plugins.make_plugin_manager())


@pytest.fixture(scope="module")
def hifive1_elf(tmp_path_factory) -> Path:
    """tests/sim/firmware/test_model.c linked with the hifive1 target's own
    startup and linker script."""
    gcc = shutil.which("riscv64-unknown-elf-gcc")
    if gcc is None:
        pytest.skip("riscv64-unknown-elf-gcc not installed")
    elf = tmp_path_factory.mktemp("hifive1") / "test_model.elf"
    cmd = [gcc, "-march=rv32imac", "-mabi=ilp32", "-O2", "-ffreestanding", "-ffunction-sections",
           "-fdata-sections", "-nostartfiles", "-nostdlib", "-Wl,--gc-sections",
           "-Wl,--undefined=tb_io_desc", "-T", str(HIFIVE1 / "hifive1.ld"), f"-I{RUNTIME}",
           str(HIFIVE1 / "startup_hifive1.c"), str(RUNTIME / "tb_runtime.c"),
           str(FIRMWARE / "test_model.c"), "-o", str(elf), "-lgcc"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    return elf


def test_hifive1_is_a_builtin_board_qemu_runs(boards):
    t = boards["hifive1"]
    assert (t.arch, t.cpu, t.timing_model, t.clock_hz) == ("riscv32", "e31", "rv32-e31", 320_000_000)
    assert [(r.origin, r.length, r.kind) for r in t.memory] == [
        (0x2001_0000, 4 * 1024 * 1024 - 64 * 1024, "flash"), (0x8000_0000, 16 * 1024, "ram")]
    assert Q.QemuSimulator().supports(t)
    assert Q.BOARDS["hifive1"].machine == "sifive_e,revb=on"


def test_netduinoplus2_runs_the_cortex_m4_target(boards):
    """Its ELF keeps nothing in CCM, which QEMU's STM32F405 lacks."""
    assert Q.QemuSimulator().supports(boards["cortex-m4"])
    assert Q.BOARDS["cortex-m4"].machine == "netduinoplus2"


@needs_qemu_rv32
def test_hifive1_counts_agree_exactly(boards, hifive1_elf):
    target = boards["hifive1"]
    inp = bytes([3] + list(range(1, 64)))
    u = UnicornSimulator().run(hifive1_elf, target, inp)
    q = Q.QemuSimulator().run(hifive1_elf, target, inp, timeout_s=120)
    assert q.output == u.output
    assert q.instructions == u.instructions and q.total_instructions == u.total_instructions
    assert [l.instructions for l in q.layers] == [l.instructions for l in u.layers]
    assert len(u.layers) > 0
    assert q.peak_stack_bytes == u.peak_stack_bytes > 0


@pytest.mark.slow
@needs_qemu_rv32
def test_hifive1_generated_model_counts_agree(boards, tmp_path):
    """MLPerf Tiny's anomaly-detection model (the one that fits the 16 KiB
    DTIM), built by SCons for hifive1 and validated against TFLite: QEMU's
    counts on the build's validation inputs equal unicorn's run.json."""
    model = MLPERF / "ad01_int8.tflite"
    if not model.exists():
        pytest.skip(f"{model} not present")
    scons = Path(sys.executable).with_name("scons")
    proc = subprocess.run([str(scons), "-C", str(ROOT), "-Q", f"build_dir={tmp_path}",
                           "target=hifive1", f"model={model}", "inputs=2"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "output matches TFLite reference: yes" in proc.stdout
    out = tmp_path / "hifive1" / "ad01_int8"
    runs = json.loads((out / "run.json").read_text())["runs"]
    blob = (tmp_path / "models" / "ad01_int8" / "inputs-n2-s1.bin").read_bytes()
    size = len(blob) // 2
    for i, run in enumerate(runs):
        q = Q.QemuSimulator().run(out / "firmware.elf", boards["hifive1"],
                                  blob[i * size:(i + 1) * size], timeout_s=300)
        assert q.output.hex() == run["output"]
        assert q.instructions == run["instructions"]
        assert q.total_instructions == run["total_instructions"]
        assert [l.instructions for l in q.layers] == [l["instructions"] for l in run["layers"]]
        assert q.peak_stack_bytes == run["peak_stack_bytes"]
