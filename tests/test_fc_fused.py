"""tb_cm4_fc_fused_s8 and its per-channel and clamped entry points
(cortex-m4 FULLY_CONNECTED, requantized in the block's assembly) against the reference kernel, byte for byte: natively on the host
(its portable C, the same arithmetic as the assembly) and, slow, in the
simulator on the real instructions, where it must also be no slower than
tb_cm4_fc_pairs_s8 and tb_cm4_fully_connected_s8 wherever the build picks it."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "kernels"))
sys.path.insert(0, str(Path(__file__).parent))

from opt_harness import (CM4_DIR, FAST, assert_same, build_library, chosen,  # noqa: E402
                         compare, optimized, random_fc_layer, reference, simulate_cases,
                         target_kernels)
from test_fc_kernels import (DYADIC, EXTREMES, PRODUCTS, WRONG_WITHOUT_FALLBACK,  # noqa: E402
                             fc_inputs, per_tensor_accumulators, tie_cases, with_accumulators)
from tinybuild import quant  # noqa: E402

sys.path.insert(0, str(CM4_DIR.parent.parent.parent))
from targets.cortex_m4.kernels import cm4_fc_fused  # noqa: E402

FUNCTIONS = {"pairs": "tb_cm4_fc_pairs_s8", "blocks": "tb_cm4_fully_connected_s8"}


def kernels_with(fc: str) -> dict:
    """{op: KernelImpl} of cortex-m4 with FULLY_CONNECTED the int8 kernel ``fc``."""
    return {k.op: k for k in target_kernels("cortex-m4")
            if k.op != "FULLY_CONNECTED" or k.function == FUNCTIONS[fc]}


def fused(layer) -> dict:
    """{op: KernelImpl} with FULLY_CONNECTED the fused entry point for ``layer``."""
    return {"FULLY_CONNECTED": cm4_fc_fused.kernel_for(layer)}


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return build_library(tmp_path_factory.mktemp("fused"), extra_dirs=(CM4_DIR,),
                         name="libtbfc_fused.so")


# multipliers below 0.25 (t >= 1): dyadic ones with exact .5 ties, and products
SMALL = [m for m in DYADIC + PRODUCTS if m < 0.25] + [0.2, 0.13]


def multiple_of_4(accs: list) -> list:
    return accs[:len(accs) // 4 * 4]


fused_cases = st.fixed_dictionaries({
    "in_features": st.integers(1, 300), "out_features": st.integers(1, 12).map(lambda n: 4 * n),
    "rows": st.sampled_from([1, 1, 2, 3]), "per_channel": st.booleans(),
    "use_bias": st.booleans(), "in_scale": st.floats(1e-3, 1.0), "in_zp": st.integers(-128, 127),
    "w_scale": st.floats(1e-3, 0.1), "out_scale": st.floats(1e-3, 2.0),
    "out_zp": st.integers(-128, 127), "activation": st.sampled_from(["NONE", "RELU", "RELU6"]),
    "seed": st.integers(0, 2**32 - 1)})


@FAST
@given(d=fused_cases)
def test_random_layers_match_the_reference(lib, d):
    """Random shapes (out features a multiple of 4), rows, scales, zero points
    and activations; taken exactly where cm4_fc_fused.computes says."""
    d = dict(d)
    rng = np.random.default_rng(d.pop("seed"))
    layer = random_fc_layer(rng, **d)
    opt = compare(lib, fused(layer), layer, fc_inputs(rng, layer), must_accept=False)
    assert (opt is not None) == cm4_fc_fused.computes(layer)


def test_which_multipliers_and_shapes_are_taken():
    """t from 1 (multiplier in [0.125, 0.25): half the outputs take the
    slower test) up; multipliers in [0.25, 0.5) (t = 0) and out features not
    a multiple of 4 are left to the other kernels."""
    rng = np.random.default_rng(2)
    for m, taken in [(0.3, False), (0.25, False), (0.2499, True), (0.14, True), (0.02, True),
                     (0.003, True), (1e-5, True)]:
        layer = per_tensor_accumulators(random_fc_layer(rng, in_features=3), [1, -2, 3, -4], m)
        assert cm4_fc_fused.computes(layer) == taken, m
    assert not cm4_fc_fused.computes(random_fc_layer(rng, in_features=16, out_features=6))


def test_every_tie_of_per_channel_multipliers(lib):
    """Accumulators on, and next to, every rounding tie up to the int8 range,
    each output its own multiplier: the SMMLAR form, its slower test and the
    double after a tie all run, at every position in a block."""
    rng = np.random.default_rng(7)
    cases = tie_cases(SMALL)
    for start in range(0, len(cases), 996):
        chunk = multiple_of_4(cases[start:start + 996])
        layer = with_accumulators(random_fc_layer(rng, in_features=3, per_channel=True),
                                  [a for a, _ in chunk], [m for _, m in chunk])
        assert compare(lib, fused(layer), layer, [np.zeros(3, np.int8)]) is not None


@pytest.mark.parametrize("m", SMALL)
@pytest.mark.parametrize("out_zp, act", [(0, "NONE"), (-128, "RELU"), (5, "RELU6")])
def test_every_tie_of_a_per_tensor_multiplier(lib, m, out_zp, act):
    rng = np.random.default_rng(11)
    accs = multiple_of_4([a for a, _ in tie_cases([m])])
    layer = random_fc_layer(rng, in_features=3, out_zp=out_zp, activation=act)
    layer = per_tensor_accumulators(layer, accs, m)
    opt = compare(lib, fused(layer), layer, [np.zeros(3, np.int8)])
    assert opt is not None and any("one for the layer" in n for n in opt.notes)


@pytest.mark.parametrize("per_channel", [False, True])
def test_the_double_decides_a_visible_output_at_every_position(lib, per_channel):
    acc, m = WRONG_WITHOUT_FALLBACK
    rng = np.random.default_rng(12)
    for j in range(8):
        accs = [int(v) for v in rng.integers(-5000, 5000, size=8)]
        accs[j] = acc if j % 2 == 0 else -acc
        layer = random_fc_layer(rng, in_features=3, per_channel=True)
        layer = (with_accumulators(layer, accs, [m] * 8) if per_channel
                 else per_tensor_accumulators(layer, accs, m))
        assert compare(lib, fused(layer), layer, [np.zeros(3, np.int8)]) is not None


@pytest.mark.parametrize("outs, six", [(12, 12), (24, 24), (128, 120)])
def test_the_double_decides_a_visible_output_at_every_position_of_a_block_of_6(lib, outs, six):
    """Per-tensor full-range layers run blocks of 6 (then 4): a sum the
    fixed-point form gets wrong, at each output of the row, in either sign."""
    acc, m = WRONG_WITHOUT_FALLBACK
    rng = np.random.default_rng(outs)
    for j in range(outs):
        accs = [int(v) for v in rng.integers(-5000, 5000, size=outs)]
        accs[j] = acc if j % 2 == 0 else -acc
        layer = per_tensor_accumulators(random_fc_layer(rng, in_features=64), accs, m)
        assert cm4_fc_fused.six_outputs(layer) == six
        assert compare(lib, fused(layer), layer, [np.zeros(64, np.int8)]) is not None


@pytest.mark.parametrize("outs, k, six", [(4, 64, 0), (8, 64, 0), (12, 64, 12), (16, 64, 0),
                                          (24, 64, 24), (28, 64, 0), (128, 64, 120),
                                          (640, 64, 636), (12, 4, 0), (128, 8, 120),
                                          (64, 8, 0), (32, 64, 0), (1, 64, 0), (6, 64, 0),
                                          (18, 64, 0)])
def test_blocks_of_6_where_per_tensor_full_range_and_they_pay(outs, k, six):
    """As many outputs in blocks of 6 as leave a multiple of 4, only for the
    per-tensor full-range entry point and where six_gain says they save
    cycles (measured: 64 -> 32 and 8 -> 64 were slower with them, 8 -> 128
    and 64 -> 12 faster); rq[1] tells the kernel how many."""
    rng = np.random.default_rng(outs)
    for per_channel, act, zp, expected in [(False, "NONE", 0, six), (False, "RELU", -128, six),
                                           (False, "RELU6", 0, 0), (True, "NONE", 0, 0)]:
        layer = random_fc_layer(rng, in_features=k, out_features=outs, per_channel=per_channel,
                                out_zp=zp, activation=act)
        assert cm4_fc_fused.six_outputs(layer) == expected, (per_channel, act)
        if cm4_fc_fused.computes(layer):
            rq = {c.role: c for c in cm4_fc_fused.prepare(layer).consts}["rq"].values
            assert int(rq[1]) == expected
            assert cm4_fc_fused.kernel_for(layer).function == (
                "tb_cm4_fc_fused6_s8" if expected else cm4_fc_fused.KERNELS[
                    2 * per_channel + (act == "RELU6")].function)


@pytest.mark.parametrize("outs, k, six", [(12, 5, 12), (20, 8, 12), (16, 1, 12)])
def test_stream_of_blocks_of_6(outs, k, six):
    """A block of 6: its 6 starting values (3 pairs, as the pairs kernel
    starts them), then per group of 4 inputs pair 0's, 1's and 2's 2 words;
    the last outputs in blocks of 4 as before."""
    from targets.cortex_m4.kernels.cm4_fc_pairs import fc_pairs_starts, pair_words
    rng = np.random.default_rng(outs + k)
    w = rng.integers(-128, 128, size=(outs, k)).astype(np.int8)
    bias = rng.integers(-2**31, 2**31, size=outs)
    stream = cm4_fc_fused.fused_stream(w, bias, outs, k, six).view(np.uint8)
    k4, nq = (k + 3) // 4 * 4, (k + 3) // 4
    rows = np.zeros((outs, k4), np.int8)
    rows[:, :k] = w
    first = stream[:24 + 24 * nq]
    assert first[:24].copy().view("<i4").tolist() == fc_pairs_starts(bias[:6], 6)[:6].tolist()
    words = pair_words(rows[0:6:2], rows[1:6:2])            # (3 pairs, groups, 2, 4)
    assert (first[24:].reshape(nq, 3, 2, 4) == words.transpose(1, 0, 2, 3)).all()
    rest = cm4_fc_fused.fused_stream(w[six:], bias[six:], outs - six, k)
    assert (stream[(six // 6) * (24 + 24 * nq):] == rest.view(np.uint8)).all()
    assert len(stream) == (six // 6) * (24 + 24 * nq) + (outs - six) // 4 * (16 + 16 * nq)


@pytest.mark.parametrize("out_zp, act", [(0, "NONE"), (-128, "RELU"), (77, "RELU6")])
@pytest.mark.parametrize("m", [1e-9, 2 ** -20, 0.01, 0.2, 0.25, 0.4999999])
def test_extreme_accumulators(lib, m, out_zp, act):
    """Sums up to +-(2^31 - 1): taken where the zero point folds into H
    without overflowing SMMLAR's top word, and then exact."""
    rng = np.random.default_rng(5)
    layer = random_fc_layer(rng, in_features=5, per_channel=True, out_zp=out_zp, activation=act)
    layer = with_accumulators(layer, multiple_of_4(EXTREMES * 4), [m] * 36)
    opt = compare(lib, fused(layer), layer, [np.zeros(5, np.int8)], must_accept=False)
    r, t = quant.fc_double_fast(m)
    h = (1 << t >> 1) + out_zp * (1 << t)
    assert (opt is not None) == (t >= 1 and (2**31 - 1) * r // 2**32 + abs(h) + 2 < 2**31)


def test_a_zero_point_that_would_overflow_is_refused():
    rng = np.random.default_rng(6)
    layer = random_fc_layer(rng, in_features=4, out_features=4, out_zp=100)
    layer = per_tensor_accumulators(layer, [1, 2, 3, 4], 2 ** -29)   # t = 28: 100 * 2^28 > 2^31
    assert not cm4_fc_fused.computes(layer)
    assert chosen(layer, [k for k in target_kernels("cortex-m4")
                          if k.op == "FULLY_CONNECTED" and "int8" in k.dtypes]).kernel not in \
        cm4_fc_fused.FUNCTIONS


def test_largest_products(lib):
    """|x + input_offset| = 255 against weights of +-127 over 300 inputs."""
    rng = np.random.default_rng(9)
    for in_zp, x in [(127, -128), (-128, 127)]:
        layer = random_fc_layer(rng, in_features=300, out_features=8, per_channel=True,
                                in_zp=in_zp, w_scale=1e-4, out_scale=1.0)
        w = np.full((8, 300), 127, np.int8)
        w[1::2] = -127
        layer.consts[0].values = w.reshape(-1)
        layer.consts[1].values = np.array([1 << 29, -(1 << 29), 0, 5, -5, 1 << 28, 7, -7], np.int32)
        assert compare(lib, fused(layer), layer, [np.full(300, x, np.int8)]) is not None


@pytest.mark.parametrize("rows, k, outs", [(2, 8, 4), (5, 9, 8), (3, 16, 32), (7, 5, 12), (2, 64, 64)])
@pytest.mark.parametrize("per_channel", [False, True])
def test_several_rows(lib, rows, k, outs, per_channel):
    rng = np.random.default_rng(rows * 1000 + k * 10 + outs)
    layer = random_fc_layer(rng, in_features=k, out_features=outs, rows=rows,
                            per_channel=per_channel, in_zp=int(rng.integers(-128, 128)),
                            out_zp=int(rng.integers(-128, 128)), activation="RELU")
    assert compare(lib, fused(layer), layer, fc_inputs(rng, layer)) is not None


@pytest.mark.parametrize("outs, k", [(4, 1), (8, 9), (12, 16)])
def test_stream_leads_each_block_with_its_starting_values(outs, k):
    """Per block: 16 bytes of starting values (the pairs kernel's), then the
    pairs kernel's words for that block."""
    from targets.cortex_m4.kernels.cm4_fc_pairs import fc_pairs_layout, fc_pairs_starts
    rng = np.random.default_rng(outs + k)
    w = rng.integers(-128, 128, size=(outs, k)).astype(np.int8)
    bias = rng.integers(-2**31, 2**31, size=outs)
    stream = cm4_fc_fused.fused_stream(w, bias, outs, k).view(np.uint8).reshape(outs // 4, -1)
    starts = stream[:, :16].copy().view("<i4").reshape(-1)
    assert starts.tolist() == fc_pairs_starts(bias, outs).tolist()
    assert (stream[:, 16:].reshape(-1) == fc_pairs_layout(w, outs, k).view(np.uint8)).all()


# -- in the simulator: the real instructions, and where the build picks it ---------------------


def shapes_layers(rng, shapes, acts=(("RELU", -128), ("NONE", 3), ("RELU6", -20))):
    for k, outs in shapes:
        for per_channel in (False, True):
            act, zp = acts[(k + outs + per_channel) % len(acts)]
            yield random_fc_layer(rng, in_features=k, out_features=outs, per_channel=per_channel,
                                  in_zp=int(rng.integers(-128, 128)), out_zp=zp, activation=act,
                                  in_scale=float(rng.choice([0.02, 0.2])))


def fc_sources(folder: Path) -> Path:
    """A folder with the three FC kernels' source (cm4_fc_s8.c holds them all)
    and its header: the firmware links no other kernel file."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("cm4_fc_s8.c", "tb_cm4.h"):
        shutil.copy(CM4_DIR / name, folder / name)
    return folder


# AD's, KWS's and the bench sweep's FC shapes with out features a multiple of 4
SIM_SHAPES = [(640, 128), (128, 128), (128, 8), (8, 128), (128, 640), (64, 12), (1, 12),
              (3, 32), (8, 64), (17, 128), (64, 32), (250, 64), (256, 12), (1000, 12), (9, 4),
              (12, 4), (33, 4), (1, 8), (5, 8), (33, 8)]
NOT_TAKEN = [(1, 4), (4, 4), (5, 4), (8, 4)]     # one block over up to 8 inputs


@pytest.mark.slow
def test_in_the_simulator_equal_and_no_slower(tmp_path, monkeypatch):
    """On AD's, KWS's and the sweep's shapes, per-tensor and per-channel,
    three activations: byte for byte the reference's output, and wherever
    the build picks tb_cm4_fc_fused_s8 no more instructions and cycles than
    the kernel picked before it (pairs or blocks), and wherever it picks
    tb_cm4_fc_fused6_s8 none more than the 4-block entry point either. Layers
    of sums built on rounding ties check the double path only: each tie leaves
    the assembly (real sums meet one with probability about |acc| 2^-(31+t))."""
    fc = [k for k in target_kernels("cortex-m4") if k.op == "FULLY_CONNECTED" and "int8" in k.dtypes]
    before = [k for k in fc if k.function not in cm4_fc_fused.FUNCTIONS]
    rng = np.random.default_rng(41)
    cases, names = [], []
    ties = multiple_of_4(tie_cases(SMALL, span=(-20, 20), steps=(-1, 0, 1)))
    tie_layer = with_accumulators(random_fc_layer(rng, in_features=3, per_channel=True),
                                  [a for a, _ in ties], [m for _, m in ties])
    for layer in shapes_layers(rng, NOT_TAKEN):
        assert chosen(layer, fc).kernel not in cm4_fc_fused.FUNCTIONS, layer.shape
    layers, tie_layers = list(shapes_layers(rng, SIM_SHAPES)), [tie_layer]
    for m in (0.2, 0.13, 2 ** -9 * 11):   # per-tensor, full range: blocks of 6, then of 4
        accs = multiple_of_4([a for a, _ in tie_cases([m], span=(-20, 20), steps=(-1, 0, 1))])
        layer = random_fc_layer(np.random.default_rng(43), in_features=3, out_zp=0, activation="NONE")
        tie_layers.append(per_tensor_accumulators(layer, accs + [1, -2, 3, -4], m))
        assert cm4_fc_fused.six_outputs(tie_layers[-1]) > 0
    for layer in [*layers, *tie_layers]:
        assert chosen(layer, fc).kernel == cm4_fc_fused.kernel_for(layer).function, layer.shape
        old = chosen(layer, before).kernel
        inputs = fc_inputs(rng, layer)
        tie = " ties" if any(layer is t for t in tie_layers) else ""
        for impls in (fused(layer), kernels_with([k for k, v in FUNCTIONS.items() if v == old][0])):
            cases.append((reference(layer), optimized(layer, impls), inputs, None))
        names.append((f"{layer.shape} {old}{tie}", cm4_fc_fused.kernel_for(layer).function))
        if cm4_fc_fused.six_outputs(layer):   # and with blocks of 4 only
            with monkeypatch.context() as patch:
                patch.setattr(cm4_fc_fused, "SIX_MIN_GAIN", float("inf"))
                cases.append((reference(layer), optimized(layer, fused(layer)), inputs, None))
            names.append((f"{layer.shape} tb_cm4_fc_fused_s8{tie}", None))
    rows = simulate_cases(cases, tmp_path, ram_budget=60_000, flash_budget=400_000,
                          extra_dirs=(fc_sources(tmp_path / "kernels"),))
    slower, i = [], 0
    for what, function in names:
        new, old = (rows[i], rows[i + 1]) if function else (rows[i - 2], rows[i])
        i += 2 if function else 1
        assert_same(new["ref"], new["opt"], what)
        assert_same(old["ref"], old["opt"], what)
        print(f"{what}: fused {new['opt_instr']}/{new['opt_cycles']} vs {old['opt_instr']}/{old['opt_cycles']}")
        if what.endswith("ties"):   # every sum on or next to a tie: the double each time
            continue
        if new["opt_instr"] > old["opt_instr"] or new["opt_cycles"] > old["opt_cycles"]:
            slower.append(f"{what}: fused {new['opt_instr']}/{new['opt_cycles']} instructions/cycles "
                          f"vs {old['opt_instr']}/{old['opt_cycles']}")
    assert not slower, slower
