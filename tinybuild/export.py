"""Export the measured code for the user's firmware, and flashable images.

``export=c,esp-idf,...`` writes ``build/<target>/<model>/export/<kind>/`` and
``<kind>.zip`` after the build was validated: the generated model.c/model.h,
exactly the kernel sources the firmware linked (reference and the target's
optimized ones, with their headers), the library part of the runtime (the
layer marker, not the simulator's exit and I/O), a small stable C API
(``tinybuild_model.h``/``tinybuild_model.c``) and the build description each
ecosystem expects. Every build also gets ``firmware.bin`` and ``firmware.hex``
beside the ELF (the target's objcopy; for the ESP32 family ``firmware.bin`` is
esptool's image, the format the chip's bootloader loads). Each is an SCons
step with every input it depends on as a source; tools run from argument
lists, never a shell. docs/export.md is the user's side of this.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import re
import shutil
import sys
import zipfile
from pathlib import Path

from . import esp_direct_boot
from .errors import TinybuildError, shown
from .kernel_registry import KERNEL_DIR, OPT_LEVELS, RUNTIME_DIR

KINDS = ("c", "esp-idf", "zephyr", "arduino", "platformio")
# tinybuild target -> the chip name ESP-IDF and esptool use
ESP_CHIPS = {"esp32": "esp32", "esp32c3": "esp32c3", "esp32s3": "esp32s3"}
# Flags the firmware was measured with besides the target's CPU flags and -O
# (scons_tool._board_objects); -ffp-contract=off keeps float32 layers bit-exact.
LIBRARY_FLAGS = ("-std=c99", "-ffunction-sections", "-fdata-sections", "-ffp-contract=off")
API_HEADER, API_SOURCE = "tinybuild_model.h", "tinybuild_model.c"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)          # fixed: the same inputs make the same zip
_PLUGIN_INCLUDE = re.compile(r'^#include "(/[^"]+)"$', re.M)


# -- the build variable -----------------------------------------------------------------

def parse_kinds(spec: str) -> list[str]:
    """``export=c,zephyr`` -> ["c", "zephyr"]; an unknown kind stops with one line."""
    kinds = [k.strip() for k in str(spec).split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise TinybuildError(f"export={shown(spec)}: unknown kind '{shown(unknown[0])}'; kinds: "
                             f"{', '.join(KINDS)} (several: export=c,zephyr)")
    return list(dict.fromkeys(kinds))


def check_kinds(kinds: list[str], target) -> None:
    """ESP-IDF builds only for ESP chips: another target's kernels would not run there."""
    if "esp-idf" in kinds and target.name not in ESP_CHIPS:
        raise TinybuildError(f"export=esp-idf: target '{target.name}' is not an ESP32 chip (ESP-IDF "
                             f"builds for {', '.join(ESP_CHIPS)}). Fix: target=esp32c3, or export=c")


def kinds_for_board(kinds: list[str], target) -> list[str]:
    """target=all: each board gets the kinds it can take (ESP-IDF only on the
    ESP chips), where a single target asking for one it cannot take stops."""
    return [k for k in kinds if k != "esp-idf" or target.name in ESP_CHIPS]


def no_toolchain_error(spec: str, target) -> TinybuildError:
    return TinybuildError(f"export={shown(spec)}: target '{target.name}' has no {target.triple}-gcc "
                          "here, and an export ships the sources this build compiled, measured and "
                          "validated. Fix: install the toolchain (`tinybuild targets` says how) or "
                          "pass toolchain=")


def tinybuild_version() -> str:
    try:
        return importlib.metadata.version("tinybuild")
    except importlib.metadata.PackageNotFoundError:
        text = (Path(__file__).parent.parent / "pyproject.toml").read_text()
        return re.search(r'^version\s*=\s*"([^"]+)"', text, re.M).group(1)


# -- what a library holds ---------------------------------------------------------------

def library_sources(link_sources: list[Path], target) -> list[Path]:
    """The firmware's C files minus what only the simulated firmware has:
    the runtime's main/exit (tb_runtime.c) and the board's startup."""
    skip = {RUNTIME_DIR / "tb_runtime.c", *map(Path, target.startup_sources)}
    return [Path(p) for p in link_sources if Path(p) not in skip]


