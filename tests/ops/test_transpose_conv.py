"""TRANSPOSE_CONV (tinybuild/ops/transpose_conv.py) against TFLite's reference kernels."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, check, rng_for


def out_size(size, k, stride, mode):
    return size * stride if mode == "SAME" else (size - 1) * stride + k


def transpose_conv_model(in_hw=(3, 4), in_c=3, out_c=2, k=(3, 3), stride=(2, 2), mode="SAME",
                         per_channel=True, with_bias=True, activation="NONE", qx=(0.05, -3),
                         qy=(0.1, 4), out_hw=None, dtype="int8") -> bytes:
    """One TRANSPOSE_CONV in ``dtype``: int8, int16 (16x8: zero points 0, int64
    bias) or float32."""
    from tflite_builder import ModelBuilder
    rng = rng_for(in_hw, in_c, out_c, k, stride, mode, *((dtype,) if dtype != "int8" else ()))
    out_hw = out_hw or tuple(out_size(s, kk, st_, mode) for s, kk, st_ in zip(in_hw, k, stride))
    b = ModelBuilder()
    if dtype == "int16":
        qx, qy = (qx[0] / 256, 0), (qy[0] / 256, 0)
    shape = b.const(np.array((1, *out_hw, out_c), np.int32), "int32")
    if dtype == "float32":
        x = b.input((1, *in_hw, in_c), "float32")
        w = b.const(rng.normal(0, 0.5, (out_c, *k, in_c)).astype(np.float32), "float32")
        inputs = [shape, w, x]
        if with_bias:
            inputs.append(b.const(rng.normal(0, 1, out_c).astype(np.float32), "float32"))
        y = b.tensor((1, *out_hw, out_c), "float32")
    else:
        x = b.input((1, *in_hw, in_c), dtype, *qx)
        scales = (rng.uniform(0.002, 0.02, out_c) if per_channel else 0.01)
        w = b.const(rng.integers(-127, 128, (out_c, *k, in_c)), "int8", scales,
                    np.zeros(out_c if per_channel else 1, np.int64), axis=0)
        inputs = [shape, w, x]
        if with_bias:
            bias_scale = qx[0] * np.atleast_1d(scales)
            span, bias_type = (2000, "int32") if dtype == "int8" else (2_000_000, "int64")
            inputs.append(b.const(rng.integers(-span, span, out_c), bias_type,
                                  np.broadcast_to(bias_scale, (out_c,)), np.zeros(out_c, np.int64)))
        y = b.tensor((1, *out_hw, out_c), dtype, *qy)
    b.op("TRANSPOSE_CONV", inputs, [y], b.options(
        "TransposeConvOptions", padding=mode, strideH=stride[0], strideW=stride[1],
        fusedActivationFunction=activation), version=4)
    return b.build([y])


CASES = [
    Case("TRANSPOSE_CONV 3x3 s2 SAME per-channel with bias", lambda: transpose_conv_model()),
    Case("TRANSPOSE_CONV 2x2 s2 VALID per-tensor, no bias", lambda: transpose_conv_model(
        k=(2, 2), mode="VALID", per_channel=False, with_bias=False)),
    Case("TRANSPOSE_CONV 3x3 s1 SAME RELU", lambda: transpose_conv_model(stride=(1, 1), activation="RELU")),
    Case("TRANSPOSE_CONV 4x3 s(3,2) VALID RELU6", lambda: transpose_conv_model(
        (2, 3), 4, 5, (4, 3), (3, 2), "VALID", activation="RELU6")),
    Case("TRANSPOSE_CONV 5x5 s2 SAME odd output size", lambda: transpose_conv_model(
        (3, 3), 2, 3, (5, 5), (2, 2), "SAME", out_hw=(5, 6))),
    Case("TRANSPOSE_CONV 1x1 s1 VALID", lambda: transpose_conv_model(
        (4, 4), 8, 4, (1, 1), (1, 1), "VALID")),
] + [
    Case(f"{dtype} {name}", lambda model=model, dtype=dtype: model(dtype))
    for dtype in ("float32", "int16")
    for name, model in [
        ("TRANSPOSE_CONV 3x3 s2 SAME with bias", lambda t: transpose_conv_model(dtype=t)),
        ("TRANSPOSE_CONV 2x2 s2 VALID no bias", lambda t: transpose_conv_model(
            k=(2, 2), mode="VALID", per_channel=False, with_bias=False, dtype=t)),
        ("TRANSPOSE_CONV 4x3 s(3,2) VALID RELU6", lambda t: transpose_conv_model(
            (2, 3), 4, 5, (4, 3), (3, 2), "VALID", activation="RELU6", dtype=t)),
        ("TRANSPOSE_CONV 5x5 s2 SAME odd output size, RELU", lambda t: transpose_conv_model(
            (3, 3), 2, 3, (5, 5), (2, 2), "SAME", out_hw=(5, 6), activation="RELU", dtype=t)),
    ]
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_transpose_conv(case):
    check(case)


@st.composite
def transpose_conv_params(draw, dtype="int8"):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    q = lambda: (draw(st.floats(0.01, 0.5)), draw(st.integers(-128, 127)))  # noqa: E731
    return dict(in_hw=(draw(st.integers(1, 5)), draw(st.integers(1, 5))), in_c=draw(st.integers(1, 4)),
                out_c=draw(st.integers(1, 4)), k=k, stride=stride,
                mode=draw(st.sampled_from(["SAME", "VALID"])), per_channel=draw(st.booleans()),
                with_bias=draw(st.booleans()),
                activation=draw(st.sampled_from(["NONE", "RELU", "RELU6"])), qx=q(), qy=q(),
                dtype=dtype)


@FAST
@given(transpose_conv_params())
def test_transpose_conv_property(params):
    check(transpose_conv_model(**params), inputs=2)


@FAST
@given(transpose_conv_params("float32"))
def test_transpose_conv_float_property(params):
    check(transpose_conv_model(**params), inputs=2)


@FAST
@given(transpose_conv_params("int16"))
def test_transpose_conv_int16_property(params):
    check(transpose_conv_model(**params), inputs=2)


@pytest.mark.slow
@SWEEP
@given(st.sampled_from(["int8", "int16", "float32"]).flatmap(transpose_conv_params))
def test_transpose_conv_sweep(params):
    check(transpose_conv_model(**params), inputs=2)


def test_filter_zero_point_refused_in_one_line():
    from tinybuild.errors import TinybuildError
    from tinybuild.graph import Graph, Operator, Tensor
    from tinybuild.lower import lower_graph
    tensors = [Tensor(0, "shape", (4,), "int32", data=np.array([1, 4, 4, 1], np.int32)),
               Tensor(1, "w", (1, 2, 2, 1), "int8", (0.1,), (3,), data=np.ones((1, 2, 2, 1), np.int8)),
               Tensor(2, "in", (1, 2, 2, 1), "int8", (0.1,), (0,)),
               Tensor(3, "out\x1b[31m", (1, 4, 4, 1), "int8", (0.1,), (0,))]
    op = Operator(0, "TRANSPOSE_CONV", [0, 1, 2], [3],
                  {"Padding": "SAME", "StrideW": 2, "StrideH": 2, "FusedActivationFunction": "NONE"})
    with pytest.raises(TinybuildError) as info:
        lower_graph(Graph("g", tensors, [op], [2], [3]))
    message = str(info.value)
    assert "unsupported TRANSPOSE_CONV at layer 0" in message and "filter zero point" in message
    assert "\x1b" not in message
