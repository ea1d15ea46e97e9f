"""Static memory planning: one arena, every activation tensor at an offset.

A tensor is live from the step that writes it to the last step that reads it
(the model's input from step -1, its outputs to the end). Two tensors may
share bytes only if their lifetimes are disjoint. Placement is greedy by size
(largest first, lowest offset that fits), which is what TFLite Micro's greedy
planner does and is near-optimal on chain-shaped CNNs. RESHAPE never moves
data, so its output aliases its input: one buffer, one lifetime.

The report shows ``lower_bound`` (the largest set of tensors live at one
step) beside the arena size; greedy placement can exceed it only when
fragmentation forces a gap.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .graph import Graph

ALIGNMENT = 16
ALIAS_OPS = {"RESHAPE"}


@dataclass
class Buffer:
    """Bytes in the arena shared by one tensor and its aliases."""

    tensors: list[int]
    size: int
    first: int
    last: int
    offset: int = -1

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass
class MemoryPlan:
    arena_size: int
    lower_bound: int
    offsets: dict[int, int]              # tensor index -> arena offset
    buffers: list[Buffer] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "arena_size": self.arena_size,
            "lower_bound": self.lower_bound,
            "alignment": ALIGNMENT,
            "buffers": [{"tensors": b.tensors, "offset": b.offset, "size": b.size,
                         "first_step": b.first, "last_step": b.last} for b in self.buffers],
        }


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def buffers_with_lifetimes(graph: Graph) -> list[Buffer]:
    steps = len(graph.operators)
    owner: dict[int, Buffer] = {}
    buffers: list[Buffer] = []

    def buffer_of(t: int, step: int) -> Buffer:
        if t not in owner:
            owner[t] = Buffer([t], graph.tensors[t].size_bytes, step, step)
            buffers.append(owner[t])
        return owner[t]

    for t in graph.inputs:
        buffer_of(t, -1)
    for op in graph.operators:
        for t in op.inputs:
            if t >= 0 and not graph.tensors[t].is_constant:
                buffer_of(t, op.index).last = op.index
        if op.op in ALIAS_OPS and not graph.tensors[op.outputs[0]].is_constant:
            shared = buffer_of(op.inputs[0], op.index)
            shared.tensors.append(op.outputs[0])
            owner[op.outputs[0]] = shared
            continue
        for t in op.outputs:
            buffer_of(t, op.index).last = max(owner.get(t, buffer_of(t, op.index)).last, op.index)
    for t in graph.outputs:
        buffer_of(t, steps).last = steps
    return buffers


def lower_bound(buffers: list[Buffer]) -> int:
    if not buffers:
        return 0
    lo = min(b.first for b in buffers)
    hi = max(b.last for b in buffers)
    return max(sum(b.size for b in buffers if b.first <= s <= b.last) for s in range(lo, hi + 1))


def plan_memory(graph: Graph) -> MemoryPlan:
    buffers = buffers_with_lifetimes(graph)
    placed: list[Buffer] = []
    for buf in sorted(buffers, key=lambda b: (-b.size, b.first)):
        conflicts = sorted((p for p in placed if p.overlaps_in_time(buf)), key=lambda p: p.offset)
        offset = 0
        for other in conflicts:
            if offset + buf.size <= other.offset:
                break
            offset = max(offset, _align(other.offset + other.size))
        buf.offset = offset
        placed.append(buf)
    arena = _align(max((b.offset + b.size for b in buffers), default=0))
    offsets = {t: b.offset for b in buffers for t in b.tensors}
    return MemoryPlan(arena, lower_bound(buffers), offsets, sorted(buffers, key=lambda b: b.first))
