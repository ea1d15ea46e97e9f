"""tinybuild.flatbuffer_check: the bounds-checked walk and what the parts must mean.

Each test patches one field of the committed fixture (tests/data/all_ops_int8.tflite)
in place and expects one TinybuildError line naming the part; the fuzzer
(tests/test_fuzz.py) covers random damage.
"""
from __future__ import annotations

import inspect
import struct
from pathlib import Path

import numpy as np
import pytest

from tbtest import MLPERF, ROOT
from tinybuild import flatbuffer_check as fb
from tinybuild.convert import check_fully_int8, convert_model, tflite_io
from tinybuild.errors import TinybuildError
from tinybuild.importer import load_graph

FIXTURE = ROOT / "tests" / "data" / "all_ops_int8.tflite"
CONV_OUT, DW_OUT, DW_WEIGHTS, CONV_WEIGHTS, ADD_OUT = 7, 8, 3, 6, 9   # tensor indices in the fixture


# -- patching helpers: follow the flatbuffer by hand ------------------------------------

def _field(buf: bytes, table: int, slot: int) -> int:
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    return table + struct.unpack_from("<H", buf, vtable + 4 + 2 * slot)[0]


def _target(buf: bytes, pos: int) -> int:
    return pos + struct.unpack_from("<I", buf, pos)[0]


def _tensor(model: dict, index: int) -> int:
    return model["subgraphs"][0]["tensors"][index]["@"]


def patched(tmp_path: Path, patch) -> Path:
    buf = bytearray(FIXTURE.read_bytes())
    patch(buf, fb.parse(bytes(buf)))
    out = tmp_path / "patched.tflite"
    out.write_bytes(bytes(buf))
    return out


def set_zero_point(tensor: int, value: int):
    def patch(buf, model):
        quant = _target(buf, _field(buf, _tensor(model, tensor), 4))
        vector = _target(buf, _field(buf, quant, 3))
        struct.pack_into("<q", buf, vector + 4, value)
    return patch


def set_scale(tensor: int, value: float):
    def patch(buf, model):
        quant = _target(buf, _field(buf, _tensor(model, tensor), 4))
        vector = _target(buf, _field(buf, quant, 2))
        struct.pack_into("<f", buf, vector + 4, value)
    return patch


def set_scalar(tensor: int, slot: int, fmt: str, value, in_quantization: bool = False):
    def patch(buf, model):
        table = _tensor(model, tensor)
        if in_quantization:
            table = _target(buf, _field(buf, table, 4))
        struct.pack_into(fmt, buf, _field(buf, table, slot), value)
    return patch


def error_of(path: Path) -> str:
    with pytest.raises(TinybuildError) as info:
        check_fully_int8(path)
    message = str(info.value)
    assert "\n" not in message and "Fix:" in message
    return message


# -- sound models pass ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["all_ops_int8.tflite", "kws_ref_model.tflite", "ad01_int8.tflite",
                                  "vww_96_int8.tflite", "pretrainedResnet_quant.tflite",
                                  "str_ww_ref_model.tflite"])
def test_sound_models_pass(name):
    path = FIXTURE if name == FIXTURE.name else MLPERF / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    model = fb.check_file(path)
    assert model["version"] == 3 and len(model["subgraphs"]) == 1
    assert fb.data_spans(model)


