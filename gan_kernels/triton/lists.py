"""Triton kernels of the list ops (multi-discriminator training): losses over lists of logits and
feature matching, each direction one launch over a table of the list's tensors.

A launch serves a whole list of one dtype. Its int64 table holds one row per tensor (or pair):
data pointers, sizes, the chunk every program of that tensor walks, and its first program. The
grid is the sum of the tensors' chunk counts; program p finds its row by counting the rows that
start at or before p, so one tensor of a million logits next to fifty small ones costs no idle
programs. Sums are deterministic: each tensor is cut into fixed chunks (a function of its size
alone, as in the single-tensor loss), each chunk's partial sum has its own slot, and a
one-program finisher adds a tensor's slots, then the tensors' terms, in list order. Lists that
mix dtypes run one launch (and one finisher) per dtype, and one more small kernel adds the
terms in list order. Nothing is read back to the host and nothing uses atomics.

Relativistic losses, whose every term needs the other side's mean, run the single-tensor loss
per discriminator; so does a list of one, which therefore gives the single call's bits.
"""
from __future__ import annotations

import collections
import struct
from typing import List, Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from .. import _kinds
from .._layout import empty_batch_major, is_batch_major
from ..reference import acc_dtype
from ._utils import (
    _INTERP_LOSS, GPU_TILE, GPU_WARPS, REDUCE_SUM,
    cdiv, custom_op, device_ctx, div, gpu_config, loss_grid_config, next_pow2, tl_acc,
)
from .losses import _consts, _launch_args, _launch_loss, _pass, _row_total, _spec

_NONE, _SUM = _kinds.REDUCTIONS["none"], _kinds.REDUCTIONS["sum"]
_TL_DTYPES = {torch.float16: tl.float16, torch.bfloat16: tl.bfloat16, torch.float32: tl.float32,
              torch.float64: tl.float64}

# Table columns (the host code writes each row as a tuple in this order). Loss forward: one row
# per discriminator.
# W_R, W_F: the float64 bits of the reduction weights (1/N for "mean"), made on the host so the
# finisher's loop over discriminators has no division (a float64 one is a call with a stack frame).
L_REAL, L_FAKE, L_GREAL, L_GFAKE, L_NREAL, L_NFAKE, L_PER, L_FIRST, L_COUNT, L_INDEX, L_WR, L_WF = map(
    tl.constexpr, range(12))
L_WIDTH = tl.constexpr(12)
# Loss backward: one row per saved gradient.
B_SAVED, B_OUT, B_N, B_FIRST = map(tl.constexpr, range(4))
B_WIDTH = tl.constexpr(4)
# Feature matching forward and backward: one row per pair (W_BITS: the weight's float64 bits).
F_REAL, F_FAKE, F_DREAL, F_DFAKE, F_N, F_PER, F_FIRST, F_COUNT, F_INDEX, F_WBITS = map(tl.constexpr, range(10))
F_WIDTH = tl.constexpr(10)

_SEARCH_MAX = 128  # table rows compared at once when a program looks for its row


# --------------------------------------------------------------------------- the table
# The table must be on the tensors' device before the launch. A pageable host-to-device copy
# would wait for the GPU and cannot be captured in a CUDA graph; a copy from pinned memory with
# non_blocking=True does neither. The pinned buffers are cached by their contents (the same
# tensors, hence the same rows, come back every training step), bounded; a buffer a CUDA graph
# captured is read again by every replay, so those are kept for the life of the process.
_PINNED: "collections.OrderedDict[tuple, Tensor]" = collections.OrderedDict()
_PINNED_MAX = 256
_CAPTURED: dict = {}


