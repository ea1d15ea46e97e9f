"""The riscv plugin's RV32IM kernels against the reference kernels, byte for byte.

Natively on the host (the kernels are plain C99) with hypothesis over shapes,
strides, paddings, dilations, depth multipliers, zero points, per-channel
scales and activations; every case also runs in place at the overlaps the
kernel declares to the planner. In the simulator (slow) the same comparison
runs on the rv32imac build, and whole models built for ``riscv`` and
``esp32c3`` match TFLite (the build's validation step).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from kernel_cases import (MODEL_CONV_SHAPES, MODEL_DW_SHAPES, SIM_KINDS, add_cases,  # noqa: E402
                          check_add, check_conv, check_requantization_edge_cases, check_fc, check_shape, conv_1x1_cases,
                          conv_cases, conv_shape_id, dw_cases, dw_shape_id, fc_cases,
                          random_sim_layer)
from opt_harness import (FAST, SWEEP, assert_same, build_library, compare,  # noqa: E402
                         in_place_deltas, optimized, random_add_layer, random_conv_layer,
                         random_fc_layer, reference, run_firmware)
from tbtest import ROOT, mlperf_model  # noqa: E402
from tinybuild import quant  # noqa: E402

RV_DIR = ROOT / "targets" / "riscv" / "kernels"
sys.path.insert(0, str(RV_DIR))
import rv_prepare  # noqa: E402

@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return build_library(tmp_path_factory.mktemp("tbrv"), extra_dirs=(RV_DIR,), name="libtbrv.so")


def rv_kernels(target_name: str = "riscv") -> dict:
    """The KernelImpls a build for ``target_name`` gets for int8 layers, by op
    (the 16x8 ones: tests/test_s16_kernels.py)."""
    from tinybuild import plugins
    pm = plugins.make_plugin_manager()
    return {k.op: k for k in plugins.kernels(pm, plugins.find_target(pm, target_name))
            if "int8" in k.dtypes}


@pytest.fixture(scope="module")
def impls():
    return rv_kernels()


# -- which targets get the kernels ------------------------------------------------------


def rv_elementwise_ops() -> list[str]:
    """The table ops tb_rv_lut_s8 takes (tests/test_target_elementwise.py tests them)."""
    from tinybuild.kernel_registry import REFERENCE
    return [op for op, function in REFERENCE.items() if function == "tb_lut_s8"]


def test_kernels_go_to_rv32_cores_with_the_m_extension():
    from tinybuild import plugins
    pm = plugins.make_plugin_manager()
    riscv_plugin = next(m for m in pm.get_plugins()
                        if getattr(m, "__file__", "") == str(ROOT / "targets" / "riscv" / "plugin.py"))
    has_m_extension, tinybuild_kernels = riscv_plugin.has_m_extension, riscv_plugin.tinybuild_kernels
    assert set(rv_kernels("riscv")) == set(rv_kernels("esp32c3")) == \
        {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", *rv_elementwise_ops(),
         "UNIDIRECTIONAL_SEQUENCE_LSTM"}
    assert "tb_rv_conv2d_s8" not in {k.function for k in rv_kernels("cortex-m4").values()}
    for march, has_m in [("rv32imac", True), ("rv32imc", True), ("rv32im_zicsr", True),
                         ("rv32gc", True), ("rv32ec", False), ("rv32i", False),
                         ("rv32iac_zmmul", True), ("rv32iac_zicsr", False)]:
        assert has_m_extension(("-march=" + march, "-mabi=ilp32")) == has_m, march
    gd32 = plugins.find_target(pm, "riscv")
    assert tinybuild_kernels(replace(gd32, name="rv-no-m", cflags=("-march=rv32ic",))) == []
    assert tinybuild_kernels(replace(gd32, name="other-arch", arch="arm")) == []


# -- strategies ---------------------------------------------------------------------------

def fc_must_accept(layer) -> bool:
    """TFLite's double rescale has a fast exact form for multipliers below 0.5
    (per-tensor, or every output's per-channel one); the kernel must take
    every such layer."""
    rm = float(layer.params["real_multiplier"])
    multipliers = [rm] if rm != 0.0 else layer.consts[3].values
    return all(quant.fc_double_fast(float(m)) is not None for m in multipliers)


@FAST
@given(d=conv_cases)
def test_conv2d_matches_reference(lib, impls, d):
    check_conv(lib, impls, d)


@FAST
@given(d=conv_1x1_cases)
def test_conv2d_1x1_matches_reference(lib, impls, d):
    opt = check_conv(lib, impls, d)
    assert any("no patch extraction" in n for n in opt.notes)


@FAST
@given(d=dw_cases)
def test_depthwise_matches_reference(lib, impls, d):
    check_conv(lib, impls, d, depthwise=True)


@FAST
@given(d=fc_cases)
def test_fully_connected_matches_reference(lib, impls, d):
    check_fc(lib, impls, d, must_accept=fc_must_accept)


@FAST
@given(d=add_cases)
def test_add_matches_reference(lib, impls, d):
    check_add(lib, impls, d)


def test_add_of_the_resnet_scales_is_accepted(lib, impls):
    """Scales like ResNet-8's residual ADDs (similar input scales, output a bit
    larger): the table kernel must take them, and every pair of int8 inputs
    must give the reference's byte."""
    rng = np.random.default_rng(4)
    layer = random_add_layer(rng, size=65536, s1=0.041, z1=-9, s2=0.057, z2=3, so=0.071, zo=-20,
                             activation="RELU")
    a, b = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128))
    compare(lib, impls, layer, [a.reshape(-1).astype(np.int8), b.reshape(-1).astype(np.int8)])


