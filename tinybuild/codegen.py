"""Write the model as C: constants in flash, one arena, one call per layer.

Output files (one build directory per target and model):
  model.c    weights, biases, requantization tables and kernel parameters as
             ``static const`` data; the arena; ``tb_io_desc``; tb_model_invoke()
  model.h    sizes, types and quantization of every input and output, for
             application code
  plan.json  layers, chosen kernels, MACs, tensor placement (for reports)
  arena.svg  the arena as a picture: every buffer a box, step on x, offset on y
Symbols are named ``tb_L<layer>_<role>`` so size analysis can charge every
flash byte to its layer. Every call is ``kernel(&params, inputs..., consts...,
outputs...[, scratch])`` with pointers typed by the tensors' element types.

``tb_io_desc`` (tinybuild/runtime/tb_runtime.h) tells simulators where the
inputs and outputs are; :func:`read_io_desc` reads it back from a firmware.
"""
from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import TinybuildError, shown
from .graph import Graph, Tensor
from .lower import CDouble, Layer
from .planner import MemoryPlan

C_TYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "int32": "int32_t",
           "int64": "int64_t",
           "float32": "float"}


def c_literal(value) -> str:
    if isinstance(value, CDouble):
        return float(value).hex()                     # exact double
    if isinstance(value, (float, np.floating)):
        return float(np.float32(value)).hex() + "f"   # exact float32, no decimal rounding
    if isinstance(value, (tuple, list)):
        return "{" + ", ".join(c_literal(v) for v in value) + "}"
    return str(int(value))


def c_comment(text) -> str:
    """``text`` (a name from a model or a plugin) safe inside a C comment."""
    return shown(text, 120).replace("*/", "*\\/")


def c_type(tensor: Tensor) -> str:
    if tensor.dtype not in C_TYPES:
        raise TinybuildError(f"tensor '{shown(tensor.name)}' is {tensor.dtype}; generated code handles "
                             f"{', '.join(C_TYPES)} (a tinybuild bug: its op should have refused it)")
    return C_TYPES[tensor.dtype]


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
    if layer.aliased:                # no call: nothing to pass
        return []
    out = []
    for c in layer.consts:
        count = len(c.values) if c.ctype == "tb_quant_mul" else c.values.size
        out.append(f"static const {c.ctype} {_const_name(layer, c.role)}[{count}] "
                   f"__attribute__((aligned(4))) = {{\n  {_array_body(c.values, c.ctype)}\n}};")
    if layer.params_type:
        body = ",\n  ".join(f".{k} = {v if isinstance(v, str) else c_literal(v)}"
                            for k, v in layer.params.items())
        out.append(f"static const {layer.params_type} {_const_name(layer, 'params')} = {{\n  {body}\n}};")
    return out


def _tensor_ref(graph: Graph, plan: MemoryPlan, tensor: int, const: bool) -> str:
    qual = "const " if const else ""
    return f"({qual}{c_type(graph.tensors[tensor])} *)(tb_arena + {plan.offsets[tensor]})"


def _call_roles(layer: Layer) -> list[str]:
    return list(layer.args) if layer.args is not None else [c.role for c in layer.consts]


def _emit_call(layer: Layer, graph: Graph, plan: MemoryPlan) -> str:
    if layer.aliased:
        return f"  /* {layer.op}: output aliases input, no data moves */"
    params = [f"&{_const_name(layer, 'params')}"] if layer.params_type else []
    ins = [_tensor_ref(graph, plan, t, True) for t in layer.inputs]
    extra = [_const_name(layer, role) for role in _call_roles(layer)]
    outs = [_tensor_ref(graph, plan, t, False) for t in layer.outputs]
    scratch = [f"(void *)(tb_arena + {plan.scratch[layer.index]})"] if layer.scratch_bytes else []
    return f"  {layer.kernel}({', '.join(params + ins + extra + outs + scratch)});"


