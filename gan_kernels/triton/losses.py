"""Triton kernels of the discriminator / generator losses and their backward.

Every kind of both losses runs through the same kernels: the kind's LossSpec
(``gan_kernels._kinds.d_loss_spec`` / ``g_loss_spec``: a mode and two terms, as data) arrives as
compile-time flags (mode, real term, fake term, drift on/off) plus the terms' runtime constants,
and one ``@triton.jit`` helper, ``_tile``, computes a tile's terms and gradients for all three
modes (separate, relativistic, paired). The forward writes the loss and, in the same pass, the
per-element gradient for a unit upstream gradient, so the backward is one scale by grad_out
(``_loss_bwd_kernel``).

Two paths, as in csrc/cuda/losses.cu: up to ``LOSS_ONE_PROGRAM_MAX`` logits (a batch, a small
PatchGAN map) one program does everything in one launch (``_loss_fwd_kernel``); past it a grid
of programs writes the per-element outputs and fixed-order partial sums that a one-program
finisher adds (``_launch_loss_grid``). Both are deterministic (no atomics) and sync-free. See
docs/kernel_contract.md, section "Losses".
"""
from __future__ import annotations

import functools
from types import MappingProxyType
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from .. import _kinds
from ..reference import acc_dtype
from ._utils import (
    MODE_PAIRED, MODE_RELATIVISTIC, REDUCE_MEAN, REDUCE_NONE, TERM_BCE, TERM_BCE_ONE, TERM_BCE_ZERO, TERM_HINGE,
    TERM_LINEAR, TERM_SQUARE,
    cdiv, custom_op, device_ctx, div, join3, log1p_unit, loss_config, loss_grid_config, loss_one_program_max,
    sigmoid, split3, tl_acc,
)

_NONE, _MEAN = _kinds.REDUCTIONS["none"], _kinds.REDUCTIONS["mean"]


# --------------------------------------------------------------------------- per-element terms
@triton.jit
def _term_value(x, TYPE: tl.constexpr, t, c, ACC: tl.constexpr):
    """phi(x) = c * base(x) of math.h's term_value."""
    if TYPE == TERM_BCE_ONE:  # BCE(x, 1) = max(-x, 0) + log1p(e^-|x|): 0 at +inf, not inf - inf
        v = c * (tl.where(-x > 0, -x, 0.0) + log1p_unit(tl.exp(-tl.abs(x)), ACC))
    elif TYPE == TERM_BCE_ZERO:  # BCE(x, 0) = max(x, 0) + log1p(e^-|x|)
        v = c * (tl.where(x > 0, x, 0.0) + log1p_unit(tl.exp(-tl.abs(x)), ACC))
    elif TYPE == TERM_BCE:  # BCE(x, t) = max(x, 0) - x t + log1p(e^-|x|)
        v = c * (tl.where(x > 0, x, 0.0) - x * t + log1p_unit(tl.exp(-tl.abs(x)), ACC))
    elif TYPE == TERM_HINGE:  # relu(1 - t x)
        h = 1.0 - t * x
        v = c * tl.where(h < 0, 0.0, h)  # relu that keeps a NaN
    elif TYPE == TERM_LINEAR:  # x
        v = c * x
    elif TYPE == TERM_SQUARE:  # 1/2 (x - t)^2
        d = x - t
        v = c * 0.5 * d * d
    else:  # no term: never touch x (it may be a masked-off or absent tensor)
        v = tl.zeros_like(x)
    return v


@triton.jit
def _term_grad(x, TYPE: tl.constexpr, t, c, ACC: tl.constexpr):
    """phi'(x) of math.h's term_grad (the hinge's kink counts as flat, like autograd's relu)."""
    if TYPE == TERM_BCE_ONE:  # sigmoid(x) - 1 = -sigmoid(-x), without the cancellation
        g = -c * sigmoid(-x, ACC)
    elif TYPE == TERM_BCE_ZERO:
        g = c * sigmoid(x, ACC)
    elif TYPE == TERM_BCE:
        g = c * (sigmoid(x, ACC) - t)
    elif TYPE == TERM_HINGE:
        g = tl.where(1.0 - t * x <= 0, 0.0, -c * t) + tl.zeros_like(x)  # NaN passes, as autograd's relu
    elif TYPE == TERM_LINEAR:
        g = tl.zeros_like(x) + c
    elif TYPE == TERM_SQUARE:
        g = c * (x - t)
    else:
        g = tl.zeros_like(x)
    return g


