"""Output layout rule shared by every back end and the fake (meta) kernels.

An op whose output has its input's shape (interpolation, the penalty's backward) keeps the
input's memory layout when the input is dense with the batch dimension outermost -- contiguous
NCHW and channels_last both are -- and then walks storage as one flat array, one sample after
another. Any other input (a slice, a transposed batch) gets a contiguous output and is read
through a contiguous copy. ``csrc/include/gan_kernels/layout.h`` implements the same rule.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _dense(x: Tensor) -> bool:
    """Non-overlapping and dense: the strides, sorted, pack the sizes with no gap."""
    expected = 1
    for d in sorted((d for d in range(x.dim()) if x.size(d) != 1), key=x.stride):
        if x.stride(d) != expected:
            return False
        expected *= x.size(d)
    return True


def is_batch_major(x: Tensor) -> bool:
    """Dense, non-overlapping storage whose outermost dimension is the batch."""
    if x.dim() == 0 or x.numel() == 0:
        return x.is_contiguous()
    if not _dense(x):
        return False
    b = x.size(0)
    return b == 1 or x.stride(0) == x.numel() // b


def empty_batch_major(x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """An uninitialised tensor shaped like ``x`` in the layout the kernels write."""
    dtype = x.dtype if dtype is None else dtype
    if is_batch_major(x):
        return torch.empty_like(x, dtype=dtype)
    return torch.empty(x.shape, dtype=dtype, device=x.device)


def match_layout(x: Tensor, like: Tensor) -> Tensor:
    """``x`` with exactly ``like``'s strides (a copy only when they differ)."""
    if x.stride() == like.stride() and is_batch_major(x):
        return x
    out = torch.empty_like(like, dtype=x.dtype)
    out.copy_(x)
    return out
