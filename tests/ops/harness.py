"""The op test harness: a tiny TFLite model through TFLite's reference kernels
(BUILTIN_REF) and through tinybuild's whole host path (importer -> lower ->
reference kernels -> planner -> codegen -> native build -> run), compared
byte for byte on seeded inputs.

An op family's tests are one table of cases in ``tests/ops/test_<family>.py``:

    CASES = [Case("CONV_2D 3x3 SAME RELU", lambda: conv_model(...)), ...]

    @pytest.mark.parametrize("case", CASES, ids=str)
    def test_conv(case):
        check(case)

plus a hypothesis property test per op (``@FAST`` by default, a wider ``@SWEEP``
marked slow) that draws shapes and quantization and calls :func:`check` on the
model it builds. Models come from :class:`tflite_builder.ModelBuilder`; the
inputs from ``tinybuild.reference.make_inputs`` (full-range integers, normal
noise for float32 inputs), the expected outputs from
``tinybuild.reference.reference_outputs``: the build's own validation path.
"""
from __future__ import annotations

import atexit
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from hypothesis import HealthCheck, settings

from tinybuild import pipeline
from tinybuild.host import HOST_CFLAGS, host_cc, run_host_model
from tinybuild.kernel_registry import KERNEL_DIR, RUNTIME_DIR, reference_sources

FAST = settings(max_examples=int(os.environ.get("TB_OP_EXAMPLES", "6")), deadline=None,
                derandomize=True, suppress_health_check=list(HealthCheck))
SWEEP = settings(max_examples=int(os.environ.get("TB_OP_SWEEP", "150")), deadline=None,
                 derandomize=True, suppress_health_check=list(HealthCheck))


@dataclass(frozen=True)
class Case:
    """One row of a family's table: a name and the model it builds."""

    name: str
    model: Callable[[], bytes]
    inputs: int = 3                  # validation inputs (seeded)
    float_tolerance: float | None = None   # see check()

    def __str__(self) -> str:
        return self.name


def check(case_or_model, inputs: int = 3, seed: int = 1, workdir: Path | None = None,
          kernels=(), float_tolerance: float | None = None) -> None:
    """Assert tinybuild's outputs equal TFLite's byte for byte on ``inputs``
    seeded inputs; the failure names the output, the first differing element and
    both values. ``kernels``: plugin KernelImpls to offer (default: reference only).
    ``float_tolerance``: None compares float32 outputs byte for byte too; a
    number lets each float32 element differ by that fraction of the output's
    largest magnitude (only for transcendental functions, whose last bit differs
    between C libraries: say why where you use it)."""
    if isinstance(case_or_model, Case):
        model, inputs = case_or_model.model(), case_or_model.inputs
        float_tolerance = case_or_model.float_tolerance if float_tolerance is None else float_tolerance
    else:
        model = case_or_model
    with tempfile.TemporaryDirectory(prefix="tb-op-") as tmp:
        folder = Path(workdir or tmp)
        tflite = folder / "model.tflite"
        tflite.write_bytes(model)
        from tinybuild.reference import io_record, make_inputs, reference_outputs
        data = make_inputs(tflite, inputs, seed)
        want = reference_outputs(tflite, data)
        got = tinybuild_outputs(tflite, data, folder / "build", kernels)
        outputs = io_record(tflite)["outputs"]
        for i, (g, w) in enumerate(zip(got, want)):
            problem = first_difference(g, w, outputs, float_tolerance)
            assert problem is None, f"input {i}: {problem}"


def tinybuild_outputs(tflite: Path, inputs: list[bytes], folder: Path, kernels=()) -> list[bytes]:
    """Each input through the generated model, built natively; every output's bytes."""
    pipeline.generate(tflite, folder, list(kernels))
    exe = build_host(folder)
    return [run_host_model(exe, data) for data in inputs]


def first_difference(got: bytes, want: bytes, outputs: list[dict],
                     float_tolerance: float | None = None) -> str | None:
    """None when equal (float32 outputs: within ``float_tolerance`` of their
    largest magnitude, when given), else which output differs and where."""
    at = 0
    for k, out in enumerate(outputs):
        g, w = got[at:at + out["bytes"]], want[at:at + out["bytes"]]
        at += out["bytes"]
        if g == w:
            continue
        dtype = np.dtype(out["dtype"])
        if len(g) != len(w):
            return f"output {k} '{out['name']}': {len(g)} bytes, TFLite has {len(w)}"
        a, b = np.frombuffer(g, dtype), np.frombuffer(w, dtype)
        if float_tolerance is not None and dtype == np.float32:
            limit = float_tolerance * float(np.max(np.abs(b))) if b.size else 0.0
            if np.all(np.abs(a.astype(np.float64) - b) <= limit):
                continue
        bad = np.flatnonzero(a != b)
        e = int(bad[0])
        return (f"output {k} '{out['name']}' ({dtype}) differs at element {e} (byte {e * dtype.itemsize}"
                f" of {len(w)}): tinybuild {a[e]}, TFLite {b[e]}; {bad.size} of {a.size} elements differ")
    if len(got) != len(want):
        return f"{len(got)} output bytes, TFLite has {len(want)}"
    return None


# -- the native build: kernels compiled once per session, each model linked to them ----------

_OBJECTS: dict[Path, Path] = {}
_WORK = tempfile.TemporaryDirectory(prefix="tb-op-objects-")
atexit.register(_WORK.cleanup)


def _object(src: Path, defines=()) -> Path:
    """``src`` compiled with the host flags tinybuild.host uses (once)."""
    key = Path(src).resolve()
    if key not in _OBJECTS or _OBJECTS[key].stat().st_mtime < key.stat().st_mtime:
        obj = Path(_WORK.name) / f"{len(_OBJECTS)}_{key.stem}.o"
        _compile([*HOST_CFLAGS, *(f"-D{d}" for d in defines), f"-I{KERNEL_DIR}", f"-I{RUNTIME_DIR}",
                  "-c", str(key), "-o", str(obj)])
        _OBJECTS[key] = obj
    return _OBJECTS[key]


def build_host(folder: Path) -> Path:
    """The generated model in ``folder`` as a host executable (tinybuild.host's
    flags; the reference kernels, plugin ops' sources included, compiled once)."""
    objects = [_object(RUNTIME_DIR / "tb_runtime.c", ["TB_HOST"]), *map(_object, reference_sources())]
    exe = folder / "model_host"
    _compile([*HOST_CFLAGS, "-DTB_HOST", f"-I{KERNEL_DIR}", f"-I{RUNTIME_DIR}", f"-I{folder}",
              str(folder / "model.c"), *map(str, objects), "-o", str(exe), "-lm"])
    return exe


def _compile(args: list[str]) -> None:
    proc = subprocess.run([host_cc(), *args], capture_output=True, text=True)
    assert proc.returncode == 0, f"host build failed: {' '.join(args)}\n{proc.stderr}"


# -- helpers for the family tables ---------------------------------------------------------

def rng_for(*key) -> np.random.Generator:
    """A generator seeded by a case's parameters (the same case, the same weights)."""
    import zlib
    return np.random.default_rng(zlib.crc32(repr(key).encode()))
