"""The cortex-m4 plugin's optimized kernels against the reference kernels, byte for byte.

Natively on the host (the kernels' portable C fallbacks for the DSP
intrinsics) with hypothesis over shapes, strides, paddings, dilations, zero
points, per-channel scales and activations; every case also runs in place at
the overlap the kernel declares to the planner. In the simulator (slow) the
same comparison runs on the Cortex-M4 build (the real instructions), the
intrinsic fallbacks are checked against the instructions, and whole models
built with the optimized kernels match TFLite.
"""
from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from kernel_cases import (MODEL_CONV_SHAPES, MODEL_DW_SHAPES, SIM_KINDS, add_cases,  # noqa: E402
                          check_add, check_conv, check_requantization_edge_cases, check_fc, check_shape, conv_cases,
                          conv_shape_id, dw_cases, dw_shape_id, fc_cases, random_sim_layer)
from opt_harness import (CM4_DIR, FAST, REF_DIR, SWEEP, assert_same, build_library,  # noqa: E402
                         cm4_kernels, compare, in_place_deltas, optimized,
                         random_conv_layer, random_fc_layer, random_pool_layer, reference,
                         run_firmware)
from tbtest import mlperf_model  # noqa: E402
from tinybuild import quant  # noqa: E402


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return build_library(tmp_path_factory.mktemp("tbopt"))


@pytest.fixture(scope="module")
def impls():
    return cm4_kernels()


# -- strategies ---------------------------------------------------------------------------

@FAST
@given(d=conv_cases)
def test_conv2d_matches_reference(lib, impls, d):
    check_conv(lib, impls, d)


@FAST
@given(d=dw_cases)
def test_depthwise_matches_reference(lib, impls, d):
    check_conv(lib, impls, d, depthwise=True)


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


# shapes of the MLPerf Tiny models, and the kernels' edge cases (several
# unrolled sweeps, partial pixel blocks, odd channel counts, in_c % 4 != 0)
CONV_SHAPES = MODEL_CONV_SHAPES + [
    # 3x3 on 3 channels: kernel rows of 9 bytes (VWW's and ResNet-8's first layers)
    dict(in_h=16, in_w=16, in_c=3, out_c=8, k_h=3, k_w=3, stride=(2, 2), padding="SAME"),
    dict(in_h=10, in_w=12, in_c=3, out_c=6, k_h=3, k_w=3, padding="SAME"),
    # ... their border pixels staged as 3 rows of 9 bytes, rows 2 apart (dilation), odd widths
    dict(in_h=9, in_w=13, in_c=3, out_c=5, k_h=3, k_w=3, stride=(1, 2), dilation=(2, 1),
         padding="SAME"),
    # wide rows: runs of interior blocks (no division, no bounds checks), both directions
    dict(in_h=5, in_w=41, in_c=3, out_c=4, k_h=3, k_w=3, stride=(1, 2), padding="SAME"),
    dict(in_h=4, in_w=30, in_c=4, out_c=3, k_h=3, k_w=3, padding="VALID"),
    # one input word per kernel row (k_w * in_c == 4), windows crossing one or both edges
    dict(in_h=7, in_w=3, in_c=1, out_c=4, k_h=3, k_w=4, padding="SAME"),
    dict(in_h=5, in_w=1, in_c=2, out_c=3, k_h=2, k_w=2, stride=(1, 2), padding="SAME"),
    dict(in_h=6, in_w=9, in_c=1, out_c=6, k_h=5, k_w=4, stride=(2, 3), dilation=(2, 1),
         padding="SAME"),
    # 3 channels padded to 4 per tap, 15 pixels (a last block of 3: the scratch tail)
    dict(in_h=5, in_w=3, in_c=3, out_c=5, k_h=2, k_w=2, padding="SAME"),
    # ResNet-8's 3x3 layers: planes above CONV_PLANE_BUDGET where they pay (filled and
    # copied 16 bytes per pass), stride 2 padded at the bottom and right only
    dict(in_h=32, in_w=32, in_c=16, out_c=6, k_h=3, k_w=3, padding="SAME"),
    dict(in_h=32, in_w=32, in_c=16, out_c=4, k_h=3, k_w=3, stride=(2, 2), padding="SAME"),
    dict(in_h=32, in_w=32, in_c=3, out_c=4, k_h=3, k_w=3, padding="SAME"),
]
# (shape, takes the plane): large planes only where the border work they save is
# estimated clearly above the copy
LARGE_PLANES = [
    (dict(in_h=32, in_w=32, in_c=16, out_c=16, k_h=3, k_w=3, padding="SAME"), True),
    (dict(in_h=16, in_w=16, in_c=32, out_c=32, k_h=3, k_w=3, padding="SAME"), True),
    (dict(in_h=32, in_w=32, in_c=3, out_c=16, k_h=3, k_w=3, padding="SAME"), True),
    # VWW's first layer: 95 border pixels on the cheap 3x3x3 border path, 28 KB to copy
    (dict(in_h=96, in_w=96, in_c=3, out_c=8, k_h=3, k_w=3, stride=(2, 2), padding="SAME"), False),
    # above CONV_PLANE_MAX
    (dict(in_h=64, in_w=64, in_c=16, out_c=16, k_h=3, k_w=3, padding="SAME"), False),
    (dict(in_h=32, in_w=32, in_c=16, out_c=16, k_h=3, k_w=3, padding="VALID"), False),
]
DW_SHAPES = MODEL_DW_SHAPES + [
    dict(in_h=6, in_w=6, in_c=8, k_h=3, k_w=3, stride=(2, 2), padding="SAME"),
    # taller than wide: the 3x3 paths run transposed (long plane rows: chunked sweeps)
    dict(in_h=140, in_w=4, in_c=8, k_h=3, k_w=3, padding="SAME"),
    dict(in_h=49, in_w=2, in_c=4, k_h=3, k_w=3, stride=(2, 2), padding="SAME"),
]


