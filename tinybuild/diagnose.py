"""Which layer went wrong: the firmware's tensors against TFLite's, layer by layer.

When the simulated output differs from TFLite's (or on request, build variable
``debug=layers``), the validate step runs the firmware once more in the
Unicorn simulator on that input, whatever simulator the build used. It copies
every layer's inputs out of the arena right before the layer runs and its
output right after (at the next ``tb_mark``), so tensors that later layers
overwrite in place, and RESHAPE views, are seen as the layer left them. Each
is compared with the same tensor of ``tf.lite.Interpreter`` (BUILTIN_REF
kernels, ``experimental_preserve_all_tensors``), matched by TFLite tensor
index (the lowered graph keeps it).

The first layer whose inputs or output differ is named with its op, tensor,
kernel and the plugin that gave it. Then the same model, generated with the
portable reference kernels only, is compiled for the host and run on the same
input with the arena copied at every ``tb_mark``: whether that layer matches
there tells a wrong plugin kernel (reference matches) from a tinybuild bug
(reference differs too) without a second cross build. Everything goes to
``layers.json`` beside validation.json.

TensorFlow is imported only inside :func:`tflite_tensors`, which runs in a
child process (:mod:`tinybuild.isolated`) that only a mismatch or
``debug=layers`` starts.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import TinybuildError, shown

LAYERS_JSON = "layers.json"
MARK_END = 0xFFFFFFFF             # TB_MARK_END in tinybuild/runtime/tb_runtime.h
REFERENCE = "tf.lite.Interpreter, OpResolverType.BUILTIN_REF, experimental_preserve_all_tensors"


@dataclass
class Context:
    """What the validate step needs, besides its own files, to diagnose a build."""

    elf: Path
    inputs_bin: Path
    reference_json: Path                      # the reference step's record (input_bytes)
    plan_json: Path
    tflite: Path                              # the int8 model the firmware was generated from
    target: object
    simulators: dict = field(default_factory=dict)   # name -> simulator (plugins.simulators)
    limits: tuple[int, float] = (2_000_000_000, 600.0)
    debug: str = ""                           # "layers": compare even when the output matches


# -- the three sources of tensors ---------------------------------------------------

def reference_tensors(tflite: Path, data: bytes, indices) -> dict[int, tuple[str, bytes]]:
    """:func:`tflite_tensors` in a child process: TensorFlow never enters the
    build's process, and a TFLite crash is one error line."""
    from . import isolated
    return isolated.run("validate", tflite, tflite_tensors, (Path(tflite), bytes(data), list(indices)),
                        engine="TensorFlow Lite",
                        advice="it ran this model at the reference step, so the cause is keeping its "
                               "intermediate tensors. Fix: rebuild with kernels=reference to compare")


