"""Per-instruction cost tables, precomputed from the ELF's text.

The native block hook (native_hook.c) charges a block [start, end) in O(1)
from prefix sums over halfword addresses:

    instructions = cum_n[end] - cum_n[start]
    base cycles  = cum_c[end] - cum_c[start]

plus, when the block was entered by a taken branch (its start is not where the
previous block ended), ``taken_penalty`` and ``fresh_adj[start]`` (the cycles
the first instruction loses by not pairing with its linear predecessor).

Instruction counts are exact: every instruction start in the text is known
(Thumb-2: a first halfword with bits[15:11] in 0b11101/0b11110/0b11111 starts a
32-bit instruction; decoding resyncs at every function symbol and at the ARM
mapping symbols ``$t``/``$a`` and skips literal pools marked ``$d``; RV32C: low
two bits 0b11 = 32-bit). Cycles are a static model.

Cortex-M4 cycle model ("cortex-m4")
-----------------------------------
Sources: ARM Cortex-M4 Technical Reference Manual r0p1 (ARM DDI 0439B),
section 3.3 "Processor instruction timings", Table 3-1 "Cortex-M4
instruction set summary" and section 3.3.2 "Load/store timings"; and the FPU
chapter, section 7.2.3 "FPU instruction set", Table 7-1 "FPU instruction
set" (cycle counts). Values used (P = pipeline refill, N = registers moved):

    ALU, MOV, shifts, compare, extend, bitfield, saturate, SIMD add   1
    MUL, MLA, MLS, SMLAD/SMUAD/SMLAxy/SMMLA... (the DSP MACs)          1
    UMULL/SMULL/UMLAL/SMLAL/UMAAL (M4: single cycle, no early exit)   1
    SDIV/UDIV (2..12, operand dependent): we charge the worst case    12
    LDR/LDRB/LDRH/LDRSB/LDRSH (single)                                 2
      ... pipelined after an LDR whose destination it does not use
          as its address (section 3.3.2)                               1
      ... with base write-back (not normally pipelined, 3.3.2)         2
    LDRD/STRD                                                       1+N=3
    LDREX/STREX/LDREXB/H...                                            2
    STR/STRB/STRH (Table 3-1 says 2; section 3.3.2: "STR Rx,[Ry,#imm]
      is always one cycle", the write buffer absorbs the data phase)   1
    LDM/STM/PUSH/POP                                                 1+N
    B/Bcc/CBZ/CBNZ/BL/BX/BLX, MOV/ADD pc: 1, plus P when taken
    POP {..,pc}, LDR pc: 1+N / 2, plus P (always taken)
    TBB/TBH                                                 2, plus P
    P (pipeline refill, "1 to 3 depending on alignment and width of the
      target"): we charge 2 for every taken branch                      2
    IT 1 (the TRM notes it can fold into a preceding 16-bit
      instruction; we do not model folding)                            1
    DSB/DMB 1 (empty write buffer), ISB 1+P                          1/3
    NOP, hints, MRS/MSR, CPS                                           1
    VADD/VSUB/VMUL/VNMUL/VABS/VNEG/VCMP/VCVT/VMOV/VMRS/VMSR            1
    VMOV two core registers <-> two singles / a double                 2
    VMLA/VMLS/VNMLA/VNMLS/VFMA/VFMS/VFNMA/VFNMS                        3
    VDIV, VSQRT                                                       14
    VLDR/VSTR                                                          2
    VLDM/VSTM/VPUSH/VPOP                                        1+N words

Misaligned data accesses (section 3.3.2, "Load/store timings": "Unaligned
word or halfword loads or stores add penalty cycles"): a byte-aligned
halfword +1 (done as two bytes), a halfword-aligned word +1 (two halfwords),
a byte-aligned word +2 (a byte, a halfword and a byte). Counted on the runs
made with ``detail`` (the first validation input: the one the report shows)
by the static access watch (``thumb_access`` below, native_hook.c), every
access as Unicorn issues it (a VLDR/VLDM double is one 8-byte access).

Not modelled by the core model (so cycles are an estimate, instructions are
exact): flash wait states and the ART accelerator (the memory models below,
when the target names one), bus contention, the extra cycle of a load
whose address depends on the immediately preceding ALU result, folding of IT,
operand-dependent divide time, and IT-skipped instructions (charged their
full cost; the core spends about one cycle on each).

RV32 cycle model ("rv32-e31")
-----------------------------
Source: SiFive E31 Core Complex Manual (21G1), section "Execution Pipeline":
single issue, in order, fully bypassed; LW has a 2-cycle and LB/LH/LBU/LHU a
3-cycle result latency; MUL/MULH* a 5-cycle latency; DIV/DIVU/REM/REMU 2 to 33
cycles; mispredicted branches/jumps cost 3 cycles, correctly predicted ones 0.
Values used: every instruction 1; a load whose destination the next
instruction (in program order) reads stalls +1 (LW) / +2 (byte/half); a MUL
whose result the next instruction reads stalls +4; DIV/REM 33 (worst case);
every taken branch or jump +1 (we do not model the branch predictor: loop
back-edges mostly predict correctly (0), mispredictions cost 3; 1 is the
assumed average). Misaligned loads and stores trap on the E31 (the manual:
they "are not supported in hardware" and raise the address-misaligned
exception for software to emulate): a run made with ``detail`` stops at the
first one with an error.

RV32 cycle model ("rv32-bumblebee"): GD32VF103's Nuclei Bumblebee core
------------------------------------------------------------------------
Sources: Nuclei's Bumblebee core brief (riscv-mcu.github.io "Bumblebee内核简明
数据手册", github.com/nucleisys/Bumblebee_Core_Doc): two-stage variable-length
pipeline, in order, simple dynamic branch predictor, sequential prefetch of
two instructions, RV32IMAC; GigaDevice's GD32VF103 announcement: the core has
"a single-cycle hardware multiplier and a hardware divider". No
per-instruction table is published. Values used: every instruction 1;
MUL/MULH/MULHSU/MULHU 1 with no result stall (single-cycle multiplier);
DIV/DIVU/REM/REMU 33 (assumed radix-2 iterative divider: 32 quotient bits
plus one; Nuclei's open-source two-stage Hummingbird E203 takes 34..36); a
load whose destination the next instruction reads stalls +1 (LW and
byte/half alike: the result returns from the bus one cycle after the
address); JAL/JALR and every taken branch +1 (the redirect bubble of a
predicted-taken branch; the predictor is not modelled, a misprediction
costs about 2). Misaligned loads and stores raise the address-misaligned
exception on Nuclei's N200-class cores (no hardware support): an error, as
on the E31.

RV32 cycle model ("rv32-esp32c3"): the ESP32-C3's ESP-RISC-V core
-----------------------------------------------------------------
Sources: ESP32-C3 Technical Reference Manual (Espressif, v1.x), chapter 1
"ESP-RISC-V CPU": RV32IMC, "4-stage, in-order, scalar pipeline", zero wait
states to internal SRAM and to the cache; its performance counter (CSRs
mpcer/mpcmr/mpccr, 0x7E0..0x7E2) counts exactly the stall kinds of a
RI5CY/CV32E40P-class pipeline with the same event bits (cycles, instructions,
load hazards, jump hazards, idle, loads, stores, unconditional jumps,
branches, taken branches, compressed). Espressif publishes no instruction
latencies, so the values are those of that pipeline, from the OpenHW
CV32E40P User Manual, "Pipeline details", table "Cycle counts per instruction
type": integer ALU 1; MUL 1; MULH/MULHSU/MULHU 5; DIV/DIVU/REM/REMU 3..35
(we charge 35, the worst case); loads/stores 1, +1 if the next instruction
uses the loaded value (load-use hazard); JAL/JALR 2; a taken branch 3, not
taken 1. In the tables: taken_penalty 2 and jumps cost 0 base cycles, so a
jump costs 2 and a taken branch 1 + 2. Not modelled: the jump-register hazard
(+1 when JALR's rs1 was written by the instruction just before), misaligned
32-bit branch targets (+1), and flash cache misses (code and weights run
from flash through a 16 KB cache; a miss costs tens of cycles). Misaligned
loads and stores are counted (``misaligned_accesses``) but cost nothing
extra: the TRM documents neither a trap nor a cost for them.

Memory-system models (``Target.memory_model``; "" or "none": zero wait states)
------------------------------------------------------------------------------
The core models above assume every fetch and every load completes as from
zero-wait-state memory. A memory model adds what the flash behind its cache
costs, on top and counted apart (``RunResult.memory_cycles``, per layer too);
instruction counts never change. docs/timing.md has the derivation and the
sources in full. One mechanism, in native_hook.c: flash is read one *line*
(the flash interface's access width) at a time; a line the cache holds costs
nothing, a line fetched from flash costs ``wait_states`` cycles (a flash
access takes 1 + WS cycles; the 1 is already in the core model). Instruction
fetches are charged per executed block (every line the block's address range
touches) through the instruction cache; with ``prefetch`` the line right
after the last one fetched is free (the prefetch buffer read it while the
previous line executed: assumes the core spends at least 1 + WS cycles per
line). Data reads from flash are charged through the data cache, found by
the static access watch (``thumb_access``, ``rv_access``); SRAM/CCM accesses
cost nothing: zero wait states. A cache is ``sets`` x ``ways`` lines, least recently used replaced.

"stm32f407-art" (the cortex-m4 target's STM32F407 at 168 MHz): ST RM0090
section 3.4.1 "Relation between CPU clock frequency and flash memory read
time", Table 10 (2.7-3.6 V): 5 wait states for 150 < HCLK <= 168 MHz (one
per 30 MHz); section 3.4.2 "Adaptive real-time memory accelerator": a
128-bit flash access, an instruction prefetch buffer on I-Code, "64 cache
lines of 128 bits on I-Code" and "8 cache lines of 128 bits on D-Code"
(section 3.2). RM0090 does not state the caches' associativity or
replacement: assumed fully associative, LRU.

"stm32l4r5-art" (nucleo-l4r5zi, STM32L4R5 at 120 MHz): ST RM0432 section 3.3.3
"Read access latency", table "Number of wait states according to CPU clock
(HCLK) frequency": range 1 boost mode, 5 wait states for 100 < HCLK <= 120
MHz (one per 20 MHz); section 3.3.4 "Adaptive real-time memory accelerator
(ART Accelerator)": prefetch, an instruction cache of "32 lines of 4 x 64
bits (1 Kbyte)" and a data cache of "8 lines of 4 x 64 bits (256 bytes)".
The flash is read 64 bits at a time in dual-bank mode (DBANK=1, the
2-Mbyte parts' default option byte). Read here as 4-way sets of 64-bit
lines (32 sets for instructions, 8 for data), LRU: the manual does not say
how a "line of 4 x 64 bits" is filled.

"esp32c3-flash-cache" (esp32c3, 160 MHz): ESP32-C3 datasheet section 3.1.5 /
TRM chapter "Cache": one 16 KB, 8-way set-associative, read-only cache of
32-byte blocks in front of the external SPI flash, shared by instruction
fetches (IROM) and data reads (DROM). The manuals are silent on the miss
cost and on any prefetch; assumed: a quad-I/O read at 80 MHz (8-bit command
on one line, 24-bit address and 8 mode bits in 8 clocks, 4 dummy clocks, 32
bytes in 64 clocks = 84 SPI clocks) = 168 cycles at 160 MHz per miss, no
prefetch.

GD32VF103 ("riscv"), nRF52840, mps2-an386: no memory model ("" - core-only
cycles, labelled so in the summary and report). GigaDevice's GD32VF103 user
manual describes code execution from its on-chip flash as zero-wait (all
128 KiB of the CB part), which is what the core model already assumes; the
nRF52840's instruction cache (NVMC ICACHECNF) has no published miss cost, so
it is left out rather than guessed; the MPS2's code memory is SSRAM.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinybuild.errors import TinybuildError, shown

# -- models -------------------------------------------------------------------


@dataclass(frozen=True)
class TimingModel:
    name: str
    arch: str              # "arm" or "riscv32"
    taken_penalty: int     # cycles added to every taken branch (block entered non-sequentially)
    description: str
    # RV32 only; the defaults are the "rv32-e31" values
    rv_load_word_stall: int = 1   # extra cycles if the next instruction reads an LW result
    rv_load_sub_stall: int = 2    # ... an LB/LH/LBU/LHU result
    rv_mul_cycles: int = 1        # issue cycles of MUL
    rv_mulh_cycles: int = 1       # issue cycles of MULH/MULHSU/MULHU
    rv_mul_stall: int = 4         # extra cycles if the next instruction reads a MUL* result
    rv_div_cycles: int = 33       # DIV/DIVU/REM/REMU
    rv_jump_cycles: int = 1       # JAL/JALR base cycles (taken_penalty comes on top)
    # misaligned data accesses: extra cycles of (a halfword at an odd address,
    # a word at an address 2 mod 4, a word at an odd address); or the core traps
    misaligned_penalty: tuple[int, int, int] = (0, 0, 0)
    traps_misaligned: bool = False


MODELS = {
    "cortex-m4": TimingModel("cortex-m4", "arm", 2,
                             "ARM Cortex-M4 TRM r0p1 Table 3-1 and FPU Table 7-1, P=2",
                             misaligned_penalty=(1, 1, 2)),
    "rv32-e31": TimingModel("rv32-e31", "riscv32", 1,
                            "SiFive E31 Core Complex Manual, execution pipeline",
                            traps_misaligned=True),
    "rv32-bumblebee": TimingModel(
        "rv32-bumblebee", "riscv32", 1,
        "Nuclei Bumblebee (GD32VF103): 2-stage pipeline, single-cycle multiplier",
        rv_load_word_stall=1, rv_load_sub_stall=1, rv_mul_cycles=1, rv_mulh_cycles=1,
        rv_mul_stall=0, rv_div_cycles=33, rv_jump_cycles=1, traps_misaligned=True),
    "rv32-esp32c3": TimingModel(
        "rv32-esp32c3", "riscv32", 2,
        "ESP32-C3 ESP-RISC-V: 4-stage RI5CY-class pipeline (CV32E40P cycle counts)",
        rv_load_word_stall=1, rv_load_sub_stall=1, rv_mul_cycles=1, rv_mulh_cycles=5,
        rv_mul_stall=0, rv_div_cycles=35, rv_jump_cycles=0),
}
DEFAULT_MODEL = {"arm": "cortex-m4", "riscv32": "rv32-e31"}


def model_for(arch: str, name: str) -> TimingModel:
    if name and name in MODELS and MODELS[name].arch == arch:
        return MODELS[name]
    return MODELS[DEFAULT_MODEL[arch]]


# -- memory-system models --------------------------------------------------------


@dataclass(frozen=True)
class Cache:
    sets: int
    ways: int                              # 0: no cache (every line is read from flash)

    @property
    def lines(self) -> int:
        return self.sets * self.ways


@dataclass(frozen=True)
class MemoryModel:
    """Flash behind a cache: see the module docstring and docs/timing.md."""

    name: str
    description: str                       # the manual sections it follows
    wait_state_table: tuple[tuple[int, int], ...]   # (up to this clock in Hz, wait states), rising
    line_bytes: int                        # one flash access: the cache line
    icache: Cache
    dcache: Cache
    prefetch: bool
    unified: bool = False                  # one cache for instructions and data
    miss_cycles: int = -1                  # fixed miss cost instead of wait states (external flash)
    label: str = "flash wait"              # what the summary calls the memory cycles

    def wait_states(self, clock_hz: int) -> int:
        """Cycles a line read from flash adds at ``clock_hz``; a clock above the
        table is a board description error."""
        if self.miss_cycles >= 0:
            return self.miss_cycles
        for up_to, ws in self.wait_state_table:
            if clock_hz <= up_to:
                return ws
        top = self.wait_state_table[-1][0]
        raise TinybuildError(
            f"memory model {self.name} has flash wait states for clocks up to {top / 1e6:g} MHz, "
            f"not {clock_hz / 1e6:g} MHz: lower the board's clock_hz or name a memory model "
            "for it (docs/timing.md)")


def _per_mhz(step_mhz: int, top_mhz: int) -> tuple[tuple[int, int], ...]:
    """A wait-state table of one more wait state every ``step_mhz`` MHz."""
    return tuple((min(top_mhz, step_mhz * (ws + 1)) * 1_000_000, ws)
                 for ws in range(-(-top_mhz // step_mhz)))


MEMORY_MODELS = {
    "stm32f407-art": MemoryModel(
        "stm32f407-art", "ST RM0090 3.4.1 Table 10 (2.7-3.6 V) and 3.4.2: 128-bit flash, ART "
        "prefetch, 64 I-cache and 8 D-cache lines of 128 bits",
        _per_mhz(30, 168), 16, Cache(1, 64), Cache(1, 8), prefetch=True),
    "stm32l4r5-art": MemoryModel(
        "stm32l4r5-art", "ST RM0432 3.3.3 (range 1 boost) and 3.3.4: 64-bit flash reads, ART "
        "prefetch, I-cache 32 x 4 x 64 bits, D-cache 8 x 4 x 64 bits",
        _per_mhz(20, 120), 8, Cache(32, 4), Cache(8, 4), prefetch=True),
    "esp32c3-flash-cache": MemoryModel(
        "esp32c3-flash-cache", "ESP32-C3 datasheet 3.1.5: 16 KB 8-way cache of 32-byte blocks; "
        "miss cost assumed (QIO 80 MHz read: 168 cycles)",
        (), 32, Cache(64, 8), Cache(64, 8), prefetch=False, unified=True, miss_cycles=168,
        label="flash cache miss"),
}
NO_MEMORY_MODEL = ("", "none")


def memory_model_for(target) -> MemoryModel | None:
    """The target's memory model (None: core-only cycles); a name the
    simulator does not have stops with the ones it has."""
    name = getattr(target, "memory_model", "")
    if name in NO_MEMORY_MODEL:
        return None
    if name not in MEMORY_MODELS:
        raise TinybuildError(
            f"target {shown(target.name)} names memory model '{shown(name)}', which the unicorn "
            f"simulator does not have: use one of {', '.join(sorted(MEMORY_MODELS))} or \"none\" "
            "(docs/timing.md)")
    model = MEMORY_MODELS[name]
    model.wait_states(target.clock_hz)          # a clock outside the table stops here
    return model


# -- Cortex-M4 (Thumb-2) --------------------------------------------------------

# kinds used by the load-pipelining rule
ALU, LOAD, LOAD_NP, STORE, BRANCH, OTHER = range(6)

P_REFILL = MODELS["cortex-m4"].taken_penalty
DIV_CYCLES = 12


def _popcount(x: int) -> int:
    return bin(x).count("1")


def thumb_is32(h1: int) -> bool:
    return (h1 >> 11) in (0b11101, 0b11110, 0b11111)


def _vfp(h1: int, h2: int) -> int:
    """Cycles of a coprocessor-space instruction (FPv4-SP when cp10/cp11)."""
    if ((h2 >> 8) & 0xE) != 0xA:
        return 1
    if ((h1 >> 9) & 0x7) == 0b110:                 # extension register load/store
        if (h1 & 0x01E0) == 0x0040:                # 64-bit transfer VMOV
            return 2
        p, w = (h1 >> 8) & 1, (h1 >> 5) & 1
        if p == 1 and w == 0:                      # VLDR / VSTR
            return 2
        return 1 + (h2 & 0xFF)                     # VLDM/VSTM/VPUSH/VPOP: 1+N words
    if ((h1 >> 8) & 0xF) == 0xE:
        if h2 & 0x10:                              # VMOV core<->single, VMRS, VMSR
            return 1
        o = (((h1 >> 7) & 1) << 2) | ((h1 >> 4) & 3)
        if o in (0, 1, 5, 6):                      # VMLA/VMLS/VNMLA/VNMLS, fused
            return 3
        if o == 4:                                 # VDIV
            return 14
        if o == 7 and (h1 & 0xF) == 1 and ((h2 >> 6) & 3) == 3:   # VSQRT
            return 14
        return 1
    return 1


def thumb_decode(h1: int, h2: int):
    """(size, cycles, kind, rt, rn, rm) for the instruction starting with h1."""
    if not thumb_is32(h1):
        h = h1
        if h >> 14 == 0:
            return 2, 1, ALU, -1, -1, -1
        if h >> 10 == 0b010000:
            return 2, 1, ALU, -1, -1, -1             # incl. MULS: 1
        if h >> 10 == 0b010001:
            op = (h >> 8) & 3
            rd = (((h >> 7) & 1) << 3) | (h & 7)
            if op == 3 or (op in (0, 2) and rd == 15):
                return 2, 1, BRANCH, -1, -1, -1      # BX/BLX, ADD/MOV pc (+P)
            return 2, 1, ALU, -1, -1, -1
        if h >> 11 == 0b01001:                       # LDR literal
            return 2, 2, LOAD, (h >> 8) & 7, 15, -1
        if h >> 12 == 0b0101:
            op = (h >> 9) & 7
            rt, rn, rm = h & 7, (h >> 3) & 7, (h >> 6) & 7
            if op <= 2:
                return 2, 1, STORE, rt, rn, rm
            return 2, 2, LOAD, rt, rn, rm
        if h >> 13 == 0b011 or h >> 12 == 0b1000:   # LDR/STR(B/H) imm
            if (h >> 11) & 1:
                return 2, 2, LOAD, h & 7, (h >> 3) & 7, -1
            return 2, 1, STORE, h & 7, (h >> 3) & 7, -1
        if h >> 12 == 0b1001:                        # SP-relative
            if (h >> 11) & 1:
                return 2, 2, LOAD, (h >> 8) & 7, 13, -1
            return 2, 1, STORE, (h >> 8) & 7, 13, -1
        if h >> 12 == 0b1010:
            return 2, 1, ALU, -1, -1, -1             # ADR, ADD rd, sp, #imm
        if h >> 12 == 0b1011:
            op = (h >> 8) & 0xF
            if op in (0b0001, 0b0011, 0b1001, 0b1011):
                return 2, 1, BRANCH, -1, -1, -1      # CBZ/CBNZ (+P if taken)
            if op in (0b0100, 0b0101, 0b1100, 0b1101):  # PUSH/POP: 1+N (+P on pc)
                n = _popcount(h & 0xFF) + ((h >> 8) & 1)
                return 2, 1 + n, OTHER, -1, -1, -1
            return 2, 1, ALU, -1, -1, -1             # SP adjust, extend, REV, IT, hints
        if h >> 12 == 0b1100:                        # LDM/STM
            return 2, 1 + _popcount(h & 0xFF), OTHER, -1, -1, -1
        if h >> 12 == 0b1101:
            if ((h >> 8) & 0xF) >= 0xE:
                return 2, 1, OTHER, -1, -1, -1       # UDF, SVC
            return 2, 1, BRANCH, -1, -1, -1          # B<cc> (+P if taken)
        return 2, 1, BRANCH, -1, -1, -1              # B (0b11100)

    op1 = (h1 >> 11) & 3
    op2 = (h1 >> 4) & 0x7F
    if op1 == 1:
        if op2 & 0b1000000:
            return 4, _vfp(h1, h2), OTHER, -1, -1, -1
        if (op2 & 0b1100100) == 0:                   # LDM/STM (.W), PUSH/POP.W
            return 4, 1 + _popcount(h2 & 0xFFFF), OTHER, -1, -1, -1
        if (op2 & 0b1100100) == 0b0000100:          # dual / exclusive / table branch
            a, b = (h1 >> 7) & 3, (h1 >> 4) & 3
            if a == 0 and b in (0, 1):
                return 4, 2, OTHER, -1, -1, -1       # STREX / LDREX
            if a == 1 and b in (0, 1):
                if b == 1 and ((h2 >> 4) & 0xF) in (0, 1):
                    return 4, 2, BRANCH, -1, -1, -1  # TBB/TBH: 2 + P
                return 4, 2, OTHER, -1, -1, -1       # exclusive byte/half/dual
            return 4, 3, OTHER, -1, -1, -1           # LDRD/STRD: 1+N
        return 4, 1, ALU, -1, -1, -1                 # data processing (shifted reg)
    if op1 == 2:
        if not (h2 >> 15):
            return 4, 1, ALU, -1, -1, -1             # data processing (immediate)
        if (h2 >> 12) & 0b101:                       # B.W / BL (bit12) ...
            return 4, 1, BRANCH, -1, -1, -1
        if ((h1 >> 7) & 7) != 0b111:                 # B<cc>.W
            return 4, 1, BRANCH, -1, -1, -1
        if h1 == 0xF3BF and (h2 & 0xFF00) == 0x8F00 and ((h2 >> 4) & 0xF) == 6:
            return 4, 1 + P_REFILL, OTHER, -1, -1, -1   # ISB: 1 + pipeline refill
        return 4, 1, OTHER, -1, -1, -1               # MSR/MRS, hints, DSB/DMB
    # op1 == 3
    rn = h1 & 0xF
    rt = (h2 >> 12) & 0xF
    if op2 & 0b1000000:
        return 4, _vfp(h1, h2), OTHER, -1, -1, -1
    if (op2 & 0b1110001) == 0:                       # store single
        return 4, 1, STORE, rt, rn, -1
    if (op2 & 0b1100111) in (0b0000001, 0b0000011, 0b0000101):   # loads
        size_field = (op2 >> 1) & 3                  # 0 byte, 1 half, 2 word
        if rt == 15 and size_field != 2:
            return 4, 1, OTHER, -1, -1, -1           # PLD/PLI hints
        rm = -1
        writeback = False
        if rn != 15 and not (h1 >> 7) & 1:           # not imm12 form
            if ((h2 >> 6) & 0x3F) == 0:
                rm = h2 & 0xF                        # register offset
            elif (h2 >> 11) & 1 and (h2 >> 8) & 1:
                writeback = True                     # pre/post-indexed with W
        if rt == 15:
            return 4, 2, BRANCH, -1, -1, -1          # LDR pc: 2 + P
        if writeback:
            return 4, 2, LOAD_NP, rt, rn, rm
        return 4, 2, LOAD, rt, rn, rm
    if (op2 & 0b1110000) == 0b0100000:
        return 4, 1, ALU, -1, -1, -1                 # data processing (register)
    if (op2 & 0b1111000) == 0b0110000:
        return 4, 1, ALU, -1, -1, -1                 # MUL/MLA/MLS/DSP MACs: 1
    if (op2 & 0b1111000) == 0b0111000:
        sub = (h1 >> 4) & 7
        if sub in (1, 3) and ((h2 >> 4) & 0xF) == 0xF:
            return 4, DIV_CYCLES, OTHER, -1, -1, -1  # SDIV/UDIV
        return 4, 1, ALU, -1, -1, -1                 # long multiplies: 1
    return 4, 1, OTHER, -1, -1, -1


# -- Cortex-M4 data accesses, per instruction (the static access watch) ---------
#
# The report's run counts misaligned data accesses and the memory model's data
# reads from flash. Instead of a Unicorn memory hook on every access (slow: see
# docs/simulators.md "Speed with memory hooks"), native_hook.c resolves each
# block's accesses at block entry from these descriptors: an access reads
# ``count`` items of ``size`` bytes, ascending from
#     rn + imm + (rm << shift)        (rn < 0: imm is the absolute address)
# as QEMU issues them; then rn += wb (flag WB), rd = rs + k (rd >= 0; rs < 0:
# rd = k; flag ADDREG: rd = rs + rs2 * k) and the registers in ``clobber``
# become unknown. Anything this
# decoder does not know clobbers every register (only costs speed); a memory
# instruction it does not model is flagged UNMODELLED (if one executes, the
# run is redone with the every-access watch).

ACC_INSN, ACC_ACCESS, ACC_WRITE, ACC_WB, ACC_IN_IT, ACC_UNMODELLED, ACC_ENDS_TB, ACC_ADDREG = (
    1, 2, 4, 8, 16, 32, 64, 128)
ALL_REGS = 0xFFFF
ACCESS_DTYPE = np.dtype([("imm", "<i4"), ("wb", "<i4"), ("k", "<i4"), ("clobber", "<u4"),
                         ("rn", "i1"), ("rm", "i1"), ("rd", "i1"), ("rs", "i1"),
                         ("shift", "u1"), ("size", "u1"), ("count", "u1"), ("flags", "u1"),
                         ("isize", "u1"), ("rs2", "i1")], align=True)


@dataclass
class Access:
    """One instruction's data accesses and register effects (see above)."""
    flags: int = 0
    rn: int = -1
    rm: int = -1
    shift: int = 0
    imm: int = 0
    size: int = 0
    count: int = 0
    wb: int = 0
    rd: int = -1
    rs: int = -1
    k: int = 0
    clobber: int = 0
    rs2: int = -1          # ACC_ADDREG: rd = rs + rs2 * k (a register sum, scaled)


