"""Build, load and register the native block-counting hook (native_hook.c).

The C source is compiled once with the host C compiler (``$CC`` or ``cc``)
into a shared library cached under ``$XDG_CACHE_HOME/tinybuild`` (or
``~/.cache/tinybuild``), named by a hash of the source and the compiler, so an
edited source rebuilds and concurrent builders never clobber each other
(write to a temporary name, then rename). The hook is registered by calling
libunicorn's ``uc_hook_add`` through ctypes with the C function pointer and a
pointer to a :class:`Counters` struct owned by Python.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tinybuild.errors import TinybuildError

SOURCE = Path(__file__).with_name("native_hook.c")
NREGS = 32                  # TB_NREGS: registers the static access watch follows
_lib: ctypes.CDLL | None = None


class Cache(ctypes.Structure):
    """Mirror of tb_cache_t: ``sets`` x ``ways`` tags (set by Python); the LRU
    order and way hints are allocated by the hook and freed by tb_release."""

    _fields_ = [("tags", ctypes.c_void_p), ("sets", ctypes.c_uint64), ("ways", ctypes.c_uint64),
                ("order", ctypes.c_void_p), ("hint", ctypes.c_void_p),
                ("last", ctypes.c_uint64)]


class Counters(ctypes.Structure):
    """Mirror of tb_counters_t in native_hook.c (keep in the same order)."""

    _fields_ = [
        ("insns", ctypes.c_uint64),
        ("cycles", ctypes.c_uint64),
        ("blocks", ctypes.c_uint64),
        ("taken", ctypes.c_uint64),
        ("prev_end", ctypes.c_uint64),
        ("base", ctypes.c_uint64),
        ("nhw", ctypes.c_uint64),
        ("cum_n", ctypes.c_void_p),
        ("cum_c", ctypes.c_void_p),
        ("fresh_adj", ctypes.c_void_p),
        ("taken_penalty", ctypes.c_uint64),
        ("max_insns", ctypes.c_uint64),
        ("limit_hit", ctypes.c_uint64),
        ("oob_blocks", ctypes.c_uint64),
        ("oob_bytes", ctypes.c_uint64),
        ("emu_stop", ctypes.c_void_p),
        ("misaligned", ctypes.c_uint64),
        ("misaligned_cycles", ctypes.c_uint64),
        ("first_misaligned", ctypes.c_uint64),
        ("first_misaligned_size", ctypes.c_uint64),
        ("pen_half_odd", ctypes.c_uint64),
        ("pen_word_half", ctypes.c_uint64),
        ("pen_word_byte", ctypes.c_uint64),
        ("trap_misaligned", ctypes.c_uint64),
        ("mm_on", ctypes.c_uint64),
        ("flash_lo", ctypes.c_uint64),
        ("flash_hi", ctypes.c_uint64),
        ("line_shift", ctypes.c_uint64),
        ("miss_cycles", ctypes.c_uint64),
        ("prefetch", ctypes.c_uint64),
        ("last_iline", ctypes.c_uint64),
        ("mem_cycles", ctypes.c_uint64),
        ("imisses", ctypes.c_uint64),
        ("dmisses", ctypes.c_uint64),
        ("prefetched", ctypes.c_uint64),
        ("icache", Cache),
        ("dcache", Cache),
        ("read_type", ctypes.c_uint64),
        ("nflash", ctypes.c_uint64),
        ("flash_ranges", (ctypes.c_uint64 * 2) * 4),
        # the static access watch
        ("static_on", ctypes.c_uint64),
        ("count_misaligned", ctypes.c_uint64),
        ("insn", ctypes.c_void_p),
        ("hooked", ctypes.c_void_p),
        ("progs", ctypes.c_void_p),
        ("reg_read", ctypes.c_void_p),
        ("reg_ids", ctypes.c_int32 * NREGS),
        ("nregs", ctypes.c_int64),
        ("pc_reg", ctypes.c_int64),
        ("pc_id", ctypes.c_int64),
        ("access_pc", ctypes.c_uint64),
        ("first_misaligned_pc", ctypes.c_uint64),
        ("missing", ctypes.c_uint64),
        ("unmodelled", ctypes.c_uint64),
        ("unmodelled_at", ctypes.c_uint64),
        ("static_ops", ctypes.c_uint64),
        ("hooked_ops", ctypes.c_uint64),
        ("cur", ctypes.c_void_p),
        ("cursor", ctypes.c_uint64),
        ("regs", ctypes.c_uint32 * NREGS),
        ("exit_regs", ctypes.c_uint32 * NREGS),
        ("uc", ctypes.c_void_p),
        ("last_block", ctypes.c_uint64),
        ("warm_on", ctypes.c_uint64),
        ("warm_first", ctypes.c_uint64),
        ("warm_last", ctypes.c_uint64),
    ]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tinybuild"


def compiler() -> str | None:
    for cand in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cand and shutil.which(cand):
            return cand
    return None


def library_path() -> Path:
    cc = compiler() or "cc"
    digest = hashlib.sha256(SOURCE.read_bytes() + cc.encode()).hexdigest()[:16]
    return cache_dir() / f"tb_unicorn_hook-{digest}.so"


def build() -> Path:
    """Compile the hook if the cache has no library for this source."""
    out = library_path()
    if out.exists():
        return out
    cc = compiler()
    if cc is None:
        raise TinybuildError(
            "the unicorn simulator needs a host C compiler to build its native "
            "counting hook: install one (e.g. `apt install gcc`) or set CC")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.stem, suffix=".so.tmp", dir=out.parent)
    os.close(fd)
    cmd = [cc, "-O2", "-shared", "-fPIC", "-o", tmp, str(SOURCE)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        os.unlink(tmp)
        raise TinybuildError(
            f"building the unicorn simulator's native hook failed ({' '.join(cmd)}):\n"
            f"{proc.stderr.strip()}")
    os.replace(tmp, out)
    return out


def load() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(str(build()))
        lib.tb_counters_size.restype = ctypes.c_uint64
        if lib.tb_counters_size() != ctypes.sizeof(Counters):
            raise TinybuildError(
                f"native hook struct size mismatch ({lib.tb_counters_size()} != "
                f"{ctypes.sizeof(Counters)}): delete {library_path()} and retry")
        for name in ("tb_scan", "tb_flush_accesses", "tb_release", "tb_release_caches"):
            if not hasattr(lib, name):       # an older native_hook.c (bench/sim_speed.py --report)
                setattr(lib, name, lib.tb_release)
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = None
        _lib = lib
    return _lib


def uclib() -> ctypes.CDLL:
    from unicorn.unicorn_py3.unicorn import uclib as lib  # the loaded libunicorn
    return lib


def unicorn_patch_level() -> int:
    """1 or more: the loaded libunicorn carries tinybuild's speed patch
    (third_party/unicorn, built by ``./tb``); 0: the unpatched wheel (same
    counts, slower Cortex-M runs)."""
    level = getattr(uclib(), "uc_tinybuild_patch_level", None)
    return int(level()) if level is not None else 0


def unicorn_label() -> str:
    """How the loaded Unicorn is named in ``tinybuild simulators`` and the report."""
    import unicorn
    if unicorn_patch_level():
        return f"unicorn {unicorn.__version__} + tinybuild speed patch"
    return f"unicorn {unicorn.__version__} (unpatched wheel: slower Cortex-M runs)"


def add_mem_hook(uc, counters: Counters) -> int:
    """Register tb_mem_hook for every data read and write of ``uc``."""
    from unicorn import UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE
    from unicorn.unicorn_const import UC_ERR_OK

    lib = load()
    ucl = uclib()
    counters.emu_stop = ctypes.cast(ucl.uc_emu_stop, ctypes.c_void_p).value
    counters.reg_read = ctypes.cast(ucl.uc_reg_read, ctypes.c_void_p).value   # the trap's PC
    handle = ctypes.c_size_t()
    status = ucl.uc_hook_add(
        uc._uch, ctypes.byref(handle), UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE,
        ctypes.cast(lib.tb_mem_hook, ctypes.c_void_p),
        ctypes.c_void_p(ctypes.addressof(counters)), ctypes.c_uint64(1), ctypes.c_uint64(0))
    if status != UC_ERR_OK:
        raise TinybuildError(f"uc_hook_add(UC_HOOK_MEM_READ|WRITE) failed with unicorn error {status}")
    return handle.value


def add_flash_read_hook(uc, counters: Counters, begin: int, end: int) -> int:
    """Register tb_flash_read_hook for data reads in [begin, end) only (the
    memory model's flash; reads elsewhere never call it)."""
    from unicorn import UC_HOOK_MEM_READ
    from unicorn.unicorn_const import UC_ERR_OK

    lib = load()
    handle = ctypes.c_size_t()
    status = uclib().uc_hook_add(
        uc._uch, ctypes.byref(handle), UC_HOOK_MEM_READ,
        ctypes.cast(lib.tb_flash_read_hook, ctypes.c_void_p),
        ctypes.c_void_p(ctypes.addressof(counters)), ctypes.c_uint64(begin),
        ctypes.c_uint64(end - 1))                   # unicorn's range is inclusive
    if status != UC_ERR_OK:
        raise TinybuildError(f"uc_hook_add(UC_HOOK_MEM_READ, flash) failed with unicorn error {status}")
    return handle.value


def add_block_hook(uc, counters: Counters) -> int:
    """Register tb_block_hook for every block of ``uc``; returns the hook handle."""
    from unicorn import UC_HOOK_BLOCK
    from unicorn.unicorn_const import UC_ERR_OK

    lib = load()
    ucl = uclib()
    counters.emu_stop = ctypes.cast(ucl.uc_emu_stop, ctypes.c_void_p).value
    fn = ctypes.cast(lib.tb_block_hook, ctypes.c_void_p)
    handle = ctypes.c_size_t()
    status = ucl.uc_hook_add(
        uc._uch, ctypes.byref(handle), UC_HOOK_BLOCK, fn,
        ctypes.c_void_p(ctypes.addressof(counters)),
        ctypes.c_uint64(1), ctypes.c_uint64(0))   # begin > end: every block
    if status != UC_ERR_OK:
        raise TinybuildError(f"uc_hook_add(UC_HOOK_BLOCK) failed with unicorn error {status}")
    return handle.value


def add_access_hooks(uc, counters: Counters, ranges: list[tuple[int, int]]) -> None:
    """Register tb_access_hook (UC_HOOK_CODE) on each address range [begin, end)
    of ``ranges``: the instructions whose accesses the static watch resolves
    at run time."""
    from unicorn import UC_HOOK_CODE
    from unicorn.unicorn_const import UC_ERR_OK

    lib = load()
    ucl = uclib()
    counters.reg_read = ctypes.cast(ucl.uc_reg_read, ctypes.c_void_p).value
    fn = ctypes.cast(lib.tb_access_hook, ctypes.c_void_p)
    for begin, end in ranges:
        handle = ctypes.c_size_t()
        status = ucl.uc_hook_add(
            uc._uch, ctypes.byref(handle), UC_HOOK_CODE, fn,
            ctypes.c_void_p(ctypes.addressof(counters)), ctypes.c_uint64(begin),
            ctypes.c_uint64(end - 1))
        if status != UC_ERR_OK:
            raise TinybuildError(f"uc_hook_add(UC_HOOK_CODE) failed with unicorn error {status}")


def call(name: str, counters: Counters) -> None:
    """Call the native function ``name`` (tb_scan, tb_flush_accesses, tb_release,
    tb_release_caches)."""
    getattr(load(), name)(ctypes.c_void_p(ctypes.addressof(counters)))
