"""The baseline: each op written out in plain PyTorch, the way GAN training code writes it.

These are what a user runs without this library, so every "vs eager" ratio of the benchmark is
measured against them (the library's own ``reference`` back end is timed separately, through the
public API). Each formula computes the same value as the matching ``gan_kernels`` call with default
options (``tests/test_bench_cli.py`` checks that); none upcasts or validates anything.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor


# --------------------------------------------------------------------------- discriminator losses
def d_logistic(real: Tensor, fake: Tensor) -> Tensor:
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def d_hinge(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def d_wasserstein(real: Tensor, fake: Tensor) -> Tensor:
    return fake.mean() - real.mean()


def d_least_squares(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake ** 2).mean()


def d_relativistic(real: Tensor, fake: Tensor) -> Tensor:
    return F.softplus(fake.mean() - real).mean() + F.softplus(fake - real.mean()).mean()


def d_rpgan(real: Tensor, fake: Tensor) -> Tensor:
    return F.softplus(fake - real).mean()


# --------------------------------------------------------------------------- generator losses
def g_logistic(fake: Tensor, real: Optional[Tensor] = None) -> Tensor:
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def g_minimax(fake: Tensor, real: Optional[Tensor] = None) -> Tensor:
    return -F.softplus(fake).mean()


def g_linear(fake: Tensor, real: Optional[Tensor] = None) -> Tensor:
    return -fake.mean()


def g_least_squares(fake: Tensor, real: Optional[Tensor] = None) -> Tensor:
    return 0.5 * ((fake - 1) ** 2).mean()


def g_relativistic(fake: Tensor, real: Tensor) -> Tensor:
    return F.softplus(real - fake.mean()).mean() + F.softplus(real.mean() - fake).mean()


def g_rpgan(fake: Tensor, real: Tensor) -> Tensor:
    return F.softplus(real - fake).mean()


# --------------------------------------------------------------------------- interpolation, penalties
def interpolate(real: Tensor, fake: Tensor, alpha: Tensor) -> Tensor:
    a = alpha.view(-1, *([1] * (real.dim() - 1)))
    return a * real + (1 - a) * fake


def wgan_gp(grad: Tensor, weight: float = 1.0) -> Tensor:
    return weight * ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def wgan_lp(grad: Tensor, weight: float = 1.0) -> Tensor:
    return weight * (F.relu(grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def r1(grad: Tensor, weight: float = 1.0) -> Tensor:
    return weight * grad.flatten(1).pow(2).sum(1).mean()


D_LOSS: Dict[str, Callable[..., Tensor]] = {
    "logistic": d_logistic, "hinge": d_hinge, "wasserstein": d_wasserstein,
    "least_squares": d_least_squares, "relativistic": d_relativistic, "rpgan": d_rpgan,
}
G_LOSS: Dict[str, Callable[..., Tensor]] = {
    "logistic": g_logistic, "minimax": g_minimax, "hinge": g_linear, "wasserstein": g_linear,
    "least_squares": g_least_squares, "relativistic": g_relativistic, "rpgan": g_rpgan,
}
PENALTY: Dict[str, Callable[..., Tensor]] = {"wgan-gp": wgan_gp, "wgan-lp": wgan_lp, "r1": r1}
