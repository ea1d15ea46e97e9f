"""Tests of the Unicorn simulator (sim/unicorn): exact counts, cycles, I/O, faults."""
from __future__ import annotations

import re
import shutil
import struct
import subprocess

import numpy as np
import pluggy
import pytest

from tinybuild import hookspecs
from tinybuild.errors import TinybuildError

from sim.unicorn import native, simulator as S, timing

P = timing.MODELS["cortex-m4"].taken_penalty     # 2: pipeline refill of a taken branch


# -- plugin ---------------------------------------------------------------------------


def test_plugin_registers_the_simulator(target):
    from sim.unicorn import plugin

    pm = pluggy.PluginManager("tinybuild")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin)
    sims = [s for group in pm.hook.tinybuild_simulators() for s in group]
    assert [s.name for s in sims] == ["unicorn"]
    sim = sims[0]
    assert sim.supports(target)
    ok, status = sim.available()
    assert ok, status
    assert "unicorn 2." in status


def test_supports_m_profile_and_rv32(target):
    from dataclasses import replace

    sim = S.UnicornSimulator()
    assert sim.supports(replace(target, arch="riscv32", cpu="e31"))
    assert not sim.supports(replace(target, cpu="cortex-a53"))
    assert not sim.supports(replace(target, arch="xtensa", cpu="esp32"))


def test_native_hook_builds_into_the_cache(tmp_path, monkeypatch):
    if native.compiler() is None:
        pytest.skip("no host C compiler")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lib = native.build()
    assert lib.parent == tmp_path / "tinybuild" and lib.exists()
    assert native.build() == lib                       # cached: same hash, no rebuild


# -- the Thumb-2 decoder and cost table ----------------------------------------------

# (instruction, base cycles) per the cortex-m4 model (see sim/unicorn/timing.py)
THUMB_COSTS = [
    ("adds r0, r0, #1", 1), ("add.w r0, r1, r2, lsl #2", 1), ("mov.w r0, #-1", 1),
    ("movw r0, #0x1234", 1), ("bfi r0, r1, #4, #8", 1), ("clz r0, r1", 1),
    ("ssat r0, #8, r1", 1), ("sxtb r0, r1", 1), ("uxtb.w r0, r1, ror #8", 1),
    ("qadd8 r0, r1, r2", 1), ("muls r0, r1, r0", 1), ("mul r0, r1, r2", 1),
    ("mla r0, r1, r2, r3", 1), ("smlad r0, r1, r2, r3", 1), ("smlabb r0, r1, r2, r3", 1),
    ("smmla r0, r1, r2, r3", 1), ("smull r0, r1, r2, r3", 1), ("umlal r0, r1, r2, r3", 1),
    ("sdiv r0, r1, r2", 12), ("udiv r0, r1, r2", 12),
    ("ldr r0, [r1]", 2), ("ldr.w r0, [r1, #256]", 2), ("ldrb r0, [r1, r2]", 2),
    ("ldrsh.w r0, [r1, #2]", 2), ("ldr r0, [sp, #8]", 2), ("ldrb.w r0, [r1], #1", 2),
    ("str r0, [r1]", 1), ("strb.w r0, [r1, #1000]", 1), ("str r0, [sp, #4]", 1),
    ("ldrd r0, r1, [r2]", 3), ("strd r0, r1, [r2, #8]", 3),
    ("ldrex r0, [r1]", 2), ("strex r0, r1, [r2]", 2), ("pld [r0]", 1),
    ("push {r4-r7, lr}", 6), ("pop {r4-r7, pc}", 6), ("ldmia r0!, {r1-r3}", 4),
    ("stmia.w r0, {r1-r5}", 6), ("push.w {r4-r11, lr}", 10),
    ("bx lr", 1), ("b.w 9f", 1), ("bl 9f", 1), ("beq.w 9f", 1), ("tbb [pc, r0]", 2),
    ("ldr pc, [sp], #4", 2),
    ("vadd.f32 s0, s1, s2", 1), ("vmul.f32 s0, s1, s2", 1), ("vnmul.f32 s0, s1, s2", 1),
    ("vmla.f32 s0, s1, s2", 3), ("vfma.f32 s0, s1, s2", 3), ("vdiv.f32 s0, s1, s2", 14),
    ("vsqrt.f32 s0, s1", 14), ("vabs.f32 s0, s1", 1), ("vcvt.f32.s32 s0, s0", 1),
    ("vcmp.f32 s0, s1", 1), ("vmrs APSR_nzcv, fpscr", 1), ("vmov s0, r0", 1),
    ("vmov r0, r1, d0", 2), ("vldr s0, [r0]", 2), ("vstr s0, [r0, #4]", 2),
    ("vpush {s16-s19}", 5), ("vpop {s16-s19}", 5), ("vldmia r0!, {s0-s7}", 9),
    ("isb", 1 + P), ("dsb", 1), ("nop", 1), ("cbz r0, 9f", 1), ("b 9f", 1), ("bne 9f", 1),
]


