"""``nn.Module`` forms of the functional API; arguments are validated in ``__init__``."""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from . import _checks, _kinds, _registry
from . import functional as F

__all__ = ["DiscriminatorLoss", "GeneratorLoss", "GradientPenalty", "FeatureMatchingLoss"]


# One set of argument checks for the functional and the module forms.
_number = _checks.number


def _choice(value, accepted, what: str) -> str:
    if not isinstance(value, str) or value not in accepted:
        _checks.bad_choice(value, accepted, what)
    return value


class DiscriminatorLoss(nn.Module):
    """``loss = DiscriminatorLoss("hinge")(real_logits, fake_logits)``; see :func:`gan_kernels.d_loss`.

    Lists of logits (one tensor per discriminator) give the sum of the per-discriminator losses.
    """

    def __init__(
        self,
        kind: str = "logistic",
        *,
        reduction: str = "mean",
        real_label: float = 1.0,
        drift: float = 0.0,
        ls_targets: Sequence[float] = (0.0, 1.0),
        weight: float = 1.0,
        backend: str = "auto",
    ):
        super().__init__()
        self.kind = _choice(kind, tuple(_kinds.D_LOSS_KINDS), "d_loss kind")
        self.reduction = _choice(reduction, tuple(_kinds.REDUCTIONS), "reduction")
        self.real_label = _number(real_label, "real_label")
        self.drift = _number(drift, "drift")
        self.ls_targets = _checks.ls_targets(ls_targets)
        self.weight = _number(weight, "weight")
        self.backend = _registry.check_backend_name(backend)

    def forward(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.d_loss(
            real_logits, fake_logits, self.kind, reduction=self.reduction, real_label=self.real_label,
            drift=self.drift, ls_targets=self.ls_targets, weight=self.weight, backend=self.backend,
        )

    def extra_repr(self) -> str:
        weight = "" if self.weight == 1.0 else f", weight={self.weight!r}"
        return f"kind={self.kind!r}, reduction={self.reduction!r}{weight}, backend={self.backend!r}"


class GeneratorLoss(nn.Module):
    """``loss = GeneratorLoss("logistic")(fake_logits[, real_logits])``; see :func:`gan_kernels.g_loss`.

    Lists of logits (one tensor per discriminator) give the sum of the per-discriminator losses.
    """

    def __init__(self, kind: str = "logistic", *, reduction: str = "mean", ls_target: float = 1.0,
                 weight: float = 1.0, backend: str = "auto"):
        super().__init__()
        self.kind = _choice(kind, tuple(_kinds.G_LOSS_KINDS), "g_loss kind")
        self.reduction = _choice(reduction, tuple(_kinds.REDUCTIONS), "reduction")
        self.ls_target = _number(ls_target, "ls_target")
        self.weight = _number(weight, "weight")
        self.backend = _registry.check_backend_name(backend)

    def forward(self, fake_logits: Tensor, real_logits: Optional[Tensor] = None) -> Tensor:
        return F.g_loss(
            fake_logits, self.kind, real_logits=real_logits, reduction=self.reduction,
            ls_target=self.ls_target, weight=self.weight, backend=self.backend,
        )

    def extra_repr(self) -> str:
        weight = "" if self.weight == 1.0 else f", weight={self.weight!r}"
        return f"kind={self.kind!r}, reduction={self.reduction!r}{weight}, backend={self.backend!r}"


class GradientPenalty(nn.Module):
    """The gradient penalty as a module.

    ``GradientPenalty("wgan-gp", weight=10.0)(critic, real, fake)`` runs the whole recipe
    (:func:`gan_kernels.gradient_penalty`); ``GradientPenalty(...)(grad)`` penalises a gradient the
    caller already has (:func:`gan_kernels.grad_penalty`, with the same weight and center).
    """

    def __init__(self, kind: str = "wgan-gp", *, weight: float = 10.0, center: float = 1.0, backend: str = "auto"):
        super().__init__()
        self.kind = _choice(kind, tuple(_kinds.PENALTY_KINDS), "grad_penalty kind")
        self.weight = _number(weight, "weight")
        self.center = _number(center, "center")
        self.backend = _registry.check_backend_name(backend)

    def forward(
        self,
        critic_or_grad: Union[Callable[[Tensor], Tensor], Tensor],
        real: Optional[Tensor] = None,
        fake: Optional[Tensor] = None,
        *,
        alpha=None,
        generator: Optional[torch.Generator] = None,
        scaler=None,
    ) -> Tensor:
        if isinstance(critic_or_grad, Tensor):
            if real is not None or fake is not None:
                raise ValueError("GradientPenalty(grad) takes a gradient alone; pass (critic, real, fake) for the full recipe")
            return F.grad_penalty(critic_or_grad, self.kind, center=self.center, weight=self.weight, backend=self.backend)
        if real is None:
            raise ValueError("GradientPenalty(critic, real, fake): real samples are required")
        return F.gradient_penalty(
            critic_or_grad, real, fake, self.kind, weight=self.weight, center=self.center, alpha=alpha,
            generator=generator, scaler=scaler, backend=self.backend,
        )

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, weight={self.weight}, center={self.center}, backend={self.backend!r}"


class FeatureMatchingLoss(nn.Module):
    """``loss = FeatureMatchingLoss(weight=2.0)(real_feats, fake_feats)``; see
    :func:`gan_kernels.feature_matching_loss` (lists, or lists of lists, of feature maps)."""

    def __init__(self, *, weight: Union[float, Sequence[float]] = 1.0, reduction: str = "mean", backend: str = "auto"):
        super().__init__()
        if isinstance(weight, (list, tuple)):
            self.weight = tuple(_number(w, f"weight[{i}]") for i, w in enumerate(weight))
        else:
            self.weight = _number(weight, "weight")
        self.reduction = _choice(reduction, tuple(_kinds.REDUCTIONS), "reduction")
        self.backend = _registry.check_backend_name(backend)

    def forward(self, real_feats, fake_feats) -> Tensor:
        return F.feature_matching_loss(real_feats, fake_feats, weight=self.weight, reduction=self.reduction,
                                       backend=self.backend)

    def extra_repr(self) -> str:
        return f"weight={self.weight!r}, reduction={self.reduction!r}, backend={self.backend!r}"