def _table(rows: List[tuple], device: torch.device) -> Tensor:
    if device.type != "cuda":  # the interpreter reads host memory
        return torch.tensor(rows, dtype=torch.int64)
    key = tuple(rows)
    host = _PINNED.get(key)
    if host is None:
        host = torch.tensor(rows, dtype=torch.int64).pin_memory()
        _PINNED[key] = host
        if len(_PINNED) > _PINNED_MAX:
            _PINNED.popitem(last=False)
    else:
        _PINNED.move_to_end(key)
    if torch.cuda.is_current_stream_capturing():
        _CAPTURED[key] = host
    table = torch.empty(host.shape, dtype=torch.int64, device=device)
    table.copy_(host, non_blocking=True)
    return table


def _weight(n: int, reduction: int, acc: torch.dtype) -> float:
    """The kernels' W: 1/max(N, 1) rounded once in acc for "mean" (as their IEEE division), else 1."""
    if reduction == _SUM:
        return 1.0
    if acc == torch.float64:
        return 1.0 / max(n, 1)
    # float32: N rounded to float32 as the kernel's cast does, the quotient taken in float64 and
    # rounded to float32, which is the correctly rounded float32 quotient (53 >= 2 * 24 + 2).
    return _to_f32(1.0 / _to_f32(float(max(n, 1))))


def _to_f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _float_bits(x: float) -> int:
    """A float64 as the int64 with its bits: a weight travels in the int64 table exactly."""
    return struct.unpack("<q", struct.pack("<d", float(x)))[0]


def _search_block(n_rows: int) -> int:
    return min(next_pow2(n_rows), _SEARCH_MAX)


def _stream_config(device: torch.device):
    """(BLOCK, num_warps) of the elementwise backward kernels: one block per program."""
    return (GPU_TILE, GPU_WARPS) if gpu_config(device) else (32, 1)


def _finish_block(max_count: int, device: torch.device) -> int:
    """FBLOCK of a finisher: a tensor's partial sums are added FBLOCK at a time (losses.py's limits)."""
    return min(next_pow2(max_count), 1024 if gpu_config(device) else _INTERP_LOSS["finish_block"])


def _groups(dtypes) -> "dict[torch.dtype, list]":
    """List indices by dtype, each group in list order (a launch serves one dtype)."""
    groups: dict = {}
    for i, d in enumerate(dtypes):
        groups.setdefault(d, []).append(i)
    return groups


def _list_out_dtype(tensors) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


# --------------------------------------------------------------------------- shared jit helpers
@triton.jit
def _find_row(table, pid, n_rows, WIDTH: tl.constexpr, COL: tl.constexpr, SEARCH: tl.constexpr):
    """The row whose programs include pid: the last row starting at or before it (rows are in
    program order; a row with no programs starts where the next one does and is never chosen)."""
    idx = tl.arange(0, SEARCH)
    count = tl.zeros([SEARCH], tl.int32)
    for start in range(0, n_rows, SEARCH):
        rows = start + idx
        inside = rows < n_rows
        firsts = tl.load(table + rows.to(tl.int64) * WIDTH + COL, mask=inside, other=0)
        count += (inside & (firsts <= pid)).to(tl.int32)
    return (tl.sum(count, axis=0) - 1).to(tl.int64)


@triton.jit
def _ptr(row_ptr, COL: tl.constexpr, DTYPE: tl.constexpr):
    return tl.load(row_ptr + COL).to(tl.pointer_type(DTYPE), bitcast=True)


@triton.jit
def _sum_in_order_kernel(terms_ptr, total_ptr, n):
    """total = terms[0] + terms[1] + ... in list order (lists mixing dtypes)."""
    total = tl.load(terms_ptr)
    for i in range(1, n):
        total += tl.load(terms_ptr + i)
    tl.store(total_ptr, total)


