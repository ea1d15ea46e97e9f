"""Build-time folding (OpDef.fold) of the data movement ops and the chains TF
exports for dynamic reshapes, and the one-line errors of what is not compiled."""
from pathlib import Path

import numpy as np
import pytest

import test_movement as mv
from harness import Case, check
from tflite_builder import ModelBuilder
from tinybuild import codegen, kernel_registry, lower, ops, planner
from tinybuild.errors import TinybuildError
from tinybuild.importer import load_graph
from tinybuild.reference import io_record, make_inputs, reference_outputs


def chain_model() -> bytes:
    """x -> SHAPE -> STRIDED_SLICE (batch, shrunk) -> PACK [batch, -1] -> RESHAPE(x):
    TF's dynamic flatten; everything but the RESHAPE folds, which is a view."""
    b = ModelBuilder()
    x = b.input((1, 4, 4, 2), "int8", 0.05, 3)
    shape = b.tensor((4,), "int32")
    b.op("SHAPE", [x], [shape], b.options("ShapeOptions", outType=2))
    batch = b.tensor((), "int32")
    b.op("STRIDED_SLICE", [shape, *(b.const(np.array([v], np.int32), "int32") for v in (0, 1, 1))], [batch],
         b.options("StridedSliceOptions", shrinkAxisMask=1), version=4)
    new_shape = b.tensor((2,), "int32")
    b.op("PACK", [batch, b.const(np.array(-1, np.int32), "int32")], [new_shape],
         b.options("PackOptions", valuesCount=2, axis=0), version=2)
    y = b.tensor((1, 32), "int8", 0.05, 3)
    b.op("RESHAPE", [x, new_shape], [y])
    return b.build([y])


def int32_activation_model() -> bytes:
    """SHAPE folds to a constant that a CONCATENATION joins with an int32 input
    at run time: int32 activations through the movement kernel."""
    b = ModelBuilder()
    x = b.input((1, 3, 5), "int8", 0.05, 3)
    n = b.input((2,), "int32")
    shape = b.tensor((3,), "int32")
    b.op("SHAPE", [x], [shape], b.options("ShapeOptions", outType=2))
    y = b.tensor((5,), "int32")
    b.op("CONCATENATION", [shape, n], [y], b.options("ConcatenationOptions", axis=0))
    return b.build([y])


def fill_model(constant_value: bool) -> bytes:
    """FILL of a run-time scalar, or of a constant (folded) joined with the input."""
    b = ModelBuilder()
    x = b.input((2, 3), "int8", 0.05, 3)
    dims = b.const(np.array([2, 3], np.int32), "int32")
    value = b.const(np.array(-9, np.int8), "int8", 0.05, 3) if constant_value else b.input((), "int8", 0.05, 3)
    filled = b.tensor((2, 3), "int8", 0.05, 3)
    b.op("FILL", [dims, value], [filled], version=3)
    y = b.tensor((4, 3), "int8", 0.05, 3)
    b.op("CONCATENATION", [filled, x], [y], b.options("ConcatenationOptions", axis=0))
    return b.build([y])


CASES = [
    Case("SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE", chain_model),
    Case("SHAPE folded, CONCATENATION of int32 at run time", int32_activation_model),
    Case("FILL of a run-time value", lambda: fill_model(False)),
    Case("FILL of a constant, folded", lambda: fill_model(True)),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_folding(case):
    check(case)


def lowered(model: bytes, tmp_path: Path):
    path = tmp_path / "m.tflite"
    path.write_bytes(model)
    graph = load_graph(path)
    return graph, lower.lower_graph(graph)


def test_the_dynamic_reshape_chain_folds_to_a_view(tmp_path):
    graph, layers = lowered(chain_model(), tmp_path)
    assert [layer.op for layer in layers] == ["RESHAPE"]
    plan = planner.plan_memory(graph, kernel_registry.select_kernels(layers, []))
    model_c, _ = codegen.generate(graph, layers, plan, "test")
    assert layers[0].aliased and "tb_copy(" not in model_c and "tb_move(" not in model_c


def test_constant_fill_folds(tmp_path):
    _, layers = lowered(fill_model(True), tmp_path)
    assert [layer.op for layer in layers] == ["CONCATENATION"]


@pytest.mark.parametrize("case", mv.CASES, ids=str)
def test_fold_equals_tflite(case, tmp_path):
    """Each op's fold, given the inputs as constants, computes TFLite's outputs."""
    path = tmp_path / "m.tflite"
    path.write_bytes(case.model())
    data = make_inputs(path, 1, 7)[0]
    want, record = reference_outputs(path, [data])[0], io_record(path)
    graph = load_graph(path)
    at = 0
    for t in graph.inputs:
        tensor = graph.tensors[t]
        tensor.data = np.frombuffer(data[at:at + tensor.size_bytes], tensor.dtype).reshape(tensor.shape)
        at += tensor.size_bytes
    for op in graph.operators:
        for t, value in ops.registry()[op.op].fold(graph, op).items():
            graph.tensors[t].data = np.asarray(value)
    got = b"".join(np.ascontiguousarray(graph.tensors[t].data, graph.tensors[t].dtype).tobytes()
                   for t in graph.outputs)
    assert got == want, f"{case}: {record['outputs']}"


def error_of(model: bytes, tmp_path: Path) -> str:
    with pytest.raises(TinybuildError) as err:
        lowered(model, tmp_path)
    message = str(err.value)
    assert "\n" not in message and "\x1b" not in message
    return message


def runtime_paddings_model() -> bytes:
    b = ModelBuilder()
    x = b.input((1, 4), "int8", 0.05, 3)
    p = b.input((2, 2), "int32")
    y = b.tensor((1, 6), "int8", 0.05, 3)
    b.op("PAD", [x, p], [y])
    return b.build([y])


def two_scales_concat_model() -> bytes:
    b = ModelBuilder()
    x1, x2 = b.input((1, 4), "int8", 0.05, 3), b.input((1, 4), "int8", 0.1, 3, name="right\x1b[31m")
    y = b.tensor((1, 8), "int8", 0.05, 3)
    b.op("CONCATENATION", [x1, x2], [y], b.options("ConcatenationOptions", axis=1))
    return b.build([y])


@pytest.mark.parametrize("model, words", [
    (runtime_paddings_model, ["unsupported PAD at layer 0", "paddings computed at run time"]),
    (two_scales_concat_model, ["unsupported CONCATENATION", "right\\x1b[31m", "same scale and zero point"]),
    (lambda: mv.gather_model((3, 2), [0, 3]), ["unsupported GATHER", "index 3 outside 0..2"]),
    (lambda: mv.transpose_model((2, 3), (0, 0)), ["unsupported TRANSPOSE", "permutation [0, 0]"]),
    (lambda: mv.split_v_model((1, 6), 1, [2, 2, 3]), ["unsupported SPLIT_V", "size_splits [2, 2, 3]"]),
], ids=["run-time paddings", "concatenation of two scales", "gather index out of range",
        "bad permutation", "split sizes"])
def test_what_is_not_compiled_is_one_line(model, words, tmp_path):
    message = error_of(model(), tmp_path)
    for word in words:
        assert word in message, message
