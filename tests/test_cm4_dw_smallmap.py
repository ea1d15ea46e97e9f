"""The plane depthwise kernel's 3x3 stride-1 sweeps that requantize and store
their outputs themselves (cm4_depthwise_s8.c: tb_cm4_dw3s1_batch_rq on the
batched small maps, tb_cm4_dw3s1_rows_rq one channel per sweep), against the
reference kernel byte for byte.

Taken where the batched sweep runs (3x3 stride 1, an even number of output
rows, at most 6 column pairs: VWW's 6x6x128 and 12x12x64), with the fast
full-range form without the sign term and an even oriented out_w (a sweep past
the row's end would write a byte outside it). Pinned: every column-pair count
1..6 (the body's entry), batches of 4, 8 and 16 channels, several row pairs,
VALID and SAME, a transposed layer, in place; extreme sums (weights +-127 on
inputs 127 or -128, biases near the fast form's limit); and the layers that keep
the sweep-then-store path (odd out_w, the sign term) beside them. One channel
per sweep (cm4_prepare.dw_sweep_stores: even rows and columns, VWW's 48x48x8
and 24x24x32): passes of 7 steps entered at every residue, 1, 2 and 4 channels
copied at once, transposed, VALID; KWS's 25x5 (odd) keeps the old path. In the
simulator (the assembly; the host build runs the portable path). The exact
instruction count of VWW's 6x6x128 shape pins that the fused path runs.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from opt_harness import (assert_same, forced, kernel_named, random_conv_layer,  # noqa: E402
                         reference, simulate_cases)

FUNCTION = "tb_cm4_depthwise_conv2d_s8"
NO_SIGN_Q = (-128, -128, "RELU")   # (in_zp, out_zp, activation): VWW's, no sign term
NO_SIGN_Q2 = (9, -128, "RELU")
SIGN_Q = (-3, 7, "NONE")           # the sign term: the sweep-then-store path
RQ_NO_SIGN, RQ_PAIRS = 8, 32       # cm4_prepare.DW_RQ_NO_SIGN, DW_RQ_PAIRS

# (in_h, in_w, in_c, padding, column pairs of the oriented output)
FUSED = [
    (2, 2, 16, "SAME", 1),      # 16 channels of 4 columns
    (4, 4, 64, "SAME", 2),      # 8 of 6
    (6, 6, 128, "SAME", 3),     # VWW: 8 of 8
    (8, 4, 8, "SAME", 4),       # transposed: rows of 8 outputs
    (10, 10, 12, "SAME", 5),    # 4 of 12, 5 row pairs
    (12, 12, 64, "SAME", 6),    # VWW: 4 of 14, 6 row pairs
    (8, 8, 16, "VALID", 3),     # no pad column
    (2, 12, 8, "SAME", 6),      # one row pair
]
# batched, but odd out_w: the sums are stored, then requantized
UNFUSED = [(4, 5, 12, "SAME"), (6, 3, 8, "SAME")]
# one channel per sweep, the sweep storing (cm4_prepare.dw_sweep_stores): (in_h, in_w, in_c,
# padding, column pairs); passes of 7 steps: n mod 7 = 0, 1, 3, 5; 4 planes, 2 (48x48x8's),
# 1 (odd in_c); transposed; VALID
ROWS = [
    (14, 14, 4, "SAME", 7),     # one whole pass
    (16, 16, 3, "SAME", 8),     # one channel at a time, a pass and a step
    (6, 48, 8, "SAME", 24),     # 4 passes, the first of 3 steps (VWW's rows of 48)
    (20, 14, 8, "SAME", 10),    # transposed: rows of 20
    (24, 24, 32, "SAME", 12),   # VWW
    (12, 22, 6, "VALID", 10),   # two channels at a time, no pad column
]
# one channel per sweep, sums stored: odd rows or columns (KWS's 25x5), the sign term;
# an empty output (VALID on 2 rows: 0 rows, even, but nothing to sweep)
ROWS_UNFUSED = [(25, 5, 8, "SAME"), (13, 14, 4, "SAME"), (15, 15, 4, "SAME"),
                (2, 24, 2, "VALID"), (24, 2, 4, "VALID")]


def layer_for(rng, h, w, c, padding, q, **kw):
    in_zp, out_zp, act = q
    return random_conv_layer(rng, depthwise=True, in_h=h, in_w=w, in_c=c, k_h=3, k_w=3,
                             padding=padding, in_zp=in_zp, out_zp=out_zp, activation=act, **kw)


def with_filter(layer, value: int):
    consts = [replace(k, values=np.full_like(k.values, value)) if k.role == "filter" else k
              for k in layer.consts]
    return replace(layer, consts=consts)


def header(opt) -> np.ndarray:
    return next(k for k in opt.consts if k.role == "rq").values[:4].astype(np.int64)


def fused(opt, module) -> bool:
    """The header's bit the kernel dispatches on: the sweeps store (batched or not)."""
    return bool(header(opt)[3] & module.DW_SWEEP_STORES)


