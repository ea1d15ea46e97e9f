"""Reports: report.json (every figure), report.md (for people), the summary.

Figures per inference come from the first validation input's simulated run
(instruction and cycle counts are deterministic; every run is kept in
run.json).
"""
from __future__ import annotations

import json
from pathlib import Path


def build_record(*, target, toolchain, model, opt, size, run, validation, plan, conversion) -> dict:
    first = run["runs"][0]
    by_index = {l["index"]: l for l in first["layers"]}
    layers = []
    for layer in plan["layers"]:
        prof = by_index.get(layer["index"], {"instructions": 0, "cycles": 0})
        layers.append({**{k: layer[k] for k in ("index", "op", "shape", "kernel", "macs")},
                       "instructions": prof["instructions"], "cycles": prof["cycles"],
                       "macs_per_cycle": round(layer["macs"] / prof["cycles"], 3) if prof["cycles"] else 0,
                       "flash_bytes": size["layers_flash"].get(str(layer["index"]), 0),
                       "output_bytes": layer["output"]["bytes"]})
    cycles = first["cycles"]
    return {
        "model": {"path": str(model), "name": Path(model).stem, "input": plan["input"],
                  "output": plan["output"], "macs": plan["macs"]},
        "target": {"name": target.name, "board": target.board, "cpu": target.cpu,
                   "clock_hz": target.clock_hz, "plugin": target.plugin},
        "toolchain": toolchain, "opt": opt,
        "conversion": conversion,
        "flash": size["flash"], "ram": size["ram"],
        "arena": {"bytes": plan["memory"]["arena_size"], "lower_bound": plan["memory"]["lower_bound"]},
        "stack": {"peak_bytes": first["peak_stack_bytes"], "reserved_bytes": size["stack_reserved_bytes"]},
        "ram_touched_bytes": first["ram_touched_bytes"],
        "inference": {"simulator": run["simulator"], "instructions": first["instructions"],
                      "cycles": cycles, "ms": round(cycles / target.clock_hz * 1e3, 3),
                      "instructions_per_mac": round(first["instructions"] / plan["macs"], 3) if plan["macs"] else 0,
                      "cycles_per_mac": round(cycles / plan["macs"], 3) if plan["macs"] else 0,
                      "simulated_instructions_per_second": first["instructions_per_second"]},
        "validation": validation,
        "layers": layers,
        "sections": size["sections"],
        "groups": {**size["groups"], "stack": {"flash": 0, "ram": size["stack_reserved_bytes"]}},
    }


def _pct(used: int, capacity: int) -> str:
    return f"{100 * used / capacity:.1f}%" if capacity else "-"


