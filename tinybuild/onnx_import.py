"""ONNX models in: a float ONNX graph -> the int8 (or float32) ``.tflite`` tinybuild compiles.

``convert_onnx(src, dst, calibration, report_path, quant="int8")`` is the
``.onnx`` model importer (registered through ``tinybuild_model_importers`` as
a built-in plugin, see tinybuild/plugins.py). The route (docs/onnx.md): the
ONNX graph is translated by tinybuild itself into TFLite operators in NHWC
and written with tinybuild.tflite_writer, so everything after conversion
(lowering, kernels, validation against TFLite's BUILTIN_REF kernels) is the
same as for a Keras model. No onnx-tf / onnx2tf.

Steps:
1. load (external data too), ``onnx.checker``, opset 9..21, one input and
   one output, a dynamic batch dimension fixed to 1 (other dynamic dims stop);
2. onnxruntime runs the float model with every tensor as an output, once per
   calibration sample: min/max per tensor, and each tensor's shape and (for
   tensors computed from constants only) its value: Shape/Gather/Cast/...
   chains on constants are folded that way;
3. BatchNormalization, bias Add/Sub and constant Mul/Div after a Conv, Gemm
   or MatMul are folded into its weights; Relu/Clip after it are fused;
   Identity and Dropout are removed;
4. layouts: each ONNX tensor maps to a TFLite tensor through a permutation
   (``perm``: TFLite axis i holds ONNX axis perm[i]). NCHW tensors feeding a
   Conv or pool are NHWC on the device, weights permuted at build time (OIHW ->
   OHWI, depthwise -> 1HWC); a Transpose only relabels; a Flatten of an NHWC
   tensor read only by Gemm/MatMul becomes a RESHAPE, with the Gemm's weight
   columns permuted instead (no TRANSPOSE on the device for a plain CNN);
5. quantization as TFLite's converter does it: int8 activations asymmetric
   from the calibration min/max (0 inside the range), per-channel symmetric int8
   weights, int32 bias = round(b / (s_in * s_w)); pooling, reshapes and
   concatenation keep their input's scale, LOGISTIC/SOFTMAX 1/256, TANH 1/128;
6. the float model (onnxruntime) and the written model (TFLite BUILTIN_REF)
   run on the calibration samples: top-1 agreement, max/mean abs difference.

onnx and onnxruntime are imported only inside the functions that use them:
importing this module costs nothing (the plugin manager imports it on every run).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinybuild.errors import TinybuildError, shown
from tinybuild.hookspecs import hookimpl

OPSET_MIN, OPSET_MAX = 9, 21
NCHW_TO_NHWC = (0, 2, 3, 1)
LATER = {"LSTM": "LSTM import is a later slice of issue 13",
         "GRU": "GRU import is a later slice of issue 13",
         "QLinearConv": "QOperator ONNX models are a later slice of issue 13",
         "QLinearMatMul": "QOperator ONNX models are a later slice of issue 13"}


@hookimpl
def tinybuild_model_importers():
    return {".onnx": convert_onnx}


def _log(msg: str) -> None:
    print(f"[onnx] {msg}", file=sys.stderr, flush=True)


def _p(path) -> str:
    return shown(str(path), limit=0)


# --------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------

def convert_onnx(src, dst, calibration=None, report_path=None, quant: str = "int8",
                 num_calibration: int = 100) -> dict:
    """Convert the ONNX model ``src`` into a ``.tflite`` at ``dst`` (int8, or float32
    with ``quant="float32"``); return the conversion record (also written to
    ``report_path`` when given). ``dst`` is written only when every check passed."""
    from tinybuild import convert as conv

    src, dst = Path(src), Path(dst)
    return conv.guarded("converting the ONNX model")(_convert)(src, dst, calibration, report_path,
                                                               quant, num_calibration)


def _convert(src: Path, dst: Path, calibration, report_path, quant: str, num_calibration: int) -> dict:
    from tinybuild import convert as conv

    if quant not in ("int8", "float32"):
        raise TinybuildError(f"quant={shown(quant)}: the ONNX importer makes int8 or float32 models. "
                             "Fix: quant=int8 or quant=float32")
    if not src.is_file():
        raise TinybuildError(f"{_p(src)}: model file not found. Fix: check the path (model=...).")
    _log(f"loading {_p(src)} ...")
    model = load_checked(src)
    graph = Graph(src, model)
    graph.check_ops()
    if graph.qdq and quant != "int8":
        raise TinybuildError(f"quant={quant}: {_p(src)} is already quantized (QuantizeLinear/"
                             "DequantizeLinear): it builds with the int8 scales it carries. Fix: leave quant= out")
    sample_shape, layout = graph.input_sample_shape()
    calib, calib_src = conv._calibration(src, Path(calibration) if calibration else None,
                                         sample_shape, num_calibration)
    _log(f"running the float model with onnxruntime on {len(calib)} samples ({_p(calib_src)}) ...")
    onnx_calib = calib if layout.perm is None else calib.transpose(_inverse_batch(layout.perm))
    graph.observe(onnx_calib)
    graph.prepare()
    conv._import_tf()        # quietly, before the writer's schema import pulls TensorFlow in
    tflite = Writer(graph, quant).write()
    dst.parent.mkdir(parents=True, exist_ok=True)
    conv._install(src, dst, tflite, quant)
    try:
        report = _compare(graph, src, dst, calib, onnx_calib, quant)
    except BaseException:
        dst.unlink(missing_ok=True)    # no model on disk without its check
        raise
    report.update(calibration=calib_src, input_layout=layout.name,
                  output_layout=graph.output_layout(), source_opset=graph.opset, quant=quant)
    conv._write_report(report, report_path)
    return report


def _inverse_batch(perm) -> tuple[int, ...]:
    """The axes that turn NHWC samples [N, ...] back into the ONNX layout."""
    inv = np.argsort(perm)
    return tuple(int(a) for a in inv)


def _compare(graph, src: Path, dst: Path, calib, onnx_calib, quant: str) -> dict:
    from tinybuild import convert as conv

    _log(f"checking float (onnxruntime) vs {quant} (TFLite BUILTIN_REF) on {len(calib)} samples ...")
    tf = conv._import_tf()
    float_out = graph.float_outputs(onnx_calib)
    int8_out = conv.run_int8(tf, dst, calib)
    io = conv.tflite_io(dst)
    import onnx
    import onnxruntime
    report = {"source": str(src), "output": str(dst), "mode": "quantized" if quant == "int8" else "float",
              "loader": f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}",
              "input": conv._io_summary(io["inputs"][0]),
              "output_tensor": conv._io_summary(io["outputs"][0]),
              "num_samples": int(len(calib)), **conv.agreement(float_out, int8_out)}
    _log(f"wrote {_p(dst)} ({dst.stat().st_size} B): top-1 agreement {report['top1_agreement']:.3f}, "
         f"max |diff| {report['max_abs_diff']:.4g}, mean |diff| {report['mean_abs_diff']:.4g}")
    return report


# --------------------------------------------------------------------------
# loading and checking
# --------------------------------------------------------------------------

def load_checked(src: Path):
    """The ModelProto with its external data, checked (onnx.checker, opset range)."""
    import onnx

    try:
        model = onnx.load(str(src), load_external_data=False)
    except Exception as exc:
        raise TinybuildError(f"{_p(src)}: not a readable ONNX model ({type(exc).__name__}: "
                             f"{shown(exc, 200)}). Fix: re-export it (torch.onnx.export, tf2onnx)") from None
    _load_external_data(src, model)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TinybuildError(f"{_p(src)}: the ONNX checker rejects the model ({shown(first, 300)}). "
                             "Fix: re-export it with a current exporter, or repair the graph") from None
    _check_opset(src, model)
    return model


def _load_external_data(src: Path, model) -> None:
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    tensors = [t for t in model.graph.initializer if uses_external_data(t)]
    for t in tensors:
        location = next((e.value for e in t.external_data if e.key == "location"), "")
        path = src.parent / location
        if not location or not path.is_file():
            raise TinybuildError(
                f"{_p(src)}: initializer '{shown(t.name)}' keeps its data in the external file "
                f"'{shown(location)}', which is not beside the model ({_p(path)} missing). Fix: put "
                "the data file beside the .onnx, or save the model with its data inside "
                "(onnx.save(model, path, save_as_external_data=False))")
    if tensors:
        try:
            load_external_data_for_model(model, str(src.parent))
        except Exception as exc:
            raise TinybuildError(f"{_p(src)}: cannot read the model's external data ({type(exc).__name__}: "
                                 f"{shown(exc, 200)}). Fix: re-save the model with its data inside") from None


def _check_opset(src: Path, model) -> None:
    opsets = {o.domain: o.version for o in model.opset_import}
    version = opsets.get("", opsets.get("ai.onnx"))
    if version is None:
        raise TinybuildError(f"{_p(src)}: the model imports no standard ONNX opset. Fix: re-export it "
                             f"with opset {OPSET_MIN}..{OPSET_MAX}")
    if not OPSET_MIN <= version <= OPSET_MAX:
        nearest = min(max(version, OPSET_MIN), OPSET_MAX)
        raise TinybuildError(f"{_p(src)}: opset {version} is outside the range tinybuild imports "
                             f"({OPSET_MIN}..{OPSET_MAX}). Fix: re-export with opset_version={nearest} "
                             "(torch.onnx.export(..., opset_version=...), tf2onnx --opset ...), or "
                             "onnx.version_converter.convert_version(model, 13)")
    others = sorted(d for d in opsets if d not in ("", "ai.onnx"))
    used = sorted({n.domain for n in model.graph.node if n.domain not in ("", "ai.onnx")})
    if used:
        raise TinybuildError(f"{_p(src)}: the model uses operators of the domain '{shown(used[0])}' "
                             f"(opsets imported: {', '.join(shown(o) for o in others)}); tinybuild imports "
                             "standard ONNX operators only. Fix: export without custom operators")


# --------------------------------------------------------------------------
# the ONNX graph, observed with onnxruntime
# --------------------------------------------------------------------------

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


SUPPORTED = ("Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Clip", "LeakyRelu",
             "Sigmoid", "Tanh", "HardSwish", "Softmax", "MaxPool", "AveragePool", "GlobalAveragePool",
             "GlobalMaxPool", "BatchNormalization", "Flatten", "Reshape", "Squeeze", "Unsqueeze",
             "Transpose", "Concat", "Pad", "ReduceMean", "Constant", "Identity", "Dropout",
             "QuantizeLinear", "DequantizeLinear", "PRelu", "Slice", "Split", "Resize")


class Graph:
    """The ONNX graph with what onnxruntime measured: shapes, ranges, constants."""

    def __init__(self, src: Path, model):
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
            if node.op not in SUPPORTED and not on_constants:
                raise self.fail(node, "operator not supported by tinybuild's ONNX importer (supported: "
                                f"{', '.join(SUPPORTED)}; Shape/Gather/Cast/... chains on constants)",
                                "replace that layer, or export the model without it")
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise TinybuildError(
                f"{_p(self.src)}: the model has {len(self.inputs)} inputs and {len(self.outputs)} outputs; "
                "the ONNX importer takes models with exactly one of each. Fix: export the part of the "
                "network that maps the one input to the output the firmware needs")

    def _folds_on_constants(self, node: Node) -> bool:
        """Shape and any op on constants only: computed at build time."""
        ins = [i for i in node.inputs if i]
        known = node.op == "Shape" or all(i in self.constant for i in ins)
        if known:
            self.constant.update(o for o in node.outputs if o)
        return known

    def input_sample_shape(self) -> tuple[tuple[int, ...], Layout]:
        """The firmware's input shape without the batch (NHWC for an NCHW image)."""
        inp = self.inputs[0]
        dims = inp.type.tensor_type.shape.dim
        shape = []
        for axis, d in enumerate(dims):
            if d.HasField("dim_value") and d.dim_value > 0:
                shape.append(int(d.dim_value))
            elif axis == 0:
                shape.append(1)                      # a dynamic batch: one sample at a time
            else:
                raise TinybuildError(
                    f"{_p(self.src)}: input '{shown(inp.name)}' has a dynamic dimension "
                    f"'{shown(d.dim_param or '?')}' (axis {axis}); tinybuild compiles fixed shapes. Fix: "
                    "export with a fixed input shape (torch.onnx.export without dynamic_axes for that "
                    "axis; tf2onnx --inputs name:0[1,49,10,1]), or fix it with "
                    "onnx.tools.update_model_dims.update_inputs_outputs_dims")
        if not shape or shape[0] != 1:
            raise TinybuildError(f"{_p(self.src)}: input '{shown(inp.name)}' has shape {shape}; tinybuild "
                                 "builds for a batch of 1. Fix: export with batch size 1 (or a dynamic batch)")
        self.input_shape = tuple(shape)
        if len(shape) == 4 and self._image_input():
            nhwc = tuple(shape[a] for a in NCHW_TO_NHWC)
            return nhwc[1:], Layout("NHWC (the ONNX input is NCHW)", NCHW_TO_NHWC)
        return tuple(shape[1:]), Layout("as ONNX", None)

    def _image_input(self) -> bool:
        """Whether a Conv or pool reads the input (through QDQ pairs, Identity, Dropout)."""
        names, found = {self.inputs[0].name}, set()
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
        dims = m.graph.input[[i.name for i in m.graph.input].index(self.inputs[0].name)].type.tensor_type.shape.dim
        for d, size in zip(dims, self.input_shape):
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

    def observe(self, onnx_calib: np.ndarray) -> None:
        """Run every sample, keeping every tensor's min/max, shape, and sample 0's value."""
        sess = self.session(every_tensor=True)
        names = [o.name for o in sess.get_outputs()]
        feed = self.inputs[0].name
        for k, sample in enumerate(onnx_calib):
            results = sess.run(names, {feed: sample[None].astype(np.float32)})
            for name, value in zip(names, results):
                value = np.asarray(value)
                if k == 0:
                    self.shapes[name], self.values[name] = tuple(value.shape), value
                if value.size and np.issubdtype(value.dtype, np.floating):
                    lo, hi = float(value.min()), float(value.max())
                    old = self.ranges.get(name, (lo, hi))
                    self.ranges[name] = (min(lo, old[0]), max(hi, old[1]))
        x = onnx_calib[:1]
        self.shapes[feed] = tuple(x.shape)
        self.ranges[feed] = (float(onnx_calib.min()), float(onnx_calib.max()))
        for name, value in self.consts.items():
            self.shapes[name], self.values[name] = tuple(value.shape), value

    def float_outputs(self, onnx_calib: np.ndarray) -> np.ndarray:
        """The float model's output per sample, in the firmware's layout, flattened."""
        sess = self.session(every_tensor=False)
        feed, out = self.inputs[0].name, self.outputs[0]
        perm = self.output_perm
        rows = []
        for sample in onnx_calib:
            y = np.asarray(sess.run([out], {feed: sample[None].astype(np.float32)})[0], np.float32)
            rows.append((y.transpose(perm) if perm else y).ravel())
        return np.stack(rows)

    def output_layout(self) -> str:
        return "NHWC (the ONNX model's NCHW output, transposed at build time)" if self.output_perm \
            else "as ONNX"

    # -- graph rewrites --------------------------------------------------------------
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
        self.output_perm = None

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
        if self.inputs[0].name == old:
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
            if self.inputs[0].name == src:
                raise TinybuildError(f"{_p(self.src)}: the model's output is its input. Fix: export a network")
            return
        for n in self.live:
            n.inputs = [src if i == dst else i for i in n.inputs]


