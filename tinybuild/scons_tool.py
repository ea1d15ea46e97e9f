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
"""
from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
from pathlib import Path

from . import pipeline, plugins, regress, scons_regress
from .errors import TinybuildError
from .kernel_registry import KERNEL_DIR, RUNTIME_DIR, reference_sources

CORE_DIR = Path(__file__).parent
MODEL_SUFFIXES = (".h5", ".keras", ".tflite")

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
        ("model", "model file (.h5/.keras/.tflite); a bare name is looked up in models/", "kws.h5"),
        ("sim", "simulator backend; empty = the board's default", ""),
        ("calibration", "calibration samples (.npy/.npz) for int8 quantization; empty = "
                        "<model>_calib.npy beside the model, else seeded noise", ""),
        ("toolchain", "toolchain bin folder; overrides xPack and PATH (also TINYBUILD_TOOLCHAIN)", ""),
        EnumVariable("opt", "C optimization level", "O2", allowed_values=("O0", "O1", "O2", "O3", "Os")),
        EnumVariable("kernels", "int8 kernels: the target plugins' optimized ones where they accept a "
                     "layer, or the portable reference ones only (outputs go to "
                     "<target>/<model>-reference-kernels)", "optimized",
                     allowed_values=("optimized", "reference")),
        ("inputs", "number of inputs validated against the TFLite reference", "4"),
        ("seed", "seed of the random validation inputs", "1"),
        ("max_instructions", "simulator instruction limit per run", "2000000000"),
        ("sim_timeout", "simulator host-time limit per run, seconds", "600"),
        ("plugins", "extra plugin folders or files, separated by ':'", ""),
        ("cachedir", "shared SCons cache folder (CacheDir) for CI", ""),
        ("build_dir", "where outputs go", "build"),
        BoolVariable("verbose", "print full compiler command lines", False),
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


# Output folder -> the message of the step that failed there (for summaries
# of multi-build runs such as `scons regress`).
STEP_ERRORS: dict[Path, str] = {}


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
            STEP_ERRORS[Path(str(target[0])).resolve().parent] = f"{self.label}: {exc}"
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

    import SCons.Errors

    variables = _variables(args)
    try:
        variables.Update(env)
    except SCons.Errors.UserError as exc:    # e.g. kernels=fast: one line, no SCons file:line
        _fail(f"{exc}; `scons -h` lists the variables")
    Help(HELP_INTRO + variables.GenerateHelpText(env), append=False)
    # Content signatures, not timestamps: an edit within the same second as the
    # last build must still rebuild (timestamps have one-second resolution here).
    env.Decider("content")
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
    from SCons.Script import COMMAND_LINE_TARGETS
    if "regress" in COMMAND_LINE_TARGETS:
        scons_regress.declare(env, root, pm)
        return
    if env["target"] == ALL:
        _declare_all(env, root, pm)
        return
    target = plugins.find_target(pm, env["target"])
    model = resolve_model(env["model"], root)
    sims = plugins.simulators(pm)
    simulator, note = choose_simulator(env["sim"], target, sims)
    toolchain = pm.hook.tinybuild_find_toolchain(target=target, explicit_path=env["toolchain"] or None)
    if toolchain is None:
        from .toolchains import missing_toolchain_error
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


def check_board_files(target) -> None:
    """A board's linker script and startup sources must exist (a plugin in
    progress, or one whose files moved, fails here with its name)."""
    for kind, path in [("linker script", target.linker_script),
                       *(("startup source", p) for p in target.startup_sources)]:
        if not Path(path).is_file():
            raise TinybuildError(f"target '{target.name}' ({target.plugin}): its {kind} {path} "
                                 "does not exist")


def choose_simulator(requested: str, target, sims: dict):
    """The simulator for ``target``, or ``(None, why)`` for a build that stops
    after link and size.

    ``sim=`` must name a simulator that runs the board (an error otherwise);
    without it the board's default is used; a board with no default simulator,
    or whose default cannot run it, is built and sized only."""
    runnable = sorted(n for n, sim in sims.items() if sim.supports(target))
    if requested:
        if requested not in sims:
            raise TinybuildError(f"sim={requested}: unknown simulator; known: "
                                 f"{', '.join(sorted(sims)) or 'none'}")
        if not sims[requested].supports(target):
            raise TinybuildError(f"sim={requested} cannot run target '{target.name}' ({target.arch}, "
                                 f"{target.cpu}); simulators that can: {', '.join(runnable) or 'none'}")
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
        raise TinybuildError(f"sim={requested}: unknown simulator; known: {', '.join(sorted(sims))}")
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
        built.append(declare_build(env, root, target, model, toolchain, simulator, calibration,
                                   contributed, pm, note))
    if not built:
        raise TinybuildError("target=all: no board has its toolchain here:\n" +
                             "\n".join(f"  {n}: {why}" for n, why in skipped))
    _print_table_at_exit(model.stem, built, skipped)


def _calibration(spec: str, model: Path, root: Path) -> Path | None:
    if spec:
        p = Path(spec) if Path(spec).is_absolute() else root / spec
        if not p.exists():
            raise TinybuildError(f"calibration={spec}: no such file")
        return p.resolve()
    beside = model.with_name(model.stem + "_calib.npy")
    return beside if beside.exists() else None


_MODEL_NODES: dict = {}


def _model_nodes(env, build, model, calibration, pm, count, seed):
    """Conversion and TFLite reference, declared once per model however many
    boards build it (their outputs do not depend on the board)."""
    key = (str(build), str(model), count, seed)
    if key not in _MODEL_NODES:
        mdir = build / "models" / model.stem
        calib_src = [str(calibration)] if calibration else []
        int8, conv_json = _convert(env, model, mdir, calib_src, calibration, pm)
        inputs_bin, ref_bin, ref_json = env.Command(
            # Named by count and seed, so a regression run (its own input count)
            # and an ordinary build share the folder without redoing each other.
            [str(mdir / f"{stem}-n{count}-s{seed}.{ext}")
             for stem, ext in (("inputs", "bin"), ("reference", "bin"), ("reference", "json"))],
            [int8, env.Value(f"count={count} seed={seed}")] + calib_src,
            _action(lambda t, s, e: pipeline.reference(s[0], t[0], t[1], t[2], count, seed,
                                                       calibration), "reference"))
        _MODEL_NODES[key] = (int8, conv_json, inputs_bin, ref_bin, ref_json)
    return _MODEL_NODES[key]


def declare_build(env, root, target, model, toolchain, simulator, calibration, contributed, pm,
                  note="", kernels=None):
    """Declare one board's build of one model; returns ``(target, tdir, report node)``.

    With ``simulator`` None the build stops after link and size, and the
    report carries ``note`` (why it was not simulated)."""
    name = model.stem
    build = root / env["build_dir"]
    tdir = build / target.name / regress.variant_name(name, kernels or env["kernels"])
    odir = build / target.name / "obj"
    count, seed = int(env["inputs"]), int(env["seed"])
    int8, conv_json, inputs_bin, ref_bin, ref_json = _model_nodes(env, build, model, calibration,
                                                                  pm, count, seed)

    kernel_labels = sorted(f"{k.op}:{k.label}:{k.priority}" for k in contributed)
    model_c, model_h, plan_json, _arena_svg = env.Command(
        [str(tdir / f) for f in ("model.c", "model.h", "plan.json", "arena.svg")],
        [int8, env.Value(json.dumps(kernel_labels))] + sorted(str(p) for p in CORE_DIR.glob("*.py"))
        + sorted({str(p) for k in contributed for p in k.build_files}),
        _action(lambda t, s, e: pipeline.generate(s[0], t[0].parent, contributed, name), "codegen"))

    elf, map_file = _compile_and_link(env, root, target, toolchain, tdir, odir, model_c, contributed)
    size_json = env.Command(str(tdir / "size.json"),
                            [elf, map_file, env.Value(repr(target.memory))],
                            _action(lambda t, s, e: pipeline.write_json(
                                t[0], _size(s[0], s[1], target)), "size"))
    tool_info = {"triple": toolchain.triple, "version": toolchain.version,
                 "source": toolchain.source, "bin_dir": str(toolchain.bin_dir)}
    settings = env.Value(json.dumps({"toolchain": tool_info, "opt": env["opt"], "model": str(model),
                                     "target": repr(target), "note": note}))
    if simulator is None:
        report = env.Command(
            [str(tdir / "report.json"), str(tdir / "report.md")],
            [size_json, plan_json, conv_json, settings],
            _action(lambda t, s, e: _report_unsimulated(t, s, target, tool_info, model, env["opt"],
                                                        note), "report"))
    else:
        limits = (int(env["max_instructions"]), float(env["sim_timeout"]))
        run_json = env.Command(
            str(tdir / "run.json"),
            [elf, inputs_bin, ref_json,
             env.Value(f"{simulator.name} {limits} {target!r} {code_signature(simulator)}")],
            _action(lambda t, s, e: pipeline.simulate(
                simulator, s[0], target, s[1], pipeline.read_json(s[2])["input_bytes"], t[0],
                *limits), "simulate"))
        validation = env.Command(
            str(tdir / "validation.json"),
            [run_json, ref_bin, ref_json, elf, inputs_bin, plan_json, int8,
             env.Value(f"debug={env.get('debug', '')}")],
            _action(lambda t, s, e: pipeline.validate(
                s[0], s[1], pipeline.read_json(s[2])["output_bytes"], t[0], pipeline.diagnosis(
                    elf=s[3], inputs_bin=s[4], reference_json=s[2], plan_json=s[5], tflite=s[6],
                    target=target, simulators=plugins.simulators(pm), limits=limits,
                    debug=env.get("debug", ""))), "validate"))
        report = env.Command(
            [str(tdir / "report.json"), str(tdir / "report.md")],
            [size_json, run_json, validation, plan_json, conv_json, settings],
            _action(lambda t, s, e: _report(t, s, target, tool_info, model, env["opt"]), "report"))
    env.Default(report)
    env.Alias(f"{target.name}-{tdir.name}", report)
    env.Clean(report, [str(tdir), str(odir)])
    return target, tdir, report[0]


def code_signature(obj) -> str:
    """A digest of the source folder of the module that defines ``obj``'s
    class, so results re-derive when a plugin's code (say, a simulator's
    timing tables) changes."""
    import hashlib
    import inspect

    digest = hashlib.sha256()
    try:
        folder = Path(inspect.getsourcefile(type(obj))).parent
    except (TypeError, OSError):
        return ""
    for path in sorted(folder.glob("*")):
        if path.suffix in (".py", ".c", ".h", ".S"):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


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


_TARGET_OBJECTS: dict = {}


def _target_objects(env, target, toolchain, odir, contributed):
    """The cross environment and the kernel, runtime and startup objects of a
    board: declared once per board however many models link them."""
    key = (str(odir), target.name)
    if key not in _TARGET_OBJECTS:
        xenv = env.Clone(
            CC=toolchain.tool("gcc"), AS=toolchain.tool("gcc"), AR=toolchain.tool("ar"),
            RANLIB=toolchain.tool("ranlib"), OBJSUFFIX=".o",
            CCFLAGS=list(target.cflags) + [f"-{env['opt']}", "-g", "-std=c99", "-Wall", "-Wextra",
                                           "-ffunction-sections", "-fdata-sections",
                                           "-ffp-contract=off"],
            CPPPATH=[str(KERNEL_DIR), str(RUNTIME_DIR)] + [str(p) for p in target.include_dirs])
        if not env["verbose"]:
            xenv["CCCOMSTR"] = f"[cc] {target.name}: $SOURCE"
        sources = list(reference_sources()) + [RUNTIME_DIR / "tb_runtime.c"] + list(target.startup_sources)
        for impl in contributed:
            sources += [p for p in impl.sources if p not in sources]
        objs = [xenv.Object(str(odir / (src.stem + ".o")), str(src)) for src in sources]
        _TARGET_OBJECTS[key] = (xenv, objs)
    return _TARGET_OBJECTS[key]


def _compile_and_link(env, root, target, toolchain, tdir, odir, model_c, contributed):
    xenv, shared_objs = _target_objects(env, target, toolchain, odir, contributed)
    model_obj = xenv.Object(str(tdir / "model.o"), model_c, CPPPATH=xenv["CPPPATH"] + [str(tdir)])
    link_settings = env.Value(json.dumps([toolchain.tool("gcc"), toolchain.version,
                                          list(target.ldflags), env["opt"]]))
    elf, map_file = xenv.Command(
        [str(tdir / "firmware.elf"), str(tdir / "firmware.map")],
        shared_objs + [model_obj, str(target.linker_script), link_settings],
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
        f"  toolchain   {tc['triple']}-gcc {tc['version']} ({tc['source']}: {tc['bin_dir']}), -{r['opt']}",
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


def _print_summary_at_exit(built) -> None:
    from SCons.Script import GetBuildFailures, GetOption

    report_json = built[1] / "report.json"

    def show():
        if GetOption("clean") or GetOption("help") or GetBuildFailures() or not report_json.exists():
            return
        from . import report
        r = pipeline.read_json(report_json)
        md = str(report_json.with_suffix(".md"))
        print(report.summary(r, md) if r.get("inference") else summary_unsimulated(r, md))

    atexit.register(show)


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
            f"{inf['ms']:g} @ {clock}" if inf else f"- @ {clock}",
            "yes" if match else ("not simulated" if match is None else "NO")])
        if not inf:
            notes.append(f"  {name}: {r['validation']['skipped']}")
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    right = {2, 3, 4, 5}
    out = [f"tinybuild: {model_name} on every board with a toolchain"]
    for row in table:
        out.append("  " + "  ".join(c.rjust(w) if i in right else c.ljust(w)
                                    for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    return "\n".join(out + notes)


def _print_table_at_exit(model_name: str, built, skipped) -> None:
    from SCons.Script import GetBuildFailures, GetOption

    def show():
        if GetOption("clean") or GetOption("help"):
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

    atexit.register(show)
