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
from tinybuild.errors import TinybuildError

SCONS = Path(sys.executable).with_name("scons")
MODEL = ROOT / "models" / "kws.h5"
AD01 = ROOT.parent / "shared" / "models" / "mlperf_tiny" / "ad01_int8.tflite"


def _scons(build_dir: Path, *args: str, model: Path = MODEL) -> subprocess.CompletedProcess:
    cmd = [str(SCONS), "-C", str(ROOT), "-Q", f"build_dir={build_dir}", f"model={model}", *args]
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
    budget = {"SRAM1": 1100 + placement.MARGIN_BYTES}
    assert [c.symbol for c in placement.choose(found, budget, "ram")] == ["dense", "big"]
    # auto leaves a quarter of the free RAM (at most 16 KiB) to the application
    assert [c.symbol for c in placement.choose(found, budget, "auto")] == ["dense", "thin"]
    assert placement.choose(found, {"SRAM1": placement.MARGIN_BYTES + 99}, "ram") == []
    assert placement.choose(found, {}, "ram") == []


def test_each_constant_goes_to_the_first_region_it_still_fits_in():
    # per byte: dense 10, big 2, mid 1.5, thin 0.1; SRAM1 takes dense (100) and then has
    # 400 left: big (1000) goes on to SRAM3, mid (300) still fits SRAM1, thin (500) SRAM3.
    found = [_cand("big", 1000, 2000), _cand("dense", 100, 1000), _cand("thin", 500, 50),
             _cand("mid", 300, 450)]
    free = {"SRAM1": 500 + placement.MARGIN_BYTES, "SRAM3": 1500 + placement.MARGIN_BYTES}
    chosen = placement.choose(found, free, "ram")
    assert [(c.symbol, c.region) for c in chosen] == [
        ("dense", "SRAM1"), ("big", "SRAM3"), ("mid", "SRAM1"), ("thin", "SRAM3")]
    # one byte less in SRAM3: thin no longer fits anywhere and is left in flash
    free["SRAM3"] -= 1
    assert [c.symbol for c in placement.choose(found, free, "ram")] == ["dense", "big", "mid"]
    # the order of the regions is the preference: SRAM3 first takes what fits there first
    first3 = placement.choose(found, {"SRAM3": free["SRAM3"], "SRAM1": free["SRAM1"]}, "ram")
    assert [(c.symbol, c.region) for c in first3][:2] == [("dense", "SRAM3"), ("big", "SRAM3")]


def test_auto_keeps_its_reserve_in_every_region():
    free = {"SRAM1": 100_000, "SRAM3": 8_000}
    # a quarter of what is free, at most AUTO_RESERVE_MAX, per region
    assert placement.budget(100_000, "auto") == 100_000 - placement.MARGIN_BYTES - 16 * 1024
    assert placement.budget(8_000, "auto") == 8_000 - placement.MARGIN_BYTES - 2_000
    assert placement.budget(8_000, "ram") == 8_000 - placement.MARGIN_BYTES
    exact = [_cand("a", 100_000 - placement.MARGIN_BYTES - 16 * 1024, 10**8),
             _cand("b", 6_000 - placement.MARGIN_BYTES, 10**5)]
    assert [(c.symbol, c.region) for c in placement.choose(exact, free, "auto")] == [
        ("a", "SRAM1"), ("b", "SRAM3")]
    exact[1].bytes += 4           # one word more than SRAM3's budget
    assert [c.symbol for c in placement.choose(exact, free, "auto")] == ["a"]


def test_sections_are_named_for_their_region():
    assert placement.ram_section("tb_L3_filter", "SRAM1", "SRAM1") == ".ramdata.tb_L3_filter"
    assert placement.ram_section("tb_L3_filter", "SRAM3", "SRAM1") == ".ramdata_SRAM3.tb_L3_filter"


