"""Simulated regression: models x targets against a committed baseline.

A manifest (TOML) names the models, the targets each runs on, how many inputs
are validated, and per-metric tolerances. One SCons run builds every case;
:func:`evaluate` then reads each case's report.json, compares the
deterministic figures (bytes, instructions, cycles: never host time) with the
baseline and writes ``regression.md``, ``regression.html`` and JUnit XML.

Manifest format (``regress.toml``)::

    [defaults]
    targets = ["cortex-m4"]         # used by models that name none
    inputs = 4                      # validation inputs per case

    [tolerances]                    # a figure may grow by max(abs, rel * baseline)
    flash = { abs = 0, rel = 0.0 }
    instructions = { rel = 0.002 }

    [[models]]
    path = "models/kws.h5"          # relative to the manifest's folder
    targets = ["cortex-m4", "riscv"]
    optional = false                # true: skip (not fail) when the file is absent
    kernels = ["optimized"]         # and/or "reference": the portable kernels only
    quant = ["int8"]                # and/or "int16x8", "float32": what a Keras model becomes

Metrics: flash, ram, arena, stack (peak), instructions, cycles. A case fails
when a figure grows past its tolerance, when its output stops matching the
TFLite reference, or when its build breaks. Improvements pass and are shown.
"""
from __future__ import annotations

import html
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from .errors import TinybuildError

METRICS = ("flash", "ram", "arena", "stack", "instructions", "cycles")
DEFAULT_TOLERANCE = {"abs": 0, "rel": 0.0}


KERNEL_CHOICES = ("optimized", "reference")
QUANT_CHOICES = ("int8", "int16x8", "float32")


def variant_name(model_stem: str, kernels: str = "optimized", quant: str = "int8") -> str:
    """A build's folder under build/<target>/: the model's name, with a suffix
    for another quantization than int8 (``quant=``) and one for the portable
    reference kernels (``kernels=reference``)."""
    name = model_stem if quant == "int8" else f"{model_stem}-{quant}"
    return name if kernels == "optimized" else f"{name}-reference-kernels"


@dataclass(frozen=True)
class Case:
    target: str
    model: Path
    kernels: str = "optimized"
    quant: str = "int8"

    @property
    def variant(self) -> str:
        return variant_name(self.model.stem, self.kernels, self.quant)

    @property
    def key(self) -> str:
        return f"{self.target}/{self.variant}"


@dataclass
class Manifest:
    path: Path
    cases: list[Case]
    inputs: int
    tolerances: dict[str, dict]
    skipped: list[str] = field(default_factory=list)   # optional models that are absent


