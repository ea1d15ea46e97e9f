"""Which C function runs each layer.

The portable reference kernels (``tinybuild/kernels/*.c``) cover every
supported op. Target plugins may contribute faster implementations through
the ``tinybuild_kernels`` hook; for each layer the code generator takes the
accepting implementation with the highest priority, else the reference one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

KERNEL_DIR = Path(__file__).parent / "kernels"
RUNTIME_DIR = Path(__file__).parent / "runtime"


@dataclass(frozen=True)
class KernelImpl:
    """One implementation of one op.

    ``function`` has the reference kernel's C signature (see tb_kernels.h);
    ``sources`` are the C files that define it; ``accepts(layer)`` gets a
    :class:`tinybuild.lower.Layer` and says whether this implementation is
    correct for its shapes and parameters; higher ``priority`` wins.
    """

    op: str
    function: str
    sources: tuple[Path, ...] = ()
    priority: int = 0
    accepts: Callable[[object], bool] = field(default=lambda layer: True, compare=False)
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.function


REFERENCE = {
    "CONV_2D": "tb_conv2d_s8",
    "DEPTHWISE_CONV_2D": "tb_depthwise_conv2d_s8",
    "FULLY_CONNECTED": "tb_fully_connected_s8",
    "AVERAGE_POOL_2D": "tb_avg_pool2d_s8",
    "MAX_POOL_2D": "tb_max_pool2d_s8",
    "ADD": "tb_add_s8",
    "SOFTMAX": "tb_softmax_s8",
    "RESHAPE": "tb_copy_s8",
}


def reference_sources() -> list[Path]:
    return sorted(KERNEL_DIR.glob("*.c"))


def reference_impl(op: str) -> KernelImpl:
    return KernelImpl(op, REFERENCE[op], tuple(reference_sources()), -1, name=f"{REFERENCE[op]} (reference)")


def choose(layer, contributed: list[KernelImpl]) -> KernelImpl:
    candidates = [k for k in contributed if k.op == layer.op and k.accepts(layer)]
    if not candidates:
        return reference_impl(layer.op)
    return max(candidates, key=lambda k: k.priority)
