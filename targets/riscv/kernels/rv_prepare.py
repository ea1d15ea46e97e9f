"""Build-time side of the RV32IM kernels (``targets/riscv/kernels/*.c``): which
layers each kernel takes, and the work done once on the host instead of at
every inference: weights reordered into the order the kernel reads them,
``input_offset * sum(weights)`` folded into the bias, requantization
constants proven exact per layer, scratch sizes and what may run in place.
See docs/kernels.md, section "RISC-V (rv32imc)".

Every ``prepare_*`` takes a :class:`tinybuild.lower.Layer` whose consts are
the reference kernel's (filter in TFLite's layout, bias, out_mul) and returns
a copy for the RV32 kernel.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from tinybuild import quant
from tinybuild.kernel_registry import KernelImpl
from tinybuild.lower import Const, Layer
from tinybuild.planner import raster_overlap

HERE = Path(__file__).parent
BLOCK = 4                  # output pixels and output channels per convolution register block
FC_ROWS = 8                # rows per fully connected register block
RQ_FAST, RQ_DOUBLE = 1, 4  # rq[0] flags (tb_rv.h)
_I32 = 1 << 31


def _const(layer: Layer, role: str) -> np.ndarray:
    for c in layer.consts:
        if c.role == role:
            return c.values
    raise KeyError(role)


def _round_up(n: int, m: int) -> int:
    return (n + m - 1) // m * m


def _max_abs_input(input_offset: int) -> int:
    """max |x + input_offset| over int8 x."""
    return max(abs(-128 + input_offset), abs(127 + input_offset))


def _fits_int32(values) -> bool:
    return bool(np.abs(np.asarray(values, np.int64)).max(initial=0) < _I32)


# -- requantization -------------------------------------------------------------------


def rv_requant_eval(acc: int, m: int, c: int, e: int) -> int:
    """tb_rv_requant_fast on Python ints: (MULH(4*acc, M) + C + 2*(acc >> 31)) >> E."""
    acc4 = (acc * 4 + _I32) % (1 << 32) - _I32          # the C shift wraps like uint32
    f = (acc4 * m) >> 32
    neg = -1 if acc < 0 else 0
    return (f + c + 2 * neg) >> e


def rv_requant_constants(out_mul, zero_point: int, bounds, constants=None):
    """Per-channel ``(M, C, E)`` with ``rv_requant_eval(acc, M, C, E) ==
    MultiplyByQuantizedMultiplier(acc, multiplier, shift) + zero_point`` for
    every ``|acc| <= bounds[c]`` (``constants[c]``: the only accumulator of a
    channel whose weights are all 0), or None when some channel cannot use it.

    From tinybuild.quant.fast_requant's ``(M, B, e)``, exact under its
    conditions: ``floor((2*acc*M + 2^31) / 2^32 + B + s) >> e`` with
    ``s = acc >> 31``. ``F = MULH(4*acc, M) = floor(acc*M / 2^30)`` and
    ``floor((2*acc*M + 2^31) / 2^32) = floor((acc*M/2^30 + 1) / 2) =
    floor((F + 1) / 2)`` (floors of divisions by integers nest), so the result
    is ``floor((F + 1 + 2B + 2s) / 2^(e+1))``: ``C = 2B + 1``, ``E = e + 1``.
    Every intermediate fits in int32 when ``4*|acc| < 2^31`` and
    ``2*|acc| + 1 + |C| + 2 < 2^31`` (``|F| <= 2*|acc| + 1``). A channel
    whose weights are all 0 is a constant with ``M = 0``: ``F = 0`` whatever
    ``4*acc`` wraps to.
    """
    pairs = [(int(m), int(s)) for m, s in np.asarray(out_mul).reshape(-1, 2)]
    fast = quant.fast_requant(pairs, zero_point, bounds, constant_acc=constants)
    if fast is None:
        return None
    constants = list(constants) if constants is not None else [None] * len(bounds)
    result = []
    for (m, b, e), bound, constant in zip(fast, bounds, constants):
        c = 2 * b + 1
        # 4 * acc must not overflow while it is summed (the depthwise sums run
        # scaled by 4), also when M = 0 makes the output a constant; a channel
        # whose weights are all 0 only ever adds zeros to its bias
        if constant is None and 4 * int(bound) >= _I32:
            return None
        if m != 0 and 2 * int(bound) + 3 + abs(c) >= _I32:
            return None
        if abs(c) + 2 >= _I32 or e + 1 > 31:
            return None
        result.append((m, c, e + 1))
    return result


def channel_stream(bias: np.ndarray, out_mul, zero_point: int, bounds, constants,
                   channels: int) -> tuple[int, np.ndarray, list[str]]:
    """Flags and the tb_rv_chan array ``{bias, M, C, E}`` (fast) or ``{bias,
    multiplier, shift, 0}`` (reference arithmetic), padded with zero channels."""
    n = len(bias)
    triples = rv_requant_constants(out_mul, zero_point, bounds, constants)
    if triples is not None:
        flags = RQ_FAST
        notes = ["requantization: (MULH(4 acc, M) + C + 2 (acc >> 31)) >> E per channel "
                 "(exact for every reachable accumulator, build time)"]
    else:
        flags = 0
        triples = [(int(m), int(s), 0) for m, s in np.asarray(out_mul).reshape(-1, 2)]
        notes = ["requantization: MultiplyByQuantizedMultiplier (the fast form is not "
                 "exact for this layer)"]
    stream = np.zeros((channels, 4), np.int64)
    stream[:n, 0] = bias
    stream[:n, 1:] = np.array(triples, np.int64).reshape(n, 3)
    return flags, stream, notes


def _bounds(w: np.ndarray, bias: np.ndarray, input_offset: int):
    """|acc| bound and the constant accumulator (bias) of all-zero channels;
    ``w`` is [channel][taps]."""
    wsum = np.abs(w).sum(axis=1)
    bounds = [int(v) for v in np.abs(bias) + wsum * _max_abs_input(input_offset)]
    constants = [int(b) if s == 0 else None for b, s in zip(bias, wsum)]
    return bounds, constants


def _folded_bias(w: np.ndarray, bias: np.ndarray, input_offset: int) -> np.ndarray:
    """bias + input_offset * sum(w) per channel: the kernels multiply raw x."""
    return bias.astype(np.int64) + int(input_offset) * w.sum(axis=1)


# -- CONV_2D ----------------------------------------------------------------------------


def conv_filter_layout(w: np.ndarray, out_c: int, k: int) -> np.ndarray:
    """OHWI [out_c][k] int8 -> [channel group of 4][K4][4], zero padded."""
    k4, cp = _round_up(k, 4), _round_up(out_c, BLOCK)
    full = np.zeros((cp, k4), np.int8)
    full[:out_c, :k] = np.asarray(w, np.int8).reshape(out_c, k)
    return full.reshape(cp // BLOCK, BLOCK, k4).transpose(0, 2, 1).reshape(-1).copy()


def is_direct_1x1(p: dict) -> bool:
    return (p["k_h"], p["k_w"], p["stride_h"], p["stride_w"], p["pad_top"], p["pad_left"]) == \
        (1, 1, 1, 1, 0, 0)


def _conv_weights(layer: Layer) -> np.ndarray:
    p = layer.params
    return _const(layer, "filter").astype(np.int64).reshape(p["out_c"], -1)


def conv_overlap(p: dict) -> tuple[list, int]:
    """The offsets ``offset(output) - offset(input)`` at which tb_rv_conv2d_s8
    is right in place, and the forward limit in its rq header: up to the limit
    it runs the blocks first to last (each gathered before it is written);
    above it, last to first, which is right from the backward bound up."""
    _, forward = raster_overlap(p, BLOCK, reads_block_first=True)
    backward, _ = raster_overlap(p, BLOCK, reads_block_first=True, backward=True)
    if forward is None:                       # everything is read before the first write
        return [(None, None)], _I32 - 1
    limit = max(-_I32, min(forward, _I32 - 1))
    return [(None, forward), (max(backward, forward + 1), None)], limit


def accepts_conv(layer: Layer) -> bool:
    if layer.op != "CONV_2D":
        return False
    w = _conv_weights(layer)
    return _fits_int32(_folded_bias(w, _const(layer, "bias"), layer.params["input_offset"]))


def prepare_conv(layer: Layer) -> Layer:
    p = layer.params
    out_c = p["out_c"]
    w = _conv_weights(layer)
    k = w.shape[1]
    k4, cp = _round_up(k, 4), _round_up(out_c, BLOCK)
    bias = _const(layer, "bias").astype(np.int64)
    bounds, constants = _bounds(w, bias, p["input_offset"])
    flags, stream, notes = channel_stream(_folded_bias(w, bias, p["input_offset"]),
                                          _const(layer, "out_mul"), p["output_offset"],
                                          bounds, constants, cp)
    direct = is_direct_1x1(p)
    overlap, forward = conv_overlap(p)
    rq = np.concatenate([[flags, k4, int(direct), forward], stream.reshape(-1)])
    consts = [Const("filter", "int8_t", conv_filter_layout(w, out_c, k)),
              Const("rq", "int32_t", rq.astype(np.int32))]
    scratch = BLOCK * k4
    notes = notes + [
        f"filter reordered to {cp // BLOCK} groups of 4 channels x {k4} taps (K {k} -> {k4}); "
        "input_offset * sum(w) folded into the bias",
        "1x1 stride 1: no patch extraction, the 4 pixels' channels interleaved" if direct else
        "im2col of 4 pixels, padded taps = input zero point",
        f"4 pixels x 4 channels register block ({scratch} B scratch)"]
    return replace(layer, consts=consts, args=["filter", "rq"], scratch_bytes=scratch,
                   overlap={layer.inputs[0]: overlap}, notes=notes)


# -- DEPTHWISE_CONV_2D ---------------------------------------------------------------------

DW_GENERAL, DW_3X3S1, DW_3X3S2 = 0, 1, 2


def dw_path(p: dict) -> int:
    if (p["k_h"], p["k_w"], p["dil_h"], p["dil_w"]) == (3, 3, 1, 1):
        if (p["stride_h"], p["stride_w"]) == (1, 1):
            return DW_3X3S1
        if (p["stride_h"], p["stride_w"]) == (2, 2):
            return DW_3X3S2
    return DW_GENERAL


def dw_plane(p: dict, path: int, transposed: bool) -> tuple[int, int]:
    """(row length, rows) of the zero-point-framed plane. Its rows run along
    the output's lines (input y when transposed) and must hold the padded
    input and every tap a sweep reads: stride 1 reads 2 columns past the last
    output, stride 2 reads columns 2j..2j+4 per output pair."""
    pt, pl = p["pad_top"], p["pad_left"]
    need_h = (p["out_h"] - 1) * p["stride_h"] + (p["k_h"] - 1) * p["dil_h"] + 1
    need_w = (p["out_w"] - 1) * p["stride_w"] + (p["k_w"] - 1) * p["dil_w"] + 1
    along_h, along_w = max(pt + p["in_h"], need_h), max(pl + p["in_w"], need_w)
    if path == DW_3X3S1:
        along_h, along_w = max(along_h, p["out_h"] + 2), max(along_w, p["out_w"] + 2)
    elif path == DW_3X3S2:
        along_h, along_w = max(along_h, 2 * p["out_h"] + 1), max(along_w, 2 * p["out_w"] + 1)
    return (along_h, along_w) if transposed else (along_w, along_h)


def _dw_weights(layer: Layer) -> np.ndarray:
    p = layer.params
    return _const(layer, "filter").astype(np.int64).reshape(p["k_h"] * p["k_w"], p["out_c"]).T


def accepts_depthwise(layer: Layer) -> bool:
    if layer.op != "DEPTHWISE_CONV_2D":
        return False
    return _fits_int32(_folded_bias(_dw_weights(layer), _const(layer, "bias"),
                                    layer.params["input_offset"]))


def prepare_depthwise(layer: Layer) -> Layer:
    p = layer.params
    out_c, kh, kw = p["out_c"], p["k_h"], p["k_w"]
    w = _dw_weights(layer)                                       # [out_c][kh * kw]
    bias = _const(layer, "bias").astype(np.int64)
    bounds, constants = _bounds(w, bias, p["input_offset"])
    flags, stream, notes = channel_stream(_folded_bias(w, bias, p["input_offset"]),
                                          _const(layer, "out_mul"), p["output_offset"],
                                          bounds, constants, out_c)
    path = dw_path(p) if flags & RQ_FAST else DW_GENERAL       # fast paths requantize inline
    transposed = p["out_h"] > p["out_w"]                         # sweep along the longer side
    filt = w.reshape(out_c, kh, kw)
    if transposed:
        filt = filt.transpose(0, 2, 1)
    plane_w, plane_h = dw_plane(p, path, transposed)
    rq = np.concatenate([[flags, plane_w, plane_h, path | (int(transposed) << 8)],
                         stream.reshape(-1)])
    consts = [Const("filter", "int8_t", filt.astype(np.int8).reshape(-1)),
              Const("rq", "int32_t", rq.astype(np.int32))]
    scratch = _round_up(plane_w * plane_h, 4)
    overlap = {layer.inputs[0]: (0, 0)} if p["depth_multiplier"] == 1 else {}
    name = {DW_3X3S1: "3x3 stride 1 (weights in registers, 2 outputs per step)",
            DW_3X3S2: "3x3 stride 2 (weights in registers, 2 outputs per step)",
            DW_GENERAL: "general (4 outputs per pass over the taps)"}
    notes = notes + [
        f"path: {name[path]}" + (", plane and filter transposed (sweeps along the height)"
                                 if transposed else ""),
        f"each channel copied into a {plane_w}x{plane_h} int8 plane framed by the zero point "
        "(input_offset * sum(filter) folded into the bias)",
        "in place: a channel is copied before it is overwritten" if overlap else "not in place"]
    return replace(layer, consts=consts, args=["filter", "rq"], scratch_bytes=scratch,
                   overlap=overlap, notes=notes)


# A depthwise layer on one input channel is a convolution: its depth_multiplier
# output channels are filters over that channel (MicroSpeech: 49x40x1, 8 of 10x8,
# stride 2), which the 4x4 register block runs with 4 channels per input load.


def depthwise_as_conv(layer: Layer) -> Layer:
    """The layer with its 1HW(M) filter as a convolution's OHWI (I = 1); the
    params (tb_conv_params, in_c 1, out_c M) and the other consts are the same."""
    p = layer.params
    filt = _const(layer, "filter").reshape(p["k_h"] * p["k_w"], p["out_c"]).T
    consts = [Const("filter", "int8_t", np.ascontiguousarray(filt).reshape(-1)) if c.role == "filter"
              else c for c in layer.consts]
    return replace(layer, consts=consts)


def accepts_depthwise_as_conv(layer: Layer) -> bool:
    return layer.op == "DEPTHWISE_CONV_2D" and layer.params["in_c"] == 1 and \
        layer.params["depth_multiplier"] > 1 and \
        _fits_int32(_folded_bias(_conv_weights(depthwise_as_conv(layer)), _const(layer, "bias"),
                                 layer.params["input_offset"]))


def prepare_depthwise_as_conv(layer: Layer) -> Layer:
    out = prepare_conv(depthwise_as_conv(layer))
    return replace(out, notes=[f"one input channel: run as a convolution with {layer.params['out_c']} "
                               "output channels (tb_rv_conv2d_s8)", *out.notes])


# -- FULLY_CONNECTED -------------------------------------------------------------------------


FC_SINGLE_ROWS = 4         # a remainder of up to this many rows runs row by row


def fc_blocked_rows(rows: int) -> int:
    """Rows in blocks of 8 (the last one padded with zero rows), the others
    (a remainder of at most FC_SINGLE_ROWS) run one by one: a padded block
    costs 8 rows whatever it holds, a single row about 1.5 block rows."""
    tail = rows % FC_ROWS
    return rows - tail if tail <= FC_SINGLE_ROWS else _round_up(rows, FC_ROWS)


def fc_weight_layout(w: np.ndarray, rows: int, k: int) -> np.ndarray:
    """[rows][k] int8 -> [row block of 8][k][8] (zero rows padding the last
    block), then the rows that run one by one, each [k]."""
    blocked = fc_blocked_rows(rows)
    full = np.zeros((max(blocked, rows), k), np.int8)
    full[:rows] = np.asarray(w, np.int8).reshape(rows, k)
    blocks = full[:blocked].reshape(blocked // FC_ROWS, FC_ROWS, k).transpose(0, 2, 1)
    return np.concatenate([blocks.reshape(-1), full[blocked:].reshape(-1)]).copy()


def _fc_weights(layer: Layer) -> np.ndarray:
    p = layer.params
    return _const(layer, "filter").astype(np.int64).reshape(p["out_features"], p["in_features"])


def fc_real_multipliers(layer: Layer) -> list[float]:
    """Each output's double multiplier, as the reference kernel picks it: the
    per-tensor real_multiplier, else the per-channel real_mul entries."""
    rm = float(layer.params["real_multiplier"])
    if rm != 0.0:
        return [rm] * layer.params["out_features"]
    return [float(m) for m in _const(layer, "real_mul")]


def accepts_fc(layer: Layer) -> bool:
    """weights_offset 0, for every output a multiplier in (0, 0.5) (the double
    rescale's exact fixed-point form, quant.fc_double_fast, exists) and a
    folded bias that fits int32."""
    p = layer.params
    if layer.op != "FULLY_CONNECTED" or p["weights_offset"] != 0:
        return False
    if any(quant.fc_double_fast(m) is None for m in set(fc_real_multipliers(layer))):
        return False
    return _fits_int32(_folded_bias(_fc_weights(layer), _const(layer, "bias"),
                                    p["input_offset"]))


def prepare_fc(layer: Layer) -> Layer:
    p = layer.params
    outs, k = p["out_features"], p["in_features"]
    w = _fc_weights(layer)
    multipliers = fc_real_multipliers(layer)
    per_channel = float(p["real_multiplier"]) == 0.0
    stream = np.zeros((_round_up(outs, FC_ROWS), 4), np.int64)
    stream[:outs, 0] = _folded_bias(w, _const(layer, "bias").astype(np.int64), p["input_offset"])
    stream[:outs, 1:3] = [quant.fc_double_fast(m) for m in multipliers]
    rq = np.concatenate([[RQ_DOUBLE, int(per_channel), 0, 0], stream.reshape(-1)])
    real_mul = np.asarray(multipliers if per_channel else multipliers[:1], np.float64)
    consts = [Const("filter", "int8_t", fc_weight_layout(w, outs, k)),
              Const("rq", "int32_t", rq.astype(np.int64).astype(np.int32)),
              Const("real_mul", "double", real_mul)]
    blocked = min(fc_blocked_rows(outs), stream.shape[0])
    single = outs - min(fc_blocked_rows(outs), outs)
    n_rows = p.get("rows", 1)
    notes = ["requantization: TFLite's double rescale, exact: per output a fixed-point "
             f"R / 2^(32 + t) ({'one per output' if per_channel else 'one for the layer'}), "
             "unless within |acc| / 2^(32 + t) of a tie (then in double)",
             f"weights in blocks of 8 outputs ({blocked} outputs)"
             f"{f' and {single} row(s) one by one' if single else ''}, input_offset * sum(w) "
             "folded into the bias; 1 input load per 8 multiply-adds" +
             (f"; {n_rows} rows of inputs one after the other" if n_rows > 1 else "")]
    return replace(layer, consts=consts, args=["filter", "rq", "real_mul"], notes=notes)


# -- ADD ---------------------------------------------------------------------------------------


def add_input_table(offset: int, mul, left_shift: int) -> np.ndarray:
    """What the reference adds for each int8 input x, indexed by (uint8)x."""
    m, s = mul
    values = [quant.mul_by_quant_mul(((u - 256 if u >= 128 else u) + offset) << left_shift, m, s)
              for u in range(256)]
    return np.array(values, np.int64)


def add_constants(p: dict):
    """The two input tables and the output's (M, C, E), or None when the fast
    requantization is not exact for every sum the tables can make."""
    t1 = add_input_table(p["input1_offset"], p["input1"], p["left_shift"])
    t2 = add_input_table(p["input2_offset"], p["input2"], p["left_shift"])
    bound = int(np.abs(t1).max() + np.abs(t2).max())
    out = rv_requant_constants([p["output"]], p["output_offset"], [bound])
    if out is None or 4 * bound >= _I32:
        return None
    return t1, t2, out[0]


def accepts_add(layer: Layer) -> bool:
    return (layer.op == "ADD" and "shape" not in layer.params       # not broadcast/constant
            and add_constants(layer.params) is not None)


def prepare_add(layer: Layer) -> Layer:
    t1, t2, (m, c, e) = add_constants(layer.params)
    rq = np.concatenate([[RQ_FAST, m, c, e], 4 * t1, 4 * t2])
    notes = ["each input's rescale MultiplyByQuantizedMultiplier((x + offset) << 20) is a "
             "256-entry table (times 4) computed at build time",
             "output: (MULH(4 sum, M) + C + 2 (sum >> 31)) >> E, exact for every sum"]
    return replace(layer, consts=[Const("rq", "int32_t", rq.astype(np.int32))], args=["rq"],
                   overlap={t: (None, 0) for t in layer.inputs}, notes=notes)


def kernels() -> list[KernelImpl]:
    from . import rv_cost  # imported here: it imports this module's helpers
    src = lambda name: (HERE / name,)
    return [
        KernelImpl("CONV_2D", "tb_rv_conv2d_s8", src("rv_conv_s8.c"), priority=10,
                   accepts=rv_cost.accepts_conv_faster, prepare=prepare_conv,
                   name="tb_rv_conv2d_s8 (RV32IM, 4x4 block)"),
        KernelImpl("DEPTHWISE_CONV_2D", "tb_rv_conv2d_s8", src("rv_conv_s8.c"), priority=20,
                   accepts=rv_cost.accepts_depthwise_as_conv_faster,
                   prepare=prepare_depthwise_as_conv,
                   name="tb_rv_conv2d_s8 (RV32IM, 4x4 block; depthwise on one input channel)"),
        KernelImpl("DEPTHWISE_CONV_2D", "tb_rv_depthwise_conv2d_s8", src("rv_depthwise_s8.c"),
                   priority=10, accepts=rv_cost.accepts_depthwise_faster,
                   prepare=prepare_depthwise, name="tb_rv_depthwise_conv2d_s8 (RV32IM, planar)"),
        KernelImpl("FULLY_CONNECTED", "tb_rv_fully_connected_s8", src("rv_fc_s8.c"),
                   priority=10, accepts=accepts_fc, prepare=prepare_fc,
                   name="tb_rv_fully_connected_s8 (RV32IM, 8 outputs)"),
        KernelImpl("ADD", "tb_rv_add_s8", src("rv_add_s8.c"), priority=10,
                   accepts=accepts_add, prepare=prepare_add, name="tb_rv_add_s8 (tables)"),
    ]
