"""Toolchain providers: explicit path, xPack layouts, PATH, and the error."""
import os
from dataclasses import replace

import pytest

from tinybuild import plugins, toolchains
from tinybuild.errors import TinybuildError


def _fake_gcc(bin_dir, triple="arm-none-eabi", version="13.2.1"):
    bin_dir.mkdir(parents=True, exist_ok=True)
    gcc = bin_dir / f"{triple}-gcc"
    gcc.write_text(f"#!/bin/sh\necho {version}\n")
    gcc.chmod(0o755)
    return bin_dir


@pytest.fixture
def target():
    return plugins.find_target(plugins.make_plugin_manager(), "cortex-m4")


def test_explicit_path_wins(tmp_path, target):
    bin_dir = _fake_gcc(tmp_path / "gcc" / "bin")
    pm = plugins.make_plugin_manager()
    tc = pm.hook.tinybuild_find_toolchain(target=target, explicit_path=str(tmp_path / "gcc"))
    assert tc.source == "explicit" and tc.bin_dir == bin_dir and tc.version == "13.2.1"


def test_explicit_path_without_gcc_is_an_error(tmp_path, target):
    pm = plugins.make_plugin_manager()
    with pytest.raises(TinybuildError, match="no arm-none-eabi-gcc there"):
        pm.hook.tinybuild_find_toolchain(target=target, explicit_path=str(tmp_path))


def test_xpack_global_store_newest_version_first(tmp_path, target):
    store = tmp_path / ".local" / "xPacks" / "@xpack-dev-tools" / "arm-none-eabi-gcc"
    _fake_gcc(store / "12.3.1-1.2" / ".content" / "bin")
    _fake_gcc(store / "13.2.1-1.1" / ".content" / "bin")
    dirs = toolchains.xpack_bin_dirs(target, home=tmp_path)
    assert dirs[1] == store / "13.2.1-1.1" / ".content" / "bin"
    assert dirs[2] == store / "12.3.1-1.2" / ".content" / "bin"


def test_path_provider_finds_debian_gcc(target, monkeypatch, tmp_path):
    _fake_gcc(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("TINYBUILD_TOOLCHAIN", raising=False)
    tc = toolchains.PathProvider().tinybuild_find_toolchain(target, None)
    assert tc.source == "PATH" and tc.bin_dir == tmp_path


def test_missing_toolchain_names_the_ways_to_get_one(target, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    pm = plugins.make_plugin_manager()
    unknown = replace(target, triple="z80-none-elf")
    assert pm.hook.tinybuild_find_toolchain(target=unknown, explicit_path=None) is None
    msg = str(toolchains.missing_toolchain_error(target))
    assert "apt-get install gcc-arm-none-eabi" in msg and "xpm" in msg and "toolchain=" in msg
