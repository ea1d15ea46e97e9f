"""The SCons side against hostile input: no shell, no `$` substitution,
checked variables, clear failures, no stale results, one build per folder.

Fast tests run `scons` in a subprocess on tests/data/tiny_int8.tflite (a
copied .tflite: no TensorFlow) and stop before the TFLite reference step
(a command-line target such as firmware.elf), or use a fake compiler. Tests
that validate against TFLite are marked slow.
"""
import errno
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tbtest import ROOT
from tinybuild import scons_tool, toolchains
from tinybuild.errors import TinybuildError

SCONS = Path(sys.executable).with_name("scons")
TINY = ROOT / "tests" / "data" / "tiny_int8.tflite"
# Every shell and SCons metacharacter, quotes, a space and non-ASCII: each
# `touch` would leave a marker file if anything ran the name through a shell.
HOSTILE = "m,;touch MARK1|&$x${CC}$(touch MARK2)`touch MARK3`q'\"é "
needs_arm_gcc = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                                   reason="arm-none-eabi-gcc not installed")


def scons(build_dir, *args, env=None, cwd=None, timeout=600):
    cmd = [str(SCONS), "-C", str(ROOT), "-Q", f"build_dir={build_dir}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env or os.environ.copy(),
                          timeout=timeout, cwd=cwd)