def library_headers(sources: list[Path], target) -> list[Path]:
    """Every header beside the kernels' sources, the runtime's and the board's include folders."""
    folders = {KERNEL_DIR, *(Path(s).parent for s in sources), *map(Path, target.include_dirs)}
    headers = {RUNTIME_DIR / "tb_runtime.h"}
    for folder in folders:
        headers |= set(folder.glob("*.h"))
    return sorted(headers)


def _unique_names(paths: list[Path]) -> dict[str, Path]:
    """name -> file; two different files of one name cannot share a flat folder."""
    by_name: dict[str, Path] = {}
    for p in paths:
        if by_name.setdefault(p.name, p) != p and by_name[p.name].read_bytes() != p.read_bytes():
            raise TinybuildError(f"export: two files are named {shown(p.name)} ({shown(by_name[p.name], 0)} "
                                 f"and {shown(p, 0)}); a library folder holds one. Fix: rename one")
    return by_name


# -- the C API ------------------------------------------------------------------------

C_DTYPES = {"int8": "TB_INT8", "uint8": "TB_UINT8", "int16": "TB_INT16", "int32": "TB_INT32",
            "int64": "TB_INT64", "float32": "TB_FLOAT32"}


def _c_float(value) -> str:
    return float(value or 0.0).hex() + "f" if value else "0.0f"


def _c_comment(text) -> str:
    return shown(text, 120).replace("*/", "*\\/")


def api_header(plan: dict, model_name: str, target, model_sha256: str, version: str) -> str:
    """tinybuild_model.h: the stable API and the model's facts as macros."""
    lines = [f"/* tinybuild {version}: the C API of model {_c_comment(model_name)}, built for "
             f"{target.name} ({target.cpu}). Generated; do not edit. */",
             "#ifndef TINYBUILD_MODEL_H", "#define TINYBUILD_MODEL_H", "#include <stdint.h>",
             '#include "model.h"  /* TB_ARENA_SIZE, TB_INPUT<i>_SIZE/_SCALE/_ZERO_POINT, ... */', "",
             f'#define TINYBUILD_VERSION "{version}"',
             f'#define TB_MODEL_SHA256 "{model_sha256}"  /* of the .tflite that was compiled */',
             f'#define TB_TARGET "{target.name}"', ""]
    for kind, tensors in (("INPUT", plan["inputs"]), ("OUTPUT", plan["outputs"])):
        for i, t in enumerate(tensors):
            shape = ", ".join(str(int(d)) for d in t["shape"]) or "1"
            lines += [f"#define TB_{kind}{i}_DIMS {len(t['shape'])}u",
                      f"#define TB_{kind}{i}_SHAPE {{{shape}}}",
                      f"#define TB_{kind}{i}_TYPE {C_DTYPES[t['dtype']]}"]
    lines += ["", "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
              "typedef enum { TB_INT8, TB_UINT8, TB_INT16, TB_INT32, TB_INT64, TB_FLOAT32 } tb_dtype_t;",
              "", "typedef struct {",
              "  uint32_t bytes;      /* the tensor's size */",
              "  uint32_t dims;       /* entries of shape */",
              "  const int32_t *shape;",
              "  float scale;         /* real = scale * (q - zero_point); 0 for float tensors */",
              "  int32_t zero_point;",
              "  tb_dtype_t type;", "} tb_tensor_info_t;", "",
              "/* 0 when the model is ready (always, today: it needs no setup; call it anyway). */",
              "int tb_model_init(void);",
              "/* One inference: reads the inputs, writes the outputs (both inside the arena). */",
              "void tb_model_invoke(void);",
              "uint32_t tb_model_num_inputs(void);", "uint32_t tb_model_num_outputs(void);",
              "/* Where to write input i / read output i; NULL for an i out of range. */",
              "void *tb_model_input(uint32_t i);", "void *tb_model_output(uint32_t i);",
              "const tb_tensor_info_t *tb_model_input_info(uint32_t i);",
              "const tb_tensor_info_t *tb_model_output_info(uint32_t i);", "",
              "#ifdef __cplusplus", "}", "#endif", "#endif", ""]
    return "\n".join(lines)