@pytest.mark.parametrize("shape", CONV_SHAPES, ids=conv_shape_id)
@pytest.mark.parametrize("zps", [(-128, -128), (5, 17)])
def test_conv2d_model_shapes(lib, impls, shape, zps):
    check_shape(lib, impls, shape, zps)


@pytest.mark.parametrize("shape", CONV_SHAPES, ids=conv_shape_id)
def test_conv2d_model_shapes_without_the_padded_plane(lib, impls, shape, monkeypatch):
    """Padded inputs are copied into a zero-point-framed plane when small or
    where it pays (every block then takes the interior path); without it the
    border blocks take the per-pixel patch extraction."""
    cm4_prepare = sys.modules[impls["CONV_2D"].prepare.__module__]
    rng = np.random.default_rng(sum(map(ord, str(shape))))
    layer = random_conv_layer(rng, in_zp=3, out_zp=-7, **shape)
    x = rng.integers(-128, 128, size=shape["in_h"] * shape["in_w"] * shape["in_c"]).astype(np.int8)
    with_plane = compare(lib, impls, layer, [x])
    monkeypatch.setattr(cm4_prepare, "CONV_PLANE_BUDGET", 0)
    monkeypatch.setattr(cm4_prepare, "CONV_PLANE_MAX", 0)
    without = compare(lib, impls, layer, [x])
    assert not any("plane" in n for n in without.notes)
    if shape["in_h"] == 49:                       # KWS's first layer takes the plane
        assert any("plane" in n for n in with_plane.notes), with_plane.notes


@pytest.mark.parametrize("shape,plane", LARGE_PLANES, ids=lambda v: conv_shape_id(v) if
                         isinstance(v, dict) else str(v))
def test_conv2d_large_padded_plane_only_where_it_pays(impls, shape, plane):
    layer = random_conv_layer(np.random.default_rng(3), in_zp=-128, out_zp=-128, **shape)
    notes = optimized(layer, impls).notes
    assert any("plane" in n for n in notes) == plane, notes


def test_conv2d_sign_term_is_left_out_only_for_zero_point_minus_128(impls):
    rng = np.random.default_rng(11)
    for out_zp, activation in [(-128, "NONE"), (-128, "RELU"), (-128, "RELU6"), (-127, "NONE"),
                               (0, "NONE")]:
        layer = random_conv_layer(rng, in_h=4, in_w=4, in_c=8, out_c=4, k_h=1, k_w=1,
                                  out_zp=out_zp, activation=activation, out_scale=0.1)
        opt = optimized(layer, impls)
        flags = int(next(c.values for c in opt.consts if c.role == "rq")[0])
        full = (layer.params["act_min"], layer.params["act_max"]) == (-128, 127)
        assert bool(flags & 8) == (out_zp == -128 and full), (out_zp, activation, flags)
        assert (activation == "RELU6") != full


@settings(max_examples=300, deadline=None, derandomize=True)
@given(real=st.floats(1e-6, 0.99), accs=st.lists(st.integers(-(1 << 29), -1), min_size=1,
                                                  max_size=20))
