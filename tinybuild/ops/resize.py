"""RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR: int8, int16 and float32 NHWC,
batch 1, a constant size, align_corners and half_pixel_centers. Kernels:
tinybuild/kernels/resize.c.

The positions are computed here, as TF 2.21 computes them: nearest neighbour
in float32 (GetNearestNeighbor), bilinear in 10-bit fixed point
(ComputeInterpolationValuesInteger, the int8 and int16 path; float32 by
ComputeInterpolationValues). Like TFLite, the int8/int16 values are copied or
blended as they are (no requantization)."""
from __future__ import annotations

import numpy as np

from ..lower import Const, Layer
from . import KERNEL_DIR, OpDef, OptionField, Options, unsupported
from ._common import tensor

NEAREST_OPTIONS = Options("ResizeNearestNeighborOptions", (
    OptionField("AlignCorners", "align_corners", 0, "bool", False),
    OptionField("HalfPixelCenters", "half_pixel_centers", 1, "bool", False)))
BILINEAR_OPTIONS = Options("ResizeBilinearOptions", (
    OptionField("AlignCorners", "align_corners", 2, "bool", False),
    OptionField("HalfPixelCenters", "half_pixel_centers", 3, "bool", False)))

F = np.float32


def nearest_indices(in_size: int, out_size: int, align: bool, half: bool) -> np.ndarray:
    """GetNearestNeighbor for every output index (float32 as TFLite)."""
    if align and out_size > 1:
        scale = F(in_size - 1) / F(out_size - 1)
    else:
        scale = F(in_size) / F(out_size)
    pos = (np.arange(out_size, dtype=F) + F(0.5 if half else 0.0)) * F(scale)
    if align:
        index = np.sign(pos) * np.floor(np.abs(pos) + F(0.5))     # TfLiteRound: half away
    else:
        index = np.floor(pos)
    index = np.minimum(index.astype(np.int64), in_size - 1)
    return np.maximum(index, 0) if half else index


def bilinear_table(in_size: int, out_size: int, align: bool, half: bool) -> np.ndarray:
    """(lower, upper, weight of upper in 1/1024) per output index, as
    ResizeBilinearInteger computes them (C++ integer division truncates)."""
    def cdiv(a: int, b: int) -> int:
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b > 0) else -q
    if align and out_size > 1:
        scale = cdiv((1 << 10) * (in_size - 1) + (out_size - 1) // 2, out_size - 1)
    else:
        scale = cdiv((1 << 10) * in_size + out_size // 2, out_size)
    rows = []
    for i in range(out_size):
        scaled = i * scale + scale // 2 - (1 << 9) if half else i * scale
        lower = max(cdiv(scaled, 1 << 10), 0)
        upper = min(cdiv(scaled + (1 << 10) - 1, 1 << 10), in_size - 1)
        rows.append((lower, upper, scaled - (1 << 10) * lower))
    return np.array(rows, dtype=np.int32)


def bilinear_float(in_size: int, out_size: int, align: bool, half: bool) -> tuple:
    """ComputeInterpolationValues in float32 for every output index: (lower,
    upper) int32 pairs and (d, 1 - d) float32 pairs, d = position - lower."""
    if align and out_size > 1:
        scale = F(in_size - 1) / F(out_size - 1)
    else:
        scale = F(in_size) / F(out_size)
    bounds, weights = [], []
    for i in range(out_size):
        pos = (F(i) + F(0.5)) * scale - F(0.5) if half else F(i) * scale
        lower = max(int(np.floor(pos)), 0)
        upper = min(int(np.ceil(pos)), in_size - 1)
        d = F(pos - F(lower))
        bounds.append((lower, upper))
        weights.append((d, F(F(1) - d)))
    return np.array(bounds, np.int32), np.array(weights, np.float32)


def lower(graph, op) -> Layer:
    types = ("int8", "int16", "float32")
    x = tensor(graph, op, op.inputs[0], "input", types)
    y = tensor(graph, op, op.outputs[0], "output", types)
    if x.dtype != y.dtype:
        raise unsupported(op, f"input {x.dtype} and output {y.dtype} differ")
    size = graph.tensor(op.inputs[1]) if len(op.inputs) > 1 else None
    if size is None or size.data is None or size.dtype != "int32":
        raise unsupported(op, "the output size must be a constant int32 tensor")
    if len(x.shape) != 4 or len(y.shape) != 4 or x.shape[3] != y.shape[3]:
        raise unsupported(op, f"input {list(x.shape)} and output {list(y.shape)} are not NHWC "
                              "images of the same depth")
    size_values = [int(v) for v in np.asarray(size.data).reshape(-1)]
    if size_values != list(y.shape[1:3]) or min(*size_values, *x.shape[1:3]) <= 0:
        raise unsupported(op, f"size {size_values} does not match the output {list(y.shape)}")
    out_h, out_w = size_values
    align, half = bool(op.options["AlignCorners"]), bool(op.options["HalfPixelCenters"])
    if align and half:
        raise unsupported(op, "align_corners and half_pixel_centers both set (TFLite refuses it)")
    _, in_h, in_w, c = x.shape
    table = nearest_indices if op.op == "RESIZE_NEAREST_NEIGHBOR" else bilinear_table
    if op.op == "RESIZE_BILINEAR" and x.dtype == "float32":
        (rows, row_w), (cols, col_w) = (bilinear_float(n, m, align, half)
                                        for n, m in ((in_h, out_h), (in_w, out_w)))
        consts = [Const("rows", "int32_t", rows.reshape(-1)), Const("cols", "int32_t", cols.reshape(-1)),
                  Const("row_weights", "float", row_w.reshape(-1)),
                  Const("col_weights", "float", col_w.reshape(-1))]
    else:
        consts = [Const("rows", "int32_t", table(in_h, out_h, align, half).reshape(-1)),
                  Const("cols", "int32_t", table(in_w, out_w, align, half).reshape(-1))]
    params = dict(in_h=in_h, in_w=in_w, c=c, out_h=out_h, out_w=out_w)
    mode = "align_corners" if align else "half_pixel_centers" if half else "asymmetric"
    return Layer(op.index, op.op, "tb_resize_params", params, [op.inputs[0]], [op.outputs[0]],
                 consts, 0, f"{in_h}x{in_w}x{c} -> {out_h}x{out_w}x{c} {mode}", dtype=x.dtype)


_C = KERNEL_DIR / "resize.c"
OPS = [
    OpDef("RESIZE_NEAREST_NEIGHBOR", lower, "tb_resize_nearest_s8", _C, "tb_resize_params",
          NEAREST_OPTIONS, typed={"float32": "tb_resize_nearest_f32", "int16": "tb_resize_nearest_s16"},
          doc="int8, int16, float32 NHWC, constant size, align_corners, half_pixel_centers"),
    OpDef("RESIZE_BILINEAR", lower, "tb_resize_bilinear_s8", _C, "tb_resize_params",
          BILINEAR_OPTIONS, typed={"float32": "tb_resize_bilinear_f32", "int16": "tb_resize_bilinear_s16"},
          doc="int8 and int16 NHWC, constant size, align_corners, half_pixel_centers (TFLite's "
              "10-bit fixed-point ResizeBilinearInteger); float32 (reference ResizeBilinear's float "
              "weights)"),
]