def _bits(mask_regs) -> int:
    m = 0
    for r in mask_regs:
        m |= 1 << r
    return m & ALL_REGS


def _mem(rn: int, imm: int, size: int, *, write: bool = False, rm: int = -1, shift: int = 0,
         count: int = 1, wb: int | None = None, loads: int = 0, pc: int = 0) -> Access:
    """An access at rn + imm (+ rm << shift); rn 15 is the PC (Align(pc + 4, 4),
    folded into an absolute imm)."""
    if rn == 15:
        rn, imm = -1, ((pc + 4) & ~3) + imm
    a = Access(ACC_ACCESS | (ACC_WRITE if write else 0), rn, rm, shift, imm, size, count,
               clobber=loads & ~(1 << 15))
    if wb is not None and rn >= 0:
        a.flags |= ACC_WB
        a.wb = wb
    return a


def _add_register(rd: int, rn: int, rm: int, scale: int) -> Access:
    """rd = rn + rm * scale (ADD/SUB of a shifted register)."""
    if 15 in (rd, rn, rm):
        return Access(ACC_ENDS_TB) if rd == 15 else _clobber(rd)
    return Access(ACC_ADDREG, rd=rd, rs=rn, rs2=rm, k=scale)


def _affine(rd: int, rs: int, k: int) -> Access:
    return Access(rd=rd, rs=rs, k=k)


