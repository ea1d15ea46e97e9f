"""Checks and build-time math several op families share."""
from __future__ import annotations

import numpy as np

from . import OptionField, unsupported

ACTIVATION = OptionField("FusedActivationFunction", "fused_activation_function", 0, "i8")


def tensor(graph, op, index: int, what: str, dtypes=("int8",)):
    """The tensor ``index`` of ``op``, refused unless its type is one of
    ``dtypes`` (and, for a 4-D activation, its batch is 1)."""
    t = graph.tensor(index)
    if t is None or t.dtype not in dtypes:
        got = "nothing" if t is None else t.dtype
        hint = (" (convert with full-integer quantization: int8 inside)" if dtypes == ("int8",)
                else "")
        raise unsupported(op, f"{what} must be {' or '.join(dtypes)}, got {got}{hint}")
    if not t.is_constant and t.shape and t.shape[0] != 1 and len(t.shape) == 4:
        raise unsupported(op, f"batch size {t.shape[0]} (only batch 1 is compiled)")
    return t


def padding(mode: str, in_size: int, out_size: int, stride: int, k: int, dil: int) -> int:
    """TFLite's ComputePaddingHeightWidth: the odd pixel goes to the bottom/right."""
    if mode == "VALID":
        return 0
    effective = (k - 1) * dil + 1
    return max((out_size - 1) * stride + effective - in_size, 0) // 2


def bias(graph, op, channels: int) -> np.ndarray:
    """The int32 bias (input 2), zeros when the op has none."""
    b = graph.tensor(op.inputs[2]) if len(op.inputs) > 2 else None
    if b is None:
        return np.zeros(channels, np.int32)
    if b.dtype != "int32" or b.data is None:
        raise unsupported(op, f"bias of type {b.dtype} (int32 constant expected)")
    return b.data.astype(np.int32).reshape(-1)


def mul_array(pairs) -> np.ndarray:
    """``(multiplier, shift)`` pairs as the ``tb_quant_mul`` const array."""
    return np.array([[m, s] for m, s in pairs], dtype=np.int32)


def elements(t) -> int:
    return int(np.prod(t.shape, dtype=np.int64))
