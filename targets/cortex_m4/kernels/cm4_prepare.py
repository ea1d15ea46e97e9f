"""Build-time side of the Cortex-M4 kernels: which layers each one takes, and
the work done once on the host instead of at every inference (weights
reordered into the order the kernel loads them, requantization constants,
scratch sizes, what may run in place). See docs/kernels.md.

Every ``prepare_*`` takes a :class:`tinybuild.lower.Layer` whose consts are
the reference kernel's (filter in TFLite's layout, bias, out_mul) and returns
a copy for the optimized kernel.
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache, partial
from pathlib import Path

import numpy as np

from tinybuild import quant
from tinybuild.kernel_registry import KernelImpl
from tinybuild.lower import Const, Layer
from tinybuild.planner import raster_overlap

HERE = Path(__file__).parent
CONV_BLOCK = 4                 # output pixels per register block (tb_cm4_conv2d_s8)
RQ_FAST, RQ_FULLRANGE = 1, 2   # rq[0] flags
RQ_NO_SIGN = 8                 # conv: a negative accumulator always clamps to -128 (see below)
RQ_RAW_B = 16                  # conv: odd channels' weights stored for SMLAD on the raw word (conv_raw_b)
CONV_PAIR_RQ = 8               # int32 words after each channel pair's weights
CONV_ROWS9_STAGE = 3 * 12      # 3x3 on 3 channels: a border pixel's 3 kernel rows, 12 B apart
# 3x3 on 3 channels: the column's k order (tb_cm4_im2col_rows9): each kernel row's first 8
# bytes (two word loads as aligned as the row), then the 3 rows' last bytes (and a 0 weight)
CONV_ROWS9_ORDER = np.array([*range(0, 8), *range(9, 17), *range(18, 26), 8, 17, 26])


def _const(layer: Layer, role: str) -> np.ndarray | None:
    for c in layer.consts:
        if c.role == role:
            return c.values
    return None


def _max_abs_input(input_offset: int) -> int:
    """max |x + input_offset| over int8 x."""
    return max(abs(-128 + input_offset), abs(127 + input_offset))


def requant(out_mul: np.ndarray, zero_point: int, bounds, act_min: int, act_max: int,
            channels: int, constants=None) -> tuple[int, np.ndarray, list[str]]:
    """Flags and per-channel requantization triples: {M, B, e} for the fast
    exact form (tinybuild.quant.fast_requant) or {M, shift, 0} for TFLite's
    MultiplyByQuantizedMultiplier. ``channels`` pads with zero channels;
    ``constants[c]`` is channel c's accumulator when its weights are all 0."""
    pairs = [(int(m), int(s)) for m, s in np.asarray(out_mul).reshape(-1, 2)]
    pairs += [(0, 0)] * (channels - len(pairs))
    bounds = list(bounds) + [0] * (channels - len(bounds))
    constants = list(constants) if constants is not None else [None] * len(bounds)
    constants += [None] * (channels - len(constants))
    fast = quant.fast_requant(pairs, zero_point, bounds, constant_acc=constants)
    flags = RQ_FULLRANGE if (act_min, act_max) == (-128, 127) else 0
    if fast is not None:
        flags |= RQ_FAST
        triples = np.array(fast, np.int64)
        notes = ["requantization: SMMLAR form, {M, B, e} per channel (exact, build time)"]
    else:
        triples = np.array([(m, s, 0) for m, s in pairs], np.int64)
        notes = ["requantization: MultiplyByQuantizedMultiplier (the fast form is not exact here)"]
    return flags, triples.reshape(channels, 3), notes


# -- CONV_2D -------------------------------------------------------------------------


