"""Model corpora end to end through SCons: each model builds, runs in the simulator and
matches TFLite's reference byte for byte, on every board it is meant for.

* the public TinyMaix models in ../shared/models/devcorpus/tinymaix/ (skipped without
  ../shared), the nine int8 ones and the seven float32 twins (float kernels: the
  Cortex-M4F's FPU, soft float on RV32; their float SOFTMAX's expf may differ from
  glibc's in the last bit, so those match within the stated tolerance);
* tinybuild's own corpus, models/corpus/*.tflite (made by models/corpus/make_corpus.py,
  see docs/corpus.md), on cortex-m4, riscv where it fits, and esp32c3.

A model that needs an operator tinybuild does not compile yet is an expected failure
(xfail, strict) naming the operator; the mark goes away by itself when the op's
module lands in tinybuild/ops, and then the build must match.
"""
import json
from pathlib import Path

import pytest
import tflite

from tbtest import ROOT
from test_e2e import scons
from tinybuild.ops import registry

pytestmark = pytest.mark.slow

TINYMAIX = ROOT.parent / "shared" / "models" / "devcorpus" / "tinymaix"
CORPUS = ROOT / "models" / "corpus"

# The nine int8 TinyMaix models and the board each is built for (cortex-m4
# unless it does not fit there).
TINYMAIX_MODELS = {
    "cifar10_q": "cortex-m4",
    "mbnet128_0.25_q": "cortex-m4",    # fits since PAD is fused into its convolutions (75 KB arena)
    "mbnet96_0.25_q": "cortex-m4",
    "mnist_arduino_q": "cortex-m4",
    "mnist_dw_q": "cortex-m4",
    "mnist_rect_q": "cortex-m4",
    "mnist_resnet_q": "cortex-m4",
    "mnist_valid_q": "cortex-m4",
    "vww96_q": "cortex-m4",
}

# The float32 twins and the boards each is built on (the MobileNets' and VWW's float
# arenas, 147-533 KB, fit only the 4 MiB MPS2 board; cifar10_f's 34 KB arena not the
# GD32VF103's 32 KiB of RAM).
TINYMAIX_FLOAT_MODELS = {
    "cifar10_f": ("cortex-m4", "esp32c3"),
    "mnist_dw_f": ("cortex-m4", "riscv"),
    "mnist_resnet_f": ("cortex-m4", "riscv"),
    "mnist_valid_f": ("cortex-m4", "riscv"),
    "vww96_f": ("mps2-an386",),
    "mbnet96_0.25_f": ("mps2-an386",),
    "mbnet128_0.25_f": ("mps2-an386",),
}

ALL_TARGETS = ("cortex-m4", "riscv", "esp32c3")
# models/corpus/<name>.tflite -> the boards it is built for (riscv: 32 KiB of RAM).
CORPUS_MODELS = {
    "attention": ALL_TARGETS,
    "attention_conv1d": ALL_TARGETS,
    "mobilenetv3_block": ALL_TARGETS,
    "unet_decoder": ALL_TARGETS,
    "padding": ALL_TARGETS,
    "float_interface": ALL_TARGETS,
    "uint8_interface": ALL_TARGETS,
    "two_in_two_out": ALL_TARGETS,
    "split_unpack": ALL_TARGETS,
    "leaky_prelu": ALL_TARGETS,
    "conv_transpose": ALL_TARGETS,
    "argmax": ALL_TARGETS,
}
# Outputs each model has where it is not one (validation must compare all).
OUTPUTS = {"two_in_two_out": 2}
# Known gaps that are not a missing operator: model -> why it fails today
# (xfail, strict: the mark must go when the gap is closed).
KNOWN_GAPS = {
}
# A gap on one target only: (model, target) -> cause.
KNOWN_TARGET_GAPS: dict = {}   # (model, target) -> why it cannot build yet (none today)

OPERATOR_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


def operators(path: Path) -> set[str]:
    """The builtin operators a .tflite's main graph uses."""
    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    found = set()
    for i in range(graph.OperatorsLength()):
        code = model.OperatorCodes(graph.Operators(i).OpcodeIndex())
        found.add(OPERATOR_NAMES.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?"))
    return found


def expected_failure(path: Path) -> list:
    """xfail(strict) naming the operators tinybuild does not compile yet, or the
    model's known gap, if any."""
    if not path.exists():
        return []
    missing = sorted(operators(path) - set(registry()))
    if missing:
        reason = f"unsupported {', '.join(missing)} (not in tinybuild.ops yet)"
    elif path.stem in KNOWN_GAPS:
        reason = KNOWN_GAPS[path.stem]
    else:
        return []
    return [pytest.mark.xfail(strict=True, reason=reason)]


def build_and_check(model: Path, target: str, build_dir: Path, outputs: int = 1) -> dict:
    result = scons(build_dir, f"target={target}", f"model={model}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "output matches TFLite reference: yes, byte for byte (4 inputs)" in result.stdout
    report = json.loads((build_dir / target / model.stem / "report.json").read_text())
    assert report["validation"]["match"] and len(report["validation"]["outputs"]) == outputs
    assert report["inference"]["instructions"] > 0
    return report


def tinymaix_params():
    for name, target in TINYMAIX_MODELS.items():
        path = TINYMAIX / f"{name}.tflite"
        yield pytest.param(name, target, id=f"{name}-{target}", marks=expected_failure(path))


@pytest.mark.parametrize("name, target", list(tinymaix_params()))
def test_tinymaix_int8_model_matches_tflite(name, target, tmp_path):
    path = TINYMAIX / f"{name}.tflite"
    if not path.exists():
        pytest.skip(f"{path} not present (the TinyMaix models live in ../shared)")
    build_and_check(path, target, tmp_path)


def tinymaix_float_params():
    for name, targets in TINYMAIX_FLOAT_MODELS.items():
        for target in targets:
            yield pytest.param(name, target, id=f"{name}-{target}")


@pytest.mark.parametrize("name, target", list(tinymaix_float_params()))
def test_tinymaix_float_twin_matches_tflite(name, target, tmp_path):
    path = TINYMAIX / f"{name}.tflite"
    if not path.exists():
        pytest.skip(f"{path} not present (the TinyMaix models live in ../shared)")
    result = scons(tmp_path, f"target={target}", f"model={path}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "output matches TFLite reference: yes" in result.stdout
    report = json.loads((tmp_path / target / path.stem / "report.json").read_text())
    v = report["validation"]
    assert v["match"] and "float32" in report["types"]
    # Byte for byte, or within the tolerance with the difference stated: never silently.
    assert v.get("exact", True) or 0 < v["max_rel_diff"] <= v["float_tolerance"]


def corpus_params():
    for name, targets in CORPUS_MODELS.items():
        marks = expected_failure(CORPUS / f"{name}.tflite")
        for target in targets:
            gap = KNOWN_TARGET_GAPS.get((name, target))
            yield pytest.param(name, target, id=f"{name}-{target}",
                               marks=[pytest.mark.xfail(strict=True, reason=gap)] if gap else marks)


@pytest.mark.parametrize("name, target", list(corpus_params()))
def test_corpus_model_matches_tflite(name, target, tmp_path):
    build_and_check(CORPUS / f"{name}.tflite", target, tmp_path, OUTPUTS.get(name, 1))


def test_corpus_lists_every_committed_model():
    """A model added to models/corpus is built by the test above (and vice versa)."""
    committed = {p.stem for p in CORPUS.glob("*.tflite")}
    assert committed == set(CORPUS_MODELS)
    assert all(p.stat().st_size < 50_000 for p in CORPUS.glob("*.tflite"))
