"""What every part of the ONNX importer shares: the layout constant and the log."""
from __future__ import annotations

import sys

from tinybuild.errors import shown

NCHW_TO_NHWC = (0, 2, 3, 1)
# the channels-last layout tinybuild gives a channels-first tensor, and ONNX's, by rank
CHANNELS_LAST_NAMES = {3: ("NLC", "NCL"), 4: ("NHWC", "NCHW")}


def channels_last(rank: int) -> tuple[int, ...]:
    """The TFLite axes of a channels-first ONNX tensor: N, spatial axes, C."""
    return (0, *range(2, rank), 1)


def log(msg: str) -> None:
    print(f"[onnx] {msg}", file=sys.stderr, flush=True)


def p(path) -> str:
    """A user path, escaped for a message."""
    return shown(str(path), limit=0)