def _clobber(*regs) -> Access:
    return Access(clobber=_bits(r for r in regs if r != 15))


def _thumb_expand_imm(h1: int, h2: int) -> int:
    imm12 = ((h1 >> 10) & 1) << 11 | ((h2 >> 12) & 7) << 8 | (h2 & 0xFF)
    if imm12 >> 10 == 0:
        b = imm12 & 0xFF
        return (b, b << 16 | b, b << 24 | b << 8, b << 24 | b << 16 | b << 8 | b)[(imm12 >> 8) & 3]
    unrot = 0x80 | (imm12 & 0x7F)
    rot = imm12 >> 7
    return ((unrot >> rot) | (unrot << (32 - rot))) & 0xFFFFFFFF


def _signed(x: int) -> int:
    return x - (1 << 32) if x & 0x80000000 else x


def _thumb16_access(h: int, pc: int) -> Access:
    lo3, rd8 = h & 7, (h >> 8) & 7
    if h >> 11 == 0b00011:                             # ADD/SUB register or imm3
        op, rn = (h >> 9) & 3, (h >> 3) & 7
        if op >= 2:
            imm3 = (h >> 6) & 7
            return _affine(lo3, rn, imm3 if op == 2 else -imm3)
        return _add_register(lo3, rn, (h >> 6) & 7, 1 if op == 0 else -1)
    if h >> 13 == 0:                                   # shift by immediate
        return _clobber(lo3)
    if h >> 13 == 0b001:                               # MOV/CMP/ADD/SUB imm8
        op, imm8 = (h >> 11) & 3, h & 0xFF
        return (_affine(rd8, -1, imm8), Access(), _affine(rd8, rd8, imm8),
                _affine(rd8, rd8, -imm8))[op]
    if h >> 10 == 0b010000:                            # data processing
        return Access() if (h >> 6) & 0xF in (8, 10, 11) else _clobber(lo3)
    if h >> 10 == 0b010001:                            # hi-register ADD/CMP/MOV, BX/BLX
        op, rd, rm = (h >> 8) & 3, ((h >> 7) & 1) << 3 | lo3, (h >> 3) & 0xF
        if op == 3:
            return Access(ACC_ENDS_TB, clobber=_bits([14]) if (h >> 7) & 1 else 0)
        if op == 1:
            return Access()
        ends = ACC_ENDS_TB if rd == 15 else 0
        if ends:
            return Access(ends)
        if op == 2:
            return _affine(rd, -1, pc + 4) if rm == 15 else _affine(rd, rm, 0)
        return _add_register(rd, rd, rm, 1)
    if h >> 11 == 0b01001:                             # LDR literal
        return _mem(15, (h & 0xFF) * 4, 4, loads=_bits([rd8]), pc=pc)
    if h >> 12 == 0b0101:                              # register offset
        op, rn, rm = (h >> 9) & 7, (h >> 3) & 7, (h >> 6) & 7
        size = (4, 2, 1, 1, 4, 2, 1, 2)[op]
        return _mem(rn, 0, size, write=op < 3, rm=rm, loads=0 if op < 3 else _bits([lo3]))
    if h >> 13 == 0b011 or h >> 12 == 0b1000:          # LDR/STR(B/H) imm5
        size = 2 if h >> 12 == 0b1000 else (1 if (h >> 12) & 1 else 4)
        load = (h >> 11) & 1
        return _mem((h >> 3) & 7, ((h >> 6) & 0x1F) * size, size, write=not load,
                    loads=_bits([lo3]) if load else 0)
    if h >> 12 == 0b1001:                              # SP-relative
        load = (h >> 11) & 1
        return _mem(13, (h & 0xFF) * 4, 4, write=not load, loads=_bits([rd8]) if load else 0)
    if h >> 12 == 0b1010:                              # ADR / ADD rd, sp, #imm
        if (h >> 11) & 1:
            return _affine(rd8, 13, (h & 0xFF) * 4)
        return _affine(rd8, -1, ((pc + 4) & ~3) + (h & 0xFF) * 4)
    if h >> 12 == 0b1011:
        return _thumb16_misc(h)
    if h >> 12 == 0b1100:                              # LDM/STM (16-bit)
        load, rn, regs = (h >> 11) & 1, rd8, h & 0xFF
        n = _popcount(regs)
        wb = None if load and regs >> rn & 1 else 4 * n
        return _mem(rn, 0, 4, write=not load, count=n, wb=wb, loads=regs if load else 0)
    if h >> 12 == 0b1101:
        if (h >> 8) & 0xF >= 0xE:
            return Access()                            # UDF, SVC
        return Access(ACC_ENDS_TB)                     # B<cc>
    if h >> 11 == 0b11100:
        return Access(ACC_ENDS_TB)                     # B
    return _clobber(*range(16))


