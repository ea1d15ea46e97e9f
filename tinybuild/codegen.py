"""Write the model as C: constants in flash, one arena, one call per layer.

Output files (one build directory per target and model):
  model.c    weights, biases, requantization tables and kernel parameters as
             ``static const`` data; the arena; ``tb_io_desc``; tb_model_invoke()
  model.h    sizes and the input/output quantization, for application code
  plan.json  layers, chosen kernels, MACs, tensor placement (for reports)
  arena.svg  the arena as a picture: every buffer a box, step on x, offset on y
Symbols are named ``tb_L<layer>_<role>`` so size analysis can charge every
flash byte to its layer.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .graph import Graph
from .lower import CDouble, Layer
from .planner import MemoryPlan

_CALLS = {
    "tb_conv_params": ("filter", "bias", "out_mul"),
    "tb_fc_params": ("filter", "bias", "out_mul"),
}


def c_literal(value) -> str:
    if isinstance(value, CDouble):
        return float(value).hex()                     # exact double
    if isinstance(value, (float, np.floating)):
        return float(np.float32(value)).hex() + "f"   # exact float32, no decimal rounding
    if isinstance(value, (tuple, list)):
        return "{" + ", ".join(c_literal(v) for v in value) + "}"
    return str(int(value))


def _array_body(values: np.ndarray, ctype: str) -> str:
    if ctype == "tb_quant_mul":
        items = [f"{{{m}, {s}}}" for m, s in values.reshape(-1, 2).tolist()]
        per_line = 4
    elif ctype == "float":
        items = [c_literal(v) for v in values.reshape(-1).tolist()]
        per_line = 4
    else:
        items = [str(v) for v in values.reshape(-1).tolist()]
        per_line = 24
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n  ".join(lines)


def _const_name(layer: Layer, role: str) -> str:
    return f"tb_L{layer.index}_{role}"


def _emit_consts(layer: Layer) -> list[str]:
    out = []
    for c in layer.consts:
        count = len(c.values) if c.ctype == "tb_quant_mul" else c.values.size
        out.append(f"static const {c.ctype} {_const_name(layer, c.role)}[{count}] "
                   f"__attribute__((aligned(4))) = {{\n  {_array_body(c.values, c.ctype)}\n}};")
    if layer.params_type:
        fields = dict(layer.params)
        if "exp_table" in {c.role for c in layer.consts}:
            fields["exp_table"] = _const_name(layer, "exp_table")
        body = ",\n  ".join(f".{k} = {v if isinstance(v, str) else c_literal(v)}"
                            for k, v in fields.items())
        out.append(f"static const {layer.params_type} {_const_name(layer, 'params')} = {{\n  {body}\n}};")
    return out


def _tensor_ref(plan: MemoryPlan, tensor: int, const: bool) -> str:
    qual = "const int8_t *" if const else "int8_t *"
    return f"({qual})(tb_arena + {plan.offsets[tensor]})"


def _call_roles(layer: Layer) -> list[str]:
    return list(layer.args) if layer.args is not None else list(_CALLS.get(layer.params_type, ()))


def _emit_call(layer: Layer, plan: MemoryPlan) -> str:
    ins = [_tensor_ref(plan, t, True) for t in layer.inputs]
    out = _tensor_ref(plan, layer.output, False)
    if layer.op == "RESHAPE":
        if layer.aliased:
            return "  /* RESHAPE: output aliases input, no data moves */"
        return f"  {layer.kernel}({layer.params['size']}, {ins[0]}, {out});"
    params = [f"&{_const_name(layer, 'params')}"] if layer.params_type else []
    extra = [_const_name(layer, role) for role in _call_roles(layer)]
    scratch = [f"(void *)(tb_arena + {plan.scratch[layer.index]})"] if layer.scratch_bytes else []
    args = ", ".join(params + ins + extra + [out] + scratch)
    return f"  {layer.kernel}({args});"


def _prototype(layer: Layer) -> str:
    """The C declaration of a plugin kernel, from the arguments the call passes."""
    if layer.op == "RESHAPE":
        types = ["int32_t", "const int8_t *", "int8_t *"]
    else:
        ctypes = {c.role: c.ctype for c in layer.consts}
        types = ([f"const {layer.params_type} *"] if layer.params_type else []) + \
            ["const int8_t *"] * len(layer.inputs) + \
            [f"const {ctypes[role]} *" for role in _call_roles(layer)] + ["int8_t *"] + \
            (["void *"] if layer.scratch_bytes else [])
    return f"void {layer.kernel}({', '.join(types)});"


def _prototypes(layers: list[Layer]) -> list[str]:
    from .kernel_registry import REFERENCE
    seen: dict[str, str] = {}
    for layer in layers:
        if layer.kernel in REFERENCE.values() or not layer.kernel:
            continue
        proto = _prototype(layer)
        if seen.setdefault(layer.kernel, proto) != proto:
            from .errors import TinybuildError
            raise TinybuildError(f"kernel {layer.kernel} is called with two different argument lists:"
                                 f" {seen[layer.kernel]} and {proto}")
    return list(seen.values())


def generate(graph: Graph, layers: list[Layer], plan: MemoryPlan, source_name: str) -> tuple[str, str]:
    inp, outp = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    for layer in layers:
        if layer.op == "RESHAPE":
            layer.aliased = plan.offsets[layer.inputs[0]] == plan.offsets[layer.output]
    header = _header(graph, plan, len(layers))
    parts = [f"/* Generated by tinybuild from {source_name}; do not edit. */",
             "#include <stdint.h>", '#include "tb_kernels.h"', '#include "tb_runtime.h"',
             '#include "model.h"', "",
             "static uint8_t tb_arena[TB_ARENA_SIZE] __attribute__((aligned(16))) TB_NOINIT;", ""]
    protos = _prototypes(layers)
    if protos:
        parts += ["/* kernels contributed by target plugins */", *protos, ""]
    for layer in layers:
        parts.append(f"/* layer {layer.index}: {layer.op} {layer.shape} */")
        parts.extend(_emit_consts(layer))
    parts += ["", "const tb_io_desc_t tb_io_desc = {",
              f"  TB_IO_MAGIC, TB_NUM_LAYERS,",
              f"  (int8_t *)(tb_arena + {plan.offsets[inp.index]}), TB_INPUT_SIZE,",
              f"  (int8_t *)(tb_arena + {plan.offsets[outp.index]}), TB_OUTPUT_SIZE,",
              "  tb_arena, TB_ARENA_SIZE,", "};", "", "void tb_model_invoke(void) {"]
    for layer in layers:
        parts.append(f"  tb_mark({layer.index}); /* {layer.op} {layer.shape} via {layer.kernel_label} */")
        parts.append(_emit_call(layer, plan))
    parts += ["  tb_mark(TB_MARK_END);", "}", ""]
    return "\n".join(parts), header


def _header(graph: Graph, plan: MemoryPlan, num_layers: int) -> str:
    inp, outp = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    guard = "TB_MODEL_H"
    return "\n".join([
        f"/* Generated by tinybuild for model {graph.name}; do not edit. */",
        f"#ifndef {guard}", f"#define {guard}",
        f"#define TB_ARENA_SIZE {plan.arena_size}u",
        f"#define TB_NUM_LAYERS {num_layers}u",
        f"#define TB_INPUT_SIZE {inp.size_bytes}u  /* int8 {'x'.join(map(str, inp.shape))} */",
        f"#define TB_INPUT_SCALE {c_literal(inp.scale)}",
        f"#define TB_INPUT_ZERO_POINT ({inp.zero_point})",
        f"#define TB_OUTPUT_SIZE {outp.size_bytes}u  /* int8 {'x'.join(map(str, outp.shape))} */",
        f"#define TB_OUTPUT_SCALE {c_literal(outp.scale)}",
        f"#define TB_OUTPUT_ZERO_POINT ({outp.zero_point})",
        "#endif", ""])


def plan_record(graph: Graph, layers: list[Layer], plan: MemoryPlan) -> dict:
    inp, outp = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    io = lambda t: {"name": t.name, "shape": list(t.shape), "scale": t.scale,
                    "zero_point": t.zero_point, "bytes": t.size_bytes}
    return {
        "model": graph.name,
        "input": io(inp), "output": io(outp),
        "macs": sum(l.macs for l in layers),
        "layers": [{"index": l.index, "op": l.op, "shape": l.shape, "kernel": l.kernel,
                    "kernel_label": l.kernel_label, "plugin": l.kernel_plugin,
                    "macs": l.macs, "aliased": l.aliased,
                    "inputs": [{"tensor": t, "offset": plan.offsets[t]} for t in l.inputs],
                    "output": {"tensor": l.output, "offset": plan.offsets[l.output],
                               "bytes": graph.tensors[l.output].size_bytes},
                    "const_bytes": int(sum(c.values.nbytes for c in l.consts)),
                    "scratch_bytes": l.scratch_bytes,
                    **({"scratch_offset": plan.scratch[l.index]} if l.scratch_bytes else {}),
                    "in_place": any(o["layer"] == l.index for o in plan.overlaps),
                    "notes": l.notes}
                   for l in layers],
        "memory": plan.to_json(),
    }


def write_model(out_dir: Path, graph: Graph, layers: list[Layer], plan: MemoryPlan,
                source_name: str) -> None:
    model_c, model_h = generate(graph, layers, plan, source_name)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.c").write_text(model_c)
    (out_dir / "model.h").write_text(model_h)
    (out_dir / "plan.json").write_text(json.dumps(plan_record(graph, layers, plan), indent=1))
    (out_dir / "arena.svg").write_text(arena_svg(graph, layers, plan))


def arena_svg(graph: Graph, layers: list[Layer], plan: MemoryPlan) -> str:
    """The arena over time: one box per buffer (x: steps it is live, y: its bytes).

    Step -1 is the model input before the first layer; scratch buffers are
    hatched orange; boxes that share bytes at one step are an in-place layer
    (their overlap is drawn darker). The dashed line is the lower bound."""
    from html import escape
    steps = len(layers)
    arena = max(plan.arena_size, 1)
    left, top, width, height, lane = 70, 40, max(480, 36 * (steps + 1)), 420, 14
    col_w = width / (steps + 1)
    y_of = lambda off: top + height * off / arena
    x_of = lambda step: left + col_w * (step + 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 20}" '
           f'height="{top + height + 60 + lane}" font-family="sans-serif" font-size="10">',
           '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fdd9a8"/>'
           '<line x1="0" y1="0" x2="0" y2="6" stroke="#e08a1e" stroke-width="2"/></pattern></defs>',
           f'<text x="{left}" y="16" font-size="13">{escape(graph.name)}: arena {plan.arena_size:,} B, '
           f'lower bound {plan.lower_bound:,} B (without in-place/scratch {plan.lower_bound_no_inplace:,} B)</text>',
           f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="#f7f7f7" stroke="#999"/>']
    palette = ["#8ecae6", "#a8dadc", "#b5e48c", "#cdb4db", "#ffc8dd", "#bde0fe", "#d8e2dc", "#ffe5a0"]
    names = {t.index: t.name for t in graph.tensors}
    for i, b in enumerate(plan.buffers):
        x0, x1 = x_of(b.first), x_of(b.last + 1)
        y0, h = y_of(b.offset), max(1.0, height * b.size / arena)
        fill = "url(#hatch)" if b.scratch_of is not None else palette[i % len(palette)]
        label = b.label if b.scratch_of is not None else f"t{b.tensors[0]} {b.size:,} B"
        full = b.label if b.scratch_of is not None else " = ".join(names.get(t, "") for t in b.tensors)
        tip = f"{full}: {b.size:,} B at {b.offset:,}, steps {b.first}..{b.last}"
        out.append(f'<g><title>{escape(tip)}</title><rect x="{x0:.1f}" y="{y0:.1f}" '
                   f'width="{x1 - x0:.1f}" height="{h:.1f}" fill="{fill}" fill-opacity="0.75" '
                   f'stroke="#333" stroke-width="0.6"/>')
        if h >= 11 and x1 - x0 >= 40:
            short = label if len(label) <= int((x1 - x0) / 6) else label[:max(3, int((x1 - x0) / 6) - 1)] + "…"
            out.append(f'<text x="{x0 + 3:.1f}" y="{y0 + 10:.1f}">{escape(short)}</text>')
        out.append("</g>")
    yb = y_of(min(plan.lower_bound, arena))
    out.append(f'<line x1="{left}" y1="{yb:.1f}" x2="{left + width}" y2="{yb:.1f}" stroke="#c00" '
               f'stroke-dasharray="5,3"/><text x="{left + width - 4}" y="{yb - 3:.1f}" '
               f'text-anchor="end" fill="#c00">lower bound</text>')
    for k in range(5):
        off = arena * k // 4
        out.append(f'<text x="{left - 4}" y="{y_of(off) + 3:.1f}" text-anchor="end">{off:,}</text>')
    for layer in layers:
        xc = (x_of(layer.index) + x_of(layer.index + 1)) / 2
        mark = layer.op.replace("DEPTHWISE_CONV_2D", "DW").replace("CONV_2D", "CONV") \
            .replace("FULLY_CONNECTED", "FC").replace("AVERAGE_POOL_2D", "AVG").replace("MAX_POOL_2D", "MAX")
        out.append(f'<text x="{xc:.1f}" y="{top + height + 12}" text-anchor="middle">{layer.index}</text>'
                   f'<text x="{xc:.1f}" y="{top + height + 24}" text-anchor="middle" font-size="7" '
                   f'transform="rotate(30 {xc:.1f} {top + height + 24})">{escape(mark)}</text>')
    out.append(f'<text x="{left}" y="{top + height + 52}">x: layer (step), y: arena offset in bytes; '
               f'boxes drawn over each other share bytes in place</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
