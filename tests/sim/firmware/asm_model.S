@ Hand-written Thumb-2 "layers" whose instruction and cycle counts are
@ computed by hand in tests/sim/test_unicorn.py (cortex-m4 model, P = 2).
@ Every layer is measured from tb_mark(i) to tb_mark(i+1): it contains the
@ return from tb_mark (taken, +P), the snippet, `movs/mov.w r0, #id`,
@ `bl tb_mark` (1+P) and tb_mark's `bx lr` (1): snippet + 3 instructions,
@ snippet cycles + 3 + 2P.
    .syntax unified
    .cpu cortex-m4
    .fpu fpv4-sp-d16
    .thumb

    .section .text.tb_model_invoke,"ax",%progbits
    .global tb_model_invoke
    .type tb_model_invoke, %function
    .thumb_func
tb_model_invoke:
    push    {r4, lr}
    movs    r0, #0
    bl      tb_mark

    @ layer 0: 100 iterations of 4 ALU ops + subs + bne (taken 99 times)
    movs    r4, #100
1:  adds    r1, r1, #1
    eors    r2, r2, r1
    lsls    r3, r1, #2
    orrs    r3, r3, r2
    subs    r4, r4, #1
    bne     1b
    movs    r0, #1
    bl      tb_mark

    @ layer 1: loads, pipelined when independent (cycles in comments)
    ldr     r1, =tb_io_desc     @ 2
    ldr     r2, [r1, #0]        @ 2: its address comes from the previous load
    ldr     r3, [r1, #4]        @ 1: pipelined
    ldr     r0, [r1, #8]        @ 1: pipelined (r0 = the arena, where the input is)
    ldr     r2, [r0, #0]        @ 2: address from the previous load
    str     r2, [r0, #4]        @ 1
    ldr     r3, [r0, #8]        @ 2: nothing pipelines after a store
    movs    r0, #2
    bl      tb_mark

    @ layer 2: IT block, two instructions skipped, one executed
    movs    r1, #1
    cmp     r1, #2
    itte    eq
    addeq   r2, r2, #1          @ skipped
    addeq   r3, r3, #1          @ skipped
    addne   r2, r2, #2          @ executed
    movs    r0, #3
    bl      tb_mark

    @ layer 3: one unconditional taken branch over two nops
    b       2f
    nop
    nop
2:  movs    r0, #4
    bl      tb_mark

    @ layer 4: multiply, divide, push/pop, FPU
    movs    r3, #7
    mul     r2, r3, r2          @ 1
    sdiv    r2, r2, r3          @ 12 (worst case charged)
    umull   r0, r1, r2, r3      @ 1
    push    {r4, r5, r6}        @ 1+3
    pop     {r4, r5, r6}        @ 1+3
    vadd.f32 s0, s1, s2         @ 1
    vmla.f32 s0, s1, s2         @ 3
    vdiv.f32 s0, s1, s2         @ 14
    vmov    r0, s0              @ 1
    mov.w   r0, #-1
    bl      tb_mark

    @ output[i] = input[i] + 1 for the 16 bytes
    ldr     r1, =tb_io_desc
    ldr     r2, [r1, #24]       @ input (tensors[0].data)
    ldr     r3, [r1, #32]       @ output (tensors[1].data)
    movs    r1, #0
3:  ldrb    r0, [r2, r1]
    adds    r0, r0, #1
    strb    r0, [r3, r1]
    adds    r1, r1, #1
    cmp     r1, #16
    bne     3b
    pop     {r4, pc}
    .ltorg
    .size tb_model_invoke, .-tb_model_invoke
