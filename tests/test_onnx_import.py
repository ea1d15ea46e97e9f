"""The ONNX importer (tinybuild/onnx_import.py): float ONNX graphs -> int8 / float32 .tflite.

Fast tests convert small graphs made here with onnx.helper (a PyTorch-style CNN:
NCHW, BatchNormalization, depthwise conv, Flatten before Gemm) and check the
layouts against onnxruntime exactly (quant=float32), the int8 result against the
float model, and each bad input's one-line message. Slow tests build the public
exports in ../shared/models/devcorpus/onnx2c/ through SCons on cortex-m4, simulated
and validated byte for byte against TFLite's BUILTIN_REF.
"""
import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("tensorflow")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tbtest import ROOT  # noqa: E402
from tinybuild import onnx_import, pipeline, plugins  # noqa: E402
from tinybuild.errors import TinybuildError  # noqa: E402
from tinybuild.importer import load_graph  # noqa: E402

ONNX2C = ROOT.parent / "shared" / "models" / "devcorpus" / "onnx2c"
RNG = np.random.default_rng(7)


def _w(shape, scale=0.3):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def _model(nodes, inits, x_shape, y_shape, opset=13, consts=()):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def pytorch_style_cnn(opset=13):
    """NCHW with a dynamic batch: Conv+BN+Relu, depthwise Conv+Clip(0,6), MaxPool,
    1x1 Conv, Flatten (2x2 spatial left: the NHWC order differs) and Gemm, Softmax."""
    bn = dict(bn_s=np.abs(_w(8)) + 0.5, bn_b=_w(8), bn_m=_w(8), bn_v=np.abs(_w(8)) + 0.5)
    inits = dict(w1=_w((8, 3, 3, 3)), b1=_w(8), w2=_w((8, 1, 3, 3)), b2=_w(8), w3=_w((4, 8, 1, 1)),
                 wfc=_w((5, 16)), bfc=_w(5), lo=np.array(0, np.float32), hi=np.array(6, np.float32), **bn)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["n1"], name="bn1"),
        helper.make_node("Relu", ["n1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], group=8, pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Clip", ["c2", "lo", "hi"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p", "w3"], ["c3"]),
        helper.make_node("Dropout", ["c3"], ["d"]),
        helper.make_node("Flatten", ["d"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "wfc", "bfc"], ["g"], transB=1),
        helper.make_node("Softmax", ["g"], ["y"], axis=1),
    ]
    return _model(nodes, inits, ["N", 3, 4, 4], ["N", 5], opset)


def global_pool_cnn():
    """Conv (stride 2, SAME-like padding), GlobalAveragePool, Flatten, MatMul + bias Add."""
    inits = dict(w=_w((6, 2, 3, 3)), wm=_w((6, 3)), bm=_w(3))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["gp"]),
             helper.make_node("Flatten", ["gp"], ["f"]),
             helper.make_node("MatMul", ["f", "wm"], ["m"]),
             helper.make_node("Add", ["m", "bm"], ["y"])]
    return _model(nodes, inits, [1, 2, 8, 8], [1, 3])


