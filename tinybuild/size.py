"""Flash and RAM used by a firmware ELF, by section, by symbol group, by layer.

Sections are sorted into flash and RAM by address, as PlatformIO's size tool
does: a section occupies flash if its load address (LMA) lies in a flash
region (``.data`` counts twice: its initial values in flash, its variables in
RAM) and RAM if its run address (VMA) lies in a RAM region. Symbol groups come
from the linker map: every input section is charged to the object file it
came from (weights and model code, kernels, runtime, startup, C library).
Per-layer flash comes from the generated ``tb_L<n>_*`` symbols.
"""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from .target import Target

_MAP_LINE = re.compile(r"^ (\.\S+|COMMON)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
_LAYER_SYMBOL = re.compile(r"^tb_L(\d+)_")


def _group_of(obj: str) -> str:
    member = re.fullmatch(r"(.*\.a)\((.*)\)", obj)   # lib.a(member.o); "(" may be in a folder name
    name = Path(member.group(1) if member else obj).name
    if member or name.endswith(".a"):
        return "libc" if "libc" in name or "libnosys" in name or "libm" in name else "libgcc"
    if name == "model.o":
        return "model"
    if name.startswith("startup"):
        return "startup"
    if name.startswith("tb_runtime"):
        return "runtime"
    return "kernels" if "kernels" in obj or name.endswith("_s8.o") else "other"


def map_input_sections(map_text: str) -> list[tuple[str, int, int, str]]:
    """(input section, address, size, object) for every allocated input section."""
    out, pending = [], None
    in_memory_map = False
    for line in map_text.splitlines():
        if line.startswith("Linker script and memory map"):
            in_memory_map = True
            continue
        if not in_memory_map:
            continue
        m = _MAP_LINE.match(line)
        if m and (m.group(1) or pending):
            section = m.group(1) or pending
            pending = None
            size = int(m.group(3), 16)
            if size and not m.group(4).startswith("load address"):
                out.append((section, int(m.group(2), 16), size, m.group(4).strip()))
            continue
        stripped = line.strip()
        pending = stripped if line.startswith(" .") and " " not in stripped else None
    return out


def analyze(elf_path: Path, map_path: Path | None, target: Target) -> dict:
    from elftools.elf.elffile import ELFFile

    sections, flash_total, ram_total = [], 0, 0
    per_layer = defaultdict(int)
    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        segments = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        for sec in elf.iter_sections():
            if not sec["sh_flags"] & 0x2 or not sec["sh_size"]:  # SHF_ALLOC
                continue
            vma, size = sec["sh_addr"], sec["sh_size"]
            lma = _load_address(sec, segments)
            in_flash = _kind(target, lma) == "flash" and sec["sh_type"] != "SHT_NOBITS"
            in_ram = _kind(target, vma) == "ram"
            sections.append({"name": sec.name, "address": vma, "size": size,
                             "flash": size if in_flash else 0, "ram": size if in_ram else 0})
            flash_total += size if in_flash else 0
            ram_total += size if in_ram else 0
        symtab = elf.get_section_by_name(".symtab")
        symbols = list(symtab.iter_symbols()) if symtab else []
    for sym in symbols:
        m = _LAYER_SYMBOL.match(sym.name)
        if m and sym["st_size"]:
            per_layer[int(m.group(1))] += sym["st_size"]
    sym_by_name = {s.name: s for s in symbols}
    groups = _groups_from_map(map_path, target) if map_path and map_path.exists() else {}
    arena = sym_by_name.get("tb_arena")
    stack = [s for s in sections if s["name"] == ".stack"]
    return {
        "flash": {"used": flash_total, "capacity": target.capacity("flash")},
        "ram": {"used": ram_total, "capacity": target.capacity("ram")},
        "arena_bytes": arena["st_size"] if arena else 0,
        "stack_reserved_bytes": stack[0]["size"] if stack else 0,
        "sections": sections,
        "groups": groups,
        "layers_flash": {str(k): v for k, v in sorted(per_layer.items())},
    }


def _load_address(sec, segments) -> int:
    for seg in segments:
        if seg["p_vaddr"] <= sec["sh_addr"] < seg["p_vaddr"] + max(seg["p_memsz"], 1):
            return seg["p_paddr"] + sec["sh_addr"] - seg["p_vaddr"]
    return sec["sh_addr"]


def _kind(target: Target, address: int) -> str:
    region = target.region_of(address)
    return region.kind if region else ""


def _groups_from_map(map_path: Path, target: Target) -> dict:
    groups: dict[str, dict[str, int]] = defaultdict(lambda: {"flash": 0, "ram": 0})
    for section, address, size, obj in map_input_sections(map_path.read_text(errors="replace")):
        group = _group_of(obj)
        if group == "model":
            group = "weights" if section.startswith((".rodata", ".ramdata")) else (
                "arena" if section.startswith((".noinit", ".bss")) else "model code")
        kind = _kind(target, address)
        if kind:
            groups[group][kind] += size
        if section.startswith((".data", ".ramdata")):  # initial values also sit in flash
            groups[group]["flash"] += size
    return dict(sorted(groups.items()))
