"""A seeded mutation fuzzer: damaged .tflite files never crash, hang or lie.

Mutants (bit flips, random bytes, byte runs, truncations, offset words set to
huge values, inserted and removed bytes) of small int8 models go through the
whole import path without TensorFlow: convert_model (flatbuffer check, fully
int8 check, inputs/outputs, operator options) -> load_graph -> lower -> kernel
choice -> memory plan -> validation inputs. Each must end as a TinybuildError
or as a graph tinybuild compiles; anything else fails the test, naming the
seed and the mutation so it can be replayed with :func:`mutant`.

The seed models are tests/data/all_ops_int8.tflite (every operator tinybuild
compiles; committed, 3.5 KB) and, when ../shared is present, the MLPerf Tiny
KWS and AD01 int8 models. The slow tests run a sample of accepted mutants
through the real TFLite reference step (in its child process) and the damaged
files of /work/shared/fuzz through SCons.
"""
from __future__ import annotations

import random
import struct
import subprocess
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

import pytest

from tbtest import MLPERF, ROOT
from tinybuild import flatbuffer_check, kernel_registry, lower, pipeline, planner
from tinybuild.convert import convert_model
from tinybuild.errors import TinybuildError
from tinybuild.importer import load_graph
from tinybuild.reference import make_inputs

FIXTURE = ROOT / "tests" / "data" / "all_ops_int8.tflite"
SHARED_SEEDS = ("kws_ref_model.tflite", "ad01_int8.tflite")
SHARED_FUZZ = MLPERF.parent.parent / "fuzz"
MUTANTS_PER_MODEL = {"all_ops_int8.tflite": 1500, "kws_ref_model.tflite": 1000, "ad01_int8.tflite": 500}
KINDS = ("flip", "bytes", "run", "truncate", "offset", "insert", "remove")
HUGE_WORDS = (0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x10000000, 0x00FFFFFF)


def seed_models() -> list[Path]:
    shared = [MLPERF / name for name in SHARED_SEEDS if (MLPERF / name).is_file()]
    return [FIXTURE] + shared


def _structure_positions(data: bytes) -> list[int]:
    """Byte positions outside the buffers' payload (weights): the flatbuffer tables,
    vtables, vectors and strings, where a mutation means most."""
    payload = set()
    for start, length in flatbuffer_check.data_spans(flatbuffer_check.parse(data)):
        payload.update(range(start, start + length))
    return [i for i in range(len(data)) if i not in payload]


def mutant(data: bytes, seed: int, structure: list[int]) -> tuple[bytes, str]:
    """The mutant number ``seed`` of ``data`` and a description of the mutation."""
    rng = random.Random(seed)
    kind = KINDS[seed % len(KINDS)]
    pos = rng.choice(structure) if structure and rng.random() < 0.8 else rng.randrange(len(data))
    out = bytearray(data)
    if kind == "flip":
        out[pos] ^= 1 << rng.randrange(8)
        return bytes(out), f"flip bit of byte {pos}"
    if kind == "bytes":
        positions = sorted(rng.choice(structure) for _ in range(rng.randint(1, 8)))
        for p in positions:
            out[p] = rng.randrange(256)
        return bytes(out), f"random bytes at {positions}"
    if kind == "run":
        n = rng.randint(2, 32)
        fill = rng.choice((0x00, 0xFF, rng.randrange(256)))
        out[pos:pos + n] = bytes([fill]) * len(out[pos:pos + n])
        return bytes(out), f"run of {n} x {fill:#04x} at {pos}"
    if kind == "truncate":
        return bytes(out[:pos]), f"truncated to {pos} bytes"
    if kind == "offset":
        word = pos & ~3
        value = rng.choice(HUGE_WORDS + (len(data) + rng.randrange(64), rng.randrange(1 << 32)))
        out[word:word + 4] = struct.pack("<I", value)[:len(out[word:word + 4])]
        return bytes(out), f"word at {word} set to {value:#x}"
    n = rng.randint(1, 8)
    if kind == "insert":
        out[pos:pos] = bytes(rng.randrange(256) for _ in range(n))
        return bytes(out), f"{n} bytes inserted at {pos}"
    del out[pos:pos + n]
    return bytes(out), f"{n} bytes removed at {pos}"


def import_path(path: Path, work: Path) -> None:
    """Everything tinybuild does with a .tflite before TensorFlow and the compiler."""
    converted = work / "model.int8.tflite"
    convert_model(path, converted, None, None)
    graph = load_graph(converted)
    layers = kernel_registry.select_kernels(lower.lower_graph(graph), [])
    planner.plan_memory(graph, layers)
    make_inputs(converted, 2, 1)


