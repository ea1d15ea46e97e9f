"""``place=``: a model's constants copied to RAM at reset instead of read from flash.

Flash behind the ART accelerator costs wait states on every line the small
data cache misses; SRAM costs none (docs/timing.md). A weight set read once
per output pixel misses on every pass, so moving it to RAM trades RAM for
cycles. How (docs/placement.md):

- The linker scripts of the boards that support it put input sections named
  ``.ramdata.*`` in ``.data`` (SRAM, initial values in flash, copied by the
  startup code like any initialised variable). With none, the layout is
  byte-for-byte today's: ``place=flash`` (the default) changes nothing.
- A board may offer more RAM banks: output sections ``.ramdata_<REGION>``
  (input sections ``.ramdata_<REGION>.*``), copied by its startup code when
  compiled with ``-DTB_PLACE_BANKS``; nucleo-l4r5zi has SRAM3 (after the
  arena) and SRAM2 (above the stack), cortex-m4 the CCM. Empty, the linker
  drops them: the layout stays byte for byte today's.
- ``place=auto``/``ram``: the firmware is linked once as today, which gives
  the exact RAM left in the ``.data`` region and in each bank after the
  arena, stack and data; the constants (``tb_L<n>_<role>``, from model.o) are
  ranked by estimated flash wait cycles saved per byte and chosen greedily,
  each to the first of those regions (``.data``'s first) it still fits in;
  their sections are renamed ``.rodata.X`` -> ``.ramdata.X`` (or
  ``.ramdata_<REGION>.X``) in a copy of model.o, the startup is compiled again
  with ``-DTB_PLACE_BANKS`` when a bank is used, and the firmware linked
  again. ``placement.json`` records what went where.

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
# A further RAM bank the linker script offers: `*(.ramdata_<REGION>.*)`; the
# startup copies it from flash when compiled with BANKS_DEFINE.
_BANK_INPUT = re.compile(r"\*\(\s*\.ramdata_(\w+)\.\*\s*\)")
BANKS_DEFINE = "TB_PLACE_BANKS"
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
    region: str = ""           # the RAM region chosen for it

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


def bank_names(target) -> list[str]:
    """The RAM regions beyond ``.data``'s that the board offers to constants, in
    linker-script order: a ``.ramdata_<REGION>`` section its startup copies."""
    if not bank_startup(target):
        return []
    names = _BANK_INPUT.findall(Path(target.linker_script).read_text(errors="replace"))
    ram = {r.name for r in target.memory if r.kind == "ram"}
    for name in names:
        if name not in ram:
            raise TinybuildError(f"board {shown(target.name)}: its linker script offers "
                                 f".ramdata_{shown(name)} but its memory map has no RAM region "
                                 f"{shown(name)}: name the section after a RAM region "
                                 "(docs/placement.md)")
    return list(dict.fromkeys(names))


def bank_startup(target) -> Path | None:
    """The startup source that copies the banks when compiled with BANKS_DEFINE."""
    return next((Path(p) for p in target.startup_sources
                 if BANKS_DEFINE in Path(p).read_text(errors="replace")), None)


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


def _alloc_sections(elf: Path) -> list[tuple[str, int, int]]:
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as f:
        return [(s.name, s["sh_addr"], s["sh_size"]) for s in ELFFile(f).iter_sections()
                if s["sh_flags"] & 0x2]


def _free_after(sections, region) -> int:
    """Bytes left in ``region`` after the last section the link put there."""
    used_to = max((addr + size for _, addr, size in sections if region.contains(addr)),
                  default=region.origin)
    return region.origin + region.length - used_to


def data_region(elf: Path, target):
    """``(region, free bytes)``: the RAM region ``.data`` runs in, and what is
    left in it after every section the first link put there."""
    sections = _alloc_sections(elf)
    data = next((addr for name, addr, _ in sections if name == ".data"), None)
    region = target.region_of(data) if data is not None else None
    if region is None:
        return None, 0
    return region, _free_after(sections, region)


def ram_regions(elf: Path, target) -> dict[str, int]:
    """Free bytes per RAM region constants may go to, in the order they are
    tried: ``.data``'s region, then the banks of the board's linker script."""
    region, free = data_region(elf, target)
    if region is None:
        return {}
    sections, by_name = _alloc_sections(elf), {r.name: r for r in target.memory}
    banks = {name: _free_after(sections, by_name[name]) for name in bank_names(target)
             if name != region.name}
    return {region.name: free, **banks}


def budget(free: int, place: str) -> int:
    """What constants may take of a region's ``free`` bytes (auto keeps a reserve)."""
    reserve = min(AUTO_RESERVE_MAX, int(free * AUTO_RESERVE_SHARE)) if place == "auto" else 0
    return free - MARGIN_BYTES - reserve


