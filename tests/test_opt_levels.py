"""opt=: every documented level builds, runs and validates on every built-in board.

Kernel sources whose inline assembly does not compile below some level declare
it (``KernelImpl.min_opt``, or ``KERNEL_MIN_OPT`` in their plugin module: the
Cortex-M4 plugin says O2); a build at a lower level compiles those files at
that level and everything else (model.c, reference kernels, runtime, startup)
at its own. The fast tests pin the selection; the slow ones build KWS at -O0
on cortex-m4 and on riscv, check each object's level in the ELF's DWARF
producer strings, the report, the export, and that the SCons signature follows
the level actually used.
"""
import json
import re
import subprocess
from pathlib import Path

import pytest

from tbtest import ROOT
from test_export import Board, cmake_app, make_app, one_error_line, run_and_validate, scons, write_app
from tinybuild import export, kernel_registry, plugins, scons_tool
from tinybuild.kernel_registry import KernelImpl, compile_level, compile_levels

CM4_KERNELS = ROOT / "targets" / "cortex_m4" / "kernels"


# -- which level each file gets ----------------------------------------------------------------

@pytest.mark.parametrize("opt, min_opt, level", [
    ("O0", "O2", "O2"), ("O1", "O2", "O2"), ("O2", "O2", "O2"), ("O3", "O2", "O3"),
    ("Os", "O2", "Os"), ("O0", "", "O0"), ("O2", "O3", "O3"), ("Os", "O3", "O3"), ("O0", "O1", "O1")])
def test_a_file_is_compiled_at_the_build_level_raised_to_its_minimum(opt, min_opt, level):
    assert compile_level(opt, min_opt) == level


def _impl(function, sources, min_opt="", plugin="p"):
    return KernelImpl("ADD", function, tuple(Path(s) for s in sources), min_opt=min_opt, plugin=plugin)


def test_only_the_sources_of_kernels_that_need_more_are_raised():
    kernels = [_impl("asm_add", ["a.c", "shared.c"], "O2"), _impl("c_add", ["c.c", "shared.c"]),
               _impl("o3_add", ["d.c"], "O3")]
    assert compile_levels(kernels, "O0") == {Path("a.c"): "O2", Path("shared.c"): "O2",
                                             Path("d.c"): "O3"}
    assert compile_levels(kernels, "O2") == {Path("d.c"): "O3"}
    assert compile_levels(kernels, "O3") == {}


def test_a_file_listed_by_two_kernels_gets_the_higher_minimum():
    kernels = [_impl("f", ["x.c"], "O3"), _impl("g", ["x.c"], "O1")]
    assert compile_levels(kernels, "O0") == {Path("x.c"): "O3"}
    assert compile_levels(list(reversed(kernels)), "O0") == {Path("x.c"): "O3"}


def test_a_plugin_minimum_is_the_default_of_its_kernels_only():
    kernels = [_impl("f", ["f.c"], plugin="asm plugin"), _impl("g", ["g.c"], plugin="c plugin"),
               _impl("h", ["h.c"], "O1", plugin="asm plugin")]
    levels = compile_levels(kernels, "O0", {"asm plugin": "O2", "c plugin": ""})
    assert levels == {Path("f.c"): "O2", Path("h.c"): "O1"}


def test_the_cortex_m4_plugin_raises_all_its_kernel_sources_at_o0_and_o1_only():
    pm = plugins.make_plugin_manager([])
    target = plugins.find_target(pm, "cortex-m4")
    contributed = plugins.kernels(pm, target)
    defaults = scons_tool.plugin_min_opt(pm)
    sources = {Path(p) for k in contributed for p in k.sources}
    assert sources and all(p.parent == CM4_KERNELS for p in sources)
    for opt in ("O0", "O1"):
        assert compile_levels(contributed, opt, defaults) == {p: "O2" for p in sources}
    for opt in ("O2", "O3", "Os"):
        assert compile_levels(contributed, opt, defaults) == {}
    riscv = plugins.find_target(pm, "riscv")
    assert compile_levels(plugins.kernels(pm, riscv), "O0", defaults) == {}


@pytest.mark.parametrize("bad", ["O4", "-O2", "o2", 2, None])
def test_a_bad_min_opt_is_named_with_the_levels(bad):
    problem = kernel_registry.problems(_impl("tb_add", [], bad if bad is not None else []))
    assert problem and "min_opt must be" in problem[0] and "O0, O1, O2, Os, O3" in problem[0]


