"""Static memory planning: one arena, every activation tensor at an offset.

A step is one kernel call (a :class:`tinybuild.lower.Layer`; ops folded at
build time have none). A tensor is live from the step that writes it to the
last step that reads it (the model's inputs from step -1, its outputs to the
end). Every buffer starts at a multiple of ``ALIGNMENT`` (16), so tensors of
any element type (int8 to float32, int32) are aligned. Two buffers may
share bytes only if their lifetimes are disjoint, with two exceptions:

* aliasing: a view (RESHAPE; ``OpDef.view``) never moves data, so its output
  *is* its input (one buffer, one lifetime);
* overlap (in-place operators): when a layer's input dies at that layer, the
  kernel may declare how its output may overlap that input. ``Layer.overlap``
  maps the input tensor to an interval ``(lo, hi)`` of allowed
  ``offset(output) - offset(input)`` values (``lo`` None: unbounded below).
  An element-wise ADD allows ``(None, 0)``; a convolution that writes its
  outputs in raster order after reading their receptive fields allows
  ``(None, D)`` with ``D`` from :func:`raster_overlap`, usually slightly
  negative (the output starts a little below the input); a depthwise kernel
  that copies a whole channel before writing it allows exactly ``(0, 0)``.
  An output overlaps at most one of its inputs; with several outputs,
  ``Layer.overlap`` is about the first.

Kernels may also need scratch memory for one step (``Layer.scratch_bytes``,
e.g. an im2col buffer): a buffer live at that step only, which may overlap a
dying input the same way (``Layer.scratch_overlap``), never the output.

``lower_bound`` is the most bytes live at any one step, counting an allowed
overlap pair as the smallest extent the pair can occupy and every buffer (or
pair) rounded up to the alignment it is placed at: no placement can do better (chains of in-place layers can make it
unreachable: each overlap fixes the output's offset relative to the input).
``lower_bound_no_inplace`` is the same without overlaps and scratch (what the
plan would need with plain kernels), reported beside it.
Placement is first fit (lowest offset that does not collide) over several
orders (largest first, by first use, by last use, longest lived, plus seeded
shuffles); the smallest arena wins and the search stops at the bound.
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

from .graph import Graph

ALIGNMENT = 16
# Perturbed size orders tried after the named ones; planning stops at the first arena
# at the lower bound (every MLPerf Tiny and devcorpus model reaches it within 0.04 s;
# ResNet-8 with the cm4 conv's weight-copy scratch needed 59 of them, 48 were not enough).
SHUFFLES = 256


@dataclass
class Buffer:
    """Bytes in the arena shared by one tensor and its aliases, or a scratch area."""

    tensors: list[int]
    size: int
    first: int
    last: int
    offset: int = -1
    scratch_of: int | None = None     # layer index when this is a kernel's scratch buffer

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last

    def overlaps_in_space(self, other: "Buffer") -> bool:
        return self.offset < other.offset + other.size and other.offset < self.offset + self.size

    @property
    def label(self) -> str:
        return f"scratch L{self.scratch_of}" if self.scratch_of is not None else \
            "t" + "=".join(map(str, self.tensors))


_BIG = 1 << 40


def intervals(spec) -> list[tuple[int | None, int | None]]:
    """A Layer.overlap value: one (lo, hi) interval or a list of them (a union);
    None for an unbounded end."""
    if spec is None:
        return []
    if isinstance(spec, tuple) and len(spec) == 2 and not isinstance(spec[0], tuple):
        return [spec]
    return [tuple(i) for i in spec]


@dataclass(frozen=True)
class Overlap:
    """``output`` may overlap ``input`` when offset(output) - offset(input) lies in
    one of the intervals [lo, hi] (None: unbounded)."""

    output: int        # buffer positions in the buffer list
    input: int
    allowed: tuple[tuple[int | None, int | None], ...]
    step: int

    def allows(self, d: int) -> bool:
        return any((lo is None or d >= lo) and (hi is None or d <= hi) for lo, hi in self.allowed)

    def _aligned(self):
        for lo, hi in self.allowed:
            a = -_BIG if lo is None else -(-lo // ALIGNMENT) * ALIGNMENT
            b = _BIG if hi is None else hi // ALIGNMENT * ALIGNMENT
            if a <= b:
                yield a, b

    def best_d(self, in_size: int = 0, out_size: int = 0) -> int:
        """The aligned d that minimizes the pair's extent."""
        best = None
        for a, b in self._aligned():
            d = min(max(0, a), b)
            ext = max(in_size, d + out_size) - min(0, d)
            if best is None or ext < best[0]:
                best = (ext, d)
        return best[1] if best else 0

    def span(self, in_size: int, out_size: int) -> int:
        """Smallest extent of input and output together (never more than apart)."""
        apart = in_size + out_size
        if not list(self._aligned()):
            return apart
        d = self.best_d(in_size, out_size)
        return min(apart, max(in_size, d + out_size) - min(0, d))


