"""Linking: linker scripts read like the linker reads them, and a firmware that
does not fit says how much of what, in which region, and the fix for the cause."""
import shutil
import subprocess
from dataclasses import replace

import pytest

from tinybuild import linkcheck, plugins
from tinybuild.errors import TinybuildError
from tinybuild.kernel_registry import RUNTIME_DIR
from tinybuild.linkcheck import check_arena_fits, run_link
from tinybuild.target import MemoryRegion, Toolchain

needs_arm = pytest.mark.skipif(not shutil.which("arm-none-eabi-gcc"), reason="no arm-none-eabi-gcc")
NRF_SCRIPT = plugins.PROJECT_ROOT / "plugins" / "nrf52840.ld"

PROGRAM = """
#include <stdint.h>
#include "tb_runtime.h"
const int8_t tb_L0_weights[{flash}] = {{1}};
static uint8_t tb_arena[{ram}] __attribute__((aligned(16))) TB_NOINIT;
int counter = 3;
void tb_model_invoke(void) {{ tb_arena[0] = tb_L0_weights[tb_arena[1] & 7] + counter; }}
"""


@pytest.fixture(scope="module")
def pm():
    return plugins.make_plugin_manager()


@pytest.fixture(scope="module")
def known(pm):
    return plugins.targets(pm)


def _link(tmp_path, pm, target, flash, ram):
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


def _refused(tmp_path, pm, target, flash, ram) -> str:
    with pytest.raises(TinybuildError) as err:
        _link(tmp_path, pm, target, flash, ram)
    assert not (tmp_path / "fw.elf").exists() and not (tmp_path / "fw.map").exists()
    return str(err.value)


def _board(tmp_path, known, ram_length="16K", stack="8K", extra_region="", noinit_in="RAM",
           regions=()):
    """An nRF52840-like board with a smaller RAM, a given default stack, and
    optionally a second RAM region."""
    script = NRF_SCRIPT.read_text().replace("LENGTH = 256K", f"LENGTH = {ram_length}")
    script = script.replace("STACK_SIZE : 4K", f"STACK_SIZE : {stack}")
    script = script.replace("  RAM   (rwx) : ORIGIN = 0x20000000", extra_region +
                            "  RAM   (rwx) : ORIGIN = 0x20000000")
    head, tail = script.split(".noinit (NOLOAD)", 1)
    script = head + ".noinit (NOLOAD)" + tail.replace("} > RAM", f"}} > {noinit_in}", 1)
    (tmp_path / "small.ld").write_text(script)
    nrf = known["nrf52840"]
    size = linkcheck.script_memory(tmp_path / "small.ld")["RAM"][1]
    memory = (nrf.memory[0], MemoryRegion("RAM", 0x2000_0000, size, "ram"), *regions)
    return replace(nrf, name="small", board="Small board", memory=memory,
                   linker_script=tmp_path / "small.ld", plugin="tests/small_board.py")


# -- linker scripts ------------------------------------------------------------------

def test_memory_block_numbers_suffixes_expressions_and_comments(tmp_path):
    script = tmp_path / "x.ld"
    script.write_text("""
        FLASH_KB = 256;                                /* a symbol MEMORY uses */
        MEMORY {
          FLASH (rx) : ORIGIN = 0x08000000, LENGTH = FLASH_KB * 1K
          RAM (rwx)  : org = 0x20000000, len = 0x10000 - 256,  /* a comma between entries */
          CCM (rw)   : o = ORIGIN(RAM) + 1M, l = (LENGTH(RAM) + 256) / 2
          TINY (r)   : ORIGIN = 010, LENGTH = 2M
        }
        SECTIONS { }
    """)
    assert linkcheck.script_memory(script) == {
        "FLASH": (0x0800_0000, 256 * 1024), "RAM": (0x2000_0000, 0x10000 - 256),
        "CCM": (0x2010_0000, 0x8000), "TINY": (8, 2 << 20)}


@pytest.mark.parametrize("length", ["__ram_end - 0x20000000", "64K ? 1 : 2", "1 << 99", "__import__('os')",
                                    "64K / 0"])
def test_what_tinybuild_cannot_evaluate_is_refused_not_guessed(tmp_path, length):
    script = tmp_path / "x.ld"
    script.write_text(f"MEMORY {{ RAM (rwx) : ORIGIN = 0x20000000, LENGTH = {length} }}\n")
    with pytest.raises(linkcheck.ScriptError, match="MEMORY region RAM: cannot evaluate"):
        linkcheck.script_memory(script)


