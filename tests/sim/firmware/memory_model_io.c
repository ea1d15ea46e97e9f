/* I/O descriptor for memory_model.S: 64-byte input, 16-byte output, 8 layers;
 * the arena also holds the 512-byte SRAM tables the RAM layers read. */
#include <stdint.h>
#include "tb_runtime.h"

__attribute__((section(".noinit"), aligned(64))) uint8_t tb_mm_arena[1024];

__attribute__((used)) const tb_io_desc_t tb_io_desc =
    TB_IO_DESC_1_1(8, tb_mm_arena, 64, tb_mm_arena + 64, 16, tb_mm_arena, sizeof tb_mm_arena);