def test_a_plugin_with_a_bad_kernel_min_opt_stops_the_build_in_one_line(tmp_path):
    plugin = tmp_path / "bad_min_opt.py"
    plugin.write_text("from tinybuild.hookspecs import hookimpl\nKERNEL_MIN_OPT = 'fast'\n\n"
                      "@hookimpl\ndef tinybuild_kernels(target):\n    return []\n")
    line = one_error_line(scons(tmp_path / "build", "target=cortex-m4", "model=kws.h5",
                                f"plugins={tmp_path}"))
    assert "bad_min_opt" in line and "KERNEL_MIN_OPT" in line and "O0, O1, O2, Os, O3" in line


def test_the_summary_says_which_files_were_raised():
    record = {"opt": "O0", "opt_files": {"a_s8.c": "O2", "b_s8.c": "O2"}}
    assert kernel_registry.opt_summary(record) == "-O0 (2 kernel files at -O2: report.md)"
    assert kernel_registry.opt_summary({"opt": "O2", "opt_files": {}}) == "-O2"
    note = kernel_registry.opt_files_note("O0", record["opt_files"])
    assert "-O0" in note and "-O2: a_s8.c, b_s8.c" in note


# -- the export carries the same levels ---------------------------------------------------------

def _facts(opt, opt_files):
    return {"title": "t", "model": "m", "package": "p", "target": "cortex-m4", "cpu": "cortex-m4",
            "triple": "arm-none-eabi", "cpu_flags": ["-mthumb"], "opt": opt, "opt_files": opt_files,
            "version": "0", "sha256": "0"}


def test_every_export_kind_compiles_raised_files_at_their_level():
    facts = _facts("O0", {"k_s8.c": "O2"})
    sources = ["src/model.c", "src/k_s8.c"]
    make = export.makefile(facts, sources)
    assert "$(TB_BUILD)/k_s8.o: TB_FILE_OPT = -O2" in make
    assert "$(TB_OPT) $(TB_FILE_OPT)" in make          # after the library's level: it wins
    for text in (export.cmakelists(facts, sources), export.esp_idf_files(dict(facts, target="esp32c3"), sources)["CMakeLists.txt"],
                 export.zephyr_files(facts, sources)["CMakeLists.txt"]):
        assert re.search(r"set_source_files_properties\(src/k_s8\.c\s+PROPERTIES COMPILE_OPTIONS -O2\)",
                         text), text
    assert json.loads(export.platformio_json(facts))["build"]["flags"][0] == "-O2"


def test_an_export_without_raised_files_is_unchanged():
    facts = _facts("O2", {})
    sources = ["src/model.c", "src/k_s8.c"]
    assert "TB_FILE_OPT =" not in export.makefile(facts, sources)
    assert "set_source_files_properties" not in export.cmakelists(facts, sources)
    assert json.loads(export.platformio_json(facts))["build"]["flags"][0] == "-O2"


# -- whole builds at -O0 --------------------------------------------------------------------------

def object_levels(elf: Path) -> dict[str, str]:
    """Each compile unit's source file name -> the -O level its DWARF producer string records
    (the files compiled here; the C library's units name its packager's build folders)."""
    from elftools.elf.elffile import ELFFile
    levels = {}
    with open(elf, "rb") as f:
        for cu in ELFFile(f).get_dwarf_info().iter_CUs():
            top = cu.get_top_DIE().attributes
            if "DW_AT_producer" not in top or "DW_AT_name" not in top:
                continue
            folder = top["DW_AT_comp_dir"].value.decode() if "DW_AT_comp_dir" in top else ""
            name = Path(folder) / top["DW_AT_name"].value.decode()
            if not name.is_file():
                continue
            found = re.findall(r"(?:^| )-(O[0-3s])\b", top["DW_AT_producer"].value.decode())
            if found:
                levels[name.name] = found[-1]
    return levels


def compiled(result) -> set[str]:
    """The source file names SCons compiled in this run (its `[cc] board: path` lines)."""
    return {Path(line.rsplit(": ", 1)[1]).name for line in result.stdout.splitlines()
            if line.startswith("[cc] ")}


