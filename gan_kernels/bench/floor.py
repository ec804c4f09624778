"""The floor of a call: a back end's raw forward op + raw backward op + one autograd node.

What a forward + ``torch.autograd.grad`` of one op costs when nothing runs but the kernels and one
autograd pass over a one-node graph: no argument checks, no back-end choice, no saved-input
bookkeeping beyond what the backward op reads. The gap between a public call (``gk.d_loss(...,
backend=b)``) and this floor is the library's own host overhead.

Every raw-op call of the floor is in this module (``_loss_forward`` and the ``*_Floor`` classes), so
a change of the ops' schemas is adapted here and nowhere else.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from gan_kernels import _kinds

KERNEL_BACKENDS = ("cpu", "cuda", "triton")
MEAN = _kinds.REDUCTIONS["mean"]


def raw_ops(backend: str):
    """The namespace holding ``backend``'s raw ops, or None for a back end without any."""
    if backend in ("cpu", "cuda"):
        return torch.ops.gan_kernels
    if backend == "triton":
        import gan_kernels.triton as gt

        return gt.OPS  # the direct path the triton back end's eager calls take
    return None


def _loss_forward(ops, op: str, kind: str, real: Optional[Tensor], fake: Tensor):
    """(loss, grad_real, grad_fake) of the raw loss op, default options, mean reduction."""
    args = _kinds.d_loss_args(kind, 1.0, 0.0, 0.0, 1.0) if op == "d_loss" else _kinds.g_loss_args(kind, 1.0)
    return ops.loss_forward(real, fake, *args, MEAN, True)


class _LossFloor(torch.autograd.Function):
    @staticmethod
    def forward(ctx, real, fake, ops, op, kind):
        loss, g_real, g_fake = _loss_forward(ops, op, kind, real, fake)
        ctx.ops, ctx.op, ctx.has_real = ops, op, real is not None
        ctx.dtypes = (fake.dtype if real is None else real.dtype, fake.dtype)
        ctx.save_for_backward(g_real, g_fake)
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        g_real, g_fake = ctx.saved_tensors
        if ctx.op == "d_loss":
            d_real, d_fake = ctx.ops.loss_backward(grad_out, g_real, g_fake, *ctx.dtypes)
        else:  # the generator's own logits first, as its forward returned them
            d_fake, d_real = ctx.ops.loss_backward(grad_out, g_fake, g_real, ctx.dtypes[1], ctx.dtypes[0])
        return (d_real if ctx.has_real else None), d_fake, None, None, None


class _InterpolateFloor(torch.autograd.Function):
    @staticmethod
    def forward(ctx, real, fake, alpha, ops):
        ctx.ops = ops
        ctx.save_for_backward(alpha)
        return ops.interpolate_forward(real, fake, alpha)

    @staticmethod
    def backward(ctx, grad_out):
        (alpha,) = ctx.saved_tensors
        d_real, d_fake = ctx.ops.interpolate_backward(grad_out, alpha, True, True)
        return d_real, d_fake, None, None


class _PenaltyFloor(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad, ops, code, weight):
        loss, norms = ops.grad_penalty_forward(grad, code, 1.0, weight, MEAN, 1.0, None)
        ctx.ops, ctx.args = ops, (code, weight)
        ctx.save_for_backward(grad, norms)
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        grad, norms = ctx.saved_tensors
        code, weight = ctx.args
        return ctx.ops.grad_penalty_backward(grad_out, grad, norms, code, 1.0, weight, MEAN, 1.0, None), None, None, None


def floor_fn(op: str, kind: Optional[str], backend: str, weight: float) -> Optional[Callable[..., Tensor]]:
    """``fn(*leaves, **extra)`` computing ``op`` through ``backend``'s raw ops, or None without them.

    Leaves are ordered as the benchmark's inputs: d_loss (real, fake); g_loss (fake[, real]);
    interpolate (real, fake) with ``alpha``; grad_penalty (grad,).
    """
    ops = raw_ops(backend)
    if ops is None:
        return None
    if op == "d_loss":
        return lambda real, fake: _LossFloor.apply(real, fake, ops, op, kind)
    if op == "g_loss":
        return lambda fake, real=None: _LossFloor.apply(real, fake, ops, op, kind)
    if op == "interpolate":
        return lambda real, fake, alpha: _InterpolateFloor.apply(real, fake, alpha, ops)
    if op == "grad_penalty":
        code = _kinds.PENALTY_KINDS[kind]
        return lambda grad: _PenaltyFloor.apply(grad, ops, code, weight)
    raise ValueError(op)


def floor_backends(available: Sequence[str]) -> list:
    return [b for b in available if b in KERNEL_BACKENDS]