# --------------------------------------------------------------------------- losses over lists
@triton.jit
def _loss_list_fwd_kernel(
    table, part_ptr, T, n_rows,
    rt0, rt1, rt2, rc, ft0, ft1, ft2, fc, dr0, dr1, dr2,
    MODE: tl.constexpr, RTERM: tl.constexpr, FTERM: tl.constexpr, REDUCTION: tl.constexpr,
    COMPUTE_GRAD: tl.constexpr, HAS_DRIFT: tl.constexpr, ACC: tl.constexpr, DTYPE: tl.constexpr,
    BLOCK: tl.constexpr, SEARCH: tl.constexpr,
):
    """Program p: one chunk of one discriminator's logits; its gradients, and its two partial
    sums (real terms, fake terms) in part[p] and part[T + p]."""
    pid = tl.program_id(0)
    row = table + _find_row(table, pid, n_rows, L_WIDTH, L_FIRST, SEARCH) * L_WIDTH
    n_r = tl.load(row + L_NREAL)
    n_f = tl.load(row + L_NFAKE)
    per = tl.load(row + L_PER)
    begin = (pid - tl.load(row + L_FIRST)) * per
    r_ptr = _ptr(row, L_REAL, DTYPE)
    f_ptr = _ptr(row, L_FAKE, DTYPE)
    gr_ptr = _ptr(row, L_GREAL, ACC)
    gf_ptr = _ptr(row, L_GFAKE, ACC)
    rt, ft, drift, w_r, w_f = _consts(rt0, rt1, rt2, ft0, ft1, ft2, dr0, dr1, dr2, n_r, n_f, REDUCTION, ACC)
    zero = tl.cast(0.0, ACC)
    tot_r, tot_f, _, _ = _pass(
        r_ptr, f_ptr, gf_ptr, gr_ptr, gf_ptr, begin, per, n_r, n_f, 0,
        zero, zero, zero, zero, rt, rc, ft, fc, drift, w_r, w_f,
        MODE, RTERM, FTERM, REDUCTION, HAS_DRIFT, False, COMPUTE_GRAD, ACC, BLOCK,
    )
    tl.store(part_ptr + pid, tot_r)
    tl.store(part_ptr + T + pid, tot_f)


@triton.jit
def _loss_list_finish_kernel(
    table, part_ptr, terms_ptr, total_ptr, T, n_rows,
    REDUCTION: tl.constexpr, WRITE_TOTAL: tl.constexpr, ACC: tl.constexpr, OUT: tl.constexpr,
    FBLOCK: tl.constexpr,
):
    """One program: each discriminator's loss W_r sum_r + W_f sum_f into terms, in list order,
    and (a list of one dtype) their sum."""
    total = tl.cast(0.0, OUT)
    for j in range(0, n_rows):
        row = table + j * L_WIDTH
        first = tl.load(row + L_FIRST)
        count = tl.load(row + L_COUNT)
        tot_r = _row_total(part_ptr + first, count, ACC, FBLOCK)
        tot_f = _row_total(part_ptr + T + first, count, ACC, FBLOCK)
        w_r = tl.load(row + L_WR).to(tl.float64, bitcast=True).to(ACC)
        w_f = tl.load(row + L_WF).to(tl.float64, bitcast=True).to(ACC)
        term = (w_r * tot_r + w_f * tot_f).to(OUT)
        tl.store(terms_ptr + tl.load(row + L_INDEX), term)
        total += term
    if WRITE_TOTAL:
        tl.store(total_ptr, total)


