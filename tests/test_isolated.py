"""tinybuild.isolated: TensorFlow steps in a child process; every ending is a result or one line."""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tbtest import ROOT
from tinybuild import isolated, pipeline
from tinybuild.errors import TinybuildError

FIXTURE = ROOT / "tests" / "data" / "all_ops_int8.tflite"
ADVICE = "the file passed tinybuild's checks but TFLite cannot run it. Fix: re-export the model"


# -- functions the child runs (imported there by name, as pipeline's are) ----------------

def echo(value, note):
    print(note, file=sys.stderr, flush=True)
    return value


def refuse(message):
    raise TinybuildError(message)


def segfault():
    ctypes.string_at(0)  # a real SIGSEGV, as TFLite's on a damaged model


def divide(n):
    return 1 / n


def sleep_forever(pid_file):
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(3600)


def run(fn, *args):
    return isolated.run("reference", Path("/models/kws_m034_c.tflite"), fn, args,
                        engine="TensorFlow Lite", advice=ADVICE)


# -- results and errors --------------------------------------------------------------------

def test_result_comes_back_and_child_output_goes_through(capfd):
    assert run(echo, {"a": [1, b"\x00\xff"]}, "[reference] progress line") == {"a": [1, b"\x00\xff"]}
    assert "[reference] progress line" in capfd.readouterr().err


def test_tinybuild_error_in_child_is_the_same_line():
    with pytest.raises(TinybuildError) as info:
        run(refuse, "model.tflite: tensor 3 has int8 zero point 900; it must be in [-128, 127]. Fix: x")
    assert str(info.value) == ("model.tflite: tensor 3 has int8 zero point 900; it must be in "
                               "[-128, 127]. Fix: x")


def test_crash_is_one_line_naming_step_signal_and_file():
    with pytest.raises(TinybuildError) as info:
        run(segfault)
    assert str(info.value) == ("reference: TensorFlow Lite crashed (SIGSEGV) on kws_m034_c.tflite; "
                               + ADVICE)


def test_unexpected_exception_is_one_line_with_its_place():
    with pytest.raises(TinybuildError) as info:
        run(divide, 0)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("reference: unexpected ZeroDivisionError: division by zero on "
                              "kws_m034_c.tflite (at test_isolated.py:")


def test_crash_names_a_crafted_file_name_escaped():
    with pytest.raises(TinybuildError) as info:
        isolated.run("convert", Path("/m/evil\nok: yes\x1b[2K.h5"), segfault, (),
                     engine="TensorFlow", advice="Fix: x")
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)
    assert "evil\\x0aok: yes\\x1b[2K.h5" in str(info.value)


# -- interruption --------------------------------------------------------------------------

