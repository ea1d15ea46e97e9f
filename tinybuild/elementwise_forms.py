"""Build-time analysis the targets' MUL and table-activation kernels share
(targets/cortex_m4/kernels/cm4_elementwise.py, targets/riscv/kernels/rv_elementwise.py;
docs/kernels.md, "MUL and table activations"): which broadcast form a MUL layer
has, its operands' offsets in call order, the largest product, the MUL by a
constant scalar as a 256-entry table, and which table layers are worth a kernel.
Each target keeps its own requantization constants and C kernels.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import quant
from .kernel_registry import REFERENCE
from .lower import Const, Layer

# rq word 0 of the targets' MUL kernels (MUL_* in {cm4,rv}_elementwise_s8.c)
FORM_SAME, FORM_CHANNEL, FORM_SCALAR = 0, 1, 2
SMALL_FIRST = 4

# The table kernel's 16-element loop repays its set-up from 16 elements on:
# below, the reference's 4-element loop ran as few instructions or cycles in
# the simulator (tests/test_target_elementwise.py checks both sides). MUL and
# MUL-as-a-table ran fewer at every size from 1 element on.
LUT_MIN_SIZE = 16


def int8_layer(layer: Layer, params_type: str) -> bool:
    return layer.params_type == params_type and getattr(layer, "dtype", "int8") == "int8"


def lut_ops() -> list[str]:
    """The ops the reference runs as one 256-entry table (tinybuild/ops/activation.py, unary.py)."""
    return sorted(op for op, function in REFERENCE.items() if function == "tb_lut_s8")


def mul_form(layer: Layer) -> tuple[int, int, bool] | None:
    """``(form, channels, small_first)`` of a MUL's broadcast walk when the
    kernel handles it, else None. ``small_first``: the broadcast operand is
    the call's first."""
    broadcast, _, dims, s1, s2 = layer.params["shape"]
    walk = [(d, a, b) for d, a, b in zip(dims, s1, s2) if d != 1]
    if not broadcast or all(a == b == 1 for _, a, b in walk):
        return FORM_SAME, 0, False
    if len(walk) == 1 and {walk[0][1], walk[0][2]} == {0, 1}:
        return FORM_SCALAR, 0, walk[0][1] == 0
    if len(walk) == 2:
        (_, a0, b0), (c, a1, b1) = walk
        if (a0, a1, b0, b1) == (c, 1, 0, 1):
            return FORM_CHANNEL, c, False
        if (a0, a1, b0, b1) == (0, 1, c, 1):
            return FORM_CHANNEL, c, True
    return None


def call_offsets(layer: Layer, small_first: bool) -> tuple[int, int]:
    """The offsets of the full-size operand and the other one (call order,
    swapped back where the kernel swaps the pointers)."""
    p = layer.params
    first, second = p["input1_offset"], p["input2_offset"]
    if p["shape"][1]:                       # the call passes input 2 first
        first, second = second, first
    return (second, first) if small_first else (first, second)


def _max_abs(offset: int) -> int:
    return max(abs(-128 + offset), abs(127 + offset))


def product_bound(layer: Layer) -> int:
    p = layer.params
    return _max_abs(p["input1_offset"]) * _max_abs(p["input2_offset"])


def form_name(layer: Layer) -> str:
    form, channels, _ = mul_form(layer)
    return {FORM_SAME: "same shapes", FORM_CHANNEL: f"per-channel operand ({channels} channels)",
            FORM_SCALAR: "scalar operand"}[form]


def mul_layer(layer: Layer, constants, extra_flags: int, notes: list[str]) -> Layer:
    """``layer`` for a target's MUL kernel: its rq words (flags, the operands'
    offsets in call order, the target's requantization ``constants``, the
    activation range, the channels) after the layer's constants."""
    p = layer.params
    form, channels, small_first = mul_form(layer)
    oa, ob = call_offsets(layer, small_first)
    flags = form | (SMALL_FIRST if small_first else 0) | extra_flags
    rq = np.array([flags, oa, ob, *constants, p["act_min"], p["act_max"], channels], np.int64)
    return replace(layer, consts=list(layer.consts) + [Const("mul_rq", "int32_t", rq.astype(np.int32))],
                   args=[c.role for c in layer.consts] + ["mul_rq"],
                   overlap=full_size_overlap(layer), notes=notes)


def full_size_overlap(layer: Layer) -> dict:
    """In place over an activation input read at the output's own index."""
    from tinybuild.ops.elementwise import in_place
    return in_place(layer)


# -- MUL by a constant scalar: a table ---------------------------------------------------


def scalar_constant(layer: Layer) -> tuple[str, int] | None:
    """``(role, value)`` of a MUL's constant scalar operand when the other
    operand is the full-size activation, else None."""
    form = mul_form(layer) if layer.op == "MUL" and int8_layer(layer, "tb_mul_params") else None
    # the call passes the activation first, the constant second: small_first
    # would mean the activation is the scalar
    if form is None or form[0] != FORM_SCALAR or form[2] or len(layer.consts) != 1:
        return None
    const = layer.consts[0]
    return const.role, int(np.asarray(const.values).reshape(-1)[0])


def mul_table(layer: Layer) -> np.ndarray:
    """The reference's output for each int8 input, indexed by (uint8)x."""
    p = layer.params
    role, value = scalar_constant(layer)
    x_offset, s_offset = ((p["input2_offset"], p["input1_offset"]) if role == "input1"
                          else (p["input1_offset"], p["input2_offset"]))
    m, shift = p["output"]
    out = [p["output_offset"] + quant.mul_by_quant_mul((x + x_offset) * (value + s_offset), m, shift)
           for x in range(-128, 128)]
    table = np.clip(out, p["act_min"], p["act_max"]).astype(np.int8)
    return np.roll(table, -128)


def accepts_mul_table(layer: Layer) -> bool:
    return scalar_constant(layer) is not None


def prepare_mul_table(layer: Layer) -> Layer:
    notes = ["MUL by a constant scalar: a function of one byte, tabulated at build time "
             "(256 entries, the reference's arithmetic)"]
    return replace(layer, params_type="tb_lut_params", params={"size": layer.params["size"]},
                   consts=[Const("lut", "int8_t", mul_table(layer))], args=["lut"],
                   overlap={layer.inputs[0]: (None, 0)}, notes=notes)


# -- table activations -----------------------------------------------------------------


def accepts_lut(layer: Layer) -> bool:
    return (int8_layer(layer, "tb_lut_params") and len(layer.consts) == 1
            and layer.consts[0].role == "lut" and np.asarray(layer.consts[0].values).size == 256
            and layer.params["size"] >= LUT_MIN_SIZE)


def prepare_lut(layer: Layer) -> Layer:
    return replace(layer, overlap={layer.inputs[0]: (None, 0)},
                   notes=["8 lookups per step (byte loads and stores)"])