def _check_loss_lists(real, fake, spec: _kinds.LossSpec, reduction: int):
    """The device op's checks (checks.h check_loss_lists); returns (reals or None, fakes)."""
    op = "gan_kernels_triton::loss_list_forward"
    d = len(fake)
    if d == 0:
        raise ValueError(f"{op}: the list of logits is empty")
    if reduction not in (_kinds.REDUCTIONS["mean"], _SUM):
        raise ValueError(f"{op}: lists of logits take reduction 'mean' or 'sum' (codes 1, 2), got {reduction}")
    uses_real = spec.uses_real
    if uses_real and len(real) != d:
        raise ValueError(f"{op}: {len(real)} real and {d} fake tensors; this loss needs one real tensor per fake one")
    device = fake[0].device
    for i in range(d):
        f = fake[i]
        r = real[i] if uses_real else None
        for x, name in ((f, "fake"), (r, "real")):
            if x is None:
                continue
            if x.dim() < 1:
                raise ValueError(f"{op}: {name} must have a batch dimension")
            if x.dtype not in _TL_DTYPES:
                raise ValueError(f"{op}: unsupported dtype {x.dtype}")
            if x.device != device:
                raise ValueError(f"{op}: discriminator {i}'s logits are not on {device} with the others")
        if r is None:
            continue
        if r.dtype != f.dtype:
            raise TypeError(f"{op}: real and fake must have the same dtype, got {r.dtype} and {f.dtype}")
        if spec.mode == _kinds.MODE_PAIRED and r.shape != f.shape:
            raise ValueError(f"{op}: real and fake must have the same shape for a paired loss, "
                             f"got {tuple(r.shape)} and {tuple(f.shape)}")
        if spec.mode == _kinds.MODE_RELATIVISTIC and (r.numel() == 0 or f.numel() == 0):
            raise ValueError(f"{op}: the relativistic loss needs non-empty logits")
    return (list(real) if uses_real else None), list(fake)


def _loss_list_looped(spec, reals, fakes, reduction, compute_grad, out):
    """Each discriminator through the single-tensor loss (relativistic lists, lists of one)."""
    losses, g_real, g_fake = [], [], []
    for i, f in enumerate(fakes):
        loss, gr, gf = _launch_loss(spec, reals[i] if reals is not None else None, f, reduction, compute_grad, f)
        losses.append(loss)
        if compute_grad:
            if reals is not None:
                g_real.append(gr)
            g_fake.append(gf)
    if len(losses) == 1:
        total = losses[0] if losses[0].dtype == out else losses[0].to(out)
        return total, total.reshape(1).clone(), g_real, g_fake  # outputs may not alias
    terms = torch.stack([x.to(out) for x in losses])
    total = terms.new_empty(())
    with device_ctx(terms):
        _sum_in_order_kernel[(1,)](terms, total, len(losses))
    return total, terms, g_real, g_fake


