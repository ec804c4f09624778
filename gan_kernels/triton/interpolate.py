"""Triton kernels of the interpolation x_hat = alpha real + (1 - alpha) fake and its backward.

Both walk batch-major storage (``gan_kernels._layout``: contiguous NCHW and channels_last alike)
as a (B, D) array, tile by tile: a tile is ROWS samples x BLOCK_D elements, so each program
reads its alphas once per row instead of dividing every flat index by D. See
docs/kernel_contract.md, section "Interpolation".
"""

from __future__ import annotations

from typing import Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._utils import cdiv, custom_op, device_ctx, out_like, read_as, tile_config, tl_acc


@triton.jit
def _tile(n_col, B, D, ROWS: tl.constexpr, BLOCK_D: tl.constexpr):
    """Rows, flat offsets and mask of this program's tile (64-bit: B x D may pass 2^31)."""
    pid = tl.program_id(0).to(tl.int64)
    rb = pid // n_col
    cb = pid - rb * n_col
    rows = rb * ROWS + tl.arange(0, ROWS)
    cols = cb * BLOCK_D + tl.arange(0, BLOCK_D)
    row_ok = rows < B
    mask = row_ok[:, None] & (cols < D)[None, :]
    offs = rows[:, None] * D + cols[None, :]
    return rows, row_ok, offs, mask


@triton.jit
def _interp_fwd_kernel(
    r_ptr, f_ptr, a_ptr, out_ptr, B, D, n_col, a_stride,
    ACC: tl.constexpr, ROWS: tl.constexpr, BLOCK_D: tl.constexpr,
):
    rows, row_ok, offs, mask = _tile(n_col, B, D, ROWS, BLOCK_D)
    a = tl.load(a_ptr + rows * a_stride, mask=row_ok, other=0.0).to(ACC)[:, None]
    r = tl.load(r_ptr + offs, mask=mask, other=0.0).to(ACC)
    f = tl.load(f_ptr + offs, mask=mask, other=0.0).to(ACC)
    tl.store(out_ptr + offs, (a * r + (1.0 - a) * f).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _interp_bwd_kernel(
    g_ptr, a_ptr, dr_ptr, df_ptr, B, D, n_col, a_stride,
    NEED_R: tl.constexpr, NEED_F: tl.constexpr, ACC: tl.constexpr, ROWS: tl.constexpr, BLOCK_D: tl.constexpr,
):
    rows, row_ok, offs, mask = _tile(n_col, B, D, ROWS, BLOCK_D)
    a = tl.load(a_ptr + rows * a_stride, mask=row_ok, other=0.0).to(ACC)[:, None]
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(ACC)
    if NEED_R:
        tl.store(dr_ptr + offs, (a * g).to(dr_ptr.dtype.element_ty), mask=mask)
    if NEED_F:
        tl.store(df_ptr + offs, ((1.0 - a) * g).to(df_ptr.dtype.element_ty), mask=mask)


def _grid(b: int, d: int, device: torch.device):
    rows, block_d, warps = tile_config(b, d, device)
    n_col = cdiv(d, block_d)
    return (cdiv(b, rows) * n_col,), n_col, rows, block_d, warps


@custom_op("interpolate_forward")
def interpolate_forward(real: Tensor, fake: Tensor, alpha: Tensor) -> Tensor:
    if real.shape != fake.shape:  # the public API checks first; this guards the raw op
        raise RuntimeError(f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    out = out_like(real)
    if real.numel() == 0:
        return out
    r = read_as(real, out)
    f = read_as(fake, out)
    b = real.shape[0]
    d = real.numel() // b
    grid, n_col, rows, block_d, warps = _grid(b, d, real.device)
    with device_ctx(real):
        _interp_fwd_kernel[grid](
            r, f, alpha, out, b, d, n_col, alpha.stride(0) if alpha.dim() else 0,
            ACC=tl_acc(real.dtype), ROWS=rows, BLOCK_D=block_d, num_warps=warps,
        )
    return out


@custom_op("interpolate_backward")
def interpolate_backward(grad_out: Tensor, alpha: Tensor, need_real: bool, need_fake: bool) -> Tuple[Tensor, Tensor]:
    d_real = out_like(grad_out) if need_real else grad_out.new_empty((0,))
    d_fake = out_like(grad_out) if need_fake else grad_out.new_empty((0,))
    if not (need_real or need_fake) or grad_out.numel() == 0:
        return d_real, d_fake
    like = d_real if need_real else d_fake
    g = read_as(grad_out, like)
    b = grad_out.shape[0]
    d = grad_out.numel() // b
    grid, n_col, rows, block_d, warps = _grid(b, d, grad_out.device)
    with device_ctx(grad_out):
        _interp_bwd_kernel[grid](
            g, alpha, d_real if need_real else like, d_fake if need_fake else like,
            b, d, n_col, alpha.stride(0) if alpha.dim() else 0,
            NEED_R=need_real, NEED_F=need_fake, ACC=tl_acc(grad_out.dtype),
            ROWS=rows, BLOCK_D=block_d, num_warps=warps,
        )
    return d_real, d_fake
