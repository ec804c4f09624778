"""The Triton back end's differentiable ops: ``torch.autograd.Function`` classes over its custom ops.

The compiled back ends (cpu, cuda) need none of this: their differentiable ops are C++ autograd
Functions (``csrc/autograd/``). The Triton back end provides the device ops of
``csrc/gan_kernels.cpp`` as Python custom ops (``loss_forward``, ``loss_backward``,
``interpolate_forward``, ``interpolate_backward``, ``grad_penalty_forward``,
``grad_penalty_backward``, and over lists ``loss_list_forward`` / ``loss_list_backward``,
``feature_matching_forward`` / ``feature_matching_backward``); :func:`make_functions` and
:func:`make_list_functions` bind them to Function classes, created before ``.apply`` so
autograd records the node of the back end that actually ran.

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

from . import _checks, _kinds, reference


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

    class Loss(torch.autograd.Function):
        @staticmethod
        def forward(ctx, real, fake, spec_args, reduction, compute_grad, formula):
            loss, g_real, g_fake = ops.loss_forward(real, fake, *spec_args, reduction, compute_grad)
            ctx.formula = formula
            ctx.save_for_backward(real, fake, g_real, g_fake)
            return loss

        @staticmethod
        def backward(ctx, grad_out):
            real, fake, g_real, g_fake = ctx.saved_tensors
            needs = (ctx.needs_input_grad[0] and real is not None, ctx.needs_input_grad[1])
            if torch.is_grad_enabled() or g_fake.numel() == 0:
                dr, df = _reference_vjp(ctx.formula, (real, fake), needs, grad_out)
            else:
                dtype_r = real.dtype if real is not None else fake.dtype
                dr, df = ops.loss_backward(grad_out, g_real, g_fake, dtype_r, fake.dtype)
            return (dr if needs[0] else None, df if needs[1] else None, None, None, None, None)

    class Interpolate(torch.autograd.Function):
        @staticmethod
        def forward(ctx, real, fake, alpha):
            out = ops.interpolate_forward(real, fake, alpha)
            # The backward needs alpha only; real and fake only for alpha's own gradient.
            ctx.save_for_backward(alpha, *((real, fake) if alpha.requires_grad else ()))
            return out

        @staticmethod
        def backward(ctx, grad_out):
            alpha, *rf = ctx.saved_tensors
            need_r, need_f, need_a = ctx.needs_input_grad[:3]
            dr = df = da = None
            if torch.is_grad_enabled():  # differentiable in grad_out and alpha
                a = alpha.to(reference.acc_dtype(grad_out.dtype)).reshape((-1,) + (1,) * (grad_out.dim() - 1))
                g = grad_out.to(a.dtype)
                dr = (a * g).to(grad_out.dtype) if need_r else None
                df = ((1 - a) * g).to(grad_out.dtype) if need_f else None
            elif need_r or need_f:
                dr, df = ops.interpolate_backward(grad_out, alpha, need_r, need_f)
            if need_a:
                acc = reference.acc_dtype(grad_out.dtype)
                diff = (rf[0].to(acc) - rf[1].to(acc)) * grad_out.to(acc)
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

    for cls in (Loss, Interpolate, GradPenalty):
        cls.__name__ = cls.__qualname__ = f"{cls.__name__}_{name}"
    return SimpleNamespace(Loss=Loss, Interpolate=Interpolate, GradPenalty=GradPenalty)


def _split_scale(inv_scale):
    """(float factor, optional tensor factor) of an inv_scale given as None, a number or a tensor."""
    if inv_scale is None:
        return 1.0, None
    if isinstance(inv_scale, Tensor):
        return 1.0, inv_scale.detach().to(torch.float32).reshape(())
    return float(inv_scale), None


def register_kernel_backend(name: str, ops: SimpleNamespace, fns: Optional[SimpleNamespace] = None) -> SimpleNamespace:
    """Add a Python back end's four ops to the registry (creating its Functions unless given).

    Its implementations check their tensors with :mod:`gan_kernels._checks` (the compiled back
    ends do the same checks in C++).
    """
    from . import _registry

    fns = make_functions(ops, name) if fns is None else fns
    reductions = _kinds.REDUCTIONS

    def d_loss(real, fake, kind, reduction, real_label, drift, ls_targets, weight):
        real, fake = _checks.logits(real, fake)
        compute_grad = torch.is_grad_enabled() and (real.requires_grad or fake.requires_grad)
        args = _kinds.d_loss_args(kind, real_label, drift, ls_targets[0], ls_targets[1], weight)
        formula = lambda r, f: reference.d_loss(r, f, kind, reduction, real_label, drift, ls_targets, weight)  # noqa: E731
        return fns.Loss.apply(real, fake, args, reductions[reduction], compute_grad, formula)

    def g_loss(fake, kind, real, reduction, ls_target, weight):
        real, fake = _checks.logits(real, fake)
        compute_grad = torch.is_grad_enabled() and (fake.requires_grad or (real is not None and real.requires_grad))
        args = _kinds.g_loss_args(kind, ls_target, weight)
        formula = lambda r, f: reference.g_loss(f, kind, r, reduction, ls_target, weight)  # noqa: E731
        return fns.Loss.apply(real, fake, args, reductions[reduction], compute_grad, formula)

    def interpolate(real, fake, alpha):
        real, fake = _checks.samples(real, fake)
        return fns.Interpolate.apply(real, fake, alpha)

    def grad_penalty(grad, kind, center, weight, reduction, inv_scale):
        _checks.batch(grad, "grad")
        value, tensor = _split_scale(_checks.inv_scale(inv_scale, grad.device))
        return fns.GradPenalty.apply(grad, kind, float(center), float(weight), reduction, value, tensor)

    for op, impl in (("d_loss", d_loss), ("g_loss", g_loss), ("interpolate", interpolate), ("grad_penalty", grad_penalty)):
        impl.__name__ = f"{op}_{name}"
        _registry.register(op, name, impl)
    return fns


# --------------------------------------------------------------------------- lists
def make_list_functions(ops: SimpleNamespace, name: str) -> SimpleNamespace:
    """The list ops' Functions (multi-discriminator training): one op call per direction.

    The tensors come last, as ``*tensors`` (a Function's inputs must be tensors to get gradients):
    the logits, real first, or the feature maps, real first.
    """

    class LossList(torch.autograd.Function):
        @staticmethod
        def forward(ctx, spec_args, reduction, compute_grad, formula, n_real, *logits):
            total, terms, g_real, g_fake = ops.loss_list_forward(
                list(logits[:n_real]), list(logits[n_real:]), *spec_args, reduction, compute_grad)
            ctx.formula, ctx.n_real, ctx.has_grads = formula, n_real, len(g_fake) > 0
            ctx.save_for_backward(*logits, *g_real, *g_fake)
            ctx.mark_non_differentiable(terms)
            ctx.set_materialize_grads(False)  # terms never gets a gradient: no zeros for it
            return total, terms

        @staticmethod
        def backward(ctx, grad_total, _grad_terms):
            needs = ctx.needs_input_grad[5:]
            n = len(needs)
            if grad_total is None:
                return (None,) * (5 + n)
            saved = ctx.saved_tensors
            logits, grads = saved[:n], saved[n:]
            if torch.is_grad_enabled() or not ctx.has_grads:
                k = ctx.n_real
                fn = lambda *x: ctx.formula(list(x[:k]), list(x[k:]))  # noqa: E731
                res = _reference_vjp(fn, logits, needs, grad_total)
            else:
                res = [None] * n
                which = [i for i in range(n) if needs[i]]
                if which:
                    out = ops.loss_list_backward(grad_total, [grads[i] for i in which], [logits[i] for i in which])
                    for i, g in zip(which, out):
                        res[i] = g
            return (None,) * 5 + tuple(g if need else None for g, need in zip(res, needs))

    class FeatureMatching(torch.autograd.Function):
        @staticmethod
        def forward(ctx, weights, reduction, k, *feats):
            r = _kinds.REDUCTIONS[reduction]
            out = ops.feature_matching_forward(list(feats[:k]), list(feats[k:]), weights, r)
            ctx.args = (weights, reduction, r, k)
            ctx.save_for_backward(*feats)  # the backward recomputes sign(real - fake) from them
            return out

        @staticmethod
        def backward(ctx, grad_out):
            weights, reduction, r, k = ctx.args
            feats = ctx.saved_tensors
            needs = ctx.needs_input_grad[3:]
            need_real, need_fake = any(needs[:k]), any(needs[k:])
            if not (need_real or need_fake):
                return (None,) * (3 + len(needs))
            if torch.is_grad_enabled():
                fn = lambda *x: reference.feature_matching_loss(x[:k], x[k:], weights, reduction)  # noqa: E731
                res = _reference_vjp(fn, feats, needs, grad_out)
            else:
                dr, df = ops.feature_matching_backward(grad_out, list(feats[:k]), list(feats[k:]), weights, r,
                                                       need_real, need_fake)
                res = (list(dr) if need_real else [None] * k) + (list(df) if need_fake else [None] * k)
            return (None,) * 3 + tuple(g if need else None for g, need in zip(res, needs))

    for cls in (LossList, FeatureMatching):
        cls.__name__ = cls.__qualname__ = f"{cls.__name__}_{name}"
    return SimpleNamespace(LossList=LossList, FeatureMatching=FeatureMatching)


def register_list_backend(name: str, ops: SimpleNamespace, fns: Optional[SimpleNamespace] = None) -> SimpleNamespace:
    """Add a Python back end's list ops ("d_loss_list", "g_loss_list", "feature_matching") to the
    registry, with the argument checks of :mod:`gan_kernels._multi` (messages naming the index)."""
    from . import _multi, _registry

    fns = make_list_functions(ops, name) if fns is None else fns
    reductions = _kinds.REDUCTIONS

    def run(spec_args, reals, fakes, reduction, formula, return_terms):
        logits = (*reals, *fakes)
        compute_grad = torch.is_grad_enabled() and any(x.requires_grad for x in logits)
        total, terms = fns.LossList.apply(spec_args, reductions[reduction], compute_grad, formula, len(reals), *logits)
        return (total, terms) if return_terms else total

    def d_loss_list(reals, fakes, kind, reduction, real_label, drift, ls_targets, weight, return_terms):
        reals, fakes = _multi.checked_logit_lists(reals, fakes, kind)
        args = _kinds.d_loss_args(kind, real_label, drift, ls_targets[0], ls_targets[1], weight)
        formula = lambda r, f: reference.d_loss_list(r, f, kind, reduction, real_label, drift, ls_targets,  # noqa: E731
                                                     weight)
        return run(args, reals, fakes, reduction, formula, return_terms)

    def g_loss_list(fakes, kind, reals, reduction, ls_target, weight, return_terms):
        reals, fakes = _multi.checked_logit_lists(reals, fakes, kind)
        args = _kinds.g_loss_args(kind, ls_target, weight)
        formula = lambda r, f: reference.g_loss_list(f, kind, r or None, reduction, ls_target, weight)  # noqa: E731
        return run(args, reals or [], fakes, reduction, formula, return_terms)

    def feature_matching(reals, fakes, weights, reduction):
        reals, fakes = _multi.checked_features(reals, fakes)
        return fns.FeatureMatching.apply(list(weights), reduction, len(reals), *reals, *fakes)

    for op, impl in (("d_loss_list", d_loss_list), ("g_loss_list", g_loss_list), ("feature_matching", feature_matching)):
        impl.__name__ = f"{op}_{name}"
        _registry.register(op, name, impl)
    return fns
