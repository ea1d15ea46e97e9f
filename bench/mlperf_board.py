"""MLPerf Tiny on its reference board (issue 14's table): every MLPerf Tiny model
on nucleo-l4r5zi and cortex-m4, place=flash and place=auto, cycles split core +
flash wait, cycles/MAC, ms at the board's clock, flash and RAM, the report
run's simulator speed, beside the published silicon figures on NUCLEO-L4R5ZI.

    ./tb python bench/mlperf_board.py [--build-dir DIR] [--record bench/results.md]

Each case is one `scons target=<board> model=<m> place=<p> inputs=1` build
(validated against TFLite); the figures are read from its report.json.
Host speeds are recorded, never asserted.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MLPERF = ROOT.parent / "shared" / "models" / "mlperf_tiny"
MODELS = {"KWS": "kws_ref_model", "VWW": "vww_96_int8", "IC": "pretrainedResnet_quant",
          "AD": "ad01_int8"}
BOARDS = ("nucleo-l4r5zi", "cortex-m4")
PLACES = ("flash", "auto")
# MLPerf Tiny inference results on NUCLEO-L4R5ZI, cycles = 120 MHz x latency:
# v1.2 ST X-CUBE-AI 9.0, v1.1 Plumerai 2023.05 (the best published per model).
PUBLISHED = {"KWS": ("X-CUBE-AI 9.0 (v1.2)", 5.18e6), "VWW": ("X-CUBE-AI 9.0 (v1.2)", 10.67e6),
             "IC": ("X-CUBE-AI 9.0 (v1.2)", 19.82e6), "AD": ("Plumerai 2023.05 (v1.1)", 0.49e6)}
GOAL_SHARE = 0.75


def build(build_dir: Path, board: str, model: str, place: str) -> dict:
    cmd = [str(Path(sys.executable).with_name("scons")), "-C", str(ROOT), "-Q", f"target={board}",
           f"model={MLPERF / (model + '.tflite')}", f"place={place}", "inputs=1",
           f"build_dir={build_dir}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    suffix = "" if place == "flash" else f"-place-{place}"
    return json.loads((build_dir / board / (model + suffix) / "report.json").read_text())


def row(name: str, board: str, place: str, report: dict, clock_hz: int) -> str:
    inf = report["inference"]
    cycles, memory = inf["cycles"], inf.get("memory_cycles", 0)
    published = PUBLISHED[name][1]
    versus = f"{cycles / published:.2f}x" if board == "nucleo-l4r5zi" else "-"
    return (f"| {name} | {board} | {place} | {cycles:,} = {cycles - memory:,} + {memory:,} | "
            f"{inf['cycles_per_mac']:.2f} | {cycles / clock_hz * 1e3:.2f} | {report['flash']['used']:,} | "
            f"{report['ram']['used']:,} | {versus} | "
            f"{inf.get('simulated_instructions_per_second', 0) / 1e6:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", type=Path, default=Path("/tmp/mlperf_board"))
    ap.add_argument("--record", type=Path, help="write the table into this file's mlperf-board block")
    args = ap.parse_args()
    clocks = {"nucleo-l4r5zi": 120_000_000, "cortex-m4": 168_000_000}
    lines = ["| model | board | place | cycles = core + flash wait | cycles/MAC | ms | flash B | RAM B | "
             "vs best published | sim M instr/s (report run) |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, model in MODELS.items():
        for board in BOARDS:
            for place in PLACES:
                lines.append(row(name, board, place, build(args.build_dir, board, model, place),
                                 clocks[board]))
                print(lines[-1], flush=True)
    published = ["| model | best published on NUCLEO-L4R5ZI (silicon) | cycles | goal (0.75x) |",
                 "| --- | --- | ---: | ---: |"]
    published += [f"| {n} | {who} | {c / 1e6:.2f} M | {c * GOAL_SHARE / 1e6:.2f} M |"
                  for n, (who, c) in PUBLISHED.items()]
    text = "\n".join(lines + [""] + published)
    if args.record:
        sys.path.insert(0, str(ROOT))
        from bench.sweep import record
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        record(args.record, f"`./tb python bench/mlperf_board.py --record bench/results.md` (commit "
               f"{commit}): each case one `scons target=<board> model=<m> place=<p> inputs=1` build, "
               "validated against TFLite byte for byte; cycles = the cortex-m4 core model + the board's "
               "memory model (nucleo-l4r5zi: stm32l4r5-art, cortex-m4: stm32f407-art; docs/timing.md); "
               "sim speed: the report run (static access watch + memory model), loaded 2-core host.\n\n"
               + text + "\n", "mlperf-board", "MLPerf Tiny on its reference board (issue 14)")


if __name__ == "__main__":
    main()
