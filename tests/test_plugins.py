"""Plugin discovery: boards from a folder, clear errors for broken plugins."""
import textwrap
from dataclasses import replace

import pytest

from tinybuild import plugins
from tinybuild.errors import TinybuildError

BOARD = '''
from pathlib import Path
from tinybuild.hookspecs import hookimpl
from tinybuild.target import MemoryRegion, Target

@hookimpl
def tinybuild_targets():
    return [Target(name={name!r}, description="test board", board="Test board", arch="arm",
                   cpu="cortex-m4", triple="arm-none-eabi", clock_hz=64_000_000,
                   memory=(MemoryRegion("FLASH", 0, 65536, "flash"),
                           MemoryRegion("RAM", 0x20000000, 16384, "ram")),
                   cflags=(), ldflags=(), linker_script=Path("x.ld"), startup_sources=())]
'''


def _write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(text))
    return folder


def test_builtin_cortex_m4_is_found():
    pm = plugins.make_plugin_manager()
    target = plugins.find_target(pm, "cortex-m4")
    assert target.capacity("ram") == 192 * 1024
    assert "cortex_m4" in target.plugin


def test_board_in_a_folder_is_discovered(tmp_path):
    _write(tmp_path, "my_board.py", BOARD.format(name="my-board"))
    pm = plugins.make_plugin_manager([tmp_path])
    assert plugins.find_target(pm, "my-board").board == "Test board"


def test_two_plugins_claiming_one_target_name_are_both_named(tmp_path):
    _write(tmp_path, "first.py", BOARD.format(name="twin"))
    _write(tmp_path, "second.py", BOARD.format(name="twin"))
    pm = plugins.make_plugin_manager([tmp_path])
    with pytest.raises(TinybuildError) as err:
        plugins.targets(pm)
    assert "first" in str(err.value) and "second" in str(err.value)


def test_a_hook_that_raises_is_reported_with_its_plugin(tmp_path):
    _write(tmp_path, "broken_board.py", '''
        from tinybuild.hookspecs import hookimpl
        @hookimpl
        def tinybuild_targets():
            raise RuntimeError("no memory map yet")
        ''')
    pm = plugins.make_plugin_manager([tmp_path])
    with pytest.raises(TinybuildError, match="broken_board.*no memory map yet"):
        plugins.targets(pm)


def test_misspelled_hook_fails_loudly(tmp_path):
    _write(tmp_path, "typo.py", '''
        from tinybuild.hookspecs import hookimpl
        @hookimpl
        def tinybuild_target():
            return []
        ''')
    with pytest.raises(TinybuildError, match="tinybuild_target"):
        plugins.make_plugin_manager([tmp_path])


def test_unknown_target_lists_the_known_ones():
    pm = plugins.make_plugin_manager()
    with pytest.raises(TinybuildError, match="cortex-m4"):
        plugins.find_target(pm, "z80")


# -- boards are checked when their plugin loads ----------------------------------------

CHECKED_BOARD = '''
from pathlib import Path
from tinybuild.hookspecs import hookimpl
from tinybuild.target import MemoryRegion, Target

HERE = Path(__file__).parent

@hookimpl
def tinybuild_targets():
    return [Target(name=@NAME@, description="test board", board="Hostile board", arch="arm",
                   cpu="cortex-m4", triple="arm-none-eabi", clock_hz=@CLOCK@,
                   memory=@MEMORY@, cflags=(), ldflags=@LDFLAGS@,
                   linker_script=HERE / "board.ld", startup_sources=())]
'''
GOOD_MEMORY = '(MemoryRegion("FLASH", 0x08000000, 512 * 1024, "flash"), ' \
              'MemoryRegion("RAM", 0x20000000, 64 * 1024, "ram"))'