@custom_op("loss_list_forward")
def loss_list_forward(
    real: List[Tensor], fake: List[Tensor], mode: int, real_term: int, real_target: float, real_coef: float,
    fake_term: int, fake_target: float, fake_coef: float, drift: float, reduction: int, compute_grad: bool,
) -> Tuple[Tensor, Tensor, List[Tensor], List[Tensor]]:
    spec = _spec(mode, real_term, real_target, real_coef, fake_term, fake_target, fake_coef, drift,
                 "loss_list_forward")
    reals, fakes = _check_loss_lists(real, fake, spec, reduction)
    out = _list_out_dtype(fakes)
    if len(fakes) == 1 or spec.mode == _kinds.MODE_RELATIVISTIC:
        return _loss_list_looped(spec, reals, fakes, reduction, compute_grad, out)
    device = fakes[0].device
    d = len(fakes)
    terms = torch.empty((d,), dtype=out, device=device)
    total = torch.empty((), dtype=out, device=device)
    g_real: List[Optional[Tensor]] = [None] * d
    g_fake: List[Optional[Tensor]] = [None] * d
    groups = _groups(f.dtype for f in fakes)
    keep_alive = []  # contiguous copies the kernels read
    with device_ctx(fakes[0]):
        for dtype, idxs in groups.items():
            acc = acc_dtype(dtype)
            keep, consts, flags = _launch_args(spec, reals is not None, reduction, compute_grad, acc)
            rows, first, max_count = [], 0, 1
            for i in idxs:
                # Logits are small: a copy of a strided map costs less than strided loads (losses.py).
                f = fakes[i].contiguous()
                r = reals[i].contiguous() if reals is not None else None
                keep_alive += [f, r]
                n_f, n_r = f.numel(), (r.numel() if r is not None else 0)
                per, _, block, warps, _ = loss_grid_config(max(n_r, n_f), device)
                count = cdiv(max(n_r, n_f), per)
                if keep:
                    g_fake[i] = torch.empty(f.shape, dtype=acc, device=device)
                    if r is not None:
                        g_real[i] = torch.empty(r.shape, dtype=acc, device=device)
                rows.append((
                    (r if r is not None else f).data_ptr(), f.data_ptr(),
                    g_real[i].data_ptr() if g_real[i] is not None else 0,
                    g_fake[i].data_ptr() if g_fake[i] is not None else 0,
                    n_r, n_f, per, first, count, i,
                    _float_bits(_weight(n_r, reduction, acc)), _float_bits(_weight(n_f, reduction, acc)),
                ))
                first += count
                max_count = max(max_count, count)
            table = _table(rows, device)
            part = torch.empty((2 * max(first, 1),), dtype=acc, device=device)
            # float64 tiles plus the table's pointers exceed 255 registers a thread at the
            # single kernel's warp count: twice the warps, half the tile per thread, no spills.
            if acc == torch.float64:
                warps *= 2
            if first:
                _loss_list_fwd_kernel[(first,)](
                    table, part, first, len(rows), *consts, **flags, DTYPE=_TL_DTYPES[dtype],
                    BLOCK=block, SEARCH=_search_block(len(rows)), num_warps=warps,
                )
            fblock = _finish_block(max_count, device)
            _loss_list_finish_kernel[(1,)](
                table, part, terms, total, first, len(rows), REDUCTION=reduction, WRITE_TOTAL=len(groups) == 1,
                ACC=tl_acc(acc), OUT=tl_acc(out), FBLOCK=fblock, num_warps=warps,
            )
        if len(groups) > 1:
            _sum_in_order_kernel[(1,)](terms, total, d)
    if not compute_grad:
        return total, terms, [], []
    return total, terms, ([g for g in g_real] if reals is not None else []), [g for g in g_fake]


@triton.jit
def _loss_list_bwd_kernel(
    go_ptr, table, n_rows, SAVED: tl.constexpr, OUT: tl.constexpr, ACC: tl.constexpr,
    BLOCK: tl.constexpr, SEARCH: tl.constexpr,
):
    """out[k] = (grad_out * saved[k]).to(out dtype), one block of one tensor per program."""
    pid = tl.program_id(0)
    row = table + _find_row(table, pid, n_rows, B_WIDTH, B_FIRST, SEARCH) * B_WIDTH
    n = tl.load(row + B_N)
    offs = (pid - tl.load(row + B_FIRST)) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    go = tl.load(go_ptr).to(ACC)
    s = tl.load(_ptr(row, B_SAVED, SAVED) + offs, mask=mask, other=0.0).to(ACC)
    tl.store(_ptr(row, B_OUT, OUT) + offs, (go * s).to(OUT), mask=mask)


@custom_op("loss_list_backward")
def loss_list_backward(grad_out: Tensor, saved: List[Tensor], like: List[Tensor]) -> List[Tensor]:
    op = "gan_kernels_triton::loss_list_backward"
    if grad_out.numel() != 1:
        raise ValueError(f"{op}: grad_out must hold one value, got {grad_out.numel()}")
    if len(saved) != len(like):
        raise ValueError(f"{op}: {len(saved)} saved gradients but {len(like)} tensors to take their dtypes from")
    for s in saved:
        if s.device != grad_out.device:
            raise ValueError(f"{op}: a saved gradient is on {s.device} but grad_out is on {grad_out.device}")
    saved = [s.contiguous() for s in saved]
    outs = [torch.empty(s.shape, dtype=x.dtype, device=s.device) for s, x in zip(saved, like)]
    block, warps = _stream_config(grad_out.device)
    groups = _groups((s.dtype, o.dtype) for s, o in zip(saved, outs))
    with device_ctx(grad_out):
        for (s_dtype, o_dtype), idxs in groups.items():
            rows, first = [], 0
            for i in idxs:
                n = saved[i].numel()
                if n == 0:
                    continue
                rows.append((saved[i].data_ptr(), outs[i].data_ptr(), n, first))
                first += cdiv(n, block)
            if not rows:
                continue
            acc = acc_dtype(torch.promote_types(s_dtype, o_dtype))
            _loss_list_bwd_kernel[(first,)](
                grad_out, _table(rows, grad_out.device), len(rows), SAVED=_TL_DTYPES[s_dtype],
                OUT=_TL_DTYPES[o_dtype], ACC=tl_acc(acc), BLOCK=block, SEARCH=_search_block(len(rows)),
                num_warps=warps,
            )
    return outs