@pytest.mark.slow
@SWEEP
@given(d=conv_cases)
def test_conv2d_matches_reference_sweep(lib, impls, d):
    check_conv(lib, impls, d)


@pytest.mark.slow
@SWEEP
@given(d=dw_cases)
def test_depthwise_matches_reference_sweep(lib, impls, d):
    check_conv(lib, impls, d, depthwise=True)


@pytest.mark.slow
@SWEEP
@given(d=fc_cases)
def test_fully_connected_matches_reference_sweep(lib, impls, d):
    check_fc(lib, impls, d, must_accept=fc_must_accept)


# shapes of the MLPerf Tiny models and the kernels' edge cases: partial pixel
# blocks and channel groups, odd sweeps, transposed planes, K not a multiple of 4
CONV_SHAPES = MODEL_CONV_SHAPES
DW_SHAPES = MODEL_DW_SHAPES + [dict(in_h=13, in_w=6, in_c=8, k_h=3, k_w=3, stride=(2, 2), padding="SAME")]


@pytest.mark.parametrize("shape", CONV_SHAPES, ids=conv_shape_id)
@pytest.mark.parametrize("zps", [(-128, -128), (5, 17)])
def test_conv2d_model_shapes(lib, impls, shape, zps):
    check_shape(lib, impls, shape, zps)


@pytest.mark.parametrize("shape", DW_SHAPES, ids=dw_shape_id)
@pytest.mark.parametrize("zps", [(-128, -128), (5, 17)])
def test_depthwise_model_shapes(lib, impls, shape, zps):
    opt = check_shape(lib, impls, shape, zps, depthwise=True)
    assert opt.overlap == {0: (0, 0)}            # depth multiplier 1: exactly in place
    assert any("path: 3x3" in n for n in opt.notes), opt.notes
    tall = shape["in_h"] > shape["in_w"]
    assert any("transposed" in n for n in opt.notes) == tall, opt.notes


@pytest.mark.parametrize("depthwise", [False, True])
def test_requantization_edge_cases(lib, impls, depthwise):
    # a live bias of (1 << 29) - 5: 4 * |acc| may reach 2^31: no fast form
    check_requantization_edge_cases(lib, impls, depthwise, "MULH", (1 << 29) - 5)


def test_fully_connected_double_rescale_near_ties(lib, impls):
    """Per-tensor FC rescales in double: inputs chosen so that double(acc) * m
    lands on and next to .5, where a fixed-point shortcut would round the other
    way; the kernel must fall back to the double expression there."""
    rng = np.random.default_rng(11)
    for in_scale, w_scale, out_scale in [(0.5, 0.25, 1.0), (0.125, 0.0625, 0.5), (0.1, 0.01, 0.3),
                                         (0.5, 0.04296875, 1.0)]:   # 11/512: exact ties
        layer = random_fc_layer(rng, in_features=16, out_features=9, in_scale=in_scale,
                                w_scale=w_scale, out_scale=out_scale, in_zp=0, out_zp=0)
        for _ in range(20):
            x = rng.integers(-4, 5, size=16).astype(np.int8)
            compare(lib, impls, layer, [x])


