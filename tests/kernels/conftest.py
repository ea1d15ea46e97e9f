"""Shared fixtures for the C kernel tests: the compiled kernel library (built
once per session with the host gcc) and a seeded RNG."""

import zlib

import numpy as np
import pytest

from kernel_harness import build_kernels


@pytest.fixture(scope="session")
def kernels(tmp_path_factory):
    return build_kernels(tmp_path_factory.mktemp("tbkernels"))


@pytest.fixture(scope="session")
def faulty_kernels(tmp_path_factory):
    """The same kernels with RoundingDivideByPOT deliberately truncating."""
    return build_kernels(tmp_path_factory.mktemp("tbkernels_faulty"),
                         defines=("TB_KERNELS_FAULT_INJECT_TRUNCATE",),
                         name="libtbkernels_faulty.so")


@pytest.fixture
def rng(request):
    # Deterministic per test id so failures reproduce.
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)
