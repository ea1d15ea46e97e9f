"""Link the firmware, check linker scripts against memory maps, and explain
a firmware that does not fit.

- :func:`script_problems`: the ``MEMORY`` regions of a board's linker script
  against its ``Target.memory`` (checked when the plugin loads).
- :func:`run_link`: the link, with a timeout; a region overflow is re-linked
  with ``--noinhibit-exec`` (the linker then writes its output anyway) to
  break the need down into arena, stack reserve, other data, code and weights,
  and to name the fix that matches the cause.
- :func:`check_arena_fits`: the same verdict at code generation, before
  anything is compiled, when the arena alone cannot fit.
"""
from __future__ import annotations

import ast
import json
import operator
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import TinybuildError, shown
from .target import MemoryRegion, Target, Toolchain

LINK_TIMEOUT_S = 300
# The smallest stack reserve a fix suggests: tinybuild's kernels peak at a few
# hundred bytes (report.md shows the measured peak), startup code at less.
MIN_STACK_BYTES = 1024
ARENA_SYMBOL = "tb_arena"
_WEIGHT_SYMBOL = re.compile(r"tb_L\d+_")
_OVERFLOW = re.compile(r"region [`'](\w+)' overflowed by (\d+) bytes")


# -- linker scripts --------------------------------------------------------------

_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_MEMORY = re.compile(r"\bMEMORY\s*\{(.*?)\}", re.S)
_ENTRY = re.compile(r"([A-Za-z_][\w.$]*)\s*(?:\([^)]*\))?\s*:\s*(?:ORIGIN|org|o)\s*=\s*")
_LENGTH = re.compile(r",\s*(?:LENGTH|len|l)\s*=\s*")
_ASSIGNMENT = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*([^;{}]+);", re.M)
_DEFAULTED = re.compile(r"DEFINED\s*\(\s*(\w+)\s*\)\s*\?\s*\1\s*:\s*(.+)", re.S)
_NUMBER = re.compile(r"(?<![\w.$])(0[xX][0-9a-fA-F]+|\d+)([KkMm]?)(?![\w.$])")
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.floordiv, ast.Mod: operator.mod, ast.BitAnd: operator.and_,
           ast.BitOr: operator.or_, ast.LShift: operator.lshift, ast.RShift: operator.rshift}


class ScriptError(ValueError):
    """A linker script tinybuild cannot read; str() says what and how to fix it."""


def script_text(path: Path) -> str:
    """The script without its comments."""
    return _COMMENT.sub(" ", Path(path).read_text(errors="replace"))


def defsyms(ldflags) -> dict[str, str]:
    """Symbols the link flags define (``-Wl,--defsym=NAME=VALUE``)."""
    args = [a for flag in ldflags if flag.startswith("-Wl,") for a in flag[4:].split(",")]
    found = {}
    for i, arg in enumerate(args):
        spec = arg.split("=", 1)[1] if arg.startswith(("--defsym=", "-defsym=")) else \
            args[i + 1] if arg in ("--defsym", "-defsym") and i + 1 < len(args) else ""
        if "=" in spec:
            name, value = spec.split("=", 1)
            found[name.strip()] = value.strip()
    return found


def evaluate(expr: str, symbols: dict[str, int], regions: dict[str, tuple[int, int]]) -> int:
    """A linker-script expression of numbers (hex, decimal, octal, K/M
    suffixes), + - * / % << >> & |, parentheses, known symbols and
    ORIGIN(r)/LENGTH(r). Anything else raises ScriptError."""
    try:
        tree = ast.parse(_NUMBER.sub(_number_literal, expr.strip()), mode="eval")
        value = _evaluate_node(tree.body, symbols, regions)
    except (SyntaxError, ValueError, ZeroDivisionError, KeyError, RecursionError):
        raise ScriptError(f"cannot evaluate '{shown(expr.strip())}'") from None
    if not isinstance(value, int):
        raise ScriptError(f"cannot evaluate '{shown(expr.strip())}'")
    return value


def _number_literal(match: re.Match) -> str:
    digits, suffix = match.groups()
    if digits[:2].lower() == "0x":
        value = int(digits, 16)
    else:
        value = int(digits, 8) if len(digits) > 1 and digits[0] == "0" else int(digits)
    return str(value * {"": 1, "k": 1024, "m": 1 << 20}[suffix.lower()])