def fuzz(model: Path, count: int, work: Path) -> tuple[Counter, list[str], list[int]]:
    """(outcome counts, failures, seeds of accepted mutants) over ``count`` mutants."""
    data = model.read_bytes()
    structure = _structure_positions(data)
    outcomes, failures, accepted = Counter(), [], []
    path = work / model.name
    for seed in range(count):
        blob, how = mutant(data, seed, structure)
        path.write_bytes(blob)
        try:
            import_path(path, work)
        except TinybuildError as exc:
            assert "\n" not in str(exc), f"{model.name} seed {seed} ({how}): multi-line error"
            outcomes["clean error"] += 1
            continue
        except Exception:
            outcomes["anything else"] += 1
            failures.append(f"{model.name} seed {seed} ({how}): "
                            + traceback.format_exc(limit=-3).replace("\n", " | "))
            continue
        outcomes["accepted"] += 1
        accepted.append(seed)
    return outcomes, failures, accepted


def test_mutants_are_clean_errors_or_graphs(tmp_path, capsys):
    totals, failures, started = Counter(), [], time.perf_counter()
    for model in seed_models():
        counts, failed, _ = fuzz(model, MUTANTS_PER_MODEL[model.name], tmp_path)
        totals += counts
        failures += failed
        with capsys.disabled():
            print(f"\nfuzz {model.name}: {sum(counts.values())} mutants: "
                  f"{counts['clean error']} clean errors, {counts['accepted']} accepted, "
                  f"{counts['anything else']} anything else")
    seconds = time.perf_counter() - started
    with capsys.disabled():
        print(f"fuzz total: {sum(totals.values())} mutants in {seconds:.1f} s: {totals['clean error']} "
              f"clean errors, {totals['accepted']} accepted, {totals['anything else']} anything else")
    assert not failures, f"{len(failures)} mutants escaped:\n" + "\n".join(failures[:10])
    assert totals["clean error"] > 0 and totals["accepted"] > 0  # the fuzzer reaches both ends


def test_mutations_are_deterministic_and_varied():
    data = FIXTURE.read_bytes()
    structure = _structure_positions(data)
    assert structure and len(structure) < len(data)
    assert mutant(data, 7, structure) == mutant(data, 7, structure)
    kinds = {mutant(data, seed, structure)[1].split()[0] for seed in range(len(KINDS))}
    assert len(kinds) == len(KINDS)
    assert all(mutant(data, seed, structure)[0] != data for seed in range(50))


def test_fixture_is_a_small_int8_model_with_every_supported_operator(tmp_path):
    assert FIXTURE.stat().st_size < 100_000
    graph = load_graph(FIXTURE)
    classic = {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE",
               "FULLY_CONNECTED", "SOFTMAX"}
    assert {op.op for op in graph.operators} == classic and classic <= set(lower.SUPPORTED)
    import_path(FIXTURE, tmp_path)


@pytest.mark.slow
def test_accepted_mutants_through_the_tflite_reference_step(tmp_path):
    """20 accepted mutants through the real reference step (TFLite in its child
    process): each ends in reference outputs or one clean error line."""
    rng = random.Random(20)
    ends = Counter()
    for model in seed_models():
        _, _, accepted = fuzz(model, 200, tmp_path)
        data, structure = model.read_bytes(), _structure_positions(model.read_bytes())
        for seed in rng.sample(accepted, min(len(accepted), 20 // len(seed_models()) + 1)):
            path = tmp_path / f"{model.stem}_m{seed}.tflite"
            path.write_bytes(mutant(data, seed, structure)[0])
            outputs = tmp_path / "reference.bin"
            try:
                pipeline.reference(path, tmp_path / "inputs.bin", outputs, tmp_path / "ref.json", 2, 1, None)
            except TinybuildError as exc:
                assert "\n" not in str(exc)
                ends["clean error"] += 1
                print(f"{path.name}: {exc}")
                assert not outputs.exists()  # no stale result
                continue
            assert outputs.stat().st_size > 0
            ends["reference outputs"] += 1
    print(f"reference step on accepted mutants: {dict(ends)}")
    assert sum(ends.values()) >= 20


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kws_m034_c", "ad01_m082_c", "ad01_m067_d", "kws_m005_b",
                                  "kws_m011_d", "kws_m031_d"])
def test_shared_fuzz_files_end_in_one_error_line(tmp_path, name):
    model = SHARED_FUZZ / f"{name}.tflite"
    if not model.is_file():
        pytest.skip(f"{model} not present (the fuzz corpus lives in ../shared)")
    result = subprocess.run(
        [str(Path(sys.executable).with_name("scons")), "-C", str(ROOT), "-Q", f"build_dir={tmp_path}",
         "target=cortex-m4", f"model={model}"], capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    errors = [line for line in output.splitlines() if line.startswith("tinybuild: error:")]
    assert len(errors) == 1 and name in errors[0] and "Fix:" in errors[0], output
    assert "Traceback" not in output
    assert not list(tmp_path.rglob("model.int8.tflite"))
