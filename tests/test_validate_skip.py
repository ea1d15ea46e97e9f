"""Validation the user may skip (issue 11 item 3): a model TFLite's BUILTIN_REF
interpreter cannot run (ELU: TF 2.21 registers no reference ELU kernel) stops at
the reference step with one line naming what TFLite refused and `validate=no`;
with validate=no the firmware is built, sized and simulated and every report
says "validation skipped (validate=no)", never "matches"."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tbtest import ROOT
from tinybuild import regress, report
from tinybuild.errors import TinybuildError
from tinybuild.pipeline import VALIDATION_SKIPPED
from tinybuild.reference import refused
from tinybuild.scons_tool import comparison_table

SCONS = Path(sys.executable).with_name("scons")
SKIPPED = {"match": None, "validate": "no", "skipped": VALIDATION_SKIPPED, "inputs": 0,
           "simulated_inputs": 4, "reference": None}


def conv_elu() -> bytes:
    """A tiny int8 CONV_2D + ELU model (ELU's output name carries an escape code)."""
    pytest.importorskip("tensorflow")
    sys.path.insert(0, str(ROOT / "tests" / "ops"))
    from tflite_builder import ModelBuilder
    b = ModelBuilder()
    x = b.input((1, 4, 4, 2), "int8", 0.05, -3)
    w = b.const(np.arange(-8, 8, dtype=np.int8).reshape(2, 2, 2, 2), "int8", scale=[0.01, 0.02],
                zero_point=[0, 0], axis=0)
    bias = b.const(np.array([3, -40], np.int32), "int32", scale=[5e-4, 1e-3], zero_point=[0, 0])
    y = b.tensor((1, 4, 4, 2), "int8", 0.1, 4)
    b.op("CONV_2D", [x, w, bias], [y], b.options("Conv2DOptions", padding="SAME", strideH=1,
                                                strideW=1), version=3)
    z = b.tensor((1, 4, 4, 2), "int8", 0.05, 20, name="elu\x1b[31m")
    b.op("ELU", [y], [z])
    return b.build([z])


# -- the refusal ------------------------------------------------------------------------------

def test_a_missing_reference_kernel_is_named_with_the_way_out():
    exc = ValueError("Didn't find op for builtin opcode 'ELU' version '1'. An older version of this "
                     "builtin might be supported.\nRegistration failed.")
    line = refused(Path("m.tflite"), exc)
    assert "\n" not in line
    assert "(BUILTIN_REF) have no ELU (version 1)" in line and "validate=no" in line


def test_a_custom_op_name_from_the_model_is_escaped():
    line = refused(Path("m.tflite"), RuntimeError("Didn't find custom op for name 'ev\x1b[2Jil'"))
    assert "custom op 'ev\\x1b[2Jil'" in line and "\x1b" not in line and "validate=no" in line


def test_an_other_refusal_is_quoted_with_the_way_out():
    line = refused(Path("m.tflite"), RuntimeError("Node number 0 (CONV_2D) failed to prepare."))
    assert "RuntimeError: Node number 0 (CONV_2D) failed to prepare." in line and "validate=no" in line


def test_tflite_refusing_elu_is_one_line(tmp_path):
    from tinybuild.reference import make_inputs, reference_outputs
    path = tmp_path / "elu.tflite"
    path.write_bytes(conv_elu())
    with pytest.raises(TinybuildError, match=r"no ELU \(version 1\).*validate=no") as err:
        reference_outputs(path, make_inputs(path, 1, 1))
    assert "\n" not in str(err.value)


# -- what the reports say -----------------------------------------------------------------------

def test_summary_and_report_md_say_skipped_never_matches():
    line, row = report.validation_line(SKIPPED), report._validation_row(SKIPPED)
    for text in (line, row):
        assert VALIDATION_SKIPPED in text and "matches" not in text and "yes" not in text
    assert "at your request" in line
    assert report.validation_line({"match": True, "inputs": 4}).endswith("yes, byte for byte (4 inputs)")


def test_target_all_table_says_skipped():
    r = {"target": {"clock_hz": 168e6, "board": "B"}, "flash": {"used": 1}, "ram": {"used": 2},
         "inference": {"instructions": 3, "cycles": 4, "ms": 0.1}, "validation": SKIPPED}
    row = comparison_table("m", [("cortex-m4", r, "")]).splitlines()[-1]
    assert row.rstrip().endswith(VALIDATION_SKIPPED)


def test_regression_keeps_figures_and_says_skipped():
    rep = {"flash": {"used": 1000}, "ram": {"used": 500}, "arena": {"bytes": 400},
           "stack": {"peak_bytes": 100}, "inference": {"instructions": 10_000, "cycles": 15_000},
           "validation": SKIPPED, "layers": []}
    tolerances = {m: {"abs": 0, "rel": 0.0} for m in regress.METRICS}
    case = regress.Case("cortex-m4", Path("elu.tflite"))
    same = regress.compare(case, rep, regress.figures(rep), tolerances)
    assert same.status == "pass" and same.message == VALIDATION_SKIPPED
    grown = regress.compare(case, rep, regress.figures(rep) | {"flash": 900}, tolerances)
    assert grown.status == "regressed" and VALIDATION_SKIPPED in grown.message


# -- through SCons ------------------------------------------------------------------------------

def scons(build, *args):
    return subprocess.run([str(SCONS), "-C", str(ROOT), "-Q", f"build_dir={build}", *args],
                          capture_output=True, text=True, timeout=900)


def test_validate_takes_yes_or_no_and_is_listed_by_help(tmp_path):
    bad = scons(tmp_path, "validate=maybe")
    assert bad.returncode != 0
    errors = [l for l in bad.stderr.splitlines() if l.startswith("tinybuild: error:")]
    assert len(errors) == 1 and "validate" in errors[0] and "Traceback" not in bad.stderr
    assert "validate:" in scons(tmp_path, "-h").stdout


@pytest.mark.slow
def test_elu_stops_at_reference_then_builds_with_validate_no(tmp_path):
    model = tmp_path / "elu.tflite"
    model.write_bytes(conv_elu())
    build = tmp_path / "build"
    tdir = build / "cortex-m4" / "elu"

    refused_run = scons(build, "target=cortex-m4", f"model={model}")
    assert refused_run.returncode != 0
    errors = [l for l in refused_run.stderr.splitlines() if l.startswith("tinybuild: error:")]
    assert len(errors) == 1 and "no ELU (version 1)" in errors[0] and "validate=no" in errors[0]
    assert "Traceback" not in refused_run.stderr and not (tdir / "report.json").exists()

    skipped = scons(build, "target=cortex-m4", f"model={model}", "validate=no")
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    assert f"output      {VALIDATION_SKIPPED}: not compared with TFLite, at your request" in skipped.stdout
    assert "matches" not in skipped.stdout
    r = json.loads((tdir / "report.json").read_text())
    assert r["validation"]["validate"] == "no" and r["validation"]["match"] is None
    assert r["inference"]["instructions"] > 0 and r["flash"]["used"] > 0
    assert VALIDATION_SKIPPED in (tdir / "report.md").read_text()

    # Back to validate=yes: the refusal again, and no success left from the skipped build.
    again = scons(build, "target=cortex-m4", f"model={model}")
    assert again.returncode != 0 and not (tdir / "report.json").exists()
    assert not (tdir / "validation.json").exists()


def test_debug_layers_needs_validation(tmp_path):
    run = scons(tmp_path, "validate=no", "debug=layers")
    errors = [l for l in run.stderr.splitlines() if l.startswith("tinybuild: error:")]
    assert run.returncode != 0 and len(errors) == 1 and "validate=no skips TFLite" in errors[0]
