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
from tinybuild.onnx.qoperator import Rewrite, is_qoperator
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

    if quant not in ("int8", "int16x8", "float32"):
        raise TinybuildError(f"quant={shown(quant)}: the ONNX importer makes int8, int16x8 or float32 "
                             "models. Fix: quant=int8, quant=int16x8 or quant=float32")
    if not src.is_file():
        raise TinybuildError(f"{_p(src)}: model file not found. Fix: check the path (model=...).")
    log(f"loading {_p(src)} ...")
    model, carried = load_checked(src), {}
    if is_qoperator(model):
        model, carried = Rewrite(model, lambda where, problem, fix: TinybuildError(
            f"{_p(src)}: {where}{problem}. Fix: {fix}")).run()
    graph = Graph(src, model, carried)
    graph.check_ops()
    if graph.qdq and quant != "int8":
        raise TinybuildError(f"quant={quant}: {_p(src)} is already quantized (QuantizeLinear/"
                             "DequantizeLinear): it builds with the int8 scales it carries. Fix: leave quant= out")
    layouts = graph.input_layouts(calibration_shapes(src, Path(calibration) if calibration else None,
                                                     graph.input_names()))
    calib, calib_src = calibration_samples(src, Path(calibration) if calibration else None, layouts,
                                           num_calibration)
    count = len(next(iter(calib.values())))
    log(f"running the float model with onnxruntime on {count} samples ({_p(calib_src)}) ...")
    onnx_calib = {name: samples if layouts[name][1].perm is None
                  else samples.transpose(_inverse_batch(layouts[name][1].perm))
                  for name, samples in calib.items()}
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
    names = ", ".join(layout.name if len(layouts) == 1 else f"{shown(n)}: {layout.name}"
                      for n, (_, layout) in layouts.items())
    report.update(calibration=calib_src, input_layout=names,
                  output_layout=graph.output_layout(), source_opset=graph.opset, quant=quant)
    conv._write_report(report, report_path)
    return report


def _inverse_batch(perm) -> tuple[int, ...]:
    """The axes that turn NHWC samples [N, ...] back into the ONNX layout."""
    inv = np.argsort(perm)
    return tuple(int(a) for a in inv)


def calibration_shapes(src: Path, calibration: Path | None, names: list[str]) -> dict:
    """The sample shape (no batch) of each input's calibration data, when there is some:
    it fixes dynamic dimensions besides the batch."""
    from tinybuild import convert as conv

    one = len(names) == 1
    beside = conv.default_calibration_path(src) if one else src.with_name(f"{src.stem}_calib.npz")
    path = calibration or beside
    if not path.is_file():
        return {}
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            return {names[0]: tuple(data.shape[1:])} if one else {}
        with data:
            if one:                            # the first array, as tinybuild.convert reads it
                return {names[0]: tuple(data[data.files[0]].shape[1:])} if data.files else {}
            return {n: tuple(data[n].shape[1:]) for n in names if n in data.files}
    except Exception:                          # unreadable: the loader says what is wrong later
        return {}


def calibration_samples(src: Path, calibration: Path | None, layouts: dict,
                        n: int) -> tuple[dict, str]:
    """``{input: [N, ...]}`` in the firmware's layout and where they came from. One input:
    the .h5 rules (tinybuild.convert); several: an .npz with one array per input name
    (``calibration=`` or ``<stem>_calib.npz`` beside the model), else seeded noise."""
    from tinybuild import convert as conv

    if len(layouts) == 1:
        name, (shape, _) = next(iter(layouts.items()))
        samples, where = conv._calibration(src, calibration, shape, n)
        return {name: samples}, where
    path = calibration or src.with_name(f"{src.stem}_calib.npz")
    if calibration is None and not path.is_file():
        log(f"WARNING: no calibration data given and no {shown(path.name)} beside the model: calibrating "
            f"on {n} seeded standard-normal samples per input")
        rng = np.random.default_rng(conv.CALIB_SEED)
        return {name: rng.standard_normal((n, *shape)).astype(np.float32)
                for name, (shape, _) in layouts.items()}, "default: seeded standard normal"
    return _npz_samples(src, path, layouts, n), str(path)


