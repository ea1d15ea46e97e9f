"""Toolchain providers, registered as a plugin like any other.

Each provider answers ``tinybuild_find_toolchain`` or passes (``None``):
1. an explicit path (``toolchain=`` / ``TINYBUILD_TOOLCHAIN``): a ``bin`` folder,
   its parent, or the gcc executable itself;
2. xPack: ``xpacks/.bin`` in the project, then
   ``~/.local/xPacks/@xpack-dev-tools/<name>/<version>/.content/bin`` (newest);
3. ``PATH`` (e.g. Debian's gcc-arm-none-eabi).
:func:`xpm_install` runs ``xpm install`` for a target's xPack where a network
allows it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from .errors import TinybuildError, shown
from .hookspecs import hookimpl
from .target import Target, Toolchain

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def gcc_version(gcc: Path) -> str:
    try:
        out = subprocess.run([str(gcc), "-dumpfullversion"], capture_output=True, text=True,
                             timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):   # not runnable here: no version, no traceback
        return ""
    return out


def _toolchain_in(bin_dir: Path, triple: str, source: str) -> Toolchain | None:
    gcc = bin_dir / f"{triple}-gcc"
    if not (gcc.is_file() and os.access(gcc, os.X_OK)):
        return None
    return Toolchain(triple, bin_dir, gcc_version(gcc), source)


class ExplicitPathProvider:
    """``toolchain=`` or ``TINYBUILD_TOOLCHAIN``: the user's word wins."""

    @hookimpl(tryfirst=True)
    def tinybuild_find_toolchain(self, target: Target, explicit_path):
        return find_explicit(target, explicit_path)


def find_explicit(target: Target, explicit_path) -> Toolchain | None:
    """The toolchain the user named; an error naming where the value came
    from (``toolchain=`` or ``TINYBUILD_TOOLCHAIN``) when there is none there."""
    origin = "toolchain"
    if not explicit_path:
        explicit_path, origin = os.environ.get("TINYBUILD_TOOLCHAIN"), "TINYBUILD_TOOLCHAIN"
    if not explicit_path:
        return None
    p = Path(explicit_path).expanduser()
    candidates = [p.parent] if p.is_file() else [p, p / "bin"]
    for folder in candidates:
        found = _toolchain_in(folder, target.triple, "explicit")
        if found:
            return found
    raise TinybuildError(f"{origin}={shown(explicit_path, 0)}: no {target.triple}-gcc there (looked in "
                         f"{', '.join(shown(c, 0) for c in candidates)}). Point it at the toolchain's "
                         "bin folder")


def xpack_bin_dirs(target: Target, home: Path | None = None) -> list[Path]:
    """xPack install locations, most specific first: the project's own
    ``xpacks/.bin`` (from ``xpm install`` in the project), then the user's
    global xPacks store, newest version first."""
    dirs = [PROJECT_ROOT / "xpacks" / ".bin"]
    if target.xpack_package:
        store = (home or Path.home()) / ".local" / "xPacks" / target.xpack_package
        versions = sorted(store.glob("*/.content/bin"), key=lambda p: _version_key(p.parent.parent.name),
                          reverse=True)
        dirs += versions
    return dirs


def _version_key(name: str) -> tuple:
    return tuple(int(n) for n in re.findall(r"\d+", name))


class XpackProvider:
    """xPack installs: the project's, then the user's global store."""

    @hookimpl
    def tinybuild_find_toolchain(self, target: Target, explicit_path):
        for folder in xpack_bin_dirs(target):
            found = _toolchain_in(folder, target.triple, "xpack")
            if found:
                return found
        return None


class PathProvider:
    """Whatever ``PATH`` has, e.g. Debian's packaged cross compilers."""

    @hookimpl(trylast=True)
    def tinybuild_find_toolchain(self, target: Target, explicit_path):
        gcc = shutil.which(f"{target.triple}-gcc")
        if not gcc:
            return None
        return Toolchain(target.triple, Path(gcc).parent, gcc_version(Path(gcc)), "PATH")


PROVIDERS = {"toolchain.explicit": ExplicitPathProvider(), "toolchain.xpack": XpackProvider(),
             "toolchain.path": PathProvider()}


def missing_toolchain_error(target: Target) -> TinybuildError:
    ways = [f"no {target.triple}-gcc found for target '{target.name}'. Get one of these ways:"]
    if target.toolchain_hint:
        ways.append(f"  - {target.toolchain_hint}")
    if target.xpack_package:
        ways.append(f"  - xPack: `tinybuild toolchain install {target.name}` (runs `xpm install "
                    f"{target.xpack_package}@latest`; needs network and npm's xpm)")
    ways.append("  - an existing install: scons toolchain=/path/to/bin (or TINYBUILD_TOOLCHAIN)")
    return TinybuildError("\n".join(ways))


def xpm_install(target: Target) -> Path:
    """Install the target's xPack into the project (``xpacks/.bin``)."""
    if not target.xpack_package:
        raise TinybuildError(f"target '{target.name}' names no xPack toolchain")
    xpm = shutil.which("xpm")
    if not xpm:
        raise TinybuildError("xpm is not installed: `npm install --global xpm@latest`, then retry")
    package_json = PROJECT_ROOT / "package.json"
    if not package_json.exists():
        subprocess.run([xpm, "init"], cwd=PROJECT_ROOT, check=True)
    cmd = [xpm, "install", f"{target.xpack_package}@latest", "--verbose"]
    if subprocess.run(cmd, cwd=PROJECT_ROOT).returncode != 0:
        raise TinybuildError(f"`{' '.join(cmd)}` failed (xPack releases download from GitHub: "
                             "is the network reachable?)")
    return PROJECT_ROOT / "xpacks" / ".bin"
