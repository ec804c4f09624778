"""Where the host time of one small fused call goes, per back end (cProfile of back-to-back calls).

    python bench/host_profile.py [--calls 300] [--top 18]

On a GPU a small op's wall-clock is host time: Python, the dispatcher, autograd and the kernel
launch. The H200 bench measured the Triton back end at 3-4x the cuda back end's wall-clock for
the same kernels (e.g. d_loss B=256 fwd+bwd 604 vs 182 us) while their GPU times are close; this
script shows which functions that time is spent in, for each back end, so the difference can be
attacked where it is. Runs on CPU too (back ends cpu and reference; triton under TRITON_INTERPRET=1
is left out there, the interpreter's own time would drown the rest).
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--top", type=int, default=18)
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backends = ["cuda", "triton", "reference"] if device.type == "cuda" else ["cpu", "reference"]
    backends = [b for b in backends if b in gk.available_backends()]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"host profile on {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}, "
          f"torch {torch.__version__}; {args.calls} back-to-back calls per case")
    for name, fn in _cases(device).items():
        for backend in backends:
            for _ in range(20):  # JIT compiles, caches, allocator
                fn(backend)
            sync()
            t0 = time.perf_counter()
            for _ in range(args.calls):
                fn(backend)
            sync()
            per_call = (time.perf_counter() - t0) / args.calls * 1e6
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(args.calls):
                fn(backend)
            sync()
            prof.disable()
            stats = pstats.Stats(prof)
            rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[: args.top]
            lines = [f"{'own us':>8} {'incl us':>8} {'calls':>6}  function (per call of the case)"]
            for (path, line, func), (_, ncalls, tottime, cumtime, _) in rows:
                where = f"{os.path.basename(path)}:{line}({func})" if path != "~" else func
                lines.append(f"{tottime / args.calls * 1e6:8.2f} {cumtime / args.calls * 1e6:8.2f} "
                             f"{ncalls / args.calls:6.1f}  {where}")
            print(f"\n=== {name} -- {backend}: {per_call:.1f} us per call (unprofiled)\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
