"""Build-time fusion of lowered layers: a PAD/PADV2 folded into the
convolution that reads it.

Keras' ZeroPadding2D (and "explicit" padding in exports such as MobileNet's
stride-2 blocks) becomes PAD -> CONV_2D/DEPTHWISE_CONV_2D(VALID). The
convolution kernels already treat every position outside their input as
padding (they skip it, which equals reading the input zero point), so the conv
can read the PAD's input with ``pad_top``/``pad_left`` raised by the PAD's
before-pads; its bottom/right padding follows from its output size. The PAD's
copy layer and its output buffer disappear.

Fused only where the result is TFLite's exactly: constant paddings on H and W
alone, a padding value equal to the conv's input zero point, the PAD's output
read by that one conv (as its input) and by nothing else, a VALID conv, and
each pad at most the kernel's reach ((k - 1) * dilation), the range SAME
padding spans and the targets' optimized kernels are tested over. Pools are
never fused: TFLite's AVERAGE_POOL_2D leaves padded cells out of the count and
MAX_POOL_2D pads with -inf, while an explicit PAD pads with the zero point.
"""
from __future__ import annotations

import numpy as np

from ..lower import Layer

PADS = ("PAD", "PADV2")
CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def fuse_pads(graph, layers: list[Layer]) -> list[Layer]:
    """``layers`` with every fusable PAD folded into its conv, renumbered."""
    operators = {op.index: op for op in graph.operators}
    fused = set()
    for layer in layers:
        if layer.op not in PADS:
            continue
        conv = _sole_conv_reader(graph, layers, layer)
        pads = conv and _spatial_pads(graph, operators[layer.op_index], conv)
        if pads:
            _absorb(graph, conv, layer, pads)
            fused.add(id(layer))
    kept = [layer for layer in layers if id(layer) not in fused]
    for i, layer in enumerate(kept):
        layer.index = i
    return kept


def _sole_conv_reader(graph, layers: list[Layer], pad: Layer) -> Layer | None:
    """The VALID conv that is the only reader of ``pad``'s output, else None."""
    out = pad.output
    if len(pad.outputs) != 1 or out in graph.outputs:
        return None
    readers = [layer for layer in layers for t in layer.inputs if t == out]
    if len(readers) != 1:
        return None
    conv = readers[0]
    operator = next(op for op in graph.operators if op.index == conv.op_index)
    if conv.op not in CONVS or conv.inputs[0] != out or operator.options.get("Padding") != "VALID":
        return None
    return conv


def _spatial_pads(graph, op, conv: Layer) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right) when only H and W are padded, with the conv's
    input zero point, within the kernel's reach; else None."""
    from .movement import pad_value
    paddings = graph.tensors[op.inputs[1]].data
    if paddings is None or np.shape(paddings) != (4, 2):
        return None
    (n0, n1), (top, bottom), (left, right), (c0, c1) = np.asarray(paddings, np.int64).tolist()
    y = graph.tensors[op.outputs[0]]
    if (n0, n1, c0, c1) != (0, 0, 0, 0) or y.dtype != "int8" or pad_value(graph, op) != y.zero_point:
        return None
    p = conv.params
    reach_h, reach_w = (p["k_h"] - 1) * p["dil_h"], (p["k_w"] - 1) * p["dil_w"]
    if max(top, bottom) > reach_h or max(left, right) > reach_w:
        return None
    return top, left, bottom, right


def _absorb(graph, conv: Layer, pad: Layer, pads: tuple[int, int, int, int]) -> None:
    top, left, bottom, right = pads
    _, in_h, in_w, in_c = graph.tensors[pad.inputs[0]].shape
    p = conv.params
    p.update(in_h=in_h, in_w=in_w, pad_top=p["pad_top"] + top, pad_left=p["pad_left"] + left)
    conv.inputs[0] = pad.inputs[0]
    rest = conv.shape.split(" -> ", 1)[-1].replace(" valid", f" pad {top},{left},{bottom},{right}")
    conv.shape = f"{in_h}x{in_w}x{in_c} -> {rest}"
    conv.notes.append(f"PAD fused: top {top} left {left} bottom {bottom} right {right}")
