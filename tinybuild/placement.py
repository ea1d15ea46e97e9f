"""``place=``: a model's constants copied to RAM at reset instead of read from flash.

Flash behind the ART accelerator costs wait states on every line the small
data cache misses; SRAM costs none (docs/timing.md). A weight set read once
per output pixel misses on every pass, so moving it to RAM trades RAM for
cycles. How (docs/placement.md):

- The linker scripts of the boards that support it put input sections named
  ``.ramdata.*`` in ``.data`` (SRAM, initial values in flash, copied by the
  startup code like any initialised variable). With none, the layout is
  byte-for-byte today's: ``place=flash`` (the default) changes nothing.
- ``place=auto``/``ram``: the firmware is linked once as today, which gives
  the exact RAM left in the ``.data`` region after the arena, stack and data;
  the constants (``tb_L<n>_<role>``, from model.o) are ranked by estimated
  flash wait cycles saved per byte, chosen greedily, their sections renamed
  ``.rodata.X`` -> ``.ramdata.X`` in a copy of model.o, and the firmware
  linked again. ``placement.json`` records what went where.

Kernel code is not placed: the unicorn simulator counts instructions only in
the ELF's decoded text (code run from RAM stops the run, "outside its decoded
text"), so a firmware with code in RAM could not be validated here.
"""
from __future__ import annotations

import json
import math
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import TinybuildError, shown

PLACES = ("flash", "auto", "ram")
RAM_PREFIX = ".ramdata."
LINKER_MARKER = ".ramdata"
# Bytes kept free in the region beyond the placed constants: .noinit's ALIGN(16)
# and the 4-byte alignment of each constant.
MARGIN_BYTES = 32
# place=auto leaves this share of the free RAM (at most AUTO_RESERVE_MAX) to
# the application around the model; place=ram takes all of it.
AUTO_RESERVE_SHARE = 0.25
AUTO_RESERVE_MAX = 16 * 1024
# Output positions computed per pass over the weights: the cortex-m4 kernels
# block conv outputs and walk depthwise rows, so they re-read less than once
# per position. Fit to the per-layer flash wait cycles of the MLPerf Tiny models
# on nucleo-l4r5zi with place=flash (docs/placement.md); other ops: 1.
OUTPUTS_PER_PASS = {"CONV_2D": 4, "DEPTHWISE_CONV_2D": 8}
_CONST = re.compile(r"tb_L(\d+)_(\w+)")


@dataclass
class Candidate:
    symbol: str
    layer: int
    role: str
    bytes: int
    cycles_saved: int          # estimated flash wait cycles per inference
    address: int = 0           # where it ended up

    @property
    def per_byte(self) -> float:
        return self.cycles_saved / max(self.bytes, 1)


def variant_suffix(place: str) -> str:
    """The output folder's suffix: placed builds sit beside the flash one."""
    return "" if place == "flash" else f"-place-{place}"


def check_place(place: str) -> None:
    if place not in PLACES:
        raise TinybuildError(f"place={shown(place)} is not a placement: use one of "
                             f"{', '.join(PLACES)} (docs/placement.md)")


def supported(target) -> bool:
    """The board's linker script puts ``.ramdata`` input sections in RAM."""
    return LINKER_MARKER in Path(target.linker_script).read_text(errors="replace")


def flash_model(target):
    """``(model, how)``: the memory model that prices flash reads, or ``(None, why)``."""
    try:
        from sim.unicorn import timing
    except ImportError:
        return None, "the unicorn simulator's memory models are not importable"
    if target.memory_model in timing.NO_MEMORY_MODEL:
        return None, f"board {shown(target.name)} has no memory model: flash reads cost nothing"
    return timing.memory_model_for(target), target.memory_model


