"""tb_cm4_conv2d_s8's channel quads and place=: the scratch for the quads' copy of
a filter left in flash is reserved only with place=flash. With place=auto|ram
the build puts the constants in RAM (tinybuild.placement), so the kernel reads
the filter where it is (rq[4] = cm4_prepare.CONV_QUAD_NO_COPY) and the arena
has no room for a copy (ResNet-8 on nucleo-l4r5zi: 8.8 KB less arena).

On the host: what prepare_conv gives per place (header, scratch, note). In the
simulator (slow): a place=auto layer whose filter stayed in flash (RAM full:
the case firmware keeps every constant in flash) reads it from flash, byte for
byte the reference, with fewer instructions than the copying place=flash
layer. With ../shared: ResNet-8's plan per place.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "kernels"))
sys.path.insert(0, str(Path(__file__).parent))

from opt_harness import (assert_same, kernel_named, optimized, random_conv_layer,  # noqa: E402
                         reference, simulate_cases)
from tbtest import mlperf_model  # noqa: E402

# quads: 3x3, C_out a multiple of 4, raw-B (RELU at -128); 35 pixels (a tail), padded (a plane)
QUAD_SHAPES = [dict(in_h=7, in_w=5, in_c=16, out_c=8, k_h=3, k_w=3, padding="SAME"),
               dict(in_h=8, in_w=8, in_c=32, out_c=12, k_h=3, k_w=3, stride=(2, 2), padding="SAME"),
               dict(in_h=6, in_w=6, in_c=64, out_c=4, k_h=3, k_w=3, padding="VALID")]


@pytest.fixture(scope="module")
def conv():
    return {"CONV_2D": kernel_named("tb_cm4_conv2d_s8")}


@pytest.fixture(scope="module")
def prep(conv):
    return sys.modules[conv["CONV_2D"].prepare.__module__]


def quad_layer(seed: int, shape: dict, place: str = "flash"):
    rng = np.random.default_rng(seed)
    layer = random_conv_layer(rng, **shape, in_zp=-128, out_zp=-128, activation="RELU",
                              weight_range=20)
    x = rng.integers(-128, 128, shape["in_h"] * shape["in_w"] * shape["in_c"]).astype(np.int8)
    return replace(layer, place=place), x


def rq_of(layer) -> np.ndarray:
    return next(c.values for c in layer.consts if c.role == "rq")


@pytest.mark.parametrize("place", ["auto", "ram"])
def test_no_copy_scratch_when_the_build_places_constants(conv, prep, place):
    for i, shape in enumerate(QUAD_SHAPES):
        flash = optimized(quad_layer(i, shape)[0], conv)
        placed = optimized(quad_layer(i, shape, place)[0], conv)
        k4 = shape["k_h"] * shape["k_w"] * shape["in_c"]
        assert rq_of(flash)[0] & prep.CONV_QUADS and rq_of(placed)[0] & prep.CONV_QUADS, shape
        assert rq_of(flash)[4] >= 0 and rq_of(placed)[4] == prep.CONV_QUAD_NO_COPY
        # the same column, tail and plane; only the copy's room is gone
        assert flash.scratch_bytes == rq_of(flash)[4] + prep.conv_quad_bytes(shape["out_c"], k4)
        assert placed.scratch_bytes == rq_of(flash)[4]
        assert (rq_of(flash)[:4] == rq_of(placed)[:4]).all()
        assert any(f"place={place}" in n and "no scratch for a copy" in n for n in placed.notes)
        assert [c.values.tolist() for c in flash.consts if c.role == "filter"] == \
            [c.values.tolist() for c in placed.consts if c.role == "filter"]


def test_layers_without_quads_keep_their_scratch(conv, prep):
    """1 channel pair, not quads: place does not change the layer."""
    shape = dict(in_h=6, in_w=6, in_c=16, out_c=2, k_h=3, k_w=3, padding="SAME")
    flash, placed = (optimized(quad_layer(0, shape, p)[0], conv) for p in ("flash", "auto"))
    assert not rq_of(flash)[0] & prep.CONV_QUADS
    assert flash.scratch_bytes == placed.scratch_bytes
    assert (rq_of(flash) == rq_of(placed)).all()


@pytest.mark.slow
def test_a_filter_left_in_flash_without_copy_room_is_read_from_flash(tmp_path, conv):
    """The case firmware keeps the constants in flash: place=flash copies the quads
    into its scratch, place=auto (no room) reads them where they are."""
    cases = []
    for place in ("flash", "auto"):
        for i, shape in enumerate(QUAD_SHAPES):
            layer, x = quad_layer(i, shape, place)
            cases.append((reference(layer), optimized(layer, conv), [x], None))
    rows = simulate_cases(cases, tmp_path, target_name="nucleo-l4r5zi")
    n = len(QUAD_SHAPES)
    for (ref, opt, _, _), row in zip(cases, rows):
        assert row["opt_instr"] > 0
        assert_same(row["ref"], row["opt"], f"{opt.shape} place={opt.place}")
    for copied, read in zip(rows[:n], rows[n:]):
        assert read["opt_instr"] < copied["opt_instr"], (read["opt_instr"], copied["opt_instr"])


def test_resnet8_arena_without_the_copies(tmp_path):
    """ResNet-8 (pretrainedResnet_quant) planned for place=auto: every quads layer
    without its copy's scratch, and the arena smaller than with place=flash."""
    from tinybuild import pipeline, plugins
    resnet8 = mlperf_model("pretrainedResnet_quant.tflite")
    pm = plugins.make_plugin_manager()
    kernels = plugins.kernels(pm, plugins.find_target(pm, "nucleo-l4r5zi"))
    plans = {p: pipeline.generate(resnet8, tmp_path / p, kernels, place=p) for p in ("flash", "auto")}
    quads = {p: [l for l in plans[p]["layers"] if any("channel quads" in n for n in l["notes"])]
             for p in plans}
    assert len(quads["flash"]) == len(quads["auto"]) >= 5
    for flash, auto in zip(quads["flash"], quads["auto"]):
        assert auto["scratch_bytes"] < flash["scratch_bytes"], flash["index"]
    assert plans["auto"]["memory"]["arena_size"] <= plans["flash"]["memory"]["arena_size"] - 8 * 1024
