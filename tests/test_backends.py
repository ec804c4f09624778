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

from ._helpers import assert_close, dtypes_for, kernel_backend_params, require

BD = kernel_backend_params()
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
DTYPE_IDS = ["f32", "f64", "f16", "bf16"]


def _setup(bd, dtype):
    backend, device = bd
    require(backend, device)
    if dtype not in dtypes_for(backend, device):
        pytest.skip(f"{dtype} is not supported by {backend} on {device}")
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
    assert_close(out_k, out_r, dtype if out_k.dtype == dtype else torch.float32, f"{what} output")
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
    "huge_unequal": ((9000,), (20000,)),  # multi-block with one tensor running out first
    "edge": ((8193,), (8192,)),  # either side of the CUDA one-block limit (8192)
}
D_VARIANTS = {
    "logistic": [{}, {"real_label": 0.9, "drift": 1e-2}],
    "hinge": [{}, {"drift": 1e-3}],
    "wasserstein": [{"drift": 1e-3}],
    "least_squares": [{"ls_targets": (-1.0, 1.0)}],
    "relativistic": [{}, {"drift": 1e-2}],
    "rpgan": [{}, {"drift": 1e-2}],
}


def _skip_huge_off_gpu(shape, backend, device, dtype):
    if not shape.startswith(("huge", "edge")):
        return
    if backend == "triton" and device == "cpu":
        pytest.skip("70k logits are too slow for the Triton interpreter; 'big' covers its loops")
    if dtype not in (torch.float32, torch.bfloat16):
        pytest.skip("the 70k-logit case runs in float32 and bfloat16 only (time)")


@pytest.mark.parametrize("bd", BD)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", list(LOSS_SHAPES))
@pytest.mark.parametrize("kind", list(_kinds.D_LOSS_KINDS))
def test_d_loss(bd, dtype, reduction, shape, kind):
    backend, device = _setup(bd, dtype)
    rs, fs = LOSS_SHAPES[shape]
    if rs != fs and (reduction == "none" or kind in _kinds.PAIRED_KINDS):
        pytest.skip("unequal shapes are rejected for this kind / reduction")
    _skip_huge_off_gpu(shape, backend, device, dtype)
    r, f = _logits(rs, dtype, device), _logits(fs, dtype, device)
    for extra in D_VARIANTS[kind]:
        _run_both(
            lambda a, b: gk.d_loss(a, b, kind, reduction=reduction, backend=backend, **extra),
            lambda a, b: gk.d_loss(a, b, kind, reduction=reduction, backend="reference", **extra),
            [r, f], dtype, f"d_loss {kind} {extra}",
        )


@pytest.mark.parametrize("bd", BD)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", list(LOSS_SHAPES))
@pytest.mark.parametrize("kind", list(_kinds.G_LOSS_KINDS))
def test_g_loss(bd, dtype, reduction, shape, kind):
    backend, device = _setup(bd, dtype)
    rs, fs = LOSS_SHAPES[shape]
    _skip_huge_off_gpu(shape, backend, device, dtype)
    uses_real = kind in ("relativistic", "rpgan")
    if uses_real and rs != fs and (reduction == "none" or kind in _kinds.PAIRED_KINDS):
        pytest.skip("unequal shapes are rejected for this kind / reduction")
    f, r = _logits(fs, dtype, device), _logits(rs, dtype, device)
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


IMG_SHAPES = {"b1": (1, 3, 5, 7), "odd": (3, 3, 17, 19), "flat": (4, 33)}
LAYOUTS = ["contiguous", "channels_last", "strided", "batch_inner"]


@pytest.mark.parametrize("bd", BD)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", list(IMG_SHAPES))
def test_interpolate(bd, dtype, layout, shape):
    backend, device = _setup(bd, dtype)
    s = IMG_SHAPES[shape]
    if len(s) != 4 and layout == "channels_last":
        pytest.skip("channels_last needs 4 dims")
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
GP_SHAPES = {"b1": (1, 3, 5, 7), "odd": (3, 3, 17, 19), "flat": (5, 2), "wide": (2, 70001)}


@pytest.mark.parametrize("bd", BD)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", list(GP_SHAPES))
@pytest.mark.parametrize("kind", list(_kinds.PENALTY_KINDS))
def test_grad_penalty(bd, dtype, reduction, shape, kind):
    backend, device = _setup(bd, dtype)
    s = GP_SHAPES[shape]
    if backend == "triton" and device == "cpu" and shape == "wide" and dtype != torch.float32:
        pytest.skip("interpreter: keep the wide case to one dtype")
    # norms around 1 so wgan-gp / wgan-lp exercise both signs of (n - center)
    d = torch.tensor(s[1:]).prod().item()
    g = (torch.randn(s, device=device, dtype=torch.float64) * (1.2 / d**0.5)).to(dtype)
    _run_both(
        lambda x: gk.grad_penalty(x, kind, center=1.0, weight=3.0, reduction=reduction, backend=backend),
        lambda x: gk.grad_penalty(x, kind, center=1.0, weight=3.0, reduction=reduction, backend="reference"),
        [g.requires_grad_()], dtype, f"grad_penalty {kind}",
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
    (g,) = _gc_inputs(device, (3, 2, 4))
    for kind in _kinds.PENALTY_KINDS:
        for reduction in ("mean", "none"):
            fn = lambda x: gk.grad_penalty(x, kind, center=0.5, reduction=reduction, backend=backend)  # noqa: E731
            assert gradcheck(fn, (g,)), kind
            assert gradgradcheck(fn, (g,)), kind