def _thumb16_misc(h: int) -> Access:
    op = (h >> 8) & 0xF
    if op == 0:                                        # ADD/SUB SP, #imm7
        imm = (h & 0x7F) * 4
        return _affine(13, 13, -imm if (h >> 7) & 1 else imm)
    if op in (0b0001, 0b0011, 0b1001, 0b1011):         # CBZ/CBNZ
        return Access(ACC_ENDS_TB)
    if op in (0b0010, 0b1010):                         # extend, REV
        return _clobber(h & 7)
    if op in (0b0100, 0b0101):                         # PUSH
        regs = (h & 0xFF) | ((h >> 8) & 1) << 14
        n = _popcount(regs)
        return _mem(13, -4 * n, 4, write=True, count=n, wb=-4 * n)
    if op in (0b1100, 0b1101):                         # POP
        regs = (h & 0xFF) | ((h >> 8) & 1) << 15
        n = _popcount(regs)
        a = _mem(13, 0, 4, count=n, wb=4 * n, loads=regs)
        if regs >> 15:
            a.flags |= ACC_ENDS_TB
        return a
    if op in (0b0110, 0b1110, 0b1111):                 # CPS, BKPT, IT and hints
        return Access()
    return _clobber(*range(16))


def _thumb32_access(h1: int, h2: int, pc: int) -> Access:
    op1, op2 = (h1 >> 11) & 3, (h1 >> 4) & 0x7F
    rn, rt, rd = h1 & 0xF, (h2 >> 12) & 0xF, (h2 >> 8) & 0xF
    if op1 != 2 and op2 & 0b1000000:
        return _coprocessor(h1, h2, pc)
    if op1 == 1:
        if (op2 & 0b1100100) == 0:
            return _ldm_stm32(h1, h2)
        if (op2 & 0b1100100) == 0b0000100:
            return _dual_exclusive(h1, h2, pc)
        return _data_shifted_register(h1, h2)
    if op1 == 2:
        if not h2 >> 15:
            return _data_imm32(h1, h2, pc)
        if (h2 >> 12) & 0b101 or ((h1 >> 7) & 7) != 0b111:
            return Access(ACC_ENDS_TB, clobber=_bits([14]) if (h2 >> 14) & 1 else 0)  # B, BL, B<cc>
        if (h1 >> 4) & 0x7F in (0b0111110, 0b0111111):
            return _clobber(rd)                        # MRS
        if (h1 >> 5) & 0x3F == 0b011100:
            return _clobber(13)                        # MSR (may write SP)
        return Access()                                # hints, barriers
    if (op2 & 0b1110001) == 0:                         # store single
        return _single32(h1, h2, pc, write=True)
    if (op2 & 0b1100111) in (0b0000001, 0b0000011, 0b0000101):
        if rt == 15 and (op2 >> 1) & 3 != 2:
            return Access()                            # PLD/PLI: no access
        return _single32(h1, h2, pc, write=False)
    if (op2 & 0b1111000) == 0b0111000:                 # long multiply, divide
        return _clobber(rt, rd)
    if (op2 & 0b1110000) == 0b0100000 or (op2 & 0b1111000) == 0b0110000:
        return _clobber(rd)                            # data processing (register), multiply
    return _clobber(*range(16))


