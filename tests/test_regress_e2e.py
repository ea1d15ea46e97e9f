"""`tinybuild regress` end to end: a real build, a slower kernel, a wrong kernel."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tbtest import mlperf_model

pytestmark = pytest.mark.slow

SLOW_SOFTMAX = '''
#include "tb_kernels.h"
/* Correct but slower: the reference softmax computed twice. */
void softmax_twice(const tb_softmax_params *p, const int8_t *in, int8_t *out) {
  tb_softmax_s8(p, in, out);
  tb_softmax_s8(p, in, out);
}
'''
WRONG_SOFTMAX = '''
#include "tb_kernels.h"
void softmax_twice(const tb_softmax_params *p, const int8_t *in, int8_t *out) {
  tb_softmax_s8(p, in, out);
  out[0] = (int8_t)(out[0] ^ 1);
}
'''
PLUGIN = '''
from pathlib import Path
from tinybuild.hookspecs import hookimpl
from tinybuild.kernel_registry import KernelImpl

@hookimpl
def tinybuild_kernels(target):
    return [KernelImpl("SOFTMAX", "softmax_twice", (Path(__file__).parent / "softmax_twice.c",),
                       priority=10)]
'''


def _regress(tmp_path, *extra, plugins=None):
    cmd = [sys.executable, "-m", "tinybuild"]
    if plugins:
        cmd += ["--plugins", str(plugins)]
    cmd += ["regress", "--manifest", str(tmp_path / "regress.toml"), "--baseline",
            str(tmp_path / "baseline.json"), "--out", str(tmp_path / "out"),
            "--build-dir", str(tmp_path / "build"), *extra]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)


def test_regression_run_catches_a_slower_kernel_and_a_wrong_one(tmp_path):
    model = mlperf_model("kws_ref_model.tflite")
    (tmp_path / "regress.toml").write_text(
        f'[defaults]\ntargets = ["cortex-m4"]\ninputs = 1\n[[models]]\npath = "{model}"\n')
    first = _regress(tmp_path, "--update-baseline")
    assert first.returncode == 0, first.stdout + first.stderr
    baseline = json.loads((tmp_path / "baseline.json").read_text())
    assert baseline["cortex-m4/kws_ref_model"]["instructions"] > 0

    again = _regress(tmp_path)
    assert again.returncode == 0 and "| pass |" in again.stdout

    kernels = tmp_path / "kernels"
    kernels.mkdir()
    (kernels / "slow_softmax.py").write_text(PLUGIN)
    (kernels / "softmax_twice.c").write_text(SLOW_SOFTMAX)
    slower = _regress(tmp_path, plugins=kernels)
    assert slower.returncode == 1
    row = next(l for l in slower.stdout.splitlines() if l.startswith("| cortex-m4 | kws_ref_model"))
    assert "**REGRESSED**" in row and "instructions" in row and "▲" in row
    junit = (tmp_path / "out" / "regression.junit.xml").read_text()
    assert 'failures="1"' in junit

    (kernels / "softmax_twice.c").write_text(WRONG_SOFTMAX)
    wrong = _regress(tmp_path, plugins=kernels)
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    row = next(l for l in wrong.stdout.splitlines() if l.startswith("| cortex-m4 | kws_ref_model"))
    assert "differs from the TFLite reference" in row, wrong.stdout + wrong.stderr

    # A baseline that was worse than today: the run passes and shows the gain.
    baseline["cortex-m4/kws_ref_model"]["instructions"] += 1000
    (tmp_path / "baseline.json").write_text(json.dumps(baseline))
    better = _regress(tmp_path)
    assert better.returncode == 0
    row = next(l for l in better.stdout.splitlines() if l.startswith("| cortex-m4 | kws_ref_model"))
    assert "▼-1,000" in row and "improved: instructions" in row