# --------------------------------------------------------------------------- feature matching
def _check_feature_lists(real, fake, weights, op: str) -> None:
    """checks.h check_feature_lists: one real map and one weight per fake map, each pair of one
    floating dtype and one shape, all on fake[0]'s device."""
    op = f"gan_kernels_triton::{op}"
    k = len(fake)
    if k == 0:
        raise ValueError(f"{op}: the list of feature maps is empty")
    if len(real) != k or len(weights) != k:
        raise ValueError(f"{op}: {len(real)} real, {k} fake feature maps and {len(weights)} weights; "
                         "expected one of each per pair")
    device = fake[0].device
    for i, (r, f) in enumerate(zip(real, fake)):
        if r.device != device or f.device != device:
            raise ValueError(f"{op}: pair {i} is not on {device} with the others")
        if r.dtype not in _TL_DTYPES or r.dtype != f.dtype:
            raise ValueError(f"{op}: pair {i}: real and fake must have one floating dtype, got {r.dtype} and {f.dtype}")
        if r.shape != f.shape:
            raise ValueError(f"{op}: pair {i}: real {tuple(r.shape)} vs fake {tuple(f.shape)}")


def _fm_read(r: Tensor, f: Tensor) -> Tuple[Tensor, Tensor]:
    """The pair in one storage order, walked as flat arrays: in place when both share a
    batch-major layout (contiguous or channels_last alike), else one side copied into the other's
    batch-major layout, else both contiguous."""
    if r.stride() == f.stride() and is_batch_major(r):
        return r, f
    for a, b, swap in ((r, f, False), (f, r, True)):
        if is_batch_major(a):
            b = torch.empty_like(a, dtype=b.dtype).copy_(b)
            return (b, a) if swap else (a, b)
    return r.contiguous(), f.contiguous()


@triton.jit
def _fm_fwd_kernel(table, part_ptr, n_rows, ACC: tl.constexpr, DTYPE: tl.constexpr,
                   BLOCK: tl.constexpr, SEARCH: tl.constexpr):
    """Program p: sum |r - f| over one chunk of one pair, into part[p]."""
    pid = tl.program_id(0)
    row = table + _find_row(table, pid, n_rows, F_WIDTH, F_FIRST, SEARCH) * F_WIDTH
    n = tl.load(row + F_N)
    per = tl.load(row + F_PER)
    begin = (pid - tl.load(row + F_FIRST)) * per
    r_ptr = _ptr(row, F_REAL, DTYPE)
    f_ptr = _ptr(row, F_FAKE, DTYPE)
    idx = tl.arange(0, BLOCK)
    acc = tl.zeros([BLOCK], ACC)
    for step in range(0, per, BLOCK):
        offs = begin + step + idx
        mask = offs < n
        r = tl.load(r_ptr + offs, mask=mask, other=0.0).to(ACC)
        f = tl.load(f_ptr + offs, mask=mask, other=0.0).to(ACC)
        acc += tl.abs(r - f)
    tl.store(part_ptr + pid, tl.sum(acc, axis=0))


@triton.jit
def _fm_weight(row, ACC: tl.constexpr):
    return tl.load(row + F_WBITS).to(tl.float64, bitcast=True).to(ACC)


