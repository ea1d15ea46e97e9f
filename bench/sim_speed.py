"""Simulator speed with the memory model on (issue 14 item 6): every MLPerf
Tiny model on nucleo-l4r5zi (stm32l4r5-art) and cortex-m4 (core only), the
report's run (``detail=True``: misaligned accesses and flash data reads
counted) and a validation run (``detail=False``: flash reads only), each with
the old every-access memory hook (``access_watch="hook"``, before) and the
static access watch (the default, after), beside the same ELF with nothing
watched (no detail, no memory model: the ceiling). Speed = instructions of
the whole run / host CPU seconds of ``emu_start`` (this thread's, so other
processes on the machine count less), best of ``--repeat``. Also checks
that both watches give the same counts. Host speeds are recorded, never
asserted.

``--patch``: the Cortex-M boards with the unpatched Unicorn wheel's library
against tinybuild's patched one (third_party/unicorn; docs/simulators.md),
each in a child process (libunicorn is loaded once per process): the report
run, the validation run and nothing watched, static watch only, and whether
every count and output is the same with both. The wheel's library is the
installed one if it is unpatched, else the ``libunicorn.so.2.wheel`` that
``./tb`` keeps beside it; the patched one the installed one, or
``--unicorn-lib DIR`` (a build not installed yet).

``--rv32``: the RV32 boards instead - riscv (GD32VF103, core only), esp32c3
(core only, its default) and esp32c3 with its flash cache model on
(esp32c3-flash-cache: every data read from flash through the cache); a
model that does not fit a board's flash or RAM gets a row saying so.

``--report``: the report run as a build makes it now, against how it was
made at ``--before REV`` (that commit's native_hook.c, a new engine for every
run): cold (a new engine, translation included: the first run of a
firmware in a process) and warm (on the engine the plain check run kept:
``UnicornSimulator.run(detail=True)`` runs that check first, so this is
the build's report run), before and now interleaved in one process so both
see the same host load; and whether every count is the same in all three.

    ./tb python bench/sim_speed.py [--rv32 | --patch [--unicorn-lib DIR] | --report [--before REV]]
                                   [--build-dir /tmp/sim_speed_build] [--repeat 5] [--record]

Builds each model's ELF and validation inputs with scons first. ``--record``
writes the table into bench/results.md (its ``sim-speed`` marker block;
``sim-speed-rv32`` with ``--rv32``, ``sim-speed-patch`` with ``--patch``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinybuild import plugins  # noqa: E402

MODELS = ["ad01_int8", "kws_ref_model", "pretrainedResnet_quant", "vww_96_int8"]
# (target, memory model in place of the board's; None: the board's own)
TARGETS = [("nucleo-l4r5zi", None), ("cortex-m4", None)]
TARGETS_RV32 = [("riscv", None), ("esp32c3", None), ("esp32c3", "esp32c3-flash-cache")]
MLPERF = ROOT.parent / "shared" / "models" / "mlperf_tiny"


def build(build_dir: Path, target: str, model: str) -> tuple[Path, Path]:
    """The firmware ELF and the validation inputs (nothing simulated); a
    failed build raises RuntimeError with scons' error line."""
    elf = build_dir / target / model / "firmware.elf"
    inputs = build_dir / "models" / model / "inputs-n4-s1.bin"
    cmd = [str(Path(sys.executable).with_name("scons")), "-C", str(ROOT), "-Q", f"target={target}",
           f"model={MLPERF / (model + '.tflite')}", f"build_dir={build_dir}", str(elf), str(inputs)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        lines = [l for l in (proc.stdout + proc.stderr).splitlines() if "error" in l.lower()]
        fit = next((l for l in lines if "does not fit" in l), "")
        if fit:
            raise RuntimeError(f"does not fit the board's {'RAM' if 'RAM region' in fit else 'flash'}")
        raise RuntimeError(lines[0][:160] if lines else f"scons exited with {proc.returncode}")
    return elf, inputs


def counts(r) -> tuple:
    return (r.total_instructions, r.total_cycles, r.memory_cycles, r.misaligned_accesses,
            [(l.instructions, l.cycles, l.memory_cycles) for l in r.layers])


def timed(elf: Path, board, data: bytes, detail: bool, watch: str, repeat: int):
    """(result, best M instructions per host CPU second of emu_start), each
    run on a new engine (as before kept engines: --report measures those)."""
    from sim.unicorn.simulator import _Run, clear_engines
    best, result = 0.0, None
    for _ in range(repeat):
        clear_engines()
        run = _Run(elf, board, data, 2_000_000_000, 600.0, detail=detail, access_watch=watch)
        result = run.execute()
        best = max(best, result.total_instructions / max(run.emu_cpu_seconds, 1e-9) / 1e6)
    return result, best


def speeds(elf: Path, board, data: bytes, repeat: int) -> dict:
    """Report run, validation run and nothing watched (static watch), with
    what each run counted and computed."""
    out = {}
    for name, detail, bare in (("report", True, False), ("validation", False, False), ("bare", False, True)):
        b = replace(board, memory_model="") if bare else board
        r, speed = timed(elf, b, data, detail, "static", repeat)
        out[name] = speed
        out[name + "_counts"] = repr((counts(r), r.output.hex(), r.peak_stack_bytes, r.ram_touched_bytes))
    out["instructions"] = r.total_instructions
    return out


def child(args) -> None:
    """--patch's child: one ELF on one board with the libunicorn this process loaded."""
    from sim.unicorn import native
    board = plugins.targets(plugins.make_plugin_manager())[args.child_target]
    raw = Path(args.child_inputs).read_bytes()
    result = speeds(Path(args.child_elf), board, raw[: len(raw) // 4], args.repeat)
    result["patched"] = native.unicorn_patch_level() > 0
    print(json.dumps(result))


def wheel_and_patched_libs(unicorn_lib: str | None) -> tuple[str, str]:
    """Folders whose libunicorn.so.2 is the unpatched wheel's and the patched one."""
    import importlib.util
    installed = Path(importlib.util.find_spec("unicorn").origin).parent / "lib"
    kept = installed / "libunicorn.so.2.wheel"
    if kept.exists():                    # ./tb replaced the wheel's library: point at its copy
        wheel = Path(tempfile.mkdtemp(prefix="tb-unicorn-wheel-"))
        (wheel / "libunicorn.so.2").symlink_to(kept)
    else:
        wheel = installed
    return str(wheel), unicorn_lib or str(installed)


def patch_rows(args) -> list[str]:
    wheel, patched = wheel_and_patched_libs(args.unicorn_lib)
    rows = ["| model | target | instructions | report run: wheel -> patched | validation run: wheel -> "
            "patched | nothing watched: wheel -> patched | same counts |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    print("\n".join(rows))
    frozen = Path(tempfile.mkdtemp(prefix="tb-sim-speed-"))   # both runs see the same ELF
    for model in MODELS:
        for target, _ in TARGETS:
            got = {}
            elf, inputs = build(Path(args.build_dir), target, model)
            elf, inputs = shutil.copy(elf, frozen / "firmware.elf"), shutil.copy(inputs, frozen / "inputs.bin")
            for name, lib in (("wheel", wheel), ("patched", patched)):
                cmd = [sys.executable, __file__, "--child-elf", elf, "--child-inputs", inputs,
                       "--child-target", target, "--repeat", str(args.repeat)]
                proc = subprocess.run(cmd, capture_output=True, text=True,
                                      env={**os.environ, "LIBUNICORN_PATH": lib})
                if proc.returncode:
                    raise SystemExit(f"sim_speed: {model} on {target} with {lib}: "
                                     f"{(proc.stderr.strip().splitlines() or ['failed'])[-1]}")
                got[name] = json.loads(proc.stdout.strip().splitlines()[-1])
            w, p = got["wheel"], got["patched"]
            if w["patched"] or not p["patched"]:
                raise SystemExit(f"sim_speed: {wheel} must hold the unpatched library and {patched} the patched one")
            same = all(w[k + "_counts"] == p[k + "_counts"] for k in ("report", "validation", "bare"))
            cells = [f"{w[k]:.0f} -> {p[k]:.0f} M/s" for k in ("report", "validation", "bare")]
            rows.append(f"| {model} | {target} | {p['instructions']:,} | {' | '.join(cells)} | "
                        f"{'yes' if same else 'NO'} |")
            print(rows[-1], flush=True)
    return rows


def report_speeds(elf: Path, board, data: bytes, repeat: int, before_hook: Path) -> dict:
    """--report: best M instr/s of the report run before (``before_hook``, a
    new engine each run), now cold and now warm, and whether all counted the same."""
    from sim.unicorn import native
    from sim.unicorn import simulator as S
    now_hook, best, seen = native.SOURCE, {"before": 0.0, "cold": 0.0, "warm": 0.0}, {}

    def report_run(kind: str) -> None:
        S.clear_engines()
        native.SOURCE, native._lib = (before_hook if kind == "before" else now_hook), None
        S.REUSE_ENGINES = kind != "before"
        if kind == "warm":                       # the plain check run, first, as a build does
            S._Run(elf, board, data, 2_000_000_000, 600.0, detail=False).execute()
        run = S._Run(elf, board, data, 2_000_000_000, 600.0, detail=True)
        r = run.execute()
        best[kind] = max(best[kind], r.total_instructions / max(run.emu_cpu_seconds, 1e-9) / 1e6)
        seen[kind] = repr((counts(r), r.output.hex(), r.peak_stack_bytes, r.ram_touched_bytes))
        best["instructions"] = r.total_instructions

    for _ in range(repeat):
        for kind in ("before", "cold", "warm"):
            report_run(kind)
    S.clear_engines()
    native.SOURCE, native._lib, S.REUSE_ENGINES = now_hook, None, True
    return {**best, "same": len(set(seen.values())) == 1}


def report_rows(args) -> list[str]:
    before_hook = Path(tempfile.mkdtemp(prefix="tb-sim-speed-")) / "native_hook_before.c"
    before_hook.write_bytes(subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{args.before}:sim/unicorn/native_hook.c"],
        capture_output=True, check=True).stdout)
    boards = plugins.targets(plugins.make_plugin_manager())
    rows = ["| model | target | instructions | report run before | now: cold | now: warm (a build's) "
            "| same counts |", "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    print("\n".join(rows))
    for model in MODELS:
        for target, _ in TARGETS:
            elf, inputs = build(Path(args.build_dir), target, model)
            raw = inputs.read_bytes()
            got = report_speeds(elf, boards[target], raw[: len(raw) // 4], args.repeat, before_hook)
            rows.append(f"| {model} | {target} | {got['instructions']:,} | {got['before']:.0f} M/s | "
                        f"{got['cold']:.0f} M/s | {got['warm']:.0f} M/s | {'yes' if got['same'] else 'NO'} |")
            print(rows[-1], flush=True)
    return rows


def record_report(rows: list[str], args) -> None:
    head = (f"`./tb python bench/sim_speed.py --report --before {args.before} --build-dir "
            f"{args.build_dir} --repeat {args.repeat}` (commit {commit_now()}): the report run "
            f"(`detail=True`, the static access watch and the board's memory model), simulated "
            f"instructions per host CPU second of `emu_start`, best of {args.repeat}, before "
            f"(native_hook.c at {args.before}, a new engine for every run) and now, interleaved in "
            "one process; cold: a new engine (translation included), warm: on the engine the plain "
            "check run kept (what a build's report run is now: UnicornSimulator.run runs the check "
            "first). Same counts: instructions, cycles, flash wait and misaligned accesses per layer, "
            "output bytes, peak stack and RAM touched equal in all three.")
    write_block(head, rows, "sim-speed-report",
                "Simulator speed of the report run: kept engines, branch-free LRU sets (issue 14 item 6)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="/tmp/sim_speed_build")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--record", action="store_true", help="write the table into bench/results.md")
    ap.add_argument("--rv32", action="store_true", help="the RV32 boards (riscv, esp32c3)")
    ap.add_argument("--patch", action="store_true",
                    help="the unpatched Unicorn wheel against tinybuild's patched library")
    ap.add_argument("--unicorn-lib", help="with --patch: a folder holding the patched libunicorn.so.2")
    ap.add_argument("--report", action="store_true",
                    help="the report run now (cold and warm) against --before's native hook")
    ap.add_argument("--before", default="38670ee", help="with --report: the commit to compare with")
    for hidden in ("--child-elf", "--child-inputs", "--child-target"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_elf:
        return child(args)
    if args.report:
        rows = report_rows(args)
        if args.record:
            record_report(rows, args)
        return
    if args.patch:
        rows = patch_rows(args)
        if args.record:
            record_patch(rows, args)
        return
    boards = plugins.targets(plugins.make_plugin_manager())
    rows = ["| model | target | instructions | report run: hook -> static | validation run: "
            "hook -> static | nothing watched | same counts |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    print("\n".join(rows))
    for model in MODELS:
        for target, memory_model in TARGETS_RV32 if args.rv32 else TARGETS:
            board = boards[target]
            label = target if memory_model is None else f"{target} + {memory_model}"
            if memory_model is not None:
                board = replace(board, memory_model=memory_model)
            try:
                elf, inputs = build(Path(args.build_dir), target, model)
            except RuntimeError as e:
                rows.append(f"| {model} | {label} | not built: {e} | | | | |")
                print(rows[-1], flush=True)
                continue
            raw = inputs.read_bytes()
            data = raw[: len(raw) // 4]                  # the first validation input
            speeds, same = [], True
            for detail in (True, False):
                old, before = timed(elf, board, data, detail, "hook", args.repeat)
                new, after = timed(elf, board, data, detail, "static", args.repeat)
                speeds.append(f"{before:.0f} -> {after:.0f} M/s")
                same = same and counts(old) == counts(new)
            bare = replace(board, memory_model="")
            _, ceiling = timed(elf, bare, data, False, "static", args.repeat)
            rows.append(f"| {model} | {label} | {new.total_instructions:,} | {speeds[0]} | "
                        f"{speeds[1]} | {ceiling:.0f} M/s | {'yes' if same else 'NO'} |")
            print(rows[-1], flush=True)
    if args.record:
        (record_rv32 if args.rv32 else record)(rows, args)


def commit_now() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()


def write_block(head: str, rows: list[str], name: str, title: str) -> None:
    """The table with its command line as bench/results.md's marker block ``name``."""
    from bench.sweep import record as record_block
    record_block(ROOT / "bench" / "results.md", "\n".join([textwrap.fill(head, 110), "", *rows, ""]),
                 name=name, title=title)


def record_patch(rows: list[str], args) -> None:
    lib = f" --unicorn-lib {args.unicorn_lib}" if args.unicorn_lib else ""
    head = (f"`./tb python bench/sim_speed.py --patch{lib} --build-dir {args.build_dir} --repeat "
            f"{args.repeat}` (commit {commit_now()}): as the first table (host CPU time of `emu_start`, "
            f"best of {args.repeat}, the static access watch), with the unpatched Unicorn 2.1.4 wheel's "
            "library and with tinybuild's patched build of the same sdist (third_party/unicorn: the Q "
            "flag of SMLAD/SMLAxy/SMLAWx in TCG ops, the exit check after a load or store only with a "
            "memory hook, a code hook covering an instruction alone called directly; "
            "docs/simulators.md), each in its own process. Both with the native hook's cache model "
            "as committed. Same counts: instructions, cycles, flash wait and misaligned accesses "
            "per layer, output bytes, peak stack and RAM touched equal with both libraries, in all "
            "three runs.")
    write_block(head, rows, "sim-speed-patch",
                "Simulator speed with tinybuild's patched Unicorn (issue 14 item 6)")


def record_rv32(rows: list[str], args) -> None:
    head = (f"`./tb python bench/sim_speed.py --rv32 --build-dir {args.build_dir} --repeat "
            f"{args.repeat}` (commit {commit_now()}): as the table above, on the RV32 boards: "
            "riscv (GD32VF103, core only), esp32c3 (core only, its default) and esp32c3 with "
            "esp32c3-flash-cache on (the validation run then also watches flash reads: before, "
            "a memory hook on the flash ranges). hook -> static: the every-access memory hook "
            "(before) and the RV32 static access watch (after, the default; docs/simulators.md "
            "\"Speed with memory hooks\"). Same counts: instructions, cycles, flash cache misses "
            "and misaligned accesses per layer equal with both.")
    write_block(head, rows, "sim-speed-rv32",
                "Simulator speed on RV32: the static access watch (issue 14 item 6)")


def record(rows: list[str], args, commit: str = "") -> None:
    commit = commit or commit_now()
    head = (f"`./tb python bench/sim_speed.py --build-dir {args.build_dir} --repeat {args.repeat}` "
            f"(commit {commit}): simulated instructions per host CPU second of `emu_start` (whole run, "
            f"best of {args.repeat}, on a 2-core machine shared with other builds), the MLPerf Tiny "
            "models from `../shared/models/mlperf_tiny/`, first validation input. Report run: "
            "`detail=True` (misaligned accesses and, on nucleo-l4r5zi, flash reads through the "
            "stm32l4r5-art data cache, on cortex-m4 the stm32f407-art one); validation run: "
            "`detail=False` (flash reads only). hook: the every-access memory hook (before); static: the static "
            "access watch (after, the default; docs/simulators.md \"Speed with memory hooks\"). "
            "Nothing watched: the same ELF without memory model or detail (the ceiling). Same counts: "
            "instructions, cycles, flash wait and misaligned accesses per layer equal with both. "
            "Where the rest of the time goes: docs/simulators.md \"Speed with memory hooks\".")
    write_block(head, rows, "sim-speed", "Simulator speed with the memory model on (issue 14 item 6)")


if __name__ == "__main__":
    main()
