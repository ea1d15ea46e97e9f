"""The build steps as plain functions: each reads files and writes files.

The SCons tool (:mod:`tinybuild.scons_tool`) wires them into a dependency
graph; tests call them directly. TensorFlow is imported only inside the steps
that need it (conversion and the reference run).
"""
from __future__ import annotations

import functools
import inspect

import json
import sys
import time
from pathlib import Path

from .errors import TinybuildError, shown
from .target import RunResult, Target


def log(step: str, message: str) -> None:
    print(f"[{step}] {message}", file=sys.stderr, flush=True)


def write_json(path: Path, data) -> None:
    Path(path).write_text(json.dumps(data, indent=1) + "\n")


def read_json(path: Path):
    return json.loads(Path(path).read_text())


# -- model side (target independent) ------------------------------------------

def convert(src: Path, dst: Path, calibration: Path | None, record: Path, importers: dict,
            quant: str = "int8") -> None:
    """The model's importer (TensorFlow for Keras models) in a child process
    (tinybuild.isolated): a crash there is one error line; nothing is left on
    disk unless the whole step succeeded. ``quant`` (the build variable) reaches
    the importer as a keyword only when it is not the default int8, so an
    importer written before quant= existed keeps working for int8."""
    from . import isolated
    importer = importers.get(src.suffix.lower())
    if importer is None:
        raise TinybuildError(f"{shown(str(src), limit=0)}: unsupported model format "
                             f"'{shown(src.suffix)}'. tinybuild reads {', '.join(sorted(importers))}")
    started = time.time()
    try:
        call = importer if quant == "int8" else functools.partial(importer, quant=quant)
        result = isolated.run("convert", src, call, (src, dst, calibration, None),
                              engine="TensorFlow", advice=CONVERT_CRASH_ADVICE) or {}
        result["seconds"] = round(time.time() - started, 2)
        write_json(record, result)
    except BaseException:
        _remove(dst, dst.with_name(dst.name + ".tmp"), record)
        raise


CONVERT_CRASH_ADVICE = ("the model probably has a layer TensorFlow cannot quantize to int8 "
                        "(tinybuild compiles int8 TFLite builtin operators only for now). "
                        "Fix: replace that layer, or give a fully int8 .tflite")
REFERENCE_CRASH_ADVICE = ("the file passed tinybuild's checks but TFLite cannot run it. "
                          "Fix: re-export the model")


def reference(tflite: Path, inputs_bin: Path, outputs_bin: Path, record: Path, count: int,
              seed: int, calibration: Path | None) -> None:
    """Validation inputs and TFLite's reference outputs for them, computed in a
    child process (tinybuild.isolated): the file is checked there before
    TensorFlow Lite sees it, and a TFLite crash is one error line."""
    from . import isolated
    if count < 1:
        raise TinybuildError(f"inputs={count}: validate at least one input (inputs=1 or more)")
    log("reference", f"tf.lite.Interpreter (BUILTIN_REF kernels) on {count} inputs")
    try:
        inputs, outputs = isolated.run("reference", tflite, reference_io,
                                       (tflite, count, seed, calibration), engine="TensorFlow Lite",
                                       advice=REFERENCE_CRASH_ADVICE)
        from .reference import io_record
        inputs_bin.write_bytes(b"".join(inputs))
        outputs_bin.write_bytes(b"".join(outputs))
        # input_bytes/output_bytes: one validation input's bytes (every model
        # input, one after the other) and its outputs'; each tensor in the lists
        write_json(record, {"count": len(inputs), "input_bytes": len(inputs[0]),
                            "output_bytes": len(outputs[0]), "seed": seed,
                            "resolver": "BUILTIN_REF", "calibration": str(calibration or ""),
                            **io_record(tflite)})
    except BaseException:
        _remove(inputs_bin, outputs_bin, record)
        raise


VALIDATION_SKIPPED = "validation skipped (validate=no)"


