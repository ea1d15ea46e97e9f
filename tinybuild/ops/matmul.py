"""BATCH_MATMUL: int8 x int8 -> int8, adj_x / adj_y, ranks 2 to 5 with
broadcast batch dims, both operands activations or one of them constant (the
attention-style MatMul). Kernel: tinybuild/kernels/matmul.c.

The multiplier is TFLite's GetQuantizedConvolutionMultipler (the scale
product in float32); per-tensor quantization only, as TFLite's int8 kernel.
int16 (16x8 mode: both operands int16, zero points 0) sums in int64 and
rescales with TFLite's int64 MultiplyByQuantizedMultiplier; float32 sums each
dot product from 0.0f in k order as reference_ops::BatchMatMul<float>."""
from __future__ import annotations

import numpy as np

from .. import quant
from ..lower import Const, Layer
from . import KERNEL_DIR, OpDef, OptionField, Options, unsupported
from ._common import elements, tensor
from ._types import ACTIVATIONS, int16_zero_points, same_type

OPTIONS = Options("BatchMatMulOptions", (
    OptionField("AdjX", "adj_x", 0, "bool", False), OptionField("AdjY", "adj_y", 1, "bool", False)))


def batch_layout(op, lhs_shape, rhs_shape, out_shape) -> dict:
    """The 3 batch dims (left-padded with 1) and each operand's stride per dim
    (0 where it broadcasts), refused unless they broadcast as TFLite requires."""
    dims = {"lhs": lhs_shape, "rhs": rhs_shape}
    padded = {k: [1] * (5 - len(s)) + list(s) for k, s in dims.items()}
    batch, strides = [], {"lhs": [], "rhs": []}
    for d in range(3):
        a, b = padded["lhs"][d], padded["rhs"][d]
        if a != b and 1 not in (a, b):
            raise unsupported(op, f"batch dims {list(lhs_shape[:-2])} and {list(rhs_shape[:-2])} "
                                  "do not broadcast")
        batch.append(max(a, b))
    for key, shape in padded.items():
        matrix = shape[3] * shape[4]
        for d in range(3):
            stride = int(np.prod(shape[d + 1:3], dtype=np.int64)) * matrix
            strides[key].append(stride if shape[d] != 1 else 0)
    out_batch = [1] * (5 - len(out_shape)) + list(out_shape[:-2])
    if out_batch != batch:
        raise unsupported(op, f"output batch dims {list(out_shape[:-2])} differ from the "
                              f"broadcast {batch}")
    return {"batch": batch, "lhs_batch_stride": strides["lhs"], "rhs_batch_stride": strides["rhs"]}


def lower(graph, op) -> Layer:
    a = tensor(graph, op, op.inputs[0], "lhs", ACTIVATIONS)
    b = tensor(graph, op, op.inputs[1], "rhs", ACTIVATIONS)
    y = tensor(graph, op, op.outputs[0], "output", ACTIVATIONS)
    same_type(op, a, b, y)
    if a.dtype == "int16":
        int16_zero_points(op, a, b, y)
    if a.is_constant and b.is_constant:
        raise unsupported(op, "both operands constant")
    if len(a.scales) > 1 or len(b.scales) > 1:
        raise unsupported(op, "per-channel quantized operands (TFLite's int8 kernel is per-tensor)")
    if not (2 <= len(a.shape) <= 5 and 2 <= len(b.shape) <= 5):
        raise unsupported(op, f"ranks {len(a.shape)} and {len(b.shape)} (2 to 5 are compiled)")
    adj_x, adj_y = bool(op.options["AdjX"]), bool(op.options["AdjY"])
    rows, cols = a.shape[-2:]
    m, k = (cols, rows) if adj_x else (rows, cols)
    k2, n = (b.shape[-1], b.shape[-2]) if adj_y else (b.shape[-2], b.shape[-1])
    if k != k2 or tuple(y.shape[-2:]) != (m, n):
        raise unsupported(op, f"shapes {list(a.shape)} x {list(b.shape)} -> {list(y.shape)} "
                              f"(adj_x={adj_x}, adj_y={adj_y}) do not multiply")
    params = batch_layout(op, a.shape, b.shape, y.shape)
    if adj_x and len(a.shape) > 2 and len(b.shape) > 2 and b.shape[-3] == 1 and a.shape[-3] > 1:
        # TF 2.21's Eval then merges lhs dims [-3, -2] although lhs is to be
        # transposed: it writes only the first of each lhs[-3] outputs (the rest
        # is left unset). Refuse rather than differ from it.
        raise unsupported(op, f"adj_x with an lhs of {a.shape[-3]} matrices and an rhs of 1 in "
                              f"that dim ({list(a.shape)} x {list(b.shape)}): TF 2.21's "
                              "reference kernel leaves part of the output unset")
    params.update(m=m, n=n, k=k,
                  lhs_m=1 if adj_x else k, lhs_k=m if adj_x else 1,
                  rhs_k=1 if adj_y else n, rhs_n=k if adj_y else 1,
                  lhs_offset=-a.zero_point, rhs_offset=-b.zero_point, output_offset=y.zero_point,
                  output=(quant.fc_output_multiplier(a.scale, b.scale, y.scale)
                          if a.dtype != "float32" else (0, 0)),
                  lhs_second=int(a.is_constant))
    const = a if a.is_constant else b if b.is_constant else None
    inputs = [t for t in op.inputs[:2] if not graph.tensors[t].is_constant]
    ctype = {"int8": "int8_t", "int16": "int16_t", "float32": "float"}[a.dtype]
    consts = ([Const("lhs" if const is a else "rhs", ctype, np.asarray(const.data).reshape(-1))]
              if const else [])
    batches = elements(y) // (m * n)
    return Layer(op.index, op.op, "tb_batch_matmul_params", params, inputs, [op.outputs[0]],
                 consts, batches * m * n * k,
                 f"{'x'.join(map(str, a.shape))} @ {'x'.join(map(str, b.shape))}"
                 f"{' adj_x' if adj_x else ''}{' adj_y' if adj_y else ''}", dtype=a.dtype)


OPS = [OpDef("BATCH_MATMUL", lower, "tb_batch_matmul_s8", KERNEL_DIR / "matmul.c",
             "tb_batch_matmul_params", OPTIONS,
             typed={"int16": "tb_batch_matmul_s16", "float32": "tb_batch_matmul_f32"},
             doc="int8, int16 (zero points 0, int64 sums), float32; adj_x/adj_y, ranks 2-5 with broadcast batch dims, one operand may be constant")]
