"""cm4_add_pool_s8.c. tb_cm4_add_s8's table-sum path (cm4_prepare.add_sum_tables,
the word loop): the build-time tables against the reference arithmetic on every
input pair, the kernel against tb_add_s8 byte for byte natively (the portable C)
and in the simulator (the Cortex-M4 instructions), out of place and in place,
with its modelled cycles per element. tb_cm4_avg_pool2d_s8's division by one
multiply (every count and window sum) and its two-tap pass, the same ways.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from opt_harness import (assert_same, build_library, cm4_kernels, in_place_deltas,  # noqa: E402
                         optimized, random_add_layer, random_pool_layer, reference, run_layer,
                         simulate_cases)
from tinybuild import quant  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "targets" / "cortex_m4" / "kernels"))
import cm4_prepare  # noqa: E402

# the three residual ADDs of MLPerf Tiny's ResNet-8 (pretrainedResnet_quant), as lowered
RESNET8_ADDS = [
    dict(input1_offset=128, input2_offset=-4, output_offset=-128, input1=(1623821475, -2),
         input2=(1073741824, 0), output=(1098017566, -17)),
    dict(input1_offset=17, input2_offset=-4, output_offset=-128, input1=(1699529983, -2),
         input2=(1073741824, 0), output=(1140768826, -17)),
    dict(input1_offset=-38, input2_offset=2, output_offset=-128, input1=(1657902019, -2),
         input2=(1073741824, 0), output=(1835721671, -18)),
]
# (s1, z1, s2, z2, so, zo, activation): both input ranges within the output's, exact
# ties (powers of two: sums land on .5), activation ranges narrower than int8
QUANTS = [
    (0.05, 0, 0.05, 0, 0.1, 0, "NONE"),
    (0.5, 0, 0.5, 0, 1.0, 0, "NONE"),             # x1 + x2 halved: every odd sum a tie
    (0.25, -3, 0.125, 7, 0.5, -1, "NONE"),
    (0.1, -128, 0.2, -128, 0.15, -128, "RELU"),   # RELU at the int8 floor: no clamp step
    (0.1, 5, 0.3, -20, 0.2, 10, "RELU"),          # act_min 10
    (0.02, 0, 0.03, 3, 0.04, -100, "RELU6"),      # act range -100..50
    (0.9, 100, 0.01, -128, 0.5, 127, "NONE"),     # outputs pinned at 127 for most pairs
]
SIZES = [1, 7, 8, 9, 15, 16, 24, 100, 257, 1000, 1003, 4096]   # sweep ADD_SIZES; odd 8-blocks, tails


def _params(p: dict, act=(-128, 127), size=16) -> dict:
    return dict(p, left_shift=20, act_min=act[0], act_max=act[1], size=size)


def _reference_by_pair(p: dict) -> np.ndarray:
    """The reference's output for every (uint8)x1, (uint8)x2, from quant's scalar functions."""
    t1 = cm4_prepare.add_input_table(p["input1_offset"], p["input1"], p["left_shift"])
    t2 = cm4_prepare.add_input_table(p["input2_offset"], p["input2"], p["left_shift"])
    acc = sorted({int(a) + int(b) for a in t1 for b in t2})
    out = {a: quant.mul_by_quant_mul(a, *p["output"]) + p["output_offset"] for a in acc}
    return np.array([[min(127, max(-128, out[int(a) + int(b)])) for b in t2] for a in t1])


def _kernel_by_pair(tables: np.ndarray) -> np.ndarray:
    sums = tables[:256, None].astype(np.int64) + tables[None, 256:]
    assert sums.min() >= -(1 << 31) and sums.max() < (1 << 31)
    return np.clip(sums >> cm4_prepare.ADD_SUM_SHIFT, 0, 255) - 128


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return build_library(tmp_path_factory.mktemp("tbadd"))


@pytest.fixture(scope="module")
def impls():
    return cm4_kernels()


def test_vector_rescale_matches_the_scalar_one():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.integers(-(1 << 31), 1 << 31, 2000), [-(1 << 31), (1 << 31) - 1, 0, -1, 1]])
    for m, s in [(1098017566, -17), (1073741824, 0), (2147483647, -31), (1 << 30, 3), (-(1 << 31), 0)]:
        got = cm4_prepare.mul_by_quant_mul_array(x, m, s)
        assert got.tolist() == [quant.mul_by_quant_mul(int(v), m, s) for v in x], (m, s)


@pytest.mark.parametrize("i", range(len(RESNET8_ADDS)))
def test_resnet8_tables_give_the_reference_on_every_pair(i):
    p = _params(RESNET8_ADDS[i])
    tables = cm4_prepare.add_sum_tables(p)
    assert tables is not None and tables.shape == (512,)
    assert np.array_equal(_kernel_by_pair(tables), _reference_by_pair(p))


@pytest.mark.parametrize("q", QUANTS[:3] + QUANTS[-1:])
def test_tables_give_the_reference_on_every_pair(q):
    p = _params(quant.add_params(*q))
    assert np.array_equal(_kernel_by_pair(cm4_prepare.add_sum_tables(p)), _reference_by_pair(p))


def test_wide_input_ranges_keep_the_requantizing_path(lib, impls):
    """Inputs each spanning thousands of output steps: no tables can hold them; the
    layer keeps the per-input tables and tb_rq, still exact."""
    layer = random_add_layer(np.random.default_rng(0), size=64, s1=0.9, z1=3, s2=0.8, z2=-5,
                             so=0.0004, zo=0)
    assert cm4_prepare.add_sum_tables(layer.params) is None
    opt = optimized(layer, impls)
    assert opt is not None and not opt.consts[0].values[0] & cm4_prepare.ADD_SUM_TABLES
    x = [np.arange(-128, 128, 4, dtype=np.int8), np.arange(127, -129, -4, dtype=np.int8)]
    assert_same(run_layer(lib, reference(layer), x), run_layer(lib, opt, x))


def _inputs(rng, n: int) -> list[np.ndarray]:
    """Random pairs, then the extremes (-128/127 against everything)."""
    a = rng.integers(-128, 128, size=n).astype(np.int8)
    b = rng.integers(-128, 128, size=n).astype(np.int8)
    a[: n // 4], b[n // 4: n // 2] = -128, 127
    return [a, b]


@pytest.mark.parametrize("q", QUANTS)
def test_kernel_matches_the_reference_in_and_out_of_place(lib, impls, q):
    rng = np.random.default_rng(7)
    for n in SIZES:
        layer = random_add_layer(rng, size=n, **dict(zip(("s1", "z1", "s2", "z2", "so", "zo",
                                                          "activation"), q)))
        opt = optimized(layer, impls)
        assert opt.consts[0].values[0] & cm4_prepare.ADD_SUM_TABLES
        x = _inputs(rng, n)
        ref = run_layer(lib, reference(layer), x)
        assert_same(ref, run_layer(lib, opt, x), f"{q} {n}")
        for t in (0, 1):
            for delta in in_place_deltas(opt, t):
                got = run_layer(lib, opt, x, overlap_delta=delta, overlap_input=t)
                assert_same(ref, got, f"{q} {n} in place over input {t} at {delta}")


def _sim_cases(impls):
    """Every size against each activation kind, and in place over input 1."""
    rng = np.random.default_rng(5)
    cases = []
    for k, n in enumerate(SIZES):
        q = QUANTS[2] if n == 4096 else QUANTS[k % len(QUANTS)]   # 4096: the full-range loop
        layer = random_add_layer(rng, size=n, **dict(zip(("s1", "z1", "s2", "z2", "so", "zo",
                                                          "activation"), q)))
        opt = optimized(layer, impls)
        x = _inputs(rng, n)
        cases.append((reference(layer), opt, x, None))
        cases += [(reference(layer), opt, x, d) for d in in_place_deltas(opt)]
    for q in (QUANTS[4], QUANTS[5]):   # the clamped word loop at the largest size
        layer = random_add_layer(rng, size=4096, **dict(zip(("s1", "z1", "s2", "z2", "so", "zo",
                                                             "activation"), q)))
        cases.append((reference(layer), optimized(layer, impls), _inputs(rng, 4096), None))
    return cases


@pytest.mark.slow
def test_word_loop_in_the_simulator(tmp_path, impls):
    """The Cortex-M4 instructions (LDRB/LDR run, PKHTB, USAT16, the UQADD8/UQSUB8/
    UADD8 clamp) against tb_add_s8 byte for byte, out of place and in place."""
    cases = _sim_cases(impls)
    for row, (ref, opt, x, delta) in zip(simulate_cases(cases, tmp_path), cases):
        what = f"ADD {ref.params['size']} act {ref.params['act_min']} in place {delta}"
        assert_same(row["ref"], row["opt"], what)


@pytest.mark.slow
def test_word_loop_modelled_cycles(tmp_path, impls):
    """On 4096 elements, core cycles only (mps2-an386: a Cortex-M4 without flash wait
    states; place=auto copies the tables to RAM on the boards with them): the loop
    is 119 cycles per 16 elements (63 per 8), 75 per 8 with the activation clamp (was 17.5 per element)."""
    cases = [c for c in _sim_cases(impls) if c[0].params["size"] == 4096 and c[3] is None]
    assert [c[0].params["act_min"] for c in cases] == [-128, 10, -100]
    for row, (ref, opt, x, delta) in zip(simulate_cases(cases, tmp_path, target_name="mps2-an386"),
                                         cases):
        assert_same(row["ref"], row["opt"])
        clamped = (ref.params["act_min"], ref.params["act_max"]) != (-128, 127)
        assert row["opt_cycles"] <= (9.5 if clamped else 7.5) * 4096, row["opt_cycles"]
        assert row["opt_instr"] <= (8.2 if clamped else 7.1) * 4096, row["opt_instr"]


# -- AVERAGE_POOL_2D ---------------------------------------------------------------------

def _avg_by_multiply(acc: np.ndarray, count: int) -> np.ndarray:
    """tb_cm4_avg (cm4_add_pool_s8.c) on Python ints: k, k_neg, r as tb_cm4_avg_divisor."""
    r = (2**31 + count - 1) // count
    k = 2 * (count // 2 + 128 * count)
    x2 = k + 2 * acc + np.where((acc < 0) & (count % 2 == 0), -2, 0)
    return ((x2 * r) >> 32) - 128


def test_average_by_multiply_is_the_reference_division_for_every_count_and_sum():
    for count in range(1, 257):
        acc = np.arange(-128 * count, 127 * count + 1, dtype=np.int64)
        half = count // 2
        want = np.where(acc > 0, (acc + half) // count, -((half - acc) // count))
        assert np.array_equal(_avg_by_multiply(acc, count), want), count


POOLS = [
    dict(in_h=8, in_w=8, c=64, k_h=8, k_w=8, stride=(1, 1)),        # ResNet-8's global pool
    dict(in_h=3, in_w=3, c=256, k_h=3, k_w=3, stride=(1, 1)),       # VWW's
    dict(in_h=25, in_w=5, c=64, k_h=25, k_w=5, stride=(1, 1)),      # KWS's
    dict(in_h=16, in_w=16, c=8, k_h=16, k_w=16, stride=(1, 1)),     # 256 taps: the lanes' limit
    dict(in_h=9, in_w=9, c=16, k_h=3, k_w=3, stride=(2, 2), padding="SAME"),   # counts 4, 6, 9
    dict(in_h=6, in_w=7, c=12, k_h=2, k_w=3, stride=(1, 2), padding="SAME"),   # 8 + 4 channels
    dict(in_h=5, in_w=9, c=8, k_h=1, k_w=4, stride=(1, 1)),         # even runs, no odd tap
    dict(in_h=4, in_w=4, c=24, k_h=4, k_w=1, stride=(1, 1)),        # one tap per row
]
POOL_ACTS = [dict(), dict(activation="RELU6", scale=0.05, zp=-20), dict(activation="RELU", zp=5)]


def _pool_inputs(rng, n: int) -> list[np.ndarray]:
    """Random bytes; small values (many exact .5 averages); all -128; all 127."""
    return [rng.integers(-128, 128, n).astype(np.int8), rng.integers(-3, 4, n).astype(np.int8),
            np.full(n, -128, np.int8), np.full(n, 127, np.int8)]


def _pool_id(s: dict) -> str:
    return f"{s['in_h']}x{s['in_w']}x{s['c']}k{s['k_h']}{s['k_w']}"


@pytest.mark.parametrize("shape", POOLS, ids=_pool_id)
def test_average_pool_matches_the_reference_in_and_out_of_place(lib, impls, shape):
    rng = np.random.default_rng(9)
    for act in POOL_ACTS:
        layer = random_pool_layer(rng, **shape, **act)
        opt = optimized(layer, impls)
        assert opt is not None
        for x in _pool_inputs(rng, shape["in_h"] * shape["in_w"] * shape["c"]):
            ref = run_layer(lib, reference(layer), [x])
            assert_same(ref, run_layer(lib, opt, [x]), f"{shape} {act}")
            for delta in in_place_deltas(opt):
                assert_same(ref, run_layer(lib, opt, [x], overlap_delta=delta), f"{shape} {act} {delta}")


def _pool_sim_cases(impls):
    rng = np.random.default_rng(13)
    cases = []
    for i, shape in enumerate(POOLS):
        layer = random_pool_layer(rng, **shape, **POOL_ACTS[i % len(POOL_ACTS)])
        opt = optimized(layer, impls)
        for x in _pool_inputs(rng, shape["in_h"] * shape["in_w"] * shape["c"])[:2]:
            cases.append((reference(layer), opt, [x], None))
        cases += [(reference(layer), opt, [x], d) for d in in_place_deltas(opt)]
    return cases


@pytest.mark.slow
def test_average_pool_in_the_simulator(tmp_path, impls):
    cases = _pool_sim_cases(impls)
    for row, (ref, opt, x, delta) in zip(simulate_cases(cases, tmp_path), cases):
        assert_same(row["ref"], row["opt"], f"{ref.shape} in place {delta}")


@pytest.mark.slow
def test_average_pool_modelled_cycles(tmp_path, impls):
    """Core cycles (mps2-an386) of the three MLPerf Tiny global pools: at most 65% of
    the previous kernel's (10,369, 15,025, 18,289 cycles; now about 6,200, 7,200, 10,800)."""
    rng = np.random.default_rng(17)
    cases = []
    for shape in POOLS[:3]:
        layer = random_pool_layer(rng, **shape)
        x = rng.integers(-128, 128, shape["in_h"] * shape["in_w"] * shape["c"]).astype(np.int8)
        cases.append((reference(layer), optimized(layer, impls), [x], None))
    rows = simulate_cases(cases, tmp_path, target_name="mps2-an386")
    for row, (ref, opt, x, delta), before in zip(rows, cases, (10369, 15025, 18289)):
        assert_same(row["ref"], row["opt"])
        assert row["opt_cycles"] <= 0.65 * before, (ref.shape, row["opt_cycles"])
