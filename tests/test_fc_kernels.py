"""The cortex-m4 and riscv FULLY_CONNECTED kernels against the reference
kernel, byte for byte: per-channel weights (each output its own double
multiplier, TF 2.21's rescale), several rows of inputs, exact rounding ties
built on purpose and accumulators at the extremes. Natively on the host (the
kernels' portable C) and, slow, in the simulator on the real instructions,
where the optimized kernel must also take fewer instructions."""
from __future__ import annotations

import math
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from opt_harness import (CM4_DIR, FAST, RV_DIR, assert_same, build_library,  # noqa: E402
                         compare, optimized, random_fc_layer, reference, simulate_cases,
                         target_kernels)
from tinybuild import quant  # noqa: E402
from tinybuild.lower import CDouble  # noqa: E402

# each int8 FULLY_CONNECTED kernel: (target, its kernel folder, the C function)
KERNELS = {"cortex-m4": ("cortex-m4", CM4_DIR, "tb_cm4_fully_connected_s8"),
           "cortex-m4-pairs": ("cortex-m4", CM4_DIR, "tb_cm4_fc_pairs_s8"),
           "riscv": ("riscv", RV_DIR, "tb_rv_fully_connected_s8")}
I32_MAX = (1 << 31) - 1


@pytest.fixture(scope="module", params=sorted(KERNELS))
def target(request, tmp_path_factory):
    """(name, host library, {op: KernelImpl}) of one kernel."""
    name = request.param
    lib = build_library(tmp_path_factory.mktemp(name), extra_dirs=(KERNELS[name][1],),
                        name=f"libtbfc_{name.replace('-', '_')}.so")
    return name, lib, int8_kernels(name)


def int8_kernels(name: str) -> dict:
    """{op: KernelImpl} of a target, FULLY_CONNECTED being the int8 kernel
    ``name`` names (a target may list others for the op, e.g. 16x8 ones)."""
    target_name, _, function = KERNELS[name]
    return {k.op: k for k in target_kernels(target_name)
            if k.op != "FULLY_CONNECTED" or k.function == function}


def fc_inputs(rng, layer) -> list[np.ndarray]:
    p = layer.params
    return [rng.integers(-128, 128, size=p["rows"] * p["in_features"]).astype(np.int8)]


def with_accumulators(layer, accs, multipliers):
    """``layer`` turned into one output per accumulator: zero weights, the bias
    is the accumulator, and output o rescales with ``multipliers[o]``
    (per-channel real_mul, as the lowering stores it)."""
    n, k = len(accs), layer.params["in_features"]
    layer.params.update(out_features=n, real_multiplier=0.0)
    consts = {c.role: c for c in layer.consts}
    consts["filter"].values = np.zeros(n * k, np.int8)
    consts["bias"].values = np.array(accs, np.int64).astype(np.int32)
    consts["out_mul"].values = np.repeat(consts["out_mul"].values[:1], n, axis=0)
    consts["real_mul"].values = np.array(multipliers, np.float64)
    return layer


def per_tensor_accumulators(layer, accs, m):
    """``layer`` turned into one output per accumulator, all rescaled by the
    one per-tensor multiplier ``m`` (the kernel's per-tensor path)."""
    layer = with_accumulators(layer, accs, [m] * len(accs))
    layer.params["real_multiplier"] = CDouble(m)
    return layer


def near_tie(acc: int, m: float) -> bool:
    """acc lands where the kernel's fixed-point form defers to the double."""
    r, t = quant.fc_double_fast(m)
    s, a = 32 + t, abs(acc)
    frac = (a * r + (1 << (s - 1))) % (1 << s)
    return not a <= frac < (1 << s) - a


