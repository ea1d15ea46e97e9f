"""Reports: report.json (every figure), report.md (for people), layers.svg
(cycles per layer, embedded in report.md), and the one-screen summary.

Figures per inference come from the first validation input's simulated run
(instruction and cycle counts are deterministic; every run is kept in
run.json). Per layer: instructions, cycles, share of the inference, MACs and
MACs per cycle. Memory as measured by the simulator: peak stack, RAM touched
(bytes written at all during the run) and, of it, the planned arena's bytes.
"""
from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import escape

from .errors import shown

SVG_NAME = "layers.svg"


def cell(text) -> str:
    """A name from a model or a plugin, safe in a Markdown table cell."""
    return shown(text).replace("|", "\\|")


def is_reference(layer: dict) -> bool:
    from .ops import reference_kernel_names
    return layer["kernel"] in reference_kernel_names()


def plugin_name(layer: dict) -> str:
    """Who gave a layer's kernel: "reference", the plugin's short name, or ""
    when plan.json does not say (a plan from before plugins were recorded)."""
    if is_reference(layer):
        return "reference"
    label = layer.get("plugin") or ""
    name = label.split(" (")[0].removesuffix(".plugin")
    for prefix in ("tinybuild_builtin_targets_", "tinybuild_builtin_", "tinybuild_user_"):
        name = name.removeprefix(prefix)
    return name


def build_record(*, target, toolchain, model, opt, size, run, validation, plan, conversion,
                 placement=None) -> dict:
    first = run["runs"][0]
    by_index = {l["index"]: l for l in first["layers"]}
    layers = []
    cycles = first["cycles"]
    for layer in plan["layers"]:
        prof = by_index.get(layer["index"], {"instructions": 0, "cycles": 0})
        layers.append({**{k: layer[k] for k in ("index", "op", "shape", "kernel", "macs")},
                       "dtype": layer.get("dtype", "int8"),
                       "kernel_label": layer.get("kernel_label", layer["kernel"]),
                       "plugin": layer.get("plugin", ""),
                       "instructions": prof["instructions"], "cycles": prof["cycles"],
                       "memory_cycles": prof.get("memory_cycles", 0),
                       "cycles_share": round(prof["cycles"] / cycles, 4) if cycles else 0,
                       "macs_per_cycle": round(layer["macs"] / prof["cycles"], 3) if prof["cycles"] else 0,
                       "flash_bytes": size["layers_flash"].get(str(layer["index"]), 0),
                       "output_bytes": layer["output"]["bytes"]})
    return {
        "model": {"path": str(model), "name": Path(model).stem, "input": plan["input"],
                  "output": plan["output"], "inputs": plan.get("inputs", [plan["input"]]),
                  "outputs": plan.get("outputs", [plan["output"]]), "macs": plan["macs"]},
        "target": {"name": target.name, "board": target.board, "cpu": target.cpu,
                   "clock_hz": target.clock_hz, "plugin": target.plugin,
                   "float_arithmetic": target.float_arithmetic()},
        "types": sorted({l.get("dtype", "int8") for l in plan["layers"]}),
        "toolchain": toolchain, "opt": opt,
        "conversion": conversion,
        "flash": size["flash"], "ram": size["ram"],
        "arena": {"bytes": plan["memory"]["arena_size"], "lower_bound": plan["memory"]["lower_bound"],
                  "touched_bytes": first.get("arena_touched_bytes", 0)},
        "stack": {"peak_bytes": first["peak_stack_bytes"], "reserved_bytes": size["stack_reserved_bytes"]},
        "ram_touched_bytes": first["ram_touched_bytes"],
        "inference": {"simulator": run["simulator"], "instructions": first["instructions"],
                      "cycles": cycles, "ms": round(cycles / target.clock_hz * 1e3, 3),
                      "instructions_per_mac": round(first["instructions"] / plan["macs"], 3) if plan["macs"] else 0,
                      "cycles_per_mac": round(cycles / plan["macs"], 3) if plan["macs"] else 0,
                      "macs_per_cycle": round(plan["macs"] / cycles, 3) if cycles else 0,
                      "cycle_model": first.get("cycle_model", ""),
                      **{k: first[k] for k in ("memory_model", "memory_cycles", "memory_label")
                         if k in first},
                      "total_instructions": first.get("total_instructions", 0),
                      "simulated_instructions_per_second": first["instructions_per_second"]},
        "validation": validation,
        "layers": layers,
        "sections": size["sections"],
        "groups": {**size["groups"], "stack": {"flash": 0, "ram": size["stack_reserved_bytes"]}},
        **({"placement": placement} if placement else {}),    # place=auto|ram (docs/placement.md)
    }


