"""Compile the Triton back end's kernels for a GPU on a machine without one, and read their PTX.

    env -u TRITON_INTERPRET python bench/triton_compile_check.py [--arch 90] [--full] [--ptx-dir DIR]

The interpreter (``TRITON_INTERPRET=1``, what CI runs the kernels with) executes the kernels' Python
as numpy and accepts code the real compiler rejects, and it says nothing about the machine code.
This tool runs the Triton ops' host code on CPU tensors with a stand-in driver that reports a CUDA
target (sm_90 by default) and turns every launch into a compile-only ``warmup``: each kernel
variant the ops would launch on that GPU, with the GPU launch configurations, goes through the
real compiler (Triton IR, LLVM, PTX, ptxas) and nothing runs. Per compiled variant it reports the
PTX's global loads and stores and how many of them are 128-bit vectors (``.v4`` of 32-bit words or
``.v2`` of 64-bit ones: what a bandwidth-bound kernel needs to reach copy speed), and, from ``cuobjdump
--dump-resource-usage`` of the cubin (bundled with Triton), its registers and spilled bytes.

Must run in a process without ``TRITON_INTERPRET=1`` (the kernels must be JIT functions, not
interpreted ones); ``tests/test_triton_compile.py`` runs it in a subprocess. It replaces the
active Triton driver and patches ``JITFunction.run`` for the rest of the process: a development
tool, not part of the installed package.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch

if os.environ.get("TRITON_INTERPRET") == "1":
    raise SystemExit("bench/triton_compile_check.py needs TRITON_INTERPRET unset (it compiles, not interprets)")

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.runtime import driver  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402


class _CompileOnlyDriver:
    """The part of a Triton driver that JITFunction needs to compile for ``target``."""

    def __init__(self, target: GPUTarget):
        self.target = target

    def get_current_device(self) -> int:
        return 0

    def get_current_stream(self, device: Optional[int] = None) -> int:
        return 0

    def get_current_target(self) -> GPUTarget:
        return self.target

    def get_active_torch_device(self) -> torch.device:
        return torch.device("cpu")


@dataclass
class Compiled:
    kernel: str
    case: str
    constexprs: str
    ptx_lines: int
    loads: int
    loads_v4: int
    stores: int
    stores_v4: int
    local_bytes: int
    regs: Optional[int] = None  # from cuobjdump --dump-resource-usage of the cubin, where available
    spill_bytes: Optional[int] = None  # its LOCAL + STACK: ptxas's register spills
    ptx: str = field(repr=False, default="")


_LD = re.compile(r"^\s*(?:@%p\d+\s+)?ld\.global[.\w]*", re.M)
_ST = re.compile(r"^\s*(?:@%p\d+\s+)?st\.global[.\w]*", re.M)


def analyse(kernel: str, case: str, constexprs: str, ptx: str, cubin: Optional[bytes] = None) -> Compiled:
    loads = _LD.findall(ptx)
    stores = _ST.findall(ptx)
    local = sum(int(m) for m in re.findall(r"\.local\s+\.align\s+\d+\s+\.b8\s+\w+\[(\d+)\]", ptx))
    regs, spill = _resource_usage(cubin) if cubin else (None, None)
    return Compiled(kernel, case, constexprs, ptx.count("\n"), len(loads), sum(map(_is_128bit, loads)),
                    len(stores), sum(map(_is_128bit, stores)), local, regs, spill, ptx)


def _cuobjdump() -> Optional[str]:
    path = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    return path if os.access(path, os.X_OK) else shutil.which("cuobjdump")


def _resource_usage(cubin: bytes):
    """(registers, local + stack bytes) of the cubin's kernel, or (None, None) without cuobjdump."""
    tool = _cuobjdump()
    if tool is None:
        return None, None
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
    m = re.search(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:\d+\s+LOCAL:(\d+)", out)
    return (int(m.group(1)), int(m.group(2)) + int(m.group(3))) if m else (None, None)


def _is_128bit(op: str) -> bool:
    """ld/st.global.v4 of 32-bit words or .v2 of 64-bit ones: one 16-byte access per thread."""
    return ".v4" in op or (".v2" in op and op.endswith(("64", ".f64", ".b64", ".u64", ".s64")))


def install_driver(arch: int = 90, sms: int = 132) -> None:
    """The stand-in driver for ``sm_<arch>`` with ``sms`` SMs: kernels compile, launches need stubbing."""
    from gan_kernels.triton import _utils

    driver.set_active(_CompileOnlyDriver(GPUTarget("cuda", arch, 32)))
    _utils.COMPILE_ONLY_SMS = sms


def install(arch: int = 90, sms: int = 132) -> List[tuple]:
    """Stand-in driver + compile-only launches; returns the list the launches are recorded in."""
    install_driver(arch, sms)
    record: List[tuple] = []
    original = JITFunction.run

    def run(self, *args, grid, warmup, **kwargs):
        kernel = original(self, *args, grid=grid, warmup=True, **kwargs)
        consts = ",".join(f"{k}={v}" for k, v in kwargs.items() if k.isupper())
        record.append((self.fn.__name__, consts, kernel))
        return kernel

    JITFunction.run = run
    return record


def cases(full: bool = False) -> Dict[str, Callable[[], object]]:
    """name -> a call of the Triton ops on CPU tensors (compiled, never run).

    The default set compiles every kernel in every mode and dtype at least once (CI); ``full``
    adds every kind x reduction x path."""
    from gan_kernels import _kinds

    ops = torch.ops.gan_kernels_triton
    out: Dict[str, Callable[[], object]] = {}
    small, large = 256, 70_000  # either side of the one-program loss limit (8192)

    def logits(n, dtype=torch.float32):
        return torch.randn(n, dtype=dtype)

    def d_loss(kind, red="mean", drift=0.01):
        spec, r_ = _kinds.d_loss_args(kind, 1.0, drift, 0.0, 1.0), _kinds.REDUCTIONS[red]
        return lambda r, f: ops.loss_forward(r, f, *spec, r_, True)

    d_kinds = list(_kinds.D_LOSS_KINDS) if full else ["logistic", "hinge", "relativistic", "rpgan"]
    reductions = list(_kinds.REDUCTIONS) if full else ["mean"]
    for kind in d_kinds:
        for red in reductions:
            for n in (small, large):
                r, f = logits(n), logits(n)
                out[f"d_loss {kind} {red} n={n}"] = lambda r=r, f=f, fn=d_loss(kind, red): fn(r, f)
    for red in ("none", "sum"):  # the other reductions, both paths, one kind
        for n in (small, large):
            r, f = logits(n), logits(n)
            out[f"d_loss least_squares {red} n={n}"] = lambda r=r, f=f, fn=d_loss("least_squares", red, 0.0): fn(r, f)
    r, f = logits(large), logits(large)
    out["d_loss relativistic none (no grads) n=70000"] = lambda fn=d_loss("relativistic", "none", 0.0): fn(r, f)
    g_kinds = list(_kinds.G_LOSS_KINDS) if full else ["logistic", "minimax", "relativistic"]
    for kind in g_kinds:
        spec = _kinds.g_loss_spec(kind, 1.0)
        for n in (small, large):
            f, r = logits(n), (logits(n) if spec.uses_real else None)
            out[f"g_loss {kind} n={n}"] = lambda f=f, r=r, args=spec.args(): ops.loss_forward(r, f, *args, 1, True)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        r, f = logits(small, dtype), logits(small, dtype)
        out[f"d_loss logistic {dtype} n={small}"] = lambda r=r, f=f, fn=d_loss("logistic", drift=0.0): fn(r, f)
        r, f = logits(large, dtype), logits(large, dtype)
        out[f"d_loss relativistic {dtype} n={large}"] = lambda r=r, f=f, fn=d_loss("relativistic", drift=0.0): fn(r, f)

    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        for n in (small, large):
            a, b = torch.randn(n, dtype=acc), torch.randn(n, dtype=acc)
            out[f"loss_backward {dtype} n={n}"] = (
                lambda a=a, b=b, dtype=dtype: ops.loss_backward(torch.ones(()), a, b, dtype, dtype))
        big = (64, 3, 256, 256) if dtype != torch.float64 else (8, 3, 64, 64)
        for shape in (big, (256, 2)):
            real, fake = torch.randn(shape, dtype=dtype), torch.randn(shape, dtype=dtype)
            alpha = torch.rand(shape[0], dtype=acc)
            go = torch.randn(shape, dtype=dtype)
            tag = "x".join(map(str, shape))
            out[f"interpolate fwd {dtype} {tag}"] = lambda r=real, f=fake, a=alpha: ops.interpolate_forward(r, f, a)
            out[f"interpolate bwd {dtype} {tag}"] = lambda go=go, a=alpha: ops.interpolate_backward(go, a, True, True)
            g = torch.randn(shape, dtype=dtype)
            kinds = list(_kinds.PENALTY_KINDS) if (full or dtype == torch.float32) else ["wgan-gp"]
            for kind in kinds:
                code = _kinds.PENALTY_KINDS[kind]
                out[f"grad_penalty fwd+bwd {kind} {dtype} {tag}"] = (
                    lambda g=g, code=code: _penalty(ops, g, code))
    g = torch.randn(16, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    out["grad_penalty fwd+bwd wgan-gp channels_last, inv_scale tensor"] = lambda: _penalty(ops, g, 0, torch.tensor(0.5))
    _list_cases(ops, out, small, large)
    return out


def _list_cases(ops, out: Dict[str, Callable[[], object]], small: int, large: int) -> None:
    """The list ops: every dtype, a mixed-dtype list (its in-order sum), the paired mode."""
    from gan_kernels import _kinds

    sizes = (small, large, 3000)
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        reals = [torch.randn(n, dtype=dtype) for n in sizes]
        fakes = [torch.randn(n, dtype=dtype) for n in sizes]
        for kind in ("logistic", "hinge", "rpgan"):
            spec = _kinds.d_loss_args(kind, 1.0, 0.01, 0.0, 1.0)
            out[f"loss_list_forward {kind} {dtype}"] = (
                lambda r=reals, f=fakes, spec=spec: ops.loss_list_forward(r, f, *spec, 1, True))
        saved = [torch.randn(n, dtype=acc) for n in sizes]
        out[f"loss_list_backward {dtype}"] = lambda s=saved, like=reals: ops.loss_list_backward(torch.ones(()), s, like)
        maps = [torch.randn(2, 8, 31, dtype=dtype), torch.randn(2, 64, 1000, dtype=dtype)]
        other = [torch.randn_like(m) for m in maps]
        for red in (0, 1):
            out[f"feature_matching_forward {dtype} reduction={red}"] = (
                lambda r=maps, f=other, red=red: ops.feature_matching_forward(r, f, [1.0, 0.5], red))
        go = torch.ones((), dtype=acc)
        out[f"feature_matching_backward {dtype}"] = (
            lambda r=maps, f=other, go=go: ops.feature_matching_backward(go, r, f, [1.0, 0.5], 1, True, True))
    mixed_r = [torch.randn(small), torch.randn(small, dtype=torch.float16), torch.randn(small, dtype=torch.float64)]
    mixed_f = [torch.randn_like(t) for t in mixed_r]
    spec = _kinds.g_loss_args("least_squares", 1.0)
    out["loss_list_forward mixed dtypes (g_loss)"] = lambda: ops.loss_list_forward([], mixed_f, *spec, 2, True)
    out["feature_matching_forward mixed dtypes"] = (
        lambda: ops.feature_matching_forward(mixed_r, mixed_f, [1.0, 1.0, 1.0], 1))


def _penalty(ops, g, code, ist=None):
    loss, norms = ops.grad_penalty_forward(g, code, 1.0, 10.0, 1, 1.0, ist)
    return ops.grad_penalty_backward(torch.ones(()), g, norms, code, 1.0, 10.0, 1, 1.0, ist)


def run(full: bool = False, arch: int = 90, sms: int = 132, only: Optional[str] = None) -> List[Compiled]:
    record = install(arch, sms)
    from gan_kernels.triton import losses  # noqa: F401  (registers the ops)

    results: List[Compiled] = []
    seen = set()
    for name, call in cases(full).items():
        if only and only not in name:
            continue
        start = len(record)
        call()
        for kernel, consts, compiled in record[start:]:
            key = (kernel, consts, compiled.hash if hasattr(compiled, "hash") else id(compiled))
            if key in seen:
                continue
            seen.add(key)
            results.append(analyse(kernel, name, consts, compiled.asm["ptx"], compiled.asm.get("cubin")))
    return results


def format_table(results: List[Compiled]) -> str:
    lines = [f"{'kernel':<22} {'first case':<48} {'ld':>4} {'v4':>4} {'st':>4} {'v4':>4} {'regs':>4} {'spill':>5}  constexprs"]
    for c in results:
        regs = "-" if c.regs is None else str(c.regs)
        spill = "-" if c.spill_bytes is None else str(c.spill_bytes + c.local_bytes)
        lines.append(f"{c.kernel:<22} {c.case[:48]:<48} {c.loads:>4} {c.loads_v4:>4} {c.stores:>4} {c.stores_v4:>4} "
                     f"{regs:>4} {spill:>5}  {c.constexprs}")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", type=int, default=90, help="compute capability x 10 (90: H100/H200)")
    p.add_argument("--sms", type=int, default=132, help="SM count the launch configurations assume")
    p.add_argument("--full", action="store_true", help="every kind x reduction, not just one per mode")
    p.add_argument("--only", default=None, help="only cases whose name contains this")
    p.add_argument("--ptx-dir", default=None, help="write each variant's PTX here")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    results = run(args.full, args.arch, args.sms, args.only)
    print(f"triton {triton.__version__}, sm_{args.arch}: {len(results)} kernel variants compiled "
          f"in {time.perf_counter() - t0:.0f} s (ld/st = global loads/stores in the PTX, v4 = 128-bit ones; spill = local + stack bytes)")
    print(format_table(results))
    if args.ptx_dir:
        os.makedirs(args.ptx_dir, exist_ok=True)
        for i, c in enumerate(results):
            with open(os.path.join(args.ptx_dir, f"{i:03d}_{c.kernel}.ptx"), "w") as f:
                f.write(f"// {c.case}\n// {c.constexprs}\n{c.ptx}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
