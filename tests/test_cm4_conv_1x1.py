"""The cortex-m4 1x1 convolutions (cm4_conv_1x1_smallk_s8.c) against the reference
kernel, byte for byte: the stride-1 small-K kernels' column on the stack and
their 15-cycle step, and the entry points for any other 1x1 layer
(cm4_conv_1x1.py: strides, a last block of 1-3 pixels).

Natively on the host (the portable C path) with hypothesis over strides and
pixel counts; in the simulator (slow) the assembly of every depth, both
requantization forms, tails of 1, 2 and 3 pixels, out of place and in place at
every declared overlap (forward and backward), extreme accumulators and dead
channels.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from kernel_cases import check_conv  # noqa: E402
from opt_harness import (FAST, assert_same, build_library, cm4_kernels, compare,  # noqa: E402
                         in_place_deltas, optimized, random_conv_layer, reference,
                         run_firmware)

DEPTHS = (8, 16, 32, 64, 128)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return build_library(tmp_path_factory.mktemp("tb1x1"))


@pytest.fixture(scope="module")
def kernels():
    """{("any" | "smallk", depth): {"CONV_2D": KernelImpl}}"""
    from importlib import import_module
    package = sys.modules[cm4_kernels()["CONV_2D"].prepare.__module__].__package__
    cm4_prepare = import_module(package + ".cm4_prepare")
    any_1x1 = import_module(package + ".cm4_conv_1x1")
    out = {("any", d): {"CONV_2D": any_1x1.any_kernel(d)} for d in DEPTHS}
    out.update({("smallk", d): {"CONV_2D": cm4_prepare.smallk_kernel(d)} for d in DEPTHS})
    return out


any_cases = st.fixed_dictionaries({
    "in_h": st.integers(1, 9), "in_w": st.integers(1, 9), "in_c": st.sampled_from(DEPTHS),
    "out_c": st.sampled_from([2, 4, 6, 10]),
    "stride": st.sampled_from([(1, 1), (2, 2), (1, 2), (2, 1), (3, 2)]),
    "padding": st.sampled_from(["VALID", "SAME"]), "per_channel": st.booleans(),
    "use_bias": st.booleans(), "weight_range": st.sampled_from([1, 127]),
    "in_scale": st.floats(1e-3, 1.0), "in_zp": st.integers(-128, 127),
    "out_scale": st.floats(1e-3, 2.0), "out_zp": st.sampled_from([-128, -128, -5, 0, 77]),
    "seed": st.integers(0, 2**32 - 1)})


def out_pixels(d: dict) -> int:
    def size(n, s):
        return (n + s - 1) // s if d["padding"] == "SAME" else (n - 1) // s + 1
    return size(d["in_h"], d["stride"][0]) * size(d["in_w"], d["stride"][1])


@FAST
@given(d=any_cases)
def test_any_1x1_matches_reference(lib, kernels, d):
    """Every layer it computes (stride 1 only with a last partial block), out
    of place and in place; the others are the stride-1 kernel's or too small."""
    case = dict(d, k_h=1, k_w=1, dilation=(1, 1), activation="NONE")
    kernel = kernels[("any", d["in_c"])]
    npix = out_pixels(d)
    if npix < 4 or (d["stride"] == (1, 1) and npix % 4 == 0):
        layer = random_conv_layer(np.random.default_rng(0), **{k: v for k, v in case.items()
                                                               if k != "seed"})
        assert optimized(layer, kernel) is None
        return
    check_conv(lib, kernel, case)


def test_any_1x1_accepts_only_its_shapes(kernels):
    rng = np.random.default_rng(4)
    ok = dict(in_h=8, in_w=8, in_c=16, out_c=4, k_h=1, k_w=1, stride=(2, 2), padding="VALID")
    impl = kernels[("any", 16)]["CONV_2D"]
    assert impl.accepts(random_conv_layer(rng, **ok))
    # a last partial block: where 2 blocks x 32 pairs x 8 k-pairs = 512 steps pay for it
    assert impl.accepts(random_conv_layer(rng, **dict(ok, stride=(1, 1), in_h=3, in_w=3, out_c=64)))
    # ... or 2 blocks x 30 channels >= K 16 / 16 (tail_pays; refusals: test_cm4_1x1_tail.py)
    small_tail = random_conv_layer(rng, **dict(ok, stride=(1, 1), in_h=3, in_w=3, out_c=30))
    assert impl.accepts(small_tail) and optimized(small_tail, kernels[("any", 16)]) is not None
    for change in [dict(stride=(1, 1)), dict(in_c=12), dict(out_c=5), dict(in_h=3, in_w=2),
                   dict(k_h=3, k_w=3, padding="SAME")]:
        assert not impl.accepts(random_conv_layer(rng, **dict(ok, **change))), change
    assert not impl.accepts(random_conv_layer(rng, **ok, activation="RELU6", out_zp=0))
    # the stride-1 whole-block kernel takes none of these
    assert not kernels[("smallk", 16)]["CONV_2D"].accepts(random_conv_layer(rng, **ok))


