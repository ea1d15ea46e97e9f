"""A model too big for the board fails the link with needed vs available bytes."""
import shutil
import subprocess

import pytest

from tinybuild import plugins
from tinybuild.errors import TinybuildError
from tinybuild.kernel_registry import RUNTIME_DIR
from tinybuild.linkcheck import run_link

pytestmark = pytest.mark.skipif(not shutil.which("arm-none-eabi-gcc"), reason="no arm-none-eabi-gcc")

PROGRAM = """
#include <stdint.h>
#include "tb_runtime.h"
const int8_t weights[{flash}] = {{1}};
int8_t arena[{ram}] TB_NOINIT;
void tb_model_invoke(void) {{ arena[0] = weights[arena[1] & 7]; }}
"""


def _link(tmp_path, flash, ram):
    pm = plugins.make_plugin_manager()
    target = plugins.find_target(pm, "cortex-m4")
    tc = pm.hook.tinybuild_find_toolchain(target=target, explicit_path=None)
    src = tmp_path / "big.c"
    src.write_text(PROGRAM.format(flash=flash, ram=ram))
    objs = []
    for c in [src, RUNTIME_DIR / "tb_runtime.c", *target.startup_sources]:
        obj = tmp_path / (c.stem + ".o")
        subprocess.run([tc.tool("gcc"), *target.cflags, "-O2", f"-I{RUNTIME_DIR}", "-c", str(c),
                        "-o", str(obj)], check=True)
        objs.append(obj)
    run_link(tc, target, objs, tmp_path / "fw.elf", tmp_path / "fw.map", "O2")
    return target


def test_a_model_that_fits_links(tmp_path):
    _link(tmp_path, flash=100_000, ram=60_000)
    assert (tmp_path / "fw.elf").exists()


def test_too_much_ram_names_needed_and_available_bytes(tmp_path):
    with pytest.raises(TinybuildError) as err:
        _link(tmp_path, flash=1000, ram=200_000)
    msg = str(err.value)
    assert "needs" in msg and "bytes of RAM, board has 131072" in msg


def test_too_much_flash_names_needed_and_available_bytes(tmp_path):
    with pytest.raises(TinybuildError, match=r"needs \d+ bytes of flash, board has 1048576"):
        _link(tmp_path, flash=1_200_000, ram=1000)
