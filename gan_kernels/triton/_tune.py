"""Measure the Triton back end's launch configurations on the current GPU.

    python -m gan_kernels.triton._tune            # prints one table per op

The values chosen in ``_utils.py`` (GPU_TILE, GPU_WARPS, GPU_LOSS_BLOCK) come from this table.
Times are medians of triton.testing.do_bench, in microseconds; GB/s counts the bytes each op
must move (reads + writes), against the device's own copy bandwidth (x.clone()).
"""

from __future__ import annotations

import itertools

import torch
import triton.testing

from .. import _kinds
from . import _utils

OPS = torch.ops.gan_kernels_triton


def _bench(fn, reps: int = 20) -> float:
    """GPU time of one call: `reps` calls replayed from a CUDA graph (no host overhead)."""
    fn()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(reps):
            fn()
    return triton.testing.do_bench(graph.replay, warmup=5, rep=40, return_mode="median") * 1e3 / reps


def _eager(fn) -> float:
    """Wall time of one eager call (host overhead included), microseconds."""
    fn()
    return triton.testing.do_bench(fn, warmup=10, rep=40, return_mode="median") * 1e3


def _cases():
    dev = "cuda"
    for shape, dtype in [((64, 3, 256, 256), torch.float32), ((64, 3, 256, 256), torch.bfloat16),
                         ((4096, 2), torch.float32), ((256, 3072), torch.float32)]:
        g = torch.randn(shape, device=dev, dtype=dtype)
        f = torch.randn_like(g)
        a = torch.rand(shape[0], device=dev)
        _, norms = OPS.grad_penalty_forward(g, 0, 1.0, 1.0, 1, 1.0, None)
        one = torch.ones((), device=dev)
        nb = g.numel() * g.element_size()
        yield f"gp_fwd {tuple(shape)} {dtype}", nb, lambda g=g: OPS.grad_penalty_forward(g, 0, 1.0, 10.0, 1, 1.0, None)
        yield f"gp_bwd {tuple(shape)} {dtype}", 2 * nb, lambda g=g, n=norms: OPS.grad_penalty_backward(
            one, g, n, 0, 1.0, 10.0, 1, 1.0, None)
        yield f"interp_fwd {tuple(shape)} {dtype}", 3 * nb, lambda g=g, f=f, a=a: OPS.interpolate_forward(g, f, a)


def _loss_cases():
    dev = "cuda"
    for n in (16, 64 * 30 * 30):
        r = torch.randn(n, device=dev)
        f = torch.randn(n, device=dev)
        for kind in ("logistic", "relativistic"):
            k = _kinds.D_LOSS_KINDS[kind]
            yield f"d_loss {kind} n={n}", 4 * 4 * n, lambda r=r, f=f, k=k: OPS.d_loss_forward(
                r, f, k, 1, 1.0, 0.0, 0.0, 1.0, True)


def main() -> None:
    dev = torch.cuda.get_device_name()
    x = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    copy_gbs = 2 * x.numel() / (_bench(lambda: x.clone()) * 1e-6) / 1e9
    print(f"# {dev}: torch copy bandwidth {copy_gbs:.0f} GB/s (clone of 256 MiB)")
    tiles, warps = (1024, 2048, 4096), (4, 8)
    print("op | eager call (default config) | " + " | ".join(f"tile {t} w{w}" for t, w in itertools.product(tiles, warps)))
    for name, nbytes, fn in _cases():
        cells = [f"eager {_eager(fn):6.1f}us"]
        for t, w in itertools.product(tiles, warps):
            _utils.GPU_TILE, _utils.GPU_WARPS = t, w
            us = _bench(fn)
            cells.append(f"{us:8.1f}us {nbytes / us / 1e3:6.0f}GB/s")
        print(f"{name} | " + " | ".join(cells), flush=True)
    blocks = (1024, 2048, 4096)
    print("op | eager call | " + " | ".join(f"block {b}" for b in blocks))
    for name, nbytes, fn in _loss_cases():
        cells = [f"eager {_eager(fn):6.1f}us"]
        for b in blocks:
            _utils.GPU_LOSS_BLOCK = b
            cells.append(f"{_bench(fn):8.1f}us")
        print(f"{name} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