def choose(found: list[Candidate], free: dict[str, int], place: str) -> list[Candidate]:
    """Greedy by saving per byte, each constant to the first region of ``free``
    (bytes free per region, in order of preference) it still fits in; each
    region keeps its own reserve. Sets ``region`` on the chosen."""
    left = {name: budget(n, place) for name, n in free.items()}
    chosen = []
    for c in sorted(found, key=lambda c: (-c.per_byte, c.symbol)):
        size = (c.bytes + 3) & ~3
        region = next((name for name, n in left.items() if size <= n), None)
        if c.cycles_saved > 0 and region:
            c.region = region
            left[region] -= size
            chosen.append(c)
    return chosen


def ram_section(symbol: str, region: str, data_region_name: str) -> str:
    """The input section a constant placed in ``region`` is renamed to."""
    if region == data_region_name:
        return f"{RAM_PREFIX}{symbol}"
    return f".ramdata_{region}.{symbol}"


def rename_sections(objcopy: str, model_o: Path, placed_o: Path, chosen: list[Candidate],
                    data_region_name: str = "") -> None:
    """A copy of model.o with the chosen constants' sections named ``.ramdata.*``
    (``.ramdata_<REGION>.*`` for those in a further bank)."""
    cmd = [objcopy]
    for c in chosen:
        new = ram_section(c.symbol, c.region or data_region_name, data_region_name)
        cmd += ["--rename-section", f".rodata.{c.symbol}={new}"]
    _run([*cmd, str(model_o), str(placed_o)], f"on {shown(model_o, 200)}")


def compile_bank_startup(toolchain, target, opt: str, out: Path) -> Path:
    """The board's startup compiled with BANKS_DEFINE (it then copies the banks too)."""
    from .kernel_registry import KERNEL_DIR, RUNTIME_DIR
    src = bank_startup(target)
    includes = [f"-I{d}" for d in (KERNEL_DIR, RUNTIME_DIR, *target.include_dirs)]
    _run([toolchain.tool("gcc"), *target.cflags, f"-{opt}", "-g", "-std=c99", "-ffunction-sections",
          "-fdata-sections", f"-D{BANKS_DEFINE}", *includes, "-c", str(src), "-o", str(out)],
         f"compiling {shown(src, 200)} with -D{BANKS_DEFINE}")
    return src