def _arch_guard(target) -> list[str]:
    """Kernels with target assembly must not reach another CPU silently."""
    macro = {"arm": "__arm__", "riscv32": "__riscv", "xtensa": "__XTENSA__"}.get(target.arch)
    if not macro:
        return []
    return [f"#if !defined({macro})",
            f'#error "this library was built for {target.name} ({target.cpu}); export it for your target"',
            "#endif"]


def api_source(plan: dict, target) -> str:
    """tinybuild_model.c: the API over tb_io_desc, and the layer marker the model calls."""
    lines = [f'#include "{API_HEADER}"', '#include "tb_runtime.h"', "#include <stddef.h>",
             *_arch_guard(target), ""]
    for kind, tensors in (("input", plan["inputs"]), ("output", plan["outputs"])):
        for i, _ in enumerate(tensors):
            lines.append(f"static const int32_t tb_{kind}{i}_shape[] = TB_{kind.upper()}{i}_SHAPE;")
        rows = [f"  {{{t['bytes']}u, {len(t['shape'])}u, tb_{kind}{i}_shape, {_c_float(t['scale'])}, "
                f"{int(t['zero_point'] or 0)}, {C_DTYPES[t['dtype']]}}},  /* {_c_comment(t['name'])} */"
                for i, t in enumerate(tensors)]
        lines += [f"static const tb_tensor_info_t tb_{kind}s[] = {{", *rows, "};", ""]
    lines += [
        "/* The firmware calls this before every layer; weak, so an application may",
        " * override it (e.g. to read a cycle counter per layer). */",
        "__attribute__((weak, noinline, used)) void tb_mark(uint32_t id) {",
        '  __asm__ volatile("" : : "r"(id) : "memory");', "}", "",
        "int tb_model_init(void) { return tb_io_desc.magic == TB_IO_MAGIC ? 0 : -1; }",
        "uint32_t tb_model_num_inputs(void) { return TB_NUM_INPUTS; }",
        "uint32_t tb_model_num_outputs(void) { return TB_NUM_OUTPUTS; }", "",
        "void *tb_model_input(uint32_t i) {",
        "  return i < TB_NUM_INPUTS ? (void *)TB_IO_INPUT(i).data : NULL;", "}",
        "void *tb_model_output(uint32_t i) {",
        "  return i < TB_NUM_OUTPUTS ? (void *)TB_IO_OUTPUT(i).data : NULL;", "}",
        "const tb_tensor_info_t *tb_model_input_info(uint32_t i) {",
        "  return i < TB_NUM_INPUTS ? &tb_inputs[i] : NULL;", "}",
        "const tb_tensor_info_t *tb_model_output_info(uint32_t i) {",
        "  return i < TB_NUM_OUTPUTS ? &tb_outputs[i] : NULL;", "}", ""]
    return "\n".join(lines)


# -- the ecosystems' build descriptions ----------------------------------------------------

def _safe_text(text: str) -> str:
    """A model's name inside a manifest field: printable ASCII, no quotes or backslashes."""
    return "".join(c if c.isascii() and c.isprintable() and c not in "\"'\\`$" else "_" for c in text)


def _package_name(model_name: str) -> str:
    return "tinybuild_" + re.sub(r"[^A-Za-z0-9_]", "_", model_name)


def _levels(facts: dict) -> dict[str, list[str]]:
    """level -> the shipped kernel files compiled at it instead of -<opt> (as the firmware was)."""
    by_level: dict[str, list[str]] = {}
    for name, level in facts.get("opt_files", {}).items():
        by_level.setdefault(level, []).append(name)
    return by_level


def _make_levels(facts: dict) -> str:
    rules = [f"$(TB_BUILD)/{Path(name).stem}.o: TB_FILE_OPT = -{level}"
             for level, names in _levels(facts).items() for name in names]
    if not rules:
        return ""
    return ("\n# Kernel sources whose inline assembly needs at least this level (min_opt): compiled "
            "at it, as in the measured firmware.\n" + "\n".join(rules) + "\n")


