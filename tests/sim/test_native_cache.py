"""The native cache model (native_hook.c: an LRU list per set, and hint pairs
that count the cached lines sharing their low 12 bits, so a miss is found
without scanning the set) against the plain LRU of test_unicorn_speed.py, on
lines chosen to share those low bits: lines 4096 apart collide in the hints."""
from __future__ import annotations

import random

import pytest

from test_unicorn_speed import CACHES, FLASH, NativeModel, ReferenceLru

HINTS = 4096            # TB_HINTS in native_hook.c


@pytest.mark.parametrize("cache", CACHES, ids=[f"{c[0]}x{c[1]}{'u' if c[4] else ''}" for c in CACHES])
def test_lines_sharing_their_low_bits_count_like_a_plain_lru(cache):
    rng = random.Random(6)
    ref, nat = ReferenceLru(*cache, miss=5), NativeModel.make(*cache, miss=5)
    span = HINTS << cache[6]                     # bytes between two colliding lines
    copies = (1 << 20) // span                   # how many fit the model's 1 MiB of flash
    starts = [rng.randrange(0, 1 << 9, 2) for _ in range(6)]
    for _ in range(8000):
        address = FLASH + rng.randrange(copies) * span + rng.choice(starts)
        size = rng.choice((2, 16, 64))
        if rng.random() < 0.3:
            ref.read(address, 4)
            nat.read(address, 4)
        else:
            ref.fetch(address, size)
            nat.fetch(address, size)
    c = nat.counters
    assert (c.imisses, c.dmisses, c.prefetched, c.cycles) == (
        ref.imisses, ref.dmisses, ref.prefetched, ref.cycles)
    assert c.imisses > 0 and (c.dmisses > 0 or cache[3] == 0)
