"""The report run's speed measures (issue 14 item 6) keep every count exact:
the native hook's cache model (a 64-way set scanned 16 tags at a time, a
block's lines fetched again back to back skipped) against a plain LRU
written here, and RAM that holds no code mapped without execute permission."""
from __future__ import annotations

import ctypes
import random
from dataclasses import dataclass

import numpy as np
import pytest

from sim.unicorn import native
from sim.unicorn.simulator import _Run

FLASH = 0x0800_0000
NEVER = (1 << 64) - 2                      # last_iline before any fetch


class ReferenceLru:
    """Counts of the memory model as docs/timing.md states it."""

    def __init__(self, sets, ways, dsets, dways, unified, prefetch, shift, miss):
        self.i = [[] for _ in range(sets)], ways
        self.d = self.i if unified else ([[] for _ in range(dsets)], dways)
        self.prefetch, self.shift, self.miss = prefetch, shift, miss
        self.last, self.imisses, self.dmisses, self.prefetched, self.cycles = NEVER, 0, 0, 0, 0

    @staticmethod
    def access(cache, line) -> bool:
        sets, ways = cache
        if ways == 0:
            return False
        s = sets[line % len(sets)]
        hit = line in s
        if hit:
            s.remove(line)
        elif len(s) == ways:
            s.pop()
        s.insert(0, line)
        return hit

    def fetch(self, address, size):
        for line in range(address >> self.shift, ((address + size - 1) >> self.shift) + 1):
            if not self.access(self.i, line):
                if self.prefetch and line == self.last + 1:
                    self.prefetched += 1
                else:
                    self.imisses += 1
                    self.cycles += self.miss
            self.last = line

    def read(self, address, size):
        for line in range(address >> self.shift, ((address + size - 1) >> self.shift) + 1):
            if not self.access(self.d, line):
                self.dmisses += 1
                self.cycles += self.miss


@dataclass
class NativeModel:
    counters: native.Counters
    tags: list

    @classmethod
    def make(cls, sets, ways, dsets, dways, unified, prefetch, shift, miss):
        c = native.Counters()
        c.max_insns = 1 << 62
        c.mm_on, c.flash_lo, c.flash_hi = 1, FLASH, FLASH + (1 << 20)
        c.line_shift, c.miss_cycles, c.prefetch, c.last_iline = shift, miss, int(prefetch), NEVER
        tags = [np.full(max(1, sets * ways), 0xFFFFFFFF, dtype=np.uint32),
                np.full(max(1, dsets * dways), 0xFFFFFFFF, dtype=np.uint32)]
        if unified:
            tags[1], dsets, dways = tags[0], sets, ways
        for cache, t, s, w in ((c.icache, tags[0], sets, ways), (c.dcache, tags[1], dsets, dways)):
            cache.tags, cache.sets, cache.ways = t.ctypes.data, max(1, s), w
        return cls(c, tags)

    def fetch(self, address, size):
        native.load().tb_block_hook(None, ctypes.c_uint64(address), ctypes.c_uint32(size),
                                    ctypes.byref(self.counters))

    def read(self, address, size):
        native.load().tb_flash_read_hook(None, 0, ctypes.c_uint64(address), size, ctypes.c_int64(0),
                                         ctypes.byref(self.counters))


CACHES = [  # (sets, ways, data sets, data ways, unified, prefetch, line shift)
    (1, 64, 1, 8, False, True, 4),      # stm32f407-art: the 64-way scan
    (32, 4, 8, 4, False, True, 3),      # stm32l4r5-art
    (64, 8, 64, 8, True, False, 5),     # esp32c3-flash-cache: unified, so reads end a warm run
    (1, 17, 1, 3, True, True, 4),       # ways not a multiple of 16
    (1, 0, 1, 0, False, True, 4),       # no cache: every line misses
]


@pytest.mark.parametrize("cache", CACHES, ids=[f"{c[0]}x{c[1]}{'u' if c[4] else ''}" for c in CACHES])
def test_native_cache_model_counts_like_a_plain_lru(cache):
    rng = random.Random(14)
    ref, nat = ReferenceLru(*cache, miss=5), NativeModel.make(*cache, miss=5)
    # Blocks of a few loops (repeated back to back and interleaved), some
    # longer than the cache, and data reads from flash between them.
    blocks = [(FLASH + rng.randrange(0, 1 << 14, 2), rng.choice((2, 6, 40, 160, 700, 2200)))
              for _ in range(40)]
    for _ in range(6000):
        if rng.random() < 0.25:
            address, size = FLASH + rng.randrange(1 << 15), rng.choice((1, 2, 4, 8))
            ref.read(address, size)
            nat.read(address, size)
        else:
            block = blocks[rng.randrange(len(blocks))]
            for _ in range(rng.choice((1, 1, 2, 5))):
                ref.fetch(*block)
                nat.fetch(*block)
                if rng.random() < 0.3:       # a read between two runs of a block: a line
                    stride = (1 << cache[6]) * cache[0] * rng.choice((0, 1, 3))  # of it, or its set's
                    address = block[0] + rng.randrange(block[1]) + stride
                    ref.read(address, 4)
                    nat.read(address, 4)
    c = nat.counters
    assert (c.imisses, c.dmisses, c.prefetched, c.cycles) == (
        ref.imisses, ref.dmisses, ref.prefetched, ref.cycles)
    assert c.imisses > 0 and (c.dmisses > 0 or cache[3] == 0)


@dataclass
class Seg:
    paddr: int
    vaddr: int
    memsz: int
    executable: bool


@dataclass
class Region:
    name: str
    origin: int
    length: int
    kind: str

    @property
    def end(self):
        return self.origin + self.length


def test_ram_without_code_is_mapped_without_execute_permission():
    import unicorn as U
    run = _Run.__new__(_Run)
    run.target = type("T", (), {"memory": [Region("FLASH", 0x0800_0000, 0x10000, "flash"),
                                           Region("RAM", 0x2000_0000, 0x10000, "ram"),
                                           Region("CCM", 0x1000_0000, 0x10000, "ram")]})()
    run.img = type("I", (), {"segments": [Seg(0x0800_0000, 0x0800_0000, 0x800, True),
                                          Seg(0x0800_0800, 0x1000_0100, 0x100, True),   # code run from CCM
                                          Seg(0x0800_0900, 0x2000_0000, 0x100, False)]})()
    assert run.span_prot(0x2000_0000, 0x2001_0000) == U.UC_PROT_READ | U.UC_PROT_WRITE
    assert run.span_prot(0x1000_0000, 0x1001_0000) == U.UC_PROT_ALL
    assert run.span_prot(0x0800_0000, 0x0801_0000) == U.UC_PROT_ALL
