"""Benchmark record: build every benchmark model for a target, cold and no-op,
and write the measured figures to bench/results.md.

    ./tb python bench/run.py [--target cortex-m4 --target riscv ...] [--out bench/results.md]
                             [--no-reference] [--no-extras]

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
          MLPERF / "pretrainedResnet_quant.tflite", MLPERF / "ad01_int8.tflite",
          MLPERF / "str_ww_ref_model.tflite"]
# TFLM + CMSIS-NN on a simulated Cortex-M4F (../shared/models/mlperf_tiny/README.md).
TFLM = {  # flash, static RAM, arena used, peak stack, instructions per inference
    "kws_ref_model": (142_348, 23_392, 22_820, 1_476, 7_697_383),
    "vww_96_int8": (421_700, 101_280, 100_708, 1_476, 24_101_870),
    "pretrainedResnet_quant": (181_736, 55_568, 54_996, 1_476, 29_863_666),
    "ad01_int8": (312_468, 3_288, 2_580, 980, 582_914),
    "str_ww_ref_model": (159_756, 17_120, 16_596, 1_256, 2_227_533)}


def scons(build: Path, target: str, model: Path, kernels: str, *variables: str) -> tuple[float, str]:
    """Build once (more build ``variables`` as "name=value"); (wall seconds, error text or '')."""
    cmd = [str(Path(sys.executable).with_name("scons")), "-C", str(ROOT), "-Q",
           f"build_dir={build}", f"target={target}", f"model={model}", f"kernels={kernels}", *variables]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if not proc.returncode:
        return elapsed, ""
    lines = proc.stderr.splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("tinybuild: error")), None)
    if first is None:
        return elapsed, proc.stderr[-400:]
    # The error line and its indented details ("needs N bytes of flash, board has M").
    detail = [lines[first]] + [l.strip() for l in lines[first + 1:] if l.startswith("  ")][:1]
    return elapsed, " ".join(detail).removeprefix("tinybuild: error: ")


def measure(target: str, model: Path, kernels: str = "optimized") -> dict:
    """One cold and one no-op build; {"error": line} when the build fails
    (e.g. a model that does not fit the board)."""
    variant = model.stem if kernels == "optimized" else f"{model.stem}-reference-kernels"
    with tempfile.TemporaryDirectory() as tmp:
        build = Path(tmp) / "build"
        cold, error = scons(build, target, model, kernels)
        if error:
            return {"error": error}
        noop, _ = scons(build, target, model, kernels)
        report = json.loads((build / target / variant / "report.json").read_text())
        runs = json.loads((build / target / variant / "run.json").read_text())["runs"]
    # Speed of the validation-only runs: the first run watches every memory
    # access for misaligned ones (detail=True), which is 10-40x slower.
    fast = [r for r in runs if r.get("misaligned_accesses", 0) == -1] or runs
    sim_instr = sum(r["total_instructions"] for r in fast)
    sim_wall = sum(r["wall_seconds"] for r in fast)
    return {"report": report, "cold_s": cold, "noop_s": noop,
            "sim_mips": sim_instr / sim_wall / 1e6 if sim_wall else 0.0}


def table(target: str, rows: dict[str, dict]) -> list[str]:
    out = [f"### {target}", "",
           "| model | MACs | flash B | RAM B: static + stack reserved | arena B (lower bound) | peak stack B | instructions | "
           "instr/MAC | cycles | cycles/MAC | ms @ clock | matches TFLite | cold build s | no-op s | sim M instr/s |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    for name, m in rows.items():
        if "error" in m:
            out.append(f"| {name} | not built: {m['error'].replace('|', '/')} |" + " |" * 13)
            continue
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
    out = ["| model | flash B tinybuild / TFLM | static RAM B (no stack) tinybuild / TFLM | "
           "arena B tinybuild / TFLM used | peak stack B tinybuild / TFLM | "
           "instructions tinybuild / TFLM+CMSIS-NN | cycles/MAC |",
           "| --- | --- | --- | --- | --- | --- | ---: |"]
    for name, m in rows.items():
        if name not in TFLM or "error" in m:
            continue
        r, (flash, ram, arena, stack, instr) = m["report"], TFLM[name]
        used, static = r["flash"]["used"], r["ram"]["used"] - r["stack"]["reserved_bytes"]
        inf = r["inference"]
        out.append(f"| {name} | {used:,} / {flash:,} ({used / flash:.2f}x) | {static:,} / {ram:,} | "
                   f"{r['arena']['bytes']:,} / {arena:,} ({r['arena']['bytes'] / arena:.2f}x) | "
                   f"{r['stack']['peak_bytes']:,} / {stack:,} | {inf['instructions']:,} / {instr:,} "
                   f"({inf['instructions'] / instr:.2f}x) | {inf['cycles_per_mac']} |")
    return out


def kernels_table(opt_rows: dict[str, dict], ref_rows: dict[str, dict]) -> list[str]:
    """The target plugins' kernels against the portable reference kernels."""
    out = ["| model | instructions reference / optimized | cycles reference / optimized | "
           "cycles/MAC reference / optimized | flash B reference / optimized |",
           "| --- | --- | --- | --- | --- |"]
    for name, opt in opt_rows.items():
        ref = ref_rows.get(name, {})
        if "error" in opt or "error" in ref or not ref:
            continue
        o, r = opt["report"], ref["report"]
        oi, ri = o["inference"], r["inference"]
        out.append(f"| {name} | {ri['instructions']:,} / {oi['instructions']:,} "
                   f"({ri['instructions'] / oi['instructions']:.1f}x fewer) | {ri['cycles']:,} / "
                   f"{oi['cycles']:,} ({ri['cycles'] / oi['cycles']:.1f}x fewer) | "
                   f"{ri['cycles_per_mac']} / {oi['cycles_per_mac']} | "
                   f"{r['flash']['used']:,} / {o['flash']['used']:,} |")
    return out


def timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    return time.perf_counter() - start, proc


def all_boards_section() -> list[str]:
    """`target=all` for kws.h5: cold and no-op wall time, and the table it prints."""
    scons_bin = str(Path(sys.executable).with_name("scons"))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [scons_bin, "-Q", "-j2", "target=all", "model=kws.h5", f"build_dir={tmp}/b"]
        cold, proc = timed(cmd)
        noop, _ = timed(cmd)
    printed = proc.stdout[proc.stdout.find("tinybuild: kws on every board"):].rstrip()
    table_lines = "\n".join(line for line in printed.splitlines()
                            if not line.lstrip().startswith("reports"))   # a temporary path
    return ["### All boards with a toolchain here (kws.h5)", "",
            f"`scons -Q -j2 target=all model=kws.h5` into an empty build folder: {cold:.1f} s; "
            f"the same again (no-op): {noop:.2f} s. What it prints:", "", "```", table_lines, "```", ""]


def regression_section() -> list[str]:
    """The project's regression matrix: cold, then from a filled SCons cache."""
    py = str(Path(sys.executable))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [py, "-m", "tinybuild.cli", "regress", "--build-dir", f"{tmp}/b", "--cachedir",
               f"{tmp}/cache", "--out", f"{tmp}/out"]
        cold, proc = timed(cmd)
        shutil.rmtree(f"{tmp}/b")
        cached, _ = timed(cmd)
    summary = next((line for line in proc.stdout.splitlines() if " cases, " in line), "")
    return ["### Regression over the whole matrix (regress.toml)", "",
            f"`./tb tinybuild regress --cachedir C` with an empty build folder and an empty cache: "
            f"{cold:.1f} s ({summary.split('.')[0]}); again with the build folder removed and the cache "
            f"filled: {cached:.1f} s (results retrieved from the SCons cache).", ""]


def speed_test_firmware(out: Path) -> tuple[Path, object] | None:
    """tests/sim/firmware/test_model.c with its dense layer repeated 20,000
    times (145 M instructions), linked for the cortex-m4 board as the simulator
    tests link it; (elf, target), or None without arm-none-eabi-gcc."""
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        return None
    from tinybuild import plugins
    target = plugins.targets(plugins.make_plugin_manager())["cortex-m4"]
    runtime, firmware = ROOT / "tinybuild" / "runtime", ROOT / "tests" / "sim" / "firmware"
    elf = out / "speed.elf"
    subprocess.run([gcc, "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2",
                    "-ffunction-sections", "-fdata-sections", "-nostartfiles", "--specs=nano.specs",
                    "-Wl,--gc-sections", "-Wl,--undefined=tb_io_desc", "-T", str(target.linker_script),
                    f"-I{runtime}", "-DTB_TEST_REPEAT=20000", *map(str, target.startup_sources),
                    str(runtime / "tb_runtime.c"), str(firmware / "test_model.c"), "-o", str(elf)],
                   check=True)
    return elf, target


