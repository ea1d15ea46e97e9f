"""Which C function runs each layer.

The portable reference kernels (``tinybuild/kernels/*.c``) cover every
supported op. Target plugins may contribute faster implementations through
the ``tinybuild_kernels`` hook; for each layer the code generator takes the
best accepting implementation (:func:`choose`: highest priority, then the
plugin loaded first, then the function name), else the reference one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import ops
from .errors import shown

KERNEL_DIR = Path(__file__).parent / "kernels"
RUNTIME_DIR = Path(__file__).parent / "runtime"


@dataclass(frozen=True)
class KernelImpl:
    """One implementation of one op.

    ``function`` is the C function; ``sources`` are the C files that define
    it; ``accepts(layer)`` gets a :class:`tinybuild.lower.Layer` and says
    whether this implementation is correct for its shapes and parameters.
    ``op`` must be a key of :data:`REFERENCE` (an unknown op stops the build
    naming the plugin and the function).

    Choice among the implementations that accept a layer: the higher
    ``priority`` wins; on a tie, the one from the plugin loaded first (built-in
    ``targets/`` and ``sim/`` plugins, then installed packages, then
    ``plugins/`` and ``plugins=`` folders, each in file-name order); then the
    function name in alphabetical order; then ``name``. The reference kernels
    have priority -1. ``plugin`` is filled in by the plugin manager (the
    plugin's name and file) and recorded on each layer (``kernel_plugin``,
    in plan.json).

    Without ``prepare`` the function has the reference kernel's C signature
    (see tb_kernels.h). ``prepare(layer) -> Layer`` runs once at build time
    for each layer this implementation was chosen for and returns the layer
    to generate (a copy; ``dataclasses.replace``). It may:

    - replace or add ``consts`` (reordered weights, precomputed tables) and
      set ``args``: the roles of the consts passed after the input tensors,
      in order (the call is ``function(&params, inputs..., consts in args
      order..., output[, scratch])``);
    - change ``params`` / ``params_type`` (a struct from tb_kernels.h);
    - set ``scratch_bytes``: the planner reserves that much arena for this
      step only and passes it as a last ``void *`` argument (4-byte aligned
      at least; the arena alignment is 16);
    - set ``overlap``: ``{input tensor: (lo, hi)}``, the offsets
      ``offset(output) - offset(input)`` for which the kernel is still correct
      when its output shares bytes with that input (in-place operation; the
      planner uses it only when the input dies at this layer): an interval
      ``(lo, hi)`` or a list of intervals, None for an unbounded end; see
      tinybuild.planner.raster_overlap. ``scratch_overlap`` declares the same
      for the scratch buffer (e.g. an input expanded back to front in place);
    - append human-readable ``notes`` (shown in plan.json).
    The generated code declares a prototype for every non-reference function
    from the argument types (params pointer, ``const int8_t *`` inputs, const
    arrays by their C types, ``int8_t *`` output, ``void *`` scratch).

    ``min_opt`` is the lowest ``opt=`` level its ``sources`` build at (inline
    assembly that names r7 or asks for many register operands does not
    compile at -O0 or -O1): a build at a lower level compiles those files at
    ``min_opt`` and the rest at its own (:func:`compile_levels`). A plugin
    module's ``KERNEL_MIN_OPT`` is the default for its kernels.
    """

    op: str
    function: str
    sources: tuple[Path, ...] = ()
    priority: int = 0
    accepts: Callable[[object], bool] = field(default=lambda layer: True, compare=False)
    name: str = ""
    prepare: Callable[[object], object] | None = field(default=None, compare=False)
    plugin: str = ""                     # filled in by tinybuild.plugins.kernels
    dtypes: tuple[str, ...] = ("int8",)  # the Layer.dtype values it computes ("int8", "int16",
                                         # "float32"); layers of other types never reach accepts
    min_opt: str = ""                    # "" or an OPT_LEVELS key: see above

    @property
    def label(self) -> str:
        return self.name or self.function

    @property
    def build_files(self) -> tuple[Path, ...]:
        """Files code generation depends on: the module defining ``prepare``
        (a build system regenerates model.c when it changes)."""
        import inspect
        if self.prepare is None:
            return ()
        try:
            return (Path(inspect.getsourcefile(self.prepare)),)
        except TypeError:
            return ()


# The opt= levels, ranked by how far GCC optimizes: what -O2 builds, -Os and -O3 build too
# (frame pointer omitted, operands kept in registers).
OPT_LEVELS = {"O0": 0, "O1": 1, "O2": 2, "Os": 2, "O3": 3}


def compile_level(opt: str, min_opt: str = "") -> str:
    """The level a file is compiled at: the build's ``opt``, raised to ``min_opt``."""
    return min_opt if min_opt and OPT_LEVELS[opt] < OPT_LEVELS[min_opt] else opt


def compile_levels(contributed: list[KernelImpl], opt: str,
                   plugin_min_opt: dict[str, str] | None = None) -> dict[Path, str]:
    """The kernel sources a build at ``opt`` compiles at another level, and
    that level: the highest ``min_opt`` among the kernels that list the file
    (a kernel without one takes its plugin's, ``plugin_min_opt[impl.plugin]``)."""
    raised: dict[Path, str] = {}
    for impl in contributed:
        needs = impl.min_opt or (plugin_min_opt or {}).get(impl.plugin, "")
        for src in map(Path, impl.sources):
            level = compile_level(raised.get(src, opt), needs)
            if level != opt:
                raised[src] = level
    return raised