GOOD_SCRIPT = """
/* regions as the plugin's memory= says */
STACK_SIZE = DEFINED(STACK_SIZE) ? STACK_SIZE : 2K;
MEMORY
{
  FLASH (rx)  : ORIGIN = 0x08000000, LENGTH = 512K
  RAM   (rwx) : ORIGIN = 0x20000000, LENGTH = 64K
}
SECTIONS { .text : { *(.text) } > FLASH }
"""


def _board(folder, *, name='"hostile"', clock="64_000_000", memory=GOOD_MEMORY, ldflags="()",
           script=GOOD_SCRIPT):
    text = (CHECKED_BOARD.replace("@NAME@", name).replace("@CLOCK@", clock)
            .replace("@MEMORY@", memory).replace("@LDFLAGS@", ldflags))
    _write(folder, "hostile_board.py", text)
    if script is not None:
        (folder / "board.ld").write_text(script)
    return folder


def _refusal(folder) -> str:
    pm = plugins.make_plugin_manager([folder])
    with pytest.raises(TinybuildError) as err:
        plugins.targets(pm)
    msg = str(err.value)
    assert "\n" not in msg and "hostile_board.py" in msg and "Hostile board" in msg, msg
    return msg


def test_a_consistent_board_loads_with_its_plugin_named(tmp_path):
    target = plugins.find_target(plugins.make_plugin_manager([_board(tmp_path)]), "hostile")
    assert "hostile_board.py" in target.plugin and target.capacity("ram") == 64 * 1024


@pytest.mark.parametrize("memory,expected", [
    ('(MemoryRegion("FLASH", 0, 65536, "flash"), MemoryRegion("RAM", 0x20000000, 0, "ram"))',
     "length 0 must be more than 0 bytes"),
    ('(MemoryRegion("FLASH", 0, 65536, "flash"), MemoryRegion("RAM", 0x8000, 65536, "ram"))',
     "FLASH (0x00000000-0x0000ffff) and RAM (0x00008000-0x00017fff) overlap"),
    ('(MemoryRegion("FLASH", 0, 65536, "flash"),)', "at least one 'flash' region"),
    ('(MemoryRegion("FLASH", 0, 65536, "flash"), MemoryRegion("RAM", 0x20000000, 4096, "rom"))',
     "kind 'rom' is neither 'flash' nor 'ram'"),
    ('(MemoryRegion("FLASH", 0, 65536, "flash"), MemoryRegion("RAM", 0xFFFFF000, 8192, "ram"))',
     "outside the 32-bit address space"),
    ('(MemoryRegion("FLASH", -16, 65536, "flash"), MemoryRegion("RAM", 0x20000000, 4096, "ram"))',
     "outside the 32-bit address space"),
    ('(MemoryRegion("FLASH", 0, "64K", "flash"), MemoryRegion("RAM", 0x20000000, 4096, "ram"))',
     "origin and length must be integers"),
    ('(MemoryRegion("FLASH", 0, 65536, "flash"), MemoryRegion("FLASH", 0x20000000, 4096, "ram"))',
     "names a region twice"),
    ('(MemoryRegion("FL ASH", 0, 65536, "flash"), MemoryRegion("RAM", 0x20000000, 4096, "ram"))',
     "linker-script region name"),
    ('[("FLASH", 0, 65536, "flash")]', "memory must be a tuple of tinybuild.target.MemoryRegion"),
])
def test_a_bad_memory_map_is_one_line_naming_plugin_board_and_fix(tmp_path, memory, expected):
    msg = _refusal(_board(tmp_path, memory=memory, script=None))
    assert expected in msg


@pytest.mark.parametrize("name", ['"my board"', '"../escape"', '"a/b"', '"x$(rm -rf ~)"', '"all"',
                                  '""', '"-dash"', '"x" * 65', '"tab\\there"'])
def test_a_target_name_that_cannot_be_a_folder_or_variable_value_is_refused(tmp_path, name):
    msg = _refusal(_board(tmp_path, name=name))
    assert "it becomes a folder name and the value of target=" in msg