def tflite_tensors(tflite: Path, data: bytes, indices) -> dict[int, tuple[str, bytes]]:
    """TFLite tensor index -> (name, bytes) after one BUILTIN_REF inference on ``data``."""
    import warnings

    import numpy as np

    from .convert import _import_tf
    tf = _import_tf()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the "tf.lite.Interpreter is deprecated" notice
        interp = tf.lite.Interpreter(
            model_path=str(tflite), experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    at = 0
    for inp in interp.get_input_details():           # data: every input, one after the other
        size = int(np.prod(inp["shape"])) * np.dtype(inp["dtype"]).itemsize
        interp.set_tensor(inp["index"], np.frombuffer(data[at:at + size], dtype=inp["dtype"]).reshape(inp["shape"]))
        at += size
    interp.invoke()
    names = {d["index"]: d["name"] for d in interp.get_tensor_details()}
    return {i: (names.get(i, f"t{i}"), interp.get_tensor(i).tobytes()) for i in indices}


def arena_reads(layers: list[dict], sizes: dict[int, int]) -> tuple[list, list]:
    """``(reads, keys)``: the ``(mark, arena offset, size)`` copies that see each
    layer's inputs before it runs and its output right after, and their
    ``(kind, layer index, tensor)`` keys."""
    reads, keys = [], []
    for pos, layer in enumerate(layers):
        for inp in layer["inputs"]:
            reads.append((layer["index"], inp["offset"], sizes[inp["tensor"]]))
            keys.append(("input", layer["index"], inp["tensor"]))
        after = layers[pos + 1]["index"] if pos + 1 < len(layers) else MARK_END
        out = layer["output"]
        reads.append((after, out["offset"], sizes[out["tensor"]]))
        keys.append(("output", layer["index"], out["tensor"]))
    return reads, keys


def simulated_tensors(sim, ctx: Context, data: bytes, layers: list[dict],
                      sizes: dict[int, int]) -> tuple[dict, bytes]:
    """``({(kind, layer, tensor): bytes}, final output)`` from one Unicorn run."""
    reads, keys = arena_reads(layers, sizes)
    result, copies = sim.run_reading_arena(ctx.elf, ctx.target, data, reads,
                                           max_instructions=ctx.limits[0], timeout_s=ctx.limits[1])
    return dict(zip(keys, copies)), result.output


def unicorn_for(ctx: Context):
    sim = ctx.simulators.get("unicorn")
    target = ctx.target
    if sim is None or not hasattr(sim, "run_reading_arena"):
        raise TinybuildError("it needs the unicorn simulator, which is not loaded")
    if not sim.supports(target):
        raise TinybuildError(f"it needs the unicorn simulator, which cannot run "
                             f"target {target.name} ({target.arch}, {target.cpu})")
    usable, why = sim.available()
    if not usable:
        raise TinybuildError(f"it needs the unicorn simulator: {why}")
    return sim


HOST_MARK_DUMP_C = r"""/* Diagnosis host build: every tb_mark writes its id and the whole arena to stdout. */
#include <stdio.h>
#include "tb_runtime.h"

void tb_mark(uint32_t id) {
  (void)fwrite(&id, sizeof id, 1, stdout);
  (void)fwrite(tb_io_desc.arena, 1, tb_io_desc.arena_size, stdout);
}
"""


def host_reference_outputs(tflite: Path, data: bytes) -> dict[int, bytes]:
    """Layer index -> output bytes of the model generated with the portable
    reference kernels only, compiled for the host and run on ``data``."""
    from .host import build_host_model, run_host_model
    with tempfile.TemporaryDirectory(prefix="tb-diagnose-") as tmp:
        folder = Path(tmp)
        plan = _reference_model(tflite, folder)
        (folder / "tb_mark_dump.c").write_text(HOST_MARK_DUMP_C)
        exe = build_host_model(folder, folder / "model_reference", [folder / "tb_mark_dump.c"])
        stdout = run_host_model(exe, data)
    return outputs_from_snapshots(plan, stdout)


def _reference_model(tflite: Path, folder: Path) -> dict:
    """model.c and plan.json of ``tflite`` with the reference kernels (quietly:
    this is not the build's code generation step)."""
    from . import codegen, kernel_registry, lower, planner
    from .importer import load_graph
    graph = load_graph(tflite)
    layers = kernel_registry.select_kernels(lower.lower_graph(graph), [])
    plan = planner.plan_memory(graph, layers)
    codegen.write_model(folder, graph, layers, plan, "the per-layer diagnosis (reference kernels)")
    return json.loads((folder / "plan.json").read_text())


def outputs_from_snapshots(plan: dict, stdout: bytes) -> dict[int, bytes]:
    """Split the host run's ``(id, arena)`` records and read each layer's output
    from the snapshot taken at the mark after it."""
    arena = plan["memory"]["arena_size"]
    record = 4 + arena
    snapshots = {}
    for at in range(0, len(stdout) - record + 1, record):
        mark = int.from_bytes(stdout[at:at + 4], "little")
        snapshots.setdefault(mark, stdout[at + 4:at + record])
    outputs = {}
    layers = plan["layers"]
    for pos, layer in enumerate(layers):
        after = layers[pos + 1]["index"] if pos + 1 < len(layers) else MARK_END
        out = layer["output"]
        if after in snapshots:
            outputs[layer["index"]] = snapshots[after][out["offset"]:out["offset"] + out["bytes"]]
    return outputs


# -- comparison (no TensorFlow, no simulator: unit-tested on its own) ------------------

def byte_diff(got: bytes | None, want: bytes) -> dict:
    """How ``got`` differs from ``want`` (int8 values): bytes that differ, the
    first one, and the largest difference of two values (``match`` None: not read)."""
    import numpy as np
    if got is None:
        return {"match": None}
    common = min(len(got), len(want))
    a = np.frombuffer(got, dtype=np.int8, count=common).astype(np.int16)
    b = np.frombuffer(want, dtype=np.int8, count=common).astype(np.int16)
    bad = np.flatnonzero(a != b)
    missing = max(len(got), len(want)) - common       # a length difference counts as differing bytes
    first = int(bad[0]) if bad.size else (common if missing else None)
    return {"match": first is None, "mismatched_bytes": int(bad.size) + missing,
            "first_mismatch": first, "max_abs_diff": int(np.abs(a - b).max()) if bad.size else 0}


def compare_layers(layers: list[dict], want: dict[int, tuple[str, bytes]], got: dict,
                   reference: dict[int, bytes] | None) -> list[dict]:
    """One row per layer: its output (and each input, as seen when the layer ran)
    against TFLite's tensor, and whether the reference kernels' output matched."""
    rows = []
    for layer in layers:
        k, out = layer["index"], layer["output"]["tensor"]
        name, expected = want[out]
        inputs = [{"tensor": i["tensor"], "name": want[i["tensor"]][0],
                   **byte_diff(got.get(("input", k, i["tensor"])), want[i["tensor"]][1])}
                  for i in layer["inputs"]]
        ref = None if reference is None or k not in reference else reference[k] == expected
        rows.append({"index": k, "op": layer["op"], "tensor": out, "name": name,
                     "bytes": len(expected), "kernel": layer.get("kernel", ""),
                     "kernel_label": layer.get("kernel_label", ""), "plugin": layer.get("plugin", ""),
                     **byte_diff(got.get(("output", k, out)), expected),
                     "inputs_match": all(i["match"] for i in inputs), "inputs": inputs,
                     "reference_kernels_match": ref})
    return rows


def first_differing(rows: list[dict]) -> dict | None:
    """The first layer, in execution order, whose inputs or output differ."""
    return next((r for r in rows if not (r["match"] and r["inputs_match"])), None)


def _kernel_phrase(row: dict) -> str:
    text = f"via {shown(row['kernel_label'] or row['kernel'] or '?')}"
    if row["plugin"]:
        text += f" (plugin {shown(row['plugin'], 120)})"
    return text


def _inputs_phrase(row: dict) -> str:
    changed = [i for i in row["inputs"] if not i["match"]]
    if not changed:
        return "its inputs matched"
    i = changed[0]
    return (f"its input '{shown(i['name'])}' (tensor {i['tensor']}) differed from TFLite's when the "
            f"layer ran ({i['mismatched_bytes']:,} bytes, first at byte {i['first_mismatch']}) although "
            "every earlier layer's output matched when written: it was overwritten in between "
            "(a memory-plan or in-place bug)")


def _reference_phrase(row: dict, note: str) -> str:
    from .ops import reference_kernel_names
    is_reference = row["kernel"] in reference_kernel_names()
    ref = row["reference_kernels_match"]
    if ref is None:
        return f"Rebuild with kernels=reference to compare ({note or 'the host check did not run'})."
    if ref and is_reference:
        return ("The same reference kernel compiled for the host matches TFLite here: the difference "
                "comes from the target build (compiler, flags or simulator).")
    if ref:
        return ("With kernels=reference (checked on the host) this layer matches TFLite: its kernel "
                "is wrong for this layer.")
    return ("With kernels=reference (checked on the host) it differs as well: a tinybuild bug "
            "(lowering or reference kernel); please report it.")


def explain(findings: dict, details: Path) -> str:
    """The sentences the mismatch error adds: the first differing layer and why."""
    row = next((r for r in findings["layers"] if r["index"] == findings["first_differing_layer"]), None)
    if row is not None:
        how = (f"{row['mismatched_bytes']:,} of {row['bytes']:,} bytes differ, first at byte "
               f"{row['first_mismatch']} (by up to {row['max_abs_diff']})" if not row["match"]
               else "its output matched")
        text = (f"First differing layer: {row['index']} {row['op']} '{shown(row['name'])}' "
                f"{_kernel_phrase(row)}: {how}; {_inputs_phrase(row)}. "
                f"{_reference_phrase(row, findings['reference_kernels'].get('note', ''))}")
    elif findings["output_matches"]:
        text = (f"Run again in unicorn, the output matches TFLite on this input: the difference comes "
                f"from the {shown(findings['build_simulator'])} run.")
    else:
        text = ("Every layer's output matched TFLite when written, yet the output tensor differs at "
                "the end: it was overwritten after its layer (a memory-plan bug).")
    return f"{text} Details: {shown(details, 200)}"


# -- the whole diagnosis -----------------------------------------------------------------

def diagnose(ctx: Context, input_index: int, expected_output: bytes, out: Path,
             build_simulator: str) -> dict:
    """Compare every layer on input ``input_index``, write ``out`` (layers.json),
    return what it holds. Raises TinybuildError when it cannot."""
    sim = unicorn_for(ctx)                    # before TensorFlow: the cheap reason not to go on
    plan = json.loads(Path(ctx.plan_json).read_text())
    layers = sorted(plan["layers"], key=lambda l: l["index"])
    size = json.loads(Path(ctx.reference_json).read_text())["input_bytes"]
    blob = Path(ctx.inputs_bin).read_bytes()
    data = blob[input_index * size:(input_index + 1) * size]
    tensors = sorted({t for l in layers for t in [l["output"]["tensor"], *(i["tensor"] for i in l["inputs"])]})
    want = reference_tensors(ctx.tflite, data, tensors)
    got, output = simulated_tensors(sim, ctx, data, layers, {t: len(b) for t, (_, b) in want.items()})
    reference, note = _reference_outputs(ctx.tflite, data)
    rows = compare_layers(layers, want, got, reference)
    first = first_differing(rows)
    findings = {"input": input_index, "reference": REFERENCE, "simulator": "unicorn",
                "build_simulator": build_simulator, "output_matches": output == expected_output,
                "first_differing_layer": None if first is None else first["index"],
                "reference_kernels": {"checked": reference is not None, "note": note},
                "layers": rows}
    out.write_text(json.dumps(findings, indent=1) + "\n")
    return findings


def _reference_outputs(tflite: Path, data: bytes) -> tuple[dict | None, str]:
    """The host reference run, or ``(None, why not)``: the diagnosis goes on without it."""
    try:
        return host_reference_outputs(tflite, data), "the model with the reference kernels, built for the host"
    except TinybuildError as exc:
        return None, f"host check failed: {str(exc).splitlines()[0]}"


def attempt(ctx: Context, input_index: int, expected_output: bytes, out: Path,
            build_simulator: str) -> tuple[dict | None, str]:
    """:func:`diagnose`, never raising: ``(findings, sentences for the error)``,
    or ``(None, why there is no per-layer comparison)``. A failed diagnosis must
    not hide the mismatch it was asked to explain."""
    try:
        findings = diagnose(ctx, input_index, expected_output, out, build_simulator)
    except TinybuildError as exc:
        return None, f"No per-layer comparison: {str(exc).splitlines()[0]}."
    except Exception as exc:   # a bug here must not replace the build's own error
        return None, f"No per-layer comparison: the diagnosis failed ({type(exc).__name__}: {exc})."
    return findings, explain(findings, out)


def debug_line(findings: dict | None, explained: str, out: Path) -> str:
    """The progress line of ``debug=layers`` on a build whose output matches."""
    if findings is None:
        return f"debug=layers: {explained}"
    if findings["first_differing_layer"] is None:
        return (f"debug=layers: every layer matches TFLite on input {findings['input']}; "
                f"{shown(out, 200)}")
    return f"debug=layers: the output matches TFLite, but a layer does not. {explained}"


def table(findings: dict, out: Path) -> dict:
    """What validation.json keeps of the comparison for the report (debug=layers)."""
    keep = ("index", "op", "name", "kernel", "kernel_label", "plugin", "bytes", "match",
            "mismatched_bytes", "first_mismatch", "max_abs_diff", "inputs_match", "reference_kernels_match")
    return {"file": str(out), "input": findings["input"],
            "first_differing_layer": findings["first_differing_layer"],
            "layers": [{k: r.get(k) for k in keep} for r in findings["layers"]]}
