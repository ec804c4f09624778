"""Fake (meta) kernels of the device ops and the public ops: output metadata only.

Used by torch.compile, fake tensors and opcheck. Shared by the C++ ops (``torch.ops.gan_kernels``)
and the Triton ops (``torch.ops.gan_kernels_triton``), which have the same schemas. Shapes and
layouts follow the real kernels exactly (opcheck compares); each checks the devices, as the real
kernels do, so a traced call with mixed devices fails like an eager one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._kinds import MODE_PAIRED, MODE_RELATIVISTIC, MODE_SEPARATE, REDUCTIONS, TERM_NONE
from ._layout import empty_batch_major
from .reference import acc_dtype

_NONE = REDUCTIONS["none"]


def _same_device(op: str, first: Tensor, *others) -> None:
    for t in others:
        if t is not None:
            torch._check(t.device == first.device, lambda: f"gan_kernels::{op}: inputs on {first.device} and {t.device}")


def _grad_out(x: Tensor, keep: bool, dtype: torch.dtype) -> Tensor:
    """d loss / d x for a unit upstream gradient (contiguous), or an empty tensor when not kept."""
    return x.new_empty(x.shape if keep else (0,), dtype=dtype)


def loss_forward(real, fake, mode, real_term, real_target, real_coef, fake_term, fake_target, fake_coef, drift,
                 reduction, compute_grad):
    uses_real = mode != MODE_SEPARATE or real_term != TERM_NONE
    real = real if uses_real else None
    _same_device("loss_forward", fake, real)
    if real is not None:
        torch._check(real.dtype == fake.dtype, lambda: "real and fake must have the same dtype")
    keep = compute_grad and not (mode == MODE_RELATIVISTIC and reduction == _NONE)
    acc = acc_dtype(fake.dtype)
    loss = fake.new_empty(fake.shape if reduction == _NONE else (), dtype=acc)
    g_real = _grad_out(real, keep, acc) if real is not None else fake.new_empty((0,), dtype=acc)
    return loss, g_real, _grad_out(fake, keep, acc)


def loss_backward(grad_out, saved_a, saved_b, dtype_a, dtype_b):
    _same_device("loss_backward", grad_out, saved_a, saved_b)
    return torch.empty_like(saved_a, dtype=dtype_a), torch.empty_like(saved_b, dtype=dtype_b)


def interpolate_forward(real, fake, alpha):
    _same_device("interpolate_forward", real, fake, alpha)
    torch._check(real.shape == fake.shape, lambda: "real and fake must have the same shape")
    return empty_batch_major(real)


def interpolate_backward(grad_out, alpha, need_real, need_fake):
    _same_device("interpolate_backward", grad_out, alpha)

    def one(need):
        return empty_batch_major(grad_out) if need else grad_out.new_empty((0,))

    return one(need_real), one(need_fake)


def grad_penalty_forward(grad, kind, center, weight, reduction, inv_scale, inv_scale_tensor):
    _same_device("grad_penalty_forward", grad, inv_scale_tensor)
    acc = acc_dtype(grad.dtype)
    b = grad.shape[0]
    loss = grad.new_empty((b,) if reduction == _NONE else (), dtype=acc)
    return loss, grad.new_empty((b,), dtype=acc)


def grad_penalty_backward(grad_out, grad, norms, kind, center, weight, reduction, inv_scale, inv_scale_tensor):
    _same_device("grad_penalty_backward", grad, grad_out, norms, inv_scale_tensor)
    return empty_batch_major(grad)


# The device ops, by name (the Triton back end registers these schemas too).
FAKES = {
    "loss_forward": loss_forward,
    "loss_backward": loss_backward,
    "interpolate_forward": interpolate_forward,
    "interpolate_backward": interpolate_backward,
    "grad_penalty_forward": grad_penalty_forward,
    "grad_penalty_backward": grad_penalty_backward,
}


# The public differentiable ops (C++ only).
def loss(real, fake, mode, real_term, real_target, real_coef, fake_term, fake_target, fake_coef, drift, reduction):
    uses_real = mode != MODE_SEPARATE or real_term != TERM_NONE
    if uses_real and real is not None and real.dtype != fake.dtype:
        dtype = torch.promote_types(real.dtype, fake.dtype)
        real, fake = real.to(dtype), fake.to(dtype)
    return loss_forward(real, fake, mode, real_term, real_target, real_coef, fake_term, fake_target, fake_coef,
                        drift, reduction, False)[0]


def interpolate(real, fake, alpha):
    dtype = torch.promote_types(real.dtype, fake.dtype)
    return interpolate_forward(real.to(dtype), fake.to(dtype), alpha)


def grad_penalty(grad, kind, center, weight, reduction, inv_scale, inv_scale_tensor):
    return grad_penalty_forward(grad, kind, center, weight, reduction, inv_scale, inv_scale_tensor)[0]


PUBLIC_FAKES = {"loss": loss, "interpolate": interpolate, "grad_penalty": grad_penalty}
