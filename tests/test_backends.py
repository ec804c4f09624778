"""Every kernel back end against the reference: every (op, kind, reduction, dtype, shape, layout).

One parametrised list for all back ends: ("cpu", cpu), ("triton", cpu under TRITON_INTERPRET=1),
("cuda", cuda) and ("triton", cuda) — the last two GPU-marked. Outputs *and* gradients are
compared, with a random upstream gradient, on fresh random inputs; float64 gradcheck and
gradgradcheck run on every back end; kernels must be deterministic bit for bit.
"""

from __future__ import annotations

import pytest
import torch

import gan_kernels as gk
from gan_kernels import _kinds

from ._helpers import (
    DTYPE_AXIS,
    assert_close,
    dtypes_for,
    kernel_backend_params,
    magnitude,
    matrix,
    require,
    straddling_norms,
    with_norms,
)

BD = kernel_backend_params()
REDUCTIONS = [(r, r) for r in ("mean", "sum", "none")]


def _runs_dtype(bd, dtype):
    """Whether the back end supports the dtype at all (an unsupported one is not generated)."""
    return dtype in dtypes_for(*bd)


def _setup(bd, dtype):
    backend, device = bd
    require(backend, device)
    assert dtype in dtypes_for(backend, device), "unsupported combinations are dropped at collection"
    return backend, device


def _logits(shape, dtype, device, scale=2.0):
    return (torch.randn(shape, device=device, dtype=torch.float64) * scale).to(dtype).requires_grad_()


def _run_both(fn_kernel, fn_ref, inputs, dtype, what):
    """Forward and backward of both functions on clones of ``inputs``; compare outputs and grads."""
    ins_k = [x.detach().clone().requires_grad_(x.requires_grad) for x in inputs]
    ins_r = [x.detach().clone().requires_grad_(x.requires_grad) for x in inputs]
    out_k, out_r = fn_kernel(*ins_k), fn_ref(*ins_r)
    assert out_k.dtype == out_r.dtype, f"{what}: dtype {out_k.dtype} != {out_r.dtype}"
    assert out_k.shape == out_r.shape, f"{what}: shape {out_k.shape} != {out_r.shape}"
    # A loss is a sum of O(1) terms: its rounding error lives on their scale even where they cancel
    # (a Wasserstein mean near 0), and reduction orders differ between devices.
    scale = max(magnitude(out_r), 1.0)
    assert_close(out_k, out_r, dtype if out_k.dtype == dtype else torch.float32, f"{what} output", scale=scale)
    go = torch.randn_like(out_r)
    out_k.backward(go)
    out_r.backward(go)
    for i, (a, b) in enumerate(zip(ins_k, ins_r)):
        if b.grad is None:  # an input the formula does not use (e.g. real logits of g_loss "hinge")
            assert a.grad is None or not a.grad.any(), f"{what}: gradient for unused input {i}"
        else:
            assert a.grad is not None, f"{what}: no gradient for input {i}"
            assert a.grad.dtype == b.grad.dtype and a.grad.shape == b.grad.shape
            assert_close(a.grad, b.grad, dtype, f"{what} grad {i}")
    return out_k


# --------------------------------------------------------------------------- losses
LOSS_SHAPES = {
    "vec": ((7,), (7,)),
    "col_b1": ((1, 1), (1, 1)),
    "patch": ((3, 1, 4, 5), (3, 1, 4, 5)),
    "unequal": ((5, 1), (9, 1)),  # real and fake batch sizes differ
    "big": ((1000,), (1000,)),  # more than one block / chunk
    # past the CUDA kernels' one-block threshold: the multi-block path (GPU only; slow in the interpreter)
    "huge": ((7, 1, 101, 99), (7, 1, 101, 99)),
    # multi-block with one tensor running out first; on the CPU 3 and 5 chunks of 4096 logits with
    # odd tails, split across threads
    "huge_unequal": ((9000,), (20000,)),
    # either side of the CUDA one-block limit (8192); on the CPU two chunks and a tail of one logit
    "edge": ((8193,), (8192,)),
}
# Non-default parameters of every kind: label smoothing below 1, drift, least-squares targets
# other than (0, 1). Drift 5e-2 moves a gradient by ~10 %: visible in bfloat16 too.
D_VARIANTS = {
    "logistic": [{}, {"real_label": 0.8, "drift": 5e-2}],
    "hinge": [{}, {"drift": 5e-2}],
    "wasserstein": [{"drift": 5e-2}],
    "least_squares": [{"ls_targets": (-1.0, 1.0)}, {"ls_targets": (0.3, 0.8), "drift": 5e-2}],
    "relativistic": [{}, {"drift": 5e-2}],
    "rpgan": [{}, {"drift": 5e-2}],
}
LARGE_LOSS_SHAPES = ("huge", "huge_unequal", "edge")