def _data_shifted_register(h1: int, h2: int) -> Access:
    op, s, rn, rd = (h1 >> 5) & 0xF, (h1 >> 4) & 1, h1 & 0xF, (h2 >> 8) & 0xF
    if rd == 15 and s:
        return Access()                                # TST/TEQ/CMN/CMP
    shift = ((h2 >> 12) & 7) << 2 | (h2 >> 6) & 3
    if op in (8, 13) and (h2 >> 4) & 3 == 0:           # ADD.W / SUB.W rd, rn, rm, LSL #shift
        return _add_register(rd, rn, h2 & 0xF, (1 << shift) * (1 if op == 8 else -1))
    return _clobber(rd)


def _single32(h1: int, h2: int, pc: int, write: bool) -> Access:
    rn, rt = h1 & 0xF, (h2 >> 12) & 0xF
    size = (1, 2, 4, 0)[(h1 >> 5) & 3]
    loads = 0 if write else _bits([rt])
    ends = ACC_ENDS_TB if not write and rt == 15 else 0
    if size == 0:
        return Access(ACC_ACCESS | ACC_UNMODELLED, clobber=ALL_REGS)
    if rn == 15:
        if write:
            return Access(ACC_ACCESS | ACC_UNMODELLED, clobber=ALL_REGS)
        imm = h2 & 0xFFF
        a = _mem(15, imm if (h1 >> 7) & 1 else -imm, size, loads=loads, pc=pc)
    elif (h1 >> 7) & 1:                                # imm12
        a = _mem(rn, h2 & 0xFFF, size, write=write, loads=loads)
    elif (h2 >> 11) & 1:                               # imm8, P/U/W
        p, u, w = (h2 >> 10) & 1, (h2 >> 9) & 1, (h2 >> 8) & 1
        imm = (h2 & 0xFF) if u else -(h2 & 0xFF)
        if not p and not w:
            return Access(ACC_ACCESS | ACC_UNMODELLED, clobber=ALL_REGS)
        a = _mem(rn, imm if p else 0, size, write=write, wb=imm if w else None, loads=loads)
    elif (h2 >> 6) & 0x3F == 0:                        # register offset, LSL #0-3
        a = _mem(rn, 0, size, write=write, rm=h2 & 0xF, shift=(h2 >> 4) & 3, loads=loads)
    else:
        return Access(ACC_ACCESS | ACC_UNMODELLED, clobber=ALL_REGS)
    a.flags |= ends
    return a


