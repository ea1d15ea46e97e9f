"""bench/cm4_floor.py: the per-layer floor of the cortex-m4 core model (docs/kernels.md
"The floor"). Fast: the rules on worked examples. The slow MLPerf Tiny builds of
test_nucleo.py check that no layer runs below its floor."""
import pytest

from tbtest import bench_module

floor = bench_module("cm4_floor")


@pytest.mark.parametrize("shape, expected", [
    ("48x48x8 -> 48x48x16, k1x1 s1 same", (18_432, 36_864, 1, "1x1")),
    ("48x48x16 -> 24x24x16, k3x3 s2 same", (36_864, 9_216, 2, "3x3")),
    ("640 -> 128", (640, 128, 1, "")),
    ("3x3x256 -> 1x1x256, k3x3", (2_304, 256, 1, "3x3")),
])
def test_shapes_are_read_from_the_report(shape, expected):
    assert floor.parse_shape(shape) == expected


def layer(op, shape, macs, cycles=10**9):
    return {"op": op, "shape": shape, "macs": macs, "cycles": cycles}


def test_pointwise_floor_is_15_16_per_mac_3_per_output_and_3_4_per_input():
    # VWW's 6x6x128 -> 128: 589,824 MACs, 4,608 outputs, 4,608 inputs
    got, rule = floor.layer_floor(layer("CONV_2D", "6x6x128 -> 6x6x128, k1x1 s1 same", 589_824))
    assert rule == "conv" and got == 589_824 * 15 / 16 + 3 * 4_608 + 0.75 * 4_608 == 570_240


def test_depthwise_floor_depends_on_the_stride():
    s1, rule1 = floor.layer_floor(layer("DEPTHWISE_CONV_2D", "6x6x128 -> 6x6x128, k3x3 s1 same", 41_472))
    s2, rule2 = floor.layer_floor(layer("DEPTHWISE_CONV_2D", "6x6x128 -> 3x3x128, k3x3 s2 same", 10_368))
    assert (rule1, rule2) == ("dw3 s1", "dw3 s2")
    assert s1 == 41_472 * 7 / 9 + 3 * 4_608 + 1.25 * 4_608 == 51_840
    assert s2 == 10_368 * 17 / 18 + 3 * 1_152 + 1.25 * 4_608 == 19_008


def test_ops_without_a_rule_take_their_measured_cycles():
    assert floor.layer_floor(layer("ADD", "8x8x64", 0, 30_620)) == (30_620, "measured")
    assert floor.layer_floor(layer("DEPTHWISE_CONV_2D", "10x10x8 -> 10x10x8, k5x5 s1 same", 20_000,
                                   123_456)) == (123_456, "measured")
