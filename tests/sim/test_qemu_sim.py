"""The QEMU backend (sim/qemu) and the cross-check of the default simulator.

The same ELF, built for mps2-an386 (targets/mps2_an386: a board QEMU has) or
for the cortex-m4 target with its own startup and linker script (run by QEMU's
netduinoplus2, an STM32F405), runs in unicorn and in QEMU; their instruction
counts must agree exactly, per inference, per layer and for the whole run
(reset to tb_exit), and so must the peak stack (on netduinoplus2 measured by the
counting plugin from the lowest store into the stack: the cortex-m4 startup
does not paint it).

The one documented difference: the whole-run figure is counted up to the first
instruction of tb_exit in both (unicorn stops there; QEMU runs on through
tb_exit's semihosting, which the plugin does not add to the run's total), so
they agree too; the figures that could differ are cycles (QEMU has no timing
model: its cycles are its icount clock, one per instruction) and the RAM
touched (QEMU cannot scan memory after the run: 0 = not measured).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pluggy
import pytest

from tinybuild import hookspecs
from tinybuild.errors import TinybuildError

from sim.qemu import simulator as Q
from targets.cortex_m4.plugin import STM32F407

ROOT = Path(__file__).resolve().parents[2]
M4 = ROOT / "targets" / "cortex_m4"


def _arm_builder(out: Path, linker_script: Path, startup: Path):
    """tests/sim/conftest.py's builder, loaded by path (several test folders
    have a module named conftest)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("tb_sim_conftest", Path(__file__).with_name("conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._arm_builder(out, linker_script, startup)

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-arm") is None,
                                reason="qemu-system-arm not installed")


@pytest.fixture(scope="module")
def qemu():
    sim = Q.QemuSimulator()
    ok, status = sim.available()
    if not ok:
        pytest.skip(status)
    return sim


def test_plugin_registers_the_simulator(mps2, target):
    from sim.qemu import plugin

    pm = pluggy.PluginManager("tinybuild")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin)
    sims = [s for group in pm.hook.tinybuild_simulators() for s in group]
    assert [s.name for s in sims] == ["qemu"]
    assert sims[0].supports(mps2)
    assert not sims[0].supports(target)           # the test copy's name "stm32f407" is no QEMU board
    assert sims[0].supports(STM32F407)            # the cortex-m4 target: netduinoplus2
    ok, status = sims[0].available()
    assert ok, status
    assert "QEMU emulator version" in status and "mps2-an386" in status and "cortex-m4" in status


def test_counting_plugin_builds_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lib = Q.build_plugin()
    assert lib.parent == tmp_path / "tinybuild" and lib.exists()
    assert Q.build_plugin() == lib


def _both(qemu, mps2, elf, inp):
    from sim.unicorn.simulator import UnicornSimulator
    return UnicornSimulator().run(elf, mps2, inp), qemu.run(elf, mps2, inp, timeout_s=120)


def _assert_agree(u, q):
    assert q.output == u.output
    assert q.instructions == u.instructions
    assert q.total_instructions == u.total_instructions
    assert [(l.index, l.instructions) for l in q.layers] == [(l.index, l.instructions) for l in u.layers]
    assert q.peak_stack_bytes == u.peak_stack_bytes
    assert q.exit_code == u.exit_code == 0
    assert q.cycles == q.instructions and q.cycle_model.startswith("qemu icount")
    # unicorn's cycles: the core model, plus the board's flash model where it has one
    assert u.cycle_model.split(" + ")[0] == "cortex-m4"


def test_c_model_counts_agree_exactly(qemu, mps2, build_mps2):
    elf = build_mps2("test_model", ["test_model.c"])
    u, q = _both(qemu, mps2, elf, bytes(range(64)))
    _assert_agree(u, q)
    assert len(q.layers) == 4


def test_it_blocks_count_the_same(qemu, mps2, build_mps2):
    # asm_model.S layer 2 has an ITTE whose two `addeq` are skipped: both
    # simulators count them (QEMU's per-instruction inline add sits before the
    # condition check; unicorn counts whole blocks).
    elf = build_mps2("asm_model", ["asm_io.c", "asm_model.S"])
    u, q = _both(qemu, mps2, elf, bytes(range(16)))
    _assert_agree(u, q)
    assert q.layers[2].instructions == 9


def test_every_instruction_class_counts_the_same(qemu, mps2, build_mps2):
    elf = build_mps2("cycles", ["cycles_io.c", "cycles.S"])
    u, q = _both(qemu, mps2, elf, bytes(range(64)))
    _assert_agree(u, q)
    assert len(q.layers) == 12


