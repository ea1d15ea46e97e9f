"""place=: constants copied to RAM at reset (tinybuild/placement.py, docs/placement.md)."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tbtest import ROOT
from tinybuild import linkcheck, placement, plugins

SCONS = Path(sys.executable).with_name("scons")
MODEL = ROOT / "models" / "kws.h5"


def _scons(build_dir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [str(SCONS), "-C", str(ROOT), "-Q", f"build_dir={build_dir}", f"model={MODEL}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), timeout=1800)


def _sections(elf: Path) -> dict:
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as f:
        return {s.name: (s["sh_addr"], s["sh_size"], s.data() if s["sh_type"] != "SHT_NOBITS" else b"")
                for s in ELFFile(f).iter_sections() if s["sh_flags"] & 0x2}


def _symbols(elf: Path) -> dict:
    return {name: (address, size) for name, address, size in placement._objects(elf)}


@pytest.fixture(scope="module")
def targets():
    return plugins.targets(plugins.make_plugin_manager())


# -- the decision, on numbers worked out by hand -------------------------------------


class _Model:            # stm32l4r5-art's geometry: 8-byte lines, 32 data-cache lines
    line_bytes = 8
    dcache = type("C", (), {"lines": 32})()


def test_estimate_counts_lines_passes_and_wait_states():
    # 64x64 1x1 conv over 125 positions: 4,096 B of weights (+ 256 B bias) outgrow the
    # 256 B data cache, so each of 125 / 4 = 31 passes misses all 512 + 32 lines.
    conv = {"op": "CONV_2D", "macs": 4096 * 125}
    saved = placement.estimate(conv, [("w", 4096), ("b", 256)], _Model, 5)
    assert saved == {"w": 512 * 31 * 5, "b": 32 * 31 * 5}
    # 200 B in all fit the cache: read from flash once.
    small = {"op": "FULLY_CONNECTED", "macs": 160 * 10}
    assert placement.estimate(small, [("w", 160), ("b", 40)], _Model, 5) == {"w": 20 * 5, "b": 5 * 5}


def _cand(name, size, saved):
    return placement.Candidate(name, 0, "w", size, saved)


def test_greedy_takes_the_most_saving_per_byte_that_fits():
    found = [_cand("big", 1000, 2000), _cand("dense", 100, 1000), _cand("thin", 500, 50)]
    budget = 1100 + placement.MARGIN_BYTES
    assert [c.symbol for c in placement.choose(found, budget, "ram")] == ["dense", "big"]
    # auto leaves a quarter of the free RAM (at most 16 KiB) to the application
    assert [c.symbol for c in placement.choose(found, budget, "auto")] == ["dense", "thin"]
    assert placement.choose(found, placement.MARGIN_BYTES + 99, "ram") == []


def test_unknown_place_is_one_line(tmp_path):
    with pytest.raises(Exception) as err:
        placement.check_place("sram")
    assert str(err.value).count("\n") == 0 and "flash, auto, ram" in str(err.value)
    proc = _scons(tmp_path, "target=cortex-m4", "place=sram")
    assert proc.returncode != 0
    lines = [l for l in (proc.stdout + proc.stderr).splitlines() if l.strip()]
    assert len(lines) == 1 and "place" in lines[0] and "sram" in lines[0], lines
    assert "Traceback" not in proc.stderr


# -- builds -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """kws.h5 on cortex-m4 and nucleo-l4r5zi, place=flash and place=auto (one conversion)."""
    root = tmp_path_factory.mktemp("place")
    out = {}
    for target in ("cortex-m4", "nucleo-l4r5zi"):
        for place in ("flash", "auto"):
            proc = _scons(root, f"target={target}", f"place={place}", "inputs=2")
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
            tdir = root / target / f"kws{placement.variant_suffix(place)}"
            out[target, place] = (tdir, proc.stdout)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("board", ["cortex-m4", "nucleo-l4r5zi"])
def test_auto_places_constants_in_ram_and_still_matches(builds, targets, board):
    tdir, stdout = builds[board, "auto"]
    target = targets[board]
    report = json.loads((tdir / "report.json").read_text())
    assert report["validation"]["match"]
    record = json.loads((tdir / "placement.json").read_text())
    assert record["placed"] and record["ram_bytes"] == sum(p["bytes"] for p in record["placed"])
    symbols, sections = _symbols(tdir / "firmware.elf"), _sections(tdir / "firmware.elf")
    data_at, data_size, _ = sections[".data"]
    for p in record["placed"]:           # in .data, in the region the record names
        address, size = symbols[p["symbol"]]
        assert data_at <= address and address + size <= data_at + data_size
        assert target.region_of(address).name == record["region"] == (
            "SRAM1" if board == "nucleo-l4r5zi" else "RAM")
    flash_symbols = _symbols(builds[board, "flash"][0] / "firmware.elf")
    for name in flash_symbols.keys() - {p["symbol"] for p in record["placed"]}:
        if name.startswith("tb_L"):      # the rest stay where place=flash has them: flash
            assert target.region_of(symbols[name][0]).kind == \
                target.region_of(flash_symbols[name][0]).kind
    # RAM grows by the placed bytes (plus alignment), flash stays within them
    flash_report = json.loads((builds[board, "flash"][0] / "report.json").read_text())
    assert 0 <= report["ram"]["used"] - flash_report["ram"]["used"] - record["ram_bytes"] < 64
    assert report["placement"] == record
    assert "placement   place=auto:" in stdout and f"B to {record['region']}" in stdout
    assert "## Placement" in (tdir / "report.md").read_text()


@pytest.mark.slow
def test_auto_saves_flash_wait_cycles_on_nucleo(builds):
    flash = json.loads((builds["nucleo-l4r5zi", "flash"][0] / "report.json").read_text())["inference"]
    auto = json.loads((builds["nucleo-l4r5zi", "auto"][0] / "report.json").read_text())["inference"]
    assert auto["instructions"] == flash["instructions"]
    assert auto["cycles"] - auto["memory_cycles"] == flash["cycles"] - flash["memory_cycles"]
    assert auto["memory_cycles"] < flash["memory_cycles"] / 2


@pytest.mark.slow
@pytest.mark.parametrize("board", ["cortex-m4", "nucleo-l4r5zi"])
def test_place_flash_links_as_the_script_without_ramdata(builds, targets, board, tmp_path):
    """The linker scripts' .ramdata line changes nothing when no section is named so:
    the place=flash objects relinked with the line removed give the same sections."""
    tdir, _ = builds[board, "flash"]
    assert not (tdir / "placement.json").exists()
    target = targets[board]
    script = tmp_path / "without_ramdata.ld"
    script.write_text("".join(l for l in Path(target.linker_script).read_text().splitlines(True)
                              if placement.LINKER_MARKER not in l))
    objects = [l.split()[1] for l in (tdir / "firmware.map").read_text().splitlines()
               if l.startswith("LOAD ") and l.split()[1].endswith(".o")]
    assert any(o.endswith("model.o") for o in objects)
    bin_dir = json.loads((tdir / "report.json").read_text())["toolchain"]["bin_dir"]
    gcc = type("T", (), {"tool": staticmethod(lambda n: str(Path(bin_dir) / f"arm-none-eabi-{n}"))})()
    elf = tmp_path / "firmware.elf"
    cmd = linkcheck.link_command(gcc, dataclasses.replace(target, linker_script=script), objects,
                                 elf, tmp_path / "firmware.map", "O2")
    subprocess.run(cmd, check=True, capture_output=True)
    assert _sections(elf) == _sections(tdir / "firmware.elf")


@pytest.mark.slow
def test_no_ram_left_places_nothing_and_says_so(builds, targets):
    """The same firmware on a board whose .data region it already fills."""
    tdir, _ = builds["cortex-m4", "flash"]
    target = targets["cortex-m4"]
    region, free = placement.data_region(tdir / "firmware.elf", target)
    full = dataclasses.replace(region, length=region.length - free)
    tight = dataclasses.replace(target, memory=tuple(full if r.name == region.name else r
                                                     for r in target.memory))
    plan = json.loads((tdir / "plan.json").read_text())
    record, chosen = placement.decide(tdir / "firmware.elf", tight, "auto", plan)
    assert chosen == [] and record["placed"] == [] and record["free_bytes"] == 0
    assert record["note"].startswith("no RAM left for constants: 0 B free in RAM")
    line = placement.summary_line(record)
    assert "nothing placed" in line and "\n" not in line
    # the roomy board does place something
    assert placement.decide(tdir / "firmware.elf", target, "auto", plan)[1]


@pytest.mark.slow
def test_a_board_without_ramdata_in_its_linker_script_places_nothing(builds, targets, tmp_path):
    assert not placement.supported(targets["riscv"]) and placement.supported(targets["cortex-m4"])
    tdir, _ = builds["cortex-m4", "flash"]
    script = tmp_path / "old.ld"
    script.write_text("".join(l for l in Path(targets["cortex-m4"].linker_script).read_text()
                              .splitlines(True) if placement.LINKER_MARKER not in l))
    old = dataclasses.replace(targets["cortex-m4"], linker_script=script)
    record, chosen = placement.decide(tdir / "firmware.elf", old, "ram",
                                      json.loads((tdir / "plan.json").read_text()))
    assert chosen == [] and "linker script has no .ramdata section: nothing placed" in record["note"]
