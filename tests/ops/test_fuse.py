"""PAD/PADV2 fused into the CONV_2D or DEPTHWISE_CONV_2D that reads it
(tinybuild/ops/fuse.py): whole models against TFLite on the host, which
models fuse and which do not, and the fused layers through the cortex-m4 and
riscv optimized kernels against the reference kernel, byte for byte."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from harness import Case, check, rng_for
from tflite_builder import ModelBuilder
from tinybuild import importer, lower
from tinybuild.errors import TinybuildError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernels"))
from opt_harness import (CM4_DIR, RV_DIR, build_library, compare,  # noqa: E402
                         target_kernels)

Q_IN, Q_OUT = (0.05, -3), (0.1, 4)
MBNET = (((0, 0), (0, 1), (0, 1), (0, 0)))          # Keras' ZeroPadding2D before a stride-2 block


def pad_conv_model(in_shape=(1, 6, 6, 3), paddings=((0, 0), (1, 1), (1, 1), (0, 0)), out_c=4,
                   k=(3, 3), stride=(1, 1), dilation=(1, 1), depthwise=False, in_q=Q_IN,
                   value=None, second_reader=False, conv_padding="VALID") -> bytes:
    """PAD (PADV2 when ``value`` is given) -> CONV_2D/DEPTHWISE_CONV_2D; with
    ``second_reader`` the padded tensor is also a model output."""
    rng = rng_for(in_shape, paddings, out_c, k, stride, dilation, depthwise, in_q, value)
    b = ModelBuilder()
    x = b.input(in_shape, "int8", *in_q)
    padded = [d + lo + hi for d, (lo, hi) in zip(in_shape, paddings)]
    p = b.tensor(padded, "int8", *in_q)
    inputs = [x, b.const(np.array(paddings, np.int32), "int32")]
    if value is not None:
        inputs.append(b.const(np.array(value, np.int8), "int8", *in_q))
    b.op("PADV2" if value is not None else "PAD", inputs, [p])
    _, h, w, c = padded
    if depthwise:
        out_c = c
    out_h = (h - (k[0] - 1) * dilation[0] - 1) // stride[0] + 1
    out_w = (w - (k[1] - 1) * dilation[1] - 1) // stride[1] + 1
    if conv_padding == "SAME":
        out_h, out_w = -(-h // stride[0]), -(-w // stride[1])
    scales = rng.uniform(0.004, 0.02, out_c)
    shape = (1, *k, out_c) if depthwise else (out_c, *k, c)
    wt = b.const(rng.integers(-127, 128, shape), "int8", scales, [0] * out_c, axis=3 if depthwise else 0)
    bias = b.const(rng.integers(-3000, 3000, out_c), "int32", in_q[0] * scales, [0] * out_c)
    y = b.tensor((1, out_h, out_w, out_c), "int8", *Q_OUT)
    common = dict(padding=conv_padding, strideH=stride[0], strideW=stride[1],
                  dilationHFactor=dilation[0], dilationWFactor=dilation[1], fusedActivationFunction="RELU6")
    if depthwise:
        b.op("DEPTHWISE_CONV_2D", [p, wt, bias], [y],
             b.options("DepthwiseConv2DOptions", depthMultiplier=1, **common), version=3)
    else:
        b.op("CONV_2D", [p, wt, bias], [y], b.options("Conv2DOptions", **common), version=3)
    return b.build([y, p] if second_reader else [y])


def pad_pool_model(pool: str) -> bytes:
    b = ModelBuilder()
    x = b.input((1, 5, 5, 2), "int8", *Q_IN)
    p = b.tensor((1, 7, 7, 2), "int8", *Q_IN)
    b.op("PAD", [x, b.const(np.array(((0, 0), (1, 1), (1, 1), (0, 0)), np.int32), "int32")], [p])
    y = b.tensor((1, 3, 3, 2), "int8", *Q_IN)
    b.op(pool, [p], [y], b.options("Pool2DOptions", padding="VALID", strideH=2, strideW=2,
                                   filterHeight=3, filterWidth=3, fusedActivationFunction="NONE"))
    return b.build([y])


# (case, fused?)
CASES = [
    (Case("PAD + CONV_2D 3x3", lambda: pad_conv_model()), True),
    (Case("PAD + DEPTHWISE 3x3 stride 2, bottom/right only (MobileNet)",
          lambda: pad_conv_model((1, 9, 8, 4), MBNET, stride=(2, 2), depthwise=True)), True),
    (Case("PAD + DEPTHWISE stride 2, input zero point -128",
          lambda: pad_conv_model((1, 8, 8, 3), ((0, 0), (1, 1), (1, 1), (0, 0)), stride=(2, 2),
                                 depthwise=True, in_q=(0.02, -128))), True),
    (Case("PAD asymmetric top 2 left 0 bottom 0 right 1, nonzero zero point",
          lambda: pad_conv_model((1, 5, 6, 3), ((0, 0), (2, 0), (0, 1), (0, 0)), in_q=(0.03, 17))), True),
    (Case("PAD + CONV_2D 5x3 stride 2 dilation 2x1",
          lambda: pad_conv_model((1, 9, 7, 2), ((0, 0), (3, 4), (1, 0), (0, 0)), k=(5, 3),
                                 stride=(2, 2), dilation=(2, 1))), True),
    (Case("PADV2 with the zero point as its value",
          lambda: pad_conv_model(in_q=(0.05, -3), value=-3)), True),
    (Case("PADV2 with another value (not fused)", lambda: pad_conv_model(value=5)), False),
    (Case("PAD wider than the kernel reaches (not fused)",
          lambda: pad_conv_model((1, 4, 4, 2), ((0, 0), (3, 3), (0, 0), (0, 0)))), False),
    (Case("PAD read by the conv and as a model output (not fused)",
          lambda: pad_conv_model(second_reader=True)), False),
    (Case("PAD on the channel axis (not fused)",
          lambda: pad_conv_model((1, 5, 5, 3), ((0, 0), (1, 1), (1, 1), (0, 1)))), False),
    (Case("PAD + SAME conv (not fused)", lambda: pad_conv_model(conv_padding="SAME")), False),
    (Case("PAD + AVERAGE_POOL_2D (not fused)", lambda: pad_pool_model("AVERAGE_POOL_2D")), False),
    (Case("PAD + MAX_POOL_2D (not fused)", lambda: pad_pool_model("MAX_POOL_2D")), False),
]


def lowered(model: bytes, tmp_path: Path):
    path = tmp_path / "model.tflite"
    path.write_bytes(model)
    return lower.lower_graph(importer.load_graph(path))


@pytest.mark.parametrize("case,fused", CASES, ids=[str(c) for c, _ in CASES])
def test_fused_model_matches_tflite(case, fused, tmp_path):
    layers = lowered(case.model(), tmp_path)
    pads = [layer for layer in layers if layer.op in ("PAD", "PADV2")]
    notes = [n for layer in layers for n in layer.notes if n.startswith("PAD fused")]
    assert (not pads, len(notes)) == ((True, 1) if fused else (False, 0)), [l.op for l in layers]
    assert [layer.index for layer in layers] == list(range(len(layers)))
    check(case)


def test_pad_on_the_batch_axis_is_not_fused_into_a_batch_1_conv(tmp_path):
    """The conv of the padded batch-2 tensor is refused as before, not turned
    into a batch-1 conv of the PAD's input."""
    model = pad_conv_model((1, 5, 5, 3), ((1, 0), (0, 0), (0, 0), (0, 0)), k=(1, 1))
    with pytest.raises(TinybuildError, match="batch size 2"):
        lowered(model, tmp_path)