def test_thumb_decoder_sizes_and_costs(tmp_path):
    gas = shutil.which("arm-none-eabi-as")
    if gas is None:
        pytest.skip("arm-none-eabi-as not installed")
    from elftools.elf.elffile import ELFFile

    src = tmp_path / "insns.S"
    src.write_text(".syntax unified\n.cpu cortex-m4\n.fpu fpv4-sp-d16\n.thumb\n"
                   + "".join(f"    {ins}\n" for ins, _ in THUMB_COSTS) + "9:  nop\n")
    obj = tmp_path / "insns.o"
    subprocess.run([gas, "-o", str(obj), str(src)], check=True)
    with open(obj, "rb") as f:
        text = ELFFile(f).get_section_by_name(".text").data()
    hws = struct.unpack(f"<{len(text) // 2}H", text)
    i = 0
    for ins, cost in THUMB_COSTS:
        h1 = hws[i]
        size = 4 if timing.thumb_is32(h1) else 2
        got = timing.thumb_decode(h1, hws[i + 1] if size == 4 else 0)
        assert got[0] == size
        assert got[1] == cost, f"{ins}: {got[1]} cycles, expected {cost}"
        i += size // 2
    assert i == len(hws) - 1                            # only the final nop is left


# -- hand-computed counts (tests/sim/firmware/asm_model.S) ----------------------------

# Each layer = its snippet + `mov r0, #id` + `bl tb_mark` + tb_mark's `bx lr`;
# cycles = snippet cycles + 3 + 2P (the return from the previous tb_mark and the
# call to the next are both taken branches).
def _layer(snippet_insns: int, snippet_cycles: int) -> tuple[int, int]:
    return snippet_insns + 3, snippet_cycles + 3 + 2 * P


ASM_LAYERS = [
    # 0: movs + 100 x (4 ALU + subs + bne); bne taken 99 times
    _layer(1 + 100 * 6, 1 + 100 * 6 + 99 * P),
    # 1: loads: 2 + 2 (address from previous load) + 1 + 1 (pipelined) + 2 + str 1 + 2 (after a store)
    _layer(7, 2 + 2 + 1 + 1 + 2 + 1 + 2),
    # 2: movs, cmp, itte, 2 skipped adds (still counted), 1 executed add
    _layer(6, 6),
    # 3: one taken b over two nops
    _layer(1, 1 + P),
    # 4: movs; mul 1, sdiv 12, umull 1, push 4, pop 4, vadd 1, vmla 3, vdiv 14, vmov 1
    _layer(10, 1 + 1 + 12 + 1 + 4 + 4 + 1 + 3 + 14 + 1),
]


