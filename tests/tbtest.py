"""Paths and helpers shared by the test modules (import as `tbtest`)."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MLPERF = ROOT.parent / "shared" / "models" / "mlperf_tiny"


def mlperf_model(name: str) -> Path:
    path = MLPERF / name
    if not path.exists():
        pytest.skip(f"{path} not present (the MLPerf Tiny models live in ../shared)")
    return path


def bench_module(name: str):
    """bench/<name>.py as a module (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