def _ldm_stm32(h1: int, h2: int) -> Access:
    op, w, load, rn = (h1 >> 7) & 3, (h1 >> 5) & 1, (h1 >> 4) & 1, h1 & 0xF
    regs = h2 & 0xFFFF
    n = _popcount(regs)
    if op not in (1, 2) or n == 0:
        return Access(ACC_ACCESS | ACC_UNMODELLED, clobber=ALL_REGS)
    delta = 4 * n if op == 1 else -4 * n
    a = _mem(rn, 0 if op == 1 else delta, 4, write=not load, count=n,
             wb=delta if w else None, loads=regs if load else 0)
    if load and regs >> 15:
        a.flags |= ACC_ENDS_TB
    return a


def _dual_exclusive(h1: int, h2: int, pc: int) -> Access:
    pu, wl = (h1 >> 7) & 3, (h1 >> 4) & 3
    rn, rt, rt2 = h1 & 0xF, (h2 >> 12) & 0xF, (h2 >> 8) & 0xF
    if pu == 1 and wl == 1 and (h2 >> 4) & 0xF in (0, 1):   # TBB/TBH
        half = (h2 >> 4) & 1
        a = _mem(rn, 0, 2 if half else 1, rm=h2 & 0xF, shift=half, pc=pc)
        a.flags |= ACC_ENDS_TB
        return a
    if pu == 0 and wl in (0, 1) or pu == 1 and wl in (0, 1):
        return Access(ACC_ACCESS | ACC_UNMODELLED, clobber=ALL_REGS)   # exclusives
    p, u, w, load = (h1 >> 8) & 1, (h1 >> 7) & 1, (h1 >> 5) & 1, (h1 >> 4) & 1
    imm = (h2 & 0xFF) * 4 * (1 if u else -1)
    if rn == 15 and (w or not load):
        return Access(ACC_ACCESS | ACC_UNMODELLED, clobber=ALL_REGS)
    return _mem(rn, imm if p else 0, 4, write=not load, count=2, wb=imm if w else None,
                loads=_bits([rt, rt2]) if load else 0, pc=pc)


def _data_imm32(h1: int, h2: int, pc: int) -> Access:
    rn, rd = h1 & 0xF, (h2 >> 8) & 0xF
    if (h1 >> 9) & 1:                                  # plain binary immediate
        op = (h1 >> 4) & 0x1F
        imm12 = ((h1 >> 10) & 1) << 11 | ((h2 >> 12) & 7) << 8 | (h2 & 0xFF)
        if op in (0b00000, 0b01010):                   # ADDW / SUBW (ADR.W when rn is pc)
            k = imm12 if op == 0 else -imm12
            return _affine(rd, -1, ((pc + 4) & ~3) + k) if rn == 15 else _affine(rd, rn, k)
        if op == 0b00100:                              # MOVW
            return _affine(rd, -1, (h1 & 0xF) << 12 | imm12)
        return _clobber(rd)
    op, s = (h1 >> 5) & 0xF, (h1 >> 4) & 1
    if rd == 15 and s:
        return Access()                                # TST/TEQ/CMN/CMP
    imm = _signed(_thumb_expand_imm(h1, h2))
    if op == 8 and rn != 15:
        return _affine(rd, rn, imm)                    # ADD.W
    if op == 13 and rn != 15:
        return _affine(rd, rn, -imm)                   # SUB.W
    if op == 2 and rn == 15:
        return _affine(rd, -1, imm)                    # MOV.W
    return _clobber(rd)


def _coprocessor(h1: int, h2: int, pc: int) -> Access:
    if ((h2 >> 8) & 0xE) != 0xA:
        return Access(ACC_ACCESS | ACC_UNMODELLED, clobber=ALL_REGS)
    rn, rt, load = h1 & 0xF, (h2 >> 12) & 0xF, (h1 >> 4) & 1
    if ((h1 >> 9) & 0x7) == 0b110:                     # extension register load/store
        if (h1 & 0x01E0) == 0x0040:                    # VMOV two core registers
            return _clobber(rt, rn) if load else Access()
        p, u, w = (h1 >> 8) & 1, (h1 >> 7) & 1, (h1 >> 5) & 1
        size = 8 if (h2 >> 8) & 1 else 4
        imm8 = h2 & 0xFF
        if p and not w:                                # VLDR/VSTR
            return _mem(rn, imm8 * 4 if u else -imm8 * 4, size, write=not load, pc=pc)
        if rn == 15 or p == u or (size == 8 and imm8 & 1):
            return Access(ACC_ACCESS | ACC_UNMODELLED, clobber=ALL_REGS)
        n = imm8 // (size // 4)
        delta = imm8 * 4 if u else -imm8 * 4
        return _mem(rn, 0 if u else delta, size, write=not load, count=n,
                    wb=delta if w else None)
    if ((h1 >> 8) & 0xF) == 0xE and h2 & 0x10 and load:   # VMOV core <- single, VMRS
        return _clobber(rt)
    return Access()


def thumb_access(h1: int, h2: int, pc: int) -> Access:
    """The data accesses and register effects of the Thumb instruction at ``pc``."""
    if thumb_is32(h1):
        return _thumb32_access(h1, h2, pc)
    return _thumb16_access(h1, pc)


def _it_length(h: int) -> int:
    """Instructions an IT instruction (0xBFxx, mask != 0) makes conditional."""
    mask = h & 0xF
    return 4 - ((mask & -mask).bit_length() - 1) if h >> 8 == 0xBF and mask else 0


# -- RV32IMC ---------------------------------------------------------------------

RV_DIV_CYCLES = 33


def _rv_reads(ins: int, size: int) -> tuple[int, ...]:
    """Integer registers an RV32IMC instruction reads (x0 excluded)."""
    if size == 4:
        op = ins & 0x7F
        rs1, rs2 = (ins >> 15) & 31, (ins >> 20) & 31
        if op in (0x33, 0x23, 0x63):
            regs = (rs1, rs2)
        elif op in (0x13, 0x03, 0x67) or (op == 0x73 and ((ins >> 12) & 7) in (1, 2, 3)):
            regs = (rs1,)
        else:
            regs = ()
    else:
        h = ins
        q, f3 = h & 3, h >> 13
        rd = (h >> 7) & 31
        r1p, r2p = 8 + ((h >> 7) & 7), 8 + ((h >> 2) & 7)
        rs2 = (h >> 2) & 31
        if q == 0:
            regs = {0: (2,), 2: (r1p,), 6: (r1p, r2p)}.get(f3, ())
        elif q == 1:
            if f3 == 0:
                regs = (rd,)
            elif f3 == 3:
                regs = (2,) if rd == 2 else ()
            elif f3 == 4:
                regs = (r1p, r2p) if ((h >> 10) & 3) == 3 else (r1p,)
            elif f3 in (6, 7):
                regs = (r1p,)
            else:
                regs = ()
        else:
            if f3 == 0:
                regs = (rd,)
            elif f3 == 2:
                regs = (2,)
            elif f3 == 4:
                regs = (rd, rs2) if rs2 else (rd,)   # JR/JALR/MV/ADD
                if not (h >> 12) & 1 and rs2:
                    regs = (rs2,)                    # C.MV reads rs2 only
            elif f3 == 6:
                regs = (2, rs2)
            else:
                regs = ()
    return tuple(r for r in regs if r)