@pytest.mark.parametrize("clock", ["0", "-1", "64e6", '"64MHz"'])
def test_a_clock_that_is_not_a_positive_int_is_refused(tmp_path, clock):
    assert "give the core clock in Hz" in _refusal(_board(tmp_path, clock=clock))


def test_linker_script_region_of_another_size_names_both(tmp_path):
    """The tester's board: 1 KiB of flash in memory=, 512 KiB in the script
    (the build then printed "flash 20,848 B of 1,024" and exited 0)."""
    memory = GOOD_MEMORY.replace("512 * 1024", "1024")
    msg = _refusal(_board(tmp_path, memory=memory))
    assert "board.ld says FLASH: ORIGIN = 0x08000000, LENGTH = 524,288" in msg
    assert "memory= says 0x08000000, 1,024: make them agree" in msg


def test_linker_script_region_missing_from_memory_map_is_refused(tmp_path):
    script = GOOD_SCRIPT.replace("}\nSECTIONS", "  CCM (rw) : ORIGIN = 0x10000000, LENGTH = 64K\n}\nSECTIONS")
    msg = _refusal(_board(tmp_path, script=script))
    assert "has MEMORY region CCM (0x10000000, 65,536 B) that memory= lacks" in msg


def test_memory_map_region_missing_from_linker_script_is_refused(tmp_path):
    script = GOOD_SCRIPT.replace("  RAM   (rwx) : ORIGIN = 0x20000000, LENGTH = 64K\n", "")
    msg = _refusal(_board(tmp_path, script=script))
    assert "memory= has region RAM that its linker script" in msg
    assert "'RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 65536'" in msg


def test_linker_script_without_memory_block_or_with_symbolic_lengths_is_refused(tmp_path):
    assert "has no MEMORY { } block" in _refusal(_board(tmp_path, script="SECTIONS { }\n"))
    symbolic = GOOD_SCRIPT.replace("LENGTH = 64K", "LENGTH = __ram_size")
    msg = _refusal(_board(tmp_path, script=symbolic))
    assert "MEMORY region RAM: cannot evaluate '__ram_size'" in msg and "K/M suffixes" in msg


def test_linker_script_expressions_and_defsym_are_understood(tmp_path):
    script = GOOD_SCRIPT.replace("LENGTH = 64K", "LENGTH = RAM_KB * 1K").replace(
        "STACK_SIZE", "RAM_KB = 32; STACK_SIZE", 1)
    pm = plugins.make_plugin_manager([_board(tmp_path, script=script,
                                             memory=GOOD_MEMORY.replace("64 * 1024", "32 * 1024"))])
    assert plugins.find_target(pm, "hostile").capacity("ram") == 32 * 1024


def test_a_plugin_returning_something_else_than_targets_is_named(tmp_path):
    _write(tmp_path, "odd_board.py", '''
        from tinybuild.hookspecs import hookimpl
        @hookimpl
        def tinybuild_targets():
            return {"name": "odd"}
        ''')
    with pytest.raises(TinybuildError, match=r"odd_board.*returned a dict, not a tinybuild.target.Target"):
        plugins.targets(plugins.make_plugin_manager([tmp_path]))


