"""How far the MLPerf Tiny models are from the Cortex-M4's floor in tinybuild's cycle model.

    ./tb python bench/cm4_floor.py [--build-dir DIR] [--record bench/results.md]

For every MLPerf Tiny model built for nucleo-l4r5zi with place=auto (the builds of
bench/mlperf_board.py: scons rebuilds only what changed), each layer's
measured cycles are set beside a floor: the fewest cycles any int8 kernel
bit-exact with TFLite could take on the cortex-m4 core model (docs/timing.md),
counting only the instructions the arithmetic cannot do without and no loop,
pointer, border or call overhead at all. The assumptions (docs/kernels.md,
"The floor"):

- a MAC is half an SMLAD (2 MACs per 1-cycle instruction); no other M4
  instruction does more int8 MACs per cycle;
- CONV_2D: the 4 x 2 register block (8 accumulators: 14 registers and sp hold
  it) needs 5 loads in one pipelined run (6 cycles), 1 SXTB16 and 8 SMLADs per
  16 MACs: 15/16 cycles per MAC;
- DEPTHWISE_CONV_2D 3x3: an output takes 3 MACs per kernel row, at least an
  SMLAD and an SMLAxy; stride 1: 2 x 2 outputs (2 rows of 2) share each loaded
  word of their 4 input rows (4 accumulators, 6 weight registers, 2 input
  words: 13 registers), 24 MAC instructions and 4 loads per 36 MACs (7/9
  cycle per MAC); stride 2: 2 outputs of one column share 1 of their 5 input
  rows, 12 MAC instructions and 5 loads per 18 MACs (17/18);
- FULLY_CONNECTED: every weight is used once: a load per 4 weights, a widen
  per 2 (the raw-word trick: 1 SXTB16 per 4) and an SMLAD per 2: 1 cycle per MAC;
- every output: TFLite's requantization in its fastest form, SMMLAR and SSAT
  (the bias folded into the sums, the shift into SSAT's operand: that needs
  code per channel, today's kernels take an ASR more), and a store: 3 cycles;
- every int8 input of a convolution is loaded and widened to int16 once:
  3/4 cycle per value (one load per 4 values, one SXTB16 per 2); a depthwise
  input also needs its channels separated (SMLAD wants 2 x-neighbours of one
  channel in a word, an NHWC word holds 4 channels of one pixel): one PKH per
  2 values more, 5/4 cycle per value;
- other ops (ADD, pools, softmax, reshape): their measured cycles (no floor
  claimed).

Flash wait is 0 in the floor (place=auto keeps the weights in SRAM; the
measured cycles include the little flash wait left).
"""
from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.mlperf_board import MODELS, PUBLISHED, GOAL_SHARE, build  # noqa: E402

BOARD, PLACE = "nucleo-l4r5zi", "auto"
CONV_CYCLES_PER_MAC = 15 / 16
FC_CYCLES_PER_MAC = 1.0
DW3_CYCLES_PER_MAC = {1: 7 / 9, 2: 17 / 18}
OUTPUT_CYCLES = 3
INPUT_CYCLES = 3 / 4
DW_INPUT_CYCLES = 5 / 4


def dims(text: str) -> int:
    return math.prod(int(d) for d in text.strip().split("x"))


def parse_shape(shape: str) -> tuple[int, int, int, str]:
    """inputs, outputs, stride, kernel size of a report's layer shape
    ("48x48x8 -> 48x48x16, k1x1 s1 same", "640 -> 128")."""
    head, _, tail = shape.partition(",")
    source, _, dest = head.partition("->")
    stride = re.search(r"\bs(\d+)", tail)
    kernel = re.search(r"\bk(\d+x\d+)", tail)
    return dims(source), dims(dest), int(stride.group(1)) if stride else 1, \
        kernel.group(1) if kernel else ""


def layer_floor(layer: dict) -> tuple[float, str]:
    """The layer's floor in cycles, and which rule gave it."""
    op, macs = layer["op"], layer["macs"]
    if op not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        return layer["cycles"], "measured"
    inputs, outputs, stride, kernel = parse_shape(layer["shape"])
    tail = OUTPUT_CYCLES * outputs
    if op == "FULLY_CONNECTED":
        return macs * FC_CYCLES_PER_MAC + tail, "fc"
    if op == "CONV_2D":
        return macs * CONV_CYCLES_PER_MAC + tail + INPUT_CYCLES * inputs, "conv"
    if kernel == "3x3" and stride in DW3_CYCLES_PER_MAC:
        return macs * DW3_CYCLES_PER_MAC[stride] + tail + DW_INPUT_CYCLES * inputs, f"dw3 s{stride}"
    return layer["cycles"], "measured"


def model_rows(name: str, report: dict) -> tuple[str, list[str]]:
    measured = report["inference"]["cycles"]
    layers = report["layers"]
    floors = [layer_floor(layer) for layer in layers]
    floor = sum(f for f, _ in floors)
    published = PUBLISHED[name][1]
    summary = (f"| {name} | {measured:,} | {floor:,.0f} | {measured / floor:.2f}x | "
               f"{published * GOAL_SHARE:,.0f} | {floor / published:.2f}x |")
    detail = [f"| #{layer['index']} {layer['op']} | {layer['shape']} | {layer['kernel']} | {layer['macs']:,} | "
              f"{layer['cycles']:,} | {f:,.0f} ({rule}) | {layer['cycles'] / f:.2f}x |"
              for layer, (f, rule) in zip(layers, floors)]
    return summary, detail


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", type=Path, default=Path("/tmp/mlperf_board"))
    ap.add_argument("--record", type=Path, help="write the tables into this file's cm4-floor block")
    args = ap.parse_args()
    summary = ["| model | measured cycles | floor | measured / floor | goal (0.75x published) | "
               "floor / published |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    details = {}
    for name, model in MODELS.items():
        report = build(args.build_dir, BOARD, model, PLACE)  # incremental: a no-op when up to date
        row, details[name] = model_rows(name, report)
        summary.append(row)
        print(row, flush=True)
    layer_head = ["| layer | shape | kernel | MACs | measured | floor (rule) | measured / floor |",
                  "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    text = "\n".join(summary + ["", "VWW per layer:", ""] + layer_head + details["VWW"])
    print("\n".join(layer_head + details["VWW"]))
    if args.record:
        from bench.sweep import record
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        record(args.record, f"`./tb python bench/cm4_floor.py --record bench/results.md` (commit {commit}): "
               f"{BOARD}, place={PLACE}, cycles = core + flash wait as measured in the simulator; floor = "
               "the fewest cycles the arithmetic needs on the cortex-m4 core model with no overhead at all "
               "(the rules in the script's docstring and docs/kernels.md \"The floor\").\n\n" + text + "\n",
               "cm4-floor", "How far from the Cortex-M4's floor (issue 14 item 5)")


if __name__ == "__main__":
    main()