def load_manifest(path: Path, known_targets: set[str] | None = None) -> Manifest:
    """Parse and validate; every problem is a TinybuildError naming the fix."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise TinybuildError(f"manifest {path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise TinybuildError(f"manifest {path}: not valid TOML ({exc})") from None
    unknown = set(data) - {"defaults", "tolerances", "models"}
    if unknown:
        raise TinybuildError(f"manifest {path}: unknown section(s) {', '.join(sorted(unknown))}; "
                             "expected [defaults], [tolerances], [[models]]")
    defaults = data.get("defaults", {})
    default_targets = defaults.get("targets", ["cortex-m4"])
    inputs = defaults.get("inputs", 4)
    if not isinstance(inputs, int) or inputs < 1:
        raise TinybuildError(f"manifest {path}: defaults.inputs must be a positive integer, got {inputs!r}")
    tolerances = {m: _tolerance(path, m, data.get("tolerances", {}).get(m, DEFAULT_TOLERANCE))
                  for m in METRICS}
    for metric in data.get("tolerances", {}):
        if metric not in METRICS:
            raise TinybuildError(f"manifest {path}: unknown metric '{metric}' in [tolerances]; "
                                 f"metrics are {', '.join(METRICS)}")
    models = data.get("models", [])
    if not models:
        raise TinybuildError(f"manifest {path}: no [[models]] entries")
    cases, skipped = [], []
    for i, entry in enumerate(models):
        if "path" not in entry:
            raise TinybuildError(f"manifest {path}: [[models]] entry {i + 1} has no path")
        model = (path.parent / entry["path"]).resolve()
        if not model.exists():
            if entry.get("optional", False):
                skipped.append(entry["path"])
                continue
            raise TinybuildError(f"manifest {path}: model {entry['path']} not found (looked at "
                                 f"{model}); fix the path or mark the entry optional = true")
        kernels = entry.get("kernels", ["optimized"])
        if not isinstance(kernels, list) or not kernels or set(kernels) - set(KERNEL_CHOICES):
            raise TinybuildError(f"manifest {path}: kernels for {entry['path']} must be a list of "
                                 f"{' / '.join(KERNEL_CHOICES)}, got {kernels!r}")
        quants = entry.get("quant", ["int8"])
        if not isinstance(quants, list) or not quants or set(quants) - set(QUANT_CHOICES):
            raise TinybuildError(f"manifest {path}: quant for {entry['path']} must be a list of "
                                 f"{' / '.join(QUANT_CHOICES)}, got {quants!r}")
        for target in entry.get("targets", default_targets):
            if known_targets is not None and target not in known_targets:
                raise TinybuildError(f"manifest {path}: unknown target '{target}' for {entry['path']}; "
                                     f"known: {', '.join(sorted(known_targets))}")
            cases += [Case(target, model, k, q) for q in quants for k in kernels]
    return Manifest(path, cases, inputs, tolerances, skipped)


def _tolerance(path: Path, metric: str, spec) -> dict:
    if not isinstance(spec, dict) or set(spec) - {"abs", "rel"}:
        raise TinybuildError(f"manifest {path}: tolerance for {metric} must look like "
                             f"{{ abs = 0, rel = 0.01 }}, got {spec!r}")
    tol = {**DEFAULT_TOLERANCE, **spec}
    for kind, value in tol.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise TinybuildError(f"manifest {path}: tolerance {metric}.{kind} must be a number >= 0, "
                                 f"got {value!r}")
    return tol


def shard(cases: list[Case], spec: str) -> list[Case]:
    """``K/N``: the K-th of N deterministic slices (1-based), by sorted case key."""
    try:
        k, n = (int(x) for x in spec.split("/"))
        if not 1 <= k <= n:
            raise ValueError
    except ValueError:
        raise TinybuildError(f"shard={spec}: expected K/N with 1 <= K <= N, e.g. shard=1/2") from None
    ordered = sorted(cases, key=lambda c: c.key)
    return [c for i, c in enumerate(ordered) if i % n == k - 1]


def figures(report: dict) -> dict[str, int]:
    """The deterministic figures of one build's report.json."""
    return {"flash": report["flash"]["used"], "ram": report["ram"]["used"],
            "arena": report["arena"]["bytes"], "stack": report["stack"]["peak_bytes"],
            "instructions": report["inference"]["instructions"],
            "cycles": report["inference"]["cycles"]}


@dataclass
class Result:
    case: Case
    status: str                        # "pass", "regressed", "mismatch", "broken", "new"
    figures: dict[str, int] = field(default_factory=dict)
    baseline: dict[str, int] = field(default_factory=dict)
    regressions: list[str] = field(default_factory=list)
    improvements: list[str] = field(default_factory=list)
    message: str = ""
    layers: list[dict] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status in ("regressed", "mismatch", "broken")


def compare(case: Case, report: dict | None, baseline: dict | None, tolerances: dict,
            error: str = "") -> Result:
    # ``error``: this run's build of the case failed, so a report.json on disk
    # is an earlier build's and says nothing about this one.
    if report is None or error:
        return Result(case, "broken", message=error or "build failed (no report.json)")
    now = figures(report)
    result = Result(case, "pass", now, baseline or {}, layers=report.get("layers", []))
    if report["validation"].get("validate") == "no":     # the user's choice: figures still count
        result = _against_baseline(result, now, baseline, tolerances)
        result.message = "; ".join(filter(None, (result.message, report["validation"]["skipped"])))
        return result
    if not report["validation"]["match"]:
        result.status, result.message = "mismatch", "output differs from the TFLite reference"
        return result
    return _against_baseline(result, now, baseline, tolerances)


