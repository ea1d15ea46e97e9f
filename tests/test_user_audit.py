"""What a new user's audit of the documented commands found (engineer F,
session 6): bad input that gave a traceback, two lines or nothing at all.
Each test failed before its fix. Fast: scons stops while declaring the build
(no TensorFlow, no compiler)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tbtest import ROOT, mlperf_model
from tinybuild import plugins, report, scons_tool
from tinybuild.errors import TinybuildError

SCONS = Path(sys.executable).with_name("scons")
TINY = ROOT / "tests" / "data" / "tiny_int8.tflite"


def scons(build_dir, *args):
    return subprocess.run([str(SCONS), "-C", str(ROOT), "-Q", f"build_dir={build_dir}", *args],
                          capture_output=True, text=True, timeout=600)


def one_error_line(result) -> str:
    """The run failed with exactly one `tinybuild: error:` line and no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "File \"" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("tinybuild: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_a_folder_as_model_is_one_line_not_an_scons_traceback(tmp_path):
    folder = tmp_path / "net.tflite"          # a folder with a model's suffix
    folder.mkdir()
    line = one_error_line(scons(tmp_path / "build", f"model={folder}"))
    assert f"model={folder}" in line and "is a folder without saved_model.pb" in line


def test_an_empty_model_is_one_line_not_the_project_folder(tmp_path):
    line = one_error_line(scons(tmp_path / "build", "model="))
    assert "model= is empty" in line


def test_an_empty_build_dir_is_refused_before_the_project_folder_gets_a_lock(tmp_path):
    locks = {p: p.exists() for p in (ROOT / ".lock", ROOT / ".sconsign.dblite")}
    result = subprocess.run([str(SCONS), "-C", str(ROOT), "-Q", "build_dir=", f"model={TINY}"],
                            capture_output=True, text=True, timeout=600)
    assert "build_dir= is empty" in one_error_line(result)
    assert {p: p.exists() for p in locks} == locks


def test_a_saved_model_folder_is_a_model_with_every_file_a_source(tmp_path):
    """The converter reads SavedModel folders and its errors recommend them;
    scons refused them ("unsupported format ''")."""
    folder = tmp_path / "net_savedmodel"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"pb")
    (folder / "variables" / "variables.index").write_bytes(b"ix")
    assert scons_tool.resolve_model(str(folder), ROOT) == folder.resolve()
    from SCons.Environment import Environment
    names = [node.name for node in scons_tool.model_files(Environment(tools=[]), folder)]
    assert names == ["saved_model.pb", "variables.index"]


def test_a_folder_as_calibration_is_one_line_not_an_scons_traceback(tmp_path):
    line = one_error_line(scons(tmp_path / "build", f"model={TINY}", f"calibration={tmp_path}"))
    assert f"calibration={tmp_path}: a folder" in line


@pytest.mark.parametrize("setting", ["verbose=2", "upload=maybe"])
def test_a_bad_yes_no_value_is_one_line_saying_what_it_takes(tmp_path, setting):
    result = scons(tmp_path / "build", f"model={TINY}", setting)
    line = one_error_line(result)
    name, value = setting.split("=")
    assert f"'{name}'" in line and f"'{value}'" in line and "yes, no" in line
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr   # was two lines


def test_a_misspelled_plugins_folder_stops_the_build(tmp_path):
    missing = tmp_path / "my_boards"
    line = one_error_line(scons(tmp_path / "build", f"model={TINY}", f"plugins={missing}"))
    assert f"plugins={missing}: no such plugin folder or file" in line


def test_a_plugins_file_that_is_not_python_is_named(tmp_path):
    with pytest.raises(TinybuildError, match=r"^plugins=.*tiny_int8\.tflite: a plugin file must be"):
        plugins.make_plugin_manager([TINY])


def test_a_misspelled_tinybuild_plugins_entry_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYBUILD_PLUGINS", str(tmp_path / "nope"))
    with pytest.raises(TinybuildError, match=r"^TINYBUILD_PLUGINS=.*nope: no such plugin folder"):
        plugins.make_plugin_manager([])


