"""The reference a firmware's outputs are validated against: TFLite itself.

* ``make_inputs(tflite_path, count, seed, calibration)`` makes the validation
  inputs: for each, the raw bytes of every model input, one after the other
  (the model's order).
* ``reference_outputs(tflite_path, inputs)`` runs them through
  ``tf.lite.Interpreter`` with TFLite's *reference* kernels
  (``OpResolverType.BUILTIN_REF``) and returns, for each, the raw bytes of
  every output, one after the other. The default resolver adds the XNNPACK
  delegate, whose int8 results are not always those of the reference kernels
  (up to 12 apart on pretrainedResnet_quant), so it is never used here.
* ``io_record(tflite_path)`` names, shapes, types and byte sizes of the
  inputs and outputs (what reference.json records).

Inputs may be int8, uint8, int16, int32, int64, bool or float32 (a float
interface through QUANTIZE); outputs (int32/int64 from ARG_MAX, say) are
compared byte for byte whatever their type (float ones come from a
DEQUANTIZE, which is exact). Shapes, types and
quantization are read straight from the flatbuffer, so ``make_inputs`` needs
no TensorFlow; ``reference_outputs`` imports TensorFlow lazily (importing this
module is free).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tinybuild.convert import (_import_tf, _p, _short, default_calibration_path, guarded, load_calibration,
                               make_interpreter, tflite_io)
from tinybuild.errors import TinybuildError, shown

_NP_TYPES = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32,
             "INT64": np.int64, "BOOL": np.bool_, "FLOAT32": np.float32}


def _specs(tflite_path: Path, kind: str) -> list[dict]:
    """The model's inputs or outputs (tflite_io), each with its numpy dtype and byte size."""
    specs = tflite_io(tflite_path)[kind]
    for spec in specs:
        if spec["type"] not in _NP_TYPES:
            raise TinybuildError(f"{_p(tflite_path)}: {kind[:-1]} tensor '{shown(spec['name'])}' is "
                                 f"{spec['type']}; tinybuild validates {', '.join(_NP_TYPES)} tensors. "
                                 "Fix: convert the model with int8 or float32 inputs and outputs.")
        spec["dtype"] = np.dtype(_NP_TYPES[spec["type"]])
        spec["bytes"] = int(np.prod(spec["shape"], dtype=np.int64)) * spec["dtype"].itemsize
    return specs


def io_record(tflite_path: Path) -> dict:
    """``{"inputs": [...], "outputs": [...]}``: name, shape, dtype and byte size of each."""
    return {kind: [{"name": s["name"], "shape": s["shape"], "dtype": s["dtype"].name, "bytes": s["bytes"]}
                   for s in _specs(tflite_path, kind)]
            for kind in ("inputs", "outputs")}


