"""Paths and helpers shared by the test modules (import as `tbtest`)."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MLPERF = ROOT.parent / "shared" / "models" / "mlperf_tiny"


def mlperf_model(name: str) -> Path:
    path = MLPERF / name
    if not path.exists():
        pytest.skip(f"{path} not present (the MLPerf Tiny models live in ../shared)")
    return path
