"""MUL and table-activation kernels of the cortex-m4 and riscv plugins
(cm4_elementwise*, rv_elementwise*) against the reference kernels.

Which layers each kernel takes (broadcast forms, requantization it can prove,
constant scalars as tables) runs on the host, and so do the kernels
themselves (their portable C: the cortex-m4 intrinsics' fallbacks compute
what the instructions compute) on 300 random layers, in place too. In the
simulator (slow), per
target: random shapes, quantizations and activations, odd sizes and in place,
byte for byte against tb_mul_s8 / tb_lut_s8 in the same firmware; and the
instruction counts: the optimized kernel runs fewer on every layer it accepts
among fixed shapes (the counts are exact and deterministic).
"""
from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "kernels"))

from opt_harness import (CM4_DIR, RV_DIR, assert_same, build_library, chosen,  # noqa: E402
                         in_place_deltas, reference, simulate_cases, target_kernels)
from tinybuild import quant  # noqa: E402
from tinybuild.lower import Const, Layer  # noqa: E402
from tinybuild.ops.elementwise import broadcast_walk  # noqa: E402

# target: (its kernels' folder, their prefix, RAM for one firmware's buffers)
TARGETS = {"cortex-m4": (CM4_DIR, "tb_cm4", 90_000), "riscv": (RV_DIR, "tb_rv", 20_000)}
SIM_TARGETS = {**TARGETS, "esp32c3": (RV_DIR, "tb_rv", 90_000)}
LUT_OPS = ("LOGISTIC", "HARD_SWISH", "TANH", "LEAKY_RELU", "RELU6")


# -- layers as the lowering makes them ---------------------------------------------------


def mul_layer(rng, a_shape, b_shape, *, const=None, activation="NONE", quant_params=None):
    """A MUL layer (tinybuild.ops.elementwise.lower_mul's params) and its
    activation inputs. ``const``: "input1" or "input2" is a constant operand
    (passed after the activation, as the lowering does)."""
    s1, s2, so = quant_params or [float(np.float32(v)) for v in rng.uniform(0.002, 0.1, 3)]
    z1, z2, zo = (int(v) for v in rng.integers(-128, 128, 3))
    out_shape = np.broadcast_shapes(tuple(a_shape), tuple(b_shape))
    size = int(np.prod(out_shape))
    values = {"input1": rng.integers(-128, 128, int(np.prod(a_shape))).astype(np.int8),
              "input2": rng.integers(-128, 128, int(np.prod(b_shape))).astype(np.int8)}
    shapes = {"input1": tuple(a_shape), "input2": tuple(b_shape)}
    live = [r for r in ("input1", "input2") if r != const]
    call = live + ([const] if const else [])
    swap = int(call[0] == "input2")
    walk = broadcast_walk(out_shape, shapes[call[0]], shapes[call[1]])
    real = quant.f32(quant.f32(quant.f32(s1) * quant.f32(s2)) / quant.f32(so))
    act_min, act_max = quant.activation_range(activation, so, zo)
    params = {"size": size, "shape": (int(tuple(a_shape) != tuple(b_shape)), swap, *walk),
              "input1_offset": -z1, "input2_offset": -z2, "output_offset": zo,
              "output": quant.quantize_multiplier(real), "act_min": act_min, "act_max": act_max}
    consts = [Const(const, "int8_t", values[const])] if const else []
    layer = Layer(0, "MUL", "tb_mul_params", params, list(range(len(live))), [len(live)], consts,
                  size, f"{'x'.join(map(str, a_shape))} * {'x'.join(map(str, b_shape))}"
                  f"{' (' + const + ' constant)' if const else ''}")
    return layer, [values[r] for r in live]


def lut_layer(rng, size: int, op: str = "LOGISTIC"):
    """A table layer (tinybuild.ops.activation.lut_layer's form) with a random table."""
    table = rng.integers(-128, 128, 256).astype(np.int8)
    layer = Layer(0, op, "tb_lut_params", {"size": size}, [0], [1],
                  [Const("lut", "int8_t", table)], 0, f"{size} values")
    return layer, [rng.integers(-128, 128, size).astype(np.int8)]


# -- what each kernel takes (host) -------------------------------------------------------


@pytest.fixture(scope="module", params=list(TARGETS))
def target(request):
    return request.param


def picked(layer, target_name) -> str:
    out = chosen(layer, target_kernels(target_name))
    return "reference" if out is None else out.kernel


