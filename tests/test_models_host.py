"""Whole generated models, compiled natively, against tf.lite.Interpreter.

The generated model.c, kernels and runtime are built with the host compiler
and run on the same input bytes as TFLite's reference kernels
(OpResolverType.BUILTIN_REF). Every output byte must match.
"""
import pytest

from tbtest import mlperf_model
from tinybuild import pipeline
from tinybuild.host import build_host_model, run_host_model

MODELS = [
    pytest.param("kws_ref_model.tflite", id="kws"),
    pytest.param("vww_96_int8.tflite", id="vww", marks=pytest.mark.slow),
    pytest.param("pretrainedResnet_quant.tflite", id="resnet8", marks=pytest.mark.slow),
    pytest.param("ad01_int8.tflite", id="ad01", marks=pytest.mark.slow),
    pytest.param("str_ww_ref_model.tflite", id="str_ww", marks=pytest.mark.slow),
]


def _mismatches(got: bytes, want: bytes) -> list[int]:
    return [i for i in range(max(len(got), len(want)))
            if i >= len(got) or i >= len(want) or got[i] != want[i]]


@pytest.mark.parametrize("name", MODELS)
def test_generated_model_matches_tflite_reference(tmp_path, name):
    from tinybuild.reference import make_inputs, reference_outputs

    model = mlperf_model(name)
    pipeline.generate(model, tmp_path, [])
    exe = build_host_model(tmp_path, tmp_path / "model_host")
    inputs = make_inputs(model, 6, seed=7, calibration=None)
    expected = reference_outputs(model, inputs)
    for i, (data, want) in enumerate(zip(inputs, expected)):
        got = run_host_model(exe, data)
        assert not _mismatches(got, want), f"input {i}: bytes {_mismatches(got, want)} differ"


def test_a_wrong_kernel_is_caught(tmp_path):
    """The comparison fails when one kernel rounds differently."""
    from tinybuild.reference import make_inputs, reference_outputs

    model = mlperf_model("kws_ref_model.tflite")
    pipeline.generate(model, tmp_path, [])
    model_c = tmp_path / "model.c"
    # Nudge the first layer's output zero point by one: a classic off-by-one.
    text = model_c.read_text()
    marker = text.index(".output_offset = ")  # first layer
    end = text.index(",", marker)
    value = int(text[marker + len(".output_offset = "):end])
    model_c.write_text(text[:marker] + f".output_offset = {value + 1}" + text[end:])
    exe = build_host_model(tmp_path, tmp_path / "model_host")
    inputs = make_inputs(model, 2, seed=7, calibration=None)
    expected = reference_outputs(model, inputs)
    assert any(_mismatches(run_host_model(exe, d), w) for d, w in zip(inputs, expected))
