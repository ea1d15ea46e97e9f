"""The ``tinybuild`` command (also ``python -m tinybuild``).

  tinybuild targets                  boards from every plugin, with toolchain status
  tinybuild simulators               simulator backends and whether they run here
  tinybuild doctor                   everything above plus plugins and Python packages
  tinybuild toolchain install NAME   xPack toolchain for a target (needs network, xpm)
  tinybuild build [VAR=VALUE ...]    the same as `scons VAR=VALUE ...` in the project
  tinybuild regress [--shard K/N] [--update-baseline]
                                     models x targets of regress.toml against regress/baseline.json
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path

from . import plugins
from .errors import TinybuildError, shown


def _toolchain_status(pm, target) -> str:
    try:
        tc = pm.hook.tinybuild_find_toolchain(target=target, explicit_path=None)
    except TinybuildError as exc:
        return f"error: {exc}"
    if tc is None:
        return f"missing ({target.toolchain_hint or 'see tinybuild doctor'})"
    return f"{tc.triple}-gcc {tc.version} ({tc.source}: {tc.bin_dir})"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _simulator_column(target, sims: dict, usable: dict[str, bool]) -> str:
    """The simulators that run ``target``: usable ones first, the others marked
    (the simulators table says why)."""
    runnable = sorted((not usable[s], s) for s, sim in sims.items() if sim.supports(target))
    return ", ".join(s if usable[s] else f"{s} (not usable here)" for _, s in runnable) or "none (sized only)"


def cmd_targets(pm, args) -> int:
    sims = plugins.simulators(pm)
    usable = {name: sim.available()[0] for name, sim in sims.items()}
    rows = [["target", "board", "clock", "flash/RAM KiB", "simulators", "toolchain"]]
    for name, t in sorted(plugins.targets(pm).items()):
        rows.append([name, t.board, f"{t.clock_hz / 1e6:g} MHz",
                     f"{t.capacity('flash') // 1024}/{t.capacity('ram') // 1024}",
                     _simulator_column(t, sims, usable), _toolchain_status(pm, t)])
    print(_table(rows))
    return 0


def cmd_simulators(pm, args) -> int:
    rows = [["simulator", "usable", "status"]]
    for name, sim in sorted(plugins.simulators(pm).items()):
        ok, status = sim.available()
        rows.append([name, "yes" if ok else "no", status])
    print(_table(rows))
    return 0


def cmd_doctor(pm, args) -> int:
    print(f"tinybuild {importlib.metadata.version('tinybuild') if _installed() else '(not installed)'}"
          f" on Python {sys.version.split()[0]}")
    print("\nplugins:")
    for name, plugin in pm.list_name_plugin():
        print(f"  {name}" + (f"  ({shown(plugin.__file__, 300)})" if getattr(plugin, "__file__", None) else ""))
    print("\npackages:")
    for pkg in ("scons", "pluggy", "unicorn", "pyelftools", "tflite", "numpy", "tensorflow-cpu",
                "tensorflow", "tf-keras"):
        try:
            print(f"  {pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    if not importlib.util.find_spec("tensorflow"):
        print("  tensorflow: missing (needed to convert .h5/.keras and for the reference run): "
              "pip install tensorflow-cpu tf-keras")
    print("\ntargets:")
    try:                        # a broken board plugin is reported; the rest is still checked
        targets_ok = cmd_targets(pm, args) == 0
        _print_kernels(pm)
    except TinybuildError as exc:
        print(f"  error: {exc}")
        targets_ok = False
    print("\nsimulators:")
    return max(cmd_simulators(pm, args), 0 if targets_ok else 2)


def _print_kernels(pm) -> None:
    """Every board's optimized kernels, checked as a build checks them (a
    broken kernel plugin would otherwise pass the doctor and stop every build)."""
    counts = [f"{name} {len(plugins.kernels(pm, target))}"
              for name, target in sorted(plugins.targets(pm).items())]
    print(f"\noptimized kernels per target: {', '.join(counts)}")


def _installed() -> bool:
    try:
        importlib.metadata.version("tinybuild")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def cmd_toolchain_install(pm, args) -> int:
    from .toolchains import xpm_install
    target = plugins.find_target(pm, args.target)
    print(f"installed into {xpm_install(target)}")
    return 0


def cmd_build(pm, args) -> int:
    root = plugins.PROJECT_ROOT
    scons = Path(sys.executable).with_name("scons")
    cmd = [str(scons) if scons.exists() else "scons", "-C", str(root), *args.vars]
    os.execvp(cmd[0], cmd)
    return 0


def cmd_regress(pm, args) -> int:
    """`scons -k regress ...`: the whole matrix in one SCons run, then the comparison."""
    root = plugins.PROJECT_ROOT
    scons = Path(sys.executable).with_name("scons")
    cmd = [str(scons) if scons.exists() else "scons", "-C", str(root), "-Q", "-k",
           f"-j{args.jobs}", "regress", f"manifest={Path(args.manifest).resolve()}",
           f"baseline={Path(args.baseline).resolve()}"]
    cmd += [f"shard={args.shard}"] if args.shard else []
    cmd += [f"cachedir={Path(args.cachedir).resolve()}"] if args.cachedir else []
    cmd += [f"regress_out={Path(args.out).resolve()}"] if args.out else []
    cmd += [f"sim={args.sim}"] if args.sim else []
    cmd += ["update_baseline=1"] if args.update_baseline else []
    cmd += [f"plugins={args.plugins}"] if args.plugins else []
    cmd += [f"build_dir={Path(args.build_dir).resolve()}"] if args.build_dir else []
    os.execvp(cmd[0], cmd)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tinybuild", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", default="", help="extra plugin folders or files, ':'-separated")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("targets", help="list boards and toolchain status").set_defaults(fn=cmd_targets)
    sub.add_parser("simulators", help="list simulators").set_defaults(fn=cmd_simulators)
    sub.add_parser("doctor", help="check plugins, packages, toolchains, simulators").set_defaults(fn=cmd_doctor)
    tc = sub.add_parser("toolchain", help="toolchain management")
    tc_sub = tc.add_subparsers(dest="action", required=True)
    inst = tc_sub.add_parser("install", help="install a target's xPack toolchain with xpm")
    inst.add_argument("target")
    inst.set_defaults(fn=cmd_toolchain_install)
    reg = sub.add_parser("regress", help="build and simulate every model x target of a manifest "
                                         "and compare with the baseline")
    reg.add_argument("--manifest", default=str(plugins.PROJECT_ROOT / "regress.toml"))
    reg.add_argument("--baseline", default=str(plugins.PROJECT_ROOT / "regress" / "baseline.json"))
    reg.add_argument("--update-baseline", action="store_true", help="rewrite the baseline deliberately")
    reg.add_argument("--shard", default="", help="K/N: run a deterministic part of the matrix")
    reg.add_argument("--cachedir", default="", help="shared SCons cache folder")
    reg.add_argument("--out", default="", help="folder for regression.md/.html/.junit.xml")
    reg.add_argument("--sim", default="", help="simulator for every case (default: each board's)")
    reg.add_argument("--build-dir", default="", help="where builds go (default: build/)")
    reg.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    reg.set_defaults(fn=cmd_regress)
    build = sub.add_parser("build", help="run scons in the project with VAR=VALUE arguments")
    build.add_argument("vars", nargs="*")
    build.set_defaults(fn=cmd_build)
    args = parser.parse_args(argv)
    try:
        pm = plugins.make_plugin_manager([Path(p) for p in args.plugins.split(":") if p])
        return args.fn(pm, args)
    except TinybuildError as exc:
        print(f"tinybuild: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