def _cmake_levels(facts: dict, folder: str = "src/") -> str:
    """set_source_files_properties lines: a source's options come after the target's, so they win."""
    lines = [f"set_source_files_properties({' '.join(folder + n for n in names)}\n"
             f"                            PROPERTIES COMPILE_OPTIONS -{level})"
             for level, names in _levels(facts).items()]
    if not lines:
        return ""
    return ("# Kernel sources whose inline assembly needs at least this level (min_opt), as in the "
            "measured firmware.\n" + "\n".join(lines) + "\n")


def makefile(facts: dict, sources: list[str]) -> str:
    objs = " ".join(f"$(TB_BUILD)/{Path(s).stem}.o" for s in sources)
    return f"""# {facts['title']}
# make [CC=...] [TB_BUILD=folder] [TB_EXTRA_CFLAGS=-Werror]  ->  $(TB_BUILD)/libtinybuild_model.a
# The flags are the ones the firmware was measured with; change TB_CPU_FLAGS only to match your ABI.
TB_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
ifeq ($(origin CC),default)
CC = {facts['triple']}-gcc
endif
ifeq ($(origin AR),default)
AR = {facts['triple']}-ar
endif
TB_BUILD ?= $(TB_DIR)/build
TB_CPU_FLAGS ?= {' '.join(facts['cpu_flags'])}
TB_OPT ?= -{facts['opt']}
TB_CFLAGS = $(TB_CPU_FLAGS) $(TB_OPT) $(TB_FILE_OPT) {' '.join(LIBRARY_FLAGS)} -Wall -Wextra $(TB_EXTRA_CFLAGS) -I$(TB_DIR)/include
TB_OBJS = {objs}

all: $(TB_BUILD)/libtinybuild_model.a

$(TB_BUILD)/libtinybuild_model.a: $(TB_OBJS)
\t$(AR) rcs $@ $^

$(TB_BUILD)/%.o: $(TB_DIR)/src/%.c $(wildcard $(TB_DIR)/include/*.h) | $(TB_BUILD)
\t$(CC) $(TB_CFLAGS) -c $< -o $@

$(TB_BUILD):
\tmkdir -p $@
{_make_levels(facts)}
clean:
\trm -rf $(TB_BUILD)

.PHONY: all clean
"""


def _cmake_list(items: list[str]) -> str:
    return "\n".join(f"  {x}" for x in items)


def cmakelists(facts: dict, sources: list[str]) -> str:
    return f"""# {facts['title']}
# add_subdirectory(<this folder>) then target_link_libraries(app PRIVATE tinybuild_model).
cmake_minimum_required(VERSION 3.13)
project(tinybuild_model C)
set(TB_CPU_FLAGS "{';'.join(facts['cpu_flags'])}" CACHE STRING
    "CPU flags the model was measured with (your application must use the same ABI)")
add_library(tinybuild_model STATIC
{_cmake_list(sources)}
)
target_include_directories(tinybuild_model PUBLIC ${{CMAKE_CURRENT_SOURCE_DIR}}/include)
# After CMake's own flags, so the measured -{facts['opt']} wins over a build type's -O.
target_compile_options(tinybuild_model PRIVATE ${{TB_CPU_FLAGS}} -{facts['opt']} {' '.join(LIBRARY_FLAGS)} -Wall -Wextra)
{_cmake_levels(facts)}"""


def esp_idf_files(facts: dict, sources: list[str]) -> dict[str, str]:
    srcs = " ".join(f'"{s}"' for s in sources)
    cmake = (f"# {facts['title']}\n"
             f'idf_component_register(SRCS {srcs}\n                       INCLUDE_DIRS "include")\n'
             f"target_compile_options(${{COMPONENT_LIB}} PRIVATE -{facts['opt']} {' '.join(LIBRARY_FLAGS)})\n"
             + _cmake_levels(facts))
    yml = (f'version: "{facts["version"]}"\n'
           f"description: {json.dumps(facts['title'])}\n"
           f"targets:\n  - {ESP_CHIPS[facts['target']]}\n")
    return {"CMakeLists.txt": cmake, "idf_component.yml": yml}


