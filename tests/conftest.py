"""Shared fixtures: paths to the project's models and the MLPerf Tiny references."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MLPERF = ROOT.parent / "shared" / "models" / "mlperf_tiny"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def mlperf_model(name: str) -> Path:
    path = MLPERF / name
    if not path.exists():
        pytest.skip(f"{path} not present (the MLPerf Tiny models live in ../shared)")
    return path
