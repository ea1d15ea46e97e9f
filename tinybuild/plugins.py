"""Load plugins and answer the core's questions about them.

Order: the core's own providers (toolchain discovery), the built-in plugin
folders ``targets/*/plugin.py`` and ``sim/*/plugin.py``, installed packages'
entry points (group ``tinybuild``), then ``*.py`` files in ``plugins/`` and in
the folders listed in ``TINYBUILD_PLUGINS`` (``os.pathsep``-separated).
``TINYBUILD_TRACE=1`` prints every hook call (to stderr), and before each
call of a list-returning hook the plugin it goes to.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from dataclasses import replace
from pathlib import Path

import pluggy

from . import hookspecs, kernel_registry, linkcheck
from .errors import TinybuildError, shown
from .kernel_registry import KernelImpl
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
        raise TinybuildError(f"plugin {shown(path, 300)} failed to load: {type(exc).__name__}: "
                             f"{shown(exc, 300)}") from None
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


def _named_plugin_path(path: Path, how: str) -> Path:
    """A plugin folder or file the user named must be there (a typo must not
    silently drop the board it provides) and a file must be Python."""
    if not path.exists():
        raise TinybuildError(f"{how}{shown(path, 300)}: no such plugin folder or file. "
                             "Fix: name a folder of plugin .py files or a plugin .py file")
    if path.is_file() and path.suffix != ".py":
        raise TinybuildError(f"{how}{shown(path, 300)}: a plugin file must be a Python .py file")
    return path


def make_plugin_manager(extra_dirs: list[Path] | None = None) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("tinybuild")
    pm.add_hookspecs(hookspecs)
    from . import toolchains
    for name, provider in toolchains.PROVIDERS.items():
        pm.register(provider, name=f"tinybuild.{name}")
    from . import onnx_import                      # the built-in .onnx model importer
    pm.register(onnx_import, name="tinybuild.onnx_import")
    for folder in BUILTIN_DIRS:
        for path in _plugin_files(folder):
            _load_file(pm, path, "tinybuild_builtin")
    try:
        pm.load_setuptools_entrypoints("tinybuild")
    except Exception as exc:
        raise TinybuildError(f"an installed tinybuild plugin failed to load: {type(exc).__name__}: "
                             f"{shown(exc, 300)}") from None
    env_dirs = [Path(p) for p in os.environ.get("TINYBUILD_PLUGINS", "").split(os.pathsep) if p]
    named = [*(("TINYBUILD_PLUGINS=", d) for d in env_dirs),
             *(("plugins=", d) for d in extra_dirs or [])]
    for folder in [*USER_DIRS, *(_named_plugin_path(Path(d), how) for how, d in named)]:
        for path in _plugin_files(Path(folder)):
            _load_file(pm, path, "tinybuild_user")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise TinybuildError(f"plugin {plugin_label(pm, exc.plugin)}: {shown(exc, 300)}") from None
    if os.environ.get("TINYBUILD_TRACE"):
        pm.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
        pm.enable_tracing()
    from . import ops
    ops.set_plugin_ops(collect(pm, "tinybuild_ops"))    # the ops this plugin set compiles
    return pm


def plugin_label(pm: pluggy.PluginManager, plugin) -> str:
    name = pm.get_name(plugin) or repr(plugin)
    path = getattr(plugin, "__file__", None)
    return shown(f"{name} ({path})" if path else name, 300)


def collect(pm: pluggy.PluginManager, hook_name: str, **kwargs) -> list[tuple[str, object]]:
    """``(plugin label, item)`` for every item every plugin returns from a
    list-returning hook, in plugin load order. Each plugin is called through
    pluggy on its own (a subset hook caller: ``TINYBUILD_TRACE=1`` shows the
    call), so a plugin that raises or returns something else than a list is
    named in the error instead of aborting with a traceback. A dict (model
    importers) is one item."""
    results = []
    impls = getattr(pm.hook, hook_name).get_hookimpls()
    trace = pm.trace.root.get("collect")
    for impl in impls:
        label = plugin_label(pm, impl.plugin)
        others = [other.plugin for other in impls if other.plugin is not impl.plugin]
        trace(f"{hook_name} of {label}")
        try:
            values = pm.subset_hook_caller(hook_name, remove_plugins=others)(**kwargs)
        except TinybuildError:
            raise
        except Exception as exc:
            raise TinybuildError(f"plugin {label} failed in {hook_name}: "
                                 f"{type(exc).__name__}: {shown(exc, 300)}") from None
        value = values[0] if values else None      # pluggy drops a None result
        results += [(label, item) for item in _items(value, label, hook_name)]
    return results


def _items(value, label: str, hook_name: str) -> list:
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise TinybuildError(f"plugin {label}: {hook_name} returned a {type(value).__name__}, "
                             "not a list: return [item, ...]")
    return list(value)


def targets(pm: pluggy.PluginManager) -> dict[str, Target]:
    """Every board, checked: its description (``Target.problems``) and its
    linker script's MEMORY regions against its memory map."""
    found: dict[str, Target] = {}
    for label, target in collect(pm, "tinybuild_targets"):
        target = _checked_target(target, label)
        if target.name in found:
            raise TinybuildError(f"target '{target.name}' is provided by two plugins: "
                                 f"{found[target.name].plugin} and {label}; rename or remove one")
        found[target.name] = target
    return found