def test_targets_command_prints_one_line_for_a_bad_board_and_no_traceback(tmp_path):
    import subprocess
    import sys
    _board(tmp_path, memory=GOOD_MEMORY.replace("64 * 1024", "0"), script=None)
    result = subprocess.run([sys.executable, "-m", "tinybuild", "--plugins", str(tmp_path), "targets"],
                            capture_output=True, text=True, cwd=plugins.PROJECT_ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "length 0 must be more than 0 bytes" in result.stderr


def test_names_from_plugins_are_escaped_in_errors(tmp_path):
    msg = _refusal(_board(tmp_path, name='"evil\\x1b[2J\\nline"'))
    assert "\\x1b" in msg and "\x1b" not in msg


# -- kernel plugins ---------------------------------------------------------------------

KERNEL_PLUGIN = '''
from pathlib import Path
from tinybuild.hookspecs import hookimpl
from tinybuild.kernel_registry import KernelImpl

SOURCE = Path(__file__).with_name("k.c")

@hookimpl
def tinybuild_kernels(target):
    return [@IMPLS@]
'''


def _kernel_plugin(folder, file_name, impls):
    _write(folder, file_name, KERNEL_PLUGIN.replace("@IMPLS@", impls))
    (folder / "k.c").write_text("/* kernels */\n")
    return folder


def _cm4_kernels(folder):
    pm = plugins.make_plugin_manager([folder])
    return plugins.kernels(pm, plugins.find_target(pm, "cortex-m4"))


def test_kernel_for_an_unknown_op_names_plugin_function_and_known_ops(tmp_path):
    _kernel_plugin(tmp_path, "typo_kernels.py", 'KernelImpl("CONV2D", "tb_my_conv_s8", (SOURCE,))')
    with pytest.raises(TinybuildError) as err:
        _cm4_kernels(tmp_path)
    msg = str(err.value)
    assert "typo_kernels.py" in msg and "'tb_my_conv_s8'" in msg and "op 'CONV2D'" in msg
    assert "(did you mean 'CONV_2D'?)" in msg
    known = msg.split("known ops: ", 1)[1]
    assert all(op in known for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "PAD"))


@pytest.mark.parametrize("impl,expected", [
    ('KernelImpl("ADD", "tb add", (SOURCE,))', "function must be the C function's name"),
    ('KernelImpl("ADD", "tb_add2", (SOURCE.with_name("gone.c"),))', "gone.c does not exist"),
    ('KernelImpl("ADD", "tb_add2", (SOURCE,), priority="high")', "priority must be an int"),
    ('"tb_add2"', "returned a str, not a tinybuild.kernel_registry.KernelImpl"),
])
def test_a_malformed_kernel_is_refused_with_its_plugin(tmp_path, impl, expected):
    _kernel_plugin(tmp_path, "bad_kernels.py", impl)
    with pytest.raises(TinybuildError, match="bad_kernels") as err:
        _cm4_kernels(tmp_path)
    assert expected in str(err.value)


def test_kernel_hook_returning_none_contributes_nothing(tmp_path):
    _write(tmp_path, "quiet.py", '''
        from tinybuild.hookspecs import hookimpl
        @hookimpl
        def tinybuild_kernels(target):
            return None
        ''')
    assert all("quiet" not in k.plugin for k in _cm4_kernels(tmp_path))


def _layer(op="SOFTMAX"):
    from types import SimpleNamespace
    return SimpleNamespace(op=op)


def test_priority_ties_go_to_the_plugin_loaded_first_then_the_function_name(tmp_path):
    from tinybuild.kernel_registry import choose
    _kernel_plugin(tmp_path, "b_second.py", 'KernelImpl("SOFTMAX", "tb_a_softmax_s8", (SOURCE,), 50)')
    _kernel_plugin(tmp_path, "a_first.py", 'KernelImpl("SOFTMAX", "tb_z_softmax_s8", (SOURCE,), 50), '
                                           'KernelImpl("SOFTMAX", "tb_y_softmax_s8", (SOURCE,), 50)')
    kernels = _cm4_kernels(tmp_path)
    chosen = choose(_layer(), kernels)
    assert chosen.function == "tb_y_softmax_s8" and "a_first.py" in chosen.plugin
    assert choose(_layer(), list(reversed(kernels))).function == "tb_a_softmax_s8"  # order is the rule
    second_only = [k for k in kernels if "a_first" not in k.plugin]
    assert choose(_layer(), second_only).function == "tb_a_softmax_s8"
    assert choose(_layer("RESHAPE"), kernels).plugin == "tinybuild (reference kernels)"


