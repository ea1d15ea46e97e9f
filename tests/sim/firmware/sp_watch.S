@ Stack-relative accesses for tests/sim/test_unicorn_sp_watch.py: the static
@ access watch charges nothing for an access at SP plus an aligned offset
@ while SP is word-aligned and far from flash (native_hook.c, tb_make_lean);
@ these layers break each condition, and the test wants the every-access
@ hook's counts. Uses access_watch_io.c (5 layers, tb_aw_arena).
@   0: plain spills, PUSH/POP, LDRD/STRD at SP (nothing to charge)
@   1: SP moved to 2 mod 4 with MOV: its single loads and stores are misaligned
@      (LDM/STM/LDRD/STRD would fault: not used there)
@   2: SP pointing into flash data: the loads are flash reads
@   3: SP moved by an unaligned amount inside the block, then accessed
@   4: SP aligned in SRAM, offsets not aligned to the access size
    .syntax unified
    .cpu cortex-m4
    .fpu fpv4-sp-d16
    .thumb

    .macro NEXT_LAYER id
    movs    r0, #\id
    bl      tb_mark
    .endm

    .macro SPILLS
    str     r6, [sp, #4]
    ldr     r7, [sp, #4]
    strh    r6, [sp, #10]
    ldrh    r7, [sp, #10]
    push    {r6, r7}
    pop     {r6, r7}
    strd    r6, r7, [sp, #16]
    ldrd    r6, r7, [sp, #16]
    .endm

    .macro SINGLES
    str     r6, [sp, #4]
    ldr     r7, [sp, #4]
    strh    r6, [sp, #10]
    ldrh    r7, [sp, #10]
    .endm

    .section .text.tb_model_invoke,"ax",%progbits
    .global tb_model_invoke
    .type tb_model_invoke, %function
    .thumb_func
tb_model_invoke:
    push    {r4-r11, lr}
    mov     r8, sp                  @ the real stack, restored after each layer
    movs    r6, #1
    movs    r7, #2

    NEXT_LAYER 0
    sub     sp, #64
    movs    r3, #10
1:  SPILLS
    subs    r3, #1
    bne     1b
    mov     sp, r8

    NEXT_LAYER 1
    ldr     r4, =tb_aw_arena + 256 + 2
    mov     sp, r4                  @ SP at 2 mod 4
    movs    r3, #10
2:  SINGLES
    subs    r3, #1
    bne     2b
    mov     sp, r8

    NEXT_LAYER 2
    ldr     r4, =tb_sw_flash + 64
    mov     sp, r4                  @ SP in flash: the loads read flash
    movs    r3, #10
3:  ldr     r7, [sp, #4]
    ldrh    r7, [sp, #10]
    ldrd    r6, r7, [sp, #16]
    .irp    off, 256, 384, 512, 640, 768, 896, 1024, 1152, 1280, 1408, 1536, 1664, 1792, 1920
    ldr     r7, [sp, #\off]          @ more lines than the data cache holds: misses every pass
    .endr
    subs    r3, #1
    bne     3b
    mov     sp, r8

    NEXT_LAYER 3
    ldr     r4, =tb_aw_arena + 256
    mov     sp, r4
    movs    r3, #10
4:  add     sp, sp, #4
    sub     sp, sp, #4
    mov     r5, sp
    adds    r5, #1
    mov     sp, r5                  @ SP = entry SP + 1 inside the block
    str     r6, [sp, #4]
    ldr     r7, [sp, #8]
    mov     sp, r4
    subs    r3, #1
    bne     4b
    mov     sp, r8

    NEXT_LAYER 4
    ldr     r4, =tb_aw_arena + 256
    mov     sp, r4
    movs    r3, #10
5:  ldr     r7, [sp, #2]            @ a word at an offset of 2: misaligned
    ldrh    r7, [sp, #1]            @ a halfword at an odd offset
    str     r7, [sp, #6]
    subs    r3, #1
    bne     5b
    mov     sp, r8

    mvn     r0, #0                  @ TB_MARK_END
    bl      tb_mark
    pop     {r4-r11, pc}
    .ltorg
    .size tb_model_invoke, . - tb_model_invoke

    .section .rodata.tb_sw_flash,"a",%progbits
    .balign 64
tb_sw_flash:
    .space  2048, 0x3c
