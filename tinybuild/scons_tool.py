"""The SCons side of tinybuild: variables, builders and the dependency graph.

``SConstruct`` calls :func:`setup`. Every step of
:mod:`tinybuild.pipeline` becomes an SCons command with real sources and
targets, so SCons redoes only what changed: a new model re-converts, an edited
kernel recompiles one object and relinks, a new ``sim=`` only re-simulates.

Layout under ``build/``:
  models/<model>/       int8 .tflite, conversion record, validation inputs and
                        TFLite reference outputs (shared by every target)
  <target>/obj/         kernels, runtime and startup objects for the target
  <target>/<model>/     model.c/.h, plan.json, firmware.elf/.map, size.json,
                        run.json, validation.json, report.json, report.md

``target=all`` declares one build per board whose toolchain is found (the
model is converted once for all of them), skips the others with a one-line
reason and prints one comparison table at the end. A board no simulator can
run (e.g. Xtensa) is built, linked and sized; its report says it was not
simulated.

Untrusted names stay data: paths reach SCons as file nodes (never
``$``-substituted), and the compiler and linker run from argument lists,
never through a shell. A failed step removes what it and the steps after it
made earlier, so no earlier success stays on disk.
"""
from __future__ import annotations

import atexit
import contextlib
import difflib
import errno
import fcntl
import hashlib
import inspect
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import export, ops, pipeline, placement, plugins, realboard, regress, scons_regress
from .errors import TinybuildError, shown
from .kernel_registry import (KERNEL_DIR, RUNTIME_DIR, compile_levels, levels_by_file,
                              min_opt_problem, opt_files_note, opt_summary, reference_sources)

CORE_DIR = Path(__file__).parent
MODEL_SUFFIXES = (".h5", ".keras", ".tflite", ".onnx")   # .onnx: tinybuild.onnx_import's plugin

HELP_INTRO = """tinybuild: TinyML models to simulated, validated firmware.

  scons target=cortex-m4 model=kws.h5     convert, compile, link, size, simulate, validate, report
  scons target=all model=kws.h5           every board whose toolchain is here, one table (-j works)
  scons -c target=cortex-m4 model=kws.h5  remove that build's outputs
  tinybuild targets | doctor              list boards, toolchains and simulators

Build variables (name: help (default)):
"""


def _variables(args):
    from SCons.Script import BoolVariable, EnumVariable, Variables

    v = Variables(None, args)
    v.AddVariables(
        ("target", "board to build for ('tinybuild targets' lists them), or 'all'", "cortex-m4"),
        ("model", "model file (.h5/.keras/.tflite/.onnx) or SavedModel folder; a bare name is "
                  "looked up in models/", "kws.h5"),
        ("sim", "simulator backend; empty = the board's default", ""),
        ("calibration", "calibration samples (.npy/.npz) for int8 quantization; empty = "
                        "<model>_calib.npy beside the model, else seeded noise", ""),
        EnumVariable("quant", "what a Keras model is converted to: int8 (full-integer), int16x8 "
                     "(int16 activations, int8 weights) or float32 (not quantized); a .tflite keeps "
                     "its own types (outputs go to <target>/<model>-<quant>)", "int8",
                     allowed_values=("int8", "int16x8", "float32")),
        ("toolchain", "toolchain bin folder; overrides xPack and PATH (also TINYBUILD_TOOLCHAIN)", ""),
        EnumVariable("opt", "C optimization level (kernel sources that need more, e.g. inline "
                     "assembly, are compiled at their plugin's minimum: the report lists them)", "O2",
                     allowed_values=("O0", "O1", "O2", "O3", "Os")),
        EnumVariable("kernels", "int8 kernels: the target plugins' optimized ones where they accept a "
                     "layer, or the portable reference ones only (outputs go to "
                     "<target>/<model>-reference-kernels)", "optimized",
                     allowed_values=("optimized", "reference")),
        ("inputs", "number of inputs validated against the TFLite reference, 1..1000", "4"),
        ("seed", "seed of the random validation inputs, 0..4294967295", "1"),
        EnumVariable("validate", "'no': build, size and simulate without comparing the output with "
                     "TFLite's (for a model TFLite's reference kernels cannot run); reports say "
                     "'validation skipped (validate=no)'", "yes", allowed_values=("yes", "no")),
        ("max_instructions", "simulator instruction limit per run (a positive integer, 2e9 style "
                             "allowed)", "2000000000"),
        ("sim_timeout", "simulator host-time limit per run, seconds (> 0)", "600"),
        ("compile_timeout", "time limit for one C compile, seconds (> 0)", "300"),
        ("plugins", "extra plugin folders or files, separated by ':'", ""),
        ("cachedir", "shared SCons cache folder (CacheDir) for CI", ""),
        ("build_dir", "where outputs go", "build"),
        BoolVariable("verbose", "print full compiler command lines (and a failing step's traceback)",
                     False),
        ("export", "also write the validated code as a library for your firmware: kinds c, esp-idf, "
                   "zephyr, arduino, platformio, comma-separated (build/<target>/<model>/export/)", ""),
        EnumVariable("io", "'uart': the firmware runs on the real board, one inference on a built-in "
                     "test vector, its output and cycles printed over the UART (docs/realboard.md); "
                     "outputs go to <target>/<model>-uart", "sim", allowed_values=realboard.IO_MODES),
        EnumVariable("place", "where the model's constants live: flash (as linked), auto (the most "
                     "read ones copied to RAM at reset while RAM allows) or ram (all that fits); "
                     "outputs go to <target>/<model>-place-<place> (docs/placement.md)", "flash",
                     allowed_values=placement.PLACES),
        BoolVariable("upload", "after a build that validated, flash the board with the target's "
                     "flasher (pyOCD, esptool, OpenOCD; docs/realboard.md)", False),
        EnumVariable("debug", "'layers': compare every layer's tensors with TFLite's and write "
                     "layers.json even when the output matches (a mismatch always does)", "",
                     allowed_values=("", "layers")),
        *scons_regress.variables(),
    )
    return v


def _fail(message: str) -> None:
    from SCons.Script import Exit
    print(f"tinybuild: error: {message}", file=sys.stderr)
    Exit(2)


def _p(path) -> str:
    """A user's path for one terminal line: escaped, never cut."""
    return shown(path, 0)


# -- checking the command line --------------------------------------------------------

