/* I/O descriptor for access_watch.S: 64-byte input, 16-byte output, 5 layers;
 * the arena is also the SRAM the layers read and write misaligned. */
#include <stdint.h>
#include "tb_runtime.h"

__attribute__((section(".noinit"), aligned(64))) uint8_t tb_aw_arena[1024];

__attribute__((used)) const tb_io_desc_t tb_io_desc =
    TB_IO_DESC_1_1(5, tb_aw_arena, 64, tb_aw_arena + 64, 16, tb_aw_arena, sizeof tb_aw_arena);