def test_fused_conv_reads_the_pad_input_with_its_before_pads(tmp_path):
    model = pad_conv_model((1, 5, 6, 3), ((0, 0), (2, 0), (0, 1), (0, 0)))
    [conv] = lowered(model, tmp_path)
    p = conv.params
    assert (p["in_h"], p["in_w"], p["pad_top"], p["pad_left"], p["out_h"], p["out_w"]) == (5, 6, 2, 0, 5, 5)
    assert conv.inputs == [0]                      # the model's input, not the padded tensor
    assert conv.notes == ["PAD fused: top 2 left 0 bottom 0 right 1"]


def test_the_padded_tensor_gets_no_buffer(tmp_path):
    from tinybuild import kernel_registry, planner
    path = tmp_path / "model.tflite"
    path.write_bytes(pad_conv_model((1, 9, 8, 4), MBNET, stride=(2, 2), depthwise=True))
    graph = importer.load_graph(path)
    layers = kernel_registry.select_kernels(lower.lower_graph(graph), [])
    placed = {t for b in planner.buffers_with_lifetimes(graph, layers) for t in b.tensors}
    padded = graph.operators[0].outputs[0]
    assert padded not in placed and graph.inputs[0] in placed


# -- the fused layers through the targets' optimized kernels ------------------------------------

TARGETS = {"cortex-m4": CM4_DIR, "riscv": RV_DIR}


@pytest.fixture(scope="module", params=sorted(TARGETS))
def target(request, tmp_path_factory):
    name = request.param
    lib = build_library(tmp_path_factory.mktemp(name), extra_dirs=(TARGETS[name],),
                        name=f"libtbfuse_{name}.so")
    return name, lib, {k.op: k for k in target_kernels(name)}