def test_fast_requant_without_sign_term_clamps_negative_sums_alike(real, accs):
    """What cm4_prepare.conv_no_sign relies on: with zero point -128, a negative
    accumulator gives -128 after the clamp with or without the sign term."""
    m, shift = quant.quantize_multiplier(real)
    fast = quant.fast_requant([(m, shift)], -128, [1 << 29])
    assume(fast is not None)
    (mm, b, e), = fast
    for acc in accs:
        with_sign = quant.fast_requant_eval(acc, mm, b, e)
        hi = (b * (1 << 32) + 2 * acc * mm + (1 << 31)) >> 32
        without = hi >> e
        assert max(-128, min(127, with_sign)) == max(-128, min(127, without)) == \
            max(-128, min(127, quant.mul_by_quant_mul(acc, m, shift) - 128))


@pytest.mark.parametrize("shape", DW_SHAPES, ids=dw_shape_id)
@pytest.mark.parametrize("zps", [(-128, -128), (5, 17)])
def test_depthwise_model_shapes(lib, impls, shape, zps):
    opt = check_shape(lib, impls, shape, zps, depthwise=True)
    assert opt.overlap == {0: (0, 0)}            # depth multiplier 1: exactly in place


@pytest.mark.parametrize("depthwise", [False, True])
def test_requantization_edge_cases(lib, impls, depthwise):
    # a live bias of (1 << 30) - 5: |acc| may reach 2^30: the fast form cannot double it
    check_requantization_edge_cases(lib, impls, depthwise, "SMMLAR", (1 << 30) - 5)


@FAST
@given(d=fc_cases)
def test_fully_connected_matches_reference(lib, impls, d):
    check_fc(lib, impls, d)


def test_fully_connected_double_rescale_near_ties(lib, impls):
    """Per-tensor FC rescales in double: inputs chosen so that double(acc) * m
    lands on and next to .5 (exact powers of two), where a fixed-point
    shortcut would round the other way."""
    rng = np.random.default_rng(11)
    for in_scale, w_scale, out_scale in [(0.5, 0.25, 1.0), (0.125, 0.0625, 0.5), (0.1, 0.01, 0.3),
                                         (0.5, 0.04296875, 1.0)]:   # 11/512: exact ties
        layer = random_fc_layer(rng, in_features=16, out_features=9, in_scale=in_scale,
                                w_scale=w_scale, out_scale=out_scale, in_zp=0, out_zp=0)
        for _ in range(20):
            x = rng.integers(-4, 5, size=16).astype(np.int8)
            compare(lib, impls, layer, [x])


@FAST
@given(d=add_cases)
def test_add_matches_reference(lib, impls, d):
    check_add(lib, impls, d)


pool_cases = st.fixed_dictionaries({
    "in_h": st.integers(1, 12), "in_w": st.integers(1, 12), "c": st.integers(1, 20),
    "k_h": st.integers(1, 5), "k_w": st.integers(1, 5),
    "stride": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "padding": st.sampled_from(["SAME", "VALID"]),
    "activation": st.sampled_from(["NONE", "RELU", "RELU6"]),
    "scale": st.floats(1e-3, 1.0), "zp": st.integers(-128, 127), "seed": st.integers(0, 2**32 - 1)})


@FAST
@given(d=pool_cases)
def test_avg_pool_matches_reference(lib, impls, d):
    d = dict(d)
    assume(d["padding"] == "SAME" or (d["k_h"] <= d["in_h"] and d["k_w"] <= d["in_w"]))
    rng = np.random.default_rng(d.pop("seed"))
    layer = random_pool_layer(rng, **d)
    x = rng.integers(-128, 128, size=d["in_h"] * d["in_w"] * d["c"]).astype(np.int8)
    compare(lib, impls, layer, [x])


def test_global_average_pool_of_the_models(lib, impls):
    rng = np.random.default_rng(2)
    for h, w, c in [(25, 5, 64), (8, 8, 64), (3, 3, 256), (16, 16, 3)]:
        layer = random_pool_layer(rng, in_h=h, in_w=w, c=c, k_h=h, k_w=w, stride=(h, w), zp=-128)
        compare(lib, impls, layer, [rng.integers(-128, 128, size=h * w * c).astype(np.int8)])


# -- the build-time arithmetic --------------------------------------------------------------

@settings(max_examples=400, deadline=None, derandomize=True)
@given(real=st.floats(1e-9, 0.999), zp=st.integers(-128, 127), bound=st.integers(0, (1 << 30) - 1),
       accs=st.lists(st.integers(-(1 << 30), (1 << 30)), min_size=1, max_size=40),
       zp_in_b=st.booleans())
def test_fast_requant_equals_multiply_by_quantized_multiplier(real, zp, bound, accs, zp_in_b):
    m, s = quant.quantize_multiplier(real)
    fast = quant.fast_requant([(m, s)], zp, [bound], zero_point_in_b=zp_in_b)
    assume(fast is not None)
    (mm, b, e), = fast
    extra = 0 if zp_in_b else zp
    for acc in accs + [-1, 0, 1, bound, -bound]:
        acc = max(-bound, min(bound, acc))
        assert quant.fast_requant_eval(acc, mm, b, e) + extra == \
            quant.mul_by_quant_mul(acc, m, s) + zp, (real, zp, acc)


