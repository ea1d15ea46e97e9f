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
 * The static access watch (static_on; the default on Cortex-M and RV32, see
 * docs/simulators.md "Speed with memory hooks") gets the same counts without
 * any memory hook: timing.py decodes every instruction's data accesses
 * (tb_insn_t: base, index << shift, offset, size, count, write-back) and
 * register effects over nregs registers (r0..r15 with r15 the PC, which is
 * never followed; or x0..x31, where the decoder folds x0 into constants);
 * at block entry tb_block_hook compiles the block once
 * (cached per start address) into accesses whose address is a constant plus
 * up to two scaled registers (write-back, ADD/SUB/MOV of immediates and
 * ADD/SUB of shifted registers followed through the block): registers at
 * block entry (a forward pass), or at block exit where the block changes
 * them afterwards only that way (a backward pass). It reads those registers
 * and charges the accesses in program order, deferred until the block has
 * run (the next block hook, or tb_flush_accesses at the end) so that a
 * tb_mark snapshot sees them where the every-access watch would. An access
 * it cannot resolve (base or index loaded or computed otherwise in the
 * block, or inside an IT block, where it may be skipped) has a code hook on
 * its instruction
 * (tb_access_hook: the live registers give the address); an instruction
 * that needs one and has none is recorded in `hooked` (2) and counted in
 * `missing`, and one the decoder does not model (UNMODELLED) in
 * `unmodelled`: the Python side then runs again with more hooks or with the
 * every-access watch, so the counts stay exact. A core that traps on
 * misaligned accesses stops at the first one either way; access_pc names
 * the instruction being charged (the every-access hook reads the PC), so
 * both watches report the same instruction.
 *
 * No unicorn header is needed: the engine is an opaque pointer and
 * uc_emu_stop / uc_reg_read are passed in as function pointers.
 */
#include <stdint.h>
#include <stdlib.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef int (*tb_emu_stop_fn)(void *uc);
typedef int (*tb_reg_read_fn)(void *uc, int regid, void *value);

enum { ACC_INSN = 1, ACC_ACCESS = 2, ACC_WRITE = 4, ACC_WB = 8, ACC_IN_IT = 16,
       ACC_UNMODELLED = 32, ACC_ENDS_TB = 64, ACC_ADDREG = 128 };

/* One instruction's accesses and register effects (timing.ACCESS_DTYPE). */
typedef struct {
  int32_t imm, wb, k;
  uint32_t clobber;
  int8_t rn, rm, rd, rs;
  uint8_t shift, size, count, flags, isize;
  int8_t rs2;                 /* ACC_ADDREG: rd = rs + rs2 * k */
} tb_insn_t;

/* Registers the watch follows: r0..r15 (Cortex-M), x0..x31 (RV32). */
#define TB_NREGS 32
#define TB_EXIT TB_NREGS

/* A register's value inside a block: k + the sum of up to two terms
 * coef * R[id], id 0..31 the register at block entry, 32..63 at block exit. */
typedef struct {
  int8_t known, n;
  int8_t id[2];
  uint32_t coef[2];
  uint32_t k;
} tb_val_t;

/* A resolved access of a compiled block: count items of size bytes from
 * the address `at`. */
typedef struct {
  uint32_t insn;
  tb_val_t at;
  uint8_t size, count, write, from_exit;
} tb_op_t;

typedef struct tb_prog {
  uint64_t end;
  uint32_t nops;
  uint32_t regs;              /* entry registers the ops read */
  uint32_t exit_regs;         /* exit registers the ops read */
  struct tb_prog *lean;       /* the same without the ops at SP + an aligned offset, or NULL */
  tb_op_t ops[];
} tb_prog_t;

typedef struct {
  uint32_t *tags;          /* sets * ways line numbers; 0xFFFFFFFF: empty */
  uint64_t sets;
  uint64_t ways;
  /* allocated at the first access, freed by tb_release: */
  uint16_t *order;         /* per set: newest and oldest way, then per way: newer, older */
  uint16_t *hint;          /* TB_HINTS pairs: how many cached lines have these low bits, and
                              the way of the last one looked up */
  uint64_t last;           /* the line accessed last + 1 (0: none) */
} tb_cache_t;