def inputs_only(tflite: Path, inputs_bin: Path, record: Path, count: int, seed: int,
                calibration: Path | None) -> None:
    """validate=no: the validation inputs alone (the simulator still runs them),
    no TFLite; ``record`` has the reference record's input fields."""
    from .reference import io_record, make_inputs
    if count < 1:
        raise TinybuildError(f"inputs={count}: simulate at least one input (inputs=1 or more)")
    log("inputs", f"{count} inputs, not validated against TFLite ({VALIDATION_SKIPPED})")
    try:
        inputs = make_inputs(tflite, count, seed, calibration)
        inputs_bin.write_bytes(b"".join(inputs))
        write_json(record, {"count": len(inputs), "input_bytes": len(inputs[0]), "seed": seed,
                            "calibration": str(calibration or ""), "validate": "no", **io_record(tflite)})
    except BaseException:
        _remove(inputs_bin, record)
        raise


def skip_validation(run_json: Path, record: Path) -> dict:
    """validate=no: validation.json says the comparison was skipped at the user's
    request (``match`` None, never True); the simulated runs are kept in run.json."""
    runs = len(read_json(run_json)["runs"])
    data = {"match": None, "validate": "no", "skipped": VALIDATION_SKIPPED, "inputs": 0,
            "simulated_inputs": runs, "reference": None}
    write_json(record, data)
    log("validate", f"{VALIDATION_SKIPPED}: {runs} simulated outputs not compared with TFLite")
    return data


def reference_io(tflite: Path, count: int, seed: int, calibration: Path | None):
    """The reference step's work, run in the child: (inputs, TFLite's outputs) as raw bytes."""
    from . import reference as ref
    inputs = ref.make_inputs(tflite, count, seed, calibration)
    return inputs, ref.reference_outputs(tflite, inputs)


def _remove(*paths: Path) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)


def split(blob: bytes, size: int) -> list[bytes]:
    return [blob[i:i + size] for i in range(0, len(blob), size)]


# -- code generation ---------------------------------------------------------------

def generate(tflite: Path, out_dir: Path, contributed_kernels: list, name: str = "",
             input_layout: str = "", place: str = "flash") -> dict:
    """Lower, choose kernels, plan and write model.c/.h, plan.json, arena.svg.
    ``name`` is the user's model name (the converted file is model.int8.tflite);
    ``input_layout`` what the importer says the input is (e.g. "NHWC" for an
    ONNX model's NCHW input turned around at build time), for model.h; ``place``
    the build's place= (each Layer.place, before the kernels' prepare)."""
    from . import codegen, kernel_registry, lower, planner
    from .importer import load_graph

    graph = load_graph(tflite)
    graph.name = name or graph.name
    lowered = lower.lower_graph(graph)
    for layer in lowered:
        layer.place = place
    layers = kernel_registry.select_kernels(lowered, contributed_kernels)
    plan = planner.plan_memory(graph, layers)
    codegen.write_model(out_dir, graph, layers, plan, f"{graph.name} ({tflite.name})",
                        input_layout)
    log("codegen", f"{len(layers)} layers, arena {plan.arena_size} B "
                   f"(lower bound {plan.lower_bound} B) -> {out_dir / 'model.c'}")
    return read_json(out_dir / "plan.json")


# -- simulation and validation ----------------------------------------------------

def simulate(simulator, elf: Path, target: Target, inputs_bin: Path, input_bytes: int,
             record: Path, max_instructions: int, timeout_s: float) -> None:
    inputs = split(inputs_bin.read_bytes(), input_bytes)
    runs = []
    takes_detail = "detail" in inspect.signature(simulator.run).parameters
    for i, data in enumerate(inputs):
        # The report's figures come from the first run: only it needs every
        # cost the simulator can measure; the others validate the output.
        extra = {"detail": i == 0} if takes_detail else {}
        result = simulator.run(elf, target, data, max_instructions=max_instructions,
                               timeout_s=timeout_s, **extra)
        log("simulate", f"{simulator.name}: input {i + 1}/{len(inputs)}: "
                        f"{result.instructions:,} instructions, {result.cycles:,} cycles "
                        f"({result.instructions_per_second / 1e6:.1f} M instr/s)")
        runs.append(run_to_json(result))
    write_json(record, {"simulator": simulator.name, "runs": runs})


