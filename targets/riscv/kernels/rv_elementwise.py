"""Build-time side of the RV32IM MUL and table-activation kernels
(rv_elementwise_s8.c; docs/kernels.md, "MUL and table activations"). The
layer analysis is tinybuild/elementwise_forms.py, shared with the Cortex-M4
kernels; this module has this target's requantization constants.

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

from pathlib import Path

import numpy as np

from tinybuild.elementwise_forms import (accepts_lut, accepts_mul_table, form_name, int8_layer,
                                         lut_ops, mul_form, mul_layer, prepare_lut, prepare_mul_table,
                                         product_bound)
from tinybuild.kernel_registry import KernelImpl
from tinybuild.lower import Layer

from .rv_prepare import rv_requant_constants

HERE = Path(__file__).parent
SOURCE = HERE / "rv_elementwise_s8.c"


def mul_requant(layer: Layer):
    """``(M, C, E)`` of the fast form, exact for every product, or None."""
    p = layer.params
    fast = rv_requant_constants(np.array([p["output"]]), p["output_offset"], [product_bound(layer)])
    return None if fast is None else fast[0]


def accepts_mul(layer: Layer) -> bool:
    return (layer.op == "MUL" and int8_layer(layer, "tb_mul_params")
            and mul_form(layer) is not None and mul_requant(layer) is not None)


def prepare_mul(layer: Layer) -> Layer:
    notes = [f"MUL form: {form_name(layer)}; 4 elements per step",
             f"requantization: MULH form, exact for |product| <= {product_bound(layer)}"]
    return mul_layer(layer, mul_requant(layer), 0, notes)


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