#define TB_HINTS 4096
#define TB_NO_LINE 0xFFFFFFFFu    /* an empty way's tag */

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
  /* the static access watch */
  uint64_t static_on;
  uint64_t count_misaligned;    /* 0: only flash reads are charged (no `detail`) */
  const tb_insn_t *insn;        /* nhw descriptors */
  uint8_t *hooked;              /* nhw: 1 a code hook watches it, 2 it needed one */
  tb_prog_t **progs;            /* nhw compiled blocks, by start */
  tb_reg_read_fn reg_read;
  int32_t reg_ids[TB_NREGS];    /* unicorn's ids of r0..r15 / x0..x31 */
  int64_t nregs;                /* 16 (Cortex-M) or 32 (RV32) */
  int64_t pc_reg;               /* the register that is the PC (Cortex-M r15), else -1 */
  int64_t pc_id;                /* unicorn's id of the PC */
  uint64_t access_pc;           /* the instruction whose access is being charged */
  uint64_t first_misaligned_pc; /* the instruction of the first misaligned access */
  uint64_t missing;             /* unresolved accesses without a code hook */
  uint64_t unmodelled;          /* executed memory instructions the decoder does not model */
  uint64_t unmodelled_at;
  uint64_t static_ops;          /* accesses resolved at block entry */
  uint64_t hooked_ops;          /* accesses charged by tb_access_hook */
  tb_prog_t *cur;               /* the running block's accesses, charged up to `cursor` */
  uint64_t cursor;
  uint32_t regs[TB_NREGS];      /* its entry registers */
  uint32_t exit_regs[TB_NREGS]; /* its exit registers, read by tb_flush when needed */
  void *uc;                     /* the engine, for the last flush */
  uint64_t last_block;          /* address of the last block hooked */
  /* Instruction lines [warm_first, warm_last] were the last icache accesses
   * (warm_on): fetching them again in order hits every one and leaves the
   * cache as it is, so a loop's block repeated back to back costs nothing. */
  uint64_t warm_on, warm_first, warm_last;
} tb_counters_t;

uint64_t tb_counters_size(void) { return sizeof(tb_counters_t); }

/* The way of `set` (w tags) holding `line`, or w. Sixteen tags per step
 * with SSE2: a 64-way set (stm32f407-art's instruction cache) is scanned on
 * nearly every line a block fetches, the report run's largest cost. */
static uint64_t tb_find_tag(const uint32_t *set, uint64_t w, uint32_t line) {
  uint64_t i = 0;
#ifdef __SSE2__
  const __m128i key = _mm_set1_epi32((int)line);
  for (; i + 16 <= w; i += 16) {
    __m128i a = _mm_cmpeq_epi32(_mm_loadu_si128((const __m128i *)(set + i)), key);
    __m128i b = _mm_cmpeq_epi32(_mm_loadu_si128((const __m128i *)(set + i + 4)), key);
    __m128i d = _mm_cmpeq_epi32(_mm_loadu_si128((const __m128i *)(set + i + 8)), key);
    __m128i e = _mm_cmpeq_epi32(_mm_loadu_si128((const __m128i *)(set + i + 12)), key);
    int mask = _mm_movemask_epi8(_mm_packs_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(d, e)));
    if (mask) return i + (uint64_t)__builtin_ctz((unsigned)mask);
  }
#endif
  for (; i < w && set[i] != line; i++) {
  }
  return i;
}

/* Each set's ways in use order, a doubly linked list in `order`: at
 * set * (2 + 2 * ways), the newest and the oldest way, then each way's newer
 * and older neighbour. Empty ways start oldest, so they are filled first. */
static uint16_t *tb_order(const tb_cache_t *cache, uint64_t set) {
  return cache->order + set * (2 + 2 * cache->ways);
}

static int tb_cache_alloc(tb_cache_t *cache) {
  uint64_t s, i, w = cache->ways;
  cache->order = (uint16_t *)malloc(cache->sets * (2 + 2 * w) * sizeof *cache->order);
  cache->hint = (uint16_t *)calloc(2 * TB_HINTS, sizeof *cache->hint);
  if (!cache->order || !cache->hint || w > 0xFFFF) return 0;
  for (s = 0; s < cache->sets; s++) {
    uint16_t *o = tb_order(cache, s);
    o[0] = 0;
    o[1] = (uint16_t)(w - 1);
    for (i = 0; i < w; i++) {
      o[2 + 2 * i] = (uint16_t)(i ? i - 1 : 0);      /* newer */
      o[3 + 2 * i] = (uint16_t)(i + 1 < w ? i + 1 : i);  /* older */
    }
  }
  return 1;
}

static void tb_cache_free(tb_cache_t *cache) {
  free(cache->order);
  free(cache->hint);
  cache->order = NULL;
  cache->hint = NULL;
}

/* Make way i the newest of its set: unlink it, then put it in front. */
static void tb_make_newest(uint16_t *o, uint64_t i) {
  uint16_t newer, older;
  if (o[0] == i) return;
  newer = o[2 + 2 * i];
  if (o[1] == i) {
    o[1] = newer;
  } else {
    older = o[3 + 2 * i];
    o[3 + 2 * newer] = older;
    o[2 + 2 * older] = newer;
  }
  o[3 + 2 * i] = o[0];
  o[2 + 2 * o[0]] = (uint16_t)i;
  o[0] = (uint16_t)i;
}

/* The way of `set` holding `line`, or w. Its hint pair says how many
 * cached lines share the line's low bits: none, or one in another way, is a
 * miss without scanning the set (misses are frequent: loops larger than the
 * cache). */