@triton.jit
def _tile(
    r, f, mr, mf, shift_r, shift_f, rt, rc, ft, fc, drift, w_r, w_f,
    MODE: tl.constexpr, RTERM: tl.constexpr, FTERM: tl.constexpr, HAS_DRIFT: tl.constexpr, ACC: tl.constexpr,
):
    """One tile's loss terms and gradients for a unit upstream gradient; masked lanes give 0.

    The real term's argument is x = r - shift_r (shift_r = mean f for RELATIVISTIC, 0 for
    SEPARATE) or x = r - f (PAIRED); the fake term's is f - shift_f (PAIRED has none: the fake
    logits only enter through x). Returns (vr, vf, a, b): vr = phi_r(x) + drift r^2,
    vf = phi_f(f - shift_f), a = W_r phi_r'(x), b = W_f phi_f'(f - shift_f) (PAIRED: -a), where
    a real gradient adds the drift part 2 W_r drift r to a (see _drift_grad).
    """
    if MODE == MODE_PAIRED:
        x = r - f
    else:
        x = r - shift_r
    vr = _term_value(x, RTERM, rt, rc, ACC)
    if HAS_DRIFT:
        vr = vr + drift * r * r
    vr = tl.where(mr, vr, 0.0)
    a = tl.where(mr, w_r * _term_grad(x, RTERM, rt, rc, ACC), 0.0)
    if MODE == MODE_PAIRED:
        vf = tl.zeros_like(vr)
        b = -a
    else:
        y = f - shift_f
        vf = tl.where(mf, _term_value(y, FTERM, ft, fc, ACC), 0.0)
        b = tl.where(mf, w_f * _term_grad(y, FTERM, ft, fc, ACC), 0.0)
    return vr, vf, a, b


@triton.jit
def _drift_grad(a, r, drift, w_r, HAS_DRIFT: tl.constexpr):
    if HAS_DRIFT:
        a = a + 2.0 * w_r * drift * r
    return a


@triton.jit
def _weights(n_r, n_f, REDUCTION: tl.constexpr, ACC: tl.constexpr):
    """W of the contract: 1/N for "mean", 1 otherwise (max(., 1): a kind without real logits has N_r = 0)."""
    if REDUCTION == REDUCE_MEAN:
        w_r = div(1.0, tl.cast(tl.maximum(n_r, 1), ACC), ACC)
        w_f = div(1.0, tl.cast(tl.maximum(n_f, 1), ACC), ACC)
    else:
        w_r = tl.cast(1.0, ACC)
        w_f = tl.cast(1.0, ACC)
    return w_r, w_f


@triton.jit
def _consts(rt0, rt1, rt2, ft0, ft1, ft2, dr0, dr1, dr2, n_r, n_f, REDUCTION: tl.constexpr, ACC: tl.constexpr):
    """The term targets and drift rebuilt from their split3 parts, and the weights W_r, W_f."""
    w_r, w_f = _weights(n_r, n_f, REDUCTION, ACC)
    return join3(rt0, rt1, rt2, ACC), join3(ft0, ft1, ft2, ACC), join3(dr0, dr1, dr2, ACC), w_r, w_f


@triton.jit
def _sums(r_ptr, f_ptr, begin, length, n_r, n_f, ACC: tl.constexpr, BLOCK: tl.constexpr):
    """(sum of r, sum of f) over [begin, begin + length), each tensor masked to its own size."""
    idx = tl.arange(0, BLOCK)
    acc_r = tl.zeros([BLOCK], ACC)
    acc_f = tl.zeros([BLOCK], ACC)
    for step in range(0, length, BLOCK):
        offs = begin + step + idx
        acc_r += tl.load(r_ptr + offs, mask=offs < n_r, other=0.0).to(ACC)
        acc_f += tl.load(f_ptr + offs, mask=offs < n_f, other=0.0).to(ACC)
    return tl.sum(acc_r, axis=0), tl.sum(acc_f, axis=0)


