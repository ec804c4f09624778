"""Pure-PyTorch reference of every gan_kernels op: the correctness oracle and the fallback.

Each function states its formula (docs/contract.md) in plain differentiable PyTorch, so autograd gives
its first and second derivatives. Arguments are already validated and normalised by
:mod:`gan_kernels.functional` (kind and reduction are strings, alpha is a (B,) tensor).

Numerics, shared with the kernels:
* half inputs are upcast to float32 before any arithmetic; float64 stays float64;
* ``softplus(x) = max(x, 0) + log1p(exp(-|x|))``, never ``log(sigmoid)``;
* the gradient norm is accumulated in float32, and its derivative is defined as 0 at a zero
  norm (``sqrt`` alone would give 0 * inf = NaN).
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation (and loss) dtype for an input dtype."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _up(x: Tensor) -> Tensor:
    return x.to(acc_dtype(x.dtype))


def softplus(x: Tensor) -> Tensor:
    """log(1 + e^x), evaluated as max(x, 0) + log1p(e^{-|x|}) by ``logaddexp(x, 0)``.

    Spelling that out with ``clamp_min`` and ``abs`` gives the right value but autograd's
    subgradient 1 at x = 0 instead of sigmoid(0) = 1/2; ``logaddexp`` differentiates correctly
    everywhere (ties r == f are common in float16 for rpgan).
    """
    return torch.logaddexp(x, torch.zeros((), dtype=x.dtype, device=x.device))


def bce_with_logits(x: Tensor, target: float) -> Tensor:
    """BCE(x, t) = max(x, 0) - x t + log1p(e^{-|x|}) = softplus(x) - x t.

    For the usual targets, t = 1 is softplus(-x) and t = 0 softplus(x): softplus(x) - x would
    cancel to 0 once e^{-x} is below half an ulp of x (x > ~17 in float32), where the true
    value is e^{-x}. Between 0 and 1 the difference loses at most a few ulps.
    """
    if target == 1.0:
        return softplus(-x)
    if target == 0.0:
        return softplus(x)
    return softplus(x) - x * target


def _reduce(x: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    return x


def _combine(real_term: Optional[Tensor], fake_term: Optional[Tensor], reduction: str) -> Tensor:
    """Reduce each term on its own, then add (for "none", add elementwise)."""
    parts = [_reduce(t, reduction) for t in (real_term, fake_term) if t is not None]
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    return out


def _weighted(loss: Tensor, weight: float) -> Tensor:
    return loss if weight == 1.0 else weight * loss


def d_loss(
    real: Tensor,
    fake: Tensor,
    kind: str = "logistic",
    reduction: str = "mean",
    real_label: float = 1.0,
    drift: float = 0.0,
    ls_targets: tuple = (0.0, 1.0),
    weight: float = 1.0,
) -> Tensor:
    r, f = _up(real), _up(fake)
    if kind == "logistic":
        real_term, fake_term = bce_with_logits(r, real_label), softplus(f)
    elif kind == "hinge":
        real_term, fake_term = torch.relu(1 - r), torch.relu(1 + f)
    elif kind == "wasserstein":
        real_term, fake_term = -r, f
    elif kind == "least_squares":
        a, b = ls_targets
        real_term, fake_term = 0.5 * (r - b) ** 2, 0.5 * (f - a) ** 2
    elif kind == "relativistic":
        real_term = softplus(-(r - f.mean()))
        fake_term = softplus(f - r.mean())
    elif kind == "rpgan":
        real_term, fake_term = softplus(f - r), None
    else:
        raise ValueError(f"unknown d_loss kind {kind!r}")
    if drift != 0.0:
        real_term = real_term + drift * r * r
    return _weighted(_combine(real_term, fake_term, reduction), weight)


def g_loss(
    fake: Tensor,
    kind: str = "logistic",
    real: Optional[Tensor] = None,
    reduction: str = "mean",
    ls_target: float = 1.0,
    weight: float = 1.0,
) -> Tensor:
    return _weighted(_g_loss(fake, kind, real, reduction, ls_target), weight)


def _g_loss(fake: Tensor, kind: str, real: Optional[Tensor], reduction: str, ls_target: float) -> Tensor:
    f = _up(fake)
    r = _up(real) if real is not None else None
    if kind == "logistic":
        return _reduce(softplus(-f), reduction)
    if kind == "minimax":
        return _reduce(-softplus(f), reduction)
    if kind in ("hinge", "wasserstein"):
        return _reduce(-f, reduction)
    if kind == "least_squares":
        return _reduce(0.5 * (f - ls_target) ** 2, reduction)
    if kind == "relativistic":
        return _combine(softplus(r - f.mean()), softplus(-(f - r.mean())), reduction)
    if kind == "rpgan":
        return _reduce(softplus(r - f), reduction)
    raise ValueError(f"unknown g_loss kind {kind!r}")


def interpolate(real: Tensor, fake: Tensor, alpha: Tensor) -> Tensor:
    """x_hat_i = alpha_i real_i + (1 - alpha_i) fake_i, computed in the accumulation dtype."""
    a = alpha.to(acc_dtype(real.dtype)).reshape((-1,) + (1,) * (real.dim() - 1))
    out = a * _up(real) + (1 - a) * _up(fake)
    return out.to(real.dtype)


def _sum_sq(grad: Tensor, inv_scale: Union[None, float, Tensor]) -> Tensor:
    """Per-sample sum of squares of (inv_scale * grad), in the accumulation dtype.

    Reduces over the non-batch dims in place, without flattening: a reshape would copy a
    channels_last gradient and hand its derivative back in the default layout.
    """
    g = _up(grad)
    if inv_scale is not None:
        g = g * inv_scale
    sq = g * g
    return sq.sum(dim=tuple(range(1, sq.dim()))) if sq.dim() > 1 else sq  # sum(dim=()) would sum all


def grad_norm(grad: Tensor, inv_scale: Union[None, float, Tensor] = None) -> Tensor:
    """Per-sample L2 norm over all non-batch dims, in float32, with d norm = 0 at norm 0."""
    sq = _sum_sq(grad, inv_scale)
    nonzero = sq != 0  # NaN stays NaN; only an exact zero gets the defined zero gradient
    safe = torch.where(nonzero, sq, torch.ones_like(sq))
    return torch.where(nonzero, safe.sqrt(), torch.zeros_like(sq))


def grad_penalty(
    grad: Tensor,
    kind: str = "wgan-gp",
    center: float = 1.0,
    weight: float = 1.0,
    reduction: str = "mean",
    inv_scale: Union[None, float, Tensor] = None,
) -> Tensor:
    if kind == "r1":
        p = _sum_sq(grad, inv_scale)
    else:
        n = grad_norm(grad, inv_scale)
        if kind == "wgan-gp":
            p = (n - center) ** 2
        elif kind == "wgan-lp":
            p = torch.relu(n - center) ** 2
        else:
            raise ValueError(f"unknown grad_penalty kind {kind!r}")
    return weight * _reduce(p, reduction)


# --------------------------------------------------------------------------- lists of tensors
# Multi-discriminator training: the loss of a list is the sum over discriminators of the
# per-tensor loss, added in list order.
def _sum_in_order(terms):
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def d_loss_list(reals, fakes, kind="logistic", reduction="mean", real_label=1.0, drift=0.0, ls_targets=(0.0, 1.0),
                weight=1.0):
    return _sum_in_order([d_loss(r, f, kind, reduction, real_label, drift, ls_targets, weight)
                          for r, f in zip(reals, fakes)])


def g_loss_list(fakes, kind="logistic", reals=None, reduction="mean", ls_target=1.0, weight=1.0):
    reals = [None] * len(fakes) if reals is None else reals
    return _sum_in_order([g_loss(f, kind, r, reduction, ls_target, weight) for f, r in zip(fakes, reals)])


def feature_matching_term(real: Tensor, fake: Tensor, weight: float = 1.0, reduction: str = "mean") -> Tensor:
    """weight * mean|real - fake| (sum instead of mean for reduction "sum")."""
    d = torch.abs(_up(real) - _up(fake))
    return weight * (d.sum() if reduction == "sum" else d.mean())


def feature_matching_loss(reals, fakes, weights, reduction: str = "mean") -> Tensor:
    """sum_k w_k * mean|r_k - f_k| over the pairs of two flat lists; "none" gives the (K,) terms."""
    terms = [feature_matching_term(r, f, w, reduction) for r, f, w in zip(reals, fakes, weights)]
    if reduction == "none":
        dtype = torch.float64 if any(t.dtype == torch.float64 for t in terms) else torch.float32
        return torch.stack([t.to(dtype) for t in terms])
    return _sum_in_order(terms)
