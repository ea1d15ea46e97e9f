"""Simulator figures for docs/simulators.md: speed, QEMU cross-check, cycles.

    .venv/bin/python -m sim.measure [--build build/measure] [models...]

For every model (default: ../shared/models/mlperf_tiny/*.tflite) it builds the
firmware with SCons for cortex-m4 and for mps2-an386 (the same code on a board
QEMU has), then on the first validation input:

- the default simulator's speed (simulated instructions per host second, the
  whole run from reset to tb_exit, best of 3) as in the validation runs
  (``detail=False``: no misaligned-access watch) with per-layer profiling on
  and off (``UnicornSimulator(layer_profile=False)``);
- QEMU's speed on the mps2-an386 build (host time of the whole QEMU process,
  start-up included) and whether its instruction counts equal unicorn's
  (per inference, per layer, whole run) on the same ELF;
- cycles per inference on cortex-m4 from the build's report.json.

Prints Markdown tables.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, Python puts sim/ first on the path, where sim/unicorn would
# shadow the `unicorn` package: keep the repository root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "sim"]
sys.path.insert(0, str(ROOT))

from sim.qemu.simulator import QemuSimulator  # noqa: E402
from sim.unicorn.simulator import UnicornSimulator  # noqa: E402
from tinybuild import plugins  # noqa: E402

MLPERF = ROOT.parent / "shared" / "models" / "mlperf_tiny"


def build(build_dir: Path, target: str, model: Path) -> Path:
    scons = Path(sys.executable).with_name("scons")
    proc = subprocess.run([str(scons), "-C", str(ROOT), "-Q", f"build_dir={build_dir}",
                           f"target={target}", f"model={model}", "inputs=1"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"build of {model.name} for {target} failed:\n{proc.stderr[-3000:]}")
    return build_dir / target / model.stem


def first_input(build_dir: Path, model: Path) -> bytes:
    mdir = build_dir / "models" / model.stem
    size = json.loads((mdir / "reference-n1-s1.json").read_text())["input_bytes"]  # inputs=1, seed 1
    return (mdir / "inputs-n1-s1.bin").read_bytes()[:size]


def best_of(n: int, fn):
    runs = [fn() for _ in range(n)]
    return min(runs, key=lambda r: r.wall_seconds)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=str(ROOT / "build" / "measure"))
    ap.add_argument("models", nargs="*")
    args = ap.parse_args(argv)
    build_dir = Path(args.build).resolve()
    models = [Path(m).resolve() for m in args.models] or sorted(MLPERF.glob("*.tflite"))
    targets = plugins.targets(plugins.make_plugin_manager())
    m4, mps2 = targets["cortex-m4"], targets["mps2-an386"]
    on, off, qemu = UnicornSimulator(), UnicornSimulator(layer_profile=False), QemuSimulator()

    speed, agree, cycles = [], [], []
    for model in models:
        print(f"[measure] {model.name}", file=sys.stderr, flush=True)
        out = build(build_dir, "cortex-m4", model)
        inp = first_input(build_dir, model)
        elf = out / "firmware.elf"
        a = best_of(3, lambda: on.run(elf, m4, inp, detail=False))
        b = best_of(3, lambda: off.run(elf, m4, inp, detail=False))
        report = json.loads((out / "report.json").read_text())
        inf = report["inference"]
        cycles.append((model.stem, report["model"]["macs"], inf["instructions"], inf["cycles"],
                       inf["cycles_per_mac"], inf["ms"], report["stack"]["peak_bytes"],
                       report["arena"]["bytes"], report["arena"].get("touched_bytes", 0)))
        out2 = build(build_dir, "mps2-an386", model)
        elf2 = out2 / "firmware.elf"
        u = on.run(elf2, mps2, inp)
        q = best_of(3, lambda: qemu.run(elf2, mps2, inp))
        same_layers = [l.instructions for l in u.layers] == [l.instructions for l in q.layers]
        agree.append((model.stem, u.instructions, q.instructions, u.total_instructions,
                      q.total_instructions, len(u.layers), same_layers, u.output == q.output,
                      u.peak_stack_bytes, q.peak_stack_bytes))
        speed.append((model.stem, a.total_instructions, a.total_instructions / a.wall_seconds / 1e6,
                      b.total_instructions / b.wall_seconds / 1e6,
                      q.total_instructions / q.wall_seconds / 1e6))

    print("### Simulator speed (simulated instructions per host second, whole run, best of 3, "
          "unicorn as in the validation runs: detail=False)\n")
    print("| model | instructions (reset to tb_exit) | unicorn, per-layer profiling on | unicorn, off "
          "| QEMU 7.2 + counting plugin (process incl. start-up) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, n, a, b, q in speed:
        print(f"| {name} | {n:,} | {a:.0f} M/s | {b:.0f} M/s | {q:.0f} M/s |")
    print("\n### unicorn vs QEMU on mps2-an386 (same ELF, first validation input)\n")
    print("| model | unicorn instr/inference | QEMU instr/inference | unicorn whole run | QEMU whole run "
          "| layers, all equal | same output | peak stack unicorn / QEMU |")
    print("| --- | ---: | ---: | ---: | ---: | --- | --- | --- |")
    for name, ui, qi, ut, qt, nl, sl, so, us, qs in agree:
        print(f"| {name} | {ui:,} | {qi:,} | {ut:,} | {qt:,} | {nl}, {'yes' if sl else 'NO'} | "
              f"{'yes' if so else 'NO'} | {us} / {qs} B |")
    print("\n### Cycles per inference on cortex-m4 (STM32F407 at 168 MHz, cortex-m4 timing model)\n")
    print("| model | MACs | instructions | cycles | cycles/MAC | ms | peak stack B | arena B (touched) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, macs, ins, cyc, cpm, ms, stack, arena, touched in cycles:
        print(f"| {name} | {macs:,} | {ins:,} | {cyc:,} | {cpm} | {ms} | {stack} | {arena:,} ({touched:,}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