def test_fault_names_pc_symbol_and_layer(qemu, mps2, build_mps2):
    elf = build_mps2("fault", ["test_model.c"], ("TB_TEST_FAULT",))
    with pytest.raises(TinybuildError) as e:
        qemu.run(elf, mps2, bytes(64), timeout_s=120)
    msg = str(e.value)
    assert "bus fault at 0x30000000" in msg
    assert "layer_deep_frame" in msg and "during layer 1" in msg and "sim=qemu" in msg


def test_stack_overflow_is_named(qemu, mps2, build_mps2):
    # QEMU maps the region below mps2's data SSRAM as an unimplemented device
    # (reads 0, ignores writes), so the overflow does not fault: the painted
    # stack's lowest word being written gives it away.
    elf = build_mps2("overflow", ["test_model.c"], ("TB_TEST_STACK_OVERFLOW",))
    with pytest.raises(TinybuildError, match=r"stack overflow: .*lowest word of its 4,096-byte stack "
                                             r"\(0x20000000\.\.0x20001000\).*sim=qemu"):
        qemu.run(elf, mps2, bytes(64), timeout_s=120)


def test_fault_status_in_words():
    assert Q.describe_cfsr(1 << 15 | 1 << 9, 0x30000000, 0) == "bus fault at 0x30000000"
    assert Q.describe_cfsr(1 << 10, 0, 0) == "imprecise bus fault"
    assert Q.describe_cfsr(1 << 7 | 1 << 1, 0, 0x1234) == "memory management fault at 0x00001234"
    assert Q.describe_cfsr(1 << 16, 0, 0) == "undefined instruction"
    assert Q.describe_cfsr(1 << 12, 0, 0) == "bus fault, while stacking (stack overflow?)"
    assert Q.describe_cfsr(0, 0, 0) == "hard fault (CFSR=0x00000000)"


def test_instruction_limit(qemu, mps2, build_mps2):
    elf = build_mps2("hang", ["test_model.c"], ("TB_TEST_HANG",))
    with pytest.raises(TinybuildError,
                       match=r"runaway.*max_instructions=1,000,000.*layer_deep_frame.*layer 1"):
        qemu.run(elf, mps2, bytes(64), max_instructions=1_000_000, timeout_s=120)


def test_host_time_limit(qemu, mps2, build_mps2):
    elf = build_mps2("hang", ["test_model.c"], ("TB_TEST_HANG",))
    with pytest.raises(TinybuildError, match=r"runaway.*host time limit of 0.5 s.*layer_deep_frame"):
        qemu.run(elf, mps2, bytes(64), max_instructions=10**15, timeout_s=0.5)


@pytest.fixture(scope="module")
def spinning_elf(tmp_path_factory) -> Path:
    """test_model.c with the nucleo-l4r5zi startup, whose tb_exit spins."""
    nucleo = ROOT / "targets" / "nucleo_l4r5zi"
    build = _arm_builder(tmp_path_factory.mktemp("spin"), nucleo / "stm32l4r5zi.ld",
                         nucleo / "startup_stm32l4r5.c")
    return build("test_model", ["test_model.c"])


def test_firmware_without_semihosting_is_refused(qemu, mps2, spinning_elf):
    # A tb_exit that spins: QEMU could neither stop nor report.
    with pytest.raises(TinybuildError, match="makes no semihosting call"):
        qemu.run(spinning_elf, mps2, bytes(64))


def test_unknown_board_is_refused(qemu, target, model_elf):
    with pytest.raises(TinybuildError, match="no QEMU machine for target stm32f407"):
        qemu.run(model_elf, target, bytes(64))


# -- the cortex-m4 target's own ELF on QEMU's netduinoplus2 (STM32F405) --------------


def _both_m4(qemu, elf, inp):
    from sim.unicorn.simulator import UnicornSimulator
    return UnicornSimulator().run(elf, STM32F407, inp), qemu.run(elf, STM32F407, inp, timeout_s=120)


@pytest.mark.parametrize("name, sources, inp, layers", [
    ("test_model", ["test_model.c"], bytes(range(64)), 4),
    ("asm_model", ["asm_io.c", "asm_model.S"], bytes(range(16)), 5),    # IT blocks
    ("cycles", ["cycles_io.c", "cycles.S"], bytes(range(64)), 12),      # every instruction class
])
def test_cortex_m4_counts_agree_exactly(qemu, build_arm, name, sources, inp, layers):
    """build_arm links with targets/cortex_m4's own startup and linker script."""
    assert Q.BOARDS["cortex-m4"].machine == "netduinoplus2"
    u, q = _both_m4(qemu, build_arm(name, sources), inp)
    _assert_agree(u, q)
    assert len(q.layers) == layers and q.peak_stack_bytes > 0