def _loss_case(bd, dtype, shape, uses_real=True, paired=False, reduction="mean"):
    backend, device = bd
    rs, fs = LOSS_SHAPES[shape]
    if uses_real and rs != fs and (reduction == "none" or paired):
        return False  # unequal shapes are rejected for this kind / reduction (test_api checks the error)
    if not _runs_dtype(bd, dtype):
        return False
    if device == "cpu" and shape in LARGE_LOSS_SHAPES:
        if backend == "triton":
            return False  # 70k logits are too slow for the Triton interpreter; "big" covers its loops
        # the CPU thread split runs in every dtype on the cheap sizes, the 70k case in two (time)
        return shape != "huge" or dtype in (torch.float32, torch.bfloat16)
    return True


def _d_case(kind, shape, reduction, dtype, bd):
    return _loss_case(bd, dtype, shape, paired=kind in _kinds.PAIRED_KINDS, reduction=reduction)


def _g_case(kind, shape, reduction, dtype, bd):
    uses_real = kind in ("relativistic", "rpgan")
    return _loss_case(bd, dtype, shape, uses_real, kind in _kinds.PAIRED_KINDS, reduction)


LOSS_AXES = {
    "shape": [(s, s) for s in LOSS_SHAPES],
    "reduction": REDUCTIONS,
    "dtype": DTYPE_AXIS,
    "bd": BD,
}


@pytest.mark.parametrize(*matrix({"kind": [(k, k) for k in _kinds.D_LOSS_KINDS], **LOSS_AXES}, _d_case))
def test_d_loss(kind, shape, reduction, dtype, bd):
    backend, device = _setup(bd, dtype)
    rs, fs = LOSS_SHAPES[shape]
    r, f = _logits(rs, dtype, device), _logits(fs, dtype, device)
    for extra in D_VARIANTS[kind]:
        _run_both(
            lambda a, b: gk.d_loss(a, b, kind, reduction=reduction, backend=backend, **extra),
            lambda a, b: gk.d_loss(a, b, kind, reduction=reduction, backend="reference", **extra),
            [r, f], dtype, f"d_loss {kind} {extra}",
        )


@pytest.mark.parametrize(*matrix({"kind": [(k, k) for k in _kinds.G_LOSS_KINDS], **LOSS_AXES}, _g_case))
def test_g_loss(kind, shape, reduction, dtype, bd):
    backend, device = _setup(bd, dtype)
    rs, fs = LOSS_SHAPES[shape]
    f, r = _logits(fs, dtype, device), _logits(rs, dtype, device)
    # ls_target != 1: only least_squares reads it
    _run_both(
        lambda a, b: gk.g_loss(a, kind, real_logits=b, reduction=reduction, ls_target=0.7, backend=backend),
        lambda a, b: gk.g_loss(a, kind, real_logits=b, reduction=reduction, ls_target=0.7, backend="reference"),
        [f, r], dtype, f"g_loss {kind}",
    )


@pytest.mark.parametrize("bd", BD)
def test_loss_only_one_input_needs_grad(bd):
    backend, device = _setup(bd, torch.float32)
    r = _logits((6,), torch.float32, device)
    f = _logits((6,), torch.float32, device).detach()
    loss = gk.d_loss(r, f, "hinge", backend=backend)
    loss.backward()
    ref_r = r.detach().clone().requires_grad_()
    gk.d_loss(ref_r, f, "hinge", backend="reference").backward()
    assert_close(r.grad, ref_r.grad, torch.float32, "grad real")
    with torch.no_grad():
        out = gk.d_loss(r, f, "logistic", backend=backend)
    assert out.grad_fn is None