def _evaluate_node(node, symbols, regions) -> int:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.Name):
        return symbols[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Invert)):
        value = _evaluate_node(node.operand, symbols, regions)
        return {ast.USub: -value, ast.UAdd: value, ast.Invert: ~value}[type(node.op)]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _evaluate_node(node.left, symbols, regions)
        right = _evaluate_node(node.right, symbols, regions)
        if isinstance(node.op, (ast.LShift, ast.RShift)) and not 0 <= right < 64:
            raise ValueError("shift out of range")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) == 1 \
            and isinstance(node.args[0], ast.Name) and not node.keywords:
        which = {"ORIGIN": 0, "LENGTH": 1}.get(node.func.id)
        if which is not None:
            return regions[node.args[0].id][which]
    raise ValueError("unsupported expression")


def script_symbols(text: str, ldflags=()) -> dict[str, int]:
    """Top-level ``NAME = expr;`` assignments tinybuild can evaluate, with
    ``DEFINED(X) ? X : default`` taking ``--defsym`` values from ``ldflags``."""
    given = defsyms(ldflags)
    symbols: dict[str, int] = {}
    for name, value in list(given.items()):
        try:
            symbols[name] = evaluate(value, symbols, {})
        except ScriptError:
            pass
    for name, expr in _ASSIGNMENT.findall(text):
        if name in given:
            continue
        defaulted = _DEFAULTED.fullmatch(expr.strip())
        try:
            symbols[name] = evaluate(defaulted.group(2) if defaulted else expr, symbols, {})
        except ScriptError:
            pass
    return symbols


def script_memory(path: Path, ldflags=()) -> dict[str, tuple[int, int]]:
    """``{region: (origin, length)}`` from the script's MEMORY block(s)."""
    text = script_text(path)
    blocks = _MEMORY.findall(text)
    if not blocks:
        raise ScriptError("has no MEMORY { } block (tinybuild reads the regions from the script "
                          "itself, not from INCLUDEd files)")
    symbols = script_symbols(text[:_MEMORY.search(text).start()], ldflags)
    regions: dict[str, tuple[int, int]] = {}
    for block in blocks:
        starts = list(_ENTRY.finditer(block))
        if not starts and block.strip():
            raise ScriptError(f"has a MEMORY entry tinybuild cannot read: '{shown(block.strip())}'")
        for here, after in zip(starts, starts[1:] + [None]):
            name = here.group(1)
            body = block[here.end(): after.start() if after else len(block)].rstrip().rstrip(",")
            parts = _LENGTH.split(body, maxsplit=1)
            if len(parts) != 2:
                raise ScriptError(f"MEMORY region {shown(name)} has no LENGTH")
            try:
                regions[name] = (evaluate(parts[0], symbols, regions),
                                 evaluate(parts[1], symbols, regions))
            except ScriptError as exc:
                raise ScriptError(f"MEMORY region {shown(name)}: {exc}: write origins and lengths "
                                  "as numbers (hex or decimal, K/M suffixes) or sums of them") \
                    from None
    return regions


def script_problems(target: Target) -> list[str]:
    """The script's MEMORY regions against ``target.memory``, each problem
    naming both sides and the fix ([]: they agree, or there is no script yet:
    a missing file is reported when a build needs it)."""
    script = Path(target.linker_script)
    if not script.is_file():
        return []
    where = f"its linker script {shown(script, 200)}"
    try:
        in_script = script_memory(script, target.ldflags)
    except ScriptError as exc:
        return [f"{where} {exc}"]
    except OSError as exc:
        return [f"{where} cannot be read: {shown(exc.strerror or exc)}"]
    declared = {r.name: r for r in target.memory}
    problems = []
    for name, (origin, length) in in_script.items():
        region = declared.get(name)
        if region is None:
            problems.append(f"{where} has MEMORY region {shown(name)} (0x{origin:08x}, {length:,} B) "
                            "that memory= lacks: add it as a MemoryRegion, or remove it from the script")
        elif (region.origin, region.length) != (origin, length):
            problems.append(f"{where} says {shown(name)}: ORIGIN = 0x{origin:08x}, LENGTH = {length:,} "
                            f"but memory= says 0x{region.origin:08x}, {region.length:,}: make them agree "
                            "(the linker places by the script; tinybuild sizes and simulates by memory=)")
    for name, region in declared.items():
        if name not in in_script:
            problems.append(f"memory= has region {name} that {where} does not define: add "
                            f"'{name} (rwx) : ORIGIN = 0x{region.origin:08X}, LENGTH = {region.length}' "
                            "to its MEMORY block, or remove the region")
    return problems


