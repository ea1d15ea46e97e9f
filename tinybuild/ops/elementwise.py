"""Elementwise binary ops on int8: SUB, MUL, SQUARED_DIFFERENCE, MAXIMUM,
MINIMUM, DIV and PRELU (ADD lives in add.py and shares the operand and
broadcast handling here). Every broadcast form TFLite's reference kernels
accept, up to each op's rank limit, and constant operands (passed from flash).
Kernels: tinybuild/kernels/elementwise.c; the broadcast walk is tb_binary_s8.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import quant
from ..lower import Const, Layer
from . import KERNEL_DIR, OpDef, OptionField, Options, unsupported
from ._common import ACTIVATION, elements

BCAST_RANK = 6          # TB_BCAST_RANK in elementwise.h

# The largest rank each TF 2.21 BUILTIN_REF kernel handles (more crashes TFLite:
# MaximumMinimumBroadcastSlow and BroadcastDivSlow are 5-D, BroadcastPrelu4DSlow 4-D).
MAX_RANK = {"ADD": 6, "SUB": 6, "MUL": 6, "SQUARED_DIFFERENCE": 6, "MAXIMUM": 5, "MINIMUM": 5,
            "DIV": 5, "PRELU": 4}


@dataclass
class Operands:
    """A binary op's two inputs and output, checked, and how the call passes them."""

    a: object                    # input 1 (tinybuild.graph.Tensor)
    b: object                    # input 2
    y: object                    # output
    inputs: list[int]            # activation tensors, in call order
    consts: list[Const]          # constant operands, after the inputs in the call
    swap: int                    # 1: the call passes input 2 first (input 1 is a constant)
    shape: tuple                 # the tb_bcast initializer


def operands(graph, op, names=("first input", "second input"), dtypes=("int8",)) -> Operands:
    """Both inputs and the output of a binary op, refused unless TFLite's
    reference kernel computes them (one type among ``dtypes`` throughout,
    per-tensor quantization, rank, broadcastable shapes)."""
    a, b = (_operand(graph, op, t, what, dtypes) for t, what in zip(op.inputs[:2], names))
    y = _operand(graph, op, op.outputs[0], "output", dtypes)
    if not a.dtype == b.dtype == y.dtype:
        raise unsupported(op, f"{names[0]} {a.dtype}, {names[1]} {b.dtype} and output {y.dtype} "
                              "(TFLite's kernels take one type throughout)")
    limit = MAX_RANK[op.op]
    for t, what in ((a, names[0]), (b, names[1]), (y, "output")):
        if len(t.shape) > limit:
            raise unsupported(op, f"{what} of rank {len(t.shape)} (TFLite's reference {op.op} "
                                  f"handles rank {limit} at most)")
    out = broadcast_shape(op, a.shape, b.shape)
    if tuple(y.shape) != out:
        raise unsupported(op, f"output shape {_dims(y.shape)} is not the broadcast of "
                              f"{_dims(a.shape)} and {_dims(b.shape)} ({_dims(out)})")
    order = [(a, op.inputs[0], "input1"), (b, op.inputs[1], "input2")]
    live = [o for o in order if not o[0].is_constant]
    fixed = [o for o in order if o[0].is_constant]
    call = live + fixed
    swap = int(call[0][2] == "input2")
    ctype, numpy_type = C_TYPES[y.dtype], np.dtype(y.dtype)
    consts = [Const(role, ctype, t.data.astype(numpy_type).reshape(-1)) for t, _, role in fixed]
    broadcast = int(tuple(a.shape) != tuple(b.shape))
    walk = broadcast_walk(out, call[0][0].shape, call[1][0].shape)
    return Operands(a, b, y, [i for _, i, _ in live], consts, swap, (broadcast, swap, *walk))


C_TYPES = {"int8": "int8_t", "int16": "int16_t", "float32": "float"}
TYPED = ("int8", "int16", "float32")       # what ADD, SUB, MUL, MAXIMUM and MINIMUM compile


def _operand(graph, op, index: int, what: str, dtypes):
    t = graph.tensor(index)
    if t is None or t.dtype not in dtypes:
        got = "nothing" if t is None else t.dtype
        hint = (" (convert with full-integer quantization: int8 inside)" if dtypes == ("int8",)
                else "")
        raise unsupported(op, f"{what} must be {' or '.join(dtypes)}, got {got}{hint}")
    if len(t.scales) > 1:
        raise unsupported(op, f"{what} is quantized per channel ({len(t.scales)} scales); "
                              "TFLite's reference kernel takes one scale")
    return t


