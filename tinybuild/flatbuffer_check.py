"""A bounds-checked walk of a ``.tflite`` flatbuffer before anything trusts it.

Neither the ``flatbuffers``/``tflite`` Python readers nor TensorFlow Lite's
``Interpreter`` (``BuildFromFile`` does not run the flatbuffers verifier)
check that offsets stay inside the file: a damaged model raises
``struct.error`` in Python and crashes TFLite (SIGSEGV). :func:`check` walks
every part of the TFLite schema that tinybuild or TFLite reads, as the
flatbuffers verifier would (each offset, vtable, vector and string inside the
buffer and aligned, strings NUL-terminated), then checks what the parts mean:
indices in range, constant data the size of its tensor, quantization
parameters consistent and in range. Any problem is one
:class:`~tinybuild.errors.TinybuildError` line naming the part.

Only ``struct.unpack_from`` after an explicit length check and
``numpy.frombuffer`` over checked spans read the bytes, so no ``struct.error``
can escape; each table is decoded once (a file whose offsets all point at one
big table costs no more than the file's size).
"""
from __future__ import annotations

import hashlib
import math
import struct
from pathlib import Path

import numpy as np

from .errors import TinybuildError, shown

SCHEMA_VERSION = 3                 # TFLite reads only version-3 models
MAX_TENSOR_BYTES = 16 << 20        # far above any microcontroller's memory: stops absurd
MAX_TOTAL_TENSOR_BYTES = 256 << 20  # shapes before TFLite (or the input maker) allocates them

# Scalar kinds: struct format and size. Field specs below are (name, slot, kind[, default]).
_SCALARS = {"u8": ("<B", 1), "i8": ("<b", 1), "bool": ("<B", 1), "i32": ("<i", 4),
            "u32": ("<I", 4), "f32": ("<f", 4), "u64": ("<Q", 8), "i64": ("<q", 8)}
_VECTOR_DTYPES = {"i32": "<i4", "f32": "<f4", "i64": "<i8", "u8": "u1", "bool": "u1"}

STR = ("str",)
BYTES = ("bytes",)          # a [ubyte] vector kept as a (start, length) span of the file


def VEC(kind):
    return ("vec", kind)


def TABLE(name):
    return ("table", name)


def TABLES(name):
    return ("tables", name)


def UNION(type_field, tables):
    return ("union", type_field, tables)


# BuiltinOptions union members whose fields tinybuild reads or that hold
# vectors/strings; the other members are checked as tables of scalars.
_BUILTIN_OPTIONS = {1: "Conv2DOptions", 2: "DepthwiseConv2DOptions", 3: "ConcatEmbeddingsOptions",
                    5: "Pool2DOptions", 8: "FullyConnectedOptions", 9: "SoftmaxOptions",
                    11: "AddOptions", 17: "ReshapeOptions", 30: "SqueezeOptions",
                    111: "VarHandleOptions", 115: "BucketizeOptions"}