def test_asm_layers_match_hand_counts(simulator, target, asm_elf):
    inp = bytes(range(16))
    r = simulator.run(asm_elf, target, inp)
    assert r.simulator == "unicorn" and r.exit_code == 0
    assert [(lp.index, lp.instructions, lp.cycles) for lp in r.layers] == [
        (i, n, c) for i, (n, c) in enumerate(ASM_LAYERS)]
    assert r.instructions == sum(n for n, _ in ASM_LAYERS)
    assert r.cycles == sum(c for _, c in ASM_LAYERS)
    # output[i] = input[i] + 1, after layer 1 copied input[0..3] over input[4..7]
    src = bytearray(inp)
    src[4:8] = src[0:4]
    assert r.output == bytes((b + 1) & 0xFF for b in src)
    # frames: Reset_Handler push {r3,lr} 8, main push {r3,lr} 8,
    # tb_model_invoke push {r4,lr} 8, layer 4's push {r4,r5,r6} 12
    assert r.peak_stack_bytes == 36


class _ReferenceRun(S._Run):
    """Adds a Python per-instruction UC_HOOK_CODE to count instructions independently."""

    def hooks(self):
        import unicorn as U
        super().hooks()
        self.seen = 0
        self.addresses = set()

        def cb(uc, address, size, user):
            self.seen += 1
            self.addresses.add(address)

        self.uc.hook_add(U.UC_HOOK_CODE, cb)


def test_block_counts_equal_per_instruction_hook(target, model_elf, asm_elf):
    # The C model has no IT blocks: the native per-block count equals an
    # independent per-instruction count exactly (so Unicorn's block sizes are right).
    ref = _ReferenceRun(model_elf, target, bytes(range(64)), 10**9, 60.0)
    r = ref.execute()
    assert r.total_instructions == ref.seen
    # asm_model has an ITTE with two skipped instructions: Unicorn's code hook
    # does not fire for them, the per-block count (like the core) includes them.
    ref = _ReferenceRun(asm_elf, target, bytes(16), 10**9, 60.0)
    r = ref.execute()
    assert r.total_instructions == ref.seen + 2
    it_addr = next(a for a in sorted(ref.addresses) if a > ref.mark_addr and
                   struct.unpack("<H", bytes(ref.uc.mem_read(a, 2)))[0] == 0xBF06)  # itte eq
    assert it_addr + 2 not in ref.addresses and it_addr + 4 not in ref.addresses
    assert it_addr + 6 in ref.addresses


# -- the C test model (tests/sim/firmware/test_model.c) -------------------------------


def _expected_output(inp: bytes) -> bytes:
    x = np.frombuffer(inp, dtype=np.int8).astype(np.int64)
    out = ((x[:16] * 3 + np.arange(16)) & 0xFF).astype(np.uint8)
    out[14] = int(1.5 * float(x[0]) * 4.0) & 0xFF
    out[15] = int(x.sum()) & 0xFF
    return out.tobytes()


def test_output_read_back(simulator, target, model_elf):
    rng = np.random.default_rng(7)
    inp = rng.integers(-20, 20, 64, dtype=np.int8).tobytes()
    r = simulator.run(model_elf, target, inp)
    assert r.output == _expected_output(inp)
    assert [lp.index for lp in r.layers] == [0, 1, 2, 3]
    assert r.instructions == sum(lp.instructions for lp in r.layers)
    assert r.cycles == sum(lp.cycles for lp in r.layers)
    assert 0 < r.instructions < r.total_instructions
    assert r.instructions <= r.cycles
    assert r.total_instructions <= r.total_cycles


def test_peak_stack_covers_known_frame(simulator, target, model_elf):
    r = simulator.run(model_elf, target, bytes(64))
    # layer_deep_frame has a 512-byte local array, called under Reset_Handler,
    # main and tb_model_invoke (8 bytes each at -O2)
    assert 512 + 3 * 8 <= r.peak_stack_bytes <= 512 + 64
    # RAM touched: the stack, the input tensor, the output tensor, .data/.bss
    assert r.ram_touched_bytes >= r.peak_stack_bytes + 64 + 16
    assert r.ram_touched_bytes < 4096


