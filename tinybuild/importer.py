"""Read an int8 ``.tflite`` flatbuffer into a :class:`tinybuild.graph.Graph`.

Uses the ``tflite`` package's generated schema readers, not TensorFlow, so
code generation never pays TensorFlow's import.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import TinybuildError
from .graph import Graph, Operator, Tensor

# TFLite TensorType enum -> numpy dtype name (the types an int8 model carries).
_TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64",
                 7: "int16", 9: "int8", 10: "float64"}

_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH",
                5: "SIGN_BIT", 6: "SIGN_BIT"}
_PADDING = {0: "SAME", 1: "VALID"}


def load_graph(path: Path) -> Graph:
    import tflite  # the flatbuffer readers: a few hundred small modules

    path = Path(path)
    try:
        buf = path.read_bytes()
        if len(buf) < 8 or buf[4:8] != b"TFL3":
            raise ValueError("no TFL3 file identifier")
        model = tflite.Model.GetRootAsModel(buf, 0)
        if model.SubgraphsLength() != 1:
            raise TinybuildError(
                f"{path}: the model has {model.SubgraphsLength()} subgraphs; tinybuild "
                "compiles single-subgraph models (no control flow ops)")
        sub = model.Subgraphs(0)
        tensors = [_read_tensor(model, sub.Tensors(i), i) for i in range(sub.TensorsLength())]
        ops = [_read_operator(tflite, model, sub.Operators(i), i)
               for i in range(sub.OperatorsLength())]
        inputs = [int(i) for i in sub.InputsAsNumpy()]
        outputs = [int(i) for i in sub.OutputsAsNumpy()]
    except TinybuildError:
        raise
    except Exception as exc:  # a truncated or foreign file fails deep in flatbuffers
        raise TinybuildError(
            f"{path}: not a readable TensorFlow Lite model ({exc}). Re-export it with "
            "tf.lite.TFLiteConverter, or pass the Keras .h5/.keras file instead") from None
    name = path.name.split(".")[0]
    return Graph(name=name, tensors=tensors, operators=ops, inputs=inputs, outputs=outputs)


def _read_tensor(model, t, index: int) -> Tensor:
    dtype = _TENSOR_TYPES.get(t.Type(), f"type{t.Type()}")
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    scales, zps, qdim = (), (), 0
    q = t.Quantization()
    if q is not None and q.ScaleLength():
        scales = tuple(float(s) for s in q.ScaleAsNumpy())
        zps = tuple(int(z) for z in q.ZeroPointAsNumpy())
        qdim = int(q.QuantizedDimension())
    data = None
    buffer = model.Buffers(t.Buffer())
    if buffer is not None and buffer.DataLength():
        data = np.frombuffer(buffer.DataAsNumpy().tobytes(), dtype=dtype).reshape(shape)
    name = t.Name().decode() if t.Name() else f"t{index}"
    return Tensor(index, name, shape, dtype, scales, zps, qdim, data)


def _opcode_name(tflite, model, op) -> str:
    code = model.OperatorCodes(op.OpcodeIndex())
    # Schema 3a: small opcodes live in the deprecated byte, large ones in the int.
    builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
    if builtin == 32:  # CUSTOM
        return "CUSTOM:" + (code.CustomCode() or b"?").decode()
    return tflite.opcode2name(builtin)


def _read_operator(tflite, model, op, index: int) -> Operator:
    name = _opcode_name(tflite, model, op)
    inputs = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
    outputs = [int(i) for i in op.OutputsAsNumpy()] if op.OutputsLength() else []
    return Operator(index, name, inputs, outputs, _read_options(tflite, name, op))


def _read_options(tflite, name: str, op) -> dict:
    table = op.BuiltinOptions()
    reader = _OPTION_READERS.get(name)
    if table is None or reader is None:
        return {}
    cls_name, fields = reader
    opts = getattr(tflite, cls_name)()
    opts.Init(table.Bytes, table.Pos)
    out = {}
    for key in fields:
        value = getattr(opts, key)()
        if key == "FusedActivationFunction":
            value = _ACTIVATIONS.get(value, str(value))
        elif key == "Padding":
            value = _PADDING[value]
        out[key] = value
    return out


_CONV = ("Padding", "StrideW", "StrideH", "DilationWFactor", "DilationHFactor",
         "FusedActivationFunction")
_OPTION_READERS = {
    "CONV_2D": ("Conv2DOptions", _CONV),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", _CONV + ("DepthMultiplier",)),
    "AVERAGE_POOL_2D": ("Pool2DOptions", ("Padding", "StrideW", "StrideH", "FilterWidth",
                                          "FilterHeight", "FusedActivationFunction")),
    "MAX_POOL_2D": ("Pool2DOptions", ("Padding", "StrideW", "StrideH", "FilterWidth",
                                      "FilterHeight", "FusedActivationFunction")),
    "FULLY_CONNECTED": ("FullyConnectedOptions", ("FusedActivationFunction", "KeepNumDims",
                                                  "WeightsFormat")),
    "ADD": ("AddOptions", ("FusedActivationFunction",)),
    "SOFTMAX": ("SoftmaxOptions", ("Beta",)),
}
