"""Whole graphs: several inputs and outputs, float32 and int8 side by side,
outputs in another order than they are computed."""
import json
from pathlib import Path

import numpy as np
import pytest

from harness import Case, check, rng_for
from tflite_builder import ModelBuilder


def two_in_two_out_model() -> bytes:
    """int8 input a and float32 input b (through QUANTIZE) -> ADD -> MAX_POOL_2D; the
    outputs are the pool's DEQUANTIZE (float32) first, then the ADD's int8 result."""
    b = ModelBuilder()
    a = b.input((1, 4, 4, 2), "int8", 0.05, -3, name="a")
    f = b.input((1, 4, 4, 2), "float32", name="b float")
    q = b.tensor((1, 4, 4, 2), "int8", 0.04, 5)
    b.op("QUANTIZE", [f], [q])
    s = b.tensor((1, 4, 4, 2), "int8", 0.08, -1, name="sum")
    b.op("ADD", [a, q], [s], b.options("AddOptions", fusedActivationFunction="RELU"))
    m = b.tensor((1, 2, 2, 2), "int8", 0.08, -1)
    b.op("MAX_POOL_2D", [s], [m], b.options("Pool2DOptions", padding="VALID", strideH=2, strideW=2,
                                             filterHeight=2, filterWidth=2))
    y = b.tensor((1, 2, 2, 2), "float32", name="pooled")
    b.op("DEQUANTIZE", [m], [y])
    return b.build([y, s])


def shared_input_model() -> bytes:
    """One input read by two branches, three outputs (a conv, a softmax, the pool)."""
    rng = rng_for("shared_input")
    b = ModelBuilder()
    x = b.input((1, 5, 5, 2), "int8", 0.05, 0)
    w = b.const(rng.integers(-127, 128, (3, 3, 3, 2)), "int8", [0.01] * 3, [0] * 3)
    bias = b.const(rng.integers(-500, 500, 3), "int32", [0.0005] * 3, [0] * 3)
    c = b.tensor((1, 5, 5, 3), "int8", 0.1, 2)
    b.op("CONV_2D", [x, w, bias], [c], b.options("Conv2DOptions", padding="SAME", strideH=1, strideW=1),
         version=3)
    p = b.tensor((1, 1, 1, 2), "int8", 0.05, 0)
    b.op("AVERAGE_POOL_2D", [x], [p], b.options("Pool2DOptions", padding="VALID", strideH=5, strideW=5,
                                                 filterHeight=5, filterWidth=5))
    flat = b.tensor((1, 2), "int8", 0.05, 0)
    b.op("RESHAPE", [p, b.const(np.array([1, 2], np.int32), "int32")], [flat])
    sm = b.tensor((1, 2), "int8", 1 / 256, -128)
    b.op("SOFTMAX", [flat], [sm], b.options("SoftmaxOptions", beta=1.0))
    return b.build([sm, c, p])


CASES = [
    Case("2 inputs (int8, float32), 2 outputs (float32, int8)", two_in_two_out_model, inputs=4),
    Case("1 input, 3 outputs from both branches", shared_input_model),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_graph(case):
    check(case)


def test_model_h_and_the_descriptor_list_every_input_and_output(tmp_path):
    from tinybuild import pipeline
    path = tmp_path / "m.tflite"
    path.write_bytes(two_in_two_out_model())
    plan = pipeline.generate(path, tmp_path, [])
    header = (tmp_path / "model.h").read_text()
    for line in ("#define TB_NUM_INPUTS 2u", "#define TB_NUM_OUTPUTS 2u",
                 "#define TB_INPUT0_SIZE 32u  /* int8 1x4x4x2 'a' */",
                 "#define TB_INPUT1_SIZE 128u  /* float32 1x4x4x2 'b float' */",
                 "#define TB_OUTPUT0_SIZE 32u  /* float32 1x2x2x2 'pooled' */",
                 "#define TB_OUTPUT1_SIZE 32u  /* int8 1x4x4x2 'sum' */",
                 "#define TB_INPUT_SIZE TB_INPUT0_SIZE"):
        assert line in header
    assert [o["name"] for o in plan["outputs"]] == ["pooled", "sum"]
    assert [i["dtype"] for i in plan["inputs"]] == ["int8", "float32"]
    model_c = (tmp_path / "model.c").read_text()
    assert "TB_NUM_INPUTS, TB_NUM_OUTPUTS" in model_c and model_c.count("_SIZE},") == 4
    assert "(const float *)(tb_arena + " in model_c        # QUANTIZE reads the float input typed
    offsets = plan["memory"]["buffers"]
    assert all(b["offset"] % 16 == 0 for b in offsets)


def test_validation_names_the_output_that_differs(tmp_path):
    from tinybuild import pipeline
    from tinybuild.errors import TinybuildError
    outputs = [{"name": "pooled", "bytes": 4}, {"name": "sum\n", "bytes": 3}]
    want = bytes(range(7))
    (tmp_path / "reference.bin").write_bytes(want)
    got = want[:5] + b"\xff" + want[6:]
    pipeline.write_json(tmp_path / "run.json", {"simulator": "unicorn", "runs": [{"output": got.hex()}]})
    with pytest.raises(TinybuildError) as err:
        pipeline.validate(tmp_path / "run.json", tmp_path / "reference.bin", 7,
                          tmp_path / "validation.json", outputs=outputs)
    assert str(err.value).startswith("simulated output differs from the TFLite reference on input 0, "
                                     "output 1 'sum\\x0a' (1 of 3 bytes, first at byte 1). See ")
    record = json.loads((tmp_path / "validation.json").read_text())
    assert [o["match"] for o in record["results"][0]["outputs"]] == [True, False]


@pytest.mark.slow
def test_a_float_interface_model_with_two_inputs_and_outputs_builds_and_validates(tmp_path):
    """Through SCons on cortex-m4: convert (not fully int8, yet accepted), reference,
    simulate (two inputs written, two outputs read), validate, report."""
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[2]
    model = tmp_path / "two_io.tflite"
    model.write_bytes(two_in_two_out_model())
    scons = Path(sys.executable).with_name("scons")
    proc = subprocess.run([str(scons), "-C", str(root), "-Q", f"build_dir={tmp_path / 'build'}",
                           "target=cortex-m4", f"model={model}"], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "output matches TFLite reference: yes, byte for byte (4 inputs)" in proc.stdout
    report = json.loads((tmp_path / "build" / "cortex-m4" / "two_io" / "report.json").read_text())
    assert [o["name"] for o in report["model"]["outputs"]] == ["pooled", "sum"]
    assert [o["bytes"] for o in report["validation"]["outputs"]] == [32, 32]
