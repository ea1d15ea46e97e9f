"""The ONNX graph with what onnxruntime measured (shapes, ranges, constants), and
the rewrites before writing: constants folded, Identity/Dropout and QDQ pairs
removed, linear ops folded and activations fused (tinybuild/onnx/fold.py)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinybuild.errors import TinybuildError, shown
from tinybuild.onnx.common import CHANNELS_LAST_NAMES, channels_last
from tinybuild.onnx.common import p as _p
from tinybuild.onnx.fold import _fold_linear, _fuse_activation

LATER: dict[str, str] = {}      # ONNX ops named as a later slice of issue 13
# ops that need every calibration sample of their first input (the LSTM's state ranges)
KEEPS_HISTORY = ("LSTM", "GRU")
# handled by the graph rewrites rather than by an entry of tinybuild.onnx.ops.OPS
REWRITTEN = ("BatchNormalization", "Constant", "Identity", "Dropout", "QuantizeLinear", "DequantizeLinear")


@dataclass
class Layout:
    name: str                      # what convert.json says: "NCHW", "NHWC", "NC", ...
    perm: tuple | None             # the TFLite input's axes from the ONNX input's (None: the same)


@dataclass
class Node:
    index: int
    op: str
    name: str
    inputs: list
    outputs: list
    attrs: dict
    weight: np.ndarray | None = None      # folded linear ops: float weights, ONNX layout
    bias: np.ndarray | None = None
    activation: str = "NONE"
    final: str | None = None              # the ONNX tensor the (fused) op writes
    weight_scale: np.ndarray | None = None  # QDQ models: the weights' own scale(s), while unchanged


def supported() -> tuple[str, ...]:
    """Every ONNX operator the importer takes (an entry of the ops table or a rewrite)."""
    from tinybuild.onnx.ops import OPS
    return tuple(sorted(set(OPS) | set(REWRITTEN)))


class Graph:
    """The ONNX graph with what onnxruntime measured: shapes, ranges, constants."""

    def __init__(self, src: Path, model, carried: dict | None = None):
        """``carried``: weights a QOperator model held in int8 (tinybuild.onnx.qoperator)."""
        from onnx import numpy_helper

        self.src, self.model = src, model
        opsets = {o.domain: o.version for o in model.opset_import}
        self.opset = int(opsets.get("", opsets.get("ai.onnx", 0)))
        g = model.graph
        self.consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.inputs = [i for i in g.input if i.name not in self.consts]
        self.outputs = [o.name for o in g.output]
        self.nodes = [Node(i, n.op_type, n.name, list(n.input), list(n.output), _attrs(n))
                      for i, n in enumerate(g.node)]
        self.shapes: dict[str, tuple] = {}
        self.ranges: dict[str, tuple[float, float]] = {}
        self.values: dict[str, np.ndarray] = {}
        self.constant: set[str] = set(self.consts)
        self.forced: dict[str, tuple[float, int]] = {}    # QDQ models: the int8 params they carry
        self.qdq = any(n.op == "QuantizeLinear" for n in self.nodes)
        self.carried = carried or {}
        self.history: dict[str, list[np.ndarray]] = {}    # every sample's value, KEEPS_HISTORY inputs

    def where(self, node: Node) -> str:
        return f"{node.op} (node '{shown(node.name or '(unnamed)')}', #{node.index})"

    def fail(self, node: Node, problem: str, fix: str) -> TinybuildError:
        return TinybuildError(f"{_p(self.src)}: {self.where(node)}: {problem}. Fix: {fix}")

    # -- what the model is -----------------------------------------------------------
    def check_ops(self) -> None:
        for node in self.nodes:
            if node.op in LATER:
                raise self.fail(node, f"not imported yet ({LATER[node.op]})",
                                "export the model without it, or give a Keras/.tflite model")
            on_constants = self._folds_on_constants(node)
            if node.op in ("LSTM", "GRU"):
                from tinybuild.onnx import recurrent
                checks = {"LSTM": (recurrent.lstm_problem, recurrent.refuse),
                          "GRU": (recurrent.gru_problem, recurrent.refuse_gru)}[node.op]
                problem = checks[0](self, node)
                if problem:
                    raise checks[1](self, node, problem)
            if node.op not in supported() and not on_constants:
                raise self.fail(node, "operator not supported by tinybuild's ONNX importer (supported: "
                                f"{', '.join(supported())}; Shape/Gather/Cast/... chains on constants)",
                                "replace that layer, or export the model without it")
        if not self.inputs or not self.outputs:
            raise TinybuildError(f"{_p(self.src)}: the model has {len(self.inputs)} inputs and "
                                 f"{len(self.outputs)} outputs. Fix: export a network with an input "
                                 "and an output")

    def _folds_on_constants(self, node: Node) -> bool:
        """Shape and any op on constants only: computed at build time."""
        ins = [i for i in node.inputs if i]
        known = node.op == "Shape" or all(i in self.constant for i in ins)
        if known:
            self.constant.update(o for o in node.outputs if o)
        return known

    def input_layouts(self, hints: dict | None = None) -> dict[str, tuple[tuple[int, ...], Layout]]:
        """Per input: the firmware's sample shape (no batch; NHWC for an NCHW image,
        NLC for an NCL sequence read by a Conv) and its layout. ``hints``: the sample
        shapes of the calibration data, which fix dynamic dimensions besides the batch."""
        hints = hints or {}
        self.input_shapes = {inp.name: self._fixed_shape(inp, hints.get(inp.name)) for inp in self.inputs}
        layouts = {}
        for name, shape in self.input_shapes.items():
            perm = self.input_perm(name)
            if perm is None:
                layouts[name] = (tuple(shape[1:]), Layout("as ONNX", None))
            else:
                moved = tuple(shape[a] for a in perm)
                last, first = CHANNELS_LAST_NAMES[len(shape)]
                layouts[name] = (moved[1:], Layout(f"{last} (the ONNX input is {first})", perm))
        return layouts

    def _fixed_shape(self, inp, hint) -> tuple[int, ...]:
        dims = inp.type.tensor_type.shape.dim
        onnx_hint = self._onnx_order(inp.name, len(dims), hint)
        shape = []
        for axis, d in enumerate(dims):
            if d.HasField("dim_value") and d.dim_value > 0:
                shape.append(int(d.dim_value))
            elif axis == 0:
                shape.append(1)                      # a dynamic batch: one sample at a time
            elif onnx_hint is not None:
                shape.append(int(onnx_hint[axis]))   # the calibration samples' length
            else:
                raise TinybuildError(
                    f"{_p(self.src)}: input '{shown(inp.name)}' has a dynamic dimension "
                    f"'{shown(d.dim_param or '?')}' (axis {axis}); tinybuild compiles fixed shapes. Fix: "
                    "give calibration samples of the shape to build for (calibration=x.npy or "
                    "<model>_calib.npy beside it: they fix it), export with a fixed input shape "
                    "(torch.onnx.export without dynamic_axes for that axis; tf2onnx --inputs "
                    "name:0[1,49,10,1]), or fix it with onnx.tools.update_model_dims.update_inputs_outputs_dims")
        if not shape or shape[0] != 1:
            raise TinybuildError(f"{_p(self.src)}: input '{shown(inp.name)}' has shape {shape}; tinybuild "
                                 "builds for a batch of 1. Fix: export with batch size 1 (or a dynamic batch)")
        return tuple(shape)

    def _onnx_order(self, name: str, rank: int, hint) -> tuple | None:
        """A firmware-layout sample shape (no batch) in ONNX's axis order, batch first."""
        if hint is None or len(hint) != rank - 1:
            return None
        perm = self.input_perm(name, rank) or tuple(range(rank))
        full = (1, *hint)
        return tuple(full[perm.index(a)] for a in range(rank))

    def input_perm(self, name: str, rank: int | None = None) -> tuple | None:
        """Channels last (NCHW -> NHWC, NCL -> NLC) for an input a Conv or pool reads."""
        rank = len(self.input_shapes[name]) if rank is None else rank
        return channels_last(rank) if rank in CHANNELS_LAST_NAMES and self._spatial_input(name) else None

    def _spatial_input(self, name: str) -> bool:
        """Whether a Conv or pool reads the input (through QDQ pairs, Identity, Dropout)."""
        names, found = {name}, set()
        while names:
            readers = [n for n in self.nodes if n.inputs and n.inputs[0] in names]
            if any(n.op in _SPATIAL for n in readers):
                return True
            found |= names
            names = {o for n in readers if n.op in _PASS_THROUGH for o in n.outputs[:1]} - found
        return False

    # -- onnxruntime -----------------------------------------------------------------
    def session(self, every_tensor: bool):
        import onnx
        import onnxruntime as ort

        m = onnx.ModelProto()
        m.CopyFrom(self.model)
        by_name = {i.name: i for i in m.graph.input}
        for name, shape in self.input_shapes.items():
            for d, size in zip(by_name[name].type.tensor_type.shape.dim, shape):
                d.Clear()
                d.dim_value = size
        if every_tensor:
            known = set(self.outputs)
            for node in m.graph.node:
                m.graph.output.extend(onnx.ValueInfoProto(name=o) for o in node.output
                                      if o and o not in known)
                known.update(node.output)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.log_severity_level = 3
        try:
            return ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise TinybuildError(f"{_p(self.src)}: onnxruntime cannot load the model ({type(exc).__name__}: "
                                 f"{shown(str(exc).strip().splitlines()[0] if str(exc).strip() else '', 300)}). "
                                 "Fix: check the model runs in onnxruntime; re-export it") from None

    @staticmethod
    def _feeds(onnx_calib: dict, k: int) -> dict:
        return {name: samples[k][None].astype(np.float32) for name, samples in onnx_calib.items()}

    def observe(self, onnx_calib: dict) -> None:
        """Run every sample (``{input: [N, ...]}`` in ONNX layout), keeping every tensor's
        min/max, shape, and sample 0's value."""
        sess = self.session(every_tensor=True)
        names = [o.name for o in sess.get_outputs()]
        kept = {n.inputs[0] for n in self.nodes if n.op in KEEPS_HISTORY}
        for k in range(len(next(iter(onnx_calib.values())))):
            feeds = self._feeds(onnx_calib, k)
            for name, value in [*zip(names, sess.run(names, feeds)), *feeds.items()]:
                value = np.asarray(value)
                if name in kept:
                    self.history.setdefault(name, []).append(value)
                if k == 0:
                    self.shapes[name], self.values[name] = tuple(value.shape), value
                if value.size and np.issubdtype(value.dtype, np.floating):
                    lo, hi = float(value.min()), float(value.max())
                    old = self.ranges.get(name, (lo, hi))
                    self.ranges[name] = (min(lo, old[0]), max(hi, old[1]))
        for feed, samples in onnx_calib.items():
            self.shapes[feed] = tuple(samples[:1].shape)
            self.ranges[feed] = (float(samples.min()), float(samples.max()))
        for name, value in self.consts.items():
            self.shapes[name], self.values[name] = tuple(value.shape), value

    def float_outputs(self, onnx_calib: dict) -> list[np.ndarray]:
        """Per output, the float model's values per sample in the firmware's layout, flattened."""
        sess = self.session(every_tensor=False)
        rows = {out: [] for out in self.outputs}
        for k in range(len(next(iter(onnx_calib.values())))):
            for out, y in zip(self.outputs, sess.run(self.outputs, self._feeds(onnx_calib, k))):
                perm = self.output_perms.get(out)
                y = np.asarray(y, np.float32)
                rows[out].append((y.transpose(perm) if perm else y).ravel())
        return [np.stack(rows[out]) for out in self.outputs]

    def output_layout(self) -> str:
        layouts = ["{} (the ONNX model's {} output, transposed at build time)".format(
            *CHANNELS_LAST_NAMES[len(perm)]) if perm else "as ONNX"
            for perm in (self.output_perms.get(out) for out in self.outputs)]
        if len(layouts) == 1:
            return layouts[0]
        return "; ".join(f"{shown(out)}: {lay}" for out, lay in zip(self.outputs, layouts))

    # -- graph rewrites --------------------------------------------------------------
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def value(self, name: str) -> np.ndarray | None:
        if name in self.constant:
            return self.values.get(name)
        return None

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.live if name in n.inputs]

    def single_consumer(self, name: str) -> Node | None:
        users = self.consumers(name)
        return users[0] if len(users) == 1 and name not in self.outputs else None

    def prepare(self) -> None:
        """Constants folded away, Identity/Dropout removed, linear ops folded and fused."""
        self.live = [n for n in self.nodes if not all(o in self.constant for o in n.outputs if o)]
        for node in [n for n in self.live if n.op in ("Identity", "Dropout")]:
            self._bypass(node)
        for node in [n for n in self.live if n.op == "QuantizeLinear"]:
            self._bypass_qdq(node)
        for node in list(self.live):
            if node in self.live and node.op in ("Conv", "Gemm", "MatMul"):
                _fold_linear(self, node)
        for node in list(self.live):
            if node in self.live and node.op in _FUSES_ACTIVATION:
                _fuse_activation(self, node)
        self.output_perms: dict[str, tuple] = {}

    def _bypass_qdq(self, q: Node) -> None:
        """A QuantizeLinear -> DequantizeLinear pair on an activation is the int8 tensor
        it describes: removed, its scale and zero point kept for the tensor (uint8 as
        int8: zero point - 128, the same values)."""
        readers = self.consumers(q.outputs[0])
        if not readers or any(r.op != "DequantizeLinear" for r in readers) or q.outputs[0] in self.outputs:
            raise self.fail(q, "a QuantizeLinear not followed by DequantizeLinear (QOperator or mixed "
                            "models are a later slice of issue 13)", "export a QDQ model")
        scale, zp = self.value(q.inputs[1]), self.value(q.inputs[2]) if len(q.inputs) > 2 and q.inputs[2] else None
        if scale is None or scale.size != 1 or (zp is not None and zp.dtype not in (np.int8, np.uint8)):
            raise self.fail(q, "only per-tensor int8/uint8 activation quantization is imported",
                            "quantize activations per tensor to int8 or uint8")
        zero = 0 if zp is None else int(np.ravel(zp)[0]) - (128 if zp.dtype == np.uint8 else 0)
        params = (float(np.ravel(scale)[0]), zero)
        self.live.remove(q)
        src = q.inputs[0]
        for d in readers:
            self.live.remove(d)
            dst = d.outputs[0]
            if dst in self.outputs:
                self._rename(src, dst)
                src = dst
            else:
                for n in self.live:
                    n.inputs = [src if i == dst else i for i in n.inputs]
        self.forced[src] = params

    def _rename(self, old: str, new: str) -> None:
        if old in self.input_names():
            raise TinybuildError(f"{_p(self.src)}: the model's output is its input. Fix: export a network")
        for n in self.live:
            n.outputs = [new if o == old else o for o in n.outputs]
            n.inputs = [new if i == old else i for i in n.inputs]
        self.forced[new] = self.forced.pop(old, None) or self.forced.get(new)
        if self.forced[new] is None:
            del self.forced[new]

    def _bypass(self, node: Node) -> None:
        src, dst = node.inputs[0], node.outputs[0]
        self.live.remove(node)
        if dst in self.outputs:          # keep the graph output's name: rename the producer's
            for n in self.live:
                n.outputs = [dst if o == src else o for o in n.outputs]
                n.inputs = [dst if i == src else i for i in n.inputs]
            if src in self.input_names():
                raise TinybuildError(f"{_p(self.src)}: the model's output is its input. Fix: export a network")
            return
        for n in self.live:
            n.inputs = [src if i == dst else i for i in n.inputs]


_SPATIAL = ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Resize")
_PASS_THROUGH = ("QuantizeLinear", "DequantizeLinear", "Identity", "Dropout")
_FUSES_ACTIVATION = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sub", "Mul")


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}

