"""The differentiable ops: ``torch.autograd.Function`` classes over a back end's custom ops.

Every kernel back end provides the same seven custom ops (schemas in ``csrc/gan_kernels.cpp``):
``d_loss_forward``, ``g_loss_forward``, ``loss_backward``, ``interpolate_forward``,
``interpolate_backward``, ``grad_penalty_forward``, ``grad_penalty_backward``. :func:`make_functions`
binds one set of them to four Function classes, one per fused op; the cpu/cuda back end and the
Triton back end each get their own classes, created before ``.apply`` so autograd records the
node of the back end that actually ran.

First-order backward runs the back end's kernels. Second order (``create_graph=True``, i.e. grad
mode is on inside ``backward``) differentiates the reference formula instead, evaluated on the
saved inputs so the graph reaches back to them: the gradient of a gradient is rare and small
next to the penalty's first backward, and the reference is its oracle anyway.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from . import _kinds, reference


def _reference_vjp(fn: Callable[..., Tensor], inputs: Sequence[Optional[Tensor]], needs: Sequence[bool], grad_out: Tensor):
    """Vector-Jacobian product of ``fn(*inputs)`` through the reference, differentiable itself."""
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        ins = []
        for x, need in zip(inputs, needs):
            if x is not None and need and not x.requires_grad:
                x = x.detach().requires_grad_()
            ins.append(x)
        out = fn(*ins)
        wrt = [x for x, need in zip(ins, needs) if need]
        grads = torch.autograd.grad(out, wrt, grad_out, create_graph=create_graph, allow_unused=True)
    it = iter(grads)
    res = []
    for x, need in zip(ins, needs):
        if not need:
            res.append(None)
            continue
        g = next(it)
        res.append(torch.zeros_like(x) if g is None else g)
    return res


def make_functions(ops: SimpleNamespace, name: str) -> SimpleNamespace:
    """Autograd Functions bound to one back end's custom ops (``ops.<op name>`` callables)."""

    class DLoss(torch.autograd.Function):
        @staticmethod
        def forward(ctx, real, fake, kind, reduction, real_label, drift, ls_fake, ls_real, compute_grad):
            loss, g_real, g_fake = ops.d_loss_forward(
                real, fake, _kinds.D_LOSS_KINDS[kind], _kinds.REDUCTIONS[reduction],
                real_label, drift, ls_fake, ls_real, compute_grad,
            )
            ctx.args = (kind, reduction, real_label, drift, (ls_fake, ls_real))
            ctx.save_for_backward(real, fake, g_real, g_fake)
            return loss

        @staticmethod
        def backward(ctx, grad_out):
            real, fake, g_real, g_fake = ctx.saved_tensors
            kind, reduction, real_label, drift, ls = ctx.args
            needs = ctx.needs_input_grad[:2]
            if torch.is_grad_enabled() or g_real.numel() == 0:
                fn = lambda r, f: reference.d_loss(r, f, kind, reduction, real_label, drift, ls)  # noqa: E731
                dr, df = _reference_vjp(fn, (real, fake), needs, grad_out)
            else:
                dr, df = ops.loss_backward(grad_out, g_real, g_fake, real.dtype, fake.dtype)
            return (dr if needs[0] else None, df if needs[1] else None) + (None,) * 7

    class GLoss(torch.autograd.Function):
        @staticmethod
        def forward(ctx, fake, real, kind, reduction, ls_target, compute_grad):
            loss, g_fake, g_real = ops.g_loss_forward(
                fake, real, _kinds.G_LOSS_KINDS[kind], _kinds.REDUCTIONS[reduction], ls_target, compute_grad
            )
            ctx.args = (kind, reduction, ls_target)
            ctx.has_real = real is not None
            ctx.save_for_backward(fake, real, g_fake, g_real)
            return loss

        @staticmethod
        def backward(ctx, grad_out):
            fake, real, g_fake, g_real = ctx.saved_tensors
            kind, reduction, ls_target = ctx.args
            needs = (ctx.needs_input_grad[0], ctx.needs_input_grad[1] and ctx.has_real)
            if torch.is_grad_enabled() or g_fake.numel() == 0:
                fn = lambda f, r: reference.g_loss(f, kind, r, reduction, ls_target)  # noqa: E731
                df, dr = _reference_vjp(fn, (fake, real), needs, grad_out)
            else:
                df, dr = ops.loss_backward(
                    grad_out, g_fake, g_real, fake.dtype, real.dtype if real is not None else fake.dtype
                )
            return (df if needs[0] else None, dr if needs[1] else None, None, None, None, None)

    class Interpolate(torch.autograd.Function):
        @staticmethod
        def forward(ctx, real, fake, alpha):
            out = ops.interpolate_forward(real, fake, alpha)
            ctx.save_for_backward(real, fake, alpha)
            return out

        @staticmethod
        def backward(ctx, grad_out):
            real, fake, alpha = ctx.saved_tensors
            need_r, need_f, need_a = ctx.needs_input_grad[:3]
            if torch.is_grad_enabled():
                return tuple(_reference_vjp(reference.interpolate, (real, fake, alpha), (need_r, need_f, need_a), grad_out))
            dr = df = da = None
            if need_r or need_f:
                dr, df = ops.interpolate_backward(grad_out, alpha, need_r, need_f)
            if need_a:
                acc = reference.acc_dtype(real.dtype)
                diff = (real.to(acc) - fake.to(acc)) * grad_out.to(acc)
                da = diff.reshape(diff.shape[0], -1).sum(1).to(alpha.dtype)
            return (dr if need_r else None, df if need_f else None, da)

    class GradPenalty(torch.autograd.Function):
        @staticmethod
        def forward(ctx, grad, kind, center, weight, reduction, inv_scale, inv_scale_tensor):
            k, r = _kinds.PENALTY_KINDS[kind], _kinds.REDUCTIONS[reduction]
            loss, norms = ops.grad_penalty_forward(grad, k, center, weight, r, inv_scale, inv_scale_tensor)
            ctx.args = (kind, k, center, weight, reduction, r, inv_scale)
            ctx.save_for_backward(grad, norms, inv_scale_tensor)
            return loss

        @staticmethod
        def backward(ctx, grad_out):
            grad, norms, inv_scale_tensor = ctx.saved_tensors
            kind, k, center, weight, reduction, r, inv_scale = ctx.args
            if not ctx.needs_input_grad[0]:
                return (None,) * 7
            if torch.is_grad_enabled():
                scale = inv_scale if inv_scale_tensor is None else inv_scale * inv_scale_tensor.detach()
                fn = lambda g: reference.grad_penalty(g, kind, center, weight, reduction, scale)  # noqa: E731
                (dg,) = _reference_vjp(fn, (grad,), (True,), grad_out)
            else:
                dg = ops.grad_penalty_backward(grad_out, grad, norms, k, center, weight, r, inv_scale, inv_scale_tensor)
            return (dg,) + (None,) * 6

    for cls in (DLoss, GLoss, Interpolate, GradPenalty):
        cls.__name__ = cls.__qualname__ = f"{cls.__name__}_{name}"
    return SimpleNamespace(DLoss=DLoss, GLoss=GLoss, Interpolate=Interpolate, GradPenalty=GradPenalty)


