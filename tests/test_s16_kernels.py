"""The 16x8 (int16 activations x int8 weights) optimized kernels of cortex-m4
(cm4_s16.c) and riscv (rv_s16.c) against the reference kernels
(tb_conv2d_s16, tb_depthwise_conv2d_s16, tb_fully_connected_s16), byte for byte.

On the host: the kernels' C (the DSP intrinsics through their portable
fallbacks) over random layers (shapes, strides, dilations, paddings,
per-channel scales, activations, full-range int16 inputs and int64 biases), in
place at every offset the kernel declares too; int64 sums past 2^31. In the
simulator (slow), per target: a sweep of shapes byte for byte, and no layer a
kernel takes runs more instructions or cycles than the reference
(docs/kernels.md, "no cliffs"); `-s` prints the figures.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from opt_harness import (CM4_DIR, RV_DIR, assert_same, build_library, chosen, in_place_deltas,  # noqa: E402
                         optimized,
                         random_conv_layer, random_fc_layer, reference, run_layer,
                         simulate_cases, target_kernels)
from tinybuild import quant  # noqa: E402
from tinybuild.lower import Const  # noqa: E402

ACTIVATIONS = ("NONE", "RELU", "RELU6")
TARGETS = {"cortex-m4": CM4_DIR, "riscv": RV_DIR}


@pytest.fixture(scope="module", params=list(TARGETS))
def target(request):
    return request.param


@pytest.fixture(scope="module")
def lib(tmp_path_factory, target):
    return build_library(tmp_path_factory.mktemp("tbs16"), extra_dirs=(TARGETS[target],),
                         name=f"libtbs16_{target}.so")


@pytest.fixture(scope="module")
def impls(target):
    """The target's 16x8 kernels."""
    return target_kernels(target, "int16")


def as_s16(layer, rng, k: int, out_scale_factor: float):
    """A random int8 layer turned into its 16x8 form as lowering makes it: zero
    points 0, int16 activation range, int64 bias, the output scale chosen so
    that sums of ``k`` products land around the int16 range (times the factor)."""
    consts = {c.role: c for c in layer.consts}
    n_out = len(consts["bias"].values)
    bias = rng.integers(-2**33, 2**33, n_out) if rng.random() < 0.7 else np.zeros(n_out)
    in_scale, w_scale = 1 / 32768, 0.01
    out_scale = in_scale * w_scale * 127 * np.sqrt(k) * 4 * out_scale_factor
    act = str(rng.choice(ACTIVATIONS))
    act_min, act_max = quant.activation_range(act, out_scale, 0, -32768, 32767)
    params = dict(layer.params, act_min=act_min, act_max=act_max)
    params.update({k_: 0 for k_ in ("input_offset", "output_offset") if k_ in params})
    w_scales = [float(s) for s in rng.uniform(0.5, 2.0, n_out) * w_scale]
    if layer.op == "FULLY_CONNECTED":
        real = [quant.fc_real_multiplier(in_scale, s, out_scale) for s in w_scales]
        new = [consts["filter"], Const("bias", "int64_t", bias.astype(np.int64)),
               Const("real_mul", "double", np.array(real, np.float64))]
    else:
        muls = quant.conv_output_multipliers(in_scale, w_scales, out_scale, n_out, op=layer.op)
        new = [consts["filter"], Const("bias", "int64_t", bias.astype(np.int64)),
               Const("out_mul", "tb_quant_mul", np.array(muls, np.int32))]
    args = ["filter", "bias", "real_mul"] if layer.op == "FULLY_CONNECTED" else None
    return replace(layer, params=params, consts=new, dtype="int16", args=args)


def random_conv(rng, depthwise: bool):
    while True:
        layer = _random_conv(rng, depthwise)
        if layer.params["out_h"] > 0 and layer.params["out_w"] > 0:
            return layer


def _random_conv(rng, depthwise: bool):
    in_c = int(rng.integers(1, 9)) if depthwise else int(rng.integers(1, 20))
    k_h, k_w = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    layer = random_conv_layer(
        rng, depthwise=depthwise, in_h=int(rng.integers(1, 9)), in_w=int(rng.integers(1, 9)),
        in_c=in_c, out_c=int(rng.integers(1, 9)), k_h=k_h, k_w=k_w,
        stride=tuple(int(s) for s in rng.integers(1, 3, 2)),
        dilation=tuple(int(s) for s in rng.integers(1, 3, 2)) if rng.random() < 0.3 else (1, 1),
        padding=str(rng.choice(["SAME", "VALID"])) if k_h <= 4 else "SAME",
        depth_multiplier=1)
    return as_s16(layer, rng, k_h * k_w * (1 if depthwise else in_c),
                  float(rng.choice([0.02, 0.3, 1.0, 8.0])))


