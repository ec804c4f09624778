"""Triton kernels of the discriminator / generator losses and their backward.

One kernel, ``_loss_fwd_kernel``, serves every kind of both losses: the kind's row of the term
table (``gan_kernels._kinds.d_loss_spec`` / ``g_loss_spec``, the twin of math.h's LossSpec) arrives
as compile-time flags (mode, real term, fake term, drift on/off) plus the terms' runtime
constants. It is a single program that walks the logits in BLOCK-sized chunks and writes the
loss and, in the same pass, the per-element gradient for a unit upstream gradient, so the
backward is one scale by grad_out (``_loss_bwd_kernel``). Logits are small (a batch, or a
PatchGAN map): one program keeps the reduction order fixed (deterministic, no atomics) and the
whole op at one launch. See docs/kernel_contract.md, section "Losses".
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from .. import _fake, _kinds
from ..reference import acc_dtype
from ._utils import cdiv, device_ctx, div, join3, log1p_unit, loss_config, sigmoid, split3, tl_acc

_NONE, _MEAN = _kinds.REDUCTIONS["none"], _kinds.REDUCTIONS["mean"]
_D_NAMES = {v: k for k, v in _kinds.D_LOSS_KINDS.items()}
_G_NAMES = {v: k for k, v in _kinds.G_LOSS_KINDS.items()}


# --------------------------------------------------------------------------- per-element terms
@triton.jit
def _term_value(x, TYPE: tl.constexpr, t, c, ACC: tl.constexpr):
    """phi(x) = c * base(x) of math.h's term_value."""
    if TYPE == 1:  # BCE(x, t) = max(x, 0) - x t + log1p(e^-|x|)
        v = c * (tl.where(x > 0, x, 0.0) - x * t + log1p_unit(tl.exp(-tl.abs(x)), ACC))
    elif TYPE == 2:  # relu(1 - t x)
        h = 1.0 - t * x
        v = c * tl.where(h < 0, 0.0, h)  # relu that keeps a NaN
    elif TYPE == 3:  # x
        v = c * x
    elif TYPE == 4:  # 1/2 (x - t)^2
        d = x - t
        v = c * 0.5 * d * d
    else:  # no term: never touch x (it may be a masked-off or absent tensor)
        v = tl.zeros_like(x)
    return v


@triton.jit
def _term_grad(x, TYPE: tl.constexpr, t, c, ACC: tl.constexpr):
    """phi'(x) of math.h's term_grad (the hinge's kink counts as flat, like autograd's relu)."""
    if TYPE == 1:
        g = c * (sigmoid(x, ACC) - t)
    elif TYPE == 2:
        g = tl.where(1.0 - t * x > 0, -c * t, 0.0) + tl.zeros_like(x)
    elif TYPE == 3:
        g = tl.zeros_like(x) + c
    elif TYPE == 4:
        g = c * (x - t)
    else:
        g = tl.zeros_like(x)
    return g


