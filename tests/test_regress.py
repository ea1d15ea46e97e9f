"""Regression comparison, manifest validation, sharding and the report files."""
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tinybuild import regress
from tinybuild.errors import TinybuildError


def _report(flash=1000, ram=500, arena=400, stack=100, instructions=10_000, cycles=15_000, match=True):
    return {"flash": {"used": flash}, "ram": {"used": ram}, "arena": {"bytes": arena},
            "stack": {"peak_bytes": stack}, "inference": {"instructions": instructions, "cycles": cycles},
            "validation": {"match": match},
            "layers": [{"index": 0, "op": "CONV_2D", "cycles": cycles}]}


def _manifest(tmp_path, body):
    (tmp_path / "m.tflite").write_bytes(b"x")
    path = tmp_path / "regress.toml"
    path.write_text(body)
    return path


BASIC = """
[defaults]
targets = ["cortex-m4"]
[tolerances]
instructions = { rel = 0.01 }
arena = { abs = 0 }
[[models]]
path = "m.tflite"
"""


def test_manifest_loads_with_defaults(tmp_path):
    m = regress.load_manifest(_manifest(tmp_path, BASIC), {"cortex-m4"})
    assert [c.key for c in m.cases] == ["cortex-m4/m"]
    assert m.tolerances["instructions"] == {"abs": 0, "rel": 0.01}
    assert m.tolerances["flash"] == {"abs": 0, "rel": 0.0}


@pytest.mark.parametrize("body, message", [
    (BASIC.replace('["cortex-m4"]', '["z80"]'), "unknown target 'z80'"),
    (BASIC.replace("m.tflite", "missing.tflite"), "missing.tflite not found"),
    (BASIC.replace("rel = 0.01", "rel = -1"), "instructions.rel must be a number >= 0"),
    (BASIC.replace("rel = 0.01", "percent = 1"), "tolerance for instructions must look like"),
    (BASIC.replace("instructions =", "latency_ms ="), "unknown metric 'latency_ms'"),
    ("[[models]]\npath = 'm.tflite'\n[[models]]\ntargets = []\n", "has no path"),
    ("this is = = not toml", "not valid TOML"),
    (BASIC + 'kernels = ["fast"]\n', "kernels for m.tflite must be a list of optimized / reference"),
    (BASIC + 'quant = ["int4"]\n', "quant for m.tflite must be a list of int8 / int16x8 / float32"),
])
def test_manifest_errors_name_the_problem(tmp_path, body, message):
    with pytest.raises(TinybuildError, match=message):
        regress.load_manifest(_manifest(tmp_path, body), {"cortex-m4"})


def test_a_model_may_run_with_both_kernel_sets(tmp_path):
    body = BASIC + 'kernels = ["optimized", "reference"]\n'
    m = regress.load_manifest(_manifest(tmp_path, body), {"cortex-m4"})
    assert [c.key for c in m.cases] == ["cortex-m4/m", "cortex-m4/m-reference-kernels"]
    assert [c.kernels for c in m.cases] == ["optimized", "reference"]


def test_a_model_may_run_in_several_quantizations(tmp_path):
    body = BASIC + 'quant = ["int8", "float32"]\nkernels = ["optimized", "reference"]\n'
    m = regress.load_manifest(_manifest(tmp_path, body), {"cortex-m4"})
    assert [c.key for c in m.cases] == ["cortex-m4/m", "cortex-m4/m-reference-kernels",
                                        "cortex-m4/m-float32", "cortex-m4/m-float32-reference-kernels"]


def test_optional_missing_model_is_skipped(tmp_path):
    body = BASIC + '[[models]]\npath = "gone.tflite"\noptional = true\n'
    m = regress.load_manifest(_manifest(tmp_path, body), {"cortex-m4"})
    assert m.skipped == ["gone.tflite"] and len(m.cases) == 1


def test_a_failed_build_is_broken_even_with_an_old_report_on_disk():
    case = regress.Case("cortex-m4", Path("kws.tflite"))
    result = regress.compare(case, _report(), None, _tolerances(), "link: needs 2 MiB of flash")
    assert result.status == "broken" and "needs 2 MiB" in result.message


