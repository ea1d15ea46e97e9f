/* I/O descriptor for asm_model.S: 16-byte input, 16-byte output, 5 layers. */
#include <stdint.h>
#include "tb_runtime.h"

__attribute__((section(".noinit"), aligned(16))) static uint8_t arena[64];

__attribute__((used)) const tb_io_desc_t tb_io_desc =
    TB_IO_DESC_1_1(5, arena, 16, arena + 32, 16, arena, sizeof arena);
