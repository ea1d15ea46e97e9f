"""The ONNX operators: one function per operator, ``OPS[op_type](writer, node)``,
writing its TFLite operator(s) through the Writer (tinybuild/onnx/writer.py).
A layout-bound op (Conv, pools, Resize) takes its input NHWC; elementwise ops
keep their input's layout; a form TFLite has no equivalent for is one line."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from tinybuild.onnx.common import NCHW_TO_NHWC, channels_last
from tinybuild.onnx.fold import _activation_of
from tinybuild.onnx.graph import Node
from tinybuild.onnx.recurrent import gru, lstm
from tinybuild.onnx.writer import Act


def conv(wr, node: Node) -> None:
    g = wr.g
    rank = len(g.shapes[node.inputs[0]])
    if rank == 3:
        return _one_d(wr, node, conv)
    if rank != 4:
        raise g.fail(node, f"a {rank - 2}-D convolution is not imported (1-D and 2-D only)",
                     "export the layer as Conv1d or Conv2d")
    w = node.weight                       # [O, I/group, kh, kw]
    group = int(node.attrs.get("group", 1))
    channels = g.shapes[node.inputs[0]][1]
    if group != 1 and not (group == channels and w.shape[1] == 1):
        return _grouped(wr, node, group)
    x = wr.transposed(node, wr.act(node, node.inputs[0]), node.inputs[0], NCHW_TO_NHWC)
    x = _padded(wr, node, x, w.shape[2:], count_include_pad=True)
    padding = x.extra.pop("padding")
    strides = list(node.attrs.get("strides", [1, 1]))
    dil = list(node.attrs.get("dilations", [1, 1]))
    out = wr.new_act(node.final, NCHW_TO_NHWC)
    in_scale = x.qparams[0] if wr.quantized else None
    common = dict(padding=padding, strideH=strides[0], strideW=strides[1], dilationHFactor=dil[0],
                  dilationWFactor=dil[1], fusedActivationFunction=node.activation)
    if group == 1:
        wi, ws = wr.weights(w.transpose(0, 2, 3, 1), 0, f"{node.final}/weights", node.weight_scale)
        bi = wr.bias(node.bias, in_scale, ws, f"{node.final}/bias")
        wr.op("CONV_2D", [x.index, wi, bi], [out.index], wr.b.options("Conv2DOptions", **common))
    elif group == channels and w.shape[1] == 1:
        wi, ws = wr.weights(w[:, 0].transpose(1, 2, 0)[None], 3, f"{node.final}/weights",
                            node.weight_scale)
        bi = wr.bias(node.bias, in_scale, ws, f"{node.final}/bias")
        wr.op("DEPTHWISE_CONV_2D", [x.index, wi, bi], [out.index],
              wr.b.options("DepthwiseConv2DOptions", depthMultiplier=w.shape[0] // channels,
                           **common), version=2 if dil != [1, 1] else 1)


def _grouped(wr, node: Node, group: int) -> None:
    """A convolution whose groups are neither 1 nor depthwise: SPLIT of the input's channels,
    one CONV_2D per group (its slice of weights and bias), CONCATENATION (tinybuild's and
    TFLite's int8 CONV_2D take no groups; the parts share the output's scale, so the
    concatenation only copies)."""
    g = wr.g
    src, final = node.inputs[0], node.final
    n, c, h, w = g.shapes[src]
    per_in, per_out = c // group, node.weight.shape[0] // group
    x = wr.transposed(node, wr.act(node, src), src, NCHW_TO_NHWC)
    ins = [_alias(g, src, f"{src}/group{i}", (n, per_in, h, w)) for i in range(group)]
    shape = g.shapes[final]
    outs = [_alias(g, final, f"{final}/group{i}", (shape[0], per_out, *shape[2:])) for i in range(group)]
    parts = [wr.new_act(name, NCHW_TO_NHWC, x.qparams) for name in ins]
    wr.op("SPLIT", [_ints(wr, 3), x.index], [p.index for p in parts],
          wr.b.options("SplitOptions", numSplits=group), version=2)
    carried = node.weight_scale
    for i in range(group):
        rows = slice(i * per_out, (i + 1) * per_out)
        conv(wr, replace(node, inputs=[ins[i], *node.inputs[1:]], outputs=[outs[i]], final=outs[i],
                         attrs={**node.attrs, "group": 1}, weight=node.weight[rows], bias=node.bias[rows],
                         weight_scale=carried[rows] if carried is not None and carried.size > 1 else carried))
    out = wr.new_act(final, NCHW_TO_NHWC)
    wr.op("CONCATENATION", [wr.acts[name].index for name in outs], [out.index],
          wr.b.options("ConcatenationOptions", axis=3, fusedActivationFunction="NONE"))


def _alias(g, name: str, alias: str, shape) -> str:
    """A made-up ONNX name for a part of (or another view on) ``name``: its shape, and the
    range and quantization of ``name``."""
    g.shapes[alias] = tuple(shape)
    for table in (g.ranges, g.forced):
        if name in table:
            table[alias] = table[name]
    return alias


def _one_d(wr, node: Node, handler) -> None:
    """A 1-D Conv or pool over (N, C, L) as the 2-D op over [1, 1, L, C], with RESHAPEs
    around it (views: no data moves), as TFLite's converter writes Conv1D."""
    g = wr.g
    src, final = node.inputs[0], node.final or node.outputs[0]
    x = wr.transposed(node, wr.act(node, src), src, (0, 2, 1))
    src2 = _alias(g, src, f"{src}/as_2d", np.insert(g.shapes[src], 2, 1))
    out2 = _alias(g, final, f"{final}/as_2d", np.insert(g.shapes[final], 2, 1))
    idx = wr.act_tensor(src, wr.tfl_shape(src2, NCHW_TO_NHWC), x.qparams, name=src2)
    wr.reshape(x.index, idx, wr.tfl_shape(src2, NCHW_TO_NHWC))
    wr.acts[src2] = Act(idx, NCHW_TO_NHWC, None, x.qparams)
    weight = None if node.weight is None else node.weight[:, :, None, :]
    handler(wr, replace(node, inputs=[src2, *node.inputs[1:]], outputs=[out2], final=out2,
                        attrs={**node.attrs, **_attrs_2d(node.attrs)}, weight=weight))
    y = wr.acts[out2]
    out = wr.new_act(final, (0, 2, 1), y.qparams)
    wr.reshape(y.index, out.index, wr.tfl_shape(final, (0, 2, 1)))


