"""Harness for kernels contributed by target plugins (optimized kernels).

* ``build_library(outdir)`` compiles the reference kernels and the plugin's
  kernels with the host gcc (the plugin kernels' portable C fallbacks for the
  DSP intrinsics) into one shared library.
* ``random_*_layer(rng, **kw)`` make a :class:`tinybuild.lower.Layer` as the
  lowering step would (reference consts: filter in TFLite's layout, bias,
  out_mul), from explicit shapes and quantization parameters.
* ``run_layer(lib, layer, inputs, overlap_delta=None)`` calls the layer's
  kernel the way the generated code does (params, inputs, consts named by
  ``layer.args``, output, scratch). With ``overlap_delta`` the output is
  placed at that offset from the first input inside one buffer (in-place).
"""
from __future__ import annotations

import ctypes
import subprocess
import sys
from collections import defaultdict
from dataclasses import replace
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from kernel_harness import AddParams, ConvParams, FcParams, PoolParams
from tinybuild import quant
from tinybuild.kernel_registry import reference_sources
from tinybuild.lower import CDouble, Const, Layer
from tinybuild.target import LayerProfile

REPO = Path(__file__).resolve().parents[2]
REF_DIR = REPO / "tinybuild" / "kernels"
CM4_DIR = REPO / "targets" / "cortex_m4" / "kernels"
RV_DIR = REPO / "targets" / "riscv" / "kernels"
TARGET_KERNEL_DIRS = {"cortex-m4": CM4_DIR, "riscv": RV_DIR, "esp32c3": RV_DIR}
HOST_CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter",
               "-ffp-contract=off", "-fPIC", "-shared"]


