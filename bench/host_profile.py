"""Where the host time of one small fused call goes, per back end (cProfile of back-to-back calls).

    python bench/host_profile.py [--calls 300] [--top 18]

On a GPU a small op's wall-clock is host time: Python, the dispatcher, autograd and the kernel
launch. The H200 bench measured the Triton back end at 3-4x the cuda back end's wall-clock for
the same kernels (e.g. d_loss B=256 fwd+bwd 604 vs 182 us) while their GPU times are close; this
script shows which functions that time is spent in, for each back end, so the difference can be
attacked where it is. On a GPU the triton back end runs twice: as shipped, and as
"triton:dispatcher", its Functions calling the registered custom ops instead of the direct eager
path (what that path saves; bench/triton_host_overhead.py measures the same without a GPU).
Runs on CPU too (back ends cpu and reference; triton under TRITON_INTERPRET=1 is left out there,
the interpreter's own time would drown the rest).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import time

import torch

import gan_kernels as gk


def _cases(device: torch.device):
    r = torch.randn(256, device=device, requires_grad=True)
    f = torch.randn(256, device=device, requires_grad=True)
    g = (torch.randn(64, 3, 64, 64, device=device) / 110).requires_grad_()

    def d_loss(backend):
        (dr, df) = torch.autograd.grad(gk.d_loss(r, f, "logistic", backend=backend), (r, f))
        return dr

    def penalty(backend):
        (dg,) = torch.autograd.grad(gk.grad_penalty(g, "wgan-gp", weight=10.0, backend=backend), g)
        return dg

    return {"d_loss logistic B=256 fwd+bwd": d_loss, "grad_penalty wgan-gp 64x3x64x64 fwd+bwd": penalty}


@contextlib.contextmanager
def _ops(backend: str):
    """For "triton:dispatcher": the triton back end with its Functions calling the registered
    custom ops (``torch.ops.gan_kernels_triton.*``) instead of the direct eager path, i.e. the
    cost that path saves. Other back ends: nothing changes."""
    if backend != "triton:dispatcher":
        yield backend
        return
    import gan_kernels.triton as gt

    direct = vars(gt.OPS).copy()
    vars(gt.OPS).update(vars(gt.REGISTERED_OPS))
    try:
        yield "triton"
    finally:
        vars(gt.OPS).update(direct)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--top", type=int, default=18)
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backends = ["cuda", "triton", "reference"] if device.type == "cuda" else ["cpu", "reference"]
    backends = [b for b in backends if b in gk.available_backends()]
    if "triton" in backends:  # the Triton back end once more with every op call through the dispatcher
        backends.insert(backends.index("triton") + 1, "triton:dispatcher")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"host profile on {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}, "
          f"torch {torch.__version__}; {args.calls} back-to-back calls per case")
    for name, fn in _cases(device).items():
        for label in backends:
            with _ops(label) as backend:
                per_call, lines = _profile(fn, backend, args.calls, args.top, sync)
            print(f"\n=== {name} -- {label}: {per_call:.1f} us per call (unprofiled)\n" + "\n".join(lines))


def _profile(fn, backend: str, calls: int, top: int, sync):
    """(unprofiled us per call, the profile's top rows) of fn(backend)."""
    for _ in range(20):  # JIT compiles, caches, allocator
        fn(backend)
    sync()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn(backend)
    sync()
    per_call = (time.perf_counter() - t0) / calls * 1e6
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn(backend)
    sync()
    prof.disable()
    rows = sorted(pstats.Stats(prof).stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    lines = [f"{'own us':>8} {'incl us':>8} {'calls':>6}  function (per call of the case)"]
    for (path, line, func), (_, ncalls, tottime, cumtime, _) in rows:
        where = f"{os.path.basename(path)}:{line}({func})" if path != "~" else func
        lines.append(f"{tottime / calls * 1e6:8.2f} {cumtime / calls * 1e6:8.2f} {ncalls / calls:6.1f}  {where}")
    return per_call, lines


if __name__ == "__main__":
    main()
