"""export=<kind>: the validated code as a library for the user's firmware, and
firmware.bin/.hex beside the ELF.

The slow tests build KWS once per board with every export kind, then build a
small application against each exported folder (the `c` kind through its own
Makefile and CMakeLists.txt; the others from the sources their build
description lists, with the board's plain toolchain), link it with the board's
startup and linker script, run it in Unicorn and compare its output with
TFLite's reference bytes.
"""
import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tbtest import ROOT
from tinybuild import export, plugins

SCONS = Path(sys.executable).with_name("scons")


def scons(build_dir, *args, env=None):
    cmd = [str(SCONS), "-C", str(ROOT), "-Q", f"build_dir={build_dir}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env or os.environ.copy(),
                          timeout=900)


def one_error_line(result) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and ".py, line" not in result.stderr, result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith("tinybuild: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- bad input: one line each, nothing built ------------------------------------------------

def test_an_unknown_export_kind_names_the_kinds(tmp_path):
    line = one_error_line(scons(tmp_path / "b", "target=cortex-m4", "model=kws.h5",
                                "export=c,cmsis-pack"))
    assert "unknown kind 'cmsis-pack'" in line and "c, esp-idf, zephyr, arduino, platformio" in line
    assert not (tmp_path / "b" / "cortex-m4").exists()


def test_an_export_for_a_target_without_toolchain_says_so(tmp_path):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    env.pop("TINYBUILD_TOOLCHAIN", None)
    line = one_error_line(scons(tmp_path / "b", "target=cortex-m4", "model=kws.h5", "export=c",
                                env=env))
    assert "export=c: target 'cortex-m4' has no arm-none-eabi-gcc here" in line


def test_an_esp_idf_export_for_a_non_esp_target_is_refused(tmp_path):
    line = one_error_line(scons(tmp_path / "b", "target=cortex-m4", "model=kws.h5",
                                "export=esp-idf"))
    assert "export=esp-idf: target 'cortex-m4' is not an ESP32 chip" in line


def test_kinds_are_parsed_and_deduplicated():
    assert export.parse_kinds(" c, zephyr,c ") == ["c", "zephyr"]
    assert export.parse_kinds("") == []
    with pytest.raises(export.TinybuildError, match="unknown kind 'C'"):
        export.parse_kinds("C")


def test_a_model_name_cannot_break_a_manifest():
    assert export._safe_text('k"w\\s$`\n') == "k_w_s___"
    assert export._package_name("my model-2") == "tinybuild_my_model_2"


def test_help_lists_the_export_variable():
    result = subprocess.run([str(SCONS), "-C", str(ROOT), "-h"], capture_output=True, text=True,
                            timeout=120)
    assert re.search(r"^export: .*esp-idf", result.stdout, re.M), result.stdout


# -- building against the exported folders ------------------------------------------------

APP_MAIN = r"""
#include <stddef.h>
#include "tinybuild_model.h"

/* The board's startup calls tb_exit(main()); the simulator stops there. On a
 * real board this is the application's own code. Weak: the cortex-m4 startup
 * brings its own (semihosting, for QEMU). */
__attribute__((weak, noinline, used, noreturn)) void tb_exit(int code) {
  for (;;) {
    __asm__ volatile("" : : "r"(code) : "memory");
  }
}

int main(void) {
  const tb_tensor_info_t *in = tb_model_input_info(0);
  if (tb_model_init() != 0 || in == NULL || in->bytes != TB_INPUT0_SIZE) return 1;
  if (tb_model_input(0) == NULL || tb_model_input(TB_NUM_INPUTS) != NULL) return 2;
  tb_model_invoke();  /* the simulator placed the input; it reads the output */
  return tb_model_output(0) == NULL ? 3 : 0;
}
"""

APP_MAKEFILE = """\
LIB := {lib}
CC := {gcc}
CPU := {cflags}
LDFLAGS := {ldflags}
app.elf: main.c lib/libtinybuild_model.a
\t$(CC) $(CPU) -O2 -std=c99 -Wall -Wextra -Werror -I$(LIB)/include -c main.c -o main.o
\t$(CC) $(CPU) -O2 -std=c99 -I$(LIB)/include -c {startup} -o startup.o
\t$(CC) $(LDFLAGS) -O2 -nostartfiles -Wl,--gc-sections -Xlinker -Map=app.map -T {ld} -o $@ main.o startup.o \\
\t  lib/libtinybuild_model.a -Wl,--start-group -lc -lm -lgcc -Wl,--end-group
lib/libtinybuild_model.a:
\t$(MAKE) -C $(LIB) TB_BUILD=$(CURDIR)/lib TB_EXTRA_CFLAGS=-Werror
"""

APP_CMAKE = """\
cmake_minimum_required(VERSION 3.13)
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
project(app C)
add_subdirectory("${TB_EXPORT}" tinybuild_model)
target_compile_options(tinybuild_model PRIVATE -Werror)
add_executable(app.elf main.c "${TB_STARTUP}")
target_compile_options(app.elf PRIVATE ${TB_CPU_FLAGS} -O2 -Wall -Wextra -Werror)
target_link_libraries(app.elf PRIVATE tinybuild_model m)
target_link_options(app.elf PRIVATE ${TB_LDFLAGS} -nostartfiles -Wl,--gc-sections -T "${TB_LD}")
"""


class Board:
    def __init__(self, name):
        self.pm = plugins.make_plugin_manager([])
        self.target = plugins.find_target(self.pm, name)
        self.toolchain = self.pm.hook.tinybuild_find_toolchain(target=self.target, explicit_path=None)
        if self.toolchain is None:
            pytest.skip(f"no toolchain for {name}")

    def gcc(self, tool="gcc"):
        return self.toolchain.tool(tool)


def build_kws(factory, board: str, kinds: str) -> Path:
    build = factory.mktemp(f"export-{board}")
    result = scons(build, f"target={board}", "model=kws.h5", f"export={kinds}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return build


@pytest.fixture(scope="module")
def cm4_build(tmp_path_factory):
    return build_kws(tmp_path_factory, "cortex-m4", "c,zephyr,arduino,platformio")


@pytest.fixture(scope="module")
def c3_build(tmp_path_factory):
    return build_kws(tmp_path_factory, "esp32c3", "c,esp-idf")


def run_and_validate(board: Board, elf: Path, build: Path) -> None:
    """The application's output on every validation input equals TFLite's."""
    ref = json.loads((build / "models/kws/reference-n4-s1.json").read_text())
    inputs = (build / "models/kws/inputs-n4-s1.bin").read_bytes()
    expected = (build / "models/kws/reference-n4-s1.bin").read_bytes()
    n_in, n_out = ref["input_bytes"], ref["output_bytes"]
    sim = plugins.simulators(board.pm)["unicorn"]
    for i in range(ref["count"]):
        run = sim.run(elf, board.target, inputs[i * n_in:(i + 1) * n_in], detail=False)
        assert run.exit_code == 0
        assert run.output == expected[i * n_out:(i + 1) * n_out], f"input {i}"


def size_of(board: Board, elf: Path) -> dict:
    from tinybuild import size
    record = size.analyze(elf, elf.with_suffix(".map"), board.target)
    return {"flash": record["flash"]["used"], "ram": record["ram"]["used"]}


def write_app(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.c").write_text(APP_MAIN)
    return folder


def check(cmd, cwd=None):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result


def make_app(board: Board, lib: Path, app: Path) -> Path:
    t = board.target
    (app / "Makefile").write_text(APP_MAKEFILE.format(
        lib=lib, gcc=board.gcc(), cflags=" ".join(t.cflags), ldflags=" ".join(t.ldflags),
        startup=t.startup_sources[0], ld=t.linker_script))
    check(["make", "-j2", "-C", str(app)])
    return app / "app.elf"


def cmake_app(board: Board, lib: Path, app: Path) -> Path:
    t = board.target
    (app / "CMakeLists.txt").write_text(APP_CMAKE)
    out = app / "cmake-build"
    check(["cmake", "-S", str(app), "-B", str(out), f"-DCMAKE_C_COMPILER={board.gcc()}",
           f"-DCMAKE_AR={board.gcc('ar')}", f"-DTB_EXPORT={lib}", f"-DTB_STARTUP={t.startup_sources[0]}",
           f"-DTB_LD={t.linker_script}", f"-DTB_LDFLAGS={';'.join(t.ldflags)}",
           f"-DCMAKE_EXE_LINKER_FLAGS=-Xlinker -Map={out / 'app.map'}"])
    check(["cmake", "--build", str(out), "-j2"])
    return out / "app.elf"


def plain_app(board: Board, root: Path, sources: list[Path], include: Path, app: Path) -> Path:
    """The sources a build description lists, compiled with the board's plain toolchain
    at -Wall -Wextra -Werror, linked with the board's startup and linker script."""
    t = board.target
    flags = [*t.cflags, "-O2", *export.LIBRARY_FLAGS, "-Wall", "-Wextra", "-Werror", f"-I{include}"]
    objects = []
    for src in [*sources, app / "main.c", Path(t.startup_sources[0])]:
        obj = app / f"{src.stem}.o"
        check([board.gcc(), *flags, "-c", str(src), "-o", str(obj)])
        objects.append(str(obj))
    elf = app / "app.elf"
    check([board.gcc(), *t.ldflags, "-O2", "-nostartfiles", "-Wl,--gc-sections", "-Xlinker",
           f"-Map={app / 'app.map'}", "-T", str(t.linker_script), "-o", str(elf), *objects,
           "-Wl,--start-group", "-lc", "-lm", "-lgcc", "-Wl,--end-group"])
    return elf


def assert_sizes_match_firmware(board, app_elf, tdir):
    """The library's bytes are the firmware's: only the application's own code
    (main, tb_exit) and the API it calls may differ."""
    app, fw = size_of(board, app_elf), json.loads((tdir / "size.json").read_text())
    assert abs(app["flash"] - fw["flash"]["used"]) <= 512, (app, fw["flash"])
    assert app["ram"] == fw["ram"]["used"], (app, fw["ram"])


@pytest.mark.slow
@pytest.mark.parametrize("board_name", ["cortex-m4", "esp32c3"])
def test_c_export_builds_with_its_makefile_and_cmake_and_matches_tflite(board_name, request, tmp_path):
    build = request.getfixturevalue("cm4_build" if board_name == "cortex-m4" else "c3_build")
    board = Board(board_name)
    tdir = build / board_name / "kws"
    lib = tdir / "export" / "c"
    for builder in (make_app, cmake_app):
        app = write_app(tmp_path / builder.__name__)
        elf = builder(board, lib, app)
        run_and_validate(board, elf, build)
        if builder is make_app:
            assert_sizes_match_firmware(board, elf, tdir)


def listed(pattern: str, text: str, root: Path) -> list[Path]:
    found = [root / m for m in re.findall(pattern, text)]
    assert found and all(p.is_file() for p in found), found
    return found


def structure_esp_idf(root: Path) -> list[Path]:
    import yaml
    manifest = yaml.safe_load((root / "idf_component.yml").read_text())
    assert manifest["targets"] == ["esp32c3"] and manifest["version"] == export.tinybuild_version()
    cmake = (root / "CMakeLists.txt").read_text()
    assert "idf_component_register(" in cmake and 'INCLUDE_DIRS "include"' in cmake
    return listed(r'"(src/[^"]+\.c)"', cmake, root)


def structure_zephyr(root: Path) -> list[Path]:
    import yaml
    module = yaml.safe_load((root / "zephyr/module.yml").read_text())
    assert (root / module["build"]["cmake"] / "CMakeLists.txt").is_file()
    kconfig = (root / module["build"]["kconfig"]).read_text()
    assert re.search(r"^config TINYBUILD_MODEL\n\tbool ", kconfig, re.M)
    cmake = (root / "CMakeLists.txt").read_text()
    assert "if(CONFIG_TINYBUILD_MODEL)" in cmake and "zephyr_include_directories(include)" in cmake
    return listed(r"(?m)^\s+(src/\S+\.c)$", cmake, root)


def structure_arduino(root: Path) -> list[Path]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string("[library]\n" + (root / "library.properties").read_text())
    props = parser["library"]
    for key in ("name", "version", "author", "maintainer", "sentence", "paragraph", "category",
                "url", "architectures"):
        assert props.get(key), key
    assert (root / "src" / props["includes"]).is_file()
    assert not (root / "include").exists()        # Arduino puts src/ alone on the include path
    return sorted((root / "src").glob("*.c"))


def structure_platformio(root: Path) -> list[Path]:
    manifest = json.loads((root / "library.json").read_text())
    assert manifest["name"] == "tinybuild_kws" and "-ffp-contract=off" in manifest["build"]["flags"]
    assert (root / manifest["build"]["includeDir"] / "tinybuild_model.h").is_file()
    return sorted((root / manifest["build"]["srcDir"]).glob("*.c"))


@pytest.mark.slow
@pytest.mark.parametrize("kind,board_name", [("esp-idf", "esp32c3"), ("zephyr", "cortex-m4"),
                                             ("arduino", "cortex-m4"), ("platformio", "cortex-m4")])
def test_ecosystem_export_is_well_formed_and_its_sources_build_and_match(kind, board_name, request,
                                                                         tmp_path):
    build = request.getfixturevalue("cm4_build" if board_name == "cortex-m4" else "c3_build")
    board = Board(board_name)
    root = build / board_name / "kws" / "export" / kind
    sources = globals()[f"structure_{kind.replace('-', '_')}"](root)
    assert {p.name for p in sources} >= {"model.c", "tinybuild_model.c"}
    include = root / ("src" if kind == "arduino" else "include")
    elf = plain_app(board, root, sources, include, write_app(tmp_path / "app"))
    run_and_validate(board, elf, build)


@pytest.mark.slow
def test_export_holds_exactly_the_linked_kernels_and_zips_the_folder(cm4_build):
    tdir = cm4_build / "cortex-m4" / "kws"
    root = tdir / "export" / "c"
    linked = {Path(p).stem for p in re.findall(r"^LOAD (\S+\.o)$", (tdir / "firmware.map").read_text(),
                                                re.M)}
    shipped = {p.stem for p in (root / "src").glob("*.c")}
    # Everything the firmware linked except its startup and the simulator runtime (main, tb_exit).
    assert shipped - {"tinybuild_model"} == linked - {"startup_stm32f407", "tb_runtime"}
    assert "cm4_conv_s8" in shipped and "tb_runtime" not in shipped
    with zipfile.ZipFile(tdir / "export" / "c.zip") as z:
        names = {n.split("/", 1)[1] for n in z.namelist()}
    assert names == {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    readme = (root / "README.md").read_text()
    assert "tb_model_invoke();" in readme and export.file_sha256(
        cm4_build / "models/kws/model.int8.tflite") in readme


@pytest.mark.slow
def test_images_sit_beside_the_elf_and_in_the_report(cm4_build, c3_build):
    for build, name in ((cm4_build, "cortex-m4"), (c3_build, "esp32c3")):
        tdir = build / name / "kws"
        files = {f["name"]: f for f in json.loads((tdir / "report.json").read_text())["files"]}
        assert set(files) == {"firmware.elf", "firmware.bin", "firmware.hex"}
        assert "## Files" in (tdir / "report.md").read_text()
        hex_text = (tdir / "firmware.hex").read_text()
        assert hex_text.startswith(":") and hex_text.rstrip().endswith(":00000001FF")
    board = Board("cortex-m4")
    raw = (cm4_build / "cortex-m4/kws/firmware.bin").read_bytes()
    dump = cm4_build / "flash.bin"
    check([board.gcc("objcopy"), "-O", "binary", "-j", ".isr_vector",
           str(cm4_build / "cortex-m4/kws/firmware.elf"), str(dump)])
    assert raw.startswith(dump.read_bytes())          # the vector table first, at the flash start
    esp = (c3_build / "esp32c3/kws/firmware.bin").read_bytes()
    assert esp[:8] == bytes.fromhex("1d04dbae") * 2 and len(esp) < 4 << 20  # direct boot, not 96 MB


@pytest.mark.slow
def test_export_follows_the_kernels_and_is_removed_with_scons_clean(cm4_build):
    tdir = cm4_build / "cortex-m4" / "kws"
    reference = ("target=cortex-m4", "model=kws.h5", "export=c,platformio", "kernels=reference")
    again = scons(cm4_build, *reference)
    assert again.returncode == 0, again.stderr
    assert "[export c]" in again.stdout
    ref_src = cm4_build / "cortex-m4/kws-reference-kernels/export/c/src"
    assert not list(ref_src.glob("cm4_*.c")) and (ref_src / "conv.c").is_file()
    up_to_date = scons(cm4_build, *reference)
    assert "[export" not in up_to_date.stdout                     # nothing changed: nothing redone
    clean = scons(cm4_build, "-c", "target=cortex-m4", "model=kws.h5", "export=c")
    assert clean.returncode == 0 and not (tdir / "export").exists()
    assert not (tdir / "firmware.bin").exists()


def test_a_failed_validation_removes_the_export(tmp_path):
    """No export of code that stopped matching TFLite outlives the failure."""
    from tinybuild import scons_tool
    (tmp_path / "export" / "c" / "src").mkdir(parents=True)
    (tmp_path / "export" / "c.zip").write_bytes(b"PK")
    scons_tool.remove_stale([tmp_path / "validation.json"],
                            scons_tool.results_after([tmp_path], "validate"))
    assert not (tmp_path / "export").exists()


def print_figures(build: Path) -> None:
    """KWS's exported library in the example application against the simulated
    firmware, per board: flash, RAM, and the example's build time (host time:
    printed, never asserted)."""
    import time
    for name in ("cortex-m4", "esp32c3"):
        board, tdir = Board(name), build / name / "kws"
        fw = json.loads((tdir / "size.json").read_text())
        for builder in (make_app, cmake_app):
            shutil.rmtree(build / f"app-{name}-{builder.__name__}", ignore_errors=True)
            app = write_app(build / f"app-{name}-{builder.__name__}")
            start = time.monotonic()
            elf = builder(board, tdir / "export" / "c", app)
            seconds = time.monotonic() - start
            run_and_validate(board, elf, build)
            app_size = size_of(board, elf) if builder is make_app else None
            print(f"{name} {builder.__name__}: built in {seconds:.1f} s, output matches TFLite"
                  + (f"; application flash {app_size['flash']:,} B, RAM {app_size['ram']:,} B; "
                     f"simulated firmware flash {fw['flash']['used']:,} B, RAM {fw['ram']['used']:,} B"
                     if app_size else ""), flush=True)


if __name__ == "__main__":       # ./tb python tests/test_export.py [build folder]
    import tempfile
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="tb-export-"))
    for board_name, kinds in (("cortex-m4", "c"), ("esp32c3", "c,esp-idf")):
        done = scons(folder, f"target={board_name}", "model=kws.h5", f"export={kinds}")
        if done.returncode != 0:
            sys.exit(done.stderr)
    print_figures(folder)
