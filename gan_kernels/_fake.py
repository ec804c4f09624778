"""Fake (meta) kernels of the seven custom ops: output metadata only, for torch.compile / opcheck.

Shared by the C++ ops (``torch.ops.gan_kernels``) and the Triton ops (``torch.ops.gan_kernels_triton``),
which have the same schemas. Shapes and layouts follow the real kernels exactly (opcheck compares).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._kinds import D_LOSS_KINDS, G_LOSS_KINDS, REDUCTIONS
from ._layout import empty_batch_major
from .reference import acc_dtype

_NONE = REDUCTIONS["none"]
_D_REL = D_LOSS_KINDS["relativistic"]
_G_REL = G_LOSS_KINDS["relativistic"]


def _loss_out(x: Tensor, reduction: int) -> Tensor:
    shape = x.shape if reduction == _NONE else ()
    return x.new_empty(shape, dtype=acc_dtype(x.dtype))


def _grad_out(x: Tensor, keep: bool, dtype: torch.dtype) -> Tensor:
    """d loss / d x for a unit upstream gradient (contiguous), or an empty tensor when not kept."""
    return x.new_empty(x.shape if keep else (0,), dtype=dtype)


def d_loss_forward(real, fake, kind, reduction, real_label, drift, ls_fake, ls_real, compute_grad):
    torch._check(real.dtype == fake.dtype, lambda: "real and fake must have the same dtype")
    keep = compute_grad and not (kind == _D_REL and reduction == _NONE)
    acc = acc_dtype(real.dtype)
    return _loss_out(real, reduction), _grad_out(real, keep, acc), _grad_out(fake, keep, acc)


def g_loss_forward(fake, real, kind, reduction, ls_target, compute_grad):
    keep = compute_grad and not (kind == _G_REL and reduction == _NONE)
    acc = acc_dtype(fake.dtype)
    g_real = _grad_out(real, keep, acc) if real is not None else fake.new_empty((0,), dtype=acc)
    return _loss_out(fake, reduction), _grad_out(fake, keep, acc), g_real


def loss_backward(grad_out, saved_a, saved_b, dtype_a, dtype_b):
    return torch.empty_like(saved_a, dtype=dtype_a), torch.empty_like(saved_b, dtype=dtype_b)


def interpolate_forward(real, fake, alpha):
    torch._check(real.shape == fake.shape, lambda: "real and fake must have the same shape")
    return empty_batch_major(real)


def interpolate_backward(grad_out, alpha, need_real, need_fake):
    def one(need):
        return empty_batch_major(grad_out) if need else grad_out.new_empty((0,))

    return one(need_real), one(need_fake)


def grad_penalty_forward(grad, kind, center, weight, reduction, inv_scale, inv_scale_tensor):
    acc = acc_dtype(grad.dtype)
    b = grad.shape[0]
    loss = grad.new_empty((b,) if reduction == _NONE else (), dtype=acc)
    return loss, grad.new_empty((b,), dtype=acc)


def grad_penalty_backward(grad_out, grad, norms, kind, center, weight, reduction, inv_scale, inv_scale_tensor):
    return empty_batch_major(grad)


FAKES = {
    "d_loss_forward": d_loss_forward,
    "g_loss_forward": g_loss_forward,
    "loss_backward": loss_backward,
    "interpolate_forward": interpolate_forward,
    "interpolate_backward": interpolate_backward,
    "grad_penalty_forward": grad_penalty_forward,
    "grad_penalty_backward": grad_penalty_backward,
}