def estimate(layer: dict, consts: list[tuple[str, int]], model, wait_states: int) -> dict[str, int]:
    """Estimated flash wait cycles per inference for each of one layer's constants.

    Output positions = MACs / (bytes of its largest constant, one byte per
    int8 weight); the kernels read the weights once per OUTPUTS_PER_PASS of
    them. When the layer's constants together outgrow the data cache, every
    pass misses every line; else only the first does."""
    total = sum(size for _, size in consts)
    largest = max((size for _, size in consts), default=1)
    positions = layer.get("macs", 0) // max(largest, 1)
    passes = max(1, positions // OUTPUTS_PER_PASS.get(layer.get("op", ""), 1))
    cache_bytes = model.dcache.lines * model.line_bytes
    reads = passes if total > cache_bytes else 1
    return {name: math.ceil(size / model.line_bytes) * reads * wait_states for name, size in consts}


def candidates(elf: Path, plan: dict, target, model) -> list[Candidate]:
    """The model's constants in flash, each with its estimated saving."""
    wait_states = model.wait_states(target.clock_hz)
    by_layer: dict[int, list[tuple[str, int]]] = {}
    for name, address, size in _objects(elf):
        m = _CONST.fullmatch(name)
        region = target.region_of(address)
        if m and size and region and region.kind == "flash":
            by_layer.setdefault(int(m.group(1)), []).append((name, size))
    layers = {l["index"]: l for l in plan["layers"]}
    out = []
    for index, consts in sorted(by_layer.items()):
        saved = estimate(layers.get(index, {}), consts, model, wait_states)
        out += [Candidate(name, index, _CONST.fullmatch(name).group(2), size, saved[name])
                for name, size in consts]
    return out


def _objects(elf: Path) -> list[tuple[str, int, int]]:
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        return [(s.name, s["st_value"], s["st_size"]) for s in symtab.iter_symbols()
                if s["st_info"]["type"] == "STT_OBJECT"] if symtab else []


def data_region(elf: Path, target):
    """``(region, free bytes)``: the RAM region ``.data`` runs in, and what is
    left in it after every section the first link put there."""
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as f:
        sections = [(s.name, s["sh_addr"], s["sh_size"]) for s in ELFFile(f).iter_sections()
                    if s["sh_flags"] & 0x2]
    data = next((addr for name, addr, _ in sections if name == ".data"), None)
    region = target.region_of(data) if data is not None else None
    if region is None:
        return None, 0
    used_to = max(addr + size for _, addr, size in sections if region.contains(addr))
    return region, region.origin + region.length - used_to


def choose(found: list[Candidate], free: int, place: str) -> list[Candidate]:
    """Greedy by saving per byte within ``free`` bytes (auto keeps a reserve)."""
    budget = free - MARGIN_BYTES
    if place == "auto":
        budget -= min(AUTO_RESERVE_MAX, int(free * AUTO_RESERVE_SHARE))
    chosen = []
    for c in sorted(found, key=lambda c: (-c.per_byte, c.symbol)):
        size = (c.bytes + 3) & ~3
        if c.cycles_saved > 0 and size <= budget:
            chosen.append(c)
            budget -= size
    return chosen


def rename_sections(objcopy: str, model_o: Path, placed_o: Path, chosen: list[Candidate]) -> None:
    """A copy of model.o with the chosen constants' sections named ``.ramdata.*``."""
    cmd = [objcopy]
    for c in chosen:
        cmd += ["--rename-section", f".rodata.{c.symbol}={RAM_PREFIX}{c.symbol}"]
    cmd += [str(model_o), str(placed_o)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TinybuildError(f"placement: cannot run {shown(objcopy, 200)}: {shown(exc)}") from None
    if proc.returncode:
        raise TinybuildError(f"placement: {shown(objcopy, 200)} failed on {shown(model_o, 200)}: "
                             f"{shown(proc.stderr.strip(), 400)}")


def link_placed(toolchain, target, objects: list[Path], elf: Path, map_file: Path, opt: str,
                place: str, plan_json: Path, record_json: Path) -> None:
    """Link as today, decide, and link again with the chosen constants in RAM."""
    from .linkcheck import run_link
    check_place(place)
    run_link(toolchain, target, objects, elf, map_file, opt)
    record, chosen = decide(elf, target, place, json.loads(Path(plan_json).read_text()))
    if chosen:
        model_o = next(Path(o) for o in objects if Path(o).name == "model.o")
        placed_o = Path(elf).with_name("model.placed.o")
        rename_sections(toolchain.tool("objcopy"), model_o, placed_o, chosen)
        run_link(toolchain, target, [placed_o if Path(o) == model_o else o for o in objects],
                 elf, map_file, opt)
        _confirm(elf, target, chosen, record)
    Path(record_json).write_text(json.dumps(record, indent=1) + "\n")


def decide(elf: Path, target, place: str, plan: dict) -> tuple[dict, list[Candidate]]:
    """The placement record (nothing placed: ``note`` says why) and the chosen constants."""
    record = {"place": place, "placed": [], "ram_bytes": 0, "cycles_saved_estimate": 0,
              "region": "", "free_bytes": 0, "memory_model": "", "note": ""}
    model, how = flash_model(target)
    region, free = data_region(elf, target)
    if not supported(target):
        record["note"] = (f"board {shown(target.name)}'s linker script has no {LINKER_MARKER} "
                          "section: nothing placed (docs/placement.md)")
    elif model is None:
        record["note"] = f"{how}: nothing placed"
    elif region is None:
        record["note"] = "the firmware has no .data section in RAM: nothing placed"
    if record["note"]:
        return record, []
    record.update(region=region.name, free_bytes=free, memory_model=how,
                  wait_states=model.wait_states(target.clock_hz), line_bytes=model.line_bytes)
    found = candidates(elf, plan, target, model)
    chosen = choose(found, free, place)
    if not chosen:
        record["note"] = (f"no RAM left for constants: {free:,} B free in {region.name} after the "
                          f"arena, stack and data, the smallest constant needs "
                          f"{min((c.bytes for c in found), default=0):,} B: nothing placed")
    record["candidates_bytes"] = sum(c.bytes for c in found)
    record["candidates_cycles_estimate"] = sum(c.cycles_saved for c in found)
    return record, chosen


def _confirm(elf: Path, target, chosen: list[Candidate], record: dict) -> None:
    """Every chosen constant now runs from RAM (else a tinybuild bug), and the record lists them."""
    where = {name: address for name, address, _ in _objects(elf)}
    for c in chosen:
        region = target.region_of(where.get(c.symbol, -1))
        if region is None or region.kind != "ram":
            raise TinybuildError(f"placement: {c.symbol} stayed in flash after its section was "
                                 "renamed (a tinybuild bug: model.o's sections are not "
                                 "-fdata-sections ones)")
        c.address = where[c.symbol]
    record["placed"] = [asdict(c) for c in sorted(chosen, key=lambda c: (c.layer, c.symbol))]
    record["ram_bytes"] = sum(c.bytes for c in chosen)
    record["cycles_saved_estimate"] = sum(c.cycles_saved for c in chosen)


def summary_line(record: dict | None) -> str:
    """One line for the build summary ('' for place=flash)."""
    if not record:
        return ""
    if not record["placed"]:
        return f"  placement   place={record['place']}: {record['note']}"
    layers = len({p["layer"] for p in record["placed"]})
    return (f"  placement   place={record['place']}: {len(record['placed'])} constants of {layers} "
            f"layers, {record['ram_bytes']:,} B to {record['region']} (est. "
            f"{record['cycles_saved_estimate']:,} flash wait cycles saved)")


def markdown(record: dict | None) -> list[str]:
    """report.md's Placement section ([] for place=flash)."""
    if not record:
        return []
    lines = ["", "## Placement", ""]
    if not record["placed"]:
        return lines + [f"place={record['place']}: {record['note']}."]
    lines += [f"place={record['place']}: {record['ram_bytes']:,} B of constants copied to "
              f"{record['region']} at reset ({record['free_bytes']:,} B were free there after the "
              f"arena, stack and data). Estimated flash wait cycles saved per inference: "
              f"{record['cycles_saved_estimate']:,} ({record['memory_model']}, "
              f"{record['wait_states']} wait states per {record['line_bytes']}-byte line; "
              "docs/placement.md). The cycles above are the simulator's own.", "",
              "| layer | constant | bytes | address | est. wait cycles saved |",
              "| ---: | --- | ---: | --- | ---: |"]
    for p in record["placed"]:
        lines.append(f"| {p['layer']} | {p['symbol']} | {p['bytes']:,} | 0x{p['address']:08x} | "
                     f"{p['cycles_saved']:,} |")
    return lines
