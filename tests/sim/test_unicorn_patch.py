"""What tinybuild's Unicorn speed patch (third_party/unicorn/tinybuild-speed.patch)
changes must behave as the unpatched engine does: the Q flag of SMLAD/SMLAxy/SMLAWx
(computed inline instead of by a helper), a faulting load or store stops at that
instruction (the exit check after each access is only generated when a memory hook
exists), uc_emu_stop from a memory hook stops at once, and code hooks are called
where they cover (one hook covering an instruction is called directly). The tests
run against whichever libunicorn is loaded, patched or not; the last one says
which, and ``test_the_patch_applies_to_the_pinned_sdist`` checks the patch file."""
from __future__ import annotations

import random
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

U = pytest.importorskip("unicorn")
from unicorn import arm_const as A  # noqa: E402

from sim.unicorn import native  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CODE, RAM, NOWHERE = 0x0000_0000, 0x2000_0000, 0x3000_0000
MRS_R6_APSR, B_SELF = bytes.fromhex("eff30086"), bytes.fromhex("fee7")
# (name, Thumb-2 encoding of `<op> r0, r1, r2, r3`)
MACS = [("smlad", bytes.fromhex("21fb0230")), ("smlabb", bytes.fromhex("11fb0230")),
        ("smlawb", bytes.fromhex("31fb0230"))]
Q_BIT = 1 << 27


def s16(x: int) -> int:
    x &= 0xFFFF
    return x - 0x10000 if x & 0x8000 else x


def s32(x: int) -> int:
    x &= 0xFFFF_FFFF
    return x - (1 << 32) if x & 0x8000_0000 else x


def add_setq(a: int, b: int) -> tuple[int, bool]:
    """QEMU's HELPER(add_setq): the 32-bit sum, and Q set on signed overflow."""
    res = (a + b) & 0xFFFF_FFFF
    return res, bool((res ^ a) & 0x8000_0000 and not ((a ^ b) & 0x8000_0000))


def expected(op: str, rn: int, rm: int, ra: int) -> tuple[int, bool]:
    if op == "smlad":    # two adds, each may set Q (QEMU's order: the products, then Ra)
        t, q1 = add_setq((s16(rn) * s16(rm)) & 0xFFFF_FFFF, (s16(rn >> 16) * s16(rm >> 16)) & 0xFFFF_FFFF)
        res, q2 = add_setq(t, ra)
        return res, q1 or q2
    if op == "smlabb":
        return add_setq((s16(rn) * s16(rm)) & 0xFFFF_FFFF, ra)
    return add_setq(((s32(rn) * s16(rm)) >> 16) & 0xFFFF_FFFF, ra)      # smlawb


def engine(code: bytes):
    uc = U.Uc(U.UC_ARCH_ARM, U.UC_MODE_THUMB | U.UC_MODE_MCLASS)
    uc.mem_map(CODE, 0x1000, U.UC_PROT_READ | U.UC_PROT_EXEC)
    uc.mem_map(RAM, 0x1000)
    uc.mem_write(CODE, code)
    return uc


def operand() -> int:
    return random.choice([random.getrandbits(32), 0x8000_8000, 0x7FFF_7FFF, 0x8000_0000,
                          0x7FFF_FFFF, 0xFFFF_FFFF, 0x0000_8000, 0x8000_7FFF])


@pytest.mark.parametrize("op,insn", MACS, ids=[m[0] for m in MACS])
def test_multiply_accumulate_sets_q_as_the_unpatched_helper(op, insn):
    random.seed(14)
    code = insn + MRS_R6_APSR + B_SELF
    seen_q = set()
    for _ in range(300):
        uc = engine(code)
        rn, rm, ra = operand(), operand(), operand()
        for reg, v in ((A.UC_ARM_REG_R1, rn), (A.UC_ARM_REG_R2, rm), (A.UC_ARM_REG_R3, ra)):
            uc.reg_write(reg, v)
        uc.emu_start(CODE | 1, CODE + len(code) - len(B_SELF))
        res, q = expected(op, rn, rm, ra)
        assert uc.reg_read(A.UC_ARM_REG_R0) == res, (op, hex(rn), hex(rm), hex(ra))
        assert bool(uc.reg_read(A.UC_ARM_REG_R6) & Q_BIT) == q, (op, hex(rn), hex(rm), hex(ra))
        seen_q.add(q)
    assert seen_q == {True, False}          # both outcomes were exercised