SCHEMA = {
    "Model": (("version", 0, "u32", 0), ("operator_codes", 1, TABLES("OperatorCode")),
              ("subgraphs", 2, TABLES("SubGraph")), ("description", 3, STR),
              ("buffers", 4, TABLES("Buffer")), ("metadata_buffer", 5, VEC("i32")),
              ("metadata", 6, TABLES("Metadata")), ("signature_defs", 7, TABLES("SignatureDef"))),
    "OperatorCode": (("deprecated_builtin_code", 0, "i8", 0), ("custom_code", 1, STR),
                     ("version", 2, "i32", 1), ("builtin_code", 3, "i32", 0)),
    "SubGraph": (("tensors", 0, TABLES("Tensor")), ("inputs", 1, VEC("i32")),
                 ("outputs", 2, VEC("i32")), ("operators", 3, TABLES("Operator")),
                 ("name", 4, STR), ("debug_metadata_index", 5, "i32", -1)),
    "Tensor": (("shape", 0, VEC("i32")), ("type", 1, "i8", 0), ("buffer", 2, "u32", 0),
               ("name", 3, STR), ("quantization", 4, TABLE("QuantizationParameters")),
               ("is_variable", 5, "bool", 0), ("sparsity", 6, TABLE("*")),
               ("shape_signature", 7, VEC("i32")), ("has_rank", 8, "bool", 0),
               ("variant_tensors", 9, TABLES("VariantSubType"))),
    "VariantSubType": (("shape", 0, VEC("i32")), ("type", 1, "i8", 0), ("has_rank", 2, "bool", 0)),
    "QuantizationParameters": (("min", 0, VEC("f32")), ("max", 1, VEC("f32")),
                               ("scale", 2, VEC("f32")), ("zero_point", 3, VEC("i64")),
                               ("details_type", 4, "u8", 0),
                               ("details", 5, UNION("details_type", {1: "CustomQuantization"})),
                               ("quantized_dimension", 6, "i32", 0)),
    "CustomQuantization": (("custom", 0, BYTES),),
    "Operator": (("opcode_index", 0, "u32", 0), ("inputs", 1, VEC("i32")), ("outputs", 2, VEC("i32")),
                 ("builtin_options_type", 3, "u8", 0),
                 ("builtin_options", 4, UNION("builtin_options_type", _BUILTIN_OPTIONS)),
                 ("custom_options", 5, BYTES), ("custom_options_format", 6, "i8", 0),
                 ("mutating_variable_inputs", 7, VEC("bool")), ("intermediates", 8, VEC("i32")),
                 ("large_custom_options_offset", 9, "u64", 0), ("large_custom_options_size", 10, "u64", 0),
                 ("builtin_options_2_type", 11, "u8", 0),
                 ("builtin_options_2", 12, UNION("builtin_options_2_type", {})),
                 ("debug_metadata_index", 13, "i32", -1)),
    "Buffer": (("data", 0, BYTES), ("offset", 1, "u64", 0), ("size", 2, "u64", 0)),
    "Metadata": (("name", 0, STR), ("buffer", 1, "u32", 0)),
    "SignatureDef": (("inputs", 0, TABLES("TensorMap")), ("outputs", 1, TABLES("TensorMap")),
                     ("signature_key", 2, STR), ("subgraph_index", 4, "u32", 0)),
    "TensorMap": (("name", 0, STR), ("tensor_index", 1, "u32", 0)),
    # options tables (schema.fbs)
    "Conv2DOptions": (("padding", 0, "i8", 0), ("stride_w", 1, "i32", 0), ("stride_h", 2, "i32", 0),
                      ("fused_activation_function", 3, "i8", 0), ("dilation_w_factor", 4, "i32", 1),
                      ("dilation_h_factor", 5, "i32", 1), ("quantized_bias_type", 6, "i8", 0)),
    "DepthwiseConv2DOptions": (("padding", 0, "i8", 0), ("stride_w", 1, "i32", 0),
                               ("stride_h", 2, "i32", 0), ("depth_multiplier", 3, "i32", 0),
                               ("fused_activation_function", 4, "i8", 0),
                               ("dilation_w_factor", 5, "i32", 1), ("dilation_h_factor", 6, "i32", 1)),
    "Pool2DOptions": (("padding", 0, "i8", 0), ("stride_w", 1, "i32", 0), ("stride_h", 2, "i32", 0),
                      ("filter_width", 3, "i32", 0), ("filter_height", 4, "i32", 0),
                      ("fused_activation_function", 5, "i8", 0)),
    "FullyConnectedOptions": (("fused_activation_function", 0, "i8", 0), ("weights_format", 1, "i8", 0),
                              ("keep_num_dims", 2, "bool", 0), ("asymmetric_quantize_inputs", 3, "bool", 0),
                              ("quantized_bias_type", 4, "i8", 0)),
    "SoftmaxOptions": (("beta", 0, "f32", 0.0),),
    "AddOptions": (("fused_activation_function", 0, "i8", 0), ("pot_scale_int16", 1, "bool", 1)),
    "ReshapeOptions": (("new_shape", 0, VEC("i32")),),
    "SqueezeOptions": (("squeeze_dims", 0, VEC("i32")),),
    "ConcatEmbeddingsOptions": (("num_channels", 0, "i32", 0),
                                ("num_columns_per_channel", 1, VEC("i32")),
                                ("embedding_dim_per_channel", 2, VEC("i32"))),
    "VarHandleOptions": (("container", 0, STR), ("shared_name", 1, STR)),
    "BucketizeOptions": (("boundaries", 0, VEC("f32")),),
}

