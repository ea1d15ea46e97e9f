"""The plane depthwise kernel (cm4_depthwise_s8.c) where its sweeps start the
sums at the bias and where it copies two channels at a time, against the
reference kernel byte for byte.

Sums from the bias (cm4_prepare.dw_3x3_records): each 3x3-path channel's filter
record ends with its folded bias, weights and bias doubled for the fast
full-range form, so the stores take the sums as they are. Pinned: the record
layout and when it is doubled; extreme accumulators (weights +-127 on inputs of
one sign, biases near the fast form's limit and past it, where the reference
arithmetic runs on undoubled sums); all-zero channels whose huge bias wraps
when doubled (their multiplier is 0: the output is a constant); both
requantization variants; the two-row and one-row stride-1 bodies, the batched
small maps, a transposed layer and stride 2 with odd slot counts.

Two channels at a time (cm4_prepare.dw_groups, tb_cm4_dw_gather2_rows): where
4 planes do not fit DW_GROUP_BUDGET but 2 do (VWW's 48x48 maps), or in_c is
even but not a multiple of 4: rows of every length mod 8 after an odd first
position (SAME, stride 1) or an even one (VALID; SAME stride 2 on an even
width), both strides, in place.

On the host (portable fallbacks) with hypothesis, and in the simulator (the
assembly; slow).
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from opt_harness import (assert_same, forced, kernel_fixtures, random_conv_layer,  # noqa: E402
                         reference, run_firmware, run_layer)

FAST = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
RQ_FAST, RQ_FULLRANGE = 1, 2       # cm4_prepare.RQ_FAST, RQ_FULLRANGE
RECORD = 14                        # cm4_prepare.DW_3X3_RECORD
NO_SIGN_Q = (5, -128, "RELU")      # (in_zp, out_zp, activation): no sign term
SIGN_Q = (-3, 7, "NONE")           # the sign term
CLAMPED_Q = (0, -128, "RELU6")     # fast form, not the full range: the C store loop


impl, module, lib = kernel_fixtures("tb_cm4_depthwise_conv2d_s8", "tbdwf")
def const(layer, role) -> np.ndarray:
    return next(c for c in layer.consts if c.role == role).values


def groups_of(opt) -> int:
    return (int(const(opt, "rq")[3]) >> 8) & 0xFF


def layer_for(rng, h, w, c, s, q, padding="SAME", **kw):
    in_zp, out_zp, act = q
    return random_conv_layer(rng, depthwise=True, in_h=h, in_w=w, in_c=c, k_h=3, k_w=3,
                             stride=(s, s), padding=padding, in_zp=in_zp, out_zp=out_zp,
                             activation=act, **kw)


def with_bias(layer, channel: int, bias: int, dead: bool = False):
    """Channel `channel`'s bias `bias`; `dead`: its weights all 0 (VWW has such channels)."""
    w = const(layer, "filter").reshape(-1, layer.params["out_c"]).copy()
    if dead:
        w[:, channel] = 0
    b = const(layer, "bias").copy()
    b[channel] = bias
    consts = [replace(c, values=w.reshape(-1)) if c.role == "filter" else
              replace(c, values=b) if c.role == "bias" else c for c in layer.consts]
    return replace(layer, consts=consts)


def sums_start(opt) -> np.ndarray:
    """The bias words of the 3x3 records, as int32."""
    rec = const(opt, "filter").astype(np.int64).reshape(-1, RECORD)
    return ((rec[:, 13] & 0xFFFF) << 16 | (rec[:, 12] & 0xFFFF)).astype(np.uint32).view(np.int32)


@pytest.mark.parametrize("s", [1, 2])
@pytest.mark.parametrize("q,doubled", [(NO_SIGN_Q, True), (SIGN_Q, True), (CLAMPED_Q, False)])
def test_3x3_records_end_with_the_bias_doubled_for_the_fast_full_range_form(impl, s, q, doubled):
    rng = np.random.default_rng(4)
    layer = layer_for(rng, 6, 7, 8, s, q)        # wider than tall: not transposed
    opt = forced(layer, impl)
    flags = int(const(opt, "rq")[0])
    assert (flags & (RQ_FAST | RQ_FULLRANGE) == RQ_FAST | RQ_FULLRANGE) == doubled
    scale = 2 if doubled else 1
    rec = const(opt, "filter").astype(np.int64).reshape(8, RECORD)
    w = const(layer, "filter").astype(np.int64).reshape(3, 3, 8)
    assert (rec[:, 0] == scale * w[0, 0]).all() and (rec[:, 1] == scale * w[0, 1]).all()
    assert (rec[:, 11 if s == 1 else 10] == scale * w[2, 2]).all()
    folded = const(layer, "bias").astype(np.int64) - q[0] * w.sum(axis=(0, 1))
    assert (sums_start(opt) == scale * folded).all()
    assert (const(opt, "rq")[4::4][:8] == folded).all()       # the rq records keep it undoubled