def test_stack_reserve_comes_from_defsym_else_the_script(known):
    assert linkcheck.stack_reserve(known["riscv"]) == 4096
    bigger = replace(known["riscv"], ldflags=known["riscv"].ldflags + ("-Wl,--defsym=STACK_SIZE=0x2000",))
    assert linkcheck.stack_reserve(bigger) == 8192
    comma = replace(known["riscv"], ldflags=("-Wl,--gc-sections,--defsym,STACK_SIZE=2K",))
    assert linkcheck.stack_reserve(comma) == 2048


def test_where_the_builtin_scripts_put_the_arena_and_the_stack(known):
    m4 = known["cortex-m4"]
    assert linkcheck.section_region(m4, ".noinit") == "RAM"
    assert linkcheck.section_region(m4, ".stack") == "RAM"      # the bottom of SRAM
    assert linkcheck.section_region(known["riscv"], ".stack") == "RAM"


# -- before compiling -------------------------------------------------------------------

def test_arena_that_fits_passes_the_codegen_check(known):
    assert check_arena_fits(known["cortex-m4"], 120_000, None) is None
    assert check_arena_fits(known["riscv"], 20_000, 4096) is None


def test_arena_larger_than_every_ram_region_is_refused_at_codegen(known):
    with pytest.raises(TinybuildError) as err:
        check_arena_fits(known["cortex-m4"], 140_000, 4096, lower_bound=139_000)
    msg = str(err.value)
    assert "\n" not in msg and "STM32F407VG" in msg and "target 'cortex-m4'" in msg
    assert "RAM region RAM (131,072 B at 0x20000000, one of 2 RAM regions: 196,608 B in all)" in msg
    assert "arena 140,000 B (lower bound 139,000 B) + stack reserve 4,096 B" in msg   # both in SRAM
    assert "no RAM region holds the 140,000 B arena" in msg and "smaller model" in msg


def test_arena_plus_stack_reserve_over_the_only_region_names_the_stack_fix(known):
    with pytest.raises(TinybuildError) as err:
        check_arena_fits(known["riscv"], 26_000, 8192)
    msg = str(err.value)
    over = 26_000 + 8192 - 32 * 1024
    assert "the board's only RAM region" in msg and f"{over:,} B over" in msg
    assert "arena 26,000 B + stack reserve 8,192 B" in msg
    assert f"cut the 8,192 B stack reserve to {(8192 - over) // 8 * 8:,} B or less" in msg
    assert f"'-Wl,--defsym=STACK_SIZE={(8192 - over) // 8 * 8}'" in msg and "targets/riscv/plugin.py" in msg


def test_arena_too_big_for_its_region_but_not_another_names_that_region(tmp_path, known):
    board = _board(tmp_path, known, ram_length="16K", stack="2K",
                   extra_region="  RAM2  (rwx) : ORIGIN = 0x20010000, LENGTH = 64K\n",
                   regions=(MemoryRegion("RAM2", 0x2001_0000, 64 * 1024, "ram"),))
    with pytest.raises(TinybuildError, match=r"place \.noinit \(the arena\) in RAM2 .* in .*small\.ld"):
        check_arena_fits(board, 20_000, None)


# -- the link ------------------------------------------------------------------------------

@needs_arm
def test_a_model_that_fits_links(tmp_path, pm, known):
    _link(tmp_path, pm, known["cortex-m4"], flash=100_000, ram=60_000)
    assert (tmp_path / "fw.elf").exists()


@needs_arm
def test_arena_too_big_for_any_bank_says_which_bank_of_how_many(tmp_path, pm, known):
    msg = _refused(tmp_path, pm, known["cortex-m4"], flash=1000, ram=200_000)
    assert "\n" not in msg
    assert "RAM region RAM (131,072 B at 0x20000000, one of 2 RAM regions: 196,608 B in all) needs" in msg
    assert "arena 200,000 B" in msg and "other data/bss" in msg
    assert "stack reserve 4,096 B" in msg      # the stack is at the bottom of this bank
    assert "no RAM region holds the 200,000 B arena" in msg


@needs_arm
def test_arena_lower_bound_comes_from_plan_json_beside_the_elf(tmp_path, pm, known):
    (tmp_path / "plan.json").write_text('{"memory": {"arena_size": 200000, "lower_bound": 190000}}')
    msg = _refused(tmp_path, pm, known["cortex-m4"], flash=1000, ram=200_000)
    assert "arena 200,000 B (lower bound 190,000 B)" in msg


