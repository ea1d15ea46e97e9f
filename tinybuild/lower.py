"""Lower each TFLite operator to one C kernel call with build-time constants.

Everything the device would otherwise compute at start-up (padding,
requantization multipliers and shifts, activation ranges, softmax tables) is
computed here, on the host, exactly as TFLite's Prepare steps do (see
:mod:`tinybuild.quant`). Unsupported operators and parameter combinations
stop the build with the op's name and layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import quant
from .errors import TinybuildError
from .graph import Graph, Operator, Tensor

SUPPORTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D",
             "MAX_POOL_2D", "ADD", "SOFTMAX", "RESHAPE")


class CDouble(float):
    """A parameter the C struct holds as ``double`` (not float32)."""


@dataclass
class Const:
    """A constant array the generated code defines in flash."""

    role: str            # "filter", "bias", "out_mul", "exp_table"
    ctype: str           # "int8_t", "int32_t", "tb_quant_mul", "float"
    values: np.ndarray


@dataclass
class Layer:
    index: int
    op: str
    params_type: str                 # C struct name, "" for none
    params: dict
    inputs: list[int]                # activation tensor indices, in call order
    output: int
    consts: list[Const] = field(default_factory=list)
    macs: int = 0
    shape: str = ""                  # human-readable summary for reports
    kernel: str = ""                 # C function, set by kernel selection
    kernel_label: str = ""
    kernel_plugin: str = ""          # the plugin that gave the kernel (KernelImpl.plugin)
    aliased: bool = False            # RESHAPE whose output shares its input's bytes
    # Set by the chosen kernel's ``prepare`` (tinybuild.kernel_registry.KernelImpl):
    args: list[str] | None = None    # roles of the consts passed after the inputs, in order
                                     # (None: the reference kernels' filter, bias, out_mul)
    scratch_bytes: int = 0           # scratch the planner reserves for this step; passed
                                     # as the last argument (void *)
    overlap: dict = field(default_factory=dict)
                                     # input tensor -> allowed offset(out) - offset(in):
                                     # an interval (lo, hi) or a list of them, None for
                                     # unbounded, used when that input dies here (planner)
    scratch_overlap: dict = field(default_factory=dict)
                                     # the same for offset(scratch) - offset(in)
    notes: list[str] = field(default_factory=list)   # what the kernel did at build time


def _unsupported(op: Operator, why: str, graph: Graph | None = None) -> TinybuildError:
    where = f"layer {op.index}"
    if graph is not None and op.outputs:
        where += f" (output tensor '{graph.tensors[op.outputs[0]].name}')"
    return TinybuildError(
        f"unsupported {op.op} at {where}: {why}. tinybuild compiles "
        f"{', '.join(SUPPORTED)} with int8 activations; re-export the model without it "
        "or contribute a kernel through the tinybuild_kernels hook")


def _int8(graph: Graph, op: Operator, index: int, what: str) -> Tensor:
    t = graph.tensor(index)
    if t is None or t.dtype != "int8":
        got = "nothing" if t is None else t.dtype
        raise _unsupported(op, f"{what} must be int8, got {got} (convert with full-integer "
                               "quantization: int8 inputs and outputs)")
    if not t.is_constant and t.shape and t.shape[0] != 1 and len(t.shape) == 4:
        raise _unsupported(op, f"batch size {t.shape[0]} (only batch 1 is compiled)")
    return t


def _padding(padding: str, in_size: int, out_size: int, stride: int, k: int, dil: int) -> int:
    """TFLite's ComputePaddingHeightWidth: the odd pixel goes to the bottom/right."""
    if padding == "VALID":
        return 0
    effective = (k - 1) * dil + 1
    return max((out_size - 1) * stride + effective - in_size, 0) // 2


def _bias(graph: Graph, op: Operator, channels: int) -> np.ndarray:
    b = graph.tensor(op.inputs[2]) if len(op.inputs) > 2 else None
    if b is None:
        return np.zeros(channels, np.int32)
    if b.dtype != "int32" or b.data is None:
        raise _unsupported(op, f"bias of type {b.dtype} (int32 constant expected)")
    return b.data.astype(np.int32).reshape(-1)


def _mul_array(pairs) -> np.ndarray:
    return np.array([[m, s] for m, s in pairs], dtype=np.int32)


