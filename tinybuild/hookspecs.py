"""The tinybuild plugin contract (pluggy project name ``tinybuild``).

Hooks are grouped by the phase of a build that calls them. A plugin
implements any subset with ``@tinybuild.hookimpl``; misspelled hook names are
rejected when plugins load. Plugins come, in this order, from the built-in
``targets/`` and ``sim/`` folders, from installed packages' entry points
(group ``tinybuild``) and from ``.py`` files in ``plugins/`` (or the folders
named by the ``TINYBUILD_PLUGINS`` environment variable / ``plugins=``
build variable). The list-returning hooks are called one plugin at a time
through pluggy (``tinybuild.plugins.collect``), so ``TINYBUILD_TRACE=1`` shows
every call and a plugin that raises is named.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("tinybuild")
hookimpl = pluggy.HookimplMarker("tinybuild")


# -- discovery: called once when the plugin manager loads ---------------------

@hookspec
def tinybuild_targets():
    """Return the boards this plugin provides.

    Called once at start-up by the plugin manager. Return a list of
    :class:`tinybuild.target.Target` (empty or ``None`` for none). Names must
    be unique across all plugins: two plugins claiming one name stop the build
    with an error naming both. The core never names a board itself; everything
    it knows about a board comes from here.

    Each board is checked as it is collected (``Target.problems()``: name,
    clock, flags, memory map; then ``tinybuild.linkcheck.script_problems``:
    the linker script's MEMORY regions against ``memory``); the first problem
    stops every command with one line naming the plugin, the board and the fix.
    """


@hookspec
def tinybuild_simulators():
    """Return the simulator backends this plugin provides.

    Called once at start-up. Return a list of objects with:

    - ``name`` (str): what users type after ``sim=``;
    - ``supports(target) -> bool``: whether it can run this board's ELF;
    - ``available() -> tuple[bool, str]``: usable here, and a one-line status
      (version, or how to install it) for ``tinybuild doctor``;
    - ``run(elf, target, input_bytes, *, max_instructions, timeout_s) ->
      RunResult``: execute the firmware once on one input (raw bytes of the
      model's input tensor) and return a :class:`tinybuild.target.RunResult`.
      Faults and runaways raise :class:`tinybuild.errors.TinybuildError`.
      ``run`` may also accept ``detail`` (bool, default True): with False
      (the pipeline passes it for the validation runs after the first, whose
      output is checked but whose figures are not reported) the simulator may
      leave out costs it can only measure slowly, and says so in the result
      (e.g. ``misaligned_accesses=-1``: not counted).
    """


@hookspec
def tinybuild_model_importers():
    """Return model front ends as a dict ``{suffix: convert_callable}``.

    Called when a model is converted. ``convert_callable(src, dst, calibration,
    report_path) -> dict`` writes a ``.tflite`` to ``dst`` and returns the
    conversion record (float-vs-quantized agreement). With a ``quant=`` build
    variable other than int8 it is called with ``quant="int16x8"`` or
    ``quant="float32"`` as a keyword too (what the model is converted to; raise
    TinybuildError for one the importer does not make). It runs in a child
    process (tinybuild.isolated): a crash is one error line. Suffixes include
    the dot (``".h5"``). A later plugin overrides an earlier one for the same
    suffix.
    """


# -- per build: called with the chosen target ---------------------------------

@hookspec(firstresult=True)
def tinybuild_find_toolchain(target, explicit_path):
    """Locate the compiler set for ``target.triple``; the first answer wins.

    Called when a build for ``target`` starts. ``explicit_path`` is the
    ``toolchain=`` build variable (or ``TINYBUILD_TOOLCHAIN``), ``None`` if
    unset. Return a :class:`tinybuild.target.Toolchain`, or ``None`` to let the
    next provider try. Providers run in order: explicit path, xPack, ``PATH``.
    Raise :class:`tinybuild.errors.TinybuildError` only when the user asked for
    something specific that is broken (e.g. an explicit path with no gcc).
    """


@hookspec
def tinybuild_kernels(target):
    """Return kernel implementations this plugin contributes for ``target``.

    Called once per build, before code generation. Return a list of
    :class:`tinybuild.kernel_registry.KernelImpl` (op name, C function, sources,
    priority and an ``accepts(layer)`` predicate). ``op`` must be a key of
    ``kernel_registry.REFERENCE``: an unknown op (or a function that is not a C
    identifier, a missing source) stops the build naming the plugin and the
    function. For each layer the code generator picks the accepting
    implementation with the highest priority; a tie goes to the plugin loaded
    first, then to the function name in alphabetical order; it falls back to
    the portable reference kernel. The plugin manager fills in
    ``KernelImpl.plugin``, recorded per layer in plan.json. Return ``[]`` for
    targets this plugin does not optimize.

    An implementation may also give ``prepare(layer) -> layer``, run at build
    time for every layer it was chosen for, to do work once on the host
    instead of at every inference: replace or add constants (weights reordered
    for the kernel, requantization tables) and name the ones passed to the C
    function (``args``), ask for ``scratch_bytes`` of arena reserved for that
    layer only (passed last, as ``void *``), and declare ``overlap``: for an
    input, the offsets ``offset(output) - offset(input)`` at which the kernel
    still computes the right result with output and input sharing bytes
    (in-place operation; the planner uses it when the input dies there). The
    generated code declares the C prototype from the argument types; see
    ``KernelImpl`` and docs/kernels.md. The result must be bit-exact with the
    reference kernel.
    """


@hookspec
def tinybuild_ops():
    """Return whole operators this plugin teaches tinybuild to compile.

    Called once when the plugin manager loads (before any build). Return a
    list of :class:`tinybuild.ops.OpDef`, each with its ``name`` (a TFLite
    builtin tinybuild does not compile yet, or ``"CUSTOM:<custom code>"`` for
    a custom operator), ``lower(graph, op) -> tinybuild.lower.Layer`` (checks,
    build-time constants; raise ``tinybuild.ops.unsupported(op, why)`` for
    what it cannot compile), ``kernel`` (the portable C function that runs
    it, bit-exact with what TFLite computes for it), ``source`` (the C file
    defining it: compiled into every firmware and host build) and, when the
    layers carry a ``params_type`` struct, ``header`` (the header declaring
    the struct and the function; without one the generated code declares the
    function from the call's argument types). The call is ``kernel(&params,
    inputs..., consts..., outputs...[, scratch])``; see docs/ops.md.

    An op tinybuild or an earlier plugin already compiles, a function name
    that is not a C identifier or a missing file stops every command with one
    line naming the plugin and the op. Target plugins may then give faster
    kernels for the op through ``tinybuild_kernels``. A custom operator no
    plugin compiles stops the build naming its custom code and its layer.
    """
