"""The Cortex-M4 cycle model, one instruction class at a time, on hand-written
assembly (firmware/cycles.S) whose cycle counts are worked out here from the
manual, not from the model's tables.

Source: ARM Cortex-M4 Technical Reference Manual r0p1 (ARM DDI 0439B),
Table 3-1 "Cortex-M4 instruction set summary", section 3.3.2 "Load/store
timings", and Table 7-1 "FPU instruction set" (cycle counts). P is the
pipeline refill of a taken branch, "1 to 3 depending on alignment and width of
the target"; the model charges 2 (see sim/unicorn/timing.py).

Every layer is measured from tb_mark(i) to tb_mark(i+1), which adds the return
from tb_mark (bx lr: 1 + P), `movs r0, #i+1` (1) and `bl tb_mark` (1 + P) to
the snippet: 3 instructions and 3 + 2P cycles.
"""
from __future__ import annotations

import pytest

from sim.unicorn import timing

P = 2                                   # pipeline refill charged per taken branch
assert timing.MODELS["cortex-m4"].taken_penalty == P
DIV = 12                                # SDIV/UDIV: "2-12", the model charges the worst case
OVERHEAD_INSNS, OVERHEAD_CYCLES = 3, 3 + 2 * P

# (class, instructions in the snippet, cycles of the snippet per the TRM)
CLASSES = [
    # Table 3-1: MOV/ADD/SUB/AND/ORR/shifts/MOVW/MOVT/UBFX/SSAT/SXTB/QADD8/CLZ: 1 each
    ("ALU", 12, 12 * 1),
    # MUL, MLA, MLS, SMULL, UMULL, SMLAL, UMLAL: 1 each on the M4 (single-cycle MAC)
    ("MUL/MLA", 7, 7 * 1),
    # SMLAD, SMUAD, SMLABB, SMLAWB, SMMLA, SMLALD, SADD16, UXTAB: 1 each
    ("DSP", 8, 8 * 1),
    # movs, movs (1 each), UDIV and SDIV: 2..12 by operands, charged 12
    ("divide", 4, 1 + 1 + DIV + DIV),
    # 3.3.2: an LDR is 2 cycles; one that follows a load and neither uses its
    # result as address nor writes back pipelines into 1.
    # movs 1, ldr 2, ldr 1, ldrb 1, ldrsh 1, ldr [r4, r1] 1, ldr literal 1,
    # ldr [r1] 2 (base = previous load's result), ldr [r4], #0 2 (write-back),
    # ldr 2 (after the write-back load), ldrd 1+N = 3
    ("LDR", 11, 1 + 2 + 1 + 1 + 1 + 1 + 1 + 2 + 2 + 2 + 3),
    # 3.3.2: "STR Rx,[Ry,#imm] is always one cycle" (write buffer);
    # str 1, strb 1, strh.w 1, ldr 2 (nothing pipelines after a store), str 1, strd 1+N = 3
    ("STR", 6, 1 + 1 + 1 + 2 + 1 + 3),
    # LDM/STM/PUSH/POP 1+N: push 3 regs 4, pop 4, stmia 2 regs 3, ldmdb 3,
    # push.w 6 regs 7, pop.w 7, bl 1+P, helper's push {r4,lr} 3 and pop {r4,pc} 3+P
    ("LDM/STM/PUSH/POP", 9, 4 + 4 + 3 + 3 + 7 + 7 + (1 + P) + 3 + (3 + P)),
    # B<cc>/CBZ/CBNZ: 1 not taken, 1+P taken; B.W 1+P.
    # movs 1, cmp 1, beq 1 (not taken), bne 1+P, cbnz 1 (not taken), cbz 1+P,
    # b.w 1+P, movs 1, then a 3-iteration loop: subs 1 x3, bne 1+P x2 and 1 x1
    ("branch", 14, 1 + 1 + 1 + (1 + P) + 1 + (1 + P) + (1 + P) + 1 + 3 + 2 * (1 + P) + 1),
    # IT 1 (folding not modelled); each instruction in the block 1 whether it
    # executes or is skipped: movs, cmp, ite + 2, itttt + 4 (all skipped)
    ("IT", 10, 10 * 1),
    # Table 7-1: VMOV core->S 1, VCVT 1, VADD 1, VSUB 1, VMUL 1, VMLA 3, VFMA 3,
    # VDIV 14, VSQRT 14, VSTR 2, VLDR 2, VMOV S->core 1
    ("VFP", 12, 1 + 1 + 1 + 1 + 1 + 3 + 3 + 14 + 14 + 2 + 2 + 1),
    # A pipelined LDR reached by a taken branch is not pipelined (its linear
    # predecessor did not run just before it): movs 1, ldr 2, then
    # ldr 1 + subs 1 + bne (1+P) | ldr 2 + subs 1 + bne (1+P) | ldr 2 + subs 1 + bne 1
    ("LDR after a taken branch", 11, 1 + 2 + (1 + 1 + 1 + P) + (2 + 1 + 1 + P) + (2 + 1 + 1)),
    # 3.3.2: "Unaligned word or halfword loads or stores add penalty cycles":
    # byte-aligned halfword +1, halfword-aligned word +1, byte-aligned word +2.
    # ldr [+1] 2+2, ldr [+2] 1+1 (pipelined), ldrh [+1] 1+1, str [+3] 1+2,
    # strh [+5] 1+1, ldr [+4] 2 (aligned, after a store)
    ("misaligned", 6, (2 + 2) + (1 + 1) + (1 + 1) + (1 + 2) + (1 + 1) + 2),
]
MISALIGNED_PENALTY = 2 + 1 + 1 + 2 + 1


@pytest.fixture(scope="module")
def cycles_run(simulator, target, build_arm):
    elf = build_arm("cycles", ["cycles_io.c", "cycles.S"])
    return simulator.run(elf, target, bytes(range(64)))


def test_output_and_layer_count(cycles_run):
    assert cycles_run.output == bytes(range(16))
    assert [lp.index for lp in cycles_run.layers] == list(range(len(CLASSES)))


@pytest.mark.parametrize("index", range(len(CLASSES)), ids=[c[0] for c in CLASSES])
def test_instruction_class(cycles_run, index):
    name, insns, cycles = CLASSES[index]
    layer = cycles_run.layers[index]
    assert layer.instructions == insns + OVERHEAD_INSNS, name
    assert layer.cycles == cycles + OVERHEAD_CYCLES, name


def test_totals_are_the_sum_of_the_classes(cycles_run):
    assert cycles_run.instructions == sum(n + OVERHEAD_INSNS for _, n, _ in CLASSES)
    assert cycles_run.cycles == sum(c + OVERHEAD_CYCLES for _, _, c in CLASSES)
    assert cycles_run.cycle_model == "cortex-m4"


def test_misaligned_accesses_are_counted_only_in_detail(simulator, target, cycles_run, build_arm):
    assert cycles_run.misaligned_accesses == 5
    fast = simulator.run(build_arm("cycles", ["cycles_io.c", "cycles.S"]), target, bytes(range(64)),
                         detail=False)
    assert fast.misaligned_accesses == -1 and fast.output == cycles_run.output
    assert fast.instructions == cycles_run.instructions
    assert fast.cycles == cycles_run.cycles - MISALIGNED_PENALTY
