"""Model conversion: any supported model file -> the ``.tflite`` tinybuild compiles.

``convert_model(src, dst, calibration, report_path, quant=)`` is the one entry point.

Accepted sources
----------------
* ``.tflite``  copied as is, keeping the types it was written with: int8
  inside (a float32 input read by QUANTIZE or an output written by
  DEQUANTIZE allowed, see ``_not_int8``), 16x8 (int16 activations) or float32;
  the op lowerings accept or refuse each op's types. A dynamic-range
  ("hybrid") or float16-weight model is refused saying so (``tflite_kind``).
* ``.h5`` / ``.keras``  loaded with Keras 3 (``keras``) and, if that fails,
  with ``tf_keras`` (Keras 2: the MLPerf Tiny ``.h5`` files, whose
  DepthwiseConv2D configs carry a ``groups`` argument Keras 3 refuses).
* a SavedModel directory (its ``serving_default`` signature).

``quant`` (the ``quant=`` build variable) decides what a float model becomes,
with a fixed batch of 1: "int8", TFLite's full-integer post-training
quantization (``Optimize.DEFAULT`` + representative dataset,
``TFLITE_BUILTINS_INT8`` only, int8 input and output); "int16x8", its 16x8
mode (int16 activations, int8 weights, int16 input and output); "float32",
no quantization.

Calibration data, in order of preference
----------------------------------------
1. the ``.npy`` file (array ``[N, *input shape]``) or ``.npz`` file (its first
   array) the user names;
2. ``<model stem>_calib.npy`` beside the model, if it exists;
3. otherwise ``num_calibration`` seeded (seed 0) standard-normal samples of the
   input shape, with a warning: real data quantizes much better.
At most ``num_calibration`` samples (the first ones) are used.

After conversion the float model and the converted model (TFLite's reference
kernels, ``BUILTIN_REF``) are run on the same calibration samples; the
returned dict (also written as JSON to ``report_path``) holds the top-1
agreement and the max / mean absolute difference of the dequantized outputs.

TensorFlow is imported only inside the functions that need it: importing
this module costs nothing (the build system imports it on every run).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tinybuild import flatbuffer_check
from tinybuild.errors import TinybuildError, shown

KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")
CALIB_SEED = 0


def _log(msg: str) -> None:
    print(f"[convert] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _quiet_native_stderr():
    """Send what native code writes to fd 2 (the converter's MLIR chatter) to a
    temp file for the duration; yields a function returning what was written."""
    captured = {"text": ""}
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (unusual embedders): don't redirect
        yield lambda: captured["text"]
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lambda: captured["text"]
        finally:
            try:
                sys.stderr.flush()
            except Exception:
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            captured["text"] = tmp.read().decode(errors="replace")


def _import_tf():
    """Import TensorFlow quietly (C++ log spam off, Python logger at ERROR)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        return tf
    try:
        # TF's native start-up notices (oneDNN, "could not find cuda drivers",
        # cuInit) bypass TF_CPP_MIN_LOG_LEVEL: hide them, keep them for errors.
        with _quiet_native_stderr() as native_log:
            import tensorflow as tf

            tf.constant(0.0) + 1.0  # initializes the devices (the cuInit notice) now
    except Exception as e:  # ImportError, or a broken install failing at import
        raise TinybuildError(
            f"converting a model needs TensorFlow, which cannot be imported ({type(e).__name__}: "
            f"{_short(e)}). Fix: install it (./tb installs tensorflow-cpu and tf-keras, or "
            "pip install 'tinybuild[convert]').") from None

    try:
        tf.get_logger().setLevel("ERROR")
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except Exception:  # pragma: no cover - logging niceties only
        pass
    return tf


# --------------------------------------------------------------------------
# .tflite inspection (no TensorFlow: tinybuild.flatbuffer_check's checked walk)
# --------------------------------------------------------------------------

def _p(path) -> str:
    """A user path as printed in a message (control characters escaped, never cut)."""
    return shown(str(path), limit=0)


def guarded(what: str):
    """Decorator for the readers: an unexpected exception (a bug tinybuild has not met
    yet) becomes one TinybuildError line naming the file, its first argument."""
    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except TinybuildError:
                raise
            except Exception as exc:
                path = args[0] if args else next(iter(kwargs.values()), "?")
                raise TinybuildError(
                    f"{_p(path)}: {what} failed ({type(exc).__name__}: {_short(exc)}). Fix: check "
                    "the file; if it is valid, please report this tinybuild bug with it") from None
        return inner
    return wrap


@guarded("reading the TFLite model")
def read_tflite(path: Path) -> dict:
    """Read and check a .tflite (every offset, index and quantization parameter, see
    tinybuild.flatbuffer_check); return the decoded model or raise TinybuildError."""
    return flatbuffer_check.check_file(Path(path))


def _describe(tensor: dict) -> dict[str, Any]:
    q = tensor["quantization"]
    has_scale = q is not None and q["scale"] is not None and len(q["scale"]) > 0
    has_zp = q is not None and q["zero_point"] is not None and len(q["zero_point"]) > 0
    return {
        "name": (tensor["name"] or b"").decode(errors="replace"),
        "shape": [] if tensor["shape"] is None else [int(d) for d in tensor["shape"]],
        "type": flatbuffer_check.TENSOR_TYPES[tensor["type"]][0],
        "scale": float(q["scale"][0]) if has_scale else None,
        "zero_point": int(q["zero_point"][0]) if has_zp else None,
    }


@guarded("reading the model's inputs and outputs")
def tflite_io(path: Path) -> dict[str, Any]:
    """Input/output shape, type, scale and zero point of a .tflite's subgraph 0
    (``name`` is raw: print it with tinybuild.errors.shown)."""
    graph = read_tflite(path)["subgraphs"][0]
    tensors = graph["tensors"] or []
    return {kind: [_describe(tensors[int(i)]) for i in (graph[kind] if graph[kind] is not None else [])]
            for kind in ("inputs", "outputs")}


_FLOAT_TYPES = ("FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16")


def _type_of(tensor: dict) -> str:
    return flatbuffer_check.TENSOR_TYPES[tensor["type"]][0]


def _not_int8(model: dict) -> list[str]:
    """What keeps a checked model from being "int8 inside", one phrase each: a
    float tensor anywhere but at the edges (a float32 input read only by
    QUANTIZE, an output written by DEQUANTIZE or QUANTIZE). Every other tensor
    type (uint8, int16, int32/int64 ARG_MAX or SHAPE outputs, bool) is left to the
    op lowerings, which refuse, naming op and tensor, a type none of them
    compiles: one rule that cannot drift from what the ops accept."""
    problems = []
    for graph in model["subgraphs"]:
        tensors = graph["tensors"] or []
        edges = _interface_edges(model, graph) | _scale_carriers(graph)
        problems += [f"{_role(graph, i)} '{shown(t['name'] or b'')}' is {_type_of(t)}"
                     for i, t in enumerate(tensors) if _type_of(t) in _FLOAT_TYPES and i not in edges]
    return problems


def _scale_carriers(graph: dict) -> set[int]:
    """Tensors only an op's ``intermediates`` name (the int8 LSTM's gate scales,
    float32 and empty when there is no layer norm): they hold no values."""
    named, used = set(), set()
    for op in graph["operators"] or []:
        named |= {int(t) for t in (op["intermediates"] if op["intermediates"] is not None else [])}
        used |= {int(t) for key in ("inputs", "outputs") for t in (op[key] if op[key] is not None else [])}
    return named - used


def _role(graph: dict, index: int) -> str:
    for kind in ("input", "output"):
        if index in (int(i) for i in (graph[kind + "s"] if graph[kind + "s"] is not None else [])):
            return kind
    return "tensor"


def _interface_edges(model: dict, graph: dict) -> set[int]:
    """Inputs read by QUANTIZE ops only and outputs written by DEQUANTIZE or QUANTIZE."""
    names, readers, writer = [], {}, {}
    for op in graph["operators"] or []:
        code = model["operator_codes"][op["opcode_index"]]
        name = flatbuffer_check.op_name(flatbuffer_check.builtin_code(code))
        for t in op["inputs"] if op["inputs"] is not None else []:
            readers.setdefault(int(t), []).append(name)
        for t in op["outputs"] if op["outputs"] is not None else []:
            writer[int(t)] = name
    inputs = [int(i) for i in graph["inputs"]] if graph["inputs"] is not None else []
    outputs = [int(i) for i in graph["outputs"]] if graph["outputs"] is not None else []
    return ({i for i in inputs if readers.get(i) and set(readers[i]) == {"QUANTIZE"}}
            | {o for o in outputs if writer.get(o) in ("DEQUANTIZE", "QUANTIZE")})


@guarded("checking the model is fully int8")
def check_fully_int8(path: Path) -> None:
    """Raise TinybuildError unless the .tflite is int8 inside: no float tensor
    but at its edges (see _not_int8); the op lowerings check the other types."""
    problems = _not_int8(read_tflite(path))
    if problems:
        listed = "; ".join(problems[:5]) + (f"; ... ({len(problems)} in all)" if len(problems) > 5 else "")
        raise TinybuildError(
            f"{_p(path)}: not a fully int8 TFLite model ({listed}). tinybuild compiles int8 models only. "
            "Fix: give tinybuild the float model (.h5, .keras or SavedModel directory) with calibration "
            "data so it quantizes it itself, or re-export with full-integer quantization "
            "(TFLITE_BUILTINS_INT8, inference_input_type/inference_output_type = tf.int8).")


def float_operators(model: dict) -> list[str]:
    """The operators of a converted model that still touch float tensors, as
    ``ELU (layer 3, output 'model/elu/Elu')``; QUANTIZE/DEQUANTIZE only when
    nothing else is float (they are the converter's glue around a float op)."""
    graph = model["subgraphs"][0]
    tensors = graph["tensors"] or []
    found, glue = [], []
    for i, op in enumerate(graph["operators"] or []):
        touched = [int(t) for key in ("inputs", "outputs", "intermediates")
                   for t in (op[key] if op[key] is not None else []) if t >= 0]
        if not any(_type_of(tensors[t]) in _FLOAT_TYPES for t in touched):
            continue
        name = flatbuffer_check.op_name(flatbuffer_check.builtin_code(
            model["operator_codes"][op["opcode_index"]]))
        outputs = op["outputs"] if op["outputs"] is not None else []
        where = f"layer {i}" + (f", output '{shown(tensors[int(outputs[0])]['name'] or b'')}'"
                                if len(outputs) else "")
        (glue if name in ("QUANTIZE", "DEQUANTIZE") else found).append(f"{name} ({where})")
    return found or glue


# --------------------------------------------------------------------------
# calibration data
# --------------------------------------------------------------------------

_NPY_MAGIC, _NPZ_MAGIC = b"\x93NUMPY", b"PK\x03\x04"
_SAVE_HINT = ("Fix: save the samples as a float32 array [N, *input shape] with "
              "np.save('calib.npy', samples) (or np.savez for .npz)")


def _read_array(path: Path) -> np.ndarray:
    """The array in a .npy file, or the first array of a .npz file; never unpickles."""
    with open(path, "rb") as f:
        head = f.read(6)
    if not head.startswith((_NPY_MAGIC, _NPZ_MAGIC)):
        raise TinybuildError(f"{_p(path)}: not a .npy array file (no numpy header; it starts with "
                             f"{shown(head)!s}). {_SAVE_HINT}.")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            return data
        with data:
            if not data.files:
                raise TinybuildError(f"{_p(path)}: the .npz file holds no array. {_SAVE_HINT}.")
            return data[data.files[0]]
    except ValueError as e:
        if "allow_pickle" not in str(e):
            raise
        raise TinybuildError(f"{_p(path)}: the array holds Python objects (pickled data), which "
                             f"tinybuild never loads (unpickling can run code). {_SAVE_HINT}.") from None


def load_calibration(path: Path, sample_shape: tuple[int, ...], limit: int | None = None) -> np.ndarray:
    """Load calibration samples as float32 ``[N, *sample_shape]`` from .npy / .npz.

    ``sample_shape`` is the model's input shape without the batch dimension.
    Raises TinybuildError naming the expected and the actual shape.
    """
    path = Path(path)
    if not path.is_file():
        raise TinybuildError(f"{_p(path)}: calibration file not found. Fix: give an existing .npy or .npz file.")
    try:
        arr = _read_array(path)
    except TinybuildError:
        raise
    except Exception as e:
        raise TinybuildError(f"{_p(path)}: cannot read calibration data ({type(e).__name__}: {_short(e)}). "
                             f"{_SAVE_HINT}.") from None
    return _checked_samples(path, arr, tuple(int(d) for d in sample_shape), limit)


def _checked_samples(path: Path, arr: np.ndarray, sample_shape: tuple[int, ...],
                     limit: int | None) -> np.ndarray:
    expected = "[N, " + ", ".join(str(d) for d in sample_shape) + "]"
    if arr.ndim != len(sample_shape) + 1 or tuple(arr.shape[1:]) != sample_shape:
        raise TinybuildError(
            f"{_p(path)}: calibration data has shape {list(arr.shape)}, but the model expects {expected} "
            f"(N samples of the input shape {list(sample_shape)}). Fix: reshape the samples to {expected}.")
    if arr.shape[0] == 0:
        raise TinybuildError(f"{_p(path)}: calibration data holds no sample (shape {list(arr.shape)}). "
                             f"Fix: save at least one sample, as {expected}.")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TinybuildError(f"{_p(path)}: calibration data has dtype {arr.dtype}; expected real numbers "
                             f"(float32). {_SAVE_HINT}.")
    if limit is not None:
        arr = arr[:limit]
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise TinybuildError(f"{_p(path)}: calibration data contains NaN or infinite values. Fix: clean the samples.")
    return arr


def default_calibration_path(model_path: Path) -> Path:
    """``<stem>_calib.npy`` beside the model (for a SavedModel dir: beside the dir)."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + "_calib.npy")


def _calibration(model_path: Path, calibration: Path | None, sample_shape: tuple[int, ...],
                 n: int) -> tuple[np.ndarray, str]:
    if calibration is not None:
        return load_calibration(calibration, sample_shape, n), str(calibration)
    beside = default_calibration_path(model_path)
    if beside.is_file():
        return load_calibration(beside, sample_shape, n), str(beside)
    _log(f"WARNING: no calibration data given and no {beside.name} beside the model: calibrating on "
         f"{n} seeded standard-normal samples. Real input samples give much better int8 accuracy "
         f"(save them as {beside.name}, shape [N, {', '.join(map(str, sample_shape))}]).")
    rng = np.random.default_rng(CALIB_SEED)
    return rng.standard_normal((n, *sample_shape)).astype(np.float32), "default: seeded standard normal"


# --------------------------------------------------------------------------
# loading float models
# --------------------------------------------------------------------------

class _FloatModel:
    """A float model with one input: a fixed-batch-1 concrete function + a batch runner."""

    def __init__(self, concrete_fn, trackable, run_batch, sample_shape, loader):
        self.concrete_fn = concrete_fn
        self.trackable = trackable
        self.run_batch = run_batch
        self.sample_shape = sample_shape
        self.loader = loader


def _check_sample_shape(src: Path, shape) -> tuple[int, ...]:
    dims = list(shape)[1:]
    if any(d is None or d < 0 for d in dims):
        raise TinybuildError(
            f"{_p(src)}: the model's input shape {list(shape)} has unknown dimensions besides the batch. "
            "Fix: build the model with a fully defined input shape (e.g. keras.Input(shape=(49, 10, 1))).")
    return tuple(int(d) for d in dims)


# Recurrent Keras layers and what TF 2.21's converter makes of them: a tf_keras (Keras 2)
# LSTM becomes one UNIDIRECTIONAL_SEQUENCE_LSTM (int8 or float32), which tinybuild
# compiles; a Keras 3 LSTM, and a GRU or SimpleRNN from either Keras, a WHILE loop over
# subgraphs (float32), or a converter segfault (int8). With unroll=True they become plain
# ops (FULLY_CONNECTED, MUL, ADD, LOGISTIC, TANH, SPLIT...). Bidirectional and ConvLSTM
# layers have no builtin tinybuild compiles.
_LOOPING_LAYERS = ("LSTM", "GRU", "SimpleRNN", "RNN")
_UNCOMPILED_RECURRENT = ("Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")


def _recurrent_layers(src: Path, model, loader: str):
    """The model to convert and its loader: a Keras 3 model whose LSTMs are not
    unrolled is rebuilt in tf_keras (one LSTM op each); a layer TFLite would
    loop over or that tinybuild cannot compile stops the build in one line."""
    layers = _all_layers(model)
    blocked = [f"'{shown(layer.name)}' ({type(layer).__name__})" for layer in layers
               if type(layer).__name__ in _UNCOMPILED_RECURRENT]
    if blocked:
        raise TinybuildError(
            f"{_p(src)}: recurrent layer(s) {', '.join(blocked[:5])} have no TFLite builtin that "
            "tinybuild compiles. Fix: use plain LSTM layers (tf_keras) or GRU/SimpleRNN with "
            "unroll=True, or replace them (e.g. with Conv1D over time)")
    looping = [layer for layer in layers
               if type(layer).__name__ in _LOOPING_LAYERS and not getattr(layer, "unroll", False)]
    lstm_only = all(type(layer).__name__ == "LSTM" for layer in looping)
    if looping and loader == "keras" and lstm_only:
        twin = _tf_keras_twin(model)
        if twin is not None:
            _log("Keras 3 LSTM: converting its tf_keras (Keras 2) twin, which TFLite writes as one "
                 "UNIDIRECTIONAL_SEQUENCE_LSTM (Keras 3's becomes a loop TF 2.21 cannot quantize)")
            return twin, "tf_keras (rebuilt from Keras 3)"
    if looping and not (loader == "tf_keras" and lstm_only):
        names = ", ".join(f"'{shown(layer.name)}' ({type(layer).__name__})" for layer in looping[:5])
        raise TinybuildError(
            f"{_p(src)}: recurrent layer(s) {names} are not unrolled: TFLite writes them as a WHILE "
            "loop over subgraphs, which tinybuild does not compile (and TF 2.21's int8 converter "
            "crashes on it). Fix: build the layer with unroll=True (a fixed number of time steps: "
            "plain FULLY_CONNECTED/MUL/ADD/LOGISTIC/TANH ops), or for an LSTM save the model with "
            "tf_keras (one UNIDIRECTIONAL_SEQUENCE_LSTM op)")
    return model, loader


def _all_layers(model) -> list:
    try:
        return list(model._flatten_layers(include_self=False))
    except Exception:  # another Keras: the top-level layers are enough to tell
        return list(getattr(model, "layers", []))


# Keras 3 config keys tf_keras does not take (inference does not need them).
_KERAS3_ONLY = ("module", "registered_name", "build_config", "compile_config", "seed", "optional",
                "quantization_config")


def _keras2_config(o):
    """A Keras 3 model config as tf_keras reads it: dtype policies as their names,
    batch_shape as batch_input_shape, initializers/regularizers/constraints left out."""
    if isinstance(o, dict):
        if o.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
            return o.get("config", {}).get("name", "float32")
        return {("batch_input_shape" if k == "batch_shape" else k): _keras2_config(v)
                for k, v in o.items()
                if k not in _KERAS3_ONLY and not k.endswith(("_initializer", "_regularizer", "_constraint"))}
    if isinstance(o, list):
        return [_keras2_config(v) for v in o]
    return o


def _tf_keras_twin(model):
    """The Keras 3 ``model`` rebuilt in tf_keras with the same weights (from its
    config, else as a chain of its layers), or None when neither gives the same
    outputs on a seeded sample."""
    import json
    try:
        import tf_keras
        config = _keras2_config(json.loads(model.to_json()))
    except Exception:
        return None
    for build in (lambda: tf_keras.models.model_from_json(json.dumps(config)),
                  lambda: _layer_chain(tf_keras, model, config)):
        try:
            twin = build()
            for layer in model.layers:
                if layer.weights:
                    twin.get_layer(layer.name).set_weights(layer.get_weights())
            if _same_outputs(model, twin):
                return twin
        except Exception:
            continue
    return None


def _layer_chain(tf_keras, model, config):
    """A tf_keras Sequential of the model's layers in order (a functional model
    whose layers form one chain; _same_outputs tells whether they do)."""
    shape = [1, *model.inputs[0].shape[1:]]
    chain = tf_keras.Sequential([tf_keras.Input(batch_shape=shape)])
    for layer in config["config"]["layers"]:
        if layer["class_name"] != "InputLayer":
            chain.add(tf_keras.layers.deserialize({"class_name": layer["class_name"],
                                                   "config": layer["config"]}))
    return chain


def _same_outputs(model, twin) -> bool:
    x = np.random.default_rng(0).standard_normal([1, *model.inputs[0].shape[1:]]).astype(np.float32)
    a, b = np.asarray(model(x)), np.asarray(twin(x))
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-4, atol=1e-5))


def _from_keras(tf, src: Path, model, loader: str) -> _FloatModel:
    model, loader = _recurrent_layers(src, model, loader)
    inputs = model.inputs
    outputs = model.outputs
    if len(inputs) != 1:
        raise TinybuildError(
            f"{_p(src)}: the model has {len(inputs)} inputs; tinybuild supports models with exactly one input. "
            "Fix: merge the inputs into one tensor (e.g. concatenate them) before exporting the model.")
    if len(outputs) != 1:
        raise TinybuildError(
            f"{_p(src)}: the model has {len(outputs)} outputs; tinybuild supports models with exactly one output. "
            "Fix: keep only the output the firmware needs (keras.Model(inputs, outputs[i])).")
    sample_shape = _check_sample_shape(src, inputs[0].shape)
    spec = tf.TensorSpec([1, *sample_shape], tf.float32, name="input")

    def call(x):
        # Keras 3 warns when a model saved with a one-element input list gets a
        # bare tensor; the call is right all the same.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*structure of `inputs`")
            return model(x, training=False)

    @tf.function(input_signature=[spec])
    def serve(x):
        return call(x)

    def run_batch(x: np.ndarray) -> np.ndarray:
        y = call(x)
        return y.numpy() if hasattr(y, "numpy") else np.asarray(y)

    # The converter freezes the variables it can reach from the trackable object.
    # Keras 3 variables wrap tf.Variables that plain tracking does not find
    # (the converted model would keep READ_VARIABLE ops), so hand it a module
    # that holds the underlying tf.Variables as well as the model.
    holder = tf.Module()
    holder.model = model
    holder.tf_variables = [v.value if not isinstance(v, tf.Variable) and isinstance(
        getattr(v, "value", None), tf.Variable) else v for v in model.variables]
    return _FloatModel(serve.get_concrete_function(), holder, run_batch, sample_shape, loader)


def _load_keras(tf, src: Path) -> _FloatModel:
    errors = []
    try:
        import keras  # Keras 3

        model = keras.models.load_model(src, compile=False)
        return _from_keras(tf, src, model, "keras")
    except TinybuildError:
        raise
    except Exception as e:
        errors.append(f"Keras 3: {type(e).__name__}: {_short(e)}")
    try:
        import tf_keras

        model = tf_keras.models.load_model(src, compile=False)
        return _from_keras(tf, src, model, "tf_keras")
    except TinybuildError:
        raise
    except Exception as e:
        errors.append(f"tf_keras (Keras 2): {type(e).__name__}: {_short(e)}")
    try:
        head = src.read_bytes()[:64]
    except OSError:
        head = b""
    hint = flatbuffer_check.lfs_hint(head)
    raise TinybuildError(
        f"{_p(src)}: cannot load the Keras model{hint} ({'; '.join(errors)}). "
        "Fix: check that the file is a complete Keras .h5/.keras file (re-save it with model.save), "
        "or export the model as a SavedModel directory or a fully int8 .tflite.")


def _load_saved_model(tf, src: Path) -> _FloatModel:
    try:
        loaded = tf.saved_model.load(str(src))
    except Exception as e:
        raise TinybuildError(f"{_p(src)}: cannot load the SavedModel ({type(e).__name__}: {_short(e)}). "
                             "Fix: re-export it with tf.saved_model.save or model.export.") from e
    sigs = getattr(loaded, "signatures", {})
    if "serving_default" not in sigs:
        raise TinybuildError(f"{_p(src)}: the SavedModel has no 'serving_default' signature "
                             f"(it has: {sorted(sigs) or 'none'}). Fix: export it with a serving signature.")
    sig = sigs["serving_default"]
    _, kwspec = sig.structured_input_signature
    if len(kwspec) != 1:
        raise TinybuildError(
            f"{_p(src)}: the model has {len(kwspec)} inputs ({shown(', '.join(sorted(kwspec)))}); tinybuild supports "
            "models with exactly one input. Fix: merge the inputs into one tensor before exporting.")
    outs = sig.structured_outputs
    if len(outs) != 1:
        raise TinybuildError(
            f"{_p(src)}: the model has {len(outs)} outputs ({shown(', '.join(sorted(outs)))}); tinybuild supports models "
            "with exactly one output. Fix: export a signature that returns only the output the firmware needs.")
    (in_name, in_spec), = kwspec.items()
    (out_name,) = outs.keys()
    sample_shape = _check_sample_shape(src, in_spec.shape)
    spec = tf.TensorSpec([1, *sample_shape], tf.float32, name="input")

    @tf.function(input_signature=[spec])
    def serve(x):
        return sig(**{in_name: tf.cast(x, in_spec.dtype)})[out_name]

    def run_batch(x: np.ndarray) -> np.ndarray:
        return sig(**{in_name: tf.constant(x, dtype=in_spec.dtype)})[out_name].numpy()

    return _FloatModel(serve.get_concrete_function(), loaded, run_batch, sample_shape, "saved_model")


def _short(e: BaseException, n: int = 300) -> str:
    """An exception's text on one line, escaped: it may quote names from the model."""
    return shown(" ".join(str(e).split()), limit=n)