def test_deterministic(simulator, target, model_elf):
    inp = bytes(range(64))
    a = simulator.run(model_elf, target, inp)
    b = simulator.run(model_elf, target, inp)
    a.wall_seconds = b.wall_seconds = 0.0
    assert a == b


def test_input_size_is_checked(simulator, target, model_elf):
    with pytest.raises(TinybuildError, match="input is 10 bytes but the model's input tensor is 64 bytes"):
        simulator.run(model_elf, target, bytes(10))


def test_unmapped_read_is_reported(simulator, target, build_arm):
    elf = build_arm("fault", ["test_model.c"], ("TB_TEST_FAULT",))
    with pytest.raises(TinybuildError) as e:
        simulator.run(elf, target, bytes(64))
    msg = str(e.value)
    assert "read of unmapped memory at 0x30000000" in msg
    assert "PC=0x08" in msg and "layer_deep_frame" in msg and "layer 1" in msg


def test_stack_overflow_is_named(simulator, target, build_arm):
    # The STM32F407's 4 KiB stack sits at the bottom of SRAM (0x20000000):
    # a 16 KiB local array runs off its end into unmapped memory.
    elf = build_arm("overflow", ["test_model.c"], ("TB_TEST_STACK_OVERFLOW",))
    with pytest.raises(TinybuildError) as e:
        simulator.run(elf, target, bytes(64))
    msg = str(e.value)
    assert msg.startswith("firmware fault: stack overflow (SP=0x1fff")
    assert "the stack is 4,096 bytes, 0x20000000..0x20001000" in msg
    assert "write to unmapped memory at 0x1fff" in msg
    assert "too_deep" in msg and re.search(r"\b(during|in) layer 1\b", msg)


def test_stack_overflow_on_mps2(simulator, mps2, build_mps2):
    # mps2-an386: the stack is the first thing in data RAM (0x20000000).
    elf = build_mps2("overflow", ["test_model.c"], ("TB_TEST_STACK_OVERFLOW",))
    with pytest.raises(TinybuildError, match=r"stack overflow .*0x20000000\.\.0x20001000.*too_deep.*layer 1"):
        simulator.run(elf, mps2, bytes(64))


def test_silent_stack_overflow_is_caught_at_exit(simulator, target, build_arm):
    # A board whose stack lies above other RAM does not fault: here SRAM is
    # grown downwards so the 16 KiB array lands in mapped memory below the stack.
    from dataclasses import replace
    from tinybuild.target import MemoryRegion

    roomy = replace(target, memory=(target.memory[0], MemoryRegion("RAM", 0x1FFF0000, 0x30000, "ram"),
                                    target.memory[2]))
    elf = build_arm("overflow", ["test_model.c"], ("TB_TEST_STACK_OVERFLOW",))
    with pytest.raises(TinybuildError, match=r"stack overflow: the firmware wrote the lowest word of its "
                                             r"4,096-byte stack \(0x20000000\.\.0x20001000\)"):
        simulator.run(elf, roomy, bytes(64))


def test_unmapped_read_far_from_the_stack_is_not_an_overflow(simulator, target, build_arm):
    elf = build_arm("fault", ["test_model.c"], ("TB_TEST_FAULT",))
    with pytest.raises(TinybuildError) as e:
        simulator.run(elf, target, bytes(64))
    assert "stack overflow" not in str(e.value)


def test_infinite_loop_hits_instruction_limit(simulator, target, build_arm):
    elf = build_arm("hang", ["test_model.c"], ("TB_TEST_HANG",))
    with pytest.raises(TinybuildError, match=r"runaway.*max_instructions=1,000,000.*layer_deep_frame.*layer 1"):
        simulator.run(elf, target, bytes(64), max_instructions=1_000_000)


