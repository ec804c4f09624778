"""Fake (meta) kernels of the device ops and the public ops: output metadata only.

Used by torch.compile, fake tensors and opcheck. Shared by the C++ ops (``torch.ops.gan_kernels``)
and the Triton ops (``torch.ops.gan_kernels_triton``), which have the same schemas. Shapes and
layouts follow the real kernels exactly (opcheck compares); each checks the devices, as the real
kernels do, so a traced call with mixed devices fails like an eager one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._kinds import MODE_RELATIVISTIC, MODE_SEPARATE, REDUCTIONS, TERM_NONE
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


def _list_acc(tensors) -> torch.dtype:
    """float64 when any tensor of the list is float64, else float32 (the list ops' loss dtype)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def loss_list_forward(real, fake, mode, real_term, real_target, real_coef, fake_term, fake_target, fake_coef, drift,
                      reduction, compute_grad):
    torch._check(len(fake) > 0, lambda: "gan_kernels::loss_list_forward: the list of logits is empty")
    torch._check(reduction != _NONE, lambda: "gan_kernels::loss_list_forward: lists take reduction 'mean' or 'sum'")
    uses_real = mode != MODE_SEPARATE or real_term != TERM_NONE
    reals = list(real) if uses_real else []
    if uses_real:
        torch._check(len(reals) == len(fake), lambda: "gan_kernels::loss_list_forward: one real tensor per fake one")
    for i, f in enumerate(fake):
        _same_device("loss_list_forward", fake[0], f, reals[i] if reals else None)
        if reals:
            torch._check(reals[i].dtype == f.dtype, lambda: "real and fake must have the same dtype")
    out = _list_acc(fake)
    total = fake[0].new_empty((), dtype=out)
    terms = fake[0].new_empty((len(fake),), dtype=out)
    g_real = [r.new_empty(r.shape, dtype=acc_dtype(r.dtype)) for r in reals] if compute_grad else []
    g_fake = [f.new_empty(f.shape, dtype=acc_dtype(f.dtype)) for f in fake] if compute_grad else []
    return total, terms, g_real, g_fake


def loss_list_backward(grad_out, saved, like):
    torch._check(len(saved) == len(like), lambda: "gan_kernels::loss_list_backward: one dtype source per saved gradient")
    _same_device("loss_list_backward", grad_out, *saved)
    return [s.new_empty(s.shape, dtype=x.dtype) for s, x in zip(saved, like)]


def feature_matching_forward(real, fake, weights, reduction):
    torch._check(len(fake) > 0 and len(real) == len(fake) and len(weights) == len(fake),
                 lambda: "gan_kernels::feature_matching_forward: one real, one fake and one weight per pair")
    for r, f in zip(real, fake):
        _same_device("feature_matching_forward", fake[0], r, f)
        torch._check(r.shape == f.shape, lambda: "gan_kernels::feature_matching_forward: pair shapes differ")
    out = _list_acc(fake)
    return fake[0].new_empty((len(fake),) if reduction == _NONE else (), dtype=out)


def feature_matching_backward(grad, real, fake, weights, reduction, need_real, need_fake):
    _same_device("feature_matching_backward", grad, *real, *fake)
    return ([empty_batch_major(r) for r in real] if need_real else [],
            [empty_batch_major(f) for f in fake] if need_fake else [])


# The device ops, by name (the Triton back end registers these schemas too).
FAKES = {
    "loss_forward": loss_forward,
    "loss_backward": loss_backward,
    "interpolate_forward": interpolate_forward,
    "interpolate_backward": interpolate_backward,
    "grad_penalty_forward": grad_penalty_forward,
    "grad_penalty_backward": grad_penalty_backward,
}

# The device ops over lists of tensors (multi-discriminator training), C++ only.
LIST_FAKES = {
    "loss_list_forward": loss_list_forward,
    "loss_list_backward": loss_list_backward,
    "feature_matching_forward": feature_matching_forward,
    "feature_matching_backward": feature_matching_backward,
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


def loss_list(real, fake, mode, real_term, real_target, real_coef, fake_term, fake_target, fake_coef, drift,
              reduction):
    uses_real = mode != MODE_SEPARATE or real_term != TERM_NONE
    reals, fakes = (list(real) if uses_real else []), list(fake)
    for i in range(len(reals) if len(reals) == len(fakes) else 0):
        if reals[i].dtype != fakes[i].dtype:
            dtype = torch.promote_types(reals[i].dtype, fakes[i].dtype)
            reals[i], fakes[i] = reals[i].to(dtype), fakes[i].to(dtype)
    total, terms, _, _ = loss_list_forward(reals, fakes, mode, real_term, real_target, real_coef, fake_term,
                                           fake_target, fake_coef, drift, reduction, False)
    return total, terms


def feature_matching(real, fake, weights, reduction):
    reals, fakes = list(real), list(fake)
    for k in range(min(len(reals), len(fakes))):
        if reals[k].dtype != fakes[k].dtype:
            dtype = torch.promote_types(reals[k].dtype, fakes[k].dtype)
            reals[k], fakes[k] = reals[k].to(dtype), fakes[k].to(dtype)
    return feature_matching_forward(reals, fakes, weights, reduction)


PUBLIC_FAKES = {"loss": loss, "interpolate": interpolate, "grad_penalty": grad_penalty}
LIST_PUBLIC_FAKES = {"loss_list": loss_list, "feature_matching": feature_matching}
