"""Boards as plugins: RISC-V (GD32VF103), the ESP32 family, the example nRF52840
plugin, builds that cannot be simulated, and ``target=all``.

The fast tests check the boards' descriptions, linker scripts, toolchain
discovery and cycle tables; the ones marked slow build real firmware, run it in
the default simulator and validate it against TFLite (CI runs them).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tbtest import ROOT, mlperf_model
from tinybuild import linkcheck, plugins

if str(ROOT) not in sys.path:          # the built-in sim/ folder is not an installed package
    sys.path.insert(0, str(ROOT))

SCONS = Path(sys.executable).with_name("scons")
RISCV_GCC = shutil.which("riscv64-unknown-elf-gcc")
ARM_GCC = shutil.which("arm-none-eabi-gcc")
needs_riscv = pytest.mark.skipif(not RISCV_GCC, reason="riscv64-unknown-elf-gcc not installed")
needs_arm = pytest.mark.skipif(not ARM_GCC, reason="arm-none-eabi-gcc not installed")


def scons(build_dir, *args, env=None, plugins=None, timeout=900):
    cmd = [str(SCONS), "-C", str(ROOT), "-Q", f"build_dir={build_dir}", *args]
    if plugins:
        cmd.append(f"plugins={plugins}")
    return subprocess.run(cmd, capture_output=True, text=True, env=env or os.environ.copy(),
                          timeout=timeout)


def _report(build, target, model):
    return json.loads((Path(build) / target / model / "report.json").read_text())


@pytest.fixture(scope="module")
def pm():
    return plugins.make_plugin_manager()


@pytest.fixture(scope="module")
def known(pm):
    return plugins.targets(pm)


# -- the boards' descriptions -------------------------------------------------------


def test_new_boards_come_from_their_plugins(known):
    assert {"riscv", "esp32c3", "esp32", "esp32s3", "nrf52840"} <= set(known)
    riscv, c3 = known["riscv"], known["esp32c3"]
    assert "targets/riscv/plugin.py" in riscv.plugin and "targets/esp32/plugin.py" in c3.plugin
    assert known["esp32"].plugin == known["esp32s3"].plugin == c3.plugin   # one plugin, one family
    assert "plugins/nrf52840.py" in known["nrf52840"].plugin
    # GD32VF103CB: 128 KiB flash at 0x08000000, 32 KiB SRAM at 0x20000000, 108 MHz
    assert [(r.name, r.origin, r.length, r.kind) for r in riscv.memory] == [
        ("FLASH", 0x0800_0000, 128 * 1024, "flash"), ("RAM", 0x2000_0000, 32 * 1024, "ram")]
    assert riscv.clock_hz == 108_000_000 and riscv.arch == "riscv32"
    assert c3.clock_hz == 160_000_000 and c3.region_of(0x4200_0000).name == "IROM"
    assert c3.region_of(0x3C00_0000).name == "DROM" and c3.region_of(0x3FC8_0000).kind == "ram"
    for name in ("esp32", "esp32s3"):
        assert known[name].arch == "xtensa" and known[name].clock_hz == 240_000_000
        assert known[name].default_simulator == ""        # sized only
    assert known["nrf52840"].memory[0].origin == 0 and known["nrf52840"].capacity("ram") == 256 * 1024


@pytest.mark.parametrize("name", ["riscv", "esp32c3", "esp32", "esp32s3", "nrf52840", "cortex-m4",
                                  "mps2-an386"])
def test_linker_script_follows_the_conventions(known, name):
    """Regions named and sized as the plugin's memory map; .noinit, .stack
    with __stack_start__/__stack_end__, and the symbols the startup copies."""
    target = known[name]
    script = target.linker_script.read_text()
    assert linkcheck.script_memory(target.linker_script) == \
        {r.name: (r.origin, r.length) for r in target.memory}
    assert target.problems() == [] and linkcheck.script_problems(target) == []
    for needle in (".noinit (NOLOAD)", "__stack_start__", "__stack_end__", "_sidata", "_sbss",
                   "_ebss", "ENTRY("):
        assert needle in script, (name, needle)
    assert all(p.is_file() for p in target.startup_sources)


@needs_riscv
def test_riscv_multilibs_exist_for_both_cores():
    """GCC 12 picks the multilib by the exact -march: rv32imac has its own,
    rv32imc reuses rv32im (and an _zicsr suffix would fall back to rv64)."""
    def multi_dir(march):
        return subprocess.run([RISCV_GCC, f"-march={march}", "-mabi=ilp32", "-print-multi-directory"],
                              capture_output=True, text=True).stdout.strip()
    assert multi_dir("rv32imac") == "rv32imac/ilp32"
    assert multi_dir("rv32imc") == "rv32im/ilp32"
    specs = subprocess.run([RISCV_GCC, "--specs=picolibc.specs", "-march=rv32imac", "-mabi=ilp32",
                            "-print-file-name=picolibc.ld"], capture_output=True, text=True)
    assert specs.returncode == 0


# -- cycle models --------------------------------------------------------------------


def test_riscv_cycle_models_are_per_core():
    from sim.unicorn import timing
    e31, bb, c3 = (timing.MODELS[k] for k in ("rv32-e31", "rv32-bumblebee", "rv32-esp32c3"))
    mul = 0x02B50533          # mul a0, a0, a1
    mulh = 0x02B51533         # mulh a0, a0, a1
    div = 0x02B54533          # div a0, a0, a1
    lw = 0x0005A503           # lw a0, 0(a1)
    jal = 0x008000EF          # jal ra, +8
    c_j = 0xA001              # c.j 0
    assert timing.rv_decode(mul, 4) == timing.rv_decode(mul, 4, e31) == (1, 10, 4)
    assert timing.rv_decode(div, 4, e31)[0] == 33 and timing.rv_decode(lw, 4, e31) == (1, 10, 1)
    assert timing.rv_decode(mul, 4, bb) == (1, 10, 0) and timing.rv_decode(div, 4, bb)[0] == 33
    assert timing.rv_decode(mulh, 4, c3)[0] == 5 and timing.rv_decode(div, 4, c3)[0] == 35
    # ESP32-C3: a jump costs its taken penalty only (2), a taken branch 1 + 2
    assert timing.rv_decode(jal, 4, c3)[0] == 0 and timing.rv_decode(c_j, 2, c3)[0] == 0
    assert c3.taken_penalty == 2 and bb.taken_penalty == 1
    assert timing.rv_decode(jal, 4, e31)[0] == 1 and timing.rv_decode(c_j, 2, bb)[0] == 1


def test_boards_name_cycle_models_the_simulator_has(known):
    from sim.unicorn import timing
    for name in ("riscv", "esp32c3", "nrf52840", "cortex-m4"):
        model = known[name].timing_model
        assert model in timing.MODELS and timing.MODELS[model].arch == known[name].arch


# -- Espressif's Xtensa toolchains ---------------------------------------------------


def _fake_gcc(bin_dir: Path, triple: str, version: str) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    gcc = bin_dir / f"{triple}-gcc"
    gcc.write_text(f"#!/bin/sh\necho {version}\n")
    gcc.chmod(0o755)
    return bin_dir


def _no_xtensa_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    monkeypatch.setenv("IDF_TOOLS_PATH", str(tmp_path / "espressif"))
    monkeypatch.delenv("TINYBUILD_TOOLCHAIN", raising=False)


def test_xtensa_toolchain_from_esp_idf_tools_folder(tmp_path, monkeypatch, pm, known):
    _no_xtensa_path(monkeypatch, tmp_path)
    tools = tmp_path / "espressif" / "tools"
    assert pm.hook.tinybuild_find_toolchain(target=known["esp32"], explicit_path=None) is None
    # ESP-IDF <= 5.1: one toolchain per chip; >= 5.2: xtensa-esp-elf with per-chip wrappers
    _fake_gcc(tools / "xtensa-esp32-elf" / "esp-2022r1-11.2.0" / "xtensa-esp32-elf" / "bin",
              "xtensa-esp32-elf", "11.2.0")
    unified = tools / "xtensa-esp-elf" / "esp-13.2.0_20240530" / "xtensa-esp-elf" / "bin"
    _fake_gcc(unified, "xtensa-esp32s3-elf", "13.2.0")
    tc = pm.hook.tinybuild_find_toolchain(target=known["esp32"], explicit_path=None)
    assert (tc.source, tc.version, tc.triple) == ("ESP-IDF", "11.2.0", "xtensa-esp32-elf")
    tc = pm.hook.tinybuild_find_toolchain(target=known["esp32s3"], explicit_path=None)
    assert tc.bin_dir == unified and tc.tool("gcc").endswith("xtensa-esp32s3-elf-gcc")
    # PATH (ESP-IDF's export.sh) comes first; the RISC-V boards are not the provider's business
    on_path = _fake_gcc(tmp_path / "idf-path", "xtensa-esp32-elf", "14.2.0")
    monkeypatch.setenv("PATH", f"{on_path}{os.pathsep}{Path(sys.executable).parent}")
    tc = pm.hook.tinybuild_find_toolchain(target=known["esp32"], explicit_path=None)
    assert (tc.source, tc.version) == ("PATH", "14.2.0")
    from tinybuild_builtin_targets_esp32.plugin import find_espressif_toolchain
    assert find_espressif_toolchain(known["esp32c3"]) is None


def test_missing_xtensa_toolchain_names_esp_idf_install_no_traceback(tmp_path):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path),
           "IDF_TOOLS_PATH": str(tmp_path / "espressif")}
    env.pop("TINYBUILD_TOOLCHAIN", None)
    for chip in ("esp32", "esp32s3"):
        result = scons(tmp_path / "build", f"target={chip}", "model=kws.h5", env=env, timeout=120)
        assert result.returncode != 0
        assert f"no xtensa-{chip}-elf-gcc found for target '{chip}'" in result.stderr
        assert f"install.sh {chip}" in result.stderr
        assert "Traceback" not in result.stderr


def test_sim_that_cannot_run_the_board_is_refused(tmp_path):
    result = scons(tmp_path / "build", "target=esp32", "sim=unicorn", "model=kws.h5", timeout=120)
    assert result.returncode != 0
    assert "sim=unicorn cannot run target 'esp32' (xtensa, lx6)" in result.stderr
    assert "Traceback" not in result.stderr


def test_targets_command_shows_toolchain_status_of_each_board(tmp_path):
    env = {**os.environ, "IDF_TOOLS_PATH": str(tmp_path / "espressif")}
    out = subprocess.run([sys.executable, "-m", "tinybuild", "targets"], capture_output=True,
                         text=True, env=env, cwd=ROOT).stdout
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert {"riscv", "esp32c3", "esp32", "esp32s3", "nrf52840"} <= set(rows)
    assert "GD32VF103CB" in rows["riscv"] and "108 MHz" in rows["riscv"] and "128/32" in rows["riscv"]
    assert "none (sized only)" in rows["esp32"]
    if not shutil.which("xtensa-esp32-elf-gcc"):
        assert "missing (ESP-IDF's installer" in rows["esp32"] and "install.sh esp32 " in rows["esp32"]
    if RISCV_GCC:
        assert "unicorn" in rows["esp32c3"] and "riscv64-unknown-elf-gcc 12" in rows["riscv"]


# -- end to end (slow) ---------------------------------------------------------------


@pytest.mark.slow
@needs_riscv
@pytest.mark.parametrize("target", ["riscv", "esp32c3"])
def test_riscv_boards_build_simulate_validate_kws_then_rebuild_nothing(tmp_path, target):
    build = tmp_path / "build"
    first = scons(build, f"target={target}", "model=kws.h5")
    assert first.returncode == 0, first.stderr
    assert "output matches TFLite reference: yes, byte for byte (4 inputs)" in first.stdout
    r = _report(build, target, "kws")
    assert r["validation"]["match"] and r["toolchain"]["triple"] == "riscv64-unknown-elf"
    assert r["inference"]["instructions"] > r["model"]["macs"]
    # the per-core cycle model is in use: cycles are not just instructions
    assert r["inference"]["cycles"] > r["inference"]["instructions"]
    assert 0 < r["stack"]["peak_bytes"] < r["stack"]["reserved_bytes"]
    assert 0 < r["flash"]["used"] <= r["flash"]["capacity"] and r["ram"]["used"] <= r["ram"]["capacity"]
    assert r["groups"]["libc"]["flash"] > 0            # picolibc's memcpy/memset
    poison = tmp_path / "poison" / "tensorflow"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('TensorFlow imported on a no-op build')\n")
    env = {**os.environ, "PYTHONPATH": str(poison.parent)}
    again = scons(build, f"target={target}", "model=kws.h5", "--question", env=env)
    assert again.returncode == 0, again.stdout + again.stderr


@pytest.mark.slow
@needs_riscv
@pytest.mark.parametrize("target", ["riscv", "esp32c3"])
def test_riscv_boards_run_the_mlperf_kws_reference_model(tmp_path, target):
    model = mlperf_model("kws_ref_model.tflite")
    result = scons(tmp_path, f"target={target}", f"model={model}")
    assert result.returncode == 0, result.stderr
    r = _report(tmp_path, target, "kws_ref_model")
    assert r["model"]["macs"] == 2_656_768 and r["validation"]["match"]
    assert r["inference"]["cycles"] > r["inference"]["instructions"]


@pytest.mark.slow
@needs_arm
def test_example_nrf52840_plugin_is_discovered_built_and_validated(tmp_path):
    model = mlperf_model("kws_ref_model.tflite")
    result = scons(tmp_path, "target=nrf52840", f"model={model}")
    assert result.returncode == 0, result.stderr
    assert "kws_ref_model on nrf52840 - nRF52840" in result.stdout
    r = _report(tmp_path, "nrf52840", "kws_ref_model")
    assert r["validation"]["match"] and r["target"]["clock_hz"] == 64_000_000
    assert r["ram"]["capacity"] == 256 * 1024 and "plugins/nrf52840.py" in r["target"]["plugin"]
    # the Cortex-M4 cycle model at 64 MHz
    assert r["inference"]["ms"] == pytest.approx(r["inference"]["cycles"] / 64e3, rel=1e-3)


UNSIMULATED_BOARD = '''
from dataclasses import replace
from pathlib import Path
from tinybuild.hookspecs import hookimpl
from tinybuild.plugins import PROJECT_ROOT
from tinybuild.target import MemoryRegion, Target

# Compiled with the Arm toolchain, but described as a core no simulator runs:
# the path an Xtensa board takes where Espressif's toolchain is installed.
@hookimpl
def tinybuild_targets():
    m4 = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
    return [Target(name="lx-standin", description="test", board="Stand-in board", arch="xtensa",
                   cpu="lx6", triple="arm-none-eabi", clock_hz=240_000_000,
                   memory=(MemoryRegion("FLASH", 0, 1024 * 1024, "flash"),
                           MemoryRegion("RAM", 0x20000000, 256 * 1024, "ram")),
                   cflags=m4, ldflags=m4 + ("--specs=nano.specs", "--specs=nosys.specs"),
                   linker_script=PROJECT_ROOT / "plugins" / "nrf52840.ld",
                   startup_sources=(PROJECT_ROOT / "targets/cortex_m4/startup_stm32f407.c",),
                   default_simulator="")]
'''


@pytest.mark.slow
@needs_arm
def test_a_board_no_simulator_runs_is_built_and_sized_with_a_note(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "standin.py").write_text(UNSIMULATED_BOARD)
    model = mlperf_model("kws_ref_model.tflite")
    result = scons(tmp_path / "build", "target=lx-standin", f"model={model}", plugins=folder)
    assert result.returncode == 0, result.stderr
    assert "[simulate]" not in result.stderr and "[reference]" not in result.stderr
    assert "not simulated: no simulator here runs xtensa (lx6). Built, linked and sized only" \
        in result.stdout
    r = _report(tmp_path / "build", "lx-standin", "kws_ref_model")
    assert r["inference"] is None and r["validation"]["match"] is None
    assert r["flash"]["used"] > 0 and r["arena"]["bytes"] >= r["arena"]["lower_bound"] > 0
    assert (tmp_path / "build" / "lx-standin" / "kws_ref_model" / "firmware.elf").exists()
    assert "not simulated" in (tmp_path / "build" / "lx-standin" / "kws_ref_model" / "report.md").read_text()


@pytest.mark.slow
@needs_riscv
@needs_arm
def test_target_all_builds_every_board_with_a_toolchain_and_prints_one_table(tmp_path):
    build = tmp_path / "build"
    env = {**os.environ, "IDF_TOOLS_PATH": str(tmp_path / "espressif")}
    # -k: a board another plugin adds (and breaks) must not hide these rows
    result = scons(build, "-j2", "-k", "target=all", "model=kws.h5", env=env)
    out = result.stdout
    assert "tinybuild: kws on every board with a toolchain" in out, result.stderr
    table = out[out.index("tinybuild: kws on every board"):].splitlines()
    rows = {line.split()[0]: line for line in table[2:] if line.startswith("  ") and
            not line.startswith(("  skipped", "  reports"))}
    for name in ("cortex-m4", "riscv", "esp32c3", "nrf52840"):
        assert name in rows and rows[name].rstrip().endswith("yes"), (name, out, result.stderr)
        assert _report(build, name, "kws")["validation"]["match"]
    assert "MHz" in rows["riscv"] and "108 MHz" in rows["riscv"]
    if result.returncode != 0:      # only another plugin's board may have failed
        assert all("FAILED" not in rows[n] for n in ("cortex-m4", "riscv", "esp32c3", "nrf52840"))
    if not shutil.which("xtensa-esp32-elf-gcc"):
        skipped = [line for line in table if line.startswith("  skipped esp32:")]
        assert len(skipped) == 1 and "install.sh esp32" in skipped[0]
    # the model is converted once for every board
    assert len(re.findall(r"^\[convert\] .*/models/kws$", out, flags=re.M)) == 1

    poison = tmp_path / "poison" / "tensorflow"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('TensorFlow imported on a no-op build')\n")
    env = {**env, "PYTHONPATH": str(poison.parent)}
    if result.returncode == 0:
        again = scons(build, "target=all", "model=kws.h5", "--question", "--debug=explain", env=env)
        assert again.returncode == 0, again.stdout + again.stderr
    noop = scons(build, "-k", "target=all", "model=kws.h5", env=env)
    assert "[convert]" not in noop.stderr and "[simulate]" not in noop.stderr
    assert "tinybuild: kws on every board with a toolchain" in noop.stdout