def simulator_speed_section() -> list[str]:
    """Unicorn's speed on a long run (best of 2) with per-layer profiling on
    and off, with and without the misaligned-access watch (``detail``, on for
    the run a report shows): what tests/sim/test_unicorn_sim.py once asserted
    (>= 50 M instructions/s with profiling) and host speed cannot promise."""
    sys.path.insert(0, str(ROOT))
    from sim.unicorn.simulator import UnicornSimulator
    with tempfile.TemporaryDirectory() as tmp:
        built = speed_test_firmware(Path(tmp))
        if built is None:
            return ["### Simulator speed", "", "Not measured: arm-none-eabi-gcc is not installed.", ""]
        elf, target = built
        rates = {}
        for detail in (False, True):
            for profile in (True, False):
                sim = UnicornSimulator(layer_profile=profile)
                run = min((sim.run(elf, target, bytes(range(64)), detail=detail) for _ in range(2)),
                          key=lambda r: r.wall_seconds)
                rates[detail, profile] = f"{run.total_instructions / run.wall_seconds / 1e6:.0f} M/s"
    return ["### Simulator speed (unicorn, a long run)", "",
            f"`tests/sim/firmware/test_model.c` with `-DTB_TEST_REPEAT=20000` on cortex-m4, "
            f"{run.total_instructions:,} instructions from reset to `tb_exit`, simulated instructions per "
            "host second, best of 2 (design goal: 50 M/s or more with per-layer profiling):", "",
            "| run | per-layer profiling on | off |", "| --- | ---: | ---: |",
            f"| validation runs (`detail=False`) | {rates[False, True]} | {rates[False, False]} |",
            f"| the report's run (`detail=True`: every access watched for misalignment) | "
            f"{rates[True, True]} | {rates[True, False]} |", ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", action="append", help="target(s); default cortex-m4")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the kernels=reference builds (the reference-vs-optimized table)")
    ap.add_argument("--no-extras", action="store_true",
                    help="skip the target=all and regression timings")
    args = ap.parse_args()
    targets = args.target or ["cortex-m4"]
    lines = ["# tinybuild benchmark record", "",
             f"Made by `./tb python bench/run.py{''.join(f' --target {t}' for t in targets)}"
             f"{' --no-reference' if args.no_reference else ''}"
             f"{' --no-extras' if args.no_extras else ''}` on "
             f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {platform.python_version()}, "
             f"{__import__('os').cpu_count()} cores. Each model is built cold into an empty build folder "
             "(conversion, reference run, compile, link, size, 4 simulated inferences, validation, report), "
             "then rebuilt with no change (no-op). Instructions and cycles are per inference from the "
             "default simulator (exact instruction counts; cycles from the documented per-core timing "
             "model, no flash wait states). Simulator speed is simulated instructions per host second "
             "over the validation runs after the first, per-layer profiling on (the first run, whose "
             "figures the report shows, also watches every memory access for misaligned ones and is "
             "10-40x slower). Build times are wall clock on a shared 2-core machine.", ""]
    for target in targets:
        rows, ref_rows = {}, {}
        for model in MODELS:
            if model.exists():
                print(f"[bench] {target} {model.name}", file=sys.stderr, flush=True)
                rows[model.stem] = measure(target, model)
                if not args.no_reference:
                    ref_rows[model.stem] = measure(target, model, "reference")
        lines += table(target, rows) + [""]
        if ref_rows:
            lines += [f"Optimized kernels (the target plugins') against the portable reference kernels "
                      f"(`kernels=reference`) on {target}:", ""]
            lines += kernels_table(rows, ref_rows) + [""]
        if target == "cortex-m4":
            lines += ["TFLM with CMSIS-NN on the same simulated Cortex-M4F (figures from "
                      "`../shared/models/mlperf_tiny/README.md`) beside tinybuild's:", ""]
            lines += tflm_table(rows) + [""]
    lines += simulator_speed_section()
    if not args.no_extras:
        print("[bench] target=all and the regression matrix", file=sys.stderr, flush=True)
        lines += all_boards_section() + regression_section()
    args.out.write_text("\n".join(lines) + "\n")
    print(f"[bench] wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
