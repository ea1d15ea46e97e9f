"""A plugin contributes a whole op (tinybuild_ops): a custom operator with two
outputs, lowered, planned, generated, compiled and run on the host; without
the plugin the build stops naming the custom code and the layer."""
import textwrap

import numpy as np
import pytest

from harness import build_host
from tflite_builder import ModelBuilder
from tinybuild import ops, pipeline, plugins
from tinybuild.errors import TinybuildError
from tinybuild.host import run_host_model

PLUGIN = '''
from pathlib import Path

import numpy as np

from tinybuild.hookspecs import hookimpl
from tinybuild.lower import Const, Layer
from tinybuild.ops import OpDef, unsupported

HERE = Path(__file__).parent


def lower(graph, op):
    x = graph.tensors[op.inputs[0]]
    if x.dtype != "int8" or len(op.outputs) != 2:
        raise unsupported(op, "one int8 input and two outputs expected")
    n = int(np.prod(x.shape))
    return Layer(op.index, op.op, "", {}, [op.inputs[0]], list(op.outputs),
                 [Const("size", "int32_t", np.array([n], np.int32))], 0, f"{n} values")


@hookimpl
def tinybuild_ops():
    return [OpDef("CUSTOM:SIGN_SPLIT", lower, "vendor_sign_split", HERE / "sign_split.c",
                  doc="x -> (max(x, 0), min(-x, 127) where x < 0)")]
'''

KERNEL_C = '''
#include <stdint.h>
/* No header: the generated code declares it from the call's argument types. */
void vendor_sign_split(const int8_t *x, const int32_t *size, int8_t *pos, int8_t *neg) {
  int32_t i;
  for (i = 0; i < size[0]; ++i) {
    pos[i] = x[i] > 0 ? x[i] : 0;
    neg[i] = x[i] < 0 ? (int8_t)(x[i] == -128 ? 127 : -x[i]) : 0;
  }
}
'''


def sign_split_model() -> bytes:
    b = ModelBuilder()
    x = b.input((1, 2, 8), "int8", 0.1, 0)
    pos = b.tensor((1, 2, 8), "int8", 0.1, 0, name="positive")
    neg = b.tensor((1, 2, 8), "int8", 0.1, 0, name="negative")
    b.op("CUSTOM:SIGN_SPLIT", [x], [pos, neg])
    return b.build([pos, neg])


@pytest.fixture
def vendor_plugin(tmp_path):
    folder = tmp_path / "vendor"
    folder.mkdir()
    (folder / "sign_split_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (folder / "sign_split.c").write_text(KERNEL_C)
    plugins.make_plugin_manager([folder])
    yield folder
    ops.set_plugin_ops([])                   # later tests see the built-in ops only


def test_a_plugin_op_with_two_outputs_runs_end_to_end(tmp_path, vendor_plugin):
    model = tmp_path / "m.tflite"
    model.write_bytes(sign_split_model())
    out = tmp_path / "build"
    plan = pipeline.generate(model, out, [])
    assert [(l["op"], l["kernel"], len(l["outputs"])) for l in plan["layers"]] == \
        [("CUSTOM:SIGN_SPLIT", "vendor_sign_split", 2)]
    model_c = (out / "model.c").read_text()
    assert ("void vendor_sign_split(const int8_t *, const int32_t *, int8_t *, int8_t *);"
            in model_c)
    x = np.arange(-128, 128, 16, dtype=np.int8)
    got = run_host_model(build_host(out), x.tobytes())
    want = np.concatenate([np.maximum(x, 0), np.where(x < 0, np.minimum(-x.astype(np.int16), 127), 0)])
    assert got == want.astype(np.int8).tobytes()


def test_a_custom_op_without_its_plugin_names_the_code_and_the_layer(tmp_path):
    ops.set_plugin_ops([])
    model = tmp_path / "m.tflite"
    model.write_bytes(sign_split_model())
    with pytest.raises(TinybuildError) as err:
        pipeline.generate(model, tmp_path / "build", [])
    msg = str(err.value)
    assert msg.startswith("unsupported CUSTOM:SIGN_SPLIT at layer 0 (output tensor 'positive'): custom "
                          "operator 'SIGN_SPLIT' has no implementation; a plugin can give one through "
                          "the tinybuild_ops hook") and "\n" not in msg


def test_a_plugin_may_not_replace_a_built_in_op(tmp_path):
    (tmp_path / "clash.py").write_text(textwrap.dedent('''
        from pathlib import Path
        from tinybuild.hookspecs import hookimpl
        from tinybuild.ops import OpDef

        @hookimpl
        def tinybuild_ops():
            return [OpDef("ADD", lambda g, op: None, "my_add", Path(__file__))]
    '''))
    with pytest.raises(TinybuildError, match=r"clash\.py.*op 'ADD': tinybuild or another plugin "
                                             r"already compiles this op"):
        plugins.make_plugin_manager([tmp_path])
    ops.set_plugin_ops([])