PARENT = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path[:0] = {paths!r}
    import test_isolated
    from tinybuild import isolated
    try:
        isolated.run("convert", Path("kws.h5"), test_isolated.sleep_forever, ({pid_file!r},),
                     engine="TensorFlow", advice="")
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
""")


def _start_parent(tmp_path):
    pid_file = tmp_path / "child.pid"
    script = PARENT.format(paths=[str(ROOT), str(ROOT / "tests")], pid_file=str(pid_file))
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    while not pid_file.exists() or not pid_file.read_text():
        assert parent.poll() is None, "the parent ended before its child started"
        time.sleep(0.05)
    return parent, int(pid_file.read_text())


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("whom", ["parent only", "process group (Ctrl-C)"])
def test_interrupt_stops_the_child(tmp_path, whom):
    parent, child = _start_parent(tmp_path)
    if whom == "parent only":
        os.kill(parent.pid, signal.SIGINT)
    else:
        os.killpg(parent.pid, signal.SIGINT)
    out, _ = parent.communicate(timeout=120)
    assert parent.returncode == 130 and out.strip() == "interrupted"
    assert _gone(child)  # killed and reaped, not left converting for nobody


def test_scons_interrupt_flag_stops_the_child(tmp_path):
    """SCons's own SIGINT handler only sets a flag; the step must notice it."""
    from SCons.Taskmaster.Job import Jobs

    class Taskmaster:
        trace = None

        def stop(self):
            pass

    pid_file = tmp_path / "pid"

    def interrupt_once_the_child_runs():
        while not pid_file.exists() or not pid_file.read_text():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # SCons's handler: flag set, no KeyboardInterrupt

    jobs = Jobs(1, Taskmaster())
    jobs._setup_sig_handler()
    threading.Thread(target=interrupt_once_the_child_runs, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            isolated.run("reference", Path("ad01.tflite"), sleep_forever, (str(pid_file),),
                         engine="TensorFlow Lite", advice="")
    finally:
        jobs._reset_sig_handler()
    assert jobs.were_interrupted()
    assert _gone(int(pid_file.read_text()))


# -- the pipeline steps --------------------------------------------------------------------

def test_reference_step_failure_leaves_no_stale_outputs(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(FIXTURE.read_bytes()[:1000])
    outputs = [tmp_path / "inputs.bin", tmp_path / "reference.bin", tmp_path / "reference.json"]
    for path in outputs:
        path.write_text("stale success")
    with pytest.raises(TinybuildError, match=r"bad\.tflite: corrupt TFLite flatbuffer: .*Fix:"):
        pipeline.reference(bad, *outputs, 2, 1, None)
    assert not any(path.exists() for path in outputs)


def test_convert_step_failure_leaves_no_stale_outputs(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(FIXTURE.read_bytes()[:-7])
    dst, record = tmp_path / "model.int8.tflite", tmp_path / "convert.json"
    dst.write_text("stale")
    record.write_text("stale")
    from tinybuild.convert import convert_model
    with pytest.raises(TinybuildError, match=r"bad\.tflite: corrupt TFLite flatbuffer"):
        pipeline.convert(bad, dst, None, record, {".tflite": convert_model})
    assert not dst.exists() and not record.exists()


def test_convert_step_copies_an_int8_tflite_in_the_child(tmp_path):
    from tinybuild.convert import convert_model
    dst, record = tmp_path / "model.int8.tflite", tmp_path / "convert.json"
    pipeline.convert(FIXTURE, dst, None, record, {".tflite": convert_model})
    assert dst.read_bytes() == FIXTURE.read_bytes()
    assert json.loads(record.read_text())["mode"] == "copied"


@pytest.mark.slow
def test_reference_step_runs_tensorflow_only_in_the_child(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from tinybuild import pipeline
        d = Path({str(tmp_path)!r})
        pipeline.reference(Path({str(FIXTURE)!r}), d / "in.bin", d / "out.bin", d / "ref.json", 3, 1, None)
        sys.exit(1 if "tensorflow" in sys.modules else 0)
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "ref.json").read_text())
    assert record["count"] == 3 and record["input_bytes"] == 8 * 8 * 2 and record["output_bytes"] == 3
    assert (tmp_path / "out.bin").stat().st_size == 9


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


@pytest.mark.slow
@pytest.mark.parametrize("jobs", ["-j1", "-j2"])
def test_ctrl_c_to_scons_stops_the_conversion_child(tmp_path, jobs):
    """SIGINT to SCons alone while TensorFlow converts kws.h5 in the child: the
    child is killed (the conversion never finishes) and the build ends with one
    'tinybuild: interrupted' line, no traceback."""
    scons = subprocess.Popen(
        [str(Path(sys.executable).with_name("scons")), "-C", str(ROOT), "-Q", jobs,
         f"build_dir={tmp_path}", "target=cortex-m4", "model=kws.h5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in scons.stdout:
        lines.append(line)
        if "[convert] loading" in line:
            break
    children = [pid for pid in _children(scons.pid)
                if "tinybuild.isolated" in Path(f"/proc/{pid}/cmdline").read_text()]
    assert children, "".join(lines)
    os.kill(scons.pid, signal.SIGINT)
    output = "".join(lines) + scons.communicate(timeout=300)[0]
    assert scons.returncode == 2, output
    assert output.rstrip().endswith("tinybuild: interrupted"), output
    assert "Traceback" not in output and "[convert] wrote" not in output
    assert all(_gone(pid) for pid in children)
    assert not (tmp_path / "models" / "kws" / "model.int8.tflite").exists()
