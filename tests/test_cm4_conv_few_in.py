"""tb_cm4_conv_few_in_s8 (CONV_2D on 1-4 input channels) against the reference
kernel, byte for byte: on the host (the portable fallbacks) over the sweep of
first-layer shapes, odd widths and tails, ties and extreme accumulators; in
the simulator (slow) the Cortex-M4 build (the assembly sweep) with its cycles
against today's kernel and the reference.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from opt_harness import (assert_same, forced, kernel_fixtures, random_conv_layer,  # noqa: E402
                         reference, run_layer, simulate_cases, target_kernels)

FUNCTION = "tb_cm4_conv_few_in_s8"


def cm4_impls():
    return target_kernels("cortex-m4")


impl, module, lib = kernel_fixtures(FUNCTION, "tbfew")


def today(layer):
    """tb_cm4_conv2d_s8 on the same layer."""
    general = [k for k in cm4_impls() if k.function == "tb_cm4_conv2d_s8" and k.op == "CONV_2D"][0]
    return forced(layer, general)


# the sweep of the brief: C in {1, 3, 4}, 3x3 and 5x5, strides 1 and 2, 8/16/32
# output channels, odd widths; plus 2 channels, VALID, non-square kernels, odd out_c
SWEEP = [dict(in_h=h, in_w=w, in_c=c, k_h=k, k_w=k, stride=(s, s), out_c=oc, padding=pad)
         for (h, w) in [(9, 11)] for c in (1, 3, 4) for k in (3, 5) for s in (1, 2)
         for oc in (8, 16, 32) for pad in ("SAME",)]
EXTRA = [dict(in_h=7, in_w=5, in_c=2, k_h=3, k_w=3, out_c=6, padding="SAME"),
         dict(in_h=8, in_w=9, in_c=3, k_h=3, k_w=3, stride=(2, 2), out_c=8, padding="VALID"),
         dict(in_h=6, in_w=7, in_c=1, k_h=2, k_w=4, out_c=5, padding="SAME"),
         dict(in_h=5, in_w=5, in_c=4, k_h=5, k_w=5, out_c=3, padding="VALID"),   # 1 pixel
         dict(in_h=10, in_w=4, in_c=1, k_h=10, k_w=4, stride=(2, 2), out_c=4, padding="SAME"),
         dict(in_h=3, in_w=3, in_c=3, k_h=1, k_w=1, out_c=7, padding="VALID")]


# layers tb_cm4_conv2d_s8 runs as channel quads (2 pixels x 4 channels): two it is
# 1-4% faster on (this kernel took them on the estimate fitted before the quads),
# two this kernel is ~20% faster on, and MNIST-rect's tall 15x3 first layer (~45%,
# left to the quads before)
QUADS = [dict(in_h=15, in_w=36, in_c=4, k_h=5, k_w=5, stride=(2, 2), out_c=64, padding="VALID"),
         dict(in_h=26, in_w=4, in_c=3, k_h=4, k_w=4, stride=(2, 2), out_c=48, padding="SAME"),
         dict(in_h=26, in_w=22, in_c=3, k_h=4, k_w=4, stride=(2, 2), out_c=16, padding="VALID"),
         dict(in_h=32, in_w=13, in_c=3, k_h=4, k_w=4, out_c=16, padding="VALID"),
         dict(in_h=28, in_w=28, in_c=1, k_h=15, k_w=3, stride=(2, 2), out_c=4, padding="SAME")]


def _ids(s):
    st = s.get("stride", (1, 1))[0]
    return f"{s['in_h']}x{s['in_w']}x{s['in_c']}k{s['k_h']}{s['k_w']}s{st}o{s['out_c']}{s['padding'][0]}"


@pytest.mark.parametrize("shape", SWEEP + EXTRA, ids=_ids)
@pytest.mark.parametrize("zps", [(-128, -128), (7, -3)])
def test_matches_reference_on_the_host(lib, impl, module, shape, zps):
    rng = np.random.default_rng(sum(map(ord, _ids(shape))) + zps[1])
    layer = random_conv_layer(rng, in_zp=zps[0], out_zp=zps[1], **shape)
    assert module.fits(layer), _ids(shape)
    x = rng.integers(-128, 128, size=shape["in_h"] * shape["in_w"] * shape["in_c"]).astype(np.int8)
    assert_same(run_layer(lib, reference(layer), [x]), run_layer(lib, forced(layer, impl), [x]),
                _ids(shape))


def test_extreme_accumulators_and_dead_channels(lib, impl, module):
    """Weights at +-127 on inputs at the far end of the offset (the largest
    sums), a dead channel (weights 0, bias near 2^30), a tiny multiplier."""
    from tinybuild import quant
    rng = np.random.default_rng(5)
    layer = random_conv_layer(rng, in_h=9, in_w=9, in_c=4, k_h=5, k_w=5, out_c=8, in_zp=127,
                              out_zp=-128, padding="SAME")
    w = layer.consts[0].values.reshape(8, -1).copy()
    w[0] = 127
    w[1] = -127
    w[2] = 0
    b = layer.consts[1].values.copy()
    b[2] = (1 << 30) + 7
    m = layer.consts[2].values.copy()
    m[3] = quant.quantize_multiplier(2.0 ** -27 * 0.77)
    layer.consts[0].values, layer.consts[1].values = w.reshape(-1), b
    layer.consts[2].values = m
    assert module.fits(layer)
    opt = forced(layer, impl)
    assert any("sign term is left out" in n for n in opt.notes), opt.notes
    for x in (np.full(81 * 4, -128, np.int8), np.full(81 * 4, 127, np.int8),
              rng.integers(-128, 128, 81 * 4).astype(np.int8)):
        assert_same(run_layer(lib, reference(layer), [x]), run_layer(lib, opt, [x]), "extreme")


def test_k_order_and_layout(module):
    """Rows' whole groups of 4 first, then the leftovers; K4 = ceil(K / 4) * 4."""
    p = dict(k_h=3, k_w=3, in_c=3)
    order = module.k_order(p)
    assert order.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16,
                              18, 19, 20, 21, 22, 23, 24, 25, 8, 17, 26, -1]
    for kh, kw, c in [(5, 5, 1), (3, 3, 2), (5, 5, 3), (3, 3, 1), (10, 4, 1)]:
        q = dict(k_h=kh, k_w=kw, in_c=c)
        o = module.k_order(q)
        assert len(o) == (kh * kw * c + 3) // 4 * 4
        assert sorted(o[o >= 0].tolist()) == list(range(kh * kw * c))


