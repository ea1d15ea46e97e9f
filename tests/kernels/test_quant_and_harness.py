"""Host quantization math (tinybuild.quant), the shared C fixed-point helpers,
proof that the harness can fail, and the Cortex-M4 cross-compile check."""

import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel_harness import HOST_CFLAGS, KERNEL_DIR, case_conv, case_softmax
from tinybuild import quant

pytestmark = pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")

HYP = settings(max_examples=2000, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.function_scoped_fixture])

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# ---------------------------------------------------------- quant.py
def test_quantize_multiplier_basics():
    assert quant.quantize_multiplier(0.0) == (0, 0)
    assert quant.quantize_multiplier(0.5) == (1 << 30, 0)
    assert quant.quantize_multiplier(1.0) == (1 << 30, 1)
    assert quant.quantize_multiplier(0.25) == (1 << 30, -1)
    assert quant.quantize_multiplier(3.0) == (3 << 29, 2)


def test_quantize_multiplier_rounds_up_to_two_pow_31():
    # frexp mantissa so close to 1 that rounding to Q31 gives 2^31:
    # TFLite halves it and bumps the shift.
    real = 1.0 - 2.0**-40
    assert quant.quantize_multiplier(real) == (1 << 30, 1)
    assert quant.quantize_multiplier(0.5 * real) == (1 << 30, 0)


def test_quantize_multiplier_flushes_tiny_to_zero():
    assert quant.quantize_multiplier(2.0**-40) == (0, 0)
    assert quant.quantize_multiplier(2.0**-33) == (0, 0)   # shift -32
    assert quant.quantize_multiplier(2.0**-32)[1] == -31   # still representable


def test_quantize_multiplier_round_half_away_from_zero():
    # q * 2^31 = 2^30 + 0.5 exactly: std::round gives 2^30 + 1 (banker's would not).
    real = (2.0**30 + 0.5) / 2.0**31
    assert quant.quantize_multiplier(real) == ((1 << 30) + 1, 0)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(real=st.floats(1e-9, 1e6))
def test_quantize_multiplier_reconstructs(real):
    m, s = quant.quantize_multiplier(real)
    assert (1 << 30) <= m < (1 << 31)
    assert abs(m * 2.0 ** (s - 31) - real) <= real * 2.0**-30


def test_activation_range():
    assert quant.activation_range("NONE", 0.1, 3) == (-128, 127)
    assert quant.activation_range("RELU", 0.1, 3) == (3, 127)
    assert quant.activation_range("RELU", 0.1, -128) == (-128, 127)
    assert quant.activation_range("RELU6", 0.05, -10) == (-10, 110)
    assert quant.activation_range("RELU6", 6.0 / 255, -128) == (-128, 127)
    assert quant.activation_range("RELU_N1_TO_1", 1.0 / 64, 0) == (-64, 64)
    # 6 / 0.08 = 75 exactly in reals; float32 division still gives 75.
    assert quant.activation_range("RELU6", 0.08, 0) == (0, 75)
    # float32(1) / float32(0.4) rounds to exactly 2.5 in float32 (the double
    # quotient is 2.49999996), then round-half-away gives 3: float32 matters.
    assert quant.activation_range("RELU_N1_TO_1", 0.4, 0) == (-3, 3)
    with pytest.raises(ValueError):
        quant.activation_range("TANH", 0.1, 0)


def test_conv_multipliers_per_tensor_broadcast_and_fc_float_product():
    per_tensor = quant.conv_output_multipliers(0.05, [0.01], 0.1, 3)
    assert per_tensor == [quant.quantize_multiplier(
        quant.f32(0.05) * quant.f32(0.01) / quant.f32(0.1))] * 3
    fc = quant.conv_output_multipliers(0.05, [0.01], 0.1, 2, op="FULLY_CONNECTED")
    assert fc == [quant.fc_output_multiplier(0.05, 0.01, 0.1)] * 2
    with pytest.raises(ValueError):
        quant.conv_output_multipliers(0.05, [0.01, 0.02], 0.1, 3)