def _against_baseline(result: Result, now: dict, baseline: dict | None, tolerances: dict) -> Result:
    if not baseline:
        result.status, result.message = "new", "no baseline yet"
        return result
    for metric in METRICS:
        if metric not in baseline:
            continue
        old, new, tol = baseline[metric], now[metric], tolerances[metric]
        allowed = max(tol["abs"], tol["rel"] * old)
        if new - old > allowed:
            result.regressions.append(metric)
        elif new < old:
            result.improvements.append(metric)
    if result.regressions:
        result.status = "regressed"
        result.message = "grew past tolerance: " + ", ".join(result.regressions)
    return result


def read_report(build_dir: Path, case: Case) -> dict | None:
    path = Path(build_dir) / case.target / case.variant / "report.json"
    if not path.exists():
        return None
    # No timestamp test: SCons decides by content, so a relinked but identical
    # firmware keeps its (older) report; failures come from SCons (``errors``).
    return json.loads(path.read_text())


def evaluate(manifest: Manifest, cases: list[Case], build_dir: Path, baseline_path: Path,
             out_dir: Path, update_baseline: bool = False, errors: dict | None = None) -> list[Result]:
    baseline = json.loads(baseline_path.read_text()) if baseline_path.exists() else {}
    results = [compare(c, read_report(build_dir, c), baseline.get(c.key), manifest.tolerances,
                       (errors or {}).get(c.key, "")) for c in cases]
    if update_baseline:
        for r in results:
            if r.status not in ("broken", "mismatch"):
                baseline[r.case.key] = r.figures
        baseline_path.parent.mkdir(parents=True, exist_ok=True)
        baseline_path.write_text(json.dumps(dict(sorted(baseline.items())), indent=1) + "\n")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "regression.md").write_text(markdown(results, manifest))
    (out_dir / "regression.html").write_text(html_report(results, manifest))
    (out_dir / "regression.junit.xml").write_text(junit(results))
    return results


def _delta(new: int, old: int | None) -> str:
    if old is None:
        return f"{new:,}"
    if new == old:
        return f"{new:,} ="
    arrow = "▲" if new > old else "▼"
    pct = f" {100 * (new - old) / old:+.1f}%" if old else ""
    return f"{new:,} {arrow}{new - old:+,}{pct}"


_ICON = {"pass": "pass", "new": "new", "regressed": "**REGRESSED**", "mismatch": "**MISMATCH**",
         "broken": "**BROKEN**"}


def markdown(results: list[Result], manifest: Manifest) -> str:
    failed = sum(r.failed for r in results)
    lines = ["# Regression", "",
             f"{len(results)} cases, {failed} failed. Manifest: `{manifest.path}`. Figures per inference; "
             "▲ grew, ▼ shrank versus the baseline.", "",
             "| target | model | status | " + " | ".join(METRICS) + " | note |",
             "| --- | --- | --- | " + " | ".join("---:" for _ in METRICS) + " | --- |"]
    for r in results:
        cells = [_delta(r.figures[m], r.baseline.get(m)) if r.figures else "-" for m in METRICS]
        cells = [f"**{c}**" if m in r.regressions else c for c, m in zip(cells, METRICS)]
        note = r.message or (("improved: " + ", ".join(r.improvements)) if r.improvements else "")
        lines.append(f"| {r.case.target} | {r.case.variant} | {_ICON[r.status]} | "
                     + " | ".join(cells) + f" | {note} |")
    if manifest.skipped:
        lines += ["", "Skipped (optional, absent): " + ", ".join(manifest.skipped)]
    return "\n".join(lines) + "\n"