def run_to_json(r: RunResult) -> dict:
    return {"output": r.output.hex(), "instructions": r.instructions, "cycles": r.cycles,
            "layers": [{"index": l.index, "instructions": l.instructions, "cycles": l.cycles,
                        "memory_cycles": l.memory_cycles} for l in r.layers],
            "total_instructions": r.total_instructions, "total_cycles": r.total_cycles,
            "peak_stack_bytes": r.peak_stack_bytes, "ram_touched_bytes": r.ram_touched_bytes,
            "arena_touched_bytes": r.arena_touched_bytes,
            "wall_seconds": round(r.wall_seconds, 4),
            "instructions_per_second": round(r.instructions_per_second),
            "exit_code": r.exit_code, "cycle_model": r.cycle_model,
            "misaligned_accesses": r.misaligned_accesses, "memory_model": r.memory_model,
            "memory_cycles": r.memory_cycles, "memory_label": r.memory_label}


def validate(run_json: Path, outputs_bin: Path, output_bytes: int, record: Path,
             diagnosis=None, outputs: list[dict] | None = None) -> dict:
    """Compare every simulated output with TFLite's; on a mismatch (or with
    ``debug=layers``) compare layer by layer (tinybuild.diagnose.Context) and
    write layers.json beside ``record``. ``output_bytes`` is one run's bytes
    (every output, one after the other); ``outputs`` (reference.json's) names
    each output and its size, so a mismatch names the output that differs."""
    run = read_json(run_json)
    expected = split(outputs_bin.read_bytes(), output_bytes)
    if len(run["runs"]) != len(expected):
        raise TinybuildError(f"{run_json} holds {len(run['runs'])} runs for {len(expected)} reference "
                             "outputs: it is stale; build again")
    parts = outputs or [{"name": "", "bytes": output_bytes}]
    results = [output_result(i, bytes.fromhex(r["output"]), want, parts)
               for i, (r, want) in enumerate(zip(run["runs"], expected))]
    bad = next((r for r in results if not r["match"]), None)
    data = {"match": bad is None, "inputs": len(expected), "results": results,
            "outputs": [{"name": o["name"], "bytes": o["bytes"], **_dtype(o)} for o in parts],
            "reference": "tf.lite.Interpreter, OpResolverType.BUILTIN_REF",
            **_tolerance_summary(results)}
    explained = compare_layers(diagnosis, bad, expected, data, Path(record), run["simulator"])
    write_json(record, data)
    if bad is not None:
        raise TinybuildError(f"simulated output differs from the TFLite reference on input {bad['input']}"
                             f"{_which_output(bad, parts)}. {explained or f'See {shown(record, 200)}'}")
    return data


def _dtype(part: dict) -> dict:
    return {"dtype": part["dtype"]} if part.get("dtype") else {}


def _tolerance_summary(results: list[dict]) -> dict:
    """When some float32 output matched only within FLOAT_TOLERANCE: the largest
    differences seen (the report states them); {} when every byte matched."""
    diffs = [o for r in results for o in r.get("outputs", [r]) if o.get("within_tolerance")]
    if not diffs:
        return {}
    rel = [o["max_rel_diff"] for o in diffs if o["max_rel_diff"] is not None]
    return {"exact": False, "float_tolerance": FLOAT_TOLERANCE,
            "max_abs_diff": max(o["max_abs_diff"] for o in diffs),
            "max_rel_diff": max(rel) if rel else None}


