"""QOperator models (``QLinearConv``, ``QLinearMatMul``, ``QGemm``, ``QLinearAdd``, ...,
as onnxruntime's ``quantize_static(..., quant_format=QuantFormat.QOperator)`` writes
them) rewritten into the QDQ form the importer already reads, before anything runs:

* each QLinear op becomes DequantizeLinear on its activation inputs, the float op,
  and QuantizeLinear of its output with the op's own output scale and zero point;
* its constant int8/uint8 weights become float initializers (``<name>/dequantized``)
  and their scales are kept (``carried``), so the weights are written back as the
  model carries them; an int32 bias becomes float bias * (s_in * s_w), which the
  writer rounds back to the same int32 values;
* a standard op reading a quantized tensor (MaxPool, Reshape, Flatten, Transpose, ...
  on uint8/int8 data) gets the same DequantizeLinear / QuantizeLinear around it, with
  its input's scale and zero point (those ops keep them).

Every QuantizeLinear -> DequantizeLinear pair is then an activation's int8
quantization (tinybuild.onnx.graph removes the pairs and keeps the parameters).
"""
from __future__ import annotations

import numpy as np

from tinybuild.errors import shown

# op: (float op, (value, scale, zero point) input positions, output (scale, zero point), bias)
QLINEAR = {
    "QLinearConv": ("Conv", ((0, 1, 2), (3, 4, 5)), (6, 7), 8),
    "QLinearMatMul": ("MatMul", ((0, 1, 2), (3, 4, 5)), (6, 7), None),
    "QGemm": ("Gemm", ((0, 1, 2), (3, 4, 5)), (7, 8), 6),
    "QLinearAdd": ("Add", ((0, 1, 2), (3, 4, 5)), (6, 7), None),
    "QLinearMul": ("Mul", ((0, 1, 2), (3, 4, 5)), (6, 7), None),
    "QLinearSigmoid": ("Sigmoid", ((0, 1, 2),), (3, 4), None),
    "QLinearLeakyRelu": ("LeakyRelu", ((0, 1, 2),), (3, 4), None),
    "QLinearSoftmax": ("Softmax", ((0, 1, 2),), (3, 4), None),
    "QLinearGlobalAveragePool": ("GlobalAveragePool", ((0, 1, 2),), (3, 4), None),
    "QLinearAveragePool": ("AveragePool", ((0, 1, 2),), (3, 4), None),
    "QLinearConcat": ("Concat", None, (0, 1), None),
}
DROPPED_ATTRS = ("opset", "channels_last")           # QLinear-only attributes
# ops left as they are on a quantized tensor (they read its shape or dequantize it)
KEPT = ("DequantizeLinear", "Shape", "Size")
# the output axis of a weight's per-channel scales, by float op (Gemm: by transB)
WEIGHT_AXIS = {"Conv": 0, "MatMul": 1}


def is_qoperator(model) -> bool:
    return any(n.op_type in QLINEAR for n in model.graph.node)