def build_library(outdir: Path, extra_dirs=(CM4_DIR,), name="libtbopt.so") -> ctypes.CDLL:
    sources = [str(p) for p in reference_sources()]
    incs = ["-I", str(REF_DIR)]
    for d in extra_dirs:
        sources += sorted(str(p) for p in Path(d).glob("*.c"))
        incs += ["-I", str(d)]
    out = Path(outdir) / name
    cmd = ["gcc", *HOST_CFLAGS, *incs, *sources, "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return ctypes.CDLL(str(out))


def target_kernels(target_name: str, dtype: str = "int8") -> list:
    """Every KernelImpl a build for ``target_name`` is offered for ``dtype``
    layers, as the build loads them (one op may have an int8 and an int16 kernel)."""
    from tinybuild import plugins
    pm = plugins.make_plugin_manager()
    return [k for k in plugins.kernels(pm, plugins.find_target(pm, target_name))
            if dtype in k.dtypes]


def kernel_named(function: str, target_name: str = "cortex-m4"):
    """The KernelImpl whose C function is ``function`` (the test fails if the plugin lost it)."""
    found = [k for k in target_kernels(target_name) if k.function == function]
    assert found, f"{function} is not registered by the {target_name} plugin"
    return found[0]


def kernel_fixtures(function: str, tag: str):
    """A kernel test file's module-scoped fixtures ``impl`` (the KernelImpl of ``function``),
    ``module`` (its prepare function's module) and ``lib`` (the host library, built once as
    ``lib<tag>.so``): ``impl, module, lib = kernel_fixtures(FUNCTION, "tbfew")``."""
    @pytest.fixture(scope="module", name="impl")
    def impl_fixture():
        return kernel_named(function)

    @pytest.fixture(scope="module", name="module")
    def module_fixture(impl):
        return sys.modules[impl.prepare.__module__]

    @pytest.fixture(scope="module", name="lib")
    def lib_fixture(tmp_path_factory):
        return build_library(tmp_path_factory.mktemp(tag), name=f"lib{tag}.so")

    return impl_fixture, module_fixture, lib_fixture


def forced(layer: Layer, impl) -> Layer:
    """The layer prepared for ``impl`` whatever its cost estimate says."""
    out = impl.prepare(replace(layer))
    out.kernel = impl.function
    return out


def chosen(layer: Layer, impls: list) -> Layer | None:
    """The layer prepared for the kernel a build picks among ``impls``
    (kernel_registry.choose), or None when the build keeps the reference kernel."""
    from tinybuild.kernel_registry import REFERENCE_PLUGIN, choose
    impl = choose(layer, impls)
    if impl.plugin == REFERENCE_PLUGIN:
        return None
    out = impl.prepare(replace(layer)) if impl.prepare else replace(layer)
    out.kernel = impl.function
    return out


def cm4_kernels(dtype: str = "int8") -> dict[str, object]:
    """The cortex-m4 plugin's KernelImpls for ``dtype`` layers by op, loaded as the build loads them."""
    from tinybuild import plugins
    pm = plugins.make_plugin_manager()
    impls = plugins.kernels(pm, plugins.find_target(pm, "cortex-m4"))
    return {k.op: k for k in impls if dtype in k.dtypes}


# -- layers --------------------------------------------------------------------------


def random_conv_layer(rng, *, depthwise=False, in_h=5, in_w=5, in_c=3, out_c=4, k_h=3, k_w=3,
                      stride=(1, 1), dilation=(1, 1), padding="SAME", per_channel=True,
                      activation="NONE", use_bias=True, in_scale=0.05, in_zp=0,
                      out_scale=0.1, out_zp=0, depth_multiplier=1, weight_range=127,
                      bias_range=3000) -> Layer:
    if depthwise:
        out_c = in_c * depth_multiplier
    n = out_c if per_channel else 1
    fscales = [float(np.float32(s)) for s in rng.uniform(0.002, 0.05, size=n)]
    if depthwise:
        w = rng.integers(-weight_range, weight_range + 1, size=(1, k_h, k_w, out_c)).astype(np.int8)
    else:
        w = rng.integers(-weight_range, weight_range + 1, size=(out_c, k_h, k_w, in_c)).astype(np.int8)
    bias = (rng.integers(-bias_range, bias_range + 1, size=out_c) if use_bias
            else np.zeros(out_c)).astype(np.int32)
    out_h, pad_t = quant.compute_padding(padding, in_h, k_h, stride[0], dilation[0])
    out_w, pad_l = quant.compute_padding(padding, in_w, k_w, stride[1], dilation[1])
    act_min, act_max = quant.activation_range(activation, out_scale, out_zp)
    params = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c,
                  k_h=k_h, k_w=k_w, stride_h=stride[0], stride_w=stride[1],
                  dil_h=dilation[0], dil_w=dilation[1], pad_top=pad_t, pad_left=pad_l,
                  depth_multiplier=depth_multiplier if depthwise else 1,
                  input_offset=-in_zp, output_offset=out_zp, act_min=act_min, act_max=act_max)
    muls = quant.conv_output_multipliers(in_scale, fscales, out_scale, out_c,
                                         op="DEPTHWISE_CONV_2D" if depthwise else "CONV_2D")
    consts = [Const("filter", "int8_t", w.reshape(-1)), Const("bias", "int32_t", bias),
              Const("out_mul", "tb_quant_mul", np.array(muls, np.int32))]
    op = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
    macs = out_h * out_w * out_c * k_h * k_w * (1 if depthwise else in_c)
    return Layer(0, op, "tb_conv_params", params, [0], 1, consts, macs,
                 f"{in_h}x{in_w}x{in_c} -> {out_h}x{out_w}x{out_c}")


def random_fc_layer(rng, *, in_features=8, out_features=5, in_scale=0.05, in_zp=0,
                    w_scale=0.01, out_scale=0.1, out_zp=0, activation="NONE",
                    per_channel=False, use_bias=True, rows=1) -> Layer:
    w = rng.integers(-127, 128, size=(out_features, in_features)).astype(np.int8)
    bias = (rng.integers(-3000, 3001, size=out_features) if use_bias
            else np.zeros(out_features)).astype(np.int32)
    w_scales = ([float(v) for v in rng.uniform(0.5, 2.0, out_features) * w_scale]
                if per_channel else [w_scale])
    act_min, act_max = quant.activation_range(activation, out_scale, out_zp)
    params = dict(rows=rows, in_features=in_features, out_features=out_features, input_offset=-in_zp,
                  weights_offset=0, output_offset=out_zp, act_min=act_min, act_max=act_max,
                  real_multiplier=CDouble(0.0 if per_channel else
                                          quant.fc_real_multiplier(in_scale, w_scale, out_scale)))
    muls = quant.conv_output_multipliers(in_scale, w_scales, out_scale, out_features,
                                         op="FULLY_CONNECTED")
    real_muls = [quant.fc_real_multiplier(in_scale, s, out_scale) for s in w_scales]
    consts = [Const("filter", "int8_t", w.reshape(-1)), Const("bias", "int32_t", bias),
              Const("out_mul", "tb_quant_mul", np.array(muls, np.int32)),
              Const("real_mul", "double", np.array(real_muls, np.float64))]
    return Layer(0, "FULLY_CONNECTED", "tb_fc_params", params, [0], 1, consts,
                 rows * in_features * out_features, f"{in_features} -> {out_features}" +
                 (f" x {rows} rows" if rows > 1 else ""))