def markdown(r: dict) -> str:
    inf, t = r["inference"], r["target"]
    lines = [f"# {r['model']['name']} on {t['name']}", "",
             f"Board: {t['board']} ({t['cpu']}, {t['clock_hz'] / 1e6:g} MHz). Toolchain: "
             f"{r['toolchain']['triple']}-gcc {r['toolchain']['version']} ({r['toolchain']['source']}), -{r['opt']}.",
             "", "| figure | value |", "| --- | --- |",
             f"| flash | {r['flash']['used']:,} B of {r['flash']['capacity']:,} ({_pct(r['flash']['used'], r['flash']['capacity'])}) |",
             f"| RAM | {r['ram']['used']:,} B of {r['ram']['capacity']:,} ({_pct(r['ram']['used'], r['ram']['capacity'])}): "
             f"{r['ram']['used'] - r['stack']['reserved_bytes']:,} static data + {r['stack']['reserved_bytes']:,} stack reserved |",
             f"| arena | {r['arena']['bytes']:,} B (lower bound {r['arena']['lower_bound']:,} B) |",
             f"| peak stack | {r['stack']['peak_bytes']:,} B of {r['stack']['reserved_bytes']:,} reserved |",
             f"| RAM touched | {r['ram_touched_bytes']:,} B |",
             f"| MACs | {r['model']['macs']:,} |",
             f"| instructions / inference | {inf['instructions']:,} ({inf['instructions_per_mac']} per MAC) |",
             f"| cycles / inference | {inf['cycles']:,} ({inf['cycles_per_mac']} per MAC) = {inf['ms']} ms |",
             f"| simulator | {inf['simulator']}, {inf['simulated_instructions_per_second'] / 1e6:.1f} M instr/s |",
             f"| output matches TFLite reference | {'yes' if r['validation']['match'] else 'NO'} "
             f"({r['validation']['inputs']} inputs, {r['validation']['reference']}) |"]
    conv = r.get("conversion") or {}
    if conv.get("top1_agreement") is not None:
        lines.append(f"| float vs int8 on {conv.get('num_samples', '?')} calibration samples | top-1 "
                     f"agreement {conv['top1_agreement']:.3f}, max abs diff {conv['max_abs_diff']:.4g}, "
                     f"mean {conv['mean_abs_diff']:.4g} |")
    lines += ["", "## Layers", "", "| # | op | shape | kernel | MACs | instructions | cycles | MACs/cycle | flash B |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for l in r["layers"]:
        lines.append(f"| {l['index']} | {l['op']} | {l['shape']} | {l['kernel']} | {l['macs']:,} | "
                     f"{l['instructions']:,} | {l['cycles']:,} | {l['macs_per_cycle']} | {l['flash_bytes']:,} |")
    lines += ["", "## Memory by group", "", "| group | flash B | RAM B |", "| --- | --- | --- |"]
    for name, g in r["groups"].items():
        lines.append(f"| {name} | {g['flash']:,} | {g['ram']:,} |")
    lines += ["", "## Sections", "", "| section | address | flash B | RAM B |", "| --- | --- | --- | --- |"]
    for s in r["sections"]:
        lines.append(f"| {s['name']} | 0x{s['address']:08x} | {s['flash']:,} | {s['ram']:,} |")
    return "\n".join(lines) + "\n"


def write(json_path: Path, md_path: Path, **parts) -> dict:
    record = build_record(**parts)
    Path(json_path).write_text(json.dumps(record, indent=1) + "\n")
    Path(md_path).write_text(markdown(record))
    return record


def summary(r: dict, report_md: str | None = None) -> str:
    inf, t, tc = r["inference"], r["target"], r["toolchain"]
    slow = sorted(r["layers"], key=lambda l: -l["cycles"])[:3]
    total = inf["cycles"] or 1
    lines = [
        f"tinybuild: {r['model']['name']} on {t['name']} - {t['board']}",
        f"  toolchain   {tc['triple']}-gcc {tc['version']} ({tc['source']}: {tc['bin_dir']}), -{r['opt']}",
        f"  flash       {r['flash']['used']:>9,} B of {r['flash']['capacity']:,} ({_pct(r['flash']['used'], r['flash']['capacity'])})",
        f"  RAM         {r['ram']['used']:>9,} B of {r['ram']['capacity']:,} ({_pct(r['ram']['used'], r['ram']['capacity'])})"
        f": {r['ram']['used'] - r['stack']['reserved_bytes']:,} static + {r['stack']['reserved_bytes']:,} stack"
        f" (peak use {r['stack']['peak_bytes']:,} B)",
        f"  arena       {r['arena']['bytes']:>9,} B (lower bound {r['arena']['lower_bound']:,} B)",
        f"  inference   {inf['instructions']:>9,} instructions, {inf['cycles']:,} cycles (est.) = "
        f"{inf['ms']} ms at {t['clock_hz'] / 1e6:g} MHz  [{inf['simulator']}]",
        "  slowest     " + "; ".join(f"#{l['index']} {l['op']} {100 * l['cycles'] / total:.0f}%" for l in slow),
        f"  output matches TFLite reference: {'yes' if r['validation']['match'] else 'NO'} "
        f"({r['validation']['inputs']} inputs)",
    ]
    if report_md:
        lines.append(f"  report      {report_md}")
    return "\n".join(lines)
