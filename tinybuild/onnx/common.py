"""What every part of the ONNX importer shares: the layout constant and the log."""
from __future__ import annotations

import sys

from tinybuild.errors import shown

NCHW_TO_NHWC = (0, 2, 3, 1)


def log(msg: str) -> None:
    print(f"[onnx] {msg}", file=sys.stderr, flush=True)


def p(path) -> str:
    """A user path, escaped for a message."""
    return shown(str(path), limit=0)