# --------------------------------------------------------------------------
# conversion
# --------------------------------------------------------------------------

# quant= : what the converter makes of a float model.
QUANT_MODES = ("int8", "int16x8", "float32")


def _configure(tf, converter, quant: str, calib: np.ndarray) -> None:
    """TFLite's settings for ``quant``: full-integer int8, 16x8 (int16
    activations, int8 weights: TFLite's EXPERIMENTAL 16x8 op set, int16 I/O), or
    no quantization at all (float32 kept)."""
    if quant == "float32":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return

    def representative_dataset():
        for sample in calib:
            yield [sample[None, ...].astype(np.float32)]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    if quant == "int16x8":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int16
    else:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8


def _quantize(tf, src: Path, fm: _FloatModel, calib: np.ndarray, quant: str = "int8") -> bytes:
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fm.concrete_fn], fm.trackable)
    _configure(tf, converter, quant, calib)
    try:
        with _quiet_native_stderr() as native_log:
            return converter.convert()
    except Exception as e:
        log = [ln for ln in native_log().splitlines() if "error" in ln.lower()]
        detail = (" Converter log: " + _short(" | ".join(log[-5:]), 600)) if log else ""
        fix = {"int8": "the model uses an op with no int8 TFLite builtin kernel; replace that layer "
                       "(tinybuild supports TFLITE_BUILTINS_INT8 ops only).",
               "int16x8": "TFLite's 16x8 mode does not cover one of the model's ops; build it with "
                          "quant=int8 or quant=float32, or replace that layer.",
               "float32": "the model uses an op with no TFLite builtin kernel; replace that layer."}
        raise TinybuildError(
            f"{_p(src)}: TFLite {quant} conversion failed ({type(e).__name__}: {_short(e, 600)})."
            f"{detail} Fix: {fix[quant]}") from e