@pytest.mark.parametrize("a_shape, b_shape, form", [
    ((1, 6, 6, 16), (1, 6, 6, 16), "mul"), ((1, 6, 6, 16), (1, 1, 1, 16), "mul"),
    ((1, 1, 1, 16), (1, 6, 6, 16), "mul"), ((1, 6, 6, 16), (1,), "mul"), ((7,), (7,), "mul"),
    ((1, 6, 6, 16), (1, 1, 6, 16), "mul"),        # a 96-value row against 6 rows: the same walk
    ((1, 6, 6, 16), (1, 6, 6, 1), "reference"), ((1, 6, 6, 16), (1, 6, 1, 16), "reference")])
def test_mul_takes_the_forms_it_handles(target, a_shape, b_shape, form):
    layer, _ = mul_layer(np.random.default_rng(0), a_shape, b_shape)
    prefix = TARGETS[target][1]
    assert picked(layer, target) == (f"{prefix}_mul_s8" if form == "mul" else "reference")


def test_mul_by_a_constant_scalar_is_a_table(target):
    rng = np.random.default_rng(1)
    for a_shape, b_shape, const in (((1, 4, 4, 8), (1,), "input2"), ((1,), (1, 4, 4, 8), "input1")):
        layer, _ = mul_layer(rng, a_shape, b_shape, const=const)
        assert picked(layer, target) == f"{TARGETS[target][1]}_lut_s8"
    layer, _ = mul_layer(rng, (1, 4, 4, 8), (1, 1, 1, 8), const="input2")   # per-channel constant
    assert picked(layer, target) == f"{TARGETS[target][1]}_mul_s8"


def test_mul_table_is_the_reference_arithmetic(target):
    """Each entry as tb_mul_s8 computes it: (x + o1)(s + o2) requantized, clamped."""
    rng = np.random.default_rng(2)
    layer, _ = mul_layer(rng, (1, 3, 3, 4), (1,), const="input2", activation="RELU6")
    prepared = chosen(layer, target_kernels(target))
    p, s = layer.params, int(layer.consts[0].values[0])
    m, shift = p["output"]
    for x in (-128, -1, 0, 5, 127):
        want = p["output_offset"] + quant.mul_by_quant_mul(
            (x + p["input1_offset"]) * (s + p["input2_offset"]), m, shift)
        want = min(max(want, p["act_min"]), p["act_max"])
        assert prepared.consts[0].values[x & 0xFF] == want


def test_table_activations_go_to_the_lut_kernel(target):
    rng = np.random.default_rng(3)
    for op in LUT_OPS:
        layer, _ = lut_layer(rng, 1000, op)
        assert picked(layer, target) == f"{TARGETS[target][1]}_lut_s8", op


@pytest.mark.parametrize("size", [1, 3, 4, 7, 15])
def test_small_tables_stay_on_the_reference(target, size):
    """Below 16 elements the reference's loop was as fast (see test_never_slower...)."""
    layer, _ = lut_layer(np.random.default_rng(size), size)
    assert picked(layer, target) == "reference"


def test_tables_of_other_kinds_stay_on_the_reference(target):
    layer, _ = lut_layer(np.random.default_rng(0), 64)
    layer.consts[0] = Const("lut", "int8_t", np.zeros(128, np.int8))   # not a byte's table
    assert picked(layer, target) == "reference"


def test_mul_refuses_a_requantization_it_cannot_prove(target):
    """A multiplier above 1 (left shift) is not in the fast form: the reference runs it."""
    layer, _ = mul_layer(np.random.default_rng(4), (1, 4, 4, 8), (1, 4, 4, 8),
                         quant_params=(0.5, 0.5, 0.01))
    assert layer.params["output"][1] > 0
    assert picked(layer, target) == "reference"


# -- byte for byte on the host ----------------------------------------------------------


class Bcast(ctypes.Structure):
    _fields_ = [("broadcast", ctypes.c_int32), ("swap", ctypes.c_int32),
                ("dims", ctypes.c_int32 * 6), ("stride1", ctypes.c_int32 * 6),
                ("stride2", ctypes.c_int32 * 6)]


class MulParams(ctypes.Structure):
    _fields_ = [("size", ctypes.c_int32), ("shape", Bcast), ("input1_offset", ctypes.c_int32),
                ("input2_offset", ctypes.c_int32), ("output_offset", ctypes.c_int32),
                ("multiplier", ctypes.c_int32), ("shift", ctypes.c_int32),
                ("act_min", ctypes.c_int32), ("act_max", ctypes.c_int32)]


def params_struct(layer):
    p = layer.params
    if layer.params_type == "tb_lut_params":
        return ctypes.c_int32(p["size"])
    broadcast, swap, dims, s1, s2 = p["shape"]
    arr = ctypes.c_int32 * 6
    return MulParams(p["size"], Bcast(broadcast, swap, arr(*dims), arr(*s1), arr(*s2)),
                     p["input1_offset"], p["input2_offset"], p["output_offset"], *p["output"],
                     p["act_min"], p["act_max"])