def test_fully_connected_double_rescale_at_every_tie(lib, impls):
    """Accumulators on, and one or two away from, every rounding tie of
    double(acc) * real_multiplier up to the int8 range (one FC row per
    accumulator: zero weights, the bias is the accumulator), for multipliers
    whose fixed-point form is exact and ones where it is not: the fast path
    and the double fallback both run and match the reference."""
    rng = np.random.default_rng(12)
    for in_scale, w_scale, out_scale in [(0.5, 0.25, 1.0), (0.1, 0.01, 0.3), (0.03, 0.007, 0.11)]:
        layer = random_fc_layer(rng, in_features=3, out_features=8, in_scale=in_scale,
                                w_scale=w_scale, out_scale=out_scale, in_zp=0, out_zp=0)
        rm = float(layer.params["real_multiplier"])
        accs = sorted({int(np.floor((k + 0.5) / rm)) + d for k in range(-127, 127)
                       for d in (-2, -1, 0, 1, 2)})
        rows = len(accs)
        layer.params.update(out_features=rows)
        layer.consts[0].values = np.zeros(rows * 3, np.int8)
        layer.consts[1].values = np.array(accs, np.int32)
        layer.consts[2].values = np.repeat(layer.consts[2].values[:1], rows, axis=0)
        out = compare(lib, impls, layer, [np.zeros(3, np.int8)])
        assert any("double" in n for n in out.notes)


# -- the requantization identity ----------------------------------------------------------


@settings(max_examples=400, deadline=None, derandomize=True)
@given(real=st.floats(1e-9, 0.999), zp=st.integers(-128, 127),
       bound=st.integers(0, (1 << 29) - 1),
       accs=st.lists(st.integers(-(1 << 29), 1 << 29), min_size=1, max_size=40))
def test_rv_requant_equals_multiply_by_quantized_multiplier(real, zp, bound, accs):
    m, s = quant.quantize_multiplier(real)
    consts = rv_prepare.rv_requant_constants([(m, s)], zp, [bound])
    assume(consts is not None)
    (mm, c, e), = consts
    for acc in accs + [-1, 0, 1, bound, -bound]:
        acc = max(-bound, min(bound, acc))
        assert rv_prepare.rv_requant_eval(acc, mm, c, e) == \
            quant.mul_by_quant_mul(acc, m, s) + zp, (real, zp, acc)


def test_rv_requant_exhaustive_near_ties():
    """Every accumulator in a window around 0 for power-of-two, extreme and
    random multipliers: both roundings' ties are hit."""
    rng = np.random.default_rng(5)
    cases = [(1 << 30, -1), (1 << 30, -5), ((1 << 31) - 1, -1), ((1 << 31) - 1, -30), (0, 0)]
    cases += [quant.quantize_multiplier(float(v)) for v in rng.uniform(1e-4, 0.5, 20)]
    accs = np.arange(-3000, 3001)
    for m, s in cases:
        zp = int(rng.integers(-128, 128))
        (mm, c, e), = rv_prepare.rv_requant_constants([(m, s)], zp, [3000])
        want = [quant.mul_by_quant_mul(int(a), m, s) + zp for a in accs]
        got = [rv_prepare.rv_requant_eval(int(a), mm, c, e) for a in accs]
        assert got == want, (m, s)


def test_rv_requant_refuses_what_it_cannot_prove():
    m, s = quant.quantize_multiplier(0.3)
    assert rv_prepare.rv_requant_constants([(m, s)], 0, [(1 << 29) - 1]) is not None
    assert rv_prepare.rv_requant_constants([(m, s)], 0, [1 << 29]) is None
    # a left shift (multiplier > 1) is not covered by the fast form
    assert rv_prepare.rv_requant_constants([quant.quantize_multiplier(3.0)], 0, [100]) is None


# -- in the simulator: the rv32imac build against the reference ------------------------------

def _sim_cases(impls, seed, count):
    """The model shapes (out of place and in place), then random layers."""
    rng = np.random.default_rng(seed)
    cases = []

    def add(layer, inputs):
        opt = optimized(layer, impls)
        cases.append((reference(layer), opt, inputs, None))
        deltas = in_place_deltas(opt)
        if deltas:
            cases.append((reference(layer), opt, inputs, deltas[0]))

    for shape in CONV_SHAPES[1:]:          # the 49x10 KWS input layer alone fills the RAM
        layer = random_conv_layer(rng, in_zp=int(rng.integers(-128, 128)), out_zp=-128, **shape)
        add(layer, [rng.integers(-128, 128, size=shape["in_h"] * shape["in_w"] * shape["in_c"]).astype(np.int8)])
    for shape in DW_SHAPES:
        if shape["in_h"] * shape["in_w"] * shape["in_c"] > 4000:
            continue
        layer = random_conv_layer(rng, depthwise=True, in_zp=int(rng.integers(-128, 128)),
                                  out_zp=int(rng.integers(-128, 128)), **shape)
        add(layer, [rng.integers(-128, 128, size=shape["in_h"] * shape["in_w"] * shape["in_c"]).astype(np.int8)])
    while len(cases) < count:
        layer, inputs = random_sim_layer(rng, SIM_KINDS[int(rng.integers(0, 4))])
        if layer.op == "FULLY_CONNECTED" and optimized(layer, impls) is None:
            continue                        # a multiplier >= 0.5: not taken
        add(layer, inputs)
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_kernels_in_the_simulator_match_the_reference(tmp_path, impls, seed):
    cases = _sim_cases(impls, seed, 90)
    rows = run_firmware(cases, tmp_path, ram_budget=20_000, extra_dirs=(RV_DIR,), target_name="riscv")
    assert len(rows) == len(cases)
    for (ref, opt, _ref_instr, opt_instr), (case, *_rest) in zip(rows, cases):
        assert opt_instr > 0, f"{case.op} {case.shape}: the optimized kernel did not run"
        assert_same(ref, opt, f"{case.op} {case.shape}")


