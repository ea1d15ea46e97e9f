"""The ESP32-C3's firmware.bin: a flash image its ROM boots by "direct boot".

Rules (espressif/esp32c3-direct-boot-example; chip revision v0.3 and later,
secure boot off, eFuse ``DIS_DIRECT_BOOT``/``DIS_LEGACY_SPI_BOOT`` not burnt):
when flash offset 0 holds no ESP image (its first byte is not 0xE9) but
0xAEDB041D twice, the ROM maps the first 4 MB of flash at 0x42000000 (IROM,
instruction cache) and at 0x3C000000 (DROM, data cache) and jumps to
0x42000008. It copies nothing into RAM: .data and .bss are the firmware's job
(targets/esp32/startup_esp32c3.c). So the image is plain flash bytes from
offset 0, each loaded ELF section at its load address minus the base of the
window it is seen through; targets/esp32/esp32c3.ld lays the ELF out that way
and this module writes the bytes and checks the layout, so an image the ROM
would run wrongly is never written.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import TinybuildError, shown

CHIPS = ("esp32c3",)                         # targets whose firmware.bin is this image
MAGIC = bytes.fromhex("1d04dbae") * 2        # 0xAEDB041D twice, little-endian
ENTRY = 0x4200_0008                          # where the ROM jumps: flash offset 8 via IROM
MAPPED = 4 * 1024 * 1024                     # flash the ROM maps into each window
WINDOWS = {"IROM": 0x4200_0000, "DROM": 0x3C00_0000}
ERASED = 0xFF                                # gaps hold what erased flash reads
WHAT = ("ESP32-C3 direct-boot flash image: written at flash offset 0, the ROM maps it at "
        "0x42000000/0x3C000000 and jumps to 0x42000008")


@dataclass(frozen=True)
class Placed:
    """One loaded ELF section in the image: where the CPU sees its bytes
    (its load address) and where they sit in flash."""

    name: str
    address: int
    window: str
    offset: int
    data: bytes


def flash_offset(address: int) -> tuple[str, int] | None:
    """(window, flash offset) of a CPU address the ROM's mapping covers."""
    for window, base in WINDOWS.items():
        if base <= address < base + MAPPED:
            return window, address - base
    return None


def loaded_sections(elf: Path) -> tuple[int, list[tuple[str, int, bytes]]]:
    """The ELF's entry and (name, load address, bytes) of every section with
    contents. Sections, not segments: ld may pad a segment with the ELF
    headers, which are no part of the flash image."""
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as f:
        image = ELFFile(f)
        loads = [s for s in image.iter_segments() if s["p_type"] == "PT_LOAD"]
        found = []
        for sec in image.iter_sections():
            if not sec["sh_flags"] & 0x2 or sec["sh_type"] == "SHT_NOBITS" or not sec["sh_size"]:
                continue                                     # not SHF_ALLOC, or no bytes
            vma = sec["sh_addr"]
            lma = next((seg["p_paddr"] + vma - seg["p_vaddr"] for seg in loads
                        if seg["p_vaddr"] <= vma < seg["p_vaddr"] + seg["p_memsz"]), vma)
            found.append((sec.name, lma, sec.data()))
        return image["e_entry"], found


def place_sections(elf: Path) -> tuple[int, list[Placed]]:
    """The entry and the loaded sections by flash offset; one line naming
    the section if one cannot be in the direct-boot image."""
    entry, sections = loaded_sections(elf)
    placed = []
    for name, address, data in sections:
        where = flash_offset(address)
        if where is None or where[1] + len(data) > MAPPED:
            raise TinybuildError(f"{shown(elf, 200)}: section {shown(name)} loads at 0x{address:08x} "
                                 f"(+{len(data):,} B), outside the flash the ESP32-C3 ROM maps "
                                 "(0x42000000 and 0x3C000000, 4 MB each). Fix: place it > IROM, "
                                 "> DROM or AT > DROM in the linker script")
        placed.append(Placed(name, address, where[0], where[1], data))
    return entry, sorted(placed, key=lambda p: p.offset)


def check_layout(elf: Path, entry: int, placed: list[Placed]) -> None:
    """What the ROM relies on: the magic at offset 0, the entry at
    0x42000008, no two sections on the same flash bytes."""
    if not placed or placed[0].offset != 0 or placed[0].data[:8] != MAGIC:
        raise TinybuildError(f"{shown(elf, 200)}: flash offset 0 does not start with the direct-boot "
                             "magic 0xAEDB041D 0xAEDB041D, so the ESP32-C3 ROM would not boot it. Fix: "
                             "link with targets/esp32/esp32c3.ld and startup_esp32c3.c")
    if entry != ENTRY:
        raise TinybuildError(f"{shown(elf, 200)}: entry 0x{entry:08x}, but the ESP32-C3 ROM jumps to "
                             f"0x{ENTRY:08x} (flash offset 8). Fix: put _start first in .text, right "
                             "after the magic words (targets/esp32/esp32c3.ld)")
    for before, after in zip(placed, placed[1:]):
        if before.offset + len(before.data) > after.offset:
            raise TinybuildError(
                f"{shown(elf, 200)}: sections {shown(before.name)} (0x{before.address:08x}, via "
                f"{before.window}) and {shown(after.name)} (0x{after.address:08x}, via {after.window}) "
                f"both use flash offset 0x{after.offset:x}. Fix: start .rodata's load address after "
                ".text's flash bytes, as targets/esp32/esp32c3.ld does")


def image_bytes(elf: Path) -> bytes:
    entry, placed = place_sections(elf)
    check_layout(elf, entry, placed)
    end = max(p.offset + len(p.data) for p in placed)
    flash = bytearray([ERASED]) * end
    for p in placed:
        flash[p.offset:p.offset + len(p.data)] = p.data
    return bytes(flash)


def write_image(elf: Path, bin_path: Path) -> None:
    """firmware.bin for esptool ``write-flash 0x0``; written whole or not at all."""
    data = image_bytes(elf)
    partial = bin_path.with_name(bin_path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, bin_path)