def test_fast_requant_exhaustive_near_ties():
    """Every accumulator in a window around 0 for power-of-two and random multipliers:
    the rounding ties of both roundings are hit."""
    rng = np.random.default_rng(5)
    cases = [(1 << 30, -1), (1 << 30, -5), ((1 << 31) - 1, -1), (0, 0)]
    cases += [quant.quantize_multiplier(float(v)) for v in rng.uniform(1e-4, 0.5, 20)]
    for m, s in cases:
        zp = int(rng.integers(-128, 128))
        (mm, b, e), = quant.fast_requant([(m, s)], zp, [3000])
        for acc in range(-3000, 3001):
            assert quant.fast_requant_eval(acc, mm, b, e) == quant.mul_by_quant_mul(acc, m, s) + zp


def _round_half_away(v: float) -> int:
    if v >= 1073741824.0:
        return 1073741824
    if v <= -1073741824.0:
        return -1073741824
    t = int(v)
    f = v - t
    return t + 1 if f >= 0.5 else (t - 1 if f <= -0.5 else t)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(rm=st.floats(1e-7, 0.4999), accs=st.lists(st.integers(-(1 << 30), 1 << 30), min_size=1,
                                                  max_size=50), ties=st.lists(st.integers(-300, 300), max_size=20))
def test_fc_double_fast_path_is_exact_or_defers(rm, accs, ties):
    r, t = quant.fc_double_fast(rm)
    s = 32 + t
    for acc in accs + [int(round((k + 0.5) / rm)) + d for k in ties for d in (-1, 0, 1)]:
        if abs(acc) >= 1 << 30:
            continue
        a = abs(acc)
        q = a * r + (1 << (s - 1))
        frac = q & ((1 << s) - 1)
        if a <= frac < (1 << s) - a:
            c = q >> s
            assert (-c if acc < 0 else c) == _round_half_away(float(acc) * rm), (rm, acc)


# -- intrinsics: the portable fallbacks compute what the instructions compute ----------------

INTRINSICS_C = r'''
#include "tb_cm4.h"
void tb_check_intrinsics(const uint32_t *a, const uint32_t *b, const uint32_t *c, int32_t n,
                         uint32_t *out) {
  int32_t i;
  for (i = 0; i < n; ++i) {
    uint32_t *o = out + 12 * i;
    o[0] = tb_sxtb16(a[i]);
    o[1] = tb_sxtb16_ror8(a[i]);
    o[2] = tb_sxtab16(b[i], a[i]);
    o[3] = tb_sxtab16_ror8(b[i], a[i]);
    o[4] = (uint32_t)tb_smlad(a[i], b[i], (int32_t)c[i]);
    o[5] = (uint32_t)tb_smlabb(a[i], b[i], (int32_t)c[i]);
    o[6] = (uint32_t)tb_smlabt(a[i], b[i], (int32_t)c[i]);
    o[7] = (uint32_t)tb_smlatb(a[i], b[i], (int32_t)c[i]);
    o[8] = (uint32_t)tb_smmlar((int32_t)a[i], (int32_t)b[i], (int32_t)c[i]);
    o[9] = (uint32_t)tb_ssat8((int32_t)c[i]);
    o[10] = tb_pkhbt16(a[i], b[i]);
    o[11] = tb_pkhtb16(a[i], b[i]);
  }
}
'''


def _intrinsic_operands(n=2000):
    rng = np.random.default_rng(9)
    pick = lambda: np.concatenate([rng.integers(0, 1 << 32, n - 8, dtype=np.uint64),
                                   np.array([0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x80008000,
                                             0x7FFF7FFF, 0x00FF00FF], np.uint64)]).astype(np.uint32)
    return pick(), pick(), pick()


def _host_intrinsics(tmp_path, a, b, c):
    src = tmp_path / "intrinsics.c"
    src.write_text(INTRINSICS_C)
    so = tmp_path / "libintr.so"
    subprocess.run(["gcc", "-std=c99", "-O2", "-fPIC", "-shared", "-I", str(CM4_DIR), "-I",
                    str(REF_DIR), str(src), "-o", str(so)], check=True)
    lib = ctypes.CDLL(str(so))
    out = np.zeros(12 * a.size, np.uint32)
    p = lambda x: x.ctypes.data_as(ctypes.c_void_p)
    lib.tb_check_intrinsics(p(a), p(b), p(c), ctypes.c_int32(a.size), p(out))
    return out.reshape(-1, 12)


