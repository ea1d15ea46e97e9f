"""Writing the prepared ONNX graph as TFLite: each ONNX activation becomes a TFLite
tensor in a layout (``Act.perm``); the operators are written by the functions of
tinybuild/onnx/ops.py's table, through tinybuild.tflite_writer.ModelBuilder."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinybuild.errors import TinybuildError, shown
from tinybuild.onnx.common import p as _p
from tinybuild.onnx.graph import Graph, Node
from tinybuild.onnx.quantize import (activation_qparams, int16_qparams, quantize_bias, quantize_values,
                                     quantize_weights, weight_scales)


@dataclass
class Act:
    """An ONNX activation as a TFLite tensor: ``index``; TFLite axis i holds ONNX
    axis ``perm[i]``; ``sigma`` (flattened NHWC data) says which ONNX element
    each TFLite element is."""
    index: int
    perm: tuple
    sigma: np.ndarray | None = None
    qparams: tuple | None = None
    extra: dict = field(default_factory=dict)


class Writer:
    def __init__(self, graph: Graph, quant: str):
        from tinybuild.tflite_writer import ModelBuilder

        self.g, self.quant = graph, quant
        self.quantized = quant in ("int8", "int16x8")
        self.int16 = quant == "int16x8"       # TFLite's 16x8: int16 activations, int8 weights, int64 bias
        self.b = ModelBuilder("tinybuild ONNX import")
        self.acts: dict[str, Act] = {}
        self._unify_concat_ranges()

    # -- tensors ------------------------------------------------------------------------
    @property
    def dtype(self) -> str:
        return ("int16" if self.int16 else "int8") if self.quantized else "float32"

    def qparams_for(self, lo: float, hi: float) -> tuple[float, int]:
        return int16_qparams(lo, hi) if self.int16 else activation_qparams(lo, hi)

    def fixed_output(self, op: str) -> tuple[float, int] | None:
        """The output scale and zero point TFLite's kernels require (LOGISTIC, TANH, SOFTMAX)."""
        if not self.quantized:
            return None
        if self.int16:
            return 1 / 32768, 0
        return (1 / 128, 0) if op == "TANH" else (1 / 256, -128)

    def qparams(self, name: str) -> tuple[float, int]:
        if name in self.g.forced:
            return self.g.forced[name]
        lo, hi = self.g.ranges.get(name, (0.0, 0.0))
        return self.qparams_for(lo, hi)

    def act_tensor(self, onnx_name: str, shape, qparams=None, name=None) -> int:
        if not self.quantized:
            return self.b.tensor(shape, "float32", name=name or onnx_name)
        scale, zp = qparams or self.qparams(onnx_name)
        return self.b.tensor(shape, self.dtype, scale=scale, zero_point=zp, name=name or onnx_name)

    def tfl_shape(self, onnx_name: str, perm) -> list[int]:
        shape = self.g.shapes[onnx_name]
        return [int(shape[p]) for p in perm]

    def new_act(self, onnx_name: str, perm, qparams=None, sigma=None) -> Act:
        perm = tuple(perm)
        idx = self.act_tensor(onnx_name, self.tfl_shape(onnx_name, perm), qparams)
        act = Act(idx, perm, sigma, qparams or (self.qparams(onnx_name) if self.quantized else None))
        self.acts[onnx_name] = act
        return act

    def act(self, node: Node, name: str) -> Act:
        if name not in self.acts:
            raise self.g.fail(node, f"input '{shown(name)}' is not computed by an imported operator",
                              "report this model (tinybuild bug)")
        act = self.acts[name]
        if act.sigma is not None and node.op not in ("Gemm", "MatMul"):
            act = self.unflattened(node, name)
        return act

    def weights(self, w: np.ndarray, axis: int, name: str, carried=None) -> tuple[int, np.ndarray]:
        """Per-channel symmetric int8 weights (float32 when not quantizing); ``carried``:
        a quantized model's own scale (one: per-tensor) or scales, kept."""
        if not self.quantized:
            return self.b.const(w.astype(np.float32), "float32", name=name), None
        scales = weight_scales(w, axis) if carried is None else np.asarray(carried, np.float32)
        idx = self.b.const(quantize_weights(w, axis, scales), "int8", scale=scales,
                           zero_point=np.zeros(len(scales), np.int64),
                           axis=axis if scales.size > 1 else 0, name=name)
        return idx, scales

    def bias(self, b: np.ndarray, in_scale: float, w_scales, name: str) -> int:
        if not self.quantized:
            return self.b.const(b.astype(np.float32), "float32", name=name)
        scales = (in_scale * w_scales).astype(np.float64)
        bits = 64 if self.int16 else 32
        return self.b.const(quantize_bias(b, scales, bits), f"int{bits}", scale=scales.astype(np.float32),
                            zero_point=np.zeros(len(scales), np.int64), name=name)

    def const_operand(self, value: np.ndarray, like: Act, rank: int, name: str) -> int:
        """An elementwise op's constant operand, in the other operand's layout."""
        v = np.asarray(value, np.float32)
        v = v.reshape((1,) * (rank - v.ndim) + v.shape).transpose(like.perm) if v.ndim > 0 else v
        if v.size == 1:
            v = v.reshape([1] * max(v.ndim, 1))
        if not self.quantized:
            return self.b.const(v, "float32", name=name)
        q, scale, zp = quantize_values(v, self.int16)
        return self.b.const(q, self.dtype, scale=scale, zero_point=zp, name=name)

    # -- the graph ---------------------------------------------------------------------
    def write(self) -> bytes:
        """The .tflite: the model's inputs and outputs in ONNX order."""
        from tinybuild.onnx.ops import OPS
        g = self.g
        for inp in g.input_names():
            self._input(inp)
        for node in g.live:
            handler = OPS.get(node.op)
            if handler is None:
                raise g.fail(node, "operator not supported by tinybuild's ONNX importer here",
                             "replace that layer, or export the model without it")
            handler(self, node)
        return self.b.build([self._output(out) for out in g.outputs])

    def _input(self, name: str) -> None:
        perm = self.g.input_perm(name) or tuple(range(len(self.g.shapes[name])))
        qparams = self.qparams(name) if self.quantized else None
        index = self.b.input(self.tfl_shape(name, perm), self.dtype,
                             *(qparams or (None, None)), name=name)
        self.acts[name] = Act(index, tuple(perm), None, qparams)

    def _output(self, name: str) -> int:
        g = self.g
        if name not in self.acts:
            raise TinybuildError(f"{_p(g.src)}: the output '{shown(name)}' is a constant or an input. "
                                 "Fix: export a network")
        result = self.acts[name]
        if result.sigma is not None:
            result = self.unflattened(None, name)
        if result.perm != tuple(range(len(result.perm))):
            g.output_perms[name] = result.perm
        return result.index

    def _unify_concat_ranges(self) -> None:
        """CONCATENATION keeps one scale for inputs and output (TFLite's rule): widen them."""
        g = self.g
        for node in g.live:
            if node.op == "Concat":
                names = [n for n in node.inputs if n and n not in g.constant] + [node.outputs[0]]
                lo = min(g.ranges.get(n, (0, 0))[0] for n in names)
                hi = max(g.ranges.get(n, (0, 0))[1] for n in names)
                for n in names:
                    g.ranges[n] = (lo, hi)

    def op(self, name: str, inputs, outputs, options=None, version: int = 1, intermediates=None) -> None:
        self.b.op(name, inputs, outputs, options, version=version, intermediates=intermediates)

    def transposed(self, node, act: Act, onnx_name: str, perm) -> Act:
        """``act`` moved to layout ``perm`` with a TRANSPOSE on the device (only when a
        layout-bound op reads a tensor in another layout)."""
        perm = tuple(perm)
        if act.perm == perm:
            return act
        t = [act.perm.index(p) for p in perm]
        shape = self.tfl_shape(onnx_name, perm)
        idx = self.act_tensor(onnx_name, shape, act.qparams, name=f"{onnx_name}/transposed")
        if self._moves_only_ones(onnx_name, act.perm, perm):
            self.reshape(act.index, idx, shape)       # the bytes stay in order: a view
        else:
            self.op("TRANSPOSE", [act.index, self.b.const(np.array(t, np.int32), "int32")], [idx])
        return Act(idx, perm, None, act.qparams)

    def _moves_only_ones(self, onnx_name: str, old, new) -> bool:
        """Whether the axes longer than 1 keep their order (only size-1 axes move)."""
        shape = self.g.shapes[onnx_name]
        return [p for p in old if shape[p] != 1] == [p for p in new if shape[p] != 1]

    def unflattened(self, node, name: str) -> Act:
        """A flattened NHWC tensor read by something else than Gemm/MatMul: reshape it
        back, transpose to ONNX order, flatten again (on the device)."""
        act = self.acts[name]
        src = act.extra["source"]
        back = self.acts[src]
        ident = tuple(range(len(back.perm)))
        mid = self.transposed(node, back, src, ident)
        idx = self.act_tensor(name, list(self.g.shapes[name]), act.qparams, name=f"{name}/onnx_order")
        self.reshape(mid.index, idx, self.g.shapes[name])
        fixed = Act(idx, tuple(range(len(self.g.shapes[name]))), None, act.qparams)
        self.acts[name] = fixed
        return fixed

    def reshape(self, src: int, dst: int, shape) -> None:
        shape = [int(s) for s in shape]
        self.op("RESHAPE", [src, self.b.const(np.array(shape, np.int32), "int32")], [dst],
                self.b.options("ReshapeOptions", newShape=shape))

