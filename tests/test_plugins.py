"""Plugin discovery: boards from a folder, clear errors for broken plugins."""
import textwrap

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