def make_interpreter(tf, tflite_path: Path):
    """A tf.lite.Interpreter with TFLite's reference kernels (BUILTIN_REF: no
    XNNPACK, whose int8 results can differ), tensors allocated."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the "tf.lite.Interpreter is deprecated" notice
        interp = tf.lite.Interpreter(
            model_path=str(tflite_path),
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    return interp


def run_int8(tf, tflite_path: Path, x: np.ndarray) -> np.ndarray:
    """Run a (single-input) int8 .tflite on float samples x [N, ...] with TFLite's
    reference kernels; inputs are quantized and outputs dequantized. Returns float32."""
    interp = make_interpreter(tf, tflite_path)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    in_scale, in_zp = inp["quantization"]
    out_scale, out_zp = out["quantization"]
    results = []
    for sample in x:
        q = _quantized(sample, inp["dtype"], in_scale, in_zp)
        interp.reset_all_variables()     # each sample from a fresh LSTM/SVDF state, as Keras runs it
        interp.set_tensor(inp["index"], q.reshape(inp["shape"]))
        interp.invoke()
        y = interp.get_tensor(out["index"]).astype(np.float32)
        results.append((y - out_zp) * out_scale if out_scale else y)
    return np.stack(results).reshape(len(x), -1)


def _quantized(sample: np.ndarray, dtype, scale: float, zero_point: int) -> np.ndarray:
    """A float sample as the model's input type takes it (float inputs as they are)."""
    if np.issubdtype(dtype, np.floating) or not scale:
        return sample.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(sample / scale) + zero_point, info.min, info.max).astype(dtype)


