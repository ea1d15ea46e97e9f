"""Benchmark record: build every benchmark model for a target, cold and no-op,
and write the measured figures to bench/results.md.

    ./tb python bench/run.py [--target cortex-m4] [--out bench/results.md]

Instruction and cycle counts come from the simulator (deterministic); build
times are host wall-clock on the machine that ran this, so they vary.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MLPERF = ROOT.parent / "shared" / "models" / "mlperf_tiny"
MODELS = [ROOT / "models" / "kws.h5", MLPERF / "kws_ref_model.tflite", MLPERF / "vww_96_int8.tflite",
          MLPERF / "pretrainedResnet_quant.tflite", MLPERF / "ad01_int8.tflite"]
# TFLM + CMSIS-NN on a simulated Cortex-M4F (../shared/models/mlperf_tiny/README.md).
TFLM = {"kws_ref_model": (142_348, 23_392, 1_476, 7_697_383),
        "vww_96_int8": (421_700, 101_280, 1_476, 24_101_870),
        "pretrainedResnet_quant": (181_736, 55_568, 1_476, 29_863_666),
        "ad01_int8": (312_468, 3_288, 980, 582_914)}


def scons(build: Path, target: str, model: Path) -> float:
    cmd = [str(Path(sys.executable).with_name("scons")), "-C", str(ROOT), "-Q",
           f"build_dir={build}", f"target={target}", f"model={model}"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"build failed: {' '.join(cmd)}\n{proc.stderr}")
    return elapsed


def measure(target: str, model: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        build = Path(tmp) / "build"
        cold = scons(build, target, model)
        noop = scons(build, target, model)
        report = json.loads((build / target / model.stem / "report.json").read_text())
        runs = json.loads((build / target / model.stem / "run.json").read_text())["runs"]
    sim_instr = sum(r["total_instructions"] for r in runs)
    sim_wall = sum(r["wall_seconds"] for r in runs)
    return {"report": report, "cold_s": cold, "noop_s": noop,
            "sim_mips": sim_instr / sim_wall / 1e6 if sim_wall else 0.0}


def table(target: str, rows: dict[str, dict]) -> list[str]:
    out = [f"### {target}", "",
           "| model | MACs | flash B | RAM B: static + stack reserved | arena B (lower bound) | peak stack B | instructions | "
           "instr/MAC | cycles | cycles/MAC | ms @ clock | matches TFLite | cold build s | no-op s | sim M instr/s |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    for name, m in rows.items():
        r = m["report"]
        inf = r["inference"]
        out.append(
            f"| {name} | {r['model']['macs']:,} | {r['flash']['used']:,} | "
            f"{r['ram']['used'] - r['stack']['reserved_bytes']:,} + {r['stack']['reserved_bytes']:,} | "
            f"{r['arena']['bytes']:,} ({r['arena']['lower_bound']:,}) | {r['stack']['peak_bytes']:,} | "
            f"{inf['instructions']:,} | {inf['instructions_per_mac']} | {inf['cycles']:,} | "
            f"{inf['cycles_per_mac']} | {inf['ms']} | {'yes' if r['validation']['match'] else 'NO'} | "
            f"{m['cold_s']:.1f} | {m['noop_s']:.2f} | {m['sim_mips']:.0f} |")
    return out


def tflm_table(rows: dict[str, dict]) -> list[str]:
    out = ["| model | flash B tinybuild / TFLM | static RAM B (no stack) tinybuild / TFLM | arena B tinybuild / TFLM used | "
           "instructions tinybuild / TFLM+CMSIS-NN |", "| --- | --- | --- | --- | --- |"]
    for name, m in rows.items():
        if name not in TFLM:
            continue
        r, (flash, ram, _stack, instr) = m["report"], TFLM[name]
        arena_tflm = {"kws_ref_model": 22_820, "vww_96_int8": 100_708,
                      "pretrainedResnet_quant": 54_996, "ad01_int8": 2_580}[name]
        out.append(f"| {name} | {r['flash']['used']:,} / {flash:,} ({r['flash']['used'] / flash:.2f}x) | "
                   f"{r['ram']['used'] - r['stack']['reserved_bytes']:,} / {ram:,} | {r['arena']['bytes']:,} / {arena_tflm:,} "
                   f"({r['arena']['bytes'] / arena_tflm:.2f}x) | {r['inference']['instructions']:,} / "
                   f"{instr:,} ({r['inference']['instructions'] / instr:.2f}x) |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", action="append", help="target(s); default cortex-m4")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    args = ap.parse_args()
    targets = args.target or ["cortex-m4"]
    lines = ["# tinybuild benchmark record", "",
             f"Made by `./tb python bench/run.py{''.join(f' --target {t}' for t in targets)}` on "
             f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {platform.python_version()}, "
             f"{__import__('os').cpu_count()} cores. Each model is built cold into an empty build folder "
             "(conversion, reference run, compile, link, size, 4 simulated inferences, validation, report), "
             "then rebuilt with no change (no-op). Instructions and cycles are per inference from the "
             "default simulator (exact instruction counts; cycles from the documented Cortex-M4 timing "
             "model, no flash wait states). Simulator speed is simulated instructions per host second "
             "over the 4 validation runs, per-layer profiling on.", ""]
    for target in targets:
        rows = {}
        for model in MODELS:
            if model.exists():
                print(f"[bench] {target} {model.name}", file=sys.stderr, flush=True)
                rows[model.stem] = measure(target, model)
        lines += table(target, rows) + [""]
        if target == "cortex-m4":
            lines += ["TFLM with CMSIS-NN on the same simulated Cortex-M4F (figures from "
                      "`../shared/models/mlperf_tiny/README.md`) beside tinybuild's:", ""]
            lines += tflm_table(rows) + [""]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"[bench] wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