def _pct(used: int, capacity: int) -> str:
    return f"{100 * used / capacity:.1f}%" if capacity else "-"


def _cycles_note(inf: dict) -> str:
    """How the cycle figure was obtained, in a few words."""
    model = inf.get("cycle_model", "")
    if model.startswith("qemu icount"):
        return "QEMU icount, 1 per instruction: no timing model"
    model, _, caveat = model.partition(" | ")
    note = f"estimated, {model} timing model" if model else "estimated"
    note += {"split": f" ({_cycles_split(inf)})", "core only": f"; {CORE_ONLY}"}.get(_memory_kind(inf), "")
    return f"{note}; {caveat}" if caveat else note


CORE_ONLY = "core only: this board has no memory model, flash wait states are not counted"


def _memory_kind(inf: dict) -> str:
    """"split" (a memory model's cycles are in the figure), "core only" (a
    timing model without one: docs/timing.md) or "" (no timing model, or an
    older record)."""
    if inf.get("memory_model"):
        return "split"
    if "memory_model" in inf and not inf.get("cycle_model", "").startswith(("qemu", "renode")):
        return "core only"
    return ""


def _cycles_split(inf: dict, memory: int | None = None, core: int | None = None) -> str:
    """"3,840,000 core + 770,000 flash wait" for the inference (or one layer)."""
    memory = inf.get("memory_cycles", 0) if memory is None else memory
    core = inf["cycles"] - memory if core is None else core
    return f"{core:,} core + {memory:,} {inf.get('memory_label') or 'memory'}"


def _ram_touched(r: dict) -> str:
    arena = r["arena"]
    text = f"{r['ram_touched_bytes']:,} B" if r["ram_touched_bytes"] else "not measured by this simulator"
    if arena.get("touched_bytes"):
        text += (f"; of the planned arena's {arena['bytes']:,} B, {arena['touched_bytes']:,} B "
                 f"({_pct(arena['touched_bytes'], arena['bytes'])}) were written")
    return text


def _tensors(tensors: list[dict]) -> str:
    """``'name' int8 1x49x10x1`` for each model input or output."""
    def one(t: dict) -> str:
        name = shown(t.get("name", "")).replace("|", "\\|")      # a table cell
        return f"'{name}' {t.get('dtype', 'int8')} {'x'.join(map(str, t.get('shape', [])))}"
    return "; ".join(one(t) for t in tensors)