def section_region(target: Target, section: str) -> str | None:
    """The MEMORY region the linker script puts output section ``section`` in
    (``} > REGION``), None if the script does not say so plainly."""
    try:
        text = script_text(target.linker_script)
    except OSError:
        return None
    start = re.search(rf"(?m)^\s*{re.escape(section)}\b[^:{{;]*:[^{{;]*\{{", text)
    if not start:
        return None
    depth, i = 1, start.end()
    while depth and i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    placed = re.match(r"\s*>\s*(\w+)", text[i:])
    return placed.group(1) if placed else None


def stack_reserve(target: Target) -> int | None:
    """STACK_SIZE as the link will set it (``--defsym`` in ldflags, else the
    script's value); None when the script has no plain STACK_SIZE."""
    try:
        return script_symbols(script_text(target.linker_script), target.ldflags).get("STACK_SIZE")
    except OSError:
        return None


def how_to_set_stack(target: Target, size: int) -> str:
    script = shown(target.linker_script, 200)
    if re.search(r"DEFINED\s*\(\s*STACK_SIZE\s*\)", script_text(target.linker_script)):
        return (f"add '-Wl,--defsym=STACK_SIZE={size}' to the board's ldflags in "
                f"{shown(target.plugin, 200) or 'its plugin'}")
    return f"set the .stack size to {size} in {script}"


# -- the link ----------------------------------------------------------------------

def link_command(toolchain: Toolchain, target: Target, objects, elf: Path, map_file: Path,
                 opt: str) -> list[str]:
    return [toolchain.tool("gcc"), *target.ldflags, f"-{opt}", "-nostartfiles",
            # -Xlinker passes the path whole: -Wl, would split it at a comma
            "-Wl,--gc-sections", "-Xlinker", f"-Map={map_file}",
            # simulators read the descriptor; nothing on the device references it
            "-Wl,--undefined=tb_io_desc", "-T", str(target.linker_script),
            # -lm: float32 SOFTMAX/LOGISTIC/TANH call the toolchain's expf/tanhf
            "-o", str(elf), *map(str, objects), "-Wl,--start-group", "-lc", "-lm", "-lgcc",
            "-Wl,--end-group"]


def run_link(toolchain: Toolchain, target: Target, objects, elf: Path, map_file: Path,
             opt: str, plan_json: Path | None = None) -> None:
    """Link ``elf``; any failure removes ``elf`` and ``map_file`` and raises
    one TinybuildError. ``plan_json`` (default: plan.json beside the ELF, if
    there) gives the arena's lower bound for a "does not fit" message."""
    elf, map_file = Path(elf), Path(map_file)
    cmd = link_command(toolchain, target, objects, elf, map_file, opt)
    try:
        proc = _run(cmd, f"link of {shown(elf, 200)}")
        if proc.returncode == 0:
            check_sections_in_memory(target, elf)
            return
        overflows = [(name, int(over)) for name, over in _OVERFLOW.findall(proc.stderr)]
        if overflows:
            plan = plan_json or elf.with_name("plan.json")
            raise TinybuildError(_does_not_fit(toolchain, target, cmd, overflows, plan))
        raise TinybuildError(f"link failed: {shown(' '.join(cmd), 2000)}\n{proc.stderr.strip()}")
    except TinybuildError:
        for path in (elf, map_file):
            path.unlink(missing_ok=True)
        raise


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=LINK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise TinybuildError(f"{what} did not finish in {LINK_TIMEOUT_S} s ({shown(cmd[0], 200)}): "
                             "check the linker script for a runaway expression, and the "
                             "toolchain") from None
    except OSError as exc:
        raise TinybuildError(f"{what}: cannot run {shown(cmd[0], 200)}: "
                             f"{shown(exc.strerror or exc)}") from None


def check_sections_in_memory(target: Target, elf: Path) -> None:
    """Every allocated section of a linked ELF lies inside one memory region,
    and every one without contents (.bss, .noinit, .stack) in a RAM region,
    so the size step counts each byte as flash or RAM (never a negative
    "static" figure)."""
    for section in _sections(elf).values():
        addresses = {section.vma, section.lma} if section.loaded else {section.vma}
        for address in sorted(addresses):
            region = target.region_of(address)
            if region is None or address + section.size > region.end:
                _misplaced(target, section, address, "lies outside every region of its memory map")
        if not section.loaded and target.region_of(section.vma).kind != "ram":
            _misplaced(target, section, section.vma, "reserves RAM (no contents) but lies in a "
                       "flash region")


def _misplaced(target: Target, section: _Section, address: int, why: str):
    raise TinybuildError(f"target '{target.name}' ({shown(target.plugin, 200)}): section "
                         f"{shown(section.name)} at 0x{address:08x} (+{section.size:,} B) {why}: "
                         f"place it in a region of the memory map ('> RAM', '> FLASH') in "
                         f"{shown(target.linker_script, 200)}")


