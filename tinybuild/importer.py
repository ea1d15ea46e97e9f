"""Read an int8 ``.tflite`` flatbuffer into a :class:`tinybuild.graph.Graph`.

The file is walked and checked by :mod:`tinybuild.flatbuffer_check` (every
offset in bounds, indices in range, quantization consistent), and the graph is
built from what that walk decoded: no TensorFlow, and no unchecked flatbuffer
reads, so code generation never pays TensorFlow's import and a damaged file is
one error line.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import flatbuffer_check as fb
from .errors import TinybuildError, shown
from .graph import Graph, Operator, Tensor

# TFLite TensorType enum -> numpy dtype name (the types an int8 model carries).
_TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64",
                 7: "int16", 9: "int8", 10: "float64"}

_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH",
                5: "SIGN_BIT"}
_PADDING = {0: "SAME", 1: "VALID"}


def load_graph(path: Path) -> Graph:
    path = Path(path)
    try:
        buf = fb.read_model_file(path)
        return _graph(path, buf, fb.check(buf, path))
    except TinybuildError:
        raise
    except Exception as exc:  # a reader bug must still be one line, not a traceback
        raise TinybuildError(
            f"{shown(str(path), limit=0)}: cannot import the model ({type(exc).__name__}: "
            f"{shown(' '.join(str(exc).split()), limit=200)}). Fix: re-export it with "
            "tf.lite.TFLiteConverter; if TFLite runs it, please report this tinybuild bug") from None


def _graph(path: Path, buf: bytes, model: dict) -> Graph:
    if len(model["subgraphs"]) != 1:
        main = [_opcode_name(path, model, op) for op in model["subgraphs"][0]["operators"] or []]
        loop = ("; its WHILE loop is how TFLite writes a Keras RNN/GRU/LSTM that is not unrolled. Fix: "
                "build the recurrent layer with unroll=True (or an LSTM with tf_keras)") \
            if "WHILE" in main else ""
        raise TinybuildError(
            f"{shown(str(path), limit=0)}: the model has {len(model['subgraphs'])} subgraphs; "
            f"tinybuild compiles single-subgraph models (no control flow ops){loop}")
    sub = model["subgraphs"][0]
    tensors = [_read_tensor(path, buf, model, t, i) for i, t in enumerate(sub["tensors"] or [])]
    ops = [_read_operator(path, model, op, i) for i, op in enumerate(sub["operators"] or [])]
    name = path.name.split(".")[0]
    return Graph(name=name, tensors=tensors, operators=ops, inputs=_ints(sub["inputs"]),
                 outputs=_ints(sub["outputs"]))


def _ints(vector) -> list[int]:
    return [] if vector is None else [int(v) for v in vector]


def _read_tensor(path: Path, buf: bytes, model: dict, t: dict, index: int) -> Tensor:
    shape = tuple(_ints(t["shape"]))
    name = t["name"].decode("utf-8", errors="backslashreplace") if t["name"] else f"t{index}"
    scales, zps, qdim = (), (), 0
    q = t["quantization"]
    if q is not None and q["scale"] is not None and len(q["scale"]):
        scales = tuple(float(s) for s in q["scale"])
        zps = tuple(int(z) for z in q["zero_point"])
        qdim = int(q["quantized_dimension"])
    dtype = _TENSOR_TYPES.get(t["type"], f"type{t['type']}")
    data = None
    span = model["buffers"][t["buffer"]]["data"]
    if span is not None and span[1]:
        if t["type"] not in _TENSOR_TYPES:
            raise TinybuildError(
                f"{shown(str(path), limit=0)}: constant tensor {index} '{shown(name)}' is "
                f"{fb.TENSOR_TYPES[t['type']][0]}; tinybuild compiles int8 models (int8 weights, "
                "int32 biases). Fix: convert the model to full int8")
        start, length = span
        data = np.frombuffer(buf, dtype=dtype, count=length // np.dtype(dtype).itemsize,
                             offset=start).reshape(shape)
    return Tensor(index, name, shape, dtype, scales, zps, qdim, data)


def _opcode_name(path: Path, model: dict, op: dict) -> str:
    code = model["operator_codes"][op["opcode_index"]]
    builtin = fb.builtin_code(code)
    if builtin == fb.CUSTOM:  # kept raw, as tensor names are: messages print it with shown()
        return "CUSTOM:" + code["custom_code"].decode("utf-8", errors="backslashreplace")
    return fb.op_name(builtin)


def _read_operator(path: Path, model: dict, op: dict, index: int) -> Operator:
    name = _opcode_name(path, model, op)
    return Operator(index, name, _ints(op["inputs"]), _ints(op["outputs"]),
                    _read_options(path, name, op, index), _ints(op["intermediates"]))


def _read_options(path: Path, name: str, op: dict, index: int) -> dict:
    """The options the op's lowering reads, as its OpDef lists them (tinybuild.ops)."""
    from . import ops
    table, options = op["builtin_options"], ops.options_of(name)
    if table is None or options is None:
        return {}
    out = {}
    for f in options.fields:
        value = table[f.field]
        if f.key == "FusedActivationFunction":
            value = _known(path, _ACTIVATIONS, value, index, name, "fused activation")
        elif f.key == "Padding":
            value = _known(path, _PADDING, value, index, name, "padding")
        elif f.kind == "bool":
            value = bool(value)
        elif isinstance(f.kind, tuple):
            value = [] if value is None else [int(v) for v in value]
        out[f.key] = value
    return out


def _known(path: Path, names: dict, value: int, index: int, op: str, what: str) -> str:
    if value not in names:
        raise TinybuildError(
            f"{shown(str(path), limit=0)}: layer {index} ({op}) has {what} code {value}, which TFLite "
            f"does not define (known: {', '.join(f'{k} {v}' for k, v in names.items())}). "
            "Fix: re-export the model")
    return names[value]