def _npz_samples(src: Path, path: Path, layouts: dict, n: int) -> dict:
    expected = ", ".join(f"'{shown(name)}' [N, {', '.join(map(str, shape))}]"
                         for name, (shape, _) in layouts.items())
    fix = f"Fix: np.savez(path, **{{input name: samples}}) with {expected} (firmware layout)"
    try:
        with np.load(path) as data:
            arrays = {name: np.asarray(data[name], np.float32) for name in layouts if name in data}
    except Exception as exc:
        raise TinybuildError(f"{_p(path)}: not a readable .npz of calibration samples for the "
                             f"{len(layouts)} inputs of {_p(src)} ({type(exc).__name__}). {fix}") from None
    for name, (shape, _) in layouts.items():
        if name not in arrays or tuple(arrays[name].shape[1:]) != tuple(shape):
            got = "missing" if name not in arrays else f"shape {list(arrays[name].shape)}"
            raise TinybuildError(f"{_p(path)}: calibration samples for input '{shown(name)}': {got}. {fix}")
    counts = {len(a) for a in arrays.values()}
    if len(counts) != 1 or 0 in counts:
        raise TinybuildError(f"{_p(path)}: the inputs have different numbers of samples "
                             f"({sorted(counts)}). {fix}")
    return {name: a[:n] for name, a in arrays.items()}


def run_tflite(tf, path: Path, calib: dict) -> list[np.ndarray]:
    """TFLite BUILTIN_REF on the samples (inputs in the model's order, quantized as the
    model takes them); per output, the dequantized values per sample, flattened."""
    from tinybuild import convert as conv

    interp = conv.make_interpreter(tf, path)
    ins, outs = interp.get_input_details(), interp.get_output_details()
    rows: list[list] = [[] for _ in outs]
    for k in range(len(next(iter(calib.values())))):
        interp.reset_all_variables()
        for detail, samples in zip(ins, calib.values()):
            scale, zp = detail["quantization"]
            q = conv._quantized(samples[k], detail["dtype"], scale, zp)
            interp.set_tensor(detail["index"], q.reshape(detail["shape"]))
        interp.invoke()
        for row, detail in zip(rows, outs):
            y = interp.get_tensor(detail["index"]).astype(np.float32)
            scale, zp = detail["quantization"]
            row.append(((y - zp) * scale if scale else y).ravel())
    return [np.stack(row) for row in rows]


def _compare(graph, src: Path, dst: Path, calib: dict, onnx_calib: dict, quant: str) -> dict:
    from tinybuild import convert as conv

    count = len(next(iter(calib.values())))
    log(f"checking float (onnxruntime) vs {quant} (TFLite BUILTIN_REF) on {count} samples ...")
    tf = conv._import_tf()
    float_out = graph.float_outputs(onnx_calib)
    quant_out = run_tflite(tf, dst, calib)
    io = conv.tflite_io(dst)
    import onnx
    import onnxruntime
    report = {"source": str(src), "output": str(dst), "mode": "float" if quant == "float32" else "quantized",
              "loader": f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}",
              "input": conv._io_summary(io["inputs"][0]),
              "output_tensor": conv._io_summary(io["outputs"][0]),
              "num_samples": int(count), **conv.agreement(float_out[0], quant_out[0])}
    if len(io["inputs"]) > 1 or len(io["outputs"]) > 1:
        report["inputs"] = [dict(name=n, **conv._io_summary(t)) for n, t in zip(calib, io["inputs"])]
        report["outputs"] = [dict(name=n, **conv._io_summary(t), **conv.agreement(f, q))
                             for n, t, f, q in zip(graph.outputs, io["outputs"], float_out, quant_out)]
    log(f"wrote {_p(dst)} ({dst.stat().st_size} B): top-1 agreement {report['top1_agreement']:.3f}, "
        f"max |diff| {report['max_abs_diff']:.4g}, mean |diff| {report['mean_abs_diff']:.4g}"
        + (" (first output)" if len(float_out) > 1 else ""))
    return report
