"""Build-time side of tb_cm4_fc_fused_s8 (cm4_fc_s8.c): tb_cm4_fc_pairs_s8's
inner loop with each block of 4 outputs requantized and stored inside the
block's assembly (SMMLAR with the zero point folded, one TST for the tie
test). Out features a multiple of 4; each block's starting values lead its
weights in the stream. Four entry points, one per specialization (per-tensor
or per-channel weights, full or clamped output range: tb_cm4_fc_fused_s8,
_clamp_s8, _pc_s8, _pc_clamp_s8), and tb_cm4_fc_fused6_s8 for per-tensor
full-range layers of 12 outputs or more: blocks of 6 (3 pairs), then of 4.
A model links only the ones it calls. See docs/kernels.md.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from tinybuild import quant
from tinybuild.kernel_cost import within
from tinybuild.kernel_registry import KernelImpl
from tinybuild.lower import Const, Layer

from .cm4_fc_pairs import fc_pairs_starts, pair_words
from .cm4_prepare import _const, accepts_fc, fc_prepared, fc_real_multipliers

SOURCE = Path(__file__).parent / "cm4_fc_s8.c"
PRIORITY = 14          # above tb_cm4_fc_pairs_s8 (12) and tb_cm4_fully_connected_s8 (10)
SMALL_K = 8            # one block (4 outputs) over this many inputs or fewer: not taken
SIX_MIN_GAIN = 16      # cycles per row blocks of 6 must save (six_gain) to be used


def fused_record(m: float, zp: int) -> list[int] | None:
    """{R, H, 2^t - 1, t} for multiplier m and output zero point zp:
    quant.fc_double_fast's R < 2^31 (SMMLAR takes it signed) with t >= 1
    (m < 0.25: SMMLAR's 2^31 is then an offset beside the rounding term
    2^(31+t), which the kernel's tie test relies on), H = 2^(t-1) + zp 2^t.
    2^-t of the outputs take the kernel's slower test. None: no such form."""
    fast = quant.fc_double_fast(m)
    if fast is None or fast[1] < 1:
        return None
    r, t = fast
    return [r, (1 << (t - 1)) + zp * (1 << t), (1 << t) - 1, t]


def largest_sums(layer: Layer) -> np.ndarray:
    """Per output the largest |sum| any int8 input gives: |bias| + the
    largest |x + input_offset| times the row's sum of |weights|."""
    p = layer.params
    outs, k = p["out_features"], p["in_features"]
    off = int(p["input_offset"])
    x_max = max(abs(-128 + off), abs(127 + off))
    w = np.abs(_const(layer, "filter").astype(np.int64).reshape(outs, k)).sum(axis=1)
    bias = _const(layer, "bias")
    b = np.zeros(outs, np.int64) if bias is None else np.abs(np.asarray(bias, np.int64))
    return b + x_max * w


def records(layer: Layer) -> list[list[int]] | None:
    """The layer's records (one, or one per output), or None where a
    multiplier has no form or a sum's top word plus H could overflow."""
    p = layer.params
    zp = int(p["output_offset"])
    multipliers = fc_real_multipliers(layer)
    recs = [fused_record(m, zp) for m in multipliers]
    if any(r is None for r in recs):
        return None
    for bound, (r, h, _, t) in zip(largest_sums(layer), recs):
        if int(bound) * r // (1 << 32) + abs(h) + 2 >= 1 << 31:
            return None
    return recs if float(p["real_multiplier"]) == 0.0 else recs[:1]


def computes(layer: Layer) -> bool:
    """accepts_fc's layers with out features a multiple of 4 whose
    multipliers have a form (fused_record) with the zero point folded safely."""
    if not accepts_fc(layer) or layer.params["out_features"] % 4:
        return False
    return records(layer) is not None


@within(computes)
def accepts(layer: Layer) -> bool:
    """computes' layers, but a single block over at most 8 inputs (the row's
    set-up is then most of the work) stays with tb_cm4_fully_connected_s8:
    measured in the simulator, 1 -> 4 per-channel took 519 cycles against
    508 (4, 5, 8 -> 4 were faster, by 11 to 35 cycles)."""
    p = layer.params
    if p["out_features"] == 4 and p["in_features"] <= SMALL_K:
        return False
    return computes(layer)


def six_outputs(layer: Layer) -> int:
    """How many of a row's outputs go in blocks of 6 (the rest in blocks of 4):
    per-tensor full-range layers only (the 6-block loop keeps the row's
    constants on the stack; only that specialization has it), as many as leave
    a multiple of 4, where six_gain says they pay."""
    per_channel, full = specialization(layer)
    outs, nq = layer.params["out_features"], (layer.params["in_features"] + 3) // 4
    if per_channel or not full or outs % 4:
        return 0
    six = outs - {0: 0, 2: 8, 4: 4}[outs % 6]
    if six_gain(six, nq, outs > six) < SIX_MIN_GAIN:
        return 0
    return six


def six_gain(six: int, nq: int, tail: bool) -> float:
    """Estimated cycles a row saves with ``six`` outputs in blocks of 6: per
    12 outputs 2 cycles per group of 4 inputs (58 for 2 blocks of 6, 60 for 3
    of 4) and 21 of block set-up and stores; less the 6-block call (13), or
    with blocks of 4 after them 155 (both loops' code: the flash cache holds
    one). Fitted on tests/test_fc_fused.py's simulated shapes against the
    4-block kernel alone (64 -> 32: -46 measured, -48 estimated; 8 -> 128:
    +101, +95; 64 -> 12: +40, +40)."""
    return six / 12 * (2 * nq + 21) - (155 if tail else 13)


def fused_stream(w: np.ndarray, bias: np.ndarray, outs: int, k: int, six: int = 0) -> np.ndarray:
    """The first ``six`` outputs in blocks of 6, the rest in blocks of 4; per
    block its starting values (int32, little-endian; fc_pairs_starts), then
    per group of 4 inputs each pair's 2 words (pair_words; a block of 4 is
    fc_pairs_layout's block)."""
    k4 = (k + 3) // 4 * 4
    rows = np.zeros((outs, k4), np.int8)
    rows[:, :k] = np.asarray(w, np.int8).reshape(outs, k)
    sizes = [6] * (six // 6) + [4] * ((outs - six) // 4)
    parts, o = [np.zeros(0, np.uint8)], 0
    for size in sizes:
        block = rows[o:o + size]
        starts = fc_pairs_starts(bias[o:o + size], size)[:size].astype("<i4").view(np.uint8)
        words = pair_words(block[0::2], block[1::2]).transpose(1, 0, 2, 3)   # (groups, pairs, 2, 4)
        parts += [starts, words.reshape(-1)]
        o += size
    return np.concatenate(parts).view(np.int8)


def prepare(layer: Layer) -> Layer:
    p = layer.params
    outs, k = p["out_features"], p["in_features"]
    bias = _const(layer, "bias")
    bias = np.zeros(outs, np.int64) if bias is None else np.asarray(bias, np.int64)
    six = six_outputs(layer)
    out = fc_prepared(layer, fused_stream(_const(layer, "filter"), bias, outs, k, six), np.zeros(0),
                      f"{six} outputs in blocks of 6, the rest in blocks of 4; per block its "
                      "starting values, then the weights of each "
                      "output pair interleaved byte by byte (the first output +128); ",
                      "2 LDM + 4 SXTB16 + 8 SMLAD per 16 MACs (blocks of 6: 3 LDM + 6 SXTB16 + "
                      "12 SMLAD per 24); per output SMMLAR, TST, ASR, SSAT, STRB in the block's "
                      "assembly")
    rq = {c.role: c for c in out.consts}["rq"].values[:4].copy()
    rq[1] = six                  # outputs in blocks of 6
    recs = np.asarray(records(layer), np.int64).reshape(-1)
    consts = [Const("rq", "int32_t", np.concatenate([rq, recs]).astype(np.int32))
              if c.role == "rq" else c for c in out.consts]
    return replace(out, consts=consts)


def specialization(layer: Layer) -> tuple[bool, bool]:
    """(per-channel weights, full int8 output range): which entry point runs it."""
    p = layer.params
    return float(p["real_multiplier"]) == 0.0, (p["act_min"], p["act_max"]) == (-128, 127)


def entry(per_channel: bool, full: bool, six: bool = False) -> KernelImpl:
    """The KernelImpl of one specialization: the same accepts and prepare,
    restricted to its layers, so a model links only the code it runs. ``six``:
    the per-tensor full-range layers with blocks of 6 (tb_cm4_fc_fused6_s8;
    tb_cm4_fc_fused_s8 keeps the others, with no test for them)."""
    function = (f"tb_cm4_fc_fused{'6' if six else ''}{'_pc' if per_channel else ''}"
                f"{'' if full else '_clamp'}_s8")

    def mine(layer: Layer) -> bool:
        return (specialization(layer) == (per_channel, full)
                and (six_outputs(layer) > 0) == six)

    def computes_this(layer: Layer) -> bool:
        return mine(layer) and computes(layer)

    @within(computes_this)
    def accepts_this(layer: Layer) -> bool:
        return mine(layer) and accepts(layer)

    label = "3 pairs per block" if six else "2 outputs per weight word"
    return KernelImpl("FULLY_CONNECTED", function, (SOURCE,), priority=PRIORITY,
                      accepts=accepts_this, prepare=prepare,
                      name=f"{function} (DSP, {label}, requantized in the block)")


KERNELS = [*(entry(pc, full) for pc in (False, True) for full in (True, False)),
           entry(False, True, six=True)]
FUNCTIONS = frozenset(k.function for k in KERNELS)


def kernel_for(layer: Layer) -> KernelImpl:
    """The specialization's KernelImpl for ``layer`` (whether or not it accepts it)."""
    if six_outputs(layer) > 0:
        return KERNELS[4]
    return KERNELS[2 * specialization(layer)[0] + (not specialization(layer)[1])]


def kernels() -> list[KernelImpl]:
    return list(KERNELS)
