"""The plane depthwise kernel's pair-unit store (cm4_depthwise_s8.c,
tb_cm4_dw_store_pairs) against the reference kernel, byte for byte.

Which layers the build gives it (cm4_prepare.dw_store_pairs: the fast
full-range form on the 3x3 paths, rows of at most 49 outputs without the sign
term, 25 with it) and, in the simulator (the assembly; slow), every row width
it takes and the first it does not, odd and even (an odd last column goes
down the column after the rows), stride 1, the batched small maps, a
transposed layer and stride 2, both requantization variants, extreme
accumulators (weights +-127 on inputs of one sign), in place.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from opt_harness import assert_same, cm4_kernels, random_conv_layer, reference, run_firmware  # noqa: E402

PAIRS = 32            # cm4_prepare.DW_RQ_PAIRS
NO_SIGN = 8           # cm4_prepare.DW_RQ_NO_SIGN
# (in_zp, out_zp, activation): without the sign term (zero point -128, full range), with it
NO_SIGN_Q = (5, -128, "RELU")
SIGN_Q = (-3, 7, "NONE")


@pytest.fixture(scope="module")
def impl():
    found = cm4_kernels()["DEPTHWISE_CONV_2D"]
    assert found.function == "tb_cm4_depthwise_conv2d_s8"
    return found


def prepared(layer, impl):
    out = impl.prepare(replace(layer))
    out.kernel = impl.function
    return out


def flags_of(opt) -> int:
    return int(next(c for c in opt.consts if c.role == "rq").values[0])


def layer_for(rng, h, w, c, s, q, **kw):
    in_zp, out_zp, act = q
    return random_conv_layer(rng, depthwise=True, in_h=h, in_w=w, in_c=c, k_h=3, k_w=3,
                             stride=(s, s), padding="SAME", in_zp=in_zp, out_zp=out_zp,
                             activation=act, **kw)


@pytest.mark.parametrize("q,limit", [(NO_SIGN_Q, 49), (SIGN_Q, 25)], ids=["no-sign", "sign"])
def test_rows_up_to_the_limit_take_the_pair_units(impl, q, limit):
    rng = np.random.default_rng(1)
    for w, s in [(limit, 1), (limit + 1, 1), (2 * limit, 2), (2 * limit + 2, 2), (6, 1), (1, 1)]:
        out_w = -(-w // s)
        flags = flags_of(prepared(layer_for(rng, 3, w, 4, s, q), impl))
        assert bool(flags & NO_SIGN) == (q is NO_SIGN_Q)
        assert bool(flags & PAIRS) == (out_w <= limit), (w, s, flags)


def test_other_requantizations_and_paths_keep_the_store_loops(impl):
    rng = np.random.default_rng(2)
    clamped = layer_for(rng, 6, 6, 4, 1, (0, -128, "RELU6"))   # 6.0 -> -68: not full range
    general = random_conv_layer(rng, depthwise=True, in_h=6, in_w=6, in_c=4, k_h=2, k_w=2,
                                in_zp=5, out_zp=-128, activation="RELU")
    for layer in (clamped, general):
        assert not flags_of(prepared(layer, impl)) & PAIRS
    # a 25x5 map runs transposed: its rows are 25 wide
    assert flags_of(prepared(layer_for(rng, 25, 5, 4, 1, SIGN_Q), impl)) & PAIRS


def shapes():
    """(h, w, c, stride, quantization): stride-1 widths 1..26 and some up to 50
    (one channel and 4 planes), batched small maps, transposed, stride 2."""
    out = []
    for w in list(range(1, 27)) + [27, 31, 36, 47, 48, 49, 50]:
        out.append((3, w, 4 if w % 2 else 1, 1, NO_SIGN_Q))
    for w in range(1, 28):
        out.append((2, w, 4 if w % 3 else 3, 1, SIGN_Q))
    out += [(6, 6, 16, 1, NO_SIGN_Q), (6, 6, 16, 1, SIGN_Q), (4, 5, 12, 1, NO_SIGN_Q),
            (12, 12, 8, 1, SIGN_Q), (25, 5, 8, 1, NO_SIGN_Q), (25, 5, 4, 1, SIGN_Q)]
    for w in list(range(1, 14)) + [47, 48, 49, 50, 52]:
        out.append((5, w, 4, 2, NO_SIGN_Q))
        out.append((4, w, 3, 2, SIGN_Q))
    return out


@pytest.mark.slow
def test_pair_units_in_the_simulator_match_the_reference(tmp_path, impl):
    rng = np.random.default_rng(14)
    cases, taken = [], 0
    for i, (h, w, c, s, q) in enumerate(shapes()):
        extreme = i % 4 == 0       # weights +-127 on inputs of one sign: the largest sums
        layer = layer_for(rng, h, w, c, s, q, weight_range=127)
        if extreme:
            x = np.full(h * w * c, 127 if i % 8 else -128, np.int8)
        else:
            x = rng.integers(-128, 128, size=h * w * c).astype(np.int8)
        opt = prepared(layer, impl)
        taken += bool(flags_of(opt) & PAIRS)
        cases += [(reference(layer), opt, [x], None), (reference(layer), opt, [x], 0)]
    assert taken >= len(shapes()) - 12, taken     # the few past the limits keep the loops
    rows = run_firmware(cases, tmp_path)
    for (ref_layer, opt, _, delta), (ref, got, _, _) in zip(cases, rows):
        assert_same(ref, got, f"{ref_layer.shape} flags {flags_of(opt)} in place {delta}")
