"""The cortex-m4 1x1 convolutions on 256 input channels (cm4_conv_1x1_smallk_s8.c,
tb_cm4_conv2d_1x1_any_k256_s8 and tb_cm4_conv2d_1x1_k256_s8: the column built by
a loop, the steps shared by both requantization forms) against the reference
kernel, byte for byte.

Natively on the host (the portable C path) with hypothesis over strides and
pixel counts; in the simulator (slow) the assembly: both requantization forms,
whole blocks and tails of 1-3 pixels, strides, out of place and in place at
every declared overlap, extreme accumulators and a dead channel.
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
                         run_firmware, run_layer)

DEPTH = 256


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return build_library(tmp_path_factory.mktemp("tb1x1b"))


@pytest.fixture(scope="module")
def modules():
    from importlib import import_module
    package = sys.modules[cm4_kernels()["CONV_2D"].prepare.__module__].__package__
    return import_module(package + ".cm4_prepare"), import_module(package + ".cm4_conv_1x1")


@pytest.fixture(scope="module")
def kernels(modules):
    """{"any" | "smallk": {"CONV_2D": the K 256 KernelImpl}}"""
    cm4_prepare, any_1x1 = modules
    return {"any": {"CONV_2D": any_1x1.any_kernel(DEPTH)},
            "smallk": {"CONV_2D": cm4_prepare.smallk_kernel(DEPTH)}}


def test_the_build_offers_k256(modules):
    """Both entry points are registered (a build would otherwise never pick them)."""
    _, any_1x1 = modules
    names = {k.function for k in any_1x1.kernels()}
    assert {"tb_cm4_conv2d_1x1_any_k256_s8", "tb_cm4_conv2d_1x1_k256_s8"} <= names


def vww_last_pointwise(rng, **change):
    """VWW's 3x3x256 -> 256 (two blocks and a pixel), scaled down in out_c."""
    shape = dict(in_h=3, in_w=3, in_c=DEPTH, out_c=256, k_h=1, k_w=1, padding="VALID",
                 in_zp=-128, out_zp=-128)
    return random_conv_layer(rng, **dict(shape, **change))


def test_k256_accepts_its_shapes_only(kernels):
    rng = np.random.default_rng(3)
    any_k, smallk = kernels["any"]["CONV_2D"], kernels["smallk"]["CONV_2D"]
    assert any_k.accepts(vww_last_pointwise(rng))
    assert not smallk.accepts(vww_last_pointwise(rng))
    whole = vww_last_pointwise(rng, in_h=2, in_w=4, out_c=16)
    assert smallk.accepts(whole) and not any_k.accepts(whole)
    assert any_k.accepts(vww_last_pointwise(rng, in_h=4, in_w=4, out_c=8, stride=(2, 2)))
    for change in [dict(in_c=128), dict(in_c=264), dict(out_c=7), dict(in_h=1, in_w=3),
                   dict(k_h=3, k_w=3, padding="SAME")]:
        assert not any_k.accepts(vww_last_pointwise(rng, **change)), change
    assert not any_k.accepts(vww_last_pointwise(rng, activation="RELU6", out_zp=0))


cases = st.fixed_dictionaries({
    "in_h": st.integers(1, 5), "in_w": st.integers(1, 5),
    "out_c": st.sampled_from([2, 6, 8, 10]),
    "stride": st.sampled_from([(1, 1), (1, 1), (2, 2), (1, 2)]),
    "per_channel": st.booleans(), "use_bias": st.booleans(),
    "weight_range": st.sampled_from([1, 127]), "in_scale": st.floats(1e-3, 1.0),
    "in_zp": st.integers(-128, 127), "out_scale": st.floats(1e-3, 2.0),
    "out_zp": st.sampled_from([-128, -128, -5, 0, 77]), "seed": st.integers(0, 2**32 - 1)})


@FAST
@given(d=cases)
def test_k256_matches_reference(lib, kernels, d):
    """Whichever of the two entry points takes the layer, out of place and in place."""
    case = dict(d, in_c=DEPTH, k_h=1, k_w=1, dilation=(1, 1), padding="VALID",
                activation="NONE")
    layer = random_conv_layer(np.random.default_rng(0),
                              **{k: v for k, v in case.items() if k != "seed"})
    taken = [k for k in ("smallk", "any") if optimized(layer, kernels[k]) is not None]
    assert len(taken) <= 1
    if taken:
        check_conv(lib, kernels[taken[0]], case)