def _dims(shape) -> str:
    return "x".join(map(str, shape)) or "scalar"


def broadcast_shape(op, s1, s2) -> tuple:
    """NumPy/TFLite broadcasting of two shapes, or unsupported naming both."""
    rank = max(len(s1), len(s2))
    p1, p2 = (1,) * (rank - len(s1)) + tuple(s1), (1,) * (rank - len(s2)) + tuple(s2)
    out = []
    for d1, d2 in zip(p1, p2):
        if d1 != d2 and 1 not in (d1, d2):
            raise unsupported(op, f"shapes {_dims(s1)} and {_dims(s2)} do not broadcast")
        out.append(d2 if d1 == 1 else d1)
    return tuple(out)


def broadcast_walk(out, s1, s2) -> tuple:
    """``(dims, stride1, stride2)`` for tb_binary_s8: ``out`` as at most
    BCAST_RANK dimensions, each input's element stride per dimension (0 where
    it is broadcast); adjacent dimensions both inputs walk alike are merged."""
    rank = len(out)
    dims = list(out)
    strides = [_strides((1,) * (rank - len(s)) + tuple(s), out) for s in (s1, s2)]
    merged: list[list[int]] = []          # [dim, stride1, stride2], outermost first
    for d, st1, st2 in zip(dims, *strides):
        if d == 1:
            continue
        if merged and merged[-1][1] == st1 * d and merged[-1][2] == st2 * d:
            merged[-1] = [merged[-1][0] * d, st1, st2]
        else:
            merged.append([d, st1, st2])
    if len(merged) > BCAST_RANK:           # cannot happen for rank <= 6
        raise ValueError(f"broadcast of rank {len(merged)}")
    merged = [[1, 0, 0]] * (BCAST_RANK - len(merged)) + merged
    return tuple(tuple(row[k] for row in merged) for k in range(3))


def _strides(shape, out) -> list[int]:
    """Element strides of a row-major ``shape``, 0 where it broadcasts to ``out``."""
    strides, step = [], 1
    for d, o in zip(reversed(shape), reversed(out)):
        strides.append(step if d == o else 0)
        step *= d
    return strides[::-1]


def in_place(layer: Layer) -> dict:
    """An input the output can overwrite: one read at the output's own index
    (not broadcast); the kernel reads element i before writing it."""
    broadcast, _, dims, *strides = layer.params["shape"]
    full = [not broadcast or all(d == 1 or s != 0 for d, s in zip(dims, st)) for st in strides]
    return {t: (None, 0) for t, ok in zip(layer.inputs, full) if ok}


def binary_layer(op, ops: Operands, params_type: str, params: dict, macs_per: int = 0) -> Layer:
    size = elements(ops.y)
    params = {"size": size, "shape": ops.shape, **params}
    return Layer(op.index, op.op, params_type, params, ops.inputs, [op.outputs[0]], ops.consts,
                 size * macs_per, _dims(ops.y.shape[1:] if len(ops.y.shape) > 1 else ops.y.shape))


def activation(op, y) -> tuple[int, int]:
    if y.dtype == "int16":
        return quant.activation_range(op.options.get("FusedActivationFunction", "NONE"), y.scale,
                                      y.zero_point, INT16_MIN, INT16_MAX)
    return quant.activation_range(op.options.get("FusedActivationFunction", "NONE"), y.scale,
                                  y.zero_point)


# -- float32 and int16 ---------------------------------------------------------------------

INT16_MIN, INT16_MAX = -32768, 32767
FLT_MAX = float(np.finfo(np.float32).max)
# CalculateActivationRange<float>: NONE is numeric_limits<float>::lowest()..max()
FLOAT_RANGES = {"NONE": (-FLT_MAX, FLT_MAX), "RELU": (0.0, FLT_MAX), "RELU6": (0.0, 6.0),
                "RELU_N1_TO_1": (-1.0, 1.0)}


def float_layer(op, ops: Operands, macs_per: int = 1) -> Layer:
    """A float32 binary layer (tb_binary_f32_params): the fused activation's
    float range, as TFLite's float kernels clamp."""
    act = op.options.get("FusedActivationFunction", "NONE")
    if act not in FLOAT_RANGES:
        raise unsupported(op, f"fused activation {act}")
    lo, hi = FLOAT_RANGES[act]
    layer = binary_layer(op, ops, "tb_binary_f32_params", {"act_min": lo, "act_max": hi}, macs_per)
    layer.dtype = "float32"
    return layer