def _conv_like(graph: Graph, op: Operator, depthwise: bool) -> Layer:
    x = _int8(graph, op, op.inputs[0], "input")
    w = _int8(graph, op, op.inputs[1], "filter")
    y = _int8(graph, op, op.outputs[0], "output")
    if w.data is None:
        raise _unsupported(op, "non-constant filter")
    if any(z != 0 for z in w.zero_points):
        raise _unsupported(op, "filter zero point other than 0")
    o = op.options
    _, in_h, in_w, in_c = x.shape
    _, out_h, out_w, out_c = y.shape
    if depthwise:
        _, k_h, k_w, _ = w.shape
        mult = out_c // in_c
        if mult * in_c != out_c:
            raise _unsupported(op, f"output channels {out_c} not a multiple of input channels {in_c}")
        macs = out_h * out_w * out_c * k_h * k_w
    else:
        _, k_h, k_w, w_in = w.shape
        if w_in != in_c:
            raise _unsupported(op, f"grouped convolution ({in_c} input channels, filter has {w_in})")
        mult = 1
        macs = out_h * out_w * out_c * k_h * k_w * in_c
    dil_h, dil_w = o.get("DilationHFactor", 1), o.get("DilationWFactor", 1)
    act_min, act_max = quant.activation_range(o["FusedActivationFunction"], y.scale, y.zero_point)
    params = dict(
        in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c,
        k_h=k_h, k_w=k_w, stride_h=o["StrideH"], stride_w=o["StrideW"],
        dil_h=dil_h, dil_w=dil_w,
        pad_top=_padding(o["Padding"], in_h, out_h, o["StrideH"], k_h, dil_h),
        pad_left=_padding(o["Padding"], in_w, out_w, o["StrideW"], k_w, dil_w),
        depth_multiplier=mult, input_offset=-x.zero_point, output_offset=y.zero_point,
        act_min=act_min, act_max=act_max)
    muls = quant.conv_output_multipliers(x.scale, list(w.scales), y.scale, out_c)
    consts = [Const("filter", "int8_t", w.data.reshape(-1)),
              Const("bias", "int32_t", _bias(graph, op, out_c)),
              Const("out_mul", "tb_quant_mul", _mul_array(muls))]
    shape = (f"{in_h}x{in_w}x{in_c} -> {out_h}x{out_w}x{out_c}, k{k_h}x{k_w} "
             f"s{o['StrideH']} {o['Padding'].lower()}")
    return Layer(op.index, op.op, "tb_conv_params", params, [op.inputs[0]], op.outputs[0],
                 consts, macs, shape)


def _fully_connected(graph: Graph, op: Operator) -> Layer:
    x = _int8(graph, op, op.inputs[0], "input")
    w = _int8(graph, op, op.inputs[1], "weights")
    y = _int8(graph, op, op.outputs[0], "output")
    if w.data is None:
        raise _unsupported(op, "non-constant weights")
    out_f, in_f = w.shape
    if int(np.prod(x.shape)) != in_f:
        raise _unsupported(op, f"input of {int(np.prod(x.shape))} values for {in_f} input "
                               "features (only batch 1 is compiled)")
    act_min, act_max = quant.activation_range(op.options.get("FusedActivationFunction", "NONE"),
                                              y.scale, y.zero_point)
    # TFLite's reference FULLY_CONNECTED rescales per-tensor weights in double
    # (the kernel does so when real_multiplier is set) and per-channel weights
    # in Q31 fixed point per output (real_multiplier 0: the out_mul table).
    per_channel = len(w.scales) > 1
    params = dict(in_features=in_f, out_features=out_f, input_offset=-x.zero_point,
                  weights_offset=-w.zero_point, output_offset=y.zero_point,
                  act_min=act_min, act_max=act_max,
                  real_multiplier=CDouble(0.0 if per_channel else
                                          quant.fc_real_multiplier(x.scale, w.scale, y.scale)))
    muls = quant.conv_output_multipliers(x.scale, list(w.scales), y.scale, out_f,
                                         op="FULLY_CONNECTED")
    consts = [Const("filter", "int8_t", w.data.reshape(-1)),
              Const("bias", "int32_t", _bias(graph, op, out_f)),
              Const("out_mul", "tb_quant_mul", _mul_array(muls))]
    return Layer(op.index, op.op, "tb_fc_params", params, [op.inputs[0]], op.outputs[0],
                 consts, in_f * out_f, f"{in_f} -> {out_f}")


