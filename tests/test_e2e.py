"""End to end through SCons: convert, compile, link, size, simulate, validate.

These build real firmware and run it in the default simulator, so they are
marked slow (CI runs them). Each test builds into its own folder.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tbtest import ROOT, mlperf_model
from tinybuild.kernel_registry import REFERENCE

pytestmark = pytest.mark.slow
SCONS = Path(sys.executable).with_name("scons")


def scons(build_dir, *args, env=None, plugins=None):
    cmd = [str(SCONS), "-C", str(ROOT), "-Q", f"build_dir={build_dir}", *args]
    if plugins:
        cmd.append(f"plugins={plugins}")
    return subprocess.run(cmd, capture_output=True, text=True, env=env or os.environ.copy(),
                          timeout=900)


def test_kws_h5_builds_simulates_validates_then_rebuilds_nothing(tmp_path):
    build = tmp_path / "build"
    first = scons(build, "target=cortex-m4", "model=kws.h5")
    assert first.returncode == 0, first.stderr
    assert "output matches TFLite reference: yes" in first.stdout
    report = json.loads((build / "cortex-m4" / "kws" / "report.json").read_text())
    assert report["validation"]["match"] and report["validation"]["inputs"] == 4
    assert 0 < report["flash"]["used"] <= report["flash"]["capacity"]
    assert report["arena"]["bytes"] >= report["arena"]["lower_bound"] > 0
    assert report["inference"]["instructions"] > report["model"]["macs"]
    assert report["inference"]["cycles"] >= report["inference"]["instructions"]
    assert sum(l["instructions"] for l in report["layers"]) <= report["inference"]["instructions"]
    assert 0 < report["stack"]["peak_bytes"] < report["stack"]["reserved_bytes"]
    assert (build / "cortex-m4" / "kws" / "report.md").read_text().startswith("# kws on cortex-m4")

    # A no-op rebuild is up to date and never imports TensorFlow: a poisoned
    # `tensorflow` package first on the path would fail the build if it did.
    poison = tmp_path / "poison" / "tensorflow"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('TensorFlow imported on a no-op build')\n")
    env = {**os.environ, "PYTHONPATH": str(poison.parent)}
    again = scons(build, "target=cortex-m4", "model=kws.h5", "--question", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    summary = scons(build, "target=cortex-m4", "model=kws.h5", env=env)
    assert summary.returncode == 0 and "[convert]" not in summary.stderr
    assert "output matches TFLite reference: yes" in summary.stdout


def test_mlperf_kws_reference_model(tmp_path):
    model = mlperf_model("kws_ref_model.tflite")
    result = scons(tmp_path, "target=cortex-m4", f"model={model}")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "cortex-m4" / "kws_ref_model" / "report.json").read_text())
    assert report["model"]["macs"] == 2_656_768  # the MLPerf Tiny figure
    assert report["validation"]["match"]

    # kernels=reference: the portable kernels only, in a folder of their own,
    # still bit-exact, and slower than the plugin's kernels.
    result = scons(tmp_path, "target=cortex-m4", f"model={model}", "kernels=reference")
    assert result.returncode == 0, result.stderr
    ref = json.loads((tmp_path / "cortex-m4" / "kws_ref_model-reference-kernels" /
                      "report.json").read_text())
    assert ref["validation"]["match"]
    assert {l["kernel"] for l in ref["layers"]} <= set(REFERENCE.values())
    assert not {l["kernel"] for l in report["layers"]} <= set(REFERENCE.values())
    assert report["inference"]["instructions"] < ref["inference"]["instructions"]


BROKEN_SOFTMAX_PLUGIN = '''
from pathlib import Path
from tinybuild.hookspecs import hookimpl
from tinybuild.kernel_registry import KernelImpl

HERE = Path(__file__).parent

@hookimpl
def tinybuild_kernels(target):
    return [KernelImpl("SOFTMAX", "softmax_off_by_one", (HERE / "softmax_off_by_one.c",),
                       priority=10, name="softmax_off_by_one (test)")]
'''

BROKEN_SOFTMAX_C = '''
#include "tb_kernels.h"
/* The reference softmax, then one output byte nudged: a wrong kernel. */
void softmax_off_by_one(const tb_softmax_params *p, const int8_t *in, int8_t *out) {
  tb_softmax_s8(p, in, out);
  out[0] = (int8_t)(out[0] == 127 ? 126 : out[0] + 1);
}
'''


def test_a_wrong_kernel_from_a_plugin_fails_validation(tmp_path):
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "bad_kernels.py").write_text(BROKEN_SOFTMAX_PLUGIN)
    (plugin_dir / "softmax_off_by_one.c").write_text(BROKEN_SOFTMAX_C)
    model = mlperf_model("kws_ref_model.tflite")
    result = scons(tmp_path / "build", "target=cortex-m4", f"model={model}", plugins=plugin_dir)
    assert result.returncode != 0
    assert "differs from the TFLite reference" in result.stderr
    plan = json.loads((tmp_path / "build" / "cortex-m4" / "kws_ref_model" / "plan.json").read_text())
    assert plan["layers"][-1]["kernel"] == "softmax_off_by_one"


def _tiny_board_plugin(folder: Path, ram_bytes: int) -> Path:
    """A board that exists only in this test's folder: the STM32F407 with less RAM."""
    folder.mkdir(parents=True, exist_ok=True)
    script = (ROOT / "targets" / "cortex_m4" / "stm32f407.ld").read_text()
    script = script.replace("RAM   (rwx) : ORIGIN = 0x20000000, LENGTH = 128K",
                            f"RAM   (rwx) : ORIGIN = 0x20000000, LENGTH = {ram_bytes}")
    (folder / "tiny.ld").write_text(script)
    (folder / "tiny_board.py").write_text(textwrap.dedent(f'''
        from dataclasses import replace
        from pathlib import Path
        from tinybuild.hookspecs import hookimpl
        from tinybuild.target import MemoryRegion

        @hookimpl
        def tinybuild_targets():
            from tinybuild_builtin_targets_cortex_m4.plugin import STM32F407
            memory = (STM32F407.memory[0], MemoryRegion("RAM", 0x20000000, {ram_bytes}, "ram"),
                      STM32F407.memory[2])
            return [replace(STM32F407, name="tiny-m4", board="tiny test board", memory=memory,
                            linker_script=Path(__file__).parent / "tiny.ld")]
        '''))
    return folder


