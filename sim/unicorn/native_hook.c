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
 * tb_mem_hook (UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, the `detail` run) also
 * charges the memory model's data reads from flash (one hook, not two, on a
 * run that already watches every access), and charges misaligned
 * data accesses: the cycles the timing model gives a halfword at an odd
 * address, a word at an address 2 mod 4 and a word at an odd address; a core
 * that traps on them instead (trap_misaligned) stops the run at the first one.
 *
 * The memory-system model (timing.py, MemoryModel; off when mm_on is 0)
 * charges flash wait states behind a cache of lines of 1 << line_shift
 * bytes. Instruction fetches are charged per block: every line the block
 * [address, end) touches is looked up in the instruction cache; a miss costs
 * miss_cycles unless the prefetcher already holds it (the line after the
 * last one fetched, when prefetch is on). Data reads from flash come through
 * tb_flash_read_hook, registered on the flash address ranges only, and are
 * looked up in the data cache (the same cache when it is unified). A cache
 * is `sets` sets of `ways` tags kept most-recently-used first (LRU);
 * 0 ways: no cache, every line is a miss.
 *
 * No unicorn header is needed: the engine is an opaque pointer and
 * uc_emu_stop is passed in as a function pointer.
 */
#include <stdint.h>

typedef int (*tb_emu_stop_fn)(void *uc);

typedef struct {
  uint32_t *tags;          /* sets * ways line numbers, MRU first; 0xFFFFFFFF: empty */
  uint64_t sets;
  uint64_t ways;
} tb_cache_t;

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
  /* memory-system model */
  uint64_t mm_on;
  uint64_t flash_lo, flash_hi;  /* instruction fetches are charged only in here */
  uint64_t line_shift;          /* log2 of the cache line / flash access width */
  uint64_t miss_cycles;         /* cycles a line fetched from flash adds */
  uint64_t prefetch;            /* the line after the last fetched one is free */
  uint64_t last_iline;          /* line of the last instruction fetch */
  uint64_t mem_cycles;          /* cycles charged by the memory model */
  uint64_t imisses;             /* instruction lines fetched from flash */
  uint64_t dmisses;             /* data lines read from flash */
  uint64_t prefetched;          /* instruction lines the prefetcher supplied */
  tb_cache_t icache;
  tb_cache_t dcache;
  uint64_t read_type;           /* unicorn's UC_MEM_READ */
  uint64_t nflash;              /* flash ranges tb_mem_hook charges data reads in */
  uint64_t flash_ranges[4][2];  /* [lo, hi) */
} tb_counters_t;

uint64_t tb_counters_size(void) { return sizeof(tb_counters_t); }

/* Look `line` up in `cache` and make it the most recently used line of its
 * set; 1 on a hit. */
static int tb_cache_access(tb_cache_t *cache, uint32_t line) {
  uint32_t *set;
  uint64_t i, w = cache->ways;
  int hit;
  if (w == 0) return 0;
  set = cache->tags + (line % cache->sets) * w;
  for (i = 0; i < w && set[i] != line; i++) {
  }
  hit = i < w;
  if (!hit) i = w - 1;               /* a miss replaces the least recently used way */
  for (; i > 0; i--) set[i] = set[i - 1];
  set[0] = line;
  return hit;
}

static void tb_charge_fetch(tb_counters_t *c, uint64_t address, uint64_t end) {
  uint64_t line = address >> c->line_shift, last = (end - 1) >> c->line_shift;
  for (; line <= last; line++) {
    int hit = tb_cache_access(&c->icache, (uint32_t)line);
    if (!hit) {
      if (c->prefetch && line == c->last_iline + 1) {
        c->prefetched++;
      } else {
        c->imisses++;
        c->cycles += c->miss_cycles;
        c->mem_cycles += c->miss_cycles;
      }
    }
    c->last_iline = line;
  }
}

static void tb_charge_read(tb_counters_t *c, uint64_t address, int size);

void tb_block_hook(void *uc, uint64_t address, uint32_t size, void *user_data) {
  tb_counters_t *c = (tb_counters_t *)user_data;
  uint64_t end = address + size;
  if (c->mm_on && size && address >= c->flash_lo && end <= c->flash_hi)
    tb_charge_fetch(c, address, end);
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
  uint64_t pen, i;
  (void)value;
  if (c->mm_on && (uint64_t)type == c->read_type) {
    for (i = 0; i < c->nflash; i++) {
      if (address >= c->flash_ranges[i][0] && address < c->flash_ranges[i][1]) {
        tb_charge_read(c, address, size);
        break;
      }
    }
  }
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

/* A data read from flash: each line the data cache does not hold costs
 * miss_cycles. */
static void tb_charge_read(tb_counters_t *c, uint64_t address, int size) {
  uint64_t line, last;
  line = address >> c->line_shift;
  last = (address + (uint64_t)(size > 0 ? size : 1) - 1) >> c->line_shift;
  for (; line <= last; line++) {
    if (!tb_cache_access(&c->dcache, (uint32_t)line)) {
      c->dmisses++;
      c->cycles += c->miss_cycles;
      c->mem_cycles += c->miss_cycles;
    }
  }
}

/* UC_HOOK_MEM_READ on the flash ranges only (the run without `detail`). */
void tb_flash_read_hook(void *uc, int type, uint64_t address, int size, int64_t value,
                        void *user_data) {
  (void)uc;
  (void)type;
  (void)value;
  tb_charge_read((tb_counters_t *)user_data, address, size);
}