def random_fc(rng):
    n = int(rng.integers(1, 70))
    layer = random_fc_layer(rng, in_features=n, out_features=int(rng.integers(1, 12)),
                            rows=int(rng.integers(1, 4)), per_channel=True)
    return as_s16(layer, rng, n, float(rng.choice([0.02, 0.3, 1.0, 8.0])))


def s16_input(rng, layer) -> np.ndarray:
    from opt_harness import input_size
    n = input_size(layer) // 2
    if rng.random() < 0.2:      # the extremes: the largest products and int64 sums
        return rng.choice(np.array([-32768, 32767], np.int16), n)
    return rng.integers(-32768, 32768, n).astype(np.int16)


def random_layer(rng, op: str):
    if op == "FULLY_CONNECTED":
        return random_fc(rng)
    return random_conv(rng, op == "DEPTHWISE_CONV_2D")


def check(lib, impls, layer, x):
    opt = chosen(layer, impls)
    assert opt is not None, f"{layer.op} {layer.shape}"
    compare_with_reference(lib, layer, opt, x)


def compare_with_reference(lib, layer, opt, x):
    ref = run_layer(lib, reference(layer), [x])
    assert_same(ref, run_layer(lib, opt, [x]), f"{layer.op} {layer.shape}")
    for d in in_place_deltas(opt, layer.inputs[0]):
        assert_same(ref, run_layer(lib, opt, [x], overlap_delta=d),
                    f"{layer.op} {layer.shape} in place at {d}")