def test_a_dead_channel_whose_doubled_bias_wraps_is_a_constant(lib, impl):
    rng = np.random.default_rng(5)
    layer = with_bias(layer_for(rng, 6, 6, 4, 1, NO_SIGN_Q), 2, (1 << 30) + 12345, dead=True)
    opt = forced(layer, impl)
    assert int(const(opt, "rq")[0]) & RQ_FAST
    assert sums_start(opt)[2] == 2 * ((1 << 30) + 12345) - (1 << 32)     # wrapped
    x = rng.integers(-128, 128, size=6 * 6 * 4).astype(np.int8)
    assert_same(run_layer(lib, reference(layer), [x]), run_layer(lib, opt, [x]))


def test_biases_past_the_fast_form_keep_undoubled_sums(lib, impl):
    """A bias near 2^30 fails the fast form's |2 acc| < 2^31: the reference
    arithmetic runs on the sums as they are (bias included, not doubled)."""
    rng = np.random.default_rng(6)
    layer = with_bias(layer_for(rng, 5, 7, 4, 1, NO_SIGN_Q), 3, (1 << 30) - 100)
    opt = forced(layer, impl)
    assert not int(const(opt, "rq")[0]) & RQ_FAST
    assert (const(opt, "filter").reshape(-1, RECORD)[:, :12] ==
            np.stack([const(layer, "filter").reshape(3, 3, 4)[r, c] for r in range(3)
                      for c in (0, 1, 1, 2)], axis=1)).all()
    x = rng.integers(-128, 128, size=5 * 7 * 4).astype(np.int8)
    assert_same(run_layer(lib, reference(layer), [x]), run_layer(lib, opt, [x]))


def test_two_channels_at_a_time_where_4_planes_do_not_fit_but_2_do(impl):
    rng = np.random.default_rng(7)
    for (h, w, c, s), expect in [((48, 48, 8, 1), 2), ((48, 48, 16, 2), 2), ((24, 24, 32, 1), 4),
                                 ((9, 9, 6, 1), 2), ((5, 5, 2, 2), 2), ((9, 9, 3, 1), 1),
                                 ((90, 60, 8, 1), 1)]:
        opt = forced(layer_for(rng, h, w, c, s, NO_SIGN_Q), impl)
        assert groups_of(opt) == expect, (h, w, c, s)


cases = st.fixed_dictionaries({
    "in_h": st.integers(1, 12), "in_w": st.integers(1, 21),
    "in_c": st.sampled_from([2, 6, 10]),
    "stride": st.sampled_from([1, 2]), "padding": st.sampled_from(["SAME", "VALID"]),
    "q": st.sampled_from([NO_SIGN_Q, SIGN_Q, CLAMPED_Q, (-128, -128, "RELU")]),
    "seed": st.integers(0, 2**32 - 1)})


@FAST
@given(d=cases)
def test_two_channel_copy_and_sums_from_the_bias_match_reference(lib, impl, d):
    rng = np.random.default_rng(d["seed"])
    padding = d["padding"] if min(d["in_h"], d["in_w"]) >= 3 else "SAME"
    layer = layer_for(rng, d["in_h"], d["in_w"], d["in_c"], d["stride"], d["q"], padding=padding)
    x = rng.integers(-128, 128, size=d["in_h"] * d["in_w"] * d["in_c"]).astype(np.int8)
    opt = forced(layer, impl)
    assert groups_of(opt) == 2
    ref = run_layer(lib, reference(layer), [x])
    assert_same(ref, run_layer(lib, opt, [x]), layer.shape)
    assert_same(ref, run_layer(lib, opt, [x], overlap_delta=0), f"{layer.shape} in place")