# TensorType -> (name, bytes per element; None: no fixed size, 0.5: packed int4)
TENSOR_TYPES = {0: ("FLOAT32", 4), 1: ("FLOAT16", 2), 2: ("INT32", 4), 3: ("UINT8", 1),
                4: ("INT64", 8), 5: ("STRING", None), 6: ("BOOL", 1), 7: ("INT16", 2),
                8: ("COMPLEX64", 8), 9: ("INT8", 1), 10: ("FLOAT64", 8), 11: ("COMPLEX128", 16),
                12: ("UINT64", 8), 13: ("RESOURCE", None), 14: ("VARIANT", None), 15: ("UINT32", 4),
                16: ("UINT16", 2), 17: ("INT4", 0.5), 18: ("BFLOAT16", 2)}
# Zero-point range of integer activations/weights as TFLite quantizes them.
_ZERO_POINT_RANGE = {"INT8": (-128, 127), "UINT8": (0, 255), "INT16": (0, 0)}
_QUANTIZED_TYPES = ("INT8", "UINT8", "INT16", "INT32")
CUSTOM = 32
# Builtin ops whose int8 weights (input 1) TFLite quantizes symmetrically (zero point 0).
_SYMMETRIC_WEIGHTS = {3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 9: "FULLY_CONNECTED", 67: "TRANSPOSE_CONV"}
# Builtin op -> its BuiltinOptions member (for the ops tinybuild reads options of).
OPTIONS_OF_OP = {3: 1, 4: 2, 1: 5, 17: 5, 9: 8, 25: 9, 0: 11, 22: 17}


def _add_registered_options() -> None:
    """The options tables of every op tinybuild.ops registers (one place per op)."""
    from .ops import option_tables
    for table, entry in option_tables().items():
        _BUILTIN_OPTIONS.setdefault(entry["union"], table)
        SCHEMA.setdefault(table, entry["fields"])
        for code in entry["ops"]:
            OPTIONS_OF_OP.setdefault(code, entry["union"])


_add_registered_options()


class Corrupt(Exception):
    """A structural fault; ``str()`` says which part and why (no file name)."""


class Invalid(Exception):
    """The structure is sound but a value is not: ``(detail, fix)``."""


# -- the structural walk -------------------------------------------------------------