def zephyr_files(facts: dict, sources: list[str]) -> dict[str, str]:
    cmake = (f"# {facts['title']}\nif(CONFIG_TINYBUILD_MODEL)\n  zephyr_library_named(tinybuild_model)\n"
             f"  zephyr_library_sources(\n{_cmake_list(['  ' + s for s in sources])}\n  )\n"
             "  zephyr_include_directories(include)\n"
             f"  zephyr_library_compile_options(-{facts['opt']} -ffp-contract=off)\n"
             + _cmake_levels(facts) + "endif()\n")
    kconfig = (f'config TINYBUILD_MODEL\n\tbool "tinybuild model {facts["model"]}"\n\thelp\n'
               f"\t  {facts['title']}\n")
    module = "name: tinybuild_model\nbuild:\n  cmake: .\n  kconfig: Kconfig\n"
    return {"CMakeLists.txt": cmake, "Kconfig": kconfig, "zephyr/module.yml": module}


def arduino_properties(facts: dict) -> str:
    archs = "esp32" if facts["target"] in ESP_CHIPS else "*"
    return "\n".join([f"name={facts['package']}", f"version={facts['version']}", "author=tinybuild",
                      "maintainer=tinybuild", f"sentence={facts['title']}",
                      "paragraph=The generated model, the kernels and runtime the measured firmware "
                      "linked, and the tinybuild_model.h API.",
                      "category=Data Processing", "url=https://github.com/", f"architectures={archs}",
                      f"includes={API_HEADER}", ""])


def library_level(facts: dict) -> str:
    """One level for a whole library (library.json has no per-file flags): the
    highest the firmware's files were compiled at, so every kernel builds."""
    return max([facts["opt"], *facts.get("opt_files", {}).values()], key=OPT_LEVELS.__getitem__)


def platformio_json(facts: dict) -> str:
    data = {"name": facts["package"], "version": facts["version"], "description": facts["title"],
            "keywords": ["tinyml", "tinybuild"], "frameworks": "*", "platforms": "*",
            "build": {"srcDir": "src", "includeDir": "include",
                      "flags": [f"-{library_level(facts)}", *LIBRARY_FLAGS]}}
    return json.dumps(data, indent=2) + "\n"


def readme(kind: str, facts: dict, plan: dict, figures: str) -> str:
    t_in, t_out = plan["inputs"][0], plan["outputs"][0]
    usage = {
        "c": "Build: `make -C <this folder>` (libtinybuild_model.a in build/) or, in CMake, "
             "`add_subdirectory(<this folder>)` and `target_link_libraries(app PRIVATE tinybuild_model)`.",
        "esp-idf": "Copy this folder to your project's `components/` (or name it in "
                   "`EXTRA_COMPONENT_DIRS`), and `REQUIRES tinybuild_model` in your main component.",
        "zephyr": "Add this folder to `ZEPHYR_EXTRA_MODULES` and set `CONFIG_TINYBUILD_MODEL=y` "
                  "(and `CONFIG_FPU=y` for a hard-float Cortex-M4F build) in prj.conf.",
        "arduino": "Unzip into your sketchbook's `libraries/` folder (or Sketch > Include Library > "
                   "Add .ZIP Library). Arduino compiles it with the core's own flags (often -Os), so "
                   "cycles differ from the measured ones; the output does not.",
        "platformio": "Put this folder in your project's `lib/` (or `lib_deps = file://<path>`); "
                      "library.json compiles it with the measured flags.",
    }[kind]
    return f"""# {facts['title']}

The code tinybuild {facts['version']} built, measured and validated against TFLite for
{facts['target']} ({facts['cpu']}), model sha256 `{facts['sha256']}`:
{figures}

The five lines your application writes:

```c
#include "tinybuild_model.h"
tb_model_init();
memcpy(tb_model_input(0), my_input, TB_INPUT0_SIZE);  /* {t_in['dtype']} {'x'.join(map(str, t_in['shape']))} */
tb_model_invoke();
const {'float' if t_out['dtype'] == 'float32' else t_out['dtype'] + '_t'} *scores = tb_model_output(0);  /* {t_out['dtype']} {'x'.join(map(str, t_out['shape']))} */
```

{usage}

Quantization: real = TB_INPUT0_SCALE * (q - TB_INPUT0_ZERO_POINT) (and TB_OUTPUT0_...).
The arena (TB_ARENA_SIZE bytes) is a static array in section `.noinit` (not zeroed at reset);
if your linker script has no `.noinit`, compile with `-DTB_NOINIT=` and it goes to `.bss`.
Measured with: {' '.join(facts['cpu_flags'])} -{facts['opt']} {' '.join(LIBRARY_FLAGS)}{_levels_text(kind, facts)}.
"""


