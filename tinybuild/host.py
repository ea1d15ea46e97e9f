"""Build a generated model natively for the host and run it.

The same model.c, kernels and runtime that go into the firmware, compiled
with the host's C compiler (``-DTB_HOST`` swaps in a main() that reads the
input tensor from stdin and writes the output tensor to stdout). Tests use it
to check whole models against TFLite in milliseconds per input.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .errors import TinybuildError
from .kernel_registry import KERNEL_DIR, RUNTIME_DIR, reference_sources

HOST_CFLAGS = ("-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror",
               "-Wno-unused-parameter")


def host_cc() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise TinybuildError("no host C compiler: install gcc (apt-get install build-essential)")
    return cc


def build_host_model(model_dir: Path, exe: Path, extra_sources=(), defines=()) -> Path:
    sources = [model_dir / "model.c", RUNTIME_DIR / "tb_runtime.c", *reference_sources(), *extra_sources]
    cmd = [host_cc(), *HOST_CFLAGS, "-DTB_HOST", *(f"-D{d}" for d in defines),
           f"-I{KERNEL_DIR}", f"-I{RUNTIME_DIR}", f"-I{model_dir}", *map(str, sources),
           "-o", str(exe), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise TinybuildError(f"host build failed:\n{' '.join(cmd)}\n{proc.stderr}")
    return exe


def run_host_model(exe: Path, data: bytes) -> bytes:
    proc = subprocess.run([str(exe)], input=data, capture_output=True, timeout=120)
    if proc.returncode:
        raise TinybuildError(f"{exe} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout
