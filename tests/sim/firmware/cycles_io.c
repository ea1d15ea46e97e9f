/* I/O descriptor for cycles.S: 64-byte input, 16-byte output, 12 layers. */
#include <stdint.h>
#include "tb_runtime.h"

__attribute__((section(".noinit"), aligned(16))) uint8_t tb_cycles_arena[128];

__attribute__((used)) const tb_io_desc_t tb_io_desc =
    TB_IO_DESC_1_1(12, tb_cycles_arena, 64, tb_cycles_arena + 64, 16, tb_cycles_arena,
                   sizeof tb_cycles_arena);