class Rewrite:
    """The QDQ form of a QOperator ModelProto: ``run()`` returns (model, carried) where
    carried maps a dequantized weight's name to (int8 values, scales, axis)."""

    def __init__(self, model, fail):
        """``fail(where, problem, fix)`` makes the one-line error."""
        from onnx import numpy_helper

        self.model, self.fail = model, fail
        self.consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.quantized: dict[str, tuple[str, str]] = {}    # quantized tensor -> (scale, zero point) names
        self.dequantized: dict[str, str] = {}
        self.nodes: list = []
        self.inits: list = []
        self.carried: dict[str, tuple] = {}

    def run(self):
        for index, node in enumerate(self.model.graph.node):
            if node.op_type == "QuantizeLinear":
                self.quantized[node.output[0]] = (node.input[1], node.input[2] if len(node.input) > 2 else "")
                self.nodes.append(node)
            elif node.op_type in QLINEAR:
                self._qlinear(index, node)
            elif node.op_type not in KEPT and node.input and node.input[0] in self.quantized:
                self._around(node)
            else:
                self.nodes.append(node)
        for out in self.model.graph.output:
            if out.name in self.quantized:
                raise self.fail("", f"the output '{shown(out.name)}' is quantized (int8/uint8)",
                                "export the model with a float output (a DequantizeLinear at the end)")
        graph = self.model.graph
        del graph.node[:]
        graph.node.extend(self.nodes)
        graph.initializer.extend(self.inits)
        del graph.value_info[:]                  # the quantized tensors' types changed
        for opset in self.model.opset_import:    # the ms-domain ops are gone
            if opset.domain == "com.microsoft":
                self.model.opset_import.remove(opset)
                break
        return self.model, self.carried

    # -- the rewrites ---------------------------------------------------------------------
    def _qlinear(self, index, node) -> None:
        from onnx import helper

        op, triples, (ys, yzp), bias = QLINEAR[node.op_type]
        ins = list(node.input)
        if node.op_type == "QLinearConcat":
            triples = tuple((i, i + 1, i + 2) for i in range(2, len(ins), 3))
        floats = [self._float_input(node, op, ins, t) for t in triples]
        if bias is not None and len(ins) > bias and ins[bias]:
            floats.append(self._float_bias(node, ins, triples, bias))
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name not in DROPPED_ATTRS}
        if node.op_type == "QLinearGlobalAveragePool" and _attr(node, "channels_last"):
            raise self.fail(_where(index, node), "channels_last=1 is not imported", "export NCHW")
        if node.op_type == "QGemm" and (len(ins) <= ys or not ins[ys]):
            raise self.fail(_where(index, node), "a QGemm with a float output is not imported",
                            "quantize its output")
        self._emit(op, node.name, floats, node.output[0], (ins[ys], ins[yzp] if len(ins) > yzp else ""),
                   attrs)

    def _around(self, node) -> None:
        """A standard op on a quantized tensor: it runs on the dequantized values and its
        outputs are quantized as its input was."""
        from onnx import helper

        params = self.quantized[node.input[0]]
        ins = [self._dequantize(node.input[0], params), *node.input[1:]]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        outs = [o for o in node.output if o]
        self.nodes.append(helper.make_node(node.op_type, ins, [f"{o}/float" for o in outs], node.name,
                                           domain=node.domain, **attrs))
        for o in outs:
            self._quantize(f"{o}/float", o, params)

    def _emit(self, op, name, ins, out, params, attrs) -> None:
        from onnx import helper

        self.nodes.append(helper.make_node(op, ins, [f"{out}/float"], name, **attrs))
        self._quantize(f"{out}/float", out, params)

    def _quantize(self, src: str, dst: str, params) -> None:
        from onnx import helper

        self.nodes.append(helper.make_node("QuantizeLinear", [src, *params], [dst], f"{dst}/quantize"))
        self.quantized[dst] = params

    def _dequantize(self, name: str, params) -> str:
        from onnx import helper

        if name not in self.dequantized:
            out = self.dequantized[name] = f"{name}/dequantized"
            self.nodes.append(helper.make_node("DequantizeLinear", [name, *params], [out], f"{out}/node"))
        return self.dequantized[name]

    def _float_input(self, node, op, ins, triple) -> str:
        value, scale, zp = (ins[i] if i < len(ins) else "" for i in triple)
        if value not in self.consts:
            return self._dequantize(value, (scale, zp))
        return self._float_constant(node, op, value, scale, zp, triple[0])

    def _float_constant(self, node, op, value, scale, zp, position) -> str:
        """A constant int8/uint8 operand (weights) as a float initializer; int8 with zero
        point 0 keeps its scales for the writer."""
        from onnx import numpy_helper

        q = self.consts[value]
        s = np.asarray(self.consts[scale], np.float32)
        z = np.asarray(self.consts[zp]) if zp else np.zeros(1, np.int64)
        axis = _weight_axis(node, op) if position == 3 else 0
        shape = [1] * q.ndim
        if s.size > 1:
            shape[axis] = -1
        name = f"{value}/dequantized"
        real = ((q.astype(np.float64) - z.astype(np.float64).reshape(shape if z.size > 1 else []))
                * s.reshape(shape if s.size > 1 else [])).astype(np.float32)
        self.inits.append(numpy_helper.from_array(real, name))
        self.consts[name] = real
        if q.dtype == np.int8 and not np.any(z) and position == 3:
            self.carried[name] = (q, s.ravel(), axis)
        return name

    def _float_bias(self, node, ins, triples, position) -> str:
        """int32 bias * (input scale * weight scales), as a float initializer."""
        from onnx import numpy_helper

        b = self.consts.get(ins[position])
        scales = [self.consts.get(ins[t[1]]) for t in triples[:2]]
        if b is None or any(s is None for s in scales):
            raise self.fail(f"{node.op_type} (node '{shown(node.name or '(unnamed)')}'): ",
                            "its bias or scales are not constant", "export constant weights")
        product_scales = np.float64(scales[0]) * np.asarray(scales[1], np.float64)
        real = (b.astype(np.float64) * product_scales).astype(np.float32)
        name = f"{ins[position]}/dequantized"
        self.inits.append(numpy_helper.from_array(real, name))
        self.consts[name] = real
        return name


def _where(index: int, node) -> str:
    return f"{node.op_type} (node '{shown(node.name or '(unnamed)')}', #{index}): "


def _attr(node, name):
    from onnx import helper
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), None)


def _weight_axis(node, op: str) -> int:
    if op == "Gemm":
        return 0 if _attr(node, "transB") else 1
    return WEIGHT_AXIS.get(op, 0)
