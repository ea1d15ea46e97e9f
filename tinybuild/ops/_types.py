"""What the MAC families (conv, fully_connected, pool, reduce, transpose_conv,
matmul) share to compile float32 and int16x8 layers besides int8 ones.

float32 layers follow TFLite's float reference kernels (reference_ops::*):
one float sum in the reference's loop order, the bias added last, then
ActivationFunctionWithMinMax with CalculateActivationRange's bounds (NONE is
[-FLT_MAX, FLT_MAX], so infinities clamp as in TFLite). int16 layers are
TFLite's 16x8 mode: int16 activations with zero point 0, int8 weights, int64
bias, requantized as reference_integer_ops' int16 paths do."""
from __future__ import annotations

import numpy as np

from .. import quant
from . import unsupported

ACTIVATIONS = ("int8", "int16", "float32")
ELEMENT_BYTES = {"int8": 1, "int16": 2, "float32": 4}
FLT_MAX = float(np.finfo(np.float32).max)
INT16_MIN, INT16_MAX = -32768, 32767


def float_activation_range(activation: str) -> tuple[float, float]:
    """CalculateActivationRange<float>: the clamp a fused activation applies."""
    ranges = {"NONE": (-FLT_MAX, FLT_MAX), "RELU": (0.0, FLT_MAX), "RELU6": (0.0, 6.0),
              "RELU_N1_TO_1": (-1.0, 1.0)}
    if activation not in ranges:
        raise ValueError(f"fused activation {activation}")
    return ranges[activation]


def int16_activation_range(activation: str, y) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for an int16 output."""
    return quant.activation_range(activation, y.scale, y.zero_point, INT16_MIN, INT16_MAX)


def weights_for(graph, op, index: int, x, what: str):
    """The constant weights a layer with input ``x`` needs: float32 for a float
    input, int8 (zero point 0) for int8 and int16 inputs. int8 weights under a
    float input are a dynamic-range (hybrid) model, refused with how to export."""
    w = graph.tensor(index)
    if w is None or w.data is None:
        raise unsupported(op, f"non-constant {what}")
    if x.dtype == "float32" and w.dtype in ("int8", "uint8"):
        raise unsupported(op, f"{w.dtype} {what} with float32 activations (a dynamic-range or "
                              "hybrid model): export it with full-integer quantization "
                              "(quant=int8 or int16x8) or fully in float32")
    want = "float32" if x.dtype == "float32" else "int8"
    if w.dtype != want:
        raise unsupported(op, f"{w.dtype} {what} with {x.dtype} activations ({want} expected)")
    if want == "int8" and any(z != 0 for z in w.zero_points):
        raise unsupported(op, f"{what} zero point other than 0")
    return w


def same_type(op, x, *others) -> None:
    """TFLite's kernels need every activation of these ops in one type."""
    for t in others:
        if t.dtype != x.dtype:
            raise unsupported(op, f"{x.dtype} input with {t.dtype} output (TFLite runs this op "
                                  "in one type)")


def int16_zero_points(op, *tensors) -> None:
    """TFLite's 16x8 kernels require symmetric int16 activations."""
    for t in tensors:
        if t.zero_point != 0:
            raise unsupported(op, f"int16 tensor with zero point {t.zero_point} (16x8 mode "
                                  "needs zero point 0)")


def float_bias(graph, op, index: int, channels: int) -> np.ndarray:
    """A float32 bias (zeros without one: the reference adds 0.0f then too)."""
    b = graph.tensor(index) if 0 <= index else None
    if b is None:
        return np.zeros(channels, np.float32)
    if b.dtype != "float32" or b.data is None or b.data.size != channels:
        raise unsupported(op, f"bias of type {b.dtype} with shape {list(b.shape)} "
                              f"({channels} float32 constants expected)")
    return np.asarray(b.data, np.float32).reshape(-1)


def int16_bias(graph, op, index: int, channels: int) -> np.ndarray:
    """A 16x8 layer's int64 bias (zeros without one)."""
    b = graph.tensor(index) if 0 <= index else None
    if b is None:
        return np.zeros(channels, np.int64)
    if b.dtype != "int64" or b.data is None or b.data.size != channels:
        raise unsupported(op, f"bias of type {b.dtype} with shape {list(b.shape)} in 16x8 mode "
                              f"({channels} int64 constants expected, as TFLite's converter writes)")
    return np.asarray(b.data, np.int64).reshape(-1)


def optional_input(op, position: int) -> int:
    """The tensor index of an optional input, -1 when absent."""
    return op.inputs[position] if len(op.inputs) > position else -1