static uint64_t tb_find_line(const tb_cache_t *cache, const uint32_t *set, uint32_t line) {
  const uint16_t *h = cache->hint + 2 * (line & (TB_HINTS - 1));
  uint64_t w = cache->ways;
  if (h[0] == 0) return w;
  if (h[1] < w && set[h[1]] == line) return h[1];
  return h[0] == 1 ? w : tb_find_tag(set, w, line);
}

/* Look `line` up in `cache` and make it the most recently used line of its
 * set; 1 on a hit. Exact LRU as a linked list per set: a hit or a miss
 * moves one way to the front (shifting every line behind a hit and
 * scanning the instruction cache's 64-way set for it was the report run's
 * largest cost). */
/* Sets of at most TB_SMALL_WAYS ways (stm32l4r5-art's 4, esp32c3's 8) keep
 * their tags in use order, newest first: a look-up compares the few tags, a
 * hit moves its line to the front and a miss shifts the oldest out. No order
 * list or hints to maintain (the report run's largest cost on nucleo-l4r5zi,
 * where nearly every instruction line misses). Four ways are one SSE2
 * register: one compare, one shuffle. */
#define TB_SMALL_WAYS 8

#ifdef __SSE2__
/* Look `line` up in a 4-way set (tags newest first) and make it the newest,
 * without a branch: a hit at way p or a miss (p = 3, the oldest leaves)
 * shifts ways 0..p-1 one older. Branches on hit or miss were mispredicted
 * about as often as lines miss. */
static inline int tb_lru4(uint32_t *set, uint32_t line) {
  __m128i t = _mm_loadu_si128((const __m128i *)set);
  int mask = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(t, _mm_set1_epi32((int)line))));
  int p = mask ? __builtin_ctz((unsigned)mask) : 3;
  __m128i older = _mm_cmpgt_epi32(_mm_set1_epi32(p + 1), _mm_setr_epi32(0, 1, 2, 3));
  __m128i n = _mm_or_si128(_mm_and_si128(older, _mm_slli_si128(t, 4)), _mm_andnot_si128(older, t));
  _mm_storeu_si128((__m128i *)set, n);
  set[0] = line;
  return mask != 0;
}

/* The same for 8 ways (stm32f407-art's data cache, esp32c3's sets) in two registers. */
static inline int tb_lru8(uint32_t *set, uint32_t line) {
  const __m128i key = _mm_set1_epi32((int)line);
  __m128i a = _mm_loadu_si128((const __m128i *)set), b = _mm_loadu_si128((const __m128i *)(set + 4));
  int mask = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(a, key)))
           | _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(b, key))) << 4;
  int p = mask ? __builtin_ctz((unsigned)mask) : 7;
  __m128i bound = _mm_set1_epi32(p + 1);
  __m128i older_a = _mm_cmpgt_epi32(bound, _mm_setr_epi32(0, 1, 2, 3));
  __m128i older_b = _mm_cmpgt_epi32(bound, _mm_setr_epi32(4, 5, 6, 7));
  __m128i shifted_b = _mm_or_si128(_mm_slli_si128(b, 4), _mm_srli_si128(a, 12));
  a = _mm_or_si128(_mm_and_si128(older_a, _mm_slli_si128(a, 4)), _mm_andnot_si128(older_a, a));
  b = _mm_or_si128(_mm_and_si128(older_b, shifted_b), _mm_andnot_si128(older_b, b));
  _mm_storeu_si128((__m128i *)set, a);
  _mm_storeu_si128((__m128i *)(set + 4), b);
  set[0] = line;
  return mask != 0;
}
#endif

static inline int tb_small_access(tb_cache_t *cache, uint32_t line) {
  uint64_t w = cache->ways, sets = cache->sets, i;
  uint32_t *set = cache->tags + ((sets & (sets - 1)) ? line % sets : line & (sets - 1)) * w;
  int hit;
  cache->last = (uint64_t)line + 1;
#ifdef __SSE2__
  if (w == 4) return tb_lru4(set, line);
  if (w == 8) return tb_lru8(set, line);
#endif
  if (set[0] == line) return 1;
  for (i = 1; i < w && set[i] != line; i++) {
  }
  hit = i < w;
  if (!hit) i = w - 1;                /* a miss: the oldest line leaves */
  for (; i; i--) set[i] = set[i - 1];
  set[0] = line;
  return hit;
}