def test_any_1x1_hands_other_requantizations_to_the_general_kernel(lib, kernels):
    """A live bias near 2^30: not the fast form, tb_cm4_conv2d_s8 runs it with the same tables."""
    rng = np.random.default_rng(8)
    layer = random_conv_layer(rng, in_h=8, in_w=8, in_c=32, out_c=4, k_h=1, k_w=1,
                              stride=(2, 2), padding="VALID", in_zp=-128, out_zp=-128)
    b = layer.consts[1].values.copy()
    b[2] = (1 << 30) - 5
    layer.consts[1].values = b
    x = rng.integers(-128, 128, 8 * 8 * 32).astype(np.int8)
    opt = optimized(layer, kernels[("any", 32)])
    assert any("MultiplyByQuantizedMultiplier" in n for n in opt.notes), opt.notes
    compare(lib, kernels[("any", 32)], layer, [x])


def extreme_layer(rng, depth: int, stride, shape, out_zp: int):
    """Weights +-127 and inputs at -128/127: the largest sums the raw-B form
    takes (256 * |S| < 2^31 at K 128), a dead channel with a bias near 2^30."""
    h, w = shape
    layer = random_conv_layer(rng, in_h=h, in_w=w, in_c=depth, out_c=6, k_h=1, k_w=1,
                              stride=stride, padding="VALID", in_zp=-128, out_zp=out_zp,
                              weight_range=12)
    wts = layer.consts[0].values.copy().reshape(6, depth)
    wts[0] = 127
    wts[1] = -127
    wts[2] = 0
    layer.consts[0].values = wts.reshape(-1)
    b = layer.consts[1].values.copy()
    b[2] = (1 << 30) + 7
    layer.consts[1].values = b
    x = np.where(rng.integers(0, 2, h * w * depth) == 1, 127, -128).astype(np.int8)
    return layer, x


@pytest.mark.slow
def test_1x1_kernels_in_the_simulator(tmp_path, kernels):
    """The assembly of every depth, stride 1 and any other, tails of 1-3
    pixels, with and without the sign term, out of place and in place at every
    declared overlap (forward and backward), random and extreme accumulators."""
    rng = np.random.default_rng(12)
    cases = []
    for depth in DEPTHS:
        for kind, stride, shape in [("smallk", (1, 1), (4, 6)), ("any", (2, 2), (8, 4)),
                                    ("any", (1, 3), (2, 12)), ("any", (1, 1), (3, 3)),
                                    ("any", (1, 1), (5, 2)), ("any", (1, 1), (7, 1)),
                                    ("any", (2, 1), (5, 3)), ("any", (1, 2), (7, 2))]:
            for out_zp in (-128, 9):
                layer = random_conv_layer(rng, in_h=shape[0], in_w=shape[1], in_c=depth, out_c=10,
                                          k_h=1, k_w=1, stride=stride, padding="VALID",
                                          in_zp=int(rng.integers(-128, 128)), out_zp=out_zp)
                x = rng.integers(-128, 128, size=shape[0] * shape[1] * depth).astype(np.int8)
                extreme, xe = extreme_layer(rng, depth, stride, shape, out_zp)
                for lay, inp in ((layer, x), (extreme, xe)):
                    opt = optimized(lay, kernels[(kind, depth)])
                    assert opt is not None and any("raw word" in n for n in opt.notes), (kind, depth)
                    cases.append((reference(lay), opt, [inp], None))
                    cases += [(reference(lay), opt, [inp], d) for d in in_place_deltas(opt)]
    rows = run_firmware(cases, tmp_path)
    for (ref, opt, _, _), (case, *_rest) in zip(rows, cases):
        assert_same(ref, opt, f"{case.op} {case.shape}")
