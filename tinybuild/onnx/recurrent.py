"""ONNX LSTM -> TFLite UNIDIRECTIONAL_SEQUENCE_LSTM, written as TFLite's converter writes a
Keras LSTM (what tinybuild.ops.recurrent compiles):

* gates: ONNX's W/R/B blocks are i, o, f, c; TFLite's inputs 1-4 / 5-8 / 12-15 are
  input, forget, cell, output gate weights [H, I], recurrent weights [H, H] and
  biases [H] (W bias + R bias); no peephole, projection or layer norm;
* int8 (the 8x8_16 kernel): weights symmetric int8 per tensor, per gate; biases
  int32 at input scale x weight scale; the output state (input 18) an int8 variable
  quantized as the output; the cell state (input 19) an int16 variable whose scale
  is a power of two over the calibrated cell range (2^k / 32768, as TFLite's
  quantizer); five intermediates: four empty float32 ones and the hidden state's
  (the output's scale and zero point);
* the cell and hidden ranges come from a float LSTM run here in numpy over every
  calibration sample (onnxruntime gives only the last step's cell state);
* X [T, B, I] is TFLite's time-major input; a batch-major X (after PyTorch's
  Transpose, relabelled) sets time_major=False; Y_h is a STRIDED_SLICE of the last
  step; Y only when something reads it; Y_c read by another op is one line (the
  cell state stays inside the layer).
"""
from __future__ import annotations

import math

import numpy as np

from tinybuild.onnx.graph import Node

ONNX_GATES = {"input": 0, "output": 1, "forget": 2, "cell": 3}       # W/R/B blocks, in ONNX's order
TFLITE_GATES = ("input", "forget", "cell", "output")                 # inputs 1-4, 5-8, 12-15


def lstm(wr, node: Node) -> None:
    g = wr.g
    if wr.int16:
        raise g.fail(node, "a 16x8 LSTM is not compiled (tinybuild's LSTM takes int8 or float32)",
                     "build with quant=int8 or quant=float32")
    w, r, b, hidden = _lstm_parameters(g, node)
    x = wr.act(node, node.inputs[0])
    time_major = x.perm == (0, 1, 2)
    if not time_major and x.perm != (1, 0, 2):
        x = wr.transposed(node, x, node.inputs[0], (0, 1, 2))
        time_major = True
    n_time, n_batch, _ = g.shapes[node.inputs[0]]
    seq_shape = [n_time, n_batch, hidden] if time_major else [n_batch, n_time, hidden]
    h_range, c_range = _state_ranges(g, node, w, r, b)
    out_q = wr.qparams_for(*h_range) if wr.quantized else None
    seq = wr.b.tensor(seq_shape, wr.dtype, *(out_q or (None, None)), name=f"{node.name or 'lstm'}/sequence")
    inputs = [x.index, *_gate_tensors(wr, node, w, r, b, x, out_q)]
    inputs += [_state(wr, node, "output_state", (n_batch, hidden), out_q),
               _state(wr, node, "cell_state", (n_batch, hidden),
                      _cell_qparams(c_range) if wr.quantized else None, "int16")] + [-1] * 4
    intermediates = _intermediates(wr, node, out_q) if wr.quantized else None
    wr.op("UNIDIRECTIONAL_SEQUENCE_LSTM", inputs, [seq],
          wr.b.options("UnidirectionalSequenceLSTMOptions", fusedActivationFunction=4, cellClip=0.0,
                       projClip=0.0, timeMajor=time_major, asymmetricQuantizeInputs=False),
          intermediates=intermediates)
    _lstm_outputs(wr, node, seq, seq_shape, time_major, out_q)


def lstm_problem(g, node: Node) -> str | None:
    """What keeps an LSTM from TFLite's UNIDIRECTIONAL_SEQUENCE_LSTM, from its attributes and
    inputs alone (checked before onnxruntime runs the model), or None."""
    text = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in node.attrs.items()}
    activations = [a.decode() if isinstance(a, bytes) else a for a in node.attrs.get("activations", [])]
    constant = all(i in g.constant for i in node.inputs[1:4] if i)
    return ("the weights are not constant" if not constant
            else f"direction={text.get('direction')}" if text.get("direction", "forward") != "forward"
            else f"activations {activations}" if activations not in ([], ["Sigmoid", "Tanh", "Tanh"])
            else "clip" if "clip" in node.attrs
            else "input_forget=1" if text.get("input_forget", 0)
            else "layout=1" if text.get("layout", 0)
            else "sequence_lens, initial_h, initial_c or peephole inputs" if any(node.inputs[4:]) else None)


