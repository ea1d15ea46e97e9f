"""Write TFLite flatbuffers: any ops, several inputs and outputs, any tensor
types, with TensorFlow's flatbuffer object API (TensorFlow's own schema, so the
files are exactly what TFLite's interpreter reads).

Product code: the ONNX importer (tinybuild/onnx/) writes the int8, 16x8 or
float .tflite it hands to the rest of the pipeline with it, and the op tests
build their small models with it (tests/ops/tflite_builder.py re-exports it).

    b = ModelBuilder()
    x = b.input((1, 8, 8, 3), "int8", scale=0.05, zero_point=-3)
    w = b.const(weights, "int8", scale=[0.01, 0.02], zero_point=[0, 0], axis=0)
    y = b.tensor((1, 8, 8, 2), "int8", scale=0.1, zero_point=4)
    b.op("CONV_2D", [x, w, -1], [y], b.options("Conv2DOptions", padding="SAME", strideH=1,
                                                strideW=1, fusedActivationFunction="RELU"))
    model = b.build([y])                     # the graph's outputs; its inputs are b.input()s

Tensors get names ``t<index>`` unless given one. ``op`` takes a TFLite
builtin name or ``"CUSTOM:<code>"``. ``options`` sets the fields of a
BuiltinOptions table by their object-API names; ``padding`` and
``fusedActivationFunction`` also take names ("SAME", "RELU6").
"""
from __future__ import annotations

import numpy as np

TYPES = {"float32": 0, "float16": 1, "int32": 2, "uint8": 3, "int64": 4, "bool": 6, "int16": 7,
         "int8": 9}
ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
PADDINGS = {"SAME": 0, "VALID": 1}


def schema():
    from tensorflow.lite.python import schema_py_generated as S
    return S


class ModelBuilder:
    def __init__(self, description: str = "tinybuild op test"):
        self.S = schema()
        self.description = description
        self.buffers = [self.S.BufferT()]
        self.tensors: list = []
        self.inputs: list[int] = []
        self.operators: list = []
        self.codes: list[tuple[int, str | None, int]] = []   # (builtin code, custom code, version)

    # -- tensors ---------------------------------------------------------------------------
    def tensor(self, shape, dtype: str = "int8", scale=None, zero_point=None, *, data=None,
               axis: int = 0, name: str | None = None, variable: bool = False) -> int:
        """A tensor; quantized when ``scale`` is given (a number or one per channel);
        ``variable``: a state tensor (an LSTM's), which TFLite resets before each run."""
        S = self.S
        t = S.TensorT()
        t.shape = np.array(shape, dtype=np.int32)
        t.type = TYPES[dtype]
        t.name = (name if name is not None else f"t{len(self.tensors)}").encode()
        t.buffer = 0
        t.isVariable = variable
        if data is not None:
            b = S.BufferT()
            raw = np.ascontiguousarray(np.asarray(data, dtype=dtype)).tobytes()
            b.data = np.frombuffer(raw, dtype=np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        if scale is not None:
            scales = np.atleast_1d(np.asarray(scale, dtype=np.float32))
            zps = np.atleast_1d(np.asarray(0 if zero_point is None else zero_point, dtype=np.int64))
            q = S.QuantizationParametersT()
            q.scale, q.zeroPoint = scales, np.broadcast_to(zps, scales.shape).copy()
            q.quantizedDimension = axis
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def input(self, shape, dtype: str = "int8", scale=None, zero_point=None, name=None) -> int:
        """A graph input (in the order they are made)."""
        index = self.tensor(shape, dtype, scale, zero_point, name=name)
        self.inputs.append(index)
        return index

    def const(self, data, dtype: str = "int8", scale=None, zero_point=None, axis: int = 0,
              name=None) -> int:
        data = np.asarray(data)
        return self.tensor(data.shape, dtype, scale, zero_point, data=data, axis=axis, name=name)

    # -- operators --------------------------------------------------------------------------
    def options(self, table: str, **fields):
        """``(BuiltinOptions member, object)`` with the given object-API fields set."""
        obj = getattr(self.S, table + "T")()
        for key, value in fields.items():
            if key == "padding" and isinstance(value, str):
                value = PADDINGS[value]
            if key == "fusedActivationFunction" and isinstance(value, str):
                value = ACTIVATIONS[value]
            setattr(obj, key, value)
        return table, obj

    def op(self, name: str, inputs, outputs, options=None, version: int = 1,
           custom_options: bytes | None = None, intermediates=None) -> None:
        S = self.S
        if name.startswith("CUSTOM:"):
            key = (S.BuiltinOperator.CUSTOM, name[len("CUSTOM:"):], version)
        else:
            key = (getattr(S.BuiltinOperator, name), None, version)
        if key not in self.codes:
            self.codes.append(key)
        op = S.OperatorT()
        op.opcodeIndex = self.codes.index(key)
        op.inputs = np.array(inputs, dtype=np.int32)
        op.outputs = np.array(outputs, dtype=np.int32)
        if intermediates is not None:        # the int8 LSTM's (TFLite's 8x8_16 kernel reads them)
            op.intermediates = np.array(intermediates, dtype=np.int32)
        if options is not None:
            table, obj = options
            op.builtinOptionsType = getattr(S.BuiltinOptions, table)
            op.builtinOptions = obj
        if custom_options is not None:
            op.customOptions = np.frombuffer(custom_options, dtype=np.uint8)
        self.operators.append(op)

    def build(self, outputs) -> bytes:
        """The .tflite bytes: one subgraph, inputs as made by ``input``, ``outputs`` in order."""
        import flatbuffers
        S = self.S
        codes = []
        for builtin, custom, version in self.codes:
            oc = S.OperatorCodeT()
            oc.builtinCode = builtin
            oc.deprecatedBuiltinCode = min(builtin, 127)
            oc.version = version
            if custom is not None:
                oc.customCode = custom.encode()
            codes.append(oc)
        sg = S.SubGraphT()
        sg.tensors = self.tensors
        sg.inputs = np.array(self.inputs, dtype=np.int32)
        sg.outputs = np.array(outputs, dtype=np.int32)
        sg.operators = self.operators
        sg.name = b"main"
        m = S.ModelT()
        m.version = 3
        m.description = self.description.encode()
        m.operatorCodes = codes
        m.subgraphs = [sg]
        m.buffers = self.buffers
        b = flatbuffers.Builder(4096)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())