def test_k256_hands_other_requantizations_to_the_general_kernel(lib, kernels):
    """A live bias near 2^30: not the fast form, tb_cm4_conv2d_s8 runs it with the same tables."""
    rng = np.random.default_rng(8)
    layer = vww_last_pointwise(rng, out_c=4)
    b = layer.consts[1].values.copy()
    b[1] = (1 << 30) - 5
    layer.consts[1].values = b
    opt = optimized(layer, kernels["any"])
    assert any("MultiplyByQuantizedMultiplier" in n for n in opt.notes), opt.notes
    compare(lib, kernels["any"], layer, [rng.integers(-128, 128, 9 * DEPTH).astype(np.int8)])


def run_with_scratch(lib, opt, x, fill=77):
    """The kernel once out of place on a scratch of ``fill`` bytes: (output, scratch)."""
    import ctypes
    from opt_harness import _params_struct
    params = _params_struct(opt)
    consts = {c.role: np.ascontiguousarray(c.values) for c in opt.consts}
    out = np.zeros(opt.params["out_h"] * opt.params["out_w"] * opt.params["out_c"], np.int8)
    scratch = np.full(opt.scratch_bytes, fill, np.int8)
    fn = getattr(lib, opt.kernel)
    fn.restype = None
    fn(ctypes.byref(params), ctypes.c_void_p(x.ctypes.data),
       *[ctypes.c_void_p(consts[r].ctypes.data) for r in opt.args],
       ctypes.c_void_p(out.ctypes.data), ctypes.c_void_p(scratch.ctypes.data))
    return out, scratch


@pytest.mark.parametrize("depth, pixels, out_c", [(DEPTH, 7, 10), (DEPTH, 6, 10), (DEPTH, 5, 10),
                                                  (8, 7, 32), (8, 6, 32)])
def test_a_tail_of_2_or_3_pixels_runs_as_one_block(lib, modules, depth, pixels, out_c):
    """The rule (cm4_conv_1x1_smallk_s8.c tb_cm4_sk_tail): a last 2-3 pixels
    run as one block into the scratch (the weights read once: pixel by pixel
    each pass over weights in flash missed the data cache, str_ww's 15x1x128
    on cortex-m4); a last single pixel stays pixel by pixel (the block would
    take 60 cycles per 16 MACs, the pixel 19: VWW's 3x3 maps), the scratch
    untouched. The build reserves the block's 4 pixels of output in the scratch."""
    _, any_1x1 = modules
    rng = np.random.default_rng(pixels)
    layer = random_conv_layer(rng, in_h=pixels, in_w=1, in_c=depth, out_c=out_c, k_h=1, k_w=1,
                              padding="VALID", in_zp=-3, out_zp=-128)
    opt = optimized(layer, {"CONV_2D": any_1x1.any_kernel(depth)})
    assert opt is not None and opt.scratch_bytes >= 4 * out_c
    x = rng.integers(-128, 128, size=pixels * depth).astype(np.int8)
    out, scratch = run_with_scratch(lib, opt, x)
    assert_same(run_layer(lib, reference(layer), [x]), out)
    rest = pixels % 4
    block = scratch[:4 * out_c].reshape(4, out_c)
    if rest == 1:
        assert (scratch == 77).all()
    else:
        tail = out.reshape(pixels, out_c)[pixels - rest:]
        assert np.array_equal(block[:rest], tail) and (block[rest:] == tail[-1]).all()


