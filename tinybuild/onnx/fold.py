"""Folding into a linear op (Conv, Gemm, MatMul): its weights and bias as float
arrays, then the BatchNormalization / bias Add/Sub / constant Mul/Div after it;
a Relu or Clip after an op becomes its fused activation."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tinybuild.onnx.graph import Graph, Node


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
    found = g.carried.get(name) or _dequantized(g, name)
    if found is None:
        return None
    q, scale, axis = found
    out_axis = 0 if node.op == "Conv" or (node.op == "Gemm" and node.attrs.get("transB", 0)) else 1
    if scale.size == 1 or (axis == out_axis and scale.size == node.weight.shape[0]):
        return scale
    return None


def _dequantized(g: Graph, name: str) -> tuple | None:
    """(int8 values, scales, axis) of constant weights a DequantizeLinear with zero point 0 makes."""
    dq = next((n for n in g.nodes if n.op == "DequantizeLinear" and n.outputs[0] == name), None)
    if dq is None or any(g.value(i) is None for i in dq.inputs if i):
        return None
    q, scale = g.value(dq.inputs[0]), np.ravel(g.value(dq.inputs[1])).astype(np.float32)
    zp = g.value(dq.inputs[2]) if len(dq.inputs) > 2 and dq.inputs[2] else None
    if q.dtype != np.int8 or (zp is not None and np.any(zp != 0)):
        return None
    return q, scale, int(dq.attrs.get("axis", 1)) % max(q.ndim, 1)


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

