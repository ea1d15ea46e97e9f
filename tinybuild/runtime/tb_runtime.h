/* The tiny device runtime that generated models and every target share.
 *
 * The firmware describes itself to simulators through two things:
 *  - tb_io_desc, a descriptor in flash with the addresses and sizes of the
 *    model's input and output tensors (inside the arena) and the layer count;
 *  - tb_mark(id), a never-inlined function called before every layer
 *    (id = layer index) and once after the last (id = TB_MARK_END). A
 *    simulator hooks its address and reads the id from the first argument
 *    register; on hardware a target may override it to read a cycle counter.
 * The program ends by calling tb_exit(code); simulators stop at its address.
 */
#ifndef TB_RUNTIME_H
#define TB_RUNTIME_H
#include <stdint.h>

#define TB_IO_MAGIC 0x31425454u /* "TTB1" little endian */
#define TB_MARK_END 0xFFFFFFFFu

/* The arena and the I/O buffers are written before they are read, so the
 * startup code need not zero them (and simulators may preload the input). */
#ifndef TB_NOINIT
#define TB_NOINIT __attribute__((section(".noinit")))
#endif

typedef struct {
  uint32_t magic;
  uint32_t num_layers;
  int8_t *input;
  uint32_t input_size;
  int8_t *output;
  uint32_t output_size;
  uint8_t *arena;
  uint32_t arena_size;
} tb_io_desc_t;

extern const tb_io_desc_t tb_io_desc;

void tb_mark(uint32_t id);
void tb_exit(int code) __attribute__((noreturn));

/* The generated model: runs one inference on the tensors tb_io_desc names. */
void tb_model_invoke(void);

#endif