def test_a_board_from_a_temporary_plugin_folder_is_built_for(tmp_path):
    plugins = _tiny_board_plugin(tmp_path / "plugins", 64 * 1024)
    model = mlperf_model("kws_ref_model.tflite")
    result = scons(tmp_path / "build", "target=tiny-m4", f"model={model}", plugins=plugins)
    assert result.returncode == 0, result.stderr
    assert "kws_ref_model on tiny-m4 - tiny test board" in result.stdout


def test_a_model_too_big_for_the_board_names_needed_and_available_bytes(tmp_path):
    plugins = _tiny_board_plugin(tmp_path / "plugins", 8 * 1024)
    model = mlperf_model("kws_ref_model.tflite")
    result = scons(tmp_path / "build", "target=tiny-m4", f"model={model}", plugins=plugins)
    assert result.returncode != 0
    assert "RAM region RAM (8,192 B at 0x20000000, one of 2 RAM regions" in result.stderr
    assert "Traceback" not in result.stderr


def test_user_mistakes_get_one_clear_line_not_a_traceback(tmp_path):
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"\x00" * 64)
    cases = {
        f"model={corrupt}": "not a TFLite flatbuffer",
        "model=nonexistent.h5": "no such file",
        "target=z80": "unknown target 'z80'",
        "toolchain=/nonexistent": "no arm-none-eabi-gcc there",
        "sim=gem5": "unknown simulator",
        "kernels=fast": "Invalid value for enum variable 'kernels'",
    }
    for arg, message in cases.items():
        result = scons(tmp_path / "build", arg)
        assert result.returncode != 0, arg
        assert message in result.stderr, (arg, result.stderr)
        assert "Traceback" not in result.stderr and ".py, line" not in result.stderr, arg


def test_missing_toolchain_says_how_to_install_one(tmp_path):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    env.pop("TINYBUILD_TOOLCHAIN", None)
    result = scons(tmp_path / "build", "target=cortex-m4", "model=kws.h5", env=env)
    assert result.returncode != 0
    assert "apt-get install gcc-arm-none-eabi" in result.stderr
    assert "Traceback" not in result.stderr
