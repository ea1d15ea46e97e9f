"""Activations (tinybuild/ops/activation.py): RELU, RELU6, RELU_N1_TO_1,
LEAKY_RELU, HARD_SWISH, LOGISTIC, TANH, ELU against TFLite's reference kernels,
byte for byte. Each op is a 256-entry table, so the property tests feed every
int8 value (check_all_values) through tensors of random rank and shape."""
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, check, first_difference, tinybuild_outputs
from tflite_builder import ModelBuilder

# (op, options table, fields, version) for an int8 model TFLite's resolver takes
INT8_VERSION = {"RELU": 2, "RELU6": 2, "RELU_N1_TO_1": 1, "LEAKY_RELU": 2, "HARD_SWISH": 1,
                "LOGISTIC": 2, "TANH": 2, "ELU": 1, "ABS": 2, "NEG": 1, "RSQRT": 2}
SHAPES_OF_256 = [(256,), (1, 256), (2, 128), (1, 16, 16), (4, 8, 8), (1, 4, 8, 8), (2, 4, 4, 8), (1, 2, 4, 4, 8),
                 (2, 2, 2, 2, 16)]


def unary_model(op: str, shape=(1, 256), q_in=(0.05, 0), q_out=(0.05, 0), alpha=None) -> bytes:
    """One int8 -> int8 elementwise op."""
    b = ModelBuilder()
    x = b.input(shape, "int8", *q_in)
    y = b.tensor(shape, "int8", *q_out)
    options = None if alpha is None else b.options("LeakyReluOptions", alpha=alpha)
    b.op(op, [x], [y], options, version=INT8_VERSION[op])
    return b.build([y])


def check_all_values(model: bytes, resolver=None, lowest: int = -128) -> None:
    """Every int8 value (the model's input holds 256 elements) through TFLite and
    tinybuild: the whole table is compared. ``resolver="builtin"``: TFLite's
    default kernels (for ELU, which BUILTIN_REF does not register). ``lowest``:
    only values from there up (repeated to fill the 256 elements)."""
    from tinybuild.reference import io_record, reference_outputs
    with tempfile.TemporaryDirectory(prefix="tb-op-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model)
        data = [np.resize(np.arange(lowest, 128), 256).astype(np.int8).tobytes()]
        want = builtin_output(model, data[0]) if resolver == "builtin" else reference_outputs(path, data)[0]
        got = tinybuild_outputs(path, data, Path(tmp) / "build")[0]
        assert first_difference(got, want, io_record(path)["outputs"]) is None, \
            first_difference(got, want, io_record(path)["outputs"])


def builtin_output(model: bytes, data: bytes) -> bytes:
    """The output of a one-input int8 model run by TFLite's default (BUILTIN) kernels."""
    import tensorflow as tf
    interpreter = tf.lite.Interpreter(model_content=model)
    interpreter.allocate_tensors()
    spec = interpreter.get_input_details()[0]
    interpreter.set_tensor(spec["index"], np.frombuffer(data, np.int8).reshape(spec["shape"]))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).tobytes()


