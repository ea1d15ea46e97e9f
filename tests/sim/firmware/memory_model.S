@ One "layer" per memory-system effect, for tests/sim/test_memory_model.py,
@ in pairs whose code is identical but for one immediate (iterations or the
@ table's address), so the difference of their memory cycles is the effect
@ alone; the test works it out from the reference manual's numbers.
@   0/1: a 32-byte loop (fits any I-cache) run 1 / 50 times
@   2/3: a 1280-byte loop (fits no 1 KiB I-cache) run 1 / 50 times
@   4/5: two passes of word loads over 512 bytes in flash / in SRAM
@   6/7: two passes of word loads over 64 bytes in flash / in SRAM
    .syntax unified
    .cpu cortex-m4
    .thumb

    .macro NEXT_LAYER id
    .balign 64
    movs    r0, #\id
    bl      tb_mark
    .endm

    .macro LOOP_LINES iterations, nops
    movw    r2, #\iterations
    .balign 16
1:
    .rept   \nops
    nop
    .endr
    subs    r2, #1
    bne.w   1b                  @ 4 bytes: a fixed size whatever the distance
    .endm

    .macro LOAD_PASSES table, bytes
    movw    r5, #:lower16:\table
    movt    r5, #:upper16:\table
    movs    r3, #2
2:  movs    r2, #0
3:  ldr     r6, [r5, r2]
    adds    r2, #4
    cmp.w   r2, #\bytes
    bne     3b
    subs    r3, #1
    bne     2b
    .endm

    .section .text.tb_model_invoke,"ax",%progbits
    .global tb_model_invoke
    .type tb_model_invoke, %function
    .thumb_func
tb_model_invoke:
    push    {r4-r7, lr}
    NEXT_LAYER 0
    LOOP_LINES 1, 13            @ 13 nops + subs + bne.w = 32 bytes
    NEXT_LAYER 1
    LOOP_LINES 50, 13
    NEXT_LAYER 2
    LOOP_LINES 1, 637           @ 637 nops + subs + bne.w = 1280 bytes
    NEXT_LAYER 3
    LOOP_LINES 50, 637
    NEXT_LAYER 4
    LOAD_PASSES tb_mm_flash_big, 512
    NEXT_LAYER 5
    LOAD_PASSES tb_mm_arena+256, 512
    NEXT_LAYER 6
    LOAD_PASSES tb_mm_flash_small, 64
    NEXT_LAYER 7
    LOAD_PASSES tb_mm_arena+128, 64
    .balign 64
    mvn     r0, #0              @ TB_MARK_END
    bl      tb_mark
    pop     {r4-r7, pc}
    .ltorg
    .size tb_model_invoke, . - tb_model_invoke

    .section .rodata.tb_mm_tables,"a",%progbits
    .balign 64
tb_mm_flash_big:
    .space  512, 0x5a
tb_mm_flash_small:
    .space  64, 0xa5