def run_host(lib, layer, inputs, delta=None) -> np.ndarray:
    """The layer's kernel on the host; with ``delta`` the output starts
    ``delta`` bytes from input 0 in one buffer (in place)."""
    n, guard = layer.params["size"], 32
    buffer = np.zeros(2 * guard + n + max(0, -(delta or 0)) + inputs[0].size, np.int8)
    x0 = guard + max(0, -(delta or 0))
    buffer[x0:x0 + inputs[0].size] = inputs[0]
    out = x0 + delta if delta is not None else x0 + inputs[0].size + guard // 2
    keep = [np.ascontiguousarray(x) for x in inputs[1:]]
    consts = {c.role: np.ascontiguousarray(c.values) for c in layer.consts}
    roles = layer.args if layer.args is not None else [c.role for c in layer.consts]
    pointers = [buffer.ctypes.data + x0] + [x.ctypes.data for x in keep] + \
        [consts[r].ctypes.data for r in roles] + [buffer.ctypes.data + out]
    fn = getattr(lib, layer.kernel)
    fn.restype = None
    fn(ctypes.byref(params_struct(layer)), *[ctypes.c_void_p(ptr) for ptr in pointers])
    return buffer[out:out + n].copy()


@pytest.fixture(scope="module")
def host_lib(tmp_path_factory, target):
    return build_library(tmp_path_factory.mktemp(f"elementwise_{target}"),
                         extra_dirs=(TARGETS[target][0],), name=f"libtb_{target}.so")


def test_kernels_match_the_reference_on_the_host(host_lib, target):
    rng = np.random.default_rng(8)
    layers = [random_mul_case(rng) for _ in range(300)]
    layers += [mul_layer(rng, (1, 3, 2, c), (1, 1, 1, c)) for c in (65, 96, 101)]   # above MUL_CACHE
    layers += [lut_layer(rng, int(n)) for n in rng.integers(16, 300, 20)]
    cases = cases_for(target, layers)
    assert len(cases) > 400
    for ref, opt, inputs, delta in cases:
        want = run_host(host_lib, ref, inputs)
        for d in [None] if delta is None else [0, -1, -3, -16]:   # overlap (None, 0): any d <= 0
            where = f"{target} {opt.op} {opt.shape}" + ("" if d is None else f" in place at {d}")
            assert_same(want, run_host(host_lib, opt, inputs, d), where)


# -- byte for byte and instruction counts in the simulator -------------------------------


def random_mul_case(rng):
    h, w = (int(v) for v in rng.integers(1, 6, 2))
    c = int(rng.integers(1, 40))
    full = (1, h, w, c)
    kind = rng.integers(0, 5)
    if kind == 0:
        return mul_layer(rng, full, full, activation=str(rng.choice(["NONE", "RELU", "RELU6"])))
    if kind == 1:
        return mul_layer(rng, full, (1, 1, 1, c))
    if kind == 2:
        return mul_layer(rng, (1, 1, 1, c), full, activation="RELU")
    if kind == 3:
        return mul_layer(rng, full, (1,), const=str(rng.choice(["input1", "input2", ""])) or None)
    return mul_layer(rng, (int(rng.integers(1, 80)),), (1,), const="input2")


def cases_for(target_name, layers):
    """(reference, optimized, inputs, delta) per layer the target's kernels take,
    out of place and at the lowest in-place offset the kernel declares."""
    impls = target_kernels(target_name)
    cases = []
    for layer, inputs in layers:
        opt = chosen(layer, impls)
        if opt is None:
            continue
        cases.append((reference(layer), opt, inputs, None))
        deltas = [d for d in in_place_deltas(opt) if d <= 0]
        if deltas:
            cases.append((reference(layer), opt, inputs, max(deltas)))
    return cases


def simulate(target_name, cases, tmp_path):
    directory, _, ram = SIM_TARGETS[target_name]
    return simulate_cases(cases, tmp_path, ram_budget=ram, extra_dirs=(directory,),
                          target_name=target_name, flash_budget=60_000)


@pytest.mark.slow
@pytest.mark.parametrize("target_name", list(SIM_TARGETS))
def test_kernels_match_the_reference_in_the_simulator(tmp_path, target_name):
    rng = np.random.default_rng(5)
    layers = [random_mul_case(rng) for _ in range(40)]
    layers += [lut_layer(rng, n, LUT_OPS[n % len(LUT_OPS)]) for n in (16, 17, 19, 23, 31, 64, 1001)]
    cases = cases_for(target_name, layers)
    assert len(cases) >= 60
    for case, row in zip(cases, simulate(target_name, cases, tmp_path)):
        assert row["opt_instr"] > 0, f"{case[1].shape}: the optimized kernel did not run"
        where = "" if case[3] is None else f" in place at {case[3]}"
        assert_same(row["ref"], row["opt"], f"{target_name} {case[1].op} {case[1].shape}{where}")


