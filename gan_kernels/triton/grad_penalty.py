"""Triton kernels of the gradient penalty (WGAN-GP, WGAN-LP, R1/R2) and its backward.

Forward is a split reduction, so a small batch of large gradients still fills the GPU and the
sum order is fixed (deterministic, no atomics):
  1. ``_gp_partial_kernel``: each program sums g^2 over one chunk of ROWS samples' rows and
     writes the partial sums to a (B, n_chunks) buffer;
  2. ``_gp_finalize_kernel``: one program reduces each row of that buffer in chunk order, takes
     the norm, the per-sample penalty p_i and the loss.
Backward is one elementwise pass d_grad_i = coef_i * g_i (one read, one write), with coef_i from
math.h's penalty_coef (a zero norm gives 0, a NaN norm stays NaN). The inv_scale tensor (the
GradScaler unscale) is read inside the kernels, never with .item(): no host sync, so a training
step using these ops can be captured in a CUDA graph. See docs/kernel_contract.md.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from .. import _kinds
from ..reference import acc_dtype
from ._utils import (
    PENALTY_R1, PENALTY_WGAN_GP, PENALTY_WGAN_LP, REDUCE_MEAN, REDUCE_NONE, REDUCE_SUM,
    batch_major, cdiv, custom_op, device_ctx, div, gpu_config, join3, next_pow2, num_sms, out_like, read_as, sqrt,
    split3, tile_config, tl_acc,
)
from .interpolate import _tile

_NONE, _MEAN = _kinds.REDUCTIONS["none"], _kinds.REDUCTIONS["mean"]


@triton.jit
def _penalty_value(norm, s, center, KIND: tl.constexpr):
    """math.h penalty_value: p(m) with m = s * norm."""
    m = s * norm
    if KIND == PENALTY_WGAN_GP:  # wgan-gp
        d = m - center
        p = d * d
    elif KIND == PENALTY_WGAN_LP:  # wgan-lp: max(0, d) written as math.h writes it, so a NaN stays NaN
        d = m - center
        d = tl.where(d < 0, 0.0, d)
        p = d * d
    else:  # r1
        p = m * m
    return p


@triton.jit
def _penalty_coef(norm, s, center, KIND: tl.constexpr, ACC: tl.constexpr):
    """math.h penalty_coef: k with d p / d g = k g."""
    if KIND == PENALTY_R1:  # d (s n)^2 / d g = 2 s^2 g: defined at n = 0
        k = tl.zeros_like(norm) + 2.0 * s * s
    else:
        pos = norm > 0
        d = s * norm - center
        k = div(2.0 * d * s, tl.where(pos, norm, 1.0), ACC)
        if KIND == PENALTY_WGAN_LP:
            k = tl.where(d > 0, k, tl.where(d == d, 0.0, d))
        # Zero norm: the norm's gradient is undefined, taken as 0. NaN norm: kept, not hidden.
        k = tl.where(pos, k, tl.where(norm == 0, 0.0, norm))
    return k


@triton.jit
def _scale(s0, s1, s2, ist_ptr, HAS_IST: tl.constexpr, ACC: tl.constexpr):
    s = join3(s0, s1, s2, ACC)
    if HAS_IST:
        s = s * tl.load(ist_ptr).to(ACC)
    return s


@triton.jit
def _gp_partial_kernel(
    g_ptr, part_ptr, B, D, n_chunks,
    ACC: tl.constexpr, ROWS: tl.constexpr, BLOCK_D: tl.constexpr, CHUNK_TILES: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    rb = pid // n_chunks
    chunk = pid - rb * n_chunks
    rows = rb * ROWS + tl.arange(0, ROWS)
    row_ok = rows < B
    base = chunk * (CHUNK_TILES * BLOCK_D)
    acc = tl.zeros([ROWS, BLOCK_D], ACC)
    for t in range(CHUNK_TILES):
        cols = base + t * BLOCK_D + tl.arange(0, BLOCK_D)
        mask = row_ok[:, None] & (cols < D)[None, :]
        x = tl.load(g_ptr + rows[:, None] * D + cols[None, :], mask=mask, other=0.0).to(ACC)
        acc += x * x
    tl.store(part_ptr + rows * n_chunks + chunk, tl.sum(acc, axis=1), mask=row_ok)


@triton.jit
def _gp_finalize_kernel(
    part_ptr, norms_ptr, loss_ptr, ist_ptr, B, n_chunks,
    c0, c1, c2, w0, w1, w2, s0, s1, s2,
    KIND: tl.constexpr, REDUCTION: tl.constexpr, HAS_IST: tl.constexpr, ACC: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr,
):
    center = join3(c0, c1, c2, ACC)
    weight = join3(w0, w1, w2, ACC)
    s = _scale(s0, s1, s2, ist_ptr, HAS_IST, ACC)
    total = tl.zeros([BLOCK_B], ACC)
    for b0 in range(0, B, BLOCK_B):
        rows = b0 + tl.arange(0, BLOCK_B).to(tl.int64)
        row_ok = rows < B
        acc = tl.zeros([BLOCK_B, BLOCK_C], ACC)
        for c_start in range(0, n_chunks, BLOCK_C):
            cols = c_start + tl.arange(0, BLOCK_C)
            mask = row_ok[:, None] & (cols < n_chunks)[None, :]
            acc += tl.load(part_ptr + rows[:, None] * n_chunks + cols[None, :], mask=mask, other=0.0)
        norm = sqrt(tl.sum(acc, axis=1), ACC)
        tl.store(norms_ptr + rows, norm, mask=row_ok)
        p = _penalty_value(norm, s, center, KIND)
        if REDUCTION == REDUCE_NONE:
            tl.store(loss_ptr + rows, weight * p, mask=row_ok)
        else:
            total += tl.where(row_ok, p, 0.0)
    if REDUCTION == REDUCE_MEAN:
        tl.store(loss_ptr, weight * div(tl.sum(total, axis=0), tl.cast(B, ACC), ACC))
    elif REDUCTION == REDUCE_SUM:
        tl.store(loss_ptr, weight * tl.sum(total, axis=0))


@triton.jit
def _gp_bwd_kernel(
    go_ptr, g_ptr, norms_ptr, out_ptr, ist_ptr, B, D, n_col, go_stride,
    c0, c1, c2, w0, w1, w2, s0, s1, s2,
    KIND: tl.constexpr, REDUCTION: tl.constexpr, HAS_IST: tl.constexpr, ACC: tl.constexpr,
    ROWS: tl.constexpr, BLOCK_D: tl.constexpr,
):
    center = join3(c0, c1, c2, ACC)
    weight = join3(w0, w1, w2, ACC)
    s = _scale(s0, s1, s2, ist_ptr, HAS_IST, ACC)
    rows, row_ok, offs, mask = _tile(n_col, B, D, ROWS, BLOCK_D)
    norm = tl.load(norms_ptr + rows, mask=row_ok, other=1.0).to(ACC)
    if REDUCTION == REDUCE_NONE:
        go = tl.load(go_ptr + rows * go_stride, mask=row_ok, other=0.0).to(ACC)
    else:
        go = tl.load(go_ptr).to(ACC)
    if REDUCTION == REDUCE_MEAN:
        w = div(1.0, tl.cast(B, ACC), ACC)
    else:
        w = 1.0
    k = go * weight * w * _penalty_coef(norm, s, center, KIND, ACC)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(ACC)
    tl.store(out_ptr + offs, (k[:, None] * g).to(out_ptr.dtype.element_ty), mask=mask)


def _scalars(center: float, weight: float, inv_scale: float):
    return (*split3(center, "center"), *split3(weight, "weight"), *split3(inv_scale, "inv_scale"))


def _partial_config(b: int, d: int, device: torch.device):
    """Tile and chunk length of the partial sums: about 4 programs per SM in all, whatever B."""
    rows, block_d, warps = tile_config(b, d, device)
    n_col = cdiv(d, block_d)
    row_blocks = cdiv(b, rows)
    want = cdiv(4 * num_sms(device), row_blocks)  # chunks per row block
    tiles = max(1, n_col // max(want, 1))
    tiles = min(1 << (tiles.bit_length() - 1), 64 if gpu_config(device) else 2)  # few compiled variants
    return rows, block_d, warps, tiles, cdiv(n_col, tiles), row_blocks


@custom_op("grad_penalty_forward")
def grad_penalty_forward(
    grad: Tensor, kind: int, center: float, weight: float, reduction: int, inv_scale: float,
    inv_scale_tensor: Optional[Tensor],
) -> Tuple[Tensor, Tensor]:
    acc = acc_dtype(grad.dtype)
    b = grad.shape[0]
    loss = grad.new_empty((b,) if reduction == _NONE else (), dtype=acc)
    norms = grad.new_empty((b,), dtype=acc)
    if b == 0:
        loss.zero_()
        return loss, norms
    g = batch_major(grad)
    d = grad.numel() // b
    rows, block_d, warps, tiles, n_chunks, row_blocks = _partial_config(b, d, grad.device)
    partials = torch.empty((b, n_chunks), dtype=acc, device=grad.device)
    block_c = min(next_pow2(n_chunks), 64)
    gpu = gpu_config(grad.device)
    block_b = max(1, min(next_pow2(b), (4096 if gpu else 16) // block_c))
    ist = inv_scale_tensor
    with device_ctx(grad):
        _gp_partial_kernel[(row_blocks * n_chunks,)](
            g, partials, b, d, n_chunks,
            ACC=tl_acc(grad.dtype), ROWS=rows, BLOCK_D=block_d, CHUNK_TILES=tiles, num_warps=warps,
        )
        _gp_finalize_kernel[(1,)](
            partials, norms, loss, ist if ist is not None else partials, b, n_chunks,
            *_scalars(center, weight, inv_scale),
            KIND=kind, REDUCTION=reduction, HAS_IST=ist is not None, ACC=tl_acc(grad.dtype),
            BLOCK_B=block_b, BLOCK_C=block_c, num_warps=4 if gpu else 1,
        )
    return loss, norms


@custom_op("grad_penalty_backward")
def grad_penalty_backward(
    grad_out: Tensor, grad: Tensor, norms: Tensor, kind: int, center: float, weight: float,
    reduction: int, inv_scale: float, inv_scale_tensor: Optional[Tensor],
) -> Tensor:
    out = out_like(grad)
    b = grad.shape[0]
    if grad.numel() == 0:
        return out
    g = read_as(grad, out)
    d = grad.numel() // b
    rows, block_d, warps = tile_config(b, d, grad.device)
    n_col = cdiv(d, block_d)
    go_stride = grad_out.stride(0) if grad_out.dim() == 1 else 0
    ist = inv_scale_tensor
    with device_ctx(grad):
        _gp_bwd_kernel[(cdiv(b, rows) * n_col,)](
            grad_out, g, norms, out, ist if ist is not None else norms, b, d, n_col, go_stride,
            *_scalars(center, weight, inv_scale),
            KIND=kind, REDUCTION=reduction, HAS_IST=ist is not None, ACC=tl_acc(grad.dtype),
            ROWS=rows, BLOCK_D=block_d, num_warps=warps,
        )
    return out