def conv_filter_layout(w: np.ndarray, out_c: int, k: int, raw_b: bool = False) -> np.ndarray:
    """OHWI int8 -> [C_out/2 pairs][K4/2 k-pairs] words; a word holds
    [c ka][c+1 ka][c kb][c+1 kb] for k-pair (ka, kb) = (4g+s, 4g+s+2).

    ``raw_b``: channel c+1's byte is stored as ``w[c+1] - (w[c] < 0)``, so that
    each halfword read as int16 is exactly ``256 * w[c+1] + w[c]`` (conv_raw_b)."""
    k4 = (k + 3) // 4 * 4
    cp = (out_c + 1) // 2 * 2
    full = np.zeros((cp, k4), np.int16)
    full[:out_c, :k] = np.asarray(w, np.int8).reshape(out_c, k)
    if raw_b:
        full[1::2] -= full[0::2] < 0
    # k = 4g + 2h + s  ->  axes (pair, c, g, h, s) -> (pair, g, s, h, c)
    full = full.astype(np.int8)
    return full.reshape(cp // 2, 2, k4 // 4, 2, 2).transpose(0, 2, 4, 3, 1).reshape(-1).copy()


def conv_raw_b(w: np.ndarray, out_c: int, max_abs_input: int) -> bool:
    """May the kernel take channel c+1's sum from SMLAD on the raw weight word?

    With channel c+1's bytes stored as ``w[c+1] - (w[c] < 0)`` (conv_filter_layout),
    a halfword of the word is the int16 ``h = 256 * w[c+1] + w[c]``: SMLAD of the
    column with the raw word sums ``S_c + 256 * S_c+1`` and SMLAD with its SXTB16
    (bytes 0 and 2) sums ``S_c``, so ``S_c+1 = (raw - S_c) >> 8``, exactly, when
    ``256 * |S_c+1| < 2^31``; one SXTB16 per k-pair instead of two (16 cycles per
    16 MACs instead of 17). Needs every stored byte in int8 (no ``w[c+1] = -128``
    beside a negative ``w[c]``: TFLite's int8 weights are in [-127, 127])."""
    cp = (out_c + 1) // 2 * 2
    full = np.zeros((cp, w.shape[1]), np.int64)
    full[:out_c] = w
    a, b = full[0::2], full[1::2]
    stored_ok = bool(((b - (a < 0)) >= -128).all())
    sums_ok = int(np.abs(b).sum(axis=1).max(initial=0)) * max_abs_input * 256 < 1 << 31
    return stored_ok and sums_ok


def conv_stream(filt: np.ndarray, out_c: int, k: int, rq_words: np.ndarray,
                raw_b: bool = False) -> np.ndarray:
    """One record per channel pair, in the order the kernel walks them: the pair's
    K4/2 weight words (conv_filter_layout), then its CONV_PAIR_RQ requantization
    words {M_c, B_c, e_c, bias_c, M_c+1, B_c+1, e_c+1, bias_c+1}, as bytes."""
    k4 = (k + 3) // 4 * 4
    pairs = (out_c + 1) // 2
    w = conv_filter_layout(filt, out_c, k, raw_b).reshape(pairs, 2 * k4)
    r = np.asarray(rq_words, np.int64).astype(np.int32).astype("<i4").reshape(pairs, -1)
    return np.concatenate([w, r.view(np.int8)], axis=1).reshape(-1).copy()


def conv_no_sign(flags: int, triples: np.ndarray, zero_point: int) -> bool:
    """The fast form's sign term ``acc >> 31`` may be left out when the output
    zero point is -128 and the range is the full int8 one: for acc < 0 and
    M >= 0, SMMLAR(2*acc, M, B) <= B and B >> e == zp, so the output clamps to
    -128 with or without it (a constant channel, M == 0, has B == 2v + 1 and
    e == 1: v either way)."""
    return flags == RQ_FAST | RQ_FULLRANGE and zero_point == -128 and \
        bool((triples[:, 0] >= 0).all())


CONV_PLANE_BUDGET = 1024       # bytes of scratch a padded input plane always may take
CONV_PLANE_MAX = 24 * 1024     # ... and at most, where it saves clearly more than it costs
# estimated cycles (tb_cm4_conv2d_s8 on the simulator, VWW's and ResNet-8's first
# layers, ResNet-8's 3x3 layers): a border pixel's patch extraction beyond an
# interior one's, per K4 value (general path) or per pixel (3x3 on 3 channels,
# whose border path is already cheap); the plane's fill and copy per byte
CONV_BORDER_PER_K4, CONV_BORDER_ROWS9 = 6, 300
CONV_PLANE_PER_BYTE, CONV_PLANE_MARGIN = 0.75, 1.5


def conv_plane(p: dict, tap4: bool, rows9: bool) -> tuple[int, int]:
    """(width, height) of the zero-point-framed copy of a padded input, or (0, 0).

    A convolution with padding sends every block that touches the border through
    per-pixel patch extraction with bounds checks (KWS's first layer: every block,
    its 5-pixel rows put an edge pixel in each block of 4; ResNet-8's 32x32 maps:
    about 1,000 cycles more per border pixel). The kernel can copy the input once
    into a plane that holds the padding as the zero point, so every block takes
    the checked-once interior path: always when the plane is small, up to
    CONV_PLANE_MAX bytes where the border work it saves is estimated clearly above
    the copy (not VWW's 96x96x3 input: 95 border pixels, 28 KB to copy). Only
    where that path exists: taps or kernel rows that are whole words, or 3x3 on 3
    channels."""
    kh, kw, dh, dw = p["k_h"], p["k_w"], p["dil_h"], p["dil_w"]
    h = max(p["pad_top"] + p["in_h"], (p["out_h"] - 1) * p["stride_h"] + (kh - 1) * dh + 1)
    w = max(p["pad_left"] + p["in_w"], (p["out_w"] - 1) * p["stride_w"] + (kw - 1) * dw + 1)
    padded = (h, w) != (p["in_h"], p["in_w"]) or p["pad_top"] or p["pad_left"]
    interior_path = tap4 or rows9 or p["in_c"] % 4 == 0 or (dw == 1 and kw * p["in_c"] % 4 == 0)
    size = conv_plane_bytes(p, w, h)
    if not padded or not interior_path or size > CONV_PLANE_MAX:
        return 0, 0
    if size > CONV_PLANE_BUDGET and not conv_plane_pays(p, tap4, rows9, size):
        return 0, 0
    return w, h


def conv_plane_pays(p: dict, tap4: bool, rows9: bool, size: int) -> bool:
    """Is the border work a plane saves estimated clearly above its copy?"""
    from tinybuild.kernel_cost import inside
    rows, cols = inside(p)
    border = sum(1 for a in rows for b in cols if a < p["k_h"] or b < p["k_w"])
    k4 = (p["k_h"] * p["k_w"] * (4 if tap4 else p["in_c"]) + 3) // 4 * 4
    saved = border * (CONV_BORDER_ROWS9 if rows9 else CONV_BORDER_PER_K4 * k4)
    return saved > CONV_PLANE_MARGIN * CONV_PLANE_PER_BYTE * size


def conv_plane_bytes(p: dict, w: int, h: int) -> int:
    """The plane, rounded up to words, plus a word: a tap's or a row's last word
    load may read up to 3 bytes past its values."""
    return (w * h * p["in_c"] + 3) // 4 * 4 + 4


CONV_QUADS = 32               # rq[0]: channel quads x pixel pairs (tb_cm4_conv_quads), rq[4] their scratch
CONV_QUAD_NO_COPY = -1        # rq[4]: no room for the copy (place=auto|ram): the filter is read where it is
CONV_QUAD_MAX = 40 * 1024     # bytes of scratch the quads' weight copy (from flash) may take
CONV_QUAD_MIN_PAIRS = 16      # k-pairs from which a quad's 4 requantization loads are won back
CONV_QUAD_MIN_PIXELS = 16     # output pixels from which a weight copy from flash is won back


def conv_quad_bytes(out_c: int, k4: int) -> int:
    """The quads' weights in the scratch: per quad, both pairs' words
    interleaved k-pair by k-pair, then their 16 requantization words."""
    return out_c // 4 * (k4 + 16) * 4


def conv_quad_layout(stream: np.ndarray, out_c: int, k4: int) -> np.ndarray:
    """conv_stream's pair records (out_c a multiple of 4) as quads: per quad of
    channels, pair A's (c, c+1) and pair B's (c+2, c+3) weight words interleaved
    k-pair by k-pair ([A_k, B_k]: tb_cm4_conv_quads loads both with one base),
    then A's and B's requantization words."""
    npairs = k4 // 2
    rec = np.asarray(stream, np.int8).view("<u4").reshape(out_c // 2, npairs + CONV_PAIR_RQ)
    a, b = rec[0::2], rec[1::2]
    words = np.stack([a[:, :npairs], b[:, :npairs]], axis=2).reshape(out_c // 4, 2 * npairs)
    quads = np.concatenate([words, a[:, npairs:], b[:, npairs:]], axis=1)
    return quads.astype("<u4").view(np.int8).reshape(-1).copy()


def conv_quads(p: dict, raw_b: bool, k4: int) -> bool:
    """2 pixels x 4 channels (15 cycles per 16 MACs, the 4 x 2 block 16): for
    raw-B layers with whole quads of channels, a kernel larger than 1x1 (the 1x1
    layers keep their loops), enough k-pairs and pixels to win back the quads'
    extra requantization loads and pixel-pair switch and (weights in flash) the
    weight copy, and a copy that fits."""
    return raw_b and p["out_c"] % 4 == 0 and p["k_h"] * p["k_w"] > 1 and \
        k4 // 2 >= CONV_QUAD_MIN_PAIRS and p["out_h"] * p["out_w"] >= CONV_QUAD_MIN_PIXELS and \
        conv_quad_bytes(p["out_c"], k4) <= CONV_QUAD_MAX


def conv_quad_copy(place: str, scratch: int, size: int) -> tuple[int, str]:
    """(rq[4], note): where in the scratch the quads copy a filter left in flash
    (read twice per block), after the other ``scratch`` bytes; CONV_QUAD_NO_COPY
    when the build puts constants in RAM (place=auto|ram): the copy would only
    double the filter's RAM, and a filter left in flash there (RAM full) is read
    from flash."""
    if place != "flash":
        return CONV_QUAD_NO_COPY, (f"place={place}: the filter is read where the build put it, no "
                                   f"scratch for a copy ({size} B with place=flash)")
    return scratch, f"a filter left in flash is copied once per inference into {size} B of scratch"


def accepts_conv(layer: Layer) -> bool:
    return layer.op == "CONV_2D"


def prepare_conv(layer: Layer) -> Layer:
    p = layer.params
    # 3 input channels: pad every tap to 4 with a zero weight, so that the
    # kernel loads a tap as one word (the 4th byte it reads meets weight 0)
    # except for a 3x3 kernel (dil_w 1): its kernel rows of 9 bytes are loaded as
    # words of the concatenated rows (K 27 -> 28 instead of 36)
    rows9 = (p["in_c"], p["k_h"], p["k_w"], p["dil_w"]) == (3, 3, 3, 1)
    tap4 = p["in_c"] == 3 and not rows9
    filt = _const(layer, "filter").reshape(p["out_c"], p["k_h"] * p["k_w"], p["in_c"])
    if tap4:
        filt = np.concatenate([filt, np.zeros(filt.shape[:2] + (1,), filt.dtype)], axis=2)
    out_c, k = p["out_c"], filt.shape[1] * filt.shape[2]
    if rows9:
        filt = filt.reshape(out_c, k)[:, CONV_ROWS9_ORDER]
    filt = filt.reshape(-1)
    k4 = (k + 3) // 4 * 4
    cp = (out_c + 1) // 2 * 2
    w = filt.reshape(out_c, k).astype(np.int64)
    bias = np.zeros(cp, np.int64)
    bias[:out_c] = _const(layer, "bias")
    wsum = np.abs(w).sum(axis=1)
    bounds = np.abs(bias[:out_c]) + wsum * _max_abs_input(p["input_offset"])
    constants = [int(b) if s == 0 else None for b, s in zip(bias[:out_c], wsum)]
    flags, triples, notes = requant(_const(layer, "out_mul"), p["output_offset"], bounds,
                                    p["act_min"], p["act_max"], cp, constants)
    # per channel {M, B, e, bias'}: the fast form takes 2 * bias (the kernel
    # requantizes 2 * (sum + bias) = bias' + 2 * sum, exact: 2 * |acc| < 2^31 was
    # checked), except that a constant channel's accumulator is not used at all
    if flags & RQ_FAST:
        live = np.zeros(cp, bool)
        live[:out_c] = wsum != 0
        bias = np.where(live, 2 * bias, 0)
    if conv_no_sign(flags, triples, p["output_offset"]):
        flags |= RQ_NO_SIGN
        notes = notes + ["zero point -128, full range: the sign term is left out"]
    # the raw-B form for the assembly loops only (fast form, full int8 range): on the
    # C path its per-output correction costs more than the SXTB16s it saves at small K
    raw_b = (flags & ~RQ_NO_SIGN) == RQ_FAST | RQ_FULLRANGE and \
        conv_raw_b(w, out_c, _max_abs_input(p["input_offset"]))
    if raw_b:
        flags |= RQ_RAW_B
        notes = notes + ["odd channels' weights stored as w[c+1] - (w[c] < 0): their sums "
                         "from SMLAD on the raw word (one SXTB16 per k-pair)"]
    rq_words = np.concatenate([triples, bias[:, None]], axis=1).reshape(-1)
    _, forward = raster_overlap(p, CONV_BLOCK, reads_block_first=True)
    backward, _ = raster_overlap(p, CONV_BLOCK, reads_block_first=True, backward=True)
    limit = (1 << 31) - 1 if forward is None else max(-(1 << 31), min(forward, (1 << 31) - 1))
    mode = 4 if tap4 else 9 if rows9 else 0
    # staging: the general path's K4 bytes, or rows9's border stage of 3 kernel rows
    stage = CONV_ROWS9_STAGE if rows9 else k4 if p["in_c"] % 4 and not tap4 else 0
    quads = conv_quads(p, raw_b, k4)
    # the tail where a last block of 3 pixels (with quads: 1 to 3) is computed
    tail = (p["out_h"] * p["out_w"]) % CONV_BLOCK in ((1, 2, 3) if quads else (3,))
    scratch = CONV_BLOCK * k4 * 2 + stage + (CONV_BLOCK * out_c if tail else 0)
    plane_w, plane_h = conv_plane(p, tap4, rows9)
    if plane_w:
        scratch += conv_plane_bytes(p, plane_w, plane_h)
        notes = notes + [f"padded input: copied once into a {plane_h}x{plane_w} plane "
                         "framed by the zero point, every block then takes the interior path"]
    quad_at = 0
    if quads:
        flags |= CONV_QUADS
        quad_at, copy_note = conv_quad_copy(layer.place, scratch, conv_quad_bytes(out_c, k4))
        scratch += 0 if quad_at == CONV_QUAD_NO_COPY else conv_quad_bytes(out_c, k4)
        notes = notes + [f"{out_c // 4} channel quads x 2 pixels (15 cycles per 16 MACs), each quad's "
                         "two pairs' words interleaved; " + copy_note]
    rq = np.array([flags, limit, mode, plane_w | plane_h << 16, quad_at], np.int64).astype(np.int32)
    stream = conv_stream(filt, out_c, k, rq_words, raw_b)
    if quads:
        stream = conv_quad_layout(stream, out_c, k4)
    consts = [Const("filter", "int8_t", stream),
              Const("rq", "int32_t", rq)]
    one_by_one = (p["k_h"], p["k_w"], p["stride_h"], p["stride_w"], p["pad_top"], p["pad_left"]) == \
        (1, 1, 1, 1, 0, 0) and p["in_c"] % 4 == 0
    notes = notes + [
        f"filter reordered to {cp // 2} channel pairs x {k4 // 2} k-pairs (K {k} -> {k4}), "
        "each pair followed by its bias and requantization constants",
        "1x1: pixels read directly, no patch extraction" if one_by_one else
        f"im2col of {CONV_BLOCK} pixels into {scratch} B of scratch" +
        (", taps padded from 3 to 4 channels (one word per tap)" if tap4 else
         ", 3x3x3: kernel rows of 9 bytes loaded as words of the concatenated rows"
         if rows9 else ""),
        f"{CONV_BLOCK} pixels x 2 channels register block, SMLAD, unrolled k sweep"]
    # forward: output at most `forward` bytes above the input; backward: at least `backward`
    allowed = [(None, forward)] if forward is None else \
        [(None, forward), (max(backward, forward + 1), None)]
    return replace(layer, consts=consts, args=["filter", "rq"], scratch_bytes=scratch,
                   overlap={layer.inputs[0]: allowed}, notes=notes)


# tb_cm4_conv2d_1x1_k<depth>_s8: one entry point per depth in the C file; the
# build offers the ones below (a build links only the depths its model uses).
# K 64 and 128 cost 4.5 and 8.5 KB of flash for about 1-2% of their layers'
# cycles (VWW: 91k cycles for 13 KB); offered since cycles are the goal on
# boards with MBs of flash (issue 14): drop them here to trade speed for flash.
CONV_SMALLK_ALL_DEPTHS = (8, 16, 32, 64, 128)
CONV_SMALLK_DEPTHS = CONV_SMALLK_ALL_DEPTHS


def accepts_conv_1x1_smallk(layer: Layer, depth: int) -> bool:
    """1x1 stride 1 unpadded on ``depth`` input channels, an even number of
    output channels, whole blocks of 4 pixels, full int8 output range (the
    kernel hands a layer whose requantization is not the fast form to
    tb_cm4_conv2d_s8 at run time)."""
    p = layer.params
    return layer.op == "CONV_2D" and \
        (p["k_h"], p["k_w"], p["stride_h"], p["stride_w"], p["pad_top"], p["pad_left"]) == \
        (1, 1, 1, 1, 0, 0) and p["in_c"] == depth and p["out_c"] % 2 == 0 and \
        (p["out_h"] * p["out_w"]) % CONV_BLOCK == 0 and (p["act_min"], p["act_max"]) == (-128, 127)


def prepare_conv_1x1_smallk(layer: Layer) -> Layer:
    out = prepare_conv(layer)
    return replace(out, notes=out.notes + [
        f"shallow 1x1 (K {layer.params['in_c']}): straight-line loop per channel pair, "
        "no computed entry or sweep test"])


# -- DEPTHWISE_CONV_2D ---------------------------------------------------------------

DW_GENERAL, DW_3X3S1, DW_3X3S2 = 0, 1, 2


DW_PITCH = 64                     # int16 values per 3x3 stride-1 plane row (TB_CM4_DW_PITCH)


def dw_s1_fits(p: dict) -> bool:
    """A 3x3 stride-1 plane row (fixed pitch) holds the padded input row and the
    columns the sweeps read: column pairs up to the one holding out_w - 1, plus 2."""
    return max(p["pad_left"] + p["in_w"], (p["out_w"] + 1) // 2 * 2 + 2) <= DW_PITCH


def dw_path(p: dict) -> int:
    if (p["k_h"], p["k_w"], p["dil_h"], p["dil_w"]) == (3, 3, 1, 1):
        if (p["stride_h"], p["stride_w"]) == (1, 1) and \
                (dw_s1_fits(p) or dw_s1_fits(dw_oriented(p, True))):
            return DW_3X3S1
        if (p["stride_h"], p["stride_w"]) == (2, 2):
            return DW_3X3S2
    return DW_GENERAL


def dw_transposed(p: dict, path: int) -> bool:
    """Run a 3x3 path on the transposed problem (rows <-> columns) when the output
    is taller than wide: the sweeps run along plane rows, and every plane row
    carries pad columns that are computed but not stored (KWS: 25x5 maps). For
    stride 1, only if the transposed rows fit the plane's pitch, and then also
    when the layer's rows do not."""
    if path == DW_3X3S1:
        return not dw_s1_fits(p) or (p["out_h"] > p["out_w"] and dw_s1_fits(dw_oriented(p, True)))
    return path != DW_GENERAL and p["out_h"] > p["out_w"]


def dw_oriented(p: dict, transposed: bool) -> dict:
    """The layer's parameters as the kernel sees them (h and w swapped if transposed)."""
    if not transposed:
        return p
    q = dict(p)
    for a, b in (("in_h", "in_w"), ("out_h", "out_w"), ("k_h", "k_w"), ("stride_h", "stride_w"),
                 ("dil_h", "dil_w"), ("pad_top", "pad_left")):
        q[a], q[b] = p[b], p[a]
    return q


def dw_plane(p: dict, path: int) -> tuple[int, int, int]:
    """Width and height, in int16 values, of the zero-point-framed plane (of the
    oriented problem), and for stride 2 the rows of its even half."""
    kh, kw, sh, sw = p["k_h"], p["k_w"], p["stride_h"], p["stride_w"]
    pt, pl = p["pad_top"], p["pad_left"]
    if path == DW_3X3S1:
        # rows of DW_PITCH values (dw_s1_fits), so that the sweeps reach them with
        # immediate offsets; output row y reads plane rows y .. y + 2
        return DW_PITCH, max(pt + p["in_h"], p["out_h"] + 2), 0
    if path == DW_3X3S2:
        # even plane rows first, then the odd ones: output row y reads even row y,
        # odd row y and even row y + 1, so one sweep runs across output rows; a
        # row holds out_w + 1 or more output slots (q[2x .. 2x+3]); spare rows
        # for the slots past out_w of the last output row
        w = max(pl + p["in_w"], 2 * p["out_w"] + 2)
        w = (w + 1) // 2 * 2
        rows = max(pt + p["in_h"], 2 * p["out_h"] + 1)
        even = max((rows + 1) // 2, p["out_h"] + 2)
        return w, even + max(rows // 2, p["out_h"] + 1), even
    h = max(pt + p["in_h"], (p["out_h"] - 1) * sh + (kh - 1) * p["dil_h"] + 1)
    w = max(pl + p["in_w"], (p["out_w"] - 1) * sw + (kw - 1) * p["dil_w"] + 1)
    return (w + 1) // 2 * 2, h, 0


DW_STEPS = 32                     # stride 2: output slots per unrolled sweep (cm4_depthwise_s8.c)
DW_GROUP_BUDGET = 16384           # scratch for 4 channel planes at once, else one (VWW's 24x24x32
                                  # stride 1: 13 KB, under the arena's peak; its 48x48 layers' 20-26 KB
                                  # would raise VWW's arena by 15 KB)
DW_SUMS = 256                     # at most this many int32 sums per sweep


def dw_groups(p: dict, batch: int, plane_bytes: int) -> int:
    """Channels copied into their planes at once: 4 where 4 planes fit
    DW_GROUP_BUDGET, else 2 where 2 do (VWW's 48x48 maps: 2.4 cycles per value
    where one channel at a time takes 3.3), else 1."""
    if p["depth_multiplier"] != 1 or batch:
        return 1
    for g in (4, 2):
        if p["in_c"] % g == 0 and g * plane_bytes <= DW_GROUP_BUDGET:
            return g
    return 1
DW_S1_ROWS = 24                   # 3x3 stride 1: output rows per store (sums rows of DW_PITCH)


def dw_sweep_rows(p: dict, path: int, plane_w: int) -> tuple[int, int]:
    """Output rows per sweep (stride 1: per store; stride 2, 0: rows are swept
    in pieces) and the int32 sums the buffer holds (of the oriented problem)."""
    if path == DW_3X3S1:          # sweeps of two rows (one for an odd last), sums rows of DW_PITCH
        rows = min((p["out_h"] + 1) // 2 * 2, DW_S1_ROWS)
        return rows, rows * DW_PITCH
    if path == DW_3X3S2:
        rows = min(p["out_h"], DW_SUMS // (plane_w // 2))
        return (rows, rows * (plane_w // 2)) if rows else (0, DW_STEPS)
    return 0, 0


DW_BATCH_STEPS = 6                # column pairs per channel of a batched sweep (TB_CM4_DW_BATCH_STEPS)


def dw_s1_batch(p: dict, path: int) -> int:
    """3x3 stride 1 on small maps (of the oriented problem): how many channels
    go side by side in one plane of DW_PITCH values per row, each cw values
    wide, for one sweep across them (0: one channel per sweep). A multiple of
    4 (the 4-channel copy) dividing in_c, with an even number of output rows
    (the sweep runs two rows at a time) and at most DW_BATCH_STEPS column pairs
    per channel row."""
    if path != DW_3X3S1 or p["depth_multiplier"] != 1 or p["out_h"] % 2:
        return 0
    pairs = (p["out_w"] + 1) // 2
    cw = (max(p["pad_left"] + p["in_w"], 2 * pairs + 2) + 1) // 2 * 2
    if pairs > DW_BATCH_STEPS:
        return 0
    fits = DW_PITCH // cw // 4 * 4
    return max((b for b in range(4, fits + 1, 4) if p["in_c"] % b == 0), default=0)


DW_RQ_NO_SIGN = 8                 # rq[0] flag: the store loop leaves the sign term out
DW_RQ_PAIRS = 32                  # rq[0] flag: rows stored by the pair units (tb_cm4_dw_store_pairs)
DW_PAIRS_MAX_COLS = {True: 49, False: 25}   # ... rows of at most 2 * units + 1 outputs, by
                                            # DW_RQ_NO_SIGN (24 units without the sign term, 12 with)


def dw_store_pairs(flags: int, path: int, oriented: dict) -> bool:
    """The store takes the pair units for the fast full-range form on the 3x3
    paths' rows of at most DW_PAIRS_MAX_COLS outputs (all of VWW's and KWS's
    depthwise layers on the plane kernel)."""
    return flags & (RQ_FAST | RQ_FULLRANGE) == RQ_FAST | RQ_FULLRANGE and \
        path in (DW_3X3S1, DW_3X3S2) and \
        oriented["out_w"] <= DW_PAIRS_MAX_COLS[bool(flags & DW_RQ_NO_SIGN)]


DW_SWEEP_STORES = 1 << 23         # rq[3] bit: the sweeps store their outputs, one channel per
                                  # sweep or batched (TB_CM4_DW_SWEEP_STORES; batch: bits 24..31)


def dw_sweep_stores(flags: int, path: int, oriented: dict) -> bool:
    """The 3x3 stride-1 sweeps requantize and store their outputs themselves
    (tb_cm4_dw3s1_rows_rq, batched tb_cm4_dw3s1_batch_rq: no sums rows, no store
    pass) for the pair units' form without the sign term on an even number of
    output rows and columns, depth multiplier 1 (every VWW stride-1 layer); not
    on an empty output (a sweep of no column would run a whole pass)."""
    both = DW_RQ_PAIRS | DW_RQ_NO_SIGN
    out_h, out_w = oriented["out_h"], oriented["out_w"]
    return path == DW_3X3S1 and flags & both == both and oriented["depth_multiplier"] == 1 and \
        out_h > 0 and out_w > 0 and out_h % 2 == 0 and out_w % 2 == 0


def dw_no_sign(flags: int, triples: np.ndarray, zero_point: int) -> bool:
    """The fast form's sign term ``acc >> 31`` changes nothing when the output
    zero point is -128 and the range is the full int8 one: for acc < 0 and
    M >= 0, SMMLAR(2*acc, M, B) <= B and B >> e == -128, so the output clamps
    to -128 either way; a constant channel (M == 0, B == 2v + 1, e == 1) gives
    v either way."""
    return flags == RQ_FAST | RQ_FULLRANGE and zero_point == -128 and \
        bool((triples[:, 0] >= 0).all())


def accepts_depthwise(layer: Layer) -> bool:
    return layer.op == "DEPTHWISE_CONV_2D"


DW_3X3_RECORD = 14                # int16 per channel of the 3x3 paths' filter (TB_CM4_DW_3X3_RECORD)


def dw_3x3_records(w: np.ndarray, bias_folded: np.ndarray, path: int, flags: int) -> np.ndarray:
    """The 3x3 paths' filter, DW_3X3_RECORD int16 per channel: per row (w0, w1),
    (w1, w2) (stride 1) or (w0, w1), (w2, 0) (stride 2), then the folded bias as
    one word: the sweeps start each sum there, so the stores add no bias. With
    the fast full-range form (the stores' assembly) weights and bias are
    doubled: the sums are then the form's 2 * acc, exact mod 2^32 and within
    int32 at the end (|2 * acc| < 2^31 is one of the form's conditions)."""
    out_c = w.shape[2]
    scale = 2 if flags & (RQ_FAST | RQ_FULLRANGE) == RQ_FAST | RQ_FULLRANGE else 1
    pairs = (w[:, 0], w[:, 1], w[:, 1], w[:, 2]) if path == DW_3X3S1 else \
        (w[:, 0], w[:, 1], w[:, 2], np.zeros_like(w[:, 0]))
    taps = np.stack(pairs, axis=1).transpose(2, 0, 1).reshape(out_c, 12) * scale
    bias = (scale * bias_folded.astype(np.int64)) & 0xFFFFFFFF
    halves = np.stack([bias & 0xFFFF, bias >> 16], axis=1)
    halves = np.where(halves >= 1 << 15, halves - (1 << 16), halves)
    return np.concatenate([taps, halves], axis=1)


def prepare_depthwise(layer: Layer) -> Layer:
    p = layer.params
    kh, kw, out_c = p["k_h"], p["k_w"], p["out_c"]
    w = _const(layer, "filter").reshape(kh, kw, out_c).astype(np.int64)     # 1HW(C*M)
    bias = _const(layer, "bias").astype(np.int64)
    off = p["input_offset"]
    path = dw_path(p)
    transposed = dw_transposed(p, path)
    if transposed:
        w = w.transpose(1, 0, 2)
    # taps of padded positions read the zero point, so fold off * sum(w) into the bias
    bias_folded = bias + off * w.sum(axis=(0, 1))
    wsum = np.abs(w).sum(axis=(0, 1))
    bounds = np.abs(bias) + wsum * _max_abs_input(off)
    constants = [int(b) if s == 0 else None for b, s in zip(bias, wsum)]
    flags, triples, notes = requant(_const(layer, "out_mul"), p["output_offset"], bounds,
                                    p["act_min"], p["act_max"], out_c, constants)
    if path in (DW_3X3S1, DW_3X3S2):
        filt = dw_3x3_records(w, bias_folded, path, flags)
    else:
        n = (kh * kw + 1) // 2 * 2
        filt = np.zeros((out_c, n), np.int64)
        filt[:, :kh * kw] = w.reshape(kh * kw, out_c).T
    if dw_no_sign(flags, triples, p["output_offset"]):
        flags |= DW_RQ_NO_SIGN
        notes = notes + ["zero point -128, full range: the sign term is left out"]
    oriented = dw_oriented(p, transposed)
    if dw_store_pairs(flags, path, oriented):
        flags |= DW_RQ_PAIRS
        notes = notes + ["rows stored by pair units (one jump per row, no tail tests)"]
    plane_w, plane_h, even_rows = dw_plane(oriented, path)
    rows_per, sums = dw_sweep_rows(oriented, path, plane_w)
    plane_bytes = (plane_w * plane_h + 1) // 2 * 4
    batch = dw_s1_batch(oriented, path)
    groups = dw_groups(p, batch, plane_bytes)
    stores = dw_sweep_stores(flags, path, oriented)
    if stores:
        notes = notes + ["the sweep requantizes and stores its outputs (no sums rows)"]
    header = [flags, plane_w | (rows_per << 16), plane_h | (even_rows << 16),
              path | (groups << 8) | (int(transposed) << 16) | (batch << 24) |
              (DW_SWEEP_STORES if stores else 0)]
    rq = np.concatenate([header,
                         np.concatenate([bias_folded[:, None], triples], axis=1).reshape(-1)])
    if np.abs(bias_folded).max(initial=0) >= 1 << 31:
        raise ValueError("folded depthwise bias overflows int32")
    consts = [Const("filter", "int16_t", filt.astype(np.int16).reshape(-1)),
              Const("rq", "int32_t", rq.astype(np.int32))]
    scratch = groups * plane_bytes + 4 * sums
    overlap = {layer.inputs[0]: (0, 0)} if p["depth_multiplier"] == 1 else {}
    name = {DW_3X3S1: "3x3 stride 1 (SMLAD on tap pairs, 2 rows x 2 outputs per step)",
            DW_3X3S2: "3x3 stride 2 (SMLAD on tap pairs)", DW_GENERAL: "general (SMLABB per tap)"}
    notes = notes + [
        f"path: {name[path]}",
        *(["rows and columns swapped (the output is taller than wide)"] if transposed else []),
        f"each channel copied into a {plane_w}x{plane_h} int16 plane framed by the zero point "
        f"({groups} at a time, {scratch} B scratch); input_offset * sum(filter) folded into "
        "the bias" if not batch else
        f"{batch} channels side by side in one {plane_w}x{plane_h} int16 plane framed by the "
        f"zero point, one sweep across them ({scratch} B scratch); input_offset * sum(filter) "
        "folded into the bias",
        "in place: a channel is copied before it is overwritten" if overlap else "not in place"]
    return replace(layer, consts=consts, args=["filter", "rq"], scratch_bytes=scratch,
                   overlap=overlap, notes=notes)


def accepts_depthwise_folded(layer: Layer) -> bool:
    """The folded bias must fit in int32 (it always does for int8 models), the
    plane's sizes in the 16-bit fields of the rq header."""
    if layer.op != "DEPTHWISE_CONV_2D":
        return False
    p = layer.params
    path = dw_path(p)
    plane_w, plane_h, _ = dw_plane(dw_oriented(p, dw_transposed(p, path)), path)
    if max(plane_w, plane_h) >= 1 << 15:
        return False
    w = _const(layer, "filter").astype(np.int64).reshape(p["k_h"], p["k_w"], p["out_c"])
    b = _const(layer, "bias").astype(np.int64) + p["input_offset"] * w.sum(axis=(0, 1))
    return bool(np.abs(b).max(initial=0) < 1 << 31)


# A depthwise layer on one input channel is a convolution: its depth_multiplier
# output channels are filters over that channel (MicroSpeech: 49x40x1, 8 of
# 10x8, stride 2). The plane kernel's general path runs it at about 8
# instructions per MAC, the convolution at 1.2-1.4.
DW_AS_CONV_PRIORITY = 30       # above both depthwise kernels wherever it accepts


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
        layer.params["depth_multiplier"] > 1


def prepare_depthwise_as_conv(layer: Layer) -> Layer:
    out = prepare_conv(depthwise_as_conv(layer))
    return replace(out, notes=[f"one input channel: run as a convolution with {layer.params['out_c']} "
                               "output channels (tb_cm4_conv2d_s8)", *out.notes])


# -- FULLY_CONNECTED -----------------------------------------------------------------

def fc_real_multipliers(layer: Layer) -> list[float]:
    """Each output's double multiplier, as the reference kernel picks it: the
    per-tensor real_multiplier, else the per-channel real_mul entries."""
    rm = float(layer.params["real_multiplier"])
    if rm != 0.0:
        return [rm] * layer.params["out_features"]
    return [float(m) for m in _const(layer, "real_mul")]


def fc_weight_layout(w: np.ndarray, rows: int, k: int) -> np.ndarray:
    """[out][in] int8 -> blocks of 4 rows; per group of 4 inputs the 4 rows' words.
    With out % 4 == 1 the first row comes alone first (K4 bytes): the kernel
    runs it with its one-row loop instead of a block of 4 rows, 3 of them zero."""
    k4 = (k + 3) // 4 * 4
    single = int(rows % 4 == 1)
    r4 = (rows - single + 3) // 4 * 4
    full = np.zeros((single + r4, k4), np.int8)
    full[:rows, :k] = np.asarray(w, np.int8).reshape(rows, k)
    # (block, row, group, byte) -> (block, group, row, byte)
    blocks = full[single:].reshape(r4 // 4, 4, k4 // 4, 4).transpose(0, 2, 1, 3).reshape(-1)
    return np.concatenate([full[:single].reshape(-1), blocks]).copy()


FC_PER_CHANNEL = 4   # rq[0]: one multiplier record per output (else one for the layer)


def fc_fixed_point(m: float) -> tuple[int, int] | None:
    """(R, t) with R / 2^(32+t) the exact fast form of round_half_away(acc * m)
    (quant.fc_double_fast) and t >= 1, so the rounding term 2^(31+t) only adds
    2^(t-1) to the product's high word: t = 0 (m in [0.25, 0.5)) becomes
    R = round(m * 2^33), t = 1. R < 2^32 keeps fc_double_fast's proof (the
    double product's error stays below |acc| * 2^-21 units). None: no form."""
    fast = quant.fc_double_fast(m)
    if fast is None or fast[1] >= 1:
        return fast
    from fractions import Fraction
    r = round(Fraction(float(m)) * (1 << 33))
    return (int(r), 1) if r < 1 << 32 else None


def fc_mult_record(m: float) -> list[int]:
    """The kernel's tb_cm4_fc_mult {R, 2^(t-1), 2^t - 1, t} for multiplier m."""
    r, t = fc_fixed_point(m)
    return [r, 1 << (t - 1), (1 << t) - 1, t]


def accepts_fc(layer: Layer) -> bool:
    """weights_offset 0 and, for every output, a multiplier in (0, 0.5): the
    double rescale's exact fixed-point form (fc_fixed_point) exists."""
    p = layer.params
    if layer.op != "FULLY_CONNECTED" or p["weights_offset"] != 0:
        return False
    return all(fc_fixed_point(m) is not None for m in set(fc_real_multipliers(layer)))


def fc_overlap(p: dict) -> tuple[dict, dict]:
    """(overlap, scratch_overlap) of the output and scratch with the input.
    One row: anywhere (the input is in the scratch before an output is
    written; the back-to-front copy lets the scratch start at the input).
    Several rows: output row r, written after row r's input was copied, must
    end before row r + 1's input starts (offset d <= (r + 1) * (in - out) for
    every r < rows - 1), and the scratch is its own buffer."""
    rows, k, n = p.get("rows", 1), p["in_features"], p["out_features"]
    if rows <= 1:
        return (None, None), (0, None)
    return (None, min(0, (rows - 1) * (k - n))), None


def prepare_fc(layer: Layer) -> Layer:
    p = layer.params
    outs, k = p["out_features"], p["in_features"]
    r4 = (outs + 3) // 4 * 4
    bias = np.zeros(r4, np.int64)
    bias[:outs] = _const(layer, "bias")
    return fc_prepared(layer, fc_weight_layout(_const(layer, "filter"), outs, k), bias,
                       f"weights in blocks of 4 outputs x 4 inputs ({r4} outputs"
                       f"{'; the first output alone' if outs % 4 == 1 else ''}), ",
                       "2 LDM + 8 SXTB16 + 8 SMLAD per 16 MACs")


def fc_prepared(layer: Layer, filt: np.ndarray, starts: np.ndarray, layout_note: str,
                step_note: str) -> Layer:
    """The FC layer for an optimized FULLY_CONNECTED kernel (tb_cm4_fully_connected_s8,
    tb_cm4_fc_pairs_s8): its weight stream ``filt``, the rq words {flags, 0, 0, 0,
    ``starts`` (each output's starting sum), multiplier records}, the double
    multipliers for the rare exact path, input scratch and overlap, and notes."""
    p = layer.params
    multipliers = fc_real_multipliers(layer)
    per_channel = float(p["real_multiplier"]) == 0.0
    records = [fc_mult_record(m) for m in (multipliers if per_channel else multipliers[:1])]
    flags = ((RQ_FULLRANGE if (p["act_min"], p["act_max"]) == (-128, 127) else 0)
             | (FC_PER_CHANNEL if per_channel else 0))
    rq = np.concatenate([[flags, 0, 0, 0], starts, np.asarray(records, np.int64).reshape(-1)])
    real_mul = np.asarray(multipliers if per_channel else multipliers[:1], np.float64)
    consts = [Const("filter", "int8_t", filt),
              Const("rq", "int32_t", rq.astype(np.int64).astype(np.int32)),
              Const("real_mul", "double", real_mul)]
    scratch = (p["in_features"] + 3) // 4 * 4 * 2
    overlap, scratch_overlap = fc_overlap(p)
    n_rows = p.get("rows", 1)
    notes = ["requantization: TFLite's double rescale, exact: per output a fixed-point "
             f"R / 2^(32 + t) ({'one per output' if per_channel else 'one for the layer'}), "
             "in 32-bit words, unless within |acc| / 2^(32 + t) of a tie (then in double)",
             f"{layout_note}each row of inputs expanded to int16 in {scratch} B of scratch" +
             (" (back to front: it may overlap the input)" if n_rows <= 1 else
              f", {n_rows} rows one after the other"),
             step_note]
    return replace(layer, consts=consts, args=["filter", "rq", "real_mul"], scratch_bytes=scratch,
                   overlap={layer.inputs[0]: overlap},
                   scratch_overlap={layer.inputs[0]: scratch_overlap} if scratch_overlap else {},
                   notes=notes)


# -- ADD --------------------------------------------------------------------------------

ADD_SUM_TABLES = 4     # rq[0] flag: the two tables' sum holds the output (the word loop)
ADD_SUM_SHIFT = 16     # ... in its top halfword, plus 128: USAT16 #8 saturates it, EOR 0x80 unbiases
_ADD_SOLVER_PASSES = 2 * 256 + 2   # Bellman-Ford over 512 unknowns: more passes = a negative cycle


def accepts_add(layer: Layer) -> bool:
    if layer.op != "ADD" or "shape" in layer.params:   # broadcast or a constant operand
        return False
    p = layer.params
    return (add_sum_tables(p) is not None or
            quant.fast_requant([p["output"]], p["output_offset"], [add_sum_bound(p)]) is not None)


def add_input_table(offset: int, mul: tuple[int, int], left_shift: int) -> np.ndarray:
    """What the reference computes for each int8 input x, indexed by (uint8)x."""
    m, s = mul
    values = []
    for u in range(256):
        x = u - 256 if u >= 128 else u
        values.append(quant.mul_by_quant_mul((x + offset) << left_shift, m, s))
    return np.array(values, np.int64)


def add_sum_bound(p: dict) -> int:
    t1 = add_input_table(p["input1_offset"], p["input1"], p["left_shift"])
    t2 = add_input_table(p["input2_offset"], p["input2"], p["left_shift"])
    return int(np.abs(t1).max() + np.abs(t2).max())


def mul_by_quant_mul_array(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """quant.mul_by_quant_mul on an int64 array of int32 values, element by element."""
    left, right = max(int(shift), 0), max(-int(shift), 0)
    x = ((np.asarray(x, np.int64) << left) + (1 << 31)) % (1 << 32) - (1 << 31)
    ab = x * int(multiplier)                      # |ab| <= 2^62: exact in int64
    v = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    y = np.where(v >= 0, np.abs(v) >> 31, -(np.abs(v) >> 31))   # C division truncates
    y = np.where((x == -(1 << 31)) & (int(multiplier) == -(1 << 31)), (1 << 31) - 1, y)
    mask = (1 << right) - 1
    return (y >> right) + ((y & mask) > (mask >> 1) + (y < 0))


def add_reference_outputs(p: dict) -> np.ndarray:
    """[256, 256]: the reference's output for inputs (uint8)x1, (uint8)x2, before
    the activation clamp (in the int8 range)."""
    t1 = add_input_table(p["input1_offset"], p["input1"], p["left_shift"])
    t2 = add_input_table(p["input2_offset"], p["input2"], p["left_shift"])
    m, shift = p["output"]
    out = mul_by_quant_mul_array(t1[:, None] + t2[None, :], m, shift) + int(p["output_offset"])
    return np.clip(out, -128, 127)


def add_sum_tables(p: dict) -> np.ndarray | None:
    """512 int32 (u1 by (uint8)x1, then u2 by (uint8)x2) with, for all 65,536
    input pairs, u1 + u2 inside int32 and clamp((u1 + u2) >> 16, 0, 255) - 128
    the reference's output before the activation clamp; or None."""
    key = tuple(int(v) for f in ("input1_offset", "input2_offset", "output_offset", "left_shift",
                                 "input1", "input2", "output") for v in np.ravel(p[f]))
    return _add_sum_tables(key)


@lru_cache(maxsize=64)
def _add_sum_tables(key: tuple) -> np.ndarray | None:
    o1, o2, zp, ls, m1, s1, m2, s2, m, s = key
    p = dict(input1_offset=o1, input2_offset=o2, output_offset=zp, left_shift=ls,
             input1=(m1, s1), input2=(m2, s2), output=(m, s))
    want = add_reference_outputs(p) + 128
    # u1[a] + u2[c] in [lo, hi]: difference constraints on (u1, -u2); the ends are open
    # up to int32 where USAT16 saturates anyway
    lo = np.where(want == 0, -(1 << 31), want << ADD_SUM_SHIFT)
    hi = np.where(want == 255, (1 << 31) - 1, ((want + 1) << ADD_SUM_SHIFT) - 1)
    scale = m * 2.0 ** (s - 31 + ADD_SUM_SHIFT)   # the output's real slope, in table units
    t1 = add_input_table(o1, (m1, s1), ls)
    t2 = add_input_table(o2, (m2, s2), ls)
    u1 = np.floor(t1 * scale + (zp + 128.5) * (1 << ADD_SUM_SHIFT)).astype(np.int64)
    neg_u2 = -np.floor(t2 * scale).astype(np.int64)
    for _ in range(_ADD_SOLVER_PASSES):
        new_u1 = np.minimum(u1, (neg_u2[None, :] + hi).min(axis=1))
        new_neg_u2 = np.minimum(neg_u2, (new_u1[:, None] - lo).min(axis=0))
        if (new_u1 == u1).all() and (new_neg_u2 == neg_u2).all():
            return _add_tables_in_int32(u1, -neg_u2, want)
        u1, neg_u2 = new_u1, new_neg_u2
    return None   # the constraints contradict each other (an input's range is too wide)


def _add_tables_in_int32(u1: np.ndarray, u2: np.ndarray, want: np.ndarray) -> np.ndarray | None:
    """u1 + c, u2 - c with both in int32 (the sums do not change), checked on every pair."""
    top, bottom = (1 << 31) - 1, -(1 << 31)
    low = max(bottom - int(u1.min()), int(u2.max()) - top)
    high = min(top - int(u1.max()), int(u2.min()) - bottom)
    if low > high:
        return None
    c = (low + high) // 2
    u1, u2 = u1 + c, u2 - c
    sums = u1[:, None] + u2[None, :]
    exact = (sums.min() >= bottom and sums.max() <= top and
             (np.clip(sums >> ADD_SUM_SHIFT, 0, 255) == want).all())
    return np.concatenate([u1, u2]) if exact else None


def prepare_add(layer: Layer) -> Layer:
    p = layer.params
    full = (p["act_min"], p["act_max"]) == (-128, 127)
    sums = add_sum_tables(p)
    if sums is not None:
        rq = np.concatenate([[ADD_SUM_TABLES | (RQ_FULLRANGE if full else 0), 0, 0, 0], sums])
        notes = ["two 256-entry tables whose sum is the output x 2^16 + 128 x 2^16 (bits below: "
                 "the rounding), found at build time and checked on all 65,536 input pairs",
                 "16 elements per pass; per 4: 16 loads in one run, 4 ADD, 2 PKHTB, 2 USAT16, ORR, "
                 "EOR, STR" +
                 ("" if full else "; the activation range by UQADD8, UQSUB8, UADD8")]
    else:
        t1 = add_input_table(p["input1_offset"], p["input1"], p["left_shift"])
        t2 = add_input_table(p["input2_offset"], p["input2"], p["left_shift"])
        (m, b, e), = quant.fast_requant([p["output"]], p["output_offset"], [add_sum_bound(p)])
        rq = np.concatenate([[RQ_FAST | (RQ_FULLRANGE if full else 0), m, b, e], t1, t2])
        notes = ["each input's rescale (x + offset) << 20 -> MultiplyByQuantizedMultiplier is a "
                 "256-entry table computed at build time", "output: SMMLAR form, exact"]
    consts = [Const("rq", "int32_t", rq.astype(np.int64).astype(np.int32))]
    return replace(layer, consts=consts, args=["rq"],
                   overlap={t: (None, 0) for t in layer.inputs}, notes=notes)


# -- AVERAGE_POOL_2D ----------------------------------------------------------------------


def accepts_avgpool(layer: Layer) -> bool:
    p = layer.params
    return layer.op == "AVERAGE_POOL_2D" and p["k_h"] * p["k_w"] <= 256


def prepare_avgpool(layer: Layer) -> Layer:
    notes = ["window sums in 16-bit lanes (SXTAB16, at most 256 taps), 4 channels per word, "
             "2 taps per pass", "the rounded division by count: one UMULL by ceil(2^31 / count)"]
    return replace(layer, overlap={layer.inputs[0]: raster_overlap(layer.params)}, notes=notes)


def smallk_kernel(depth: int) -> KernelImpl:
    from . import cm4_cost
    return KernelImpl("CONV_2D", f"tb_cm4_conv2d_1x1_k{depth}_s8",
                      (HERE / "cm4_conv_1x1_smallk_s8.c", HERE / "cm4_conv_s8.c"), priority=15,
                      accepts=partial(cm4_cost.accepts_conv_1x1_smallk_faster, depth=depth),
                      prepare=prepare_conv_1x1_smallk,
                      name=f"tb_cm4_conv2d_1x1_k{depth}_s8 (DSP, 4x2 block, K {depth})")


def kernels() -> list[KernelImpl]:
    # imported here: they import this module's helpers
    from . import cm4_conv_1x1, cm4_cost, cm4_dw_channels
    src = lambda name: (HERE / name,)
    return [
        *[smallk_kernel(d) for d in CONV_SMALLK_DEPTHS],
        *cm4_conv_1x1.kernels(),
        KernelImpl("CONV_2D", "tb_cm4_conv2d_s8", src("cm4_conv_s8.c"), priority=10,
                   accepts=cm4_cost.accepts_conv_faster, prepare=prepare_conv,
                   name="tb_cm4_conv2d_s8 (DSP, 4x2 block)"),
        KernelImpl("DEPTHWISE_CONV_2D", "tb_cm4_conv2d_s8", src("cm4_conv_s8.c"),
                   priority=DW_AS_CONV_PRIORITY, accepts=cm4_cost.accepts_depthwise_as_conv_faster,
                   prepare=prepare_depthwise_as_conv,
                   name="tb_cm4_conv2d_s8 (DSP, 4x2 block; depthwise on one input channel)"),
        cm4_dw_channels.KERNEL_3X3, cm4_dw_channels.KERNEL,  # priorities 21, 20: above the plane kernel
        KernelImpl("DEPTHWISE_CONV_2D", "tb_cm4_depthwise_conv2d_s8", src("cm4_depthwise_s8.c"),
                   priority=10, accepts=cm4_cost.accepts_plane_faster, prepare=prepare_depthwise,
                   name="tb_cm4_depthwise_conv2d_s8 (DSP, planar)"),
        KernelImpl("FULLY_CONNECTED", "tb_cm4_fully_connected_s8", src("cm4_fc_s8.c"),
                   priority=10, accepts=accepts_fc, prepare=prepare_fc,
                   name="tb_cm4_fully_connected_s8 (DSP, 4 outputs)"),
        KernelImpl("ADD", "tb_cm4_add_s8", src("cm4_add_pool_s8.c"), priority=10,
                   accepts=accepts_add, prepare=prepare_add, name="tb_cm4_add_s8 (tables)"),
        KernelImpl("AVERAGE_POOL_2D", "tb_cm4_avg_pool2d_4k1_s8", src("cm4_add_pool_s8.c"),
                   priority=11, accepts=cm4_cost.accepts_avgpool_4k1_faster,
                   prepare=prepare_avgpool, name="tb_cm4_avg_pool2d_4k1_s8 (4k+1 channels)"),
        KernelImpl("AVERAGE_POOL_2D", "tb_cm4_avg_pool2d_s8", src("cm4_add_pool_s8.c"),
                   priority=10, accepts=cm4_cost.accepts_avgpool_faster, prepare=prepare_avgpool,
                   name="tb_cm4_avg_pool2d_s8 (DSP, 16-bit lanes)"),
    ]