def _prototype(layer: Layer, graph: Graph) -> str:
    """The C declaration of a kernel no header declares, from the arguments the call passes."""
    ctypes = {c.role: c.ctype for c in layer.consts}
    types = ([f"const {layer.params_type} *"] if layer.params_type else []) + \
        [f"const {c_type(graph.tensors[t])} *" for t in layer.inputs] + \
        [f"const {ctypes[role]} *" for role in _call_roles(layer)] + \
        [f"{c_type(graph.tensors[t])} *" for t in layer.outputs] + \
        (["void *"] if layer.scratch_bytes else [])
    return f"void {layer.kernel}({', '.join(types)});"


def _prototypes(layers: list[Layer], graph: Graph) -> list[str]:
    from . import ops
    declared = ops.declared_kernels()
    seen: dict[str, str] = {}
    for layer in layers:
        if layer.kernel in declared or not layer.kernel or layer.aliased:
            continue
        proto = _prototype(layer, graph)
        if seen.setdefault(layer.kernel, proto) != proto:
            raise TinybuildError(f"kernel {layer.kernel} is called with two different argument lists:"
                                 f" {seen[layer.kernel]} and {proto}")
    return list(seen.values())


_INCLUDABLE = re.compile(r"[\w/.+\-]+")


def _plugin_includes(layers: list[Layer]) -> list[str]:
    """``#include`` lines for the plugin ops' headers the layers use."""
    from . import ops
    headers = ops.plugin_headers()
    paths = sorted({str(headers[l.kernel].resolve()) for l in layers if l.kernel in headers})
    for path in paths:
        if not _INCLUDABLE.fullmatch(path):
            raise TinybuildError(f"op header {shown(path, 200)}: its path has characters an #include "
                                 "cannot hold; move it to a plain path (letters, digits, / . _ + -)")
    return [f'#include "{p}"' for p in paths]


def generate(graph: Graph, layers: list[Layer], plan: MemoryPlan, source_name: str,
             input_layout: str = "") -> tuple[str, str]:
    for layer in layers:
        layer.aliased = layer.view and plan.offsets[layer.inputs[0]] == plan.offsets[layer.output]
    header = _header(graph, plan, len(layers), input_layout)
    parts = [f"/* Generated by tinybuild from {c_comment(source_name)}; do not edit. */",
             "#include <stdint.h>", '#include "tb_kernels.h"', '#include "tb_runtime.h"',
             '#include "model.h"', *_plugin_includes(layers), "",
             "static uint8_t tb_arena[TB_ARENA_SIZE] __attribute__((aligned(16))) TB_NOINIT;", ""]
    protos = _prototypes(layers, graph)
    if protos:
        parts += ["/* kernels contributed by plugins */", *protos, ""]
    for layer in layers:
        parts.append(f"/* layer {layer.index}: {layer.op} {c_comment(layer.shape)} */")
        parts.extend(_emit_consts(layer))
    parts += ["", *_io_desc(graph, plan), "", "void tb_model_invoke(void) {"]
    for layer in layers:
        parts.append(f"  tb_mark({layer.index}); /* {layer.op} {c_comment(layer.shape)} via "
                     f"{c_comment(layer.kernel_label)} */")
        parts.append(_emit_call(layer, graph, plan))
    parts += ["  tb_mark(TB_MARK_END);", "}", ""]
    return "\n".join(parts), header


def _io_desc(graph: Graph, plan: MemoryPlan) -> list[str]:
    """tb_io_desc: the inputs, then the outputs, each an arena address and a size."""
    entries = [f"    {{tb_arena + {plan.offsets[t]}, TB_INPUT{i}_SIZE}},"
               for i, t in enumerate(graph.inputs)]
    entries += [f"    {{tb_arena + {plan.offsets[t]}, TB_OUTPUT{i}_SIZE}},"
                for i, t in enumerate(graph.outputs)]
    return ["const tb_io_desc_t tb_io_desc = {",
            "  TB_IO_MAGIC, TB_NUM_LAYERS, tb_arena, TB_ARENA_SIZE, TB_NUM_INPUTS, TB_NUM_OUTPUTS,",
            "  {", *entries, "  },", "};"]


