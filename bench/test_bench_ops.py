"""pytest-benchmark suite: every op x implementation x mode, the same cases as ``python -m gan_kernels bench``.

    pytest bench/test_bench_ops.py                                   # CPU, small sizes
    pytest bench/test_bench_ops.py --benchmark-json=before.json      # save a run
    pytest bench/test_bench_ops.py --benchmark-compare=0001          # compare with a saved run
    pytest bench/test_bench_ops.py -k "grad_penalty and fwdbwd" --benchmark-max-time=0.2
    GK_BENCH_SIZES=full pytest bench/test_bench_ops.py               # the bench command's full sweep

Environment: ``GK_BENCH_DEVICE`` (cpu|cuda, default cuda when present), ``GK_BENCH_SIZES``
(small|full), ``GK_BENCH_COMPILE=0`` drops the torch.compile baseline (its first call compiles).

The baselines are :mod:`gan_kernels.reference` itself (via ``cases.reference_fn``) -- the same
functions the correctness tests pin the kernels to -- run eagerly (``eager``) and through
``torch.compile`` (``compiled``); the other implementations are the public API with
``backend=<name>``, and each is checked against the reference before it is timed. Benchmarks are grouped per
(case, mode), so ``--benchmark-group-by=group`` (the default) puts the contenders side by side.
"""

from __future__ import annotations

import functools
import os

import pytest
import torch

from gan_kernels.bench import cases as C

DEVICE = os.environ.get("GK_BENCH_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
FULL = os.environ.get("GK_BENCH_SIZES", "small") == "full"
DTYPES = (torch.float32, torch.bfloat16) if DEVICE == "cuda" and FULL else (torch.float32,)
IMPLS = ["eager"] + (["compiled"] if os.environ.get("GK_BENCH_COMPILE", "1") != "0" else []) + C.backends_for(DEVICE)
CASES = C.cases_for(DEVICE, quick=not FULL, dtypes=DTYPES)

# Every compiled case shares the reference functions' code objects: lift dynamo's recompile limit so
# no size silently falls back to eager, and allow retain_graph in compiled backward (bwd mode).
for _name in ("recompile_limit", "cache_size_limit"):
    if hasattr(torch._dynamo.config, _name):
        setattr(torch._dynamo.config, _name, 1024)
torch._functorch.config.donated_buffer = False


def _sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


@functools.lru_cache(maxsize=None)
def _fn(case: C.Case, impl: str):
    return C.impl_fn(case, impl)


@pytest.fixture(scope="module")
def device():
    if DEVICE == "cuda" and not torch.cuda.is_available():
        pytest.skip("GK_BENCH_DEVICE=cuda but no CUDA device")
    return torch.device(DEVICE)


@pytest.mark.parametrize("mode", C.MODES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_op(benchmark, case, impl, mode, device):
    gen = torch.Generator(device=device).manual_seed(0)
    inp = C.make_inputs(case, device, gen)
    fn = _fn(case, impl)
    try:
        got = fn(inp)  # compile / load outside the timed region
        C.backward(got, inp)
    except Exception as e:
        if impl == "compiled":
            pytest.skip(f"torch.compile failed: {type(e).__name__}: {e}")
        raise
    # A fast wrong answer is no result: check against gan_kernels.reference before timing.
    tol = 1e-3 if case.dtype in (torch.float32, torch.float64) else 2e-2
    torch.testing.assert_close(got.detach().float(), C.reference_fn(case)(inp).detach().float(), rtol=tol, atol=tol)

    if mode == "fwd":
        def run():
            out = fn(inp)
            _sync()
            return out
    elif mode == "bwd":
        out = fn(inp)

        def run():
            r = C.backward(out, inp, retain_graph=True)
            _sync()
            return r
    else:
        def run():
            r = C.backward(fn(inp), inp)
            _sync()
            return r

    benchmark.group = f"{case.id}-{mode}"
    benchmark.extra_info.update(op=case.name, size=case.size, dtype=case.dtype_name, impl=impl, mode=mode,
                                bytes=case.bytes(mode), device=DEVICE)
    result = benchmark(run)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None and stats.stats.median > 0:
        benchmark.extra_info["gbps"] = case.bytes(mode) / stats.stats.median / 1e9
    # The timed call must have produced a gradient (or a loss): a benchmark of nothing is worthless.
    assert result is not None
