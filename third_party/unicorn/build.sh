#!/usr/bin/env bash
# Build libunicorn from the pinned Unicorn sdist with tinybuild's speed patch
# (tinybuild-speed.patch, docs/simulators.md "Unicorn with tinybuild's speed
# patch") and put it in place of the unicorn wheel's library.
#
#   third_party/unicorn/build.sh PYTHON LIBDIR WORKDIR
#
# PYTHON: the venv's python (pip downloads the sdist); LIBDIR: the folder
# holding the installed package's libunicorn.so.2 (the wheel's copy is kept
# beside it as libunicorn.so.2.wheel); WORKDIR: scratch space, left with
# build.log. Only the ARM and RISC-V targets are built (the simulators run
# nothing else). Exits non-zero, with LIBDIR untouched, if any step fails.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="$1"; libdir="$2"; work="$3"
version=2.1.4
sha256=00567a70e323f749b419cd86bee4f9115beab7ebba32194581c090cbb7c59cff

mkdir -p "$work"
sdist="$work/unicorn-$version.tar.gz"
if [ ! -f "$sdist" ] || ! echo "$sha256  $sdist" | sha256sum -c --status; then
  "$python" -m pip download -q --no-binary :all: --no-deps -d "$work" "unicorn==$version"
fi
echo "$sha256  $sdist" | sha256sum -c --status || { echo "unicorn-$version.tar.gz: sha256 mismatch" >&2; exit 1; }

src="$work/unicorn-$version"
rm -rf "$src" "$work/build"
tar -xzf "$sdist" -C "$work"
patch -s -p1 -d "$src/src" < "$here/tinybuild-speed.patch"
cmake -S "$src/src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DUNICORN_BUILD_TESTS=off \
      -DUNICORN_ARCH="arm;riscv" >/dev/null
cmake --build "$work/build" -j"$(nproc 2>/dev/null || echo 2)" --target unicorn >/dev/null

# The new library must load and say it is patched before it replaces the wheel's.
LIBUNICORN_PATH="$work/build" "$python" -c \
  "from unicorn.unicorn_py3.unicorn import uclib; assert uclib.uc_tinybuild_patch_level() >= 1"
# Keep the wheel's library (bench/sim_speed.py --patch compares with it): the installed one, unless
# it is already a patched build.
if LIBUNICORN_PATH="$libdir" "$python" -c "import sys; from unicorn.unicorn_py3.unicorn import uclib
sys.exit(hasattr(uclib, 'uc_tinybuild_patch_level'))"; then
  cp "$libdir/libunicorn.so.2" "$libdir/libunicorn.so.2.wheel"
fi
cp "$work/build/libunicorn.so.2" "$libdir/libunicorn.so.2.tmp"
mv -f "$libdir/libunicorn.so.2.tmp" "$libdir/libunicorn.so.2"
rm -rf "$src" "$work/build"