def refuse(g, node: Node, problem: str):
    return g.fail(node, f"{problem} is not imported for LSTM (TFLite's UNIDIRECTIONAL_SEQUENCE_LSTM: "
                  "one forward direction, sigmoid/tanh/tanh, no clip, zero initial state, no peephole)",
                  "export a plain forward nn.LSTM / keras LSTM (one layer, batch_first or not)")


def _lstm_parameters(g, node: Node):
    """W [4H, I], R [4H, H], B [8H] (float32) and H."""
    problem = lstm_problem(g, node)
    if problem:
        raise refuse(g, node, problem)
    w, r = g.value(node.inputs[1]), g.value(node.inputs[2])
    b = g.value(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] else None
    if any(o for o in node.outputs[2:3] if g.consumers(o) or o in g.outputs):
        raise g.fail(node, "its cell state Y_c is read by another op or is an output",
                     "read Y or Y_h only (tinybuild keeps the cell state inside the layer)")
    hidden = int(node.attrs["hidden_size"]) if "hidden_size" in node.attrs else r.shape[-1]
    b = np.zeros(8 * hidden, np.float32) if b is None else b.reshape(-1).astype(np.float32)
    return w[0].astype(np.float32), r[0].astype(np.float32), b, hidden


def _gate(m: np.ndarray, gate: str, hidden: int) -> np.ndarray:
    k = ONNX_GATES[gate]
    return m[k * hidden:(k + 1) * hidden]


def _gate_tensors(wr, node, w, r, b, x, out_q) -> list[int]:
    """Input weights, recurrent weights (per-tensor int8 each) and biases, in TFLite's gate order."""
    hidden = r.shape[1]
    name = node.name or "lstm"
    bias = _gate_bias(b, hidden)
    ins, recs, biases = [], [], []
    for gate in TFLITE_GATES:
        wi, ws = _per_tensor(wr, _gate(w, gate, hidden), f"{name}/{gate}_input_weights")
        ri, _ = _per_tensor(wr, _gate(r, gate, hidden), f"{name}/{gate}_recurrent_weights")
        ins.append(wi)
        recs.append(ri)
        biases.append(wr.bias(_gate(bias, gate, hidden), x.qparams[0] if wr.quantized else None, ws,
                              f"{name}/{gate}_bias"))
    return ins + recs + [-1, -1, -1] + biases + [-1, -1]


def _gate_bias(b: np.ndarray, hidden: int) -> np.ndarray:
    return b[:4 * hidden] + b[4 * hidden:]


def _per_tensor(wr, w: np.ndarray, name: str) -> tuple[int, np.ndarray | None]:
    """Symmetric int8 with one scale (the integer LSTM takes no per-channel weights)."""
    if not wr.quantized:
        return wr.b.const(w.astype(np.float32), "float32", name=name), None
    scale = np.array([max(float(np.abs(w).max()) / 127.0, 1e-12)], np.float32)
    return wr.weights(w, 0, name, scale)


def _state(wr, node, what: str, shape, qparams, int_type: str = "int8") -> int:
    dtype = int_type if wr.quantized else "float32"
    scale, zp = qparams or (None, None)
    return wr.b.tensor(list(shape), dtype, scale, zp, name=f"{node.name or 'lstm'}/{what}", variable=True)


def _cell_qparams(c_range) -> tuple[float, int]:
    """int16, zero point 0, scale 2^k / 32768 with 2^k >= the largest |cell| (TFLite's rule)."""
    biggest = max(abs(c_range[0]), abs(c_range[1]), 1e-6)
    return 2.0 ** math.ceil(math.log2(biggest)) / 32768.0, 0


def _intermediates(wr, node, out_q) -> list[int]:
    name = node.name or "lstm"
    empty = [wr.b.tensor([0], "float32", name=f"{name}/{gate}_intermediate") for gate in TFLITE_GATES]
    return empty + [wr.b.tensor([0], "int8", *out_q, name=f"{name}/effective_hidden_scale_intermediate")]