def random_pool_layer(rng, *, in_h=6, in_w=6, c=3, k_h=2, k_w=2, stride=(2, 2),
                      padding="VALID", activation="NONE", scale=0.05, zp=0,
                      op="AVERAGE_POOL_2D") -> Layer:
    out_h, pad_t = quant.compute_padding(padding, in_h, k_h, stride[0])
    out_w, pad_l = quant.compute_padding(padding, in_w, k_w, stride[1])
    act_min, act_max = quant.activation_range(activation, scale, zp)
    params = dict(in_h=in_h, in_w=in_w, c=c, out_h=out_h, out_w=out_w, k_h=k_h, k_w=k_w,
                  stride_h=stride[0], stride_w=stride[1], pad_top=pad_t, pad_left=pad_l,
                  act_min=act_min, act_max=act_max)
    return Layer(0, op, "tb_pool_params", params, [0], 1, [], 0,
                 f"{in_h}x{in_w}x{c} -> {out_h}x{out_w}x{c}")


def random_add_layer(rng, *, size=48, s1=0.05, z1=0, s2=0.05, z2=0, so=0.1, zo=0,
                     activation="NONE") -> Layer:
    params = quant.add_params(s1, z1, s2, z2, so, zo, activation)
    params["size"] = size
    return Layer(0, "ADD", "tb_add_params", params, [0, 1], 2, [], 0, str(size))


# -- running ---------------------------------------------------------------------------


def _params_struct(layer: Layer):
    p = layer.params
    if layer.params_type == "tb_conv_params":
        return ConvParams(**p)
    if layer.params_type == "tb_pool_params":
        return PoolParams(**p)
    if layer.params_type == "tb_fc_params":
        return FcParams(**{k: (float(v) if k == "real_multiplier" else v) for k, v in p.items()})
    if layer.params_type == "tb_add_params":
        s = AddParams(**{k: v for k, v in p.items() if k not in ("input1", "input2", "output")})
        for f in ("input1", "input2", "output"):
            getattr(s, f).multiplier, getattr(s, f).shift = p[f]
        return s
    raise ValueError(layer.params_type)


_DTYPES = {"int8_t": np.int8, "int32_t": np.int32, "tb_quant_mul": np.int32, "float": np.float32,
           "int16_t": np.int16, "uint8_t": np.uint8, "uint32_t": np.uint32,
           "double": np.float64, "int64_t": np.int64}


def as_bytes(x) -> np.ndarray:
    """A tensor's bytes as int8 (int16 tensors of 16x8 layers viewed, not converted)."""
    x = np.asarray(x)
    if x.dtype == np.int16:
        return np.ascontiguousarray(x).view(np.int8).reshape(-1)
    return np.ascontiguousarray(x, np.int8).reshape(-1)


def output_size(layer: Layer) -> int:
    """Bytes of the output."""
    return _elements_out(layer) * (2 if layer.dtype == "int16" else 1)


def _elements_out(layer: Layer) -> int:
    p = layer.params
    if layer.params_type == "tb_conv_params":
        return p["out_h"] * p["out_w"] * p["out_c"]
    if layer.params_type == "tb_pool_params":
        return p["out_h"] * p["out_w"] * p["c"]
    if layer.params_type == "tb_fc_params":
        return p["out_features"] * p.get("rows", 1)
    if layer.params_type in ("tb_add_params", "tb_mul_params", "tb_lut_params"):
        return p["size"]
    raise ValueError(layer.params_type)


def input_size(layer: Layer) -> int:
    """Bytes of each input tensor the kernel reads."""
    return _elements_in(layer) * (2 if layer.dtype == "int16" else 1)