def test_an_existing_plugins_folder_and_file_still_load(tmp_path):
    (tmp_path / "extra.py").write_text("X = 1\n")
    pm = plugins.make_plugin_manager([tmp_path, tmp_path / "extra.py"])
    assert any(name.endswith("_extra") for name, _ in pm.list_name_plugin())


def test_the_summary_says_1_input_not_1_inputs():
    assert report.validation_line({"match": True, "inputs": 1}).endswith("byte for byte (1 input)")
    assert report.validation_line({"match": True, "inputs": 4}).endswith("byte for byte (4 inputs)")


@pytest.mark.slow
def test_an_export_of_an_earlier_build_does_not_outlive_a_changed_build(tmp_path):
    """export=c, then the same model at opt=O1 without export=: the O2 export
    (its README says -O2, its model.c may be an older model's) is removed."""
    build = tmp_path / "build"
    export_dir = build / "cortex-m4" / "tiny_int8" / "export"
    first = scons(build, f"model={TINY}", "inputs=1", "export=c")
    assert first.returncode == 0, first.stderr
    assert "-O2" in (export_dir / "c" / "README.md").read_text()
    again = scons(build, f"model={TINY}", "inputs=1")          # unchanged: the export stays
    assert again.returncode == 0 and (export_dir / "c.zip").is_file(), again.stderr
    changed = scons(build, f"model={TINY}", "inputs=1", "opt=O1")
    assert changed.returncode == 0, changed.stderr
    assert not export_dir.exists()
    exported = scons(build, f"model={TINY}", "inputs=1", "opt=O1", "export=c")
    assert exported.returncode == 0, exported.stderr
    assert "-O1" in (export_dir / "c" / "README.md").read_text()


@pytest.mark.slow
def test_a_saved_model_folder_builds_and_matches_tflite(tmp_path):
    model = mlperf_model("kws_ref_model_savedmodel")
    result = scons(tmp_path / "build", f"model={model}", "inputs=1")
    assert result.returncode == 0, result.stderr
    assert "output matches TFLite reference: yes, byte for byte (1 input)" in result.stdout
    record = (tmp_path / "build" / "models" / "kws_ref_model_savedmodel" / "convert.json")
    assert '"loader": "saved_model"' in record.read_text()


class _Sim:
    name = "fake"

    def __init__(self, usable):
        self.usable = usable

    def supports(self, target):
        return True

    def available(self):
        return (True, "ok") if self.usable else (False, "fake-sim is not on PATH")


def test_a_requested_simulator_that_cannot_run_here_stops_before_the_build():
    """sim=renode without Renode compiled and linked everything, then failed at the run."""
    target = plugins.find_target(plugins.make_plugin_manager([]), "cortex-m4")
    with pytest.raises(TinybuildError, match=r"^sim=fake: not usable here: fake-sim is not on PATH"):
        scons_tool.choose_simulator("fake", target, {"fake": _Sim(False)})
    assert scons_tool.choose_simulator("fake", target, {"fake": _Sim(True)})[0].usable


def test_doctor_checks_the_kernel_plugins_a_build_would_stop_on(tmp_path, capsys):
    from tinybuild import cli
    (tmp_path / "bad_kernels.py").write_text(
        "from tinybuild.hookspecs import hookimpl\n"
        "@hookimpl\ndef tinybuild_kernels(target):\n    return [object()]\n")
    assert cli.main(["--plugins", str(tmp_path), "doctor"]) == 2
    out = capsys.readouterr().out
    assert "error: plugin" in out and "not a tinybuild.kernel_registry.KernelImpl" in out
    assert cli.main(["doctor"]) == 0
    assert "optimized kernels per target: cortex-m4 " in capsys.readouterr().out


def test_target_all_gives_each_board_the_export_kinds_it_can_take():
    from tinybuild import export
    pm = plugins.make_plugin_manager()
    boards = plugins.targets(pm)
    assert export.kinds_for_board(["c", "esp-idf"], boards["esp32c3"]) == ["c", "esp-idf"]
    assert export.kinds_for_board(["c", "esp-idf"], boards["cortex-m4"]) == ["c"]
    assert export.kinds_for_board(["esp-idf"], boards["riscv"]) == []
    with pytest.raises(TinybuildError, match="not an ESP32 chip"):   # one target still stops
        export.check_kinds(["esp-idf"], boards["cortex-m4"])
