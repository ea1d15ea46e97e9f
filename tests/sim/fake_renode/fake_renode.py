"""A stand-in for `renode`, for testing sim/renode's driver where Renode is absent.

`--version` prints $FAKE_RENODE_VERSION (default: what Renode 1.15.3 prints).
Otherwise it understands just the run.resc that sim/renode writes: it takes
the ELF, the input file and the results file from the script, runs the
firmware in the unicorn simulator and writes the results file as the script's
Python hooks would (TB_MARK per tb_mark, TB_EXIT, TB_OUTPUT, TB_STACK,
TB_ARENA, TB_DONE), then idles for 30 s as Renode does while `emulation
RunFor` waits out the rest of its virtual time: the driver must stop it. When
stopped by a signal it appends "stopped by signal N" to $FAKE_RENODE_LOG (if
set), so a test can tell a stop from the idle time running out.
FAKE_RENODE_MODE=runaway writes TB_LIMIT instead (as after RunFor ran out)
and exits. tests/sim/test_renode_sim.py puts a `renode` shell wrapper that
runs this file with the test's Python on PATH.
"""
import os
import re
import signal
import sys
import time
from pathlib import Path

if "--version" in sys.argv:
    print(os.environ.get("FAKE_RENODE_VERSION", "Renode, version 1.15.3.29366 (6c3ff5fa-202410021410)"))
    sys.exit(0)


def _stopped(signum, _frame):
    if os.environ.get("FAKE_RENODE_LOG"):
        with open(os.environ["FAKE_RENODE_LOG"], "a") as log:
            log.write(f"stopped by signal {signum}\n")
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _stopped)
if sys.argv[1:-1] != ["--disable-gui", "--console", "--plain"]:
    sys.exit(f"Unexpected options detected: {' '.join(sys.argv[1:-1])}")
resc = Path(sys.argv[-1]).read_text()
root = os.environ["FAKE_RENODE_ROOT"]
sys.path.insert(0, root)
from sim.unicorn.simulator import _Run  # noqa: E402
from tinybuild.target import MemoryRegion, Target  # noqa: E402

elf = re.search(r"^sysbus LoadELF @(.+)$", resc, re.M).group(1)
results = Path(re.search(r"open\(r'([^']+)'", resc).group(1))
data = b"".join(Path(m).read_bytes()      # the inputs, in order
               for m in re.findall(r"^sysbus LoadBinary @(\S+/input\d+\.bin) 0x", resc, re.M))
repl = Path(re.search(r"LoadPlatformDescription @(.+)$", resc, re.M).group(1)).read_text()
memory = tuple(MemoryRegion(m.group(1).upper(), int(m.group(2), 16), int(m.group(3), 16),
                            "flash" if m.group(1) == "flash" else "ram")
               for m in re.finditer(r"^(\w+): Memory.MappedMemory @ sysbus 0x(\w+)\n    size: 0x(\w+)", repl, re.M))
target = Target(name="fake", description="", board="", arch="arm", cpu="cortex-m4", triple="arm-none-eabi",
                clock_hz=25_000_000, memory=memory, cflags=(), ldflags=(), linker_script=Path("x"),
                startup_sources=(), timing_model="cortex-m4")
run = _Run(Path(elf), target, data, 10**9, 60.0)
r = run.execute()
with open(results, "a") as f:
    if os.environ.get("FAKE_RENODE_MODE") == "runaway":
        f.write(f"TB_LIMIT {0x2e4} 123456\n")
        sys.exit(0)
    for mark in run.marks:             # (layer, instructions, cycles[, memory cycles])
        insns = mark[1]
        f.write(f"TB_MARK {insns}\n")
    f.write(f"TB_EXIT {r.total_instructions}\nTB_OUTPUT {r.output.hex()}\n")
    f.write(f"TB_STACK {run.sym('__stack_end__') - r.peak_stack_bytes}\nTB_ARENA {r.arena_touched_bytes}\n")
    f.write("TB_DONE\n")
time.sleep(30)          # "emulation RunFor" waiting out the virtual time