def _save(model, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def _convert(tmp_path, model, quant="int8", calib=None):
    src = _save(model, tmp_path / "net.onnx")
    if calib is not None:
        np.save(tmp_path / "net_calib.npy", calib)
    dst = tmp_path / "net.tflite"
    report = onnx_import.convert_onnx(src, dst, None, tmp_path / "convert.json", quant=quant)
    return dst, report


def _ops(tflite: Path) -> list[str]:
    return [op.op for op in load_graph(tflite).operators]


# -- layouts and arithmetic -----------------------------------------------------------

def test_float32_import_matches_onnxruntime_exactly_in_nhwc(tmp_path):
    """quant=float32: no quantization error, so any layout or weight-permutation slip shows."""
    dst, report = _convert(tmp_path, pytorch_style_cnn(), "float32")
    assert report["max_abs_diff"] < 1e-5 and report["top1_agreement"] == 1.0
    # BN, Relu, Clip, Dropout folded; Flatten left to FULLY_CONNECTED, its columns permuted: no TRANSPOSE
    assert _ops(dst) == ["CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "CONV_2D", "FULLY_CONNECTED",
                         "SOFTMAX"]
    graph = load_graph(dst)
    assert graph.tensors[graph.inputs[0]].shape == (1, 4, 4, 3)          # NHWC on the device


def test_int8_import_is_close_to_the_float_model_and_records_the_layout(tmp_path):
    calib = RNG.standard_normal((64, 4, 4, 3)).astype(np.float32)         # NHWC, the firmware's layout
    dst, report = _convert(tmp_path, pytorch_style_cnn(), calib=calib)
    assert report["top1_agreement"] >= 0.9 and report["max_abs_diff"] < 0.1, report
    assert report["input_layout"].startswith("NHWC") and report["source_opset"] == 13
    assert report["calibration"].endswith("net_calib.npy") and report["num_samples"] == 64
    assert json.loads((tmp_path / "convert.json").read_text())["input_layout"] == report["input_layout"]
    graph = load_graph(dst)
    conv = graph.tensors[graph.operators[0].inputs[1]]
    assert conv.dtype == "int8" and len(conv.scales) == 8                # per-channel weights
    assert "TRANSPOSE" not in _ops(dst)


def test_int16x8_import_is_close_to_the_float_model(tmp_path):
    """quant=int16x8: int16 activations (zero point 0), int8 per-channel weights, int64 biases,
    LOGISTIC/TANH/SOFTMAX at 1/32768, as TFLite's 16x8 quantizer writes them."""
    calib = RNG.standard_normal((64, 4, 4, 3)).astype(np.float32)
    dst, report = _convert(tmp_path, pytorch_style_cnn(), "int16x8", calib)
    assert report["quant"] == "int16x8" and report["top1_agreement"] >= 0.95, report
    assert report["max_abs_diff"] < 0.01, report                         # 16-bit: far closer than int8
    graph = load_graph(dst)
    conv = graph.operators[0]
    x, w, b = (graph.tensors[i] for i in conv.inputs)
    assert (x.dtype, w.dtype, b.dtype) == ("int16", "int8", "int64") and x.zero_points == (0,)
    softmax_out = graph.tensors[graph.operators[-1].outputs[0]]
    assert softmax_out.scales == (pytest.approx(1 / 32768),) and softmax_out.zero_points == (0,)


def test_int16x8_lstm_is_one_line(tmp_path):
    src = _save(pytorch_lstm(), tmp_path / "lstm.onnx")
    with pytest.raises(TinybuildError) as info:
        onnx_import.convert_onnx(src, tmp_path / "out.tflite", None, None, quant="int16x8")
    assert "16x8 LSTM is not compiled" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out.tflite").exists()


def test_global_pool_and_matmul_bias_fold(tmp_path):
    dst, report = _convert(tmp_path, global_pool_cnn(), "float32")
    assert report["max_abs_diff"] < 1e-5
    # PyTorch's padding=1 at stride 2 on 8x8 pads (1, 1); TFLite's SAME pads (0, 1): an explicit PAD
    assert _ops(dst) == ["PAD", "CONV_2D", "MEAN", "FULLY_CONNECTED"]
    _, report8 = _convert(tmp_path, global_pool_cnn())
    assert report8["top1_agreement"] >= 0.9


def test_an_nhwc_export_with_transposes_around_the_conv_keeps_none(tmp_path):
    """tf2onnx/keras2onnx style: NHWC input, Transpose to NCHW, Conv, Transpose back."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t", "w"], ["c"], pads=[0, 0, 0, 0]),
             helper.make_node("Transpose", ["c"], ["u"], perm=[0, 2, 3, 1]),
             helper.make_node("Flatten", ["u"], ["y"])]
    model = _model(nodes, dict(w=_w((2, 1, 2, 2))), ["N", 5, 5, 1], ["N", 32])
    dst, report = _convert(tmp_path, model, "float32")
    assert report["max_abs_diff"] < 1e-5 and report["input_layout"] == "as ONNX"
    assert _ops(dst) == ["CONV_2D", "RESHAPE"]


def _after_conv(tail_nodes, inits, y_shape, opset=13):
    """x [1,2,4,4] -> Conv 2->4 (3x3, SAME) -> c, then ``tail_nodes`` writing y."""
    conv = helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1])
    return _model([conv, *tail_nodes], dict(w=_w((4, 2, 3, 3)), b=_w(4), **inits), [1, 2, 4, 4], y_shape, opset)


I64 = np.int64
MORE_OPS = {
    "PRELU": lambda: _after_conv([helper.make_node("PRelu", ["c", "s"], ["y"])],
                                 dict(s=_w((4, 1, 1))), [1, 4, 4, 4]),
    "SLICE": lambda: _after_conv([helper.make_node("Slice", ["c", "st", "en", "ax"], ["y"])],
                                 dict(st=np.array([1, 1], I64), en=np.array([3, 100], I64),
                                      ax=np.array([1, 2], I64)), [1, 2, 3, 4]),
    "SPLIT_V": lambda: _after_conv([helper.make_node("Split", ["c", "sp"], ["a", "b2"], axis=1),
                                    helper.make_node("Add", ["a", "b2"], ["y"])],
                                   dict(sp=np.array([2, 2], I64)), [1, 2, 4, 4]),
    "RESIZE_NEAREST_NEIGHBOR": lambda: _after_conv(
        [helper.make_node("Resize", ["c", "", "sc"], ["y"], mode="nearest",
                          coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
        dict(sc=np.array([1, 1, 2, 2], np.float32)), [1, 4, 8, 8]),
    "RESIZE_BILINEAR": lambda: _after_conv(
        [helper.make_node("Resize", ["c", "", "sc"], ["y"], mode="linear",
                          coordinate_transformation_mode="half_pixel")],
        dict(sc=np.array([1, 1, 2, 2], np.float32)), [1, 4, 8, 8]),
    "STRIDED_SLICE": lambda: _after_conv([helper.make_node("Slice", ["c", "st", "en", "ax", "sp"], ["y"])],
                                         dict(st=np.array([0, -1], I64), en=np.array([100, -100], I64),
                                              ax=np.array([2, 3], I64), sp=np.array([2, -2], I64)),
                                         [1, 4, 2, 2]),
    "MUL/hard_sigmoid": lambda: _after_conv([helper.make_node("HardSigmoid", ["c"], ["y"], alpha=1 / 6)],
                                            {}, [1, 4, 4, 4]),
    "TRANSPOSE_CONV/same": lambda: _after_conv(      # ConvTranspose2d(4, 3, 4, stride=2, padding=1)
        [helper.make_node("ConvTranspose", ["c", "wt", "bt"], ["t"], strides=[2, 2], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["t"], ["y"])], dict(wt=_w((4, 3, 4, 4)), bt=_w(3)), [1, 3, 8, 8]),
    "TRANSPOSE_CONV/cropped": lambda: _after_conv(   # kernel 3, stride 2, padding 1, output_padding 1
        [helper.make_node("ConvTranspose", ["c", "wt"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1],
                          output_padding=[1, 1])], dict(wt=_w((4, 2, 3, 3))), [1, 2, 8, 8]),
    "CONCATENATION/grouped": lambda: _after_conv(    # groups=2 of 4 channels: split, two convs, concat
        [helper.make_node("Conv", ["c", "wg", "bg"], ["y"], group=2, pads=[1, 1, 1, 1])],
        dict(wg=_w((6, 2, 3, 3)), bg=_w(6)), [1, 6, 4, 4]),
    "RESHAPE/conv1d": lambda: conv1d_net(),
}


def conv1d_net():
    """Conv1d (N, C, L) + Relu, MaxPool1d, a grouped Conv1d, GlobalAveragePool, Gemm."""
    inits = dict(w1=_w((4, 3, 3)), b1=_w(4), w2=_w((4, 2, 3)), wfc=_w((5, 4)))
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p"], kernel_shape=[2], strides=[2]),
             helper.make_node("Conv", ["p", "w2"], ["c2"], group=2, pads=[1, 1]),
             helper.make_node("GlobalAveragePool", ["c2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "wfc"], ["y"], transB=1)]
    return _model(nodes, inits, ["N", 3, 16], ["N", 5])


@pytest.mark.parametrize("op", sorted(MORE_OPS))
def test_more_ops_match_onnxruntime_in_float32_and_close_in_int8(tmp_path, op):
    dst, report = _convert(tmp_path, MORE_OPS[op](), "float32")
    expected = op.split("/")[0]
    assert report["max_abs_diff"] < 1e-5 and expected in _ops(dst) and "TRANSPOSE" not in _ops(dst)
    _, report8 = _convert(tmp_path, MORE_OPS[op]())
    assert report8["mean_abs_diff"] < 0.05, report8


def two_in_two_out():
    """a [1, 6] through a Gemm plus b [1, 3] -> y1 (Relu); an image c [1, 2, 4, 4] through a
    Conv -> y2 (NCHW, so NHWC on the device): two inputs, two outputs, two layouts."""
    inits = dict(wa=_w((3, 6)), wc=_w((3, 2, 3, 3)))
    nodes = [helper.make_node("Gemm", ["a", "wa"], ["g"], transB=1),
             helper.make_node("Add", ["g", "b"], ["s"]),
             helper.make_node("Relu", ["s"], ["y1"]),
             helper.make_node("Conv", ["c", "wc"], ["y2"], pads=[1, 1, 1, 1])]
    value = lambda name, shape: helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)  # noqa: E731
    graph = helper.make_graph(nodes, "g2", [value("a", [1, 6]), value("b", [1, 3]), value("c", [1, 2, 4, 4])],
                              [value("y1", [1, 3]), value("y2", [1, 3, 4, 4])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _two_in_calib(n=16):
    return dict(a=RNG.standard_normal((n, 6)), b=RNG.standard_normal((n, 3)),
                c=RNG.standard_normal((n, 4, 4, 2)))          # c in the firmware's NHWC


def test_several_inputs_and_outputs_keep_their_order_and_layouts(tmp_path):
    src = _save(two_in_two_out(), tmp_path / "net.onnx")
    np.savez(tmp_path / "net_calib.npz", **_two_in_calib())
    for quant, limit in (("float32", 1e-5), ("int8", 0.1)):
        report = onnx_import.convert_onnx(src, tmp_path / "net.tflite", None, None, quant=quant)
        assert [o["name"] for o in report["outputs"]] == ["y1", "y2"]
        assert all(o["max_abs_diff"] < limit for o in report["outputs"]), report["outputs"]
    graph = load_graph(tmp_path / "net.tflite")
    assert [graph.tensors[i].shape for i in graph.inputs] == [(1, 6), (1, 3), (1, 4, 4, 2)]
    assert [graph.tensors[i].shape for i in graph.outputs] == [(1, 3), (1, 4, 4, 3)]
    assert report["calibration"].endswith("net_calib.npz") and report["num_samples"] == 16
    assert report["input_layout"] == "a: as ONNX, b: as ONNX, c: NHWC (the ONNX input is NCHW)"
    assert report["output_layout"].startswith("y1: as ONNX; y2: NHWC")


def test_calibration_for_several_inputs_missing_one_is_one_line(tmp_path):
    src = _save(two_in_two_out(), tmp_path / "net.onnx")
    calib = _two_in_calib()
    del calib["b"]
    np.savez(tmp_path / "net_calib.npz", **calib)
    message = _error(tmp_path, src)
    assert "input 'b': missing" in message and "np.savez" in message


@pytest.mark.parametrize("attrs, problem", [(dict(group=2), "group > 1"),
                                            (dict(dilations=[2, 2]), "dilations"),
                                            (dict(auto_pad="SAME_UPPER"), "auto_pad=SAME_UPPER")])
def test_a_conv_transpose_tflite_lacks_is_one_line(tmp_path, attrs, problem):
    model = _after_conv([helper.make_node("ConvTranspose", ["c", "wt"], ["y"], name="up", **attrs)],
                        dict(wt=_w((4, 2, 2, 2))), [1, "C", "H", "W"])
    message = _error(tmp_path, model)
    assert f"ConvTranspose (node 'up', #1): {problem} is not imported" in message


def test_a_resize_without_tflite_equivalent_is_one_line(tmp_path):
    model = _after_conv([helper.make_node("Resize", ["c", "", "sc"], ["y"], mode="cubic")],
                        dict(sc=np.array([1, 1, 2, 2], np.float32)), [1, 4, 8, 8])
    assert "Resize mode=cubic" in _error(tmp_path, model)


def test_a_shape_gather_unsqueeze_concat_chain_folds(tmp_path):
    """torch.onnx's old flatten: Reshape(c, Concat(Unsqueeze(Gather(Shape(c), 0)), [-1]))."""
    tail = [helper.make_node("Shape", ["c"], ["shp"]),
            helper.make_node("Gather", ["shp", "zero"], ["n"], axis=0),
            helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
            helper.make_node("Cast", ["n1"], ["n2"], to=TensorProto.INT64),
            helper.make_node("Concat", ["n2", "minus1"], ["target"], axis=0),
            helper.make_node("Reshape", ["c", "target"], ["f"]),
            helper.make_node("Gemm", ["f", "wg"], ["y"], transB=1)]
    model = _after_conv(tail, dict(zero=np.array(0, I64), ax0=np.array([0], I64),
                                   minus1=np.array([-1], I64), wg=_w((3, 64))), [1, 3])
    dst, report = _convert(tmp_path, model, "float32")
    assert report["max_abs_diff"] < 1e-5 and _ops(dst) == ["CONV_2D", "FULLY_CONNECTED"]


def test_the_plugin_registers_the_onnx_importer():
    found = plugins.collect(plugins.make_plugin_manager(), "tinybuild_model_importers")
    assert any(m.get(".onnx") is onnx_import.convert_onnx for _, m in found)


def test_the_convert_signature_holds_every_module_of_the_onnx_package():
    """An edit to any tinybuild/onnx/*.py converts an .onnx model again (no stale .tflite)."""
    import inspect
    listed = getattr(inspect.getmodule(onnx_import.convert_onnx), "SOURCE_FILES", ())
    package = ROOT / "tinybuild" / "onnx"
    assert set(listed) == set(package.glob("*.py")) and package / "ops.py" in set(listed)


# -- already quantized: QDQ models from onnxruntime.quantization ------------------------

def qdq_model(tmp_path, per_channel=True, fmt="QDQ"):
    """pytorch_style_cnn quantized by onnxruntime's quantize_static (QDQ format, or
    QOperator: QLinearConv, QGemm, QLinearSoftmax; uint8 activations, int8 weights)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Samples(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(3)
            self.samples = iter([{"x": rng.standard_normal((1, 3, 4, 4)).astype(np.float32)}
                                 for _ in range(32)])

        def get_next(self):
            return next(self.samples, None)

    float_path = _save(pytorch_style_cnn(), tmp_path / "float.onnx")
    qdq_path = tmp_path / f"{fmt.lower()}.onnx"
    quantize_static(str(float_path), str(qdq_path), Samples(), quant_format=getattr(QuantFormat, fmt),
                    per_channel=per_channel, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return qdq_path


@pytest.mark.parametrize("per_channel", [True, False])
def test_a_qdq_model_keeps_the_scales_and_weights_it_carries(tmp_path, per_channel):
    src = qdq_model(tmp_path, per_channel)
    dst = tmp_path / "qdq.tflite"
    report = onnx_import.convert_onnx(src, dst, None, None)
    assert report["top1_agreement"] >= 0.9, report          # vs onnxruntime running the QDQ model
    q = onnx.load(str(src))
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    graph = load_graph(dst)
    c3 = next(t for t in graph.tensors if t.name == "c3")  # the 1x1 conv: nothing folded into it
    assert c3.scales == (pytest.approx(float(inits["c3_scale"])),)
    assert inits["c3_zero_point"].dtype == np.uint8
    assert c3.zero_points == (int(inits["c3_zero_point"]) - 128,)          # uint8 -> int8, same values
    conv3 = next(op for op in graph.operators if op.outputs == [c3.index])
    weights = graph.tensors[conv3.inputs[1]]
    assert np.array_equal(weights.data, inits["w3_quantized"].transpose(0, 2, 3, 1))
    assert weights.scales == pytest.approx(tuple(np.ravel(inits["w3_scale"])))   # 4 scales, or 1
    assert _ops(dst) == ["CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "CONV_2D", "FULLY_CONNECTED",
                         "SOFTMAX"]


@pytest.mark.parametrize("per_channel", [True, False])
def test_a_qoperator_model_keeps_the_scales_and_weights_it_carries(tmp_path, per_channel):
    src = qdq_model(tmp_path, per_channel, "QOperator")
    q = onnx.load(str(src))
    assert {"QLinearConv", "QGemm", "QLinearSoftmax"} <= {n.op_type for n in q.graph.node}
    dst = tmp_path / "qop.tflite"
    report = onnx_import.convert_onnx(src, dst, None, None)
    assert report["top1_agreement"] >= 0.9 and report["mean_abs_diff"] < 0.02, report   # vs onnxruntime
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    graph = load_graph(dst)
    assert _ops(dst) == ["CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "CONV_2D", "FULLY_CONNECTED",
                         "SOFTMAX"]
    conv3 = graph.operators[3]
    out, weights, bias = (graph.tensors[i] for i in (conv3.outputs[0], *conv3.inputs[1:3]))
    assert out.scales == (pytest.approx(float(inits["c3_scale"])),)
    assert out.zero_points == (int(inits["c3_zero_point"]) - 128,)          # uint8 -> int8
    assert np.array_equal(weights.data, inits["w3_quantized"].transpose(0, 2, 3, 1))
    assert weights.scales == pytest.approx(tuple(np.ravel(inits["w3_scale"])))
    if "b3_quantized" in inits:
        assert np.array_equal(bias.data, inits["b3_quantized"])
    fc = graph.operators[4]
    nhwc_columns = np.arange(16).reshape(1, 4, 2, 2).transpose(0, 2, 3, 1).ravel()   # Flatten of NHWC
    assert np.array_equal(graph.tensors[fc.inputs[1]].data, inits["wfc_quantized"][:, nhwc_columns])
    assert np.array_equal(graph.tensors[fc.inputs[2]].data, inits["bfc_quantized"])   # int32 bias kept


def test_a_qoperator_model_with_a_quantized_output_is_one_line(tmp_path):
    src = qdq_model(tmp_path, True, "QOperator")
    model = onnx.load(str(src))
    last = model.graph.node[-1]
    assert last.op_type == "DequantizeLinear"
    model.graph.node.remove(last)
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info(last.input[0], TensorProto.UINT8, [1, 5]))
    assert "is quantized (int8/uint8)" in _error(tmp_path, model)


def test_a_qdq_model_is_not_made_float(tmp_path):
    src = qdq_model(tmp_path)
    with pytest.raises(TinybuildError) as info:
        onnx_import.convert_onnx(src, tmp_path / "out.tflite", None, None, quant="float32")
    assert "already quantized" in str(info.value) and "\n" not in str(info.value)


# -- bad input: one line each, nothing left on disk -----------------------------------

def _error(tmp_path, model_or_path) -> str:
    src = model_or_path if isinstance(model_or_path, Path) else _save(model_or_path, tmp_path / "bad.onnx")
    with pytest.raises(TinybuildError) as info:
        onnx_import.convert_onnx(src, tmp_path / "out.tflite", None, None)
    message = str(info.value)
    assert "\n" not in message and "Fix:" in message and "Traceback" not in message
    assert not (tmp_path / "out.tflite").exists()
    return message


def _relu_model(opset=13, x_shape=(1, 4)):
    return _model([helper.make_node("Relu", ["x"], ["y"])], {}, list(x_shape), list(x_shape), opset)


def test_a_model_the_checker_rejects(tmp_path):
    model = _relu_model()
    model.graph.node[0].input[0] = "nowhere"
    assert "ONNX checker rejects" in _error(tmp_path, model)


@pytest.mark.parametrize("opset", [8, 22])
def test_an_opset_outside_9_to_21(tmp_path, opset):
    message = _error(tmp_path, _relu_model(opset))
    assert f"opset {opset} is outside" in message and "9..21" in message


def test_an_unsupported_operator_is_named_with_its_node_escaped(tmp_path):
    model = _model([helper.make_node("Relu", ["x"], ["r"]),
                    helper.make_node("Erf", ["r"], ["y"], name="evil\nname\x1b[2J")], {}, [1, 4], [1, 4])
    message = _error(tmp_path, model)
    assert "Erf (node 'evil\\x0aname\\x1b[2J', #1)" in message


def pytorch_gru(hidden=6, features=5, steps=4, **gru_attrs):
    """nn.GRU(batch_first=True) -> last hidden state -> Linear, as torch.onnx exports it
    (linear_before_reset=1): Transpose, GRU (W/R/B), Squeeze of Y_h, Gemm."""
    attrs = {"linear_before_reset": 1, **gru_attrs}
    inits = dict(W=_w((1, 3 * hidden, features)), R=_w((1, 3 * hidden, hidden)), B=_w((1, 6 * hidden), 0.1),
                 sq=np.array([0], I64), wl=_w((3, hidden)))
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
             helper.make_node("GRU", ["xt", "W", "R", "B"], ["", "Y_h"], name="gru", hidden_size=hidden, **attrs),
             helper.make_node("Squeeze", ["Y_h", "sq"], ["h"]),
             helper.make_node("Gemm", ["h", "wl"], ["y"], transB=1)]
    return _model(nodes, inits, [1, steps, features], [1, 3])


def test_a_pytorch_gru_is_unrolled_and_matches_onnxruntime(tmp_path):
    dst, report = _convert(tmp_path, pytorch_gru(), "float32")
    assert report["max_abs_diff"] < 1e-5, report
    ops = _ops(dst)
    assert ops.count("FULLY_CONNECTED") == 4 + 3 + 1 and ops.count("TANH") == 4 and "TRANSPOSE" not in ops
    _, report = _convert(tmp_path, pytorch_gru(), calib=RNG.standard_normal((64, 4, 5)).astype(np.float32))
    assert report["mean_abs_diff"] < 0.03, report


@pytest.mark.parametrize("attrs, problem", [(dict(linear_before_reset=0), "linear_before_reset=0"),
                                            (dict(direction="reverse"), "direction=reverse")])
def test_a_gru_form_not_unrolled_is_one_line(tmp_path, attrs, problem):
    message = _error(tmp_path, pytorch_gru(**attrs))
    assert f"GRU (node 'gru', #1): {problem} is not imported for GRU" in message


def pytorch_lstm(hidden=8, features=5, steps=6, **lstm_attrs):
    """nn.LSTM(batch_first=True) + nn.Linear on every step, as torch.onnx exports it:
    Transpose to [T, B, I], LSTM (W/R/B), Squeeze of the direction axis, Transpose back, MatMul."""
    inits = dict(W=_w((1, 4 * hidden, features)), R=_w((1, 4 * hidden, hidden)), B=_w((1, 8 * hidden), 0.1),
                 sq=np.array([1], I64), wl=_w((hidden, 4)))
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
             helper.make_node("LSTM", ["xt", "W", "R", "B"], ["Y", "Y_h", "Y_c"], name="lstm",
                              hidden_size=hidden, **lstm_attrs),
             helper.make_node("Squeeze", ["Y", "sq"], ["Ys"]),
             helper.make_node("Transpose", ["Ys"], ["Yb"], perm=[1, 0, 2]),
             helper.make_node("MatMul", ["Yb", "wl"], ["y"])]
    return _model(nodes, inits, [1, steps, features], [1, steps, 4])


def test_a_pytorch_lstm_matches_onnxruntime_and_is_one_tflite_lstm(tmp_path):
    dst, report = _convert(tmp_path, pytorch_lstm(), "float32")
    assert report["max_abs_diff"] < 1e-5, report
    assert _ops(dst)[0] == "UNIDIRECTIONAL_SEQUENCE_LSTM" and "TRANSPOSE" not in _ops(dst)
    dst, report = _convert(tmp_path, pytorch_lstm(), calib=RNG.standard_normal((64, 6, 5)).astype(np.float32))
    assert report["mean_abs_diff"] < 0.02, report
    graph = load_graph(dst)
    lstm = graph.operators[0]
    assert len(lstm.intermediates) == 5 and not lstm.options["TimeMajor"]     # batch-major: no transpose
    cell = graph.tensors[lstm.inputs[19]]
    assert cell.dtype == "int16" and np.log2(cell.scales[0] * 32768) % 1 == 0   # a power of two
    assert [graph.tensors[lstm.inputs[i]].dtype for i in (1, 5, 12)] == ["int8", "int8", "int32"]


def test_the_devcorpus_lstm_takes_its_length_from_the_calibration_data(tmp_path):
    """input_1 is [N, M1, 5]: the calibration samples' length fixes M1."""
    src = tmp_path / "lstm.onnx"
    src.write_bytes(_devcorpus("simple_networks_lstm_k1_b1_r1").read_bytes())
    assert "dynamic dimension 'M1' (axis 1)" in _error(tmp_path, src)
    np.save(tmp_path / "lstm_calib.npy", RNG.standard_normal((32, 7, 5)).astype(np.float32))
    report = onnx_import.convert_onnx(src, tmp_path / "lstm.tflite", None, None, quant="float32")
    assert report["max_abs_diff"] < 1e-5 and report["input"]["shape"] == [1, 7, 5]
    report = onnx_import.convert_onnx(src, tmp_path / "lstm.tflite", None, None)
    assert report["mean_abs_diff"] < 0.02, report


@pytest.mark.parametrize("attrs, problem", [(dict(direction="bidirectional"), "direction=bidirectional"),
                                            (dict(clip=3.0), "clip"),
                                            (dict(activations=["Relu", "Tanh", "Tanh"]), "activations")])
def test_an_lstm_tflite_lacks_is_one_line(tmp_path, attrs, problem):
    model = pytorch_lstm(**attrs)
    message = _error(tmp_path, model)
    assert f"LSTM (node 'lstm', #1): {problem}" in message and "is not imported for LSTM" in message


def test_a_dynamic_dimension_besides_the_batch(tmp_path):
    message = _error(tmp_path, _relu_model(x_shape=("N", "T", 5)))
    assert "input 'x' has a dynamic dimension 'T' (axis 1)" in message and "fixed input shape" in message


def test_external_data_whose_file_is_missing(tmp_path):
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], dict(w=_w((64, 64))), [1, 64], [1, 64])
    src = tmp_path / "ext.onnx"
    onnx.save(model, str(src), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.data", size_threshold=0)
    (tmp_path / "ext.data").unlink()
    message = _error(tmp_path, src)
    assert "initializer 'w'" in message and "'ext.data'" in message


def test_a_file_that_is_not_onnx(tmp_path):
    src = tmp_path / "junk.onnx"
    src.write_bytes(b"\x00garbage" * 10)
    assert "not a readable ONNX model" in _error(tmp_path, src) or "checker" in _error(tmp_path, src)


def test_the_pipeline_step_reports_one_line_and_leaves_nothing(tmp_path):
    """Through tinybuild.pipeline.convert (the child process SCons uses)."""
    src = _save(_relu_model(8), tmp_path / "old.onnx")
    dst, record = tmp_path / "m" / "model.int8.tflite", tmp_path / "m" / "convert.json"
    with pytest.raises(TinybuildError) as info:
        pipeline.convert(src, dst, None, record, {".onnx": onnx_import.convert_onnx})
    assert "opset 8" in str(info.value) and "\n" not in str(info.value)
    assert not dst.exists() and not record.exists()


# -- the public exports, end to end -----------------------------------------------------

DEVCORPUS = ["atmega_mnist_mnist.simplified", "mnist_pytorch", "simple_networks_conv_k2_maxpool_k2",
             "tfl_helloworld_model", "velardo_lesson14", "velardo_lesson9"]


@pytest.fixture(scope="module")
def shared_build(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx_build")


def _devcorpus(name: str) -> Path:
    path = ONNX2C / f"{name}.onnx"
    if not path.exists():
        pytest.skip(f"{path} not present (the onnx2c exports live in ../shared)")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("name", DEVCORPUS)
def test_devcorpus_export_builds_and_matches_tflite(shared_build, name):
    from test_e2e import scons
    result = scons(shared_build, "target=cortex-m4", f"model={_devcorpus(name)}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "output matches TFLite reference: yes, byte for byte" in result.stdout
    conv = json.loads((shared_build / "models" / name / "convert.json").read_text())
    assert conv["top1_agreement"] >= 0.9 and conv["source_opset"] in (9, 11, 12)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["riscv", "esp32c3"])
@pytest.mark.parametrize("name", ["atmega_mnist_mnist.simplified", "mnist_pytorch"])
def test_devcorpus_pytorch_exports_on_the_riscv_boards(shared_build, name, target):
    from test_e2e import scons
    result = scons(shared_build, f"target={target}", f"model={_devcorpus(name)}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "output matches TFLite reference: yes, byte for byte" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("target", ["cortex-m4", "riscv", "esp32c3"])
def test_devcorpus_lstm_builds_and_matches_tflite(tmp_path, target):
    from test_e2e import scons
    src = tmp_path / "lstm_k1.onnx"
    src.write_bytes(_devcorpus("simple_networks_lstm_k1_b1_r1").read_bytes())
    np.save(tmp_path / "lstm_k1_calib.npy", RNG.standard_normal((32, 8, 5)).astype(np.float32))
    result = scons(tmp_path / "build", f"target={target}", f"model={src}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "output matches TFLite reference: yes, byte for byte" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("target", ["cortex-m4", "riscv", "esp32c3"])
def test_a_pytorch_gru_builds_unrolled_and_matches_tflite(tmp_path, target):
    from test_e2e import scons
    src = _save(pytorch_gru(), tmp_path / "torch_gru.onnx")
    np.save(tmp_path / "torch_gru_calib.npy", RNG.standard_normal((32, 4, 5)).astype(np.float32))
    result = scons(tmp_path / "build", f"target={target}", f"model={src}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "output matches TFLite reference: yes, byte for byte" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("target", ["cortex-m4", "esp32c3"])
def test_a_pytorch_lstm_builds_and_matches_tflite(tmp_path, target):
    from test_e2e import scons
    src = _save(pytorch_lstm(), tmp_path / "torch_lstm.onnx")
    np.save(tmp_path / "torch_lstm_calib.npy", RNG.standard_normal((32, 6, 5)).astype(np.float32))
    result = scons(tmp_path / "build", f"target={target}", f"model={src}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "output matches TFLite reference: yes, byte for byte" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("target", ["cortex-m4", "esp32c3"])
def test_pytorch_style_cnn_builds_in_16x8_and_matches_tflite(tmp_path, target):
    from test_e2e import scons
    model = _save(pytorch_style_cnn(), tmp_path / "torch16.onnx")
    np.save(tmp_path / "torch16_calib.npy", RNG.standard_normal((32, 4, 4, 3)).astype(np.float32))
    result = scons(tmp_path / "build", f"target={target}", f"model={model}", "quant=int16x8")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "output matches TFLite reference: yes, byte for byte" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("target", ["cortex-m4", "riscv", "esp32c3"])
def test_pytorch_style_cnn_builds_on_each_board_and_matches_tflite(tmp_path, target):
    """NCHW input, BatchNormalization, depthwise, Flatten before Gemm: no TRANSPOSE on the
    device, the firmware's NHWC bytes identical to TFLite's reference, the layout reported."""
    from test_e2e import scons
    model = _save(pytorch_style_cnn(), tmp_path / "torchish.onnx")
    np.save(tmp_path / "torchish_calib.npy", RNG.standard_normal((32, 4, 4, 3)).astype(np.float32))
    result = scons(tmp_path / "build", f"target={target}", f"model={model}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "output matches TFLite reference: yes, byte for byte" in result.stdout
    report = json.loads((tmp_path / "build" / target / "torchish" / "report.json").read_text())
    assert "TRANSPOSE" not in [layer["op"] for layer in report["layers"]]
    assert report["conversion"]["input_layout"].startswith("NHWC")
    assert "| input layout | NHWC" in (tmp_path / "build" / target / "torchish" / "report.md").read_text()
    header = (tmp_path / "build" / target / "torchish" / "model.h").read_text()
    assert '#define TB_INPUT_LAYOUT "NHWC"' in header and "the ONNX input is NCHW" in header


# -- the ONNX route costs nothing extra: kws.h5 against its PyTorch-style ONNX twin --------

def _same_pads(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def keras_to_onnx_nchw(model, opset=13):
    """The Keras model as PyTorch would export it: NCHW, Conv+BatchNormalization+Relu
    nodes, Gemm at the end (Conv2D, DepthwiseConv2D, BatchNormalization, Activation,
    Add, Dropout, AveragePooling2D, Flatten, Dense, Softmax only; functional graphs too)."""
    nodes, inits = [], {}
    names = {model.layers[0].name: "x"}
    hw = {"x": tuple(int(d) for d in model.input_shape[1:3])}
    for i, layer in enumerate(model.layers[1:]):
        inbound = layer._inbound_nodes[0].inbound_layers
        ins = [names[lay.name] for lay in (inbound if isinstance(inbound, list) else [inbound])]
        out = names[layer.name] = f"t{i}"
        hw[out] = hw[ins[0]]
        _export_layer(layer, i, ins, out, nodes, inits, hw)
    nodes[-1].output[0] = "y"
    h, w = hw["x"]
    return _model(nodes, inits, ["N", int(model.input_shape[3]), h, w],
                  ["N", int(model.output_shape[-1])], opset)


def _export_layer(layer, i, ins, out, nodes, inits, hw):
    kind, x = type(layer).__name__, ins[0]
    weights = [np.asarray(v, np.float32) for v in layer.get_weights()]
    activation = getattr(getattr(layer, "activation", None), "__name__", "linear")
    last = out if activation == "linear" or kind == "Activation" else f"{out}_pre"
    if kind in ("Conv2D", "DepthwiseConv2D"):
        (kh, kw), (sh, sw), (h, w) = layer.kernel_size, layer.strides, hw[x]
        (pt, pb), (pl, pr) = ((_same_pads(h, kh, sh), _same_pads(w, kw, sw))
                              if layer.padding == "same" else ((0, 0), (0, 0)))
        k = weights[0]
        kernel = k.transpose(3, 2, 0, 1) if kind == "Conv2D" else k.transpose(2, 3, 0, 1).reshape(-1, 1, kh, kw)
        inits[f"w{i}"] = kernel
        inits[f"b{i}"] = weights[1] if len(weights) > 1 else np.zeros(kernel.shape[0], np.float32)
        nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [last],
                                      group=1 if kind == "Conv2D" else k.shape[2], kernel_shape=[kh, kw],
                                      strides=[sh, sw], pads=[pt, pl, pb, pr]))
        hw[out] = ((h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1)
    elif kind == "BatchNormalization":
        bn = [f"{n}{i}" for n in ("g", "be", "m", "v")]
        inits.update(zip(bn, weights))
        nodes.append(helper.make_node("BatchNormalization", [x, *bn], [out], epsilon=layer.epsilon))
    elif kind == "Activation" and activation == "relu":
        nodes.append(helper.make_node("Relu", [x], [out]))
    elif kind == "Add":
        nodes.append(helper.make_node("Add", ins, [out]))
    elif kind == "Dropout":
        nodes.append(helper.make_node("Dropout", [x], [out]))
    elif kind == "AveragePooling2D":
        (ph, pw), (sh, sw), (h, w) = layer.pool_size, layer.strides, hw[x]
        nodes.append(helper.make_node("AveragePool", [x], [out], kernel_shape=[ph, pw], strides=[sh, sw]))
        hw[out] = ((h - ph) // sh + 1, (w - pw) // sw + 1)
    elif kind == "Flatten":
        nodes.append(helper.make_node("Flatten", [x], [out]))
    elif kind == "Dense":
        inits[f"w{i}"], inits[f"b{i}"] = weights
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [last]))
    elif kind == "Softmax":
        nodes.append(helper.make_node("Softmax", [x], [out], axis=-1))
    else:
        raise ValueError(f"keras_to_onnx_nchw: {kind} is not exported")
    if last != out:
        op = {"relu": "Relu", "softmax": "Softmax"}[activation]
        nodes.append(helper.make_node(op, [last], [out], **({"axis": -1} if op == "Softmax" else {})))


TWINS = {"kws": ROOT / "models" / "kws.h5",
         "pretrainedResnet": ROOT.parent / "shared" / "models" / "mlperf_tiny" / "pretrainedResnet.h5"}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TWINS))
def test_the_onnx_route_costs_what_the_keras_route_costs(tmp_path, name):
    """KWS and ResNet-8 (Keras) and their NCHW ONNX twins on cortex-m4: all match TFLite, no
    TRANSPOSE, flash and instructions within 1% (TF's converter and tinybuild's quantizer may
    round a scale differently: measured equal flash, instructions within 210 of 14 M)."""
    import tf_keras
    from test_e2e import scons
    if not TWINS[name].exists():
        pytest.skip(f"{TWINS[name]} not present")
    keras_model = tf_keras.models.load_model(str(TWINS[name]), compile=False)
    onnx_path = _save(keras_to_onnx_nchw(keras_model), tmp_path / f"{name}_onnx.onnx")
    calib = TWINS[name].with_name(f"{name}_calib.npy")
    if calib.exists():
        (tmp_path / f"{name}_onnx_calib.npy").write_bytes(calib.read_bytes())
    build = tmp_path / "build"
    figures = {}
    for model, stem in ((onnx_path, f"{name}_onnx"), (TWINS[name], name)):
        result = scons(build, "target=cortex-m4", f"model={model}")
        assert result.returncode == 0, result.stderr[-2000:]
        assert "output matches TFLite reference: yes, byte for byte" in result.stdout
        figures[stem] = json.loads((build / "cortex-m4" / stem / "report.json").read_text())
    onnx_r, keras_r = figures[f"{name}_onnx"], figures[name]
    assert "TRANSPOSE" not in [layer["op"] for layer in onnx_r["layers"]]
    assert len(onnx_r["layers"]) == len(keras_r["layers"])
    assert abs(onnx_r["flash"]["used"] - keras_r["flash"]["used"]) <= 0.01 * keras_r["flash"]["used"]
    assert abs(onnx_r["inference"]["instructions"] - keras_r["inference"]["instructions"]) \
        <= 0.01 * keras_r["inference"]["instructions"]
    assert onnx_r["conversion"]["top1_agreement"] >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_a_qdq_model_builds_and_matches_tflite(tmp_path, per_channel, fmt):
    from test_e2e import scons
    src = qdq_model(tmp_path, per_channel, fmt)
    result = scons(tmp_path / "build", "target=cortex-m4", f"model={src}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "output matches TFLite reference: yes, byte for byte" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("op", sorted(MORE_OPS))
def test_more_ops_build_and_match_tflite(tmp_path, op):
    from test_e2e import scons
    src = _save(MORE_OPS[op](), tmp_path / f"{op.lower().replace('/', '_')}.onnx")
    result = scons(tmp_path / "build", "target=cortex-m4", f"model={src}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "output matches TFLite reference: yes, byte for byte" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("target", ["cortex-m4", "esp32c3"])
def test_several_inputs_and_outputs_build_and_match_tflite(tmp_path, target):
    from test_e2e import scons
    src = _save(two_in_two_out(), tmp_path / "two.onnx")
    np.savez(tmp_path / "two_calib.npz", **_two_in_calib())
    result = scons(tmp_path / "build", f"target={target}", f"model={src}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "output matches TFLite reference: yes, byte for byte" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("target", ["riscv", "esp32c3"])
def test_a_conv1d_net_builds_and_matches_tflite_on_the_riscv_boards(tmp_path, target):
    from test_e2e import scons
    src = _save(conv1d_net(), tmp_path / "conv1d.onnx")
    result = scons(tmp_path / "build", f"target={target}", f"model={src}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "output matches TFLite reference: yes, byte for byte" in result.stdout