def _elements_in(layer: Layer) -> int:
    p = layer.params
    if layer.params_type == "tb_conv_params":
        return p["in_h"] * p["in_w"] * p["in_c"]
    if layer.params_type == "tb_pool_params":
        return p["in_h"] * p["in_w"] * p["c"]
    if layer.params_type == "tb_fc_params":
        return p["in_features"] * p.get("rows", 1)
    if layer.params_type == "tb_add_params":
        return p["size"]
    raise ValueError(layer.params_type)


REF_ROLES = {"tb_conv_params": ["filter", "bias", "out_mul"],
             "tb_fc_params": ["filter", "bias", "out_mul", "real_mul"]}


def run_layer(lib, layer: Layer, inputs: list[np.ndarray], overlap_delta: int | None = None,
              guard: int = 64, seed: int = 0, overlap_input: int = 0) -> np.ndarray:
    """Run the layer's kernel once; return its output bytes (int8). With
    ``overlap_delta``, input ``overlap_input`` and the output share one buffer."""
    # a short input would let the kernel read whatever memory follows it
    inputs = [as_bytes(x) for x in inputs]
    sizes = [x.size for x in inputs]
    assert layer.params_type is None or all(n == input_size(layer) for n in sizes), \
        f"{layer.op}: inputs of {sizes} bytes, the kernel reads {input_size(layer)}"
    roles = layer.args if layer.args is not None else REF_ROLES.get(layer.params_type, [])
    consts = {c.role: np.ascontiguousarray(c.values, dtype=_DTYPES[c.ctype]) for c in layer.consts}
    n_out = output_size(layer)
    keep = []
    rng = np.random.default_rng(seed)
    if overlap_delta is None:
        bufs = [np.ascontiguousarray(x, np.int8).reshape(-1).copy() for x in inputs]
        out = rng.integers(-128, 128, n_out + 2 * guard).astype(np.int8)
        in_ptrs = [b.ctypes.data for b in bufs]
        out_ptr = out.ctypes.data + guard
        keep += bufs
    else:
        x0 = np.ascontiguousarray(inputs[overlap_input], np.int8).reshape(-1)
        lo = min(0, overlap_delta)
        span = max(x0.size, overlap_delta + n_out) - lo
        base = (guard + 15) // 16 * 16
        arena = rng.integers(-128, 128, span + 2 * base).astype(np.int8)
        # 16-aligned like the planner's arena
        pad = (-arena.ctypes.data) % 16
        arena = np.concatenate([arena, np.zeros(16, np.int8)])
        start = pad + base - lo
        arena[start:start + x0.size] = x0
        others = [np.ascontiguousarray(x, np.int8).reshape(-1).copy() for x in inputs]
        in_ptrs = [b.ctypes.data for b in others]
        in_ptrs[overlap_input] = arena.ctypes.data + start
        keep += others
        out_ptr = arena.ctypes.data + start + overlap_delta
        out = arena
    scratch = None
    if layer.scratch_bytes:
        scratch = rng.integers(-128, 128, layer.scratch_bytes + 32).astype(np.int8)
        keep.append(scratch)
    args = []
    params = None
    if layer.op == "RESHAPE":
        args = [ctypes.c_int32(layer.params["size"])]
    elif layer.params_type:
        params = _params_struct(layer)
        args = [ctypes.byref(params)]
    args += [ctypes.c_void_p(p) for p in in_ptrs]
    args += [ctypes.c_void_p(consts[r].ctypes.data) for r in roles]
    args.append(ctypes.c_void_p(out_ptr))
    if scratch is not None:
        args.append(ctypes.c_void_p((scratch.ctypes.data + 15) // 16 * 16))
    fn = getattr(lib, layer.kernel)
    fn.restype = None
    before = out.copy() if overlap_delta is None else None
    fn(*args)
    if overlap_delta is None:
        assert np.array_equal(out[:guard], before[:guard]), "wrote below the output"
        assert np.array_equal(out[guard + n_out:], before[guard + n_out:]), "wrote past the output"
        return out[guard:guard + n_out].copy()
    off = out_ptr - out.ctypes.data
    return out[off:off + n_out].copy()


def reference(layer: Layer) -> Layer:
    from tinybuild.kernel_registry import reference_impl
    impl = reference_impl(layer.op, layer.dtype)
    ref = impl.prepare(replace(layer))
    ref.kernel = impl.function
    return ref


def condition(accepts):
    """What a kernel computes correctly: an accepts function that adds a cost
    estimate to a condition records it as ``condition`` (tinybuild.kernel_cost.within)."""
    if isinstance(accepts, partial):
        inner = getattr(accepts.func, "condition", None)
        return partial(inner, *accepts.args, **accepts.keywords) if inner else accepts
    return getattr(accepts, "condition", accepts)


def optimized(layer: Layer, impls: dict) -> Layer | None:
    """The layer prepared for ``impls[layer.op]`` wherever that kernel is correct
    (whether or not a build would pick it there), else None."""
    impl = impls.get(layer.op)
    if impl is None or not condition(impl.accepts)(layer):
        return None
    out = impl.prepare(replace(layer))
    out.kernel = impl.function
    return out


# -- comparing an optimized kernel with the reference ---------------------------------

FAST = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SWEEP = settings(max_examples=1500, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def assert_same(ref, got, what=""):
    diff = np.flatnonzero(ref != got)
    assert diff.size == 0, (f"{what}: {diff.size}/{ref.size} bytes differ, first at {diff[:8]}: "
                            f"reference {ref[diff[:8]]} optimized {got[diff[:8]]}")


def in_place_deltas(opt, t=0) -> list[int]:
    """Aligned offsets of the output from input t that the planner may
    choose: both ends of each allowed interval, their neighbours, and 0."""
    from tinybuild.planner import ALIGNMENT, intervals
    deltas = set()
    for lo, hi in intervals(opt.overlap.get(t)):
        top = None if hi is None else hi // ALIGNMENT * ALIGNMENT
        bottom = None if lo is None else -(-lo // ALIGNMENT) * ALIGNMENT
        if top is not None and bottom is not None and bottom > top:
            continue
        for d in (top, bottom, 0, None if top is None else top - ALIGNMENT,
                  None if bottom is None else bottom + ALIGNMENT):
            if d is not None and (top is None or d <= top) and (bottom is None or d >= bottom):
                deltas.add(d)
    return sorted(deltas)


def compare(lib, impls, layer, inputs, must_accept=True):
    """The layer through its optimized kernel (out of place, then in place at
    every overlap the kernel declares) against the reference kernel."""
    opt = optimized(layer, impls)
    if opt is None:
        assert not must_accept, f"{layer.op} {layer.shape} not accepted"
        return None
    ref = run_layer(lib, reference(layer), inputs)
    assert_same(ref, run_layer(lib, opt, inputs), f"{layer.op} {layer.shape}")
    for d in in_place_deltas(opt):
        assert_same(ref, run_layer(lib, opt, inputs, overlap_delta=d),
                    f"{layer.op} {layer.shape} in place at {d}")
    return opt


# -- the same comparison in the simulator ----------------------------------------------

ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2",
             "-std=c99", "-ffunction-sections", "-fdata-sections", "-ffp-contract=off"]
BOARD = REPO / "targets" / "cortex_m4"
RUNTIME = REPO / "tinybuild" / "runtime"


def _c_array(name: str, values: np.ndarray, ctype: str = "int8_t", const: bool = True) -> str:
    body = ", ".join(str(int(v)) for v in np.asarray(values).reshape(-1))
    qual = "static const" if const else "static"
    return f"{qual} {ctype} {name}[{max(1, values.size)}] __attribute__((aligned(4))) = {{{body}}};"


def firmware_source(cases) -> tuple[str, list[tuple[int, int]]]:
    """C for a firmware that runs every case's reference and optimized kernel on
    the same data and writes both outputs into the output buffer. ``cases``:
    ``(ref_layer, opt_layer, inputs, overlap_delta)``. Returns the source and
    each case's (offset, size) in the output (reference first, then optimized)."""
    from tinybuild.codegen import _call_roles, _const_name, _emit_consts, _prototypes

    # prototypes from the argument types, as the generated model.c declares them (every
    # tensor of a layer has its dtype: int8, or int16 in 16x8 layers)
    protos = []
    for _, opt, _, _ in cases:
        tensors = SimpleNamespace(tensors=defaultdict(lambda d=opt.dtype: SimpleNamespace(dtype=d)))
        protos += [p for p in _prototypes([opt], tensors) if p not in protos]
    parts = ['#include <stdint.h>', '#include "tb_kernels.h"', '#include "tb_runtime.h"',
             *protos, ""]
    calls, spans, total, arena = [], [], 0, 16
    for i, (ref, opt, inputs, delta) in enumerate(cases):
        ref, opt = replace(ref, index=2 * i), replace(opt, index=2 * i + 1)
        n = output_size(ref)
        parts += _emit_consts(ref) + _emit_consts(opt)
        names = []
        for j, x in enumerate(inputs):
            names.append(f"in_{i}_{j}")
            parts.append(_c_array(names[-1], as_bytes(x)))
        spans.append((total, n))
        ref_out, opt_out = f"(void *)(tb_result + {total})", f"(void *)(tb_result + {total + n})"
        total += 2 * n

        def call(layer, ins, out, scratch):
            args = [f"&{_const_name(layer, 'params')}"] + [f"(const void *){x}" for x in ins] + \
                   [_const_name(layer, r) for r in _call_roles(layer)] + [out]
            if layer.scratch_bytes:
                args.append(scratch)
            return f"  {layer.kernel}({', '.join(args)});"

        body = [f"  tb_mark({2 * i});", call(ref, names, ref_out, "0"), f"  tb_mark({2 * i + 1});"]
        scratch_at = 0
        if delta is None:
            body.append(call(opt, names, opt_out, "(void *)(tb_work + 0)"))
            arena = max(arena, opt.scratch_bytes + 16)
        else:
            size0 = as_bytes(inputs[0]).size
            lo = min(0, delta)
            start = -lo
            span = max(size0, delta + n) - lo
            scratch_at = (span + 15) // 16 * 16
            arena = max(arena, scratch_at + opt.scratch_bytes + 16)
            body.append(f"  copy_bytes(tb_work + {start}, {names[0]}, {size0});")
            body.append(call(opt, [f"(tb_work + {start})"] + names[1:],
                             f"(void *)(tb_work + {start + delta})",
                             f"(void *)(tb_work + {scratch_at})"))
            body.append(f"  copy_bytes({opt_out}, (const int8_t *)(tb_work + {start + delta}), {n});")
        calls += body
    parts += [f"static int8_t tb_result[{max(total, 1)}] __attribute__((aligned(4))) TB_NOINIT;",
              f"static uint8_t tb_work[{arena}] __attribute__((aligned(16))) TB_NOINIT;",
              "static int8_t tb_dummy_input[4] TB_NOINIT;",
              "static void copy_bytes(void *d, const void *s, int32_t n) {",
              "  volatile int8_t *dd = (volatile int8_t *)d; const int8_t *ss = (const int8_t *)s;",
              "  while (n-- > 0) *dd++ = *ss++;", "}",
              f"const tb_io_desc_t tb_io_desc = TB_IO_DESC_1_1({2 * len(cases)}, tb_dummy_input, 4, "
              f"tb_result, {max(total, 1)}, tb_work, {arena});",
              "void tb_model_invoke(void) {", *calls, "  tb_mark(TB_MARK_END);", "}", ""]
    return "\n".join(parts), spans


def build_firmware(cases, workdir: Path, extra_dirs=(CM4_DIR,),
                   target_name: str = "cortex-m4") -> tuple[Path, list]:
    """The cases' firmware, compiled with ``target_name``'s flags and linked
    with its startup code and linker script as a build links."""
    import pytest

    from tinybuild import plugins
    from tinybuild.linkcheck import link_command
    pm = plugins.make_plugin_manager()
    target = plugins.find_target(pm, target_name)
    toolchain = pm.hook.tinybuild_find_toolchain(target=target, explicit_path=None)
    if toolchain is None:
        pytest.skip(f"no {target.triple}-gcc here")
    src, spans = firmware_source(cases)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "cases.c").write_text(src)
    sources = [*target.startup_sources, RUNTIME / "tb_runtime.c", *reference_sources()]
    incs = [f"-I{REF_DIR}", f"-I{RUNTIME}"]
    for d in extra_dirs:
        sources += sorted(Path(d).glob("*.c"))
        incs.append(f"-I{d}")
    elf = workdir / "kernels.elf"
    cmd = link_command(toolchain, target, [*sources, workdir / "cases.c"], elf,
                       workdir / "kernels.map", "O2")
    # the link flags repeat most compile flags (a spec file must not come twice)
    cmd[1:1] = [*(f for f in target.cflags if f not in target.ldflags), "-std=c99",
                "-ffunction-sections", "-fdata-sections", "-ffp-contract=off", *incs]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    return elf, spans


def _ram_need(case) -> int:
    ref, opt, inputs, delta = case
    n = output_size(ref)
    size0 = as_bytes(inputs[0]).size
    work = opt.scratch_bytes + (0 if delta is None else max(size0, abs(delta) + n + size0) + 32)
    return 2 * n + work + size0


def _flash_need(case) -> int:
    """Bytes of constants (both kernels' weights and tables) and inputs a case puts in flash."""
    ref, opt, inputs, _ = case
    consts = sum(np.asarray(c.values).nbytes for layer in (ref, opt) for c in layer.consts)
    return consts + sum(as_bytes(x).size for x in inputs)


def _groups(cases, ram_budget: int, flash_budget: int | None) -> list[list]:
    """The cases split into firmwares whose buffers fit ``ram_budget`` bytes
    and whose constants fit ``flash_budget`` (None: no limit)."""
    groups, current, ram, flash = [], [], 0, 0
    for case in cases:
        need_ram, need_flash = _ram_need(case), _flash_need(case)
        over_flash = flash_budget is not None and flash + need_flash > flash_budget
        if current and (ram + need_ram > ram_budget or over_flash):
            groups.append(current)
            current, ram, flash = [], 0, 0
        current.append(case)
        ram += need_ram
        flash += need_flash
    return groups + [current] if current else groups


def simulate_cases(cases, workdir: Path, ram_budget: int = 90_000, extra_dirs=(CM4_DIR,),
                   target_name: str = "cortex-m4", flash_budget: int | None = None) -> list[dict]:
    """Build and simulate on ``target_name`` (several firmwares if the cases'
    buffers do not fit ``ram_budget`` or their constants ``flash_budget``).
    Per case: the reference and optimized output bytes (``ref``, ``opt``),
    each kernel's exact instruction count and modelled cycles (``ref_instr``,
    ``opt_instr``, ``ref_cycles``, ``opt_cycles``; 0 when the kernel did not
    run), and ``detail``: False when the cycles leave out misaligned-access
    penalties (see _simulate)."""
    from tinybuild import plugins
    pm = plugins.make_plugin_manager()
    target = plugins.find_target(pm, target_name)
    sim = plugins.simulators(pm)[target.default_simulator]
    rows = []
    for g, group in enumerate(_groups(cases, ram_budget, flash_budget)):
        elf, spans = build_firmware(group, Path(workdir) / f"fw{g}", extra_dirs, target_name)
        result, detail = _simulate(sim, elf, target)
        out = result.output
        prof = {l.index: l for l in result.layers}
        zero = LayerProfile(-1, 0, 0)
        for i, (off, n) in enumerate(spans):
            ref, opt = prof.get(2 * i, zero), prof.get(2 * i + 1, zero)
            rows.append(dict(ref=np.frombuffer(out[off:off + n], np.int8),
                             opt=np.frombuffer(out[off + n:off + 2 * n], np.int8),
                             ref_instr=ref.instructions, opt_instr=opt.instructions,
                             ref_cycles=ref.cycles, opt_cycles=opt.cycles, detail=detail))
    return rows


def _simulate(sim, elf: Path, target):
    """The run as a build's first one (every data access watched: misaligned
    ones cost their cycles), and True; if that run faults, the run without
    the watch (cycles without misalignment penalties), and False. Unicorn
    sometimes faults with the memory hook on where the firmware does not
    (seen in the soft-float double code of the reference FULLY_CONNECTED:
    a jump into data)."""
    from tinybuild.errors import TinybuildError
    try:
        return sim.run(elf, target, b"\0\0\0\0", max_instructions=2_000_000_000, timeout_s=600), True
    except TinybuildError as e:
        if "firmware fault" not in str(e):
            raise
    return sim.run(elf, target, b"\0\0\0\0", max_instructions=2_000_000_000, timeout_s=600,
                   detail=False), False


def run_firmware(cases, workdir: Path, ram_budget: int = 90_000, extra_dirs=(CM4_DIR,),
                 target_name: str = "cortex-m4"):
    """simulate_cases as [(ref_bytes, opt_bytes, ref_instr, opt_instr)]."""
    return [(r["ref"], r["opt"], r["ref_instr"], r["opt_instr"])
            for r in simulate_cases(cases, workdir, ram_budget, extra_dirs, target_name)]
