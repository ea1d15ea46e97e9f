"""Plugin entry: registers the Unicorn simulator with tinybuild (``sim=unicorn``)."""
from __future__ import annotations

from tinybuild.hookspecs import hookimpl

try:
    from .simulator import UnicornSimulator
except ImportError:
    # Loaded by file path (not as sim.unicorn.plugin): make the repository's
    # sim/ package importable and import it by its full name.
    import sys
    from pathlib import Path

    _root = str(Path(__file__).resolve().parents[2])
    if _root not in sys.path:
        sys.path.insert(0, _root)
    from sim.unicorn.simulator import UnicornSimulator


@hookimpl
def tinybuild_simulators():
    return [UnicornSimulator()]