def test_the_boards_offer_their_banks(targets):
    assert placement.bank_names(targets["nucleo-l4r5zi"]) == ["SRAM3", "SRAM2"]
    assert placement.bank_names(targets["cortex-m4"]) == ["CCMRAM"]
    # nrf52840 links the cortex-m4 startup but its linker script has no bank; riscv has none
    assert placement.bank_names(targets["nrf52840"]) == []
    assert placement.bank_names(targets["riscv"]) == []


def _board(targets, tmp_path, script_text: str, startup_text: str):
    script, startup = tmp_path / "board.ld", tmp_path / "startup.c"
    script.write_text(script_text)
    startup.write_text(startup_text)
    return dataclasses.replace(targets["nucleo-l4r5zi"], linker_script=script,
                               startup_sources=(startup,))


def test_a_bank_needs_a_startup_that_copies_it_and_a_ram_region(targets, tmp_path):
    bank = "  .ramdata_SRAM3 : { *(.ramdata_SRAM3.*) } > SRAM3 AT > FLASH\n"
    copies = "#ifdef TB_PLACE_BANKS\n/* copy */\n#endif\n"
    assert placement.bank_names(_board(targets, tmp_path, bank, copies)) == ["SRAM3"]
    # a startup that knows nothing of banks: the section is not offered
    assert placement.bank_names(_board(targets, tmp_path, bank, "void f(void) {}\n")) == []
    bad = bank.replace("SRAM3", "SRAM9")
    with pytest.raises(TinybuildError) as err:
        placement.bank_names(_board(targets, tmp_path, bad, copies))
    assert "\n" not in str(err.value) and ".ramdata_SRAM9" in str(err.value)
    assert "no RAM region SRAM9" in str(err.value)


def _record(regions):
    placed = [{"symbol": f"tb_L{i}_filter", "layer": i, "role": "filter", "bytes": n,
               "cycles_saved": 10 * n, "address": 0x2000_0000 + i, "region": name}
              for i, (name, n) in enumerate(regions) if n]
    return {"place": "auto", "placed": placed, "ram_bytes": sum(n for _, n in regions),
            "cycles_saved_estimate": 10 * sum(n for _, n in regions), "region": regions[0][0],
            "free_bytes": 200_000, "memory_model": "stm32l4r5-art", "wait_states": 5,
            "line_bytes": 8, "note": "",
            "regions": [{"name": name, "free_bytes": 200_000, "placed_bytes": n}
                        for name, n in regions]}


def test_summary_and_report_name_the_region_of_each_constant():
    one = _record([("SRAM1", 1000), ("SRAM3", 0)])
    assert placement.summary_line(one).endswith("1,000 B to SRAM1 (est. 10,000 flash wait cycles saved)")
    two = _record([("SRAM1", 173_456), ("SRAM3", 98_304), ("SRAM2", 0)])
    line = placement.summary_line(two)
    assert "271,760 B to SRAM1 173,456 B + SRAM3 98,304 B (est." in line and "SRAM2" not in line
    md = "\n".join(placement.markdown(two))
    assert "| 0 | tb_L0_filter | 173,456 | SRAM1 | 0x20000000 |" in md
    assert "| 1 | tb_L1_filter | 98,304 | SRAM3 | 0x20000001 |" in md
    assert "SRAM2 0 of 200,000 B" in md


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
    flash_dir, auto_dir = builds["nucleo-l4r5zi", "flash"][0], builds["nucleo-l4r5zi", "auto"][0]
    flash = json.loads((flash_dir / "report.json").read_text())
    auto = json.loads((auto_dir / "report.json").read_text())
    # Only a kernel that copies its weights out of flash (the cm4 conv's channel
    # quads) runs differently once they sit in RAM: it skips the copy. The copy and
    # its note exist only with place=flash (place=auto reserves no copy scratch).
    notes = {l["index"]: " ".join(l["notes"])
             for l in json.loads((flash_dir / "plan.json").read_text())["layers"]}
    for a, f in zip(auto["layers"], flash["layers"]):
        if "left in flash is copied" in notes[a["index"]]:
            assert a["instructions"] < f["instructions"]
            assert a["cycles"] - a["memory_cycles"] < f["cycles"] - f["memory_cycles"]
        else:
            assert a["instructions"] == f["instructions"], a["index"]
            assert a["cycles"] - a["memory_cycles"] == f["cycles"] - f["memory_cycles"], a["index"]
    assert auto["inference"]["memory_cycles"] < flash["inference"]["memory_cycles"] / 2


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
    free = placement.ram_regions(tdir / "firmware.elf", target)
    assert list(free) == ["RAM", "CCMRAM"] and free["CCMRAM"] == 64 * 1024
    tight = dataclasses.replace(target, memory=tuple(
        dataclasses.replace(r, length=r.length - free.get(r.name, 0)) for r in target.memory))
    plan = json.loads((tdir / "plan.json").read_text())
    record, chosen = placement.decide(tdir / "firmware.elf", tight, "auto", plan)
    assert chosen == [] and record["placed"] == [] and record["free_bytes"] == 0
    assert record["note"].startswith("no RAM left for constants: 0 B free in RAM, 0 B free in CCMRAM")
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