@triton.jit
def _fm_finish_kernel(
    table, part_ptr, terms_ptr, total_ptr, n_rows,
    REDUCTION: tl.constexpr, STORE_TERMS: tl.constexpr, WRITE_TOTAL: tl.constexpr,
    ACC: tl.constexpr, OUT: tl.constexpr, FBLOCK: tl.constexpr,
):
    """One program: term_k = w_k * (mean or sum of |r_k - f_k|) per pair, in list order, stored
    (STORE_TERMS) and / or added up (WRITE_TOTAL)."""
    total = tl.cast(0.0, OUT)
    for j in range(0, n_rows):
        row = table + j * F_WIDTH
        red = _row_total(part_ptr + tl.load(row + F_FIRST), tl.load(row + F_COUNT), ACC, FBLOCK)
        if REDUCTION != REDUCE_SUM:
            red = div(red, tl.load(row + F_N).to(ACC), ACC)
        term = (_fm_weight(row, ACC) * red).to(OUT)
        if STORE_TERMS:
            tl.store(terms_ptr + tl.load(row + F_INDEX), term)
        total += term
    if WRITE_TOTAL:
        tl.store(total_ptr, total)


@custom_op("feature_matching_forward")
def feature_matching_forward(real: List[Tensor], fake: List[Tensor], weights: List[float], reduction: int) -> Tensor:
    _check_feature_lists(real, fake, weights, "feature_matching_forward")
    device = fake[0].device
    k = len(fake)
    out = _list_out_dtype(fake)
    none = reduction == _NONE
    result = torch.empty((k,) if none else (), dtype=out, device=device)
    groups = _groups(f.dtype for f in fake)
    # "none": the terms are the result; a mixed-dtype total adds the groups' terms afterwards.
    terms = result if none else (torch.empty((k,), dtype=out, device=device) if len(groups) > 1 else result)
    keep_alive = []
    with device_ctx(fake[0]):
        for dtype, idxs in groups.items():
            acc = acc_dtype(dtype)
            rows, first, max_count = [], 0, 1
            for i in idxs:
                r, f = _fm_read(real[i], fake[i])
                keep_alive += [r, f]
                n = r.numel()
                per, _, block, warps, _ = loss_grid_config(max(n, 1), device)
                count = cdiv(n, per)
                rows.append((r.data_ptr(), f.data_ptr(), 0, 0, n, per, first, count, i, _float_bits(weights[i])))
                first += count
                max_count = max(max_count, count)
            table = _table(rows, device)
            part = torch.empty((max(first, 1),), dtype=acc, device=device)
            if first:
                _fm_fwd_kernel[(first,)](table, part, len(rows), ACC=tl_acc(acc), DTYPE=_TL_DTYPES[dtype],
                                         BLOCK=block, SEARCH=_search_block(len(rows)), num_warps=warps)
            fblock = _finish_block(max_count, device)
            _fm_finish_kernel[(1,)](
                table, part, terms, result, len(rows), REDUCTION=reduction,
                STORE_TERMS=none or len(groups) > 1, WRITE_TOTAL=not none and len(groups) == 1,
                ACC=tl_acc(acc), OUT=tl_acc(out), FBLOCK=fblock, num_warps=warps,
            )
        if not none and len(groups) > 1:
            _sum_in_order_kernel[(1,)](terms, result, k)
    return result


