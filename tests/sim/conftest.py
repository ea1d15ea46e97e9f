"""Fixtures for the simulator tests: the STM32F407 target and firmware builds."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinybuild.target import MemoryRegion, Target

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:       # the built-in sim/ folder is not an installed package
    sys.path.insert(0, str(ROOT))
FIRMWARE = Path(__file__).with_name("firmware")
BOARD = ROOT / "targets" / "cortex_m4"
MPS2 = ROOT / "targets" / "mps2_an386"
RUNTIME = ROOT / "tinybuild" / "runtime"

ARM_CFLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2",
              "-ffunction-sections", "-fdata-sections"]
ARM_LDFLAGS = ["-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections",
               # keep the descriptor even when every use was constant-folded
               "-Wl,--undefined=tb_io_desc"]


def stm32f407() -> Target:
    """The STM32F407 board as the cortex-m4 target plugin describes it."""
    return Target(
        name="stm32f407", description="STM32F407 (test copy)", board="stm32f4discovery",
        arch="arm", cpu="cortex-m4", triple="arm-none-eabi", clock_hz=168_000_000,
        memory=(MemoryRegion("FLASH", 0x08000000, 1024 * 1024, "flash"),
                MemoryRegion("RAM", 0x20000000, 128 * 1024, "ram"),
                MemoryRegion("CCMRAM", 0x10000000, 64 * 1024, "ram")),
        cflags=tuple(ARM_CFLAGS), ldflags=tuple(ARM_LDFLAGS),
        linker_script=BOARD / "stm32f407.ld",
        startup_sources=(BOARD / "startup_stm32f407.c",),
        include_dirs=(RUNTIME,), timing_model="cortex-m4")


@pytest.fixture(autouse=True)
def fresh_unicorn_engines():
    """No engine kept by an earlier test (sim/unicorn/simulator.py _Engine):
    a test that patches how a run is set up gets a run set up that way."""
    from sim.unicorn import simulator
    simulator.clear_engines()
    yield
    simulator.clear_engines()


@pytest.fixture(scope="session")
def target() -> Target:
    return stm32f407()


@pytest.fixture(scope="session")
def simulator():
    from sim.unicorn.simulator import UnicornSimulator
    return UnicornSimulator()


def _arm_builder(out_dir: Path, linker_script: Path, startup: Path):
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    cache: dict[tuple, Path] = {}

    def build(name: str, sources: list[str], defines: tuple[str, ...] = ()) -> Path:
        key = (name, tuple(sources), tuple(defines))
        if key in cache:
            return cache[key]
        elf = out_dir / f"{name}.elf"
        cmd = [gcc, *ARM_CFLAGS, *ARM_LDFLAGS, "-T", str(linker_script),
               f"-I{RUNTIME}", *[f"-D{d}" for d in defines],
               str(startup), str(RUNTIME / "tb_runtime.c"),
               *[str(FIRMWARE / s) for s in sources], "-o", str(elf), f"-Wl,-Map={elf.with_suffix('.map')}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
        cache[key] = elf
        return elf

    return build


@pytest.fixture(scope="session")
def build_arm(tmp_path_factory):
    """build_arm(name, sources, defines=()) -> Path of a linked STM32F407 ELF."""
    return _arm_builder(tmp_path_factory.mktemp("fw"), BOARD / "stm32f407.ld",
                        BOARD / "startup_stm32f407.c")


@pytest.fixture(scope="session")
def mps2():
    """The mps2-an386 target (targets/mps2_an386): runs in unicorn and in QEMU."""
    from targets.mps2_an386.plugin import MPS2_AN386
    return MPS2_AN386


@pytest.fixture(scope="session")
def build_mps2(tmp_path_factory):
    """build_mps2(name, sources, defines=()) -> Path of a linked mps2-an386 ELF
    (its startup code semihosts, so QEMU runs it too)."""
    return _arm_builder(tmp_path_factory.mktemp("fw_mps2"), MPS2 / "mps2_an386.ld",
                        MPS2 / "startup_mps2_an386.c")


@pytest.fixture(scope="session")
def model_elf(build_arm) -> Path:
    return build_arm("test_model", ["test_model.c"])


@pytest.fixture(scope="session")
def asm_elf(build_arm) -> Path:
    return build_arm("asm_model", ["asm_io.c", "asm_model.S"])


def _rv32_target() -> Target:
    from dataclasses import replace

    return replace(stm32f407(), name="rv32test", board="rv32test", arch="riscv32", cpu="e31",
                   triple="riscv64-unknown-elf", timing_model="rv32-e31",
                   memory=(MemoryRegion("FLASH", 0x20000000, 256 * 1024, "flash"),
                           MemoryRegion("RAM", 0x80000000, 64 * 1024, "ram")),
                   linker_script=FIRMWARE / "rv32.ld", startup_sources=(FIRMWARE / "rv32_start.c",))


def _rv32_elf(out: Path, startup: str, defines=()) -> Path:
    gcc = shutil.which("riscv64-unknown-elf-gcc")
    if gcc is None:
        pytest.skip("riscv64-unknown-elf-gcc not installed")
    elf = out / f"test_model_{Path(startup).stem}{''.join('_' + d for d in defines)}.elf"
    cmd = [gcc, "-march=rv32imc", "-mabi=ilp32", "-O2", "-ffreestanding", "-ffunction-sections",
           "-fdata-sections", "-nostartfiles", "-nostdlib", "-Wl,--gc-sections",
           "-Wl,--undefined=tb_io_desc", "-T", str(FIRMWARE / "rv32.ld"), f"-I{RUNTIME}",
           str(FIRMWARE / startup), str(RUNTIME / "tb_runtime.c"),
           *(f"-D{d}" for d in defines), str(FIRMWARE / "test_model.c"), "-o", str(elf), "-lgcc"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    return elf


@pytest.fixture(scope="session")
def rv32_build(tmp_path_factory):
    """(elf, target) for test_model.c on a minimal RV32IMC board (firmware/rv32.ld)."""
    return _rv32_elf(tmp_path_factory.mktemp("rv32"), "rv32_start.c"), _rv32_target()


@pytest.fixture(scope="session")
def rv32_misaligned_build(tmp_path_factory):
    """(elf, target): test_model.c built with TB_TEST_MISALIGNED for the RV32 test board."""
    return (_rv32_elf(tmp_path_factory.mktemp("rv32m"), "rv32_start.c", ("TB_TEST_MISALIGNED",)),
            _rv32_target())


@pytest.fixture(scope="session")
def rv32_qemu_build(tmp_path_factory):
    """(elf, target) for test_model.c on the RV32 test board with a startup that
    semihosts (firmware/rv32_qemu_start.c), so QEMU's RV32 virt board runs it too."""
    return _rv32_elf(tmp_path_factory.mktemp("rv32q"), "rv32_qemu_start.c"), _rv32_target()
