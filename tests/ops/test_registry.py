"""The op registry (tinybuild/ops): every op in one place, consistent with its C
kernel, its options and the docs; the harness fails when a kernel is wrong."""
import re
from dataclasses import replace
from pathlib import Path

import pytest

from harness import check
from test_add import add_model
from tinybuild import kernel_registry, lower, ops
from tinybuild.errors import TinybuildError

ROOT = Path(__file__).resolve().parents[2]
OPS_DOC = ROOT / "docs" / "ops.md"


def _headers() -> str:
    return "\n".join(p.read_text() for p in ops.KERNEL_DIR.glob("*.h"))


@pytest.mark.parametrize("name", sorted(ops.builtin()))
def test_each_op_names_a_declared_kernel_its_file_defines(name):
    opdef = ops.builtin()[name]
    assert re.search(rf"\bvoid {opdef.kernel}\(", _headers()), f"{opdef.kernel} is in no header"
    assert re.search(rf"\bvoid {opdef.kernel}\(", Path(opdef.source).read_text())
    assert not opdef.params_type or re.search(rf"}} {opdef.params_type};", _headers())
    assert opdef.doc and "|" not in opdef.doc
    assert kernel_registry.REFERENCE[name] == opdef.kernel
    assert Path(opdef.source) in kernel_registry.reference_sources()


def test_the_ops_table_in_docs_ops_md_is_current():
    text = OPS_DOC.read_text()
    begin, end = ops.TABLE_BEGIN, ops.TABLE_END
    table = text[text.index(begin) + len(begin):text.index(end)]
    assert table == ops.ops_table(), "regenerate it: ./tb python -m tinybuild.ops"


def test_supported_is_the_registry():
    assert lower.SUPPORTED == tuple(sorted(ops.registry()))


def test_an_op_without_a_lowering_is_named_with_its_layer_and_tensor(tmp_path):
    from tflite_builder import ModelBuilder
    b = ModelBuilder()
    x = b.input((1, 4), "int8", 0.1, 0)
    y = b.tensor((1, 4), "int8", 0.1, 0, name="out\x1b[2J")
    b.op("COS", [x], [y])          # an op no family lowers
    path = tmp_path / "m.tflite"
    path.write_bytes(b.build([y]))
    from tinybuild.importer import load_graph
    with pytest.raises(TinybuildError) as err:
        lower.lower_graph(load_graph(path))
    msg = str(err.value)
    assert msg.startswith("unsupported COS at layer 0 (output tensor 'out\\x1b[2J'): no kernel for "
                          "this operator (tinybuild compiles ")
    assert " ADD, " in msg
    assert "\x1b" not in msg and "\n" not in msg


def test_the_harness_catches_a_kernel_one_off(monkeypatch):
    """A lowering whose output zero point is off by one fails the comparison."""
    add = ops.builtin()["ADD"]

    def off_by_one(graph, op):
        layer = add.lower(graph, op)
        layer.params["output_offset"] += 1
        return layer

    monkeypatch.setitem(ops.builtin(), "ADD", replace(add, lower=off_by_one))
    with pytest.raises(AssertionError, match=r"output 0 't2' \(int8\) differs at element \d+"):
        check(add_model(), inputs=1)
