"""End-to-end: one WGAN-GP critic step, the library (each back end) vs the usual hand-written recipe.

A critic step is d_loss("wasserstein") + 10 * gradient penalty + backward + Adam step, on

* ``dcgan``: a DCGAN-sized conv critic on images (64x3x64x64 on a GPU; smaller on CPU),
* ``8gaussians``: the WGAN-GP paper's 512-wide ReLU MLP critic on the 8-Gaussians toy (batch 256).

The critic's double backward dominates the DCGAN step, so the speed-up there is the honest answer
to "what does this library buy a training loop"; the toy step is launch-bound, where fusing the ~20
small eager kernels of the penalty shows most.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor, nn

import gan_kernels as gk
from gan_kernels.models import DCGANCritic, MLPCritic, eight_gaussians, procedural_shapes

from .timing import TimerConfig, time_fn

GP_WEIGHT = 10.0


@dataclass
class E2EConfig:
    name: str
    batch: int
    make_critic: Callable[[], nn.Module]
    make_data: Callable[[int, torch.Generator, torch.device], Tensor]
    shape: str


def configs(device: torch.device, quick: bool) -> List[E2EConfig]:
    if device.type == "cuda":
        size, width, batch = 64, 64, 64
    elif quick:
        size, width, batch = 32, 16, 16
    else:
        size, width, batch = 32, 64, 64

    def images(n, g, dev):
        return procedural_shapes(n, size, generator=g).to(dev)

    def points(n, g, dev):
        return eight_gaussians(n, generator=g).to(dev)

    return [
        E2EConfig("dcgan", batch, lambda: DCGANCritic(3, size, width), images, f"{batch}x3x{size}x{size}"),
        E2EConfig("8gaussians", 256, lambda: MLPCritic(2, 512, 3), points, "256x2"),
    ]


def hand_written_step(critic: nn.Module, opt: torch.optim.Optimizer, real: Tensor, fake: Tensor, alpha: Tensor) -> Tensor:
    """The eager WGAN-GP recipe as public GAN code writes it (the baseline)."""
    opt.zero_grad(set_to_none=True)
    a = alpha.view(-1, *([1] * (real.dim() - 1)))
    x_hat = (a * real + (1 - a) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    gp = ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
    loss = critic(fake).mean() - critic(real).mean() + GP_WEIGHT * gp
    loss.backward()
    opt.step()
    return loss.detach()


def library_step(backend: str) -> Callable[..., Tensor]:
    def step(critic: nn.Module, opt: torch.optim.Optimizer, real: Tensor, fake: Tensor, alpha: Tensor) -> Tensor:
        opt.zero_grad(set_to_none=True)
        loss = gk.d_loss(critic(real), critic(fake), "wasserstein", backend=backend)
        loss = loss + gk.gradient_penalty(critic, real, fake, weight=GP_WEIGHT, alpha=alpha, backend=backend)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def make_optimizer(critic: nn.Module) -> torch.optim.Optimizer:
    # The WGAN-GP paper's Adam settings.
    return torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.0, 0.9))


def run_e2e(device: torch.device, backends: List[str], quick: bool, cfg: TimerConfig,
            progress: Optional[Callable[[str], None]] = None) -> List[Dict]:
    rows = []
    for ec in configs(device, quick):
        g = torch.Generator().manual_seed(0)
        real = ec.make_data(ec.batch, g, device)
        fake = (ec.make_data(ec.batch, g, device) + 0.3 * torch.randn(real.shape, generator=g).to(device))
        alpha = torch.rand(ec.batch, generator=g).to(device)
        torch.manual_seed(0)
        base_critic = ec.make_critic().to(device)
        steps = {"hand-written": hand_written_step}
        steps.update({b: library_step(b) for b in backends})
        eager_ms = None
        for impl, step in steps.items():
            if progress:
                progress(f"e2e {ec.name} {impl}")
            critic = copy.deepcopy(base_critic)
            opt = make_optimizer(critic)
            row = {"model": ec.name, "input": ec.shape, "impl": impl, "error": None}
            try:
                # Same weights, same batch: the first losses must agree between implementations.
                row["first_loss"] = float(step(critic, opt, real, fake, alpha))
                t = time_fn(lambda: step(critic, opt, real, fake, alpha), device, cfg)
                row.update(median_ms=t.median_ms, p20_ms=t.p20_ms, p80_ms=t.p80_ms)
            except Exception as e:  # a broken back end is a result to report, not a crash
                row.update(median_ms=None, p20_ms=None, p80_ms=None, error=f"{type(e).__name__}: {e}"[:300])
            if impl == "hand-written":
                eager_ms = row["median_ms"]
            row["speedup_vs_eager"] = (eager_ms / row["median_ms"]) if eager_ms and row["median_ms"] else None
            rows.append(row)
    return rows