@triton.jit
def _fm_bwd_kernel(
    go_ptr, go_stride, table, n_rows,
    REDUCTION: tl.constexpr, NEED_REAL: tl.constexpr, NEED_FAKE: tl.constexpr,
    ACC: tl.constexpr, DTYPE: tl.constexpr, BLOCK: tl.constexpr, SEARCH: tl.constexpr,
):
    """d real = s sign(r - f), d fake = -d real, s = grad_k w_k (/ N_k unless "sum"); sign(0) = 0
    and a NaN stays NaN, as torch.abs's gradient. One block of one pair per program."""
    pid = tl.program_id(0)
    row = table + _find_row(table, pid, n_rows, F_WIDTH, F_FIRST, SEARCH) * F_WIDTH
    n = tl.load(row + F_N)
    offs = (pid - tl.load(row + F_FIRST)) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    s = tl.load(go_ptr + tl.load(row + F_INDEX) * go_stride).to(ACC) * _fm_weight(row, ACC)
    if REDUCTION != REDUCE_SUM:
        s = div(s, n.to(ACC), ACC)
    r = tl.load(_ptr(row, F_REAL, DTYPE) + offs, mask=mask, other=0.0).to(ACC)
    f = tl.load(_ptr(row, F_FAKE, DTYPE) + offs, mask=mask, other=0.0).to(ACC)
    d = r - f
    g = s * ((d > 0).to(ACC) - (d < 0).to(ACC) + tl.where(d != d, d, 0.0))
    if NEED_REAL:
        tl.store(_ptr(row, F_DREAL, DTYPE) + offs, g.to(DTYPE), mask=mask)
    if NEED_FAKE:
        tl.store(_ptr(row, F_DFAKE, DTYPE) + offs, (-g).to(DTYPE), mask=mask)


@custom_op("feature_matching_backward")
def feature_matching_backward(
    grad: Tensor, real: List[Tensor], fake: List[Tensor], weights: List[float], reduction: int,
    need_real: bool, need_fake: bool,
) -> Tuple[List[Tensor], List[Tensor]]:
    _check_feature_lists(real, fake, weights, "feature_matching_backward")
    k = len(fake)
    op = "gan_kernels_triton::feature_matching_backward"
    if grad.device != fake[0].device:
        raise ValueError(f"{op}: grad is on {grad.device} but the feature maps are on {fake[0].device}")
    if grad.numel() not in (1, k):
        raise ValueError(f"{op}: grad has {grad.numel()} elements, expected 1 or {k}")
    if not (need_real or need_fake):
        return [], []
    go = grad.reshape(-1)
    go_stride = 0 if go.numel() == 1 else go.stride(0)
    device = fake[0].device
    block, warps = _stream_config(device)
    # The outputs in each input's own layout (empty_batch_major); a pair read in another layout
    # writes into buffers of that layout, copied into the outputs afterwards.
    d_real = [empty_batch_major(r) for r in real] if need_real else []
    d_fake = [empty_batch_major(f) for f in fake] if need_fake else []
    copies = []

    def target(out, read):
        if out.stride() == read.stride():
            return out
        buf = torch.empty_like(read)
        copies.append((out, buf))
        return buf

    keep_alive = []
    with device_ctx(fake[0]):
        for dtype, idxs in _groups(f.dtype for f in fake).items():
            rows, first = [], 0
            for i in idxs:
                r, f = _fm_read(real[i], fake[i])
                n = r.numel()
                if n == 0:
                    continue
                dr = target(d_real[i], r) if need_real else None
                df = target(d_fake[i], f) if need_fake else None
                keep_alive += [r, f]
                rows.append((r.data_ptr(), f.data_ptr(), dr.data_ptr() if dr is not None else 0,
                             df.data_ptr() if df is not None else 0, n, 0, first, 0, i, _float_bits(weights[i])))
                first += cdiv(n, block)
            if not rows:
                continue
            acc = acc_dtype(dtype)
            _fm_bwd_kernel[(first,)](
                go, go_stride, _table(rows, device), len(rows), REDUCTION=reduction, NEED_REAL=need_real,
                NEED_FAKE=need_fake, ACC=tl_acc(acc), DTYPE=_TL_DTYPES[dtype], BLOCK=block,
                SEARCH=_search_block(len(rows)), num_warps=warps,
            )
    for out, buf in copies:
        out.copy_(buf)
    return d_real, d_fake