def _levels_text(kind: str, facts: dict) -> str:
    """The README's note on kernel files compiled at another level than -<opt>."""
    by_level = _levels(facts)
    if not by_level:
        return ""
    files = "; ".join(f"-{level} for {', '.join(names)}" for level, names in by_level.items())
    note = {"platformio": f" (library.json compiles every file at -{library_level(facts)}: it has one "
                          "level per library)",
            "arduino": " (Arduino's own flags must be -O2, -Os or -O3 for these)"}.get(kind, "")
    return (f", except {files}: the lowest level their inline assembly builds at (min_opt)"
            f"{note}")


# -- writing one export ---------------------------------------------------------------------

def _figures(report: dict) -> str:
    inf, val = report.get("inference"), report.get("validation", {})
    lines = [f"- firmware flash {report['flash']['used']:,} B, RAM {report['ram']['used']:,} B "
             f"(arena {report['arena']['bytes']:,} B), with the simulator's startup and exit"]
    if inf:
        lines.append(f"- {inf['instructions']:,} instructions, {inf['cycles']:,} cycles per inference "
                     f"({inf['ms']:g} ms at {report['target']['clock_hz'] / 1e6:g} MHz, estimated)")
    lines.append("- output matches TFLite: " + ("yes, byte for byte" if val.get("match") else
                                                shown(val.get("skipped") or "not validated", 200)))
    return "\n".join(lines)


def write_export(kind: str, out_dir: Path, zip_path: Path, *, target, facts: dict, model_c: Path,
                 model_h: Path, plan_json: Path, report_json: Path, sources: list[Path],
                 headers: list[Path]) -> None:
    """Write one kind's folder (replacing the old one whole) and its zip."""
    plan, report = json.loads(plan_json.read_text()), json.loads(report_json.read_text())
    flat = kind == "arduino"                           # Arduino compiles src/ with src/ on the path
    src_dir, inc_dir = "src", ("src" if flat else "include")
    files: dict[str, bytes] = {}
    model_text = model_c.read_text()
    for path in map(Path, _PLUGIN_INCLUDE.findall(model_text)):   # a plugin op's header
        headers = [*headers, path]
        model_text = model_text.replace(f'#include "{path}"', f'#include "{path.name}"')
    for name, path in _unique_names(sources).items():
        files[f"{src_dir}/{name}"] = path.read_bytes()
    for name, path in _unique_names([*headers, model_h]).items():
        files[f"{inc_dir}/{name}"] = path.read_bytes()
    files[f"{src_dir}/model.c"] = model_text.encode()
    files[f"{inc_dir}/{API_HEADER}"] = api_header(plan, facts["model"], target, facts["sha256"],
                                                  facts["version"]).encode()
    files[f"{src_dir}/{API_SOURCE}"] = api_source(plan, target).encode()
    c_files = sorted(n.split("/", 1)[1] for n in files if n.startswith(f"{src_dir}/") and n.endswith(".c"))
    for name, text in ecosystem_files(kind, facts, [f"src/{c}" for c in c_files]).items():
        files[name] = text.encode()
    files["README.md"] = readme(kind, facts, plan, _figures(report)).encode()
    _replace_folder(out_dir, files)
    _write_zip(zip_path, out_dir.name, files)


