"""The per-layer diagnosis of a mismatch (tinybuild/diagnose.py, debug=layers).

Fast tests: the comparison, the message and the validate step with the
TensorFlow, simulator and host parts replaced by fakes. Slow (marked): a
plugin kernel that is off by one on one channel of the depthwise layers,
built through SCons, must be named with its layer, op and plugin.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tbtest import MLPERF, ROOT
from tinybuild import diagnose, pipeline
from tinybuild.errors import TinybuildError

PLUGIN = "tinybuild_user_plugins_bad_kernels (/p/bad_kernels.py)"
# in: t0 at 0; layer 0 writes t1 at 8; layer 1 (a plugin's kernel) writes t2 at 0,
# over t0; layer 2 writes t3 at 8, in place over t1 (dead by then).
PLAN_LAYERS = [
    {"index": 0, "op": "CONV_2D", "kernel": "tb_conv2d_s8", "kernel_label": "tb_conv2d_s8 (reference)",
     "inputs": [{"tensor": 0, "offset": 0}], "output": {"tensor": 1, "offset": 8, "bytes": 4}},
    {"index": 1, "op": "DEPTHWISE_CONV_2D", "kernel": "dw_bad", "kernel_label": "dw_bad (test)",
     "plugin": PLUGIN, "inputs": [{"tensor": 1, "offset": 8}],
     "output": {"tensor": 2, "offset": 0, "bytes": 4}},
    {"index": 2, "op": "SOFTMAX", "kernel": "tb_softmax_s8", "kernel_label": "tb_softmax_s8 (reference)",
     "inputs": [{"tensor": 2, "offset": 0}], "output": {"tensor": 3, "offset": 8, "bytes": 4}},
]
TFLITE = {0: ("input", bytes([1, 2, 3, 4])), 1: ("model/conv\x1b[2J\nok", bytes([5, 6, 7, 8])),
          2: ("model/dw", bytes([9, 10, 11, 127])), 3: ("Identity", bytes([0x80, 0x81, 0x82, 0x83]))}


def _tensors_seen(wrong: dict[int, bytes]):
    """What the firmware's arena holds for each tensor (TFLite's bytes unless ``wrong``)."""
    return {t: wrong.get(t, b) for t, (_, b) in TFLITE.items()}


# -- the comparison ---------------------------------------------------------------------

def test_byte_diff_counts_bytes_first_index_and_largest_int8_difference():
    assert diagnose.byte_diff(b"\x01\x02", b"\x01\x02") == {
        "match": True, "mismatched_bytes": 0, "first_mismatch": None, "max_abs_diff": 0}
    d = diagnose.byte_diff(bytes([1, 0x7F, 3, 0x80]), bytes([1, 0x80, 4, 0x80]))
    assert d == {"match": False, "mismatched_bytes": 2, "first_mismatch": 1, "max_abs_diff": 255}
    short = diagnose.byte_diff(b"\x01", b"\x01\x02\x03")
    assert short["mismatched_bytes"] == 2 and short["first_mismatch"] == 1
    assert diagnose.byte_diff(None, b"\x00") == {"match": None}


def test_each_output_is_read_at_the_mark_after_its_layer_and_inputs_at_its_own():
    reads, keys = diagnose.arena_reads(PLAN_LAYERS, {0: 4, 1: 4, 2: 4, 3: 4})
    by_key = dict(zip(keys, reads))
    assert by_key[("input", 0, 0)] == (0, 0, 4)
    assert by_key[("output", 0, 1)] == (1, 8, 4)       # before layer 1 overwrites nothing of it
    assert by_key[("input", 1, 1)] == (1, 8, 4)
    assert by_key[("output", 1, 2)] == (2, 0, 4)       # before layer 2 runs
    assert by_key[("output", 2, 3)] == (diagnose.MARK_END, 8, 4)


def _rows(wrong_outputs=None, wrong_inputs=None, reference=None):
    got = {}
    outputs, inputs = _tensors_seen(wrong_outputs or {}), _tensors_seen(wrong_inputs or {})
    for layer in PLAN_LAYERS:
        for i in layer["inputs"]:
            got[("input", layer["index"], i["tensor"])] = inputs[i["tensor"]]
        got[("output", layer["index"], layer["output"]["tensor"])] = outputs[layer["output"]["tensor"]]
    return diagnose.compare_layers(PLAN_LAYERS, TFLITE, got, reference)


def _findings(rows):
    first = diagnose.first_differing(rows)
    return {"input": 0, "output_matches": False, "build_simulator": "qemu",
            "first_differing_layer": None if first is None else first["index"],
            "reference_kernels": {"checked": True, "note": "host"}, "layers": rows}


def test_a_wrong_plugin_kernel_is_named_with_its_layer_op_tensor_and_plugin():
    rows = _rows(wrong_outputs={2: bytes([9, 10, 12, 126])}, reference={0: TFLITE[1][1], 1: TFLITE[2][1],
                                                                      2: TFLITE[3][1]})
    first = diagnose.first_differing(rows)
    assert first["index"] == 1 and first["inputs_match"] and first["reference_kernels_match"]
    assert (first["mismatched_bytes"], first["first_mismatch"], first["max_abs_diff"]) == (2, 2, 1)
    text = diagnose.explain(_findings(rows), Path("build/x/layers.json"))
    assert text.startswith("First differing layer: 1 DEPTHWISE_CONV_2D 'model/dw' via dw_bad (test) "
                           f"(plugin {PLUGIN}): 2 of 4 bytes differ, first at byte 2 (by up to 1); "
                           "its inputs matched.")
    assert "With kernels=reference (checked on the host) this layer matches TFLite" in text
    assert text.endswith("Details: build/x/layers.json") and "\n" not in text


def test_an_input_overwritten_before_its_layer_ran_is_called_a_memory_plan_bug():
    rows = _rows(wrong_inputs={1: bytes([5, 6, 0, 8])})
    text = diagnose.explain(_findings(rows), Path("layers.json"))
    # the tensor's name comes from the model: printed escaped, on one line
    assert ("its input 'model/conv\\x1b[2J\\x0aok' (tensor 1) differed from TFLite's when the layer ran "
            "(1 bytes, first at byte 2)") in text
    assert "memory-plan or in-place bug" in text and "\n" not in text and "\x1b" not in text


def test_a_layer_that_differs_with_the_reference_kernels_too_is_a_tinybuild_bug():
    rows = _rows(wrong_outputs={1: bytes([5, 6, 7, 9])}, reference={0: bytes([5, 6, 7, 9])})
    text = diagnose.explain(_findings(rows), Path("layers.json"))
    assert text.startswith("First differing layer: 0 CONV_2D") and "via tb_conv2d_s8 (reference):" in text
    assert "differs as well: a tinybuild bug" in text


def test_every_layer_matching_but_the_output_not_is_explained():
    findings = _findings(_rows())
    assert findings["first_differing_layer"] is None
    assert "overwritten after its layer" in diagnose.explain(findings, Path("l.json"))
    findings["output_matches"] = True
    assert "the difference comes from the qemu run" in diagnose.explain(findings, Path("l.json"))


def test_host_snapshots_give_each_layer_its_output_from_the_next_mark():
    plan = {"memory": {"arena_size": 4}, "layers": [
        {"index": 0, "output": {"offset": 0, "bytes": 2}},
        {"index": 1, "output": {"offset": 1, "bytes": 3}}]}
    record = lambda mark, arena: mark.to_bytes(4, "little") + bytes(arena)
    stdout = record(0, [9, 9, 9, 9]) + record(1, [1, 2, 9, 9]) + record(diagnose.MARK_END, [1, 3, 4, 5])
    assert diagnose.outputs_from_snapshots(plan, stdout + b"out") == {0: b"\x01\x02", 1: b"\x03\x04\x05"}


# -- the validate step, with fakes for TensorFlow, the simulator and the host run ----------

class FakeUnicorn:
    """Answers arena reads from TFLite's tensors, with one layer's output wrong."""

    name = "unicorn"

    def __init__(self, wrong: dict[int, bytes]):
        self.tensors = _tensors_seen(wrong)

    def supports(self, target):
        return True

    def available(self):
        return True, "fake"

    def run_reading_arena(self, elf, target, data, reads, **limits):
        from tinybuild.target import RunResult
        where = {}
        for pos, layer in enumerate(PLAN_LAYERS):
            where[(layer["index"], layer["inputs"][0]["offset"])] = layer["inputs"][0]["tensor"]
            after = PLAN_LAYERS[pos + 1]["index"] if pos + 1 < len(PLAN_LAYERS) else diagnose.MARK_END
            where[(after, layer["output"]["offset"])] = layer["output"]["tensor"]
        copies = [self.tensors[where[(mark, offset)]][:size] for mark, offset, size in reads]
        return RunResult("unicorn", self.tensors[3], 0, 0), copies


def _build_files(tmp_path, got_output: bytes):
    (tmp_path / "plan.json").write_text(json.dumps({"layers": PLAN_LAYERS, "memory": {"arena_size": 12}}))
    (tmp_path / "inputs.bin").write_bytes(TFLITE[0][1])
    (tmp_path / "reference.json").write_text(json.dumps({"input_bytes": 4, "output_bytes": 4}))
    (tmp_path / "reference.bin").write_bytes(TFLITE[3][1])
    (tmp_path / "run.json").write_text(json.dumps({"simulator": "unicorn",
                                                   "runs": [{"output": got_output.hex()}]}))


def _context(tmp_path, simulators, debug=""):
    from dataclasses import dataclass

    @dataclass
    class Board:
        name: str = "board"
        arch: str = "arm"
        cpu: str = "cortex-m4"

    return pipeline.diagnosis(elf=tmp_path / "firmware.elf", inputs_bin=tmp_path / "inputs.bin",
                              reference_json=tmp_path / "reference.json", plan_json=tmp_path / "plan.json",
                              tflite=tmp_path / "model.int8.tflite", target=Board(),
                              simulators=simulators, debug=debug)


@pytest.fixture
def fakes(monkeypatch):
    monkeypatch.setattr(diagnose, "reference_tensors", lambda tflite, data, indices: {i: TFLITE[i] for i in indices})
    monkeypatch.setattr(diagnose, "host_reference_outputs",
                        lambda tflite, data: {l["index"]: TFLITE[l["output"]["tensor"]][1] for l in PLAN_LAYERS})


def _validate(tmp_path, ctx):
    return pipeline.validate(tmp_path / "run.json", tmp_path / "reference.bin", 4,
                             tmp_path / "validation.json", ctx)


def test_a_mismatch_names_the_first_differing_layer_and_writes_layers_json(tmp_path, fakes):
    _build_files(tmp_path, bytes([0x80, 0x81, 0x82, 0x84]))
    ctx = _context(tmp_path, {"unicorn": FakeUnicorn({2: bytes([9, 10, 11, 126])})})
    with pytest.raises(TinybuildError) as err:
        _validate(tmp_path, ctx)
    msg = str(err.value)
    assert msg.startswith("simulated output differs from the TFLite reference on input 0 "
                          "(1 of 4 bytes, first at byte 3). First differing layer: 1 DEPTHWISE_CONV_2D")
    assert PLUGIN in msg and f"Details: {tmp_path / 'layers.json'}" in msg
    layers = json.loads((tmp_path / "layers.json").read_text())
    assert layers["first_differing_layer"] == 1 and layers["input"] == 0
    assert [r["match"] for r in layers["layers"]] == [True, False, True]
    assert layers["layers"][1]["reference_kernels_match"] is True
    assert not json.loads((tmp_path / "validation.json").read_text())["match"]


def test_without_unicorn_the_mismatch_says_why_there_is_no_comparison(tmp_path, monkeypatch):
    def no_tensorflow(*args):
        raise AssertionError("TensorFlow run although the comparison cannot be made")

    monkeypatch.setattr(diagnose, "reference_tensors", no_tensorflow)
    _build_files(tmp_path, bytes(4))
    (tmp_path / "layers.json").write_text("{}")               # from an earlier build
    with pytest.raises(TinybuildError, match=r"\(4 of 4 bytes, first at byte 0\)\. No per-layer "
                                             r"comparison: .*needs the unicorn simulator"):
        _validate(tmp_path, _context(tmp_path, {}))
    assert not (tmp_path / "layers.json").exists()


def test_a_match_compares_nothing_unless_debug_layers(tmp_path, fakes, capsys):
    _build_files(tmp_path, TFLITE[3][1])
    (tmp_path / "layers.json").write_text("{}")
    data = _validate(tmp_path, _context(tmp_path, {"unicorn": FakeUnicorn({})}))
    assert data["match"] and "layer_comparison" not in data
    assert not (tmp_path / "layers.json").exists()

    data = _validate(tmp_path, _context(tmp_path, {"unicorn": FakeUnicorn({})}, debug="layers"))
    assert data["match"] and data["layer_comparison"]["first_differing_layer"] is None
    assert [l["match"] for l in data["layer_comparison"]["layers"]] == [True, True, True]
    assert json.loads((tmp_path / "layers.json").read_text())["first_differing_layer"] is None
    assert "debug=layers: every layer matches TFLite on input 0" in capsys.readouterr().err


def test_a_failing_diagnosis_does_not_hide_the_mismatch(tmp_path, monkeypatch):
    monkeypatch.setattr(diagnose, "reference_tensors", lambda *a: 1 / 0)
    _build_files(tmp_path, bytes(4))
    with pytest.raises(TinybuildError, match=r"differs from the TFLite reference on input 0 .*"
                                             r"the diagnosis failed \(ZeroDivisionError"):
        _validate(tmp_path, _context(tmp_path, {"unicorn": FakeUnicorn({})}))


# -- end to end: a real wrong kernel through SCons (slow) ------------------------------------

OFF_BY_ONE_PLUGIN = '''
from pathlib import Path
from tinybuild.hookspecs import hookimpl
from tinybuild.kernel_registry import KernelImpl

HERE = Path(__file__).parent

@hookimpl
def tinybuild_kernels(target):
    return [KernelImpl("DEPTHWISE_CONV_2D", "dw_channel3_off_by_one", (HERE / "dw_off_by_one.c",),
                       priority=100, name="dw_channel3_off_by_one (test)")]
'''

OFF_BY_ONE_C = '''
#include "tb_kernels.h"
/* The reference depthwise convolution, then channel 3 of every pixel one higher:
 * a subtly wrong kernel. */
void dw_channel3_off_by_one(const tb_conv_params *p, const int8_t *in, const int8_t *filter,
                            const int32_t *bias, const tb_quant_mul *out_mul, int8_t *out) {
  tb_depthwise_conv2d_s8(p, in, filter, bias, out_mul, out);
  for (int32_t i = 3; i < (int32_t)p->out_h * p->out_w * p->out_c; i += p->out_c)
    if (out[i] < p->act_max) out[i] = (int8_t)(out[i] + 1);
}
'''


def _scons(build, *args):
    scons = Path(sys.executable).with_name("scons")
    return subprocess.run([str(scons), "-C", str(ROOT), "-Q", f"build_dir={build}", *args],
                          capture_output=True, text=True, env=os.environ.copy(), timeout=1800)


def _model() -> Path:
    """The MLPerf Tiny KWS model when ../shared has it (no conversion), else models/kws.h5."""
    mlperf = MLPERF / "kws_ref_model.tflite"
    return mlperf if mlperf.exists() else ROOT / "models" / "kws.h5"


@pytest.mark.slow
def test_a_wrong_plugin_kernel_is_named_then_debug_layers_shows_every_layer(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "bad_kernels.py").write_text(OFF_BY_ONE_PLUGIN)
    (plugins / "dw_off_by_one.c").write_text(OFF_BY_ONE_C)
    model, build = _model(), tmp_path / "build"
    out = build / "cortex-m4" / model.stem

    bad = _scons(build, "target=cortex-m4", f"model={model}", f"plugins={plugins}")
    assert bad.returncode != 0
    errors = [l for l in bad.stderr.splitlines() if l.startswith("tinybuild: error:")]
    assert len(errors) == 1 and "Traceback" not in bad.stderr, bad.stderr
    plan = json.loads((out / "plan.json").read_text())
    wrong = next(l for l in plan["layers"] if l["kernel"] == "dw_channel3_off_by_one")
    assert f"First differing layer: {wrong['index']} DEPTHWISE_CONV_2D '" in errors[0]
    assert "via dw_channel3_off_by_one (test)" in errors[0] and "its inputs matched" in errors[0]
    assert "this layer matches TFLite: its kernel is wrong" in errors[0]
    assert f"Details: {out / 'layers.json'}" in errors[0]
    if "plugin" in wrong:                                  # the kernel's plugin, once plan.json has it
        assert "bad_kernels" in errors[0]

    layers = json.loads((out / "layers.json").read_text())
    rows = {r["index"]: r for r in layers["layers"]}
    assert layers["first_differing_layer"] == wrong["index"]
    assert all(rows[l["index"]]["match"] for l in plan["layers"] if l["index"] < wrong["index"])
    row = rows[wrong["index"]]
    channels = int(wrong["shape"].split("-> ")[1].split(",")[0].split("x")[-1])   # "HxWxC -> HxWxC, k3x3 ..."
    assert row["op"] == "DEPTHWISE_CONV_2D" and row["inputs_match"] and row["max_abs_diff"] == 1
    assert 0 < row["mismatched_bytes"] <= row["bytes"] // 4 and row["reference_kernels_match"] is True
    assert row["first_mismatch"] % channels == 3
    assert all(r["reference_kernels_match"] for r in layers["layers"])

    # Without the plugin and with debug=layers: the build passes and every layer matches.
    good = _scons(build, "target=cortex-m4", f"model={model}", "debug=layers")
    assert good.returncode == 0, good.stderr
    assert "debug=layers: every layer matches TFLite on input 0" in good.stderr
    assert "  kernels     " in good.stdout
    layers = json.loads((out / "layers.json").read_text())
    assert layers["first_differing_layer"] is None and all(r["match"] for r in layers["layers"])
    assert "## Layers against TFLite (debug=layers)" in (out / "report.md").read_text()

    # debug off again: the comparison is not left behind
    plain = _scons(build, "target=cortex-m4", f"model={model}")
    assert plain.returncode == 0, plain.stderr
    assert not (out / "layers.json").exists()
    assert "debug=layers" not in (out / "report.md").read_text()
