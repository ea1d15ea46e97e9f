"""The plane depthwise kernel (cm4_depthwise_s8.c) on the cases its sweeps,
gather and store loops distinguish, against the reference kernel byte for byte.

On the host (portable fallbacks) with hypothesis: output zero point -128 with
the full int8 range (the store loop without the sign term) and any other;
plane rows that start at odd and even positions and lengths of every residue
mod 4 (the 4-channel gather copies an odd first position alone, then 4 at a
time, then the rest); rows of every length mod 8 (the store's groups of 8 and
4, a pair, a single); odd and even row counts and chunks (the stride-1 sweep
runs two rows at a time, an odd last one alone); every case in place as well
(output == input). Which orientation a stride-1 layer takes so that its rows
fit the fixed plane pitch, or the general path when none does; which small
stride-1 maps put several channels side by side for one sweep. In the
simulator (slow): the same on the Cortex-M4 build (the assembly).
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

from opt_harness import (assert_same, build_library, cm4_kernels, random_conv_layer,  # noqa: E402
                         reference, run_firmware, run_layer)

FUNCTION = "tb_cm4_depthwise_conv2d_s8"
FAST = settings(max_examples=200, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def impl():
    found = cm4_kernels()["DEPTHWISE_CONV_2D"]
    assert found.function == FUNCTION
    return found


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return build_library(tmp_path_factory.mktemp("tbdw"), name="libtbdw.so")


def prepared(layer, impl):
    out = impl.prepare(replace(layer))
    out.kernel = impl.function
    return out


cases = st.fixed_dictionaries({
    "in_h": st.integers(1, 11), "in_w": st.integers(1, 11),
    "in_c": st.sampled_from([1, 3, 4, 8, 12]),
    "stride": st.sampled_from([(1, 1), (2, 2)]), "padding": st.sampled_from(["SAME", "VALID"]),
    "zps": st.sampled_from([(-128, -128), (-128, -128), (5, -128), (-128, 17), (3, -7)]),
    "activation": st.sampled_from(["NONE", "RELU", "RELU6"]),
    "per_channel": st.booleans(), "seed": st.integers(0, 2**32 - 1)})


def make(d):
    d = dict(d)
    rng = np.random.default_rng(d.pop("seed"))
    in_zp, out_zp = d.pop("zps")
    if d["padding"] == "VALID" and (d["in_h"] < 3 or d["in_w"] < 3):
        d["padding"] = "SAME"
    layer = random_conv_layer(rng, depthwise=True, k_h=3, k_w=3, in_zp=in_zp, out_zp=out_zp, **d)
    x = rng.integers(-128, 128, size=d["in_h"] * d["in_w"] * d["in_c"]).astype(np.int8)
    return layer, x


@FAST
@given(d=cases)
def test_plane_kernel_matches_reference(lib, impl, d):
    layer, x = make(d)
    opt = prepared(layer, impl)
    ref = run_layer(lib, reference(layer), [x])
    assert_same(ref, run_layer(lib, opt, [x]), f"{layer.shape} {d}")
    assert_same(ref, run_layer(lib, opt, [x], overlap_delta=0), f"{layer.shape} {d} in place")


def test_sign_term_is_left_out_only_for_zero_point_minus_128_full_range(impl):
    rng = np.random.default_rng(5)
    for out_zp, act, expect in [(-128, "RELU", True), (-128, "NONE", True), (17, "NONE", False),
                                (-128, "RELU6", None)]:
        layer = random_conv_layer(rng, depthwise=True, in_h=5, in_w=5, in_c=4, out_zp=out_zp,
                                  activation=act, out_scale=0.01)
        opt = prepared(layer, impl)
        flags = int(next(c for c in opt.consts if c.role == "rq").values[0])
        full = (layer.params["act_min"], layer.params["act_max"]) == (-128, 127)
        left_out = bool(flags & 8)
        assert left_out == (out_zp == -128 and full and bool(flags & 1))
        if expect is not None:
            assert left_out == expect


@pytest.mark.parametrize("shape", [(3, 70, 1), (70, 3, 1), (66, 66, 1), (5, 63, 2), (62, 9, 4)],
                         ids=lambda s: "x".join(map(str, s)))
def test_stride_1_rows_fit_the_fixed_pitch_or_take_the_general_path(lib, impl, shape):
    """3x3 stride-1 plane rows have a fixed pitch of DW_PITCH values: a layer runs
    in the orientation whose rows fit (preferring rows along the longer side),
    or on the general path when neither does."""
    module = sys.modules[impl.prepare.__module__]
    h, w, c = shape
    rng = np.random.default_rng(h * 100 + w)
    layer = random_conv_layer(rng, depthwise=True, in_h=h, in_w=w, in_c=c, k_h=3, k_w=3,
                              padding="SAME", in_zp=-128, out_zp=-128, activation="RELU")
    p = layer.params
    path = module.dw_path(p)
    if path == module.DW_3X3S1:
        q = module.dw_oriented(p, module.dw_transposed(p, path))
        assert module.dw_s1_fits(q)
        assert q["out_w"] >= q["out_h"] or not module.dw_s1_fits(module.dw_oriented(q, True))
    else:
        assert min(h, w) > module.DW_PITCH - 2
    x = rng.integers(-128, 128, size=h * w * c).astype(np.int8)
    opt = prepared(layer, impl)
    ref = run_layer(lib, reference(layer), [x])
    assert_same(ref, run_layer(lib, opt, [x]), f"{layer.shape}")
    assert_same(ref, run_layer(lib, opt, [x], overlap_delta=0), f"{layer.shape} in place")


@pytest.mark.parametrize("shape,batch", [((6, 6, 128), 8), ((12, 12, 64), 4), ((4, 5, 12), 4),
                                         ((8, 4, 8), 4), ((3, 3, 256), 0), ((24, 24, 32), 0),
                                         ((25, 5, 64), 0), ((2, 13, 8), 0)],
                         ids=lambda s: "x".join(map(str, s)) if isinstance(s, tuple) else str(s))
def test_small_stride_1_maps_sweep_channels_side_by_side(lib, impl, shape, batch):
    """3x3 stride 1 with at most DW_BATCH_STEPS column pairs and an even number of
    output rows (of the oriented problem: 8x4 runs as 4x8): a multiple of 4
    channels dividing in_c side by side in one plane row (VWW's 6x6x128: 8 of
    8 columns; 12x12x64: 4 of 14), one sweep across them; not for odd row
    counts (3x3), wide rows (24x24, KWS's 25x5 transposed to rows of 25, 13
    columns)."""
    module = sys.modules[impl.prepare.__module__]
    h, w, c = shape
    rng = np.random.default_rng(h * 1000 + w * 10 + c)
    layer = random_conv_layer(rng, depthwise=True, in_h=h, in_w=w, in_c=c, k_h=3, k_w=3,
                              padding="SAME", in_zp=-128, out_zp=-128, activation="RELU")
    p = layer.params
    path = module.dw_path(p)
    assert module.dw_s1_batch(module.dw_oriented(p, module.dw_transposed(p, path)), path) == batch
    opt = prepared(layer, impl)
    header = next(k for k in opt.consts if k.role == "rq").values[:4]
    assert (int(header[3]) >> 24) & 0xFF == batch
    x = rng.integers(-128, 128, size=h * w * c).astype(np.int8)
    ref = run_layer(lib, reference(layer), [x])
    assert_same(ref, run_layer(lib, opt, [x]), f"{layer.shape}")
    assert_same(ref, run_layer(lib, opt, [x], overlap_delta=0), f"{layer.shape} in place")


@pytest.mark.slow
def test_plane_kernel_in_the_simulator_matches_reference(tmp_path, impl):
    """The assembly (gather, sweeps, store loops) on row lengths of every residue
    mod 4, odd and even plane row starts, both requantization variants, in place."""
    rng = np.random.default_rng(11)
    cases = []
    shapes = [(25, 5, 64, 1), (6, 6, 16, 1), (7, 9, 8, 1), (5, 10, 4, 2), (9, 7, 12, 2),
              (12, 12, 8, 1), (3, 3, 4, 1), (4, 13, 8, 1), (11, 6, 4, 2), (1, 5, 4, 1),
              (2, 61, 4, 1), (20, 20, 4, 1), (17, 35, 4, 1), (3, 70, 2, 1), (64, 64, 1, 1),
              # channels side by side (dw_s1_batch): 8 of 8 columns, 4 of 14, transposed,
              # an odd row length, VALID (no pad column)
              (6, 6, 128, 1), (12, 12, 16, 1), (8, 4, 8, 1), (4, 5, 12, 1), (8, 8, 16, "VALID")]
    for h, w, c, s in shapes:
        padding = "VALID" if s == "VALID" else "SAME"
        s = 1 if s == "VALID" else s
        for in_zp, out_zp, act in [(-128, -128, "RELU"), (7, -3, "NONE"), (-128, -128, "RELU6")]:
            layer = random_conv_layer(rng, depthwise=True, in_h=h, in_w=w, in_c=c, k_h=3, k_w=3,
                                      stride=(s, s), padding=padding, in_zp=in_zp, out_zp=out_zp,
                                      activation=act)
            x = rng.integers(-128, 128, size=h * w * c).astype(np.int8)
            opt = prepared(layer, impl)
            cases += [(reference(layer), opt, [x], None), (reference(layer), opt, [x], 0)]
    rows = run_firmware(cases, tmp_path)
    for (ref_layer, _, _, delta), (ref, got, _, _) in zip(cases, rows):
        assert_same(ref, got, f"{ref_layer.shape} in place {delta}")


# one channel at a time (groups 1): in_c not a multiple of 4, or 4 planes over the
# scratch budget (VWW's 48x48x8 and 48x48x16); widths of every residue mod 8 after an
# odd first position (SAME stride 1: pad column 1) or an even one (VALID; SAME stride 2
# on an even width: no pad column), both strides
ONE_CHANNEL_SHAPES = [(5, 17, 3, 1, "SAME"), (6, 18, 1, 2, "SAME"), (4, 19, 2, 1, "VALID"),
                      (7, 20, 3, 2, "SAME"), (3, 21, 1, 1, "SAME"), (5, 22, 2, 2, "VALID"),
                      (4, 23, 3, 1, "VALID"), (6, 24, 1, 2, "SAME"), (9, 9, 3, 1, "SAME"),
                      (40, 40, 4, 1, "SAME"), (48, 48, 8, 2, "SAME"),
                      # stride-2 rows over DW_SUMS slots, swept in pieces of 32: a last piece of
                      # 1 slot (257 = 8 * 32 + 1) and of 15 (7 two-slot steps and one single)
                      (3, 513, 1, 2, "SAME"), (4, 541, 2, 2, "SAME")]


def groups_of(opt) -> int:
    header = next(k for k in opt.consts if k.role == "rq").values[:4]
    return (int(header[3]) >> 8) & 0xFF


def test_one_channel_copy_is_taken_where_4_planes_do_not_fit(impl):
    """The 4-channel copy needs 4 planes of scratch: over the budget (VWW's 48x48
    layers: 2 channels at a time, tests/test_cm4_dw_fused.py) or for an odd in_c the
    kernel copies one channel at a time (tb_cm4_dw_gather1_rows)."""
    rng = np.random.default_rng(3)
    for (h, w, c, s), expect in [((48, 48, 8, 1), 2), ((48, 48, 16, 2), 2), ((24, 24, 32, 1), 4),
                                 ((9, 9, 3, 1), 1), ((12, 12, 8, 2), 4)]:
        layer = random_conv_layer(rng, depthwise=True, in_h=h, in_w=w, in_c=c, stride=(s, s),
                                  padding="SAME", in_zp=-128, out_zp=-128, activation="RELU")
        assert groups_of(prepared(layer, impl)) == expect, (h, w, c, s)


@pytest.mark.slow
def test_one_channel_copy_in_the_simulator_matches_reference(tmp_path, impl):
    """The one-channel copy's assembly (8 values per pass, then 4, 2, 1; an odd
    first position alone) on rows of every length mod 8, both strides, in place;
    the stride-2 sweep's two-slot steps with an odd slot count and a single slot."""
    rng = np.random.default_rng(12)
    cases = []
    for h, w, c, s, padding in ONE_CHANNEL_SHAPES:
        layer = random_conv_layer(rng, depthwise=True, in_h=h, in_w=w, in_c=c, k_h=3, k_w=3,
                                  stride=(s, s), padding=padding, in_zp=5, out_zp=-128,
                                  activation="RELU")
        x = rng.integers(-128, 128, size=h * w * c).astype(np.int8)
        opt = prepared(layer, impl)
        assert groups_of(opt) == (1 if c % 2 else 2), (h, w, c, s)   # 2: test_cm4_dw_fused.py
        cases += [(reference(layer), opt, [x], None), (reference(layer), opt, [x], 0)]
    rows = run_firmware(cases, tmp_path)
    for (ref_layer, _, _, delta), (ref, got, _, _) in zip(cases, rows):
        assert_same(ref, got, f"{ref_layer.shape} in place {delta}")
