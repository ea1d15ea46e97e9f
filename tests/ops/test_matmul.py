"""BATCH_MATMUL (tinybuild/ops/matmul.py) against TFLite's reference kernels."""
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from harness import FAST, SWEEP, Case, check, rng_for
from tflite_builder import ModelBuilder
from tinybuild.errors import TinybuildError


def matmul_shape(lhs, rhs, adj_x, adj_y):
    m = lhs[-1] if adj_x else lhs[-2]
    n = rhs[-2] if adj_y else rhs[-1]
    rank = max(len(lhs), len(rhs))
    pad = lambda s: [1] * (rank - len(s)) + list(s[:-2])  # noqa: E731
    batch = [max(a, b) for a, b in zip(pad(lhs)[:rank - 2], pad(rhs)[:rank - 2])]
    return tuple(batch + [m, n])


def matmul_model(lhs=(1, 3, 4), rhs=(1, 4, 5), adj_x=False, adj_y=False, qa=(0.05, -3),
                 qb=(0.04, 7), qo=(0.2, 5), const=None, dtype="int8") -> bytes:
    """``const``: None (two inputs), "lhs" or "rhs" (that operand a constant);
    ``dtype``: int8, int16 (zero points 0, scales / 256) or float32."""
    b = ModelBuilder()
    rng = rng_for(lhs, rhs, const, *((dtype,) if dtype != "int8" else ()))
    if dtype != "int8":
        qa, qb, qo = ([(q[0] / 256, 0) for q in (qa, qb, qo)] if dtype == "int16"
                      else [(None, None)] * 3)
    values = {"int8": lambda s: rng.integers(-128, 128, s),
              "int16": lambda s: rng.integers(-32768, 32768, s),
              "float32": lambda s: rng.normal(0, 1, s).astype("float32")}[dtype]
    a = (b.const(values(lhs), dtype, *qa) if const == "lhs" else b.input(lhs, dtype, *qa))
    c = (b.const(values(rhs), dtype, *qb) if const == "rhs" else b.input(rhs, dtype, *qb))
    y = b.tensor(matmul_shape(lhs, rhs, adj_x, adj_y), dtype, *qo)
    b.op("BATCH_MATMUL", [a, c], [y], b.options("BatchMatMulOptions", adjX=adj_x, adjY=adj_y),
         version=3)
    return b.build([y])


