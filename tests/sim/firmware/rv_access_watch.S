# Data accesses of every kind the RV32 static access watch resolves, for
# tests/sim/test_rv_static_watch.py, which runs this firmware with the
# every-access memory hook and with the static watch and wants the same
# counts (instructions, cycles, misaligned accesses, flash reads) per layer.
#   0: 32-bit loads and stores of every width, misaligned in SRAM; bases moved
#      by ADDI/MV/LI, ADD and SUB of registers, SLLI, LUI+ADDI and AUIPC
#   1: compressed forms (C.LW/C.SW/C.LWSP/C.SWSP, C.ADDI/C.ADDI16SP/
#      C.ADDI4SPN/C.LI/C.LUI/C.MV/C.ADD/C.SUB/C.SLLI) over flash and the stack
#   2: bases no block resolves from its entry registers: loaded in the block
#      (resolved from the exit registers) or computed by MUL/XOR (a code hook)
#   3: (-DWITH_AMO) an AMOADD.W, which the decoder does not model
#      (-DWITH_FP, -march=rv32imafdc) FLW/FSW/FLD/FSD and their compressed forms
    .macro NEXT_LAYER id
    li      a0, \id
    call    tb_mark
    .endm

    .section .text.tb_model_invoke,"ax",@progbits
    .global tb_model_invoke
    .type tb_model_invoke, @function
tb_model_invoke:
    addi    sp, sp, -16
    sw      ra, 12(sp)
    sw      s0, 8(sp)
    sw      s1, 4(sp)
    sw      s2, 0(sp)
    lla     s0, tb_aw_arena + 128   # SRAM scratch
    lla     s1, tb_aw_flash         # 1 KiB of flash data

    NEXT_LAYER 0
    .option push
    .option norvc
    li      s2, 20
1:  mv      t0, s0
    lw      t1, 1(t0)               # word at 1 mod 4
    lw      t1, 2(t0)               # word at 2 mod 4
    lh      t1, 3(t0)               # halfword at an odd address
    lhu     t1, 5(t0)
    lb      t1, 3(t0)               # a byte is never misaligned
    lbu     t1, 7(t0)
    sw      t1, 5(t0)
    sh      t1, 7(t0)
    sb      t1, 9(t0)
    addi    t0, t0, 3
    lw      t1, -2(t0)              # base + 1
    li      t2, 6
    add     t3, t0, t2              # a register sum: base + 9
    lw      t1, 0(t3)
    sub     t3, t3, t2              # base + 3
    lh      t1, 2(t3)               # base + 5
    slli    t4, t2, 2               # 24
    add     t4, s0, t4
    lw      t1, 2(t4)               # base + 26
    lui     t5, %hi(tb_aw_arena)    # a constant base
    addi    t5, t5, %lo(tb_aw_arena)
    lw      t1, 131(t5)             # base + 3
.Lpc0:
    auipc   t6, %pcrel_hi(tb_aw_flash)
    lw      t1, %pcrel_lo(.Lpc0)(t6)    # flash, through AUIPC
    lh      t1, 1(s1)                   # flash, odd halfword
    addi    s2, s2, -1
    bnez    s2, 1b
    .option pop

    NEXT_LAYER 1
    li      s2, 8
    mv      a2, s1
2:  c.mv    a3, a2
    c.lw    a4, 0(a3)
    c.lw    a4, 4(a3)
    lw      a4, 1(a3)               # misaligned word in flash
    lh      a4, 3(a3)
    lbu     a4, 33(a3)
    c.addi  a3, 8
    c.lw    a4, 0(a3)
    c.li    a5, 12
    c.add   a5, a3                  # a3 + 12
    c.lw    a4, 0(a5)
    c.sub   a5, a3                  # 12
    c.slli  a5, 2                   # 48
    c.add   a5, a2
    c.lw    a4, 4(a5)               # a2 + 52
    c.lui   a5, 1
    add     a5, a5, a2
    addi    a5, a5, -2048
    lw      a4, -2028(a5)           # a2 + 20
    c.addi16sp sp, -32
    c.swsp  a4, 4(sp)
    c.lwsp  a4, 4(sp)
    c.addi4spn a5, sp, 8
    c.sw    a4, 0(a5)
    sw      a4, 1(a5)               # misaligned on the stack
    c.lwsp  a4, 8(sp)
    c.addi16sp sp, 32
    addi    a2, a2, 64
    addi    s2, s2, -1
    bnez    s2, 2b

    NEXT_LAYER 2
    li      s2, 6
    addi    sp, sp, -16
    sw      s0, 0(sp)
3:  lw      t0, 0(sp)               # a base loaded in the block
    lw      t1, 1(t0)               # (before a hooked access: hooked too)
    mul     t2, s2, s2
    add     t3, s0, t2              # an index from MUL
    lh      t1, 1(t3)
    xor     t3, t3, t2              # ... and the base lost after the access: a code hook
    addi    t0, t0, 4
    sw      t0, 4(sp)
    lw      t1, 3(t0)               # from the exit registers
    lw      t1, -1(t0)
    addi    s2, s2, -1
    bnez    s2, 3b
    addi    sp, sp, 16

    NEXT_LAYER 3
#ifdef WITH_AMO
    li      t2, 1
    amoadd.w t1, t2, (s0)
#endif
#ifdef WITH_FP
    li      t0, 0x6000              # mstatus.FS = dirty: the FPU on
    csrs    mstatus, t0
    mv      a5, s0
    flw     ft0, 1(a5)
    fsw     ft0, 5(a5)
    fld     fa0, 4(a5)              # a doubleword at 4 mod 8
    fsd     fa0, 16(a5)
    c.flw   fa1, 4(a5)
    c.fsw   fa1, 8(a5)
    c.fld   fa2, 16(a5)
    c.fsd   fa2, 24(a5)
    addi    sp, sp, -16
    c.fswsp fa1, 4(sp)
    c.flwsp fa1, 4(sp)
    c.fsdsp fa2, 8(sp)
    c.fldsp fa2, 8(sp)
    addi    sp, sp, 16
    flw     ft1, 2(s1)              # flash
#endif
    lw      t1, 1(s0)
    li      a0, -1                  # TB_MARK_END
    call    tb_mark
    lw      s2, 0(sp)
    lw      s1, 4(sp)
    lw      s0, 8(sp)
    lw      ra, 12(sp)
    addi    sp, sp, 16
    ret
    .size tb_model_invoke, . - tb_model_invoke

    .section .rodata.tb_aw_flash,"a",@progbits
    .balign 64
    .global tb_aw_flash
tb_aw_flash:
    .space  1024, 0x5a
