"""Shape sweep: instructions and modelled cycles per MAC of each target's kernels
against the reference kernels, on single-layer firmware run in the simulator.

    ./tb python bench/sweep.py [--full] [--target cortex-m4 --target riscv ...]
                               [--op CONV_2D ...] [--record bench/results.md]

Every case is one layer (random int8 weights and inputs, seeded by the case's
name) built into a firmware that runs the reference kernel and the kernel a
build for the target picks (``kernel_registry.choose``) on the same data; the
firmware is compiled and linked with the target's flags, startup and linker
script (tests/kernels/opt_harness.py) and run in its default simulator (exact
instruction counts, cycles from the target's timing model). Both outputs must
be equal byte for byte. Prints, per target, op and kernel, instructions and
cycles per MAC; the worst cases; and every case where the chosen kernel is
slower than the reference (instructions or cycles). Exits 1 on a differing
byte or a slower case.

A "MAC" is a multiply-accumulate for CONV_2D, DEPTHWISE_CONV_2D and
FULLY_CONNECTED, a window tap for the pools and an output element for ADD.
By default the grid is sampled (a fixed, seeded sample: same cases every
run); ``--full`` runs all of it.
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import math
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "kernels")]

from opt_harness import (TARGET_KERNEL_DIRS, _flash_need, _ram_need, chosen, random_add_layer,  # noqa: E402
                         random_conv_layer, random_fc_layer, random_pool_layer, reference,
                         simulate_cases, target_kernels)

TARGETS = ("cortex-m4", "riscv", "esp32c3")
OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "AVERAGE_POOL_2D", "MAX_POOL_2D")
# buffers and constants per firmware: riscv has 32 KiB of RAM and 128 KiB of flash
BUDGETS = {"cortex-m4": (90_000, 600_000), "riscv": (20_000, 60_000), "esp32c3": (90_000, 600_000)}
WEIGHT_CAP = 24_000          # bytes of weights per layer (riscv's flash holds two copies)
ACT_CAP = 6_000              # bytes per activation tensor (riscv's RAM)
MAC_GOAL = 120_000           # MACs per case: the map shrinks for wide layers
MIN_MACS_FOR_WORST = 4_096   # below this a call's fixed cost decides instructions per MAC
SAMPLE = {"CONV_2D": 40, "DEPTHWISE_CONV_2D": 48, "FULLY_CONNECTED": 16, "ADD": 8,
          "AVERAGE_POOL_2D": 10, "MAX_POOL_2D": 6}

CONV_CHANNELS = [(1, 8), (1, 64), (2, 6), (3, 8), (3, 16), (4, 4), (7, 9), (8, 16), (16, 16),
                 (17, 33), (32, 32), (64, 64), (128, 8), (256, 12)]
DW_CHANNELS = [1, 2, 3, 4, 7, 8, 16, 17, 32, 64, 128, 256]
MULTIPLIERS = [1, 2, 8]
FILTERS = [(1, 1), (3, 3), (5, 5), (1, 3), (3, 1), (10, 4), (10, 8)]
STRIDES, DILATIONS, WIDTHS = [1, 2], [1, 2], ["even", "odd"]
PADDINGS, SCALES = ["SAME", "VALID"], ["per-channel", "per-tensor"]
FC_IN, FC_OUT = [1, 3, 8, 17, 64, 250, 256, 1000], [1, 2, 5, 10, 12, 32, 64, 128, 256]
ADD_SIZES = [1, 7, 16, 100, 257, 1000, 4096]
POOL_CHANNELS = [1, 3, 4, 8, 16, 17, 64, 256]
POOL_WINDOWS = [(2, 2), (3, 3), (1, 3), (5, 5), "global"]

# Layers named by what they are (always run), quantized as in the models (output zero
# point -128 after a fused ReLU): MicroSpeech's depthwise layer and MLPerf Tiny shapes.
MODEL_QUANT = dict(in_zp=-128, out_zp=-128, activation="RELU")
NAMED = [
    ("MicroSpeech dw", dict(**MODEL_QUANT, op="DEPTHWISE_CONV_2D", in_h=49, in_w=40, in_c=1, k_h=10, k_w=8,
                            stride=(2, 2), depth_multiplier=8, padding="SAME")),
    ("KWS conv1", dict(**MODEL_QUANT, op="CONV_2D", in_h=49, in_w=10, in_c=1, out_c=64, k_h=10, k_w=4,
                       stride=(2, 2), padding="SAME")),
    ("KWS dw", dict(**MODEL_QUANT, op="DEPTHWISE_CONV_2D", in_h=25, in_w=5, in_c=64, k_h=3, k_w=3,
                    padding="SAME")),
    ("KWS pw", dict(**MODEL_QUANT, op="CONV_2D", in_h=25, in_w=5, in_c=64, out_c=64, k_h=1, k_w=1,
                    padding="SAME")),
    ("VWW dw s2", dict(**MODEL_QUANT, op="DEPTHWISE_CONV_2D", in_h=24, in_w=24, in_c=8, k_h=3, k_w=3,
                       stride=(2, 2), padding="SAME")),
    ("ResNet conv", dict(**MODEL_QUANT, op="CONV_2D", in_h=8, in_w=8, in_c=16, out_c=32, k_h=3, k_w=3,
                         padding="SAME")),
]


@dataclass
class Case:
    name: str
    op: str
    spec: dict
    macs: int = 0
    kernel: str = "reference"
    clamped: bool = False        # the output range is narrower than int8's (RELU6, RELU with zp > -128)
    result: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        undetailed = self.result and not self.result["detail"]
        return self.name + (" (clamped)" if self.clamped else "") + (" †" if undetailed else "")

    @property
    def seed(self) -> int:
        return zlib.crc32(self.name.encode())


# -- the grid ---------------------------------------------------------------------------


def _eff(k: int, d: int) -> int:
    return (k - 1) * d + 1


def _map(out_side: int, stride: int, k: int, dil: int, padding: str) -> int:
    """Input size giving ``out_side`` outputs."""
    return out_side * stride if padding == "SAME" else (out_side - 1) * stride + _eff(k, dil)


def conv_map(spec: dict, macs_per_pixel: int, width: str, in_c: int, out_c: int) -> dict | None:
    """in_h, in_w for about MAC_GOAL MACs, both activations within ACT_CAP; None if none fits."""
    (kh, kw), s, (dh, dw) = (spec["k_h"], spec["k_w"]), spec["stride"][0], spec["dilation"]
    side = max(1, min(20, int(math.sqrt(MAC_GOAL / macs_per_pixel))))
    for side in range(side, 0, -1):
        in_h = _map(side, s, kh, dh, spec["padding"])
        in_w = _map(side, s, kw, dw, spec["padding"])
        in_w += (in_w % 2 == 0) == (width == "odd")
        if max(in_h * in_w * in_c, side * side * out_c) <= ACT_CAP:
            return dict(in_h=in_h, in_w=in_w)
    return None


def conv_grid() -> list[Case]:
    cases = []
    for (in_c, out_c), (kh, kw), s, d, width, pad, scale in itertools.product(
            CONV_CHANNELS, FILTERS, STRIDES, DILATIONS, WIDTHS, PADDINGS, SCALES):
        if (d == 2 and (kh, kw) == (1, 1)) or in_c * out_c * kh * kw > WEIGHT_CAP:
            continue
        spec = dict(in_c=in_c, out_c=out_c, k_h=kh, k_w=kw, stride=(s, s), dilation=(d, d),
                    padding=pad, per_channel=scale == "per-channel")
        size = conv_map(spec, in_c * out_c * kh * kw, width, in_c, out_c)
        if size:
            cases.append(_case("CONV_2D", {**spec, **size}))
    return cases


def dw_grid() -> list[Case]:
    cases = []
    for c, m, (kh, kw), s, d, width, pad, scale in itertools.product(
            DW_CHANNELS, MULTIPLIERS, FILTERS, STRIDES, DILATIONS, WIDTHS, PADDINGS, SCALES):
        if (d == 2 and (kh, kw) == (1, 1)) or c * m > 256:
            continue
        spec = dict(in_c=c, depth_multiplier=m, k_h=kh, k_w=kw, stride=(s, s), dilation=(d, d),
                    padding=pad, per_channel=scale == "per-channel")
        size = conv_map(spec, kh * kw * c * m, width, c, c * m)
        if size:
            cases.append(_case("DEPTHWISE_CONV_2D", {**spec, **size}))
    return cases


def fc_grid() -> list[Case]:
    return [_case("FULLY_CONNECTED", dict(in_features=i, out_features=o,
                                          per_channel=scale == "per-channel"))
            for i, o, scale in itertools.product(FC_IN, FC_OUT, SCALES) if i * o <= WEIGHT_CAP]


def add_grid() -> list[Case]:
    return [_case("ADD", dict(size=n, same_scales=same))
            for n, same in itertools.product(ADD_SIZES, [True, False])]


def pool_grid(op: str) -> list[Case]:
    cases = []
    for c, window, s, pad in itertools.product(POOL_CHANNELS, POOL_WINDOWS, STRIDES, PADDINGS):
        side = max(2, min(16, int(math.sqrt(ACT_CAP // 2 / c))))
        k = (side, side) if window == "global" else window
        if window == "global" and (s, pad) != (1, "VALID"):
            continue
        cases.append(_case(op, dict(in_h=side, in_w=side + 1 - (window == "global"), c=c,
                                    k_h=k[0], k_w=k[1], stride=(s, s), padding=pad)))
    return cases


def _case(op: str, spec: dict) -> Case:
    return Case(case_name(op, spec), op, spec)


def case_name(op: str, s: dict) -> str:
    if op == "FULLY_CONNECTED":
        return f"fc {s['in_features']}>{s['out_features']} {_scale(s)}"
    if op == "ADD":
        return f"add {s['size']} {'same' if s['same_scales'] else 'different'} scales"
    stride, dil = s.get("stride", (1, 1)), s.get("dilation", (1, 1))
    geometry = f"k{s['k_h']}x{s['k_w']} s{stride[0]}" + (f" d{dil[0]}" if dil[0] > 1 else "")
    if op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        kind = "avgpool" if op == "AVERAGE_POOL_2D" else "maxpool"
        return f"{kind} {s['in_h']}x{s['in_w']}x{s['c']} {geometry} {s['padding']}"
    if op == "CONV_2D":
        return f"conv {s['in_h']}x{s['in_w']}x{s['in_c']}>{s['out_c']} {geometry} {s['padding']} {_scale(s)}"
    m = s.get("depth_multiplier", 1)
    return (f"dw {s['in_h']}x{s['in_w']}x{s['in_c']}" + (f" m{m}" if m > 1 else "") +
            f" {geometry} {s['padding']} {_scale(s)}")


def _scale(s: dict) -> str:
    return "pc" if s.get("per_channel", True) else "pt"


def grid(ops, full: bool, seed: int = 11) -> list[Case]:
    """Named cases, then the whole grid (``full``) or its sample drawn with ``seed``, per op."""
    cases = [Case(f"{label}: {case_name(s['op'], s)}", s["op"], {k: v for k, v in s.items() if k != "op"})
             for label, s in NAMED if s["op"] in ops]
    makers = {"CONV_2D": conv_grid, "DEPTHWISE_CONV_2D": dw_grid, "FULLY_CONNECTED": fc_grid,
              "ADD": add_grid, "AVERAGE_POOL_2D": lambda: pool_grid("AVERAGE_POOL_2D"),
              "MAX_POOL_2D": lambda: pool_grid("MAX_POOL_2D")}
    for op in ops:
        every = makers[op]()
        if not full and len(every) > SAMPLE[op]:
            pick = np.random.default_rng(seed).choice(len(every), SAMPLE[op], replace=False)
            every = [every[i] for i in sorted(pick)]
        cases += every
    return cases


def small_sample(ops, count: int) -> list[Case]:
    """The named cases and about ``count`` evenly spaced cases of the default
    sample (the tests' fixed sample: tests/test_cm4_no_cliffs.py, test_rv_kernels.py)."""
    cases = grid(list(ops), full=False)
    named = [c for c in cases if ":" in c.name]
    rest = [c for c in cases if ":" not in c.name]
    return named + rest[::max(1, len(rest) // count)]


# -- layers -----------------------------------------------------------------------------


def make_layer(case: Case):
    """The case's layer (reference consts) and its inputs, from the case's seed."""
    rng = np.random.default_rng(case.seed)
    zp = lambda: int(rng.integers(-128, 128))       # noqa: E731
    s = dict(case.spec)
    in_zp = s.pop("in_zp", zp())
    out_zp = s.pop("out_zp", int(rng.choice([-128, -128, zp()])))   # most models: -128 (ReLU)
    act = s.pop("activation", str(rng.choice(["NONE", "RELU", "RELU6"])))
    if case.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        layer = random_conv_layer(rng, depthwise=case.op == "DEPTHWISE_CONV_2D", in_zp=in_zp,
                                  out_zp=out_zp, activation=act, **s)
        n = s["in_h"] * s["in_w"] * s["in_c"]
        return layer, [rng.integers(-128, 128, n).astype(np.int8)]
    if case.op == "FULLY_CONNECTED":
        layer = random_fc_layer(rng, in_zp=in_zp, out_zp=out_zp, activation=act, **s)
        return layer, [rng.integers(-128, 128, s["in_features"]).astype(np.int8)]
    if case.op == "ADD":
        s1 = float(rng.uniform(0.01, 0.2))
        s2 = s1 if s["same_scales"] else float(rng.uniform(0.01, 0.2))
        layer = random_add_layer(rng, size=s["size"], s1=s1, z1=in_zp, s2=s2, z2=zp(),
                                 so=float(rng.uniform(0.02, 0.4)), zo=out_zp, activation=act)
        return layer, [rng.integers(-128, 128, s["size"]).astype(np.int8) for _ in range(2)]
    layer = random_pool_layer(rng, op=case.op, zp=in_zp, activation=act, **s)
    return layer, [rng.integers(-128, 128, s["in_h"] * s["in_w"] * s["c"]).astype(np.int8)]


def work(layer) -> int:
    """MACs of a convolution or fully connected layer, window taps of a pool, elements of ADD."""
    p = layer.params
    if layer.op == "ADD":
        return p["size"]
    if layer.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return p["out_h"] * p["out_w"] * p["c"] * p["k_h"] * p["k_w"]
    return layer.macs


# -- running ----------------------------------------------------------------------------


def run_target(target: str, cases: list[Case], workdir: Path, every_kernel: bool = False) -> list[Case]:
    """Simulate on ``target`` every case whose buffers and constants fit its
    memory (BUDGETS); returns those cases, with their results. With
    ``every_kernel`` a case runs once per target kernel that accepts it (the
    returned list has a copy per kernel), not only with the one a build picks."""
    impls = target_kernels(target)
    ram, flash = BUDGETS[target]
    runs = []
    for case in cases:
        layer, inputs = make_layer(case)
        ref = reference(layer)
        candidates = [k for k in impls if k.op == layer.op and k.accepts(layer)] if every_kernel \
            else [None]
        for impl in candidates:
            opt = chosen(layer, [impl] if impl else impls)
            run = (ref, opt if opt is not None else ref, inputs, None)
            if _ram_need(run) > ram or _flash_need(run) > flash:
                print(f"sweep: {target}: {case.name} skipped: does not fit the board", file=sys.stderr)
                continue
            p = layer.params
            runs.append((replace(case, kernel=opt.kernel if opt is not None else "reference",
                                 macs=work(layer), clamped="act_min" in p and
                                 (p["act_min"], p["act_max"]) != (-128, 127)), run))
    rows = simulate_cases([r for _, r in runs], workdir, ram, (TARGET_KERNEL_DIRS[target],),
                          target, flash_budget=flash)
    for (case, _), row in zip(runs, rows):
        case.result = row
    return [case for case, _ in runs]


def toolchain_here(target: str) -> bool:
    from tinybuild import plugins
    pm = plugins.make_plugin_manager()
    t = plugins.find_target(pm, target)
    return pm.hook.tinybuild_find_toolchain(target=t, explicit_path=None) is not None


# -- report -----------------------------------------------------------------------------


def per_mac(case: Case, key: str) -> float:
    return case.result[key] / max(case.macs, 1)


def slower(case: Case) -> bool:
    r = case.result
    return case.kernel != "reference" and (r["opt_instr"] > r["ref_instr"] or
                                          r["opt_cycles"] > r["ref_cycles"])


def mismatch(case: Case) -> bool:
    return not np.array_equal(case.result["ref"], case.result["opt"])


def summary_table(results: dict[str, list[Case]]) -> list[str]:
    lines = ["| target | op | kernel | cases | instr/MAC: all cases (median, worst) | "
             "reference instr/MAC | cycles/MAC (worst) | reference cycles/MAC | worst case |",
             "| --- | --- | --- | ---: | --- | ---: | --- | ---: | --- |"]
    for target, cases in results.items():
        keys = sorted({(c.op, c.kernel) for c in cases}, key=lambda k: (OPS.index(k[0]), k[1]))
        for op, kernel in keys:
            group = [c for c in cases if (c.op, c.kernel) == (op, kernel)]
            macs = sum(c.macs for c in group)
            total = lambda key: sum(c.result[key] for c in group) / macs   # noqa: E731
            worst = max(group, key=lambda c: per_mac(c, "opt_instr"))
            lines.append(
                f"| {target} | {op} | {kernel} | {len(group)} | {total('opt_instr'):.2f} "
                f"({statistics.median(per_mac(c, 'opt_instr') for c in group):.2f}, "
                f"{per_mac(worst, 'opt_instr'):.2f}) | {total('ref_instr'):.2f} | "
                f"{total('opt_cycles'):.2f} ({max(per_mac(c, 'opt_cycles') for c in group):.2f}) | "
                f"{total('ref_cycles'):.2f} | {worst.label} |")
    return lines


def worst_table(results: dict[str, list[Case]], count: int = 3) -> list[str]:
    """Per target and op, the cases with the most instructions per MAC (of at
    least MIN_MACS_FOR_WORST MACs), against the op's median on that target."""
    lines = ["| target | op | case | kernel | instr/MAC | x the op's median | reference instr/MAC |",
             "| --- | --- | --- | --- | ---: | ---: | ---: |"]
    for target, cases in results.items():
        for op in OPS:
            group = [c for c in cases if c.op == op and c.macs >= MIN_MACS_FOR_WORST]
            if not group:
                continue
            median = statistics.median(per_mac(c, "opt_instr") for c in group)
            for c in sorted(group, key=lambda c: -per_mac(c, "opt_instr"))[:count]:
                lines.append(f"| {target} | {op} | {c.label} | {c.kernel} | "
                             f"{per_mac(c, 'opt_instr'):.2f} | {per_mac(c, 'opt_instr') / median:.1f} | "
                             f"{per_mac(c, 'ref_instr'):.2f} |")
    return lines


def slower_table(results: dict[str, list[Case]]) -> list[str]:
    rows = [(t, c) for t, cases in results.items() for c in cases if slower(c)]
    if not rows:
        return ["No case where a target's kernel is slower than the reference kernel "
                "(instructions or cycles)."]
    lines = ["| target | case | kernel | instructions optimized / reference | cycles optimized / reference |",
             "| --- | --- | --- | ---: | ---: |"]
    for t, c in rows:
        r = c.result
        lines.append(f"| {t} | {c.label} | {c.kernel} | {r['opt_instr']:,} / {r['ref_instr']:,} | "
                     f"{r['opt_cycles']:,} / {r['ref_cycles']:,} |")
    return lines


def named_table(results: dict[str, list[Case]]) -> list[str]:
    lines = ["| target | layer | kernel | MACs | instr/MAC | cycles/MAC | reference instr/MAC |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for target, cases in results.items():
        for c in cases:
            if ":" in c.name:
                lines.append(f"| {target} | {c.label} | {c.kernel} | {c.macs:,} | "
                             f"{per_mac(c, 'opt_instr'):.2f} | {per_mac(c, 'opt_cycles'):.2f} | "
                             f"{per_mac(c, 'ref_instr'):.2f} |")
    return lines


def report(results, command: str, seconds: float) -> str:
    total = sum(len(c) for c in results.values())
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "?"
    head = (f"Made by `{command}` on {datetime.date.today()} (commit {commit}): {total} "
            f"single-layer cases in {seconds:.0f} s, every output equal to the reference kernel's "
            "byte for byte. A MAC is a multiply-accumulate (convolutions, fully connected), a "
            "window tap (pools) or an output element (ADD); instructions are exact (unicorn), "
            "cycles from the target's timing model. \"kernel\" is what a build picks for the "
            "shape (`reference` where no target kernel accepts it); \"(clamped)\": an output range "
            "narrower than int8's (RELU6, or RELU with a zero point above -128).")
    if any(c.result and not c.result["detail"] for cases in results.values() for c in cases):
        head += (" †: cycles without misaligned-access penalties (with the simulator's memory "
                 "watch on, unicorn faulted in that firmware; tests/kernels/opt_harness._simulate).")
    return "\n".join([head, "", *summary_table(results), "",
                      f"Worst cases (at least {MIN_MACS_FOR_WORST:,} MACs) per op and target:", "",
                      *worst_table(results), "", "Named layers:", "", *named_table(results), "",
                      "Cases where the picked kernel is slower than the reference:", "",
                      *slower_table(results), ""])


def record(path: Path, text: str, name: str = "sweep", title: str = "Kernel shape sweep") -> None:
    """Replace (or append) the section between the ``name`` markers of ``path``
    (``<!-- name:begin -->`` ... ``<!-- name:end -->``)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n## {title}\n\n{text}\n{end}"
    old = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    new = pattern.sub(lambda _: block, old) if pattern.search(old) else old.rstrip() + "\n\n" + block + "\n"
    path.write_text(new)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", action="append", choices=TARGETS,
                    help="a target to sweep (repeatable; default: all whose toolchain is here)")
    ap.add_argument("--op", action="append", choices=OPS, help="an op to sweep (repeatable; default: all)")
    ap.add_argument("--full", action="store_true", help="every shape of the grid, not the fixed sample")
    ap.add_argument("--seed", type=int, default=11,
                    help="another sample of the grid (default 11, the recorded one)")
    ap.add_argument("--every-kernel", action="store_true",
                    help="run each case with every target kernel that accepts it (to tune accepts)")
    ap.add_argument("--record", type=Path, help="write the tables into this file's sweep section")
    args = ap.parse_args(argv)
    ops = args.op or list(OPS)
    start = time.perf_counter()
    results = {}
    for target in args.target or TARGETS:
        if not toolchain_here(target):
            print(f"sweep: {target} skipped: its toolchain is not installed", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory(prefix="tb-sweep-") as tmp:
            cases = run_target(target, grid(ops, args.full, args.seed), Path(tmp),
                               args.every_kernel)
        results[target] = cases
        print(f"sweep: {target}: {len(cases)} cases, {time.perf_counter() - start:.0f} s",
              file=sys.stderr)
    command = "./tb python bench/sweep.py" + (" --full" if args.full else "") + \
        (f" --seed {args.seed}" if args.seed != 11 else "") + \
        "".join(f" --target {t}" for t in args.target or ()) + "".join(f" --op {o}" for o in args.op or ())
    text = report(results, command, time.perf_counter() - start)
    print(text)
    if args.record:
        record(args.record, text)
    bad = [(t, c) for t, cases in results.items() for c in cases if mismatch(c)]
    for t, c in bad:
        print(f"sweep: {t} {c.label}: {c.kernel} differs from the reference kernel", file=sys.stderr)
    return 1 if bad or any(slower(c) for cases in results.values() for c in cases) else 0


if __name__ == "__main__":
    sys.exit(main())
