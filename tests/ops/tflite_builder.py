"""The op tests' TFLite model writer: a re-export of tinybuild.tflite_writer
(the product's writer, used by the ONNX importer), kept so the tests'
``from tflite_builder import ModelBuilder`` goes on working. See that module.
"""
from tinybuild.tflite_writer import ACTIVATIONS, PADDINGS, TYPES, ModelBuilder, schema  # noqa: F401

__all__ = ["ACTIVATIONS", "PADDINGS", "TYPES", "ModelBuilder", "schema"]
