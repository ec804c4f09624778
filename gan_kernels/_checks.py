"""Argument checks of the Python back ends (reference, Triton) and of the functional API.

The compiled back ends check tensors in C++ (``csrc/include/gan_kernels/checks.h``) with the
same exception types and messages, so a bad input fails the same way on every back end; the
functional API checks only what it needs before choosing a back end (names, numbers).
"""

from __future__ import annotations

import numbers
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor


def bad_choice(value, accepted: Sequence[str], what: str):
    raise ValueError(f"unknown {what} {value!r}; expected one of {list(accepted)}")


def not_a_tensor(x, name: str):
    raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")


def number(value, name: str) -> float:
    if type(value) is float or type(value) is int:  # the common case, without the ABC check
        return float(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def ls_targets(value) -> Tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"ls_targets must be a pair (fake_target, real_target), got {value!r}")
    return (number(value[0], "ls_targets[0]"), number(value[1], "ls_targets[1]"))


def batch(x, name: str) -> Tensor:
    """A batch of samples: a floating-point tensor with a batch dimension, not empty."""
    if not isinstance(x, Tensor):
        not_a_tensor(x, name)
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (float16, bfloat16, float32, float64), got {x.dtype}")
    if x.dim() < 1:
        raise ValueError(f"{name} must have a batch dimension (shape (B, ...)), got a {x.dim()}-dim tensor")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}): an empty batch has no loss to compute")
    return x


def same_device(a: Tensor, a_name: str, b: Tensor, b_name: str) -> None:
    if a.device != b.device:
        raise ValueError(f"{a_name} is on {a.device} but {b_name} is on {b.device}; move them to one device")


def promote(a: Tensor, b: Tensor) -> Tuple[Tensor, Tensor]:
    if a.dtype == b.dtype:
        return a, b
    dtype = torch.promote_types(a.dtype, b.dtype)
    return a.to(dtype), b.to(dtype)


def pair(a, a_name: str, b, b_name: str) -> Tuple[Tensor, Tensor]:
    """Two batches on one device, brought to one dtype."""
    batch(a, a_name)
    batch(b, b_name)
    same_device(a, a_name, b, b_name)
    return promote(a, b)


def same_shape(a: Tensor, a_name: str, b: Tensor, b_name: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{a_name} and {b_name} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def samples(real, fake) -> Tuple[Tensor, Tensor]:
    """Real and fake samples of an interpolation: one device, one shape, one dtype."""
    pair_ = pair(real, "real", fake, "fake")
    same_shape(real, "real", fake, "fake")
    return pair_


def logits(real: Optional[Tensor], fake: Tensor) -> Tuple[Optional[Tensor], Tensor]:
    """The logits of a loss (real is None when the kind has no real term)."""
    if real is None:
        return None, batch(fake, "fake_logits")
    return pair(real, "real_logits", fake, "fake_logits")


def inv_scale(value, device: torch.device):
    if value is None:
        return None
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"inv_scale must be a number or a one-element tensor, got shape {tuple(value.shape)}")
        if value.device != device:
            raise ValueError(f"inv_scale is on {value.device} but grad is on {device}")
        return value
    return number(value, "inv_scale")
