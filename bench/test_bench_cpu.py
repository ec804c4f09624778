"""pytest-benchmark suite of the C++ CPU back end against the reference, eager and compiled.

    pytest bench/test_bench_cpu.py --benchmark-columns=min,median,iqr,rounds \
        --benchmark-sort=name --benchmark-max-time=1

One group per op; in each group ``cpu`` (the public API with backend="cpu", argument checks and
autograd included), ``eager`` (gan_kernels.reference called directly) and ``compiled``
(torch.compile of that same reference function; for the penalty that is the penalty *head*, the
part after autograd.grad). Groups of the bandwidth-bound ops also hold ``floor``: one
``torch.Tensor.copy_`` moving the op's bytes, the memory-traffic floor measured on this machine.

Bytes moved at 64x3x64x64 float32 (786,432 elements, 3 MiB = S): the penalty forward reads g
once (S) and its backward reads g and writes d_grad (2S), so fwd+bwd moves 3S = 9 MiB; the
interpolation reads real and fake and writes x_hat (3S). The ``floor`` row of each group is a copy
of 1.5S into an existing buffer, which moves the same 3S. The losses at B=256 move 2 KiB: they are bound by per-call overhead, not
memory (the eager reference launches ~25 ATen ops for a forward+backward).

Also here (not timings): ``test_dispatch_count`` asserts the penalty's fwd+bwd dispatches at most
3 ops besides autograd's own bookkeeping, counted with a TorchDispatchMode.
"""

from __future__ import annotations

import os

import pytest
import torch

import gan_kernels as gk
from gan_kernels import reference
from gan_kernels.bench.timing import DispatchCounter

pytestmark = pytest.mark.skipif("cpu" not in gk.available_backends(), reason="the C++ CPU back end is not built")

IMPLS = ["cpu", "eager"] + (["compiled"] if os.environ.get("GK_BENCH_COMPILE", "1") != "0" else [])
IMAGE = (64, 3, 64, 64)
LOGITS = (256,)
_S = torch.Size(IMAGE).numel() * 4  # bytes of one float32 image batch

for _name in ("recompile_limit", "cache_size_limit"):
    if hasattr(torch._dynamo.config, _name):
        setattr(torch._dynamo.config, _name, 256)

_compiled = {}


def _compile(fn):
    if fn not in _compiled:
        _compiled[fn] = torch.compile(fn, dynamic=False)
    return _compiled[fn]


def _impl(op, impl):
    """The callable of ``op`` for one implementation, with the reference's signature."""
    ref = getattr(reference, op)
    if impl == "eager":
        return ref
    if impl == "compiled":
        return _compile(ref)
    api = getattr(gk, op)
    if op == "d_loss":
        return lambda r, f, kind: api(r, f, kind, backend=impl)
    if op == "g_loss":
        return lambda f, kind: api(f, kind, backend=impl)
    if op == "interpolate":
        return lambda r, f, a: api(r, f, a, backend=impl)
    return lambda g, kind: api(g, kind, center=1.0, weight=10.0, backend=impl)


def _run(benchmark, fn):
    fn()  # compile / warm up outside the timed region
    fn()
    benchmark(fn)


# --------------------------------------------------------------------------- losses (overhead-bound)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["hinge", "logistic"])
def test_d_loss_fwdbwd(benchmark, impl, kind):
    benchmark.group = f"d_loss/{kind} fwd+bwd {LOGITS}"
    r = torch.randn(LOGITS, requires_grad=True)
    f = torch.randn(LOGITS, requires_grad=True)
    fn = _impl("d_loss", impl)
    _run(benchmark, lambda: torch.autograd.grad(fn(r, f, kind), (r, f)))


@pytest.mark.parametrize("impl", IMPLS)
def test_g_loss_fwdbwd(benchmark, impl):
    benchmark.group = f"g_loss/logistic fwd+bwd {LOGITS}"
    f = torch.randn(LOGITS, requires_grad=True)
    fn = _impl("g_loss", impl)
    _run(benchmark, lambda: torch.autograd.grad(fn(f, "logistic"), (f,)))