def agreement(float_out: np.ndarray, int8_out: np.ndarray) -> dict[str, float]:
    """Top-1 agreement (fraction) and max / mean abs difference, per-sample outputs flattened."""
    f = np.asarray(float_out, np.float32).reshape(len(float_out), -1)
    q = np.asarray(int8_out, np.float32).reshape(len(int8_out), -1)
    diff = np.abs(f - q)
    return {
        "top1_agreement": float(np.mean(np.argmax(f, axis=1) == np.argmax(q, axis=1))),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
    }


@guarded("converting the model")
def convert_model(src: Path, dst: Path, calibration: Path | None = None, report_path: Path | None = None,
                  num_calibration: int = 100, quant: str = "int8") -> dict:
    """Convert ``src`` into a ``.tflite`` at ``dst``; return the report dict.

    ``quant`` (the ``quant=`` build variable) says what a float model becomes:
    "int8" (full-integer), "int16x8" (int16 activations, int8 weights) or
    "float32" (not quantized). A ``.tflite`` keeps the types it was written with
    (int8, 16x8 or float32 inside); a dynamic-range ("hybrid") one is refused.

    Report keys: ``source``, ``output``, ``mode`` ("quantized" or "copied"), ``loader``,
    ``input`` / ``output_tensor`` (shape, type, scale, zero point of the int8 model's
    input and output tensors), and for
    quantized models ``calibration`` (where the samples came from), ``num_samples``,
    ``top1_agreement``, ``max_abs_diff``, ``mean_abs_diff`` (float model vs the int8
    model run with TFLite's reference kernels on the calibration samples).
    ``dst`` is written only when every check passed.
    """
    src, dst = Path(src), Path(dst)
    if quant not in QUANT_MODES:
        raise TinybuildError(f"quant={shown(quant)}: not a quantization tinybuild makes. Fix: quant= one "
                             f"of {', '.join(QUANT_MODES)}")
    if num_calibration < 1:
        raise TinybuildError(f"num_calibration must be at least 1 (got {num_calibration}).")
    if not src.exists():
        raise TinybuildError(f"{_p(src)}: model file not found. Fix: check the path (model=...).")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_file() and src.suffix.lower() == ".tflite":
        report = _copy_tflite(src, dst, quant)
    else:
        report = _quantize_float_model(src, dst, calibration, num_calibration, quant)
        report["quant"] = quant
    _write_report(report, report_path)
    return report


