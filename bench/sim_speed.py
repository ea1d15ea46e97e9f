"""Simulator speed of the report's run (issue 14 item 6): every MLPerf Tiny
model on nucleo-l4r5zi (stm32l4r5-art memory model) and cortex-m4, run as
the report's run is (``detail=True``: misaligned accesses and flash data
reads counted), timed as ``emu_start`` alone (``RunResult.wall_seconds``,
best of 3), beside the plain run (``detail=False``). Host speeds are
recorded, never asserted.

    ./tb python bench/sim_speed.py [--build-dir /tmp/sim_speed_build] [--watch]

``--watch`` also times the old every-access memory watch (the oracle path,
``access_watch="hook"``) and checks its counters equal the default's.
Builds each model with scons first (validated against TFLite).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinybuild import plugins  # noqa: E402

MODELS = ["ad01_int8", "kws_ref_model", "pretrainedResnet_quant", "vww_96_int8"]
TARGETS = ["nucleo-l4r5zi", "cortex-m4"]
MLPERF = ROOT.parent / "shared" / "models" / "mlperf_tiny"


def build(build_dir: Path, target: str, model: str) -> Path:
    cmd = [str(Path(sys.executable).with_name("scons")), "-C", str(ROOT), "-Q", f"target={target}",
           f"model={MLPERF / (model + '.tflite')}", f"build_dir={build_dir}"]
    subprocess.run(cmd, check=True, capture_output=True)
    return build_dir / target / model / "firmware.elf"


def first_input(build_dir: Path, model: str) -> bytes:
    raw = next((build_dir / "models" / model).glob("inputs-*.bin")).read_bytes()
    return raw[: len(raw) // 4]                 # the first of the 4 validation inputs


def best_run(run, n: int = 3):
    """The result of the fastest of ``n`` runs (emu_start time)."""
    return min((run() for _ in range(n)), key=lambda r: r.wall_seconds)


def counters(r) -> tuple:
    return (r.instructions, r.cycles, r.memory_cycles, r.misaligned_accesses,
            [(l.instructions, l.cycles, l.memory_cycles) for l in r.layers])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="/tmp/sim_speed_build")
    ap.add_argument("--watch", action="store_true", help="also time the old every-access watch")
    args = ap.parse_args()
    from sim.unicorn.simulator import _Run
    boards = plugins.targets(plugins.make_plugin_manager())
    build_dir = Path(args.build_dir)
    head = "| model | target | instructions | misaligned | report run | plain run |"
    rule = "| --- | --- | ---: | ---: | ---: | ---: |"
    if args.watch:
        head, rule = head + " old watch | same counters |", rule + " ---: | --- |"
    print(head + "\n" + rule)
    for model in MODELS:
        for target in TARGETS:
            board, elf = boards[target], build(build_dir, target, model)
            data = first_input(build_dir, model)

            def timed(detail: bool, watch: str = ""):
                return best_run(lambda: _Run(elf, board, data, 2_000_000_000, 600.0, detail=detail,
                                             access_watch=watch or None).execute())
            report, plain = timed(True), timed(False)
            row = (f"| {model} | {target} | {report.total_instructions:,} | "
                   f"{report.misaligned_accesses:,} | {report.instructions_per_second / 1e6:.0f} M/s | "
                   f"{plain.instructions_per_second / 1e6:.0f} M/s |")
            if args.watch:
                old = timed(True, "hook")
                row += f" {old.instructions_per_second / 1e6:.0f} M/s | {counters(old) == counters(report)} |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
