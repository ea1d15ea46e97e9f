"""Build-time side of tb_cm4_fc_pairs_s8 (cm4_fc_s8.c): FULLY_CONNECTED with
two outputs per weight word. Same layers as tb_cm4_fully_connected_s8
(cm4_prepare.accepts_fc) and the same requantization records; the weights of
each output pair (A, B) interleaved byte by byte, A's bytes offset by 128, so
that one SMLAD on the raw word and one on its SXTB16 ROR #8 make 4 MACs (the
C file's comment has the algebra). See docs/kernels.md.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tinybuild.kernel_cost import estimate, within
from tinybuild.kernel_registry import KernelImpl
from tinybuild.lower import Layer

from .cm4_prepare import _const, accepts_fc, fc_prepared

SOURCE = Path(__file__).parent / "cm4_fc_s8.c"
TAILS = ["", "; the first output alone", "; the last pair alone", "; a zero row completes the last block"]
PRIORITY = 12          # above tb_cm4_fully_connected_s8 (10) where it accepts
CHUNK = 16             # outputs summed before they are requantized (TB_CM4_FCP_CHUNK)

# (this kernel - tb_cm4_fully_connected_s8) instructions and cycles per row of
# inputs, linear in pairs_features: least squares on 282 single layers (K 4..640,
# 2..128 outputs, per-tensor and per-channel, random zero points and
# activations) simulated with both kernels as bench/sweep.py --every-kernel runs
# them; RMS error 35 instructions, 53 cycles. Each group of 4 inputs saves
# 4 cycles per block of 4 outputs; the row pays for X, the requantization
# call per chunk and the TBB into the 8-group loop.
DELTA = ((29.33, 2.02, 115.1, -4.77, -29.85, 46.9, -7.51, 0.01, -103.22, 3.15, -0.77),
         (0.61, 2.04, 179.21, -5.53, -45.17, 93.76, -10.02, -0.01, -179.38, 3.13, 0.08))
MIN_GROUPS = 3         # K <= 8: the blocks kernel (2 groups save too little; measured)
MARGIN = (8, 16)       # taken where estimated at least this many instructions and cycles
                       # per row faster (on the 282 layers: none taken that was slower)


def pair_words(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rows a, b ([pairs][K4] int8) -> [pairs][K4/4 groups][2 words][4 bytes]
    uint8: word 0 of group g pairs inputs (4g, 4g+2), word 1 (4g+1, 4g+3)
    (the expanded input's SXTAB16 / SXTAB16 ROR #8 order); a word's bytes are
    [a_i0 + 128, b_i0, a_i1 + 128, b_i1]."""
    pairs, k4 = a.shape
    ua = (a.astype(np.int16) + 128).astype(np.uint8).reshape(pairs, k4 // 4, 2, 2)  # (p, g, h, s)
    ub = b.view(np.uint8).reshape(pairs, k4 // 4, 2, 2)
    # input 4g + 2h + s: word s, position h
    words = np.empty((pairs, k4 // 4, 2, 2, 2), np.uint8)     # (p, g, s, h, a/b)
    words[..., 0] = ua.transpose(0, 1, 3, 2)
    words[..., 1] = ub.transpose(0, 1, 3, 2)
    return words.reshape(pairs, k4 // 4, 2, 4)


def fc_pairs_layout(w: np.ndarray, outs: int, k: int) -> np.ndarray:
    """[out][in] int8 -> the kernel's stream (int8): with 4n + 1 outputs the
    first alone (K4 plain bytes); then per block of 2 pairs, per group of 4
    inputs, pair 0's 2 words and pair 1's 2 words (4n + 3 outputs: a zero row
    completes the last block); with 4n + 2 outputs the last pair's 2 words
    per group."""
    k4 = (k + 3) // 4 * 4
    single = int(outs % 4 == 1)
    full = np.zeros((outs + (outs % 4 == 3), k4), np.int8)
    full[:outs, :k] = np.asarray(w, np.int8).reshape(outs, k)
    rows = full[single:]
    words = pair_words(rows[0::2], rows[1::2])           # (pairs, groups, 2, 4)
    blocks = len(words) // 2
    stream = words[:2 * blocks].reshape(blocks, 2, k4 // 4, 2, 4).transpose(0, 2, 1, 3, 4)
    parts = [full[:single].view(np.uint8).reshape(-1), stream.reshape(-1),
             words[2 * blocks:].reshape(-1)]
    return np.concatenate(parts).view(np.int8).copy()


def fc_pairs_starts(bias: np.ndarray, outs: int) -> np.ndarray:
    """Each output slot's starting value: a lone first output (4n + 1) its
    bias; a pair (A, B): bias_A + 256 bias_B (mod 2^32), bias_B; padded to 4
    (4n + 3: the zero row's slot is 0)."""
    single = int(outs % 4 == 1)
    b = np.zeros((outs + 3) // 4 * 4, np.int64)
    b[:outs] = np.asarray(bias, np.int64)
    start = b.copy()
    a = np.arange(single, outs, 2)                    # each pair's output A
    start[a] = b[a] + 256 * b[a + 1]
    return (start & 0xFFFFFFFF).astype(np.uint32).view(np.int32).astype(np.int64)


def pairs_features(p: dict) -> list[int]:
    """Per row of inputs: 1, groups of 4 inputs, blocks of 4 outputs, their
    product, outputs, requantization chunks, a last lone pair's and a first
    lone output's groups, a zero row, per-channel and clamped outputs."""
    nq, outs, tail = (p["in_features"] + 3) // 4, p["out_features"], p["out_features"] % 4
    blocks = (outs - (tail == 1) - 2 * (tail == 2) + 3) // 4
    clamped = (p["act_min"], p["act_max"]) != (-128, 127)
    per_channel = float(p["real_multiplier"]) == 0.0
    return [1, nq, blocks, blocks * nq, outs, -(-4 * blocks // CHUNK), (tail == 2) * nq,
            (tail == 1) * nq, int(tail == 3), outs * per_channel, outs * clamped]


@within(accepts_fc)
def accepts(layer: Layer) -> bool:
    """accepts_fc's layers with more than 2 groups of 4 inputs where this
    kernel is estimated faster than tb_cm4_fully_connected_s8 by MARGIN per
    row, in instructions and in cycles."""
    if not accepts_fc(layer) or (layer.params["in_features"] + 3) // 4 < MIN_GROUPS:
        return False
    instructions, cycles = estimate(DELTA, pairs_features(layer.params))
    return instructions < -MARGIN[0] and cycles < -MARGIN[1]


def prepare(layer: Layer) -> Layer:
    p = layer.params
    outs, k = p["out_features"], p["in_features"]
    return fc_prepared(layer, fc_pairs_layout(_const(layer, "filter"), outs, k),
                       fc_pairs_starts(_const(layer, "bias"), outs),
                       "weights of each output pair interleaved byte by byte (the first output "
                       f"+128), blocks of 2 pairs{TAILS[outs % 4]}; ",
                       "2 LDM + 4 SXTB16 + 8 SMLAD per 16 MACs (SMLAD on the raw word: 256 B + A)")


KERNEL = KernelImpl("FULLY_CONNECTED", "tb_cm4_fc_pairs_s8", (SOURCE,), priority=PRIORITY,
                    accepts=accepts, prepare=prepare,
                    name="tb_cm4_fc_pairs_s8 (DSP, 2 outputs per weight word)")


def kernels() -> list[KernelImpl]:
    """tb_cm4_fc_fused_s8 (cm4_fc_fused.py: this kernel's loop with the
    requantization in the block; priority decides, not this order) and this
    kernel."""
    from .cm4_fc_fused import KERNELS as FUSED
    return [*FUSED, KERNEL]