def _checked_target(target, label: str) -> Target:
    if not isinstance(target, Target):
        raise TinybuildError(f"plugin {label}: tinybuild_targets returned a "
                             f"{type(target).__name__}, not a tinybuild.target.Target")
    if not isinstance(target.linker_script, (str, Path)):
        problems = ["linker_script must be a path (pathlib.Path or str)"]
    else:
        target = replace(target, plugin=label, linker_script=Path(target.linker_script))
        problems = target.problems()
        problems = problems or linkcheck.script_problems(target)
    if problems:
        raise TinybuildError(f"plugin {label}: target '{shown(target.name)}' "
                             f"({shown(target.board)}): {problems[0]}")
    return target


def simulators(pm: pluggy.PluginManager) -> dict[str, object]:
    found = {}
    for label, sim in collect(pm, "tinybuild_simulators"):
        missing = [a for a in ("name", "supports", "available", "run") if not hasattr(sim, a)]
        if missing or not isinstance(sim.name, str):
            raise TinybuildError(f"plugin {label}: a simulator lacks {', '.join(missing) or 'a str name'}"
                                 " (see tinybuild_simulators in tinybuild/hookspecs.py)")
        if sim.name in found:
            raise TinybuildError(f"simulator '{shown(sim.name)}' is provided twice (again by {label})")
        found[sim.name] = sim
    return found


def kernels(pm: pluggy.PluginManager, target: Target) -> list[KernelImpl]:
    """The plugins' kernels for ``target`` in plugin load order, each checked
    (kernel_registry.problems) and labelled with its plugin."""
    found = []
    for label, impl in collect(pm, "tinybuild_kernels", target=target):
        if not isinstance(impl, KernelImpl):
            raise TinybuildError(f"plugin {label}: tinybuild_kernels returned a "
                                 f"{type(impl).__name__}, not a tinybuild.kernel_registry.KernelImpl")
        problems = kernel_registry.problems(impl)
        if problems:
            raise TinybuildError(f"plugin {label}: kernel '{shown(impl.function)}': {problems[0]}")
        found.append(replace(impl, plugin=label))
    return found


def find_target(pm: pluggy.PluginManager, name: str) -> Target:
    known = targets(pm)
    if name not in known:
        raise TinybuildError(f"unknown target '{shown(name)}'. Known targets: {', '.join(sorted(known))}. "
                             "Add a board as a .py file in plugins/ (see README, 'Add a board')")
    return known[name]