def _layout_lines(layout: str) -> list[str]:
    """The input layout an importer recorded (ONNX: the NCHW input is fed as NHWC):
    a macro when it is one layout, else a comment naming each input's."""
    if not layout:
        return []
    comment = f"/* input layout the firmware takes: {c_comment(layout)} */"
    single = re.match(r"([A-Z]{2,6})(\s|$)", layout)
    return [comment, f'#define TB_INPUT_LAYOUT "{single.group(1)}"'] if single else [comment]


def _io_macros(kind: str, i: int, t: Tensor) -> list[str]:
    """TB_INPUT<i>_SIZE/_SCALE/_ZERO_POINT (or OUTPUT), the type in a comment."""
    shape = "x".join(map(str, t.shape))
    return [f"#define TB_{kind}{i}_SIZE {t.size_bytes}u  /* {t.dtype} {shape} '{c_comment(t.name)}' */",
            f"#define TB_{kind}{i}_SCALE {c_literal(t.scale)}",
            f"#define TB_{kind}{i}_ZERO_POINT ({t.zero_point})"]


def _header(graph: Graph, plan: MemoryPlan, num_layers: int, input_layout: str = "") -> str:
    inputs = [graph.tensors[t] for t in graph.inputs]
    outputs = [graph.tensors[t] for t in graph.outputs]
    lines = [f"/* Generated by tinybuild for model {c_comment(graph.name)}; do not edit. */",
             "#ifndef TB_MODEL_H", "#define TB_MODEL_H",
             f"#define TB_ARENA_SIZE {plan.arena_size}u",
             f"#define TB_NUM_LAYERS {num_layers}u",
             f"#define TB_NUM_INPUTS {len(inputs)}u",
             f"#define TB_NUM_OUTPUTS {len(outputs)}u"]
    for i, t in enumerate(inputs):
        lines += _io_macros("INPUT", i, t)
    for i, t in enumerate(outputs):
        lines += _io_macros("OUTPUT", i, t)
    lines += _layout_lines(input_layout)
    lines += ["/* input 0 and output 0 under their single-tensor names */",
              "#define TB_INPUT_SIZE TB_INPUT0_SIZE", "#define TB_INPUT_SCALE TB_INPUT0_SCALE",
              "#define TB_INPUT_ZERO_POINT TB_INPUT0_ZERO_POINT",
              "#define TB_OUTPUT_SIZE TB_OUTPUT0_SIZE", "#define TB_OUTPUT_SCALE TB_OUTPUT0_SCALE",
              "#define TB_OUTPUT_ZERO_POINT TB_OUTPUT0_ZERO_POINT", "#endif", ""]
    return "\n".join(lines)


# -- tb_io_desc as simulators read it ----------------------------------------------------

IO_MAGIC = 0x32425454            # "TTB2" little endian: TB_IO_MAGIC in tb_runtime.h
IO_HEADER_BYTES = 24             # magic, layers, arena, arena size, inputs, outputs
MAX_IO_TENSORS = 1024


@dataclass
class IoDesc:
    """tb_io_desc of a firmware: ``inputs``/``outputs`` are ``(address, size)``."""

    num_layers: int
    arena: int
    arena_size: int
    inputs: list[tuple[int, int]]
    outputs: list[tuple[int, int]]

    @property
    def input_bytes(self) -> int:
        return sum(size for _, size in self.inputs)

    @property
    def output_bytes(self) -> int:
        return sum(size for _, size in self.outputs)

    def check_input(self, data: bytes, where: str) -> None:
        """``data`` must be every input's bytes, one after the other."""
        if len(data) != self.input_bytes:
            what = ("input tensor is" if len(self.inputs) == 1 else
                    f"{len(self.inputs)} input tensors are")
            raise TinybuildError(f"input is {len(data)} bytes but the model's {what} "
                                 f"{self.input_bytes} bytes (tb_io_desc in {where})")

    def input_parts(self, data: bytes) -> list[tuple[int, bytes]]:
        """``(address, bytes)`` of each input in ``data`` (concatenated inputs)."""
        parts, at = [], 0
        for addr, size in self.inputs:
            parts.append((addr, data[at:at + size]))
            at += size
        return parts