def typed_layer(layer: Layer, dtype: str) -> Layer:
    layer.dtype = dtype
    return layer


# -- the ops -------------------------------------------------------------------------------

def lower_sub(graph, op) -> Layer:
    """SUB is TFLite's ADD with input 2's multiplier negated (sub.cc)."""
    ops = operands(graph, op, dtypes=TYPED)
    from .add import add_params, add_s16_layer
    if ops.y.dtype == "float32":
        return float_layer(op, ops, 0)
    if ops.y.dtype == "int16":
        return add_s16_layer(op, ops, sign=-1)
    p = add_params(op, ops.a, ops.b, ops.y)
    m, s = p["input2"]
    p["input2"] = (-m, s)
    return binary_layer(op, ops, "tb_add_params", p)


def lower_mul(graph, op) -> Layer:
    ops = operands(graph, op, dtypes=TYPED)
    if ops.y.dtype == "float32":
        return float_layer(op, ops)
    # mul.cc: input1 scale * input2 scale / output scale, in float32 (TfLiteQuantizationParams)
    real = quant.f32(quant.f32(quant.f32(ops.a.scale) * quant.f32(ops.b.scale)) / quant.f32(ops.y.scale))
    act_min, act_max = activation(op, ops.y)
    return typed_layer(binary_layer(op, ops, "tb_mul_params", {
        "input1_offset": -ops.a.zero_point, "input2_offset": -ops.b.zero_point,
        "output_offset": ops.y.zero_point, "output": quant.quantize_multiplier(real),
        "act_min": act_min, "act_max": act_max}, macs_per=1), ops.y.dtype)


def float_only(graph, op, names=("first input", "second input")) -> Operands | None:
    """The operands of an op compiled for int8 and float32: the float32 ones,
    or None for int8 (int16 refused naming the type)."""
    ops = operands(graph, op, names, ("int8", "float32"))
    if ops.y.dtype != "float32":
        return None
    limit = FLOAT_MAX_RANK.get(op.op, MAX_RANK[op.op])
    if len(ops.y.shape) > limit:
        raise unsupported(op, f"float32 of rank {len(ops.y.shape)} (TFLite's reference float {op.op} "
                              f"handles rank {limit} at most)")
    return ops


# TF 2.21's float SQUARED_DIFFERENCE and PRELU broadcast in 4-D (rank 5 aborts TFLite)
FLOAT_MAX_RANK = {"SQUARED_DIFFERENCE": 4, "PRELU": 4}


def lower_squared_difference(graph, op) -> Layer:
    """squared_difference.cc Prepare: left shift 7, the inputs rescaled to
    twice the larger scale, the squared difference to the output."""
    x = graph.tensor(op.inputs[0])
    if x is not None and x.dtype == "int16":     # TF 2.21: "only supports FLOAT32 and INT32"
        raise unsupported(op, "int16: TFLite's own SQUARED_DIFFERENCE refuses int16 (it runs float32, "
                              "int32 and int8); quantize this op to int8 or keep it float32")
    ops = float_only(graph, op)
    if ops is not None:
        layer = binary_layer(op, ops, "tb_binary_f32_params", {"act_min": -FLT_MAX, "act_max": FLT_MAX},
                             macs_per=1)
        return typed_layer(layer, "float32")
    ops = operands(graph, op)
    s1, s2, so = quant.f32(ops.a.scale), quant.f32(ops.b.scale), quant.f32(ops.y.scale)
    twice_max = 2.0 * max(s1, s2)
    left_shift = 7
    real_out = (twice_max * twice_max) / quant.f32((1 << (2 * left_shift)) * so)
    return binary_layer(op, ops, "tb_add_params", {
        "input1_offset": -ops.a.zero_point, "input2_offset": -ops.b.zero_point,
        "output_offset": ops.y.zero_point, "left_shift": left_shift,
        "input1": quant.quantize_multiplier_smaller_than_one_exp(s1 / twice_max),
        "input2": quant.quantize_multiplier_smaller_than_one_exp(s2 / twice_max),
        "output": quant.quantize_multiplier_smaller_than_one_exp(real_out),
        "act_min": quant.INT8_MIN, "act_max": quant.INT8_MAX}, macs_per=1)