def test_infinite_loop_hits_host_timeout(simulator, target, build_arm):
    elf = build_arm("hang", ["test_model.c"], ("TB_TEST_HANG",))
    with pytest.raises(TinybuildError, match=r"runaway.*host time limit of 0.3 s"):
        simulator.run(elf, target, bytes(64), max_instructions=10**15, timeout_s=0.3)


def test_fpu_works_without_cpacr_write(target, model_elf):
    """Documents Unicorn 2.1.4: its Cortex-M4 FPU is usable from reset (CPACR is
    not enforced). The SCS page is mapped only so the startup's CPACR write lands."""

    class NoCpacr(S._Run):
        def setup(self):
            super().setup()
            code = bytes(self.uc.mem_read(0x08000000, 0x400))
            i = code.find(struct.pack("<HH", 0xF8C2, 0x3D88))   # str.w r3, [r2, #0xd88]
            if i < 0:
                pytest.skip("CPACR store not found in this build")
            self.uc.mem_write(0x08000000 + i, struct.pack("<HH", 0xF3AF, 0x8000))  # nop.w

    inp = bytes([5] + [1] * 63)
    r = NoCpacr(model_elf, target, inp, 10**9, 60.0).execute()
    assert r.output == _expected_output(inp)


def test_rejects_non_tinybuild_elf(simulator, target, tmp_path):
    bad = tmp_path / "x.elf"
    bad.write_bytes(b"not an elf")
    with pytest.raises(TinybuildError, match="not an ELF"):
        simulator.run(bad, target, b"")


def test_layer_profile_off_changes_no_count(target, model_elf):
    """UnicornSimulator(layer_profile=False) (what bench/run.py times against
    profiling on) drops only the per-layer figures. Its speed is recorded by
    bench/run.py, never asserted: host speed is not a test."""
    inp = bytes(range(64))
    on = S.UnicornSimulator().run(model_elf, target, inp)
    off = S.UnicornSimulator(layer_profile=False).run(model_elf, target, inp)
    assert len(on.layers) == 4 and off.layers == []
    assert (off.output, off.total_instructions, off.total_cycles) == \
        (on.output, on.total_instructions, on.total_cycles)


# -- RV32IMC -----------------------------------------------------------------------------


def test_rv32_model_runs_with_exact_counts(rv32_build):
    elf, target = rv32_build
    inp = bytes([3] + list(range(1, 64)))
    ref = _ReferenceRun(elf, target, inp, 10**9, 60.0)
    r = ref.execute()
    assert r.output == _expected_output(inp)
    assert r.total_instructions == ref.seen          # RVC has no skipped instructions
    assert [lp.index for lp in r.layers] == [0, 1, 2, 3]
    assert r.instructions <= r.cycles
    assert 512 <= r.peak_stack_bytes <= 512 + 128


def test_rv32_decoder_costs():
    # lw a0,0(a1); add a2,a0,a0  -> load-use stall: 1 + 1 and 1
    lw, add = 0x0005A503, 0x00A50633
    t = timing.build_tables(struct.pack("<II", lw, add), 0, "riscv32", timing.MODELS["rv32-e31"], [0], [])
    assert t.cum_n[-1] == 2 and t.cum_c[-1] == 3
    # div a0,a1,a2 -> 33; c.nop -> 1
    div, cnop = 0x02C5C533, 0x0001
    t = timing.build_tables(struct.pack("<IH", div, cnop), 0, "riscv32", timing.MODELS["rv32-e31"], [0], [])
    assert list(t.cum_n) == [0, 1, 1, 2] and t.cum_c[-1] == 34


def test_a_misaligned_load_on_a_core_that_traps_is_a_fault(simulator, rv32_misaligned_build):
    """The E31 traps on misaligned loads: the run stops there with an error
    (with detail=False nothing watches the accesses, and it runs through)."""
    elf, target = rv32_misaligned_build
    with pytest.raises(TinybuildError, match=r"misaligned 4-byte access at 0x800000[0-9a-f]{2}.*rv32-e31"):
        simulator.run(elf, target, bytes(range(64)))
    fast = simulator.run(elf, target, bytes(range(64)), detail=False)
    assert fast.misaligned_accesses == -1


