"""Per-op coverage for bench/results.md: every op issue 11 names, whether
tinybuild compiles it (tinybuild.ops registry), in which types (int8, and the
OpDef's typed kernels: 16x8 and float32), and which targets' plugins offer an
optimized kernel for it (tinybuild_kernels, with the types those take).

    ./tb python bench/op_coverage.py        # prints the Markdown table
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tinybuild import plugins  # noqa: E402
from tinybuild.ops import registry  # noqa: E402

ISSUE_OPS = """PAD PADV2 MEAN SUM REDUCE_MAX MUL SUB SQUARED_DIFFERENCE RSQRT LOGISTIC TANH HARD_SWISH RELU
RELU6 LEAKY_RELU PRELU MAXIMUM MINIMUM DIV CONCATENATION SPLIT SPLIT_V PACK UNPACK STRIDED_SLICE SLICE
TRANSPOSE SQUEEZE EXPAND_DIMS GATHER BATCH_MATMUL ARG_MAX RESIZE_NEAREST_NEIGHBOR RESIZE_BILINEAR
TRANSPOSE_CONV QUANTIZE DEQUANTIZE CAST SHAPE FILL CONV_2D DEPTHWISE_CONV_2D FULLY_CONNECTED
AVERAGE_POOL_2D MAX_POOL_2D ADD SOFTMAX RESHAPE""".split()


def table(targets=("cortex-m4", "riscv", "esp32c3")) -> str:
    pm = plugins.make_plugin_manager()
    known = plugins.targets(pm)
    offered = {t: {(k.op, d) for k in plugins.kernels(pm, known[t]) for d in k.dtypes}
               for t in targets}
    ops = registry()
    names = ISSUE_OPS + sorted(set(ops) - set(ISSUE_OPS))
    rows = ["| op | compiled | types | optimized kernel on | note |", "| --- | --- | --- | --- | --- |"]
    for name in names:
        opdef = ops.get(name)
        fast = [f"{t} ({', '.join(d for o, d in sorted(offered[t]) if o == name)})"
                for t in targets if any(o == name for o, _ in offered[t])]
        types = ", ".join(d for d in ("int8", "int16", "float32")
                          if d == "int8" or d in opdef.typed) if opdef else "-"
        note = ("view: no code" if opdef and opdef.view else
                "folded when its inputs are constant" if opdef and opdef.fold else "")
        if name in ("PAD", "PADV2"):
            note = "fused into the following VALID conv/depthwise where exact; else a copy"
        rows.append(f"| {name} | {'yes' if opdef else 'no'} | {types} | {', '.join(fast) or '-'} | {note} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
