"""Build-time side of the Cortex-M4 MUL and table-activation kernels
(cm4_elementwise_s8.c; docs/kernels.md, "MUL and table activations"); the
layer analysis the RISC-V kernels share is tinybuild/elementwise_forms.py.

* ``tb_cm4_mul_s8``: int8 MUL with both operands of one shape, or one operand
  a per-channel vector ([rows, C] x [C]: squeeze-and-excite) or a scalar; the
  requantization in the fast exact form (tinybuild.quant.fast_requant), proven
  here for every product the layer's offsets allow.
* ``tb_cm4_lut_s8``: every layer the reference runs with ``tb_lut_s8`` (RELU,
  LOGISTIC, HARD_SWISH... one 256-entry table), and a MUL by a constant
  scalar, which is a function of one byte too: its table is built here.

Each kernel refuses the layers where the simulator measured it no faster than
the reference kernel (the calls too small to repay their set-up).
"""
from __future__ import annotations

from pathlib import Path

from tinybuild import quant
from tinybuild.elementwise_forms import (accepts_lut, accepts_mul_table, form_name, int8_layer,
                                         lut_ops, mul_form, mul_layer, prepare_lut, prepare_mul_table,
                                         product_bound)
from tinybuild.kernel_registry import KernelImpl
from tinybuild.lower import Layer

HERE = Path(__file__).parent
SOURCE = HERE / "cm4_elementwise_s8.c"
FULL_RANGE = 8                 # rq flag: the output range is all of int8 (no clamp)


def mul_requant(layer: Layer):
    """``(M, B, e)`` of the fast form, exact for every product, or None."""
    p = layer.params
    fast = quant.fast_requant([p["output"]], p["output_offset"], [product_bound(layer)])
    return None if fast is None else fast[0]


def accepts_mul(layer: Layer) -> bool:
    return (layer.op == "MUL" and int8_layer(layer, "tb_mul_params")
            and mul_form(layer) is not None and mul_requant(layer) is not None)


def prepare_mul(layer: Layer) -> Layer:
    full = (layer.params["act_min"], layer.params["act_max"]) == (-128, 127)
    notes = [f"MUL form: {form_name(layer)}; 4 elements per step (word loads, SXTAB16, SMULBB/SMULTT)",
             f"requantization: SMMLAR form, exact for |product| <= {product_bound(layer)}"]
    return mul_layer(layer, mul_requant(layer), FULL_RANGE if full else 0, notes)


def kernels() -> list[KernelImpl]:
    src = (SOURCE,)
    lut_name = "tb_cm4_lut_s8 (8 per step)"
    return [
        KernelImpl("MUL", "tb_cm4_mul_s8", src, priority=10, accepts=accepts_mul,
                   prepare=prepare_mul, name="tb_cm4_mul_s8 (DSP, 4 per step)"),
        KernelImpl("MUL", "tb_cm4_lut_s8", src, priority=20, accepts=accepts_mul_table,
                   prepare=prepare_mul_table, name="tb_cm4_lut_s8 (MUL by a constant, as a table)"),
        *[KernelImpl(op, "tb_cm4_lut_s8", src, priority=10, accepts=accepts_lut,
                     prepare=prepare_lut, name=lut_name) for op in lut_ops()],
    ]
