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

    ./tb python bench/sim_speed.py [--build-dir /tmp/sim_speed_build] [--repeat 5] [--record]

Builds each model's ELF and validation inputs with scons first. ``--record``
writes the table into bench/results.md (its ``sim-speed`` marker block).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinybuild import plugins  # noqa: E402

MODELS = ["ad01_int8", "kws_ref_model", "pretrainedResnet_quant", "vww_96_int8"]
TARGETS = ["nucleo-l4r5zi", "cortex-m4"]
MLPERF = ROOT.parent / "shared" / "models" / "mlperf_tiny"


def build(build_dir: Path, target: str, model: str) -> tuple[Path, Path]:
    """The firmware ELF and the validation inputs (nothing simulated)."""
    elf = build_dir / target / model / "firmware.elf"
    inputs = build_dir / "models" / model / "inputs-n4-s1.bin"
    cmd = [str(Path(sys.executable).with_name("scons")), "-C", str(ROOT), "-Q", f"target={target}",
           f"model={MLPERF / (model + '.tflite')}", f"build_dir={build_dir}", str(elf), str(inputs)]
    subprocess.run(cmd, check=True, capture_output=True)
    return elf, inputs


def counts(r) -> tuple:
    return (r.total_instructions, r.total_cycles, r.memory_cycles, r.misaligned_accesses,
            [(l.instructions, l.cycles, l.memory_cycles) for l in r.layers])


def timed(elf: Path, board, data: bytes, detail: bool, watch: str, repeat: int):
    """(result, best M instructions per host CPU second of emu_start)."""
    from sim.unicorn.simulator import _Run
    best, result = 0.0, None
    for _ in range(repeat):
        run = _Run(elf, board, data, 2_000_000_000, 600.0, detail=detail, access_watch=watch)
        result = run.execute()
        best = max(best, result.total_instructions / max(run.emu_cpu_seconds, 1e-9) / 1e6)
    return result, best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="/tmp/sim_speed_build")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--record", action="store_true", help="write the table into bench/results.md")
    args = ap.parse_args()
    boards = plugins.targets(plugins.make_plugin_manager())
    rows = ["| model | target | instructions | report run: hook -> static | validation run: "
            "hook -> static | nothing watched | same counts |",
            "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    print("\n".join(rows))
    for model in MODELS:
        for target in TARGETS:
            board = boards[target]
            elf, inputs = build(Path(args.build_dir), target, model)
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
            rows.append(f"| {model} | {target} | {new.total_instructions:,} | {speeds[0]} | "
                        f"{speeds[1]} | {ceiling:.0f} M/s | {'yes' if same else 'NO'} |")
            print(rows[-1], flush=True)
    if args.record:
        record(rows, args)


def record(rows: list[str], args, commit: str = "") -> None:
    from bench.sweep import record as record_block
    commit = commit or subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                      capture_output=True, text=True).stdout.strip()
    head = (f"`./tb python bench/sim_speed.py --build-dir {args.build_dir} --repeat {args.repeat}` "
            f"(commit {commit}): simulated instructions per host CPU second of `emu_start` (whole run, "
            f"best of {args.repeat}, on a 2-core machine shared with other builds), the MLPerf Tiny "
            "models from `../shared/models/mlperf_tiny/`, first validation input. Report run: "
            "`detail=True` (misaligned accesses and, on nucleo-l4r5zi, flash reads through the "
            "stm32l4r5-art data cache); validation run: `detail=False` (flash reads only; nothing "
            "watched on cortex-m4). hook: the every-access memory hook (before); static: the static "
            "access watch (after, the default; docs/simulators.md \"Speed with memory hooks\"). "
            "Nothing watched: the same ELF without memory model or detail (the ceiling). Same counts: "
            "instructions, cycles, flash wait and misaligned accesses per layer equal with both. On "
            "cortex-m4 the validation run and the ceiling are the same run (nothing is watched): "
            "their difference is host noise.")
    record_block(ROOT / "bench" / "results.md", "\n".join([textwrap.fill(head, 110), "", *rows, ""]),
                 name="sim-speed",
                 title="Simulator speed with the memory model on (issue 14 item 6)")


if __name__ == "__main__":
    main()