_SPATIAL = ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Resize")
_PASS_THROUGH = ("QuantizeLinear", "DequantizeLinear", "Identity", "Dropout")
_FUSES_ACTIVATION = ("Conv", "Gemm", "MatMul", "Add", "Sub", "Mul")


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


# --------------------------------------------------------------------------
# folding: weights, bias, BatchNormalization, activations
# --------------------------------------------------------------------------

def _fold_linear(g: Graph, node: Node) -> None:
    """Weights and bias as float arrays (Conv: OIHW; Gemm/MatMul: [out, in]), then
    the BatchNormalization / bias / scale that follow folded into them."""
    if node.op == "Conv":
        w = g.value(node.inputs[1])
        if w is None:
            raise g.fail(node, "the weights are not constant", "export the model with constant weights")
        bias = g.value(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
        node.weight = w.astype(np.float32)
        node.bias = np.zeros(w.shape[0], np.float32) if bias is None else bias.astype(np.float32)
        channel_axis = 1
    else:
        _linear_weights(g, node)
        channel_axis = -1
    node.final = node.outputs[0]
    node.weight_scale = _carried_scale(g, node)
    while True:
        nxt = g.single_consumer(node.final)
        if nxt is None or not _fold_one(g, node, nxt, channel_axis):
            return
        g.live.remove(nxt)
        node.final = nxt.outputs[0]


def _carried_scale(g: Graph, node: Node) -> np.ndarray | None:
    """The scale(s) of weights a QDQ model dequantizes from int8 (zero point 0; one
    scale, or one per output channel), so they are written back as they were."""
    name = node.inputs[1]
    dq = next((n for n in g.nodes if n.op == "DequantizeLinear" and n.outputs[0] == name), None)
    if dq is None or any(g.value(i) is None for i in dq.inputs if i):
        return None
    q, scale = g.value(dq.inputs[0]), np.ravel(g.value(dq.inputs[1])).astype(np.float32)
    zp = g.value(dq.inputs[2]) if len(dq.inputs) > 2 and dq.inputs[2] else None
    if q.dtype != np.int8 or (zp is not None and np.any(zp != 0)):
        return None
    out_axis = 0 if node.op == "Conv" or (node.op == "Gemm" and node.attrs.get("transB", 0)) else 1
    axis = int(dq.attrs.get("axis", 1)) % max(q.ndim, 1)
    if scale.size == 1 or (axis == out_axis and scale.size == node.weight.shape[0]):
        return scale
    return None


def _linear_weights(g: Graph, node: Node) -> None:
    a, b = node.inputs[0], node.inputs[1]
    bv = g.value(b)
    if bv is None or g.value(a) is not None:
        raise g.fail(node, "only an activation times constant weights is imported (both inputs "
                     "are computed, or the constant comes first)", "export the weights as the second input")
    if node.op == "Gemm":
        if node.attrs.get("transA", 0):
            raise g.fail(node, "transA=1 is not imported", "export the Gemm without transA")
        alpha, beta = float(node.attrs.get("alpha", 1.0)), float(node.attrs.get("beta", 1.0))
        w = (bv.T if node.attrs.get("transB", 0) else bv) * alpha
        c = g.value(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
        if len(node.inputs) > 2 and node.inputs[2] and c is None:
            raise g.fail(node, "the bias C is not constant", "export the model with a constant bias")
        bias = np.zeros(w.shape[1], np.float32) if c is None else _per_channel(c * beta, w.shape[1])
        if bias is None:
            raise g.fail(node, f"bias C of shape {list(c.shape)} is not one value per output",
                         "export a bias of shape [out]")
    else:
        if bv.ndim != 2:
            raise g.fail(node, f"constant weights of rank {bv.ndim} are not imported (rank 2 only)",
                         "export the layer as a Gemm / Linear with 2-D weights")
        w, bias = bv, np.zeros(bv.shape[1], np.float32)
    node.weight = np.ascontiguousarray(w.T, np.float32)       # [out, in]
    node.bias = bias.astype(np.float32)


def _per_channel(c: np.ndarray, channels: int, axis: int = -1, rank: int = 2) -> np.ndarray | None:
    """``c`` as one value per channel when it broadcasts that way over an output of
    ``rank`` dims whose channel axis is ``axis``; None otherwise."""
    c = np.asarray(c, np.float32)
    if c.ndim > rank:
        return None
    full = c.reshape((1,) * (rank - c.ndim) + c.shape)
    axis = axis % rank
    if any(s != 1 for i, s in enumerate(full.shape) if i != axis):
        return None
    vec = full.reshape(-1)
    if vec.size == 1:
        return np.full(channels, vec[0], np.float32)
    return vec if vec.size == channels else None


def _fold_one(g: Graph, node: Node, nxt: Node, channel_axis: int) -> bool:
    """Fold ``nxt`` (BatchNormalization, or Add/Sub/Mul/Div by a per-channel constant)
    into the linear ``node``; False when it does not fold."""
    channels = node.weight.shape[0]
    rank = len(g.shapes[node.final])
    if nxt.op == "BatchNormalization":
        scale, b, mean, var = (g.value(i) for i in nxt.inputs[1:5])
        if any(v is None for v in (scale, b, mean, var)) or nxt.inputs[0] != node.final:
            return False
        if channel_axis == -1 and rank != 2:
            return False
        k = scale / np.sqrt(var + float(nxt.attrs.get("epsilon", 1e-5)))
        _scale_outputs(node, k)
        node.weight_scale = None
        node.bias = (node.bias - mean) * k + b
        return True
    if nxt.op not in ("Add", "Sub", "Mul", "Div") or len(nxt.inputs) != 2:
        return False
    other = nxt.inputs[1] if nxt.inputs[0] == node.final else nxt.inputs[0]
    c = g.value(other)
    if c is None or other == node.final:
        return False
    vec = _per_channel(c, channels, channel_axis, rank)
    if vec is None or len(g.shapes[nxt.outputs[0]]) != rank:
        return False
    if nxt.op == "Add":
        node.bias = node.bias + vec
    elif nxt.op == "Sub" and nxt.inputs[0] == node.final:
        node.bias = node.bias - vec
    elif nxt.op == "Mul":
        _scale_outputs(node, vec)
        node.bias = node.bias * vec
        node.weight_scale = None
    elif nxt.op == "Div" and nxt.inputs[0] == node.final and np.all(vec != 0):
        _scale_outputs(node, 1.0 / vec)
        node.bias = node.bias / vec
        node.weight_scale = None
    else:
        return False
    return True


def _scale_outputs(node: Node, k: np.ndarray) -> None:
    shape = (-1,) + (1,) * (node.weight.ndim - 1)
    node.weight = (node.weight * np.asarray(k, np.float32).reshape(shape)).astype(np.float32)


def _fuse_activation(g: Graph, node: Node) -> None:
    """A Relu, or a Clip to [0, 6] / [0, inf) / [-1, 1], after the op becomes its fused activation."""
    final = node.final or node.outputs[0]
    nxt = g.single_consumer(final)
    act = _activation_of(g, nxt) if nxt is not None else None
    node.final = final
    if act is None:
        return
    node.activation = act
    g.live.remove(nxt)
    node.final = nxt.outputs[0]


def _activation_of(g: Graph, node: Node) -> str | None:
    if node.op == "Relu":
        return "RELU"
    if node.op != "Clip":
        return None
    lo, hi = _clip_bounds(g, node)
    if lo is None:
        return None
    return {(0.0, 6.0): "RELU6", (0.0, float("inf")): "RELU", (-1.0, 1.0): "RELU_N1_TO_1"}.get((lo, hi))


def _clip_bounds(g: Graph, node: Node):
    if g.opset < 11:
        return float(node.attrs.get("min", -3.4e38)), _inf(node.attrs.get("max", 3.4e38))
    vals = [g.value(i) if i else None for i in node.inputs[1:3]]
    if any(i and v is None for i, v in zip(node.inputs[1:3], vals)):
        return None, None
    lo = float(vals[0]) if len(vals) > 0 and vals[0] is not None else float("-inf")
    hi = float(vals[1]) if len(vals) > 1 and vals[1] is not None else float("inf")
    return lo, _inf(hi)


def _inf(x: float) -> float:
    return float("inf") if x >= 3.4e38 else float(x)


# --------------------------------------------------------------------------
# writing TFLite
# --------------------------------------------------------------------------

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
        self.int8 = quant == "int8"
        self.b = ModelBuilder("tinybuild ONNX import")
        self.acts: dict[str, Act] = {}
        self._unify_concat_ranges()

    # -- tensors ------------------------------------------------------------------------
    def qparams(self, name: str) -> tuple[float, int]:
        if name in self.g.forced:
            return self.g.forced[name]
        lo, hi = self.g.ranges.get(name, (0.0, 0.0))
        return activation_qparams(lo, hi)

    def act_tensor(self, onnx_name: str, shape, qparams=None, name=None) -> int:
        if not self.int8:
            return self.b.tensor(shape, "float32", name=name or onnx_name)
        scale, zp = qparams or self.qparams(onnx_name)
        return self.b.tensor(shape, "int8", scale=scale, zero_point=zp, name=name or onnx_name)

    def tfl_shape(self, onnx_name: str, perm) -> list[int]:
        shape = self.g.shapes[onnx_name]
        return [int(shape[p]) for p in perm]

    def new_act(self, onnx_name: str, perm, qparams=None, sigma=None) -> Act:
        perm = tuple(perm)
        idx = self.act_tensor(onnx_name, self.tfl_shape(onnx_name, perm), qparams)
        act = Act(idx, perm, sigma, qparams or (self.qparams(onnx_name) if self.int8 else None))
        self.acts[onnx_name] = act
        return act

    def act(self, node: Node, name: str) -> Act:
        if name not in self.acts:
            raise self.g.fail(node, f"input '{shown(name)}' is not computed by an imported operator",
                              "report this model (tinybuild bug)")
        act = self.acts[name]
        if act.sigma is not None and node.op not in ("Gemm", "MatMul"):
            act = self._unflattened(node, name)
        return act

    def weights(self, w: np.ndarray, axis: int, name: str, carried=None) -> tuple[int, np.ndarray]:
        """Per-channel symmetric int8 weights (float32 when not quantizing); ``carried``:
        a QDQ model's own scale (one: per-tensor) or scales, kept."""
        if not self.int8:
            return self.b.const(w.astype(np.float32), "float32", name=name), None
        if carried is not None:
            scales = np.asarray(carried, np.float32)
        else:
            moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
            scales = np.abs(moved).max(axis=1) / 127.0
            scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.round(w / (scales.reshape(shape) if scales.size > 1 else scales[0])), -127, 127)
        idx = self.b.const(q.astype(np.int8), "int8", scale=scales, zero_point=np.zeros(len(scales), np.int64),
                           axis=axis if scales.size > 1 else 0, name=name)
        return idx, scales

    def bias(self, b: np.ndarray, in_scale: float, w_scales, name: str) -> int:
        if not self.int8:
            return self.b.const(b.astype(np.float32), "float32", name=name)
        scales = (in_scale * w_scales).astype(np.float64)
        q = np.clip(np.round(b / scales), -2**31, 2**31 - 1).astype(np.int32)
        return self.b.const(q, "int32", scale=scales.astype(np.float32),
                            zero_point=np.zeros(len(scales), np.int64), name=name)

    def const_operand(self, value: np.ndarray, like: Act, rank: int, name: str) -> int:
        """An elementwise op's constant operand, in the other operand's layout."""
        v = np.asarray(value, np.float32)
        v = v.reshape((1,) * (rank - v.ndim) + v.shape).transpose(like.perm) if v.ndim > 0 else v
        if v.size == 1:
            v = v.reshape([1] * max(v.ndim, 1))
        if not self.int8:
            return self.b.const(v, "float32", name=name)
        scale, zp = activation_qparams(float(v.min()), float(v.max()))
        q = np.clip(np.round(v / scale) + zp, -128, 127).astype(np.int8)
        return self.b.const(q, "int8", scale=scale, zero_point=zp, name=name)

    # -- the graph ---------------------------------------------------------------------
    def write(self) -> bytes:
        g = self.g
        inp = g.inputs[0].name
        rank = len(g.shapes[inp])
        perm = NCHW_TO_NHWC if rank == 4 and g._image_input() else tuple(range(rank))
        act = Act(self.b.input(self.tfl_shape(inp, perm), "int8" if self.int8 else "float32",
                               *(self.qparams(inp) if self.int8 else (None, None)), name=inp), tuple(perm))
        act.qparams = self.qparams(inp) if self.int8 else None
        self.acts[inp] = act
        for node in g.live:
            handler = getattr(self, "op_" + node.op, None)
            if handler is None:
                raise g.fail(node, "operator not supported by tinybuild's ONNX importer here",
                             "replace that layer, or export the model without it")
            handler(node)
        out = g.outputs[0]
        if out not in self.acts:
            raise TinybuildError(f"{_p(g.src)}: the output '{shown(out)}' is a constant. Fix: export a network")
        result = self.acts[out]
        if result.sigma is not None:
            result = self._unflattened(None, out)
        g.output_perm = result.perm if result.perm != tuple(range(len(result.perm))) else None
        return self.b.build([result.index])

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

    def op(self, name: str, inputs, outputs, options=None, version: int = 1) -> None:
        self.b.op(name, inputs, outputs, options, version=version)

    def transposed(self, node, act: Act, onnx_name: str, perm) -> Act:
        """``act`` moved to layout ``perm`` with a TRANSPOSE on the device (only when a
        layout-bound op reads a tensor in another layout)."""
        perm = tuple(perm)
        if act.perm == perm:
            return act
        t = [act.perm.index(p) for p in perm]
        idx = self.act_tensor(onnx_name, self.tfl_shape(onnx_name, perm), act.qparams,
                              name=f"{onnx_name}/transposed")
        self.op("TRANSPOSE", [act.index, self.b.const(np.array(t, np.int32), "int32")], [idx])
        return Act(idx, perm, None, act.qparams)

    def _unflattened(self, node, name: str) -> Act:
        """A flattened NHWC tensor read by something else than Gemm/MatMul: reshape it
        back, transpose to ONNX order, flatten again (on the device)."""
        act = self.acts[name]
        src = act.extra["source"]
        back = self.acts[src]
        ident = tuple(range(len(back.perm)))
        mid = self.transposed(node, back, src, ident)
        idx = self.act_tensor(name, list(self.g.shapes[name]), act.qparams, name=f"{name}/onnx_order")
        self._reshape(mid.index, idx, self.g.shapes[name])
        fixed = Act(idx, tuple(range(len(self.g.shapes[name]))), None, act.qparams)
        self.acts[name] = fixed
        return fixed

    def _reshape(self, src: int, dst: int, shape) -> None:
        shape = [int(s) for s in shape]
        self.op("RESHAPE", [src, self.b.const(np.array(shape, np.int32), "int32")], [dst],
                self.b.options("ReshapeOptions", newShape=shape))

    # -- operators -------------------------------------------------------------------
    def op_Conv(self, node: Node) -> None:
        g = self.g
        x = self.transposed(node, self.act(node, node.inputs[0]), node.inputs[0], NCHW_TO_NHWC) \
            if len(g.shapes[node.inputs[0]]) == 4 else None
        if x is None:
            raise g.fail(node, f"a {len(g.shapes[node.inputs[0]]) - 2}-D convolution is not imported yet "
                         "(2-D only)", "export the layer as a 2-D convolution (Conv2d with a height of 1)")
        w = node.weight                       # [O, I/group, kh, kw]
        group = int(node.attrs.get("group", 1))
        channels = g.shapes[node.inputs[0]][1]
        x = self._padded(node, x, w.shape[2:], count_include_pad=True)
        padding = x.extra.pop("padding")
        strides = list(node.attrs.get("strides", [1, 1]))
        dil = list(node.attrs.get("dilations", [1, 1]))
        out = self.new_act(node.final, NCHW_TO_NHWC)
        in_scale = x.qparams[0] if self.int8 else None
        common = dict(padding=padding, strideH=strides[0], strideW=strides[1], dilationHFactor=dil[0],
                      dilationWFactor=dil[1], fusedActivationFunction=node.activation)
        if group == 1:
            wi, ws = self.weights(w.transpose(0, 2, 3, 1), 0, f"{node.final}/weights", node.weight_scale)
            bi = self.bias(node.bias, in_scale, ws, f"{node.final}/bias")
            self.op("CONV_2D", [x.index, wi, bi], [out.index], self.b.options("Conv2DOptions", **common))
        elif group == channels and w.shape[1] == 1:
            wi, ws = self.weights(w[:, 0].transpose(1, 2, 0)[None], 3, f"{node.final}/weights",
                                  node.weight_scale)
            bi = self.bias(node.bias, in_scale, ws, f"{node.final}/bias")
            self.op("DEPTHWISE_CONV_2D", [x.index, wi, bi], [out.index],
                    self.b.options("DepthwiseConv2DOptions", depthMultiplier=w.shape[0] // channels,
                                   **common), version=2 if dil != [1, 1] else 1)
        else:
            raise g.fail(node, f"a grouped convolution (group={group} of {channels} channels) is not "
                         "imported (only group=1 and depthwise)", "split it into group=1 convolutions")

    def _padded(self, node: Node, x: Act, kernel, count_include_pad: bool) -> Act:
        """``x`` with ``extra['padding']`` set to SAME or VALID; other padding becomes a
        PAD op first (zero is the padding value: convolutions, counted average pools)."""
        g = self.g
        in_hw = g.shapes[node.inputs[0]][2:]
        strides = list(node.attrs.get("strides", [1, 1]))
        dil = list(node.attrs.get("dilations", [1, 1]))
        pads = _onnx_pads(node, in_hw, kernel, strides, dil)
        same = [_same_pads(i, k, s, d) for i, k, s, d in zip(in_hw, kernel, strides, dil)]
        x = Act(x.index, x.perm, None, x.qparams, {})
        if all(p == (0, 0) for p in pads):
            x.extra["padding"] = "VALID"
        elif pads == same:
            x.extra["padding"] = "SAME"
        elif count_include_pad:
            paddings = np.array([[0, 0], list(pads[0]), list(pads[1]), [0, 0]], np.int32)
            shape = self.b.tensors[x.index].shape.copy()
            shape[1] += sum(pads[0])
            shape[2] += sum(pads[1])
            idx = self.act_tensor(node.inputs[0], list(shape), x.qparams, name=f"{node.inputs[0]}/padded")
            self.op("PAD", [x.index, self.b.const(paddings, "int32")], [idx])
            x = Act(idx, x.perm, None, x.qparams, {"padding": "VALID"})
        else:
            raise g.fail(node, f"padding {pads} is neither TFLite's SAME nor VALID",
                         "export with padding = kernel // 2 (odd kernels) or none")
        if node.attrs.get("ceil_mode", 0) and tuple(g.shapes[node.outputs[0]][2:]) != tuple(
                _out_size(i, k, s, d, p) for i, k, s, d, p in zip(in_hw, kernel, strides, dil, pads)):
            raise g.fail(node, "ceil_mode=1 changes the output size", "export with ceil_mode=False")
        return x

    def op_Gemm(self, node: Node) -> None:
        g = self.g
        x = self.acts.get(node.inputs[0])
        if x is None:
            raise g.fail(node, "its input is not computed by an imported operator", "report this model")
        shape = g.shapes[node.inputs[0]]
        w = node.weight
        if x.sigma is not None:
            w = w[:, x.sigma]                 # the NHWC flatten order, permuted at build time
        elif x.perm != tuple(range(len(shape))):
            x = self.transposed(node, x, node.inputs[0], range(len(shape)))
        if len(shape) < 2 or any(s != 1 for s in shape[:-2]):
            raise g.fail(node, f"input shape {list(shape)} is not imported (rows x features only)",
                         "flatten the input first")
        out = self.new_act(node.final, range(len(g.shapes[node.final])))
        wi, ws = self.weights(w, 0, f"{node.final}/weights", node.weight_scale)
        bi = self.bias(node.bias, x.qparams[0] if self.int8 else None, ws, f"{node.final}/bias")
        self.op("FULLY_CONNECTED", [x.index, wi, bi], [out.index],
                self.b.options("FullyConnectedOptions", fusedActivationFunction=node.activation,
                               keepNumDims=len(shape) > 2))

    op_MatMul = op_Gemm

    def _binary(self, node: Node) -> None:
        g = self.g
        a_name, b_name = node.inputs
        op = {"Add": "ADD", "Sub": "SUB", "Mul": "MUL", "Div": "MUL"}[node.op]
        final = node.final or node.outputs[0]
        rank = len(g.shapes[node.outputs[0]])
        consts = [g.value(a_name), g.value(b_name)]
        if consts[0] is not None and node.op in ("Sub", "Div"):
            raise g.fail(node, "a constant minus / divided by an activation is not imported",
                         "rewrite it as an activation op constant")
        if consts[0] is not None:
            a_name, b_name, consts = b_name, a_name, consts[::-1]
        a = self.act(node, a_name)
        if len(g.shapes[a_name]) != rank:
            a = self.transposed(node, a, a_name, range(len(g.shapes[a_name])))
        if consts[1] is not None:
            c = consts[1]
            c = 1.0 / c if node.op == "Div" else c
            if rank != len(a.perm):
                raise g.fail(node, "broadcasting a constant across ranks is not imported", "export it flat")
            bi = self.const_operand(c, a, rank, f"{final}/operand")
        else:
            if node.op == "Div":
                raise g.fail(node, "a division of two activations is not imported", "rewrite it as a Mul")
            other = self.act(node, b_name)
            if len(g.shapes[b_name]) != rank or len(g.shapes[a_name]) != rank:
                raise g.fail(node, "broadcasting activations across ranks is not imported",
                             "give both operands the same rank")
            bi = self.transposed(node, other, b_name, a.perm).index
        out = self.new_act(final, a.perm)
        options = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions"}[op]
        self.op(op, [a.index, bi], [out.index],
                self.b.options(options, fusedActivationFunction=node.activation))

    op_Add = op_Sub = op_Mul = op_Div = _binary

    def _unary(self, node: Node, op: str, qparams=None, options=None) -> None:
        x = self.act(node, node.inputs[0])
        out = self.new_act(node.outputs[0], x.perm, qparams if self.int8 else None)
        self.op(op, [x.index], [out.index], options)

    def op_Relu(self, node):
        self._unary(node, "RELU")

    def op_Clip(self, node):
        act = _activation_of(self.g, node)
        if act is None:
            raise self.g.fail(node, "only Clip to [0, 6], [0, inf) or [-1, 1] is imported",
                              "use ReLU6 / ReLU / Hardtanh")
        self._unary(node, act)

    def op_Sigmoid(self, node):
        self._unary(node, "LOGISTIC", (1 / 256, -128))

    def op_Tanh(self, node):
        self._unary(node, "TANH", (1 / 128, 0))

    def op_HardSwish(self, node):
        self._unary(node, "HARD_SWISH")

    def op_LeakyRelu(self, node):
        self._unary(node, "LEAKY_RELU", None,
                    self.b.options("LeakyReluOptions", alpha=float(node.attrs.get("alpha", 0.01))))

    def op_Softmax(self, node):
        g = self.g
        x = self.act(node, node.inputs[0])
        shape = g.shapes[node.inputs[0]]
        axis = int(node.attrs.get("axis", 1 if g.opset < 13 else -1)) % len(shape)
        trailing_ones = all(s == 1 for s in shape[axis + 1:])
        if g.opset < 13 and not trailing_ones:
            raise g.fail(node, f"softmax over axes {axis}.. (opset {g.opset} flattens them) is not "
                         "imported", "apply it to the last axis")
        if x.perm[-1] != axis and not trailing_ones:
            raise g.fail(node, f"softmax over axis {axis} (not the last) is not imported",
                         "apply it to the last axis")
        if x.perm[-1] != axis:
            x = self.transposed(node, x, node.inputs[0], [p for p in x.perm if p != axis] + [axis])
        out = self.new_act(node.outputs[0], x.perm, (1 / 256, -128) if self.int8 else None)
        self.op("SOFTMAX", [x.index], [out.index], self.b.options("SoftmaxOptions", beta=1.0))

    def _pool(self, node: Node, op: str) -> None:
        g = self.g
        if len(g.shapes[node.inputs[0]]) != 4:
            raise g.fail(node, "only 2-D pooling is imported", "pool over height and width")
        if any(d != 1 for d in node.attrs.get("dilations", [1, 1])):
            raise g.fail(node, "dilated pooling is not imported", "export without dilations")
        x = self.transposed(node, self.act(node, node.inputs[0]), node.inputs[0], NCHW_TO_NHWC)
        k = list(node.attrs["kernel_shape"])
        counted = op == "AVERAGE_POOL_2D" and bool(node.attrs.get("count_include_pad", 0))
        x = self._padded(node, x, k, count_include_pad=counted)
        strides = list(node.attrs.get("strides", [1, 1]))
        out = self.new_act(node.final or node.outputs[0], NCHW_TO_NHWC, x.qparams)
        self.op(op, [x.index], [out.index],
                self.b.options("Pool2DOptions", padding=x.extra["padding"], strideH=strides[0],
                               strideW=strides[1], filterHeight=k[0], filterWidth=k[1],
                               fusedActivationFunction="NONE"))

    def op_MaxPool(self, node):
        if len(node.outputs) > 1 and node.outputs[1]:
            raise self.g.fail(node, "MaxPool's indices output is not imported", "export without indices")
        self._pool(node, "MAX_POOL_2D")

    def op_AveragePool(self, node):
        self._pool(node, "AVERAGE_POOL_2D")

    def op_GlobalAveragePool(self, node):
        g = self.g
        if len(g.shapes[node.inputs[0]]) != 4:
            raise g.fail(node, "only 2-D pooling is imported", "pool over height and width")
        x = self.transposed(node, self.act(node, node.inputs[0]), node.inputs[0], NCHW_TO_NHWC)
        out = self.new_act(node.outputs[0], NCHW_TO_NHWC)
        self.op("MEAN", [x.index, self.b.const(np.array([1, 2], np.int32), "int32")], [out.index],
                self.b.options("ReducerOptions", keepDims=True))

    def op_GlobalMaxPool(self, node):
        g = self.g
        shape = g.shapes[node.inputs[0]]
        x = self.transposed(node, self.act(node, node.inputs[0]), node.inputs[0], NCHW_TO_NHWC)
        out = self.new_act(node.outputs[0], NCHW_TO_NHWC, x.qparams)
        self.op("MAX_POOL_2D", [x.index], [out.index],
                self.b.options("Pool2DOptions", padding="VALID", strideH=1, strideW=1,
                               filterHeight=int(shape[2]), filterWidth=int(shape[3]),
                               fusedActivationFunction="NONE"))

    def op_ReduceMean(self, node):
        g = self.g
        shape = g.shapes[node.inputs[0]]
        axes = node.attrs.get("axes")
        if axes is None and len(node.inputs) > 1 and node.inputs[1]:
            axes = g.value(node.inputs[1])
        axes = list(range(len(shape))) if axes is None else [int(a) % len(shape) for a in np.ravel(axes)]
        keep = bool(node.attrs.get("keepdims", 1))
        x = self.act(node, node.inputs[0])
        if not keep and x.perm != tuple(range(len(shape))):
            x = self.transposed(node, x, node.inputs[0], range(len(shape)))
        tfl_axes = sorted(x.perm.index(a) for a in axes)
        perm = x.perm if keep else tuple(range(len(g.shapes[node.outputs[0]])))
        out = self.new_act(node.outputs[0], perm)
        self.op("MEAN", [x.index, self.b.const(np.array(tfl_axes, np.int32), "int32")], [out.index],
                self.b.options("ReducerOptions", keepDims=keep))

    def op_Transpose(self, node):
        """A relabelling only: the data stays where it is (no TRANSPOSE on the device)."""
        x = self.act(node, node.inputs[0])
        rank = len(x.perm)
        p = list(node.attrs.get("perm", list(reversed(range(rank)))))
        inv = np.argsort(p)
        self.acts[node.outputs[0]] = Act(x.index, tuple(int(inv[q]) for q in x.perm), None, x.qparams)

    def _reshape_node(self, node: Node) -> None:
        g = self.g
        src, dst = node.inputs[0], node.outputs[0]
        x = self.acts.get(src)
        if x is None:
            raise g.fail(node, "its input is not computed by an imported operator", "report this model")
        if x.sigma is not None:
            x = self._unflattened(node, src)
        out_shape = g.shapes[dst]
        ident = tuple(range(len(x.perm)))
        if self._read_by_linear_only(dst) and len(out_shape) == 2 and out_shape[0] == 1:
            # FULLY_CONNECTED flattens its input itself (as TFLite's converter leaves it):
            # no RESHAPE; NHWC data order is taken care of by permuting the weight columns
            sigma = np.arange(int(np.prod(g.shapes[src]))).reshape(g.shapes[src]).transpose(x.perm).ravel()
            identity = bool(np.all(sigma == np.arange(sigma.size)))
            self.acts[dst] = Act(x.index, (0, 1), None if identity else sigma, x.qparams,
                                 {"source": src})
            return
        x = self.transposed(node, x, src, ident)
        idx = self.act_tensor(dst, list(out_shape), x.qparams)
        self._reshape(x.index, idx, out_shape)
        self.acts[dst] = Act(idx, tuple(range(len(out_shape))), None, x.qparams)

    def _read_by_linear_only(self, name: str) -> bool:
        users = self.g.consumers(name)
        return bool(users) and name not in self.g.outputs and all(
            u.op in ("Gemm", "MatMul") and u.inputs[0] == name for u in users)

    op_Flatten = op_Reshape = op_Squeeze = op_Unsqueeze = _reshape_node

    def op_Concat(self, node):
        g = self.g
        names = [n for n in node.inputs if n]
        if any(g.value(n) is not None for n in names):
            raise g.fail(node, "concatenating a constant is not imported", "concatenate activations only")
        first = self.act(node, names[0])
        parts = [self.transposed(node, self.act(node, n), n, first.perm) for n in names]
        axis = int(node.attrs.get("axis", 0)) % len(first.perm)
        out = self.new_act(node.final or node.outputs[0], first.perm, first.qparams)
        self.op("CONCATENATION", [p.index for p in parts], [out.index],
                self.b.options("ConcatenationOptions", axis=first.perm.index(axis),
                               fusedActivationFunction=node.activation))

    def op_Pad(self, node):
        g = self.g
        mode = node.attrs.get("mode", "constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        pads = node.attrs.get("pads") if g.opset < 11 else g.value(node.inputs[1])
        value = node.attrs.get("value", 0.0) if g.opset < 11 else (
            g.value(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else 0.0)
        if mode != "constant" or pads is None or value is None or float(np.ravel(value)[0]) != 0.0 \
                or (len(node.inputs) > 3 and node.inputs[3]):
            raise g.fail(node, "only constant zero padding with constant pads is imported",
                         "pad with zeros (mode='constant')")
        x = self.act(node, node.inputs[0])
        rank = len(x.perm)
        pads = np.asarray(pads, np.int64).reshape(2, rank).T
        if np.any(pads < 0):
            raise g.fail(node, "negative pads (cropping) are not imported", "slice instead")
        paddings = np.array([pads[p] for p in x.perm], np.int32)
        out = self.new_act(node.outputs[0], x.perm, x.qparams)
        self.op("PAD", [x.index, self.b.const(paddings, "int32")], [out.index])

    def op_PRelu(self, node):
        g = self.g
        slope = g.value(node.inputs[1])
        if slope is None:
            raise g.fail(node, "a computed slope is not imported", "export the slope as a constant")
        x = self.act(node, node.inputs[0])
        alpha = self.const_operand(slope, x, len(x.perm), f"{node.outputs[0]}/alpha")
        out = self.new_act(node.outputs[0], x.perm)
        self.op("PRELU", [x.index, alpha], [out.index])

    def op_Slice(self, node):
        g = self.g
        shape = g.shapes[node.inputs[0]]
        if g.opset < 10:
            starts, axes, steps = node.attrs["starts"], node.attrs.get("axes"), None
        else:
            starts, axes, steps = (g.value(node.inputs[i]) if len(node.inputs) > i and node.inputs[i] else None
                                   for i in (1, 3, 4))
            if starts is None or any(len(node.inputs) > i and node.inputs[i] and g.value(node.inputs[i]) is None
                                     for i in (2, 3, 4)):
                raise g.fail(node, "computed starts/ends are not imported", "slice with constants")
        if steps is not None and np.any(np.asarray(steps) != 1):
            raise g.fail(node, "steps other than 1 are not imported", "slice with step 1")
        axes = range(len(starts)) if axes is None else axes
        begin = [0] * len(shape)
        for a, st in zip(np.ravel(axes), np.ravel(starts)):
            a = int(a) % len(shape)
            st = int(st)
            begin[a] = min(max(st + shape[a] if st < 0 else st, 0), shape[a])
        x = self.act(node, node.inputs[0])
        out = self.new_act(node.outputs[0], x.perm, x.qparams)
        size = self.tfl_shape(node.outputs[0], x.perm)
        self.op("SLICE", [x.index, self.b.const(np.array([begin[p] for p in x.perm], np.int32), "int32"),
                          self.b.const(np.array(size, np.int32), "int32")], [out.index], version=2)

    def op_Split(self, node):
        g = self.g
        x = self.act(node, node.inputs[0])
        axis = int(node.attrs.get("axis", 0)) % len(x.perm)
        sizes = [int(g.shapes[o][axis]) for o in node.outputs]
        outs = [self.new_act(o, x.perm, x.qparams) for o in node.outputs]
        self.op("SPLIT_V", [x.index, self.b.const(np.array(sizes, np.int32), "int32"),
                            self.b.const(np.array(x.perm.index(axis), np.int32), "int32")],
                [o.index for o in outs], self.b.options("SplitVOptions", numSplits=len(sizes)), version=2)

    def op_Resize(self, node):
        g = self.g
        shape, out_shape = g.shapes[node.inputs[0]], g.shapes[node.outputs[0]]
        text = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in node.attrs.items()}
        mode = text.get("mode", "nearest")
        coords = text.get("coordinate_transformation_mode", "half_pixel" if g.opset >= 11 else "asymmetric")
        nearest = text.get("nearest_mode", "round_prefer_floor")
        flags = {"asymmetric": (False, False), "align_corners": (True, False),
                 "half_pixel": (False, True), "pytorch_half_pixel": (False, True)}.get(coords)
        op = {"nearest": "RESIZE_NEAREST_NEIGHBOR", "linear": "RESIZE_BILINEAR"}.get(mode)
        nearest_ok = mode != "nearest" or (coords == "asymmetric" and nearest == "floor") or (
            coords in ("half_pixel", "pytorch_half_pixel") and nearest == "round_prefer_ceil") or (
            coords == "align_corners" and nearest == "round_prefer_ceil")
        if (len(shape) != 4 or tuple(shape[:2]) != tuple(out_shape[:2]) or op is None or flags is None
                or not nearest_ok or (coords == "pytorch_half_pixel" and min(out_shape[2:]) == 1)):
            raise g.fail(node, f"Resize mode={mode}, coordinate_transformation_mode={coords}"
                         + (f", nearest_mode={nearest}" if mode == "nearest" else "")
                         + " over H, W has no TFLite equivalent here",
                         "use nearest with asymmetric/floor (PyTorch's Upsample) or linear with "
                         "half_pixel or align_corners")
        x = self.transposed(node, self.act(node, node.inputs[0]), node.inputs[0], NCHW_TO_NHWC)
        out = self.new_act(node.outputs[0], NCHW_TO_NHWC, x.qparams)
        table = "ResizeNearestNeighborOptions" if mode == "nearest" else "ResizeBilinearOptions"
        self.op(op, [x.index, self.b.const(np.array(out_shape[2:], np.int32), "int32")], [out.index],
                self.b.options(table, alignCorners=flags[0], halfPixelCenters=flags[1]), version=3)

    def op_BatchNormalization(self, node):
        raise self.g.fail(node, "a BatchNormalization that does not follow a Conv, Gemm or MatMul is not "
                          "imported yet", "put it after a convolution or linear layer")


def activation_qparams(lo: float, hi: float) -> tuple[float, int]:
    """int8 scale and zero point for the range [lo, hi] as TFLite's converter picks
    them: the range always holds 0, zero point rounded and clamped to [-128, 127]."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-9:
        return 1.0 / 255, -128
    scale = (hi - lo) / 255.0
    zp = int(round(-128 - lo / scale))
    return float(np.float32(scale)), int(min(max(zp, -128), 127))


def _onnx_pads(node: Node, in_hw, kernel, strides, dil) -> list[tuple[int, int]]:
    auto = node.attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = [_same_pads(i, k, s, d) for i, k, s, d in zip(in_hw, kernel, strides, dil)]
        return pads if auto == "SAME_UPPER" else [(b, a) for a, b in pads]
    if auto == "VALID":
        return [(0, 0)] * len(in_hw)
    p = list(node.attrs.get("pads", [0] * 2 * len(in_hw)))
    n = len(in_hw)
    return [(int(p[i]), int(p[i + n])) for i in range(n)]


def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TFLite's SAME padding (before, after) for one spatial axis."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _out_size(size, k, s, d, pads) -> int:
    return (size + pads[0] + pads[1] - ((k - 1) * d + 1)) // s + 1