# --------------------------------------------------------------------------- interpolation
def _image(shape, dtype, device, layout):
    x = torch.randn(shape, device=device, dtype=torch.float64).to(dtype)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    elif layout == "strided":
        x = torch.randn(shape[:-1] + (2 * shape[-1],), device=device, dtype=torch.float64).to(dtype)[..., ::2]
    elif layout == "batch_inner":
        x = torch.randn((shape[1], shape[0]) + shape[2:], device=device, dtype=torch.float64).to(dtype).transpose(0, 1)
    return x


# "big": 71k elements, past two of the CPU streaming kernels' 32768-element thread grains, odd tail
IMG_SHAPES = {"b1": (1, 3, 5, 7), "odd": (3, 3, 17, 19), "flat": (4, 33), "big": (3, 5, 67, 71)}
LAYOUTS = ["contiguous", "channels_last", "strided", "batch_inner"]


def _interp_case(shape, layout, dtype, bd):
    if len(IMG_SHAPES[shape]) != 4 and layout == "channels_last":
        return False  # channels_last needs 4 dims
    if bd == ("triton", "cpu") and shape == "big" and (dtype != torch.float32 or layout != "contiguous"):
        return False  # interpreter time: the large case once
    return _runs_dtype(bd, dtype)


@pytest.mark.parametrize(*matrix({
    "shape": [(s, s) for s in IMG_SHAPES], "layout": [(lay, lay) for lay in LAYOUTS], "dtype": DTYPE_AXIS, "bd": BD,
}, _interp_case))
def test_interpolate(shape, layout, dtype, bd):
    backend, device = _setup(bd, dtype)
    s = IMG_SHAPES[shape]
    real = _image(s, dtype, device, layout).requires_grad_()
    fake = _image(s, dtype, device, "contiguous").requires_grad_()
    alpha = torch.rand(s[0], device=device, dtype=torch.float64 if dtype == torch.float64 else torch.float32)
    out = _run_both(
        lambda a, b: gk.interpolate(a, b, alpha, backend=backend),
        lambda a, b: gk.interpolate(a, b, alpha, backend="reference"),
        [real, fake], dtype, "interpolate",
    )
    if layout == "channels_last":
        assert out.is_contiguous(memory_format=torch.channels_last), "channels_last output layout lost"


# --------------------------------------------------------------------------- gradient penalty
# "wide": 4 chunks of the CPU reduction's 16384 elements and a partial one; "tail": 2 + a partial,
# three samples (so the backward's streaming split also crosses a sample boundary).
GP_SHAPES = {"b1": (1, 3, 5, 7), "odd": (3, 3, 17, 19), "flat": (5, 2), "wide": (2, 70001), "tail": (3, 2, 129, 129)}
CENTER = 0.7  # not 1: a kernel that ignores center fails
WEIGHT = 3.0


def _gp_case(kind, shape, reduction, dtype, bd):
    if bd == ("triton", "cpu") and (shape == "tail" or (shape == "wide" and (dtype, reduction) != (torch.float32, "mean"))):
        return False  # interpreter time (~20 s a case): the large case once per kind
    return _runs_dtype(bd, dtype)


@pytest.mark.parametrize(*matrix({
    "kind": [(k, k) for k in _kinds.PENALTY_KINDS], "shape": [(s, s) for s in GP_SHAPES],
    "reduction": REDUCTIONS, "dtype": DTYPE_AXIS, "bd": BD,
}, _gp_case))
def test_grad_penalty(kind, shape, reduction, dtype, bd):
    backend, device = _setup(bd, dtype)
    s = GP_SHAPES[shape]
    # Per-sample norms well on both sides of the center, so wgan-lp's clipped and active branches
    # and both signs of wgan-gp's (n - center) run for every shape; a batch of one takes two calls.
    for flip in (False, True) if s[0] == 1 else (False,):
        g = with_norms(s, straddling_norms(s[0], CENTER, flip), dtype, device)
        _run_both(
            lambda x: gk.grad_penalty(x, kind, center=CENTER, weight=WEIGHT, reduction=reduction, backend=backend),
            lambda x: gk.grad_penalty(x, kind, center=CENTER, weight=WEIGHT, reduction=reduction, backend="reference"),
            [g.requires_grad_()], dtype, f"grad_penalty {kind} flip={flip}",
        )