def test_cortex_m4_fault_names_pc_symbol_and_layer(qemu, build_arm):
    elf = build_arm("fault", ["test_model.c"], ("TB_TEST_FAULT",))
    with pytest.raises(TinybuildError) as e:
        qemu.run(elf, STM32F407, bytes(64), timeout_s=120)
    msg = str(e.value)
    assert "bus fault at 0x30000000" in msg and "\n" not in msg
    assert "layer_deep_frame" in msg and "during layer 1" in msg and "target cortex-m4, sim=qemu" in msg


def test_cortex_m4_stack_overflow_is_named(qemu, build_arm):
    # The stack is the bottom of SRAM: the 16 KiB array runs below 0x20000000,
    # where netduinoplus2 has nothing, so stacking the fault's frame faults too;
    # the fault handler moves SP back before it reports (else QEMU locks up).
    elf = build_arm("overflow", ["test_model.c"], ("TB_TEST_STACK_OVERFLOW",))
    with pytest.raises(TinybuildError) as e:
        qemu.run(elf, STM32F407, bytes(64), timeout_s=120)
    msg = str(e.value)
    assert msg.startswith("firmware fault: stack overflow (SP=0x1fff")
    assert "the stack is 4,096 bytes, 0x20000000..0x20001000" in msg
    assert "too_deep" in msg and "during layer 1" in msg and "\n" not in msg


def test_cortex_m4_elf_with_ccm_is_refused_in_one_line(qemu, tmp_path):
    """The layout before the stack moved (stack in CCM at 0x10000000), which
    QEMU's STM32F405 does not have: refused before QEMU starts."""
    script = (M4 / "stm32f407.ld").read_text()
    stack_at = script.index("  .stack (NOLOAD)")
    stack = script[stack_at:script.index("} > RAM", stack_at) + len("} > RAM")]
    ccm = tmp_path / "ccm.ld"
    ccm.write_text(script.replace(stack, stack.replace("} > RAM", "} > CCMRAM")))
    elf = _arm_builder(tmp_path, ccm, M4 / "startup_stm32f407.c")("ccm", ["test_model.c"])
    with pytest.raises(TinybuildError) as e:
        qemu.run(elf, STM32F407, bytes(64), timeout_s=120)
    msg = str(e.value)
    assert msg == ("sim=qemu: ccm.elf puts 4,096 B at 0x10000000 (CCMRAM), which QEMU's netduinoplus2 "
                   "does not have (it maps 0x08000000..0x08100000, 0x20000000..0x20030000); keep code "
                   "in flash and data and stack in SRAM, or use sim=unicorn")


def test_cortex_m4_uart_firmware_is_refused_in_one_line(qemu, build_arm, tmp_path):
    """io=uart firmware (it defines tb_board_init) would wait forever for the
    RCC's PLL, which QEMU's STM32F405 does not model."""
    board_init = tmp_path / "board_init.c"      # kept from --gc-sections by a KEEP'd section
    board_init.write_text("void tb_board_init(void) {}\n"
                          "__attribute__((used, section(\".isr_vector\"))) void (*const keep)(void) = "
                          "tb_board_init;\n")
    elf = build_arm("uart", ["test_model.c", str(board_init)])
    with pytest.raises(TinybuildError) as e:
        qemu.run(elf, STM32F407, bytes(64), timeout_s=120)
    assert str(e.value) == (
        "sim=qemu: an io=uart firmware does not run on QEMU's netduinoplus2: its RCC is not "
        "modelled (reads 0), so tb_board_init's clock setup would wait for the PLL forever; "
        "use sim=unicorn (its UART model) for io=uart on cortex-m4")


def test_stack_low_from_the_plugin(tmp_path):
    counts = tmp_path / "counts.txt"
    counts.write_text("insns 10\nstart 0\nexit 9\nlast_pc 134218000\nlimit_hit 0\n"
                      "stack_low 536874978\nfault_block -1\nmarks 2\n3\n7\n")
    data = Q.parse_counts(counts)
    assert data["stack_low"] == 0x20000FE2 and data["marks"] == [3, 7] and data["fault_block"] == -1


