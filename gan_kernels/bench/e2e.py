"""End-to-end: one WGAN-GP critic step, the library (each back end) vs the usual hand-written recipe.

A critic step is d_loss("wasserstein") + 10 * gradient penalty + backward + Adam step, on

* ``mlp64``: a 64-wide ReLU MLP critic on the 8-Gaussians toy (batch 256): a small step, where host
  time per op decides;
* ``mlp512``: the WGAN-GP paper's 512-wide MLP critic on the same toy (not with ``--quick``);
* ``conv-small``: a small DCGAN-style conv critic (width 16) on 16x3x32x32 images;
* ``dcgan``: a DCGAN-sized conv critic (width 64; 64x3x64x64 on a GPU, 64x3x32x32 on a CPU; not
  with ``--quick`` on a CPU), where the critic's double backward dominates the step.

The implementations are timed in interleaved rounds, each on its own copy of the same critic.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor, nn

import gan_kernels as gk
from gan_kernels.models import DCGANCritic, MLPCritic, eight_gaussians, procedural_shapes

from .timing import TimerConfig, error_text, time_interleaved, timing_fields

GP_WEIGHT = 10.0


@dataclass
class E2EConfig:
    name: str
    batch: int
    make_critic: Callable[[], nn.Module]
    make_data: Callable[[int, torch.Generator, torch.device], Tensor]
    shape: str


def configs(device: torch.device, quick: bool) -> List[E2EConfig]:
    def images(size):
        return lambda n, g, dev: procedural_shapes(n, size, generator=g).to(dev)

    def points(n, g, dev):
        return eight_gaussians(n, generator=g).to(dev)

    out = [E2EConfig("mlp64", 256, lambda: MLPCritic(2, 64, 3), points, "256x2")]
    if not quick:
        out.append(E2EConfig("mlp512", 256, lambda: MLPCritic(2, 512, 3), points, "256x2"))
    out.append(E2EConfig("conv-small", 16, lambda: DCGANCritic(3, 32, 16), images(32), "16x3x32x32"))
    if device.type == "cuda":
        out.append(E2EConfig("dcgan", 64, lambda: DCGANCritic(3, 64, 64), images(64), "64x3x64x64"))
    elif not quick:
        out.append(E2EConfig("dcgan", 64, lambda: DCGANCritic(3, 32, 64), images(32), "64x3x32x32"))
    return out


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


def run_e2e(device: torch.device, backends: List[str], configs: List[E2EConfig], cfg: TimerConfig,
            progress: Optional[Callable[[str], None]] = None) -> List[Dict]:
    rows = []
    for ec in configs:
        if progress:
            progress(f"step {ec.name}")
        g = torch.Generator().manual_seed(0)
        real = ec.make_data(ec.batch, g, device)
        fake = (ec.make_data(ec.batch, g, device) + 0.3 * torch.randn(real.shape, generator=g).to(device))
        alpha = torch.rand(ec.batch, generator=g).to(device)
        torch.manual_seed(0)
        base_critic = ec.make_critic().to(device)
        steps = {"hand-written": hand_written_step}
        steps.update({b: library_step(b) for b in backends})
        calls, errors, mine = {}, {}, []
        for impl, step in steps.items():
            critic = copy.deepcopy(base_critic)
            opt = make_optimizer(critic)
            row = {"model": ec.name, "input": ec.shape, "impl": impl, "error": None, "first_loss": None}
            try:
                # Same weights, same batch: the first losses must agree between implementations.
                row["first_loss"] = float(step(critic, opt, real, fake, alpha))
                calls[impl] = lambda step=step, critic=critic, opt=opt: step(critic, opt, real, fake, alpha)
            except Exception as e:  # a broken back end is a result to report, not a crash
                errors[impl] = error_text(e)
            mine.append(row)
        timings = time_interleaved(calls, device, cfg, errors)
        base = timings.get("hand-written")
        for row in mine:
            t = timings.get(row["impl"])
            row.update(timing_fields(t), error=errors.get(row["impl"]))
            row["speedup_vs_eager"] = (base.ms / t.ms) if (base and t) else None
            rows.append(row)
    return rows