CASES = [
    Case("BATCH_MATMUL 3-D two activations", lambda: matmul_model()),
    Case("BATCH_MATMUL adj_x", lambda: matmul_model((1, 4, 3), (1, 4, 5), adj_x=True)),
    Case("BATCH_MATMUL adj_y (Q K^T)", lambda: matmul_model((1, 6, 8), (1, 6, 8), adj_y=True)),
    Case("BATCH_MATMUL adj_x and adj_y", lambda: matmul_model((2, 4, 3), (2, 5, 4), True, True)),
    Case("BATCH_MATMUL 4-D heads", lambda: matmul_model((1, 2, 5, 4), (1, 2, 4, 3))),
    Case("BATCH_MATMUL broadcast rhs batch", lambda: matmul_model((1, 3, 5, 4), (1, 1, 4, 2))),
    Case("BATCH_MATMUL broadcast both, rank 5", lambda: matmul_model((1, 2, 1, 3, 4), (1, 1, 3, 4, 2))),
    Case("BATCH_MATMUL rank 2", lambda: matmul_model((3, 7), (7, 2))),
    Case("BATCH_MATMUL adj_x, rank-2 rhs broadcast", lambda: matmul_model((2, 3, 4), (3, 2), adj_x=True)),
    Case("BATCH_MATMUL adj_x, rhs broadcast in dim -4", lambda: matmul_model(
        (1, 2, 3, 4, 2), (1, 1, 3, 4, 5), adj_x=True)),
    Case("BATCH_MATMUL rank 3 by rank 2 constant", lambda: matmul_model((1, 5, 6), (6, 4), const="rhs")),
    Case("BATCH_MATMUL constant lhs, adj_y", lambda: matmul_model((4, 6), (1, 3, 6), adj_y=True,
                                                                   const="lhs")),
    Case("BATCH_MATMUL saturating output", lambda: matmul_model((1, 8, 16), (1, 16, 8), qa=(0.5, 100),
                                                                qb=(0.5, -100), qo=(0.01, 0))),
] + [
    Case(f"{dtype} {name}", lambda model=model, dtype=dtype: model(dtype))
    for dtype in ("float32", "int16")
    for name, model in [
        ("BATCH_MATMUL 3-D two activations", lambda t: matmul_model(dtype=t)),
        ("BATCH_MATMUL adj_x and adj_y", lambda t: matmul_model((2, 4, 3), (2, 5, 4), True, True,
                                                                dtype=t)),
        ("BATCH_MATMUL broadcast both, rank 5", lambda t: matmul_model(
            (1, 2, 1, 3, 4), (1, 1, 3, 4, 2), dtype=t)),
        ("BATCH_MATMUL rank 3 by rank 2 constant", lambda t: matmul_model(
            (1, 5, 6), (6, 4), const="rhs", dtype=t)),
        ("BATCH_MATMUL constant lhs, adj_y", lambda t: matmul_model(
            (4, 6), (1, 3, 6), adj_y=True, const="lhs", dtype=t)),
    ]
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_batch_matmul(case):
    check(case)


def test_adj_x_over_a_single_rhs_matrix_is_refused():
    # TF 2.21's reference kernel leaves part of the output unset here: one clear line
    from tinybuild import importer, lower
    with pytest.raises(TinybuildError, match=r"unsupported BATCH_MATMUL at layer 0 .*adj_x with an "
                                             r"lhs of 2 matrices .*leaves part of the output unset"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.tflite"
            path.write_bytes(matmul_model((2, 3, 4), (1, 3, 2), adj_x=True))
            lower.lower_graph(importer.load_graph(path))


@st.composite
def matmul_params(draw, dtype="int8"):
    m, k, n = (draw(st.integers(1, 6)) for _ in range(3))
    rank = draw(st.integers(2, 5))
    batch = [draw(st.integers(1, 3)) for _ in range(rank - 2)]
    if rank >= 4:
        batch[0] = 1                          # 4-D activations are batch 1
    lhs_batch = [d if draw(st.booleans()) else 1 for d in batch]
    rhs_batch = [d if draw(st.booleans()) else 1 for d in batch]
    adj_x, adj_y = draw(st.booleans()), draw(st.booleans())
    if adj_x and rank > 2 and rhs_batch[-1] == 1:     # refused (below) when lhs has several there
        lhs_batch[-1] = 1
    lhs = tuple(lhs_batch + ([k, m] if adj_x else [m, k]))
    rhs = tuple(rhs_batch + ([n, k] if adj_y else [k, n]))
    q = lambda: (draw(st.floats(0.005, 1.0)), draw(st.integers(-128, 127)))  # noqa: E731
    return dict(lhs=lhs, rhs=rhs, adj_x=adj_x, adj_y=adj_y, qa=q(), qb=q(), qo=q(),
                const=draw(st.sampled_from([None, None, "rhs", "lhs"])), dtype=dtype)


@FAST
@given(matmul_params())
def test_batch_matmul_property(params):
    check(matmul_model(**params), inputs=2)


@FAST
@given(matmul_params("float32"))
def test_batch_matmul_float_property(params):
    check(matmul_model(**params), inputs=2)


@FAST
@given(matmul_params("int16"))
def test_batch_matmul_int16_property(params):
    check(matmul_model(**params), inputs=2)


@pytest.mark.slow
@SWEEP
@given(st.sampled_from(["int8", "int16", "float32"]).flatmap(matmul_params))
def test_batch_matmul_sweep(params):
    check(matmul_model(**params), inputs=2)