def test_which_layers_it_takes(impl, module):
    """What it computes exactly (fits), and where it is taken: estimated faster
    than tb_cm4_conv2d_s8 and the reference (not VWW's, ResNet-8's and KWS's first
    layers: there its instruction count is higher)."""
    rng = np.random.default_rng(0)
    layer = lambda **s: random_conv_layer(rng, **s)
    assert module.fits(layer(in_h=8, in_w=8, in_c=3, k_h=3, k_w=3, out_c=8))
    assert not module.fits(layer(in_h=8, in_w=8, in_c=5, k_h=3, k_w=3, out_c=8))
    assert not module.fits(layer(in_h=8, in_w=8, in_c=3, k_h=3, k_w=3, out_c=8, dilation=(2, 2)))
    assert not module.fits(layer(in_h=12, in_w=12, in_c=4, k_h=6, k_w=5, out_c=8))   # K4 120
    assert not module.fits(layer(in_h=8, in_w=8, in_c=3, k_h=3, k_w=3, out_c=8,
                                 activation="RELU6", out_scale=0.01))              # clamped
    take = lambda **s: impl.accepts(layer(out_zp=-128, **s))
    assert take(in_h=9, in_w=11, in_c=1, k_h=3, k_w=3, out_c=8)
    assert take(in_h=9, in_w=11, in_c=1, k_h=5, k_w=5, stride=(2, 2), out_c=16)
    assert take(in_h=26, in_w=22, in_c=3, k_h=4, k_w=4, stride=(2, 2), out_c=16, padding="VALID")
    assert not take(in_h=9, in_w=11, in_c=3, k_h=5, k_w=5, out_c=32)     # 0.94x: not by the margin
    assert take(in_h=17, in_w=18, in_c=2, k_h=5, k_w=5, out_c=4, padding="VALID")
    assert not take(in_h=96, in_w=96, in_c=3, k_h=3, k_w=3, stride=(2, 2), out_c=8)
    assert not take(in_h=32, in_w=32, in_c=3, k_h=3, k_w=3, out_c=16)
    assert not take(in_h=49, in_w=10, in_c=1, k_h=10, k_w=4, stride=(2, 2), out_c=64)


@pytest.mark.parametrize("shape", QUADS, ids=_ids)
def test_compared_with_the_channel_quads(module, shape):
    """Where tb_cm4_conv2d_s8 runs channel quads its cost is the quads' fit
    (cm4_cost's older estimate is 10-14% RMS off there): the two layers the
    quads run faster are not taken, the others are."""
    layer = random_conv_layer(np.random.default_rng(1), out_zp=-128, **shape)
    assert module.fits(layer) and module.runs_quads(layer.params)
    slower = shape["out_c"] >= 48
    assert module.accepts(layer) != slower, _ids(shape)


# -- in the simulator -------------------------------------------------------------------

@pytest.mark.slow
def test_cortex_m4_build_matches_and_is_faster(tmp_path, impl):
    """The assembly against the reference on the sweep (both requantization
    forms); where the kernel is taken, never slower than tb_cm4_conv2d_s8 or the
    reference (instructions and modelled cycles, nucleo-l4r5zi)."""
    rng = np.random.default_rng(3)
    cases, names, taken = [], [], []
    for shape in SWEEP + EXTRA + QUADS:
        layer = random_conv_layer(rng, in_zp=-128, out_zp=int(rng.choice([-128, 5])), **shape)
        x = rng.integers(-128, 128, size=shape["in_h"] * shape["in_w"] * shape["in_c"]).astype(np.int8)
        cases.append((reference(layer), forced(layer, impl), [x], None))
        cases.append((reference(layer), today(layer), [x], None))
        names.append(_ids(shape))
        taken.append(impl.accepts(layer))
    rows = simulate_cases(cases, tmp_path, target_name="nucleo-l4r5zi")
    assert sum(taken) >= 10, taken
    for name, take, new, old in zip(names, taken, rows[0::2], rows[1::2]):
        assert_same(new["ref"], new["opt"], f"{name} in the simulator")
        if take:
            for kind in ("instr", "cycles"):
                assert new[f"opt_{kind}"] <= old[f"opt_{kind}"], (name, kind, new, old)
                assert new[f"opt_{kind}"] < new[f"ref_{kind}"], (name, kind, new)