def ecosystem_files(kind: str, facts: dict, sources: list[str]) -> dict[str, str]:
    if kind == "c":
        return {"Makefile": makefile(facts, sources), "CMakeLists.txt": cmakelists(facts, sources)}
    if kind == "esp-idf":
        return esp_idf_files(facts, sources)
    if kind == "zephyr":
        return zephyr_files(facts, sources)
    if kind == "arduino":
        return {"library.properties": arduino_properties(facts)}
    return {"library.json": platformio_json(facts)}


def _replace_folder(out_dir: Path, files: dict[str, bytes]) -> None:
    """Write beside, then swap: a failure never leaves half an export."""
    fresh = out_dir.with_name(f".{out_dir.name}.new")
    shutil.rmtree(fresh, ignore_errors=True)
    for name, data in files.items():
        (fresh / name).parent.mkdir(parents=True, exist_ok=True)
        (fresh / name).write_bytes(data)
    shutil.rmtree(out_dir, ignore_errors=True)
    fresh.rename(out_dir)


def _write_zip(zip_path: Path, top: str, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(files):
            info = zipfile.ZipInfo(f"{top}/{name}", _ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, files[name])


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def export_facts(target, model_name: str, opt: str, tflite: Path,
                 opt_files: dict[str, str] | None = None) -> dict:
    version = tinybuild_version()
    return {"title": f"{_safe_text(model_name)} for {target.name} ({target.cpu}), generated by "
                     f"tinybuild {version}",
            "model": _safe_text(model_name), "package": _package_name(model_name),
            "target": target.name, "cpu": target.cpu, "triple": target.triple,
            "cpu_flags": list(target.cflags), "opt": opt, "opt_files": dict(opt_files or {}),
            "version": version,
            "sha256": file_sha256(tflite)}


# -- flashable images ---------------------------------------------------------------------------

def image_names(target) -> tuple[str, ...]:
    return ("firmware.bin", "firmware.hex")


def make_images(toolchain, target, elf: Path, bin_path: Path, hex_path: Path, run_tool) -> None:
    """firmware.hex (Intel HEX, every loaded section at its load address) and
    firmware.bin: the raw flash image from objcopy or, for an ESP32 chip, the
    image its bootloader loads (esptool elf2image)."""
    objcopy = toolchain.tool("objcopy")
    _tool([objcopy, "-O", "ihex", str(elf), str(hex_path)], run_tool, "objcopy")
    if target.name in ESP_CHIPS:
        _esp_image(target, elf, bin_path, run_tool)
        return
    _tool([objcopy, "-O", "binary", str(elf), str(bin_path)], run_tool, "objcopy")
    flash = target.capacity("flash")
    if bin_path.stat().st_size > flash:
        size = bin_path.stat().st_size
        bin_path.unlink()
        raise TinybuildError(f"firmware.bin of {shown(elf, 0)} would be {size:,} bytes, more than the "
                             f"{flash:,} B of flash: a loaded section's load address is outside flash. "
                             "Fix: place every loaded section AT > a flash region in the linker script")


def _esp_image(target, elf: Path, bin_path: Path, run_tool) -> None:
    if target.name in esp_direct_boot.CHIPS:      # the ROM boots it without a bootloader
        esp_direct_boot.write_image(elf, bin_path)
        return
    if importlib.util.find_spec("esptool") is None:
        raise TinybuildError("esptool (PyPI) is not installed, and it makes the ESP32 image "
                             "firmware.bin. Fix: ./tb installs it (requirements.txt)")
    flash_mb = max(1, target.capacity("flash") // (1 << 20))
    _tool([sys.executable, "-m", "esptool", "--chip", ESP_CHIPS[target.name], "elf2image",
           "--flash-mode", "dio", "--flash-freq", "80m", "--flash-size", f"{flash_mb}MB",
           "--output", str(bin_path), str(elf)], run_tool, "esptool elf2image")


def _tool(cmd: list[str], run_tool, what: str) -> None:
    try:
        code, out = run_tool(cmd, 120)
    except OSError as exc:
        raise TinybuildError(f"{what}: cannot run {shown(cmd[0], 0)}: {exc.strerror}") from None
    if code != 0:
        raise TinybuildError(f"{what} failed on {shown(cmd[-2] if what == 'objcopy' else cmd[-1], 0)} "
                             f"(exit {code}): {shown(out.strip(), 300)}")


FLASHABLE = {"firmware.elf": "the firmware (debuggers, pyOCD, OpenOCD)",
             "firmware.bin": "raw flash image from the first flash address",
             "firmware.hex": "Intel HEX: every loaded section at its load address"}


def list_files(report_targets) -> None:
    """Add the firmware files beside the report to report.json ("files") and
    report.md (a Files section): the report step runs after the image step."""
    json_path, md_path = Path(report_targets[0]), Path(report_targets[1])
    folder = json_path.parent
    record = json.loads(json_path.read_text())
    esp = record["target"]["name"] in ESP_CHIPS
    files = []
    for name, what in FLASHABLE.items():
        if (folder / name).exists():
            what = "ESP32 app image (esptool elf2image): what the chip's bootloader loads" \
                if name == "firmware.bin" and esp else what
            what = esp_direct_boot.WHAT if name == "firmware.bin" and \
                record["target"]["name"] in esp_direct_boot.CHIPS else what
            files.append({"name": name, "bytes": (folder / name).stat().st_size, "what": what})
    record["files"] = files
    json_path.write_text(json.dumps(record, indent=1) + "\n")
    lines = ["", "## Files", "", "| file | bytes | what |", "| --- | ---: | --- |",
             *(f"| {f['name']} | {f['bytes']:,} | {f['what']} |" for f in files)]
    with md_path.open("a") as md:
        md.write("\n".join(lines) + "\n")


# -- SCons steps ----------------------------------------------------------------------------------

def declare_images(env, st, tdir: Path, target, toolchain, elf):
    """firmware.bin/.hex from the ELF; ``st`` is tinybuild.scons_tool."""
    settings = env.Value(json.dumps([toolchain.tool("objcopy"), toolchain.version, target.name,
                                     _esptool_version() if target.name in ESP_CHIPS else ""]))
    return env.Command(
        [st._file(env, tdir / n) for n in image_names(target)], [elf, settings],
        st._action(lambda t, s, e: make_images(toolchain, target, s[0], t[0], t[1], st.run_tool),
                   "image", st._downstream([tdir], "image")))


def _esptool_version() -> str:
    try:
        return importlib.metadata.version("esptool")
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def declare_exports(env, st, tdir: Path, target, kinds: list[str], link_sources: list[Path],
                    codegen, tflite, report_json, model_name: str, opt_files=None):
    """One step per kind: its folder and zip. Sources: the generated model, the
    plan, the validated report, the compiled .tflite (its hash), every shipped C
    file and header, this module, and the settings (kind, flags, version, the
    files compiled at another level: ``opt_files``, name -> level)."""
    sources = library_sources(link_sources, target)
    headers = library_headers(sources, target)
    model_c, model_h, plan_json = codegen
    edir = tdir / "export"
    opt = env["opt"]
    nodes = []
    for kind in kinds:
        settings = env.Value(json.dumps([kind, target.name, list(target.cflags), opt,
                                         tinybuild_version(), opt_files or {}]))
        files = [st._file(env, p) for p in [*sources, *headers, Path(__file__)]]
        node = env.Command(
            [st._file(env, edir / f"{kind}.zip"), st._file(env, edir / kind / "README.md")],
            [model_c, model_h, plan_json, report_json, tflite, settings, *files],
            st._action(lambda t, s, e, kind=kind: write_export(
                kind, t[1].parent, t[0], target=target,
                facts=export_facts(target, model_name, opt, s[4], opt_files), model_c=s[0], model_h=s[1],
                plan_json=s[2], report_json=s[3], sources=sources, headers=headers),
                f"export {kind}", st._downstream([tdir], "export")))
        env.Clean(node, st._dir(env, edir / kind))
        nodes += node
    return nodes