# -- whole models, built, simulated and validated against TFLite -------------------------

def _build(tmp_path, target: str, model: Path) -> dict:
    if shutil.which("riscv64-unknown-elf-gcc") is None:
        pytest.skip("riscv64-unknown-elf-gcc not installed")
    proc = subprocess.run([sys.executable, "-m", "SCons", "-Q", f"target={target}",
                           f"model={model}", f"build_dir={tmp_path}"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((tmp_path / target / model.stem / "report.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("target", ["riscv", "esp32c3"])
@pytest.mark.parametrize("model", ["kws.h5", "kws_ref_model.tflite"])
def test_models_with_the_rv_kernels_match_tflite(tmp_path, target, model):
    path = ROOT / "models" / model if model.endswith(".h5") else mlperf_model(model)
    report = _build(tmp_path, target, path)
    assert report["validation"]["match"] is True
    kernels = {layer["kernel"] for layer in report["layers"]}
    # kws.h5's FC is per-channel (each output its own double multiplier), kws_ref_model's per-tensor
    assert {"tb_rv_conv2d_s8", "tb_rv_depthwise_conv2d_s8", "tb_rv_fully_connected_s8"} <= kernels
    assert report["arena"]["bytes"] == report["arena"]["lower_bound"]


# -- no cliffs: the paths and choices added for bench/sweep.py's findings ------------------------

MICROSPEECH_DW = dict(in_h=49, in_w=40, in_c=1, k_h=10, k_w=8, stride=(2, 2), depth_multiplier=8,
                      padding="SAME", in_zp=-128, out_zp=-128, activation="RELU")


def every_rv_kernel():
    from opt_harness import target_kernels
    return target_kernels("riscv")


@pytest.fixture(scope="module")
def as_conv():
    """{op: the depthwise-as-convolution kernel}, for opt_harness.compare."""
    found = [k for k in every_rv_kernel()
             if k.op == "DEPTHWISE_CONV_2D" and k.function == "tb_rv_conv2d_s8"]
    assert found, "the riscv plugin offers no depthwise-as-convolution kernel"
    return {"DEPTHWISE_CONV_2D": found[0]}


one_channel_cases = st.fixed_dictionaries({
    "in_h": st.integers(1, 14), "in_w": st.integers(1, 14), "in_c": st.just(1),
    "depth_multiplier": st.sampled_from([2, 3, 4, 8, 16]),
    "k_h": st.integers(1, 10), "k_w": st.integers(1, 8),
    "stride": st.sampled_from([(1, 1), (2, 2), (1, 2), (2, 1)]),
    "dilation": st.sampled_from([(1, 1), (1, 1), (2, 2), (1, 2)]),
    "padding": st.sampled_from(["SAME", "VALID"]), "per_channel": st.booleans(),
    "use_bias": st.booleans(), "weight_range": st.sampled_from([1, 127]),
    "in_scale": st.floats(1e-3, 1.0), "in_zp": st.integers(-128, 127),
    "out_scale": st.floats(1e-3, 2.0), "out_zp": st.integers(-128, 127),
    "activation": st.sampled_from(["NONE", "RELU", "RELU6"]), "seed": st.integers(0, 2**32 - 1)})


@FAST
@given(d=one_channel_cases)
def test_depthwise_on_one_channel_as_convolution_matches_reference(lib, as_conv, d):
    from kernel_cases import valid_window
    d = dict(d)
    assume(valid_window(d))
    rng = np.random.default_rng(d.pop("seed"))
    layer = random_conv_layer(rng, depthwise=True, **d)
    compare(lib, as_conv, layer, [rng.integers(-128, 128, size=d["in_h"] * d["in_w"]).astype(np.int8)])


def test_microspeech_depthwise_layer_runs_as_a_convolution(lib, as_conv):
    from opt_harness import chosen
    rng = np.random.default_rng(0)
    layer = random_conv_layer(rng, depthwise=True, **MICROSPEECH_DW)
    opt = chosen(layer, every_rv_kernel())
    assert opt is not None and opt.kernel == "tb_rv_conv2d_s8", opt and opt.notes
    compare(lib, as_conv, layer, [rng.integers(-128, 128, size=49 * 40).astype(np.int8)])
    # two outputs per input: the depthwise kernel (a 4-channel block would be half empty)
    layer = random_conv_layer(rng, depthwise=True, **{**MICROSPEECH_DW, "depth_multiplier": 2})
    assert chosen(layer, every_rv_kernel()).kernel == "tb_rv_depthwise_conv2d_s8"


@pytest.mark.parametrize("shape, depthwise", [
    # a plane per channel for one output pixel: 64,083 instructions against 35,717
    (dict(in_h=1, in_w=1, in_c=256, k_h=3, k_w=3, padding="SAME"), True),
    (dict(in_h=2, in_w=2, in_c=64, k_h=3, k_w=3, stride=(2, 2), padding="SAME"), True),
    # 2 output channels of a 4-channel block on 64 inputs: 1.48x the reference
    (dict(in_h=6, in_w=5, in_c=64, out_c=2, k_h=5, k_w=5, padding="SAME"), False),
], ids=["dw1x1x256", "dw2x2x64s2", "conv6x5x64>2"])
def test_reference_kernel_where_the_optimized_one_was_slower(shape, depthwise):
    from opt_harness import chosen
    layer = random_conv_layer(np.random.default_rng(1), depthwise=depthwise, in_zp=-128,
                              out_zp=-128, **shape)
    assert chosen(layer, every_rv_kernel()) is None


# the MLPerf Tiny layers (not the edge cases with 3-7 output channels, a part of a 4-channel block)
@pytest.mark.parametrize("shape", [s for s in MODEL_CONV_SHAPES if s["out_c"] >= 8] + MODEL_DW_SHAPES,
                         ids=lambda s: f"{s['in_h']}x{s['in_w']}x{s['in_c']}-{s.get('out_c', 'dw')}")
def test_model_layers_keep_the_optimized_kernels(shape):
    from opt_harness import chosen
    layer = random_conv_layer(np.random.default_rng(2), depthwise="out_c" not in shape,
                              in_zp=-128, out_zp=-128, **shape)
    assert chosen(layer, every_rv_kernel()) is not None


@FAST
@given(rows=st.sampled_from([1, 2, 4, 5, 9, 10, 12, 13]), k=st.integers(1, 300),
       per_channel=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_fully_connected_rows_one_by_one_match_reference(lib, impls, rows, k, per_channel, seed):
    rng = np.random.default_rng(seed)
    layer = random_fc_layer(rng, in_features=k, out_features=rows, per_channel=per_channel,
                            in_zp=int(rng.integers(-128, 128)), out_zp=int(rng.integers(-128, 128)))
    opt = compare(lib, impls, layer, [rng.integers(-128, 128, size=k).astype(np.int8)],
                  must_accept=False)
    assume(opt is not None)
    one_by_one = rows % 8 if rows % 8 <= rv_prepare.FC_SINGLE_ROWS else 0
    assert any(f"{one_by_one} row(s) one by one" in n for n in opt.notes) == bool(one_by_one)


@pytest.mark.slow
def test_sweep_sample_is_never_slower_than_the_reference(tmp_path):
    if shutil.which("riscv64-unknown-elf-gcc") is None:
        pytest.skip("riscv64-unknown-elf-gcc not installed")
    sys.path.insert(0, str(ROOT / "bench"))
    import sweep
    sample = sweep.small_sample(("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD"), 18)
    cases = sweep.run_target("riscv", sample, tmp_path)
    assert sum(c.kernel != "reference" for c in cases) > 9
    for c in cases:
        r = c.result
        assert not sweep.mismatch(c), f"{c.label}: {c.kernel} differs from the reference"
        if c.kernel != "reference":        # (else both runs are the reference kernel's)
            assert r["opt_instr"] <= r["ref_instr"], \
                f"{c.label}: {c.kernel} {r['opt_instr']} > {r['ref_instr']} instructions"
    micro = next(c for c in cases if c.name.startswith("MicroSpeech"))
    assert micro.kernel == "tb_rv_conv2d_s8"      # 5.35 instructions per MAC before, 4.07 now
    assert micro.result["opt_instr"] / micro.macs < 4.5
