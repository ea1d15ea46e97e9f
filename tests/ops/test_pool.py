"""AVERAGE_POOL_2D and MAX_POOL_2D (tinybuild/ops/pool.py) against TFLite's reference kernels."""
import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, check
from tflite_builder import ModelBuilder
from tinybuild import quant


def pool_model(op="AVERAGE_POOL_2D", in_shape=(1, 6, 6, 3), k=(2, 2), stride=(2, 2),
               padding="VALID", activation="NONE", q=(0.05, 0), dtype="int8") -> bytes:
    """One pool in ``dtype``: int8, int16 (zero point 0, as 16x8 models have) or float32."""
    _, h, w, c = in_shape
    out_h, _ = quant.compute_padding(padding, h, k[0], stride[0])
    out_w, _ = quant.compute_padding(padding, w, k[1], stride[1])
    q = {"int8": q, "int16": (q[0] / 256, 0), "float32": (None, None)}[dtype]
    b = ModelBuilder()
    x = b.input(in_shape, dtype, *q)
    y = b.tensor((1, out_h, out_w, c), dtype, *q)        # TFLite: same quantization in and out
    b.op(op, [x], [y], b.options("Pool2DOptions", padding=padding, strideH=stride[0],
                                 strideW=stride[1], filterHeight=k[0], filterWidth=k[1],
                                 fusedActivationFunction=activation), version=2)
    return b.build([y])


CASES = [
    Case("AVERAGE_POOL_2D 2x2 VALID", lambda: pool_model()),
    Case("AVERAGE_POOL_2D 3x3 stride 1 SAME RELU", lambda: pool_model(
        in_shape=(1, 5, 7, 2), k=(3, 3), stride=(1, 1), padding="SAME", activation="RELU",
        q=(0.1, -20))),
    Case("MAX_POOL_2D 2x2", lambda: pool_model("MAX_POOL_2D")),
    Case("MAX_POOL_2D 3x2 SAME RELU6", lambda: pool_model(
        "MAX_POOL_2D", (1, 7, 5, 4), k=(3, 2), stride=(2, 1), padding="SAME", activation="RELU6",
        q=(0.05, 10))),
    Case("float AVERAGE_POOL_2D 3x3 stride 1 SAME RELU6", lambda: pool_model(
        in_shape=(1, 5, 7, 2), k=(3, 3), stride=(1, 1), padding="SAME", activation="RELU6",
        dtype="float32")),
    Case("float AVERAGE_POOL_2D 2x2 VALID", lambda: pool_model(dtype="float32")),
    Case("float MAX_POOL_2D 3x2 SAME RELU", lambda: pool_model(
        "MAX_POOL_2D", (1, 7, 5, 4), k=(3, 2), stride=(2, 1), padding="SAME", activation="RELU",
        dtype="float32")),
    Case("float MAX_POOL_2D RELU_N1_TO_1", lambda: pool_model(
        "MAX_POOL_2D", activation="RELU_N1_TO_1", dtype="float32")),
    Case("int16 AVERAGE_POOL_2D 3x3 stride 1 SAME RELU", lambda: pool_model(
        in_shape=(1, 5, 7, 2), k=(3, 3), stride=(1, 1), padding="SAME", activation="RELU",
        dtype="int16")),
    Case("int16 MAX_POOL_2D 3x2 SAME RELU6", lambda: pool_model(
        "MAX_POOL_2D", (1, 7, 5, 4), k=(3, 2), stride=(2, 1), padding="SAME", activation="RELU6",
        q=(0.05, 0), dtype="int16")),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_pool(case):
    check(case)


@st.composite
def pool_params(draw, op, dtype="int8"):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return dict(op=op, in_shape=(1, draw(st.integers(k[0], 9)), draw(st.integers(k[1], 9)),
                                 draw(st.integers(1, 5))),
                k=k, stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                padding=draw(st.sampled_from(["SAME", "VALID"])),
                activation=draw(st.sampled_from(["NONE", "RELU", "RELU6"])),
                q=(draw(st.floats(0.005, 0.5)), draw(st.integers(-128, 127))), dtype=dtype)


@FAST
@given(pool_params("AVERAGE_POOL_2D"))
def test_average_pool_property(params):
    check(pool_model(**params), inputs=2)


@FAST
@given(pool_params("MAX_POOL_2D"))
def test_max_pool_property(params):
    check(pool_model(**params), inputs=2)


@FAST
@given(pool_params("AVERAGE_POOL_2D", "float32") | pool_params("MAX_POOL_2D", "float32"))
def test_pool_float_property(params):
    check(pool_model(**params), inputs=2)


@FAST
@given(pool_params("AVERAGE_POOL_2D", "int16") | pool_params("MAX_POOL_2D", "int16"))
def test_pool_int16_property(params):
    check(pool_model(**params), inputs=2)


@pytest.mark.slow
@SWEEP
@given(st.sampled_from(["int8", "int16", "float32"]).flatmap(
    lambda t: pool_params("AVERAGE_POOL_2D", t) | pool_params("MAX_POOL_2D", t)))
def test_pool_sweep(params):
    check(pool_model(**params), inputs=2)