@dataclass
class MemoryPlan:
    arena_size: int
    lower_bound: int
    offsets: dict[int, int]              # tensor index -> arena offset
    buffers: list[Buffer] = field(default_factory=list)
    scratch: dict[int, int] = field(default_factory=dict)   # layer index -> scratch offset
    overlaps: list[dict] = field(default_factory=list)      # overlap pairs used
    lower_bound_no_inplace: int = 0
    order: str = ""

    def to_json(self) -> dict:
        return {
            "arena_size": self.arena_size,
            "lower_bound": self.lower_bound,
            "lower_bound_no_inplace": self.lower_bound_no_inplace,
            "alignment": ALIGNMENT,
            "placement_order": self.order,
            "buffers": [{"tensors": b.tensors, "offset": b.offset, "size": b.size,
                         "first_step": b.first, "last_step": b.last,
                         **({"scratch_of_layer": b.scratch_of} if b.scratch_of is not None else {})}
                        for b in self.buffers],
            "scratch": {str(k): v for k, v in self.scratch.items()},
            "overlaps": self.overlaps,
        }


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def _calls(graph: Graph, layers) -> list[tuple[int, list[int], list[int], bool]]:
    """``(step, inputs, outputs, view)`` of every kernel call, in order: the
    layers when given (folded ops run nothing), else one per operator."""
    if layers is None:
        views = view_ops()
        return [(op.index, op.inputs, op.outputs, op.op in views) for op in graph.operators]
    return [(layer.index, list(layer.inputs), list(getattr(layer, "outputs", None) or [layer.output]),
             getattr(layer, "view", False)) for layer in layers]


def view_ops() -> set[str]:
    """Ops whose output is their input's bytes (tinybuild.ops: ``OpDef.view``)."""
    from . import ops
    return {name for name, opdef in ops.registry().items() if opdef.view}


def buffers_with_lifetimes(graph: Graph, layers=None) -> list[Buffer]:
    """Tensor buffers (a view's output shares its input's), then one scratch
    buffer per layer that asks. A tensor lives from the step that writes it (the
    model's inputs: -1) to the last step that reads it (its outputs: the end)."""
    calls = _calls(graph, layers)
    owner: dict[int, Buffer] = {}
    buffers: list[Buffer] = []

    def activation(t: int) -> bool:
        return t >= 0 and not graph.tensors[t].is_constant

    def buffer_of(t: int, step: int) -> Buffer:
        if t not in owner:
            owner[t] = Buffer([t], graph.tensors[t].size_bytes, step, step)
            buffers.append(owner[t])
        return owner[t]

    for t in graph.inputs:
        buffer_of(t, -1)
    for step, inputs, outputs, view in calls:
        for t in filter(activation, inputs):
            buffer_of(t, step).last = step
        if view and inputs and activation(inputs[0]) and activation(outputs[0]):
            shared = buffer_of(inputs[0], step)
            shared.tensors.append(outputs[0])
            owner[outputs[0]] = shared
            continue
        for t in filter(activation, outputs):
            written = buffer_of(t, step)
            written.last = max(written.last, step)
    for t in graph.outputs:
        buffer_of(t, len(calls)).last = len(calls)
    for layer in layers or ():
        if getattr(layer, "scratch_bytes", 0):
            buffers.append(Buffer([], int(layer.scratch_bytes), layer.index, layer.index,
                                  scratch_of=layer.index))
    return buffers