def assert_one_clear_error(result, *phrases):
    assert result.returncode != 0, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("tinybuild: error:")]
    assert len(errors) == 1, result.stderr
    for phrase in phrases:
        assert phrase in errors[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def no_markers(*folders) -> bool:
    return not any(p.name.startswith("MARK") for f in folders for p in Path(f).rglob("*"))


def fake_toolchain(folder: Path, compile_body: str) -> Path:
    """A toolchain folder whose arm-none-eabi-gcc answers -dumpfullversion
    and otherwise runs ``compile_body`` (sh)."""
    folder.mkdir(parents=True, exist_ok=True)
    gcc = folder / "arm-none-eabi-gcc"
    gcc.write_text("#!/bin/sh\n"
                   'if [ "$1" = -dumpfullversion ]; then echo 12.2.1; exit 0; fi\n' + compile_body)
    gcc.chmod(0o755)
    return folder


def tiny_copy(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / name
    shutil.copyfile(TINY, model)
    return model


# -- variables ------------------------------------------------------------------------

def test_a_misspelled_variable_stops_the_build_naming_the_closest_one(tmp_path):
    result = scons(tmp_path / "build", "targt=riscv")
    assert_one_clear_error(result, "'targt'", "did you mean 'target'")
    assert not (tmp_path / "build").exists()


@pytest.mark.parametrize("name, text, phrase", [
    ("inputs", "0", "from 1 to 1000"), ("inputs", "abc", "from 1 to 1000"),
    ("inputs", "1001", "from 1 to 1000"), ("seed", "-1", "from 0 to 4294967295"),
    ("seed", "abc", "from 0 to 4294967295"), ("seed", str(2**32), "from 0 to 4294967295"),
    ("max_instructions", "abc", "positive whole number"),
    ("max_instructions", "0", "positive whole number"),
    ("max_instructions", "1.5e0", "positive whole number"),
    ("max_instructions", "inf", "positive whole number"),
    ("sim_timeout", "nan", "positive, finite"), ("sim_timeout", "0", "positive, finite"),
    ("sim_timeout", "-5", "positive, finite"), ("sim_timeout", "inf", "positive, finite"),
    ("compile_timeout", "0", "positive, finite"),
])
def test_bad_numbers_name_the_variable_and_what_it_accepts(name, text, phrase):
    env = {"inputs": "4", "seed": "1", "max_instructions": "2e9", "sim_timeout": "600",
           "compile_timeout": "300", name: text}
    with pytest.raises(TinybuildError) as err:
        scons_tool.check_numbers(env)
    assert str(err.value).startswith(f"{name}={text}: must be") and phrase in str(err.value)


def test_good_numbers_are_parsed():
    env = {"inputs": "1000", "seed": str(2**32 - 1), "max_instructions": "2e9",
           "sim_timeout": "0.5", "compile_timeout": "300"}
    scons_tool.check_numbers(env)
    assert env == {"inputs": 1000, "seed": 2**32 - 1, "max_instructions": 2_000_000_000,
                   "sim_timeout": 0.5, "compile_timeout": 300.0}


def test_a_bad_number_stops_before_anything_is_declared_or_written(tmp_path):
    result = scons(tmp_path / "build", f"model={TINY}", "inputs=0")
    assert_one_clear_error(result, "inputs=0: must be a whole number from 1 to 1000")
    assert not (tmp_path / "build").exists()      # no empty reference files either


def test_help_lists_every_variable():
    result = subprocess.run([str(SCONS), "-C", str(ROOT), "-Q", "-h"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for name in ("target", "model", "sim", "calibration", "toolchain", "opt", "kernels", "inputs",
                 "seed", "max_instructions", "sim_timeout", "compile_timeout", "plugins",
                 "cachedir", "build_dir", "verbose", "debug", "manifest", "baseline",
                 "update_baseline", "shard", "regress_out"):
        assert f"\n{name}: " in result.stdout, name


def test_a_bad_toolchain_from_the_environment_names_the_environment_variable(monkeypatch):
    from tinybuild import plugins
    target = plugins.find_target(plugins.make_plugin_manager(), "cortex-m4")
    monkeypatch.setenv("TINYBUILD_TOOLCHAIN", "/nonexistent/bin")
    with pytest.raises(TinybuildError, match=r"^TINYBUILD_TOOLCHAIN=/nonexistent/bin: no arm"):
        toolchains.find_explicit(target, None)
    with pytest.raises(TinybuildError, match=r"^toolchain=/elsewhere: no arm"):
        toolchains.find_explicit(target, "/elsewhere")


# -- hostile names: no shell, no `$` substitution ------------------------------------------

@needs_arm_gcc
def test_hostile_model_and_build_folder_names_build_that_exact_file(tmp_path):
    """Compiles and links (no TFLite reference: the ELF is the command-line target)."""
    model = tiny_copy(tmp_path / "models", HOSTILE + ".tflite")
    # A decoy where `${CC}` substituted to `gcc` would point: it must not be read.
    (tmp_path / "models" / HOSTILE.replace("${CC}", "gcc")).with_suffix(".tflite") \
        .write_bytes(b"decoy")
    build = tmp_path / ("bd;touch MARK4;$CC`touch MARK5`$(touch MARK6) é'\"")
    elf = build / "cortex-m4" / HOSTILE / "firmware.elf"
    result = scons(build, "target=cortex-m4", f"model={model}", str(elf), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert elf.is_file() and (elf.parent / "model.c").is_file()
    record = json.loads((build / "models" / HOSTILE / "convert.json").read_text())
    assert record["source"] == str(model)
    assert no_markers(tmp_path, ROOT)


@pytest.mark.parametrize("where", ["model", "build_dir"])
def test_a_newline_in_a_name_the_compiler_output_cannot_carry_is_one_clear_line(tmp_path, where):
    model = tiny_copy(tmp_path, "bad\nname.tflite" if where == "model" else "tiny.tflite")
    build = tmp_path / ("bad\nbuild" if where == "build_dir" else "build")
    result = scons(build, f"model={model}")
    assert_one_clear_error(result, f"{where}=", "\\x0a", "control character", "rename")
    assert not any("\n" in p.name for p in tmp_path.rglob("*") if p != model)


def test_an_unusable_build_folder_is_one_clear_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    result = scons(tmp_path / "file" / "build", f"model={TINY}")
    assert_one_clear_error(result, "build_dir=", "cannot create or write", "writable folder")


# -- compiler failures ------------------------------------------------------------------

def test_a_hanging_compiler_is_stopped_with_one_line_naming_file_and_compiler(tmp_path):
    pid_file = tmp_path / "gcc.pid"
    tools = fake_toolchain(tmp_path / "tc", f'echo $$ > "{pid_file}"\nexec sleep 600\n')
    build = tmp_path / "build"
    elf = build / "cortex-m4" / "tiny_int8" / "firmware.elf"
    result = scons(build, f"model={TINY}", f"toolchain={tools}", "compile_timeout=1", str(elf))
    assert_one_clear_error(result, "compiling ", "model.c", str(tools / "arm-none-eabi-gcc"),
                           "did not finish within 1 s", "compile_timeout=")
    assert not _running(int(pid_file.read_text()))
    assert not (elf.parent / "model.o").exists()


def test_a_failing_compiler_shows_its_messages_and_one_line(tmp_path):
    tools = fake_toolchain(tmp_path / "tc", 'echo "model.c:1: error: simulated" >&2\nexit 1\n')
    build = tmp_path / "build"
    elf = build / "cortex-m4" / "tiny_int8" / "firmware.elf"
    result = scons(build, f"model={TINY}", f"toolchain={tools}", str(elf))
    assert_one_clear_error(result, "model.c failed", "exited with 1")
    assert "error: simulated" in result.stderr


@pytest.mark.parametrize("jobs", ["-j1", "-j2"])     # the step in the main thread, or a worker
def test_ctrl_c_during_a_step_ends_with_interrupted_and_no_traceback(tmp_path, jobs):
    pid_file = tmp_path / "gcc.pid"
    tools = fake_toolchain(tmp_path / "tc", f'echo $$ > "{pid_file}"\nexec sleep 600\n')
    build = tmp_path / "build"
    cmd = [str(SCONS), "-C", str(ROOT), "-Q", jobs, f"build_dir={build}", f"model={TINY}",
           f"toolchain={tools}", str(build / "cortex-m4" / "tiny_int8" / "firmware.elf")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), proc)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        _kill(proc)
    assert proc.returncode != 0
    assert err.rstrip().endswith("tinybuild: interrupted"), err
    assert "Traceback" not in out + err
    assert not _running(int(pid_file.read_text()))
    assert "tinybuild: " not in out                    # no summary


def _wait_for(condition, proc, limit_s=300):
    deadline = time.monotonic() + limit_s
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.1)


def _kill(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())


# -- one build per folder ----------------------------------------------------------------

def test_a_second_build_in_the_same_folder_waits_for_the_first(tmp_path):
    tools = fake_toolchain(tmp_path / "tc", "exit 1\n")
    build = tmp_path / "build"
    build.mkdir()
    with open(build / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("4242\n")
        held.flush()
        cmd = [str(SCONS), "-C", str(ROOT), "-Q", "-c", f"build_dir={build}", f"model={TINY}",
               f"toolchain={tools}"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            line = _read_line(proc, "waiting for another tinybuild build")
            assert f"in {build} (pid 4242)" in line
            assert proc.poll() is None                  # still waiting while the lock is held
        except BaseException:
            _kill(proc)
            raise
    try:
        out, err = proc.communicate(timeout=120)        # released: it goes on
    finally:
        _kill(proc)
    assert proc.returncode == 0, err


def _read_line(proc, wanted: str, limit_s: float = 300) -> str:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 1)
        if ready:
            line = proc.stderr.readline()
            assert line, "scons ended without the line: " + wanted
            if wanted in line:
                return line
    raise AssertionError("no line: " + wanted)


# -- failing steps: one line, nothing stale left ------------------------------------------------

class _Node:
    def __init__(self, path):
        self.path = path

    def __str__(self):
        return str(self.path)


def test_a_full_disk_in_a_step_is_one_line_and_its_outputs_go(tmp_path, capsys):
    out = tmp_path / "report.json"
    later = tmp_path / "later.json"
    later.write_text("{}")

    def fill_disk(targets, sources, env):
        targets[0].write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(targets[0]))

    step = scons_tool._Step(fill_disk, "report", lambda: [later])
    assert step([_Node(out)], [], {}) == 1
    err = capsys.readouterr().err
    assert err == f"tinybuild: error: report: disk full writing {out}. Fix: free some space, " \
                  "or build elsewhere (build_dir=)\n"
    assert not out.exists() and not later.exists()


def test_an_unexpected_exception_in_a_step_is_one_line(tmp_path, capsys):
    step = scons_tool._Step(lambda t, s, e: {}["missing"], "size")
    assert step([_Node(tmp_path / "size.json")], [], {}) == 1
    assert capsys.readouterr().err == ("tinybuild: error: size: internal error: KeyError: "
                                       "'missing' (verbose=1 shows the traceback)\n")


def test_an_interrupted_step_removes_its_outputs_and_marks_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(scons_tool, "INTERRUPTED", scons_tool.threading.Event())
    out = tmp_path / "run.json"

    def interrupted(targets, sources, env):
        targets[0].write_text("half")
        raise KeyboardInterrupt

    assert scons_tool._Step(interrupted, "simulate")([_Node(out)], [], {}) != 0
    assert scons_tool.INTERRUPTED.is_set() and not out.exists()


def test_a_failed_step_keeps_only_the_record_its_message_names(tmp_path):
    record, stale = tmp_path / "validation.json", tmp_path / "report.json"
    for p in (record, stale):
        p.write_text("{}")
    scons_tool.remove_stale([record], [stale], keep_named_in=f"outputs differ. See {record}")
    assert record.exists() and not stale.exists()


def test_results_after_a_step_are_the_later_steps_files(tmp_path):
    names = [p.name for p in scons_tool.results_after([tmp_path], "simulate")]
    assert names == ["validation.json", "layers.json", "layers.svg", "report.json", "report.md",
                     "export"]
    assert len(scons_tool.results_after([tmp_path, tmp_path / "b"], None)) == \
        2 * sum(map(len, scons_tool.RESULT_FILES.values()))


def _small_ram_board(folder: Path, ram_bytes: int) -> Path:
    """The STM32F407 with a tiny RAM region (where the arena goes)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = (ROOT / "targets" / "cortex_m4" / "stm32f407.ld").read_text()
    script = script.replace("RAM   (rwx) : ORIGIN = 0x20000000, LENGTH = 128K",
                            f"RAM   (rwx) : ORIGIN = 0x20000000, LENGTH = {ram_bytes}")
    (folder / "small.ld").write_text(script)
    (folder / "small_board.py").write_text(textwrap.dedent(f'''
        from dataclasses import replace
        from pathlib import Path
        from tinybuild.hookspecs import hookimpl
        from tinybuild.target import MemoryRegion

        @hookimpl
        def tinybuild_targets():
            from tinybuild_builtin_targets_cortex_m4.plugin import STM32F407
            memory = (STM32F407.memory[0], MemoryRegion("RAM", 0x20000000, {ram_bytes}, "ram"),
                      STM32F407.memory[2])
            return [replace(STM32F407, name="small-m4", board="small test board", memory=memory,
                            linker_script=Path(__file__).parent / "small.ld")]
        '''))
    return folder


def test_an_arena_too_big_for_the_board_fails_at_code_generation_before_compiling(tmp_path):
    tools = fake_toolchain(tmp_path / "tc", 'touch "$0.ran"\nexit 1\n')
    plugins = _small_ram_board(tmp_path / "plugins", 64)
    result = scons(tmp_path / "build", "target=small-m4", f"model={TINY}", f"plugins={plugins}",
                   f"toolchain={tools}")
    assert_one_clear_error(result, "does not fit", "arena")
    assert "[cc]" not in result.stdout + result.stderr
    assert not (tools / "arm-none-eabi-gcc.ran").exists()
    assert not (tmp_path / "build" / "small-m4" / "tiny_int8" / "model.c").exists()


# -- slow: whole builds validated against TFLite ----------------------------------------

@pytest.mark.slow
@needs_arm_gcc
def test_hostile_names_build_simulate_and_validate(tmp_path):
    model = tiny_copy(tmp_path / "models", HOSTILE + ".tflite")
    build = tmp_path / ("bd;touch MARK4;$CC`touch MARK5` é'\"")
    result = scons(build, "target=cortex-m4", f"model={model}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "output matches TFLite reference: yes" in result.stdout
    report = json.loads((build / "cortex-m4" / HOSTILE / "report.json").read_text())
    assert report["validation"]["match"] and report["model"]["path"] == str(model)
    groups = report["groups"]                       # the map's model.o lines were understood
    assert groups["model code"]["flash"] > 0 and groups["weights"]["flash"] > 0
    assert groups["arena"]["ram"] == report["arena"]["bytes"]
    assert no_markers(tmp_path, ROOT)


KERNEL_PLUGIN = '''
import sys
from pathlib import Path
from tinybuild.hookspecs import hookimpl
from tinybuild.kernel_registry import KernelImpl

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "rules"))
import softmax_rules  # accepts and prepare live in a module of their own

@hookimpl
def tinybuild_kernels(target):
    return [KernelImpl("SOFTMAX", {function!r}, tuple(HERE / s for s in {sources!r}), priority=10,
                       accepts=softmax_rules.accepts, prepare=softmax_rules.prepare,
                       name="test softmax")]
'''

RULES = '''
from dataclasses import replace

def accepts(layer):
    return {accepts}

def prepare(layer):
    return replace(layer, notes=[*layer.notes, {note!r}])
'''

KERNEL_C = '''
#include "tb_kernels.h"
void {function}(const tb_softmax_params *p, const int8_t *in, int8_t *out) {{
  tb_softmax_s8(p, in, out);
  {tweak}
}}
'''


class _KernelPlugin:
    """A temporary kernel plugin whose parts a test edits between builds."""

    def __init__(self, root: Path):
        self.plugins, self.rules = root / "plugins", root / "rules"
        self.plugins.mkdir(parents=True)
        self.rules.mkdir()
        self.state = {"function": "test_softmax_a", "accepts": "True", "note": "v1",
                      "tweak": "", "sources": ["kernel.c", "extra.c"]}
        (self.plugins / "extra.c").write_text("int test_softmax_extra(void) { return 1; }\n")
        self.write()

    def write(self, **changes):
        self.state.update(changes)
        s = self.state
        (self.plugins / "test_softmax.py").write_text(
            KERNEL_PLUGIN.format(function=s["function"], sources=s["sources"]))
        (self.rules / "softmax_rules.py").write_text(RULES.format(accepts=s["accepts"], note=s["note"]))
        (self.plugins / "kernel.c").write_text(KERNEL_C.format(function=s["function"], tweak=s["tweak"]))


def _softmax_layer(build: Path) -> dict:
    plan = json.loads((build / "cortex-m4" / "tiny_int8" / "plan.json").read_text())
    return next(l for l in plan["layers"] if l["op"] == "SOFTMAX")


@pytest.mark.slow
@needs_arm_gcc
def test_every_kernel_plugin_edit_regenerates_and_validates(tmp_path):
    kernel = _KernelPlugin(tmp_path)
    build = tmp_path / "build"

    def plain_build():
        result = scons(build, "target=cortex-m4", f"model={TINY}", f"plugins={kernel.plugins}")
        assert result.returncode == 0, result.stderr
        assert "output matches TFLite reference: yes" in result.stdout
        return _softmax_layer(build)

    layer = plain_build()
    assert layer["kernel"] == "test_softmax_a" and "v1" in layer["notes"]
    kernel.write(function="test_softmax_b")                      # renamed, in .py and .c
    assert plain_build()["kernel"] == "test_softmax_b"
    kernel.write(note="v2")                                      # prepare changed
    assert "v2" in plain_build()["notes"]
    kernel.write(accepts="False")                                # accepts changed
    assert plain_build()["kernel"] == "tb_softmax_s8"
    kernel.write(accepts="True", sources=["kernel.c"])           # a source leaves the list
    assert plain_build()["kernel"] == "test_softmax_b"
    linked = (build / "cortex-m4" / "tiny_int8" / "firmware.map").read_text()
    assert "kernel.o" in linked and "extra.o" not in linked


@pytest.mark.slow
@needs_arm_gcc
def test_a_failed_validation_leaves_no_earlier_success_on_disk(tmp_path):
    kernel = _KernelPlugin(tmp_path)
    build = tmp_path / "build"
    args = ("target=cortex-m4", f"model={TINY}", f"plugins={kernel.plugins}")
    tdir = build / "cortex-m4" / "tiny_int8"
    assert scons(build, *args).returncode == 0
    assert json.loads((tdir / "report.json").read_text())["validation"]["match"]

    kernel.write(tweak="out[0] = (int8_t)(out[0] ^ 1);")         # a source edit: now wrong
    result = scons(build, *args)
    assert result.returncode != 0
    assert "differs from the TFLite reference" in result.stderr
    assert "output matches TFLite reference" not in result.stdout   # no summary after a failure
    assert not (tdir / "report.json").exists() and not (tdir / "report.md").exists()
    record = tdir / "validation.json"        # gone, or the failure's own record
    assert not record.exists() or json.loads(record.read_text())["match"] is False
    assert scons(build, *args, "--question").returncode != 0     # and it is not up to date

    kernel.write(tweak="")
    result = scons(build, *args)
    assert result.returncode == 0, result.stderr
    assert "output matches TFLite reference: yes" in result.stdout


IMPORTER_PLUGIN = '''
from tinybuild.hookspecs import hookimpl


def convert_tflite(src, dst, calibration, report_path, **kw):
    from tinybuild.convert import convert_model
    record = convert_model(src, dst, calibration, report_path, **kw)
    return {{**record, "importer_version": "{version}"}}


@hookimpl
def tinybuild_model_importers():
    return {{".tflite": convert_tflite}}
'''


@pytest.mark.slow
@needs_arm_gcc
def test_an_importer_edit_converts_the_model_again(tmp_path):
    """The conversion's signature holds the importer's code: no stale model.int8.tflite."""
    plugins, build = tmp_path / "plugins", tmp_path / "build"
    plugins.mkdir()

    def converted_by(version: str) -> str:
        (plugins / "my_importer.py").write_text(IMPORTER_PLUGIN.format(version=version))
        result = scons(build, "target=cortex-m4", f"model={TINY}", f"plugins={plugins}")
        assert result.returncode == 0, result.stderr
        return json.loads((build / "models" / "tiny_int8" / "convert.json").read_text())[
            "importer_version"]

    assert converted_by("v1") == "v1"
    assert converted_by("v2") == "v2"
