/* The tiny device runtime that generated models and every target share.
 *
 * The firmware describes itself to simulators through two things:
 *  - tb_io_desc, a descriptor in flash with the layer count, the arena, and
 *    the address and size of each of the model's inputs, then each of its
 *    outputs (inside the arena), in the model's order;
 *  - tb_mark(id), a never-inlined function called before every layer
 *    (id = layer index) and once after the last (id = TB_MARK_END). A
 *    simulator hooks its address and reads the id from the first argument
 *    register; on hardware a target may override it to read a cycle counter.
 * The program ends by calling tb_exit(code); simulators stop at its address.
 */
#ifndef TB_RUNTIME_H
#define TB_RUNTIME_H
#include <stdint.h>

/* "TTB2" little endian; "TTB1" was the single-input layout: a simulator
 * refuses a firmware whose layout it does not read. */
#define TB_IO_MAGIC 0x32425454u
#define TB_MARK_END 0xFFFFFFFFu

/* The arena and the I/O buffers are written before they are read, so the
 * startup code need not zero them (and simulators may preload the input). */
#ifndef TB_NOINIT
#define TB_NOINIT __attribute__((section(".noinit")))
#endif

typedef struct {
  uint8_t *data; /* in the arena; its element type is the tensor's (model.h) */
  uint32_t size; /* bytes */
} tb_io_tensor_t;

typedef struct {
  uint32_t magic;
  uint32_t num_layers;
  uint8_t *arena;
  uint32_t arena_size;
  uint32_t num_inputs;
  uint32_t num_outputs;
  tb_io_tensor_t tensors[]; /* num_inputs inputs, then num_outputs outputs */
} tb_io_desc_t;

#define TB_IO_INPUT(i) (tb_io_desc.tensors[(i)])
#define TB_IO_OUTPUT(i) (tb_io_desc.tensors[tb_io_desc.num_inputs + (i)])

/* The descriptor of hand-written firmware with one input and one output
 * (tests): TB_IO_DESC_1_1(layers, input, input bytes, output, output bytes,
 * arena, arena bytes). */
#define TB_IO_DESC_1_1(layers, in, in_size, out, out_size, arena, arena_size)                  \
  {TB_IO_MAGIC, (layers), (uint8_t *)(arena), (arena_size), 1u, 1u,                           \
   {{(uint8_t *)(in), (in_size)}, {(uint8_t *)(out), (out_size)}}}

extern const tb_io_desc_t tb_io_desc;

void tb_mark(uint32_t id);
void tb_exit(int code) __attribute__((noreturn));

/* The generated model: runs one inference on the tensors tb_io_desc names. */
void tb_model_invoke(void);

#endif