def read_io_desc(read, address: int, where: str) -> IoDesc:
    """Parse tb_io_desc at ``address``; ``read(address, count) -> bytes`` reads
    the firmware's memory (or ELF), ``where`` names it in errors."""
    magic, layers, arena, arena_size, n_in, n_out = struct.unpack("<6I", bytes(read(address, IO_HEADER_BYTES)))
    if magic != IO_MAGIC:
        raise TinybuildError(f"{where}: tb_io_desc has magic 0x{magic:08x}, not 0x{IO_MAGIC:08x} ('TTB2'): "
                             "a firmware from another tinybuild version (or not tinybuild's). "
                             "Fix: build it again")
    if n_in + n_out > MAX_IO_TENSORS:
        raise TinybuildError(f"{where}: tb_io_desc lists {n_in} inputs and {n_out} outputs: it is damaged. "
                             "Fix: build it again")
    words = struct.unpack(f"<{2 * (n_in + n_out)}I",
                          bytes(read(address + IO_HEADER_BYTES, 8 * (n_in + n_out))))
    pairs = list(zip(words[0::2], words[1::2]))
    return IoDesc(layers, arena, arena_size, pairs[:n_in], pairs[n_in:])


def _io_record(t: Tensor) -> dict:
    return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "scale": t.scale,
            "zero_point": t.zero_point, "bytes": t.size_bytes}


def _placed(graph: Graph, plan: MemoryPlan, t: int) -> dict:
    return {"tensor": t, "offset": plan.offsets[t], "bytes": graph.tensors[t].size_bytes}


def plan_record(graph: Graph, layers: list[Layer], plan: MemoryPlan) -> dict:
    """plan.json: the model's inputs and outputs (``input``/``output``: the
    first of each), every layer's kernel, tensors and placement, the memory plan."""
    inputs = [_io_record(graph.tensors[t]) for t in graph.inputs]
    outputs = [_io_record(graph.tensors[t]) for t in graph.outputs]
    return {
        "model": graph.name,
        "input": inputs[0], "output": outputs[0], "inputs": inputs, "outputs": outputs,
        "macs": sum(l.macs for l in layers),
        "layers": [{"index": l.index, "op": l.op, "op_index": l.op_index, "shape": l.shape,
                    "kernel": l.kernel, "kernel_label": l.kernel_label, "plugin": l.kernel_plugin,
                    "macs": l.macs, "aliased": l.aliased, "dtype": l.dtype,
                    "inputs": [{"tensor": t, "offset": plan.offsets[t]} for t in l.inputs],
                    "output": _placed(graph, plan, l.output),
                    "outputs": [_placed(graph, plan, t) for t in l.outputs],
                    "const_bytes": int(sum(c.values.nbytes for c in l.consts)),
                    "scratch_bytes": l.scratch_bytes,
                    **({"scratch_offset": plan.scratch[l.index]} if l.scratch_bytes else {}),
                    "in_place": any(o["layer"] == l.index for o in plan.overlaps),
                    "notes": l.notes}
                   for l in layers],
        "memory": plan.to_json(),
    }


def write_model(out_dir: Path, graph: Graph, layers: list[Layer], plan: MemoryPlan,
                source_name: str, input_layout: str = "") -> None:
    model_c, model_h = generate(graph, layers, plan, source_name, input_layout)
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