def test_intrinsic_fallbacks_match_the_instruction_definitions(tmp_path):
    """The host fallbacks against the ARMv7-M ARM's pseudocode, in Python."""
    a, b, c = _intrinsic_operands(500)
    got = _host_intrinsics(tmp_path, a, b, c)
    s8 = lambda v, sh: ((int(v) >> sh) & 0xFF) - (256 if (int(v) >> sh) & 0x80 else 0)
    s16 = lambda v, sh: ((int(v) >> sh) & 0xFFFF) - (65536 if (int(v) >> sh) & 0x8000 else 0)
    s32 = lambda v: int(v) - (1 << 32) if int(v) & 0x80000000 else int(v)
    h2 = lambda lo, hi: ((lo & 0xFFFF) | ((hi & 0xFFFF) << 16))
    for i, (x, y, z) in enumerate(zip(a, b, c)):
        want = [
            h2(s8(x, 0), s8(x, 16)), h2(s8(x, 8), s8(x, 24)),
            h2(s16(y, 0) + s8(x, 0), s16(y, 16) + s8(x, 16)),
            h2(s16(y, 0) + s8(x, 8), s16(y, 16) + s8(x, 24)),
            (s32(z) + s16(x, 0) * s16(y, 0) + s16(x, 16) * s16(y, 16)) & 0xFFFFFFFF,
            (s32(z) + s16(x, 0) * s16(y, 0)) & 0xFFFFFFFF,
            (s32(z) + s16(x, 0) * s16(y, 16)) & 0xFFFFFFFF,
            (s32(z) + s16(x, 16) * s16(y, 0)) & 0xFFFFFFFF,
            (((s32(z) << 32) + s32(x) * s32(y) + (1 << 31)) >> 32) & 0xFFFFFFFF,
            max(-128, min(127, s32(z))) & 0xFFFFFFFF,
            (int(x) & 0xFFFF) | ((int(y) << 16) & 0xFFFF0000),
            (int(x) & 0xFFFF0000) | ((s32(y) >> 16) & 0xFFFF),
        ]
        assert [int(v) for v in got[i]] == want, (i, hex(x), hex(y), hex(z))


@pytest.mark.slow
def test_intrinsic_fallbacks_equal_the_cortex_m4_instructions(tmp_path):
    """The same C file on the host (fallbacks) and in the simulator (SXTB16,
    SMLAD, SMMLAR... as inline assembly and ACLE): identical results."""
    import shutil
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    from opt_harness import ARM_FLAGS, BOARD, RUNTIME
    from tinybuild import plugins
    a, b, c = _intrinsic_operands(300)
    want = _host_intrinsics(tmp_path, a, b, c)
    arr = lambda name, v: f"static const uint32_t {name}[{v.size}] = {{{', '.join(str(int(x)) + 'u' for x in v)}}};"
    fw = tmp_path / "fw.c"
    fw.write_text("\n".join([
        INTRINSICS_C, '#include "tb_runtime.h"', arr("A", a), arr("B", b), arr("C", c),
        f"static uint32_t result[{12 * a.size}] TB_NOINIT;", "static int8_t dummy[4] TB_NOINIT;",
        f"const tb_io_desc_t tb_io_desc = TB_IO_DESC_1_1(1, dummy, 4, result, {48 * a.size}, "
        f"result, {48 * a.size});",
        "void tb_model_invoke(void) {", "  tb_mark(0);",
        f"  tb_check_intrinsics(A, B, C, {a.size}, result);", "  tb_mark(TB_MARK_END);", "}"]))
    elf = tmp_path / "fw.elf"
    cmd = ["arm-none-eabi-gcc", *ARM_FLAGS, f"-I{CM4_DIR}", f"-I{REF_DIR}", f"-I{RUNTIME}", "-T",
           str(BOARD / "stm32f407.ld"), "--specs=nano.specs", "--specs=nosys.specs",
           "-Wl,--gc-sections", "-Wl,--undefined=tb_io_desc",
           str(BOARD / "startup_stm32f407.c"), str(RUNTIME / "tb_runtime.c"), str(fw), "-o", str(elf)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    objdump = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True).stdout
    for insn in ("sxtb16", "sxtab16", "smlad", "smlabt", "smmlar", "ssat", "pkhtb"):
        assert insn in objdump, f"{insn} not used on the Cortex-M4 build"
    pm = plugins.make_plugin_manager()
    target = plugins.find_target(pm, "cortex-m4")
    result = plugins.simulators(pm)["unicorn"].run(elf, target, b"\0\0\0\0")
    got = np.frombuffer(result.output, np.uint32).reshape(-1, 12)
    assert np.array_equal(got, want)


# -- in the simulator: the Cortex-M4 build of every kernel against the reference -----------

