/* Data movement: strided copies from a build-time table (movement.h), and GATHER.
 * Bit-exact with TFLite's reference kernels, which copy values unchanged. */
#include <stdarg.h>
#include "tb_kernels.h"

static void fill(uint8_t *out, int32_t count, int32_t size, int32_t value) {
  int32_t i;
  if (size == 1) for (i = 0; i < count; ++i) ((int8_t *)out)[i] = (int8_t)value;
  else if (size == 2) for (i = 0; i < count; ++i) ((int16_t *)out)[i] = (int16_t)value;
  else for (i = 0; i < count; ++i) ((int32_t *)out)[i] = value;
}

/* The last two dimensions of a copy, by element type: rows of n1 elements,
 * pointers stepped (no multiplications per element). */
#define TB_MOVE_PLANE(type)                                                     \
  do {                                                                          \
    const type *from = (const type *)src;                                       \
    type *to = (type *)dst;                                                     \
    for (r = 0; r < n0; ++r, from += s0, to += d0) {                            \
      if (s1 == 1 && d1 == 1) {                                                 \
        for (i = 0; i < n1; ++i) to[i] = from[i];                               \
      } else {                                                                  \
        const type *f = from;                                                   \
        type *t = to;                                                           \
        for (i = 0; i < n1; ++i, f += s1, t += d1) *t = *f;                     \
      }                                                                         \
    }                                                                           \
  } while (0)

static void copy_plane(const uint8_t *src, uint8_t *dst, const int32_t *n, const int32_t *s,
                       const int32_t *d, int32_t size) {
  int32_t r, i, n0 = n[0], n1 = n[1], s0 = s[0], s1 = s[1], d0 = d[0], d1 = d[1];
  if (size == 1) TB_MOVE_PLANE(int8_t);
  else if (size == 2) TB_MOVE_PLANE(int16_t);
  else TB_MOVE_PLANE(int32_t);
}

static void copy_block(const int32_t *row, const uint8_t *src, uint8_t *dst, int32_t size) {
  const int32_t *n = row + 4, *s = n + TB_MOVE_RANK, *d = s + TB_MOVE_RANK;
  int32_t i0, i1, i2, i3;
  src += row[2] * size;
  dst += row[3] * size;
  for (i0 = 0; i0 < n[0]; ++i0)
    for (i1 = 0; i1 < n[1]; ++i1)
      for (i2 = 0; i2 < n[2]; ++i2)
        for (i3 = 0; i3 < n[3]; ++i3) {
          int32_t from = i0 * s[0] + i1 * s[1] + i2 * s[2] + i3 * s[3];
          int32_t to = i0 * d[0] + i1 * d[1] + i2 * d[2] + i3 * d[3];
          copy_plane(src + from * size, dst + to * size, n + 4, s + 4, d + 4, size);
        }
}

/* Argument k after the params: the varying argument list is walked again
 * (va_start may be repeated), so any number of sources and outputs works. */
#define TB_MOVE_ARG(k, type, out)                                        \
  do {                                                                   \
    va_list ap_;                                                         \
    int32_t i_;                                                          \
    va_start(ap_, p);                                                    \
    for (i_ = 0; i_ <= (k); ++i_) (out) = (type)va_arg(ap_, void *);     \
    va_end(ap_);                                                         \
  } while (0)

void tb_move(const tb_move_params *p, ...) {
  const int32_t *table = 0;
  int32_t r, first_output = p->inputs + 1 + p->consts;
  TB_MOVE_ARG(p->inputs, const int32_t *, table);
  if (p->fill_count) {
    uint8_t *out = 0;
    TB_MOVE_ARG(first_output, uint8_t *, out);
    fill(out, p->fill_count, p->elem_size, p->fill);
  }
  for (r = 0; r < p->copies; ++r) {
    const int32_t *row = table + r * TB_MOVE_ROW;
    int32_t source = row[0] < p->inputs ? row[0] : row[0] + 1;   /* constants follow the table */
    const uint8_t *src = 0;
    uint8_t *dst = 0;
    TB_MOVE_ARG(source, const uint8_t *, src);
    TB_MOVE_ARG(first_output + row[1], uint8_t *, dst);
    copy_block(row, src, dst, p->elem_size);
  }
}

void tb_gather(const tb_gather_params *p, const void *first, const void *second, void *output) {
  const uint8_t *params = (const uint8_t *)(p->indices_first ? second : first);
  const int32_t *indices = (const int32_t *)(p->indices_first ? first : second);
  const int64_t *wide = (const int64_t *)(const void *)indices;   /* index_size 8 */
  uint8_t *out = (uint8_t *)output;
  int32_t b, o, i, k, line = p->inner * p->elem_size;
  for (b = 0; b < p->batch; ++b)
    for (o = 0; o < p->outer; ++o)
      for (i = 0; i < p->coords; ++i) {
        int32_t n = b * p->coords + i;
        int64_t at64 = p->index_size == 8 ? wide[n] : indices[n];
        int valid = at64 >= 0 && at64 < p->axis_size;
        int32_t at = valid ? (int32_t)at64 : 0;
        const uint8_t *from = params + ((b * p->outer + o) * p->axis_size + at) * line;
        for (k = 0; k < line; ++k) out[k] = valid ? from[k] : 0;
        out += line;
      }
}