def test_elu_is_missing_from_builtin_ref():
    """Why ELU is compared with TFLite's default kernels: BUILTIN_REF has none
    (when this fails, TFLite gained one: compare ELU with it like the rest)."""
    from tinybuild.reference import reference_outputs
    from tinybuild.errors import TinybuildError
    with tempfile.TemporaryDirectory(prefix="tb-op-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(unary_model("ELU"))
        with pytest.raises(TinybuildError, match="ELU"):
            reference_outputs(path, [bytes(256)])


LOGISTIC_OUT = (1 / 256, -128)
CASES = [
    Case("RELU same quantization", lambda: unary_model("RELU", (1, 7, 5, 3), (0.05, -3), (0.05, -3))),
    Case("RELU rescaled", lambda: unary_model("RELU", (1, 40), (0.1, 10), (0.03, -128))),
    Case("RELU6 rescaled", lambda: unary_model("RELU6", (1, 4, 4, 8), (0.1, 10), (6 / 255, -128))),
    Case("RELU6 rank 1", lambda: unary_model("RELU6", (33,), (0.05, 0), (0.05, 0))),
    Case("RELU_N1_TO_1", lambda: unary_model("RELU_N1_TO_1", (1, 9, 3), (0.02, 5), (1 / 127, 0))),
    Case("LEAKY_RELU alpha 0.2", lambda: unary_model("LEAKY_RELU", (1, 6, 6, 4), (0.05, 3), (0.04, 20),
                                                     alpha=0.2)),
    Case("LEAKY_RELU alpha 0", lambda: unary_model("LEAKY_RELU", (2, 50), (0.05, 3), (0.05, 3), alpha=0.0)),
    Case("HARD_SWISH MobileNetV3-like", lambda: unary_model("HARD_SWISH", (1, 5, 5, 16), (0.047, -1),
                                                            (0.0255, -113))),
    Case("LOGISTIC", lambda: unary_model("LOGISTIC", (1, 7, 7, 3), (0.08, 4), LOGISTIC_OUT)),
    Case("TANH", lambda: unary_model("TANH", (1, 3, 3, 2, 5), (0.03, -7), (1 / 128, 0))),
    Case("Keras model (tests/data/make_activations.py)",
         lambda: (Path(__file__).parents[1] / "data" / "activations_int8.tflite").read_bytes()),
    Case("every value: LOGISTIC wide input", lambda: unary_model("LOGISTIC", (1, 256), (0.2, 0),
                                                                 LOGISTIC_OUT), 1),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_activation(case):
    check(case)


def folded_model(op: str, values, q=(0.05, 3), q_out=(0.05, 3)) -> bytes:
    """input + OP(constant): the op's output is computed at build time."""
    b = ModelBuilder()
    x = b.input((1, len(values)), "int8", *q_out)
    c = b.const(np.asarray([values], np.int8), "int8", *q)
    t = b.tensor((1, len(values)), "int8", *q_out)
    y = b.tensor((1, len(values)), "int8", *q_out)
    b.op(op, [c], [t], version=INT8_VERSION[op])
    b.op("ADD", [x, t], [y])
    return b.build([y])


@pytest.mark.parametrize("op", ["RELU6", "TANH", "HARD_SWISH", "ABS", "NEG"])
def test_constant_input_is_folded(op, tmp_path):
    from tinybuild.importer import load_graph
    from tinybuild.lower import lower_graph
    model = folded_model(op, list(range(-128, 128, 5)))
    check(model, inputs=2)
    path = tmp_path / "m.tflite"
    path.write_bytes(model)
    assert [layer.op for layer in lower_graph(load_graph(path))] == ["ADD"]


def test_every_value_of_each_op():
    for op, q_out in [("RELU", (0.05, -128)), ("RELU6", (6 / 255, -128)), ("RELU_N1_TO_1", (1 / 127, 0)),
                      ("HARD_SWISH", (0.03, -100)), ("LOGISTIC", LOGISTIC_OUT), ("TANH", (1 / 128, 0))]:
        check_all_values(unary_model(op, (1, 256), (0.07, 3), q_out))
    check_all_values(unary_model("ELU", (1, 256), (0.07, 3), (0.06, -10)), "builtin")
    check_all_values(unary_model("LEAKY_RELU", (1, 256), (0.07, 3), (0.05, 10), alpha=0.3))


@st.composite
def quantization(draw, zero_points=st.integers(-128, 127)):
    return draw(st.floats(0.001, 0.5)), draw(zero_points)


@st.composite
def activation_case(draw, op):
    q_in = draw(quantization())
    if op == "LOGISTIC":
        q_out = LOGISTIC_OUT
    elif op == "HARD_SWISH":      # TFLite needs output scale >= input scale / 128
        q_out = (q_in[0] * draw(st.floats(0.01, 4.0)), draw(st.integers(-128, 127)))
    else:
        q_out = draw(quantization())
    alpha = draw(st.floats(0.0, 1.0)) if op == "LEAKY_RELU" else None
    return unary_model(op, draw(st.sampled_from(SHAPES_OF_256)), q_in, q_out, alpha)


ACTIVATIONS = ["RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU", "HARD_SWISH", "LOGISTIC", "TANH", "ELU"]


def _property(op, settings=FAST):
    resolver = "builtin" if op == "ELU" else None

    @settings
    @given(activation_case(op))
    def run(model):
        check_all_values(model, resolver)
    return run


test_relu_property = _property("RELU")
test_relu6_property = _property("RELU6")
test_relu_n1_to_1_property = _property("RELU_N1_TO_1")
test_leaky_relu_property = _property("LEAKY_RELU")
test_hard_swish_property = _property("HARD_SWISH")
test_logistic_property = _property("LOGISTIC")
test_tanh_property = _property("TANH")
test_elu_property = _property("ELU")


@pytest.mark.slow
@pytest.mark.parametrize("op", ACTIVATIONS)
def test_activation_sweep(op):
    _property(op, SWEEP)()


def test_unsupported_quantization_is_one_line(tmp_path):
    """LOGISTIC with an output TFLite would refuse, HARD_SWISH with an output
    scale below input/128, a float32 RELU: one line naming op and reason."""
    from tinybuild.errors import TinybuildError
    from tinybuild.pipeline import generate
    for model, why in [(unary_model("LOGISTIC", (1, 8), (0.05, 0), (0.01, 0)), "1/256"),
                       (unary_model("HARD_SWISH", (1, 8), (0.5, 0), (0.001, 0)), "input scale / 128"),
                       (_float_elu(), "float32 ELU is not compiled"),
                       (typed_model("HARD_SWISH", "int16"), "int16"),
                       (typed_model("RELU_N1_TO_1", "int16"), "int16")]:
        path = tmp_path / "m.tflite"
        path.write_bytes(model)
        with pytest.raises(TinybuildError) as err:
            generate(path, tmp_path / "out", [])
        assert why in str(err.value) and "\n" not in str(err.value)


def _float_elu() -> bytes:
    b = ModelBuilder()
    x = b.input((1, 8), "float32")
    y = b.tensor((1, 8), "float32")
    b.op("ELU", [x], [y])
    return b.build([y])


# -- float32 and int16 (16x8) ------------------------------------------------------------------

TYPED_VERSION = {"float32": 1, "int16": 3}


def typed_model(op: str, dtype: str, shape=(1, 64), q_in=(0.001, 0), q_out=(0.001, 0), alpha=None,
                gain=8.0) -> bytes:
    """One float32 or int16 activation. float32: the input is first multiplied by
    ``gain`` (exact for a power of two) so that seeded normal noise reaches every
    branch (RELU6's 6, HARD_SWISH's -3/3, LOGISTIC's -9 cutoff)."""
    b = ModelBuilder()
    q_in, q_out = ((None, None), (None, None)) if dtype == "float32" else (q_in, q_out)
    x = b.input(shape, dtype, *q_in)
    if dtype == "float32":
        scaled = b.tensor(shape, dtype)
        b.op("MUL", [x, b.const(np.float32(gain), "float32")], [scaled], b.options("MulOptions"))
        x = scaled
    y = b.tensor(shape, dtype, *q_out)
    options = None if alpha is None else b.options("LeakyReluOptions", alpha=alpha)
    version = 2 if dtype == "int16" and op == "LEAKY_RELU" else TYPED_VERSION[dtype]
    b.op(op, [x], [y], options, version=version)
    return b.build([y])


FLOAT_OPS = ["RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU", "HARD_SWISH", "LOGISTIC", "TANH"]
# LOGISTIC and TANH call expf/tanhf as TFLite does; the host build uses glibc's as the TFLite
# here does, so every float32 row compares byte for byte (a device's C library may differ in
# the last bit: the build's validation states it).
TYPED_CASES = [
    *[Case(f"{op} float32", lambda op=op: typed_model(op, "float32", (1, 4, 4, 8))) for op in FLOAT_OPS],
    Case("LEAKY_RELU float32 alpha 0.2", lambda: typed_model("LEAKY_RELU", "float32", alpha=0.2)),
    Case("LEAKY_RELU float32 alpha 1.5", lambda: typed_model("LEAKY_RELU", "float32", alpha=1.5)),
    Case("LOGISTIC float32 wide (both cutoffs)", lambda: typed_model("LOGISTIC", "float32", (1, 300),
                                                                     gain=16.0)),
    Case("RELU int16 same scale", lambda: typed_model("RELU", "int16", (1, 5, 7), (0.002, 0), (0.002, 0))),
    Case("RELU int16 rescaled", lambda: typed_model("RELU", "int16", (1, 40), (0.003, 0), (0.0007, 0))),
    Case("RELU6 int16", lambda: typed_model("RELU6", "int16", (1, 4, 4, 8), (0.001, 0), (6 / 32767, 0))),
    Case("LEAKY_RELU int16 alpha 0.2", lambda: typed_model("LEAKY_RELU", "int16", (1, 6, 6, 4), (0.001, 0),
                                                           (0.0008, 0), alpha=0.2)),
]


def check_all_int16_values(model: bytes) -> None:
    """Every int16 value (the model's input holds 65536 elements) through TFLite and tinybuild."""
    from tinybuild.reference import io_record, reference_outputs
    with tempfile.TemporaryDirectory(prefix="tb-op-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model)
        data = [np.arange(-32768, 32768).astype(np.int16).tobytes()]
        want = reference_outputs(path, data)[0]
        got = tinybuild_outputs(path, data, Path(tmp) / "build")[0]
        problem = first_difference(got, want, io_record(path)["outputs"])
        assert problem is None, problem


Q15 = (1 / 32768, 0)          # TFLite's int16 LOGISTIC/TANH output


# input scales: the power-of-two ones TFLite treats specially (2^-12; TANH also 2^-11), others
@pytest.mark.parametrize("op", ["LOGISTIC", "TANH"])
@pytest.mark.parametrize("scale", [2 ** -12, 2 ** -11, 2 ** -10, 0.0003, 0.001, 1 / 3000, 0.01, 1e-5])
def test_int16_logistic_tanh_every_value(op, scale):
    check_all_int16_values(typed_model(op, "int16", (1, 65536), (scale, 0), Q15))


@pytest.mark.parametrize("case", TYPED_CASES, ids=str)
def test_activation_typed(case):
    check(case)


@FAST
@given(st.sampled_from(FLOAT_OPS), st.sampled_from(SHAPES_OF_256), st.floats(0.5, 20.0),
       st.floats(0.0, 2.0))
def test_activation_float_property(op, shape, gain, alpha):
    check(typed_model(op, "float32", shape, gain=gain, alpha=alpha if op == "LEAKY_RELU" else None),
          inputs=2)


@FAST
@given(st.sampled_from(["RELU", "RELU6", "LEAKY_RELU"]), st.sampled_from(SHAPES_OF_256),
       st.floats(1e-5, 0.01), st.floats(1e-5, 0.01), st.floats(0.0, 1.0))
def test_activation_int16_property(op, shape, s_in, s_out, alpha):
    check(typed_model(op, "int16", shape, (s_in, 0), (s_out, 0), alpha if op == "LEAKY_RELU" else None),
          inputs=2)


BAD_QUANTIZATIONS = [((0.0, 0), (0.05, 0)), ((0.05, 0), (0.0, 0)), ((-0.05, 0), (0.05, 0)),
                     ((float("nan"), 0), (0.05, 0)), ((0.05, 0), (float("inf"), 0)),
                     ((1e-30, 0), (1e30, 0)), ((1e30, 0), (1e-30, 0)), ((0.05, 300), (0.05, 0))]


@pytest.mark.parametrize("op", sorted(INT8_VERSION))
def test_damaged_quantization_is_one_line_or_builds(op, tmp_path):
    """Zero, negative, NaN, infinite or extreme scales and an out-of-range zero
    point: the build either compiles the op or stops with one TinybuildError
    line, never another exception or a numpy warning."""
    import warnings
    from tinybuild.errors import TinybuildError
    from tinybuild.pipeline import generate
    for k, (q_in, q_out) in enumerate(BAD_QUANTIZATIONS):
        path = tmp_path / f"m{k}.tflite"
        path.write_bytes(unary_model(op, (1, 8), q_in, q_out, alpha=0.2 if op == "LEAKY_RELU" else None))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                generate(path, tmp_path / f"out{k}", [])
            except TinybuildError as err:
                assert "\n" not in str(err)
