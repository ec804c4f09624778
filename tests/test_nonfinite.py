"""Non-finite inputs: one behaviour on every back end, the reference's.

The rule (docs/contract.md, "Non-finite inputs"): a NaN logit or gradient makes the loss NaN;
an infinite logit gives the limit of the plain formula where it has one (BCE against target 1 at
+inf is 0, at -inf is inf; hinge and the linear / square terms follow IEEE arithmetic), and NaN
where the formula has none (inf - inf). Gradients are those of autograd on the plain formula, so
the hinge's slope also passes at a NaN logit, as autograd's relu does. Every back end must give
the reference's values and gradients, NaN for NaN.
"""

from __future__ import annotations

import pytest
import torch

import gan_kernels as gk

from ._helpers import kernel_backend_params, require

INF, NAN = float("inf"), float("nan")
D_KINDS = ["logistic", "hinge", "wasserstein", "least_squares", "relativistic", "rpgan"]
G_KINDS = ["logistic", "minimax", "hinge", "wasserstein", "least_squares", "relativistic", "rpgan"]


def _logits(dtype):
    # Every pairing of a non-finite value with a finite one, and of two non-finite values.
    r = torch.tensor([INF, -INF, NAN, 1.0, INF, -INF, 0.3, 2.0, NAN, -1.5], dtype=dtype)
    f = torch.tensor([-INF, INF, 0.5, NAN, INF, -INF, 0.3, -INF, NAN, 0.25], dtype=dtype)
    return r, f


def _finite_only(dtype):
    r = torch.tensor([INF, -INF, 0.3, 2.0, -1.5], dtype=dtype)
    f = torch.tensor([-INF, INF, 0.3, -0.7, 0.25], dtype=dtype)
    return r, f


def _run(fn, r, f):
    r = r.clone().requires_grad_(True)
    f = f.clone().requires_grad_(True)
    out = fn(r, f)
    grads = torch.autograd.grad(out.sum(), (r, f), allow_unused=True)
    return [out.detach()] + [g if g is not None else torch.zeros_like(r) for g in grads]


def _same(a, b, what):
    torch.testing.assert_close(a, b, equal_nan=True, rtol=1e-5, atol=1e-6, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("bd", kernel_backend_params())
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("kind", D_KINDS)
def test_d_loss_nonfinite_matches_reference(bd, kind, reduction):
    backend, device = bd
    require(backend, device)
    for make in (_logits, _finite_only):
        for extra in ({}, {"drift": 0.1}, {"real_label": 0.9} if kind == "logistic" else {}):
            r, f = (t.to(device) for t in make(torch.float32))
            fn = lambda a, b, be: gk.d_loss(a, b, kind, reduction=reduction, backend=be, **extra)  # noqa: E731
            got = _run(lambda a, b: fn(a, b, backend), r, f)
            ref = _run(lambda a, b: fn(a, b, "reference"), r, f)
            for x, y, what in zip(got, ref, ("loss", "d real", "d fake")):
                _same(x, y, f"d_loss {kind} {reduction} {extra} {make.__name__}: {what}")


@pytest.mark.parametrize("bd", kernel_backend_params())
@pytest.mark.parametrize("kind", G_KINDS)
def test_g_loss_nonfinite_matches_reference(bd, kind):
    backend, device = bd
    require(backend, device)
    r, f = (t.to(device) for t in _logits(torch.float32))
    fn = lambda a, b, be: gk.g_loss(b, kind, real_logits=a, reduction="none", backend=be)  # noqa: E731
    got = _run(lambda a, b: fn(a, b, backend), r, f)
    ref = _run(lambda a, b: fn(a, b, "reference"), r, f)
    for x, y, what in zip(got, ref, ("loss", "d real", "d fake")):
        _same(x, y, f"g_loss {kind}: {what}")


@pytest.mark.parametrize("bd", kernel_backend_params())
@pytest.mark.parametrize("kind", ["wgan-gp", "wgan-lp", "r1"])
def test_grad_penalty_nonfinite_matches_reference(bd, kind):
    backend, device = bd
    require(backend, device)
    g = torch.randn(5, 3, device=device)
    g[1, 0], g[2, 2], g[3] = INF, NAN, 0.0  # an infinite, a NaN and an all-zero sample
    outs = []
    for be in (backend, "reference"):
        x = g.clone().requires_grad_(True)
        loss = gk.grad_penalty(x, kind, reduction="none", backend=be)
        (dx,) = torch.autograd.grad(loss.sum(), x)
        outs.append((loss.detach(), dx))
    _same(outs[0][0], outs[1][0], f"{kind} value")
    _same(outs[0][1], outs[1][1], f"{kind} gradient")
    assert torch.isfinite(outs[0][1][[0, 3, 4]]).all()  # finite samples keep finite gradients