def extreme(rng, shape, stride, out_zp):
    """Weights +-127 (the largest raw-B sums 256 * |S| the build takes are
    beside them: the build must fall back to the split form where they wrap),
    inputs at -128/127, a dead channel with a bias near 2^30."""
    layer = random_conv_layer(rng, in_h=shape[0], in_w=shape[1], in_c=DEPTH, out_c=10, k_h=1,
                              k_w=1, stride=stride, padding="VALID", in_zp=-128, out_zp=out_zp,
                              weight_range=12)
    wts = layer.consts[0].values.copy().reshape(10, DEPTH)
    wts[0, ::2], wts[1, ::2], wts[2] = 60, -60, 0
    layer.consts[0].values = wts.reshape(-1)
    b = layer.consts[1].values.copy()
    b[2] = (1 << 30) + 7
    layer.consts[1].values = b
    x = np.where(rng.integers(0, 2, shape[0] * shape[1] * DEPTH) == 1, 127, -128).astype(np.int8)
    return layer, x


@pytest.mark.slow
def test_k256_in_the_simulator(tmp_path, kernels):
    """The assembly: both requantization forms (zero point -128 leaves the sign
    term out, 9 keeps it), whole blocks, tails of 1-3 pixels (10 channels: a
    pass of 4 pairs and a last pair; 2-3 pixels as one block), strides, out of place and in place at
    every declared overlap, random and extreme sums."""
    rng = np.random.default_rng(21)
    runs = []
    for kind, stride, shape in [("smallk", (1, 1), (2, 4)), ("any", (1, 1), (3, 3)),
                                ("any", (1, 1), (5, 1)), ("any", (1, 1), (7, 1)),
                                ("any", (1, 1), (6, 1)),
                                ("any", (2, 2), (4, 4)), ("any", (1, 2), (3, 5))]:
        for out_zp in (-128, 9):
            layer = random_conv_layer(rng, in_h=shape[0], in_w=shape[1], in_c=DEPTH, out_c=10,
                                      k_h=1, k_w=1, stride=stride, padding="VALID",
                                      in_zp=int(rng.integers(-128, 128)), out_zp=out_zp)
            x = rng.integers(-128, 128, size=shape[0] * shape[1] * DEPTH).astype(np.int8)
            for lay, inp in ((layer, x), extreme(rng, shape, stride, out_zp)):
                opt = optimized(lay, kernels[kind])
                assert opt is not None and any("raw word" in n for n in opt.notes), (kind, shape)
                runs.append((reference(lay), opt, [inp], None))
                runs += [(reference(lay), opt, [inp], d) for d in in_place_deltas(opt)]
    rows = run_firmware(runs, tmp_path)
    for (ref, opt, _, _), (case, *_rest) in zip(rows, runs):
        assert_same(ref, opt, f"{case.op} {case.shape}")


@pytest.mark.slow
def test_stride1_runs_in_the_simulator(tmp_path, modules):
    """K <= 64, stride 1, whole blocks: the blocks as one run in assembly
    (TB_CM4_SK_RUN_FN), forward and backward (in place, the output above the
    input), one and several channel pairs per block, both requantization forms;
    beside them the any entry's blocks and tails (1 pixel, 3 as a block) at stride 1."""
    cm4_prepare, any_1x1 = modules
    rng = np.random.default_rng(33)
    runs = []
    for depth in (8, 16, 32, 64):
        for kind, shape, out_c in [("smallk", (6, 8), 2), ("smallk", (2, 6), 6),
                                   ("any", (5, 5), 8), ("any", (3, 5), 8)]:
            impls = {"CONV_2D": cm4_prepare.smallk_kernel(depth) if kind == "smallk" else
                     any_1x1.any_kernel(depth)}
            for out_zp in (-128, 9):
                layer = random_conv_layer(rng, in_h=shape[0], in_w=shape[1], in_c=depth,
                                          out_c=out_c, k_h=1, k_w=1, padding="VALID",
                                          in_zp=int(rng.integers(-128, 128)), out_zp=out_zp)
                x = rng.integers(-128, 128, size=shape[0] * shape[1] * depth).astype(np.int8)
                opt = optimized(layer, impls)
                if opt is None:
                    assert kind == "any", (depth, shape, out_c)
                    continue
                runs.append((reference(layer), opt, [x], None))
                runs += [(reference(layer), opt, [x], d) for d in in_place_deltas(opt)]
    assert len(runs) > 30
    rows = run_firmware(runs, tmp_path)
    for (ref, opt, _, _), (case, *_rest) in zip(rows, runs):
        assert_same(ref, opt, f"{case.op} {case.shape}")
