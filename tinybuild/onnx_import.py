"""The ``.onnx`` model importer, registered through ``tinybuild_model_importers``
by a built-in plugin (tinybuild/plugins.py). The importer itself is the package
tinybuild/onnx/ (see its docstring and docs/onnx.md); this module keeps
``tinybuild.onnx_import.convert_onnx`` where plugins and tests import it.

``SOURCE_FILES`` (tinybuild/onnx/convert.py): the package's modules, so the convert
step's signature (tinybuild/scons_tool.py) converts again when any of them changes.
"""
from __future__ import annotations

from tinybuild.hookspecs import hookimpl
from tinybuild.onnx.convert import SOURCE_FILES, convert_onnx  # noqa: F401  (the importer)


@hookimpl
def tinybuild_model_importers():
    return {".onnx": convert_onnx}
