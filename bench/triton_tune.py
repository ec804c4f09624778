"""Measure the Triton back end's launch configurations on the current GPU.

    python bench/triton_tune.py                  # prints one table per op
    python bench/triton_tune.py --only losses    # just the loss tables (bench/gpu_check.sh)

A development tool (it changes the launch constants of ``gan_kernels.triton._utils`` while it runs),
not part of the installed package. The values chosen in ``_utils.py`` (GPU_TILE, GPU_WARPS, GPU_LOSS_BLOCK) come from this table; the
loss grid path's (LOSS_GRID_TILE, LOSS_GRID_WARPS, LOSS_ONE_PROGRAM_MAX) are estimates that its last
two tables measure.
Times are medians of triton.testing.do_bench, in microseconds; GB/s counts the bytes each op
must move (reads + writes), against the device's own copy bandwidth (x.clone()).
"""

from __future__ import annotations

import itertools

import torch
import triton.testing

from gan_kernels import _kinds
from gan_kernels.triton import _utils

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
    for n in (16, 256, 8192):  # the one-program path's range (the grid path takes over past 8192)
        r = torch.randn(n, device=dev)
        f = torch.randn(n, device=dev)
        for kind in ("logistic", "relativistic"):
            spec = _kinds.d_loss_args(kind, 1.0, 0.0, 0.0, 1.0)
            yield f"d_loss {kind} n={n}", 4 * 4 * n, lambda r=r, f=f, spec=spec: OPS.loss_forward(r, f, *spec, 1, True)


def _loss_grid_cases():
    dev = "cuda"
    for n in (57_600, 262_144, 4_194_304):  # 64x1x30x30, 64x1x64x64, 64x1x256x256 PatchGAN maps
        r = torch.randn(n, device=dev)
        f = torch.randn(n, device=dev)
        for kind in ("hinge", "logistic", "relativistic"):
            spec = _kinds.d_loss_args(kind, 1.0, 0.0, 0.0, 1.0)
            # reads r, f; writes both gradients (fp32): 16 bytes per logit pair
            yield f"d_loss {kind} n={n}", 16 * n, lambda r=r, f=f, spec=spec: OPS.loss_forward(r, f, *spec, 1, True)


def _loss_crossover():
    """One program vs the grid path around the switch-over size."""
    print("d_loss logistic forward: one program vs grid (us) | n = " + " ".join(str(n) for n in (2048, 4096, 8192, 16384, 32768)))
    saved = _utils.LOSS_ONE_PROGRAM_MAX
    logistic = _kinds.d_loss_args("logistic", 1.0, 0.0, 0.0, 1.0)
    rows = {}
    for label, limit in (("one program", 1 << 40), ("grid", 0)):
        _utils.LOSS_ONE_PROGRAM_MAX = limit
        cells = []
        for n in (2048, 4096, 8192, 16384, 32768):
            r, f = torch.randn(n, device="cuda"), torch.randn(n, device="cuda")
            cells.append(f"{_bench(lambda r=r, f=f: OPS.loss_forward(r, f, *logistic, 1, True)):7.1f}")
        rows[label] = cells
    _utils.LOSS_ONE_PROGRAM_MAX = saved
    for label, cells in rows.items():
        print(f"{label} | " + " | ".join(cells), flush=True)


def main(argv=None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="Triton launch configurations, measured on this GPU")
    p.add_argument("--only", choices=("all", "elementwise", "losses"), default="all")
    args = p.parse_args(argv)
    dev = torch.cuda.get_device_name()
    x = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    copy_gbs = 2 * x.numel() / (_bench(lambda: x.clone()) * 1e-6) / 1e9
    print(f"# {dev}: torch copy bandwidth {copy_gbs:.0f} GB/s (clone of 256 MiB)")
    if args.only != "losses":
        _elementwise_tables()
    if args.only != "elementwise":
        _loss_tables()


def _elementwise_tables() -> None:
    saved = _utils.GPU_TILE, _utils.GPU_WARPS
    tiles, warps = (1024, 2048, 4096), (4, 8)
    print("op | eager call (default config) | " + " | ".join(f"tile {t} w{w}" for t, w in itertools.product(tiles, warps)))
    for name, nbytes, fn in _cases():
        cells = [f"eager {_eager(fn):6.1f}us"]
        for t, w in itertools.product(tiles, warps):
            _utils.GPU_TILE, _utils.GPU_WARPS = t, w
            us = _bench(fn)
            cells.append(f"{us:8.1f}us {nbytes / us / 1e3:6.0f}GB/s")
        print(f"{name} | " + " | ".join(cells), flush=True)
    _utils.GPU_TILE, _utils.GPU_WARPS = saved


def _loss_tables() -> None:
    saved = _utils.GPU_LOSS_BLOCK, _utils.LOSS_GRID_TILE, _utils.LOSS_GRID_WARPS
    blocks = (1024, 2048, 4096)
    print("op | eager call | " + " | ".join(f"block {b}" for b in blocks))
    for name, nbytes, fn in _loss_cases():
        cells = [f"eager {_eager(fn):6.1f}us"]
        for b in blocks:
            _utils.GPU_LOSS_BLOCK = b
            cells.append(f"{_bench(fn):8.1f}us")
        print(f"{name} | " + " | ".join(cells), flush=True)
    _utils.GPU_LOSS_BLOCK = saved[0]
    grid = list(itertools.product((512, 1024, 2048), (4, 8)))
    print("op (grid path) | " + " | ".join(f"tile {t} w{w}" for t, w in grid))
    for name, nbytes, fn in _loss_grid_cases():
        cells = []
        for t, w in grid:
            _utils.LOSS_GRID_TILE, _utils.LOSS_GRID_WARPS = t, w
            us = _bench(fn)
            cells.append(f"{us:8.1f}us {nbytes / us / 1e3:6.0f}GB/s")
        print(f"{name} | " + " | ".join(cells), flush=True)
    _utils.LOSS_GRID_TILE, _utils.LOSS_GRID_WARPS = saved[1:]
    _loss_crossover()


if __name__ == "__main__":
    main()
