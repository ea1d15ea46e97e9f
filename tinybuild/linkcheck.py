"""Link the firmware and turn the linker's overflow messages into plain ones."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .errors import TinybuildError
from .target import Target, Toolchain

_OVERFLOW = re.compile(r"region [`'](\w+)' overflowed by (\d+) bytes")


def link_command(toolchain: Toolchain, target: Target, objects, elf: Path, map_file: Path,
                 opt: str) -> list[str]:
    return [toolchain.tool("gcc"), *target.ldflags, f"-{opt}", "-nostartfiles",
            "-Wl,--gc-sections", f"-Wl,-Map={map_file}",
            # simulators read the descriptor; nothing on the device references it
            "-Wl,--undefined=tb_io_desc", "-T", str(target.linker_script),
            "-o", str(elf), *map(str, objects), "-Wl,--start-group", "-lc", "-lgcc",
            "-Wl,--end-group"]


def run_link(toolchain: Toolchain, target: Target, objects, elf: Path, map_file: Path,
             opt: str) -> None:
    cmd = link_command(toolchain, target, objects, elf, map_file, opt)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode == 0:
        return
    overflows = _OVERFLOW.findall(proc.stderr)
    if overflows:
        raise TinybuildError(_does_not_fit(target, overflows))
    raise TinybuildError(f"link failed:\n{' '.join(cmd)}\n{proc.stderr.strip()}")


def _does_not_fit(target: Target, overflows) -> str:
    lines = [f"the firmware does not fit {target.board} (target '{target.name}'):"]
    for region_name, over in overflows:
        region = next((r for r in target.memory if r.name == region_name), None)
        if region is None:
            lines.append(f"  region {region_name} overflowed by {int(over)} bytes")
            continue
        needed = region.length + int(over)
        kind = "flash" if region.kind == "flash" else "RAM"
        lines.append(f"  needs {needed} bytes of {kind}, board has {region.length} "
                     f"(linker region {region_name}, {int(over)} bytes over)")
    lines.append("Use a smaller model (fewer filters or layers), or a board with more memory.")
    return "\n".join(lines)