@pytest.mark.skipif(shutil.which("qemu-system-riscv32") is None, reason="qemu-system-riscv32 not installed")
def test_rv32_counts_agree_exactly(qemu, rv32_qemu_build, monkeypatch):
    """RV32IMC on QEMU's virt board (sim/qemu RISCV32_VIRT, registered here for
    the test board: flash at 0x20000000, RAM at 0x80000000 as on virt)."""
    from sim.unicorn.simulator import UnicornSimulator

    elf, target = rv32_qemu_build
    monkeypatch.setitem(Q.BOARDS, target.name, Q.RISCV32_VIRT)
    assert qemu.supports(target)
    inp = bytes([3] + list(range(1, 64)))
    u = UnicornSimulator().run(elf, target, inp)
    q = qemu.run(elf, target, inp, timeout_s=120)
    assert q.output == u.output
    assert q.instructions == u.instructions and q.total_instructions == u.total_instructions
    assert [l.instructions for l in q.layers] == [l.instructions for l in u.layers]
    assert q.peak_stack_bytes == u.peak_stack_bytes > 512


@pytest.mark.slow
def test_generated_model_counts_agree(qemu, mps2, tmp_path):
    """A real generated model (MLPerf Tiny KWS), built by SCons for mps2-an386:
    QEMU's counts on the build's validation inputs equal unicorn's run.json."""
    root = Path(__file__).resolve().parents[2]
    model = root.parent / "shared" / "models" / "mlperf_tiny" / "kws_ref_model.tflite"
    if not model.exists():
        pytest.skip(f"{model} not present")
    scons = Path(sys.executable).with_name("scons")
    proc = subprocess.run([str(scons), "-C", str(root), "-Q", f"build_dir={tmp_path}",
                           "target=mps2-an386", f"model={model}", "inputs=2"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "mps2-an386" / "kws_ref_model"
    runs = json.loads((out / "run.json").read_text())["runs"]
    ref = json.loads((tmp_path / "models" / "kws_ref_model" / "reference-n2-s1.json").read_text())
    blob = (tmp_path / "models" / "kws_ref_model" / "inputs-n2-s1.bin").read_bytes()
    size = ref["input_bytes"]
    for i, run in enumerate(runs):
        q = qemu.run(out / "firmware.elf", mps2, blob[i * size:(i + 1) * size], timeout_s=300)
        assert q.output.hex() == run["output"]
        assert q.instructions == run["instructions"]
        assert q.total_instructions == run["total_instructions"]
        assert [l.instructions for l in q.layers] == [l["instructions"] for l in run["layers"]]
        assert q.peak_stack_bytes == run["peak_stack_bytes"]
    # The same build with sim=qemu through SCons: the output still matches
    # TFLite, the counts are unicorn's.
    proc = subprocess.run([str(scons), "-C", str(root), "-Q", f"build_dir={tmp_path}",
                           "target=mps2-an386", f"model={model}", "inputs=2", "sim=qemu"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "[simulate] qemu" in proc.stderr
    assert "output matches TFLite reference: yes" in proc.stdout and "[qemu]" in proc.stdout
    assert "cycles (icount)" in proc.stdout
    qruns = json.loads((out / "run.json").read_text())["runs"]
    assert [r["instructions"] for r in qruns] == [r["instructions"] for r in runs]
    assert (out / "layers.svg").exists()


@pytest.mark.slow
def test_cortex_m4_kws_counts_agree(qemu, tmp_path):
    """kws.h5 built by SCons for the cortex-m4 target (unicorn, the default),
    then the same ELF on netduinoplus2: QEMU's counts on the build's validation
    inputs equal unicorn's run.json, per inference, per layer and whole run;
    then sim=qemu through SCons validates against TFLite."""
    scons = Path(sys.executable).with_name("scons")
    base = [str(scons), "-C", str(ROOT), "-Q", f"build_dir={tmp_path}", "target=cortex-m4",
            "model=kws.h5", "inputs=2"]
    proc = subprocess.run(base, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "cortex-m4" / "kws"
    runs = json.loads((out / "run.json").read_text())["runs"]
    blob = (tmp_path / "models" / "kws" / "inputs-n2-s1.bin").read_bytes()
    size = len(blob) // len(runs)
    for i, run in enumerate(runs):
        q = qemu.run(out / "firmware.elf", STM32F407, blob[i * size:(i + 1) * size], timeout_s=300)
        assert q.output.hex() == run["output"]
        assert q.instructions == run["instructions"]
        assert q.total_instructions == run["total_instructions"]
        assert [l.instructions for l in q.layers] == [l["instructions"] for l in run["layers"]]
        assert q.peak_stack_bytes == run["peak_stack_bytes"]
    proc = subprocess.run(base + ["sim=qemu"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "[simulate] qemu" in proc.stderr
    assert "output matches TFLite reference: yes" in proc.stdout and "[qemu]" in proc.stdout
    qruns = json.loads((out / "run.json").read_text())["runs"]
    assert [r["instructions"] for r in qruns] == [r["instructions"] for r in runs]
