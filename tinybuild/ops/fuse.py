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

TRANSPOSE folded away (fuse_transposes): two TRANSPOSEs in a row become one
(the second reads the first's input with the composed permutation), and a
TRANSPOSE that moves no byte (the identity, or only size-1 axes) disappears,
its readers reading its input. A TRANSPOSE whose output reaches a
FULLY_CONNECTED alone (directly or through view layers: RESHAPE, SQUEEZE,
EXPAND_DIMS) becomes a permutation of that FC's weight columns, when the
FC's every row of inputs is a permutation of the same row of the
TRANSPOSE's input (always with one row; with several, only a permutation
inside each row). Each intermediate tensor must be read by that one layer and
be no model output. The bytes are TFLite's: the FC multiplies the same
values by the same weights and sums them in int32 or int64 (exact, in any
order); a float32 FC is not folded (a float sum in another order rounds
differently).
"""
from __future__ import annotations

import numpy as np

from ..lower import Layer

PADS = ("PAD", "PADV2")
CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D")
VIEWS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")


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


# -- TRANSPOSE ------------------------------------------------------------------------------


def fuse_transposes(graph, layers: list[Layer]) -> list[Layer]:
    """``layers`` with TRANSPOSE pairs composed, byte-preserving TRANSPOSEs
    removed and TRANSPOSEs folded into FULLY_CONNECTED weights, renumbered."""
    operators = {op.index: op for op in graph.operators}
    sources = {id(layer): _transpose_source(graph, operators[layer.op_index])
               for layer in layers if layer.op == "TRANSPOSE"}
    gone: set[int] = set()
    for layer in layers:
        if id(layer) in sources and id(layer) not in gone:
            gone |= _fold_one(graph, layers, layer, sources, gone)
    kept = [layer for layer in layers if id(layer) not in gone]
    for i, layer in enumerate(kept):
        layer.index = i
    return kept


def _transpose_source(graph, op) -> np.ndarray:
    """For each element of the TRANSPOSE's output (in its shape), the number
    of the input element it copies."""
    from .movement import transpose
    return transpose(graph, op).copies[0].src_view


def _fold_one(graph, layers, t: Layer, sources: dict, gone: set) -> set[int]:
    """Fold TRANSPOSE ``t`` where it can go; the ids of the layers it removes."""
    src = sources[id(t)]
    chain = _sole_reader_chain(graph, layers, t.output, gone)
    if len(chain) == 1 and chain[0].op == "TRANSPOSE":
        second = chain[0]
        _compose(graph, t, second, sources)
        return {id(t)} | _fold_one(graph, layers, second, sources, gone | {id(t)})
    if np.array_equal(src.reshape(-1), np.arange(src.size)) and t.output not in graph.outputs:
        for reader in _readers(layers, t.output, gone):
            _rewire(reader, t.output, t.inputs[0])
        return {id(t)}
    if chain and chain[-1].op == "FULLY_CONNECTED" and _fold_into_fc(t, chain[-1], src):
        return {id(layer) for layer in [t, *chain[:-1]]}
    return set()


def _readers(layers, tensor: int, gone: set) -> list[Layer]:
    return [layer for layer in layers if id(layer) not in gone and tensor in layer.inputs]


def _sole_reader_chain(graph, layers, tensor: int, gone: set) -> list[Layer]:
    """The layers reading ``tensor`` one after the other through views, up to
    and including the first one that is not a view, when every tensor on the
    way is no model output and is read by that one layer alone, as its only
    activation input; else []."""
    chain: list[Layer] = []
    while True:
        readers = _readers(layers, tensor, gone)
        if tensor in graph.outputs or len(readers) != 1 or readers[0].inputs != [tensor]:
            return []
        chain.append(readers[0])
        if readers[0].op not in VIEWS:
            return chain
        tensor = readers[0].output


def _compose(graph, first: Layer, second: Layer, sources: dict) -> None:
    """``second`` rewritten to read ``first``'s input: one TRANSPOSE."""
    from .movement import Copy, Movement, index_array, movement_layer
    src = sources[id(first)].reshape(-1)[sources[id(second)]]
    operator = next(op for op in graph.operators if op.index == second.op_index)
    out_shape = tuple(int(d) for d in graph.tensors[second.output].shape)
    moved = movement_layer(graph, operator, Movement(
        [first.inputs[0]], [second.output], [Copy(0, 0, src, index_array(out_shape))]))
    second.inputs, second.params, second.consts = moved.inputs, moved.params, moved.consts
    second.shape = moved.shape
    second.notes.append(f"TRANSPOSE fused: composed with the TRANSPOSE before it (operator "
                        f"{first.op_index})")
    sources[id(second)] = src


def _fold_into_fc(t: Layer, fc: Layer, src: np.ndarray) -> bool:
    """Permute ``fc``'s weight columns so that it reads ``t``'s input; False
    when a row of the FC's inputs is not a permutation of the same input row."""
    if fc.dtype == "float32":        # a float sum in another order rounds differently
        return False
    p = fc.params
    rows, k, n = p.get("rows", 1), p["in_features"], p["out_features"]
    filt = next((c for c in fc.consts if c.role == "filter"), None)
    if filt is None or np.asarray(filt.values).size != n * k or src.size != rows * k:
        return False
    by_row = src.reshape(rows, k)
    column = by_row % k
    if not ((by_row // k == np.arange(rows)[:, None]).all() and (column == column[0]).all()):
        return False
    w = np.asarray(filt.values).reshape(n, k)
    moved = np.empty_like(w)
    moved[:, column[0]] = w            # FC input k was the TRANSPOSE's input column[0][k]
    filt.values = moved.reshape(-1)
    _rewire(fc, fc.inputs[0], t.inputs[0])
    fc.notes.append(f"TRANSPOSE fused: operator {t.op_index}'s permutation folded into the "
                    "weight columns")
    return True


def _rewire(layer: Layer, old: int, new: int) -> None:
    """``layer`` reads tensor ``new`` where it read ``old``."""
    layer.inputs = [new if t == old else t for t in layer.inputs]
    for table in (layer.overlap, layer.scratch_overlap):
        if old in table:
            table[new] = table.pop(old)