def lower_min_max(graph, op) -> Layer:
    """TFLite compares the raw int8/int16 values (it does not requantize; the
    converter gives inputs and output one quantization); float32 as
    ``a > b ? a : b`` (``a < b ? a : b``)."""
    ops = operands(graph, op, dtypes=TYPED)
    if ops.y.dtype == "float32":
        layer = binary_layer(op, ops, "tb_binary_f32_params", {"act_min": -FLT_MAX, "act_max": FLT_MAX})
        return typed_layer(layer, "float32")
    return typed_layer(binary_layer(op, ops, "tb_minmax_params", {}), ops.y.dtype)


def lower_div(graph, op) -> Layer:
    x = graph.tensor(op.inputs[0])
    if x is not None and x.dtype == "int16":     # 16x8: the int8 math, the int16 range
        return typed_layer(div_layer(op, operands(graph, op, dtypes=("int16",))), "int16")
    ops = float_only(graph, op)
    if ops is not None:
        return float_layer(op, ops)
    return div_layer(op, operands(graph, op))


def div_layer(op, ops: Operands) -> Layer:
    s1, s2, so = (quant.f32(t.scale) for t in (ops.a, ops.b, ops.y))
    # div.cc Prepare: input1 scale / (input2 scale * output scale), in float32
    m, shift = quant.quantize_multiplier(quant.f32(s1 / quant.f32(s2 * so)))
    _check_div_shifts(op, ops, shift)
    act_min, act_max = activation(op, ops.y)
    return binary_layer(op, ops, "tb_div_params", {
        "input1_offset": -ops.a.zero_point, "input2_offset": -ops.b.zero_point,
        "output_offset": ops.y.zero_point, "output": (m, shift),
        "act_min": act_min, "act_max": act_max}, macs_per=1)


def _check_div_shifts(op, ops: Operands, shift: int) -> None:
    """DivElementwise rescales by 2^(shift - recip_shift - headroom); TFLite's
    RoundingDivideByPOT is only defined for right shifts of 0..31."""
    v1 = _values(ops.a).astype(np.int64) - ops.a.zero_point
    v2 = np.abs(_values(ops.b).astype(np.int64) - ops.b.zero_point)
    v1 = np.concatenate([v1, -v1])                    # signs flip with a negative divisor
    headroom = min(_clrsb(int(v)) for v in v1)
    recip = min(31 - _clz(int(v)) for v in v2)       # -1 for a divisor at its zero point
    if shift - recip - headroom > 0:
        raise unsupported(op, f"quantization scales {ops.a.scale:g} / ({ops.b.scale:g} x "
                              f"{ops.y.scale:g}) need a left shift in the final rescale, "
                              f"which TFLite's {ops.y.dtype} DIV leaves undefined")


def _values(t) -> np.ndarray:
    """What an int8/int16 operand can hold: its values when constant, else all of its type's."""
    info = np.iinfo(t.dtype)
    return np.unique(t.data) if t.is_constant else np.arange(info.min, info.max + 1)


def _clz(v: int) -> int:
    return 32 - v.bit_length()


def _clrsb(v: int) -> int:
    return _clz(v if v >= 0 else ~v) - 1


def lower_prelu(graph, op) -> Layer:
    x = graph.tensor(op.inputs[0])
    if x is not None and x.dtype == "int16":     # 16x8: the int8 math, clamped to int16
        return typed_layer(prelu_layer(op, int16_prelu_operands(graph, op)), "int16")
    ops = float_only(graph, op, ("input", "alpha"))
    if ops is not None:
        _check_prelu_shape(op, ops)
        layer = binary_layer(op, ops, "tb_binary_f32_params", {"act_min": -FLT_MAX, "act_max": FLT_MAX},
                             macs_per=1)
        return typed_layer(layer, "float32")
    return prelu_layer(op, operands(graph, op, ("input", "alpha")))


def int16_prelu_operands(graph, op) -> Operands:
    """16x8 PRELU: int16 input and output, int8 alpha (TFLite reads alpha as int8 even when
    the tensor says int16). A constant alpha is widened to int16 here, so the kernel walks
    both operands with one element size."""
    alpha = graph.tensor(op.inputs[1])
    if alpha is None or alpha.dtype != "int8" or not alpha.is_constant:
        got = "nothing" if alpha is None else f"{'constant ' if alpha.is_constant else ''}{alpha.dtype}"
        raise unsupported(op, f"alpha {got} with an int16 input (TFLite's 16x8 PRELU reads alpha as "
                              "int8: a constant int8 alpha expected)", graph)
    widened = dataclasses.replace(alpha, dtype="int16", data=np.asarray(alpha.data).astype(np.int16))
    view = copy.copy(graph)
    view.tensors = [widened if t is alpha else t for t in graph.tensors]
    return operands(view, op, ("input", "alpha"), ("int16",))