def _split_scale(inv_scale):
    """(float factor, optional tensor factor) of an inv_scale given as None, a number or a tensor."""
    if inv_scale is None:
        return 1.0, None
    if isinstance(inv_scale, Tensor):
        return 1.0, inv_scale.detach().to(torch.float32).reshape(())
    return float(inv_scale), None


def register_kernel_backend(name: str, ops: SimpleNamespace, fns: Optional[SimpleNamespace] = None) -> SimpleNamespace:
    """Add one back end's four ops to the registry (creating its Functions unless given)."""
    from . import _registry

    fns = make_functions(ops, name) if fns is None else fns

    def d_loss(real, fake, kind, reduction, real_label, drift, ls_targets):
        compute_grad = torch.is_grad_enabled() and (real.requires_grad or fake.requires_grad)
        a, b = ls_targets
        return fns.DLoss.apply(
            real, fake, kind, reduction, float(real_label), float(drift), float(a), float(b), compute_grad
        )

    def g_loss(fake, kind, real, reduction, ls_target):
        compute_grad = torch.is_grad_enabled() and (
            fake.requires_grad or (real is not None and real.requires_grad)
        )
        return fns.GLoss.apply(fake, real, kind, reduction, float(ls_target), compute_grad)

    def interpolate(real, fake, alpha):
        return fns.Interpolate.apply(real, fake, alpha)

    def grad_penalty(grad, kind, center, weight, reduction, inv_scale):
        value, tensor = _split_scale(inv_scale)
        return fns.GradPenalty.apply(grad, kind, float(center), float(weight), reduction, value, tensor)

    for op, impl in (("d_loss", d_loss), ("g_loss", g_loss), ("interpolate", interpolate), ("grad_penalty", grad_penalty)):
        impl.__name__ = f"{op}_{name}"
        _registry.register(op, name, impl)
    return fns
