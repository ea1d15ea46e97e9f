"""Model interfaces other than int8 (issue 11 item 2): the convert check refuses
float tensors except at the QUANTIZE/DEQUANTIZE edges and leaves every other
type to the op lowerings, so an ARG_MAX's int32/int64 output builds, and the
reference step feeds and compares those types byte for byte."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tbtest import ROOT
from tinybuild.convert import check_fully_int8
from tinybuild.errors import TinybuildError

pytest.importorskip("tensorflow")        # tflite_builder writes models with TFLite's schema
sys.path.insert(0, str(ROOT / "tests" / "ops"))
from tflite_builder import ModelBuilder  # noqa: E402

SCONS = Path(sys.executable).with_name("scons")


def conv_argmax(out="int32", float_input=False) -> bytes:
    """int8 CONV_2D (3 channels) then ARG_MAX over channels; both are outputs."""
    b = ModelBuilder()
    x = b.input((1, 4, 4, 2), "float32" if float_input else "int8",
                *(() if float_input else (0.05, -3)), name="image")
    w = b.const(np.arange(-12, 12, dtype=np.int8).reshape(3, 2, 2, 2), "int8",
                scale=[0.01, 0.02, 0.03], zero_point=[0, 0, 0], axis=0)
    bias = b.const(np.array([5, -7, 100], np.int32), "int32", scale=[5e-4, 1e-3, 1.5e-3],
                   zero_point=[0, 0, 0])
    y = b.tensor((1, 4, 4, 3), "int8", 0.1, 4, name="scores")
    b.op("CONV_2D", [x, w, bias], [y], b.options("Conv2DOptions", padding="SAME", strideH=1,
                                                strideW=1), version=3)
    axis = b.const(np.array([-1], np.int32), "int32")
    z = b.tensor((1, 4, 4), out, name="class")
    b.op("ARG_MAX", [y, axis], [z], b.options("ArgMaxOptions", outputType={"int32": 2, "int64": 4}[out]),
         version=2)
    return b.build([y, z])


def write(tmp_path, name, data) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("out", ["int32", "int64"])
def test_argmax_output_passes_the_convert_check(tmp_path, out):
    check_fully_int8(write(tmp_path, f"argmax_{out}.tflite", conv_argmax(out)))


def test_float_tensor_off_the_edges_is_still_refused(tmp_path):
    # A float32 input read by CONV_2D (not by QUANTIZE) is no float interface.
    path = write(tmp_path, "float_in.tflite", conv_argmax(float_input=True))
    with pytest.raises(TinybuildError, match=r"not a fully int8 TFLite model \(input 'image' is FLOAT32"):
        check_fully_int8(path)


def test_a_type_no_lowering_takes_is_refused_by_the_op_naming_it(tmp_path):
    """The convert check lets a bool tensor through; the op lowering refuses it."""
    from tinybuild.importer import load_graph
    from tinybuild.lower import lower_graph
    b = ModelBuilder()
    x = b.input((1, 4), "int8", 0.1, 0)
    z = b.tensor((1, 4), "bool", name="flag\x1b[2J")
    b.op("CAST", [x], [z])
    path = write(tmp_path, "cast_bool.tflite", b.build([z]))
    check_fully_int8(path)
    with pytest.raises(TinybuildError, match=r"unsupported CAST at layer 0 \(output tensor "
                                             r"'flag\\x1b\[2J'\)") as err:
        lower_graph(load_graph(path))
    assert "\n" not in str(err.value)


def test_bool_inputs_are_fed_as_0_or_1(tmp_path):
    from tinybuild.reference import make_inputs
    b = ModelBuilder()
    x = b.input((1, 64), "bool")
    z = b.tensor((1, 64), "int8", 0.1, 0)
    b.op("CAST", [x], [z])
    path = write(tmp_path, "bool_in.tflite", b.build([z]))
    (raw,) = make_inputs(path, 1, 7)
    assert len(raw) == 64 and set(raw) == {0, 1}


@pytest.mark.parametrize("out", ["int32", "int64"])
def test_reference_outputs_carry_the_argmax_bytes(tmp_path, out):
    """Every output's bytes in order: the int8 scores, then ARG_MAX's indices in
    their own width (checked against numpy's argmax of those very scores)."""
    from tinybuild.reference import io_record, make_inputs, reference_outputs
    path = write(tmp_path, "argmax.tflite", conv_argmax(out))
    inputs = make_inputs(path, 3, 1)
    width = np.dtype(out).itemsize
    assert [o["bytes"] for o in io_record(path)["outputs"]] == [48, 16 * width]
    for raw in reference_outputs(path, inputs):
        scores = np.frombuffer(raw[:48], np.int8).reshape(1, 4, 4, 3)
        classes = np.frombuffer(raw[48:], out).reshape(1, 4, 4)
        assert np.array_equal(classes, scores.argmax(axis=-1))


@pytest.mark.slow
@pytest.mark.parametrize("out", ["int32", "int64"])
def test_argmax_output_builds_and_matches_through_scons(tmp_path, out):
    model = write(tmp_path, f"argmax_{out}.tflite", conv_argmax(out))
    build = tmp_path / "build"
    run = subprocess.run([str(SCONS), "-C", str(ROOT), "-Q", f"build_dir={build}", "target=cortex-m4",
                          f"model={model}"], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "output matches TFLite reference: yes, byte for byte (4 inputs)" in run.stdout
    report = json.loads((build / "cortex-m4" / model.stem / "report.json").read_text())
    assert report["validation"]["match"] is True
    validation = json.loads((build / "cortex-m4" / model.stem / "validation.json").read_text())
    assert [o["bytes"] for o in validation["outputs"]] == [48, 16 * np.dtype(out).itemsize]
    assert report["inference"]["instructions"] > 0
