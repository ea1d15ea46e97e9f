"""The static access watch on RV32 (sim/unicorn/timing.py ``rv_access``,
native_hook.c; docs/simulators.md "Speed with memory hooks"): the decoder on
hand-assembled instructions, and the watch against its oracle, Unicorn's
memory hook on every data access (``access_watch="hook"``): the same
firmware, the same counts per layer - instructions, cycles, misaligned
accesses, flash cache misses - on hand-written assembly with every RV32IMC
(+FD) load/store form (firmware/rv_access_watch.S) and on kws.h5 built for
riscv and esp32c3 (slow)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from sim.unicorn import timing
from sim.unicorn.simulator import _Run
from tinybuild.errors import TinybuildError

from conftest import FIRMWARE, RUNTIME, _rv32_target

ROOT = Path(__file__).resolve().parents[2]
INPUT = bytes(range(64))
PC = 0x2000_0100
# x registers by ABI name, for readable expectations
SP, T0, T1, T2, T3, S0, A0, A2, A3, A4, A5 = 2, 5, 6, 7, 28, 8, 10, 12, 13, 14, 15


# -- the decoder ------------------------------------------------------------------


def decoded(ins: int) -> timing.Access:
    return timing.rv_access(ins, 4 if ins & 3 == 3 else 2, PC)


def regs(mask: int) -> set[int]:
    return {r for r in range(32) if mask >> r & 1}


@pytest.mark.parametrize("ins,rn,imm,size,write,loads", [
    (0x0012A303, T0, 1, 4, False, T1),          # lw t1, 1(t0)
    (0x00329303, T0, 3, 2, False, T1),          # lh t1, 3(t0)
    (0x0052D303, T0, 5, 2, False, T1),          # lhu t1, 5(t0)
    (0x00328303, T0, 3, 1, False, T1),          # lb t1, 3(t0)
    (0x0072C303, T0, 7, 1, False, T1),          # lbu t1, 7(t0)
    (0x0062A2A3, T0, 5, 4, True, None),         # sw t1, 5(t0)
    (0x006293A3, T0, 7, 2, True, None),         # sh t1, 7(t0)
    (0x006284A3, T0, 9, 1, True, None),         # sb t1, 9(t0)
    (0xFE612E23, SP, -4, 4, True, None),        # sw t1, -4(sp)
    (0x8147A703, A5, -2028, 4, False, A4),      # lw a4, -2028(a5)
    (0x00432003, T1, 4, 4, False, None),        # lw zero, 4(t1): an access, nothing written
    (0x00802303, -1, 8, 4, False, T1),          # lw t1, 8(zero): an absolute address
    (0x0017A007, A5, 1, 4, False, None),        # flw ft0, 1(a5)
    (0x0007A2A7, A5, 5, 4, True, None),         # fsw ft0, 5(a5)
    (0x0047B507, A5, 4, 8, False, None),        # fld fa0, 4(a5)
    (0x00A7B827, A5, 16, 8, True, None),        # fsd fa0, 16(a5)
    (0x5FF8, A5, 124, 4, False, A4),            # c.lw a4, 124(a5)
    (0x4298, A3, 0, 4, False, A4),              # c.lw a4, 0(a3)
    (0xDFF8, A5, 124, 4, True, None),           # c.sw a4, 124(a5)
    (0x577E, SP, 252, 4, False, A4),            # c.lwsp a4, 252(sp)
    (0xDFBA, SP, 252, 4, True, None),           # c.swsp a4, 252(sp)
    (0x63CC, A5, 4, 4, False, None),            # c.flw fa1, 4(a5)
    (0xE78C, A5, 8, 4, True, None),             # c.fsw fa1, 8(a5)
    (0x2B90, A5, 16, 8, False, None),           # c.fld fa2, 16(a5)
    (0xAB88, A5, 16, 8, True, None),            # c.fsd fa0, 16(a5)
    (0x6592, SP, 4, 4, False, None),            # c.flwsp fa1, 4(sp)
    (0xE22E, SP, 4, 4, True, None),             # c.fswsp fa1, 4(sp)
    (0x2622, SP, 8, 8, False, None),            # c.fldsp fa2, 8(sp)
    (0xA432, SP, 8, 8, True, None),             # c.fsdsp fa2, 8(sp)
])
def test_decoder_reads_each_load_and_store(ins, rn, imm, size, write, loads):
    a = decoded(ins)
    assert a.flags & timing.ACC_ACCESS and not a.flags & timing.ACC_UNMODELLED
    assert (a.rn, a.imm, a.size, a.count, a.rm, bool(a.flags & timing.ACC_WRITE)) == (
        rn, imm, size, 1, -1, write)
    assert regs(a.clobber) == ({loads} if loads else set()) and a.rd == -1


@pytest.mark.parametrize("ins,rd,rs,k", [
    (0xFDE40413, S0, S0, -34),                  # addi s0, s0, -34
    (0x00530013, -1, -1, 0),                    # addi zero, t1, 5: no effect
    (0x01400913, 18, -1, 20),                   # li s2, 20 (addi s2, zero, 20)
    (0x00028313, T1, T0, 0),                    # mv t1, t0
    (0x80000F37, 30, -1, -0x80000000),          # lui t5, 0x80000
    (0x60000417, S0, -1, PC + 0x60000000),      # auipc s0, 0x60000
    (0x06A1, A3, A3, 8),                        # c.addi a3, 8
    (0x17FD, A5, A5, -1),                       # c.addi a5, -1
    (0x713D, SP, SP, -32),                      # c.addi16sp sp, -32
    (0x617D, SP, SP, 496),                      # c.addi16sp sp, 496
    (0x1FFC, A5, SP, 1020),                     # c.addi4spn a5, sp, 1020
    (0x5781, A5, -1, -32),                      # c.li a5, -32
    (0x7781, A5, -1, -0x20000),                 # c.lui a5, 0xfffe0
    (0x86B2, A3, A2, 0),                        # c.mv a3, a2
])
def test_decoder_follows_constants_and_immediate_updates(ins, rd, rs, k):
    a = decoded(ins)
    assert (a.rd, a.rs, a.k, a.clobber, a.flags) == (rd, rs, k, 0, 0)


@pytest.mark.parametrize("ins,rd,rs,rs2,scale", [
    (0x00728E33, T3, T0, T2, 1),                # add t3, t0, t2
    (0x407E0E33, T3, T3, T2, -1),               # sub t3, t3, t2
    (0x40700333, T1, -1, T2, -1),               # sub t1, zero, t2 (neg)
    (0x00239E93, 29, -1, T2, 4),                # slli t4, t2, 2
    (0x97B6, A5, A5, A3, 1),                    # c.add a5, a3
    (0x8F95, A5, A5, A3, -1),                   # c.sub a5, a3
    (0x078A, A5, -1, A5, 4),                    # c.slli a5, 2
])
def test_decoder_follows_register_sums(ins, rd, rs, rs2, scale):
    a = decoded(ins)
    assert a.flags == timing.ACC_ADDREG
    assert (a.rd, a.rs, a.rs2, a.k, a.clobber) == (rd, rs, rs2, scale, 0)


def test_an_add_of_x0_is_a_move():
    a = decoded(0x00700333)                     # add t1, zero, t2
    assert (a.rd, a.rs, a.k, a.flags) == (T1, T2, 0, 0)


@pytest.mark.parametrize("ins,clobbered", [
    (0x032903B3, {T2}),                         # mul t2, s2, s2
    (0x03C3B333, {T1}),                         # mulhu t1, t2, t3
    (0x007E4E33, {T3}),                         # xor t3, t3, t2
    (0x4033D313, {T1}),                         # srai t1, t2, 3
    (0xE0050553, {A0}),                         # fmv.x.w a0, fa0
    (0x00C5F553, set()),                        # fadd.s fa0, fa1, fa2: no integer register
    (0x8389, {A5}),                             # c.srli a5, 2
    (0x8FF9, {A5}),                             # c.and a5, a4
])
def test_decoder_forgets_registers_it_cannot_follow(ins, clobbered):
    a = decoded(ins)
    assert regs(a.clobber) == clobbered and a.rd == -1 and not a.flags


@pytest.mark.parametrize("ins,link", [
    (0xF8091AE3, None),                         # bne s2, zero, ...
    (0xC381, None),                             # c.beqz a5, .
    (0xA001, None),                             # c.j .
    (0x8082, None),                             # c.jr ra
    (0x9002, None),                             # c.ebreak
    (0x0000100F, None),                         # fence.i
    (0x00000073, None),                         # ecall
    (0x000000EF, PC + 4),                       # jal ra, .
    (0x000280E7, PC + 4),                       # jalr ra, 0(t0)
    (0x3FC9, PC + 2),                           # c.jal tb_mark
    (0x9282, PC + 2),                           # c.jalr t0
])
def test_decoder_marks_what_ends_a_block(ins, link):
    a = decoded(ins)
    assert a.flags & timing.ACC_ENDS_TB and not a.flags & timing.ACC_ACCESS
    assert (a.rd, a.rs, a.k) == ((1, -1, link) if link else (-1, -1, 0))


def test_a_csr_instruction_ends_the_block_and_forgets_its_result():
    a = decoded(0xB0002573)                     # csrr a0, mcycle
    assert a.flags == timing.ACC_ENDS_TB and regs(a.clobber) == {A0}


@pytest.mark.parametrize("ins", [0x0074232F, 0x1004232F])   # amoadd.w, lr.w
def test_atomics_are_unmodelled(ins):
    a = decoded(ins)
    assert a.flags & timing.ACC_UNMODELLED and a.flags & timing.ACC_ACCESS


# -- against the every-access hook ------------------------------------------------


@pytest.fixture(scope="module")
def build_rv(tmp_path_factory):
    """build_rv(name, march, defines) -> rv_access_watch.S linked for the RV32 test board."""
    gcc = shutil.which("riscv64-unknown-elf-gcc")
    if gcc is None:
        pytest.skip("riscv64-unknown-elf-gcc not installed")
    out = tmp_path_factory.mktemp("rv_watch")

    def build(name: str, march: str = "rv32imac", defines: tuple[str, ...] = ()) -> Path:
        elf = out / f"{name}.elf"
        if not elf.exists():
            cmd = [gcc, f"-march={march}", "-mabi=ilp32", "-O2", "-ffreestanding",
                   "-ffunction-sections", "-fdata-sections", "-nostartfiles", "-nostdlib",
                   "-Wl,--gc-sections", "-Wl,--undefined=tb_io_desc", "-T", str(FIRMWARE / "rv32.ld"),
                   f"-I{RUNTIME}", *(f"-D{d}" for d in defines), str(FIRMWARE / "rv32_start.c"),
                   str(RUNTIME / "tb_runtime.c"), str(FIRMWARE / "access_watch_io.c"),
                   str(FIRMWARE / "rv_access_watch.S"), "-o", str(elf), "-lgcc"]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
        return elf

    return build


def board(timing_model: str, memory_model: str = ""):
    return replace(_rv32_target(), timing_model=timing_model, memory_model=memory_model,
                   clock_hz=160_000_000)


def counts(r) -> tuple:
    """Everything the watch feeds, per layer and for the whole run."""
    return (r.total_instructions, r.total_cycles, r.instructions, r.cycles, r.memory_cycles,
            r.misaligned_accesses, r.output,
            [(l.instructions, l.cycles, l.memory_cycles) for l in r.layers])


def run(elf, target, watch: str, detail: bool = True):
    r = _Run(elf, target, INPUT, 10**9, 60.0, detail=detail, access_watch=watch)
    return r.execute(), r


@pytest.mark.parametrize("memory_model", ["esp32c3-flash-cache", ""])
@pytest.mark.parametrize("detail", [True, False])
@pytest.mark.parametrize("variant", [("plain", "rv32imac", ()),
                                     ("fp", "rv32imafdc", ("WITH_FP",))])
def test_static_watch_counts_what_the_every_access_hook_counts(build_rv, memory_model, detail,
                                                                variant):
    elf = build_rv(*variant)
    target = board("rv32-esp32c3", memory_model)     # counts misaligned accesses, no trap
    oracle, _ = run(elf, target, "hook", detail)
    static, r = run(elf, target, "static", detail)
    assert counts(static) == counts(oracle)
    assert r.access_watch == "static" and len(oracle.layers) == 4
    if detail or memory_model:                       # something was watched: by both mechanisms
        assert r.counters.static_ops > 0 and r.counters.hooked_ops > 0
    if detail:
        assert oracle.misaligned_accesses > 200      # the firmware does misalign
    if memory_model:
        assert oracle.layers[1].memory_cycles > 0    # ... and reads flash as data


def test_the_default_on_rv32_is_the_static_watch(build_rv):
    assert _Run(build_rv("plain"), board("rv32-e31"), INPUT, 10**9, 60.0).access_watch == "static"


def test_a_core_that_traps_stops_at_the_same_access_with_both_watches(build_rv):
    """The E31 traps on the first misaligned access (layer 0's `lw t1, 1(t0)`):
    both watches name its address and its instruction."""
    elf, target = build_rv("plain"), board("rv32-e31")
    messages = []
    for watch in ("hook", "static"):
        with pytest.raises(TinybuildError) as e:
            run(elf, target, watch)
        messages.append(str(e.value))
    assert messages[0] == messages[1]
    assert "misaligned 4-byte access at 0x80000081" in messages[0]
    assert "tb_model_invoke+0x" in messages[0] and "in layer 0" in messages[0]


def test_an_atomic_redoes_the_run_with_the_hook(build_rv):
    elf = build_rv("amo", "rv32imac", ("WITH_AMO",))
    target = board("rv32-esp32c3", "esp32c3-flash-cache")
    oracle, _ = run(elf, target, "hook")
    static, r = run(elf, target, "static")
    assert counts(static) == counts(oracle)
    assert r.access_watch == "hook"                  # it fell back


SCONS = Path(sys.executable).with_name("scons")


@pytest.fixture(scope="module")
def kws_build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("rv_kws")


@pytest.mark.slow
@pytest.mark.parametrize("target_name,memory_model", [
    ("riscv", None), ("esp32c3", None), ("esp32c3", "esp32c3-flash-cache")])
def test_static_watch_counts_what_the_hook_counts_on_kws(kws_build_dir, target_name,
                                                         memory_model):
    from tinybuild import plugins
    if shutil.which("riscv64-unknown-elf-gcc") is None:
        pytest.skip("riscv64-unknown-elf-gcc not installed")
    target = plugins.targets(plugins.make_plugin_manager())[target_name]
    if memory_model is not None:
        target = replace(target, memory_model=memory_model)
    elf = kws_build_dir / target_name / "kws" / "firmware.elf"
    inputs = kws_build_dir / "models" / "kws" / "inputs-n4-s1.bin"
    cmd = [str(SCONS), "-C", str(ROOT), "-Q", f"build_dir={kws_build_dir}",
           f"target={target_name}", f"model={ROOT / 'models' / 'kws.h5'}", str(elf), str(inputs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    raw = inputs.read_bytes()
    data = raw[: len(raw) // 4]
    for detail in (True, False):
        oracle = _Run(elf, target, data, 2 * 10**9, 600.0, detail=detail, access_watch="hook")
        static = _Run(elf, target, data, 2 * 10**9, 600.0, detail=detail, access_watch="static")
        assert counts(static.execute()) == counts(oracle.execute())
        assert static.access_watch == "static"
        if detail or target.memory_model:           # (else nothing is watched)
            assert static.counters.static_ops > 10**6