def markdown(r: dict) -> str:
    inf, t = r["inference"], r["target"]
    lines = [f"# {shown(r['model']['name'])} on {t['name']}", "",
             f"Board: {t['board']} ({t['cpu']}, {t['clock_hz'] / 1e6:g} MHz). Toolchain: "
             f"{r['toolchain']['triple']}-gcc {r['toolchain']['version']} ({r['toolchain']['source']}), -{r['opt']}.",
             "", "| figure | value |", "| --- | --- |",
             f"| flash | {r['flash']['used']:,} B of {r['flash']['capacity']:,} ({_pct(r['flash']['used'], r['flash']['capacity'])}) |",
             f"| RAM | {r['ram']['used']:,} B of {r['ram']['capacity']:,} ({_pct(r['ram']['used'], r['ram']['capacity'])}): "
             f"{r['ram']['used'] - r['stack']['reserved_bytes']:,} static data + {r['stack']['reserved_bytes']:,} stack reserved |",
             f"| arena | {r['arena']['bytes']:,} B (lower bound {r['arena']['lower_bound']:,} B) |",
             f"| peak stack | {r['stack']['peak_bytes']:,} B of {r['stack']['reserved_bytes']:,} reserved "
             f"({_pct(r['stack']['peak_bytes'], r['stack']['reserved_bytes'])}) |",
             f"| RAM touched | {_ram_touched(r)} |",
             f"| inputs | {_tensors(r['model'].get('inputs', [r['model']['input']]))} |",
             f"| outputs | {_tensors(r['model'].get('outputs', [r['model']['output']]))} |",
             f"| MACs | {r['model']['macs']:,} |",
             f"| arithmetic | {types_text(r)} |",
             f"| instructions / inference | {inf['instructions']:,} ({inf['instructions_per_mac']} per MAC) |",
             f"| cycles / inference | {inf['cycles']:,} ({inf['cycles_per_mac']} per MAC, "
             f"{inf.get('macs_per_cycle', 0)} MACs per cycle) = {inf['ms']} ms; {_cycles_note(inf)} |",
             f"| simulator | {inf['simulator']}, {inf['simulated_instructions_per_second'] / 1e6:.1f} M instr/s |",
             _validation_row(r["validation"])]
    conv = r.get("conversion") or {}
    if conv.get("top1_agreement") is not None:
        lines.append(f"| float vs {conv.get('quant', 'int8')} on {conv.get('num_samples', '?')} "
                     "calibration samples | top-1 "
                     f"agreement {conv['top1_agreement']:.3f}, max abs diff {conv['max_abs_diff']:.4g}, "
                     f"mean {conv['mean_abs_diff']:.4g} |")
    if conv.get("input_layout"):     # ONNX imports: what the firmware's input is (docs/onnx.md)
        lines.append(f"| input layout | {cell(conv['input_layout'])} |")
    lines += ["", "## Layers", "", f"![cycles per layer]({SVG_NAME})", "",
              "| # | op | shape | kernel | plugin | MACs | instructions | cycles | share | MACs/cycle | flash B |",
              "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for l in r["layers"]:
        share = l.get("cycles_share", 0)
        lines.append(f"| {l['index']} | {l['op']} | {l['shape']} | {cell(l.get('kernel_label') or l['kernel'])} | "
                     f"{cell(plugin_name(l) or '-')} | {l['macs']:,} | "
                     f"{l['instructions']:,} | {_layer_cycles(inf, l)} | {100 * share:.1f}% | {l['macs_per_cycle']} | "
                     f"{l['flash_bytes']:,} |")
    lines += layer_comparison_md(r["validation"].get("layer_comparison"))
    lines += placement_md(r.get("placement"))
    lines += ["", "## Arena", "",
              f"{r['arena']['bytes']:,} B, lower bound {r['arena']['lower_bound']:,} B: every tensor a box, "
              "layer steps across, arena offset down (written by code generation).", "",
              "![arena plan](arena.svg)"]
    lines += ["", "## Memory by group", "", "| group | flash B | RAM B |", "| --- | --- | --- |"]
    for name, g in r["groups"].items():
        lines.append(f"| {name} | {g['flash']:,} | {g['ram']:,} |")
    lines += ["", "## Sections", "", "| section | address | flash B | RAM B |", "| --- | --- | --- | --- |"]
    for s in r["sections"]:
        lines.append(f"| {s['name']} | 0x{s['address']:08x} | {s['flash']:,} | {s['ram']:,} |")
    return "\n".join(lines) + "\n"


def layer_comparison_md(comparison: dict | None) -> list[str]:
    """The debug=layers table: every layer's output against TFLite's tensor."""
    if not comparison:
        return []
    first = comparison["first_differing_layer"]
    verdict = ("every layer matches" if first is None else f"layer {first} is the first that differs")
    lines = ["", "## Layers against TFLite (debug=layers)", "",
             f"Input {comparison['input']}: {verdict}. Each output tensor was read right after its "
             f"layer and compared with TFLite's (BUILTIN_REF); \"reference kernels\" is the same layer "
             f"built with the portable kernels on the host. Details: `{shown(Path(comparison['file']).name)}`.",
             "", "| # | op | tensor | kernel | bytes | differing bytes | first at | max diff | inputs | "
             "reference kernels |", "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]
    yes_no = lambda v: "-" if v is None else ("match" if v else "DIFFER")
    for l in comparison["layers"]:
        lines.append(f"| {l['index']} | {l['op']} | {cell(l['name'])} | {cell(l['kernel_label'] or l['kernel'])} | "
                     f"{l['bytes']:,} | {l['mismatched_bytes'] or 0:,} | "
                     f"{'-' if l['first_mismatch'] is None else l['first_mismatch']} | {l['max_abs_diff'] or 0} | "
                     f"{yes_no(l['inputs_match'])} | {yes_no(l['reference_kernels_match'])} |")
    return lines


def write(json_path: Path, md_path: Path, **parts) -> dict:
    """Write report.json, report.md and, beside report.md, layers.svg."""
    record = build_record(**parts)
    record["layers_svg"] = SVG_NAME
    Path(json_path).write_text(json.dumps(record, indent=1) + "\n")
    Path(md_path).write_text(markdown(record))
    (Path(md_path).parent / SVG_NAME).write_text(layers_svg(record))
    return record


def _fmt_count(n: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:g}"


def _nice_step(top: float, ticks: int = 5) -> float:
    raw = top / ticks
    mag = 10 ** (len(str(int(raw))) - 1) if raw >= 1 else 1
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def layers_svg(r: dict) -> str:
    """A self-contained SVG bar chart of the cycles of every layer.

    One row per layer: "#index OP" at the left, a bar proportional to the
    layer's cycles, then the cycles, their share of the inference and (for
    layers with MACs) the MACs per cycle; the three slowest layers in red.
    Written by hand (no plotting library)."""
    layers = r["layers"]
    inf = r["inference"]
    label_w, bar_w, value_w = 200, 520, 270
    row_h, top, bottom = 22, 58, 34
    width = label_w + bar_w + value_w
    height = top + row_h * max(1, len(layers)) + bottom
    peak = max([l["cycles"] for l in layers] + [1])
    step = _nice_step(peak)
    axis_max = step * max(1, -(-peak // step))
    scale = bar_w / axis_max
    title = f"{shown(r['model']['name'])} on {r['target']['name']}: cycles per layer"
    subtitle = (f"{inf['cycles']:,} cycles per inference ({_cycles_note(inf)}), "
                f"{inf['instructions']:,} instructions; simulator {inf['simulator']}")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, Helvetica, sans-serif" '
           f'font-size="12">',
           f"<title>{escape(title)}</title>",
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
           f'<text x="10" y="20" font-size="15" font-weight="bold">{escape(title)}</text>',
           f'<text x="10" y="38" fill="#444444">{escape(subtitle)}</text>']
    plot_bottom = top + row_h * len(layers)
    tick = 0.0
    while tick <= axis_max + 1e-9:
        x = label_w + tick * scale
        out.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{plot_bottom}" '
                   f'stroke="#dddddd" stroke-width="1"/>')
        out.append(f'<text x="{x:.1f}" y="{plot_bottom + 16}" text-anchor="middle" fill="#666666">'
                   f'{_fmt_count(tick)}</text>')
        tick += step
    slowest = sorted(layers, key=lambda l: -l["cycles"])[:3]
    for i, l in enumerate(layers):
        y = top + i * row_h
        w = max(0.0, l["cycles"] * scale)
        color = "#d9534f" if l in slowest and l["cycles"] else "#4a7ebb"
        label = f"#{l['index']} {l['op']}"
        share = l.get("cycles_share", l["cycles"] / inf["cycles"] if inf["cycles"] else 0)
        value = f"{l['cycles']:,} ({100 * share:.1f}%)" + (f", {l['macs_per_cycle']} MAC/cyc" if l["macs"] else "")
        tip = (f"layer {l['index']} {l['op']} {l['shape']}: {l['cycles']:,} cycles, "
               f"{l['instructions']:,} instructions, {l['macs']:,} MACs, kernel {l['kernel']}")
        out.append(f'<g><title>{escape(tip)}</title>')
        out.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        out.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{color}"/>')
        out.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" fill="#222222">{escape(value)}</text>')
        out.append("</g>")
    out.append(f'<line x1="{label_w}" y1="{top - 6}" x2="{label_w}" y2="{plot_bottom}" stroke="#333333"/>')
    out.append(f'<text x="{label_w + bar_w / 2:.0f}" y="{height - 4}" text-anchor="middle" fill="#444444">'
               f'cycles (red: the three slowest layers)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _layer_cycles(inf: dict, layer: dict) -> str:
    if _memory_kind(inf) != "split":
        return f"{layer['cycles']:,}"
    memory = layer.get("memory_cycles", 0)
    return f"{layer['cycles']:,} ({_cycles_split(inf, memory, layer['cycles'] - memory)})"


def _summary_cycles_note(inf: dict) -> str:
    if inf.get("cycle_model", "").startswith("qemu"):
        return "icount"
    return {"split": f"est.: {_cycles_split(inf)}", "core only": "est., core only"}.get(
        _memory_kind(inf), "est.")


def summary(r: dict, report_md: str | None = None) -> str:
    from . import kernel_registry
    inf, t, tc = r["inference"], r["target"], r["toolchain"]
    slow = sorted(r["layers"], key=lambda l: -l["cycles"])[:3]
    total = inf["cycles"] or 1
    lines = [
        f"tinybuild: {shown(r['model']['name'])} on {t['name']} - {t['board']}",
        f"  toolchain   {tc['triple']}-gcc {tc['version']} ({tc['source']}: {shown(tc['bin_dir'], 200)}), "
        f"{kernel_registry.opt_summary(r)}",
        f"  flash       {r['flash']['used']:>9,} B of {r['flash']['capacity']:,} ({_pct(r['flash']['used'], r['flash']['capacity'])})",
        f"  RAM         {r['ram']['used']:>9,} B of {r['ram']['capacity']:,} ({_pct(r['ram']['used'], r['ram']['capacity'])})"
        f": {r['ram']['used'] - r['stack']['reserved_bytes']:,} static + {r['stack']['reserved_bytes']:,} stack"
        f" (peak use {r['stack']['peak_bytes']:,} B)",
        f"  arena       {r['arena']['bytes']:>9,} B (lower bound {r['arena']['lower_bound']:,} B)",
        f"  inference   {inf['instructions']:>9,} instructions, {inf['cycles']:,} cycles "
        f"({_summary_cycles_note(inf)}) = "
        f"{inf['ms']} ms at {t['clock_hz'] / 1e6:g} MHz  [{inf['simulator']}]",
        "  slowest     " + "; ".join(f"#{l['index']} {l['op']} {100 * l['cycles'] / total:.0f}%" for l in slow),
        f"  kernels     {kernels_line(r['layers'])}",
        *([f"  arithmetic  {types_text(r)}"] if r.get("types", ["int8"]) != ["int8"] else []),
        *([placement_line(r["placement"])] if r.get("placement") else []),
        validation_line(r["validation"]),
    ]
    if report_md:
        lines.append(f"  report      {shown(report_md, 200)}")
    return "\n".join(lines)


def placement_md(record: dict | None) -> list[str]:
    from .placement import markdown as placement_markdown
    return placement_markdown(record)


def placement_line(record: dict) -> str:
    from .placement import summary_line
    return summary_line(record)


def types_text(r: dict) -> str:
    """"int8", "int16 (16x8), int8" or "float32 (soft float (libgcc): in the figures)"."""
    names = {"int16": "int16 (16x8: int16 activations, int8 weights)"}
    parts = [names.get(t, t) for t in r.get("types", ["int8"])]
    how = r["target"].get("float_arithmetic")
    if "float32" in r.get("types", []) and how:
        parts = [p + (f" on the {how}" if p == "float32" and how.startswith("hardware") else
                      f" in {how}: its cost is in the figures" if p == "float32" else "")
                 for p in parts]
    return ", ".join(parts)


def _validation_row(v: dict) -> str:
    if v.get("validate") == "no":
        return (f"| output vs TFLite reference | **{v['skipped']}**: not compared, as asked "
                f"({v.get('simulated_inputs', 0)} inputs simulated) |")
    return (f"| output matches TFLite reference | {'yes' if v['match'] else 'NO'}{_how_close(v)} "
            f"({v['inputs']} inputs, {v['reference']}) |")


def _how_close(v: dict) -> str:
    """", byte for byte" or how far a float output was from TFLite's (within the tolerance)."""
    if not v["match"]:
        return ""
    if v.get("exact", True):
        return ", byte for byte"
    rel = v.get("max_rel_diff")
    return (f", float32 within tolerance {v['float_tolerance']:g} of the largest magnitude "
            f"(max |diff| {v['max_abs_diff']:.3g}" + (f", relative {rel:.3g}" if rel is not None else "")
            + ")")


def validation_line(v: dict) -> str:
    """The summary's verdict; with validate=no it says the check was the user's choice to skip."""
    if v.get("validate") == "no":
        return f"  output      {v['skipped']}: not compared with TFLite, at your request"
    return (f"  output matches TFLite reference: {'yes' if v['match'] else 'NO'}{_how_close(v)} "
            f"({v['inputs']} input{'' if v['inputs'] == 1 else 's'})")


def kernels_line(layers: list[dict]) -> str:
    """Who ran the layers: "12 layers: 9 cortex_m4 (cm4_conv_s8 x5, ...), 3 reference"."""
    groups: dict[str, dict[str, int]] = {}
    for l in layers:
        who = plugin_name(l) or "plugin kernels"
        kernels = groups.setdefault(who, {})
        kernels[l["kernel"]] = kernels.get(l["kernel"], 0) + 1
    parts = []
    for who, kernels in sorted(groups.items(), key=lambda g: (g[0] == "reference", -sum(g[1].values()))):
        count = sum(kernels.values())
        if who == "reference":
            parts.append(f"{count} reference")
            continue
        used = ", ".join(f"{shown(k, 40)} x{n}" if n > 1 else shown(k, 40)
                         for k, n in sorted(kernels.items(), key=lambda kv: (-kv[1], kv[0])))
        parts.append(f"{count} {shown(who, 40)} ({used})")
    return f"{len(layers)} layers: " + ", ".join(parts)