@pytest.mark.parametrize("bd", BD)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("inv_scale", [None, 0.25, "tensor"])
def test_grad_penalty_layouts_and_scale(bd, layout, inv_scale):
    backend, device = _setup(bd, torch.float32)
    g = _image((3, 4, 6, 5), torch.float32, device, layout) * 0.1
    s = torch.tensor(0.5, device=device) if inv_scale == "tensor" else inv_scale
    gk_grad = g.detach().clone().requires_grad_()
    ref_grad = g.detach().clone().requires_grad_()
    p = gk.grad_penalty(gk_grad, "wgan-gp", inv_scale=s, backend=backend)
    q = gk.grad_penalty(ref_grad, "wgan-gp", inv_scale=s, backend="reference")
    assert_close(p, q, torch.float32, "penalty")
    p.backward()
    q.backward()
    assert_close(gk_grad.grad, ref_grad.grad, torch.float32, "d grad")
    if layout == "channels_last":
        assert gk_grad.grad.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("bd", BD)
def test_grad_penalty_zero_and_nonfinite(bd):
    backend, device = _setup(bd, torch.float32)
    g = torch.randn(4, 50, device=device)
    g[1] = 0
    g[2, 3] = float("inf")
    g[3, 7] = float("nan")
    g.requires_grad_()
    p = gk.grad_penalty(g, "wgan-gp", reduction="none", backend=backend)
    assert torch.isfinite(p[:2]).all() and p[1].item() == 1.0
    assert torch.isinf(p[2]) and torch.isnan(p[3])
    p[:2].sum().backward()
    assert torch.equal(g.grad[1], torch.zeros_like(g.grad[1]))


# --------------------------------------------------------------------------- properties
@pytest.mark.parametrize("bd", BD)
def test_deterministic(bd):
    backend, device = _setup(bd, torch.float32)
    g = torch.randn(4, 3, 40, 41, device=device, requires_grad=True)
    r, f = torch.randn(3000, device=device, requires_grad=True), torch.randn(3000, device=device, requires_grad=True)
    results = []
    for _ in range(2):
        g.grad = r.grad = f.grad = None
        p = gk.grad_penalty(g, "wgan-gp", backend=backend)
        lo = gk.d_loss(r, f, "relativistic", backend=backend)
        (p + lo).backward()
        results.append([t.clone() for t in (p, lo, g.grad, r.grad, f.grad)])
    for a, b in zip(*results):
        assert torch.equal(a, b)


def _gc_inputs(device, *shapes):
    return [torch.randn(s, device=device, dtype=torch.float64, requires_grad=True) for s in shapes]


@pytest.mark.parametrize("bd", BD)
def test_gradcheck_and_gradgradcheck(bd):
    backend, device = _setup(bd, torch.float64)
    from torch.autograd import gradcheck, gradgradcheck

    r, f = _gc_inputs(device, (5,), (5,))
    for kind in _kinds.D_LOSS_KINDS:
        for reduction in ("mean", "none"):
            fn = lambda a, b: gk.d_loss(a, b, kind, reduction=reduction, drift=0.1, backend=backend)  # noqa: E731
            assert gradcheck(fn, (r, f)), kind
            assert gradgradcheck(fn, (r, f)), kind
    for kind in _kinds.G_LOSS_KINDS:
        fn = lambda a, b: gk.g_loss(a, kind, real_logits=b, backend=backend)  # noqa: E731
        assert gradcheck(fn, (f, r)), kind
        assert gradgradcheck(fn, (f, r)), kind
    real, fake = _gc_inputs(device, (3, 2, 3), (3, 2, 3))
    alpha = torch.rand(3, device=device, dtype=torch.float64)
    fn = lambda a, b: gk.interpolate(a, b, alpha, backend=backend)  # noqa: E731
    assert gradcheck(fn, (real, fake)) and gradgradcheck(fn, (real, fake))
    # norms on both sides of the center (0.5)
    g = with_norms((3, 2, 4), [0.3, 0.8, 0.65], device=device).requires_grad_()
    for kind in _kinds.PENALTY_KINDS:
        for reduction in ("mean", "none"):
            fn = lambda x: gk.grad_penalty(x, kind, center=0.5, reduction=reduction, backend=backend)  # noqa: E731
            assert gradcheck(fn, (g,)), kind
            assert gradgradcheck(fn, (g,)), kind