def rv_decode(ins: int, size: int, model: TimingModel | None = None):
    """(base cycles, result register, extra stall if the next reads it).

    ``model`` supplies the per-core costs (default: "rv32-e31")."""
    m = model or MODELS["rv32-e31"]
    if size == 4:
        op = ins & 0x7F
        rd = (ins >> 7) & 31
        f3 = (ins >> 12) & 7
        if op == 0x03:
            return 1, rd, m.rv_load_word_stall if f3 == 2 else m.rv_load_sub_stall
        if op == 0x33 and (ins >> 25) == 1:
            if f3 < 4:                               # MUL, MULH, MULHSU, MULHU
                return (m.rv_mul_cycles if f3 == 0 else m.rv_mulh_cycles), rd, m.rv_mul_stall
            return m.rv_div_cycles, -1, 0            # DIV/REM
        if op in (0x6F, 0x67):
            return m.rv_jump_cycles, -1, 0           # JAL/JALR
        return 1, -1, 0
    h = ins
    q, f3 = h & 3, h >> 13
    if q == 0 and f3 == 2:
        return 1, 8 + ((h >> 2) & 7), m.rv_load_word_stall   # C.LW
    if q == 2 and f3 == 2:
        return 1, (h >> 7) & 31, m.rv_load_word_stall        # C.LWSP
    if q == 1 and f3 in (1, 5):
        return m.rv_jump_cycles, -1, 0               # C.JAL (RV32), C.J
    if q == 2 and f3 == 4 and (h >> 7) & 31 and not (h >> 2) & 31:
        return m.rv_jump_cycles, -1, 0               # C.JR, C.JALR
    return 1, -1, 0


# -- RV32IMC(+FD) data accesses, per instruction (the static access watch) ------
#
# The same descriptors as Thumb's, over x1..x31 (clobber bit r = xr). x0 never
# appears: a read of x0 becomes the constant 0 (rn/rs -1), a write to it has no
# effect. No IT blocks; no PC-relative loads (AUIPC makes a constant instead).
# Every instruction that may end a translation block (branches, jumps, ECALL/
# EBREAK/MRET/WFI, FENCE.I, CSR instructions: QEMU ends the block after each)
# is flagged ENDS_TB; LR/SC/AMOs are UNMODELLED (a run that executes one falls
# back to the every-access watch).

RV_ALL_REGS = 0xFFFFFFFE


def _sext(x: int, bits: int) -> int:
    return x - (1 << bits) if x >> (bits - 1) & 1 else x


def _rv_reg(r: int) -> int:
    """A source register: -1 for x0 (the constant 0)."""
    return r if r else -1


def _rv_set(rd: int, rs: int, k: int) -> Access:
    """rd = rs + k (rs -1: the constant k); nothing when rd is x0."""
    return Access(rd=rd, rs=_rv_reg(rs), k=k) if rd else Access()


def _rv_sum(rd: int, rs: int, rs2: int, scale: int) -> Access:
    """rd = rs + rs2 * scale (x0 operands folded in)."""
    if not rd:
        return Access()
    if not rs2:
        return _rv_set(rd, rs, 0)
    if not rs and scale == 1:
        return _rv_set(rd, rs2, 0)
    return Access(ACC_ADDREG, rd=rd, rs=_rv_reg(rs), rs2=rs2, k=scale)


def _rv_clobber(rd: int) -> Access:
    return Access(clobber=(1 << rd) & RV_ALL_REGS)


def _rv_mem(rs1: int, imm: int, size: int, rd: int = 0, write: bool = False) -> Access:
    """An access of ``size`` bytes at rs1 + imm; a load into integer rd clobbers it."""
    return Access(ACC_ACCESS | (ACC_WRITE if write else 0), rn=_rv_reg(rs1), imm=imm, size=size,
                  count=1, clobber=(1 << rd) & RV_ALL_REGS)


RV_UNMODELLED = Access(ACC_ACCESS | ACC_UNMODELLED, clobber=RV_ALL_REGS)
RV_LOAD_SIZES = {0: 1, 1: 2, 2: 4, 4: 1, 5: 2}       # LB LH LW LBU LHU
RV_FP_SIZES = {2: 4, 3: 8}                          # FLW/FSW, FLD/FSD


def _rv32_access(ins: int, pc: int) -> Access:
    op, rd, f3 = ins & 0x7F, (ins >> 7) & 31, (ins >> 12) & 7
    rs1, rs2, imm_i = (ins >> 15) & 31, (ins >> 20) & 31, _sext(ins >> 20, 12)
    imm_s = _sext((ins >> 25) << 5 | rd, 12)
    if op == 0x03:                                      # loads
        return _rv_mem(rs1, imm_i, RV_LOAD_SIZES[f3], rd) if f3 in RV_LOAD_SIZES else RV_UNMODELLED
    if op == 0x23:                                      # stores
        return _rv_mem(rs1, imm_s, 1 << f3, write=True) if f3 < 3 else RV_UNMODELLED
    if op in (0x07, 0x27):                              # FLW/FLD, FSW/FSD
        if f3 not in RV_FP_SIZES:
            return RV_UNMODELLED
        return _rv_mem(rs1, imm_i if op == 0x07 else imm_s, RV_FP_SIZES[f3], write=op == 0x27)
    if op == 0x13:                                      # OP-IMM
        if f3 == 0:
            return _rv_set(rd, rs1, imm_i)              # ADDI, LI, MV
        if f3 == 1 and not ins >> 25:
            return _rv_sum(rd, 0, rs1, 1 << rs2)        # SLLI: rd = rs1 << shamt
        return _rv_clobber(rd)
    if op == 0x33:                                      # OP
        if ins >> 25 == 0 and f3 == 0:
            return _rv_sum(rd, rs1, rs2, 1)             # ADD
        if ins >> 25 == 0x20 and f3 == 0:
            return _rv_sum(rd, rs1, rs2, -1)            # SUB
        return _rv_clobber(rd)
    if op == 0x37:
        return _rv_set(rd, 0, _sext(ins & 0xFFFFF000, 32))          # LUI
    if op == 0x17:
        return _rv_set(rd, 0, pc + _sext(ins & 0xFFFFF000, 32))     # AUIPC
    if op in (0x6F, 0x67):                              # JAL, JALR: rd = the return address
        a = _rv_set(rd, 0, pc + 4)
        a.flags |= ACC_ENDS_TB
        return a
    if op == 0x63:
        return Access(ACC_ENDS_TB)                      # branches
    if op == 0x0F:
        return Access(ACC_ENDS_TB if f3 == 1 else 0)    # FENCE.I ends the block; FENCE
    if op == 0x73:                                      # ECALL/EBREAK/MRET/WFI, CSR*
        return Access(ACC_ENDS_TB, clobber=(1 << rd) & RV_ALL_REGS if f3 else 0)
    if op == 0x2F:
        return RV_UNMODELLED                            # LR/SC/AMO*
    if op == 0x53:                                      # OP-FP: FEQ/FLT/FLE, FCVT.W, FMV.X/FCLASS
        return _rv_clobber(rd) if ins >> 27 in (0x14, 0x18, 0x1C) else Access()
    if op in (0x43, 0x47, 0x4B, 0x4F):
        return Access()                                 # fused multiply-add: FP registers only
    return Access(clobber=RV_ALL_REGS)