# -- several RAM banks: MLPerf Tiny AD01's 270 KB of weights outgrow SRAM1 --------------


@pytest.fixture(scope="module")
def ad01_builds(tmp_path_factory):
    if not AD01.exists():
        pytest.skip(f"{AD01} is not here (the shared MLPerf Tiny models)")
    root = tmp_path_factory.mktemp("banks")
    out = {}
    for target, place in (("nucleo-l4r5zi", "flash"), ("nucleo-l4r5zi", "auto"), ("cortex-m4", "auto")):
        proc = _scons(root, f"target={target}", f"place={place}", "inputs=2", model=AD01)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        out[target, place] = (root / target / f"ad01_int8{placement.variant_suffix(place)}", proc.stdout)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("board, bank", [("nucleo-l4r5zi", "SRAM3"), ("cortex-m4", "CCMRAM")])
def test_constants_beyond_the_data_region_go_to_the_next_bank(ad01_builds, targets, board, bank):
    tdir, stdout = ad01_builds[board, "auto"]
    target, elf = targets[board], tdir / "firmware.elf"
    report = json.loads((tdir / "report.json").read_text())
    assert report["validation"]["match"]         # the startup copied every bank from flash
    record = json.loads((tdir / "placement.json").read_text())
    used = {r["name"]: r["placed_bytes"] for r in record["regions"] if r["placed_bytes"]}
    assert set(used) == {record["region"], bank}
    sections, symbols = _sections(elf), _symbols(elf)
    bank_at, bank_size, bank_bytes = sections[f".ramdata_{bank}"]
    assert target.region_of(bank_at).name == bank
    for p in record["placed"]:
        address, size = symbols[p["symbol"]]
        assert target.region_of(address).name == p["region"] and address == p["address"]
        if p["region"] == bank:                  # in the bank's section, its bytes from flash
            assert bank_at <= address and address + size <= bank_at + bank_size
    assert sum(p["bytes"] for p in record["placed"] if p["region"] == bank) == used[bank]
    assert f"{record['region']} {used[record['region']]:,} B + {bank} {used[bank]:,} B" in stdout
    assert f"| {bank} |" in (tdir / "report.md").read_text()


@pytest.mark.slow
def test_the_bank_takes_the_flash_wait_that_was_left(ad01_builds):
    flash, auto = (json.loads((ad01_builds["nucleo-l4r5zi", p][0] / "report.json").read_text())
                   for p in ("flash", "auto"))
    assert auto["inference"]["instructions"] == flash["inference"]["instructions"]
    core = lambda r: r["inference"]["cycles"] - r["inference"]["memory_cycles"]  # noqa: E731
    assert core(auto) == core(flash)
    # every weight of AD01 now in SRAM: the flash wait left is instruction fetches only
    assert auto["inference"]["memory_cycles"] < flash["inference"]["memory_cycles"] / 20