def test_q_is_sticky_across_multiply_accumulates():
    code = MACS[1][1] + MACS[1][1] + MRS_R6_APSR + B_SELF    # smlabb twice: overflow, then not
    uc = engine(code)
    uc.reg_write(A.UC_ARM_REG_R1, 0x8000)
    uc.reg_write(A.UC_ARM_REG_R2, 0x8000)            # 0x40000000 + 0x40000000 overflows
    uc.reg_write(A.UC_ARM_REG_R3, 0x4000_0000)
    uc.emu_start(CODE | 1, CODE + 4)
    uc.reg_write(A.UC_ARM_REG_R3, 0)                 # the second one does not overflow
    uc.emu_start((CODE + 4) | 1, CODE + len(code) - len(B_SELF))
    assert uc.reg_read(A.UC_ARM_REG_R6) & Q_BIT


STORE = bytes.fromhex("01600722fee7")     # str r1, [r0]; movs r2, #7; b .
LOAD = bytes.fromhex("01680722fee7")      # ldr r1, [r0]; movs r2, #7; b .


@pytest.mark.parametrize("code,address,error", [
    (STORE, NOWHERE, "UC_ERR_WRITE_UNMAPPED"), (STORE, CODE + 0x800, "UC_ERR_WRITE_PROT"),
    (LOAD, NOWHERE, "UC_ERR_READ_UNMAPPED")], ids=["store-unmapped", "store-read-only", "load-unmapped"])
@pytest.mark.parametrize("invalid_hook", [False, True], ids=["no-hook", "invalid-hook"])
def test_a_faulting_access_stops_at_its_instruction(code, address, error, invalid_hook):
    uc = engine(code)
    if invalid_hook:                          # what the simulator installs: report, do not handle
        uc.hook_add(U.UC_HOOK_MEM_INVALID, lambda *a: False)
    uc.reg_write(A.UC_ARM_REG_R0, address)
    with pytest.raises(U.UcError) as e:
        uc.emu_start(CODE | 1, CODE + 4)
    assert e.value.errno == getattr(U.unicorn_const, error)
    assert uc.reg_read(A.UC_ARM_REG_PC) == CODE           # the access's instruction
    assert uc.reg_read(A.UC_ARM_REG_R2) != 7               # and nothing after it ran


def test_emu_stop_from_a_memory_hook_stops_after_that_access():
    uc = engine(LOAD)
    uc.reg_write(A.UC_ARM_REG_R0, RAM)
    uc.hook_add(U.UC_HOOK_MEM_READ, lambda uc_, *a: uc_.emu_stop())
    uc.emu_start(CODE | 1, CODE + 4)
    assert uc.reg_read(A.UC_ARM_REG_R2) != 7


LOOP = bytes.fromhex("013001310a28fbd1fee7")   # adds r0,#1; adds r1,#1; cmp r0,#10; bne; b .


def test_code_hooks_are_called_where_they_cover():
    uc = engine(LOOP)
    calls: dict[str, list[int]] = {"first": [], "second": [], "both": []}

    def hook(name):
        return lambda uc_, address, size, user: calls[name].append(address)

    uc.hook_add(U.UC_HOOK_CODE, hook("first"), begin=CODE, end=CODE)            # alone on 0
    second = uc.hook_add(U.UC_HOOK_CODE, hook("second"), begin=CODE + 2, end=CODE + 2)
    uc.hook_add(U.UC_HOOK_CODE, hook("both"), begin=CODE + 2, end=CODE + 4)     # shares 2
    uc.emu_start(CODE | 1, CODE + 8)
    assert calls == {"first": [0] * 10, "second": [2] * 10, "both": [2, 4] * 10}
    uc.hook_del(second)                         # deleting invalidates the code that calls it
    for name in calls:
        calls[name].clear()
    uc.reg_write(A.UC_ARM_REG_R0, 0)
    uc.emu_start(CODE | 1, CODE + 8)
    assert calls == {"first": [0] * 10, "second": [], "both": [2, 4] * 10}


def test_the_simulator_says_which_unicorn_it_runs():
    label = native.unicorn_label()
    assert label.startswith(f"unicorn {U.__version__}")
    assert ("tinybuild speed patch" in label) == (native.unicorn_patch_level() > 0)
    assert ("unpatched wheel" in label) == (native.unicorn_patch_level() == 0)


SDIST = ROOT / ".venv" / "unicorn-build" / "unicorn-2.1.4.tar.gz"


@pytest.mark.skipif(not SDIST.exists() or shutil.which("patch") is None,
                    reason="no Unicorn sdist downloaded by ./tb (TINYBUILD_UNICORN_PATCH=1) or no patch(1)")
def test_the_patch_applies_to_the_pinned_sdist(tmp_path):
    with tarfile.open(SDIST) as tar:
        if hasattr(tarfile, "data_filter"):      # Python >= 3.11.4 (and Debian's backport)
            tar.extractall(tmp_path, filter="data")
        else:
            tar.extractall(tmp_path)
    proc = subprocess.run(["patch", "-p1", "--dry-run", "-d", str(tmp_path / "unicorn-2.1.4" / "src"),
                           "-i", str(ROOT / "third_party" / "unicorn" / "tinybuild-speed.patch")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