def test_higher_priority_wins_whatever_the_load_order(tmp_path):
    from tinybuild.kernel_registry import choose
    _kernel_plugin(tmp_path, "a_early.py", 'KernelImpl("SOFTMAX", "tb_early_softmax_s8", (SOURCE,), 10)')
    _kernel_plugin(tmp_path, "b_late.py", 'KernelImpl("SOFTMAX", "tb_late_softmax_s8", (SOURCE,), 11)')
    kernels = _cm4_kernels(tmp_path)
    assert choose(_layer(), kernels).function == "tb_late_softmax_s8"
    declines = [k if "b_late" not in k.plugin else replace(k, accepts=lambda layer: False)
                for k in kernels]
    assert choose(_layer(), declines).function == "tb_early_softmax_s8"


def test_each_layer_and_plan_json_record_the_plugin_that_gave_its_kernel():
    from tbtest import mlperf_model
    from tinybuild import codegen, kernel_registry, lower, planner
    from tinybuild.importer import load_graph
    graph = load_graph(mlperf_model("kws_ref_model.tflite"))
    pm = plugins.make_plugin_manager()
    kernels = plugins.kernels(pm, plugins.find_target(pm, "cortex-m4"))
    layers = kernel_registry.select_kernels(lower.lower_graph(graph), kernels)
    record = codegen.plan_record(graph, layers, planner.plan_memory(graph, layers))
    by_plugin = {}
    for layer in record["layers"]:
        by_plugin.setdefault(layer["plugin"], set()).add(layer["kernel"])
    cm4 = [p for p in by_plugin if "targets/cortex_m4/plugin.py" in p]
    assert len(cm4) == 1 and "tb_cm4_conv2d_s8" in by_plugin[cm4[0]]
    assert by_plugin["tinybuild (reference kernels)"] <= set(kernel_registry.REFERENCE.values())


# -- every hook call goes through pluggy ------------------------------------------------

def test_trace_shows_the_list_hooks_and_the_plugin_each_call_goes_to(monkeypatch, capsys):
    monkeypatch.setenv("TINYBUILD_TRACE", "1")
    pm = plugins.make_plugin_manager()
    plugins.kernels(pm, plugins.find_target(pm, "cortex-m4"))
    plugins.simulators(pm)
    err = capsys.readouterr().err
    for hook in ("tinybuild_targets", "tinybuild_kernels", "tinybuild_simulators"):
        assert f"  {hook} [hook]" in err and f"finish {hook} -->" in err
    assert "tinybuild_kernels of tinybuild_builtin_targets_cortex_m4.plugin" in err


def test_targets_command_with_trace_shows_target_hook_calls():
    import os
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "tinybuild", "targets"], capture_output=True,
                            text=True, cwd=plugins.PROJECT_ROOT, env={**os.environ, "TINYBUILD_TRACE": "1"})
    assert result.returncode == 0
    assert "tinybuild_targets [hook]" in result.stderr and "tinybuild_find_toolchain [hook]" in result.stderr


def test_a_model_importer_dict_comes_through_whole(tmp_path):
    _write(tmp_path, "onnx_front.py", '''
        from tinybuild.hookspecs import hookimpl
        def convert(src, dst, calibration, report_path):
            return {}
        @hookimpl
        def tinybuild_model_importers():
            return {".onnx": convert}
        ''')
    found = plugins.collect(plugins.make_plugin_manager([tmp_path]), "tinybuild_model_importers")
    assert [sorted(m) for label, m in found if "onnx_front" in label] == [[".onnx"]]


def test_doctor_reports_a_bad_board_and_still_checks_the_simulators(tmp_path):
    import subprocess
    import sys
    _board(tmp_path, clock="0", script=None)
    result = subprocess.run([sys.executable, "-m", "tinybuild", "--plugins", str(tmp_path), "doctor"],
                            capture_output=True, text=True, cwd=plugins.PROJECT_ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    targets = result.stdout.split("\ntargets:\n")[1]
    assert targets.startswith("  error: plugin") and "hostile_board.py" in targets.splitlines()[0]
    assert "\nsimulators:\n" in targets and "unicorn" in targets.split("\nsimulators:\n")[1]
