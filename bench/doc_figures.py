"""Rewrite the figures quoted in README.md and docs/*.md from real runs.

    ./tb python bench/doc_figures.py [--only NAME ...] [--build DIR]

A figure block is whatever sits between ``<!-- figures:begin NAME -->`` and
``<!-- figures:end -->`` (on separate lines, or inline within a sentence).
This script builds into a temporary folder, produces each named block from
that run and replaces the block's text, adding the date, the commit and this
command to the multi-line ones. Blocks:

- ``readme-summary`` (README.md): the summary ``scons target=cortex-m4
  model=kws.h5`` prints;
- ``target-all`` (docs/targets.md): the table ``scons -j2 target=all
  model=kws.h5`` prints;
- ``riscv-kws-ram`` (docs/targets.md, inline): KWS's arena and RAM on riscv,
  from that run's report.json;
- ``simulator-figures`` (docs/simulators.md): ``python -m sim.measure``'s
  tables (simulator speed, unicorn vs QEMU, cycles); needs the MLPerf Tiny
  models in ../shared (the block is left as it is without them).

Blocks not asked for (``--only``) are left as they are. A block that is
produced but has no markers in its file stops the script before any file is
written.
"""
from __future__ import annotations

import argparse
import functools
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "./tb python bench/doc_figures.py"
MLPERF = ROOT.parent / "shared" / "models" / "mlperf_tiny"
BLOCK = re.compile(r"(<!-- figures:begin (?P<name>[\w-]+) -->)(?P<body>.*?)(<!-- figures:end -->)", re.S)


def scons(build: Path, *variables: str) -> str:
    """stdout of one SCons run into ``build``; SystemExit with its error otherwise."""
    cmd = [str(Path(sys.executable).with_name("scons")), "-C", str(ROOT), "-Q", f"build_dir={build}",
           *variables]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"doc_figures: `scons {' '.join(variables)}` failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def printed_from(stdout: str, first_line: str, build: Path) -> str:
    """The summary SCons printed, from ``first_line`` on, with the temporary
    build folder shown as the default ``build``."""
    start = stdout.find(first_line)
    if start < 0:
        raise SystemExit(f"doc_figures: the build printed no line starting {first_line!r}")
    return stdout[start:].rstrip().replace(str(build), "build")


@functools.lru_cache(maxsize=1)
def _commit() -> str:
    """HEAD when the run started (one value for every block of a run)."""
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip() or "unknown"


def stamp(how: str = "") -> str:
    """The line under a block: when, at which commit, how to redo it."""
    return (f"_Output of a real run on {time.strftime('%Y-%m-%d')} (commit {_commit()}){how}; "
            f"`{COMMAND}` regenerates it._")


def code_block(text: str) -> str:
    return f"\n```\n{text}\n```\n\n{stamp()}\n"


def readme_summary(build: Path) -> str:
    out = scons(build, "target=cortex-m4", "model=kws.h5")
    text = "$ ./tb scons target=cortex-m4 model=kws.h5\n...\n" + printed_from(out, "tinybuild: kws on", build)
    return code_block(text)


def target_all(build: Path) -> str:
    out = scons(build, "-j2", "target=all", "model=kws.h5")
    return code_block(printed_from(out, "tinybuild: kws on every board", build))


def riscv_kws_ram(build: Path) -> str:
    """Inline: reads the report of target_all's riscv build."""
    report = json.loads((build / "riscv" / "kws" / "report.json").read_text())
    return (f"KWS (arena {report['arena']['bytes']:,} B + {report['stack']['reserved_bytes']:,} B stack) "
            f"uses {report['ram']['used']:,} B of the 32 KiB")


def simulator_figures(build: Path) -> str | None:
    models = sorted(MLPERF.glob("*.tflite"))
    if not models:
        print(f"doc_figures: {MLPERF} has no models: simulator-figures left as it is", file=sys.stderr)
        return None
    proc = subprocess.run([sys.executable, "-m", "sim.measure", "--build", str(build / "measure"),
                           *map(str, models)], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"doc_figures: sim.measure failed:\n{proc.stderr[-2000:]}")
    how = (": `python -m sim.measure` on every MLPerf Tiny model in `../shared/models/mlperf_tiny/`, built for "
           "cortex-m4 and mps2-an386, first validation input")
    return f"\n{proc.stdout.strip()}\n\n{stamp(how)}\n"


# name -> (file, producer); in this order (riscv-kws-ram reads target-all's build)
PRODUCERS = {
    "readme-summary": ("README.md", readme_summary),
    "target-all": ("docs/targets.md", target_all),
    "riscv-kws-ram": ("docs/targets.md", riscv_kws_ram),
    "simulator-figures": ("docs/simulators.md", simulator_figures),
}


def replace_blocks(text: str, bodies: dict[str, str], path: str) -> str:
    """``text`` with the body of every block named in ``bodies`` replaced."""
    found = {m.group("name") for m in BLOCK.finditer(text)}
    missing = set(bodies) - found
    if missing:
        raise SystemExit(f"doc_figures: {path} has no block {', '.join(sorted(missing))} "
                         "(<!-- figures:begin NAME --> ... <!-- figures:end -->)")
    return BLOCK.sub(lambda m: m.group(1) + bodies.get(m.group("name"), m.group("body")) + m.group(4), text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", choices=list(PRODUCERS), help="just these blocks")
    ap.add_argument("--build", type=Path, help="build folder to use (default: a temporary one)")
    args = ap.parse_args(argv)
    wanted = args.only or list(PRODUCERS)
    if "riscv-kws-ram" in wanted and "target-all" not in wanted:
        wanted.insert(wanted.index("riscv-kws-ram"), "target-all")
    with tempfile.TemporaryDirectory(prefix="tb_doc_figures_") as tmp:
        build = (args.build or Path(tmp) / "build").resolve()
        _commit()
        bodies: dict[str, dict[str, str]] = {}
        for name in PRODUCERS:
            if name in wanted:
                print(f"[doc_figures] {name}", file=sys.stderr, flush=True)
                body = PRODUCERS[name][1](build)
                if body is not None:
                    bodies.setdefault(PRODUCERS[name][0], {})[name] = body
    # Check every file before writing any, so a missing marker changes nothing.
    new_texts = {path: replace_blocks((ROOT / path).read_text(), blocks, path) for path, blocks in bodies.items()}
    for path, text in new_texts.items():
        (ROOT / path).write_text(text)
        print(f"[doc_figures] rewrote {', '.join(bodies[path])} in {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
