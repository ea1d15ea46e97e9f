"""The channel-parallel Cortex-M4 depthwise kernel (cm4_dw_channels_s8.c) against
the reference kernel, byte for byte.

On the host (the portable fallbacks of the DSP intrinsics) with hypothesis over
shapes, strides, dilations, paddings, zero points, per-channel and per-tensor
scales and activations, each case also in place at the ends of every interval
the kernel declares; the MLPerf Tiny layer shapes; which layers it takes. In
the simulator (slow): the Cortex-M4 build (the assembly) against the reference,
and str_ww built for cortex-m4, validated against TFLite, with the arena at its
bound and within the instruction goal. Natively (slow): str_ww and VWW with
every cortex-m4 kernel against TFLite.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from kernel_cases import QUANT, valid_window  # noqa: E402
from opt_harness import (assert_same, forced, kernel_fixtures, random_conv_layer,  # noqa: E402
                         reference, run_firmware, run_layer, target_kernels)
from tbtest import ROOT, mlperf_model  # noqa: E402
from tinybuild.planner import ALIGNMENT, intervals  # noqa: E402

FUNCTION = "tb_cm4_dw_channels_s8"
FUNCTION_3X3 = "tb_cm4_dw_channels_3x3_s8"
FAST = settings(max_examples=200, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
SWEEP = settings(max_examples=1500, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


def cm4_impls():
    return target_kernels("cortex-m4")


impl, module, lib = kernel_fixtures(FUNCTION, "tbdwc")


def deltas(opt) -> list[int]:
    """Aligned output - input offsets at and near the ends of each declared interval."""
    found = set()
    for lo, hi in intervals(opt.overlap.get(opt.inputs[0])):
        top = None if hi is None else hi // ALIGNMENT * ALIGNMENT
        bottom = None if lo is None else -(-lo // ALIGNMENT) * ALIGNMENT
        if top is not None and bottom is not None and bottom > top:
            continue
        for d in (top, bottom, None if top is None else top - ALIGNMENT,
                  None if bottom is None else bottom + ALIGNMENT):
            if d is not None and (top is None or d <= top) and (bottom is None or d >= bottom):
                found.add(d)
    return sorted(found)


def compare(lib, impl, layer, x):
    opt = forced(layer, impl)
    want = run_layer(lib, reference(layer), [x])
    assert_same(want, run_layer(lib, opt, [x]), layer.shape)
    for d in deltas(opt):
        assert_same(want, run_layer(lib, opt, [x], overlap_delta=d), f"{layer.shape} in place at {d}")
    return opt


cases = st.fixed_dictionaries({
    "in_h": st.integers(1, 12), "in_w": st.integers(1, 12),
    "in_c": st.sampled_from([4, 8, 12, 16, 20, 40]),
    "k_h": st.integers(1, 5), "k_w": st.integers(1, 5),
    "stride": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "dilation": st.tuples(st.integers(1, 2), st.integers(1, 2)),
    "padding": st.sampled_from(["SAME", "VALID"]), "per_channel": st.booleans(),
    "use_bias": st.booleans(), "weight_range": st.sampled_from([1, 127]), **QUANT})


def _check(lib, impl, d):
    d = dict(d)
    assume(valid_window(d))
    rng = np.random.default_rng(d.pop("seed"))
    layer = random_conv_layer(rng, depthwise=True, **d)
    x = rng.integers(-128, 128, size=d["in_h"] * d["in_w"] * d["in_c"]).astype(np.int8)
    compare(lib, impl, layer, x)


@FAST
@given(d=cases)
def test_matches_reference(lib, impl, d):
    _check(lib, impl, d)


@pytest.mark.slow
@SWEEP
@given(d=cases)
def test_matches_reference_sweep(lib, impl, d):
    _check(lib, impl, d)


# str_ww (1-D, VALID, stride 1), VWW's small maps and stride-2 layers, KWS
MODEL_SHAPES = [
    dict(in_h=30, in_w=1, in_c=40, k_h=3, k_w=1, padding="VALID"),
    dict(in_h=28, in_w=1, in_c=128, k_h=5, k_w=1, padding="VALID"),
    dict(in_h=24, in_w=1, in_c=128, k_h=10, k_w=1, padding="VALID"),
    dict(in_h=15, in_w=1, in_c=128, k_h=15, k_w=1, padding="VALID"),
    dict(in_h=3, in_w=3, in_c=256, k_h=3, k_w=3, padding="SAME"),
    dict(in_h=6, in_w=6, in_c=128, k_h=3, k_w=3, padding="SAME"),
    dict(in_h=6, in_w=6, in_c=128, k_h=3, k_w=3, stride=(2, 2), padding="SAME"),
    dict(in_h=12, in_w=12, in_c=64, k_h=3, k_w=3, stride=(2, 2), padding="SAME"),
    dict(in_h=25, in_w=5, in_c=64, k_h=3, k_w=3, padding="SAME"),
    # 32 taps, the most the stack's tap list holds; an odd count of 31
    dict(in_h=6, in_w=9, in_c=8, k_h=4, k_w=8, padding="SAME"),
    dict(in_h=40, in_w=1, in_c=4, k_h=31, k_w=1, padding="VALID"),
]


@pytest.mark.parametrize("shape", MODEL_SHAPES,
                         ids=lambda s: f"{s['in_h']}x{s['in_w']}x{s['in_c']}k{s['k_h']}{s['k_w']}"
                                       f"s{s.get('stride', (1, 1))[0]}")
@pytest.mark.parametrize("zps", [(-128, -128), (5, 17)])
def test_model_shapes(lib, impl, shape, zps):
    rng = np.random.default_rng(sum(map(ord, str(shape))))
    layer = random_conv_layer(rng, depthwise=True, in_zp=zps[0], out_zp=zps[1], **shape)
    x = rng.integers(-128, 128, size=shape["in_h"] * shape["in_w"] * shape["in_c"]).astype(np.int8)
    opt = compare(lib, impl, layer, x)
    if shape["padding"] == "VALID" and shape.get("stride", (1, 1)) == (1, 1):
        assert (0, 0) in intervals(opt.overlap[0]), opt.overlap     # exactly in place too


def test_requantization_edge_cases(lib, impl):
    """Dead channels (weights 0, bias near 2^30: constant outputs), tiny
    multipliers, and a live bias that rules the fast form out."""
    from tinybuild import quant
    rng = np.random.default_rng(3)
    for huge_live_bias, form in [(False, "SMMLAR"), (True, "MultiplyByQuantizedMultiplier")]:
        layer = random_conv_layer(rng, depthwise=True, in_h=5, in_w=5, in_c=8, in_zp=-128,
                                  out_zp=-128, padding="SAME")
        w = layer.consts[0].values.copy()
        b = layer.consts[1].values.copy()
        w.reshape(-1, 8)[:, 1] = 0
        b[1] = (1 << 30) + 7
        if huge_live_bias:
            b[2] = (1 << 30) - 5
        m = layer.consts[2].values.copy()
        m[1] = quant.quantize_multiplier(2.0 ** -27 * 0.77)
        m[3] = (0, 0)
        layer.consts[0].values, layer.consts[1].values, layer.consts[2].values = w, b, m
        x = rng.integers(-128, 128, size=200).astype(np.int8)
        opt = compare(lib, impl, layer, x)
        assert any(form in n for n in opt.notes), opt.notes


def test_weight_layout_is_what_the_kernel_loads(module):
    """Per group, with an odd tap count first the single first tap t: (w_t[c],
    w_t[c+2]), (w_t[c+1], w_t[c+3]); then per tap pair (a, b): (w_a[c], w_b[c]),
    (w_a[c+2], w_b[c+2]), (w_a[c+1], w_b[c+1]), (w_a[c+3], w_b[c+3])."""
    w = np.arange(3 * 8).reshape(3, 8)            # taps x channels: value 8 * tap + channel
    got = module.channel_words(w).reshape(2, 12)  # group, its 12 int16
    assert got[0].tolist() == [0, 2, 1, 3, 8, 16, 10, 18, 9, 17, 11, 19]
    assert got[1].tolist() == [4, 6, 5, 7, 12, 20, 14, 22, 13, 21, 15, 23]
    even = module.channel_words(np.arange(2 * 4).reshape(2, 4))
    assert even.tolist() == [0, 4, 2, 6, 1, 5, 3, 7]


def test_which_layers_it_takes(impl, module):
    """All of str_ww's depthwise layers (the plane kernel's general path) and VWW's
    3x3x256 and 6x6 stride-2 maps; not KWS's 25x5 or VWW's 6x6 and larger 3x3
    stride-1 maps (the plane kernel's sweep is faster there); never depth
    multipliers > 1, channel counts that are not a multiple of 4, more than 32 taps."""
    rng = np.random.default_rng(0)
    take = lambda **s: impl.accepts(random_conv_layer(rng, depthwise=True, **s))
    for shape in MODEL_SHAPES[:4]:
        assert take(**shape), shape
    assert take(in_h=3, in_w=3, in_c=256, k_h=3, k_w=3, padding="SAME")
    # a clamped activation runs the C loop, which the estimate does not cover: only
    # where the plane kernel would take its general path
    assert not take(in_h=3, in_w=3, in_c=256, k_h=3, k_w=3, padding="SAME", activation="RELU6")
    assert take(**MODEL_SHAPES[1], activation="RELU6")
    assert take(in_h=6, in_w=6, in_c=128, k_h=3, k_w=3, stride=(2, 2), padding="SAME")
    # the plane kernel 98,174 core cycles against this one's 102,335 (plane_cycles refitted,
    # tests/test_cm4_choice_fixes.py); a build gives it tb_cm4_dw_channels_3x3_s8 (84,826)
    assert not take(in_h=12, in_w=12, in_c=64, k_h=3, k_w=3, stride=(2, 2), padding="SAME")
    assert not take(in_h=24, in_w=24, in_c=32, k_h=3, k_w=3, stride=(2, 2), padding="SAME")
    assert not take(in_h=6, in_w=6, in_c=128, k_h=3, k_w=3, padding="SAME")
    assert not take(in_h=12, in_w=12, in_c=64, k_h=3, k_w=3, padding="SAME")
    assert not take(in_h=25, in_w=5, in_c=64, k_h=3, k_w=3, padding="SAME")
    assert not take(in_h=48, in_w=48, in_c=8, k_h=3, k_w=3, padding="SAME")
    assert not take(in_h=8, in_w=1, in_c=6, k_h=3, k_w=1, padding="VALID")
    assert not take(in_h=8, in_w=1, in_c=4, k_h=3, k_w=1, padding="VALID", depth_multiplier=2)
    assert not take(in_h=40, in_w=1, in_c=4, k_h=33, k_w=1, padding="VALID")


# -- in the simulator ---------------------------------------------------------------------

@pytest.mark.slow
def test_cortex_m4_build_matches_the_reference(tmp_path, impl):
    rng = np.random.default_rng(21)
    shapes = list(MODEL_SHAPES)
    while len(shapes) < 40:
        shapes.append(dict(in_h=int(rng.integers(1, 9)), in_w=int(rng.integers(1, 9)),
                           in_c=int(rng.choice([4, 8, 12, 24])), k_h=int(rng.integers(1, 5)),
                           k_w=int(rng.integers(1, 5)),
                           stride=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
                           dilation=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
                           padding="SAME", activation=str(rng.choice(["NONE", "RELU6"])),
                           per_channel=bool(rng.integers(0, 2))))
    cases = []
    for shape in shapes:
        layer = random_conv_layer(rng, depthwise=True, in_zp=int(rng.integers(-128, 128)),
                                  out_zp=int(rng.integers(-128, 128)), **shape)
        x = rng.integers(-128, 128, size=shape["in_h"] * shape["in_w"] * shape["in_c"]).astype(np.int8)
        opt = forced(layer, impl)
        cases.append((reference(layer), opt, [x], None))
        cases.append((reference(layer), opt, [x], deltas(opt)[-1]))
    rows = run_firmware(cases, tmp_path)
    for (ref, got, _, _), (layer, *_rest) in zip(rows, cases):
        assert_same(ref, got, f"{layer.shape} in the simulator")


STR_WW_GOAL = 1_113_766          # 0.5x TFLM + CMSIS-NN's 2,227,533 instructions


@pytest.mark.slow
def test_str_ww_on_cortex_m4_matches_tflite_within_the_goal(tmp_path):
    model = mlperf_model("str_ww_ref_model.tflite")
    scons = Path(sys.executable).with_name("scons")
    result = subprocess.run([str(scons), "-C", str(ROOT), "-Q", f"build_dir={tmp_path}",
                             "target=cortex-m4", f"model={model}"], capture_output=True,
                            text=True, env=os.environ.copy(), timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "output matches TFLite reference: yes" in result.stdout
    report = json.loads((tmp_path / "cortex-m4" / "str_ww_ref_model" / "report.json").read_text())
    assert report["arena"]["bytes"] == report["arena"]["lower_bound"]
    dw = [l for l in report["layers"] if l["op"] == "DEPTHWISE_CONV_2D"]
    assert dw and all(l["kernel"] == FUNCTION for l in dw), [l["kernel"] for l in dw]
    assert report["inference"]["instructions"] <= STR_WW_GOAL, report["inference"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["str_ww_ref_model.tflite", "vww_96_int8.tflite"])
def test_models_natively_match_tflite(tmp_path, name):
    """The whole model with every cortex-m4 kernel (this one or its 3x3 form where they
    accept: VWW's channel-parallel layers all run the 3x3 form), the kernels' portable
    C on the host, against TFLite."""
    from tinybuild import pipeline
    from tinybuild.host import build_host_model, run_host_model
    from tinybuild.reference import make_inputs, reference_outputs
    from opt_harness import CM4_DIR

    model = mlperf_model(name)
    plan = pipeline.generate(model, tmp_path, cm4_impls())
    assert any(l["kernel"] in (FUNCTION, FUNCTION_3X3) for l in plan["layers"])
    assert plan["memory"]["arena_size"] == plan["memory"]["lower_bound"]
    exe = build_host_model(tmp_path, tmp_path / "model_host",
                           extra_sources=sorted(CM4_DIR.glob("*.c")))
    inputs = make_inputs(model, 4, seed=11, calibration=None)
    for i, (data, want) in enumerate(zip(inputs, reference_outputs(model, inputs))):
        assert run_host_model(exe, data) == want, f"{name} input {i}: output differs from TFLite"
