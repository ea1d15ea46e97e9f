"""Lower each TFLite operator to C kernel calls with build-time constants.

Everything the device would otherwise compute at start-up (padding,
requantization multipliers and shifts, activation ranges, softmax tables) is
computed here, on the host, exactly as TFLite's Prepare steps do. What each
operator needs lives with it in its op family module (:mod:`tinybuild.ops`);
:func:`lower_graph` walks the graph and asks the registry. Ops whose inputs
are all constant are evaluated here (folded) and run no code. Unsupported
operators and parameter combinations stop the build with the op's name, its
layer and its output tensor. Then :mod:`tinybuild.ops.fuse` folds a PAD into
the convolution that reads it, where TFLite's result stays the same.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import TinybuildError, shown
from .graph import Graph, Operator


class CDouble(float):
    """A parameter the C struct holds as ``double`` (not float32)."""


@dataclass
class Const:
    """A constant array the generated code defines in flash."""

    role: str            # "filter", "bias", "out_mul", ...
    ctype: str           # "int8_t", "int32_t", "tb_quant_mul", "float"
    values: np.ndarray


@dataclass
class Layer:
    """One kernel call. Called as ``kernel(&params, inputs..., consts...,
    outputs..., scratch)`` (params when ``params_type`` is set, scratch when
    ``scratch_bytes`` is)."""

    index: int                       # position in the generated code (tb_mark id); set by lower_graph
    op: str
    params_type: str                 # C struct name, "" for none
    params: dict
    inputs: list[int]                # activation tensor indices, in call order
    outputs: list[int]               # tensors it writes, in call order (an int: one output)
    consts: list[Const] = field(default_factory=list)
    macs: int = 0
    shape: str = ""                  # human-readable summary for reports
    kernel: str = ""                 # C function, set by kernel selection
    kernel_label: str = ""
    kernel_plugin: str = ""          # the plugin that gave the kernel (KernelImpl.plugin)
    aliased: bool = False            # a view whose output shares its input's bytes (no call)
    # Set by the chosen kernel's ``prepare`` (tinybuild.kernel_registry.KernelImpl):
    args: list[str] | None = None    # roles of the consts passed after the inputs, in order
                                     # (None: every const, in order)
    scratch_bytes: int = 0           # scratch the planner reserves for this step; passed
                                     # as the last argument (void *)
    overlap: dict = field(default_factory=dict)
                                     # input tensor -> allowed offset(outputs[0]) - offset(in):
                                     # an interval (lo, hi) or a list of them, None for
                                     # unbounded, used when that input dies here (planner)
    scratch_overlap: dict = field(default_factory=dict)
                                     # the same for offset(scratch) - offset(in)
    notes: list[str] = field(default_factory=list)   # what the kernel did at build time
    view: bool = False               # OpDef.view: the planner gives output and input one buffer
    op_index: int = -1               # the TFLite operator it comes from; set by lower_graph
    dtype: str = "int8"              # the arithmetic it runs in: "int8", "int16" (TFLite's 16x8:
                                     # int16 activations, int8 weights) or "float32"; picks the
                                     # reference kernel (OpDef.kernel / OpDef.typed) and which
                                     # plugin kernels may take it (KernelImpl.dtypes)
    place: str = "flash"             # the build's place= (docs/placement.md): with auto|ram a
                                     # kernel may leave out the scratch for its own copy of a
                                     # constant from flash (the build puts constants in RAM)

    def __post_init__(self):
        if isinstance(self.outputs, (int, np.integer)):    # Layer(..., output_tensor, ...)
            self.outputs = [int(self.outputs)]

    @property
    def output(self) -> int:
        """The first output (most ops have one)."""
        return self.outputs[0]


def supported() -> tuple[str, ...]:
    """Every op tinybuild compiles (built-in and from plugins), sorted."""
    from . import ops
    return tuple(sorted(ops.registry()))


def __getattr__(name: str):
    if name == "SUPPORTED":          # lower.SUPPORTED: the registry's ops, always current
        return supported()
    raise AttributeError(name)


def lower_graph(graph: Graph) -> list[Layer]:
    """The graph's kernel calls, in order. Constant-input ops are folded into
    constants first; every other op is lowered by its OpDef; then PADs are
    fused into the convolutions that read them and TRANSPOSEs folded away
    (tinybuild.ops.fuse)."""
    from . import ops                # ops' modules import Layer from here
    from .ops.fuse import fuse_pads, fuse_transposes
    known = ops.registry()
    layers: list[Layer] = []
    for op in graph.operators:
        opdef = known.get(op.op)
        if opdef is None:
            raise ops.unsupported(op, _no_kernel(op), graph)
        layers += _lowered(graph, op, opdef, len(layers))
    _check_outputs(graph)
    return fuse_transposes(graph, fuse_pads(graph, layers))


def _no_kernel(op: Operator) -> str:
    if op.op.startswith("CUSTOM:"):
        return (f"custom operator '{shown(op.op[len('CUSTOM:'):])}' has no implementation; a plugin "
                "can give one through the tinybuild_ops hook")
    return f"no kernel for this operator (tinybuild compiles {', '.join(supported())})"


def _lowered(graph: Graph, op: Operator, opdef, first_index: int) -> list[Layer]:
    """``op``'s layers, numbered from ``first_index``; [] when it was folded.
    Any failure is one line naming the op, its layer and its output tensor."""
    from . import ops
    try:
        result = _folded(graph, op, opdef)
        if result is None:
            result = opdef.lower(graph, op)
    except TinybuildError as exc:
        raise TinybuildError(_with_tensor(str(exc), op, graph)) from None
    except (KeyError, ValueError, IndexError, ArithmeticError) as exc:  # e.g. scale 1e-40
        raise ops.unsupported(op, f"unexpected operator encoding ({exc!r})", graph) from None
    if isinstance(result, ops.Folded):
        _make_constant(graph, op, result.values)
        return []
    if result is None:
        _check_unread(graph, op)
        return []
    layers = result if isinstance(result, list) else [result]
    for i, layer in enumerate(layers):
        layer.index, layer.op_index, layer.view = first_index + i, op.index, opdef.view
    return layers


def _folded(graph: Graph, op: Operator, opdef):
    """Folded outputs when every input is constant and the op can evaluate them."""
    from . import ops
    inputs = [graph.tensor(t) for t in op.inputs if t >= 0]
    if opdef.fold is None or not inputs or not all(t.is_constant for t in inputs):
        return None
    values = opdef.fold(graph, op)
    return None if values is None else ops.Folded(values)


def _make_constant(graph: Graph, op: Operator, values: dict) -> None:
    for t in op.outputs:
        if t not in values:
            raise TinybuildError(f"op {op.op} folded layer {op.index} without a value for tensor {t} "
                                 "(a tinybuild bug: please report it)")
        tensor = graph.tensors[t]
        tensor.data = np.asarray(values[t]).astype(tensor.dtype).reshape(tensor.shape)


def _check_unread(graph: Graph, op: Operator) -> None:
    later = {t for other in graph.operators if other.index > op.index for t in other.inputs}
    if any(t in later or t in graph.outputs for t in op.outputs):
        raise TinybuildError(f"op {op.op} at layer {op.index} lowered to nothing, yet its output is "
                             "read (a tinybuild bug: please report it)")


def _with_tensor(message: str, op: Operator, graph: Graph) -> str:
    """Name the output tensor in an error a lowering raised without it."""
    if not op.outputs or not 0 <= op.outputs[0] < len(graph.tensors):
        return message
    name = f"'{shown(graph.tensors[op.outputs[0]].name)}'"
    if name in message:
        return message
    return message.replace(f"at layer {op.index}:", f"at layer {op.index} (output tensor {name}):", 1)


def _check_outputs(graph: Graph) -> None:
    for t in graph.outputs:
        if graph.tensors[t].is_constant:
            raise TinybuildError(f"{graph.name}: output tensor '{shown(graph.tensors[t].name)}' is a "
                                 "constant (computed at build time); tinybuild compiles models whose "
                                 "outputs depend on their inputs")
