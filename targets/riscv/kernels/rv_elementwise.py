"""Build-time side of the RV32IM MUL and table-activation kernels
(rv_elementwise_s8.c; docs/kernels.md, "MUL and table activations"). The
same layer analysis as targets/cortex_m4/kernels/cm4_elementwise.py (each
target plugin stands alone), with this target's requantization constants.

* ``tb_rv_mul_s8``: int8 MUL with both operands of one shape, or one operand
  a per-channel vector ([rows, C] x [C]: squeeze-and-excite) or a scalar; the
  requantization in the fast exact form ``(MULH(4 acc, M) + C + 2 (acc >> 31))
  >> E`` (rv_prepare.rv_requant_constants), proven here for every product the
  layer's offsets allow.
* ``tb_rv_lut_s8``: every layer the reference runs with ``tb_lut_s8`` (RELU,
  LOGISTIC, HARD_SWISH... one 256-entry table), and a MUL by a constant
  scalar, which is a function of one byte too: its table is built here.

Each kernel refuses the layers where the simulator measured it no faster than
the reference kernel (the calls too small to repay their set-up).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from tinybuild import quant
from tinybuild.kernel_registry import REFERENCE, KernelImpl
from tinybuild.lower import Const, Layer

from .rv_prepare import rv_requant_constants

HERE = Path(__file__).parent
SOURCE = HERE / "rv_elementwise_s8.c"

# rq words of tb_rv_mul_s8 (MUL_* in rv_elementwise_s8.c)
FORM_SAME, FORM_CHANNEL, FORM_SCALAR = 0, 1, 2
SMALL_FIRST = 4

# The table kernel's 16-element loop repays its set-up from 16 elements on:
# below, the reference's 4-element loop ran as few instructions or cycles in
# the simulator (tests/test_target_elementwise.py checks both sides). MUL and
# MUL-as-a-table ran fewer at every size from 1 element on.
LUT_MIN_SIZE = 16

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


def mul_requant(layer: Layer):
    """``(M, C, E)`` of the fast form, exact for every product, or None."""
    p = layer.params
    fast = rv_requant_constants(np.array([p["output"]]), p["output_offset"], [product_bound(layer)])
    return None if fast is None else fast[0]


def int8_layer(layer: Layer, params_type: str) -> bool:
    return layer.params_type == params_type and getattr(layer, "dtype", "int8") == "int8"


def accepts_mul(layer: Layer) -> bool:
    return (layer.op == "MUL" and int8_layer(layer, "tb_mul_params")
            and mul_form(layer) is not None and mul_requant(layer) is not None)


def prepare_mul(layer: Layer) -> Layer:
    p = layer.params
    form, channels, small_first = mul_form(layer)
    oa, ob = call_offsets(layer, small_first)
    m, c, e = mul_requant(layer)
    flags = form | (SMALL_FIRST if small_first else 0)
    rq = np.array([flags, oa, ob, m, c, e, p["act_min"], p["act_max"], channels], np.int64)
    names = {FORM_SAME: "same shapes", FORM_CHANNEL: f"per-channel operand ({channels} channels)",
             FORM_SCALAR: "scalar operand"}
    notes = [f"MUL form: {names[form]}; 4 elements per step",
             f"requantization: MULH form, exact for |product| <= {product_bound(layer)}"]
    return replace(layer, consts=list(layer.consts) + [Const("mul_rq", "int32_t", rq.astype(np.int32))],
                   args=[c.role for c in layer.consts] + ["mul_rq"],
                   overlap=_full_size_overlap(layer), notes=notes)


def _full_size_overlap(layer: Layer) -> dict:
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


def kernels() -> list[KernelImpl]:
    src = (SOURCE,)
    lut_name = "tb_rv_lut_s8 (8 per step)"
    return [
        KernelImpl("MUL", "tb_rv_mul_s8", src, priority=10, accepts=accepts_mul,
                   prepare=prepare_mul, name="tb_rv_mul_s8 (RV32IM, 4 per step)"),
        KernelImpl("MUL", "tb_rv_lut_s8", src, priority=20, accepts=accepts_mul_table,
                   prepare=prepare_mul_table, name="tb_rv_lut_s8 (MUL by a constant, as a table)"),
        *[KernelImpl(op, "tb_rv_lut_s8", src, priority=10, accepts=accepts_lut,
                     prepare=prepare_lut, name=lut_name) for op in lut_ops()],
    ]
