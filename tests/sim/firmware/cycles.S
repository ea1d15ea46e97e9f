@ One "layer" per instruction class, for the cycle-model tests
@ (tests/sim/test_cycles.py computes every expected count by hand from the
@ Cortex-M4 TRM, ARM DDI 0439B, Table 3-1 and section 3.3.2, and the FPU
@ chapter's Table 7-1).
@
@ Layer i runs from tb_mark(i) to tb_mark(i+1): the return from tb_mark
@ (bx lr, taken: 1+P), the snippet, `movs r0, #i+1` (1), `bl tb_mark` (1+P):
@ snippet + 3 instructions and snippet cycles + 3 + 2P.
@ r4 = the arena (64 input bytes, 16 output bytes, 48 spare), r5 = arena + 96,
@ set before the first mark; tb_mark (bx lr) clobbers nothing.
    .syntax unified
    .cpu cortex-m4
    .fpu fpv4-sp-d16
    .thumb

    .section .text.tb_model_invoke,"ax",%progbits
    .global tb_model_invoke
    .type tb_model_invoke, %function
    .thumb_func
tb_model_invoke:
    push    {r4-r7, lr}
    ldr     r4, =tb_cycles_arena
    add     r5, r4, #96
    movs    r0, #0
    bl      tb_mark

    @ layer 0, ALU: 12 single-cycle data-processing instructions
    adds    r1, r1, #1
    sub.w   r2, r1, r2, lsl #3
    ands    r2, r2, r1
    orr.w   r3, r2, #0xff00
    lsls    r3, r3, #2
    movw    r3, #0x1234
    movt    r3, #0x5678
    ubfx    r2, r3, #4, #8
    ssat    r2, #8, r3
    sxtb    r1, r2
    qadd8   r1, r1, r2
    clz     r1, r3
    movs    r0, #1
    bl      tb_mark

    @ layer 1, MUL/MLA: multiplies and long multiplies, 1 cycle each
    mul     r1, r2, r3
    mla     r1, r2, r3, r1
    mls     r1, r2, r3, r1
    smull   r1, r2, r3, r1
    umull   r1, r2, r3, r1
    smlal   r1, r2, r3, r3
    umlal   r1, r2, r3, r3
    movs    r0, #2
    bl      tb_mark

    @ layer 2, DSP: dual 16-bit MACs, halfword MACs, SIMD, 1 cycle each
    smlad   r1, r2, r3, r1
    smuad   r1, r2, r3
    smlabb  r1, r2, r3, r1
    smlawb  r1, r2, r3, r1
    smmla   r1, r2, r3, r1
    smlald  r1, r2, r3, r3
    sadd16  r1, r2, r3
    uxtab   r1, r2, r3
    movs    r0, #3
    bl      tb_mark

    @ layer 3, divide: 2..12 cycles by operand, the model charges 12
    movs    r1, #100
    movs    r2, #7
    udiv    r3, r1, r2
    sdiv    r3, r1, r2
    movs    r0, #4
    bl      tb_mark

    @ layer 4, LDR: 2 cycles, 1 when pipelined behind a load it does not depend on
    movs    r1, #4              @ 1
    ldr     r2, [r4, #0]        @ 2: after an ALU instruction
    ldr     r3, [r4, #4]        @ 1: pipelined
    ldrb    r6, [r4, #8]        @ 1: pipelined
    ldrsh   r7, [r4, #10]       @ 1: pipelined
    ldr     r2, [r4, r1]        @ 1: pipelined (register offset, r1 not from the previous load)
    ldr     r1, =tb_cycles_arena @ 1: PC-relative literal, pipelined
    ldr     r2, [r1, #4]        @ 2: its base comes from the previous load
    ldr     r3, [r4], #0        @ 2: base write-back: not pipelined
    ldr     r6, [r4, #16]       @ 2: nothing pipelines behind a write-back load
    ldrd    r1, r2, [r4, #24]   @ 3: 1 + N (N = 2)
    movs    r0, #5
    bl      tb_mark

    @ layer 5, STR: 1 cycle (the write buffer absorbs the data phase)
    str     r1, [r5]            @ 1
    strb    r2, [r5, #4]        @ 1
    strh.w  r3, [r5, #6]        @ 1
    ldr     r1, [r4, #0]        @ 2: nothing pipelines after a store
    str     r1, [r5, #8]        @ 1: after a load
    strd    r1, r2, [r5, #16]   @ 3: 1 + N
    movs    r0, #6
    bl      tb_mark

    @ layer 6, LDM/STM/PUSH/POP: 1 + N
    push    {r1, r2, r3}        @ 1 + 3
    pop     {r1, r2, r3}        @ 1 + 3
    stmia   r5!, {r1, r2}       @ 1 + 2
    ldmdb   r5!, {r1, r2}       @ 1 + 2
    push.w  {r1-r3, r6, r7, r8} @ 1 + 6
    pop.w   {r1-r3, r6, r7, r8} @ 1 + 6
    bl      cyc_helper          @ 1 + P; the helper: push {r4, lr} 1 + 2, pop {r4, pc} 1 + 2 + P
    movs    r0, #7
    bl      tb_mark

    @ layer 7, branches: not taken 1, taken 1 + P
    movs    r1, #0              @ 1
    cmp     r1, #1              @ 1
    beq     1f                  @ 1: not taken
    bne     2f                  @ 1 + P: taken
1:  nop
2:  cbnz    r1, 3f              @ 1: not taken
    cbz     r1, 3f              @ 1 + P: taken
    nop
3:  b.w     4f                  @ 1 + P
    nop
4:  movs    r2, #3              @ 1
5:  subs    r2, r2, #1          @ 1 (x3)
    bne     5b                  @ taken twice (1 + P), falls through once (1)
    movs    r0, #8
    bl      tb_mark

    @ layer 8, IT blocks: IT 1, every instruction in the block 1, executed or not
    movs    r1, #1              @ 1
    cmp     r1, #1              @ 1
    ite     eq                  @ 1
    addeq   r2, r2, #1          @ 1: executed
    addne   r2, r2, #2          @ 1: skipped
    itttt   ne                  @ 1
    addne   r2, r2, #1          @ 1: skipped (x4)
    addne   r2, r2, #1
    addne   r2, r2, #1
    addne   r2, r2, #1
    movs    r0, #9
    bl      tb_mark

    @ layer 9, VFP (FPv4-SP): add/sub/mul 1, MAC 3, divide and square root 14,
    @ single load/store 2, core<->FPU move 1, convert 1
    vmov    s0, r1              @ 1
    vcvt.f32.s32 s0, s0         @ 1
    vadd.f32 s1, s0, s0         @ 1
    vsub.f32 s2, s1, s0         @ 1
    vmul.f32 s3, s2, s1         @ 1
    vmla.f32 s3, s2, s1         @ 3
    vfma.f32 s3, s2, s1         @ 3
    vdiv.f32 s4, s3, s1         @ 14
    vsqrt.f32 s5, s4            @ 14
    vstr    s5, [r5]            @ 2
    vldr    s6, [r5]            @ 2
    vmov    r1, s6              @ 1
    movs    r0, #10
    bl      tb_mark

    @ layer 10, load pipelining across a taken branch: an LDR that follows an
    @ LDR in the text pipelines when reached linearly (1), not when reached by
    @ the loop's branch (2)
    movs    r3, #3              @ 1
    ldr     r1, [r4, #0]        @ 2
1:  ldr     r2, [r4, #4]        @ 1 the first time, 2 after the bne
    subs    r3, r3, #1          @ 1
    bne     1b                  @ 1 + P taken (twice), 1 not taken
    movs    r0, #11
    bl      tb_mark

    @ layer 11, misaligned loads and stores (3.3.2): a halfword-aligned word
    @ +1, a byte-aligned word +2, a byte-aligned halfword +1 (r5 is 16-aligned)
    ldr     r1, [r5, #1]        @ 2 + 2
    ldr     r2, [r5, #2]        @ 1 (pipelined) + 1
    ldrh    r3, [r5, #1]        @ 1 (pipelined) + 1
    str     r1, [r5, #3]        @ 1 + 2
    strh    r2, [r5, #5]        @ 1 + 1
    ldr     r1, [r5, #4]        @ 2 (aligned; nothing pipelines after a store)
    mov.w   r0, #-1
    bl      tb_mark

    @ output[i] = input[i] for 16 bytes
    movs    r1, #0
2:  ldrb    r0, [r4, r1]
    add     r2, r4, #64
    strb    r0, [r2, r1]
    adds    r1, r1, #1
    cmp     r1, #16
    bne     2b
    pop     {r4-r7, pc}
    .ltorg
    .size tb_model_invoke, .-tb_model_invoke

    .section .text.cyc_helper,"ax",%progbits
    .type cyc_helper, %function
    .thumb_func
cyc_helper:
    push    {r4, lr}
    pop     {r4, pc}
    .size cyc_helper, .-cyc_helper