# --------------------------------------------------------------------------- bandwidth-bound ops
def _floor(benchmark, group, traffic):
    """A copy moving ``traffic`` bytes in all (half read, half written) into an existing buffer."""
    benchmark.group = group
    x = torch.randn(traffic // 8)
    y = torch.empty_like(x)
    _run(benchmark, lambda: y.copy_(x))


@pytest.mark.parametrize("impl", IMPLS + ["floor"])
def test_interpolate_fwd(benchmark, impl):
    group = f"interpolate fwd {IMAGE}"
    if impl == "floor":
        return _floor(benchmark, group, 3 * _S)
    benchmark.group = group
    real, fake = torch.randn(IMAGE), torch.randn(IMAGE)
    alpha = torch.rand(IMAGE[0])
    fn = _impl("interpolate", impl)
    _run(benchmark, lambda: fn(real, fake, alpha))


@pytest.mark.parametrize("impl", IMPLS)
def test_interpolate_fwdbwd(benchmark, impl):
    benchmark.group = f"interpolate fwd+bwd {IMAGE}"
    real = torch.randn(IMAGE, requires_grad=True)
    fake = torch.randn(IMAGE, requires_grad=True)
    alpha = torch.rand(IMAGE[0])
    go = torch.randn(IMAGE)
    fn = _impl("interpolate", impl)
    _run(benchmark, lambda: torch.autograd.grad(fn(real, fake, alpha), (real, fake), go))


@pytest.mark.parametrize("impl", IMPLS + ["floor"])
@pytest.mark.parametrize("kind", ["wgan-gp", "r1"])
def test_grad_penalty_fwdbwd(benchmark, impl, kind):
    group = f"grad_penalty/{kind} fwd+bwd {IMAGE}"
    if impl == "floor":
        return _floor(benchmark, group, 3 * _S)
    benchmark.group = group
    g = (torch.randn(IMAGE) * 0.05).requires_grad_()
    fn = _impl("grad_penalty", impl)
    if impl in ("eager", "compiled"):
        run = lambda: torch.autograd.grad(fn(g, kind, 1.0, 10.0), (g,))  # noqa: E731
    else:
        run = lambda: torch.autograd.grad(fn(g, kind), (g,))  # noqa: E731
    _run(benchmark, run)


@pytest.mark.parametrize("impl", IMPLS)
def test_grad_penalty_fwd(benchmark, impl):
    benchmark.group = f"grad_penalty/wgan-gp fwd {IMAGE}"
    g = torch.randn(IMAGE) * 0.05
    fn = _impl("grad_penalty", impl)
    if impl in ("eager", "compiled"):
        _run(benchmark, lambda: fn(g, "wgan-gp", 1.0, 10.0))
    else:
        _run(benchmark, lambda: fn(g, "wgan-gp"))


# --------------------------------------------------------------------------- dispatch count
# What autograd's engine dispatches on its own for any backward: the unit upstream gradient.
_BOOKKEEPING = {"aten.ones_like", "aten.empty_like", "aten.fill_", "aten.detach"}


def test_dispatch_count():
    g = torch.randn(8, 3, 16, 16).requires_grad_()
    with DispatchCounter() as c:
        loss = gk.grad_penalty(g, "wgan-gp", weight=10.0, backend="cpu")
        loss.backward()
    ours = {op: n for op, n in c.by_op.items() if op not in _BOOKKEEPING}
    assert sum(ours.values()) <= 3, c.by_op
    with DispatchCounter() as ref:
        loss = reference.grad_penalty(g, "wgan-gp", 1.0, 10.0)
        loss.backward()
    print(f"\nops dispatched per penalty fwd+bwd: cpu {sum(ours.values())} {sorted(ours)} (all: {c.count}); "
          f"eager reference {ref.count}")