def _rv16_access(h: int, pc: int) -> Access:
    q, f3 = h & 3, h >> 13
    b = lambda hi, lo: (h >> lo) & ((1 << (hi - lo + 1)) - 1)    # noqa: E731 (bits hi..lo)
    rd, rs2, r1p, r2p = b(11, 7), b(6, 2), 8 + b(9, 7), 8 + b(4, 2)
    imm6 = _sext(b(12, 12) << 5 | b(6, 2), 6)
    if q == 0:
        word = b(12, 10) << 3 | b(6, 6) << 2 | b(5, 5) << 6              # C.LW/C.SW/C.FLW/C.FSW
        double = b(12, 10) << 3 | b(6, 5) << 6                           # C.FLD/C.FSD
        if f3 == 0:                                    # C.ADDI4SPN
            imm = b(12, 11) << 4 | b(10, 7) << 6 | b(6, 6) << 2 | b(5, 5) << 3
            return _rv_set(r2p, 2, imm) if imm else Access(clobber=RV_ALL_REGS)
        return {1: lambda: _rv_mem(r1p, double, 8), 2: lambda: _rv_mem(r1p, word, 4, r2p),
                3: lambda: _rv_mem(r1p, word, 4), 5: lambda: _rv_mem(r1p, double, 8, write=True),
                6: lambda: _rv_mem(r1p, word, 4, write=True),
                7: lambda: _rv_mem(r1p, word, 4, write=True)}.get(
                    f3, lambda: Access(clobber=RV_ALL_REGS))()
    if q == 1:
        if f3 == 0:
            return _rv_set(rd, rd, imm6)               # C.ADDI, C.NOP
        if f3 in (1, 5):                               # C.JAL (ra = pc + 2), C.J
            a = _rv_set(1, 0, pc + 2) if f3 == 1 else Access()
            a.flags |= ACC_ENDS_TB
            return a
        if f3 == 2:
            return _rv_set(rd, 0, imm6)                # C.LI
        if f3 == 3 and rd == 2:                        # C.ADDI16SP
            return _rv_set(2, 2, _sext(b(12, 12) << 9 | b(6, 6) << 4 | b(5, 5) << 6 |
                                       b(4, 3) << 7 | b(2, 2) << 5, 10))
        if f3 == 3:
            return _rv_set(rd, 0, imm6 << 12)          # C.LUI
        if f3 == 4:
            if b(11, 10) == 3 and not b(12, 12) and b(6, 5) == 0:
                return _rv_sum(r1p, r1p, r2p, -1)      # C.SUB
            return _rv_clobber(r1p)                    # C.SRLI/SRAI/ANDI/XOR/OR/AND
        return Access(ACC_ENDS_TB)                     # C.BEQZ, C.BNEZ
    if f3 == 0:
        return _rv_sum(rd, 0, rd, 1 << b(6, 2)) if not b(12, 12) else _rv_clobber(rd)  # C.SLLI
    if f3 in (1, 3):                                   # C.FLDSP, C.FLWSP
        if f3 == 1:
            return _rv_mem(2, b(12, 12) << 5 | b(6, 5) << 3 | b(4, 2) << 6, 8)
        return _rv_mem(2, b(12, 12) << 5 | b(6, 4) << 2 | b(3, 2) << 6, 4)
    if f3 == 2:                                        # C.LWSP
        return _rv_mem(2, b(12, 12) << 5 | b(6, 4) << 2 | b(3, 2) << 6, 4, rd)
    if f3 == 4:
        if not rs2:                                    # C.JR, C.JALR, C.EBREAK
            a = _rv_set(1, 0, pc + 2) if b(12, 12) and rd else Access()
            a.flags |= ACC_ENDS_TB
            return a
        return _rv_sum(rd, rd, rs2, 1) if b(12, 12) else _rv_set(rd, rs2, 0)   # C.ADD, C.MV
    if f3 == 5:                                        # C.FSDSP
        return _rv_mem(2, b(12, 10) << 3 | b(9, 7) << 6, 8, write=True)
    return _rv_mem(2, b(12, 9) << 2 | b(8, 7) << 6, 4, write=True)    # C.SWSP, C.FSWSP


def rv_access(ins: int, size: int, pc: int) -> Access:
    """The data accesses and register effects of the RV32 instruction at ``pc``
    (``ins``: the 16-bit or 32-bit encoding)."""
    return _rv32_access(ins, pc) if size == 4 else _rv16_access(ins, pc)


def _record_access(access: np.ndarray, i: int, a: Access, size: int, it_left: int,
                   it_starts: int) -> int:
    """Store ``a`` at halfword ``i``; returns the IT-block instructions still to come."""
    flags = a.flags | ACC_INSN | (ACC_IN_IT if it_left else 0)
    access[i] = (_signed(a.imm & 0xFFFFFFFF), a.wb, _signed(a.k & 0xFFFFFFFF), a.clobber,
                 a.rn, a.rm, a.rd, a.rs, a.shift, a.size, min(a.count, 255), flags, size, a.rs2)
    return it_starts or max(0, it_left - 1)


# -- building the tables --------------------------------------------------------


@dataclass
class CostTables:
    base: int                 # address of halfword 0
    cum_n: np.ndarray         # uint32, nhw + 1
    cum_c: np.ndarray         # uint32, nhw + 1
    fresh_adj: np.ndarray     # uint8, nhw
    model: TimingModel
    access: np.ndarray | None = None   # ACCESS_DTYPE, nhw: the static access watch

    @property
    def nhw(self) -> int:
        return len(self.fresh_adj)


def build_tables(text: bytes, base: int, arch: str, model: TimingModel,
                 code_starts: list[int], data_ranges: list[tuple[int, int]]) -> CostTables:
    """Decode ``text`` (loaded at ``base``) into prefix-sum cost arrays.

    ``code_starts``: addresses where an instruction is known to start (function
    symbols, ``$t``/``$a``/``$x`` mapping symbols); ``data_ranges``: address
    ranges that hold data, not code (from ``$d`` up to the next code symbol).
    """
    nhw = len(text) // 2
    hw = np.frombuffer(text[: nhw * 2], dtype="<u2")
    n = np.zeros(nhw, dtype=np.uint32)
    c = np.zeros(nhw, dtype=np.uint32)
    adj = np.zeros(nhw, dtype=np.uint8)
    access = np.zeros(nhw, dtype=ACCESS_DTYPE)
    it_left = 0

    is_data = np.zeros(nhw + 1, dtype=bool)
    for lo, hi in data_ranges:
        a, b = max(0, (lo - base) // 2), min(nhw, (hi - base + 1) // 2)
        if a < b:
            is_data[a:b] = True
    sync = np.zeros(nhw + 1, dtype=bool)
    for s in code_starts:
        i = (s - base) // 2
        if 0 <= i < nhw:
            sync[i] = True

    hwl = hw.tolist()
    datal = is_data.tolist()
    syncl = sync.tolist()
    i = 0
    prev = None          # (kind, rt) of the linear predecessor, or None
    rv_pending = None    # (result reg, stall, index) of the RV predecessor
    while i < nhw:
        if datal[i]:
            prev = rv_pending = None
            it_left = 0
            i += 1
            continue
        h1 = hwl[i]
        if arch == "arm":
            size = 4 if thumb_is32(h1) else 2
        else:
            size = 4 if (h1 & 3) == 3 else 2
        if size == 4 and (i + 1 >= nhw or syncl[i + 1] or datal[i + 1]):
            # a 32-bit instruction cannot straddle a symbol: treat as 16-bit junk
            size = 2
        if arch == "arm":
            h2 = hwl[i + 1] if size == 4 else 0
            _, cyc, kind, rt, rn, rm = thumb_decode(h1, h2)
            if kind == LOAD and prev is not None and prev[0] == LOAD and prev[1] not in (rn, rm):
                cyc -= 1          # pipelined behind the previous LDR
                adj[i] = 1        # ... unless entered by a branch
            prev = (kind, rt)
            c[i] = cyc
            it_left = _record_access(access, i, thumb_access(h1, h2, base + 2 * i), size,
                                     it_left, _it_length(h1) if size == 2 else 0)
        else:
            ins = h1 | (hwl[i + 1] << 16) if size == 4 else h1
            cyc, rd, stall = rv_decode(ins, size, model)
            if rv_pending is not None and rv_pending[0] in _rv_reads(ins, size):
                c[rv_pending[2]] += rv_pending[1]   # the predecessor stalls us
            rv_pending = (rd, stall, i) if rd > 0 and stall else None
            c[i] += cyc
            _record_access(access, i, rv_access(ins, size, base + 2 * i), size, 0, 0)
        n[i] = 1
        i += size // 2
    cum_n = np.zeros(nhw + 1, dtype=np.uint32)
    cum_c = np.zeros(nhw + 1, dtype=np.uint32)
    np.cumsum(n, out=cum_n[1:])
    np.cumsum(c, out=cum_c[1:])
    return CostTables(base, cum_n, cum_c, adj, model, access)
