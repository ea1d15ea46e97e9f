"""Memory-model figures (docs/timing.md): every MLPerf Tiny model on
nucleo-l4r5zi (stm32l4r5-art) and cortex-m4 (core only, and with
stm32f407-art), cycles split core + memory, cycles/MAC, ms, and simulator
speed with the model on. Host speeds are recorded, never asserted.

    ./tb python bench/memory_model.py [--build-dir /tmp/mm_build]

Builds each model per target with scons (validated against TFLite), then
reruns the firmware on the first validation input as the report's run does
(detail=True: every access watched for misalignment) and as the validation
runs do (detail=False), best of 3 by host CPU time.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinybuild import plugins  # noqa: E402

MODELS = ["kws_ref_model", "vww_96_int8", "pretrainedResnet_quant", "ad01_int8"]
MLPERF = ROOT.parent / "shared" / "models" / "mlperf_tiny"
CASES = [("nucleo-l4r5zi", None), ("cortex-m4", ""), ("cortex-m4", "stm32f407-art")]


def cpu_seconds() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


def build(build_dir: Path, target: str, model: str) -> Path:
    cmd = [str(Path(sys.executable).with_name("scons")), "-C", str(ROOT), "-Q", f"target={target}",
           f"model={MLPERF / (model + '.tflite')}", f"build_dir={build_dir}"]
    subprocess.run(cmd, check=True, capture_output=True)
    return build_dir / target / model / "firmware.elf"


def measure(sim, elf: Path, board, data: bytes, detail: bool):
    best = None
    for _ in range(3):
        c0 = cpu_seconds()
        r = sim.run(elf, board, data, detail=detail)
        speed = r.total_instructions / max(cpu_seconds() - c0, 1e-9)
        best = max(best or 0, speed)
    return r, best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default="/tmp/mm_build")
    args = ap.parse_args()
    from sim.unicorn.simulator import UnicornSimulator
    import json
    sim = UnicornSimulator()
    boards = plugins.targets(plugins.make_plugin_manager())
    print("| model | target | memory model | cycles | core | memory | cycles/MAC | ms | "
          "M instr/s (report run) | M instr/s (validation runs) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    build_dir = Path(args.build_dir)
    for model in MODELS:
        for target, memory in CASES:
            board = boards[target] if memory is None else replace(boards[target], memory_model=memory)
            elf = build(build_dir, target, model)
            macs = json.loads((elf.parent / "plan.json").read_text())["macs"]
            raw = next((build_dir / "models" / model).glob("inputs-*.bin")).read_bytes()
            data = raw[: len(raw) // 4]           # the first of the 4 validation inputs
            r, report_speed = measure(sim, elf, board, data, True)
            _, plain_speed = measure(sim, elf, board, data, False)
            print(f"| {model} | {target} | {r.memory_model or 'none (core only)'} | {r.cycles:,} | "
                  f"{r.cycles - r.memory_cycles:,} | {r.memory_cycles:,} | {r.cycles / macs:.2f} | "
                  f"{r.cycles / board.clock_hz * 1e3:.2f} | {report_speed / 1e6:.0f} | "
                  f"{plain_speed / 1e6:.0f} |", flush=True)


if __name__ == "__main__":
    main()