def test_fc_multiplier_uses_float32_product():
    # Find scales where the float32 product changes the Q31 multiplier, and
    # check the FC path follows the float32 product (GetQuantizedConvolutionMultipler).
    rng = np.random.default_rng(1)
    for _ in range(2000):
        a, b, c = (float(np.float32(v)) for v in rng.uniform(0.001, 0.5, 3))
        dbl = quant.quantize_multiplier(a * b / c)
        flt = quant.quantize_multiplier(quant.f32(a * b) / c)
        if dbl != flt:
            assert quant.fc_output_multiplier(a, b, c) == flt
            assert quant.conv_output_multipliers(a, [b], c, 1) == [dbl]
            return
    pytest.fail("no distinguishing scales found")


def test_add_params_fields():
    d = quant.add_params(0.05, 3, 0.1, -2, 0.2, 1, "RELU")
    assert d["input1_offset"] == -3 and d["input2_offset"] == 2 and d["output_offset"] == 1
    assert d["left_shift"] == 20
    assert d["input1"] == (1 << 30, -1) and d["input2"] == (1 << 30, 0)
    assert d["act_min"] == 1 and d["act_max"] == 127


def test_softmax_params():
    d = quant.softmax_params(0.1, 0, 1.0 / 256, -128, 1.0)
    real = float(np.float32(0.1)) * 2.0**26
    assert d["input_multiplier"] * 2.0 ** (d["input_left_shift"] - 31) == pytest.approx(real)
    assert d["diff_min"] == -int(np.floor(31 * 2.0**26 / 2.0 ** d["input_left_shift"]))
    assert d["exp_table"] is None
    with pytest.raises(ValueError):
        quant.softmax_params(0.1, 0, 1.0 / 255, -128, 1.0)
    with pytest.raises(ValueError):
        quant.softmax_params(0.1, 0, 1.0 / 256, 0, 1.0)


def test_padding():
    assert quant.compute_padding("SAME", 7, 3, 2) == (4, 1)
    assert quant.compute_padding("VALID", 7, 3, 2) == (3, 0)
    assert quant.compute_padding("SAME", 8, 3, 1, dilation=2) == (8, 2)
    assert quant.compute_padding("SAME", 6, 2, 2) == (3, 0)


# ----------------------------------------------- C fixed-point helpers
def ref_srdhm(a, b):
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    v = ab + nudge
    q = abs(v) >> 31  # C++ division truncates toward zero
    return q if v >= 0 else -q


def ref_rdbpot(x, e):
    mask = (1 << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > thr else 0)


def ref_mbqm(x, m, s):
    left, right = max(s, 0), max(-s, 0)
    shifted = ((x << left) + 2**31) % 2**32 - 2**31  # int32 wrap
    return ref_rdbpot(ref_srdhm(shifted, m), right)


int32s = st.integers(INT32_MIN, INT32_MAX)


@HYP
@given(a=int32s, b=int32s)
def test_srdhm_matches_reference(kernels, a, b):
    assert kernels.lib.tb_sat_rounding_doubling_high_mul(a, b) == ref_srdhm(a, b)


@HYP
@given(x=int32s, e=st.integers(0, 31))
def test_rounding_divide_by_pot_matches_reference(kernels, x, e):
    assert kernels.lib.tb_rounding_divide_by_pot(x, e) == ref_rdbpot(x, e)


@HYP
@given(x=st.integers(-(2**24), 2**24), m=st.integers(1 << 30, INT32_MAX),
       s=st.integers(-31, 6))
def test_mul_by_quant_mul_matches_reference(kernels, x, m, s):
    assert kernels.mul_by_quant_mul(x, m, s) == ref_mbqm(x, m, s)


def test_double_rounding_not_single_rounding(kernels):
    # x=1, m=2^30 (0.5), shift=-1: exact value 0.25 -> 0 either way; pick a tie
    # where double rounding differs from single rounding: SRDHM rounds
    # 3 * 0.5 = 1.5 -> 2, then /2 -> 1; single rounding of 0.75 -> 1 too, so
    # use x=5: 2.5 -> 3 -> /2 = 1.5 -> 2, single: 1.25 -> 1.
    assert kernels.mul_by_quant_mul(5, 1 << 30, -1) == 2
    assert ref_mbqm(5, 1 << 30, -1) == 2


