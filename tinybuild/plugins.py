"""Load plugins and answer the core's questions about them.

Order: the core's own providers (toolchain discovery), the built-in plugin
folders ``targets/*/plugin.py`` and ``sim/*/plugin.py``, installed packages'
entry points (group ``tinybuild``), then ``*.py`` files in ``plugins/`` and in
the folders listed in ``TINYBUILD_PLUGINS`` (``os.pathsep``-separated).
``TINYBUILD_TRACE=1`` prints every hook call.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

import pluggy

from . import hookspecs
from .errors import TinybuildError
from .target import Target

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUILTIN_DIRS = (PROJECT_ROOT / "targets", PROJECT_ROOT / "sim")
USER_DIRS = (PROJECT_ROOT / "plugins",)


def _load_file(pm: pluggy.PluginManager, path: Path, prefix: str) -> None:
    """Import a plugin file. A ``<folder>/<name>/plugin.py`` becomes the module
    ``plugin`` of a package of its own, so it may import its siblings
    relatively (``from .simulator import ...``)."""
    if path.name == "plugin.py":
        package = f"{prefix}_{path.parent.parent.name}_{path.parent.name}".replace("-", "_")
        _ensure_package(package, path.parent)
        mod_name = f"{package}.plugin"
    else:
        mod_name = f"{prefix}_{path.parent.name}_{path.stem}".replace("-", "_")
    if pm.has_plugin(mod_name):
        return
    try:
        spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        raise TinybuildError(f"plugin {path} failed to load: {type(exc).__name__}: {exc}") from None
    pm.register(module, name=mod_name)


def _ensure_package(name: str, folder: Path) -> None:
    if name in sys.modules:
        return
    init = folder / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        name, init if init.exists() else None, submodule_search_locations=[str(folder)])
    if spec is None:  # no __init__.py: an empty package over the folder
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    if spec.loader is not None:
        spec.loader.exec_module(package)


def _plugin_files(folder: Path) -> list[Path]:
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        return []
    nested = sorted(folder.glob("*/plugin.py"))
    flat = sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))
    return nested + flat


def make_plugin_manager(extra_dirs: list[Path] | None = None) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("tinybuild")
    pm.add_hookspecs(hookspecs)
    from . import toolchains
    for name, provider in toolchains.PROVIDERS.items():
        pm.register(provider, name=f"tinybuild.{name}")
    for folder in BUILTIN_DIRS:
        for path in _plugin_files(folder):
            _load_file(pm, path, "tinybuild_builtin")
    try:
        pm.load_setuptools_entrypoints("tinybuild")
    except Exception as exc:
        raise TinybuildError(f"an installed tinybuild plugin failed to load: {exc}") from None
    env_dirs = [Path(p) for p in os.environ.get("TINYBUILD_PLUGINS", "").split(os.pathsep) if p]
    for folder in [*USER_DIRS, *env_dirs, *(extra_dirs or [])]:
        for path in _plugin_files(Path(folder)):
            _load_file(pm, path, "tinybuild_user")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise TinybuildError(f"plugin {plugin_label(pm, exc.plugin)}: {exc}") from None
    if os.environ.get("TINYBUILD_TRACE"):
        pm.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
        pm.enable_tracing()
    return pm


def plugin_label(pm: pluggy.PluginManager, plugin) -> str:
    name = pm.get_name(plugin) or repr(plugin)
    path = getattr(plugin, "__file__", None)
    return f"{name} ({path})" if path else name


def collect(pm: pluggy.PluginManager, hook_name: str, *args, **kwargs) -> list[tuple[str, object]]:
    """Call each implementation of a list-returning hook on its own, so a plugin
    that raises is named in the error instead of aborting with a traceback."""
    results = []
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        try:
            value = impl.function(*args, **kwargs)
        except TinybuildError:
            raise
        except Exception as exc:
            raise TinybuildError(f"plugin {plugin_label(pm, impl.plugin)} failed in {hook_name}: "
                                 f"{type(exc).__name__}: {exc}") from None
        for item in value or []:
            results.append((plugin_label(pm, impl.plugin), item))
    return results


def targets(pm: pluggy.PluginManager) -> dict[str, Target]:
    found: dict[str, Target] = {}
    for label, target in collect(pm, "tinybuild_targets"):
        if target.name in found:
            raise TinybuildError(f"target '{target.name}' is provided by two plugins: "
                                 f"{found[target.name].plugin} and {label}; rename or remove one")
        found[target.name] = _with_plugin(target, label)
    return found


def _with_plugin(target: Target, label: str) -> Target:
    from dataclasses import replace
    return replace(target, plugin=label)


def simulators(pm: pluggy.PluginManager) -> dict[str, object]:
    found = {}
    for label, sim in collect(pm, "tinybuild_simulators"):
        if sim.name in found:
            raise TinybuildError(f"simulator '{sim.name}' is provided twice (again by {label})")
        found[sim.name] = sim
    return found


def kernels(pm: pluggy.PluginManager, target: Target) -> list:
    return [k for _, k in collect(pm, "tinybuild_kernels", target=target)]


def find_target(pm: pluggy.PluginManager, name: str) -> Target:
    known = targets(pm)
    if name not in known:
        raise TinybuildError(f"unknown target '{name}'. Known targets: {', '.join(sorted(known))}. "
                             "Add a board as a .py file in plugins/ (see README, 'Add a board')")
    return known[name]