@guarded("making the validation inputs")
def make_inputs(tflite_path: Path, count: int, seed: int, calibration: Path | None = None) -> list[bytes]:
    """``count`` deterministic validation inputs, each the raw bytes of every
    model input, one after the other.

    * Calibration data is ``calibration`` (a ``.npy`` ``[N, *input shape]`` or
      ``.npz``, first array) or, when that is None, ``<stem>_calib.npy`` beside
      the ``.tflite`` if it exists; it is for single-input models.
    * With calibration data, the first ``min(N, ceil(count / 2))`` inputs are the
      first calibration samples: as they are for a float32 input, else quantized
      with the input's scale and zero point (``clip(round(x / scale) + zero_point)``):
      realistic activations.
    * The rest (all of them without calibration data) come from
      ``numpy.random.default_rng(seed)``, input after input: uniform random
      integers over an integer input's full range (int8: -128..127), which
      exercise saturation and rounding everywhere; normal noise for a float32
      input, centred on the range its QUANTIZE represents and a quarter of it wide.

    The same (file, count, seed, calibration) always gives the same bytes.
    """
    tflite_path = Path(tflite_path)
    if count < 0:
        raise TinybuildError(f"make_inputs: count must be >= 0 (got {count}).")
    specs = _specs(tflite_path, "inputs")
    calibration = _calibration_for(tflite_path, calibration, specs)
    samples = [[] for _ in range(count)]
    n_cal = 0
    if calibration is not None and count > 0:
        cal = _calibration_samples(tflite_path, Path(calibration), specs[0], (count + 1) // 2)
        n_cal = len(cal)
        for k, data in enumerate(cal):
            samples[k].append(data)
    rng = np.random.default_rng(seed)
    for i, spec in enumerate(specs):
        first = n_cal if i == 0 else 0           # calibration samples fill input 0's first slots
        for k, data in enumerate(_random_samples(tflite_path, i, spec, rng, count - first)):
            samples[first + k].append(data)
    return [b"".join(parts) for parts in samples]


def _calibration_for(tflite_path: Path, calibration: Path | None, specs: list[dict]) -> Path | None:
    if calibration is None:
        beside = default_calibration_path(tflite_path)
        calibration = beside if beside.is_file() else None
    if calibration is not None and len(specs) != 1:
        raise TinybuildError(f"{_p(tflite_path)}: the model has {len(specs)} inputs, so calibration data "
                             f"({_p(calibration)}) cannot say which it is for. Fix: leave calibration out "
                             "(the inputs are then seeded random data) or remove that file")
    return calibration


def _calibration_samples(tflite_path: Path, calibration: Path, spec: dict, limit: int) -> list[bytes]:
    shape = tuple(spec["shape"])
    x = load_calibration(calibration, shape[1:] if len(shape) > 1 else shape, limit)
    if spec["dtype"] == np.float32:
        return [sample.astype(np.float32).reshape(shape).tobytes() for sample in x]
    scale, zp = spec["scale"], spec["zero_point"]
    if not scale:
        raise TinybuildError(f"{_p(tflite_path)}: the input tensor has no quantization scale, so calibration "
                             "samples cannot be quantized. Fix: convert the model to full int8.")
    info = np.iinfo(spec["dtype"])
    q = np.clip(np.round(x / scale) + (zp or 0), info.min, info.max).astype(spec["dtype"])
    return [sample.reshape(shape).tobytes() for sample in q]


def _random_samples(tflite_path: Path, index: int, spec: dict, rng, n: int) -> list[bytes]:
    if n <= 0:
        return []
    shape, dtype = tuple(spec["shape"]), spec["dtype"]
    if dtype == np.float32:
        centre, width = _float_input_range(tflite_path, index)
        r = (centre + width / 4 * rng.standard_normal(size=(n, *shape))).astype(np.float32)
    elif dtype == np.bool_:
        r = rng.integers(0, 2, size=(n, *shape)).astype(np.bool_)
    else:
        info = np.iinfo(dtype)
        r = rng.integers(info.min, int(info.max) + 1, size=(n, *shape), dtype=np.int64).astype(dtype)
    return [sample.tobytes() for sample in r]


def _float_input_range(tflite_path: Path, index: int) -> tuple[float, float]:
    """Centre and width of the values the QUANTIZE reading float input ``index``
    represents; (0, 4) when no QUANTIZE reads it."""
    from tinybuild.importer import load_graph
    graph = load_graph(tflite_path)
    tensor = graph.inputs[index]
    for op in graph.operators:
        if op.op == "QUANTIZE" and op.inputs and op.inputs[0] == tensor:
            out = graph.tensors[op.outputs[0]]
            if out.scale and out.dtype in ("int8", "uint8", "int16"):
                info = np.iinfo(out.dtype)
                lo, hi = (info.min - out.zero_point) * out.scale, (info.max - out.zero_point) * out.scale
                return (lo + hi) / 2, hi - lo
    return 0.0, 4.0


SKIP_HINT = ("Fix: re-export the model, or build it without validation against TFLite: validate=no "
             "(the firmware is still built, sized and simulated)")
# TFLite's resolver errors: "Didn't find op for builtin opcode 'ELU' version '1'" and
# "Didn't find custom op for name 'X'" (tensorflow/lite/core/interpreter_builder.cc).
_NO_BUILTIN = re.compile(r"Didn't find op for builtin opcode '([^']*)' version '(\d+)'")
_NO_CUSTOM = re.compile(r"Didn't find custom op for name '([^']*)'")


def refused(tflite_path: Path, exc: BaseException) -> str:
    """One line: what TFLite's BUILTIN_REF interpreter refused (the op, escaped,
    when it names one) and that validate=no builds the model without it."""
    text = str(exc)
    builtin, custom = _NO_BUILTIN.search(text), _NO_CUSTOM.search(text)
    if builtin:
        what = (f"its reference kernels (BUILTIN_REF) have no {shown(builtin[1])} (version "
                f"{builtin[2]}), which tinybuild compiles")
    elif custom:
        what = f"it has no kernel for the custom op '{shown(custom[1])}'"
    else:
        what = f"{type(exc).__name__}: {_short(exc)}"
    return f"{_p(tflite_path)}: TFLite cannot load the model to validate it ({what}). {SKIP_HINT}"


@guarded("running TFLite's reference kernels")
def reference_outputs(tflite_path: Path, inputs: list[bytes]) -> list[bytes]:
    """Run each input (every model input's bytes, one after the other) through
    TFLite's reference kernels; return, for each, every output's bytes one
    after the other.

    Every input is run from a fresh state (variables reset), so results do not
    depend on the order of the inputs.
    """
    tflite_path = Path(tflite_path)
    specs = _specs(tflite_path, "inputs")  # a clear error for a missing/corrupt file before TF
    _specs(tflite_path, "outputs")
    tf = _import_tf()
    try:
        interp = make_interpreter(tf, tflite_path)
    except Exception as e:
        raise TinybuildError(refused(tflite_path, e)) from None
    ins, outs = interp.get_input_details(), interp.get_output_details()
    expected = sum(s["bytes"] for s in specs)
    results = []
    for i, raw in enumerate(inputs):
        if len(raw) != expected:
            described = ", ".join(f"{s['shape']} {s['dtype']}" for s in specs)
            raise TinybuildError(f"{_p(tflite_path)}: validation input {i} has {len(raw)} bytes; the "
                                 f"model's inputs ({described}) need {expected}.")
        interp.reset_all_variables()
        at = 0
        for detail, spec in zip(ins, specs):
            data = np.frombuffer(raw[at:at + spec["bytes"]], dtype=spec["dtype"])
            interp.set_tensor(detail["index"], data.reshape(spec["shape"]))
            at += spec["bytes"]
        try:
            interp.invoke()
        except Exception as e:
            raise TinybuildError(f"{_p(tflite_path)}: TFLite cannot run the model on validation input {i} "
                                 f"({type(e).__name__}: {_short(e)}). Fix: re-export the model") from None
        results.append(b"".join(np.ascontiguousarray(interp.get_tensor(d["index"])).tobytes() for d in outs))
    return results