@pytest.mark.parametrize("op", ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"])
def test_matches_reference_on_the_host(lib, impls, op):
    rng = np.random.default_rng(sum(map(ord, op)))
    taken = 0
    for _ in range(300):
        layer = random_layer(rng, op)
        opt = optimized(layer, {k.op: k for k in impls})   # where correct, cost rules aside
        if opt is not None:
            compare_with_reference(lib, layer, opt, s16_input(rng, layer))
            taken += 1
    assert taken >= 200, f"{op}: only {taken} of 300 random layers taken"


def test_int64_sums_beyond_int32(lib, impls):
    """Every input and weight at its extreme: sums of 9 * 64 * 2^22 > 2^31,
    which only the int64 sum of the int32 chunks keeps; the output is not saturated."""
    rng = np.random.default_rng(5)
    layer = random_conv_layer(rng, in_h=3, in_w=3, in_c=64, out_c=3, k_h=3, k_w=3,
                              padding="VALID")
    layer.consts[0] = Const("filter", "int8_t", np.full(layer.consts[0].values.size, -128, np.int8))
    layer = as_s16(layer, rng, 576, 20.0)
    layer.consts[1] = Const("bias", "int64_t", np.zeros(3, np.int64))
    layer.params.update(act_min=-32768, act_max=32767)
    x = np.full(3 * 3 * 64, -32768, np.int16)
    ref = run_layer(lib, reference(layer), [x]).view(np.int16)
    assert np.all((1000 < ref) & (ref < 32767)), ref
    check(lib, impls, layer, x)


def test_takes_only_what_it_computes(impls):
    rng = np.random.default_rng(3)
    dw2 = random_conv_layer(rng, depthwise=True, in_c=3, depth_multiplier=2)
    assert chosen(as_s16(dw2, rng, 9, 1.0), impls) is None    # depth multiplier 2: reference
    assert chosen(random_conv_layer(rng), impls) is None       # int8 layers never reach them
    wide = as_s16(random_conv_layer(rng), rng, 27, 1.0)
    wide.consts[2] = Const("out_mul", "tb_quant_mul", np.array([[1 << 30, 15]] * 4, np.int32))
    assert chosen(wide, impls) is None      # a multiplier of 2^15: the reference's own form


# -- the simulator: the real instructions, and never slower ---------------------------

SWEEP_CONV = [  # (in_h, in_w, in_c, out_c, k_h, k_w, stride, padding)
    (49, 10, 1, 64, 10, 4, 2, "SAME"),      # kws's first layer
    (25, 5, 64, 64, 1, 1, 1, "SAME"),       # kws's pointwise layers
    (8, 8, 3, 1, 3, 3, 1, "SAME"), (8, 8, 1, 1, 1, 1, 1, "VALID"),     # one channel: refused
    (8, 8, 3, 2, 3, 3, 1, "SAME"), (8, 8, 1, 2, 1, 1, 1, "VALID"), (4, 4, 5, 2, 3, 3, 2, "SAME"),
    (6, 6, 16, 8, 3, 3, 1, "VALID"), (5, 5, 7, 3, 1, 1, 1, "VALID"), (3, 3, 2, 16, 2, 2, 1, "SAME"),
]
SWEEP_DW = [  # (in_h, in_w, c, k_h, k_w, stride, padding)
    (25, 5, 64, 3, 3, 1, "SAME"),           # kws's depthwise layers
    (8, 8, 1, 3, 3, 1, "SAME"), (6, 6, 3, 3, 3, 2, "SAME"), (5, 5, 8, 1, 1, 1, "VALID"),
    (9, 9, 5, 5, 5, 1, "SAME"), (4, 4, 2, 2, 2, 2, "VALID"), (12, 12, 16, 3, 3, 2, "VALID"),
    (3, 3, 1, 1, 1, 1, "VALID"),           # one channel, one tap: refused
]
SWEEP_FC = [(64, 12, 1), (256, 10, 1), (16, 64, 3), (16, 2, 1), (17, 3, 1), (32, 2, 2),
            (1, 1, 1), (3, 2, 2), (7, 5, 1), (33, 1, 1), (15, 8, 1)]     # small ones: refused
KWS_SHAPES = {"49x10x1 -> 25x5x64", "25x5x64 -> 25x5x64", "64 -> 12"}
# the GD32VF103's 32 KiB of RAM holds kws's layers with fewer rows or channels
SMALL_RAM = {(49, 10, 1, 64, 10, 4, 2, "SAME"): (49, 10, 1, 16, 10, 4, 2, "SAME"),
             (25, 5, 64, 64, 1, 1, 1, "SAME"): (10, 5, 64, 64, 1, 1, 1, "SAME"),
             (25, 5, 64, 3, 3, 1, "SAME"): (10, 5, 64, 3, 3, 1, "SAME")}


def sweep_layers(rng, small_ram=False):
    fit = (lambda shape: SMALL_RAM.get(shape, shape)) if small_ram else (lambda shape: shape)
    for h, w, c, oc, kh, kw, s, pad in map(fit, SWEEP_CONV):
        yield as_s16(random_conv_layer(rng, in_h=h, in_w=w, in_c=c, out_c=oc, k_h=kh, k_w=kw,
                                       stride=(s, s), padding=pad), rng, kh * kw * c, 1.0)
    for h, w, c, kh, kw, s, pad in map(fit, SWEEP_DW):
        yield as_s16(random_conv_layer(rng, depthwise=True, in_h=h, in_w=w, in_c=c, k_h=kh, k_w=kw,
                                       stride=(s, s), padding=pad), rng, kh * kw, 1.0)
    for n, m, rows in SWEEP_FC:
        yield as_s16(random_fc_layer(rng, in_features=n, out_features=m, rows=rows), rng, n, 1.0)


@pytest.mark.slow
def test_simulator_byte_exact_and_never_slower(impls, target, tmp_path):
    """Every sweep layer through the kernel wherever it is correct: byte for
    byte; where a build takes it, fewer instructions and no more cycles than
    the reference. ``./tb pytest tests/test_s16_kernels.py -m slow -s`` prints the figures."""
    rng = np.random.default_rng(12)
    by_op = {k.op: k for k in impls}
    cases, taken = [], []
    small_ram = target == "riscv"
    for layer in sweep_layers(rng, small_ram):
        opt = optimized(layer, by_op)
        assert opt is not None, f"{layer.op} {layer.shape}: not computed"
        cases.append((reference(layer), opt, [s16_input(rng, layer)], None))
        taken.append(chosen(layer, impls) is not None)
    assert small_ram or KWS_SHAPES <= {ref.shape for (ref, *_), t in zip(cases, taken) if t}
    rows = simulate_cases(cases, tmp_path, extra_dirs=(TARGETS[target],), target_name=target,
                          ram_budget=24_000 if target == "riscv" else 90_000,
                          flash_budget=90_000 if target == "riscv" else None)
    for (ref, opt, _, _), r, t in zip(cases, rows, taken):
        what = f"{ref.op} {ref.shape}"
        assert_same(r["ref"], r["opt"], what)
        print(f"{what:45s} {r['ref_instr']:>10,} -> {r['opt_instr']:>9,} instructions, "
              f"{r['ref_cycles']:>10,} -> {r['opt_cycles']:>9,} cycles"
              f"{'' if t else '  (refused: reference kept)'}")
        if t:
            assert 0 < r["opt_instr"] < r["ref_instr"], (what, r)
            assert r["opt_cycles"] <= r["ref_cycles"], (what, r)