def _attrs_2d(attrs: dict) -> dict:
    """A 1-D op's attributes for the same op over a height of 1."""
    out = {key: [1, *attrs[key]] for key in ("kernel_shape", "strides", "dilations") if key in attrs}
    if "pads" in attrs:
        begin, end = attrs["pads"]
        out["pads"] = [0, begin, 0, end]
    return out


def conv_transpose(wr, node: Node) -> None:
    """TRANSPOSE_CONV (weights [I, O, kh, kw] -> OHWI). Pads TFLite's SAME places the same
    way: SAME; other pads: VALID over the full output, then a SLICE crops it."""
    g = wr.g
    src, final = node.inputs[0], node.final or node.outputs[0]
    w, bias = _transpose_conv_weights(wr, node)
    n, c, *in_hw = g.shapes[src]
    out_shape = g.shapes[final]
    strides = list(node.attrs.get("strides", [1, 1]))
    full = [(i - 1) * s + k for i, s, k in zip(in_hw, strides, w.shape[2:])]
    begin = [int(p) for p in node.attrs.get("pads", [0, 0, 0, 0])[:2]]
    if any(b + o > f for b, o, f in zip(begin, out_shape[2:], full)):
        raise g.fail(node, f"output_padding reaches past the kernel (output {list(out_shape[2:])} from "
                     f"{full} less pads {begin})", "export with output_padding within the pads")
    x = wr.transposed(node, wr.act(node, src), src, NCHW_TO_NHWC)
    same = all(-(-o // s) == i and _same_pads(o, k, s, 1)[0] == b
               for o, s, k, i, b in zip(out_shape[2:], strides, w.shape[2:], in_hw, begin))
    wide = final if same else _alias(g, final, f"{final}/uncropped", (n, out_shape[1], *full))
    out = wr.new_act(wide, NCHW_TO_NHWC, wr.qparams(final) if wr.quantized else None)
    wi, ws = wr.weights(w.transpose(1, 2, 3, 0), 0, f"{final}/weights")
    bi = wr.bias(bias, x.qparams[0] if wr.quantized else None, ws, f"{final}/bias")
    wr.op("TRANSPOSE_CONV", [_ints(wr, wr.tfl_shape(wide, NCHW_TO_NHWC)), wi, x.index, bi], [out.index],
          wr.b.options("TransposeConvOptions", padding="SAME" if same else "VALID", strideH=strides[0],
                       strideW=strides[1], fusedActivationFunction=node.activation), version=4)
    if not same:
        cropped = wr.new_act(final, NCHW_TO_NHWC, out.qparams)
        wr.op("SLICE", [out.index, _ints(wr, [0, *begin, 0]), _ints(wr, wr.tfl_shape(final, NCHW_TO_NHWC))],
              [cropped.index], version=2)


def _transpose_conv_weights(wr, node: Node) -> tuple[np.ndarray, np.ndarray]:
    """Float weights [I, O, kh, kw] and bias [O]; the forms TRANSPOSE_CONV lacks are one line."""
    g = wr.g
    w = g.value(node.inputs[1])
    bias = g.value(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    auto = node.attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    rank = len(g.shapes[node.inputs[0]])
    problem = ("the weights or bias are not constant" if w is None or (len(node.inputs) > 2 and node.inputs[2]
                                                                      and bias is None)
               else f"a {rank - 2}-D transposed convolution (2-D only)" if rank != 4
               else "group > 1" if int(node.attrs.get("group", 1)) != 1
               else "dilations" if any(d != 1 for d in node.attrs.get("dilations", [1, 1]))
               else f"auto_pad={auto}" if auto not in ("NOTSET", "VALID") else None)
    if problem:
        raise g.fail(node, f"{problem} is not imported for ConvTranspose",
                     "export a 2-D ConvTranspose2d with groups=1, dilation=1, explicit padding")
    w = w.astype(np.float32)
    return w, (np.zeros(w.shape[1], np.float32) if bias is None else bias.astype(np.float32))


def hard_sigmoid(wr, node: Node) -> None:
    """max(0, min(1, alpha x + beta)) as MUL by 6 alpha, ADD of 6 beta with a fused RELU6
    (the clamp, exact in int8 and float), MUL by 1/6: TFLite has no HARD_SIGMOID."""
    g = wr.g
    alpha, beta = float(node.attrs.get("alpha", 0.2)), float(node.attrs.get("beta", 0.5))
    src, dst = node.inputs[0], node.outputs[0]
    x = wr.act(node, src)
    lo, hi = g.ranges.get(src, (0.0, 0.0))
    scaled, clamped = f"{dst}/scaled", f"{dst}/clamped"
    g.shapes[scaled] = g.shapes[clamped] = g.shapes[src]
    g.ranges[scaled], g.ranges[clamped] = tuple(sorted((6 * alpha * lo, 6 * alpha * hi))), (0.0, 6.0)
    steps = [("MUL", scaled, 6 * alpha, "NONE"), ("ADD", clamped, 6 * beta, "RELU6"),
             ("MUL", dst, 1 / 6, "NONE")]
    for op, name, value, activation in steps:
        out = wr.new_act(name, x.perm)
        operand = wr.const_operand(np.float32(value), x, len(x.perm), f"{name}/operand")
        wr.op(op, [x.index, operand], [out.index],
              wr.b.options(f"{op.title()}Options", fusedActivationFunction=activation))
        x = out


def _padded(wr, node: Node, x: Act, kernel, count_include_pad: bool) -> Act:
    """``x`` with ``extra['padding']`` set to SAME or VALID; other padding becomes a
    PAD op first (zero is the padding value: convolutions, counted average pools)."""
    g = wr.g
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
        shape = wr.b.tensors[x.index].shape.copy()
        shape[1] += sum(pads[0])
        shape[2] += sum(pads[1])
        idx = wr.act_tensor(node.inputs[0], list(shape), x.qparams, name=f"{node.inputs[0]}/padded")
        wr.op("PAD", [x.index, wr.b.const(paddings, "int32")], [idx])
        x = Act(idx, x.perm, None, x.qparams, {"padding": "VALID"})
    else:
        raise g.fail(node, f"padding {pads} is neither TFLite's SAME nor VALID",
                     "export with padding = kernel // 2 (odd kernels) or none")
    if node.attrs.get("ceil_mode", 0) and tuple(g.shapes[node.outputs[0]][2:]) != tuple(
            _out_size(i, k, s, d, p) for i, k, s, d, p in zip(in_hw, kernel, strides, dil, pads)):
        raise g.fail(node, "ceil_mode=1 changes the output size", "export with ceil_mode=False")
    return x


def gemm(wr, node: Node) -> None:
    g = wr.g
    x = wr.acts.get(node.inputs[0])
    if x is None:
        raise g.fail(node, "its input is not computed by an imported operator", "report this model")
    shape = g.shapes[node.inputs[0]]
    w = node.weight
    if x.sigma is not None:
        w = w[:, x.sigma]                 # the NHWC flatten order, permuted at build time
    elif x.perm != tuple(range(len(shape))):
        x = wr.transposed(node, x, node.inputs[0], range(len(shape)))
    if len(shape) < 2 or any(s != 1 for s in shape[:-2]):
        raise g.fail(node, f"input shape {list(shape)} is not imported (rows x features only)",
                     "flatten the input first")
    out = wr.new_act(node.final, range(len(g.shapes[node.final])))
    wi, ws = wr.weights(w, 0, f"{node.final}/weights", node.weight_scale)
    bi = wr.bias(node.bias, x.qparams[0] if wr.quantized else None, ws, f"{node.final}/bias")
    wr.op("FULLY_CONNECTED", [x.index, wi, bi], [out.index],
          wr.b.options("FullyConnectedOptions", fusedActivationFunction=node.activation,
                       keepNumDims=len(shape) > 2))


def _binary(wr, node: Node) -> None:
    g = wr.g
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
    a = wr.act(node, a_name)
    if len(g.shapes[a_name]) != rank:
        a = wr.transposed(node, a, a_name, range(len(g.shapes[a_name])))
    if consts[1] is not None:
        c = consts[1]
        c = 1.0 / c if node.op == "Div" else c
        if rank != len(a.perm):
            raise g.fail(node, "broadcasting a constant across ranks is not imported", "export it flat")
        bi = wr.const_operand(c, a, rank, f"{final}/operand")
    else:
        if node.op == "Div":
            raise g.fail(node, "a division of two activations is not imported", "rewrite it as a Mul")
        other = wr.act(node, b_name)
        if len(g.shapes[b_name]) != rank or len(g.shapes[a_name]) != rank:
            raise g.fail(node, "broadcasting activations across ranks is not imported",
                         "give both operands the same rank")
        bi = wr.transposed(node, other, b_name, a.perm).index
    out = wr.new_act(final, a.perm)
    options = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions"}[op]
    wr.op(op, [a.index, bi], [out.index],
          wr.b.options(options, fusedActivationFunction=node.activation))


def _unary(wr, node: Node, op: str, qparams=None, options=None) -> None:
    x = wr.act(node, node.inputs[0])
    out = wr.new_act(node.outputs[0], x.perm, qparams)
    wr.op(op, [x.index], [out.index], options)


def relu(wr, node):
    _unary(wr, node, "RELU")


def clip(wr, node):
    act = _activation_of(wr.g, node)
    if act is None:
        raise wr.g.fail(node, "only Clip to [0, 6], [0, inf) or [-1, 1] is imported",
                        "use ReLU6 / ReLU / Hardtanh")
    _unary(wr, node, act)


def sigmoid(wr, node):
    _unary(wr, node, "LOGISTIC", wr.fixed_output("LOGISTIC"))


def tanh(wr, node):
    _unary(wr, node, "TANH", wr.fixed_output("TANH"))


def hard_swish(wr, node):
    _unary(wr, node, "HARD_SWISH")


def leaky_relu(wr, node):
    _unary(wr, node, "LEAKY_RELU", None,
                wr.b.options("LeakyReluOptions", alpha=float(node.attrs.get("alpha", 0.01))))


def softmax(wr, node):
    g = wr.g
    x = wr.act(node, node.inputs[0])
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
        x = wr.transposed(node, x, node.inputs[0], [p for p in x.perm if p != axis] + [axis])
    out = wr.new_act(node.outputs[0], x.perm, wr.fixed_output("SOFTMAX"))
    wr.op("SOFTMAX", [x.index], [out.index], wr.b.options("SoftmaxOptions", beta=1.0))


def _pool(wr, node: Node, op: str) -> None:
    g = wr.g
    rank = len(g.shapes[node.inputs[0]])
    if rank == 3:
        return _one_d(wr, node, lambda wr2, node2: _pool(wr2, node2, op))
    if rank != 4:
        raise g.fail(node, "only 1-D and 2-D pooling is imported", "pool over length or height and width")
    if any(d != 1 for d in node.attrs.get("dilations", [1, 1])):
        raise g.fail(node, "dilated pooling is not imported", "export without dilations")
    x = wr.transposed(node, wr.act(node, node.inputs[0]), node.inputs[0], NCHW_TO_NHWC)
    k = list(node.attrs["kernel_shape"])
    counted = op == "AVERAGE_POOL_2D" and bool(node.attrs.get("count_include_pad", 0))
    x = _padded(wr, node, x, k, count_include_pad=counted)
    strides = list(node.attrs.get("strides", [1, 1]))
    out = wr.new_act(node.final or node.outputs[0], NCHW_TO_NHWC, x.qparams)
    wr.op(op, [x.index], [out.index],
          wr.b.options("Pool2DOptions", padding=x.extra["padding"], strideH=strides[0],
                       strideW=strides[1], filterHeight=k[0], filterWidth=k[1],
                       fusedActivationFunction="NONE"))


def max_pool(wr, node):
    if len(node.outputs) > 1 and node.outputs[1]:
        raise wr.g.fail(node, "MaxPool's indices output is not imported", "export without indices")
    _pool(wr, node, "MAX_POOL_2D")


def average_pool(wr, node):
    _pool(wr, node, "AVERAGE_POOL_2D")


def global_average_pool(wr, node):
    """MEAN over the spatial axes of the channels-last tensor (1-D, 2-D or 3-D)."""
    rank = len(wr.g.shapes[node.inputs[0]])
    perm = channels_last(rank)
    x = wr.transposed(node, wr.act(node, node.inputs[0]), node.inputs[0], perm)
    out = wr.new_act(node.outputs[0], perm)
    wr.op("MEAN", [x.index, _ints(wr, list(range(1, rank - 1)))], [out.index],
          wr.b.options("ReducerOptions", keepDims=True))


def global_max_pool(wr, node):
    g = wr.g
    shape = g.shapes[node.inputs[0]]
    if len(shape) != 4:                   # 1-D: REDUCE_MAX over the length
        x = wr.transposed(node, wr.act(node, node.inputs[0]), node.inputs[0], channels_last(len(shape)))
        out = wr.new_act(node.outputs[0], x.perm, x.qparams)
        wr.op("REDUCE_MAX", [x.index, _ints(wr, list(range(1, len(shape) - 1)))], [out.index],
              wr.b.options("ReducerOptions", keepDims=True))
        return
    x = wr.transposed(node, wr.act(node, node.inputs[0]), node.inputs[0], NCHW_TO_NHWC)
    out = wr.new_act(node.outputs[0], NCHW_TO_NHWC, x.qparams)
    wr.op("MAX_POOL_2D", [x.index], [out.index],
          wr.b.options("Pool2DOptions", padding="VALID", strideH=1, strideW=1,
                       filterHeight=int(shape[2]), filterWidth=int(shape[3]),
                       fusedActivationFunction="NONE"))


def reduce_mean(wr, node):
    g = wr.g
    shape = g.shapes[node.inputs[0]]
    axes = node.attrs.get("axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1]:
        axes = g.value(node.inputs[1])
    axes = list(range(len(shape))) if axes is None else [int(a) % len(shape) for a in np.ravel(axes)]
    keep = bool(node.attrs.get("keepdims", 1))
    x = wr.act(node, node.inputs[0])
    if not keep and x.perm != tuple(range(len(shape))):
        x = wr.transposed(node, x, node.inputs[0], range(len(shape)))
    tfl_axes = sorted(x.perm.index(a) for a in axes)
    perm = x.perm if keep else tuple(range(len(g.shapes[node.outputs[0]])))
    out = wr.new_act(node.outputs[0], perm)
    wr.op("MEAN", [x.index, wr.b.const(np.array(tfl_axes, np.int32), "int32")], [out.index],
          wr.b.options("ReducerOptions", keepDims=keep))


def transpose(wr, node):
    """A relabelling only: the data stays where it is (no TRANSPOSE on the device)."""
    x = wr.act(node, node.inputs[0])
    rank = len(x.perm)
    p = list(node.attrs.get("perm", list(reversed(range(rank)))))
    inv = np.argsort(p)
    wr.acts[node.outputs[0]] = Act(x.index, tuple(int(inv[q]) for q in x.perm), None, x.qparams)


def _reshape_node(wr, node: Node) -> None:
    g = wr.g
    src, dst = node.inputs[0], node.outputs[0]
    x = wr.acts.get(src)
    if x is None:
        raise g.fail(node, "its input is not computed by an imported operator", "report this model")
    if x.sigma is not None:
        x = wr.unflattened(node, src)
    out_shape = g.shapes[dst]
    ident = tuple(range(len(x.perm)))
    if _read_by_linear_only(wr, dst) and len(out_shape) == 2 and out_shape[0] == 1:
        # FULLY_CONNECTED flattens its input itself (as TFLite's converter leaves it):
        # no RESHAPE; NHWC data order is taken care of by permuting the weight columns
        sigma = np.arange(int(np.prod(g.shapes[src]))).reshape(g.shapes[src]).transpose(x.perm).ravel()
        identity = bool(np.all(sigma == np.arange(sigma.size)))
        wr.acts[dst] = Act(x.index, (0, 1), None if identity else sigma, x.qparams,
                           {"source": src})
        return
    x = wr.transposed(node, x, src, ident)
    idx = wr.act_tensor(dst, list(out_shape), x.qparams)
    wr.reshape(x.index, idx, out_shape)
    wr.acts[dst] = Act(idx, tuple(range(len(out_shape))), None, x.qparams)


def _read_by_linear_only(wr, name: str) -> bool:
    users = wr.g.consumers(name)
    return bool(users) and name not in wr.g.outputs and all(
        u.op in ("Gemm", "MatMul") and u.inputs[0] == name for u in users)


def concat(wr, node):
    g = wr.g
    names = [n for n in node.inputs if n]
    if any(g.value(n) is not None for n in names):
        raise g.fail(node, "concatenating a constant is not imported", "concatenate activations only")
    first = wr.act(node, names[0])
    parts = [wr.transposed(node, wr.act(node, n), n, first.perm) for n in names]
    axis = int(node.attrs.get("axis", 0)) % len(first.perm)
    out = wr.new_act(node.final or node.outputs[0], first.perm, first.qparams)
    wr.op("CONCATENATION", [p.index for p in parts], [out.index],
          wr.b.options("ConcatenationOptions", axis=first.perm.index(axis),
                       fusedActivationFunction=node.activation))


def pad(wr, node):
    g = wr.g
    mode = node.attrs.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    pads = node.attrs.get("pads") if g.opset < 11 else g.value(node.inputs[1])
    value = node.attrs.get("value", 0.0) if g.opset < 11 else (
        g.value(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else 0.0)
    if mode != "constant" or pads is None or value is None or float(np.ravel(value)[0]) != 0.0 \
            or (len(node.inputs) > 3 and node.inputs[3]):
        raise g.fail(node, "only constant zero padding with constant pads is imported",
                     "pad with zeros (mode='constant')")
    x = wr.act(node, node.inputs[0])
    rank = len(x.perm)
    pads = np.asarray(pads, np.int64).reshape(2, rank).T
    if np.any(pads < 0):
        raise g.fail(node, "negative pads (cropping) are not imported", "slice instead")
    paddings = np.array([pads[p] for p in x.perm], np.int32)
    out = wr.new_act(node.outputs[0], x.perm, x.qparams)
    wr.op("PAD", [x.index, wr.b.const(paddings, "int32")], [out.index])


def prelu(wr, node):
    g = wr.g
    slope = g.value(node.inputs[1])
    if slope is None:
        raise g.fail(node, "a computed slope is not imported", "export the slope as a constant")
    x = wr.act(node, node.inputs[0])
    alpha = wr.const_operand(slope, x, len(x.perm), f"{node.outputs[0]}/alpha")
    out = wr.new_act(node.outputs[0], x.perm)
    wr.op("PRELU", [x.index, alpha], [out.index])


def slice_(wr, node):
    """SLICE for step 1, STRIDED_SLICE for other steps (negative ones too)."""
    g = wr.g
    shape = g.shapes[node.inputs[0]]
    starts, ends, axes, steps = _slice_args(g, node)
    begin, end, stride = [0] * len(shape), list(shape), [1] * len(shape)
    for a, st, en, k in zip(axes, starts, ends, steps):
        if k == 0:
            raise g.fail(node, "a step of 0", "slice with a non-zero step")
        begin[a], end[a], stride[a] = *_slice_bounds(st, en, k, shape[a]), k
    x = wr.act(node, node.inputs[0])
    out = wr.new_act(node.outputs[0], x.perm, x.qparams)
    if all(k == 1 for k in stride):
        size = wr.tfl_shape(node.outputs[0], x.perm)
        wr.op("SLICE", [x.index, _ints(wr, [begin[p] for p in x.perm]), _ints(wr, size)], [out.index],
              version=2)
        return
    end_mask = sum(1 << i for i, p in enumerate(x.perm) if end[p] < 0)   # down to index 0 inclusive
    wr.op("STRIDED_SLICE", [x.index, _ints(wr, [begin[p] for p in x.perm]),
                            _ints(wr, [max(end[p], 0) for p in x.perm]),
                            _ints(wr, [stride[p] for p in x.perm])],
          [out.index], wr.b.options("StridedSliceOptions", beginMask=0, endMask=end_mask, ellipsisMask=0,
                                    newAxisMask=0, shrinkAxisMask=0), version=2)


def _slice_args(g, node) -> tuple[list, list, list, list]:
    """starts, ends, axes (non-negative) and steps as lists of ints (attributes before opset 10)."""
    rank = len(g.shapes[node.inputs[0]])
    if g.opset < 10:
        starts, ends, axes, steps = (node.attrs.get(k) for k in ("starts", "ends", "axes", "steps"))
    else:
        present = [len(node.inputs) > i and bool(node.inputs[i]) for i in range(5)]
        starts, ends, axes, steps = (g.value(node.inputs[i]) if present[i] else None for i in (1, 2, 3, 4))
        if any(present[i] and v is None for i, v in zip((1, 2, 3, 4), (starts, ends, axes, steps))):
            raise g.fail(node, "computed starts/ends/axes/steps are not imported", "slice with constants")
    starts, ends = [int(v) for v in np.ravel(starts)], [int(v) for v in np.ravel(ends)]
    axes = list(range(len(starts))) if axes is None else [int(a) % rank for a in np.ravel(axes)]
    steps = [1] * len(starts) if steps is None else [int(k) for k in np.ravel(steps)]
    return starts, ends, axes, steps


def _slice_bounds(start: int, end: int, step: int, dim: int) -> tuple[int, int]:
    """ONNX's clamping: [0, dim] for a positive step, [0, dim - 1] / [-1, dim - 1] for a
    negative one (an end of -1: through index 0)."""
    start, end = (start + dim if start < 0 else start), (end + dim if end < 0 else end)
    if step > 0:
        return min(max(start, 0), dim), min(max(end, 0), dim)
    return min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)


def _ints(wr, values) -> int:
    return wr.b.const(np.array(values, np.int32), "int32")


def split(wr, node):
    g = wr.g
    x = wr.act(node, node.inputs[0])
    axis = int(node.attrs.get("axis", 0)) % len(x.perm)
    sizes = [int(g.shapes[o][axis]) for o in node.outputs]
    outs = [wr.new_act(o, x.perm, x.qparams) for o in node.outputs]
    wr.op("SPLIT_V", [x.index, wr.b.const(np.array(sizes, np.int32), "int32"),
                      wr.b.const(np.array(x.perm.index(axis), np.int32), "int32")],
          [o.index for o in outs], wr.b.options("SplitVOptions", numSplits=len(sizes)), version=2)


def resize(wr, node):
    g = wr.g
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
    x = wr.transposed(node, wr.act(node, node.inputs[0]), node.inputs[0], NCHW_TO_NHWC)
    out = wr.new_act(node.outputs[0], NCHW_TO_NHWC, x.qparams)
    table = "ResizeNearestNeighborOptions" if mode == "nearest" else "ResizeBilinearOptions"
    wr.op(op, [x.index, wr.b.const(np.array(out_shape[2:], np.int32), "int32")], [out.index],
          wr.b.options(table, alignCorners=flags[0], halfPixelCenters=flags[1]), version=3)


def batch_normalization(wr, node):
    raise wr.g.fail(node, "a BatchNormalization that does not follow a Conv, Gemm or MatMul is not "
                    "imported yet", "put it after a convolution or linear layer")


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


OPS = {"Conv": conv, "Gemm": gemm, "MatMul": gemm, "Add": _binary, "Sub": _binary, "Mul": _binary,
       "Div": _binary, "Relu": relu, "Clip": clip, "Sigmoid": sigmoid, "Tanh": tanh,
       "HardSwish": hard_swish, "LeakyRelu": leaky_relu, "Softmax": softmax, "MaxPool": max_pool,
       "AveragePool": average_pool, "GlobalAveragePool": global_average_pool,
       "GlobalMaxPool": global_max_pool, "ReduceMean": reduce_mean, "Transpose": transpose,
       "Flatten": _reshape_node, "Reshape": _reshape_node, "Squeeze": _reshape_node,
       "Unsqueeze": _reshape_node, "Concat": concat, "Pad": pad, "PRelu": prelu, "Slice": slice_,
       "Split": split, "Resize": resize, "BatchNormalization": batch_normalization,
       "ConvTranspose": conv_transpose, "HardSigmoid": hard_sigmoid, "LSTM": lstm,
       "GRU": gru}