# -- "does not fit" ----------------------------------------------------------------

@dataclass
class _Section:
    name: str
    vma: int
    lma: int
    size: int
    loaded: bool              # has contents in the image (not NOBITS)
    code: bool


@dataclass
class _Image:
    sections: dict[str, _Section]
    symbols: dict[str, tuple[int, int]]       # name -> (address, size)


def _sections(elf: Path) -> dict[str, _Section]:
    return _read_image(elf).sections


def _read_image(elf: Path) -> _Image:
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as f:
        image = ELFFile(f)
        loads = [s for s in image.iter_segments() if s["p_type"] == "PT_LOAD"]
        sections = {}
        for sec in image.iter_sections():
            if not sec["sh_flags"] & 0x2 or not sec["sh_size"]:      # SHF_ALLOC
                continue
            vma = sec["sh_addr"]
            lma = next((seg["p_paddr"] + vma - seg["p_vaddr"] for seg in loads
                        if seg["p_vaddr"] <= vma < seg["p_vaddr"] + max(seg["p_memsz"], 1)), vma)
            sections[sec.name] = _Section(sec.name, vma, lma, sec["sh_size"],
                                          sec["sh_type"] != "SHT_NOBITS",
                                          bool(sec["sh_flags"] & 0x4))     # SHF_EXECINSTR
        symtab = image.get_section_by_name(".symtab")
        symbols = {s.name: (s["st_value"], s["st_size"]) for s in symtab.iter_symbols()} if symtab else {}
    return _Image(sections, symbols)


def _does_not_fit(toolchain: Toolchain, target: Target, cmd: list[str], overflows,
                  plan_json: Path) -> str:
    image = _partial_image(toolchain, cmd)
    plan = _read_plan(plan_json)
    lines = []
    for name, over in overflows:
        region = next((r for r in target.memory if r.name == name), None)
        if region is None or image is None:
            lines.append(f"the firmware does not fit {_board(target)}: region {shown(name)} "
                         f"overflowed by {over:,} B. Use a smaller model or a board with more memory")
        elif region.kind == "ram":
            lines.append(_ram_overflow(target, region, over, image, plan))
        else:
            lines.append(_flash_overflow(target, region, over, image))
    return "\n".join(lines)


def _partial_image(toolchain: Toolchain, cmd: list[str]) -> _Image | None:
    """The same link with ``--noinhibit-exec`` (output written despite the
    overflow) into a scratch folder; None if that fails too."""
    with tempfile.TemporaryDirectory(prefix="tinybuild-link-") as tmp:
        out = Path(tmp) / "partial.elf"
        partial = list(cmd)
        partial[partial.index("-o") + 1] = str(out)
        partial = [f"-Map={Path(tmp) / 'partial.map'}" if a.startswith("-Map=") else a
                   for a in partial]
        partial.insert(1, "-Wl,--noinhibit-exec")
        try:
            _run(partial, "the link that measures the overflow")
            return _read_image(out) if out.is_file() else None
        except Exception:       # best effort: without it the message still names the region
            return None