class _Walker:
    def __init__(self, buf: bytes):
        self.buf = bytes(buf)
        self.size = len(self.buf)
        self.memo: dict = {}

    def _need(self, pos: int, nbytes: int, where: str, what: str) -> None:
        if pos < 0 or pos + nbytes > self.size:
            raise Corrupt(f"{where}: {what} at byte {pos:,} runs past the end of the "
                          f"{self.size:,}-byte file")

    def _aligned(self, pos: int, align: int, where: str, what: str) -> None:
        if pos % align:
            raise Corrupt(f"{where}: {what} at byte {pos:,} is not {align}-byte aligned")

    def scalar(self, kind: str, pos: int, where: str):
        fmt, size = _SCALARS[kind]
        self._need(pos, size, where, "value")
        self._aligned(pos, size, where, "value")
        return struct.unpack_from(fmt, self.buf, pos)[0]

    def follow(self, pos: int, where: str) -> int:
        """The position an unsigned 32-bit offset stored at ``pos`` points to."""
        self._need(pos, 4, where, "offset")
        self._aligned(pos, 4, where, "offset")
        value = struct.unpack_from("<I", self.buf, pos)[0]
        if value == 0 or value >= 1 << 31:
            raise Corrupt(f"{where}: offset {value:#x} at byte {pos:,} is not a valid forward offset")
        if pos + value >= self.size:
            raise Corrupt(f"{where}: offset {value:#x} at byte {pos:,} points past the end of the "
                          f"{self.size:,}-byte file")
        return pos + value

    def vector(self, pos: int, elem_size: int, where: str) -> tuple[int, int]:
        """(start, count) of the vector whose length word is at ``pos``."""
        self._need(pos, 4, where, "vector length")
        self._aligned(pos, 4, where, "vector")
        count = struct.unpack_from("<I", self.buf, pos)[0]
        if count * elem_size > self.size - pos - 4:
            raise Corrupt(f"{where}: a vector of {count:,} elements at byte {pos:,} runs past the "
                          f"end of the {self.size:,}-byte file")
        return pos + 4, count

    def string(self, pos: int, where: str) -> bytes:
        start, count = self.vector(pos, 1, where)
        self._need(start + count, 1, where, "string terminator")
        if self.buf[start + count] != 0:
            raise Corrupt(f"{where}: the string at byte {pos:,} is not NUL-terminated")
        return self.buf[start:start + count]

    def table(self, pos: int, kind: str, where: str) -> dict:
        key = (kind, pos)
        if key not in self.memo:
            self.memo[key] = self._decode_table(pos, kind, where)
        return self.memo[key]

    def _vtable(self, pos: int, where: str) -> tuple[int, int, int]:
        self._need(pos, 4, where, "table")
        self._aligned(pos, 4, where, "table")
        vtable = pos - struct.unpack_from("<i", self.buf, pos)[0]
        if vtable < 0 or vtable + 4 > self.size:
            raise Corrupt(f"{where}: the table at byte {pos:,} has its vtable outside the file "
                          f"(byte {vtable:,})")
        self._aligned(vtable, 2, where, "vtable")
        vsize, tsize = struct.unpack_from("<HH", self.buf, vtable)
        if vsize < 4 or vsize % 2 or vtable + vsize > self.size:
            raise Corrupt(f"{where}: the vtable at byte {vtable:,} has a bad size ({vsize})")
        if tsize < 4 or pos + tsize > self.size:
            raise Corrupt(f"{where}: the table at byte {pos:,} claims {tsize} bytes, past the end "
                          f"of the {self.size:,}-byte file")
        return vtable, vsize, tsize

    def _field_offset(self, vtable: int, vsize: int, tsize: int, slot: int, size: int,
                      where: str) -> int:
        if 4 + 2 * slot + 2 > vsize:
            return 0
        offset = struct.unpack_from("<H", self.buf, vtable + 4 + 2 * slot)[0]
        if offset and (offset < 4 or offset + size > tsize):
            raise Corrupt(f"{where}: field at offset {offset} lies outside its {tsize}-byte table")
        return offset

    def _decode_table(self, pos: int, kind: str, where: str) -> dict:
        vtable, vsize, tsize = self._vtable(pos, where)
        fields = SCHEMA.get(kind)
        if fields is None:  # a table tinybuild does not read: its fields stay inside it
            for slot in range((vsize - 4) // 2):
                self._field_offset(vtable, vsize, tsize, slot, 1, where)
            return {"@": pos}
        out = {"@": pos}
        for name, slot, spec, *default in fields:
            size = _SCALARS[spec][1] if isinstance(spec, str) else 4
            offset = self._field_offset(vtable, vsize, tsize, slot, size, f"{where}.{name}")
            if not offset:
                out[name] = default[0] if default else None
            else:
                out[name] = self._decode_field(pos + offset, spec, f"{where}.{name}", out)
        return out

    def _decode_field(self, pos: int, spec, where: str, decoded: dict):
        if isinstance(spec, str):
            return self.scalar(spec, pos, where)
        kind = spec[0]
        if kind == "union":
            member = decoded.get(spec[1]) or 0
            if member == 0:
                return None
            return self.table(self.follow(pos, where), spec[2].get(member, "*"), where)
        target = self.follow(pos, where)
        if kind == "str":
            return self.string(target, where)
        if kind == "bytes":
            return self.vector(target, 1, where)
        if kind == "vec":
            dtype = np.dtype(_VECTOR_DTYPES[spec[1]])
            start, count = self.vector(target, dtype.itemsize, where)
            return np.frombuffer(self.buf, dtype, count, start)
        if kind == "table":
            return self.table(target, spec[1], where)
        start, count = self.vector(target, 4, where)  # "tables"
        return [self.table(self.follow(start + 4 * i, f"{where}[{i}]"), spec[1], f"{where}[{i}]")
                for i in range(count)]


# -- what the parts mean ------------------------------------------------------------------

def op_name(code: int) -> str:
    """A builtin operator's TFLite name (``CONV_2D``), or ``op<N>`` if unknown."""
    return _opcode_names().get(code, f"op{code}")


_NAMES: dict[int, str] = {}


def _opcode_names() -> dict[int, str]:
    if not _NAMES:
        try:
            from tflite.utils import BUILTIN_OPCODE2NAME
            _NAMES.update(BUILTIN_OPCODE2NAME)
        except ImportError:  # the names are for messages only
            _NAMES[-1] = "?"
    return _NAMES


def builtin_code(opcode: dict) -> int:
    """Schema 3a: small codes live in the deprecated byte, large ones in the int."""
    return max(int(opcode["deprecated_builtin_code"]), int(opcode["builtin_code"]))


def _count(items) -> int:
    return 0 if items is None else len(items)


def _tensor_label(index: int, tensor: dict) -> str:
    name = tensor.get("name")
    return f"tensor {index}" + (f" '{shown(name)}'" if name else "")


def _check_indices(values, low: int, high: int, where: str, what: str) -> None:
    if values is None or not len(values):
        return
    bad = values[(values < low) | (values >= high)]
    if len(bad):
        allowed = f"{low}..{high - 1}" if high > low else "none: there are no tensors"
        raise Corrupt(f"{where}: {what} {int(bad[0])} is out of range ({allowed})")


def _check_opcodes(model: dict) -> list[int]:
    codes = []
    names = _opcode_names()
    for i, opcode in enumerate(model["operator_codes"] or []):
        if opcode["deprecated_builtin_code"] < 0 or opcode["builtin_code"] < 0:
            raise Corrupt(f"operator_codes[{i}]: negative builtin code")
        code = builtin_code(opcode)
        if -1 not in names and code not in names:
            raise Corrupt(f"operator_codes[{i}]: {code} is not a TFLite builtin operator code")
        if code == CUSTOM and opcode["custom_code"] is None:
            raise Corrupt(f"operator_codes[{i}]: a CUSTOM operator without its custom_code")
        codes.append(code)
    return codes


def _check_buffers(model: dict) -> None:
    for i, buffer in enumerate(model["buffers"] or []):
        if buffer["offset"] > 1 or buffer["size"]:
            raise Invalid(f"buffer {i} keeps its data outside the flatbuffer (offset/size, the "
                          "format of models over 2 GB), which tinybuild does not read",
                          "re-export the model as an ordinary .tflite (under 2 GB)")


def _tensor_bytes(index: int, tensor: dict) -> int:
    shape = tensor["shape"]
    dims = [] if shape is None else [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise Corrupt(f"{_tensor_label(index, tensor)}: negative dimension in shape {dims}")
    name, itemsize = TENSOR_TYPES.get(tensor["type"], (None, None))
    if name is None:
        raise Corrupt(f"{_tensor_label(index, tensor)}: type code {tensor['type']} is not a "
                      "TFLite tensor type")
    if itemsize is None:
        return 0
    nbytes = math.ceil(math.prod(dims) * itemsize)
    if nbytes > MAX_TENSOR_BYTES:
        raise Invalid(f"{_tensor_label(index, tensor)} has shape {dims} ({nbytes:,} bytes); tinybuild "
                      f"takes tensors up to {MAX_TENSOR_BYTES >> 20} MiB (microcontrollers have a few MB)",
                      "check the model's shapes (a fixed batch of 1, the real input size)")
    return nbytes


def _check_constant_data(index: int, tensor: dict, nbytes: int, buffers: list) -> None:
    buffer_index = tensor["buffer"]
    if buffer_index >= len(buffers):
        raise Corrupt(f"{_tensor_label(index, tensor)}'s buffer index {buffer_index} is past the "
                      f"{len(buffers)} buffers")
    data = buffers[buffer_index]["data"]
    itemsize = TENSOR_TYPES[tensor["type"]][1]
    if data is None or data[1] == 0 or itemsize is None:
        return
    if data[1] != nbytes:
        dims = [] if tensor["shape"] is None else [int(d) for d in tensor["shape"]]
        raise Corrupt(f"{_tensor_label(index, tensor)} is {TENSOR_TYPES[tensor['type']][0]} {dims} "
                      f"({nbytes:,} bytes) but its buffer {buffer_index} holds {data[1]:,} bytes")


def _check_quantization(index: int, tensor: dict, users: dict) -> None:
    q = tensor["quantization"]
    type_name = TENSOR_TYPES[tensor["type"]][0]
    if q is None or q["scale"] is None or not len(q["scale"]):
        if type_name in _ZERO_POINT_RANGE and index in users:  # int8 kernels need scale and zero point
            raise Invalid(f"{_quant_label(index, tensor, users)} is {type_name} without quantization "
                          "parameters (scale, zero point)", _QUANT_FIX)
        return
    try:
        _check_quantization_values(tensor, q, type_name)
    except Invalid as exc:
        raise Invalid(f"{_quant_label(index, tensor, users)} {exc.args[0]}", _QUANT_FIX) from None


_QUANT_FIX = ("re-export the model with TFLite's full-integer quantization "
              "(tf.lite.TFLiteConverter, TFLITE_BUILTINS_INT8)")


def _quant_label(index: int, tensor: dict, users: dict) -> str:
    return f"{_tensor_label(index, tensor)} ({users.get(index, 'used by no layer')})"


def _check_quantization_values(tensor: dict, q: dict, type_name: str) -> None:
    """Raises Invalid(the problem, after the tensor's label)."""
    scales, zero_points = q["scale"], q["zero_point"]
    if zero_points is None or len(zero_points) != len(scales):
        raise Invalid(f"has {len(scales)} scales but {_count(zero_points)} zero points")
    dims = [] if tensor["shape"] is None else [int(d) for d in tensor["shape"]]
    qdim = q["quantized_dimension"]
    if dims and not 0 <= qdim < len(dims):
        raise Invalid(f"has quantized dimension {qdim}, outside its rank {len(dims)}")
    if len(scales) != 1 and (not dims or len(scales) != dims[qdim]):
        raise Invalid(f"has {len(scales)} scales; expected 1 or {dims[qdim] if dims else 1} "
                      f"(dimension {qdim} of shape {dims})")
    if type_name not in _QUANTIZED_TYPES:
        return
    bad = scales[~(np.isfinite(scales) & (scales > 0))]
    if len(bad):
        raise Invalid(f"has scale {float(bad[0])!r}; scales must be finite and > 0")
    low, high = _ZERO_POINT_RANGE.get(type_name, (None, None))
    if low is not None:
        out = zero_points[(zero_points < low) | (zero_points > high)]
        if len(out):
            allowed = f"in [{low}, {high}]" if low != high else f"{low}"
            raise Invalid(f"has {type_name.lower()} zero point {int(out[0])}; it must be "
                          f"{allowed}")


def _check_symmetric_weights(tensors: list, operators: list, codes: list, users: dict) -> None:
    for op in operators:
        code = codes[op["opcode_index"]]
        inputs = op["inputs"]
        if code not in _SYMMETRIC_WEIGHTS or inputs is None or len(inputs) < 2 or inputs[1] < 0:
            continue
        index = int(inputs[1])
        tensor = tensors[index]
        q = tensor["quantization"]
        if TENSOR_TYPES[tensor["type"]][0] != "INT8" or q is None or q["zero_point"] is None:
            continue
        if np.any(q["zero_point"] != 0):
            nonzero = int(q["zero_point"][q["zero_point"] != 0][0])
            raise Invalid(f"{_tensor_label(index, tensor)} (weights of {users[index]}) has zero "
                          f"point {nonzero}; TFLite's int8 {_SYMMETRIC_WEIGHTS[code]} needs "
                          "symmetric weights (zero point 0)",
                          "re-export the model with TFLite's full-integer quantization")


def _layer_users(operators: list, codes: list) -> dict[int, str]:
    """Tensor index -> the first layer that writes or reads it, as 'layer 3 (CONV_2D)'."""
    users: dict[int, str] = {}
    for i, op in enumerate(operators):
        label = f"layer {i} ({op_name(codes[op['opcode_index']])})"
        for array in (op["outputs"], op["inputs"]):
            for t in ([] if array is None else array):
                users.setdefault(int(t), label)
    return users


def _check_operators(sub: int, operators: list, n_tensors: int, n_codes: int, codes: list) -> None:
    for i, op in enumerate(operators):
        where = f"subgraphs[{sub}].operators[{i}]"
        if op["opcode_index"] >= n_codes:
            raise Corrupt(f"{where}: opcode index {op['opcode_index']} is past the {n_codes} "
                          "operator codes")
        _check_indices(op["inputs"], -1, n_tensors, where, "input tensor")
        _check_indices(op["outputs"], 0, n_tensors, where, "output tensor")
        _check_indices(op["intermediates"], -1, n_tensors, where, "intermediate tensor")
        code = codes[op["opcode_index"]]
        wanted, given = OPTIONS_OF_OP.get(code), op["builtin_options_type"]
        if wanted is not None and given not in (0, wanted):
            raise Corrupt(f"{where}: a {op_name(code)} operator with options of union type {given}, "
                          f"not {_BUILTIN_OPTIONS[wanted]}")
        if op["large_custom_options_offset"] > 1:
            raise Invalid(f"{where} keeps its custom options outside the flatbuffer, which "
                          "tinybuild does not read", "re-export the model as an ordinary .tflite")


def _check_subgraph(sub: int, graph: dict, buffers: list, codes: list) -> int:
    tensors = graph["tensors"] or []
    operators = graph["operators"] or []
    n = len(tensors)
    where = f"subgraphs[{sub}]"
    _check_indices(graph["inputs"], 0, n, where, "input tensor")
    _check_indices(graph["outputs"], 0, n, where, "output tensor")
    _check_operators(sub, operators, n, len(codes), codes)
    users = _layer_users(operators, codes)
    total = 0
    for i, tensor in enumerate(tensors):
        if tensor["sparsity"] is not None:
            raise Invalid(f"{_tensor_label(i, tensor)} is sparse; tinybuild compiles dense tensors",
                          "re-export the model without sparsification")
        nbytes = _tensor_bytes(i, tensor)
        _check_constant_data(i, tensor, nbytes, buffers)
        _check_quantization(i, tensor, users)
        total += nbytes
    _check_symmetric_weights(tensors, operators, codes, users)
    return total


def _check_signatures(model: dict) -> None:
    subgraphs = model["subgraphs"]
    for i, sig in enumerate(model["signature_defs"] or []):
        if sig["subgraph_index"] >= len(subgraphs):
            raise Corrupt(f"signature_defs[{i}]: subgraph index {sig['subgraph_index']} is past "
                          f"the {len(subgraphs)} subgraphs")
        n = _count(subgraphs[sig["subgraph_index"]]["tensors"])
        for m in (sig["inputs"] or []) + (sig["outputs"] or []):
            if m["tensor_index"] >= n:
                raise Corrupt(f"signature_defs[{i}]: tensor index {m['tensor_index']} is past the "
                              f"{n} tensors")


def _check_meaning(model: dict) -> None:
    if model["version"] != SCHEMA_VERSION:
        raise Corrupt(f"schema version {model['version']} (TFLite reads version {SCHEMA_VERSION})")
    if not model["subgraphs"]:
        raise Corrupt("the model has no subgraph")
    buffers = model["buffers"] or []
    _check_buffers(model)
    for name, values in (("metadata_buffer", model["metadata_buffer"]),
                         ("metadata", [m["buffer"] for m in model["metadata"] or []])):
        _check_indices(None if values is None else np.asarray(values, np.int64),
                       0, len(buffers), name, "buffer index")
    codes = _check_opcodes(model)
    total = sum(_check_subgraph(s, g, buffers, codes) for s, g in enumerate(model["subgraphs"]))
    if total > MAX_TOTAL_TENSOR_BYTES:
        raise Invalid(f"the model's tensors add up to {total:,} bytes; tinybuild takes models up to "
                      f"{MAX_TOTAL_TENSOR_BYTES >> 20} MiB of tensors", "check the model's shapes")
    _check_signatures(model)


# -- entry points ------------------------------------------------------------------------

def parse(buf: bytes) -> dict:
    """Walk and check ``buf``; return the decoded model (nested dicts, numpy vectors,
    ``(start, length)`` spans for buffer data). Raises :class:`Corrupt` or
    :class:`Invalid`."""
    walker = _Walker(buf)
    if walker.size < 8 or walker.buf[4:8] != b"TFL3":
        raise Corrupt("no 'TFL3' file identifier")
    model = walker.table(walker.follow(0, "root"), "Model", "model")
    _check_meaning(model)
    return model


_CHECKED: dict[bytes, dict] = {}   # sha-256 of a file -> its decoded model (the last few)
_CHECKED_KEEP = 8


def check(buf: bytes, path) -> dict:
    """:func:`parse`, with any problem as one TinybuildError naming ``path``.
    One build checks a file several times (int8 check, inputs/outputs, import):
    the walk is done once per content. The result is shared: do not modify it."""
    key = hashlib.sha256(buf).digest()
    if key not in _CHECKED:
        model = _parse_or_raise(buf, path)
        if len(_CHECKED) >= _CHECKED_KEEP:
            del _CHECKED[next(iter(_CHECKED))]
        _CHECKED[key] = model
    return _CHECKED[key]


def _parse_or_raise(buf: bytes, path) -> dict:
    try:
        return parse(buf)
    except Corrupt as exc:
        raise TinybuildError(
            f"{shown(str(path), limit=0)}: corrupt TFLite flatbuffer: {exc}. Fix: re-export the model "
            "(tf.lite.TFLiteConverter), or copy it again if it was truncated or damaged") from None
    except Invalid as exc:
        detail, fix = exc.args
        raise TinybuildError(f"{shown(str(path), limit=0)}: {detail}. Fix: {fix}") from None


def read_model_file(path: Path) -> bytes:
    """The bytes of a model file, or one TinybuildError line (missing, unreadable, not
    a TFLite flatbuffer at all)."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise TinybuildError(f"{shown(str(path), limit=0)}: cannot read the model file "
                             f"({exc.strerror or exc}). Fix: check the path") from None
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise TinybuildError(
            f"{shown(str(path), limit=0)}: not a TFLite flatbuffer (no 'TFL3' identifier){lfs_hint(buf)}. "
            "Fix: point tinybuild at a valid .tflite file, or at the float model "
            "(.h5/.keras/SavedModel) to convert it.")
    return buf


def lfs_hint(buf: bytes) -> str:
    if buf.startswith(b"version https://git-lfs"):
        return " - it is a Git LFS pointer, not the model (run `git lfs pull`)"
    if not buf:
        return " - the file is empty"
    return ""


def check_file(path: Path) -> dict:
    """Read and check a .tflite file: the decoded model, or one TinybuildError line."""
    return check(read_model_file(path), path)


def data_spans(model: dict) -> list[tuple[int, int]]:
    """(start, length) of each non-empty buffer's data: where weights live, for the fuzzer
    to tell structure from payload."""
    return [b["data"] for b in model["buffers"] or [] if b["data"] is not None and b["data"][1]]
