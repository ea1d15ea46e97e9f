"""Loading an ONNX model and the checks before anything runs: readable, its
external data present, ``onnx.checker``, opset 9..21, standard operators only."""
from __future__ import annotations

from pathlib import Path

from tinybuild.errors import TinybuildError, shown
from tinybuild.onnx.common import p as _p
from tinybuild.onnx.qoperator import QLINEAR

OPSET_MIN, OPSET_MAX = 9, 21


def load_checked(src: Path):
    """The ModelProto with its external data, checked (onnx.checker, opset range)."""
    import onnx

    try:
        model = onnx.load(str(src), load_external_data=False)
    except Exception as exc:
        raise TinybuildError(f"{_p(src)}: not a readable ONNX model ({type(exc).__name__}: "
                             f"{shown(exc, 200)}). Fix: re-export it (torch.onnx.export, tf2onnx)") from None
    _load_external_data(src, model)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TinybuildError(f"{_p(src)}: the ONNX checker rejects the model ({shown(first, 300)}). "
                             "Fix: re-export it with a current exporter, or repair the graph") from None
    _check_opset(src, model)
    return model


def _load_external_data(src: Path, model) -> None:
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    tensors = [t for t in model.graph.initializer if uses_external_data(t)]
    for t in tensors:
        location = next((e.value for e in t.external_data if e.key == "location"), "")
        path = src.parent / location
        if not location or not path.is_file():
            raise TinybuildError(
                f"{_p(src)}: initializer '{shown(t.name)}' keeps its data in the external file "
                f"'{shown(location)}', which is not beside the model ({_p(path)} missing). Fix: put "
                "the data file beside the .onnx, or save the model with its data inside "
                "(onnx.save(model, path, save_as_external_data=False))")
    if tensors:
        try:
            load_external_data_for_model(model, str(src.parent))
        except Exception as exc:
            raise TinybuildError(f"{_p(src)}: cannot read the model's external data ({type(exc).__name__}: "
                                 f"{shown(exc, 200)}). Fix: re-save the model with its data inside") from None


def _check_opset(src: Path, model) -> None:
    opsets = {o.domain: o.version for o in model.opset_import}
    version = opsets.get("", opsets.get("ai.onnx"))
    if version is None:
        raise TinybuildError(f"{_p(src)}: the model imports no standard ONNX opset. Fix: re-export it "
                             f"with opset {OPSET_MIN}..{OPSET_MAX}")
    if not OPSET_MIN <= version <= OPSET_MAX:
        nearest = min(max(version, OPSET_MIN), OPSET_MAX)
        raise TinybuildError(f"{_p(src)}: opset {version} is outside the range tinybuild imports "
                             f"({OPSET_MIN}..{OPSET_MAX}). Fix: re-export with opset_version={nearest} "
                             "(torch.onnx.export(..., opset_version=...), tf2onnx --opset ...), or "
                             "onnx.version_converter.convert_version(model, 13)")
    others = sorted(d for d in opsets if d not in ("", "ai.onnx"))
    used = sorted({n.domain for n in model.graph.node if n.domain not in ("", "ai.onnx")
                   and not (n.domain == "com.microsoft" and n.op_type in QLINEAR)})
    if used:
        raise TinybuildError(f"{_p(src)}: the model uses operators of the domain '{shown(used[0])}' "
                             f"(opsets imported: {', '.join(shown(o) for o in others)}); tinybuild imports "
                             "standard ONNX operators only. Fix: export without custom operators")

