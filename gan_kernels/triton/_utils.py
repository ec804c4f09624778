"""Helpers shared by the Triton kernels: accumulation dtype, exact scalars, math, launch configs.

Everything here is used identically by the compiled (CUDA) path and the interpreter
(``TRITON_INTERPRET=1``, CPU tensors); only the block sizes differ between the two.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os

import numpy as np
import torch
import triton
import triton.language as tl

from .. import _fake, _kinds
from .._layout import empty_batch_major, is_batch_major, match_layout
from ..reference import acc_dtype

# Read once, like triton itself: the interpreter is chosen when triton is imported.
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"


def tl_acc(dtype: torch.dtype):
    """The Triton accumulation dtype for an input dtype (float64 stays float64)."""
    return tl.float64 if acc_dtype(dtype) == torch.float64 else tl.float32


def device_ctx(t: torch.Tensor):
    """Launch on t's GPU: triton takes the device and stream from torch's *current* device."""
    if t.is_cuda:
        return torch.cuda.device(t.device)
    return contextlib.nullcontext()


# --------------------------------------------------------------------------- named codes
# The schema codes of _kinds.py as Triton compile-time constants, so kernels branch on names.
TERM_BCE = tl.constexpr(_kinds.TERM_BCE)
TERM_HINGE = tl.constexpr(_kinds.TERM_HINGE)
TERM_LINEAR = tl.constexpr(_kinds.TERM_LINEAR)
TERM_SQUARE = tl.constexpr(_kinds.TERM_SQUARE)
# BCE against the usual targets 1 and 0, told apart at compile time: their value and gradient have
# forms without the cancellation of the general target (math.h's bce_linear and term_grad), and
# selecting between forms at run time costs float64 kernels registers they do not have.
TERM_BCE_ONE = tl.constexpr(5)
TERM_BCE_ZERO = tl.constexpr(6)
MODE_RELATIVISTIC = tl.constexpr(_kinds.MODE_RELATIVISTIC)
MODE_PAIRED = tl.constexpr(_kinds.MODE_PAIRED)
REDUCE_NONE = tl.constexpr(_kinds.REDUCTIONS["none"])
REDUCE_MEAN = tl.constexpr(_kinds.REDUCTIONS["mean"])
REDUCE_SUM = tl.constexpr(_kinds.REDUCTIONS["sum"])
PENALTY_WGAN_GP = tl.constexpr(_kinds.PENALTY_KINDS["wgan-gp"])
PENALTY_WGAN_LP = tl.constexpr(_kinds.PENALTY_KINDS["wgan-lp"])
PENALTY_R1 = tl.constexpr(_kinds.PENALTY_KINDS["r1"])


# --------------------------------------------------------------------------- op registration
IMPLS: dict = {}  # op name -> the Python function its registered custom op runs


def custom_op(name: str):
    """Register the decorated function as the op ``gan_kernels_triton::<name>`` with its fake kernel.

    Returns the function itself and records it in IMPLS, so that ``gan_kernels.triton`` can run it
    without the dispatcher on plain eager calls; whatever traces (torch.compile, opcheck, fake
    tensors) goes through the registered op.
    """

    def register(fn):
        torch.library.custom_op(f"gan_kernels_triton::{name}", fn, mutates_args=())
        fake = _fake.FAKES.get(name) or _fake.LIST_FAKES[name]
        torch.library.register_fake(f"gan_kernels_triton::{name}")(fake)
        IMPLS[name] = fn
        return fn

    return register


# --------------------------------------------------------------------------- exact scalars
@functools.lru_cache(maxsize=256)  # the same few constants every step: skip the host-side work
def split3(x: float, name: str):
    """x as hi + mid + lo, three float32 numbers whose float64 sum is exactly x.

    Triton passes a Python float to a kernel as float32 (compiled and interpreted alike), which
    would round center / weight / real_label / inv_scale for float64 inputs. Three float32 pieces
    carry 72 significand bits, enough to rebuild any float64 in float32's exponent range; a
    value outside it is refused rather than silently rounded.
    """
    x = float(x)
    if not math.isfinite(x):
        return x, 0.0, 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        hi = float(np.float32(x))
        mid = float(np.float32(x - hi))
        lo = float(np.float32(x - hi - mid))
    if (hi + mid) + lo != x:
        raise ValueError(
            f"gan_kernels triton back end: {name}={x!r} cannot be passed to a Triton kernel exactly "
            "(outside float32's exponent range); use backend='cpu'/'cuda'/'reference'"
        )
    return hi, mid, lo


@triton.jit
def join3(hi, mid, lo, ACC: tl.constexpr):
    """Rebuild a split3 scalar in ACC: exact in float64, float32(x) in float32 (as C++ casts)."""
    if ACC == tl.float64:
        return (tl.cast(hi, tl.float64) + tl.cast(mid, tl.float64)) + tl.cast(lo, tl.float64)
    else:
        return tl.cast(hi, tl.float32)


# --------------------------------------------------------------------------- math
@triton.jit
def div(a, b, ACC: tl.constexpr):
    """IEEE-rounded division (plain `/` on float32 may lower to an approximate divide on GPU)."""
    if ACC == tl.float64:
        return a / b
    else:
        return tl.div_rn(a, b)


@triton.jit
def sqrt(x, ACC: tl.constexpr):
    """IEEE-rounded square root (tl.sqrt is the approximate one for float32)."""
    if ACC == tl.float64:
        return tl.sqrt(x)
    else:
        return tl.sqrt_rn(x)


@triton.jit
def log1p_unit(e, ACC: tl.constexpr):
    """log1p(e) for e in [0, 1] without libdevice (the interpreter has none).

    log(1 + e) alone loses everything once 1 + e rounds to 1 (softplus(-20) would be 0). Scaling
    by e / ((1 + e) - 1) cancels the rounding of 1 + e, which makes this accurate to a few ulps.
    """
    u = 1.0 + e
    safe = tl.where(u == 1.0, 2.0, u)
    return tl.where(u == 1.0, e, tl.log(safe) * div(e, safe - 1.0, ACC))


@triton.jit
def sigmoid(x, ACC: tl.constexpr):
    """Both branches only exponentiate a non-positive number (math.h's sigmoid)."""
    e = tl.exp(-tl.abs(x))
    inv = div(1.0, 1.0 + e, ACC)  # one division for both branches: float64 divisions cost registers
    return tl.where(x >= 0, inv, e * inv)


# --------------------------------------------------------------------------- host-side helpers
# These run on every call, and a small launch is host-bound: keep them cheap (triton.cdiv is a
# constexpr_function costing ~10 us per host call in triton 3.8; _layout's checks walk strides).
def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def out_like(x: torch.Tensor) -> torch.Tensor:
    """_layout.empty_batch_major(x), with a fast path for the common contiguous input."""
    return torch.empty_like(x) if x.is_contiguous() else empty_batch_major(x)


def read_as(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """_layout.match_layout(x, like): x itself when both are contiguous."""
    return x if x.is_contiguous() and like.is_contiguous() else match_layout(x, like)


def batch_major(x: torch.Tensor) -> torch.Tensor:
    """x if it is batch-major, else a contiguous copy (kernels walk it as flat (B, D) storage)."""
    return x if x.is_contiguous() or is_batch_major(x) else x.contiguous()


# --------------------------------------------------------------------------- launch configs
def next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


@functools.lru_cache(maxsize=None)
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


# Set by bench/triton_compile_check.py (the SM count of the GPU it compiles for): the compiled
# GPU launch configurations then apply to CPU tensors, whose kernels it compiles without running.
COMPILE_ONLY_SMS: "int | None" = None


def gpu_config(device: torch.device) -> bool:
    """Whether the compiled GPU's launch configurations apply (else the interpreter's tiny ones)."""
    return COMPILE_ONLY_SMS is not None or (not INTERPRET and device.type == "cuda")


def num_sms(device: torch.device) -> int:
    if COMPILE_ONLY_SMS is not None:
        return COMPILE_ONLY_SMS
    if device.type == "cuda":
        return _sm_count(device.index if device.index is not None else torch.cuda.current_device())
    return 4


# Elements one program of an elementwise / row-reduction kernel handles per step, and its warps.
# GPU values measured on an NVIDIA H200 (see the report in the README's Triton section); the
# interpreter runs a tile as one numpy array, so small tiles there only serve to exercise the
# multi-block paths in the tests.
GPU_TILE = 2048  # elements per program
GPU_WARPS = 4  # warps per program
GPU_LOSS_BLOCK = 2048  # largest chunk of the single-program loss kernels
_INTERP_TILE = 64


def tile_config(b: int, d: int, device: torch.device):
    """(ROWS, BLOCK_D, num_warps) for a (B, D) batch-major array walked tile by tile.

    A tile is ROWS samples x BLOCK_D elements of each: one sample's row when D is large, several
    rows when D is small (the 2-d gradients of a toy GAN), so a program never idles on a short row.
    """
    gpu = gpu_config(device)
    tile = GPU_TILE if gpu else _INTERP_TILE
    block_d = min(next_pow2(d), tile)
    rows = max(1, min(tile // block_d, next_pow2(b)))
    warps = min(GPU_WARPS, max(1, rows * block_d // 128)) if gpu else 1
    return rows, block_d, warps


# Loss kernels: up to LOSS_ONE_PROGRAM_MAX logits one program does everything (one launch); past
# it the grid path of losses.py splits them into at most LOSS_MAX_PARTIALS chunks, each a multiple
# of LOSS_GRID_TILE elements. The same crossover as csrc/cuda/losses.cu
# (kOneBlockMax, reasons there). In the interpreter the limits are tiny so that the tests' "big"
# logits (1000) take the grid path, the finisher's loop included.
LOSS_ONE_PROGRAM_MAX = 8192
LOSS_MAX_PARTIALS = 2048
LOSS_GRID_TILE = 1024  # elements per program step (8 per thread at 4 warps: two 128-bit loads)
LOSS_GRID_WARPS = 4  # an estimate: `python bench/triton_tune.py --only losses` sweeps tile x warps on a GPU
_INTERP_LOSS = dict(one_program_max=256, max_partials=8, tile=32, finish_block=4)


def loss_one_program_max(device: torch.device) -> int:
    return LOSS_ONE_PROGRAM_MAX if gpu_config(device) else _INTERP_LOSS["one_program_max"]


def loss_grid_config(n: int, device: torch.device):
    """(per, grid, BLOCK, num_warps, FBLOCK) of the grid loss path for n = max(N_r, N_f) logits.

    The chunk per program depends on n alone (never on the card), so the partial sums, and the
    bits of the loss, are the same on every GPU.
    """
    if gpu_config(device):
        tile, max_parts, warps, fmax = LOSS_GRID_TILE, LOSS_MAX_PARTIALS, LOSS_GRID_WARPS, 1024
    else:
        tile, max_parts, warps, fmax = _INTERP_LOSS["tile"], _INTERP_LOSS["max_partials"], 1, _INTERP_LOSS["finish_block"]
    per = cdiv(cdiv(n, max_parts), tile) * tile  # a multiple of the tile, >= n / max_parts
    grid = cdiv(n, per)
    return per, grid, tile, warps, min(next_pow2(grid), fmax)


def loss_config(n: int, device: torch.device):
    """(BLOCK, num_warps) of the single-program loss kernels."""
    if not gpu_config(device):
        return 32, 1
    block = min(max(next_pow2(n), 128), GPU_LOSS_BLOCK)
    return block, max(1, min(8, block // 256))