def levels_by_file(raised: dict[Path, str]) -> dict[str, str]:
    """``compile_levels`` for a record: file name -> level, sorted by name."""
    return {Path(p).name: level for p, level in sorted(raised.items(), key=lambda x: Path(x[0]).name)}


def opt_files_note(opt: str, opt_files: dict[str, str]) -> str:
    """One line for report.md: the kernel files not compiled at -<opt>, and why."""
    by_level: dict[str, list[str]] = {}
    for name, level in opt_files.items():
        by_level.setdefault(level, []).append(name)
    parts = "; ".join(f"-{level}: {', '.join(map(shown, names))}" for level, names in by_level.items())
    return (f"Compiled at -{opt} except these kernel sources, at the lowest level their plugin "
            f"declares they build at (min_opt): {parts}.")


def opt_summary(report: dict) -> str:
    """The summary's level: ``-O0 (6 kernel files at -O2: report.md)``."""
    opt_files = report.get("opt_files") or {}
    if not opt_files:
        return f"-{report['opt']}"
    levels = "/".join(f"-{level}" for level in dict.fromkeys(opt_files.values()))
    return f"-{report['opt']} ({len(opt_files)} kernel files at {levels}: report.md)"


# op -> reference C function, always current with tinybuild.ops (plugin ops included)
REFERENCE = ops.ReferenceKernels()


def reference_sources() -> list[Path]:
    """The C files of every registered op's reference kernel and their helpers."""
    return ops.c_sources()


def _reference_prepare(layer):
    """What the reference kernel allows in place: its OpDef's ``in_place``."""
    from dataclasses import replace
    opdef = ops.registry().get(layer.op)
    if opdef is None or opdef.in_place is None:
        return layer
    return replace(layer, overlap=opdef.in_place(layer))


REFERENCE_PLUGIN = "tinybuild (reference kernels)"
C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def reference_impl(op: str, dtype: str = "int8") -> KernelImpl:
    function = ops.registry()[op].kernel_for(dtype)
    return KernelImpl(op, function, tuple(reference_sources()), -1,
                      name=f"{function} (reference)", prepare=_reference_prepare,
                      plugin=REFERENCE_PLUGIN, dtypes=(dtype,))


def min_opt_problem(value) -> str:
    """What is wrong with a ``min_opt`` / ``KERNEL_MIN_OPT`` value, or ""."""
    if value == "" or (isinstance(value, str) and value in OPT_LEVELS):
        return ""
    return f"min_opt must be \"\" or one of {', '.join(OPT_LEVELS)}, not {shown(repr(value), 40)}"


def problems(impl: KernelImpl) -> list[str]:
    """What makes a contributed implementation unusable, each with its fix."""
    if impl.op not in REFERENCE:
        import difflib
        close = difflib.get_close_matches(str(impl.op), list(REFERENCE), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return [f"op '{shown(impl.op)}' is not one tinybuild compiles{hint}; known ops: "
                f"{', '.join(sorted(REFERENCE))}"]
    if not isinstance(impl.function, str) or not C_IDENTIFIER.fullmatch(impl.function):
        return ["function must be the C function's name (letters, digits, '_')"]
    if not isinstance(impl.dtypes, tuple) or not set(impl.dtypes) <= {"int8", "int16", "float32"}:
        return ["dtypes must be a tuple of \"int8\", \"int16\", \"float32\""]
    if not isinstance(impl.priority, int) or isinstance(impl.priority, bool):
        return [f"priority must be an int, not {type(impl.priority).__name__}"]
    if min_opt_problem(impl.min_opt):
        return [min_opt_problem(impl.min_opt)]
    if not callable(impl.accepts) or (impl.prepare is not None and not callable(impl.prepare)):
        return ["accepts and prepare must be callables taking a tinybuild.lower.Layer"]
    missing = [str(p) for p in impl.sources if not Path(p).is_file()]
    if missing:
        return [f"source {shown(missing[0], 200)} does not exist"]
    return []


def choose(layer, contributed: list[KernelImpl]) -> KernelImpl:
    """The implementation for ``layer``: among those for its op that accept it,
    the highest priority, then the plugin that appears first in
    ``contributed`` (plugin load order), then the function name, then the
    label; the reference kernel when none accepts."""
    plugin_order = {}
    for impl in contributed:
        plugin_order.setdefault(impl.plugin, len(plugin_order))
    dtype = getattr(layer, "dtype", "int8")
    candidates = [k for k in contributed
                  if k.op == layer.op and dtype in k.dtypes and k.accepts(layer)]
    if not candidates:
        return reference_impl(layer.op, dtype)
    return min(candidates, key=lambda k: (-k.priority, plugin_order[k.plugin], k.function, k.label))


def select_kernels(layers: list, contributed: list[KernelImpl]) -> list:
    """Choose each layer's kernel and let it prepare the layer (build-time
    work); the layer records the function, its label and its plugin."""
    out = []
    for layer in layers:
        impl = choose(layer, contributed)
        if impl.prepare is not None:
            lowering_notes = layer.notes        # e.g. "PAD fused": kept when a prepare replaces notes
            layer = impl.prepare(layer)
            layer.notes = lowering_notes + [n for n in layer.notes if n not in lowering_notes]
        layer.kernel, layer.kernel_label, layer.kernel_plugin = impl.function, impl.label, impl.plugin
        out.append(layer)
    return out
