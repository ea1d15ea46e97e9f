"""Plugin entry: registers the Renode simulator with tinybuild (``sim=renode``)."""
from __future__ import annotations

import sys
from pathlib import Path

from tinybuild.hookspecs import hookimpl

# The backend reuses sim/unicorn's ELF reader: make the repository's sim/
# package importable and import it by its full name.
_root = str(Path(__file__).resolve().parents[2])
if _root not in sys.path:
    sys.path.insert(0, _root)

from sim.renode.simulator import RenodeSimulator  # noqa: E402


@hookimpl
def tinybuild_simulators():
    return [RenodeSimulator()]