static inline int tb_cache_access(tb_cache_t *cache, uint32_t line) {
  uint32_t *set;
  uint16_t *o, *h;
  uint64_t i, s, w = cache->ways, sets = cache->sets;
  int hit;
  if (w == 0) return 0;
  if (cache->last == (uint64_t)line + 1) return 1;   /* the newest line: nothing changes */
  if (w <= TB_SMALL_WAYS) return tb_small_access(cache, line);
  if (!cache->order && !tb_cache_alloc(cache)) abort();
  /* a mask when the set count is a power of two (every model's), not a division */
  s = (sets & (sets - 1)) ? line % sets : line & (sets - 1);
  set = cache->tags + s * w;
  o = tb_order(cache, s);
  if (set[o[0]] == line) {            /* the newest of its set already: nothing moves */
    cache->last = (uint64_t)line + 1;
    return 1;
  }
  h = cache->hint + 2 * (line & (TB_HINTS - 1));
  i = tb_find_line(cache, set, line);
  hit = i < w;
  if (!hit) {                         /* a miss replaces the least recently used way */
    i = o[1];
    if (set[i] != TB_NO_LINE) cache->hint[2 * (set[i] & (TB_HINTS - 1))]--;
    set[i] = line;
    h[0]++;
  }
  h[1] = (uint16_t)i;
  tb_make_newest(o, i);
  cache->last = (uint64_t)line + 1;
  return hit;
}

/* Fetching lines first..last in order again right after fetching them hits
 * every line and leaves each set in the same LRU order, when no set got more
 * lines than it has ways (consecutive lines fill the sets in turn). */
static int tb_fetch_is_warm(const tb_counters_t *c, uint64_t first, uint64_t last) {
  return c->warm_on && c->warm_first == first && c->warm_last == last;
}

#ifdef __SSE2__
/* tb_charge_fetch's lines [line, last] in a cache of 4-way sets, a power
 * of two of them (stm32l4r5-art): no branch per line. */
static void tb_fetch_lru4(tb_counters_t *c, uint64_t line, uint64_t last) {
  uint32_t *tags = c->icache.tags;
  uint64_t mask = c->icache.sets - 1, prev = c->last_iline, prefetch = c->prefetch != 0;
  uint64_t imisses = 0, prefetched = 0;
  for (; line <= last; line++) {
    uint64_t miss = !tb_lru4(tags + 4 * (line & mask), (uint32_t)line);
    uint64_t supplied = miss & prefetch & (line == prev + 1);
    prefetched += supplied;
    imisses += miss & !supplied;
    prev = line;
  }
  c->last_iline = prev;
  c->icache.last = prev + 1;          /* the newest line, as tb_cache_access keeps it */
  c->prefetched += prefetched;
  c->imisses += imisses;
  c->cycles += imisses * c->miss_cycles;
  c->mem_cycles += imisses * c->miss_cycles;
}
#endif

