"""Run a TensorFlow step in a child process, so a crash is an error line.

TensorFlow and TensorFlow Lite are C++ underneath: a model they cannot handle
can crash them (SIGSEGV) or abort, and inside the SCons process that ends the
whole build with exit 139 and no message. :func:`run` calls a function in a
fresh ``python -m tinybuild.isolated`` instead and turns every way that can
end into a result or one :class:`~tinybuild.errors.TinybuildError` line:

* the function's return value comes back (pickled);
* a TinybuildError in the child is raised here with the same message;
* any other exception is one line naming its type, message and where it was raised;
* a signal (crash, abort, out-of-memory kill) names the step, the signal and the file;
* Ctrl-C stops the child at once: the child dies on SIGINT without waiting for
  TensorFlow to return to Python; a KeyboardInterrupt in the parent, or a
  SIGINT sent to SCons alone (its handler only sets a flag that its job loop
  reads between steps, so a worker thread would wait the child out) is
  noticed within 0.1 s and kills the child. Either way the step raises
  KeyboardInterrupt, and the SCons tool ends the build with one
  "tinybuild: interrupted" line.

The child's stdout and stderr are the parent's, so progress lines go through.
The SCons process itself never imports TensorFlow.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from .errors import TinybuildError, shown

POLL_SECONDS = 0.1
PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


def run(step: str, subject: Path, fn, args: tuple = (), *, engine: str, advice: str):
    """``fn(*args)`` in a child process; its result, or TinybuildError.

    ``step`` and ``subject`` (the model file) name what failed; ``engine`` is
    what runs there ("TensorFlow Lite"); ``advice`` follows a crash message
    (what it probably means and the fix)."""
    with tempfile.TemporaryDirectory(prefix="tinybuild-isolated-") as tmp:
        request, result = Path(tmp) / "request.pickle", Path(tmp) / "result.pickle"
        request.write_bytes(pickle.dumps({"sys_path": list(sys.path), "modules": _module_files(fn),
                                          "call": pickle.dumps((fn, tuple(args)))}))
        proc = subprocess.Popen([sys.executable, "-m", "tinybuild.isolated", str(request), str(result)],
                                stdin=subprocess.DEVNULL, env=_child_env(),
                                # its own session: a terminal's Ctrl-C reaches only the build,
                                # which kills the child (a child still importing would print
                                # a KeyboardInterrupt traceback)
                                start_new_session=True)
        code = _wait(proc)
        return _outcome(step, subject, engine, advice, code, result)


def _child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE_PARENT] + [p for p in env.get("PYTHONPATH", "").split(
        os.pathsep) if p])
    return env


def _module_files(fn) -> list[tuple[str, str]]:
    """The module defining ``fn`` and its file, for a plugin module that was loaded
    from a file (not importable by name in a fresh interpreter)."""
    fn = getattr(fn, "func", fn)                  # a functools.partial: its function
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    path = getattr(module, "__file__", None)
    return [(module.__name__, path)] if path else []


def _wait(proc: subprocess.Popen) -> int:
    """The child's exit status; the child never outlives an interruption."""
    try:
        while True:
            try:
                return proc.wait(timeout=POLL_SECONDS)
            except subprocess.TimeoutExpired:
                if _build_interrupted():
                    _stop(proc)
                    return -signal.SIGINT
    except BaseException:  # KeyboardInterrupt in a plain Python caller
        _stop(proc)
        raise


def _stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


def _build_interrupted() -> bool:
    """Whether SCons has been interrupted. Its SIGINT handler
    (SCons/Taskmaster/Job.py: ``handler(signum, stack, self=Jobs, ...)``) only sets
    ``Jobs.job.interrupted``, which the job loop reads between steps; a step
    waiting on a child must read it itself."""
    handler = signal.getsignal(signal.SIGINT)
    jobs = (getattr(handler, "__defaults__", None) or (None,))[0]
    flag = getattr(getattr(jobs, "job", None), "interrupted", None)
    try:
        return bool(flag()) if callable(flag) else False
    except Exception:
        return False


def _outcome(step: str, subject: Path, engine: str, advice: str, code: int, result: Path):
    name = shown(Path(subject).name)
    if code == -signal.SIGINT:  # Ctrl-C: the build stops as on any interrupt ("tinybuild: interrupted")
        raise KeyboardInterrupt
    if code < 0:
        raise TinybuildError(f"{step}: {engine} crashed ({_signal_name(-code)}) on {name}; {advice}")
    if not result.is_file():
        raise TinybuildError(f"{step}: the {engine} process ended with exit code {code} on {name} "
                             "without a result. Fix: run the build again; if it persists, report it")
    kind, *payload = pickle.loads(result.read_bytes())
    if kind == "ok":
        return payload[0]
    if kind == "error":
        raise TinybuildError(payload[0])
    raise TinybuildError(f"{step}: unexpected {payload[0]} on {name} (at {payload[1]}). "
                         "This is a tinybuild bug: please report it with the model")


def _signal_name(number: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
    return f"{name}, probably out of memory" if number == signal.SIGKILL else name


# -- the child ---------------------------------------------------------------------------

def _child(request_path: Path, result_path: Path) -> None:
    request = pickle.loads(request_path.read_bytes())
    sys.path[:] = request["sys_path"] + [p for p in sys.path if p not in request["sys_path"]]
    try:
        _load_modules(request["modules"])
        fn, args = pickle.loads(request["call"])
        outcome = ("ok", fn(*args))
    except TinybuildError as exc:
        outcome = ("error", str(exc))
    except Exception as exc:
        outcome = ("bug", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}", _where(exc))
    try:
        data = pickle.dumps(outcome)
    except Exception as exc:
        data = pickle.dumps(("bug", f"unpicklable result ({type(exc).__name__}: {exc})", "isolated"))
    partial = result_path.with_name(result_path.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, result_path)


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"


def _load_modules(modules: list[tuple[str, str]]) -> None:
    """Import each (name, file) by name, else from its file (plugin modules)."""
    for name, path in modules:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
            continue
        except ImportError:
            pass
        if "." in name:
            from .plugins import _ensure_package
            _ensure_package(name.rpartition(".")[0], Path(path).parent)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)


def _exit_with_parent() -> None:
    """A watcher thread: end the child when the build process is gone (SIGKILL,
    a crash), instead of converting for nobody."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it at once, even inside C++
    _exit_with_parent()
    _child(Path(argv[0]), Path(argv[1]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip TensorFlow's slow, occasionally crashing interpreter teardown


if __name__ == "__main__":
    main(sys.argv[1:])
