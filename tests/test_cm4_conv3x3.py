"""tb_cm4_conv2d_s8's channel quads (cm4_prepare.conv_quads): 2 pixels x 4
channels per register block, the filter stored as quads (each quad's two
channel pairs interleaved k-pair by k-pair), copied into the scratch once per
inference when it lies in flash.

On the host (the portable C path reads the quads too): hypothesis over the
shapes that take them, in place at every declared overlap; the layout and the
build-time choice. In the simulator (slow): the assembly loop on the real
instructions, from the flash copy and read in place, with last blocks of 1, 2
and 3 pixels, several unrolled sweeps, both requantization forms and the
largest sums the raw-B form allows; and never slower than the 4 x 2 block on
ResNet-8's 3x3 layers.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from opt_harness import (FAST, assert_same, build_library, compare, in_place_deltas,  # noqa: E402
                         optimized, random_conv_layer, reference, simulate_cases, target_kernels)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return build_library(tmp_path_factory.mktemp("tbconv3x3"), name="libtbconv3x3.so")


@pytest.fixture(scope="module")
def conv():
    """{op: tb_cm4_conv2d_s8's KernelImpl} (other CONV_2D kernels share the op)."""
    found = [k for k in target_kernels("cortex-m4") if k.op == "CONV_2D" and
             k.function == "tb_cm4_conv2d_s8"]
    assert found, "the cortex-m4 plugin offers no tb_cm4_conv2d_s8"
    return {"CONV_2D": found[0]}


@pytest.fixture(scope="module")
def prep(conv):
    return sys.modules[conv["CONV_2D"].prepare.__module__]


def has_quads(opt) -> bool:
    return any("channel quads" in n for n in opt.notes)


def quad_layer(rng, shape, out_zp=-128, weight_range=20, activation="RELU", in_zp=None):
    layer = random_conv_layer(rng, in_zp=int(rng.integers(-128, 128)) if in_zp is None else in_zp,
                              out_zp=out_zp, activation=activation, weight_range=weight_range,
                              **shape)
    x = rng.integers(-128, 128, size=shape["in_h"] * shape["in_w"] * shape["in_c"]).astype(np.int8)
    return layer, x


# -- the build-time side ----------------------------------------------------------------------

def test_quad_layout_interleaves_the_two_pairs_of_each_quad(prep):
    """Quad q holds [A_k, B_k] for every k-pair (A = pair 2q, B = pair 2q+1),
    then A's and B's 8 requantization words: a permutation of the pair records."""
    out_c, k4 = 8, 12
    npairs, rec = k4 // 2, k4 // 2 + prep.CONV_PAIR_RQ
    words = np.arange(out_c // 2 * rec, dtype="<u4")
    quads = prep.conv_quad_layout(words.view(np.int8), out_c, k4).view("<u4").reshape(out_c // 4, -1)
    pairs = words.reshape(out_c // 2, rec)
    for q in range(out_c // 4):
        a, b = pairs[2 * q], pairs[2 * q + 1]
        assert (quads[q, 0:2 * npairs:2] == a[:npairs]).all()
        assert (quads[q, 1:2 * npairs:2] == b[:npairs]).all()
        assert (quads[q, 2 * npairs:] == np.concatenate([a[npairs:], b[npairs:]])).all()
    assert prep.conv_quad_bytes(out_c, k4) == words.nbytes


BASE = dict(in_h=6, in_w=6, in_c=16, out_c=8, k_h=3, k_w=3, padding="SAME")


@pytest.mark.parametrize("change, quads", [
    ({}, True),
    (dict(out_c=6), False),                      # not whole quads of channels
    (dict(k_h=1, k_w=1), False),                 # 1x1 layers keep their loops
    (dict(in_c=3, k_w=5), True),                 # taps padded to 4 channels: K 45 -> 60
    (dict(in_c=3), False),                       # 3x3 on 3 channels: rows of 9 bytes, K 28
    (dict(in_c=4, k_h=2, k_w=3), False),         # K 24: 12 k-pairs
    (dict(in_h=3, in_w=5), False),               # 15 output pixels
    (dict(in_c=256, out_c=64), False),           # the copy would take 148 KB of scratch
], ids=lambda v: str(v) if isinstance(v, dict) else str(v))
def test_quads_only_where_they_pay(conv, change, quads):
    layer, _ = quad_layer(np.random.default_rng(1), dict(BASE, **change), weight_range=1)
    assert has_quads(optimized(layer, conv)) == quads


def test_quads_need_the_raw_b_form(conv):
    """Weights of +-127 on 3x3x64 (sums up to 2^23) refuse the raw-B form, and
    with it the quads; a requantization that is not the fast full-range form too."""
    big, _ = quad_layer(np.random.default_rng(2), dict(BASE, in_c=64), weight_range=127)
    w = big.consts[0].values.copy()
    w[:] = np.where(np.arange(w.size) % 2, 127, -127)
    big.consts[0].values = w
    assert not has_quads(optimized(big, conv))
    relu6, _ = quad_layer(np.random.default_rng(2), BASE, out_zp=0, activation="RELU6")
    assert not has_quads(optimized(relu6, conv))


def test_quads_scratch_and_header(conv, prep):
    """rq[0] has the quads flag, rq[4] the offset of the copy (after the column,
    the tail and the padded plane), and the scratch holds all of it."""
    layer, _ = quad_layer(np.random.default_rng(3), dict(BASE, in_h=7, in_w=5))   # 35 pixels
    opt = optimized(layer, conv)
    rq = next(c.values for c in opt.consts if c.role == "rq")
    k4 = 3 * 3 * 16
    assert rq[0] & prep.CONV_QUADS and rq[4] % 4 == 0
    assert rq[4] >= 4 * k4 * 2 + 4 * 8          # the column, the tail (35 % 4 == 3)
    assert opt.scratch_bytes == rq[4] + prep.conv_quad_bytes(8, k4)


# -- the host: the portable C path on the quad layout ---------------------------------------

quad_cases = st.fixed_dictionaries({
    "in_h": st.integers(4, 9), "in_w": st.integers(4, 9), "in_c": st.sampled_from([1, 2, 3, 4, 8, 12, 16, 32]),
    "out_c": st.sampled_from([4, 8, 12, 16]), "k_h": st.integers(1, 3), "k_w": st.integers(2, 3),
    "stride": st.sampled_from([(1, 1), (2, 2), (1, 2)]),
    "dilation": st.sampled_from([(1, 1), (1, 1), (2, 1)]),
    "padding": st.sampled_from(["SAME", "VALID"]), "per_channel": st.booleans(),
    "use_bias": st.booleans(), "weight_range": st.sampled_from([1, 5, 20]),
    "out_zp": st.sampled_from([-128, -128, 0, 37]), "in_zp": st.integers(-128, 127),
    "seed": st.integers(0, 2**32 - 1)})


@FAST
@given(d=quad_cases)
def test_quad_layers_match_reference_on_the_host(lib, conv, d):
    d = dict(d)
    rng = np.random.default_rng(d.pop("seed"))
    out_zp, in_zp = d.pop("out_zp"), d.pop("in_zp")
    eff_h, eff_w = (d["k_h"] - 1) * d["dilation"][0] + 1, (d["k_w"] - 1) * d["dilation"][1] + 1
    if d["padding"] == "VALID" and (eff_h > d["in_h"] or eff_w > d["in_w"]):
        d["padding"] = "SAME"
    layer, x = quad_layer(rng, d, out_zp=out_zp, in_zp=in_zp, weight_range=d.pop("weight_range"),
                          activation="RELU" if out_zp == -128 else "NONE")
    compare(lib, conv, layer, [x])


def test_resnet8_shapes_take_quads_and_match_on_the_host(lib, conv):
    rng = np.random.default_rng(4)
    for shape in RESNET8_3X3:
        layer, x = quad_layer(rng, shape)
        opt = compare(lib, conv, layer, [x])
        assert has_quads(opt), shape


# -- the simulator: the assembly loop --------------------------------------------------------

RESNET8_3X3 = [
    dict(in_h=32, in_w=32, in_c=16, out_c=16, k_h=3, k_w=3, padding="SAME"),
    dict(in_h=32, in_w=32, in_c=16, out_c=32, k_h=3, k_w=3, stride=(2, 2), padding="SAME"),
    dict(in_h=16, in_w=16, in_c=32, out_c=32, k_h=3, k_w=3, padding="SAME"),
    dict(in_h=16, in_w=16, in_c=32, out_c=64, k_h=3, k_w=3, stride=(2, 2), padding="SAME"),
    dict(in_h=8, in_w=8, in_c=64, out_c=64, k_h=3, k_w=3, padding="SAME"),
]
# last blocks of 1, 2 and 3 pixels (the tail), 1 to 5 unrolled sweeps, stride 2, dilation,
# an unpadded input (no plane)
SIM_SHAPES = [
    dict(in_h=5, in_w=5, in_c=8, out_c=8, k_h=3, k_w=3, padding="SAME"),               # 25: +1
    dict(in_h=3, in_w=6, in_c=16, out_c=4, k_h=3, k_w=3, padding="SAME"),              # 18: +2
    dict(in_h=5, in_w=7, in_c=64, out_c=12, k_h=3, k_w=3, padding="SAME"),             # 35: +3, 5 sweeps
    dict(in_h=9, in_w=8, in_c=32, out_c=8, k_h=3, k_w=3, stride=(2, 2), padding="SAME"),
    dict(in_h=10, in_w=9, in_c=4, out_c=16, k_h=3, k_w=3, dilation=(2, 1), padding="VALID"),
    dict(in_h=6, in_w=6, in_c=12, out_c=4, k_h=2, k_w=2, padding="VALID"),             # K 48
    dict(in_h=12, in_w=6, in_c=1, out_c=8, k_h=10, k_w=4, stride=(2, 2), padding="SAME"),  # KWS's
    dict(in_h=6, in_w=7, in_c=3, out_c=4, k_h=3, k_w=5, padding="SAME"),              # tap4, K 60
]


def sim_cases(conv, rng, shapes, in_place=True):
    cases = []
    for i, shape in enumerate(shapes):
        out_zp = -128 if i % 2 == 0 else 11          # without and with the sign term
        layer, x = quad_layer(rng, shape, out_zp=out_zp,
                              activation="RELU" if out_zp == -128 else "NONE")
        opt = optimized(layer, conv)
        assert has_quads(opt), shape
        cases.append((reference(layer), opt, [x], None))
        if in_place:
            cases += [(reference(layer), opt, [x], d) for d in in_place_deltas(opt)]
    return cases


def assert_rows(cases, rows):
    for (ref, opt, _, d), row in zip(cases, rows):
        assert_same(row["ref"], row["opt"], f"{opt.shape} in place at {d}")
        assert row["opt_cycles"] > 0


@pytest.mark.slow
def test_quads_in_the_simulator_from_the_flash_copy(tmp_path, conv):
    """The case firmware keeps its constants in flash: the kernel copies the
    quads into the scratch first (tb_cm4_copy16), out of place and in place."""
    cases = sim_cases(conv, np.random.default_rng(5), SIM_SHAPES)
    assert_rows(cases, simulate_cases(cases, tmp_path))


@pytest.mark.slow
def test_quads_in_the_simulator_read_in_place(tmp_path, conv, monkeypatch):
    """TB_CM4_SRAM_BASE 1: no filter counts as being in flash, so the quads are
    read where they are (as from SRAM after place=auto), on nucleo-l4r5zi."""
    from tinybuild import plugins
    find = plugins.find_target

    def with_flag(pm, name):
        t = find(pm, name)
        return replace(t, cflags=t.cflags + ("-DTB_CM4_SRAM_BASE=1",))

    cases = sim_cases(conv, np.random.default_rng(6), SIM_SHAPES[:3], in_place=False)
    copied = simulate_cases(cases, tmp_path / "copy", target_name="nucleo-l4r5zi")
    monkeypatch.setattr(plugins, "find_target", with_flag)
    in_place = simulate_cases(cases, tmp_path / "in_place", target_name="nucleo-l4r5zi")
    assert_rows(cases, in_place)
    # no copy: fewer instructions than the same firmware that copies
    assert all(a["opt_instr"] < b["opt_instr"] for a, b in zip(in_place, copied))


@pytest.mark.slow
def test_quads_with_the_largest_sums_the_raw_b_form_allows(tmp_path, conv, prep):
    """Weights as large as conv_raw_b accepts for 3x3x64 at inputs 255 from the
    zero point (256 * 255 * sum|w| just below 2^31), extreme inputs and biases:
    accumulators near the ends of what the requantization takes."""
    rng = np.random.default_rng(7)
    shape = dict(in_h=4, in_w=5, in_c=64, out_c=8, k_h=3, k_w=3, padding="SAME")
    layer, _ = quad_layer(rng, shape, in_zp=-128, weight_range=56)
    w = layer.consts[0].values.reshape(8, -1).copy()
    w[:] = np.where(rng.integers(0, 2, w.shape) == 1, 56, -56)
    layer.consts[0].values = w.reshape(-1)
    layer.consts[1].values = np.array([30000, -30000] * 4, np.int32)
    x = np.where(rng.integers(0, 2, 4 * 5 * 64) == 1, 127, -128).astype(np.int8)
    opt = optimized(layer, conv)
    assert has_quads(opt) and prep.conv_raw_b(w.astype(np.int64), 8, 255)
    cases = [(reference(layer), opt, [x], None)]
    assert_rows(cases, simulate_cases(cases, tmp_path))


@pytest.mark.slow
def test_quads_never_slower_than_the_pair_block(tmp_path, conv, prep, monkeypatch):
    """ResNet-8's 3x3 layers (weights in flash: the copy included) with quads
    and with the 4 x 2 block: fewer cycles on both boards."""
    rng = np.random.default_rng(8)
    layers = [quad_layer(rng, s) for s in RESNET8_3X3]
    quads = [(reference(l), optimized(l, conv), [x], None) for l, x in layers]
    monkeypatch.setattr(prep, "conv_quads", lambda *a: False)
    pairs = [(reference(l), optimized(l, conv), [x], None) for l, x in layers]
    monkeypatch.undo()
    assert all(has_quads(c[1]) for c in quads) and not any(has_quads(c[1]) for c in pairs)
    for board in ("nucleo-l4r5zi", "cortex-m4"):
        rows = simulate_cases(quads + pairs, tmp_path / board, target_name=board,
                              ram_budget=120_000)
        n = len(quads)
        for shape, q, p in zip(RESNET8_3X3, rows[:n], rows[n:]):
            assert_same(q["ref"], q["opt"], str(shape))
            assert q["opt_cycles"] < p["opt_cycles"], (board, shape, q["opt_cycles"], p["opt_cycles"])
