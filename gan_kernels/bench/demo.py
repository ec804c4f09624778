"""``python -m gan_kernels demo``: a few WGAN-GP steps on the 8-Gaussians toy, fastest back end vs reference.

Both runs start from the same weights and see the same batches and the same interpolation weights,
so their losses should agree to rounding. The last line says what the fused ops gained or lost on
the critic step here, and why: at this size a step is a few hundred small ops whose cost is host
time, so fusing the loss and penalty kernels can only save the host work of the ops it replaces.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from typing import Optional

import torch

import gan_kernels as gk
from gan_kernels import _registry
from gan_kernels.models import MLPCritic, MLPGenerator, eight_gaussians

from .cases import backends_for
from .timing import busy_cpu_note, oversubscribed


def fastest_backend(device: str) -> str:
    """The back end backend="auto" prefers on this device, if it is available; else "reference"."""
    avail = backends_for(device)
    prefs = _registry.AUTO_GPU_ORDER["grad_penalty"] if device == "cuda" else ("cpu",)
    for name in prefs:
        if name in avail:
            return name
    return "reference"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument("--iters", type=int, default=6, help="generator iterations (each after n_critic critic steps)")
    p.add_argument("--n-critic", type=int, default=5, help="critic steps per generator step (WGAN-GP: 5)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (torch.set_num_threads)")


class _Run:
    def __init__(self, backend, critic, gen, device):
        self.backend = backend
        self.critic, self.gen = copy.deepcopy(critic), copy.deepcopy(gen)
        self.opt_d = torch.optim.Adam(self.critic.parameters(), lr=1e-4, betas=(0.0, 0.9))
        self.opt_g = torch.optim.Adam(self.gen.parameters(), lr=1e-4, betas=(0.0, 0.9))
        self.device = device
        self.d_times = []

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def critic_step(self, real, z, alpha):
        self._sync()
        t0 = time.perf_counter()
        with torch.no_grad():
            fake = self.gen(z)
        self.opt_d.zero_grad(set_to_none=True)
        loss = gk.d_loss(self.critic(real), self.critic(fake), "wasserstein", backend=self.backend)
        gp = gk.gradient_penalty(self.critic, real, fake, weight=10.0, alpha=alpha, backend=self.backend)
        (loss + gp).backward()
        self.opt_d.step()
        self._sync()
        self.d_times.append(time.perf_counter() - t0)
        return float(loss.detach()), float(gp.detach())

    def gen_step(self, z):
        self.opt_g.zero_grad(set_to_none=True)
        loss = gk.g_loss(self.critic(self.gen(z)), "wasserstein", backend=self.backend)
        loss.backward()
        self.opt_g.step()
        return float(loss.detach())


def main(args: argparse.Namespace) -> int:
    name = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    device = torch.device(name)
    if args.threads:
        torch.set_num_threads(args.threads)
    fast = fastest_backend(name)
    note = busy_cpu_note(device)
    if note:
        print(note, file=sys.stderr)
    print(f"gan_kernels demo on {name}: WGAN-GP on 8 Gaussians, back end {fast!r} vs 'reference' "
          f"(available: {gk.available_backends()})")
    torch.manual_seed(0)
    critic, gen = MLPCritic().to(device), MLPGenerator().to(device)
    runs = [_Run(fast, critic, gen, device), _Run("reference", critic, gen, device)]
    data_gen = torch.Generator().manual_seed(1)
    print(f"{'iter':>4} | {'critic loss ' + fast:>22} {'reference':>12} | {'penalty ' + fast:>18} {'reference':>12}"
          f" | {'G loss ' + fast:>16} {'reference':>12}")
    for it in range(args.iters):
        for _ in range(args.n_critic):
            real = eight_gaussians(args.batch, generator=data_gen).to(device)
            z = torch.randn(args.batch, 2, generator=data_gen).to(device)
            alpha = torch.rand(args.batch, generator=data_gen).to(device)
            d = [r.critic_step(real, z, alpha) for r in runs]
        z = torch.randn(args.batch, 2, generator=data_gen).to(device)
        g = [r.gen_step(z) for r in runs]
        print(f"{it:>4} | {d[0][0]:>22.5f} {d[1][0]:>12.5f} | {d[0][1]:>18.5f} {d[1][1]:>12.5f}"
              f" | {g[0]:>16.5f} {g[1]:>12.5f}")
    medians = []
    for r in runs:
        ts = sorted(r.d_times[1:] or r.d_times)  # the first step pays one-off loading costs
        medians.append(ts[len(ts) // 2])
        print(f"critic step with {r.backend!r}: median {1e3 * medians[-1]:.2f} ms over {len(ts)} steps")
    print(conclusion(fast, medians[0], medians[1], args.batch, len(runs[0].d_times),
                     oversubscribed() if device.type == "cpu" else None))
    return 0


# Differences smaller than this share of the step are within what a few steps can resolve.
SAME_WITHIN = 0.05


def conclusion(backend: str, fused_s: float, reference_s: float, batch: int, steps: int,
               busy: Optional[str] = None) -> str:
    """One honest line: what the fused step gained or lost against the plain-PyTorch formulas, and why."""
    caveat = f" (the machine was busy, {busy}: these times are noisy)" if busy else ""
    if backend == "reference":
        return ("conclusion: no kernel back end is available here (see `python -m gan_kernels info`), so both runs "
                "used the plain-PyTorch formulas" + caveat + ".")
    change = fused_s / reference_s - 1.0  # > 0: the fused step took longer
    if abs(change) < SAME_WITHIN:
        return (f"conclusion: the {backend!r} step took about as long as the reference one ({100 * change:+.0f}% over "
                f"{steps} steps): the loss and penalty are a small part of this step; the critic's forward, double "
                "backward and Adam update dominate it" + caveat + ".")
    if change < 0:
        return (f"conclusion: the {backend!r} step took {100 * -change:.0f}% less time than the reference one: the fused "
                "loss and penalty replace some 30 small PyTorch ops with a few kernels; the critic's own forward, "
                "double backward and Adam update are unchanged" + caveat + ".")
    return (f"conclusion: the {backend!r} step took {100 * change:.0f}% longer than the reference one: at batch "
            f"{batch} of 2-d points the loss and penalty move almost no memory, so fusing them saves little, and "
            "each fused call has a host cost of its own; `python -m gan_kernels bench` shows the sizes where the "
            "fused ops pay off" + caveat + ".")