def _read_plan(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())["memory"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _board(target: Target) -> str:
    return f"{shown(target.board)} (target '{target.name}')"


def _region_phrase(target: Target, region: MemoryRegion) -> str:
    same_kind = target.regions(region.kind)
    kind = "RAM" if region.kind == "ram" else "flash"
    if len(same_kind) == 1:
        return f"{kind} region {region.name} ({region.length:,} B, the board's only {kind} region)"
    return (f"{kind} region {region.name} ({region.length:,} B at 0x{region.origin:08x}, one of "
            f"{len(same_kind)} {kind} regions: {target.capacity(region.kind):,} B in all)")


def _in_span(address: int, region: MemoryRegion, over: int) -> bool:
    return region.origin <= address < region.end + over


def _ram_overflow(target, region, over, image: _Image, plan: dict) -> str:
    need = region.length + over
    arena_at, arena = image.symbols.get(ARENA_SYMBOL, (0, 0))
    arena = arena if arena and _in_span(arena_at, region, over) else 0
    stack_section = image.sections.get(".stack")
    stack = stack_section.size if stack_section and _in_span(stack_section.vma, region, over) else 0
    parts = []
    if arena:
        bound = plan.get("lower_bound")
        parts.append(f"arena {arena:,} B" + (f" (lower bound {bound:,} B)" if bound else ""))
    if stack:
        parts.append(f"stack reserve {stack:,} B")
    parts.append(f"other data/bss {max(need - arena - stack, 0):,} B")
    used = {r.name: _ram_used(image, r) for r in target.regions("ram")}
    fix = ram_fix(target, region, over, arena, stack, used)
    return (f"the firmware does not fit {_board(target)}: {_region_phrase(target, region)} needs "
            f"{need:,} B = {' + '.join(parts)}, {over:,} B over. Fix: {fix}")


def _ram_used(image: _Image, region: MemoryRegion) -> int:
    return sum(s.size for s in image.sections.values() if region.contains(s.vma))


def ram_fix(target: Target, region: MemoryRegion, over: int, arena: int, stack: int,
            used: dict[str, int]) -> str:
    """The fix matching the cause of a RAM region ``over`` bytes too small:
    the stack reserve when cutting it is enough, another region for the
    arena when one has room, else a smaller model or a bigger board."""
    if stack and stack - over >= MIN_STACK_BYTES:
        size = (stack - over) // 8 * 8
        return (f"cut the {stack:,} B stack reserve to {size:,} B or less "
                f"({how_to_set_stack(target, size)}); report.md shows the stack's measured peak use")
    largest = max(target.regions("ram"), key=lambda r: r.length)
    if arena > largest.length:
        return (f"no RAM region holds the {arena:,} B arena (one block; the largest region is "
                f"{largest.name}, {largest.length:,} B): use a smaller model (smaller activations) "
                "or a board with a larger RAM region")
    roomy = [r for r in target.regions("ram")
             if r is not region and r.length - used.get(r.name, 0) >= arena]
    if arena and roomy:
        free = roomy[0].length - used.get(roomy[0].name, 0)
        return (f"place .noinit (the arena) in {roomy[0].name} ({free:,} B free) with "
                f"'> {roomy[0].name}' in {shown(target.linker_script, 200)}")
    return "use a smaller model (smaller activations), or a board with more RAM"


def _flash_overflow(target, region, over, image: _Image) -> str:
    need = region.length + over
    in_region = [s for s in image.sections.values() if s.loaded and _in_span(s.lma, region, over)]
    code = sum(s.size for s in in_region if s.code)
    weights = sum(size for name, (address, size) in image.symbols.items()
                  if _WEIGHT_SYMBOL.match(name) and _in_span(address, region, over))
    other = max(need - code - weights, 0)
    fix = ("opt=Os, or kernels=reference (smaller code), or a board with more flash" if code > weights
           else "use a smaller model (fewer parameters), or a board with more flash")
    return (f"the firmware does not fit {_board(target)}: {_region_phrase(target, region)} needs "
            f"{need:,} B = weights {weights:,} B + code {code:,} B + other read-only data "
            f"{other:,} B, {over:,} B over. Fix: {fix}")


# -- before compiling ----------------------------------------------------------------

def check_arena_fits(target: Target, arena_bytes: int, stack_reserve_bytes: int | None = None,
                     lower_bound: int | None = None) -> None:
    """Raise the "does not fit" TinybuildError at code generation when the
    link is certain to fail on RAM: the arena (one block) exceeds the largest
    RAM region, or the region the script puts ``.noinit`` in, or that region
    together with the stack reserve when the script puts ``.stack`` there too.
    ``stack_reserve_bytes`` None: read it from the board (``--defsym`` or the
    script's STACK_SIZE). Returns None when the arena may fit; the link
    still has the last word (other data, alignment)."""
    ram = target.regions("ram")
    if stack_reserve_bytes is None:
        stack_reserve_bytes = stack_reserve(target) or 0
    arena_region_name, stack_region = section_region(target, ".noinit"), section_region(target, ".stack")
    region = next((r for r in ram if r.name == arena_region_name), max(ram, key=lambda r: r.length))
    stack = stack_reserve_bytes if stack_region == region.name else 0
    over = arena_bytes + stack - region.length
    largest = max(r.length for r in ram)
    if over <= 0 and arena_bytes <= largest:
        return
    over = max(over, arena_bytes - largest)
    parts = [f"arena {arena_bytes:,} B" + (f" (lower bound {lower_bound:,} B)" if lower_bound else "")]
    parts += [f"stack reserve {stack:,} B"] if stack else []
    fix = ram_fix(target, region, over, arena_bytes, stack, {stack_region: stack_reserve_bytes})
    raise TinybuildError(f"the model does not fit {_board(target)}: {_region_phrase(target, region)} "
                         f"would need at least {arena_bytes + stack:,} B = {' + '.join(parts)}, "
                         f"{over:,} B over. Fix: {fix}")
