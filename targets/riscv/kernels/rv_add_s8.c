/* ADD int8 (same shapes) for RV32IM, bit-exact with tb_add_s8.
 *
 * The reference rescales each input x to MultiplyByQuantizedMultiplier(
 * (x + offset) << 20, multiplier, shift): a function of the int8 value alone,
 * so the build tabulates it for the 256 values of each input (times 4, the
 * scaling tb_rv_requant_fast4 wants). Per element: two table loads, one add,
 * the fast exact requantization of the sum and the clamp (about 22
 * instructions instead of about 155: three MultiplyByQuantizedMultiplier).
 *
 * Arguments: params, input1, input2, rq ({flags, M, C, E}, then the 256-entry
 * tables of input 1 and input 2, indexed by the byte as uint8), output.
 * Element i is written after both inputs' element i were read: the output
 * may be either input (overlap (None, 0)).
 */
#include "tb_rv.h"

void tb_rv_add_s8(const tb_add_params *p, const int8_t *input1, const int8_t *input2,
                  const int32_t *rq, int8_t *output) {
  const int32_t m = rq[1], c = rq[2], e = rq[3], lo = p->act_min, hi = p->act_max;
  const int32_t *const table1 = rq + 4, *const table2 = rq + 4 + 256;
  const uint8_t *a = (const uint8_t *)input1, *b = (const uint8_t *)input2;
  int8_t *const end = output + p->size;
  int8_t *o = output;
  while (o != end) {
    const int32_t sum4 = table1[*a++] + table2[*b++];
    *o++ = (int8_t)tb_rv_clamp(tb_rv_requant_fast4(sum4, m, c, e), lo, hi);
  }
}
