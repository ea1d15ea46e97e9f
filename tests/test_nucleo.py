"""The MLPerf Tiny reference board, ST NUCLEO-L4R5ZI (targets/nucleo_l4r5zi).

Fast: the board's description against RM0432's memory map and its linker
script. Slow: MLPerf Tiny models built, simulated in unicorn and matched byte
for byte with TFLite on it.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tbtest import ROOT, mlperf_model
from test_cm4_floor import floor
from tinybuild import linkcheck, plugins

SCONS = Path(sys.executable).with_name("scons")
KIB = 1024


@pytest.fixture(scope="module")
def board():
    return plugins.targets(plugins.make_plugin_manager())["nucleo-l4r5zi"]


def test_memory_map_is_rm0432s(board):
    regions = {r.name: (r.origin, r.length, r.kind) for r in board.memory}
    assert regions == {"FLASH": (0x0800_0000, 2048 * KIB, "flash"),
                       "SRAM1": (0x2000_0000, 192 * KIB, "ram"),
                       "SRAM3": (0x2004_0000, 384 * KIB, "ram"),
                       "SRAM2": (0x1000_0000, 64 * KIB, "ram")}   # SRAM2 through its alias
    assert board.capacity("ram") == 640 * KIB
    assert board.clock_hz == 120_000_000 and board.cpu == "cortex-m4"
    assert board.timing_model == "cortex-m4" and board.default_simulator == "unicorn"
    assert board.memory_model == "stm32l4r5-art"
    assert board.float_arithmetic() == "hardware FPU (fpv4-sp-d16)"


def test_linker_script_matches_the_memory_map(board):
    assert board.problems() == [] and linkcheck.script_problems(board) == []
    assert linkcheck.script_memory(board.linker_script) == \
        {r.name: (r.origin, r.length) for r in board.memory}


def test_gets_the_cortex_m4_dsp_kernels(board):
    pm = plugins.make_plugin_manager()
    kernels = [k for ks in pm.hook.tinybuild_kernels(target=board) for k in ks]
    assert any(k.function == "tb_cm4_conv2d_s8" for k in kernels)


def _build(build_dir: Path, model: Path) -> dict:
    cmd = [str(SCONS), "-C", str(ROOT), "-Q", f"build_dir={build_dir}", "target=nucleo-l4r5zi",
           f"model={model}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "on nucleo-l4r5zi - ST NUCLEO-L4R5ZI" in proc.stdout
    assert " core + " in proc.stdout and " flash wait) = " in proc.stdout    # the summary's split
    return json.loads((build_dir / "nucleo-l4r5zi" / model.stem / "report.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kws_ref_model.tflite", "vww_96_int8.tflite"])
def test_mlperf_tiny_models_build_and_match_tflite(tmp_path, name):
    r = _build(tmp_path, mlperf_model(name))
    assert r["validation"]["match"]
    assert r["target"]["clock_hz"] == 120_000_000
    assert r["inference"]["ms"] == pytest.approx(r["inference"]["cycles"] / 120e3, rel=1e-3)
    assert r["stack"]["peak_bytes"] > 0 and r["ram"]["capacity"] == 640 * KIB
    # flash wait states behind the ART accelerator, counted apart (docs/timing.md)
    inf = r["inference"]
    assert inf["memory_model"] == "stm32l4r5-art" and inf["memory_label"] == "flash wait"
    assert 0 < inf["memory_cycles"] < inf["cycles"]
    assert inf["cycle_model"] == "cortex-m4 + stm32l4r5-art (5-cycle line miss)"
    assert sum(l["memory_cycles"] for l in r["layers"]) == inf["memory_cycles"]
    # no layer beats the floor that bench/cm4_floor.py and docs/kernels.md claim
    below = [(l["index"], l["cycles"], f) for l in r["layers"]
             for f, _ in [floor.layer_floor(l)] if l["cycles"] < f]
    assert below == []