@triton.jit
def _pass(
    r_ptr, f_ptr, loss_ptr, gr_ptr, gf_ptr, begin, length, n_r, n_f, n_out,
    shift_r, shift_f, c_r, c_f, rt, rc, ft, fc, drift, w_r, w_f,
    MODE: tl.constexpr, RTERM: tl.constexpr, FTERM: tl.constexpr, REDUCTION: tl.constexpr,
    HAS_DRIFT: tl.constexpr, STORE_LOSS: tl.constexpr, STORE_GRAD: tl.constexpr,
    ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    """One walk over [begin, begin + length): the "none" loss (STORE_LOSS), the gradients less
    (c_r, c_f) (STORE_GRAD), and the returned sums of the tiles' vr, vf, a and b."""
    idx = tl.arange(0, BLOCK)
    acc_r = tl.zeros([BLOCK], ACC)
    acc_f = tl.zeros([BLOCK], ACC)
    sum_a = tl.zeros([BLOCK], ACC)
    sum_b = tl.zeros([BLOCK], ACC)
    for step in range(0, length, BLOCK):
        offs = begin + step + idx
        mr = offs < n_r
        mf = offs < n_f
        r = tl.load(r_ptr + offs, mask=mr, other=0.0).to(ACC)
        f = tl.load(f_ptr + offs, mask=mf, other=0.0).to(ACC)
        vr, vf, a, b = _tile(r, f, mr, mf, shift_r, shift_f, rt, rc, ft, fc, drift, w_r, w_f,
                             MODE, RTERM, FTERM, HAS_DRIFT, ACC)
        if STORE_LOSS:
            if REDUCTION == REDUCE_NONE:
                tl.store(loss_ptr + offs, vr + vf, mask=offs < n_out)
        acc_r += vr
        acc_f += vf
        sum_a += a
        sum_b += b
        if STORE_GRAD:
            tl.store(gr_ptr + offs, _drift_grad(a, r, drift, w_r, HAS_DRIFT) - c_r, mask=mr)
            tl.store(gf_ptr + offs, b - c_f, mask=mf)
    return tl.sum(acc_r, axis=0), tl.sum(acc_f, axis=0), tl.sum(sum_a, axis=0), tl.sum(sum_b, axis=0)


@triton.jit
def _loss_fwd_kernel(
    r_ptr, f_ptr, loss_ptr, gr_ptr, gf_ptr,
    n_r, n_f, n_max, n_out,
    rt0, rt1, rt2, rc, ft0, ft1, ft2, fc, dr0, dr1, dr2,
    MODE: tl.constexpr, RTERM: tl.constexpr, FTERM: tl.constexpr, REDUCTION: tl.constexpr,
    COMPUTE_GRAD: tl.constexpr, HAS_DRIFT: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    """The whole loss in one program (small logits): means, terms, sums and gradients."""
    rt, ft, drift, w_r, w_f = _consts(rt0, rt1, rt2, ft0, ft1, ft2, dr0, dr1, dr2, n_r, n_f, REDUCTION, ACC)
    zero = tl.cast(0.0, ACC)
    shift_r = zero
    shift_f = zero
    if MODE == MODE_RELATIVISTIC:  # RELATIVISTIC: each term is shifted by the other tensor's mean
        tot_r, tot_f = _sums(r_ptr, f_ptr, 0, n_max, n_r, n_f, ACC, BLOCK)
        shift_r = div(tot_f, tl.cast(n_f, ACC), ACC)  # mean f
        shift_f = div(tot_r, tl.cast(n_r, ACC), ACC)  # mean r
    # Relativistic gradients wait for the cross terms (second pass); the others are final now.
    if MODE == MODE_RELATIVISTIC:
        store_grad: tl.constexpr = False
    else:
        store_grad: tl.constexpr = COMPUTE_GRAD
    tot_r, tot_f, tot_a, tot_b = _pass(
        r_ptr, f_ptr, loss_ptr, gr_ptr, gf_ptr, 0, n_max, n_r, n_f, n_out,
        shift_r, shift_f, zero, zero, rt, rc, ft, fc, drift, w_r, w_f,
        MODE, RTERM, FTERM, REDUCTION, HAS_DRIFT, True, store_grad, ACC, BLOCK,
    )
    if MODE == MODE_RELATIVISTIC and COMPUTE_GRAD:
        # grad_real_k = a_k + 2 W drift r_k - (1/N_r) sum_j b_j, grad_fake_k = b_k - (1/N_f) sum_i a_i;
        # a and b are recomputed rather than re-read from memory written by other threads.
        c_r = div(tot_b, tl.cast(n_r, ACC), ACC)
        c_f = div(tot_a, tl.cast(n_f, ACC), ACC)
        _pass(
            r_ptr, f_ptr, loss_ptr, gr_ptr, gf_ptr, 0, n_max, n_r, n_f, n_out,
            shift_r, shift_f, c_r, c_f, rt, rc, ft, fc, drift, w_r, w_f,
            MODE, RTERM, FTERM, REDUCTION, HAS_DRIFT, False, True, ACC, BLOCK,
        )
    if REDUCTION != REDUCE_NONE:
        tl.store(loss_ptr, w_r * tot_r + w_f * tot_f)


# --------------------------------------------------------------------------- multi-program path
# Large logits (a big PatchGAN map) would leave one program walking millions of elements on one
# SM. Past ONE_PROGRAM_MAX elements the loss runs as a grid instead, mirroring csrc/cuda/losses.cu:
# program p owns the fixed chunk [p P, (p + 1) P) with P = _chunk_plan(n) (a function of n alone,
# so the bits do not depend on the card), writes its elements' outputs and one partial sum per
# quantity into a scratch row of G partials, and a one-program finisher adds the partials in
# program order. Scratch layout (acc dtype): rows 0..3 of G partials (sum of r / loss_r, sum of
# f / loss_f, sum a, sum b), then [mean r, mean f, c_r, c_f]. Launches:
#   SEPARATE / PAIRED: terms + finish (none: terms only);
#   RELATIVISTIC: sums + finish(means) + terms + finish(loss, c_r, c_f) + correction.
# Nothing is read back to the host (CUDA-graph capturable); no atomics (deterministic).


@triton.jit
def _loss_sums_kernel(r_ptr, f_ptr, part_ptr, n_r, n_f, per, G, ACC: tl.constexpr, BLOCK: tl.constexpr):
    """part[p] = sum of program p's chunk of r, part[G + p] = the same of f (relativistic means)."""
    pid = tl.program_id(0)
    tot_r, tot_f = _sums(r_ptr, f_ptr, pid.to(tl.int64) * per, per, n_r, n_f, ACC, BLOCK)
    tl.store(part_ptr + pid, tot_r)
    tl.store(part_ptr + G + pid, tot_f)


@triton.jit
def _row_total(row_ptr, G, ACC: tl.constexpr, FBLOCK: tl.constexpr):
    """Sum of G partials in a fixed order."""
    idx = tl.arange(0, FBLOCK)
    acc = tl.zeros([FBLOCK], ACC)
    for start in range(0, G, FBLOCK):
        acc += tl.load(row_ptr + start + idx, mask=start + idx < G, other=0.0)
    return tl.sum(acc, axis=0)


@triton.jit
def _loss_finish_kernel(
    part_ptr, loss_ptr, n_r, n_f, G,
    FINISH_MEANS: tl.constexpr, REDUCTION: tl.constexpr, WITH_AB: tl.constexpr,
    ACC: tl.constexpr, FBLOCK: tl.constexpr,
):
    """One program: the means (FINISH_MEANS), or the loss and, with WITH_AB, c_r and c_f."""
    tot_r = _row_total(part_ptr, G, ACC, FBLOCK)
    tot_f = _row_total(part_ptr + G, G, ACC, FBLOCK)
    if FINISH_MEANS:
        tl.store(part_ptr + 4 * G, div(tot_r, tl.cast(n_r, ACC), ACC))
        tl.store(part_ptr + 4 * G + 1, div(tot_f, tl.cast(n_f, ACC), ACC))
    else:
        w_r, w_f = _weights(n_r, n_f, REDUCTION, ACC)
        tl.store(loss_ptr, w_r * tot_r + w_f * tot_f)
        if WITH_AB:
            tot_a = _row_total(part_ptr + 2 * G, G, ACC, FBLOCK)
            tot_b = _row_total(part_ptr + 3 * G, G, ACC, FBLOCK)
            tl.store(part_ptr + 4 * G + 2, div(tot_b, tl.cast(n_r, ACC), ACC))  # c_r
            tl.store(part_ptr + 4 * G + 3, div(tot_a, tl.cast(n_f, ACC), ACC))  # c_f


@triton.jit
def _loss_terms_kernel(
    r_ptr, f_ptr, loss_ptr, gr_ptr, gf_ptr, part_ptr,
    n_r, n_f, n_out, per, G,
    rt0, rt1, rt2, rc, ft0, ft1, ft2, fc, dr0, dr1, dr2,
    MODE: tl.constexpr, RTERM: tl.constexpr, FTERM: tl.constexpr, REDUCTION: tl.constexpr,
    COMPUTE_GRAD: tl.constexpr, HAS_DRIFT: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr,
):
    """Program p: its chunk's outputs ("none" loss, gradients) and partial sums (rows 0..3).

    Relativistic gradients are stored as a_k + drift part and b_k; the correction kernel
    subtracts c_r / c_f once the finisher has them."""
    rt, ft, drift, w_r, w_f = _consts(rt0, rt1, rt2, ft0, ft1, ft2, dr0, dr1, dr2, n_r, n_f, REDUCTION, ACC)
    pid = tl.program_id(0)
    zero = tl.cast(0.0, ACC)
    shift_r = zero
    shift_f = zero
    if MODE == MODE_RELATIVISTIC:
        shift_f = tl.load(part_ptr + 4 * G)  # mean r
        shift_r = tl.load(part_ptr + 4 * G + 1)  # mean f
    tot_r, tot_f, tot_a, tot_b = _pass(
        r_ptr, f_ptr, loss_ptr, gr_ptr, gf_ptr, pid.to(tl.int64) * per, per, n_r, n_f, n_out,
        shift_r, shift_f, zero, zero, rt, rc, ft, fc, drift, w_r, w_f,
        MODE, RTERM, FTERM, REDUCTION, HAS_DRIFT, True, COMPUTE_GRAD, ACC, BLOCK,
    )
    if REDUCTION != REDUCE_NONE:
        tl.store(part_ptr + pid, tot_r)
        tl.store(part_ptr + G + pid, tot_f)
    if MODE == MODE_RELATIVISTIC and COMPUTE_GRAD:
        tl.store(part_ptr + 2 * G + pid, tot_a)
        tl.store(part_ptr + 3 * G + pid, tot_b)


@triton.jit
def _loss_correct_kernel(gr_ptr, gf_ptr, part_ptr, n_r, n_f, G, BLOCK: tl.constexpr):
    """Relativistic gradients: grad_real -= c_r, grad_fake -= c_f."""
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    c_r = tl.load(part_ptr + 4 * G + 2)
    c_f = tl.load(part_ptr + 4 * G + 3)
    mr = offs < n_r
    mf = offs < n_f
    tl.store(gr_ptr + offs, tl.load(gr_ptr + offs, mask=mr, other=0.0) - c_r, mask=mr)
    tl.store(gf_ptr + offs, tl.load(gf_ptr + offs, mask=mf, other=0.0) - c_f, mask=mf)


def _term_code(term: _kinds.Term) -> int:
    """The kernel's compile-time term code: BCE against 1 or 0 gets its own (see _utils)."""
    if term.type == _kinds.TERM_BCE and term.t in (0.0, 1.0):
        return TERM_BCE_ONE.value if term.t == 1.0 else TERM_BCE_ZERO.value
    return term.type


@functools.lru_cache(maxsize=1024)  # a training run repeats a handful of these every step
def _launch_args(spec: _kinds.LossSpec, has_real: bool, reduction: int, compute_grad: bool, acc: torch.dtype):
    """(keep, runtime scalars, compile-time flags) of a launch: its arguments' values, not its data.

    The sizes' launch configuration is not cached: ``bench/triton_tune.py`` changes those limits while it runs.
    """
    keep = compute_grad and not (spec.mode == _kinds.MODE_RELATIVISTIC and reduction == _NONE)
    consts = (
        *split3(spec.real.t, "real term target"), float(spec.real.c),
        *split3(spec.fake.t, "fake term target"), float(spec.fake.c),
        *split3(spec.drift, "drift"),
    )
    flags = MappingProxyType(dict(  # read-only: every later launch with these arguments shares it
        MODE=spec.mode, RTERM=_term_code(spec.real) if has_real else _kinds.TERM_NONE,
        FTERM=_term_code(spec.fake), REDUCTION=reduction, COMPUTE_GRAD=keep,
        HAS_DRIFT=(spec.drift != 0.0 and has_real), ACC=tl_acc(acc),
    ))
    return keep, consts, flags


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
    n_max = max(n_r, n_f)
    keep, consts, flags = _launch_args(spec, r is not None, reduction, compute_grad, acc)
    loss = out_like.new_empty(out_like.shape if reduction == _NONE else (), dtype=acc)
    if keep:
        g_r = torch.empty(real.shape, dtype=acc_dtype(real.dtype), device=real.device) if real is not None else None
        g_f = torch.empty(fake.shape, dtype=acc_dtype(fake.dtype), device=fake.device)
    else:
        g_r = g_f = None
    args = (
        r if r is not None else f, f, loss,
        g_r if g_r is not None else loss, g_f if g_f is not None else loss,
    )
    with device_ctx(fake):
        if n_max <= loss_one_program_max(fake.device):
            block, warps = loss_config(n_max, fake.device)
            _loss_fwd_kernel[(1,)](*args, n_r, n_f, n_max, out_like.numel(), *consts,
                                   **flags, BLOCK=block, num_warps=warps)
        else:
            _launch_loss_grid(args, consts, flags, spec.mode, reduction, keep, n_r, n_f, out_like.numel(), acc, fake)
    if g_r is None:  # two distinct empties: a custom op's outputs may not alias each other
        g_r = fake.new_empty((0,), dtype=acc)
    if g_f is None:
        g_f = fake.new_empty((0,), dtype=acc)
    return loss, g_r, g_f


def _launch_loss_grid(args, consts, flags, mode, reduction, keep, n_r, n_f, n_out, acc, fake) -> None:
    """The multi-program path (see the comment above _loss_sums_kernel)."""
    r, f, loss, g_r, g_f = args
    n_max = max(n_r, n_f)
    per, grid, block, warps, fblock = loss_grid_config(n_max, fake.device)
    part = torch.empty((4 * grid + 4,), dtype=acc, device=fake.device)
    relativistic = mode == _kinds.MODE_RELATIVISTIC
    if relativistic:
        _loss_sums_kernel[(grid,)](r, f, part, n_r, n_f, per, grid, ACC=flags["ACC"], BLOCK=block, num_warps=warps)
        _loss_finish_kernel[(1,)](part, loss, n_r, n_f, grid, FINISH_MEANS=True, REDUCTION=reduction,
                                  WITH_AB=False, ACC=flags["ACC"], FBLOCK=fblock, num_warps=warps)
    _loss_terms_kernel[(grid,)](*args, part, n_r, n_f, n_out, per, grid, *consts, **flags,
                                BLOCK=block, num_warps=warps)
    if reduction == _NONE:
        return  # relativistic "none" keeps no gradients: nothing to finish or correct
    with_ab = relativistic and keep
    _loss_finish_kernel[(1,)](part, loss, n_r, n_f, grid, FINISH_MEANS=False, REDUCTION=reduction,
                              WITH_AB=with_ab, ACC=flags["ACC"], FBLOCK=fblock, num_warps=warps)
    if with_ab:
        _loss_correct_kernel[(cdiv(n_max, block),)](g_r, g_f, part, n_r, n_f, grid, BLOCK=block, num_warps=warps)


@functools.lru_cache(maxsize=256)
def _spec(mode: int, real_term: int, real_target: float, real_coef: float, fake_term: int, fake_target: float,
          fake_coef: float, drift: float, op: str = "loss_forward") -> _kinds.LossSpec:
    if mode not in (_kinds.MODE_SEPARATE, _kinds.MODE_RELATIVISTIC, _kinds.MODE_PAIRED):
        raise ValueError(f"gan_kernels_triton::{op}: unknown loss mode code {mode}")
    if not (_kinds.TERM_NONE <= real_term <= _kinds.TERM_SQUARE and _kinds.TERM_NONE <= fake_term <= _kinds.TERM_SQUARE):
        raise ValueError(f"gan_kernels_triton::{op}: unknown loss term code (real {real_term}, fake {fake_term})")
    return _kinds.LossSpec(mode, _kinds.Term(real_term, real_target, real_coef),
                           _kinds.Term(fake_term, fake_target, fake_coef), drift)


@custom_op("loss_forward")
def loss_forward(
    real: Optional[Tensor], fake: Tensor, mode: int, real_term: int, real_target: float, real_coef: float,
    fake_term: int, fake_target: float, fake_coef: float, drift: float, reduction: int, compute_grad: bool,
) -> Tuple[Tensor, Tensor, Tensor]:
    spec = _spec(mode, real_term, real_target, real_coef, fake_term, fake_target, fake_coef, drift)
    if not spec.uses_real:
        real = None  # a separate-mode G loss ignores real logits passed anyway
    elif real is None:
        raise ValueError("gan_kernels_triton::loss_forward: this loss needs the real logits")
    elif real.device != fake.device:
        raise ValueError(f"gan_kernels_triton::loss_forward: real is on {real.device} but fake is on {fake.device}")
    elif real.dtype != fake.dtype:  # the public API promotes first; this guards the raw op
        raise TypeError(f"real and fake must have the same dtype, got {real.dtype} and {fake.dtype}")
    return _launch_loss(spec, real, fake, reduction, compute_grad, fake)


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


@custom_op("loss_backward")
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