def _sim_cases(impls, seed, count):
    rng = np.random.default_rng(seed)
    cases = []
    for i, shape in enumerate(CONV_SHAPES):
        # zero point -128: the requantization without the sign term; else with it
        out_zp = -128 if (i + seed) % 2 else int(rng.integers(-127, 128))
        layer = random_conv_layer(rng, in_zp=int(rng.integers(-128, 128)), out_zp=out_zp, **shape)
        x = rng.integers(-128, 128, size=shape["in_h"] * shape["in_w"] * shape["in_c"]).astype(np.int8)
        opt = optimized(layer, impls)
        cases.append((reference(layer), opt, [x], None))
        cases.append((reference(layer), opt, [x], in_place_deltas(opt)[0]))
    for shape in DW_SHAPES:
        layer = random_conv_layer(rng, depthwise=True, in_zp=int(rng.integers(-128, 128)),
                                  out_zp=int(rng.integers(-128, 128)), **shape)
        x = rng.integers(-128, 128, size=shape["in_h"] * shape["in_w"] * shape["in_c"]).astype(np.int8)
        opt = optimized(layer, impls)
        cases += [(reference(layer), opt, [x], None), (reference(layer), opt, [x], 0)]
    while len(cases) < count:
        layer, inputs = random_sim_layer(rng, SIM_KINDS[int(rng.integers(0, 5))])
        opt = optimized(layer, impls)
        if opt is None:
            continue
        deltas = in_place_deltas(opt)
        cases.append((reference(layer), opt, inputs, None))
        if deltas:
            cases.append((reference(layer), opt, inputs, deltas[0]))
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_kernels_in_the_simulator_match_the_reference(tmp_path, impls, seed):
    cases = _sim_cases(impls, seed, 120)
    rows = run_firmware(cases, tmp_path)
    for (ref, opt, _, _), (case, *_rest) in zip(rows, cases):
        assert_same(ref, opt, f"{case.op} {case.shape}")


# -- whole models with the optimized kernels, natively, against TFLite ---------------------