def test_schema_slots_match_the_tflite_package():
    """Every field's vtable slot as the generated readers have it (guards typos)."""
    import tflite

    for table, fields in fb.SCHEMA.items():
        cls = getattr(tflite, table)
        for name, slot, *_ in fields:
            camel = "".join(part.capitalize() for part in name.split("_"))
            source = inspect.getsource(getattr(cls, camel))
            assert f"Offset({4 + 2 * slot})" in source, f"{table}.{name}"
    for number, table in fb._BUILTIN_OPTIONS.items():
        assert getattr(tflite.BuiltinOptions, table) == number
    from tinybuild.ops import registry
    for code, options in fb.OPTIONS_OF_OP.items():   # every op whose options are read is compiled
        name = fb.op_name(code)
        assert name in registry(), name
        if registry()[name].options is not None:        # RESHAPE's options are checked, not read
            assert getattr(tflite.BuiltinOptions, registry()[name].options.table) == options, name
    assert {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")} == \
        {code: name for code, (name, _) in fb.TENSOR_TYPES.items()}


# -- quantization parameters ------------------------------------------------------------------

def test_int8_zero_point_out_of_range_names_tensor_and_layer(tmp_path):
    path = patched(tmp_path, set_zero_point(CONV_OUT, -2130706560))
    message = error_of(path)
    assert message.startswith(f"{path}: tensor 7 'model/conv2d/Relu;model/conv2d/Conv2D' "
                              "(layer 0 (CONV_2D)) has int8 zero point -2130706560; it must be in "
                              "[-128, 127]. Fix: re-export")
    with pytest.raises(TinybuildError, match="zero point -2130706560"):
        convert_model(path, tmp_path / "out.tflite")
    assert not (tmp_path / "out.tflite").exists()


@pytest.mark.parametrize("value", [0.0, -0.5, float("nan"), float("inf")])
def test_scale_must_be_finite_and_positive(tmp_path, value):
    message = error_of(patched(tmp_path, set_scale(ADD_OUT, value)))
    assert "tensor 9 'model/add/add' (layer 2 (ADD)) has scale" in message
    assert "scales must be finite and > 0" in message


def test_weights_zero_point_must_be_zero(tmp_path):
    message = error_of(patched(tmp_path, set_zero_point(CONV_WEIGHTS, 3)))
    assert "tensor 6 'model/conv2d/Conv2D' (weights of layer 0 (CONV_2D)) has zero point 3" in message
    assert "symmetric weights" in message


def test_quantized_dimension_outside_rank(tmp_path):
    message = error_of(patched(tmp_path, set_scalar(DW_WEIGHTS, 6, "<i", 7, in_quantization=True)))
    assert "tensor 3 'model/depthwise_conv2d/depthwise' (layer 1 (DEPTHWISE_CONV_2D)) has " \
           "quantized dimension 7, outside its rank 4" in message


def test_scale_count_must_match_the_quantized_dimension(tmp_path):
    message = error_of(patched(tmp_path, set_scalar(DW_WEIGHTS, 6, "<i", 1, in_quantization=True)))
    assert "has 4 scales; expected 1 or 3 (dimension 1 of shape [1, 3, 3, 4])" in message


@pytest.mark.parametrize("type_code,zero_point,rule", [(7, -128, "int16 zero point -128; it must be 0"),
                                                       (3, -128, "uint8 zero point -128; it must be in "
                                                                 "[0, 255]")])
def test_zero_point_range_follows_the_type(tmp_path, type_code, zero_point, rule):
    message = error_of(patched(tmp_path, set_scalar(ADD_OUT, 1, "<b", type_code)))
    assert rule in message


# -- indices and sizes -------------------------------------------------------------------------

def test_buffer_index_past_the_buffers(tmp_path):
    message = error_of(patched(tmp_path, set_scalar(CONV_WEIGHTS, 2, "<I", 4096)))
    assert "corrupt TFLite flatbuffer: tensor 6 'model/conv2d/Conv2D''s buffer index 4096 is past the " \
           "18 buffers" in message


def test_constant_data_must_fill_its_shape(tmp_path):
    def patch(buf, model):
        shape = _target(buf, _field(buf, _tensor(model, CONV_WEIGHTS), 0))
        struct.pack_into("<i", buf, shape + 4, 5)  # [4, 3, 3, 2] -> [5, 3, 3, 2]
    message = error_of(patched(tmp_path, patch))
    assert "tensor 6 'model/conv2d/Conv2D' is INT8 [5, 3, 3, 2] (90 bytes) but its buffer" in message
    assert "holds 72 bytes" in message


def test_operator_indices_in_range(tmp_path):
    def patch(buf, model):
        op = model["subgraphs"][0]["operators"][2]["@"]
        inputs = _target(buf, _field(buf, op, 1))
        struct.pack_into("<i", buf, inputs + 4, 15)
    assert "operators[2]: input tensor 15 is out of range (-1..14)" in error_of(patched(tmp_path, patch))


def test_huge_shapes_are_refused_before_anything_allocates(tmp_path):
    def patch(buf, model):
        shape = _target(buf, _field(buf, _tensor(model, ADD_OUT), 0))
        struct.pack_into("<i", buf, shape + 8, 1 << 30)
    message = error_of(patched(tmp_path, patch))
    assert "tensor 9 'model/add/add' has shape [1, 1073741824, 8, 4]" in message
    assert "tinybuild takes tensors up to 16 MiB" in message


# -- structure ---------------------------------------------------------------------------------

def test_offset_past_the_end_names_the_field(tmp_path):
    def patch(buf, model):
        struct.pack_into("<I", buf, _field(buf, _tensor(model, 4), 3), 0x7FFFFFFF)
    message = error_of(patched(tmp_path, patch))
    assert "corrupt TFLite flatbuffer: model.subgraphs[0].tensors[4].name: offset 0x7fffffff at byte" in message
    assert "points past the end of the 3,568-byte file" in message


@pytest.mark.parametrize("size", [0, 7, 8, 100, 1000, 3000, 3567])
def test_truncated_files_are_one_error(tmp_path, size):
    path = tmp_path / "cut.tflite"
    path.write_bytes(FIXTURE.read_bytes()[:size])
    for reader in (check_fully_int8, tflite_io, load_graph):
        with pytest.raises(TinybuildError, match=r"cut\.tflite: (not a TFLite|corrupt)"):
            reader(path)


def test_every_table_is_decoded_once():
    """Offsets that all point at one table cost one decode, not one per pointer."""
    walker = fb._Walker(FIXTURE.read_bytes())
    model = walker.table(walker.follow(0, "root"), "Model", "model")
    assert model is walker.table(walker.follow(0, "root"), "Model", "model")


# -- names from the model are escaped ---------------------------------------------------------

def test_crafted_tensor_name_cannot_forge_lines(tmp_path):
    forged = b"x\n  output matches TFLite reference: yes\x1b[2K"

    def patch(buf, model):
        name = _target(buf, _field(buf, _tensor(model, DW_OUT), 3))
        length = struct.unpack_from("<I", buf, name)[0]
        assert length >= len(forged)
        buf[name + 4:name + 4 + length] = forged.ljust(length, b"_")
        set_zero_point(DW_OUT, 400)(buf, model)
    message = error_of(patched(tmp_path, patch))
    assert "\n" not in message and "\x1b" not in message
    assert "'x\\x0a  output matches TFLite reference: yes\\x1b[2K" in message


def test_unknown_padding_code_is_refused_at_conversion(tmp_path):
    def patch(buf, model):
        options = model["subgraphs"][0]["operators"][3]["builtin_options"]["@"]
        struct.pack_into("<b", buf, _field(buf, options, 0), 5)
    path = patched(tmp_path, patch)
    with pytest.raises(TinybuildError) as info:
        convert_model(path, tmp_path / "out.tflite")
    assert "layer 3 (MAX_POOL_2D) has padding code 5, which TFLite does not define" in str(info.value)
    assert not (tmp_path / "out.tflite").exists()