def _which_output(bad: dict, parts: list[dict]) -> str:
    """`` (2 of 12 bytes, first at byte 9)``, with the output named when there are several."""
    if len(parts) == 1:
        return (f" ({bad['mismatched_bytes']:,} of {parts[0]['bytes']:,} bytes, first at byte "
                f"{bad['first_mismatch']})")
    k, out = next((k, o) for k, o in enumerate(bad["outputs"]) if not o["match"])
    return (f", output {k} '{shown(parts[k]['name'])}' ({out['mismatched_bytes']:,} of "
            f"{parts[k]['bytes']:,} bytes, first at byte {out['first_mismatch']})")


def diagnosis(**fields):
    """What validate needs to compare layer by layer (a tinybuild.diagnose.Context)."""
    from .diagnose import Context
    return Context(**fields)


def compare_layers(diagnosis, bad: dict | None, expected: list[bytes], data: dict, record: Path,
                   build_simulator: str) -> str:
    """On a mismatch, or with debug=layers, the per-layer comparison: writes
    layers.json beside ``record`` (and, for debug=layers, its table into
    ``data`` for the report); returns the sentences a mismatch error adds."""
    from . import diagnose
    layers_json = record.with_name(diagnose.LAYERS_JSON)
    layers_json.unlink(missing_ok=True)          # never a comparison left from an earlier build
    if diagnosis is None or (bad is None and diagnosis.debug != "layers"):
        return ""
    which = bad["input"] if bad else 0
    findings, explained = diagnose.attempt(diagnosis, which, expected[which], layers_json,
                                           build_simulator)
    if findings is not None and diagnosis.debug == "layers":
        data["layer_comparison"] = diagnose.table(findings, layers_json)
    if bad is None:
        log("validate", diagnose.debug_line(findings, explained, layers_json))
    return explained


# A float32 output that is not bit-exact (a transcendental function's last bit
# differs between the board's libm and glibc, say) passes when every element is
# within this fraction of the output's largest magnitude; the report states the
# observed differences.
FLOAT_TOLERANCE = 1e-4


def output_result(index: int, got: bytes, want: bytes, parts: list[dict] | None = None) -> dict:
    """How one run's output bytes differ from TFLite's, over all outputs and, with
    several (``parts``: each output's ``bytes`` and ``dtype``), output by output;
    float32 outputs that differ are compared within FLOAT_TOLERANCE."""
    parts = parts or [{"bytes": len(want)}]
    outputs, at = [], 0
    for part in parts:
        size = part["bytes"]
        outputs.append(_output_diff(got[at:at + size], want[at:at + size], part.get("dtype")))
        at += size
    result = {"input": index, **_byte_diff(got, want)}
    if any(o.get("within_tolerance") for o in outputs):
        result["match"] = all(o["match"] for o in outputs)
        result["exact"] = False
    if len(parts) > 1:
        result["outputs"] = outputs
    elif "within_tolerance" in outputs[0]:
        result.update({k: v for k, v in outputs[0].items() if k not in ("match",)})
    return result


def _output_diff(got: bytes, want: bytes, dtype: str | None) -> dict:
    diff = _byte_diff(got, want)
    if diff["match"] or dtype != "float32" or len(got) != len(want) or len(want) % 4:
        return diff
    import numpy as np
    g, w = np.frombuffer(got, np.float32), np.frombuffer(want, np.float32)
    both_nan = np.isnan(g) & np.isnan(w)
    err = np.where(both_nan, 0.0, np.abs(g.astype(np.float64) - w))
    scale = float(np.nanmax(np.abs(w))) if w.size and not np.isnan(w).all() else 0.0
    max_abs = float(np.max(err)) if err.size else 0.0
    within = bool(np.isfinite(max_abs) and max_abs <= FLOAT_TOLERANCE * scale)
    return {**diff, "match": within, "within_tolerance": within, "max_abs_diff": max_abs,
            "max_rel_diff": max_abs / scale if scale else None, "tolerance": FLOAT_TOLERANCE}


def _byte_diff(got: bytes, want: bytes) -> dict:
    diffs = [j for j in range(len(want)) if j >= len(got) or got[j] != want[j]]
    return {"match": not diffs, "mismatched_bytes": len(diffs), "first_mismatch": diffs[0] if diffs else None}
