"""int8 vs int16x8 vs float32 side by side: the same Keras models built with each
``quant=`` on each target, from the builds' report.json.

    ./tb python bench/quant_compare.py [--model M]... [--target T]... [--record bench/results.md]

Per model, quantization and target: flash, arena, instructions, cycles, whether the
firmware matched TFLite (byte for byte, or within the float tolerance with the
largest difference), and the converter's float-vs-quantized agreement on the
calibration data. Float layers say how the board computes them (the Cortex-M4F's
FPU, or soft float on RV32: its cost is in the figures). A build that fails (a
model that does not fit) shows its one-line error.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from run import ROOT, scons
from sweep import record

QUANTS = ("int8", "int16x8", "float32")
TARGETS = ("cortex-m4", "riscv", "esp32c3")
MODELS = (ROOT / "models" / "kws.h5",)
# Models made elsewhere as one .tflite per quantization (the recurrent corpus:
# models/corpus/make_recurrent.py); None: why that quantization is missing.
RECURRENT = ROOT / "tests" / "data" / "recurrent"
TFLITE_SETS = {"lstm_kws": {
    "int8": RECURRENT / "lstm_kws_int8.tflite",
    "int16x8": "TF 2.21's converter refuses 16x8 for UNIDIRECTIONAL_SEQUENCE_LSTM (not yet supported)",
    "float32": RECURRENT / "lstm_kws_float32.tflite"}}


def measure(model: Path | str, quant: str, target: str, build: Path) -> dict:
    """A Keras model built with quant=, or a .tflite as it is (its own types);
    a string instead of a model is why there is none."""
    if isinstance(model, str):
        return {"error": model}
    keras = model.suffix != ".tflite"
    _, error = scons(build, target, model, "optimized", *([f"quant={quant}"] if keras else []),
                     "inputs=2")
    if error:
        return {"error": error}
    variant = model.stem if quant == "int8" or not keras else f"{model.stem}-{quant}"
    return json.loads((build / target / variant / "report.json").read_text())


def row(name: str, quant: str, target: str, r: dict) -> str:
    if "error" in r:
        return f"| {name} | {quant} | {target} | {r['error'][:140]} ||||||"
    v, conv = r["validation"], r.get("conversion") or {}
    match = ("byte for byte" if v.get("exact", True) else
             f"within {v['float_tolerance']:g} (max rel {v['max_rel_diff']:.1e})") if v["match"] else "NO"
    agree = (f"{conv['top1_agreement']:.3f} / {conv['max_abs_diff']:.3g}"
             if conv.get("top1_agreement") is not None else "-")
    how = r["target"].get("float_arithmetic", "") if quant == "float32" else ""
    return (f"| {name} | {quant} | {target}{f' ({how})' if how else ''} | {r['flash']['used']:,} | "
            f"{r['arena']['bytes']:,} | {r['inference']['instructions']:,} | {r['inference']['cycles']:,} | "
            f"{match} | {agree} |")


def table(models, targets) -> str:
    lines = ["| model | quant | target | flash B | arena B | instructions | cycles | matches TFLite | "
             "float vs quantized: top-1 / max abs diff |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]
    sets = {m.name: {q: m for q in QUANTS} for m in models} | \
        {f"{name} (.tflite)": files for name, files in TFLITE_SETS.items()}
    with tempfile.TemporaryDirectory(prefix="tb_types_") as tmp:
        for name, files in sets.items():
            for quant in QUANTS:
                for target in targets:
                    r = measure(files[quant], quant, target, Path(tmp) / "build")
                    lines.append(row(name, quant, target, r))
                    print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", type=Path, help="a Keras model (repeatable)")
    ap.add_argument("--target", action="append", choices=TARGETS, help="a target (repeatable)")
    ap.add_argument("--record", type=Path, help="write the table into this file's types section")
    args = ap.parse_args(argv)
    models = [m.resolve() for m in args.model] if args.model else list(MODELS)
    text = table(models, args.target or list(TARGETS))
    cmd = "./tb python bench/quant_compare.py" + "".join(f" --model {m}" for m in (args.model or [])) + \
        "".join(f" --target {t}" for t in (args.target or []))
    text = f"Made by `{cmd}` (inputs=2, unicorn).\n\n{text}"
    print(text)
    if args.record:
        record(args.record, text, "types", "int8 vs int16x8 vs float32 (quant=)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