static void tb_charge_fetch(tb_counters_t *c, uint64_t address, uint64_t end) {
  uint64_t line = address >> c->line_shift, last = (end - 1) >> c->line_shift;
  if (tb_fetch_is_warm(c, line, last)) return;   /* every line hits; last_iline is `last` */
  c->warm_on = c->icache.ways && last - line < c->icache.sets * c->icache.ways;
  c->warm_first = line;
  c->warm_last = last;
#ifdef __SSE2__
  if (c->icache.ways == 4 && !(c->icache.sets & (c->icache.sets - 1))) {
    tb_fetch_lru4(c, line, last);
    return;
  }
#endif
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
static void tb_flush(tb_counters_t *c, uint64_t limit);
static void tb_block_accesses(tb_counters_t *c, void *uc, uint64_t s, uint64_t e);

void tb_block_hook(void *uc, uint64_t address, uint32_t size, void *user_data) {
  tb_counters_t *c = (tb_counters_t *)user_data;
  uint64_t end = address + size;
  c->uc = uc;
  c->last_block = address;
  if (c->static_on) tb_flush(c, UINT64_MAX);   /* the previous block has run */
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
    if (c->static_on && s < e) tb_block_accesses(c, uc, s, e);
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

/* One data access, as the every-access watch sees it: a read from flash goes
 * through the data cache; a misaligned one pays its penalty (or stops a core
 * that traps). */
static void tb_charge_access(tb_counters_t *c, void *uc, uint64_t address, int size,
                             int is_read) {
  uint64_t pen, i;
  if (c->mm_on && is_read) {
    for (i = 0; i < c->nflash; i++) {
      if (address >= c->flash_ranges[i][0] && address < c->flash_ranges[i][1]) {
        tb_charge_read(c, address, size);
        break;
      }
    }
  }
  if (!c->count_misaligned) return;
  if (size < 2 || (address & (uint64_t)(size - 1)) == 0) return;
  if (c->misaligned++ == 0) {
    c->first_misaligned = address;
    c->first_misaligned_size = (uint64_t)size;
    c->first_misaligned_pc = c->access_pc;
  }
  if (c->trap_misaligned) {
    c->emu_stop(uc);
    return;
  }
  pen = size == 2 ? c->pen_half_odd : (address & 1) ? c->pen_word_byte : c->pen_word_half;
  c->cycles += pen;
  c->misaligned_cycles += pen;
}

void tb_mem_hook(void *uc, int type, uint64_t address, int size, int64_t value,
                 void *user_data) {
  tb_counters_t *c = (tb_counters_t *)user_data;
  (void)value;
  if (c->trap_misaligned && !c->misaligned && c->reg_read) {
    uint64_t pc = 0;          /* name the instruction: the run stops at its access */
    c->reg_read(uc, (int)c->pc_id, &pc);
    c->access_pc = pc;
  }
  tb_charge_access(c, uc, address, size, (uint64_t)type == c->read_type);
}

/* A data read from flash: each line the data cache does not hold costs
 * miss_cycles. */
static void tb_charge_read(tb_counters_t *c, uint64_t address, int size) {
  uint64_t line, last;
  line = address >> c->line_shift;
  last = (address + (uint64_t)(size > 0 ? size : 1) - 1) >> c->line_shift;
  /* a unified cache: one set of tags and stamps, and its instruction lines may change */
  tb_cache_t *cache = c->dcache.tags == c->icache.tags ? &c->icache : &c->dcache;
  if (cache == &c->icache) c->warm_on = 0;
  for (; line <= last; line++) {
    if (!tb_cache_access(cache, (uint32_t)line)) {
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

/* -- the static access watch ------------------------------------------------ */

static void tb_charge_items(tb_counters_t *c, void *uc, uint32_t address, int size, int count,
                            int write) {
  int j;
  for (j = 0; j < count; j++)
    tb_charge_access(c, uc, (uint32_t)(address + (uint32_t)(j * size)), size, !write);
}

static const tb_val_t TB_UNKNOWN = {0, 0, {0, 0}, {0, 0}, 0};

static tb_val_t tb_constant(uint32_t k) {
  tb_val_t v = {1, 0, {0, 0}, {0, 0}, 0};
  v.k = k;
  return v;
}

/* dst += src * scale; unknown when that needs more than two terms. */
static void tb_add_scaled(tb_val_t *dst, const tb_val_t *src, uint32_t scale) {
  int i, j;
  if (!dst->known || !src->known) { *dst = TB_UNKNOWN; return; }
  for (i = 0; i < src->n; i++) {
    uint32_t coef = src->coef[i] * scale;
    for (j = 0; j < dst->n && dst->id[j] != src->id[i]; j++) {
    }
    if (j == dst->n) {
      if (dst->n == 2) { *dst = TB_UNKNOWN; return; }
      dst->id[dst->n] = src->id[i];
      dst->coef[dst->n++] = 0;
    }
    dst->coef[j] += coef;
    if (!dst->coef[j]) {              /* the term cancelled out */
      dst->n--;
      dst->id[j] = dst->id[dst->n];
      dst->coef[j] = dst->coef[dst->n];
    }
  }
  dst->k += src->k * scale;
}

/* The registers in `mask` become unknown. */
static void tb_forget(tb_val_t *v, uint32_t mask) {
  for (; mask; mask &= mask - 1) v[__builtin_ctz(mask)] = TB_UNKNOWN;
}

/* Register effects of one instruction, after its access (see timing.py). */
static void tb_apply_effects(tb_val_t *v, const tb_insn_t *d) {
  tb_val_t rd = TB_UNKNOWN;
  if (d->rd >= 0) {
    rd = d->rs < 0 ? tb_constant(0) : v[d->rs];
    if (rd.known) rd.k += (uint32_t)d->k;
    if (d->flags & ACC_ADDREG) { rd.k -= (uint32_t)d->k; tb_add_scaled(&rd, &v[d->rs2], (uint32_t)d->k); }
  }
  if (d->flags & ACC_IN_IT) {         /* may not execute: what it writes is unknown */
    if (d->rd >= 0) v[d->rd] = TB_UNKNOWN;
    if ((d->flags & ACC_WB) && d->rn >= 0) v[d->rn] = TB_UNKNOWN;
  } else {
    if ((d->flags & ACC_WB) && d->rn >= 0) v[d->rn].k += (uint32_t)d->wb;
    if (d->rd >= 0) v[d->rd] = rd;
  }
  tb_forget(v, d->clobber);
}

/* Undo one instruction's register effects (the backward pass): values in
 * exit registers after it become those before it. */
static void tb_undo_effects(tb_val_t *v, const tb_insn_t *d) {
  tb_forget(v, d->clobber);
  if (d->flags & ACC_IN_IT) {
    if (d->rd >= 0) v[d->rd] = TB_UNKNOWN;
    if ((d->flags & ACC_WB) && d->rn >= 0) v[d->rn] = TB_UNKNOWN;
    return;
  }
  if (d->rd >= 0) {
    if (d->rs != d->rd || ((d->flags & ACC_ADDREG) && d->rs2 == d->rd)) v[d->rd] = TB_UNKNOWN;
    else if (d->flags & ACC_ADDREG) tb_add_scaled(&v[d->rd], &v[d->rs2], (uint32_t)-d->k);
    else v[d->rd].k -= (uint32_t)d->k;
  }
  if ((d->flags & ACC_WB) && d->rn >= 0) v[d->rn].k -= (uint32_t)d->wb;
}

enum { K_NONE, K_ENTRY, K_EXIT, K_HOOK, K_HOOKED };

typedef struct { tb_val_t b, x; } tb_pair_t;

static void tb_operands(tb_pair_t *q, const tb_val_t *v, const tb_insn_t *d) {
  q->b = d->rn >= 0 ? v[d->rn] : tb_constant(0);
  q->x = d->rm >= 0 ? v[d->rm] : tb_constant(0);
}

/* Every register its own value at entry (exit: id + TB_EXIT); the PC is
 * unknown (PC-relative addresses are folded in already). */
static void tb_reset_values(const tb_counters_t *c, tb_val_t *v, int side) {
  int r;
  for (r = 0; r < TB_NREGS; r++) {
    tb_val_t x = {1, 1, {0, 0}, {1, 0}, 0};
    x.id[0] = (int8_t)(r + TB_EXIT * side);
    v[r] = r < c->nregs ? x : TB_UNKNOWN;
  }
  if (c->pc_reg >= 0) v[c->pc_reg] = TB_UNKNOWN;
}

/* The access's address from the entry-side operands where the forward pass
 * knows them, else the exit-side ones; unknown when neither. */
static tb_val_t tb_address(const tb_pair_t *fwd, const tb_pair_t *bwd, const tb_insn_t *d) {
  tb_val_t a = fwd->b.known ? fwd->b : bwd->b;
  const tb_val_t *x = fwd->x.known ? &fwd->x : &bwd->x;
  tb_add_scaled(&a, x, 1u << d->shift);
  if (a.known) a.k += (uint32_t)d->imm;
  return a;
}

static int tb_from_exit(const tb_val_t *a) {
  int i;
  for (i = 0; i < a->n; i++)
    if (a->id[i] >= TB_EXIT) return 1;
  return 0;
}

/* How each access of the n instructions at[] is resolved (its address in
 * fwd[j].b): against the entry registers (a forward pass), or also the exit
 * registers (a backward pass: registers changed afterwards only by
 * immediates and register sums), else by a code hook. Accesses that read
 * exit registers must come after the block's last hooked one, which charges
 * the accesses before it while the block runs. */
static void tb_classify(const tb_counters_t *c, const uint64_t *at, uint64_t n, tb_pair_t *fwd,
                        tb_pair_t *bwd, uint8_t *kind) {
  tb_val_t v[TB_NREGS];
  uint64_t j, last_hook = 0;
  tb_reset_values(c, v, 0);
  for (j = 0; j < n; j++) {
    const tb_insn_t *d = &c->insn[at[j]];
    if (d->flags & ACC_ACCESS) tb_operands(&fwd[j], v, d);
    tb_apply_effects(v, d);
  }
  tb_reset_values(c, v, 1);
  for (j = n; j-- > 0;) {
    const tb_insn_t *d = &c->insn[at[j]];
    tb_undo_effects(v, d);
    if (d->flags & ACC_ACCESS) tb_operands(&bwd[j], v, d);
  }
  for (j = 0; j < n; j++) {
    const tb_insn_t *d = &c->insn[at[j]];
    if (!(d->flags & ACC_ACCESS)) { kind[j] = K_NONE; continue; }
    fwd[j].b = tb_address(&fwd[j], &bwd[j], d);
    if (c->hooked[at[j]] == 1) kind[j] = K_HOOKED;
    else if ((d->flags & (ACC_IN_IT | ACC_UNMODELLED)) || !fwd[j].b.known) kind[j] = K_HOOK;
    else kind[j] = tb_from_exit(&fwd[j].b) ? K_EXIT : K_ENTRY;
    if (kind[j] == K_HOOK || kind[j] == K_HOOKED) last_hook = j + 1;
  }
  for (j = 0; j < last_hook; j++)
    if (kind[j] == K_EXIT) kind[j] = K_HOOK;
}

static void tb_emit(tb_prog_t *p, uint32_t insn, const tb_insn_t *d, const tb_val_t *a) {
  tb_op_t *op = &p->ops[p->nops++];
  int i;
  op->insn = insn;
  op->at = *a;
  op->size = d->size; op->count = d->count;
  op->write = (d->flags & ACC_WRITE) != 0;
  op->from_exit = (uint8_t)tb_from_exit(a);
  for (i = 0; i < a->n; i++) {
    if (a->id[i] >= TB_EXIT) p->exit_regs |= 1u << (a->id[i] - TB_EXIT);
    else p->regs |= 1u << a->id[i];
  }
}

/* Cortex-M: an access at the entry SP plus an offset that keeps its
 * alignment, within TB_SP_REACH. When SP is word-aligned and at least
 * TB_SP_REACH from any flash range, such an access is neither misaligned nor
 * a flash read: nothing to charge (57-63% of kws/vww's resolved accesses:
 * spills and PUSH/POP). */
#define TB_SP 13
#define TB_SP_REACH 4096

static int tb_is_sp_aligned_op(const tb_counters_t *c, const tb_op_t *op) {
  int32_t k = (int32_t)op->at.k;
  return c->pc_reg == 15 && op->at.n == 1 && op->at.id[0] == TB_SP && op->at.coef[0] == 1
      && op->size <= 4 && ((uint32_t)k & (op->size - 1u)) == 0
      && k > -TB_SP_REACH && k + op->size * op->count < TB_SP_REACH;
}

/* Whether SP is word-aligned and TB_SP_REACH or more from every flash range. */
static int tb_sp_is_plain(const tb_counters_t *c, uint32_t sp) {
  uint64_t i;
  if (sp & 3u) return 0;
  for (i = 0; i < c->nflash; i++)
    if ((uint64_t)sp + TB_SP_REACH > c->flash_ranges[i][0] && (uint64_t)sp < c->flash_ranges[i][1] + TB_SP_REACH)
      return 0;
  return 1;
}

/* p without its SP-relative aligned ops (p->lean), when it has any. */
static void tb_make_lean(const tb_counters_t *c, tb_prog_t *p) {
  uint32_t i, n = 0;
  tb_prog_t *q;
  for (i = 0; i < p->nops; i++) n += !tb_is_sp_aligned_op(c, &p->ops[i]);
  if (n == p->nops) return;
  q = (tb_prog_t *)malloc(sizeof(tb_prog_t) + n * sizeof(tb_op_t));
  if (!q) return;                     /* the full block still counts exactly */
  q->end = p->end; q->nops = 0; q->regs = q->exit_regs = 0; q->lean = NULL;
  for (i = 0; i < p->nops; i++) {
    const tb_op_t *op = &p->ops[i];
    int t;
    if (tb_is_sp_aligned_op(c, op)) continue;
    q->ops[q->nops++] = *op;
    for (t = 0; t < op->at.n; t++) {
      if (op->at.id[t] >= TB_EXIT) q->exit_regs |= 1u << (op->at.id[t] - TB_EXIT);
      else q->regs |= 1u << op->at.id[t];
    }
  }
  p->lean = q;
}

static void tb_free_prog(tb_prog_t *p) {
  if (p) free(p->lean);
  free(p);
}

/* The accesses of the block of halfwords [s, e); NULL when out of memory.
 * An access that needs a code hook gets one with `scan` (hooked = 1);
 * otherwise one without is recorded (hooked = 2, missing). */
static tb_prog_t *tb_compile(tb_counters_t *c, uint64_t s, uint64_t e, int scan) {
  uint64_t i, j, n = 0, nops = 0, *at;
  tb_pair_t *fwd, *bwd;
  uint8_t *kind;
  tb_prog_t *p = NULL;
  if (e > c->nhw) e = c->nhw;
  for (i = s; i < e && (c->insn[i].flags & ACC_INSN); i += c->insn[i].isize / 2) n++;
  if (i < e && !scan && !c->unmodelled++) {
    /* the block runs code the decoder did not see as instructions: not exact */
    c->unmodelled_at = c->base + 2 * i;
  }
  at = (uint64_t *)calloc(n + 1, sizeof *at);
  fwd = (tb_pair_t *)malloc((n + 1) * sizeof *fwd);
  bwd = (tb_pair_t *)malloc((n + 1) * sizeof *bwd);
  kind = (uint8_t *)malloc(n + 1);
  if (at && fwd && bwd && kind) {
    for (n = 0, i = s; i < e && (c->insn[i].flags & ACC_INSN); i += c->insn[i].isize / 2)
      at[n++] = i;
    tb_classify(c, at, n, fwd, bwd, kind);
    for (j = 0; j < n; j++) nops += kind[j] == K_ENTRY || kind[j] == K_EXIT;
    p = scan ? NULL : (tb_prog_t *)malloc(sizeof(tb_prog_t) + nops * sizeof(tb_op_t));
    if (p) { p->end = e; p->nops = 0; p->regs = p->exit_regs = 0; p->lean = NULL; }
    for (j = 0; j < n && (scan || p); j++) {
      uint32_t insn = (uint32_t)(c->base + 2 * at[j]);
      if (p && (kind[j] == K_ENTRY || kind[j] == K_EXIT))
        tb_emit(p, insn, &c->insn[at[j]], &fwd[j].b);
      else if (kind[j] == K_HOOK && scan) c->hooked[at[j]] = 1;
      else if (kind[j] == K_HOOK && c->hooked[at[j]] != 1) { c->hooked[at[j]] = 2; c->missing++; }
    }
  }
  free(at); free(fwd); free(bwd); free(kind);
  if (p) tb_make_lean(c, p);
  return p;
}

static uint32_t tb_reg(tb_counters_t *c, void *uc, int r);

/* Charge the running block's resolved accesses of instructions before
 * `limit`; UINT64_MAX: all of them, the block has run (its exit registers
 * are the live ones). */
static void tb_flush(tb_counters_t *c, uint64_t limit) {
  tb_prog_t *p = c->cur;
  int r, i, exit_read = 0;
  if (!p) return;
  while (c->cursor < p->nops && p->ops[c->cursor].insn < limit) {
    const tb_op_t *op = &p->ops[c->cursor];
    uint32_t a = op->at.k;
    if (op->from_exit) {
      if (limit != UINT64_MAX) break;
      if (!exit_read) {
        for (r = 0; r < c->nregs; r++)
          if (p->exit_regs >> r & 1) c->exit_regs[r] = tb_reg(c, c->uc, r);
        exit_read = 1;
      }
    }
    for (i = 0; i < op->at.n; i++) {
      int id = op->at.id[i];
      a += op->at.coef[i] * (id >= TB_EXIT ? c->exit_regs[id - TB_EXIT] : c->regs[id]);
    }
    c->access_pc = op->insn;
    tb_charge_items(c, c->uc, a, op->size, op->count, op->write);
    c->static_ops++;
    c->cursor++;
  }
  if (c->cursor >= p->nops) c->cur = NULL;
}

static uint32_t tb_reg(tb_counters_t *c, void *uc, int r) {
  uint64_t value = 0;
  c->reg_read(uc, c->reg_ids[r], &value);
  return (uint32_t)value;
}

static void tb_block_accesses(tb_counters_t *c, void *uc, uint64_t s, uint64_t e) {
  tb_prog_t *p = c->progs[s];
  int r;
  if (!p || p->end != e) {
    tb_free_prog(p);
    p = c->progs[s] = tb_compile(c, s, e, 0);
    if (!p) { c->missing++; return; }   /* out of memory: inexact, so redo the run */
  }
  if (!p->nops) return;
  for (r = 0; r < c->nregs; r++)
    if (p->regs >> r & 1) c->regs[r] = tb_reg(c, uc, r);
  if (p->lean && tb_sp_is_plain(c, c->regs[TB_SP])) {    /* (p->regs has SP: its ops read it) */
    c->static_ops += p->nops - p->lean->nops;
    p = p->lean;
    if (!p->nops) return;
  }
  c->cur = p;
  c->cursor = 0;
}

/* UC_HOOK_CODE on the instructions whose accesses a block cannot resolve. */
void tb_access_hook(void *uc, uint64_t address, uint32_t size, void *user_data) {
  tb_counters_t *c = (tb_counters_t *)user_data;
  uint64_t i = (address - c->base) >> 1;
  const tb_insn_t *d;
  uint32_t a, x = 0;
  (void)size;
  if (address < c->base || i >= c->nhw || c->hooked[i] != 1) return;
  d = &c->insn[i];
  if (!(d->flags & ACC_ACCESS)) return;
  tb_flush(c, address);               /* the block's earlier accesses come first */
  if (d->flags & ACC_UNMODELLED) {
    if (!c->unmodelled++) c->unmodelled_at = address;
    return;
  }
  a = (uint32_t)((d->rn >= 0 ? tb_reg(c, uc, d->rn) : 0) + (uint32_t)d->imm);
  if (d->rm >= 0) x = tb_reg(c, uc, d->rm);
  c->access_pc = address;
  tb_charge_items(c, uc, a + (x << d->shift), d->size, d->count, (d->flags & ACC_WRITE) != 0);
  c->hooked_ops++;
}

/* The accesses of the block that ran last (the end of a run). */
void tb_flush_accesses(tb_counters_t *c) { tb_flush(c, UINT64_MAX); }

/* Give every access no block can resolve a code hook (hooked = 1), walking
 * each straight-line run of code from the earliest place a block can start
 * (after a branch): a later start resolves at least as much. */
void tb_scan(tb_counters_t *c) {
  uint64_t i = 0, s;
  while (i < c->nhw) {
    while (i < c->nhw && !(c->insn[i].flags & ACC_INSN)) i++;
    s = i;
    while (i < c->nhw && (c->insn[i].flags & ACC_INSN)) {
      int ends = c->insn[i].flags & ACC_ENDS_TB;
      i += c->insn[i].isize / 2;
      if (ends) break;
    }
    if (i > s) tb_compile(c, s, i, 1);
  }
}

/* Free the caches' order lists and hints (the end of a run). */
void tb_release_caches(tb_counters_t *c) {
  tb_cache_free(&c->icache);
  tb_cache_free(&c->dcache);
  c->cur = NULL;
}

/* Also free the compiled blocks (kept with an engine kept for another run:
 * they depend only on the firmware and the hooked instructions). */
void tb_release(tb_counters_t *c) {
  uint64_t i;
  tb_release_caches(c);
  if (!c->progs) return;
  for (i = 0; i < c->nhw; i++) { tb_free_prog(c->progs[i]); c->progs[i] = NULL; }
  c->cur = NULL;
}