def junit(results: list[Result]) -> str:
    failures = sum(r.status in ("regressed", "mismatch") for r in results)
    errors = sum(r.status == "broken" for r in results)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<testsuite name="tinybuild.regression" tests="{len(results)}" failures="{failures}" '
           f'errors="{errors}">']
    for r in results:
        name = quoteattr(r.case.variant)
        out.append(f'  <testcase classname={quoteattr("regression." + r.case.target)} name={name}>')
        if r.status == "broken":
            out.append(f"    <error message={quoteattr(r.message)}/>")
        elif r.failed:
            detail = "; ".join(f"{m}: {r.baseline.get(m)} -> {r.figures.get(m)}" for m in r.regressions)
            out.append(f"    <failure message={quoteattr(r.message)}>{escape(detail)}</failure>")
        out.append(f"    <system-out>{escape(json.dumps(r.figures))}</system-out>")
        out.append("  </testcase>")
    out.append("</testsuite>")
    return "\n".join(out) + "\n"


def _bar_chart(title: str, items: list[tuple[str, int, int | None]], unit: str) -> str:
    """Horizontal bars (current value; a tick for the baseline) as inline SVG."""
    if not items:
        return ""
    width, bar_h, label_w = 760, 18, 230
    top = max(max(v, b or 0) for _, v, b in items) or 1
    height = 30 + len(items) * (bar_h + 6)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{html.escape(title)}">',
             f'<text x="0" y="16" font-size="14" font-weight="bold">{html.escape(title)}</text>']
    for i, (label, value, base) in enumerate(items):
        y = 28 + i * (bar_h + 6)
        w = int((width - label_w - 120) * value / top)
        parts.append(f'<text x="0" y="{y + 13}" font-size="12">{html.escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{max(w, 1)}" height="{bar_h}" fill="#4a7ab5"/>')
        if base:
            bx = label_w + int((width - label_w - 120) * base / top)
            parts.append(f'<line x1="{bx}" y1="{y - 2}" x2="{bx}" y2="{y + bar_h + 2}" '
                         'stroke="#c0392b" stroke-width="2"/>')
        parts.append(f'<text x="{label_w + max(w, 1) + 6}" y="{y + 13}" font-size="12">'
                     f'{value:,} {unit}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def html_report(results: list[Result], manifest: Manifest) -> str:
    ok = [r for r in results if r.figures]
    label = lambda r: f"{r.case.variant} @ {r.case.target}"
    charts = [
        _bar_chart("Flash bytes (red tick: baseline)",
                   [(label(r), r.figures["flash"], r.baseline.get("flash")) for r in ok], "B"),
        _bar_chart("RAM bytes", [(label(r), r.figures["ram"], r.baseline.get("ram")) for r in ok], "B"),
        _bar_chart("Cycles per inference",
                   [(label(r), r.figures["cycles"], r.baseline.get("cycles")) for r in ok], "cycles"),
    ]
    slowest = max(ok, key=lambda r: r.figures["cycles"], default=None)
    if slowest and slowest.layers:
        charts.append(_bar_chart(
            f"Cycles per layer: {label(slowest)}",
            [(f"#{l['index']} {l['op']}", l["cycles"], None) for l in slowest.layers], "cycles"))
    rows = "\n".join(
        f"<tr class='{r.status}'><td>{html.escape(r.case.target)}</td><td>{html.escape(r.case.variant)}</td>"
        f"<td>{r.status}</td>" + "".join(
            f"<td>{html.escape(_delta(r.figures[m], r.baseline.get(m)) if r.figures else '-')}</td>"
            for m in METRICS) + f"<td>{html.escape(r.message)}</td></tr>" for r in results)
    failed = sum(r.failed for r in results)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tinybuild regression</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
td:nth-child(-n+3), th:nth-child(-n+3) {{ text-align: left; }}
tr.regressed, tr.mismatch, tr.broken {{ background: #fbe3e1; }} tr.new {{ background: #eef5fb; }}
</style></head><body>
<h1>tinybuild regression</h1>
<p>{len(results)} cases, {failed} failed. Manifest: <code>{html.escape(str(manifest.path))}</code>.
Figures per inference; ▲ grew, ▼ shrank versus the baseline.</p>
<table><tr><th>target</th><th>model</th><th>status</th>{''.join(f'<th>{m}</th>' for m in METRICS)}<th>note</th></tr>
{rows}
</table>
{''.join(f'<div>{c}</div>' for c in charts if c)}
</body></html>
"""
