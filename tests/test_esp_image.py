"""The ESP32-C3's firmware.bin is a flash image its ROM boots by "direct boot"
(tinybuild/esp_direct_boot.py, targets/esp32/esp32c3.ld).

Checked: the magic words at flash offset 0, the entry where the ROM jumps
(0x42000008), every loaded section at the flash offset its address minus the
window's base (0x42000000 IROM, 0x3C000000 DROM) gives, no two sections on the
same flash bytes; a small firmware boots in Unicorn from firmware.bin alone,
mapped as the ROM maps it, with .data copied by the startup; bad layouts stop
in one line; upload=1 writes the image at 0x0. Slow: KWS built for esp32c3.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tbtest import ROOT
from tinybuild import esp_direct_boot as dboot
from tinybuild import plugins, realboard
from tinybuild.errors import TinybuildError

IROM, DROM, DRAM = 0x4200_0000, 0x3C00_0000, 0x3FC8_0000
MAGIC = bytes.fromhex("1d04dbae1d04dbae")

APP_MAIN = r"""
#include <stdint.h>
#include "tb_runtime.h"
volatile int tb_exit_code;
int counter = 0x1234;                               /* .data: copied by _start */
static int zeroed[8];                               /* .bss: zeroed by _start */
const uint8_t table[300] = {1, 2, 3, [299] = 7};    /* .rodata: read through DROM */
int main(void) {
  int sum = counter;
  for (int i = 0; i < 300; i++) sum += table[i];
  for (int i = 0; i < 8; i++) sum += zeroed[i];
  return sum;                                       /* 0x1234 + 13 */
}
void tb_exit(int code) { tb_exit_code = code; for (;;) {} }
"""


def esp32c3():
    pm = plugins.make_plugin_manager([])
    target = plugins.find_target(pm, "esp32c3")
    toolchain = pm.hook.tinybuild_find_toolchain(target=target, explicit_path=None)
    if toolchain is None:
        pytest.skip("no RISC-V toolchain for esp32c3")
    return target, toolchain


def link_small_firmware(folder: Path, linker_script: Path | None = None) -> Path:
    """startup_esp32c3.c + APP_MAIN, linked as tinybuild links a firmware."""
    target, toolchain = esp32c3()
    (folder / "main.c").write_text(APP_MAIN)
    elf = folder / "app.elf"
    cmd = [toolchain.tool("gcc"), *target.cflags, "-O2", f"-I{ROOT / 'tinybuild' / 'runtime'}",
           "-nostartfiles", "-Wl,--gc-sections", "-T", str(linker_script or target.linker_script),
           "-o", str(elf), str(folder / "main.c"), *map(str, target.startup_sources)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return elf


def symbols(elf: Path) -> dict[str, int]:
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as f:
        return {s.name: s["st_value"] for s in ELFFile(f).get_section_by_name(".symtab").iter_symbols()}


def boot_like_the_rom(image: bytes, stop_at: int, max_instructions: int = 50_000_000) -> int:
    """Run ``image`` as the ROM's direct boot would: the first 4 MB of flash
    mapped at IROM and DROM, SRAM1 at DRAM, PC = 0x42000008. Returns a0 at ``stop_at``."""
    unicorn = pytest.importorskip("unicorn")
    from unicorn import riscv_const as R
    uc = unicorn.Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV32)
    for base in (IROM, DROM):
        uc.mem_map(base, dboot.MAPPED)
        uc.mem_write(base, image)
    uc.mem_map(DRAM, 384 * 1024)
    uc.mem_write(DRAM, b"\xa5" * 384 * 1024)        # RAM holds no zeros the startup did not write
    uc.emu_start(dboot.ENTRY, stop_at, count=max_instructions)
    assert uc.reg_read(R.UC_RISCV_REG_PC) == stop_at, "the firmware did not reach tb_exit"
    return uc.reg_read(R.UC_RISCV_REG_A0)


# -- the layout ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small(tmp_path_factory):
    elf = link_small_firmware(tmp_path_factory.mktemp("esp-image"))
    return elf, dboot.image_bytes(elf)


def test_the_image_starts_with_the_magic_and_the_entry_is_where_the_rom_jumps(small):
    elf, image = small
    entry, _ = dboot.loaded_sections(elf)
    assert image[:8] == MAGIC
    assert entry == dboot.ENTRY == IROM + 8 == symbols(elf)["_start"]


def test_every_section_sits_at_its_address_minus_the_window_base(small):
    elf, image = small
    _, sections = dboot.loaded_sections(elf)
    by_name = {name: (address, data) for name, address, data in sections}
    assert {".direct_boot", ".text", ".rodata"} <= set(by_name)
    for name, (address, data) in by_name.items():
        windows = [base for base in (IROM, DROM) if base <= address < base + (4 << 20)]
        assert len(windows) == 1, (name, hex(address))
        offset = address - windows[0]
        assert image[offset:offset + len(data)] == data, name
    text_end = by_name[".text"][0] - IROM + len(by_name[".text"][1])
    assert by_name[".rodata"][0] - DROM >= text_end          # after the code's flash bytes
    data_lma = symbols(elf)["_sidata"]
    assert DROM <= data_lma and image[data_lma - DROM:data_lma - DROM + 4] == \
        (0x1234).to_bytes(4, "little")                        # .data's initial value, in flash


def test_the_image_alone_boots_the_way_the_rom_runs_it(small):
    elf, image = small
    assert boot_like_the_rom(image, symbols(elf)["tb_exit"]) == 0x1234 + 1 + 2 + 3 + 7


# -- layouts the ROM would not run: one line each ------------------------------------------

def one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


def test_rodata_on_the_codes_flash_bytes_is_refused(tmp_path):
    target, _ = esp32c3()
    script = target.linker_script.read_text().replace(
        ".rodata ORIGIN(DROM) + ALIGN(_irom_flash_end, 16) :", ".rodata :")
    assert script != target.linker_script.read_text()
    (tmp_path / "overlap.ld").write_text(script)
    elf = link_small_firmware(tmp_path, tmp_path / "overlap.ld")
    with pytest.raises(TinybuildError) as info:
        dboot.write_image(elf, tmp_path / "firmware.bin")
    assert "both use flash offset 0x0" in one_line(info) and ".rodata" in one_line(info)
    assert not (tmp_path / "firmware.bin").exists() and not list(tmp_path.glob("*.partial"))


def placed(name, address, data):
    window, offset = dboot.flash_offset(address)
    return dboot.Placed(name, address, window, offset, data)


def test_no_magic_or_another_entry_is_refused():
    code = placed(".text", IROM, b"\x01\x00" * 8)
    with pytest.raises(TinybuildError, match="does not start with the direct-boot magic") as info:
        dboot.check_layout(Path("fw.elf"), dboot.ENTRY, [code])
    one_line(info)
    good = [placed(".direct_boot", IROM, MAGIC), placed(".text", IROM + 8, b"\x01\x00")]
    with pytest.raises(TinybuildError, match="entry 0x42000000, but the ESP32-C3 ROM jumps to "
                                             "0x42000008") as info:
        dboot.check_layout(Path("fw.elf"), IROM, good)
    one_line(info)
    dboot.check_layout(Path("fw.elf"), dboot.ENTRY, good)     # and the right layout passes


def test_a_section_loaded_outside_the_mapped_flash_is_refused(monkeypatch):
    monkeypatch.setattr(dboot, "loaded_sections", lambda elf: (
        dboot.ENTRY, [(".direct_boot", IROM, MAGIC), (".data\x1b[31m", DRAM, b"\x00" * 4)]))
    with pytest.raises(TinybuildError, match=r"section '?\.data\\x1b\[31m'? loads at 0x3fc80000") as info:
        dboot.image_bytes(Path("fw.elf"))
    assert "\x1b" not in one_line(info)


def test_flash_offsets_of_both_windows():
    assert dboot.flash_offset(IROM + 0x1234) == ("IROM", 0x1234)
    assert dboot.flash_offset(DROM + 0x3F_FFFF) == ("DROM", 0x3F_FFFF)
    assert dboot.flash_offset(DROM + dboot.MAPPED) is None and dboot.flash_offset(DRAM) is None


def test_upload_writes_the_image_at_flash_offset_0():
    target, _ = esp32c3()
    argv = realboard.upload_argv(target.flasher, Path("firmware.hex"), Path("firmware.bin"))
    assert argv[1:] == ["-m", "esptool", "--chip", "esp32c3", "write-flash", "0x0", "firmware.bin"]


# -- the real build ---------------------------------------------------------------------------

@pytest.mark.slow
def test_kws_for_esp32c3_gets_a_direct_boot_image(tmp_path):
    esp32c3()
    scons = Path(sys.executable).with_name("scons")
    result = subprocess.run([str(scons), "-C", str(ROOT), "-Q", f"build_dir={tmp_path}",
                             "target=esp32c3", "model=kws.h5"], capture_output=True, text=True,
                            env=os.environ.copy(), timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    tdir = tmp_path / "esp32c3" / "kws"
    image = (tdir / "firmware.bin").read_bytes()
    elf = tdir / "firmware.elf"
    assert image == dboot.image_bytes(elf) and image[:8] == MAGIC
    entry, sections = dboot.loaded_sections(elf)
    assert entry == dboot.ENTRY
    for name, address, data in sections:
        _, offset = dboot.flash_offset(address)
        assert image[offset:offset + len(data)] == data, name
    report = json.loads((tdir / "report.json").read_text())
    assert {f["name"]: f["what"] for f in report["files"]}["firmware.bin"] == dboot.WHAT
    assert report["flash"]["used"] <= len(image) < 2 << 20    # the DROM window's 2 MB
    # The image alone, mapped as the ROM maps it, runs the inference to tb_exit.
    boot_like_the_rom(image, symbols(elf)["tb_exit"])
