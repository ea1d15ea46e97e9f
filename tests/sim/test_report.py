"""The report's per-layer profile: report.md's table and figures, and the
layers.svg bar chart that report.write puts beside it."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from tinybuild import pipeline, report
from tinybuild.target import LayerProfile, RunResult

from conftest import stm32f407

SVG = "{http://www.w3.org/2000/svg}"


def _parts(cycles=(3000, 1000, 0, 6000), simulator="unicorn", cycle_model="cortex-m4"):
    ops = ["CONV_2D", "DEPTHWISE_CONV_2D", "RESHAPE", "FULLY_CONNECTED"]
    macs = [9000, 1500, 0, 1200]
    layers = [{"index": i, "op": op, "shape": f"shape {i} <&>", "kernel": f"tb_{op.lower()}",
               "macs": m, "output": {"bytes": 16}} for i, (op, m) in enumerate(zip(ops, macs))]
    plan = {"model": "toy", "input": {"bytes": 64}, "output": {"bytes": 16}, "macs": sum(macs),
            "layers": layers, "memory": {"arena_size": 4096, "lower_bound": 3072}}
    result = RunResult(simulator=simulator, output=bytes(16), instructions=sum(cycles) // 2,
                       cycles=sum(cycles),
                       layers=[LayerProfile(i, c // 2, c) for i, c in enumerate(cycles)],
                       total_instructions=sum(cycles), total_cycles=2 * sum(cycles),
                       peak_stack_bytes=312, ram_touched_bytes=3500, arena_touched_bytes=3000,
                       wall_seconds=0.01, cycle_model=cycle_model)
    run = {"simulator": simulator, "runs": [pipeline.run_to_json(result)]}
    size = {"flash": {"used": 20000, "capacity": 1 << 20}, "ram": {"used": 8192, "capacity": 196608},
            "stack_reserved_bytes": 4096, "layers_flash": {"0": 100, "3": 50},
            "sections": [{"name": ".text", "address": 0x08000000, "size": 100, "flash": 100, "ram": 0}],
            "groups": {"weights": {"flash": 150, "ram": 0}}}
    return dict(target=stm32f407(), toolchain={"triple": "arm-none-eabi", "version": "12.2.1",
                                               "source": "PATH", "bin_dir": "/usr/bin"},
                model="models/toy.tflite", opt="O2", size=size, run=run,
                validation={"match": True, "inputs": 1, "reference": "BUILTIN_REF"}, plan=plan,
                conversion={})


def test_record_has_the_per_layer_profile():
    r = report.build_record(**_parts())
    assert [l["cycles"] for l in r["layers"]] == [3000, 1000, 0, 6000]
    assert [l["instructions"] for l in r["layers"]] == [1500, 500, 0, 3000]
    assert [l["macs_per_cycle"] for l in r["layers"]] == [3.0, 1.5, 0, 0.2]
    assert [l["cycles_share"] for l in r["layers"]] == [0.3, 0.1, 0.0, 0.6]
    assert r["arena"] == {"bytes": 4096, "lower_bound": 3072, "touched_bytes": 3000}
    assert r["stack"]["peak_bytes"] == 312 and r["ram_touched_bytes"] == 3500
    assert r["inference"]["cycle_model"] == "cortex-m4"
    assert r["inference"]["macs_per_cycle"] == round(11700 / 10000, 3)


def test_write_puts_the_chart_beside_report_md(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    r = report.write(out / "report.json", out / "report.md", **_parts())
    md = (out / "report.md").read_text()
    assert "![cycles per layer](layers.svg)" in md
    assert (out / "layers.svg").exists() and r["layers_svg"] == "layers.svg"
    assert json.loads((out / "report.json").read_text())["layers_svg"] == "layers.svg"
    assert "| 3 | FULLY_CONNECTED |" in md and "| 60.0% | 0.2 |" in md
    assert "| peak stack | 312 B of 4,096 reserved (7.6%) |" in md
    assert "3,500 B; of the planned arena's 4,096 B, 3,000 B (73.2%) were written" in md
    assert "estimated, cortex-m4 timing model" in md


def test_svg_is_well_formed_with_one_labelled_bar_per_layer(tmp_path):
    r = report.build_record(**_parts())
    svg = report.layers_svg(r)
    root = ET.fromstring(svg)                          # well formed (labels are escaped)
    assert root.tag == SVG + "svg"
    groups = root.findall(SVG + "g")
    assert len(groups) == 4
    widths, labels, values = [], [], []
    for g in groups:
        widths.append(float(g.find(SVG + "rect").get("width")))
        texts = [t.text for t in g.findall(SVG + "text")]
        labels.append(texts[0])
        values.append(texts[1])
        assert "shape" in g.find(SVG + "title").text    # the tooltip names the layer's shape
    assert labels == ["#0 CONV_2D", "#1 DEPTHWISE_CONV_2D", "#2 RESHAPE", "#3 FULLY_CONNECTED"]
    assert values[3] == "6,000 (60.0%), 0.2 MAC/cyc"
    assert values[2] == "0 (0.0%)"                      # no MACs: no MACs per cycle
    # bars are proportional to cycles
    assert widths[2] == 0
    assert abs(widths[0] / widths[3] - 0.5) < 1e-3 and abs(widths[1] / widths[3] - 1 / 6) < 1e-3
    # the three slowest layers are red, the rest blue
    colors = [g.find(SVG + "rect").get("fill") for g in groups]
    assert colors == ["#d9534f", "#d9534f", "#4a7ebb", "#d9534f"]
    # the axis ticks reach past the longest bar, and everything fits in the picture
    width = float(root.get("width"))
    assert all(float(g.find(SVG + "rect").get("x")) + w < width for g, w in zip(groups, widths))
    assert "title" in [c.tag.replace(SVG, "") for c in root]


def test_qemu_cycles_are_not_called_estimates():
    r = report.build_record(**_parts(simulator="qemu",
                                     cycle_model="qemu icount (shift=0: 1 cycle per instruction)"))
    assert "QEMU icount, 1 per instruction: no timing model" in report.markdown(r)
    assert "cycles (icount)" in report.summary(r)
    assert "(est.)" not in report.summary(r)


CM4 = "tinybuild_builtin_targets_cortex_m4.plugin (/repo/targets/cortex_m4/plugin.py)"


def _with_kernels(parts):
    """Layers 0 and 1 from the cortex-m4 plugin, 2 and 3 the reference kernels."""
    kernels = [("cm4_conv_s8", "cm4_conv_s8", CM4), ("cm4_dw_s8", "cm4_dw_s8", CM4),
               ("tb_copy", "tb_copy (reference)", None),
               ("tb_fully_connected_s8", "tb_fully_connected_s8 (reference)", None)]
    for layer, (function, label, plugin) in zip(parts["plan"]["layers"], kernels):
        layer.update(kernel=function, kernel_label=label, **({"plugin": plugin} if plugin else {}))
    return parts


def test_report_and_summary_say_which_kernel_and_plugin_ran_each_layer():
    r = report.build_record(**_with_kernels(_parts()))
    assert [l["plugin"] for l in r["layers"]] == [CM4, CM4, "", ""]
    md = report.markdown(r)
    assert "| # | op | shape | kernel | plugin | MACs |" in md
    assert "| 0 | CONV_2D | shape 0 <&> | cm4_conv_s8 | cortex_m4 | 9,000 |" in md
    assert "| 3 | FULLY_CONNECTED | shape 3 <&> | tb_fully_connected_s8 (reference) | reference |" in md
    assert "  kernels     4 layers: 2 cortex_m4 (cm4_conv_s8, cm4_dw_s8), 2 reference" in report.summary(r)


def test_kernels_line_counts_repeated_kernels_and_unrecorded_plugins():
    layers = [{"kernel": "k_conv"}, {"kernel": "k_conv"}, {"kernel": "k_fc"},
              {"kernel": "tb_softmax_s8"}]
    assert report.kernels_line(layers) == "4 layers: 3 plugin kernels (k_conv x2, k_fc), 1 reference"


def test_debug_layers_table_escapes_names_from_the_model():
    parts = _parts()
    parts["validation"]["layer_comparison"] = {
        "file": "/b/layers.json", "input": 0, "first_differing_layer": 1,
        "layers": [{"index": 0, "op": "CONV_2D", "name": "conv|1\nforged", "kernel": "tb_conv2d_s8",
                    "kernel_label": "tb_conv2d_s8 (reference)", "plugin": "", "bytes": 3200,
                    "match": True, "mismatched_bytes": 0, "first_mismatch": None, "max_abs_diff": 0,
                    "inputs_match": True, "reference_kernels_match": True},
                   {"index": 1, "op": "SOFTMAX", "name": "sm", "kernel": "bad", "kernel_label": "bad",
                    "plugin": "p", "bytes": 12, "match": False, "mismatched_bytes": 2,
                    "first_mismatch": 1, "max_abs_diff": 1, "inputs_match": True,
                    "reference_kernels_match": None}]}
    md = report.markdown(report.build_record(**parts))
    assert "Input 0: layer 1 is the first that differs." in md and "`layers.json`" in md
    assert "| 0 | CONV_2D | conv\\|1\\x0aforged | tb_conv2d_s8 (reference) | 3,200 | 0 | - | 0 | match | match |" in md
    assert "| 1 | SOFTMAX | sm | bad | 12 | 2 | 1 | 1 | match | - |" in md
    assert "layers against TFLite" not in report.markdown(report.build_record(**_parts())).lower()


def test_float_layers_say_how_the_board_computes_them():
    parts = _parts()
    parts["plan"]["layers"][3]["dtype"] = "float32"
    r = report.build_record(**parts)
    assert r["types"] == ["float32", "int8"] and r["layers"][3]["dtype"] == "float32"
    assert "arithmetic  float32 on the hardware FPU (fpv4-sp-d16), int8" in report.summary(r)
    r["target"]["float_arithmetic"] = "soft float (libgcc)"
    assert "float32 in soft float (libgcc): its cost is in the figures" in report.markdown(r)
    plain = report.build_record(**_parts())
    assert "arithmetic" not in report.summary(plain) and "| arithmetic | int8 |" in report.markdown(plain)


def test_float_output_within_tolerance_passes_and_says_so(tmp_path):
    import numpy as np
    want = np.array([0.25, 1.5, -3.0], np.float32)
    close = want.copy()
    close[1] = np.nextafter(close[1], np.float32(2))            # one ULP off
    far = want + np.float32(0.01)
    parts = [{"name": "y", "bytes": 12, "dtype": "float32"}]
    ok = pipeline.output_result(0, close.tobytes(), want.tobytes(), parts)
    assert ok["match"] and ok["exact"] is False and ok["max_abs_diff"] > 0
    assert not pipeline.output_result(0, far.tobytes(), want.tobytes(), parts)["match"]
    exact = pipeline.output_result(0, want.tobytes(), want.tobytes(), parts)
    assert exact["match"] and "exact" not in exact
    int8 = [{"name": "q", "bytes": 3, "dtype": "int8"}]
    assert not pipeline.output_result(0, b"\x01\x02\x03", b"\x01\x02\x04", int8)["match"]
    v = {"match": True, "inputs": 4, **pipeline._tolerance_summary([ok])}
    assert "float32 within tolerance 0.0001" in report.validation_line(v)
    assert report.validation_line({"match": True, "inputs": 4}).endswith("yes, byte for byte (4 inputs)")
