@ Data accesses of every kind the static access watch resolves, for
@ tests/sim/test_unicorn_access_watch.py, which runs this firmware with the
@ every-access memory hook and with the static watch and wants the same
@ counts (instructions, cycles, misaligned accesses, flash wait) per layer.
@   0: misaligned SRAM loads/stores; bases moved by immediates and write-back
@   1: flash reads of every width: literal, LDRD, LDM, VLDR/VLDM (single and
@      double), PUSH/POP, TBB/TBH tables, odd halfwords
@   2: IT blocks: conditional loads and stores run and skipped, a conditional
@      base update
@   3: bases no block can resolve: loaded from memory, register sums, MUL
@   4: (with -DWITH_LDREX) an LDREX, which the decoder does not model
    .syntax unified
    .cpu cortex-m4
    .fpu fpv4-sp-d16
    .thumb

    .macro NEXT_LAYER id
    movs    r0, #\id
    bl      tb_mark
    .endm

    .section .text.tb_model_invoke,"ax",%progbits
    .global tb_model_invoke
    .type tb_model_invoke, %function
    .thumb_func
tb_model_invoke:
    push    {r4-r11, lr}
    vpush   {d8}
    ldr     r4, =tb_aw_arena + 128  @ SRAM scratch
    ldr     r11, =tb_aw_flash       @ 512 bytes of flash data

    NEXT_LAYER 0
    movs    r3, #20
1:  mov     r5, r4
    ldr     r6, [r5, #1]            @ word at 1 mod 4
    ldr.w   r7, [r5, #2]            @ word at 2 mod 4
    ldrh.w  r6, [r5, #3]            @ halfword at an odd address
    ldrb    r6, [r5, #3]            @ a byte is never misaligned
    str.w   r6, [r5, #5]
    strh.w  r6, [r5, #7]
    adds    r5, #3
    ldr     r6, [r5]                @ base + 3
    ldr     r6, [r5], #2            @ post-indexed: base + 3, then r5 = base + 5
    ldr     r6, [r5, #1]!           @ pre-indexed: base + 6
    movs    r2, #2
    ldr     r6, [r5, r2]            @ base + 8
    ldr.w   r6, [r5, r2, lsl #1]    @ base + 10
    sub.w   r5, r5, #1
    ldrsh.w r6, [r5]                @ base + 5
    mov     r7, r5
    ldr     r6, [r7, #2]            @ base + 7
    add     r7, sp, #4
    ldr     r6, [r7]
    stmia   r4!, {r6, r7}           @ LDM/STM with write-back
    subs    r4, #8
    ldmia   r4, {r6, r7}
    subs    r3, #1
    bne     1b

    NEXT_LAYER 1
    movs    r3, #8
    mov     r10, r11
2:  mov     r5, r10
    ldr     r6, [r5]
    ldr     r6, [r5, #4]
    ldrd    r6, r7, [r5, #8]
    ldmia   r5!, {r6, r7, r8, r9}   @ r5 = +16
    ldr     r6, =0x12345678         @ literal pool
    vldr    s0, [r5]
    vldr    d0, [r5, #4]            @ a doubleword at 4 mod 8
    vldmia  r5, {s0-s3}
    vldmia  r5, {d0-d1}
    ldrh.w  r6, [r5, #1]            @ odd halfword in flash
    ldr.w   r6, [r5, #2]
    ldrb.w  r6, [r5, #33]
    push    {r5, r6}
    pop     {r5, r6}
    movs    r6, #1
    tbb     [pc, r6]
3:  .byte   0, (4f - 3b) / 2
    .balign 2
4:  movs    r6, #1
    tbh     [pc, r6, lsl #1]
5:  .hword  0, (6f - 5b) / 2
6:  add     r10, #64
    subs    r3, #1
    bne     2b

    NEXT_LAYER 2
    movs    r3, #8
    mov     r5, r4
7:  tst     r3, #1
    ite     ne
    ldrne   r6, [r5, #1]            @ runs on odd passes: misaligned
    ldreq.w r6, [r11, #3]           @ runs on even passes: flash, misaligned
    it      ne
    addne   r5, #4                  @ a base the block cannot follow
    ldr     r6, [r5, #2]
    ittt    eq
    ldrheq.w r6, [r5, #1]
    streq   r6, [r5, #3]
    moveq   r7, r7
    subs    r3, #1
    bne     7b

    NEXT_LAYER 3
    movs    r3, #6
    sub     sp, #8
    str     r4, [sp]
8:  ldr     r5, [sp]                @ a base loaded in the block
    ldr     r6, [r5, #1]
    movs    r7, #3
    add     r5, r5, r7              @ a register sum
    ldrh    r6, [r5]
    lsls    r7, r3, #1
    ldr     r6, [r4, r7]            @ an index computed in the block
    mul     r8, r3, r3
    ldr.w   r6, [r4, r8]
    add     r5, r4, r3
    str     r5, [sp, #4]
    subs    r3, #1
    bne     8b
    add     sp, #8

    NEXT_LAYER 4
#ifdef WITH_LDREX
    ldrex   r6, [r4]
#endif
    ldr     r6, [r4, #1]
    mvn     r0, #0                  @ TB_MARK_END
    bl      tb_mark
    vpop    {d8}
    pop     {r4-r11, pc}
    .ltorg
    .size tb_model_invoke, . - tb_model_invoke

    .section .rodata.tb_aw_flash,"a",%progbits
    .balign 64
    .global tb_aw_flash
tb_aw_flash:
    .space  1024, 0x5a