def _copy_tflite(src: Path, dst: Path, quant: str) -> dict:
    from tinybuild.importer import load_graph

    _log(f"checking {_p(src)} ...")
    model = read_tflite(src)
    kind = tflite_kind(model)
    if kind == "hybrid":
        raise _hybrid_error(src, model)
    if quant not in ("int8", kind):      # int8 is the default: a .tflite keeps its own types
        raise TinybuildError(
            f"quant={quant}: {_p(src)} is a .tflite, which keeps the types it was written with "
            f"({kind} inside). Fix: leave quant= out for a .tflite, or give the float Keras model")
    io = tflite_io(src)
    _check_io_count(src, io)
    load_graph(src)  # operator options too, before TensorFlow ever reads the file
    if src.resolve() != dst.resolve():
        tmp = dst.with_name(dst.name + ".tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    _log(f"{shown(src.name)} is {kind} inside: copied to {_p(dst)}")
    return {"source": str(src), "output": str(dst), "mode": "copied", "loader": None, "quant": kind,
            "input": _io_summary(io["inputs"][0]), "output_tensor": _io_summary(io["outputs"][0]),
            "calibration": None, "num_samples": 0,
            "top1_agreement": None, "max_abs_diff": None, "mean_abs_diff": None}


def _quantize_float_model(src: Path, dst: Path, calibration: Path | None, num_calibration: int,
                          quant: str = "int8") -> dict:
    is_saved_model = src.is_dir() and ((src / "saved_model.pb").is_file()
                                       or (src / "saved_model.pbtxt").is_file())
    if src.is_dir() and not is_saved_model:
        raise TinybuildError(f"{_p(src)}: a directory that is not a SavedModel (no saved_model.pb). "
                             "Fix: point at the SavedModel directory or at a .h5/.keras/.tflite file.")
    if not is_saved_model and src.suffix.lower() not in KERAS_SUFFIXES:
        raise TinybuildError(
            f"{_p(src)}: unsupported model format '{shown(src.suffix) or '(no suffix)'}'. Fix: give a "
            ".tflite (fully int8), .h5 or .keras (Keras) file, or a SavedModel directory.")
    _log(f"loading {_p(src)} ...")
    tf = _import_tf()
    fm = _load_saved_model(tf, src) if is_saved_model else _load_keras(tf, src)
    calib, calib_src = _calibration(src, calibration, fm.sample_shape, num_calibration)
    _log(f"calibrating on {len(calib)} samples ({_p(calib_src)}) ..." if quant != "float32"
         else "converting to float32 TFLite (no quantization) ...")
    _install(src, dst, _quantize(tf, src, fm, calib, quant), quant)
    try:
        report = _compare(tf, src, dst, fm, calib)
    except BaseException:
        dst.unlink(missing_ok=True)  # no int8 model on disk without its check
        raise
    report["calibration"] = calib_src
    return report


def _install(src: Path, dst: Path, tflite: bytes, quant: str = "int8") -> None:
    """Write the converter's output to ``dst`` once it is checked and, when
    quantized, has no float tensor left inside."""
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.write_bytes(tflite)
    try:
        model = read_tflite(tmp)
        if quant != "float32" and _not_int8(model):
            raise _float_left_error(src, model, quant)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def _float_left_error(src: Path, model: dict, quant: str = "int8") -> TinybuildError:
    ops = float_operators(model) or _not_int8(model)
    listed = "; ".join(ops[:5]) + (f"; ... ({len(ops)} in all)" if len(ops) > 5 else "")
    return TinybuildError(
        f"{_p(src)}: TFLite could not quantize every operator to {quant}: {listed} stayed float "
        "(tinybuild does not mix float and integer layers). Fix: replace those layers with ones "
        "TFLite quantizes (e.g. ReLU for ELU), or build the whole model in float: quant=float32")


def tflite_kind(model: dict) -> str:
    """What a checked .tflite computes in: "int8", "int16x8" (int16 activations),
    "float32", or "hybrid" (float activations with int8/float16 weights that TFLite
    dequantizes at run time: dynamic-range or float16 quantization)."""
    if _hybrid_ops(model):
        return "hybrid"
    if not _not_int8(model):
        graph = model["subgraphs"][0]
        tensors = graph["tensors"] or []
        # 16x8 models compute int16 activations; an int8 LSTM or SVDF only keeps
        # int16 state and weights, as inputs of its op
        written = {int(t) for op in graph["operators"] or [] for t in (op["outputs"] if op["outputs"]
                                                                      is not None else [])}
        return "int16x8" if any(_type_of(tensors[t]) == "INT16" for t in written) else "int8"
    return "float32"


def _hybrid_ops(model: dict) -> list[str]:
    """Operators reading a float activation together with quantized or float16
    weights (what dynamic-range and float16 quantization write)."""
    graph = model["subgraphs"][0]
    tensors = graph["tensors"] or []
    buffers = model["buffers"] or []
    found = []
    for i, op in enumerate(graph["operators"] or []):
        ins = [tensors[int(t)] for t in (op["inputs"] if op["inputs"] is not None else []) if t >= 0]
        constant = [t for t in ins if _is_constant(t, buffers)]
        float_activation = any(_type_of(t) in _FLOAT_TYPES for t in ins if t not in constant)
        compact_weights = any(_type_of(t) in ("INT8", "UINT8", "FLOAT16") for t in constant)
        name = flatbuffer_check.op_name(flatbuffer_check.builtin_code(
            model["operator_codes"][op["opcode_index"]]))
        if name == "DEQUANTIZE" and any(_type_of(t) == "FLOAT16" for t in constant):
            found.append(f"DEQUANTIZE (layer {i}, float16 weights)")
        elif float_activation and compact_weights and name != "QUANTIZE":
            found.append(f"{name} (layer {i})")
    return found


def _is_constant(tensor: dict, buffers: list) -> bool:
    data = buffers[tensor["buffer"]]["data"] if tensor["buffer"] < len(buffers) else None
    return data is not None and bool(data[1])


def _hybrid_error(src: Path, model: dict) -> TinybuildError:
    ops = _hybrid_ops(model)
    listed = ", ".join(ops[:3]) + (f", ... ({len(ops)} in all)" if len(ops) > 3 else "")
    return TinybuildError(
        f"{_p(src)}: a dynamic-range (hybrid) or float16-weight model: {listed} read float "
        "activations with int8/float16 weights that TFLite dequantizes at run time; tinybuild "
        "compiles full-integer (int8, 16x8) or float32 models. Fix: export with a representative "
        "dataset for full-integer quantization (or give the Keras model with quant=int8), or "
        "without optimizations for float32 (quant=float32)")


def _compare(tf, src: Path, dst: Path, fm: _FloatModel, calib: np.ndarray) -> dict:
    _log(f"checking float vs int8 on {len(calib)} samples ...")
    float_out = fm.run_batch(calib).reshape(len(calib), -1)
    int8_out = run_int8(tf, dst, calib)
    io = tflite_io(dst)
    report = {"source": str(src), "output": str(dst), "mode": "quantized", "loader": fm.loader,
              "input": _io_summary(io["inputs"][0]), "output_tensor": _io_summary(io["outputs"][0]),
              "calibration": None, "num_samples": int(len(calib)),
              **agreement(float_out, int8_out)}
    _log(f"wrote {_p(dst)} ({dst.stat().st_size} B): top-1 agreement {report['top1_agreement']:.3f}, "
         f"max |diff| {report['max_abs_diff']:.4g}, mean |diff| {report['mean_abs_diff']:.4g}")
    return report


def _check_io_count(src: Path, io: dict) -> None:
    """A .tflite may have several inputs and outputs (the firmware's tb_io_desc lists them)."""
    for kind in ("inputs", "outputs"):
        if not io[kind]:
            raise TinybuildError(f"{_p(src)}: the model has no {kind}; tinybuild compiles models that "
                                 "map inputs to outputs. Fix: re-export it with its inputs and outputs")


def _io_summary(t: dict) -> dict:
    return {"shape": t["shape"], "type": t["type"], "scale": t["scale"], "zero_point": t["zero_point"]}


def _write_report(report: dict, report_path: Path | None) -> None:
    if report_path is None:
        return
    report_path = Path(report_path)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m tinybuild.convert MODEL OUT.tflite [--calibration F] [--report R] [-n N]``"""
    import argparse

    p = argparse.ArgumentParser(prog="python -m tinybuild.convert", description=main.__doc__)
    p.add_argument("model", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--calibration", type=Path, default=None)
    p.add_argument("--report", type=Path, default=None)
    p.add_argument("-n", "--num-calibration", type=int, default=100)
    a = p.parse_args(argv)
    try:
        report = convert_model(a.model, a.output, a.calibration, a.report, a.num_calibration)
    except TinybuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