def _lstm_outputs(wr, node, seq: int, seq_shape, time_major: bool, out_q) -> None:
    """Y_h: a STRIDED_SLICE of the last step; Y: the sequence with ONNX's direction axis."""
    from tinybuild.onnx.writer import Act
    g = wr.g
    y, y_h = (node.outputs + ["", ""])[:2]
    if y and (g.consumers(y) or y in g.outputs):
        t, b, h = seq_shape if time_major else (seq_shape[1], seq_shape[0], seq_shape[2])
        g.shapes[f"{y}/sequence"] = (t, b, h)
        seq_act = Act(seq, (0, 1, 2) if time_major else (1, 0, 2), None, out_q)
        flat = wr.transposed(node, seq_act, f"{y}/sequence", (0, 1, 2))
        out = wr.new_act(y, (0, 1, 2, 3), out_q)
        wr.reshape(flat.index, out.index, g.shapes[y])
    if y_h and (g.consumers(y_h) or y_h in g.outputs):
        n_time = seq_shape[0] if time_major else seq_shape[1]
        begin = [n_time - 1, 0, 0] if time_major else [0, n_time - 1, 0]
        out = wr.new_act(y_h, (0, 1, 2) if time_major else (1, 0, 2), out_q)
        ints = lambda v: wr.b.const(np.array(v, np.int32), "int32")  # noqa: E731
        wr.op("STRIDED_SLICE", [seq, ints(begin), ints(seq_shape), ints([1, 1, 1])], [out.index],
              wr.b.options("StridedSliceOptions", beginMask=0, endMask=0, ellipsisMask=0, newAxisMask=0,
                           shrinkAxisMask=0), version=2)


def _state_ranges(g, node, w, r, b) -> tuple[tuple[float, float], tuple[float, float]]:
    """(hidden range, cell range) over every step of every calibration sample (float LSTM)."""
    hidden = r.shape[1]
    bias = _gate_bias(b, hidden)
    h_lo = h_hi = c_max = 0.0
    for xs in g.history.get(node.inputs[0], []):             # [T, B, I] per sample
        h = np.zeros((xs.shape[1], hidden), np.float32)
        c = np.zeros_like(h)
        for x in xs:
            z = x @ w.T + h @ r.T + bias
            i, o, f, cc = (z[:, k * hidden:(k + 1) * hidden] for k in range(4))
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(cc)
            h = _sigmoid(o) * np.tanh(c)
            h_lo, h_hi = min(h_lo, float(h.min())), max(h_hi, float(h.max()))
            c_max = max(c_max, float(np.abs(c).max()))
    return (h_lo, h_hi), (-c_max, c_max)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


# --------------------------------------------------------------------------
# GRU: unrolled into TFLite ops, one group per time step
# --------------------------------------------------------------------------
# ONNX's W/R/B blocks: z (update), r (reset), h; PyTorch's and Keras' (reset_after) GRU:
# linear_before_reset=1, h~ = tanh(x Wh + bWh + r * (H Rh + bRh)), H' = h~ + z * (H - h~).

def gru_problem(g, node: Node) -> str | None:
    """What keeps a GRU from being unrolled here, from its attributes and inputs, or None."""
    text = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in node.attrs.items()}
    activations = [a.decode() if isinstance(a, bytes) else a for a in node.attrs.get("activations", [])]
    return ("the weights are not constant" if not all(i in g.constant for i in node.inputs[1:4] if i)
            else f"direction={text.get('direction')}" if text.get("direction", "forward") != "forward"
            else f"activations {activations}" if activations not in ([], ["Sigmoid", "Tanh"])
            else "clip" if "clip" in node.attrs
            else "linear_before_reset=0" if not text.get("linear_before_reset", 0)
            else "layout=1" if text.get("layout", 0)
            else "sequence_lens or initial_h inputs" if any(node.inputs[4:]) else None)


def refuse_gru(g, node: Node, problem: str):
    return g.fail(node, f"{problem} is not imported for GRU (unrolled: one forward direction, "
                  "sigmoid/tanh, linear_before_reset=1 as PyTorch and Keras export it, no clip, zero "
                  "initial state)", "export a plain forward nn.GRU / keras GRU(reset_after=True)")


def gru(wr, node: Node) -> None:
    g = wr.g
    problem = gru_problem(g, node)
    if problem:
        raise refuse_gru(g, node, problem)
    Unrolled(wr, node).write()