def reject_unknown_variables(variables) -> None:
    """A misspelled variable (targt=riscv) must not be ignored silently."""
    unknown = sorted(variables.UnknownVariables())
    if not unknown:
        return
    known = sorted(variables.keys())
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        parts.append(f"'{shown(name)}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    raise TinybuildError(f"unknown build variable {', '.join(parts)}; `scons -h` lists the variables")


def _whole(text: str, low: int, high: int, exponent: bool = False) -> int | None:
    """``text`` as an integer in [low, high] ("2e9" too with ``exponent``), else None."""
    text = text.strip()
    try:
        value = int(text)
    except ValueError:
        if not exponent:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
        if not math.isfinite(number) or number != int(number):
            return None
        value = int(number)
    return value if low <= value <= high else None


def _seconds(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


# variable: (what it accepts, parser returning the value or None)
NUMBER_VARIABLES = {
    "inputs": ("a whole number from 1 to 1000", lambda s: _whole(s, 1, 1000)),
    "seed": ("a whole number from 0 to 4294967295", lambda s: _whole(s, 0, 2**32 - 1)),
    "max_instructions": ("a positive whole number of instructions (2e9 style allowed)",
                         lambda s: _whole(s, 1, 2**63 - 1, exponent=True)),
    "sim_timeout": ("a positive, finite number of seconds", _seconds),
    "compile_timeout": ("a positive, finite number of seconds", _seconds),
}


def check_numbers(env) -> None:
    """Parse the numeric variables into ``env`` (ints and floats), before
    anything is declared; a bad one stops with one line saying what it takes."""
    for name, (accepts, parse) in NUMBER_VARIABLES.items():
        value = parse(str(env[name]))
        if value is None:
            raise TinybuildError(f"{name}={shown(env[name])}: must be {accepts}")
        env[name] = value


def check_tool_path(path: Path, what: str) -> None:
    """Folders named after user input reach the compiler, the linker and the
    linker map the size step reads line by line: a newline (or any control
    character) there would split a map line and charge bytes to the wrong
    object, so such a name is refused instead."""
    bad = next((ch for ch in str(path) if ord(ch) < 0x20 or ord(ch) == 0x7F), None)
    if bad is not None:
        raise TinybuildError(f"{what}: the name {_p(path)} holds a control character "
                             f"({shown(bad)}), which the C compiler's and linker's output (the "
                             "linker map) cannot carry. Fix: rename it without newlines or "
                             "control characters")


# -- the build folder: writable, one build at a time ---------------------------------

_LOCK: dict = {}


def prepare_build_folder(build_root: Path, spec: str) -> None:
    """Create ``build_root`` and hold an exclusive lock on it for this SCons
    run: two builds in one folder would share intermediate files. A second
    build waits (saying for whom); the lock goes with the process."""
    check_tool_path(build_root, f"build_dir={shown(spec)}")
    try:
        build_root.mkdir(parents=True, exist_ok=True)
        if not os.access(build_root, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "not writable")
        fd = os.open(build_root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise TinybuildError(f"build_dir={shown(spec)}: cannot create or write {_p(build_root)} "
                             f"({exc.strerror}). Fix: choose a writable folder with build_dir=")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        print(f"tinybuild: waiting for another tinybuild build in {_p(spec)} (pid {shown(holder)})",
              file=sys.stderr, flush=True)
        fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        raise TinybuildError(os_error_message(exc, build_root / ".lock"))
    _LOCK["fd"] = fd             # held, open, until this process exits


def os_error_message(exc: OSError, default: Path) -> str:
    """One line for a failed file operation: what, where, and the fix."""
    where = _p(exc.filename if exc.filename else default)
    if exc.errno == errno.ENOSPC:
        return f"disk full writing {where}. Fix: free some space, or build elsewhere (build_dir=)"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {where} ({exc.strerror}). Fix: choose a writable build_dir="
    return f"{exc.strerror or exc} ({where})"


# -- setup ---------------------------------------------------------------------------

def setup(env, args) -> None:
    """Declare the whole build; called from SConstruct."""
    atexit.register(_say_interrupted)     # registered first: runs last, after any summary
    try:
        _setup(env, args)
    except TinybuildError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        INTERRUPTED.set()
        from SCons.Script import Exit
        Exit(2)


def _setup(env, args) -> None:
    from SCons.Script import GetOption, Help

    import SCons.Errors

    variables = _variables(args)
    try:
        variables.Update(env)
    except SCons.Errors.UserError as exc:    # e.g. kernels=fast: one line, no SCons file:line
        raise TinybuildError(variable_error(exc)) from None
    Help(HELP_INTRO + variables.GenerateHelpText(env), append=False)
    if GetOption("help"):
        return
    reject_unknown_variables(variables)
    check_numbers(env)
    export.parse_kinds(env["export"])          # an unknown kind stops before anything is built
    if env["validate"] == "no" and env["debug"]:
        raise TinybuildError("debug=layers compares every layer with TFLite's; validate=no skips "
                             "TFLite. Fix: leave one of them out")
    # Content signatures, not timestamps: an edit within the same second as the
    # last build must still rebuild (timestamps have one-second resolution here).
    env.Decider("content")
    if not env["build_dir"].strip():     # else the outputs would land in the project folder
        raise TinybuildError("build_dir= is empty. Fix: name a folder, e.g. build_dir=build")
    build_root = Path(env.Dir("#").abspath) / env["build_dir"]
    prepare_build_folder(build_root, env["build_dir"])
    import SCons.SConsign
    SCons.SConsign.File(str(build_root / ".sconsign"))   # what SConsignFile does, minus `$` expansion
    if env["cachedir"]:
        env.CacheDir(_literal(env["cachedir"], "cachedir"))
    _declare(env)


def variable_error(exc) -> str:
    """SCons's message for a bad enum or yes/no value, on one line (its yes/no
    message has two) and saying what a yes/no variable takes."""
    text = ": ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    if "boolean variable" in text:
        text += ". Valid values are: yes, no (also 1/0, true/false, on/off)"
    return f"{text}; `scons -h` lists the variables"


def _literal(text, variable: str = "") -> str:
    """``text`` for an SCons call that substitutes ``$``: a path stays that
    path. SCons has no escape for ``$(`` and ``$)`` (its signature markers)."""
    text = str(text)
    if "$(" in text or "$)" in text:
        raise TinybuildError(f"{variable or 'name'}={_p(text)}: SCons cannot take '$(' or '$)' here. "
                             "Fix: rename it")
    return text.replace("$", "$$")


def _file(env, path):
    """A file node SCons never substitutes (``model=/m/w${CC}.tflite`` is that file)."""
    return env.fs.File(str(path))


def _dir(env, path):
    return env.fs.Dir(str(path))


def is_saved_model(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file()
                                 for name in ("saved_model.pb", "saved_model.pbtxt"))


def model_files(env, model: Path) -> list:
    """The model's file nodes: the file, or every file of a SavedModel folder."""
    paths = sorted(p for p in model.rglob("*") if p.is_file()) if model.is_dir() else [model]
    return [_file(env, p) for p in paths]


def resolve_model(spec: str, root: Path) -> Path:
    if not spec.strip():                 # else the project folder itself would be "the model"
        raise TinybuildError("model= is empty. Fix: name a model file, e.g. model=kws.h5")
    p = Path(spec)
    candidates = [p] if p.is_absolute() else [root / p, root / "models" / p]
    for c in candidates:
        if c.is_dir():
            if is_saved_model(c):
                return c.resolve()
            raise TinybuildError(f"model={_p(spec)}: {_p(c)} is a folder without saved_model.pb, not "
                                 f"a model. Fix: name a {', '.join(MODEL_SUFFIXES)} file or a "
                                 "SavedModel folder")
        if c.exists():
            if c.suffix.lower() not in MODEL_SUFFIXES:
                raise TinybuildError(f"model={_p(spec)}: unsupported format '{shown(c.suffix)}'; use "
                                     f"{', '.join(MODEL_SUFFIXES)}")
            return c.resolve()
    known = sorted(x.name for x in (root / "models").glob("*") if x.suffix in MODEL_SUFFIXES)
    raise TinybuildError(f"model={_p(spec)}: no such file (looked in {', '.join(map(_p, candidates))}). "
                         f"Models in models/: {', '.join(known) or 'none'}")


# -- steps ----------------------------------------------------------------------------

# Output folder -> the message of the step that failed there (for summaries
# of multi-build runs such as `scons regress`).
STEP_ERRORS: dict[Path, str] = {}
INTERRUPTED = threading.Event()


class _Step:
    """A build step as an SCons function action.

    SCons signs a callable object by its ``__call__`` code alone, not by the
    objects a closure would capture (plugin objects have no stable pickle),
    so every input that matters is passed to the command as a source: files,
    or ``env.Value`` strings for settings. Any failure ends the step with one
    line, no traceback (``verbose=1`` adds it for unexpected exceptions), and
    removes the step's targets and ``downstream()`` files (what later steps
    made from earlier results), except files the error message points to.
    """

    def __init__(self, fn, label, downstream=None, describe=None):
        self.fn, self.label = fn, label
        self.downstream = downstream or (lambda: [])
        self.describe = describe

    def __call__(self, target, source, env):
        targets = [Path(str(t)) for t in target]
        record = ""                  # a TinybuildError may point at a record the step wrote
        try:
            with _interruptible():
                self.fn(targets, [Path(str(s)) for s in source], env)
            return 0
        except KeyboardInterrupt:
            _stop_scons()
            message = None
        except TinybuildError as exc:
            message = record = str(exc)
        except OSError as exc:
            message = f"{self.label}: {os_error_message(exc, targets[0].parent)}"
        except Exception as exc:  # a bug somewhere: still one line, the traceback on request
            if env.get("verbose"):
                import traceback
                traceback.print_exc()
            message = (f"{self.label}: internal error: {type(exc).__name__}: {exc} (verbose=1 "
                       "shows the traceback)")
        remove_stale(targets, self.downstream(), keep_named_in=record)
        if message is None:
            return 2
        print(f"tinybuild: error: {message}", file=sys.stderr)
        STEP_ERRORS[targets[0].resolve().parent] = f"{self.label}: {message}"
        return 1

    def strfunction(self, target, source, env):
        if self.describe:
            return self.describe(target, source)
        return f"[{self.label}] {_p(Path(str(target[0])).parent)}"


def _action(fn, label, downstream=None, describe=None):
    from SCons.Action import Action
    step = _Step(fn, label, downstream, describe)
    return Action(step, step.strfunction)


@contextlib.contextmanager
def _interruptible():
    """SCons's SIGINT handler only stops new steps from starting: a long step
    (a simulation) would run to its end. In the main thread (-j1), Ctrl-C
    also raises KeyboardInterrupt inside the running step."""
    scons_handler = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(scons_handler):
        yield
        return

    def interrupt(signum, frame):
        scons_handler(signum, frame)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, scons_handler)


def _stop_scons() -> None:
    """Stop the whole build (SCons's own interrupt handling: no new steps, the
    .sconsign is written, exit status 2), whichever thread saw the interrupt."""
    INTERRUPTED.set()
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler not in (signal.default_int_handler,):
        handler(signal.SIGINT, None)


def scons_interrupted() -> bool:
    """Whether Ctrl-C was pressed: SCons's SIGINT handler (SCons/Taskmaster/
    Job.py, ``handler(signum, stack, self=Jobs, ...)``) only sets its jobs'
    flag, which a step waiting on a tool in a worker thread must read."""
    if INTERRUPTED.is_set():
        return True
    jobs = (getattr(signal.getsignal(signal.SIGINT), "__defaults__", None) or (None,))[0]
    flag = getattr(getattr(jobs, "job", None), "interrupted", None)
    try:
        return bool(flag()) if callable(flag) else False
    except Exception:
        return False


def _say_interrupted() -> None:
    if not INTERRUPTED.is_set():
        return
    sys.stdout.flush()
    print("tinybuild: interrupted", file=sys.stderr, flush=True)
    if _scons_exit_status() == 0:
        os._exit(130)


def _scons_exit_status() -> int:
    import SCons.Script.Main
    return SCons.Script.Main.exit_status


def remove_stale(targets: list[Path], downstream: list[Path], keep_named_in: str = "") -> None:
    """Remove a failed step's targets and the files later steps made from
    earlier results (report.json saying "matches: yes"), so no earlier success
    outlives a failure; a file the error message names (validation.json with
    the mismatch) stays."""
    for path in [*targets, *downstream]:
        if keep_named_in and any(text in keep_named_in for text in (str(path), _p(path),
                                                                     str(path.resolve()))):
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


# Files of one build folder in the order the steps make them; a failed step
# removes its own and every later one.
RESULT_FILES = {
    "codegen": ("model.c", "model.h", "plan.json", "arena.svg"),
    "cc": ("model.o",),
    "link": ("firmware.elf", "firmware.map", "placement.json", "model.placed.o",  # the last three: place=
             "startup.placed.o"),
    "image": ("firmware.bin", "firmware.hex"),
    "size": ("size.json",),
    "simulate": ("run.json",),
    "validate": ("validation.json", "layers.json", "layers.svg"),
    "report": ("report.json", "report.md"),
    "export": ("export",),                  # the folder: every kind's files and zip
}


def results_after(tdirs: list[Path], step: str | None) -> list[Path]:
    """The files of the build folders ``tdirs`` that steps after ``step``
    make (all of them for ``step`` None: a model or shared-object step)."""
    order = list(RESULT_FILES)
    later = order[order.index(step) + 1:] if step else order
    return [tdir / name for tdir in tdirs for s in later for name in RESULT_FILES[s]]


def _downstream(tdirs: list[Path], step: str | None = None):
    return lambda: results_after(tdirs, step)


# -- declaring builds -----------------------------------------------------------------

def _declare(env) -> None:
    root = Path(env.Dir("#").abspath)
    extra = [Path(p) for p in env["plugins"].split(":") if p]
    pm = plugins.make_plugin_manager(extra)
    from SCons.Script import COMMAND_LINE_TARGETS
    if "regress" in COMMAND_LINE_TARGETS:
        scons_regress.declare(env, root, pm)
        return
    if env["target"] == ALL:
        realboard.check_one_board(env["io"], env["upload"])
        _declare_all(env, root, pm)
        return
    target = realboard.board_target(plugins.find_target(pm, env["target"]), env["io"], env["upload"])
    model = resolve_model(env["model"], root)
    sims = plugins.simulators(pm)
    simulator, note = choose_simulator(env["sim"], target, sims)
    toolchain = pm.hook.tinybuild_find_toolchain(target=target, explicit_path=env["toolchain"] or None)
    if toolchain is None:
        from .toolchains import missing_toolchain_error
        if env["export"]:
            raise export.no_toolchain_error(env["export"], target)
        raise missing_toolchain_error(target)
    calibration = _calibration(env["calibration"], model, root)
    check_board_files(target)
    contributed = _contributed_kernels(env, pm, target)
    built = declare_build(env, root, target, model, toolchain, simulator, calibration, contributed,
                          pm, note)
    _print_summary_at_exit(built)


ALL = "all"


def _contributed_kernels(env, pm, target) -> list:
    """The plugins' kernels for ``target``; none with kernels=reference."""
    return plugins.kernels(pm, target) if env["kernels"] == "optimized" else []


def plugin_min_opt(pm) -> dict[str, str]:
    """Kernel plugins' ``KERNEL_MIN_OPT`` (the default ``min_opt`` of their
    kernels) by plugin label, as tinybuild.plugins.kernels labels kernels."""
    found = {}
    for hook in pm.hook.tinybuild_kernels.get_hookimpls():
        value = getattr(hook.plugin, "KERNEL_MIN_OPT", "")
        label = plugins.plugin_label(pm, hook.plugin)
        if min_opt_problem(value):
            raise TinybuildError(f"plugin {label}: KERNEL_MIN_OPT: {min_opt_problem(value)}")
        found[label] = value
    return found


def record_opt_files(report_targets, opt_files: dict[str, str]) -> None:
    """report.json's ``opt_files`` (file -> level, for the files compiled at
    another level than opt=) and a line in report.md saying which and why."""
    json_path, md_path = Path(report_targets[0]), Path(report_targets[1])
    record = json.loads(json_path.read_text())
    record["opt_files"] = opt_files
    json_path.write_text(json.dumps(record, indent=1) + "\n")
    if opt_files:
        with md_path.open("a") as md:
            md.write(f"\n{opt_files_note(record['opt'], opt_files)}\n")


def check_board_files(target) -> None:
    """A board's linker script and startup sources must exist (a plugin in
    progress, or one whose files moved, fails here with its name)."""
    for kind, path in [("linker script", target.linker_script),
                       *(("startup source", p) for p in target.startup_sources)]:
        if not Path(path).is_file():
            raise TinybuildError(f"target '{target.name}' ({target.plugin}): its {kind} {_p(path)} "
                                 "does not exist")


def check_kernel_sources(contributed) -> None:
    """A kernel plugin's C sources must exist (else SCons's raw 'not found')."""
    for k in contributed:
        for path in k.sources:
            if not Path(path).is_file():
                raise TinybuildError(f"kernel {shown(k.function)} ({shown(k.plugin or k.label)}): its "
                                     f"source {_p(path)} does not exist")


def choose_simulator(requested: str, target, sims: dict):
    """The simulator for ``target``, or ``(None, why)`` for a build that stops
    after link and size.

    ``sim=`` must name a simulator that runs the board (an error otherwise);
    without it the board's default is used; a board with no default simulator,
    or whose default cannot run it, is built and sized only."""
    runnable = sorted(n for n, sim in sims.items() if sim.supports(target))
    if requested:
        if requested not in sims:
            raise TinybuildError(f"sim={shown(requested)}: unknown simulator; known: "
                                 f"{', '.join(sorted(sims)) or 'none'}")
        if not sims[requested].supports(target):
            raise TinybuildError(f"sim={requested} cannot run target '{target.name}' ({target.arch}, "
                                 f"{target.cpu}); simulators that can: {', '.join(runnable) or 'none'}")
        usable, why = sims[requested].available()     # say so now, not after compiling everything
        if not usable:
            raise TinybuildError(f"sim={requested}: not usable here: {why}")
        return sims[requested], ""
    default = target.default_simulator
    if default and default not in sims:
        raise TinybuildError(f"sim={default} (target '{target.name}''s default): unknown simulator; "
                             f"known: {', '.join(sorted(sims)) or 'none'}")
    if default and sims[default].supports(target):
        return sims[default], ""
    why = (f"no simulator here runs {target.arch} ({target.cpu})" if not runnable else
           f"the board names no default simulator; sim={runnable[0]} would run it")
    return None, f"not simulated: {why}. Built, linked and sized only"


def _declare_all(env, root, pm) -> None:
    """One build per board whose toolchain is found; the others are skipped
    with a one-line reason. ``scons -k`` keeps going past a failing board."""
    model = resolve_model(env["model"], root)
    sims = plugins.simulators(pm)
    requested = env["sim"]
    if requested and requested not in sims:
        raise TinybuildError(f"sim={shown(requested)}: unknown simulator; known: "
                             f"{', '.join(sorted(sims))}")
    calibration = _calibration(env["calibration"], model, root)
    built, skipped = [], []
    for name, target in sorted(plugins.targets(pm).items()):
        try:
            toolchain = pm.hook.tinybuild_find_toolchain(target=target,
                                                         explicit_path=env["toolchain"] or None)
            if toolchain is None:
                skipped.append((name, f"no {target.triple}-gcc found"
                                      + (f"; {target.toolchain_hint}" if target.toolchain_hint else "")))
                continue
            if requested and not sims[requested].supports(target):
                simulator, note = None, (f"not simulated: sim={requested} cannot run {target.arch} "
                                         f"({target.cpu}). Built, linked and sized only")
            else:
                simulator, note = choose_simulator(requested, target, sims)
            check_board_files(target)
            contributed = _contributed_kernels(env, pm, target)
        except TinybuildError as exc:
            skipped.append((name, str(exc).splitlines()[0]))
            continue
        kinds = export.kinds_for_board(export.parse_kinds(env["export"]), target)
        built.append(declare_build(env, root, target, model, toolchain, simulator, calibration,
                                   contributed, pm, note, export_kinds=kinds))
    if not built:
        raise TinybuildError("target=all: no board has its toolchain here:\n" +
                             "\n".join(f"  {n}: {why}" for n, why in skipped))
    _print_table_at_exit(model.stem, built, skipped)


def _calibration(spec: str, model: Path, root: Path) -> Path | None:
    if spec:
        p = Path(spec) if Path(spec).is_absolute() else root / spec
        if not p.is_file():
            raise TinybuildError(f"calibration={_p(spec)}: " + ("a folder, not a .npy/.npz file"
                                                              if p.is_dir() else "no such file"))
        return p.resolve()
    beside = model.with_name(model.stem + "_calib.npy")
    return beside if beside.exists() else None


_MODEL_NODES: dict = {}
# (build folder, model) -> the build folders of every board building it, so a
# failed conversion removes their results too.
_MODEL_BUILDS: dict = {}


def _model_nodes(env, build, model, calibration, pm, count, seed, quant):
    """Conversion and TFLite reference (validate=no: the inputs only), declared
    once per model however many boards build it (their outputs do not depend on
    the board)."""
    validating = env["validate"] == "yes"
    key = (str(build), str(model), count, seed, validating, quant)
    builds = _MODEL_BUILDS.setdefault((str(build), str(model)), [])
    if key not in _MODEL_NODES:
        mdir = build / "models" / regress.variant_name(model.stem, quant=quant)
        calib_src = [_file(env, calibration)] if calibration else []
        int8, conv_json = _convert(env, model, mdir, calib_src, calibration, pm, builds, quant)
        if not validating:
            _MODEL_NODES[key] = (int8, conv_json, *_unvalidated_inputs(env, mdir, int8, calib_src,
                                                                      calibration, count, seed, builds))
            return _MODEL_NODES[key], builds
        inputs_bin, ref_bin, ref_json = env.Command(
            # Named by count and seed, so a regression run (its own input count)
            # and an ordinary build share the folder without redoing each other.
            [_file(env, mdir / f"{stem}-n{count}-s{seed}.{ext}")
             for stem, ext in (("inputs", "bin"), ("reference", "bin"), ("reference", "json"))],
            [int8, env.Value(f"count={count} seed={seed}")] + calib_src,
            _action(lambda t, s, e: pipeline.reference(s[0], t[0], t[1], t[2], count, seed,
                                                       calibration), "reference",
                    _downstream(builds, "size")))
        _MODEL_NODES[key] = (int8, conv_json, inputs_bin, ref_bin, ref_json)
    return _MODEL_NODES[key], builds


def _unvalidated_inputs(env, mdir, int8, calib_src, calibration, count, seed, builds):
    """validate=no: the simulation's inputs (no TensorFlow), no reference outputs:
    ``(inputs.bin, None, inputs.json)`` in place of the reference step's nodes."""
    inputs_bin, inputs_json = env.Command(
        [_file(env, mdir / f"inputs-only-n{count}-s{seed}.{ext}") for ext in ("bin", "json")],
        [int8, env.Value(f"count={count} seed={seed}")] + calib_src,
        _action(lambda t, s, e: pipeline.inputs_only(s[0], t[0], t[1], count, seed, calibration),
                "inputs", _downstream(builds, "size")))
    return inputs_bin, None, inputs_json


def declare_build(env, root, target, model, toolchain, simulator, calibration, contributed, pm,
                  note="", kernels=None, quant=None, export_kinds=None):
    """Declare one board's build of one model; returns ``(target, tdir, report node)``.
    ``kernels`` and ``quant`` default to the build variables (a regression case sets them),
    ``export_kinds`` to the kinds of ``export=`` (target=all passes each board's).

    With ``simulator`` None the build stops after link and size, and the
    report carries ``note`` (why it was not simulated)."""
    name = model.stem
    build = root / env["build_dir"]
    quant = quant or env["quant"]
    tdir = build / target.name / regress.variant_name(name, kernels or env["kernels"], quant)
    uart = env.get("io") == "uart"
    tdir = tdir.with_name(tdir.name + "-uart") if uart else tdir
    place = env.get("place", "flash")
    tdir = tdir.with_name(tdir.name + placement.variant_suffix(place))
    odir = build / target.name / "obj"
    check_tool_path(Path(model.name), f"model={_p(model)}")
    check_kernel_sources(contributed)
    count, seed = (1 if uart else int(env["inputs"])), int(env["seed"])
    (int8, conv_json, inputs_bin, ref_bin, ref_json), model_builds = _model_nodes(
        env, build, model, calibration, pm, count, seed, quant)
    model_builds.append(tdir)
    F = lambda name: _file(env, tdir / name)  # noqa: E731 - the build folder's files as nodes

    model_c, model_h, plan_json, _arena_svg = env.Command(
        [F(f) for f in RESULT_FILES["codegen"]],
        [int8, conv_json, env.Value(f"place={place}")] +
        codegen_inputs(env, pm, target, contributed),
        _action(lambda t, s, e: generate(s[0], t[0].parent, target, contributed, name,
                                         pipeline.read_json(s[1]), place), "codegen",
                _downstream([tdir], "codegen")))

    extra = realboard.declare_sources(env, sys.modules[__name__], tdir, target, toolchain, odir,
                                      inputs_bin, ref_json) if uart else []
    levels = compile_levels(contributed, env["opt"], plugin_min_opt(pm))
    elf, map_file, placed = _compile_and_link(env, target, toolchain, tdir, odir, model_c, contributed,
                                              extra, place, plan_json, levels)
    images = export.declare_images(env, sys.modules[__name__], tdir, target, toolchain, elf)
    size_json = env.Command(F("size.json"),
                            [elf, map_file, env.Value(repr(target.memory))],
                            _action(lambda t, s, e: pipeline.write_json(
                                t[0], _size(s[0], s[1], target)), "size", _downstream([tdir], "size")))
    tool_info = {"triple": toolchain.triple, "version": toolchain.version,
                 "source": toolchain.source, "bin_dir": str(toolchain.bin_dir)}
    opt_files = levels_by_file(levels)        # the report and the export name them
    settings = env.Value(json.dumps({"toolchain": tool_info, "opt": env["opt"], "model": str(model),
                                     "target": repr(target), "note": note, "opt_files": opt_files}))
    if simulator is None:
        report = env.Command(
            [F("report.json"), F("report.md")],
            [size_json, plan_json, conv_json, settings],
            _action(lambda t, s, e: (drop_export(t), _report_unsimulated(t, s, target, tool_info,
                                                                         model, env["opt"],
                                                         note), record_opt_files(t, opt_files),
                                     export.list_files(t)), "report",
                    _downstream([tdir], "report")))
    else:
        limits = (int(env["max_instructions"]), float(env["sim_timeout"]))
        simulator = realboard.UartRun(simulator) if uart else simulator
        run_json = env.Command(
            F("run.json"),
            [elf, inputs_bin, ref_json,
             env.Value(f"{simulator.name} {limits} {target!r} {code_signature(simulator)}")],
            _action(lambda t, s, e: pipeline.simulate(
                simulator, s[0], target, s[1], pipeline.read_json(s[2])["input_bytes"], t[0],
                *limits), "simulate", _downstream([tdir], "simulate")))
        if ref_bin is None:          # validate=no: the record says so, never "matches"
            validation = env.Command(
                F("validation.json"), [run_json, env.Value("validate=no")],
                _action(lambda t, s, e: pipeline.skip_validation(s[0], t[0]), "validate",
                        _downstream([tdir], "validate")))
        else:
            validation = _validation(env, F, tdir, target, pm, limits,
                                     (run_json, ref_bin, ref_json, elf, inputs_bin, plan_json, int8))
        report = env.Command(
            [F("report.json"), F("report.md")],
            [size_json, run_json, validation, plan_json, conv_json, settings],
            _action(lambda t, s, e: (drop_export(t), _report(t, s, target, tool_info, model,
                                                             env["opt"]),
                                     record_opt_files(t, opt_files), export.list_files(t)), "report",
                    _downstream([tdir], "report")))
    env.Depends(report, images)               # report.md lists them
    env.Depends(report, placed)               # and what place= put in RAM
    env.Default(report)
    realboard.declare_upload(env, sys.modules[__name__], tdir, target, images, report)
    kinds = export.parse_kinds(env["export"]) if export_kinds is None else export_kinds
    if kinds:
        export.check_kinds(kinds, target)
        env.Default(export.declare_exports(
            env, sys.modules[__name__], tdir, target, kinds,
            link_sources(target, contributed), (model_c, model_h, plan_json), int8, report[0], name,
            opt_files))
    if "$(" not in tdir.name and "$)" not in tdir.name:     # an alias is a convenience only
        env.Alias(_literal(f"{target.name}-{tdir.name}"), report)
    env.Clean(report, [_dir(env, tdir), _dir(env, odir)])
    return target, tdir, report[0]


def drop_export(report_targets) -> None:
    """A new report means the build changed (model, opt=, kernels, ...): the
    export of an earlier build must not stay beside it. A requested export is
    written again after the report (it is one of its sources)."""
    remove_stale([], [Path(str(report_targets[0])).parent / "export"])


def _validation(env, F, tdir, target, pm, limits, sources):
    """validation.json: the simulated outputs against TFLite's reference outputs."""
    return env.Command(
        F("validation.json"), [*sources, env.Value(f"debug={env.get('debug', '')}")],
        _action(lambda t, s, e: pipeline.validate(
            s[0], s[1], pipeline.read_json(s[2])["output_bytes"], t[0], pipeline.diagnosis(
                elf=s[3], inputs_bin=s[4], reference_json=s[2], plan_json=s[5], tflite=s[6],
                target=target, simulators=plugins.simulators(pm), limits=limits,
                debug=env.get("debug", "")), outputs=pipeline.read_json(s[2]).get("outputs")),
            "validate", _downstream([tdir], "validate")))


def generate(tflite: Path, out_dir: Path, target, contributed, name: str,
             conversion: dict | None = None, place: str = "flash") -> None:
    """Code generation, then the arena against the board's RAM: a model that
    cannot fit stops here, before anything is compiled for it. ``conversion``
    (convert.json) gives the input layout an importer recorded (ONNX) for model.h."""
    from .linkcheck import check_arena_fits
    plan = pipeline.generate(tflite, out_dir, contributed, name,
                             (conversion or {}).get("input_layout", ""), place)
    memory = plan["memory"]
    check_arena_fits(target, memory["arena_size"], None, lower_bound=memory["lower_bound"])


def codegen_inputs(env, pm, target, contributed) -> list:
    """Everything that decides the generated code, as sources of the codegen
    step, so changing any of it regenerates model.c: each contributed kernel's
    op, function, label, priority and plugin; its C sources; the files that
    define its ``accepts`` and ``prepare``; the kernel plugins' files; the
    core's code and reference kernels; the board's memory map and linker
    script (the arena check)."""
    files = {*CORE_DIR.glob("*.py"), *KERNEL_DIR.glob("*.[ch]"), Path(target.linker_script),
             *kernel_plugin_files(pm), *ops.build_files()}
    records = []
    for k in contributed:
        code = [f for f in (source_file(k.accepts), source_file(k.prepare)) if f]
        files |= {*map(Path, k.sources), *code, *map(Path, k.build_files)}
        records.append({"op": k.op, "function": k.function, "label": k.label,
                        "priority": k.priority, "plugin": getattr(k, "plugin", ""),
                        "sources": [str(p) for p in k.sources], "code": [str(p) for p in code]})
    return ([env.Value(json.dumps(records)), env.Value(repr(target.memory))]
            + [_file(env, p) for p in sorted(files)])


def kernel_plugin_files(pm) -> list[Path]:
    """The files of the plugins that implement ``tinybuild_kernels``."""
    found = (source_file(impl.plugin) for impl in pm.hook.tinybuild_kernels.get_hookimpls())
    return sorted({f for f in found if f})


def source_file(obj) -> Path | None:
    """The Python file defining ``obj`` (a function, partial, module, class or
    instance), or None where there is none (builtins, None)."""
    if obj is None:
        return None
    obj = getattr(obj, "func", obj)                    # functools.partial
    if not (inspect.ismodule(obj) or inspect.isclass(obj) or callable(obj)):
        obj = type(obj)
    for candidate in (inspect.unwrap(obj) if callable(obj) else obj, type(obj)):
        try:
            path = inspect.getsourcefile(candidate)
        except TypeError:
            continue
        if path and Path(path).is_file():
            return Path(path).resolve()
    return None


def code_signature(obj) -> str:
    """A digest of the source folder of the module that defines ``obj``'s
    class, so results re-derive when a plugin's code (say, a simulator's
    timing tables) changes."""
    digest = hashlib.sha256()
    try:
        folder = Path(inspect.getsourcefile(type(obj))).parent
    except (TypeError, OSError):
        return ""
    for path in sorted(folder.glob("*")):
        if path.suffix in (".py", ".c", ".h", ".S"):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _convert(env, model, mdir, calib_src, calibration, pm, builds, quant):
    from . import convert as conv
    # The core's Keras/TFLite front end, then the plugins' (the built-in ONNX one
    # among them), a later one overriding an earlier one for the same suffix.
    importers = {s: conv.convert_model for s in MODEL_SUFFIXES if s != ".onnx"}
    for _, mapping in plugins.collect(pm, "tinybuild_model_importers"):
        importers.update(mapping if isinstance(mapping, dict) else {})
    if model.is_dir():                    # a SavedModel folder: the core's TensorFlow front end
        importers = {model.suffix.lower(): conv.convert_model}
    return env.Command(
        [_file(env, mdir / "model.int8.tflite"), _file(env, mdir / "convert.json")],
        model_files(env, model) + [env.Value(f"quant={quant}")] + calib_src
        + _converter_signature(env, importers.get(model.suffix.lower())),
        _action(lambda t, s, e: pipeline.convert(model, t[0], calibration, t[1], importers,
                                                 quant), "convert",
                _downstream(builds)))


# What decides a conversion besides the model: the importer's code, the core files
# every importer writes or checks the .tflite with, and the converters' versions.
CONVERTER_FILES = ("convert.py", "tflite_writer.py", "flatbuffer_check.py", "importer.py")
CONVERTER_PACKAGES = ("tensorflow-cpu", "tf-keras", "onnx", "onnxruntime")


def _converter_signature(env, importer) -> list:
    import importlib.metadata
    import inspect
    files = {Path(__file__).parent / name for name in CONVERTER_FILES}
    try:
        files.add(Path(inspect.getsourcefile(getattr(importer, "func", importer))))
        # a package's importer (tinybuild.onnx_import) lists its modules in SOURCE_FILES
        files.update(getattr(inspect.getmodule(importer), "SOURCE_FILES", ()))
    except TypeError:                   # a builtin or a C function: nothing to track
        pass
    versions = []
    for package in CONVERTER_PACKAGES:
        try:
            versions.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{package} absent")
    return [_file(env, f) for f in sorted(files) if f.is_file()] + [env.Value(" ".join(versions))]


# -- compile and link: argument lists, never a shell -----------------------------------

_BOARD_OBJECTS: dict = {}


def _board_objects(env, target, toolchain, odir):
    """A board's compile settings and its objects by source: each C file is
    declared once per board however many models (and kernel sets) link it."""
    key = str(odir)
    if key not in _BOARD_OBJECTS:
        include_dirs = [KERNEL_DIR, RUNTIME_DIR, *map(Path, target.include_dirs)]
        flags = ["-g", "-std=c99", "-Wall", "-Wextra", "-ffunction-sections", "-fdata-sections",
                 "-ffp-contract=off"]
        compiler = {"gcc": toolchain.tool("gcc"), "version": toolchain.version,
                    "cpu_flags": list(target.cflags), "opt": env["opt"], "flags": flags,
                    "include_dirs": include_dirs, "target": target.name, "builds": []}
        _BOARD_OBJECTS[key] = (compiler, {})
    return _BOARD_OBJECTS[key]


def _object(env, compiler, src: Path, obj: Path, include_dirs: list[Path], downstream, level=None):
    """Declare ``obj`` compiled from ``src`` at ``level`` (default: opt=): a
    Python action running the compiler from an argument list (with a time
    limit), the C scanner so a header edit recompiles, and the whole command
    line (compiler, version, flags with the level used, include folders) in
    the signature so a flag change recompiles."""
    check_tool_path(src, "C source")
    argv = [compiler["gcc"], *compiler["cpu_flags"], f"-{level or compiler['opt']}", *compiler["flags"],
            *(f"-I{d}" for d in include_dirs)]
    timeout, verbose, board = env["compile_timeout"], env["verbose"], compiler["target"]
    node = env.Command(
        _file(env, obj), _file(env, src),
        _action(lambda t, s, e: compile_c(argv, s[0], t[0], timeout, verbose), "cc", downstream,
                describe=lambda t, s: f"[cc] {board}: {_p(s[0])}"),
        source_scanner=_c_scanner(), CPPPATH=[_dir(env, d) for d in include_dirs])
    env.Depends(node, env.Value(json.dumps([argv, compiler["version"]])))
    return node[0]


_SCANNER: list = []


def _c_scanner():
    """SCons's C #include scanner (one for the run): follows includes through
    the step's CPPPATH folders, given as nodes so no `$` is substituted."""
    if not _SCANNER:
        from SCons.Scanner.C import CScanner
        _SCANNER.append(CScanner())
    return _SCANNER[0]


def _board_object(env, compiler, objects: dict, odir: Path, src: Path, level=None):
    src = Path(src)
    if src not in objects:
        stems = {p.stem for p in objects}
        # Same file name from two folders: the second gets a folder of its own.
        folder = hashlib.sha1(str(src.parent).encode()).hexdigest()[:8]
        sub = odir / folder if src.stem in stems else odir
        objects[src] = _object(env, compiler, src, sub / f"{src.stem}.o", compiler["include_dirs"],
                               _downstream(compiler["builds"], "cc"), level)
    return objects[src]


def link_sources(target, contributed) -> list[Path]:
    """The C files one build links: reference kernels, runtime, startup, and
    the sources of exactly the kernels it was given (a source a plugin no
    longer lists leaves the link)."""
    sources = [*reference_sources(), RUNTIME_DIR / "tb_runtime.c", *map(Path, target.startup_sources)]
    for impl in contributed:
        sources += [Path(p) for p in impl.sources if Path(p) not in sources]
    return sources


def _compile_and_link(env, target, toolchain, tdir, odir, model_c, contributed, extra=(),
                      place="flash", plan_json=None, levels=None):
    """``levels``: the sources compiled at another level than opt= (kernel_registry.compile_levels)."""
    compiler, objects = _board_objects(env, target, toolchain, odir)
    compiler["builds"].append(tdir)
    shared = [_board_object(env, compiler, objects, odir, src, (levels or {}).get(src))
              for src in link_sources(target, contributed)]
    # model.c is the codegen step's target: the same node, so the dependency is there.
    model_obj = _object(env, compiler, tdir / "model.c", tdir / "model.o",
                        [*compiler["include_dirs"], tdir], _downstream([tdir], "cc"))
    link_settings = env.Value(json.dumps([toolchain.tool("gcc"), toolchain.version,
                                          list(target.ldflags), env["opt"]]))
    opt = env["opt"]
    if place != "flash":      # placement.json beside the ELF; plan.json prices the constants
        return _link_placed(env, target, toolchain, tdir, model_obj, [*shared, *extra],
                            link_settings, place, plan_json)
    # model.o first among the sources: SCons then generates and compiles the
    # model (and its arena check) before the board's objects; the link order
    # itself stays kernels, runtime, startup, model.
    elf, map_file = env.Command(
        [_file(env, tdir / "firmware.elf"), _file(env, tdir / "firmware.map")],
        [model_obj, *shared, *extra, _file(env, target.linker_script), link_settings],
        _action(lambda t, s, e: link(toolchain, target, [*(p for p in s[1:] if p.suffix == ".o"), s[0]],
                                     t[0], t[1], opt), "link", _downstream([tdir], "link")))
    return elf, map_file, []


def _link_placed(env, target, toolchain, tdir, model_obj, objects, link_settings, place, plan_json):
    """The link step of place=auto|ram: tinybuild.placement.link_placed."""
    opt = env["opt"]
    elf, map_file, record = env.Command(
        [_file(env, tdir / n) for n in ("firmware.elf", "firmware.map", "placement.json")],
        [model_obj, *objects, _file(env, target.linker_script), link_settings, plan_json,
         _file(env, Path(placement.__file__)), env.Value(f"place={place}")],
        _action(lambda t, s, e: placement.link_placed(
            toolchain, target, [*(p for p in s[1:] if p.suffix == ".o"), s[0]], t[0], t[1], opt,
            place, s[-3], t[2]), "link", _downstream([tdir], "link")))
    return elf, map_file, [record]


def compile_c(argv: list[str], source: Path, obj: Path, timeout: float, verbose: bool = False) -> None:
    """Run the C compiler on one file (no shell); one clear line if it fails,
    cannot start, or runs past ``timeout`` seconds."""
    cmd = [*argv, "-c", str(source), "-o", str(obj)]
    if verbose:
        print(shlex.join(cmd), flush=True)
    compiler = _p(argv[0])
    try:
        code, err = run_tool(cmd, timeout)
    except subprocess.TimeoutExpired:
        raise TinybuildError(f"compiling {_p(source)}: {compiler} did not finish within {timeout:g} s "
                             "(compile_timeout=); the compiler hangs or the machine is overloaded")
    except OSError as exc:
        raise TinybuildError(f"compiling {_p(source)}: cannot run {compiler}: {exc.strerror}")
    if err:
        sys.stderr.write(err)
    if code != 0:
        raise TinybuildError(f"compiling {_p(source)} failed ({compiler} exited with {code}; its "
                             "messages are above)")


def run_tool(cmd: list[str], timeout: float) -> tuple[int, str]:
    """Run ``cmd`` in its own process group; on timeout or Ctrl-C the whole
    group (gcc and its cc1/as children) is killed, not only the driver."""
    deadline = time.monotonic() + timeout
    with subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, start_new_session=True) as proc:
        try:
            while True:
                try:
                    out, _ = proc.communicate(timeout=min(0.5, max(deadline - time.monotonic(), 0)))
                    break
                except subprocess.TimeoutExpired:
                    if scons_interrupted():          # Ctrl-C seen by SCons (a -j worker thread)
                        raise KeyboardInterrupt from None
                    if time.monotonic() >= deadline:
                        raise
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return proc.returncode, out.decode(errors="replace")


def link(toolchain, target, objects, elf: Path, map_file: Path, opt: str) -> None:
    from .linkcheck import run_link
    run_link(toolchain, target, objects, elf, map_file, opt)


def _size(elf, map_file, target):
    from . import size
    return size.analyze(elf, map_file, target)


def _report(targets, sources, target, tool_info, model, opt):
    from . import report
    placed = Path(str(targets[0])).with_name("placement.json")   # place=auto|ram builds only
    report.write(targets[0], targets[1], target=target, toolchain=tool_info, model=model, opt=opt,
                 size=pipeline.read_json(sources[0]), run=pipeline.read_json(sources[1]),
                 validation=pipeline.read_json(sources[2]), plan=pipeline.read_json(sources[3]),
                 conversion=pipeline.read_json(sources[4]),
                 placement=pipeline.read_json(placed) if placed.exists() else None)


def _report_unsimulated(targets, sources, target, tool_info, model, opt, note):
    """report.json/.md of a build that stopped after link and size: the same
    keys as a simulated one where they apply; ``inference`` is None and
    ``validation`` says why nothing was run."""
    size, plan = pipeline.read_json(sources[0]), pipeline.read_json(sources[1])
    r = {
        "model": {"path": str(model), "name": Path(model).stem, "input": plan["input"],
                  "output": plan["output"], "macs": plan["macs"]},
        "target": {"name": target.name, "board": target.board, "cpu": target.cpu,
                   "clock_hz": target.clock_hz, "plugin": target.plugin},
        "toolchain": tool_info, "opt": opt, "conversion": pipeline.read_json(sources[2]),
        "flash": size["flash"], "ram": size["ram"],
        "arena": {"bytes": plan["memory"]["arena_size"], "lower_bound": plan["memory"]["lower_bound"]},
        "stack": {"peak_bytes": None, "reserved_bytes": size["stack_reserved_bytes"]},
        "inference": None,
        "validation": {"match": None, "inputs": 0, "skipped": note},
        "layers": [{k: l[k] for k in ("index", "op", "shape", "kernel", "macs")} for l in plan["layers"]],
        "sections": size["sections"],
        "groups": {**size["groups"], "stack": {"flash": 0, "ram": size["stack_reserved_bytes"]}},
    }
    pipeline.write_json(targets[0], r)
    t = r["target"]
    lines = [f"# {r['model']['name']} on {t['name']}", "",
             f"Board: {t['board']} ({t['cpu']}, {t['clock_hz'] / 1e6:g} MHz). Toolchain: "
             f"{tool_info['triple']}-gcc {tool_info['version']} ({tool_info['source']}), -{opt}.", "",
             f"**{note}.**", "", "| figure | value |", "| --- | --- |",
             f"| flash | {r['flash']['used']:,} B of {r['flash']['capacity']:,} |",
             f"| RAM | {r['ram']['used']:,} B of {r['ram']['capacity']:,}: "
             f"{r['ram']['used'] - r['stack']['reserved_bytes']:,} static data + "
             f"{r['stack']['reserved_bytes']:,} stack reserved |",
             f"| arena | {r['arena']['bytes']:,} B (lower bound {r['arena']['lower_bound']:,} B) |",
             f"| MACs | {r['model']['macs']:,} |", "",
             "## Sections", "", "| section | address | flash B | RAM B |", "| --- | --- | --- | --- |"]
    lines += [f"| {x['name']} | 0x{x['address']:08x} | {x['flash']:,} | {x['ram']:,} |"
              for x in r["sections"]]
    Path(targets[1]).write_text("\n".join(lines) + "\n")


def summary_unsimulated(r: dict, report_md: str | None = None) -> str:
    t, tc = r["target"], r["toolchain"]
    lines = [
        f"tinybuild: {r['model']['name']} on {t['name']} - {t['board']}",
        f"  toolchain   {tc['triple']}-gcc {tc['version']} ({tc['source']}: {tc['bin_dir']}), "
        f"{opt_summary(r)}",
        f"  flash       {r['flash']['used']:>9,} B of {r['flash']['capacity']:,}",
        f"  RAM         {r['ram']['used']:>9,} B of {r['ram']['capacity']:,}: "
        f"{r['ram']['used'] - r['stack']['reserved_bytes']:,} static + "
        f"{r['stack']['reserved_bytes']:,} stack",
        f"  arena       {r['arena']['bytes']:>9,} B (lower bound {r['arena']['lower_bound']:,} B)",
        f"  inference   {r['validation']['skipped']}",
    ]
    if report_md:
        lines.append(f"  report      {report_md}")
    return "\n".join(lines)



def build_succeeded() -> bool:
    """At exit: no step failed, SCons exits 0, nobody pressed Ctrl-C (a
    summary must never follow a failure)."""
    from SCons.Script import GetBuildFailures
    return not GetBuildFailures() and _scons_exit_status() == 0 and not INTERRUPTED.is_set()


def at_exit(fn) -> None:
    """Run ``fn`` when SCons is done; should it fail, one line and exit 2
    (an exception in an atexit handler would otherwise leave exit status 0)."""
    def run():
        try:
            fn()
        except Exception as exc:
            sys.stdout.flush()
            print(f"tinybuild: error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            os._exit(2)

    atexit.register(run)


def _print_summary_at_exit(built) -> None:
    from SCons.Script import GetOption

    report_json = built[1] / "report.json"

    def show():
        if GetOption("clean") or GetOption("no_exec") or not build_succeeded() \
                or not report_json.exists():
            return
        from . import report
        r = pipeline.read_json(report_json)
        md = _p(report_json.with_suffix(".md"))
        print(report.summary(r, md) if r.get("inference") else summary_unsimulated(r, md))

    at_exit(show)


def comparison_table(model_name: str, rows: list[tuple[str, dict | None, str]]) -> str:
    """One line per board: ``(name, report record or None, why not)``."""
    head = ["target", "board", "flash B", "RAM B", "instructions", "cycles", "ms @ clock",
            "matches TFLite"]
    table = [head]
    notes = []
    for name, r, why in rows:
        if r is None:
            table.append([name, "", "-", "-", "-", "-", "-", why])
            continue
        inf = r.get("inference")
        clock = f"{r['target']['clock_hz'] / 1e6:g} MHz"
        match = r["validation"].get("match")
        table.append([
            name, r["target"]["board"].split(" (")[0], f"{r['flash']['used']:,}", f"{r['ram']['used']:,}",
            f"{inf['instructions']:,}" if inf else "-", f"{inf['cycles']:,}" if inf else "-",
            f"{inf['ms']:.3f} @ {clock}" if inf else f"- @ {clock}",
            _match_cell(r["validation"])])
        if not inf:
            notes.append(f"  {name}: {r['validation']['skipped']}")
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    right = {2, 3, 4, 5}
    out = [f"tinybuild: {model_name} on every board with a toolchain"]
    for row in table:
        out.append("  " + "  ".join(c.rjust(w) if i in right else c.ljust(w)
                                    for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    return "\n".join(out + notes)


def _match_cell(validation: dict) -> str:
    if validation.get("match"):
        return "yes"
    if validation.get("validate") == "no":
        return validation["skipped"]
    return "not simulated" if validation.get("match", False) is None else "NO"


def _print_table_at_exit(model_name: str, built, skipped) -> None:
    from SCons.Script import GetBuildFailures, GetOption

    def show():
        if GetOption("clean") or GetOption("help") or INTERRUPTED.is_set():
            return
        import SCons.Node

        failed = {str(Path(str(f.node)).resolve()) for f in GetBuildFailures() if f.node is not None}
        models_dir = str((built[0][1].parent.parent / "models").resolve()) + os.sep
        rows = []
        for target, tdir, report_node in built:
            where = (str(tdir.parent.resolve()) + os.sep)
            fresh = report_node.get_state() in (SCons.Node.executed, SCons.Node.up_to_date)
            if any(p.startswith((where, models_dir)) for p in failed):
                rows.append((target.name, None, "FAILED (error above)"))
            elif fresh and (tdir / "report.json").exists():
                rows.append((target.name, pipeline.read_json(tdir / "report.json"), ""))
            else:
                rows.append((target.name, None, "not built (stopped early; -k builds the rest)"))
        print(comparison_table(model_name, rows))
        for name, why in skipped:
            print(f"  skipped {name}: {why}")
        print(f"  reports     {built[0][1].parent.parent}/<target>/{built[0][1].name}/report.md")

    at_exit(show)