def _pool(graph: Graph, op: Operator) -> Layer:
    x = _int8(graph, op, op.inputs[0], "input")
    y = _int8(graph, op, op.outputs[0], "output")
    if op.op == "AVERAGE_POOL_2D" and (x.scale != y.scale or x.zero_point != y.zero_point):
        raise _unsupported(op, "input and output quantization differ (TFLite requires them equal)")
    o = op.options
    _, in_h, in_w, c = x.shape
    _, out_h, out_w, _ = y.shape
    act_min, act_max = quant.activation_range(o["FusedActivationFunction"], y.scale, y.zero_point)
    params = dict(in_h=in_h, in_w=in_w, c=c, out_h=out_h, out_w=out_w,
                  k_h=o["FilterHeight"], k_w=o["FilterWidth"],
                  stride_h=o["StrideH"], stride_w=o["StrideW"],
                  pad_top=_padding(o["Padding"], in_h, out_h, o["StrideH"], o["FilterHeight"], 1),
                  pad_left=_padding(o["Padding"], in_w, out_w, o["StrideW"], o["FilterWidth"], 1),
                  act_min=act_min, act_max=act_max)
    shape = f"{in_h}x{in_w}x{c} -> {out_h}x{out_w}x{c}, k{o['FilterHeight']}x{o['FilterWidth']}"
    return Layer(op.index, op.op, "tb_pool_params", params, [op.inputs[0]], op.outputs[0],
                 [], 0, shape)


def _add(graph: Graph, op: Operator) -> Layer:
    a = _int8(graph, op, op.inputs[0], "first input")
    b = _int8(graph, op, op.inputs[1], "second input")
    y = _int8(graph, op, op.outputs[0], "output")
    if a.shape != b.shape or a.is_constant or b.is_constant:
        raise _unsupported(op, f"broadcasting or constant operand ({a.shape} + {b.shape})")
    params = quant.add_params(a.scale, a.zero_point, b.scale, b.zero_point, y.scale,
                              y.zero_point, op.options.get("FusedActivationFunction", "NONE"))
    params["size"] = int(np.prod(a.shape))
    return Layer(op.index, op.op, "tb_add_params", params, [op.inputs[0], op.inputs[1]],
                 op.outputs[0], [], 0, "x".join(map(str, a.shape[1:])))


def _softmax(graph: Graph, op: Operator) -> Layer:
    x = _int8(graph, op, op.inputs[0], "input")
    y = _int8(graph, op, op.outputs[0], "output")
    try:
        params = quant.softmax_params(x.scale, x.zero_point, y.scale, y.zero_point,
                                      float(op.options.get("Beta", 1.0)))
    except ValueError as exc:
        raise _unsupported(op, str(exc)) from None
    params.pop("input_zero_point", None)  # cancels in x - max(x); not a kernel field
    depth = x.shape[-1]
    params.update(outer=int(np.prod(x.shape)) // depth, depth=depth)
    consts = []
    table = params.pop("exp_table", None)
    if table is not None:
        consts.append(Const("exp_table", "float", np.asarray(table, np.float32)))
    return Layer(op.index, op.op, "tb_softmax_params", params, [op.inputs[0]], op.outputs[0],
                 consts, 0, f"{depth} classes")


def _reshape(graph: Graph, op: Operator) -> Layer:
    x = _int8(graph, op, op.inputs[0], "input")
    _int8(graph, op, op.outputs[0], "output")
    return Layer(op.index, op.op, "", {"size": x.size_bytes}, [op.inputs[0]], op.outputs[0],
                 [], 0, f"{x.size_bytes} bytes")


_LOWER = {
    "CONV_2D": lambda g, op: _conv_like(g, op, depthwise=False),
    "DEPTHWISE_CONV_2D": lambda g, op: _conv_like(g, op, depthwise=True),
    "FULLY_CONNECTED": _fully_connected,
    "AVERAGE_POOL_2D": _pool,
    "MAX_POOL_2D": _pool,
    "ADD": _add,
    "SOFTMAX": _softmax,
    "RESHAPE": _reshape,
}


def lower_graph(graph: Graph) -> list[Layer]:
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise TinybuildError(f"{graph.name}: {len(graph.inputs)} inputs and {len(graph.outputs)} "
                             "outputs; tinybuild compiles single-input, single-output models")
    layers = []
    for op in graph.operators:
        lower = _LOWER.get(op.op)
        if lower is None:
            raise _unsupported(op, "no kernel for this operator", graph)
        try:
            layers.append(lower(graph, op))
        except TinybuildError as exc:
            if op.outputs and f"'{graph.tensors[op.outputs[0]].name}'" not in str(exc):
                raise TinybuildError(str(exc).replace(f"at layer {op.index}:", f"at layer {op.index} "
                                     f"(output tensor '{graph.tensors[op.outputs[0]].name}'):", 1)) from None
            raise
        except (KeyError, ValueError, IndexError) as exc:
            raise _unsupported(op, f"unexpected operator encoding ({exc!r})", graph) from None
    return layers
