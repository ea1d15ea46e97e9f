/* tinybuild: native basic-block counter for the Unicorn simulator.
 *
 * Compiled at first use by sim/unicorn/native.py with the host C compiler and
 * registered with libunicorn's uc_hook_add(UC_HOOK_BLOCK) through ctypes; the
 * Python side owns the tb_counters_t struct and the cost arrays.
 *
 * Costs come from prefix sums over halfword addresses precomputed from the
 * ELF: a block [address, address + size) runs
 *   cum_n[end] - cum_n[start] instructions and
 *   cum_c[end] - cum_c[start] base cycles,
 * so the hook is O(1) per block. A block that does not start where the
 * previous one ended was reached by a taken branch: it pays the pipeline
 * refill (taken_penalty) plus fresh_adj[start], the cycles its first
 * instruction loses by not pairing with its linear predecessor (e.g. a
 * pipelined LDR after an LDR).
 *
 * tb_mem_hook (UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE) charges misaligned
 * data accesses: the cycles the timing model gives a halfword at an odd
 * address, a word at an address 2 mod 4 and a word at an odd address; a core
 * that traps on them instead (trap_misaligned) stops the run at the first one.
 *
 * No unicorn header is needed: the engine is an opaque pointer and
 * uc_emu_stop is passed in as a function pointer.
 */
#include <stdint.h>

typedef int (*tb_emu_stop_fn)(void *uc);

typedef struct {
  uint64_t insns;          /* instructions executed so far */
  uint64_t cycles;         /* modelled cycles so far */
  uint64_t blocks;         /* blocks executed */
  uint64_t taken;          /* non-sequential block entries (taken branches) */
  uint64_t prev_end;       /* end address of the previous block */
  uint64_t base;           /* address of halfword index 0 */
  uint64_t nhw;            /* number of halfwords covered by the arrays */
  const uint32_t *cum_n;   /* nhw + 1 entries */
  const uint32_t *cum_c;   /* nhw + 1 entries */
  const uint8_t *fresh_adj;/* nhw entries */
  uint64_t taken_penalty;
  uint64_t max_insns;      /* stop once insns exceeds this */
  uint64_t limit_hit;
  uint64_t oob_blocks;     /* blocks outside the decoded text */
  uint64_t oob_bytes;
  tb_emu_stop_fn emu_stop;
  uint64_t misaligned;          /* misaligned data accesses */
  uint64_t misaligned_cycles;   /* cycles charged for them */
  uint64_t first_misaligned;    /* address of the first one */
  uint64_t first_misaligned_size;
  uint64_t pen_half_odd;        /* halfword at an odd address */
  uint64_t pen_word_half;       /* word at an address 2 mod 4 */
  uint64_t pen_word_byte;       /* word at an odd address */
  uint64_t trap_misaligned;     /* the core traps: stop at the first one */
} tb_counters_t;

uint64_t tb_counters_size(void) { return sizeof(tb_counters_t); }

void tb_block_hook(void *uc, uint64_t address, uint32_t size, void *user_data) {
  tb_counters_t *c = (tb_counters_t *)user_data;
  uint64_t end = address + size;
  if (address >= c->base && end >= address && ((end - c->base) >> 1) <= c->nhw) {
    uint64_t s = (address - c->base) >> 1, e = (end - c->base) >> 1;
    c->insns += c->cum_n[e] - c->cum_n[s];
    c->cycles += c->cum_c[e] - c->cum_c[s];
    if (address != c->prev_end) {
      c->taken++;
      if (s < c->nhw) c->cycles += c->taken_penalty + c->fresh_adj[s];
    }
  } else {
    /* Code outside the decoded text (e.g. copied to RAM): counted apart so
     * the Python side can report it. */
    c->oob_blocks++;
    c->oob_bytes += size;
  }
  c->prev_end = end;
  c->blocks++;
  if (c->insns > c->max_insns && !c->limit_hit) {
    c->limit_hit = 1;
    c->emu_stop(uc);
  }
}

void tb_mem_hook(void *uc, int type, uint64_t address, int size, int64_t value,
                 void *user_data) {
  tb_counters_t *c = (tb_counters_t *)user_data;
  uint64_t pen;
  (void)type;
  (void)value;
  if (size < 2 || (address & (uint64_t)(size - 1)) == 0) return;
  if (c->misaligned++ == 0) {
    c->first_misaligned = address;
    c->first_misaligned_size = (uint64_t)size;
  }
  if (c->trap_misaligned) {
    c->emu_stop(uc);
    return;
  }
  pen = size == 2 ? c->pen_half_odd : (address & 1) ? c->pen_word_byte : c->pen_word_half;
  c->cycles += pen;
  c->misaligned_cycles += pen;
}
