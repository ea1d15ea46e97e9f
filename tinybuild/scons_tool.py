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
"""
from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
from pathlib import Path

from . import pipeline, plugins
from .errors import TinybuildError
from .kernel_registry import KERNEL_DIR, RUNTIME_DIR, reference_sources

CORE_DIR = Path(__file__).parent
MODEL_SUFFIXES = (".h5", ".keras", ".tflite")

HELP_INTRO = """tinybuild: TinyML models to simulated, validated firmware.

  scons target=cortex-m4 model=kws.h5     convert, compile, link, size, simulate, validate, report
  scons -c target=cortex-m4 model=kws.h5  remove that build's outputs
  tinybuild targets | doctor              list boards, toolchains and simulators

Build variables (name: help (default)):
"""


def _variables(args):
    from SCons.Script import BoolVariable, EnumVariable, Variables

    v = Variables(None, args)
    v.AddVariables(
        ("target", "board to build for ('tinybuild targets' lists them)", "cortex-m4"),
        ("model", "model file (.h5/.keras/.tflite); a bare name is looked up in models/", "kws.h5"),
        ("sim", "simulator backend; empty = the board's default", ""),
        ("calibration", "calibration samples (.npy/.npz) for int8 quantization; empty = "
                        "<model>_calib.npy beside the model, else seeded noise", ""),
        ("toolchain", "toolchain bin folder; overrides xPack and PATH (also TINYBUILD_TOOLCHAIN)", ""),
        EnumVariable("opt", "C optimization level", "O2", allowed_values=("O0", "O1", "O2", "O3", "Os")),
        ("inputs", "number of inputs validated against the TFLite reference", "4"),
        ("seed", "seed of the random validation inputs", "1"),
        ("max_instructions", "simulator instruction limit per run", "2000000000"),
        ("sim_timeout", "simulator host-time limit per run, seconds", "600"),
        ("plugins", "extra plugin folders or files, separated by ':'", ""),
        ("cachedir", "shared SCons cache folder (CacheDir) for CI", ""),
        ("build_dir", "where outputs go", "build"),
        BoolVariable("verbose", "print full compiler command lines", False),
    )
    return v


def _fail(message: str) -> None:
    from SCons.Script import Exit
    print(f"tinybuild: error: {message}", file=sys.stderr)
    Exit(2)


def resolve_model(spec: str, root: Path) -> Path:
    p = Path(spec)
    candidates = [p] if p.is_absolute() else [root / p, root / "models" / p]
    for c in candidates:
        if c.exists():
            if c.suffix.lower() not in MODEL_SUFFIXES:
                raise TinybuildError(f"model={spec}: unsupported format '{c.suffix}'; use "
                                     f"{', '.join(MODEL_SUFFIXES)}")
            return c.resolve()
    known = sorted(x.name for x in (root / "models").glob("*") if x.suffix in MODEL_SUFFIXES)
    raise TinybuildError(f"model={spec}: no such file (looked in {', '.join(map(str, candidates))}). "
                         f"Models in models/: {', '.join(known) or 'none'}")


class _Step:
    """A build step as an SCons function action.

    SCons signs a callable object by its ``__call__`` code alone, not by the
    objects a closure would capture (plugin objects have no stable pickle),
    so every input that matters is passed to the command as a source: files,
    or ``env.Value`` strings for settings. A TinybuildError ends the build
    with its message only, no traceback.
    """

    def __init__(self, fn, label):
        self.fn, self.label = fn, label

    def __call__(self, target, source, env):
        try:
            self.fn([Path(str(t)) for t in target], [Path(str(s)) for s in source], env)
        except TinybuildError as exc:
            print(f"tinybuild: error: {exc}", file=sys.stderr)
            return 1
        return 0

    def strfunction(self, target, source, env):
        return f"[{self.label}] {Path(str(target[0])).parent}"


def _action(fn, label):
    from SCons.Action import Action
    step = _Step(fn, label)
    return Action(step, step.strfunction)


def setup(env, args) -> None:
    """Declare the whole build; called from SConstruct."""
    from SCons.Script import GetOption, Help

    variables = _variables(args)
    variables.Update(env)
    Help(HELP_INTRO + variables.GenerateHelpText(env), append=False)
    env.Decider("MD5-timestamp")
    build_root = Path(env.Dir("#").abspath) / env["build_dir"]
    build_root.mkdir(parents=True, exist_ok=True)
    env.SConsignFile(str(build_root / ".sconsign"))
    if env["cachedir"]:
        env.CacheDir(env["cachedir"])
    if GetOption("help"):
        return
    try:
        _declare(env)
    except TinybuildError as exc:
        _fail(str(exc))


def _declare(env) -> None:
    root = Path(env.Dir("#").abspath)
    extra = [Path(p) for p in env["plugins"].split(":") if p]
    pm = plugins.make_plugin_manager(extra)
    target = plugins.find_target(pm, env["target"])
    model = resolve_model(env["model"], root)
    sims = plugins.simulators(pm)
    sim_name = env["sim"] or target.default_simulator
    if sim_name not in sims:
        raise TinybuildError(f"sim={sim_name}: unknown simulator; known: {', '.join(sorted(sims)) or 'none'}")
    toolchain = pm.hook.tinybuild_find_toolchain(target=target, explicit_path=env["toolchain"] or None)
    if toolchain is None:
        from .toolchains import missing_toolchain_error
        raise missing_toolchain_error(target)
    calibration = _calibration(env["calibration"], model, root)
    contributed = plugins.kernels(pm, target)
    declare_build(env, root, target, model, toolchain, sims[sim_name], calibration, contributed, pm)


def _calibration(spec: str, model: Path, root: Path) -> Path | None:
    if spec:
        p = Path(spec) if Path(spec).is_absolute() else root / spec
        if not p.exists():
            raise TinybuildError(f"calibration={spec}: no such file")
        return p.resolve()
    beside = model.with_name(model.stem + "_calib.npy")
    return beside if beside.exists() else None


def declare_build(env, root, target, model, toolchain, simulator, calibration, contributed, pm):
    name = model.stem
    build = root / env["build_dir"]
    mdir = build / "models" / name
    tdir = build / target.name / name
    odir = build / target.name / "obj"
    calib_src = [str(calibration)] if calibration else []

    int8, conv_json = _convert(env, model, mdir, calib_src, calibration, pm)
    count, seed = int(env["inputs"]), int(env["seed"])
    inputs_bin, ref_bin, ref_json = env.Command(
        [str(mdir / f) for f in ("inputs.bin", "reference.bin", "reference.json")],
        [int8, env.Value(f"count={count} seed={seed}")] + calib_src,
        _action(lambda t, s, e: pipeline.reference(s[0], t[0], t[1], t[2], count, seed, calibration),
                "reference"))

    kernel_labels = sorted(f"{k.op}:{k.label}:{k.priority}" for k in contributed)
    model_c, model_h, plan_json = env.Command(
        [str(tdir / f) for f in ("model.c", "model.h", "plan.json")],
        [int8, env.Value(json.dumps(kernel_labels))] + sorted(str(p) for p in CORE_DIR.glob("*.py")),
        _action(lambda t, s, e: pipeline.generate(s[0], t[0].parent, contributed), "codegen"))

    elf, map_file = _compile_and_link(env, root, target, toolchain, tdir, odir, model_c, contributed)
    size_json = env.Command(str(tdir / "size.json"),
                            [elf, map_file, env.Value(repr(target.memory))],
                            _action(lambda t, s, e: pipeline.write_json(
                                t[0], _size(s[0], s[1], target)), "size"))
    limits = (int(env["max_instructions"]), float(env["sim_timeout"]))
    run_json = env.Command(
        str(tdir / "run.json"), [elf, inputs_bin, ref_json, env.Value(f"{simulator.name} {limits} {target!r}")],
        _action(lambda t, s, e: pipeline.simulate(
            simulator, s[0], target, s[1], pipeline.read_json(s[2])["input_bytes"], t[0], *limits),
            "simulate"))
    validation = env.Command(
        str(tdir / "validation.json"), [run_json, ref_bin, ref_json],
        _action(lambda t, s, e: pipeline.validate(
            s[0], s[1], pipeline.read_json(s[2])["output_bytes"], t[0]), "validate"))
    tool_info = {"triple": toolchain.triple, "version": toolchain.version,
                 "source": toolchain.source, "bin_dir": str(toolchain.bin_dir)}
    report = env.Command(
        [str(tdir / "report.json"), str(tdir / "report.md")],
        [size_json, run_json, validation, plan_json, conv_json,
         env.Value(json.dumps({"toolchain": tool_info, "opt": env["opt"], "model": str(model),
                               "target": repr(target)}))],
        _action(lambda t, s, e: _report(t, s, target, tool_info, model, env["opt"]), "report"))
    env.Default(report)
    env.Alias(f"{target.name}-{name}", report)
    env.Clean(report, [str(tdir), str(odir)])
    _print_summary_at_exit(tdir / "report.json")


def _convert(env, model, mdir, calib_src, calibration, pm):
    importers = {}
    for _, mapping in plugins.collect(pm, "tinybuild_model_importers"):
        importers.update(mapping if isinstance(mapping, dict) else {})
    if not importers:
        from . import convert as conv
        importers = {s: conv.convert_model for s in MODEL_SUFFIXES}
    return env.Command(
        [str(mdir / "model.int8.tflite"), str(mdir / "convert.json")],
        [str(model)] + calib_src,
        _action(lambda t, s, e: pipeline.convert(s[0], t[0], calibration, t[1], importers), "convert"))


def _compile_and_link(env, root, target, toolchain, tdir, odir, model_c, contributed):
    xenv = env.Clone(
        CC=toolchain.tool("gcc"), AS=toolchain.tool("gcc"), AR=toolchain.tool("ar"),
        RANLIB=toolchain.tool("ranlib"), OBJSUFFIX=".o",
        CCFLAGS=list(target.cflags) + [f"-{env['opt']}", "-g", "-std=c99", "-Wall", "-Wextra",
                                       "-ffunction-sections", "-fdata-sections", "-ffp-contract=off"],
        CPPPATH=[str(KERNEL_DIR), str(RUNTIME_DIR), str(tdir)] + [str(p) for p in target.include_dirs])
    if not env["verbose"]:
        xenv["CCCOMSTR"] = f"[cc] {target.name}: $SOURCE"
    sources = list(reference_sources()) + [RUNTIME_DIR / "tb_runtime.c"] + list(target.startup_sources)
    for impl in contributed:
        sources += [p for p in impl.sources if p not in sources]
    objs = [xenv.Object(str(odir / (src.stem + ".o")), str(src)) for src in sources]
    objs.append(xenv.Object(str(tdir / "model.o"), model_c))
    link_settings = env.Value(json.dumps([toolchain.tool("gcc"), toolchain.version,
                                          list(target.ldflags), env["opt"]]))
    elf, map_file = xenv.Command(
        [str(tdir / "firmware.elf"), str(tdir / "firmware.map")],
        objs + [str(target.linker_script), link_settings],
        _action(lambda t, s, e: link(toolchain, target, [p for p in s if p.suffix == ".o"],
                                     t[0], t[1], env["opt"]), "link"))
    return elf, map_file


def link(toolchain, target, objects, elf: Path, map_file: Path, opt: str) -> None:
    from .linkcheck import run_link
    run_link(toolchain, target, objects, elf, map_file, opt)


def _size(elf, map_file, target):
    from . import size
    return size.analyze(elf, map_file, target)


def _report(targets, sources, target, tool_info, model, opt):
    from . import report
    report.write(targets[0], targets[1], target=target, toolchain=tool_info, model=model, opt=opt,
                 size=pipeline.read_json(sources[0]), run=pipeline.read_json(sources[1]),
                 validation=pipeline.read_json(sources[2]), plan=pipeline.read_json(sources[3]),
                 conversion=pipeline.read_json(sources[4]))


def _print_summary_at_exit(report_json: Path) -> None:
    from SCons.Script import GetBuildFailures, GetOption

    def show():
        if GetOption("clean") or GetOption("help") or GetBuildFailures() or not report_json.exists():
            return
        from . import report
        print(report.summary(pipeline.read_json(report_json), str(report_json.with_suffix(".md"))))

    atexit.register(show)