@needs_arm
def test_stack_reserve_that_causes_the_overflow_gets_the_stack_fix_which_works(tmp_path, pm, known):
    """The tester's case: an 8 KiB stack reserve on a 16 KiB RAM, a few hundred
    bytes of stack in use, and a message that said to use a smaller model."""
    board = _board(tmp_path, known)
    msg = _refused(tmp_path, pm, board, flash=1000, ram=9000)
    assert "the board's only RAM region" in msg and "stack reserve 8,192 B" in msg
    assert "arena 9,000 B" in msg and "cut the 8,192 B stack reserve to" in msg
    flag = msg.split("add '")[1].split("'")[0]
    assert flag.startswith("-Wl,--defsym=STACK_SIZE=") and "tests/small_board.py" in msg
    _link(tmp_path, pm, replace(board, ldflags=board.ldflags + (flag,)), flash=1000, ram=9000)
    assert (tmp_path / "fw.elf").exists()


@needs_arm
def test_arena_in_a_full_region_beside_an_empty_one_names_the_empty_one(tmp_path, pm, known):
    board = _board(tmp_path, known, stack="2K",
                   extra_region="  RAM2  (rwx) : ORIGIN = 0x20010000, LENGTH = 64K\n",
                   regions=(MemoryRegion("RAM2", 0x2001_0000, 64 * 1024, "ram"),))
    msg = _refused(tmp_path, pm, board, flash=1000, ram=20_000)
    assert "one of 2 RAM regions" in msg and "place .noinit (the arena) in RAM2 (65,536 B free)" in msg


@needs_arm
def test_too_much_flash_breaks_down_weights_and_code(tmp_path, pm, known):
    msg = _refused(tmp_path, pm, known["cortex-m4"], flash=1_200_000, ram=1000)
    assert "flash region FLASH (1,048,576 B, the board's only flash region) needs" in msg
    assert "weights 1,200,000 B + code" in msg and "use a smaller model (fewer parameters)" in msg


@needs_arm
def test_a_section_outside_every_region_is_refused_after_the_link(tmp_path, pm, known):
    board = _board(tmp_path, known, ram_length="64K", stack="2K")
    script = board.linker_script.read_text().replace(
        "SECTIONS\n{", "SECTIONS\n{\n  .stray 0x30000000 (NOLOAD) : { . = . + 64; }\n", 1)
    board.linker_script.write_text(script)
    with pytest.raises(TinybuildError, match=r"section \.stray at 0x30000000 .* outside every region"):
        _link(tmp_path, pm, board, flash=1000, ram=1000)
    assert not (tmp_path / "fw.elf").exists()


def test_a_link_that_hangs_stops_at_the_timeout_with_one_line(tmp_path, monkeypatch, known):
    gcc = tmp_path / "fake-gcc"
    gcc.write_text("#!/bin/sh\nexec sleep 30\n")
    gcc.chmod(0o755)
    monkeypatch.setattr(linkcheck, "LINK_TIMEOUT_S", 0.5)
    tc = Toolchain("fake", tmp_path, "0", "test")
    with pytest.raises(TinybuildError, match=r"^link of .*fw\.elf did not finish in 0\.5 s"):
        run_link(tc, known["cortex-m4"], [], tmp_path / "fw.elf", tmp_path / "fw.map", "O2")


def test_a_missing_linker_is_one_line(tmp_path, known):
    tc = Toolchain("nowhere", tmp_path, "0", "test")
    with pytest.raises(TinybuildError, match=r"cannot run .*nowhere-gcc: No such file"):
        run_link(tc, known["cortex-m4"], [], tmp_path / "fw.elf", tmp_path / "fw.map", "O2")


@needs_arm
def test_a_stack_in_flash_is_refused_after_the_link(tmp_path, pm, known):
    """The tester's '-4,096 static': a stack the size step could not count as RAM."""
    board = _board(tmp_path, known, ram_length="64K", stack="2K")
    head, tail = board.linker_script.read_text().split(".stack (NOLOAD)", 1)
    board.linker_script.write_text(head + ".stack (NOLOAD)" + tail.replace("} > RAM", "} > FLASH", 1))
    with pytest.raises(TinybuildError,
                       match=r"section \.stack at 0x.* reserves RAM \(no contents\) but lies in a flash"):
        _link(tmp_path, pm, board, flash=1000, ram=1000)