class Unrolled:
    """One GRU written step by step: per step a STRIDED_SLICE of x_t, FULLY_CONNECTED on
    x_t (and on H from step 1), SPLITs into the gates, LOGISTIC/TANH, MUL/ADD/SUB. Every
    intermediate is quantized over its range in a float GRU run here over the calibration;
    H is one range over all steps (its FULLY_CONNECTED bias and Y's PACK need one scale)."""

    def __init__(self, wr, node: Node):
        g = wr.g
        self.wr, self.g, self.node = wr, g, node
        self.name = node.name or "gru"
        w, r = g.value(node.inputs[1])[0], g.value(node.inputs[2])[0]
        b = g.value(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] else None
        self.hidden = int(node.attrs.get("hidden_size", r.shape[-1]))
        b = np.zeros(6 * self.hidden, np.float32) if b is None else b.reshape(-1)
        self.w, self.r = w.astype(np.float32), r.astype(np.float32)
        self.bw, self.br = b[:3 * self.hidden].astype(np.float32), b[3 * self.hidden:].astype(np.float32)
        self.steps, self.batch, _ = g.shapes[node.inputs[0]]
        self.ranges = self._ranges()

    # -- float reference over the calibration: every intermediate's range ----------------
    def _ranges(self) -> dict:
        hid = self.hidden
        ranges: dict[str, tuple[float, float]] = {}

        def seen(key, v):
            lo, hi = ranges.get(key, (0.0, 0.0))
            ranges[key] = (min(lo, float(v.min())), max(hi, float(v.max())))

        for xs in self.g.history.get(self.node.inputs[0], []):      # [T, B, I]
            h = np.zeros((xs.shape[1], hid), np.float32)
            for t, x in enumerate(xs):
                first = t == 0
                a = x @ self.w.T + self.bw + (np.concatenate([self.br[:2 * hid], np.zeros(hid, np.float32)])
                                              if first else 0)
                hr = self.br if first else h @ self.r.T + self.br
                seen(f"t{t}/x_gates", a)
                if not first:
                    seen(f"t{t}/h_gates", hr)
                z_pre, r_pre = a[:, :hid] + (0 if first else hr[:, :hid]), a[:, hid:2 * hid] + (
                    0 if first else hr[:, hid:2 * hid])
                z, rr = _sigmoid(z_pre), _sigmoid(r_pre)
                rh = rr * hr[..., 2 * hid:]
                n = np.tanh(a[:, 2 * hid:] + rh)
                for key, v in (("z_pre", z_pre), ("r_pre", r_pre), ("rh", rh),
                               ("n_pre", a[:, 2 * hid:] + rh)):
                    if not (first and key in ("z_pre", "r_pre")):
                        seen(f"t{t}/{key}", v)
                d = h - n
                if first:                          # H = 0: H' = n - z * n
                    seen(f"t{t}/zd_first", z * n)
                else:
                    seen(f"t{t}/d", d)
                    seen(f"t{t}/zd", z * d)
                h = n + z * d
                seen("h", h)
        return ranges

    # -- tensors --------------------------------------------------------------------------
    def act(self, key: str, width: int, qparams=None):
        full = f"{self.name}/{key}"
        self.g.shapes[full] = (self.batch, width)
        self.g.ranges[full] = self.ranges.get(key, (0.0, 0.0))
        return self.wr.new_act(full, (0, 1), qparams)

    def binary(self, op: str, a, b, key: str):
        out = self.act(key, self.hidden)
        self.wr.op(op, [a.index, b.index if hasattr(b, "index") else b], [out.index],
                   self.wr.b.options(f"{op.title()}Options", fusedActivationFunction="NONE"))
        return out

    def unary(self, op: str, x, key: str):
        out = self.act(key, self.hidden, self.wr.fixed_output(op))
        self.wr.op(op, [x.index], [out.index])
        return out

    def split(self, x, key: str):
        parts = [self.act(f"{key}/{gate}", self.hidden, x.qparams) for gate in ("z", "r", "h")]
        self.wr.op("SPLIT", [self._ints(1), x.index], [p.index for p in parts],
                   self.wr.b.options("SplitOptions", numSplits=3), version=2)
        return parts

    def _ints(self, values) -> int:
        return self.wr.b.const(np.array(values, np.int32), "int32")

    # -- the steps ------------------------------------------------------------------------
    def write(self) -> None:
        from tinybuild.onnx.writer import Act
        wr, hid, name = self.wr, self.hidden, self.name
        x = wr.act(self.node, self.node.inputs[0])
        w_index, w_scales = wr.weights(self.w, 0, f"{name}/W", None)
        r_index, r_scales = wr.weights(self.r, 0, f"{name}/R", None)
        x_scale = x.qparams[0] if wr.quantized else None
        first_bias = self.bw + np.concatenate([self.br[:2 * hid], np.zeros(hid, np.float32)])
        biases = [wr.bias(first_bias, x_scale, w_scales, f"{name}/bias_first_step"),
                  wr.bias(self.bw, x_scale, w_scales, f"{name}/W_bias")]
        h_q = wr.qparams_for(*self.ranges.get("h", (0.0, 0.0))) if wr.quantized else None
        r_bias = wr.bias(self.br, h_q[0] if h_q else None, r_scales, f"{name}/R_bias")
        rh_const = wr.const_operand(self.br[2 * hid:], Act(-1, (0, 1)), 2, f"{name}/R_bias_h")
        h, states = None, []
        for t in range(self.steps):
            xt = self._step_input(x, t)
            a = self.act(f"t{t}/x_gates", 3 * hid)
            wr.op("FULLY_CONNECTED", [xt.index, w_index, biases[0 if t == 0 else 1]], [a.index],
                  wr.b.options("FullyConnectedOptions", fusedActivationFunction="NONE", keepNumDims=False))
            az, ar, ah = self.split(a, f"t{t}/x_gates")
            if h is None:
                z, rr = self.unary("LOGISTIC", az, f"t{t}/z"), self.unary("LOGISTIC", ar, f"t{t}/r")
                rh = self.binary("MUL", rr, rh_const, f"t{t}/rh")
            else:
                hr = self.act(f"t{t}/h_gates", 3 * hid)
                wr.op("FULLY_CONNECTED", [h.index, r_index, r_bias], [hr.index],
                      wr.b.options("FullyConnectedOptions", fusedActivationFunction="NONE",
                                   keepNumDims=False))
                hz, hrr, hh = self.split(hr, f"t{t}/h_gates")
                z = self.unary("LOGISTIC", self.binary("ADD", az, hz, f"t{t}/z_pre"), f"t{t}/z")
                rr = self.unary("LOGISTIC", self.binary("ADD", ar, hrr, f"t{t}/r_pre"), f"t{t}/r")
                rh = self.binary("MUL", rr, hh, f"t{t}/rh")
            n = self.unary("TANH", self.binary("ADD", ah, rh, f"t{t}/n_pre"), f"t{t}/n")
            zero = h is None
            d = self.binary("SUB", h, n, f"t{t}/d") if not zero else None
            if zero:       # H = 0: H' = n - z * n
                zd = self.binary("MUL", z, n, f"t{t}/zd_first")
                h = self._state(t, "SUB", n, zd, h_q)
            else:
                zd = self.binary("MUL", z, d, f"t{t}/zd")
                h = self._state(t, "ADD", n, zd, h_q)
            states.append(h)
        self._outputs(states, h_q)

    def _state(self, t: int, op: str, a, b, h_q):
        out = self.act(f"t{t}/h", self.hidden, h_q)
        self.wr.op(op, [a.index, b.index], [out.index],
                   self.wr.b.options(f"{op.title()}Options", fusedActivationFunction="NONE"))
        return out

    def _step_input(self, x, t: int):
        """x_t [B, I]: a STRIDED_SLICE of X at step t, the time axis shrunk."""
        time_axis = x.perm.index(0)
        shape = self.wr.b.tensors[x.index].shape
        begin = [0, 0, 0]
        begin[time_axis] = t
        end = [int(s) for s in shape]
        end[time_axis] = t + 1
        out = self.act(f"t{t}/x", int(shape[2]), x.qparams)
        self.wr.op("STRIDED_SLICE", [x.index, self._ints(begin), self._ints(end), self._ints([1, 1, 1])],
                   [out.index], self.wr.b.options("StridedSliceOptions", beginMask=0, endMask=0,
                                                  ellipsisMask=0, newAxisMask=0,
                                                  shrinkAxisMask=1 << time_axis), version=2)
        return out

    def _outputs(self, states, h_q) -> None:
        """Y_h [1, B, H] (a RESHAPE of the last H); Y [T, 1, B, H] (PACK of every H) when read."""
        wr, g = self.wr, self.g
        y, y_h = (self.node.outputs + ["", ""])[:2]
        if y_h and (g.consumers(y_h) or y_h in g.outputs):
            out = wr.new_act(y_h, (0, 1, 2), h_q)
            wr.reshape(states[-1].index, out.index, g.shapes[y_h])
        if y and (g.consumers(y) or y in g.outputs):
            packed = f"{self.name}/sequence"
            g.shapes[packed] = (self.steps, self.batch, self.hidden)
            seq = wr.act_tensor(packed, [self.steps, self.batch, self.hidden], h_q)
            wr.op("PACK", [s.index for s in states], [seq],
                  wr.b.options("PackOptions", valuesCount=len(states), axis=0))
            out = wr.new_act(y, (0, 1, 2, 3), h_q)
            wr.reshape(seq, out.index, g.shapes[y])

