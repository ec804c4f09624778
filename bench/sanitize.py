"""Call every gan_kernels CUDA op once on small tensors, for compute-sanitizer.

    compute-sanitizer --tool memcheck --error-exitcode 3 python bench/sanitize.py

Covers every loss kind and reduction on the one-block and the multi-block path, each kernel's
vector path and scalar path (misaligned input, D not a multiple of the vector width), a
multi-chunk penalty, and every dtype. Exits 0 when every call ran and the
device synchronised cleanly, 1 otherwise (memcheck's own exit code reports memory errors).
"""

from __future__ import annotations

import sys

import torch


def main() -> int:
    if not torch.cuda.is_available():
        print("sanitize.py: no CUDA device", file=sys.stderr)
        return 1
    import gan_kernels  # noqa: F401  (loads gan_kernels._C)
    from gan_kernels import _cpp, _kinds

    missing = [op for op in _cpp.DEVICE_OPS if not _cpp.has_kernel(op, "CUDA")]
    if missing:
        print(f"sanitize.py: no CUDA kernel for {missing} ({_cpp.LOAD_ERROR or 'built without CUDA'})", file=sys.stderr)
        return 1

    ops = torch.ops.gan_kernels
    dev = "cuda"
    calls = 0
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        # losses: every d kind and g kind, every reduction, one block and (past 8192 logits) the
        # multi-block path
        specs = [_kinds.d_loss_spec(kind, 1.0, 0.01, 0.0, 1.0) for kind in _kinds.D_LOSS_KINDS]
        specs += [_kinds.g_loss_spec(kind, 1.0) for kind in _kinds.G_LOSS_KINDS]
        for shape in ((7, 1, 3, 3), (9001,)):
            r = torch.randn(shape, device=dev, dtype=dtype)
            f = torch.randn(shape, device=dev, dtype=dtype)
            for spec in specs:
                for red in range(3):
                    loss, gr, gf = ops.loss_forward(r if spec.uses_real else None, f, *spec.args(), red, True)
                    calls += 1
                    if gf.numel():
                        go = torch.ones((), device=dev, dtype=acc) if red else torch.ones_like(loss)
                        ops.loss_backward(go, gr, gf, dtype, dtype)
                        calls += 1
        # elementwise ops: aligned (vector path, straddling samples) and offset by one element
        # (scalar path), D = 3 * 17 * 19 = 969
        base = torch.randn(3 * 969 + 1, device=dev, dtype=dtype)
        for x in (base[:-1].view(3, 3, 17, 19), base[1:].view(3, 3, 17, 19)):
            alpha = torch.rand(3, device=dev, dtype=acc)
            ops.interpolate_forward(x, x.flip(0), alpha)
            ops.interpolate_backward(x, alpha, True, True)
            ops.interpolate_backward(x, alpha, False, True)
            calls += 3
        # penalty: one chunk, several chunks (vector path), several chunks (scalar path)
        for g in (
            torch.randn(4, 3, 8, 8, device=dev, dtype=dtype),
            torch.randn(2, 3, 64, 64, device=dev, dtype=dtype),
            torch.randn(2, 3, 101, 67, device=dev, dtype=dtype),
        ):
            ist = torch.tensor(0.5, device=dev)
            for kind in range(3):
                for red in range(3):
                    loss, norms = ops.grad_penalty_forward(g, kind, 1.0, 10.0, red, 1.0, ist)
                    go = torch.ones((), device=dev, dtype=acc) if red else torch.ones(g.shape[0], device=dev, dtype=acc)
                    ops.grad_penalty_backward(go, g, norms, kind, 1.0, 10.0, red, 1.0, ist)
                    calls += 2
    calls += _lists(ops, dev)
    torch.cuda.synchronize()
    print(f"sanitize.py: {calls} op calls ran")
    return 0


def _lists(ops, dev) -> int:
    """The list ops over a long mixed-dtype list (several tables per launch, tails, an empty side)."""
    from gan_kernels import _kinds

    dtypes = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
    sizes = [1, 31, 1024, 9001, 70_000]
    reals = [torch.randn(sizes[i % 5], device=dev, dtype=dtypes[i % 4]) for i in range(203)]
    fakes = [torch.randn(sizes[(i + 2) % 5], device=dev, dtype=dtypes[i % 4]) for i in range(203)]
    calls = 0
    for spec in (_kinds.d_loss_args("least_squares", 1.0, 0.01, 0.0, 1.0), _kinds.d_loss_args("hinge", 1.0, 0.0, 0.0, 1.0)):
        total, terms, gr, gf = ops.loss_list_forward(reals, fakes, *spec, 1, True)
        go = torch.full((), 0.5, device=dev)
        ops.loss_list_backward(go, list(gr) + list(gf), reals + fakes)
        calls += 2
    paired = [torch.randn(sizes[i % 5], device=dev, dtype=dtypes[i % 4]) for i in range(203)]
    ops.loss_list_forward(reals, paired, *_kinds.d_loss_args("rpgan", 1.0, 0.0, 0.0, 1.0), 2, True)
    ops.loss_list_forward([], fakes, *_kinds.g_loss_args("logistic", 1.0), 1, True)
    calls += 2
    maps_r = [torch.randn(2, 3 + i % 7, 5 + 37 * (i % 11), device=dev, dtype=dtypes[i % 4]) for i in range(130)]
    maps_f = [torch.randn_like(m) for m in maps_r]
    weights = [0.5 + i for i in range(130)]
    for red in range(3):
        ops.feature_matching_forward(maps_r, maps_f, weights, red)
        go = torch.ones(130, device=dev) if red == 0 else torch.ones((), device=dev)
        for need in ((True, True), (True, False), (False, True)):
            ops.feature_matching_backward(go, maps_r, maps_f, weights, red, *need)
            calls += 1
        calls += 1
    return calls


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # a launch error or a failed check: report and fail
        print(f"sanitize.py: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
