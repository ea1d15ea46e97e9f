"""The entry point: ``convert_onnx(src, dst, calibration, report_path, quant)``
loads and checks the model, observes it with onnxruntime on the calibration
samples, prepares the graph, writes the .tflite and compares the float model
(onnxruntime) with the written one (TFLite BUILTIN_REF) on those samples."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tinybuild.errors import TinybuildError, shown
from tinybuild.onnx.common import log
from tinybuild.onnx.common import p as _p
from tinybuild.onnx.graph import Graph
from tinybuild.onnx.loader import load_checked
from tinybuild.onnx.writer import Writer

# the convert step's signature (tinybuild/scons_tool.py) holds these: any edit converts again
SOURCE_FILES = tuple(sorted(Path(__file__).parent.glob("*.py")))

def convert_onnx(src, dst, calibration=None, report_path=None, quant: str = "int8",
                 num_calibration: int = 100) -> dict:
    """Convert the ONNX model ``src`` into a ``.tflite`` at ``dst`` (int8, or float32
    with ``quant="float32"``); return the conversion record (also written to
    ``report_path`` when given). ``dst`` is written only when every check passed."""
    from tinybuild import convert as conv

    src, dst = Path(src), Path(dst)
    return conv.guarded("converting the ONNX model")(_convert)(src, dst, calibration, report_path,
                                                               quant, num_calibration)


def _convert(src: Path, dst: Path, calibration, report_path, quant: str, num_calibration: int) -> dict:
    from tinybuild import convert as conv

    if quant not in ("int8", "float32"):
        raise TinybuildError(f"quant={shown(quant)}: the ONNX importer makes int8 or float32 models. "
                             "Fix: quant=int8 or quant=float32")
    if not src.is_file():
        raise TinybuildError(f"{_p(src)}: model file not found. Fix: check the path (model=...).")
    log(f"loading {_p(src)} ...")
    model = load_checked(src)
    graph = Graph(src, model)
    graph.check_ops()
    if graph.qdq and quant != "int8":
        raise TinybuildError(f"quant={quant}: {_p(src)} is already quantized (QuantizeLinear/"
                             "DequantizeLinear): it builds with the int8 scales it carries. Fix: leave quant= out")
    sample_shape, layout = graph.input_sample_shape()
    calib, calib_src = conv._calibration(src, Path(calibration) if calibration else None,
                                         sample_shape, num_calibration)
    log(f"running the float model with onnxruntime on {len(calib)} samples ({_p(calib_src)}) ...")
    onnx_calib = calib if layout.perm is None else calib.transpose(_inverse_batch(layout.perm))
    graph.observe(onnx_calib)
    graph.prepare()
    conv._import_tf()        # quietly, before the writer's schema import pulls TensorFlow in
    tflite = Writer(graph, quant).write()
    dst.parent.mkdir(parents=True, exist_ok=True)
    conv._install(src, dst, tflite, quant)
    try:
        report = _compare(graph, src, dst, calib, onnx_calib, quant)
    except BaseException:
        dst.unlink(missing_ok=True)    # no model on disk without its check
        raise
    report.update(calibration=calib_src, input_layout=layout.name,
                  output_layout=graph.output_layout(), source_opset=graph.opset, quant=quant)
    conv._write_report(report, report_path)
    return report


def _inverse_batch(perm) -> tuple[int, ...]:
    """The axes that turn NHWC samples [N, ...] back into the ONNX layout."""
    inv = np.argsort(perm)
    return tuple(int(a) for a in inv)


def _compare(graph, src: Path, dst: Path, calib, onnx_calib, quant: str) -> dict:
    from tinybuild import convert as conv

    log(f"checking float (onnxruntime) vs {quant} (TFLite BUILTIN_REF) on {len(calib)} samples ...")
    tf = conv._import_tf()
    float_out = graph.float_outputs(onnx_calib)
    int8_out = conv.run_int8(tf, dst, calib)
    io = conv.tflite_io(dst)
    import onnx
    import onnxruntime
    report = {"source": str(src), "output": str(dst), "mode": "quantized" if quant == "int8" else "float",
              "loader": f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}",
              "input": conv._io_summary(io["inputs"][0]),
              "output_tensor": conv._io_summary(io["outputs"][0]),
              "num_samples": int(len(calib)), **conv.agreement(float_out, int8_out)}
    log(f"wrote {_p(dst)} ({dst.stat().st_size} B): top-1 agreement {report['top1_agreement']:.3f}, "
         f"max |diff| {report['max_abs_diff']:.4g}, mean |diff| {report['mean_abs_diff']:.4g}")
    return report