@triton.jit
def _loss_fwd_kernel(
    r_ptr, f_ptr, loss_ptr, gr_ptr, gf_ptr,
    n_r, n_f, n_max, n_out,
    rt0, rt1, rt2, rc, ft0, ft1, ft2, fc, dr0, dr1, dr2,
    MODE: tl.constexpr, RTERM: tl.constexpr, FTERM: tl.constexpr, REDUCTION: tl.constexpr,
    COMPUTE_GRAD: tl.constexpr, HAS_DRIFT: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    rt = join3(rt0, rt1, rt2, ACC)
    ft = join3(ft0, ft1, ft2, ACC)
    drift = join3(dr0, dr1, dr2, ACC)
    # W of the contract: 1/N for "mean", 1 otherwise (max(.,1): a kind without real logits has N_r = 0).
    if REDUCTION == 1:
        w_r = div(1.0, tl.cast(tl.maximum(n_r, 1), ACC), ACC)
        w_f = div(1.0, tl.cast(tl.maximum(n_f, 1), ACC), ACC)
    else:
        w_r = tl.cast(1.0, ACC)
        w_f = tl.cast(1.0, ACC)
    idx = tl.arange(0, BLOCK)
    acc_r = tl.zeros([BLOCK], ACC)
    acc_f = tl.zeros([BLOCK], ACC)

    if MODE == 0:  # SEPARATE: sum_i phi_r(r_i) + drift r_i^2  +  sum_j phi_f(f_j)
        for start in range(0, n_max, BLOCK):
            offs = start + idx
            mr = offs < n_r
            mf = offs < n_f
            r = tl.load(r_ptr + offs, mask=mr, other=0.0).to(ACC)
            f = tl.load(f_ptr + offs, mask=mf, other=0.0).to(ACC)
            vr = _term_value(r, RTERM, rt, rc, ACC)
            if HAS_DRIFT:
                vr = vr + drift * r * r
            vr = tl.where(mr, vr, 0.0)
            vf = tl.where(mf, _term_value(f, FTERM, ft, fc, ACC), 0.0)
            if REDUCTION == 0:
                tl.store(loss_ptr + offs, vr + vf, mask=offs < n_out)
            else:
                acc_r += vr
                acc_f += vf
            if COMPUTE_GRAD:
                gr = _term_grad(r, RTERM, rt, rc, ACC)
                if HAS_DRIFT:
                    gr = gr + 2.0 * drift * r
                tl.store(gr_ptr + offs, w_r * gr, mask=mr)
                tl.store(gf_ptr + offs, w_f * _term_grad(f, FTERM, ft, fc, ACC), mask=mf)
    elif MODE == 1:  # RELATIVISTIC: phi_r(r_i - mean f) + drift r_i^2  +  phi_f(f_j - mean r)
        sum_r = tl.zeros([BLOCK], ACC)
        sum_f = tl.zeros([BLOCK], ACC)
        for start in range(0, n_max, BLOCK):
            offs = start + idx
            sum_r += tl.load(r_ptr + offs, mask=offs < n_r, other=0.0).to(ACC)
            sum_f += tl.load(f_ptr + offs, mask=offs < n_f, other=0.0).to(ACC)
        m_r = div(tl.sum(sum_r, axis=0), tl.cast(n_r, ACC), ACC)
        m_f = div(tl.sum(sum_f, axis=0), tl.cast(n_f, ACC), ACC)
        sum_a = tl.zeros([BLOCK], ACC)
        sum_b = tl.zeros([BLOCK], ACC)
        for start in range(0, n_max, BLOCK):
            offs = start + idx
            mr = offs < n_r
            mf = offs < n_f
            r = tl.load(r_ptr + offs, mask=mr, other=0.0).to(ACC)
            f = tl.load(f_ptr + offs, mask=mf, other=0.0).to(ACC)
            vr = _term_value(r - m_f, RTERM, rt, rc, ACC)
            if HAS_DRIFT:
                vr = vr + drift * r * r
            vr = tl.where(mr, vr, 0.0)
            vf = tl.where(mf, _term_value(f - m_r, FTERM, ft, fc, ACC), 0.0)
            if REDUCTION == 0:
                tl.store(loss_ptr + offs, vr + vf, mask=offs < n_out)
            else:
                acc_r += vr
                acc_f += vf
            if COMPUTE_GRAD:
                sum_a += tl.where(mr, w_r * _term_grad(r - m_f, RTERM, rt, rc, ACC), 0.0)
                sum_b += tl.where(mf, w_f * _term_grad(f - m_r, FTERM, ft, fc, ACC), 0.0)
        if COMPUTE_GRAD:
            # Each term depends on the other tensor's mean: grad_real_k = a_k + 2 W drift r_k
            # - (1/N_r) sum_j b_j, grad_fake_k = b_k - (1/N_f) sum_i a_i. The a and b are
            # recomputed rather than re-read from memory written by other threads.
            c_r = div(tl.sum(sum_b, axis=0), tl.cast(n_r, ACC), ACC)
            c_f = div(tl.sum(sum_a, axis=0), tl.cast(n_f, ACC), ACC)
            for start in range(0, n_max, BLOCK):
                offs = start + idx
                mr = offs < n_r
                mf = offs < n_f
                r = tl.load(r_ptr + offs, mask=mr, other=0.0).to(ACC)
                f = tl.load(f_ptr + offs, mask=mf, other=0.0).to(ACC)
                gr = w_r * _term_grad(r - m_f, RTERM, rt, rc, ACC)
                if HAS_DRIFT:
                    gr = gr + 2.0 * w_r * drift * r
                tl.store(gr_ptr + offs, gr - c_r, mask=mr)
                tl.store(gf_ptr + offs, w_f * _term_grad(f - m_r, FTERM, ft, fc, ACC) - c_f, mask=mf)
    else:  # PAIRED: sum_i phi_r(r_i - f_i) + drift r_i^2 (same shapes)
        for start in range(0, n_max, BLOCK):
            offs = start + idx
            m = offs < n_r
            r = tl.load(r_ptr + offs, mask=m, other=0.0).to(ACC)
            f = tl.load(f_ptr + offs, mask=m, other=0.0).to(ACC)
            v = _term_value(r - f, RTERM, rt, rc, ACC)
            if HAS_DRIFT:
                v = v + drift * r * r
            if REDUCTION == 0:
                tl.store(loss_ptr + offs, v, mask=m)
            else:
                acc_r += tl.where(m, v, 0.0)
            if COMPUTE_GRAD:
                g = _term_grad(r - f, RTERM, rt, rc, ACC)
                gr = g
                if HAS_DRIFT:
                    gr = gr + 2.0 * drift * r
                tl.store(gr_ptr + offs, w_r * gr, mask=m)
                tl.store(gf_ptr + offs, -(w_r * g), mask=m)

    if REDUCTION != 0:
        tl.store(loss_ptr, w_r * tl.sum(acc_r, axis=0) + w_f * tl.sum(acc_f, axis=0))


def _launch_loss(
    spec: _kinds.LossSpec,
    real: Optional[Tensor],
    fake: Tensor,
    reduction: int,
    compute_grad: bool,
    out_like: Tensor,
) -> Tuple[Tensor, Tensor, Tensor]:
    """(loss, grad_real, grad_fake) of one LossSpec; real may be None (no real term)."""
    acc = acc_dtype(fake.dtype if real is None else real.dtype)
    f = fake.contiguous()  # logits are small: a copy of a strided map costs less than strided loads
    r = real.contiguous() if real is not None else None
    n_f = f.numel()
    n_r = r.numel() if r is not None else 0
    relativistic_none = spec.mode == _kinds.MODE_RELATIVISTIC and reduction == _NONE
    keep = compute_grad and not relativistic_none
    loss = out_like.new_empty(out_like.shape if reduction == _NONE else (), dtype=acc)
    if keep:
        g_r = torch.empty(real.shape, dtype=acc_dtype(real.dtype), device=real.device) if real is not None else None
        g_f = torch.empty(fake.shape, dtype=acc_dtype(fake.dtype), device=fake.device)
    else:
        g_r = g_f = None
    block, warps = loss_config(max(n_r, n_f), fake.device)
    with device_ctx(fake):
        _loss_fwd_kernel[(1,)](
            r if r is not None else f, f, loss,
            g_r if g_r is not None else loss, g_f if g_f is not None else loss,
            n_r, n_f, max(n_r, n_f), out_like.numel(),
            *split3(spec.real.t, "real term target"), float(spec.real.c),
            *split3(spec.fake.t, "fake term target"), float(spec.fake.c),
            *split3(spec.drift, "drift"),
            MODE=spec.mode, RTERM=spec.real.type if r is not None else _kinds.TERM_NONE,
            FTERM=spec.fake.type, REDUCTION=reduction, COMPUTE_GRAD=keep,
            HAS_DRIFT=(spec.drift != 0.0 and r is not None), ACC=tl_acc(acc), BLOCK=block,
            num_warps=warps,
        )
    if g_r is None:  # two distinct empties: a custom op's outputs may not alias each other
        g_r = fake.new_empty((0,), dtype=acc)
    if g_f is None:
        g_f = fake.new_empty((0,), dtype=acc)
    return loss, g_r, g_f


@torch.library.custom_op("gan_kernels_triton::d_loss_forward", mutates_args=())
def d_loss_forward(
    real: Tensor, fake: Tensor, kind: int, reduction: int, real_label: float, drift: float,
    ls_fake: float, ls_real: float, compute_grad: bool,
) -> Tuple[Tensor, Tensor, Tensor]:
    torch._check(real.dtype == fake.dtype, lambda: "real and fake must have the same dtype")
    spec = _kinds.d_loss_spec(_D_NAMES[kind], real_label, drift, ls_fake, ls_real)
    loss, g_r, g_f = _launch_loss(spec, real, fake, reduction, compute_grad, real)
    return loss, g_r, g_f


@torch.library.custom_op("gan_kernels_triton::g_loss_forward", mutates_args=())
def g_loss_forward(
    fake: Tensor, real: Optional[Tensor], kind: int, reduction: int, ls_target: float, compute_grad: bool
) -> Tuple[Tensor, Tensor, Tensor]:
    spec = _kinds.g_loss_spec(_G_NAMES[kind], ls_target)
    loss, g_r, g_f = _launch_loss(spec, real, fake, reduction, compute_grad, fake)
    if real is None:
        g_r = fake.new_empty((0,), dtype=acc_dtype(fake.dtype))
    return loss, g_f, g_r


# --------------------------------------------------------------------------- backward
@triton.jit
def _loss_bwd_kernel(
    go_ptr, a_ptr, b_ptr, out_a_ptr, out_b_ptr, n_a, n_b, n_go,
    GO_SCALAR: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    ma = offs < n_a
    mb = offs < n_b
    if GO_SCALAR:
        go_a = tl.load(go_ptr).to(ACC)
        go_b = go_a
    else:  # grad_out has the saved tensors' shape ("none")
        mg = offs < n_go
        go_a = tl.load(go_ptr + offs, mask=ma & mg, other=0.0).to(ACC)
        go_b = tl.load(go_ptr + offs, mask=mb & mg, other=0.0).to(ACC)
    a = tl.load(a_ptr + offs, mask=ma, other=0.0).to(ACC)
    b = tl.load(b_ptr + offs, mask=mb, other=0.0).to(ACC)
    tl.store(out_a_ptr + offs, (go_a * a).to(out_a_ptr.dtype.element_ty), mask=ma)
    tl.store(out_b_ptr + offs, (go_b * b).to(out_b_ptr.dtype.element_ty), mask=mb)


@torch.library.custom_op("gan_kernels_triton::loss_backward", mutates_args=())
def loss_backward(
    grad_out: Tensor, saved_a: Tensor, saved_b: Tensor, dtype_a: torch.dtype, dtype_b: torch.dtype
) -> Tuple[Tensor, Tensor]:
    out_a = torch.empty_like(saved_a, dtype=dtype_a)
    out_b = torch.empty_like(saved_b, dtype=dtype_b)
    n_a, n_b = saved_a.numel(), saved_b.numel()
    n = max(n_a, n_b)
    if n == 0:
        return out_a, out_b
    # A 0-dim grad_out, or one expanded from it (all strides 0), is one number read once.
    go_scalar = grad_out.numel() == 1 or all(s == 0 for s in grad_out.stride())
    go = grad_out if go_scalar else grad_out.contiguous()
    acc = acc_dtype(torch.promote_types(saved_a.dtype, saved_b.dtype))
    block, warps = loss_config(n, grad_out.device)
    # The kernel walks logical (contiguous) order; saved gradients are contiguous, so the
    # outputs (empty_like them, as the fake kernel says) normally are too. Otherwise write a
    # contiguous result and copy it into the output's layout.
    res_a = out_a if out_a.is_contiguous() else torch.empty(out_a.shape, dtype=dtype_a, device=out_a.device)
    res_b = out_b if out_b.is_contiguous() else torch.empty(out_b.shape, dtype=dtype_b, device=out_b.device)
    a = saved_a.contiguous()
    b = saved_b.contiguous()
    with device_ctx(saved_a if n_a else saved_b):
        _loss_bwd_kernel[(cdiv(n, block),)](
            go, a if n_a else b, b if n_b else a, res_a if n_a else res_b, res_b if n_b else res_a,
            n_a, n_b, go.numel(),
            GO_SCALAR=go_scalar, ACC=tl_acc(acc), BLOCK=block, num_warps=warps,
        )
    if res_a is not out_a:
        out_a.copy_(res_a)
    if res_b is not out_b:
        out_b.copy_(res_b)
    return out_a, out_b


for _name in ("d_loss_forward", "g_loss_forward", "loss_backward"):
    torch.library.register_fake(f"gan_kernels_triton::{_name}")(_fake.FAKES[_name])