def prelu_layer(op, ops: Operands) -> Layer:
    _check_prelu_shape(op, ops)
    si, sa, so = (quant.f32(t.scale) for t in (ops.a, ops.b, ops.y))
    # activations.cc PreluPrepare: the scale ratios in float32
    return binary_layer(op, ops, "tb_prelu_params", {
        "input_offset": -ops.a.zero_point, "alpha_offset": -ops.b.zero_point,
        "output_offset": ops.y.zero_point,
        "identity": quant.quantize_multiplier(quant.f32(si / so)),
        "alpha": quant.quantize_multiplier(quant.f32(quant.f32(si * sa) / so))}, macs_per=1)


def _check_prelu_shape(op, ops: Operands) -> None:
    if tuple(ops.y.shape) != tuple(ops.a.shape):
        raise unsupported(op, f"alpha {_dims(ops.b.shape)} broadcasts the input "
                              f"{_dims(ops.a.shape)} to a larger shape (TFLite requires the "
                              "input's shape)")


def _options(table: str, fields=(ACTIVATION,)) -> Options:
    return Options(table, fields)


SOURCE = KERNEL_DIR / "elementwise.c"
# sub_options: fused activation, then pot_scale_int16 (int16: TFLite's power-of-two path)
POT_SCALE_INT16 = OptionField("PotScaleInt16", "pot_scale_int16", 1, "bool", True)
SUB_FIELDS = (ACTIVATION, POT_SCALE_INT16)
SHAPES = "every broadcast form"

OPS = [
    OpDef("SUB", lower_sub, "tb_sub_s8", SOURCE, "tb_add_params", _options("SubOptions", SUB_FIELDS),
          in_place=in_place, typed={"float32": "tb_sub_f32", "int16": "tb_sub_s16"},
          doc=f"int8, int16 (16x8), float32, {SHAPES} (rank <= 6), constant operands, fused "
              "NONE/RELU/RELU6"),
    OpDef("MUL", lower_mul, "tb_mul_s8", SOURCE, "tb_mul_params", _options("MulOptions"),
          in_place=in_place, typed={"float32": "tb_mul_f32", "int16": "tb_mul_s16"},
          doc=f"int8, int16 (16x8), float32, {SHAPES} (rank <= 6), constant operands, fused "
              "NONE/RELU/RELU6"),
    OpDef("SQUARED_DIFFERENCE", lower_squared_difference, "tb_squared_difference_s8", SOURCE,
          "tb_add_params", in_place=in_place, typed={"float32": "tb_squared_difference_f32"},
          doc=f"int8, {SHAPES} (rank <= 6), constant operands; float32 (rank <= 4)"),
    OpDef("MAXIMUM", lower_min_max, "tb_maximum_s8", SOURCE, "tb_minmax_params",
          in_place=in_place, typed={"float32": "tb_maximum_f32", "int16": "tb_maximum_s16"},
          doc=f"int8/int16 (raw values, as TFLite), float32, {SHAPES} (rank <= 5), constant operands"),
    OpDef("MINIMUM", lower_min_max, "tb_minimum_s8", SOURCE, "tb_minmax_params",
          in_place=in_place, typed={"float32": "tb_minimum_f32", "int16": "tb_minimum_s16"},
          doc=f"int8/int16 (raw values, as TFLite), float32, {SHAPES} (rank <= 5), constant operands"),
    OpDef("DIV", lower_div, "tb_div_s8", SOURCE, "tb_div_params", _options("DivOptions"),
          in_place=in_place, typed={"float32": "tb_div_f32", "int16": "tb_div_s16"},
          doc=f"int8, int16 (16x8), float32, {SHAPES} (rank <= 5), constant operands, fused "
              "NONE/RELU/RELU6"),
    OpDef("PRELU", lower_prelu, "tb_prelu_s8", SOURCE, "tb_prelu_params", in_place=in_place,
          typed={"float32": "tb_prelu_f32", "int16": "tb_prelu_s16"},
          doc="int8, int16 (16x8, int16 alpha), float32, alpha constant or not, broadcast to the "
              "input's shape (rank <= 4)"),
]
