"""RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR (tinybuild/ops/resize.py) against
TFLite's reference kernels."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, check
from tflite_builder import ModelBuilder

TABLES = {"RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighborOptions",
          "RESIZE_BILINEAR": "ResizeBilinearOptions"}


def resize_model(op="RESIZE_BILINEAR", in_hw=(3, 4), out_hw=(6, 8), c=2, align=False, half=False,
                 q=(0.05, -3), dtype="int8") -> bytes:
    b = ModelBuilder()
    q = {"float32": (None, None), "int16": (q[0], 0)}.get(dtype, q)
    x = b.input((1, *in_hw, c), dtype, *q)
    size = b.const(np.array(out_hw, np.int32), "int32")
    y = b.tensor((1, *out_hw, c), dtype, *q)
    b.op(op, [x, size], [y], b.options(TABLES[op], alignCorners=align, halfPixelCenters=half),
         version=3)
    return b.build([y])


NN, BI = "RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"
CASES = [
    Case("BILINEAR 2x up", lambda: resize_model()),
    Case("BILINEAR half_pixel_centers 2x up", lambda: resize_model(half=True)),
    Case("BILINEAR align_corners odd sizes", lambda: resize_model(in_hw=(5, 3), out_hw=(7, 11), align=True)),
    Case("BILINEAR down-scale, half pixel", lambda: resize_model(in_hw=(9, 7), out_hw=(4, 3), half=True)),
    Case("BILINEAR to 1x1, align_corners", lambda: resize_model(in_hw=(4, 4), out_hw=(1, 1), align=True)),
    Case("NEAREST 2x up", lambda: resize_model(NN)),
    Case("NEAREST half_pixel_centers 3x", lambda: resize_model(NN, (2, 3), (6, 9), half=True)),
    Case("NEAREST align_corners odd sizes", lambda: resize_model(NN, (5, 3), (7, 11), align=True)),
    Case("NEAREST down-scale", lambda: resize_model(NN, (9, 7), (4, 3), c=3)),
    Case("NEAREST float32 2x up", lambda: resize_model(NN, dtype="float32")),
    Case("NEAREST float32 align_corners odd sizes", lambda: resize_model(NN, (5, 3), (7, 11), align=True,
                                                                         dtype="float32")),
    Case("BILINEAR float32 2x up", lambda: resize_model(dtype="float32")),
    Case("BILINEAR float32 half_pixel_centers, down", lambda: resize_model(in_hw=(9, 7), out_hw=(4, 3), half=True,
                                                                           dtype="float32")),
    Case("BILINEAR float32 align_corners odd sizes", lambda: resize_model(in_hw=(5, 3), out_hw=(7, 11),
                                                                          align=True, dtype="float32")),
    Case("NEAREST int16 half_pixel_centers 3x", lambda: resize_model(NN, (2, 3), (6, 9), half=True,
                                                                     dtype="int16")),
    Case("BILINEAR int16 2x up", lambda: resize_model(dtype="int16")),
    Case("BILINEAR int16 half_pixel_centers, down", lambda: resize_model(in_hw=(9, 7), out_hw=(4, 3), half=True,
                                                                         dtype="int16")),
    Case("BILINEAR int16 align_corners odd sizes", lambda: resize_model(in_hw=(5, 3), out_hw=(7, 11),
                                                                        align=True, dtype="int16")),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_resize(case):
    check(case)


@st.composite
def resize_params(draw, op):
    mode = draw(st.sampled_from(["asymmetric", "align", "half"]))
    dims = st.integers(1, 9)
    return dict(op=op, in_hw=(draw(dims), draw(dims)), out_hw=(draw(dims), draw(dims)),
                c=draw(st.integers(1, 4)), align=mode == "align", half=mode == "half",
                q=(draw(st.floats(0.005, 1.0)), draw(st.integers(-128, 127))))


@FAST
@given(resize_params(BI))
def test_resize_bilinear_property(params):
    check(resize_model(**params), inputs=2)


@FAST
@given(resize_params(NN))
def test_resize_nearest_property(params):
    check(resize_model(**params), inputs=2)


@pytest.mark.slow
@SWEEP
@given(st.sampled_from([BI, NN]).flatmap(resize_params))
def test_resize_sweep(params):
    check(resize_model(**params), inputs=2)


def test_refused_in_one_line():
    from tinybuild.errors import TinybuildError
    from tinybuild.graph import Graph, Operator, Tensor
    from tinybuild.lower import lower_graph
    tensors = [Tensor(0, "in", (1, 2, 2, 1), "int8", (0.1,), (0,)),
               Tensor(1, "size", (2,), "int32"),                     # not a constant
               Tensor(2, "out\n\x1b[31m", (1, 4, 4, 1), "int8", (0.1,), (0,))]
    op = Operator(0, BI, [0, 1], [2], {"AlignCorners": False, "HalfPixelCenters": False})
    with pytest.raises(TinybuildError) as info:
        lower_graph(Graph("g", tensors, [op], [0, 1], [2]))
    message = str(info.value)
    assert "unsupported RESIZE_BILINEAR at layer 0" in message and "constant int32" in message
    assert "\n" not in message and "\x1b" not in message


@FAST
@given(resize_params(NN), st.sampled_from(["float32", "int16"]))
def test_resize_nearest_typed_property(params, dtype):
    check(resize_model(**params, dtype=dtype), inputs=2)


@FAST
@given(resize_params(BI))
def test_resize_bilinear_float_property(params):
    check(resize_model(**params, dtype="float32"), inputs=2)


@FAST
@given(resize_params(BI))
def test_resize_bilinear_int16_property(params):
    check(resize_model(**params, dtype="int16"), inputs=2)
