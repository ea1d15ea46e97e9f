"""QUANTIZE and DEQUANTIZE: the edges of models with an int8 inside and a
float32 or uint8 interface (what TFLiteConverter writes for
``inference_input_type=tf.float32`` or ``tf.uint8``), and QUANTIZE between two
integer quantizations. Kernels: tinybuild/kernels/quantize.c."""
from __future__ import annotations

import numpy as np

from .. import quant
from ..lower import Layer
from . import KERNEL_DIR, OpDef, unsupported
from ._common import elements
from .activation import elementwise_tensor

# TB_DTYPE_* in tinybuild/kernels/quantize.h
DTYPE_CODES = {"int8": 0, "uint8": 1, "int16": 2, "float32": 3}
INTEGER = ("int8", "uint8", "int16")
# integer -> integer pairs quantize.cc Prepare accepts (int16 -> int32 is not compiled)
REQUANTIZE = {"int8": ("int8", "uint8"), "uint8": ("int8", "uint8"), "int16": ("int8", "int16")}
_LIMITS = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


def _per_tensor(op, t, what: str) -> None:
    if len(t.scales) != 1:
        raise unsupported(op, f"{what} has {len(t.scales)} scales (per-tensor quantization only)")


def lower_quantize(graph, op) -> Layer:
    x = elementwise_tensor(graph, op, op.inputs[0], "input", ("float32",) + INTEGER)
    y = elementwise_tensor(graph, op, op.outputs[0], "output", INTEGER)
    _per_tensor(op, y, "output")
    params = _params(x, y)
    if x.dtype == "float32":
        params["scale"] = float(y.scale)
    else:
        _per_tensor(op, x, "input")
        if y.dtype not in REQUANTIZE[x.dtype]:
            raise unsupported(op, f"{x.dtype} -> {y.dtype} (TFLite's QUANTIZE takes {x.dtype} -> "
                                  f"{' or '.join(REQUANTIZE[x.dtype])} only)")
        # quantize.cc Prepare: double(input scale) / double(output scale)
        params["requant"] = quant.quantize_multiplier(quant.f32(x.scale) / quant.f32(y.scale))
    return _layer(op, x, y, params)


def lower_dequantize(graph, op) -> Layer:
    x = elementwise_tensor(graph, op, op.inputs[0], "input", INTEGER)
    y = elementwise_tensor(graph, op, op.outputs[0], "output", ("float32",))
    _per_tensor(op, x, "input")
    params = _params(x, y)
    params["scale"] = float(x.scale)
    return _layer(op, x, y, params)


def _params(x, y) -> dict:
    return dict(size=elements(x), in_type=DTYPE_CODES[x.dtype], out_type=DTYPE_CODES[y.dtype],
                input_zero_point=x.zero_point if x.dtype != "float32" else 0,
                output_zero_point=y.zero_point if y.dtype != "float32" else 0,
                scale=0.0, requant=(0, 0))


def _layer(op, x, y, params: dict) -> Layer:
    return Layer(op.index, op.op, "tb_quantize_params", params, [op.inputs[0]], [op.outputs[0]],
                 [], 0, f"{elements(x)} {x.dtype} -> {y.dtype}")


def fold_dequantize(graph, op) -> dict | None:
    """A constant's float values, as the kernel computes them (the converter
    leaves such pairs around float16 or int8 weights)."""
    x, y = graph.tensors[op.inputs[0]], op.outputs[0]
    if x.dtype not in INTEGER or len(x.scales) != 1:
        return None
    v = np.asarray(x.data, np.int64) - x.zero_point
    return {y: (np.float64(np.float32(x.scale)) * v).astype(np.float32)}


def fold_quantize(graph, op) -> dict | None:
    x, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if out.dtype not in INTEGER or len(out.scales) != 1 or x.dtype not in ("float32",) + INTEGER:
        return None
    if x.dtype != "float32" and out.dtype not in REQUANTIZE[x.dtype]:
        return None                                 # the lowering refuses it
    lo, hi = _LIMITS[out.dtype]
    if x.dtype == "float32":
        v = np.asarray(x.data, np.float32) / np.float32(out.scale)
        q = np.sign(v) * np.floor(np.abs(v.astype(np.float64)) + 0.5)
    else:
        if len(x.scales) != 1:
            return None
        m, s = quant.quantize_multiplier(quant.f32(x.scale) / quant.f32(out.scale))
        q = np.array([quant.mul_by_quant_mul(int(v) - x.zero_point, m, s)
                      for v in np.asarray(x.data).reshape(-1)]).reshape(x.shape)
    return {out.index: np.clip(q + out.zero_point, lo, hi)}


_C = KERNEL_DIR / "quantize.c"
OPS = [
    OpDef("QUANTIZE", lower_quantize, "tb_quantize", _C, "tb_quantize_params", fold=fold_quantize,
          doc="float32 -> int8/uint8/int16, and between int8/uint8/int16 quantizations (per-tensor)"),
    OpDef("DEQUANTIZE", lower_dequantize, "tb_dequantize", _C, "tb_quantize_params",
          fold=fold_dequantize, doc="int8/uint8/int16 -> float32 (per-tensor)"),
]