@pytest.mark.parametrize("shape", ROWS, ids=lambda s: "x".join(map(str, s[:3])) + s[3][0])
def test_one_channel_sweeps_store_on_even_rows_and_columns(impl, module, shape):
    h, w, c, padding, pairs = shape
    opt = forced(layer_for(np.random.default_rng(h * 100 + w), h, w, c, padding, NO_SIGN_Q), impl)
    hd = header(opt)
    oriented = module.dw_oriented(opt.params, bool((hd[3] >> 16) & 1))
    assert (oriented["out_w"] + 1) // 2 == pairs
    assert hd[3] & module.DW_SWEEP_STORES and not (hd[3] >> 24) & 0xFF, opt.notes
    for other, q in [(s, NO_SIGN_Q) for s in ROWS_UNFUSED + UNFUSED] + [(shape[:4], SIGN_Q)]:
        opt = forced(layer_for(np.random.default_rng(1), *other[:4], q), impl)
        assert not header(opt)[3] & module.DW_SWEEP_STORES, (other, q)


@pytest.fixture(scope="module")
def impl():
    return kernel_named(FUNCTION)


@pytest.fixture(scope="module")
def module(impl):
    return sys.modules[impl.prepare.__module__]


@pytest.mark.parametrize("shape", FUSED, ids=lambda s: "x".join(map(str, s[:3])) + s[3][0])
def test_fused_shapes_take_the_batched_sweep_with_pair_units_without_sign(impl, module, shape):
    h, w, c, padding, pairs = shape
    opt = forced(layer_for(np.random.default_rng(h * 100 + w), h, w, c, padding, NO_SIGN_Q), impl)
    oriented = module.dw_oriented(opt.params, bool((header(opt)[3] >> 16) & 1))
    assert (oriented["out_w"] + 1) // 2 == pairs
    assert fused(opt, module) and (header(opt)[3] >> 24) & 0xFF, opt.notes
    signed = forced(layer_for(np.random.default_rng(1), h, w, c, padding, SIGN_Q), impl)
    assert not fused(signed, module)


def cases_for(rng, impl):
    cases = []
    shapes = [s[:4] for s in FUSED] + UNFUSED + [s[:4] for s in ROWS] + ROWS_UNFUSED
    for i, (h, w, c, padding) in enumerate(shapes):
        n = h * w * c
        for q in (NO_SIGN_Q, NO_SIGN_Q2, SIGN_Q):
            layer = layer_for(rng, h, w, c, padding, q, bias_range=2**20)
            x = rng.integers(-128, 128, size=n).astype(np.int8)
            cases.append((layer, x, None if i % 2 else 0))
        layer = layer_for(rng, h, w, c, padding, NO_SIGN_Q, bias_range=2**24)
        for weight, value in ((127, 127), (-127, -128), (127, -128), (-127, 127)):
            cases.append((with_filter(layer, weight), np.full(n, value, np.int8), 0))
    return [(reference(layer), forced(layer, impl), [x], delta) for layer, x, delta in cases]


@pytest.mark.slow
def test_fused_sweep_in_the_simulator_matches_reference(tmp_path, impl, module):
    cases = cases_for(np.random.default_rng(23), impl)
    assert sum(fused(opt, module) for _, opt, _, _ in cases) >= 80
    rows = simulate_cases(cases, tmp_path)
    for (ref_layer, opt, x, delta), row in zip(cases, rows):
        assert row["opt_instr"] > 0, f"{ref_layer.shape}: the plane kernel did not run"
        assert_same(row["ref"], row["opt"], f"{ref_layer.shape} fused {fused(opt, module)} "
                                            f"input {int(x[0][0])} in place {delta}")


@pytest.mark.slow
def test_vww_6x6x128_runs_the_fused_sweep(tmp_path, impl, module):
    """Instructions are exact and do not depend on the data: about 95,100 with
    the sums stored and requantized after the sweep, 86,807 with the fused
    sweep."""
    layer = layer_for(np.random.default_rng(1), 6, 6, 128, "SAME", NO_SIGN_Q, bias_range=2**12)
    opt = forced(layer, impl)
    assert fused(opt, module)
    x = np.random.default_rng(2).integers(-128, 128, size=6 * 6 * 128).astype(np.int8)
    row = simulate_cases([(reference(layer), opt, [x], None)], tmp_path)[0]
    assert_same(row["ref"], row["opt"], "6x6x128")
    assert row["opt_instr"] <= 88_000