@pytest.mark.parametrize("case", [c for c, fused in CASES if fused], ids=str)
@pytest.mark.parametrize("zp", [-128, 0, 61])
def test_fused_layer_optimized_equals_reference(target, case, zp, tmp_path):
    name, lib, impls = target
    [conv] = [layer for layer in lowered(case.model(), tmp_path) if layer.notes]
    conv.params["input_offset"] = -zp            # the zero point padded cells stand for
    rng = np.random.default_rng(zp + 1000)
    p = conv.params
    x = rng.integers(-128, 128, p["in_h"] * p["in_w"] * p["in_c"]).astype(np.int8)
    compare(lib, impls, conv, [x])


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_mobilenet_fused_depthwise_takes_the_optimized_kernel(name, tmp_path):
    """The MobileNet stride-2 shape is not left to the reference kernel by the fusion."""
    from opt_harness import optimized
    model = pad_conv_model((1, 32, 32, 16), MBNET, stride=(2, 2), depthwise=True)
    [conv] = lowered(model, tmp_path)
    assert optimized(conv, {k.op: k for k in target_kernels(name)}) is not None


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_the_fusion_note_survives_the_kernel_prepare(name, tmp_path):
    """plan.json records the fusion whichever kernel prepares the layer."""
    from tinybuild import kernel_registry
    model = pad_conv_model((1, 32, 32, 16), MBNET, stride=(2, 2), depthwise=True)
    [conv] = kernel_registry.select_kernels(lowered(model, tmp_path), target_kernels(name))
    assert conv.kernel_plugin != kernel_registry.REFERENCE_PLUGIN
    assert conv.notes[0] == "PAD fused: top 0 left 0 bottom 1 right 1"


# -- TRANSPOSE folded away (fuse_transposes) ------------------------------------------------


def transpose_chain_model(in_shape, perms, reshape=None, out_f=5, keep_num_dims=False,
                          per_channel=False, second_reader=False, relu=False) -> bytes:
    """TRANSPOSE(s) with ``perms`` -> optional RESHAPE to ``reshape`` -> FULLY_CONNECTED
    (out_f None: no FC, the last TRANSPOSE is the output, or a RELU reads it with
    ``relu``); with ``second_reader`` the first TRANSPOSE's output is also a model output."""
    rng = rng_for(in_shape, perms, reshape, out_f, keep_num_dims, per_channel, second_reader, relu)
    b = ModelBuilder()
    t = b.input(in_shape, "int8", *Q_IN)
    shape, transposed = list(in_shape), []
    for perm in perms:
        shape = [shape[p] for p in perm]
        transposed.append(b.tensor(shape, "int8", *Q_IN))
        b.op("TRANSPOSE", [t, b.const(np.array(perm, np.int32), "int32")], [transposed[-1]],
             version=2)
        t = transposed[-1]
    if reshape is not None:
        r = b.tensor(reshape, "int8", *Q_IN)
        b.op("RESHAPE", [t, b.const(np.array(reshape, np.int32), "int32")], [r],
             b.options("ReshapeOptions", newShape=list(reshape)))
        t, shape = r, list(reshape)
    outputs = []
    if out_f is not None:
        k = shape[-1]
        rows = int(np.prod(shape)) // k
        scales = rng.uniform(0.005, 0.02, out_f) if per_channel else np.array([0.01])
        w = b.const(rng.integers(-127, 128, (out_f, k)), "int8", scales, [0] * len(scales))
        bias = b.const(rng.integers(-3000, 3000, out_f), "int32",
                       np.float32(Q_IN[0]) * scales.astype(np.float32), [0] * len(scales))
        y = b.tensor((*shape[:-1], out_f) if keep_num_dims else (rows, out_f), "int8", *Q_OUT)
        b.op("FULLY_CONNECTED", [t, w, bias], [y],
             b.options("FullyConnectedOptions", keepNumDims=keep_num_dims),
             version=5 if keep_num_dims else 4)
        outputs.append(y)
    elif relu:
        y = b.tensor(shape, "int8", *Q_IN)
        b.op("RELU", [t], [y])
        outputs.append(y)
    else:
        outputs.append(t)
    if second_reader:
        outputs.append(transposed[0])
    return b.build(outputs)