def overlap_pairs(graph: Graph, layers, buffers: list[Buffer]) -> list[Overlap]:
    """The overlaps the chosen kernels allow, where the input dies at that layer:
    the output's (``Layer.overlap``) and the scratch buffer's (``Layer.scratch_overlap``)."""
    pos = {t: i for i, b in enumerate(buffers) for t in b.tensors}
    scratch_pos = {b.scratch_of: i for i, b in enumerate(buffers) if b.scratch_of is not None}
    pairs = []
    for layer in layers or ():
        writers = [(pos.get(layer.output), getattr(layer, "overlap", None) or {}),
                   (scratch_pos.get(layer.index), getattr(layer, "scratch_overlap", None) or {})]
        for o, spec_of in writers:
            if o is None:
                continue
            for t, spec in spec_of.items():
                if t not in pos or t in graph.outputs:
                    continue
                i = pos[t]
                if i == o or buffers[i].last != layer.index or buffers[o].first != layer.index:
                    continue
                allowed = tuple(intervals(spec))
                if allowed:
                    pairs.append(Overlap(o, i, allowed, layer.index))
    return pairs


def lower_bound(buffers: list[Buffer], pairs: list[Overlap] = (), aligned: bool = False) -> int:
    """Most bytes live at one step; an allowed overlap pair counts as its smallest extent
    (an output overlaps one input at most, so take each output's best pair).
    ``aligned``: every buffer, or pair, starts at a multiple of ALIGNMENT, so
    it occupies its size rounded up (what the arena, itself aligned, needs)."""
    if not buffers:
        return 0
    size = (lambda n: _align(n)) if aligned else (lambda n: n)
    lo = min(b.first for b in buffers)
    hi = max(b.last for b in buffers)
    # per step, per writer (output or scratch): the saving of each input it may overlap
    options: dict[int, dict[int, dict[int, int]]] = {}
    for p in pairs:
        bi, bo = buffers[p.input], buffers[p.output]
        saving = size(bi.size) + size(bo.size) - size(p.span(bi.size, bo.size))
        per = options.setdefault(p.step, {}).setdefault(p.output, {})
        per[p.input] = max(per.get(p.input, 0), saving)

    def step_saving(writers: dict[int, dict[int, int]]) -> int:
        # each writer overlaps one input at most; writers never share bytes
        # with each other, so together they reuse at most all of an input
        best = 0
        choices = [[None] + list(w.items()) for w in writers.values()]
        for combo in itertools.product(*choices):
            per_input: dict[int, int] = {}
            for c in combo:
                if c is not None:
                    per_input[c[0]] = per_input.get(c[0], 0) + c[1]
            best = max(best, sum(min(v, size(buffers[i].size)) for i, v in per_input.items()))
        return best

    result = 0
    for s in range(lo, hi + 1):
        live = sum(size(b.size) for b in buffers if b.first <= s <= b.last)
        live -= step_saving(options.get(s, {}))
        result = max(result, live)
    return max(result, _drift_bound(buffers, pairs, size))


def _one_way(pair: Overlap) -> int:
    """-1 when every allowed (aligned) offset puts the output below its input,
    +1 when every one puts it above, else 0."""
    spans = list(pair._aligned())
    if spans and all(b < 0 for _, b in spans):
        return -1
    if spans and all(a > 0 for a, _ in spans):
        return 1
    return 0