def _tolerances():
    return {m: {"abs": 0, "rel": 0.0} for m in regress.METRICS} | {"instructions": {"abs": 0, "rel": 0.01}}


def test_a_slower_kernel_fails_and_is_named():
    case = regress.Case("cortex-m4", Path("kws.tflite"))
    base = regress.figures(_report())
    r = regress.compare(case, _report(instructions=10_200, cycles=15_300), base, _tolerances())
    assert r.failed and r.regressions == ["instructions", "cycles"]
    assert "instructions" in r.message


def test_growth_within_tolerance_passes():
    case = regress.Case("cortex-m4", Path("kws.tflite"))
    r = regress.compare(case, _report(instructions=10_050), regress.figures(_report()), _tolerances())
    assert r.status == "pass"


def test_a_bigger_arena_fails():
    case = regress.Case("cortex-m4", Path("kws.tflite"))
    r = regress.compare(case, _report(arena=416), regress.figures(_report()), _tolerances())
    assert r.status == "regressed" and r.regressions == ["arena"]


def test_a_wrong_output_fails_even_when_faster():
    case = regress.Case("cortex-m4", Path("kws.tflite"))
    r = regress.compare(case, _report(cycles=1, match=False), regress.figures(_report()), _tolerances())
    assert r.status == "mismatch" and r.failed


def test_an_improvement_passes_and_is_shown(tmp_path):
    case = regress.Case("cortex-m4", Path("kws.tflite"))
    r = regress.compare(case, _report(cycles=12_000), regress.figures(_report()), _tolerances())
    assert r.status == "pass" and r.improvements == ["cycles"]
    m = regress.Manifest(tmp_path / "regress.toml", [case], 4, _tolerances())
    assert "12,000 ▼-3,000 -20.0%" in regress.markdown([r], m)


def test_shards_partition_the_matrix():
    cases = [regress.Case(t, Path(f"{m}.tflite")) for t in ("a", "b", "c") for m in ("x", "y", "z")]
    parts = [regress.shard(cases, f"{k}/4") for k in range(1, 5)]
    assert sorted(c.key for p in parts for c in p) == sorted(c.key for c in cases)
    assert parts == [regress.shard(cases, f"{k}/4") for k in range(1, 5)]
    with pytest.raises(TinybuildError, match="K/N"):
        regress.shard(cases, "5/4")


def test_evaluate_writes_reports_and_updates_the_baseline(tmp_path):
    m = regress.load_manifest(_manifest(tmp_path, BASIC), {"cortex-m4"})
    build = tmp_path / "build"
    (build / "cortex-m4" / "m").mkdir(parents=True)
    (build / "cortex-m4" / "m" / "report.json").write_text(json.dumps(_report()))
    baseline = tmp_path / "baseline.json"
    results = regress.evaluate(m, m.cases, build, baseline, tmp_path / "out", update_baseline=True)
    assert [r.status for r in results] == ["new"]
    assert json.loads(baseline.read_text())["cortex-m4/m"]["instructions"] == 10_000
    suite = ET.parse(tmp_path / "out" / "regression.junit.xml").getroot()
    assert suite.get("tests") == "1" and suite.get("failures") == "0"
    page = (tmp_path / "out" / "regression.html").read_text()
    assert "<svg" in page and "Cycles per layer" in page

    (build / "cortex-m4" / "m" / "report.json").write_text(json.dumps(_report(flash=2000)))
    results = regress.evaluate(m, m.cases, build, baseline, tmp_path / "out")
    assert results[0].status == "regressed"
    suite = ET.parse(tmp_path / "out" / "regression.junit.xml").getroot()
    assert suite.get("failures") == "1"
    assert "**REGRESSED**" in (tmp_path / "out" / "regression.md").read_text()


def test_a_missing_report_is_a_broken_build(tmp_path):
    m = regress.load_manifest(_manifest(tmp_path, BASIC), {"cortex-m4"})
    results = regress.evaluate(m, m.cases, tmp_path / "nothing", tmp_path / "b.json", tmp_path / "out")
    assert results[0].status == "broken"
    assert ET.parse(tmp_path / "out" / "regression.junit.xml").getroot().get("errors") == "1"