def _run(cmd: list[str], what: str) -> None:
    """Run a toolchain program (no shell); one line if it cannot run or fails."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TinybuildError(f"placement: cannot run {shown(cmd[0], 200)}: {shown(exc)}") from None
    if proc.returncode:
        raise TinybuildError(f"placement: {shown(cmd[0], 200)} failed {what}: "
                             f"{shown(proc.stderr.strip(), 400)}")


def link_placed(toolchain, target, objects: list[Path], elf: Path, map_file: Path, opt: str,
                place: str, plan_json: Path, record_json: Path) -> None:
    """Link as today, decide, and link again with the chosen constants in RAM."""
    from .linkcheck import run_link
    check_place(place)
    run_link(toolchain, target, objects, elf, map_file, opt)
    record, chosen = decide(elf, target, place, json.loads(Path(plan_json).read_text()))
    if chosen:
        swap = {"model.o": Path(elf).with_name("model.placed.o")}
        rename_sections(toolchain.tool("objcopy"), _object_named(objects, "model.o"),
                        swap["model.o"], chosen, record["region"])
        if any(c.region != record["region"] for c in chosen):
            startup_o = Path(elf).with_name("startup.placed.o")
            swap[bank_startup(target).stem + ".o"] = startup_o
            compile_bank_startup(toolchain, target, opt, startup_o)
        run_link(toolchain, target, [swap.get(Path(o).name, o) for o in objects], elf, map_file, opt)
        _confirm(elf, target, chosen, record)
    Path(record_json).write_text(json.dumps(record, indent=1) + "\n")


def _object_named(objects, name: str) -> Path:
    return next(Path(o) for o in objects if Path(o).name == name)


def decide(elf: Path, target, place: str, plan: dict) -> tuple[dict, list[Candidate]]:
    """The placement record (nothing placed: ``note`` says why) and the chosen constants."""
    record = {"place": place, "placed": [], "ram_bytes": 0, "cycles_saved_estimate": 0,
              "region": "", "free_bytes": 0, "memory_model": "", "note": ""}
    model, how = flash_model(target)
    region, _ = data_region(elf, target)
    if not supported(target):
        record["note"] = (f"board {shown(target.name)}'s linker script has no {LINKER_MARKER} "
                          "section: nothing placed (docs/placement.md)")
    elif model is None:
        record["note"] = f"{how}: nothing placed"
    elif region is None:
        record["note"] = "the firmware has no .data section in RAM: nothing placed"
    if record["note"]:
        return record, []
    free = ram_regions(elf, target)
    record.update(region=region.name, free_bytes=free[region.name], memory_model=how,
                  wait_states=model.wait_states(target.clock_hz), line_bytes=model.line_bytes,
                  regions=[{"name": n, "free_bytes": b, "placed_bytes": 0} for n, b in free.items()])
    found = candidates(elf, plan, target, model)
    chosen = choose(found, free, place)
    if not chosen:
        where = ", ".join(f"{b:,} B free in {n}" for n, b in free.items())
        record["note"] = (f"no RAM left for constants: {where} after the arena, stack and data, "
                          f"the smallest constant needs "
                          f"{min((c.bytes for c in found), default=0):,} B: nothing placed")
    record["candidates_bytes"] = sum(c.bytes for c in found)
    record["candidates_cycles_estimate"] = sum(c.cycles_saved for c in found)
    return record, chosen


def _confirm(elf: Path, target, chosen: list[Candidate], record: dict) -> None:
    """Every chosen constant now runs from RAM (else a tinybuild bug), and the record lists them."""
    where = {name: address for name, address, _ in _objects(elf)}
    for c in chosen:
        region = target.region_of(where.get(c.symbol, -1))
        if region is None or region.name != c.region:
            raise TinybuildError(f"placement: {c.symbol} is not in {c.region} after its section was "
                                 "renamed (a tinybuild bug: model.o's sections are not "
                                 "-fdata-sections ones, or the linker script lost a .ramdata line)")
        c.address = where[c.symbol]
    _confirm_copied(elf, target, {c.region for c in chosen} - {record["region"]})
    record["placed"] = [asdict(c) for c in sorted(chosen, key=lambda c: (c.layer, c.symbol))]
    record["ram_bytes"] = sum(c.bytes for c in chosen)
    record["cycles_saved_estimate"] = sum(c.cycles_saved for c in chosen)
    for r in record["regions"]:
        r["placed_bytes"] = sum(c.bytes for c in chosen if c.region == r["name"])


def _confirm_copied(elf: Path, target, banks: set[str]) -> None:
    """The startup refers to each used bank's load address (PROVIDEd only when
    referenced): else it would not copy it and the constants would read garbage."""
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        names = {s.name for s in symtab.iter_symbols()} if symtab else set()
    for bank in sorted(banks):
        if f"__ramdata_{bank}_load" not in names:
            raise TinybuildError(
                f"placement: board {shown(target.name)}'s startup {shown(bank_startup(target), 200)} "
                f"does not copy .ramdata_{shown(bank)} with -D{BANKS_DEFINE} (no reference to "
                f"__ramdata_{shown(bank)}_load): copy it there, or drop the section from the "
                "linker script (docs/placement.md)")


def summary_line(record: dict | None) -> str:
    """One line for the build summary ('' for place=flash)."""
    if not record:
        return ""
    if not record["placed"]:
        return f"  placement   place={record['place']}: {record['note']}"
    layers = len({p["layer"] for p in record["placed"]})
    return (f"  placement   place={record['place']}: {len(record['placed'])} constants of {layers} "
            f"layers, {record['ram_bytes']:,} B to {_where(record)} (est. "
            f"{record['cycles_saved_estimate']:,} flash wait cycles saved)")


def _used(record: dict) -> list[dict]:
    """The regions that received constants (older records: the .data region only)."""
    regions = record.get("regions") or [{"name": record["region"], "free_bytes": record["free_bytes"],
                                         "placed_bytes": record["ram_bytes"]}]
    return [r for r in regions if r["placed_bytes"]]


def _where(record: dict) -> str:
    """'SRAM1', or 'SRAM1 173,456 B + SRAM3 97,120 B' when several regions took constants."""
    used = _used(record)
    if len(used) == 1:
        return used[0]["name"]
    return " + ".join(f"{r['name']} {r['placed_bytes']:,} B" for r in used)


def markdown(record: dict | None) -> list[str]:
    """report.md's Placement section ([] for place=flash)."""
    if not record:
        return []
    lines = ["", "## Placement", ""]
    if not record["placed"]:
        return lines + [f"place={record['place']}: {record['note']}."]
    taken = "; ".join(f"{r['name']} {r['placed_bytes']:,} of {r['free_bytes']:,} B"
                      for r in record.get("regions") or _used(record))
    lines += [f"place={record['place']}: {record['ram_bytes']:,} B of constants copied to "
              f"{_where(record)} at reset (taken of the RAM free after the arena, stack and "
              f"data: {taken}). "
              f"Estimated flash wait cycles saved per inference: "
              f"{record['cycles_saved_estimate']:,} ({record['memory_model']}, "
              f"{record['wait_states']} wait states per {record['line_bytes']}-byte line; "
              "docs/placement.md). The cycles above are the simulator's own.", "",
              "| layer | constant | bytes | region | address | est. wait cycles saved |",
              "| ---: | --- | ---: | --- | --- | ---: |"]
    for p in record["placed"]:
        lines.append(f"| {p['layer']} | {p['symbol']} | {p['bytes']:,} | "
                     f"{p.get('region') or record['region']} | 0x{p['address']:08x} | "
                     f"{p['cycles_saved']:,} |")
    return lines