# (case, layer ops after lowering)
FC = "FULLY_CONNECTED"
TRANSPOSE_CASES = [
    (Case("TRANSPOSE NHWC->NCHW -> RESHAPE flatten -> FC",
          lambda: transpose_chain_model((1, 3, 4, 5), [(0, 3, 1, 2)], reshape=(1, 60))), [FC]),
    (Case("TRANSPOSE -> RESHAPE -> FC per-channel",
          lambda: transpose_chain_model((1, 6, 7), [(0, 2, 1)], reshape=(1, 42), per_channel=True)),
     [FC]),
    (Case("TRANSPOSE -> RESHAPE -> FC over 5 rows (a permutation inside each row)",
          lambda: transpose_chain_model((1, 5, 3, 4), [(0, 1, 3, 2)], reshape=(1, 5, 12),
                                        keep_num_dims=True)), [FC]),
    (Case("TRANSPOSE -> FC keep dims, one row",
          lambda: transpose_chain_model((1, 4, 3), [(0, 2, 1)], reshape=(1, 1, 12),
                                        keep_num_dims=True)), [FC]),
    (Case("TRANSPOSE -> FC keep dims, moving a size-1 axis (no byte moves)",
          lambda: transpose_chain_model((1, 4, 1, 6), [(0, 2, 1, 3)], keep_num_dims=True)), [FC]),
    (Case("TRANSPOSE -> FC keep dims, rows crossing (not folded)",
          lambda: transpose_chain_model((1, 3, 4), [(0, 2, 1)], keep_num_dims=True)),
     ["TRANSPOSE", FC]),
    (Case("TRANSPOSE read by the FC and as a model output (not folded)",
          lambda: transpose_chain_model((1, 3, 4), [(0, 2, 1)], reshape=(1, 12),
                                        second_reader=True)), ["TRANSPOSE", "RESHAPE", FC]),
    (Case("TRANSPOSE -> TRANSPOSE composed into one",
          lambda: transpose_chain_model((2, 3, 4), [(1, 0, 2), (2, 0, 1)], out_f=None)),
     ["TRANSPOSE"]),
    (Case("TRANSPOSE -> TRANSPOSE -> RELU: the identity disappears",
          lambda: transpose_chain_model((2, 3, 4), [(2, 0, 1), (1, 2, 0)], out_f=None, relu=True)),
     ["RELU"]),
    (Case("TRANSPOSE x3 -> RESHAPE -> FC: all folded",
          lambda: transpose_chain_model((1, 2, 3, 4), [(0, 2, 1, 3), (0, 3, 1, 2), (0, 1, 3, 2)],
                                        reshape=(1, 24))), [FC]),
    (Case("TRANSPOSE -> TRANSPOSE identity as the model output (kept)",
          lambda: transpose_chain_model((2, 3, 4), [(2, 0, 1), (1, 2, 0)], out_f=None)),
     ["TRANSPOSE"]),
]


@pytest.mark.parametrize("case,ops", TRANSPOSE_CASES, ids=[str(c) for c, _ in TRANSPOSE_CASES])
def test_transpose_folding_matches_tflite(case, ops, tmp_path):
    layers = lowered(case.model(), tmp_path)
    assert [layer.op for layer in layers] == ops
    assert [layer.index for layer in layers] == list(range(len(layers)))
    check(case)


def test_folded_fc_reads_the_transpose_input_and_its_buffer_goes(tmp_path):
    from tinybuild import kernel_registry, planner
    path = tmp_path / "model.tflite"
    path.write_bytes(transpose_chain_model((1, 3, 4, 5), [(0, 3, 1, 2)], reshape=(1, 60)))
    graph = importer.load_graph(path)
    [fc] = kernel_registry.select_kernels(lower.lower_graph(graph), [])
    assert fc.inputs == graph.inputs
    assert fc.notes == ["TRANSPOSE fused: operator 0's permutation folded into the weight columns"]
    placed = {t for b in planner.buffers_with_lifetimes(graph, [fc]) for t in b.tensors}
    assert placed == {graph.inputs[0], fc.output}


def test_folded_fc_takes_the_optimized_kernel_and_matches(target, tmp_path):
    """The folded FC (5 rows; its bytes are TFLite's with the reference kernel,
    above) through the targets' kernels: the reference kernel's bytes."""
    from tinybuild import kernel_registry
    name, lib, impls = target
    case = TRANSPOSE_CASES[2][0]
    [fc] = lowered(case.model(), tmp_path)
    [chosen] = kernel_registry.select_kernels(lowered(case.model(), tmp_path), target_kernels(name))
    assert chosen.kernel_plugin != kernel_registry.REFERENCE_PLUGIN
    assert chosen.notes[0].startswith("TRANSPOSE fused")
    compare(lib, impls, fc, [np.random.default_rng(4).integers(-128, 128, 60).astype(np.int8)])
