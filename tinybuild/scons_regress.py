"""``scons regress``: every case of a regression manifest in one SCons run.

Declares one build per (target, model) case with
:func:`tinybuild.scons_tool.declare_build`, then, when SCons is done,
compares each case with the baseline (:mod:`tinybuild.regress`), writes the
reports and sets the exit status. Use ``scons -k regress`` (``tinybuild
regress`` does) so one broken case does not stop the others.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from . import plugins, regress
from .errors import TinybuildError


def variables():
    from SCons.Script import BoolVariable
    return [
        ("manifest", "regression manifest (TOML)", "regress.toml"),
        ("baseline", "regression baseline (JSON)", "regress/baseline.json"),
        BoolVariable("update_baseline", "rewrite the baseline with this run's figures", False),
        ("shard", "run part K of N of the regression matrix, e.g. 1/2", ""),
        ("regress_out", "folder for regression.md/.html/.junit.xml; empty = <build_dir>/regression", ""),
    ]


def declare(env, root: Path, pm) -> None:
    from . import scons_tool

    known = plugins.targets(pm)
    manifest = regress.load_manifest(_path(root, env["manifest"]), set(known))
    cases = regress.shard(manifest.cases, env["shard"]) if env["shard"] else manifest.cases
    env["inputs"] = manifest.inputs
    sims = plugins.simulators(pm)
    nodes, errors = {}, {}
    for case in cases:
        target = known[case.target]
        try:
            toolchain = pm.hook.tinybuild_find_toolchain(target=target,
                                                         explicit_path=env["toolchain"] or None)
            if toolchain is None:
                raise TinybuildError(f"no {target.triple}-gcc found ({target.toolchain_hint})")
            simulator, note = scons_tool.choose_simulator(env["sim"], target, sims)
            if simulator is None:
                raise TinybuildError(note)
            scons_tool.check_board_files(target)
            contributed = plugins.kernels(pm, target) if case.kernels == "optimized" else []
            calibration = scons_tool._calibration("", case.model, root)
            # declare_build checks names and kernel sources before declaring anything
            _, _, nodes[case.key] = scons_tool.declare_build(
                env, root, target, case.model, toolchain, simulator, calibration, contributed, pm,
                kernels=case.kernels, quant=case.quant)
        except TinybuildError as exc:
            errors[case.key] = str(exc).splitlines()[0]
    env.Alias("regress", list(nodes.values()))
    out = _path(root, env["regress_out"]) if env["regress_out"] else root / env["build_dir"] / "regression"
    _evaluate_at_exit(env, root, manifest, cases, nodes, errors, out)


def _path(root: Path, spec: str) -> Path:
    p = Path(spec)
    return p if p.is_absolute() else root / p


def _evaluate_at_exit(env, root, manifest, cases, nodes, errors, out) -> None:
    from SCons.Script import GetBuildFailures, GetOption
    import SCons.Node

    from . import scons_tool

    build_dir = root / env["build_dir"]
    baseline = _path(root, env["baseline"])
    update = env["update_baseline"]

    def evaluate():
        if GetOption("clean") or GetOption("help") or GetOption("no_exec") \
                or scons_tool.INTERRUPTED.is_set():
            return
        failures = {Path(str(f.node)).resolve(): f.errstr for f in GetBuildFailures()}
        for case in cases:
            node = nodes.get(case.key)
            if node is None or node.get_state() in (SCons.Node.executed, SCons.Node.up_to_date):
                continue
            own = [d.resolve() for d in (build_dir / case.target / case.variant,
                                         build_dir / "models" / regress.variant_name(
                                             case.model.stem, quant=case.quant))]
            why = next((" ".join(scons_tool.STEP_ERRORS[d].split()) for d in own
                        if d in scons_tool.STEP_ERRORS), None)
            why = why or next((f"{p.name}: {e}" for p, e in failures.items()
                               if any(d in p.parents for d in own)),
                              "not built (an earlier failure stopped SCons; use scons -k)")
            errors.setdefault(case.key, why)
        results = regress.evaluate(manifest, cases, build_dir, baseline, out, update, errors)
        text = (out / "regression.md").read_text()
        print("\n" + text + f"\nreports: {out}/regression.md, regression.html, regression.junit.xml")
        if update:
            print(f"baseline updated: {baseline}")
        sys.stdout.flush()
        sys.stderr.flush()
        # With update_baseline, growth is accepted deliberately; wrong outputs
        # and broken builds still fail.
        if any(r.failed and not (update and r.status == "regressed") for r in results):
            os._exit(1)

    scons_tool.at_exit(evaluate)
