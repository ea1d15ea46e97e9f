"""The model as the code generator sees it: tensors, operators, quantization.

Built from an int8 ``.tflite`` by :mod:`tinybuild.importer`; read by the
planner and the code generator. Plain data, no TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str                      # numpy dtype name: "int8", "int32", ...
    scales: tuple[float, ...] = ()  # one per tensor, or one per channel
    zero_points: tuple[int, ...] = ()
    quantized_dimension: int = 0
    data: np.ndarray | None = None  # constant tensors (weights, biases, shapes)

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def size_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    @property
    def scale(self) -> float:
        return self.scales[0] if self.scales else 0.0

    @property
    def zero_point(self) -> int:
        return self.zero_points[0] if self.zero_points else 0


@dataclass
class Operator:
    index: int
    op: str                          # TFLite builtin name, e.g. "CONV_2D"
    inputs: list[int]                # tensor indices, -1 for an omitted optional input
    outputs: list[int]
    options: dict = field(default_factory=dict)
    intermediates: list[int] = field(default_factory=list)   # tensors some ops (LSTM) read scales from

    @property
    def label(self) -> str:
        return f"layer {self.index} ({self.op})"


@dataclass
class Graph:
    name: str
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]

    def tensor(self, index: int) -> Tensor | None:
        return self.tensors[index] if index >= 0 else None

    @property
    def activation_tensors(self) -> list[Tensor]:
        """Tensors the arena must hold: every non-constant tensor an op touches."""
        used = {t for op in self.operators for t in op.inputs + op.outputs if t >= 0}
        used |= set(self.inputs) | set(self.outputs)
        return [self.tensors[i] for i in sorted(used) if not self.tensors[i].is_constant]