def _drift_bound(buffers: list[Buffer], pairs, size) -> int:
    """What chains of one-way in-place layers cost: when layer after layer the
    output must start at least ``g`` bytes below (or above) its input, the
    tensors drift through the arena. Along a downward chain t_j -> ... -> t_n
    whose links all overlap, offset(t_j) >= offset(t_n) + sum of the gaps >=
    that sum, so the arena holds at least size(t_j) + gaps(j..n) (upward:
    gaps(j..n) + size(t_n)). A link that does not overlap holds both its
    tensors at once instead: the bound is the smaller of the two cases."""
    links = {}
    for p in pairs:
        direction = _one_way(p)
        if direction and buffers[p.output].scratch_of is None:
            spans = list(p._aligned())
            gap = (-max(b for _, b in spans) if direction < 0 else min(a for a, _ in spans))
            links[p.input] = (p.output, direction, gap)
    best = 0
    starts = set(links) - {out for out, _, _ in links.values()}
    for start in starts:
        chain, node = [], start
        while node in links and len(chain) <= len(links):
            chain.append((node, *links[node]))
            node = links[node][0]
        # maximal runs of links in one direction
        run: list = []
        for link in chain + [None]:
            if link is not None and (not run or run[-1][2] == link[2]):
                run.append(link)
                continue
            if run:
                best = max(best, _run_bound(run, buffers, size))
            run = [link] if link is not None else []
    return best


def _run_bound(run: list, buffers: list[Buffer], size) -> int:
    """The least arena a run of one-way links needs. A placement keeps some
    links apart (each costs both its tensors at once) and overlaps the rest
    (each segment between kept-apart links drifts): for every cost X, keep
    apart every link costing at most X (more splits never hurt a segment)."""
    apart = [size(buffers[n].size) + size(buffers[o].size) for n, o, _, _ in run]

    downward = run[0][2] < 0

    def segments_bound(split: set[int]) -> int:
        # Downward, the first tensor of a segment sits at least the segment's
        # drift above offset 0: size(first) + drift. Upward, the last one
        # sits that far up: drift + size(last). Walk so the drift accumulates
        # towards the tensor that carries it.
        worst, drift = 0, 0
        order = reversed(range(len(run))) if downward else range(len(run))
        for i in order:
            if i in split:
                drift = 0
                continue
            drift += run[i][3]
            end = run[i][0] if downward else run[i][1]
            worst = max(worst, size(buffers[end].size) + drift)
        return worst

    best = segments_bound(set())
    for x in sorted(set(apart)):
        split = {i for i, cost in enumerate(apart) if cost <= x}
        best = min(best, max(x, segments_bound(split)))
    return best


def _valid(idx: int, offset: int, buffers: list[Buffer], placed: list[int],
           pair_of: dict[tuple[int, int], Overlap], outputs_pairs: dict[int, list[Overlap]]) -> bool:
    buf = buffers[idx]
    end = offset + buf.size
    for j in placed:
        other = buffers[j]
        if not buf.overlaps_in_time(other):
            continue
        if offset >= other.offset + other.size or other.offset >= end:
            continue
        pair = pair_of.get((idx, j))
        if pair is None:
            return False
        d = (offset - other.offset) if pair.output == idx else (other.offset - offset)
        if not pair.allows(d):
            return False
    # an output overlaps at most one of its inputs in space
    for out in {idx} | {p.output for p in outputs_pairs.get(idx, ())}:
        touching = 0
        for p in outputs_pairs.get(out, ()):
            if p.output != out:
                continue
            a, b = p.output, p.input
            if a != idx and buffers[a].offset < 0 or b != idx and buffers[b].offset < 0:
                continue
            oa = offset if a == idx else buffers[a].offset
            ob = offset if b == idx else buffers[b].offset
            if oa < ob + buffers[b].size and ob < oa + buffers[a].size:
                touching += 1
        if touching > 1:
            return False
    return True