# (h, w, c, stride, padding): two channels at a time, widths of every residue mod 8
# after an odd first position (SAME stride 1) or an even one (VALID; SAME stride 2
# on even widths), VWW's 48x48 maps (4 planes over the budget)
TWO_CHANNEL_SHAPES = [(5, 17, 2, 1, "SAME"), (4, 18, 6, 1, "SAME"), (3, 19, 2, 1, "SAME"),
                      (4, 20, 6, 1, "SAME"), (3, 21, 2, 1, "SAME"), (5, 22, 6, 1, "SAME"),
                      (3, 23, 2, 1, "SAME"), (4, 24, 2, 1, "SAME"), (4, 17, 6, 1, "VALID"),
                      (3, 20, 2, 1, "VALID"), (3, 23, 2, 1, "VALID"), (6, 18, 2, 2, "SAME"),
                      (7, 20, 6, 2, "SAME"), (5, 21, 2, 2, "SAME"), (6, 23, 2, 2, "VALID"),
                      (3, 1, 2, 1, "SAME"), (3, 2, 2, 2, "SAME"),
                      (48, 48, 8, 1, "SAME"), (48, 48, 16, 2, "SAME")]


@pytest.mark.slow
def test_two_channel_copy_in_the_simulator_matches_reference(tmp_path, impl):
    rng = np.random.default_rng(8)
    cases = []
    for h, w, c, s, padding in TWO_CHANNEL_SHAPES:
        q = (NO_SIGN_Q, SIGN_Q)[len(cases) // 2 % 2]
        layer = layer_for(rng, h, w, c, s, q, padding=padding)
        x = rng.integers(-128, 128, size=h * w * c).astype(np.int8)
        opt = forced(layer, impl)
        assert groups_of(opt) == 2, (h, w, c, s)
        cases += [(reference(layer), opt, [x], None), (reference(layer), opt, [x], 0)]
    rows = run_firmware(cases, tmp_path)
    for (ref_layer, _, _, delta), (ref, got, _, _) in zip(cases, rows):
        assert_same(ref, got, f"{ref_layer.shape} in place {delta}")


# (h, w, c, stride): two-row and odd one-row stride-1 bodies (rows of 1-14 column
# pairs: every entry of the 7-step body), batched small maps, transposed, stride 2
# with odd and even slot counts and a single slot
EXTREME_SHAPES = [(4, 13, 4, 1), (5, 14, 4, 1), (3, 3, 4, 1), (7, 27, 4, 1), (6, 6, 16, 1),
                  (12, 12, 8, 1), (25, 5, 8, 1), (9, 9, 4, 2), (8, 10, 4, 2), (2, 2, 4, 2),
                  (5, 33, 4, 2)]


@pytest.mark.slow
def test_extreme_sums_from_the_bias_in_the_simulator_match_reference(tmp_path, impl):
    """Weights +-127 on inputs all 127 or all -128 (the largest sums), biases up
    to 2^29 (the fast form still exact) and near 2^30 (the reference arithmetic),
    a dead channel whose doubled bias wraps; both requantization variants and
    the clamped C loop; in place."""
    rng = np.random.default_rng(9)
    cases = []
    for i, (h, w, c, s) in enumerate(EXTREME_SHAPES):
        for j, q in enumerate((NO_SIGN_Q, SIGN_Q, CLAMPED_Q)):
            layer = layer_for(rng, h, w, c, s, q, bias_range=(1 << 29, 3000)[(i + j) % 2])
            if (i + j) % 3 == 1:
                layer = with_bias(layer, 1, -(1 << 30) - 7, dead=True)
            elif (i + j) % 3 == 2:
                layer = with_bias(layer, 2, (1 << 30) - 100)
            value = (127, -128, None)[(i + 2 * j) % 3]
            x = (np.full(h * w * c, value, np.int8) if value is not None else
                 rng.integers(-128, 128, size=h * w * c).astype(np.int8))
            opt = forced(layer, impl)
            cases += [(reference(layer), opt, [x], None), (reference(layer), opt, [x], 0)]
    rows = run_firmware(cases, tmp_path)
    for (ref_layer, opt, _, delta), (ref, got, _, _) in zip(cases, rows):
        assert_same(ref, got, f"{ref_layer.shape} flags {int(const(opt, 'rq')[0])} in place {delta}")