MODELS = [
    pytest.param("kws_ref_model.tflite", id="kws"),
    pytest.param("vww_96_int8.tflite", id="vww", marks=pytest.mark.slow),
    pytest.param("pretrainedResnet_quant.tflite", id="resnet8", marks=pytest.mark.slow),
    pytest.param("ad01_int8.tflite", id="ad01", marks=pytest.mark.slow),
    pytest.param("str_ww_ref_model.tflite", id="str_ww", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name", MODELS)
def test_models_with_the_optimized_kernels_match_tflite(tmp_path, impls, name):
    from tinybuild import pipeline
    from tinybuild.host import build_host_model, run_host_model
    from tinybuild.reference import make_inputs, reference_outputs

    model = mlperf_model(name)
    plan = pipeline.generate(model, tmp_path, list(impls.values()))
    assert any(l["kernel"].startswith("tb_cm4_") for l in plan["layers"])
    assert plan["memory"]["arena_size"] >= plan["memory"]["lower_bound"]
    exe = build_host_model(tmp_path, tmp_path / "model_host", extra_sources=sorted(CM4_DIR.glob("*.c")))
    inputs = make_inputs(model, 6, seed=7, calibration=None)
    for i, (data, want) in enumerate(zip(inputs, reference_outputs(model, inputs))):
        got = run_host_model(exe, data)
        assert got == want, f"input {i}: output differs from TFLite"


# -- 1x1 with few input channels (tb_cm4_conv2d_1x1_k<depth>_s8) --------------------------------

SMALLK_DEPTHS = (8, 16, 32, 64, 128)     # every entry point, offered by default or not


@pytest.fixture(scope="module")
def smallk_impls(impls):
    """{depth: {"CONV_2D": that depth's KernelImpl}}"""
    cm4_prepare = sys.modules[impls["CONV_2D"].prepare.__module__]
    assert SMALLK_DEPTHS == cm4_prepare.CONV_SMALLK_ALL_DEPTHS
    return {d: {"CONV_2D": cm4_prepare.smallk_kernel(d)} for d in SMALLK_DEPTHS}


smallk_cases = st.fixed_dictionaries({
    "in_h": st.integers(1, 8), "in_w": st.sampled_from([4, 8, 12]),
    "in_c": st.sampled_from(SMALLK_DEPTHS), "out_c": st.sampled_from([2, 4, 6, 10, 16]),
    "per_channel": st.booleans(), "use_bias": st.booleans(),
    "weight_range": st.sampled_from([1, 127]), "in_scale": st.floats(1e-3, 1.0),
    "in_zp": st.integers(-128, 127), "out_scale": st.floats(1e-3, 2.0),
    "out_zp": st.sampled_from([-128, -128, -5, 0, 77]), "seed": st.integers(0, 2**32 - 1)})


@FAST
@given(d=smallk_cases)
def test_conv2d_1x1_smallk_matches_reference(lib, smallk_impls, d):
    """Accepted shapes (full int8 range), out of place and in place both ways."""
    check_conv(lib, smallk_impls[d["in_c"]],
               dict(d, k_h=1, k_w=1, stride=(1, 1), dilation=(1, 1), padding="VALID",
                    activation="NONE"))


def test_conv2d_1x1_smallk_accepts_only_its_shapes(smallk_impls):
    rng = np.random.default_rng(4)
    ok = dict(in_h=4, in_w=4, in_c=8, out_c=4, k_h=1, k_w=1, padding="VALID")
    for depth, impls in smallk_impls.items():
        impl = impls["CONV_2D"]
        assert impl.accepts(random_conv_layer(rng, **dict(ok, in_c=depth)))
        for change in [dict(in_c=12), dict(in_c=256), dict(in_c=2 * depth), dict(out_c=5),
                       dict(in_h=3, in_w=3), dict(k_h=3, padding="SAME"), dict(stride=(2, 2))]:
            assert not impl.accepts(random_conv_layer(rng, **dict(dict(ok, in_c=depth), **change))), \
                (depth, change)
        assert not impl.accepts(random_conv_layer(rng, **dict(ok, in_c=depth), activation="RELU6",
                                                  out_zp=0))


def test_conv2d_1x1_smallk_hands_other_requantizations_to_the_general_kernel(lib, impls,
                                                                           smallk_impls):
    """A live bias near 2^30: the fast form is not exact, the kernel calls
    tb_cm4_conv2d_s8 with the same tables: the reference's bytes, in place too."""
    rng = np.random.default_rng(8)
    layer = random_conv_layer(rng, in_h=4, in_w=4, in_c=16, out_c=4, k_h=1, k_w=1,
                              padding="VALID", in_zp=-128, out_zp=-128)
    b = layer.consts[1].values.copy()
    b[2] = (1 << 30) - 5
    layer.consts[1].values = b
    x = rng.integers(-128, 128, 4 * 4 * 16).astype(np.int8)
    small = optimized(layer, smallk_impls[16])
    assert any("MultiplyByQuantizedMultiplier" in n for n in small.notes), small.notes
    compare(lib, smallk_impls[16], layer, [x])


@pytest.mark.slow
def test_conv2d_1x1_smallk_in_the_simulator(tmp_path, smallk_impls):
    """The assembly loops (each depth, with and without the sign term), out of
    place and in place at every declared overlap (forward and backward)."""
    rng = np.random.default_rng(12)
    cases = []
    for in_c in SMALLK_DEPTHS:
        for out_zp in (-128, 9):
            for h, w, out_c in [(4, 6, 16), (2, 2, 6)]:
                layer = random_conv_layer(rng, in_h=h, in_w=w, in_c=in_c, out_c=out_c, k_h=1,
                                          k_w=1, padding="VALID", in_zp=int(rng.integers(-128, 128)),
                                          out_zp=out_zp)
                x = rng.integers(-128, 128, size=h * w * in_c).astype(np.int8)
                opt = optimized(layer, smallk_impls[in_c])
                assert opt is not None
                cases.append((reference(layer), opt, [x], None))
                cases += [(reference(layer), opt, [x], d) for d in in_place_deltas(opt)]
    rows = run_firmware(cases, tmp_path)
    for (ref, opt, _, _), (case, *_rest) in zip(rows, cases):
        assert_same(ref, opt, f"{case.op} {case.shape}")


@pytest.mark.slow
def test_conv2d_large_padded_plane_in_the_simulator(tmp_path, impls):
    """The large planes' 16-byte fill and row copies on the real instructions (rows
    of 512, 256 and 96 bytes; odd pad offsets), out of place and in place at every
    declared overlap."""
    rng = np.random.default_rng(21)
    cases = []
    for shape, plane in LARGE_PLANES[:3] + [(CONV_SHAPES[-2], True)]:
        layer = random_conv_layer(rng, in_zp=int(rng.integers(-128, 128)), out_zp=-128,
                                  **dict(shape, out_c=4))
        x = rng.integers(-128, 128, size=shape["in_h"] * shape["in_w"] * shape["in_c"]).astype(np.int8)
        opt = optimized(layer, impls)
        assert any("plane" in n for n in opt.notes) == plane, opt.notes
        cases.append((reference(layer), opt, [x], None))
        cases += [(reference(layer), opt, [x], d) for d in in_place_deltas(opt)]
    rows = run_firmware(cases, tmp_path)
    for (ref, opt, _, _), (case, *_rest) in zip(rows, cases):
        assert_same(ref, opt, f"{case.op} {case.shape}")


# -- raw-B weight words (cm4_prepare.conv_raw_b) ----------------------------------------------

def test_conv_raw_b_halfwords_are_256_b_plus_a(impls):
    """Every pair of int8 weights (a for channel c, b for c+1) the raw-B form can
    hold: each halfword of the stored word, read as int16, is 256 * b + a, and
    its SXTB16 (bytes 0 and 2) is a."""
    cm4_prepare = sys.modules[impls["CONV_2D"].prepare.__module__]
    a, b = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
    ok = (b - (a < 0)) >= -128
    a, b = a[ok], b[ok]
    n = a.size - a.size % 4
    w = np.stack([a[:n], b[:n]]).reshape(2, n // 4, 4).transpose(1, 0, 2).reshape(-1, 4)  # (pairs*2, k)
    words = cm4_prepare.conv_filter_layout(w, w.shape[0], 4, raw_b=True).view("<i2").reshape(-1, 4)
    # word layout per pair: k-pairs (0, 2), (1, 3): halfwords k0, k2, k1, k3
    got = words[:, [0, 2, 1, 3]]
    pa, pb = w[0::2], w[1::2]
    assert (got == 256 * pb + pa).all()
    assert not cm4_prepare.conv_raw_b(np.array([[-1], [-128]]), 2, 255)
    assert cm4_prepare.conv_raw_b(np.array([[1], [-128]]), 2, 255)


def test_conv_raw_b_refused_where_a_sum_could_reach_2_to_23(impls):
    """256 * |S_c+1| must stay below 2^31: a 3x3x64 filter of +-127 on inputs up
    to 255 away from the zero point is refused (the kernel then splits both
    channels with SXTB16), the same layer with small weights is not."""
    big = random_conv_layer(np.random.default_rng(1), in_h=8, in_w=8, in_c=64, out_c=4,
                            in_zp=-128, out_zp=-128)
    w = big.consts[0].values.copy()
    w[:] = np.where(np.arange(w.size) % 2, 127, -127)
    big.consts[0].values = w
    small = random_conv_layer(np.random.default_rng(1), in_h=8, in_w=8, in_c=64, out_c=4,
                              in_zp=-128, out_zp=-128, weight_range=20)
    raw = lambda layer: any("raw word" in n for n in optimized(layer, impls).notes)
    assert not raw(big) and raw(small)


@pytest.mark.slow
def test_conv2d_raw_b_and_split_in_the_simulator(tmp_path, impls, smallk_impls):
    """Both weight forms on the real instructions: 3x3 and 1x1 (the small-K
    kernels hand a refused layer to the split loop), the 1-2 pixel remainder
    (tb_cm4_dot1), both requantization forms, in place too. Refused here: a
    3x3x64 filter of +-127 (sums up to 2^23) and, for all, a weight -128 of an
    odd channel beside a negative one."""
    rng = np.random.default_rng(31)
    cases = []
    for weight_range in (127, 12):
        for shape, kernels in [(dict(in_h=5, in_w=6, in_c=64, out_c=6, k_h=3, k_w=3, padding="SAME"), impls),
                               (dict(in_h=3, in_w=3, in_c=128, out_c=6, k_h=1, k_w=1, padding="VALID"), impls),
                               (dict(in_h=4, in_w=4, in_c=128, out_c=4, k_h=1, k_w=1, padding="VALID"),
                                smallk_impls[128])]:
            for out_zp in (-128, 7):
                layer = random_conv_layer(rng, in_zp=-128, out_zp=out_zp, weight_range=weight_range,
                                          **shape)
                if weight_range == 127:      # refused: sums up to 2^23 (3x3x64), a -128 weight
                    w = layer.consts[0].values.copy().reshape(shape["out_c"], -1)
                    w[:] = np.where(rng.integers(0, 2, w.shape) == 1, 127, -127)
                    w[0, 0], w[1, 0] = -5, -128  # channel 1's byte would be -129
                    layer.consts[0].values = w.reshape(-1)
                x = rng.integers(-128, 128, size=shape["in_h"] * shape["in_w"] * shape["in_c"]).astype(np.int8)
                opt = optimized(layer, kernels)
                assert any("raw word" in n for n in opt.notes) == (weight_range == 12), opt.notes
                cases.append((reference(layer), opt, [x], None))
                cases += [(reference(layer), opt, [x], d) for d in in_place_deltas(opt)]
    rows = run_firmware(cases, tmp_path)
    for (ref, opt, _, _), (case, *_rest) in zip(rows, cases):
        assert_same(ref, opt, f"{case.op} {case.shape}")
