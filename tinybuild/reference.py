"""The reference a firmware's outputs are validated against: TFLite itself.

* ``make_inputs(tflite_path, count, seed, calibration)`` makes the validation
  inputs, as raw bytes of the model's (int8) input tensor.
* ``reference_outputs(tflite_path, inputs)`` runs them through
  ``tf.lite.Interpreter`` with TFLite's *reference* kernels
  (``OpResolverType.BUILTIN_REF``) and returns the raw bytes of the output
  tensor. The default resolver adds the XNNPACK delegate, whose int8 results
  are not always those of the reference kernels (up to 12 apart on
  pretrainedResnet_quant), so it is never used here.

Input shape, type and quantization are read straight from the flatbuffer with
the ``tflite`` package, so ``make_inputs`` needs no TensorFlow;
``reference_outputs`` imports TensorFlow lazily (importing this module is free).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinybuild.convert import (_import_tf, _p, _short, default_calibration_path, guarded, load_calibration,
                               make_interpreter, tflite_io)
from tinybuild.errors import TinybuildError, shown

_NP_TYPES = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32}


def _input_spec(tflite_path: Path) -> dict:
    io = tflite_io(tflite_path)
    if len(io["inputs"]) != 1:
        raise TinybuildError(f"{_p(tflite_path)}: the model has {len(io['inputs'])} inputs; tinybuild supports "
                             "models with exactly one input.")
    spec = io["inputs"][0]
    if spec["type"] not in _NP_TYPES:
        raise TinybuildError(f"{_p(tflite_path)}: input tensor '{shown(spec['name'])}' is {spec['type']}; tinybuild "
                             "validates integer (int8) models only. Fix: convert the model to full int8.")
    return spec


@guarded("making the validation inputs")
def make_inputs(tflite_path: Path, count: int, seed: int, calibration: Path | None = None) -> list[bytes]:
    """``count`` deterministic validation inputs (raw bytes of the input tensor).

    * Calibration data is ``calibration`` (a ``.npy`` ``[N, *input shape]`` or
      ``.npz``, first array) or, when that is None, ``<stem>_calib.npy`` beside
      the ``.tflite`` if it exists.
    * With calibration data, the first ``min(N, ceil(count / 2))`` inputs are the
      first calibration samples, quantized with the model's input scale and zero
      point (``clip(round(x / scale) + zero_point)``): realistic activations.
    * The rest (all of them without calibration data) are uniform random integers
      over the input type's full range (int8: -128..127) from
      ``numpy.random.default_rng(seed)``: they exercise saturation and rounding
      everywhere.

    The same (file, count, seed, calibration) always gives the same bytes.
    """
    tflite_path = Path(tflite_path)
    if count < 0:
        raise TinybuildError(f"make_inputs: count must be >= 0 (got {count}).")
    spec = _input_spec(tflite_path)
    dtype = np.dtype(_NP_TYPES[spec["type"]])
    info = np.iinfo(dtype)
    shape = tuple(spec["shape"])
    sample_shape = shape[1:] if len(shape) > 1 else shape

    if calibration is None:
        beside = default_calibration_path(tflite_path)
        calibration = beside if beside.is_file() else None

    inputs: list[bytes] = []
    if calibration is not None and count > 0:
        n_cal = (count + 1) // 2
        x = load_calibration(Path(calibration), sample_shape, n_cal)
        scale, zp = spec["scale"], spec["zero_point"]
        if not scale:
            raise TinybuildError(f"{_p(tflite_path)}: the input tensor has no quantization scale, so calibration "
                                 "samples cannot be quantized. Fix: convert the model to full int8.")
        q = np.clip(np.round(x / scale) + (zp or 0), info.min, info.max).astype(dtype)
        inputs.extend(sample.reshape(shape).tobytes() for sample in q)

    rng = np.random.default_rng(seed)
    n_rand = count - len(inputs)
    if n_rand > 0:
        r = rng.integers(info.min, int(info.max) + 1, size=(n_rand, *shape), dtype=np.int64).astype(dtype)
        inputs.extend(sample.tobytes() for sample in r)
    return inputs


@guarded("running TFLite's reference kernels")
def reference_outputs(tflite_path: Path, inputs: list[bytes]) -> list[bytes]:
    """Run each input (raw bytes of the input tensor) through TFLite's reference
    kernels; return the raw bytes of the output tensor for each.

    Every input is run from a fresh state (variables reset), so results do not
    depend on the order of the inputs.
    """
    tflite_path = Path(tflite_path)
    io = tflite_io(tflite_path)  # a clear error for a missing/corrupt file before TF
    if len(io["inputs"]) != 1 or len(io["outputs"]) != 1:
        raise TinybuildError(f"{_p(tflite_path)}: the model has {len(io['inputs'])} inputs and "
                             f"{len(io['outputs'])} outputs; tinybuild supports exactly one of each.")
    tf = _import_tf()
    try:
        interp = make_interpreter(tf, tflite_path)
    except Exception as e:
        raise TinybuildError(f"{_p(tflite_path)}: TFLite cannot load the model ({type(e).__name__}: "
                             f"{_short(e)}). Fix: re-export the model") from None
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    in_dtype = np.dtype(inp["dtype"])
    in_shape = tuple(int(d) for d in inp["shape"])
    expected = int(np.prod(in_shape)) * in_dtype.itemsize
    results = []
    for i, raw in enumerate(inputs):
        if len(raw) != expected:
            raise TinybuildError(
                f"{_p(tflite_path)}: validation input {i} has {len(raw)} bytes; the input tensor "
                f"{list(in_shape)} {in_dtype} needs {expected}.")
        interp.reset_all_variables()
        interp.set_tensor(inp["index"], np.frombuffer(raw, dtype=in_dtype).reshape(in_shape))
        try:
            interp.invoke()
        except Exception as e:
            raise TinybuildError(f"{_p(tflite_path)}: TFLite cannot run the model on validation input {i} "
                                 f"({type(e).__name__}: {_short(e)}). Fix: re-export the model") from None
        results.append(np.ascontiguousarray(interp.get_tensor(out["index"])).tobytes())
    return results