def _place(order: list[int], buffers: list[Buffer], pairs: list[Overlap]) -> int:
    for b in buffers:
        b.offset = -1
    pair_of: dict[tuple[int, int], Overlap] = {}
    by_buffer: dict[int, list[Overlap]] = {}
    for p in pairs:
        pair_of[(p.output, p.input)] = pair_of[(p.input, p.output)] = p
        by_buffer.setdefault(p.output, []).append(p)
        by_buffer.setdefault(p.input, []).append(p)
    placed: list[int] = []
    for idx in order:
        buf = buffers[idx]
        candidates = {0}
        for j in placed:
            other = buffers[j]
            if buf.overlaps_in_time(other):
                candidates.add(_align(other.offset + other.size))
                p = pair_of.get((idx, j))
                if p is not None:
                    bi, bo = buffers[p.input], buffers[p.output]
                    d = p.best_d(bi.size, bo.size)
                    candidates.add(other.offset + d if p.output == idx else other.offset - d)
        for offset in sorted(c for c in candidates if c >= 0 and c % ALIGNMENT == 0):
            if _valid(idx, offset, buffers, placed, pair_of, by_buffer):
                buf.offset = offset
                break
        placed.append(idx)
    return _align(max((b.offset + b.size for b in buffers), default=0))


def _orders(buffers: list[Buffer]) -> list[tuple[str, list[int]]]:
    idx = list(range(len(buffers)))
    b = buffers
    orders = [
        ("largest first", sorted(idx, key=lambda i: (-b[i].size, b[i].first))),
        ("first use", sorted(idx, key=lambda i: (b[i].first, -b[i].size))),
        ("last use", sorted(idx, key=lambda i: (-b[i].last, -b[i].size))),
        ("longest lived", sorted(idx, key=lambda i: (-(b[i].last - b[i].first), -b[i].size))),
        ("largest area", sorted(idx, key=lambda i: (-b[i].size * (b[i].last - b[i].first + 1), b[i].first))),
    ]
    rng = random.Random(0)
    base = orders[0][1]
    for k in range(SHUFFLES):
        o = list(base)
        # perturb the size order: swap neighbours / shuffle a window
        for _ in range(max(1, len(o) // 3)):
            i = rng.randrange(len(o))
            j = min(len(o) - 1, i + rng.randint(1, 4))
            o[i], o[j] = o[j], o[i]
        orders.append((f"shuffle {k}", o))
    return orders


def plan_memory(graph: Graph, layers=None) -> MemoryPlan:
    buffers = buffers_with_lifetimes(graph, layers)
    pairs = overlap_pairs(graph, layers, buffers)
    # the arena and every buffer's offset are multiples of ALIGNMENT
    bound = lower_bound(buffers, pairs, aligned=True)
    plain = [b for b in buffers if b.scratch_of is None]
    bound_plain = lower_bound(plain, aligned=True)
    best = None
    for name, order in _orders(buffers):
        arena = _place(order, buffers, pairs)
        if best is None or arena < best[0]:
            best = (arena, name, [b.offset for b in buffers])
        if arena <= bound:
            break
    arena, name, offs = best
    for b, o in zip(buffers, offs):
        b.offset = o
    offsets = {t: b.offset for b in buffers for t in b.tensors}
    scratch = {b.scratch_of: b.offset for b in buffers if b.scratch_of is not None}
    used = []
    for p in pairs:
        bi, bo = buffers[p.input], buffers[p.output]
        if bi.overlaps_in_space(bo):
            used.append({"layer": p.step, "input_tensors": bi.tensors, "output_tensors": bo.tensors,
                         "offset_delta": bo.offset - bi.offset,
                         "allowed": [list(i) for i in p.allowed]})
    return MemoryPlan(arena, bound, offsets, sorted(buffers, key=lambda b: (b.first, b.offset)),
                      scratch, used, bound_plain, name)


# -- how far an output may overlap its input ------------------------------------


def raster_overlap(p: dict, block: int = 1, reads_block_first: bool = False,
                   backward: bool = False) -> tuple[int | None, int | None]:
    """Allowed ``offset(out) - offset(in)`` for a conv-like or pooling layer
    whose kernel writes output pixels in raster order (NHWC, batch 1).

    ``p``: the layer's params (``in_h, in_w, in_c`` or ``c``, ``out_h,
    out_w, out_c``, ``k_h, k_w, stride_*``, ``dil_*``, ``pad_*``).
    A kernel that writes each pixel's outputs while still reading that
    pixel's receptive field (the reference kernels) is safe when every byte
    written up to pixel ``q`` lies below every input byte read from pixel
    ``q`` on; one that reads a whole block of ``block`` pixels before writing
    any of them (``reads_block_first``) only needs that below the inputs of
    the following blocks. Returns ``(None, D)``: any ``d <= D`` is safe.

    ``backward``: the kernel writes the blocks from the last to the first
    (each after reading it); then the written bytes must lie above every
    input byte the earlier pixels still read, and the result is ``(L, None)``:
    any ``d >= L`` is safe. A layer whose output is larger than its input
    (e.g. a 1x1 convolution that doubles the channels) can then start at its
    input's offset.
    """
    in_h, in_w = p["in_h"], p["in_w"]
    in_c = p.get("in_c", p.get("c"))
    out_h, out_w = p["out_h"], p["out_w"]
    out_c = p.get("out_c", p.get("c"))
    sh, sw = p["stride_h"], p["stride_w"]
    dh, dw = p.get("dil_h", 1), p.get("dil_w", 1)
    pt, pl = p["pad_top"], p["pad_left"]
    kh, kw = p["k_h"], p["k_w"]
    npix = out_h * out_w
    inf = 1 << 62

    def first_tap(o: int, stride: int, pad: int, dil: int, k: int, size: int) -> int | None:
        start = o * stride - pad
        for t in range(k):
            i = start + t * dil
            if 0 <= i < size:
                return i
        return None

    if backward:
        def last_tap(o: int, stride: int, pad: int, dil: int, k: int, size: int) -> int | None:
            start = o * stride - pad
            for t in range(k - 1, -1, -1):
                i = start + t * dil
                if 0 <= i < size:
                    return i
            return None

        rows_l = [last_tap(oy, sh, pt, dh, kh, in_h) for oy in range(out_h)]
        cols_l = [last_tap(ox, sw, pl, dw, kw, in_w) for ox in range(out_w)]
        prefix, top = [], 0                        # prefix[q]: input bytes read by pixels < q
        for q in range(npix):
            prefix.append(top)
            r, c = rows_l[q // out_w], cols_l[q % out_w]
            if r is not None and c is not None:
                top = max(top, (r * in_w + c + 1) * in_c)
        if not reads_block_first:
            raise ValueError("backward raster overlap needs a kernel that reads a block first")
        # writing the block that starts at s, after which pixels < s are still read
        low = max((prefix[s] - s * out_c for s in range(block, npix, block)), default=0)
        return (int(low), None)

    rows = [first_tap(oy, sh, pt, dh, kh, in_h) for oy in range(out_h)]
    cols = [first_tap(ox, sw, pl, dw, kw, in_w) for ox in range(out_w)]
    m = [inf] * (npix + 1)          # earliest input byte read by pixel q
    for q in range(npix):
        r, c = rows[q // out_w], cols[q % out_w]
        m[q] = inf if r is None or c is None else (r * in_w + c) * in_c
    suffix = [inf] * (npix + 1)
    for q in range(npix - 1, -1, -1):
        suffix[q] = min(m[q], suffix[q + 1])
    limit = inf
    if reads_block_first:
        for end in range(block, npix, block):          # writes of pixels < end, reads from end on
            limit = min(limit, suffix[end] - end * out_c)
    else:
        for q in range(npix):                           # writes up to pixel q while reading from q on
            limit = min(limit, suffix[q] - (q + 1) * out_c)
    if limit >= inf // 2:            # every input is read before the first write
        return (None, None)
    return (None, int(limit))