@pytest.fixture(scope="module")
def cm4_o0(tmp_path_factory):
    build = tmp_path_factory.mktemp("opt-o0-cm4")
    result = scons(build, "target=cortex-m4", "model=kws.h5", "opt=O0", "export=c")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return build, result


@pytest.mark.slow
def test_kws_builds_and_validates_at_o0_on_cortex_m4_with_the_kernels_at_o2(cm4_o0):
    build, result = cm4_o0
    tdir = build / "cortex-m4" / "kws"
    report = json.loads((tdir / "report.json").read_text())
    assert report["validation"]["match"] is True and report["opt"] == "O0"
    raised = report["opt_files"]
    assert raised and set(raised.values()) == {"O2"}
    assert all((CM4_KERNELS / name).is_file() for name in raised)
    levels = object_levels(tdir / "firmware.elf")
    assert levels["model.c"] == "O0" and levels["tb_runtime.c"] == "O0"
    for name, level in levels.items():
        assert level == raised.get(name, "O0"), name
    assert f"-O0 ({len(raised)} kernel files at -O2: report.md)" in result.stdout
    assert "at the lowest level their plugin declares" in (tdir / "report.md").read_text()


def last_level(command: str) -> str:
    return re.findall(r"(?:^| )-(O[0-3s])\b", command)[-1]


def make_levels(lib: Path, out: Path) -> dict[str, str]:
    """Source name -> the last -O of its compile command in the export's Makefile (make -n)."""
    result = subprocess.run(["make", "-n", "-C", str(lib), f"TB_BUILD={out}"], capture_output=True,
                            text=True, check=True)
    return {Path(re.search(r" -c (\S+\.c) ", line).group(1)).name: last_level(line)
            for line in result.stdout.splitlines() if " -c " in line}


def cmake_levels(board: Board, lib: Path, out: Path) -> dict[str, str]:
    """The same from the export's CMakeLists.txt (compile_commands.json)."""
    subprocess.run(["cmake", "-S", str(lib), "-B", str(out), f"-DCMAKE_C_COMPILER={board.gcc()}",
                    "-DCMAKE_SYSTEM_NAME=Generic", "-DCMAKE_TRY_COMPILE_TARGET_TYPE=STATIC_LIBRARY",
                    "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"], capture_output=True, check=True)
    return {Path(c["file"]).name: last_level(c["command"])
            for c in json.loads((out / "compile_commands.json").read_text())}


@pytest.mark.slow
def test_the_o0_export_builds_with_the_same_levels_and_matches_tflite(cm4_o0, tmp_path):
    build, _ = cm4_o0
    lib = build / "cortex-m4" / "kws" / "export" / "c"
    raised = json.loads((build / "cortex-m4" / "kws" / "report.json").read_text())["opt_files"]
    assert ", except -O2 for " in (lib / "README.md").read_text()
    board = Board("cortex-m4")
    for levels in (make_levels(lib, tmp_path / "make-n"), cmake_levels(board, lib, tmp_path / "cm")):
        assert levels["model.c"] == "O0" and levels["tinybuild_model.c"] == "O0"
        assert {name: level for name, level in levels.items() if level != "O0"} == raised
    for builder in (make_app, cmake_app):
        elf = builder(board, lib, write_app(tmp_path / builder.__name__))
        run_and_validate(board, elf, build)


@pytest.mark.slow
def test_the_level_used_is_in_each_objects_signature(cm4_o0):
    """O0 -> O2 recompiles model.c and the reference kernels, not the kernels already at -O2."""
    build, _ = cm4_o0
    raised = json.loads((build / "cortex-m4" / "kws" / "report.json").read_text())["opt_files"]
    result = scons(build, "target=cortex-m4", "model=kws.h5", "opt=O2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    again = compiled(result)
    assert "model.c" in again and "tb_runtime.c" in again
    assert not again & set(raised), again & set(raised)
    assert ", -O2\n" in result.stdout


@pytest.mark.slow
def test_kws_builds_and_validates_at_o0_on_riscv(tmp_path):
    result = scons(tmp_path, "target=riscv", "model=kws.h5", "opt=O0")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    tdir = tmp_path / "riscv" / "kws"
    report = json.loads((tdir / "report.json").read_text())
    assert report["validation"]["match"] is True and report["opt_files"] == {}
    levels = object_levels(tdir / "firmware.elf")
    assert levels["model.c"] == "O0" and levels["rv_conv_s8.c"] == "O0"