def test_an_aligned_rv32_run_counts_no_misaligned_access(simulator, rv32_build):
    elf, target = rv32_build
    assert simulator.run(elf, target, bytes(range(64))).misaligned_accesses == 0


def test_regions_sharing_a_page_are_mapped_once():
    from sim.unicorn.simulator import _page_spans
    from tinybuild.target import MemoryRegion as R
    spans = _page_spans([R("RAM2", 0x2000_0800, 0x800, "ram"), R("RAM1", 0x2000_0000, 0x800, "ram"),
                         R("FLASH", 0x0800_0000, 0x1_0000, "flash")])
    assert spans == [(0x0800_0000, 0x0801_0000), (0x2000_0000, 0x2000_1000)]


def _fake_runs(monkeypatch, *, detail_fails: bool, plain_fails: bool, traps: bool,
               detail_output: bytes = b"\x01"):
    import types

    import sim.unicorn.simulator as S
    from tinybuild.errors import TinybuildError
    from tinybuild.target import RunResult

    class FakeRun:
        def __init__(self, elf, target, data, max_i, timeout, layer_profile=True, detail=True):
            self.detail = detail
            self.tables = types.SimpleNamespace(model=types.SimpleNamespace(traps_misaligned=traps))

        def execute(self):
            if (detail_fails if self.detail else plain_fails):
                raise TinybuildError("firmware fault: invalid instruction; PC=0x20000100")
            return RunResult("unicorn", detail_output if self.detail else b"\x01", 10, 12,
                             cycle_model="cortex-m4")

    monkeypatch.setattr(S, "_Run", FakeRun)
    return S.UnicornSimulator()


def test_a_fault_only_under_the_memory_watch_reruns_without_it_and_says_so(monkeypatch, capsys):
    sim = _fake_runs(monkeypatch, detail_fails=True, plain_fails=False, traps=False)
    result = sim.run("fw.elf", None, b"\x00")
    assert result.cycle_model.startswith("cortex-m4 | misaligned-access penalties not counted")
    assert "without the memory-access watch the same firmware runs" in capsys.readouterr().err


@pytest.mark.parametrize("plain_fails,traps", [(True, False), (False, True)])
def test_a_real_fault_or_a_trapping_core_is_not_retried_away(monkeypatch, plain_fails, traps):
    from tinybuild.errors import TinybuildError
    sim = _fake_runs(monkeypatch, detail_fails=True, plain_fails=plain_fails, traps=traps)
    with pytest.raises(TinybuildError, match="invalid instruction"):
        sim.run("fw.elf", None, b"\x00")


@pytest.mark.parametrize("traps", [False, True])
def test_other_bytes_under_the_memory_watch_report_the_plain_run(monkeypatch, capsys, traps):
    """Unicorn 2.1.4 can compute wrong bytes under a memory hook without faulting."""
    sim = _fake_runs(monkeypatch, detail_fails=False, plain_fails=False, traps=traps,
                     detail_output=b"\x02")
    result = sim.run("fw.elf", None, b"\x00")
    if traps:                       # the watch is how a trapping core's faults are seen: kept
        assert result.output == b"\x02" and result.cycle_model == "cortex-m4"
        return
    assert result.output == b"\x01"
    assert result.cycle_model == ("cortex-m4 | misaligned-access penalties not counted: Unicorn "
                                  "misexecutes this firmware under its memory watch")
    assert "computed other output bytes" in capsys.readouterr().err
    same = _fake_runs(monkeypatch, detail_fails=False, plain_fails=False, traps=False)
    assert same.run("fw.elf", None, b"\x00").cycle_model == "cortex-m4"
