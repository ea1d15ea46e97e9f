"""One place per op: the registry of the operators tinybuild compiles.

An op family is one module here, ``tinybuild/ops/<family>.py``, holding a list
``OPS`` of :class:`OpDef` (checks, build-time quantization math, parameters
and constants: everything but the C code), its reference kernels in
``tinybuild/kernels/<family>.c`` declared in ``<family>.h`` (which
``tb_kernels.h`` includes), and its test cases in one table,
``tests/ops/test_<family>.py``. Modules are found by name, so adding a family
edits no list elsewhere. Plugins contribute whole ops the same way through the
``tinybuild_ops`` hook (:func:`set_plugin_ops`). docs/ops.md is the guide.

:func:`registry` is what the rest of tinybuild asks: ``lower.lower_graph``
lowers each operator with its OpDef, ``kernel_registry.REFERENCE`` and
``reference_sources()`` name the reference kernels and their C files, the
importer reads each op's options from ``OpDef.options``.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import TinybuildError, shown

KERNEL_DIR = Path(__file__).parent.parent / "kernels"
COMMON_SOURCES = (KERNEL_DIR / "quant_s8.c",)        # helpers every family links with


@dataclass(frozen=True)
class OptionField:
    """One field of a TFLite builtin options table (schema.fbs)."""

    key: str                 # the Operator.options key lowerings read, e.g. "StrideH"
    field: str               # the schema.fbs field name, e.g. "stride_h"
    slot: int                # its position in the table, from 0, in schema.fbs order
    kind: object = "i32"     # a tinybuild.flatbuffer_check kind: "i8", "i32", "f32", "bool", ("vec", "i32")
    default: object = 0      # schema.fbs default (unused for vectors)


@dataclass(frozen=True)
class Options:
    """The builtin options table an op carries and the fields its lowering reads.
    ``FusedActivationFunction`` and ``Padding`` keys arrive as names ("RELU6",
    "SAME"), bools as bools, vectors as lists of ints."""

    table: str                          # the BuiltinOptions member, e.g. "Conv2DOptions"
    fields: tuple[OptionField, ...]


@dataclass(frozen=True)
class Folded:
    """A lowering's answer for an op computed at build time: its outputs'
    values, which become constants (the op runs no code on the device)."""

    values: dict[int, np.ndarray]


@dataclass(frozen=True)
class OpDef:
    """Everything tinybuild knows about one TFLite operator.

    ``lower(graph, op)`` checks the operator and returns a
    :class:`tinybuild.lower.Layer` (or a list of them, or :class:`Folded`, or
    None when the op needs no code and nothing reads its outputs); it raises
    ``unsupported(op, why, graph)`` for what it cannot compile. ``fold(graph,
    op) -> {tensor: ndarray} | None`` evaluates the op in numpy when every
    input is constant (None: it cannot; the op is then lowered). ``in_place(layer)
    -> {input tensor: allowed offset(out) - offset(in)}`` says how the reference
    kernel may overlap its output with a dying input (see tinybuild.planner).
    ``view``: the output is the input's bytes reinterpreted (no copy when the
    planner aliases them; ``kernel`` copies otherwise).
    """

    name: str                           # TFLite builtin name, or "CUSTOM:<custom code>"
    lower: Callable
    kernel: str                         # the reference C function
    source: Path                        # the C file defining it
    params_type: str = ""               # its params struct, when every layer uses the same one
    options: Options | None = None
    fold: Callable | None = None
    in_place: Callable | None = None
    view: bool = False
    doc: str = ""                       # one line for the op table in docs/ops.md
    header: Path | None = None          # plugin ops: the header declaring kernel and params_type
    plugin: str = field(default="", compare=False)   # set for ops from the tinybuild_ops hook
    typed: dict = field(default_factory=dict, compare=False)
    # dtype -> the reference C function for layers of that Layer.dtype other than
    # "int8" (e.g. {"float32": "tb_conv_f32", "int16": "tb_conv_s16"}), defined in
    # ``source`` and declared in the family's header like ``kernel``

    def kernel_for(self, dtype: str) -> str:
        """The reference C function for a layer of ``dtype``."""
        if dtype == "int8":
            return self.kernel
        if dtype not in self.typed:
            raise TinybuildError(f"op {self.name}: a {dtype} layer but no {dtype} kernel (the "
                                 "lowering should have refused it: a tinybuild bug)")
        return self.typed[dtype]


def unsupported(op, why: str, graph=None) -> TinybuildError:
    """The one error for an operator tinybuild cannot compile as it is: the op,
    its layer index, its output tensor (escaped) and what exactly is missing."""
    where = f"layer {op.index}"
    if graph is not None and op.outputs and 0 <= op.outputs[0] < len(graph.tensors):
        where += f" (output tensor '{shown(graph.tensors[op.outputs[0]].name)}')"
    return TinybuildError(f"unsupported {shown(op.op)} at {where}: {why}. Re-export the model "
                          "without it, or add it to tinybuild (docs/ops.md)")


# -- the registry ---------------------------------------------------------------------------

_builtin: dict[str, OpDef] = {}
_plugin: dict[str, OpDef] = {}


def builtin() -> dict[str, OpDef]:
    """The ops of every module in this package (each module's ``OPS``), by name."""
    if not _builtin:
        found: dict[str, OpDef] = {}
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{__name__}.{info.name}")
            for opdef in getattr(module, "OPS", ()):
                if opdef.name in found:
                    raise RuntimeError(f"op {opdef.name} is defined twice (again in {module.__name__})")
                found[opdef.name] = opdef
        _builtin.update(found)
    return _builtin


def registry() -> dict[str, OpDef]:
    """Every op tinybuild compiles: the built-in families, then the plugins' ops."""
    return {**builtin(), **_plugin}


def set_plugin_ops(contributed: list[tuple[str, object]]) -> None:
    """The ops the loaded plugins give (``(plugin label, OpDef)`` from the
    ``tinybuild_ops`` hook), checked; they replace those of an earlier plugin set."""
    found: dict[str, OpDef] = {}
    for label, opdef in contributed:
        problem = _plugin_op_problem(opdef, found)
        if problem:
            name = getattr(opdef, "name", "?")
            raise TinybuildError(f"plugin {label}: op '{shown(name)}': {problem}")
        found[opdef.name] = replace(opdef, plugin=label)
    _plugin.clear()
    _plugin.update(found)


def _plugin_op_problem(opdef, found: dict) -> str:
    from ..kernel_registry import C_IDENTIFIER
    if not isinstance(opdef, OpDef):
        return f"tinybuild_ops returned a {type(opdef).__name__}, not a tinybuild.ops.OpDef"
    if not isinstance(opdef.name, str) or opdef.name in builtin() or opdef.name in found:
        return "tinybuild or another plugin already compiles this op; give faster kernels " \
               "through tinybuild_kernels instead"
    if not isinstance(opdef.kernel, str) or not C_IDENTIFIER.fullmatch(opdef.kernel):
        return "kernel must be the C function's name (letters, digits, '_')"
    if not callable(opdef.lower):
        return "lower must be a callable (graph, op) -> Layer"
    for path in (opdef.source, opdef.header):
        if path is not None and not Path(path).is_file():
            return f"file {shown(path, 200)} does not exist"
    if opdef.params_type and opdef.header is None:
        return f"params_type {shown(opdef.params_type)} needs the header that declares it (header=)"
    return ""


class ReferenceKernels(Mapping):
    """op name -> reference C function, always current with the registry
    (plugin ops included): ``kernel_registry.REFERENCE``."""

    def __getitem__(self, name: str) -> str:
        return registry()[name].kernel

    def __iter__(self):
        return iter(registry())

    def __len__(self) -> int:
        return len(registry())


def c_sources() -> list[Path]:
    """The C files of every registered op's reference kernel, and their helpers."""
    ops = registry().values()
    built_in = {KERNEL_DIR / "quant_s8.c", *(Path(o.source) for o in ops if not o.plugin)}
    plugin = [Path(o.source) for o in ops if o.plugin]
    return sorted(built_in) + sorted(set(plugin) - built_in)


def build_files() -> list[Path]:
    """Files the generated code depends on: every op module, the reference
    kernels' C files and headers, and the plugin ops' modules and C files."""
    import inspect
    files = set(Path(__file__).parent.glob("*.py")) | set(KERNEL_DIR.glob("*.[ch]"))
    for opdef in _plugin.values():
        files |= {Path(p) for p in (opdef.source, opdef.header) if p is not None}
        try:
            files.add(Path(inspect.getsourcefile(opdef.lower)))
        except TypeError:
            pass
    return sorted(files)


def plugin_headers() -> dict[str, Path]:
    """Kernel name -> header, for the plugin ops that give one."""
    return {o.kernel: Path(o.header) for o in _plugin.values() if o.header is not None}


def declared_kernels() -> set[str]:
    """The kernels a header declares (tb_kernels.h or a plugin op's header): the
    generated code needs no prototype for them."""
    return {k for o in builtin().values() for k in (o.kernel, *o.typed.values())} | \
        set(plugin_headers())


def reference_kernel_names() -> set[str]:
    """Every reference C function, of every type (reports mark them as such)."""
    return {k for o in registry().values() for k in (o.kernel, *o.typed.values())}


def ops_table() -> str:
    """The Markdown table of docs/ops.md: every built-in op, its family, its
    kernel and what it covers (``OpDef.doc``)."""
    rows = ["| op | family | reference kernel | covers |", "| --- | --- | --- | --- |"]
    for name, opdef in sorted(builtin().items()):
        family = opdef.lower.__module__.rsplit(".", 1)[-1]
        rows.append(f"| `{name}` | `{family}` | `{opdef.kernel}` | {opdef.doc} |")
    return "\n".join(rows) + "\n"


def option_tables() -> dict[str, dict]:
    """For tinybuild.flatbuffer_check: BuiltinOptions member -> ``{"union":
    its union index, "fields": (field, slot, kind[, default]) ..., "ops": builtin
    codes that carry it}``, from every registered op's ``options``."""
    from tflite.BuiltinOperator import BuiltinOperator
    from tflite.BuiltinOptions import BuiltinOptions
    tables: dict[str, dict] = {}
    for opdef in registry().values():
        if opdef.options is None or opdef.name.startswith("CUSTOM:"):
            continue
        union = getattr(BuiltinOptions, opdef.options.table, None)
        code = getattr(BuiltinOperator, opdef.name, None)
        if union is None or code is None:       # a typo in an OpDef: say so before any model loads
            raise RuntimeError(f"OpDef {opdef.name}: the tflite package knows no "
                               f"{'operator ' + opdef.name if code is None else opdef.options.table}")
        entry = tables.setdefault(opdef.options.table, {
            "union": union, "fields": tuple(_schema_field(f) for f in opdef.options.fields), "ops": []})
        entry["ops"].append(code)
    return tables


def _schema_field(f: OptionField) -> tuple:
    return (f.field, f.slot, f.kind) if isinstance(f.kind, tuple) else (f.field, f.slot, f.kind, f.default)


def options_of(name: str) -> Options | None:
    opdef = registry().get(name)
    return opdef.options if opdef is not None else None


OPS_DOC = Path(__file__).resolve().parents[2] / "docs" / "ops.md"
TABLE_BEGIN, TABLE_END = "<!-- ops-table:begin -->\n", "<!-- ops-table:end -->"


def write_ops_table(doc: Path = OPS_DOC) -> None:
    """Rewrite the op table of docs/ops.md from the registry
    (``./tb python -m tinybuild.ops``)."""
    text = doc.read_text()
    start, end = text.index(TABLE_BEGIN) + len(TABLE_BEGIN), text.index(TABLE_END)
    doc.write_text(text[:start] + ops_table() + text[end:])