def tie_cases(multipliers, span=(-127, 127), steps=(-2, -1, 0, 1, 2)):
    """(acc, m) on, and next to, every rounding tie of acc * m in the int8 range."""
    cases = []
    for m in multipliers:
        exact = Fraction(m)
        for q in range(*span):
            tie = (q + Fraction(1, 2)) / exact
            cases += [(int(tie // 1) + d, m) for d in steps]
    return cases


# dyadic multipliers have exact .5 ties (11/512 as in the per-tensor tests),
# the others are float32 scale products as the lowering computes them
DYADIC = [0.25, 0.375, 11 / 512, 3 / 1024, 0.4375, 5 / 65536]
PRODUCTS = [quant.fc_real_multiplier(i, w, o) for i, w, o in
            [(0.1, 0.01, 0.3), (0.03, 0.007, 0.11), (0.0235, 0.00391, 0.0625), (0.5, 0.0123, 0.77)]]


# -- per-channel -------------------------------------------------------------------------


fc_cases = st.fixed_dictionaries({
    "in_features": st.integers(1, 300), "out_features": st.integers(1, 40),
    "rows": st.sampled_from([1, 1, 2, 3, 7]), "per_channel": st.booleans(),
    "use_bias": st.booleans(), "in_scale": st.floats(1e-3, 1.0), "in_zp": st.integers(-128, 127),
    "w_scale": st.floats(1e-3, 0.1), "out_scale": st.floats(1e-3, 2.0),
    "out_zp": st.integers(-128, 127), "activation": st.sampled_from(["NONE", "RELU", "RELU6"]),
    "seed": st.integers(0, 2**32 - 1)})


@FAST
@given(d=fc_cases)
def test_random_layers_match_the_reference(target, d):
    """Random shapes, rows, scales (per-tensor and per-channel), zero points,
    activations; out of place and in place at every overlap declared."""
    _, lib, impls = target
    d = dict(d)
    rng = np.random.default_rng(d.pop("seed"))
    layer = random_fc_layer(rng, **d)
    multipliers = layer.consts[3].values if d["per_channel"] else [layer.params["real_multiplier"]]
    must = all(0 < float(m) < 0.5 for m in multipliers)     # quant.fc_double_fast's range
    compare(lib, impls, layer, fc_inputs(rng, layer), must_accept=must)


def test_per_channel_is_taken_by_the_optimized_kernel(target):
    name, lib, impls = target
    rng = np.random.default_rng(13)
    layer = random_fc_layer(rng, in_features=16, out_features=9, in_scale=0.5,
                            w_scale=0.04296875, out_scale=1.0, per_channel=True)
    opt = compare(lib, impls, layer, fc_inputs(rng, layer))
    assert any("one per output" in n for n in opt.notes)
    assert opt.args[-1] == "real_mul" and opt.consts[-1].values.size == 9


def test_a_multiplier_without_a_fast_form_keeps_the_reference(target):
    """One output's multiplier >= 0.5 (no fixed-point form below 2^31): the
    whole layer stays with the reference kernel."""
    _, lib, impls = target
    rng = np.random.default_rng(3)
    layer = random_fc_layer(rng, in_features=8, out_features=5, per_channel=True)
    layer.consts[3].values[2] = 0.75
    assert optimized(layer, impls) is None


def test_every_tie_of_per_channel_multipliers(target):
    """Accumulators on, and one or two away from, every rounding tie up to the
    int8 range, each output its own multiplier (dyadic ones: exact .5 ties);
    both the fixed-point path and the double fallback run."""
    _, lib, impls = target
    rng = np.random.default_rng(7)
    cases = tie_cases(DYADIC + PRODUCTS)
    assert any(near_tie(a, m) for a, m in cases) and not all(near_tie(a, m) for a, m in cases)
    for start in range(0, len(cases), 997):             # several layers, ~1000 outputs each
        chunk = cases[start:start + 997]
        layer = with_accumulators(random_fc_layer(rng, in_features=3, per_channel=True),
                                  [a for a, _ in chunk], [m for _, m in chunk])
        compare(lib, impls, layer, [np.zeros(3, np.int8)])


@pytest.mark.parametrize("m", DYADIC[:3] + PRODUCTS[:2])
def test_every_tie_of_a_per_tensor_multiplier(target, m):
    """The per-tensor path (one multiplier record for the layer, whole blocks
    in the fixed-point form): a block that meets a tie is done again exactly,
    and so are the first output of 4n+1 and the last 2 or 3."""
    _, lib, impls = target
    rng = np.random.default_rng(11)
    accs = [a for a, _ in tie_cases([m])]
    assert m not in DYADIC or any(near_tie(a, m) for a in accs)   # dyadic: exact .5 ties
    for n in (len(accs), len(accs) - 1, len(accs) - 2):   # 4n, 4n+1, 4n+2, 4n+3 by turns
        layer = per_tensor_accumulators(random_fc_layer(rng, in_features=3), accs[:n], m)
        opt = compare(lib, impls, layer, [np.zeros(3, np.int8)])
        assert any("one for the layer" in note for note in opt.notes)


# found by search: floor((a R + 2^(31+t)) / 2^(32+t)) = 93 where the reference's
# double product rounds to 94, inside the int8 range: only the fallback gets it
WRONG_WITHOUT_FALLBACK = (2225602, 4.201110531405073e-05)


@pytest.mark.parametrize("per_channel", [False, True])
def test_the_double_fallback_decides_a_visible_output(target, per_channel):
    """The one case where the fixed-point form alone differs from TFLite: as
    output 0..3 of a block (per-tensor and per-channel) and as the tail."""
    _, lib, impls = target
    acc, m = WRONG_WITHOUT_FALLBACK
    r, t = quant.fc_double_fast(m)
    assert (acc * r + (1 << (31 + t))) >> (32 + t) == 93
    assert math.floor(float(acc) * m + 0.5) == 94
    rng = np.random.default_rng(12)
    for n, j in [(n, j) for n in (5, 6) for j in range(n)]:   # 5: the first output alone
        accs = [int(v) for v in rng.integers(-5000, 5000, size=n)]
        accs[j] = acc if j % 2 == 0 else -acc
        layer = random_fc_layer(rng, in_features=3, per_channel=True)
        layer = (with_accumulators(layer, accs, [m] * n) if per_channel
                 else per_tensor_accumulators(layer, accs, m))
        compare(lib, impls, layer, [np.zeros(3, np.int8)])


def test_the_per_tensor_stream_holds_one_multiplier():
    """cortex-m4 rq: header, a bias per output (padded to 4), then one
    {R, 2^(t-1), 2^t - 1, t} for the layer, or one per output; t >= 1 always
    (multipliers in [0.25, 0.5) too), R below 2^32."""
    sys.path.insert(0, str(CM4_DIR))
    import cm4_prepare
    rng = np.random.default_rng(4)
    for per_channel, records in [(False, 1), (True, 9)]:
        layer = random_fc_layer(rng, in_features=16, out_features=9, per_channel=per_channel)
        rq = {c.role: c.values for c in cm4_prepare.prepare_fc(layer).consts}["rq"]
        assert rq.size == 4 + 12 + 4 * records
        assert bool(rq[0] & cm4_prepare.FC_PER_CHANNEL) == per_channel
    for m in DYADIC + PRODUCTS + [0.3, 0.4999999]:
        r, t = cm4_prepare.fc_fixed_point(m)
        assert t >= 1 and 0 < r < 1 << 32 and abs(r - m * 2.0 ** (32 + t)) <= 0.5
        assert cm4_prepare.fc_mult_record(m) == [r, 1 << (t - 1), (1 << t) - 1, t]


EXTREMES = [I32_MAX, -I32_MAX, 1 << 30, -(1 << 30), (1 << 30) - 1, 1 - (1 << 30), 0, 1, -1]


def test_extreme_accumulators(target):
    """Accumulators up to +-(2^31 - 1) for tiny and large multipliers (the
    reference saturates at 2^30 before the clamp), with zero point and RELU."""
    _, lib, impls = target
    rng = np.random.default_rng(5)
    multipliers = [1e-9, 2 ** -20, 0.01, 0.2, 0.25, 0.4999999]
    accs = [a for a in EXTREMES for _ in multipliers]
    for out_zp, act in [(0, "NONE"), (-128, "RELU"), (77, "RELU6")]:
        layer = random_fc_layer(rng, in_features=5, per_channel=True, out_zp=out_zp, activation=act)
        layer = with_accumulators(layer, accs, multipliers * len(EXTREMES))
        compare(lib, impls, layer, [np.zeros(5, np.int8)])


def test_largest_products(target):
    """|x + input_offset| = 255 against weights of 127 over 300 inputs, plus a
    bias of 2^29: the largest sums int8 weights give."""
    _, lib, impls = target
    rng = np.random.default_rng(9)
    for in_zp, sign in [(127, 1), (-128, -1)]:
        layer = random_fc_layer(rng, in_features=300, out_features=6, per_channel=True,
                                in_zp=in_zp, w_scale=1e-4, out_scale=1.0)
        w = np.full((6, 300), 127, np.int8)
        w[1::2] = -127
        layer.consts[0].values = w.reshape(-1)
        layer.consts[1].values = np.array([1 << 29, -(1 << 29), 0, 5, -5, 1 << 28], np.int32)
        x = np.full(300, -128 if sign > 0 else 127, np.int8)
        compare(lib, impls, layer, [x])


# -- several rows -------------------------------------------------------------------------


@pytest.mark.parametrize("rows, k, outs", [(2, 8, 3), (5, 8, 3), (3, 16, 33), (7, 5, 12),
                                           (4, 3, 9), (2, 64, 64), (6, 10, 1)])
@pytest.mark.parametrize("per_channel", [False, True])
def test_several_rows_match_the_reference(target, rows, k, outs, per_channel):
    """Rows of inputs one after the other (Dense over a sequence); in place at
    the overlaps declared, which must leave later rows' inputs intact."""
    _, lib, impls = target
    rng = np.random.default_rng(rows * 1000 + k * 10 + outs)
    layer = random_fc_layer(rng, in_features=k, out_features=outs, rows=rows,
                            per_channel=per_channel, in_zp=int(rng.integers(-128, 128)),
                            out_zp=int(rng.integers(-128, 128)))
    opt = compare(lib, impls, layer, fc_inputs(rng, layer))
    assert opt.macs == rows * k * outs


def test_several_rows_declare_no_overlap_that_clobbers_a_later_row():
    """cortex-m4: output row r is written after row r's input was expanded; the
    declared offsets end every output row before row r + 1's input."""
    sys.path.insert(0, str(CM4_DIR))
    import cm4_prepare
    for rows, k, n in [(2, 8, 3), (3, 4, 9), (5, 16, 16)]:
        (lo, hi), scratch = cm4_prepare.fc_overlap(dict(rows=rows, in_features=k, out_features=n))
        assert lo is None and scratch is None
        assert all(hi + (r + 1) * n <= (r + 1) * k for r in range(rows - 1))
        assert hi == 0 or any(hi + 1 + (r + 1) * n > (r + 1) * k for r in range(rows - 1))


# -- in the simulator: the real instructions ---------------------------------------------


def sim_cases(impls, seed: int) -> list:
    rng = np.random.default_rng(seed)
    layers = []
    for rows, k, outs, per_channel in [(1, 1, 1, True), (1, 3, 1, True), (1, 64, 12, True),
                                       (1, 100, 10, True), (1, 37, 5, False), (3, 16, 9, True),
                                       (5, 8, 3, False), (8, 32, 16, True), (2, 7, 33, True)]:
        layers.append(random_fc_layer(rng, in_features=k, out_features=outs, rows=rows,
                                      per_channel=per_channel, in_zp=int(rng.integers(-128, 128)),
                                      out_zp=int(rng.integers(-128, 128))))
    ties = tie_cases(DYADIC[:3] + PRODUCTS[:2], span=(-20, 20), steps=(-1, 0, 1))
    layers.append(with_accumulators(random_fc_layer(rng, in_features=3, per_channel=True),
                                    [a for a, _ in ties], [m for _, m in ties]))
    for m, n in [(DYADIC[2], 0), (PRODUCTS[0], 1), (DYADIC[1], 2)]:   # per-tensor ties
        accs = [a for a, _ in tie_cases([m], span=(-20, 20), steps=(-1, 0, 1))]
        layers.append(per_tensor_accumulators(random_fc_layer(rng, in_features=3),
                                              accs[:len(accs) - n], m))
    layers.append(with_accumulators(random_fc_layer(rng, in_features=3, per_channel=True),
                                    EXTREMES * 2, [1e-9] * len(EXTREMES) + [0.3] * len(EXTREMES)))
    cases = []
    for layer in layers:
        opt = optimized(layer, impls)
        assert opt is not None, layer.shape
        cases.append((reference(layer), opt, fc_inputs(rng, layer), None))
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_in_the_simulator_equal_and_faster(name, tmp_path):
    impls = int8_kernels(name)
    cases = sim_cases(impls, 21)
    target_name, kernel_dir, _ = KERNELS[name]
    rows = simulate_cases(cases, tmp_path, ram_budget=20_000, extra_dirs=(kernel_dir,),
                          target_name=target_name, flash_budget=60_000)
    assert len(rows) == len(cases)
    for row, (case, *_rest) in zip(rows, cases):
        what = f"{name} FULLY_CONNECTED {case.shape}"
        assert row["opt_instr"] > 0, f"{what}: the optimized kernel did not run"
        assert_same(row["ref"], row["opt"], what)
        assert row["opt_instr"] <= row["ref_instr"], \
            f"{what}: {row['opt_instr']} > {row['ref_instr']} instructions"


# -- tb_cm4_fc_pairs_s8: the layout and where the build takes it ------------------------------


def cm4_fc_pairs():
    sys.path.insert(0, str(CM4_DIR.parent.parent.parent))
    from targets.cortex_m4.kernels import cm4_fc_pairs as module
    return module


@pytest.mark.parametrize("outs, k", [(4, 8), (5, 3), (6, 17), (7, 4), (2, 1), (13, 9)])
def test_pairs_layout_decodes_to_the_weights(outs, k):
    """Each pair word's raw halfwords are 256 B + A + 128 and its bytes 1, 3
    are B, for inputs (4g, 4g+2) / (4g+1, 4g+3) in the stream's block order;
    a lone first output (4n + 1) is its plain row; 4n + 3 gets a zero row."""
    mod = cm4_fc_pairs()
    rng = np.random.default_rng(outs * 100 + k)
    w = rng.integers(-128, 128, size=(outs, k)).astype(np.int8)
    stream = mod.fc_pairs_layout(w, outs, k)
    k4, single = (k + 3) // 4 * 4, int(outs % 4 == 1)
    full = np.zeros((outs + (outs % 4 == 3), k4), np.int64)
    full[:outs, :k] = w
    assert stream.size == full.size
    assert (stream[:single * k4] == full[:single].reshape(-1)).all()
    words = stream[single * k4:].view(np.uint8).reshape(-1, 4)
    b = words[:, 1::2].view(np.int8).astype(np.int64)
    raw = words[:, 0::2].astype(np.int64) + 256 * b
    pairs = full[single:].reshape(-1, 2, k4)
    expect_raw, expect_b = [], []
    order = [(p, g) for blk in range(len(pairs) // 2) for g in range(k4 // 4) for p in (2 * blk, 2 * blk + 1)]
    order += [(len(pairs) - 1, g) for g in range(k4 // 4)] if len(pairs) % 2 else []
    for p, g in order:
        for s in (0, 1):
            i = [4 * g + s, 4 * g + 2 + s]
            expect_raw.append(256 * pairs[p, 1, i] + pairs[p, 0, i] + 128)
            expect_b.append(pairs[p, 1, i])
    assert (raw == np.array(expect_raw)).all() and (b == np.array(expect_b)).all()


def test_pairs_starts_fold_the_second_bias():
    mod = cm4_fc_pairs()
    assert mod.fc_pairs_starts(np.array([3, -2, 5]), 3).tolist() == [3 - 512, -2, 5, 0]
    assert mod.fc_pairs_starts(np.array([7, 1, 2, 3, 4]), 5).tolist() == [7, 1 + 512, 2, 3 + 1024, 4, 0, 0, 0]
    # modulo 2^32, as int32 words: 2^30 + 2^32 + 256 and 2^31 - 1 + 2^31
    assert mod.fc_pairs_starts(np.array([1 << 30, (1 << 24) + 1]), 2).tolist() == \
        [(1 << 30) + 256, (1 << 24) + 1, 0, 0]
    assert mod.fc_pairs_starts(np.array([(1 << 31) - 1, 1 << 23]), 2).tolist() == [-1, 1 << 23, 0, 0]


@pytest.mark.parametrize("k, outs, taken", [(640, 128, True), (128, 128, True), (128, 640, True),
                                             (256, 2, True), (64, 12, True), (8, 128, False),
                                             (250, 1, False), (4, 64, False)])
def test_the_build_picks_pairs_where_estimated_faster(k, outs, taken):
    """Between pairs and blocks (tb_cm4_fc_fused_s8, above both, takes most of
    these layers first: tests/test_fc_fused.py)."""
    from opt_harness import chosen
    rng = np.random.default_rng(k + outs)
    layer = random_fc_layer(rng, in_features=k, out_features=outs, out_zp=-128, activation="RELU")
    fc = [i for i in target_kernels("cortex-m4") if i.op == "FULLY_CONNECTED" and "int8" in i.dtypes
          and not i.function.startswith("tb_cm4_fc_fused")]
    picked = chosen(layer, fc)
    assert picked.kernel == ("tb_cm4_fc_pairs_s8" if taken else "tb_cm4_fully_connected_s8")


@pytest.mark.slow
def test_where_the_build_picks_pairs_it_is_not_slower_than_blocks(tmp_path):
    """In the simulator, on AD's, KWS's and VWW's shapes and small ones near the
    estimate's edge: wherever tb_cm4_fc_pairs_s8 is picked, it takes no more
    instructions and cycles than tb_cm4_fully_connected_s8 on the same layer."""
    blocks, pairs = int8_kernels("cortex-m4"), int8_kernels("cortex-m4-pairs")
    rng = np.random.default_rng(31)
    shapes = [(640, 128), (128, 128), (128, 8), (128, 640), (64, 12), (256, 2), (17, 128),
              (24, 12), (40, 8), (48, 5), (32, 3), (100, 6)]
    cases, picked = [], []
    for k, outs in shapes:
        for per_channel in (False, True):
            layer = random_fc_layer(rng, in_features=k, out_features=outs, per_channel=per_channel,
                                    in_zp=int(rng.integers(-128, 128)), out_zp=-128, activation="RELU")
            if not pairs["FULLY_CONNECTED"].accepts(layer):
                continue
            inputs = fc_inputs(rng, layer)
            picked.append(f"{k}>{outs}{' pc' if per_channel else ''}")
            for impls in (blocks, pairs):
                cases.append((reference(layer), optimized(layer, impls), inputs, None))
    assert len(picked) >= 12
    rows = simulate_cases(cases, tmp_path, ram_budget=60_000, flash_budget=400_000)
    for what, b, p in zip(picked, rows[0::2], rows[1::2]):
        assert_same(p["ref"], p["opt"], what)
        assert p["opt_instr"] <= b["opt_instr"] and p["opt_cycles"] <= b["opt_cycles"], \
            f"{what}: pairs {p['opt_instr']}/{p['opt_cycles']} vs blocks {b['opt_instr']}/{b['opt_cycles']}"