# --------------------------------------------- the harness can fail
def test_harness_detects_perturbed_output(kernels):
    rng = np.random.default_rng(7)
    got, exp = case_conv(kernels, rng, in_zp=3, out_zp=-4)
    assert np.array_equal(got, exp)
    perturbed = got.copy().reshape(-1)
    i = int(rng.integers(perturbed.size))
    perturbed[i] = np.int8(perturbed[i] ^ 1)
    assert not np.array_equal(perturbed.reshape(exp.shape), exp)


def test_harness_detects_wrong_rounding(faulty_kernels):
    """Kernels rebuilt with a truncating RoundingDivideByPOT must mismatch TFLite."""
    rng = np.random.default_rng(11)
    got, exp = case_conv(faulty_kernels, rng, in_h=6, in_w=6, in_c=4, out_c=6,
                         in_zp=-5, out_zp=2)
    assert not np.array_equal(got, exp)
    got, exp = case_softmax(faulty_kernels, rng, shape=(4, 20), in_scale=0.1)
    assert not np.array_equal(got, exp)


# ------------------------------------------- cross compilation (Cortex-M4)
ARM_CC = "arm-none-eabi-gcc"
ARM_FLAGS = ["-std=c99", "-O2", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard",
             "-mfpu=fpv4-sp-d16", "-Wall", "-Wextra", "-Werror", "-c"]
SOURCES = sorted(KERNEL_DIR.glob("*.c"))
LIBM = {"exp", "expf", "log", "logf", "pow", "powf", "round", "roundf", "floor",
        "floorf", "frexp", "ldexp", "sqrt", "sqrtf", "lround", "rint", "nearbyint"}
# Only FULLY_CONNECTED and QUANTIZE/DEQUANTIZE use (soft-float, IEEE-exact) double arithmetic: TF 2.21's
# reference FC rescales in double. Everything else must be integer-only.
SOFT_DOUBLE_OK = {"fully_connected.c", "quantize.c"}
# The float32 kernels whose TFLite reference calls std::exp / std::tanh on floats (LOGISTIC, TANH,
# SOFTMAX, the float LSTM's gates) call the C library's expf / tanhf: the only libm they may use
# (their last bit may differ from glibc's: the float tolerance covers it, see tinybuild.pipeline).
FLOAT_LIBM_OK = {"activation.c": {"expf", "tanhf"}, "softmax.c": {"expf"},
                 "recurrent.c": {"expf", "tanhf"}}


@pytest.mark.skipif(shutil.which(ARM_CC) is None, reason="arm-none-eabi-gcc not installed")
@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.name)
def test_cross_compiles_for_cortex_m4(tmp_path, src):
    obj = tmp_path / (src.stem + ".o")
    # -Wvla additionally proves there are no variable-length arrays.
    subprocess.run([ARM_CC, *ARM_FLAGS, "-Wvla", "-I", str(KERNEL_DIR), str(src),
                    "-o", str(obj)], check=True, capture_output=True, text=True)
    nm = subprocess.run(["arm-none-eabi-nm", "-u", str(obj)], check=True,
                        capture_output=True, text=True).stdout.split()
    undefined = {s for s in nm if s != "U"}
    libm = undefined & LIBM
    assert libm <= FLOAT_LIBM_OK.get(src.name, set()), f"{src.name} calls libm: {libm}"
    undefined -= FLOAT_LIBM_OK.get(src.name, set())
    allowed = lambda s: (s.startswith("tb_") or s in ("memcpy", "memmove", "memset")
                         or (src.name in SOFT_DOUBLE_OK and s.startswith("__aeabi_")))
    assert all(allowed(s) for s in undefined), undefined


def test_host_compile_flags_are_the_required_ones():
    assert HOST_CFLAGS == ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                           "-ffp-contract=off", "-fPIC", "-shared"]