SWEEP_SIZES = (1, 3, 4, 7, 64, 1000, 4096)
SWEEP_CHANNELS = (1, 2, 3, 4, 5, 7, 8, 16, 17, 24, 32, 48, 64)


def sweep_layers(rng):
    """The sizes the kernels must not be slower on: each form at 1..4096
    elements, the per-channel form at 1..64 channels, the tables at 1..4096."""
    scales = (0.05, 0.04, 0.1)             # a multiplier below 1: every MUL form is taken
    layers = []
    for n in SWEEP_SIZES:
        layers += [mul_layer(rng, (n,), (n,), quant_params=scales),
                   mul_layer(rng, (n,), (1,), quant_params=scales),
                   mul_layer(rng, (1,), (n,), const="input1", quant_params=scales),
                   lut_layer(rng, n, "HARD_SWISH")]
    for c in SWEEP_CHANNELS:
        layers += [mul_layer(rng, (1, hw, 1, c), (1, 1, 1, c), quant_params=scales)
                   for hw in (1, 5, 49)]
    return layers


def run_sweep(target_name, workdir) -> list[tuple]:
    """``(optimized layer, simulator row)`` for every sweep layer the target's
    kernels take (out of place)."""
    cases = [c for c in cases_for(target_name, sweep_layers(np.random.default_rng(6))) if c[3] is None]
    return [(case[1], row) for case, row in zip(cases, simulate(target_name, cases, workdir))]


@pytest.mark.slow
@pytest.mark.parametrize("target_name", list(TARGETS))
def test_never_slower_than_the_reference_on_the_sweep(tmp_path, target_name):
    """Every sweep layer a kernel takes runs fewer instructions (exact counts)
    and no more modelled cycles than the reference; the tables it leaves to
    the reference are the small ones."""
    rows = run_sweep(target_name, tmp_path)
    assert len(rows) == len(sweep_layers(np.random.default_rng(6))) - 4, \
        "all but the tables of 1, 3, 4 and 7 elements are taken"
    for opt, row in rows:
        assert_same(row["ref"], row["opt"], f"{target_name} {opt.op} {opt.shape}")
        assert row["opt_instr"] < row["ref_instr"], (opt.shape, row["opt_instr"], row["ref_instr"])
        assert row["opt_cycles"] <= row["ref_cycles"], (opt.shape, row["opt_cycles"], row["ref_cycles"])


@pytest.mark.slow
@pytest.mark.parametrize("target_name", list(TARGETS))
def test_fixed_shapes_run_fewer_instructions(tmp_path, target_name):
    """MobileNetV3-style layers: squeeze-excite's 7x7x48 * 1x1x48, hard swish's
    14x14x16 product and its constant 1/6 scale, a 1000-value LOGISTIC."""
    rng = np.random.default_rng(7)
    layers = [mul_layer(rng, (1, 7, 7, 48), (1, 1, 1, 48), quant_params=(0.05, 1 / 256, 0.05)),
              mul_layer(rng, (1, 14, 14, 16), (1, 14, 14, 16), quant_params=(0.05, 0.03, 0.06)),
              mul_layer(rng, (1, 14, 14, 16), (1,), const="input2", quant_params=(0.06, 0.0013, 0.05)),
              lut_layer(rng, 1000, "LOGISTIC")]
    cases = [c for c in cases_for(target_name, layers) if c[3] is None]
    assert len(cases) == len(layers)
    for (_, opt, _, _), row in zip(cases, simulate(target_name, cases, tmp_path)):
        assert_same(row["ref"], row["opt"], f"{target_name} {opt.op} {opt.shape}")
        assert row["opt_instr"] < row["ref_instr"] * 0.85, (opt.shape, row["opt_instr"], row["ref_instr"])


def print_sweep() -> None:
    """Instructions per element, reference and optimized, on the sweep:
    ``./tb python tests/test_target_elementwise.py``."""
    import tempfile
    for target_name in TARGETS:
        with tempfile.TemporaryDirectory() as workdir:
            rows = run_sweep(target_name, Path(workdir))
        print(f"{target_name}: layer | kernel | elements | instructions per element: reference, optimized")
        for opt, row in rows:
            n = opt.params["size"]
            print(f"  {opt.op} {opt.shape} | {opt.kernel} | {n} | "
                  f"{row['ref_instr'] / n:.2f} | {row['opt_instr'] / n:.2f}")


if __name__ == "__main__":
    print_sweep()
