"""Every formula of docs/contract.md against an independent formulation or hand values.

Run on every back end that works on CPU tensors here (the reference always; "cpu" when the
extension is built; "triton" under the interpreter), so each is pinned to torch's own ops too.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import gan_kernels as gk
from gan_kernels._kinds import D_LOSS_KINDS, G_LOSS_KINDS, PAIRED_KINDS

from ._helpers import assert_close, cpu_backends, matrix, straddling_norms, with_norms

BACKENDS = cpu_backends()


def _bce(x, t):
    return F.binary_cross_entropy_with_logits(x, torch.full_like(x, t), reduction="none")


@pytest.mark.parametrize("backend", BACKENDS)
class TestDiscriminatorLoss:
    def test_logistic_matches_bce_with_logits_on_patch_maps(self, backend):
        r, f = torch.randn(4, 1, 5, 6, dtype=torch.float64), torch.randn(6, 1, 5, 6, dtype=torch.float64)
        got = gk.d_loss(r, f, "logistic", backend=backend)
        want = _bce(r, 1.0).mean() + _bce(f, 0.0).mean()
        torch.testing.assert_close(got, want)

    def test_logistic_label_smoothing_and_drift(self, backend):
        r, f = torch.randn(9, dtype=torch.float64), torch.randn(9, dtype=torch.float64)
        got = gk.d_loss(r, f, "logistic", real_label=0.9, drift=1e-3, backend=backend)
        want = _bce(r, 0.9).mean() + _bce(f, 0.0).mean() + 1e-3 * (r**2).mean()
        torch.testing.assert_close(got, want)

    def test_logistic_tails_keep_their_digits(self, backend):
        """Confident logits: the terms are e^{-|x|}-small, not 0 (softplus(x) - x cancels to 0)."""
        x = torch.tensor([50.0, 30.0, 20.0, 12.5], dtype=torch.float64)
        want = torch.tensor([math.log1p(math.exp(-v)) for v in x.tolist()], dtype=torch.float64)
        # confident and right on both sides: real logit x (target 1), fake logit -x (target 0)
        got = gk.d_loss(x, -x, "logistic", reduction="none", backend=backend)
        torch.testing.assert_close(got, 2 * want, rtol=1e-12, atol=0)
        got = gk.g_loss(x, "logistic", reduction="none", backend=backend)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
        x32 = torch.tensor([20.0], dtype=torch.float32)  # e^-20 = 2.1e-9 < half an ulp of 20
        got = gk.d_loss(x32, -x32, "logistic", reduction="none", backend=backend)
        torch.testing.assert_close(got, 2 * want[2:3].float(), rtol=1e-5, atol=0)

    def test_hinge_hand_values(self, backend):
        r = torch.tensor([2.0, 0.5], dtype=torch.float64)
        f = torch.tensor([-2.0, 0.3], dtype=torch.float64)
        # real: relu(1-2)=0, relu(0.5)=0.5 -> 0.25; fake: relu(-1)=0, relu(1.3)=1.3 -> 0.65
        assert gk.d_loss(r, f, "hinge", backend=backend).item() == pytest.approx(0.9, abs=1e-12)
        assert gk.d_loss(r, f, "hinge", reduction="sum", backend=backend).item() == pytest.approx(1.8, abs=1e-12)
        none = gk.d_loss(r, f, "hinge", reduction="none", backend=backend)
        torch.testing.assert_close(none, torch.tensor([0.0, 1.8], dtype=torch.float64))

    def test_wasserstein(self, backend):
        r, f = torch.randn(5, 1, dtype=torch.float64), torch.randn(7, 1, dtype=torch.float64)
        torch.testing.assert_close(gk.d_loss(r, f, "wasserstein", backend=backend), f.mean() - r.mean())

    def test_least_squares_matches_mse(self, backend):
        r, f = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
        got = gk.d_loss(r, f, "least_squares", ls_targets=(-1.0, 1.0), backend=backend)
        want = 0.5 * F.mse_loss(r, torch.ones_like(r)) + 0.5 * F.mse_loss(f, -torch.ones_like(f))
        torch.testing.assert_close(got, want)

    def test_relativistic_average(self, backend):
        r, f = torch.randn(6, dtype=torch.float64), torch.randn(10, dtype=torch.float64)
        got = gk.d_loss(r, f, "relativistic", backend=backend)
        want = _bce(r - f.mean(), 1.0).mean() + _bce(f - r.mean(), 0.0).mean()
        torch.testing.assert_close(got, want)

    def test_rpgan_paired(self, backend):
        r, f = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
        want = F.softplus(f - r).mean()
        torch.testing.assert_close(gk.d_loss(r, f, "rpgan", backend=backend), want)

    def test_softplus_is_stable_for_huge_logits(self, backend):
        r = torch.tensor([100.0, -100.0, 30.0])
        f = torch.tensor([-100.0, 100.0, -30.0])
        none = gk.d_loss(r, f, "logistic", reduction="none", backend=backend)
        # softplus(-100) ~ 3.7e-44, softplus(100) = 100 exactly in float32
        torch.testing.assert_close(none, torch.tensor([0.0, 200.0, 2 * math.log1p(math.exp(-30.0))]), rtol=1e-6, atol=1e-6)
        r.requires_grad_(True)
        gk.d_loss(r, f, "logistic", backend=backend).backward()
        assert torch.isfinite(r.grad).all()

    def test_gradients_match_bce_autograd(self, backend):
        r = torch.randn(12, dtype=torch.float64, requires_grad=True)
        f = torch.randn(12, dtype=torch.float64, requires_grad=True)
        gk.d_loss(r, f, "logistic", backend=backend).backward()
        r2, f2 = r.detach().clone().requires_grad_(), f.detach().clone().requires_grad_()
        (_bce(r2, 1.0).mean() + _bce(f2, 0.0).mean()).backward()
        torch.testing.assert_close(r.grad, r2.grad)
        torch.testing.assert_close(f.grad, f2.grad)


@pytest.mark.parametrize("backend", BACKENDS)
class TestGeneratorLoss:
    def test_kinds(self, backend):
        f, r = torch.randn(7, 1, dtype=torch.float64), torch.randn(7, 1, dtype=torch.float64)
        cases = {
            "logistic": _bce(f, 1.0).mean(),
            "minimax": -_bce(f, 0.0).mean(),
            "hinge": -f.mean(),
            "wasserstein": -f.mean(),
            "least_squares": 0.5 * F.mse_loss(f, torch.full_like(f, 0.5)),
            "relativistic": _bce(f - r.mean(), 1.0).mean() + _bce(r - f.mean(), 0.0).mean(),
            "rpgan": F.softplus(r - f).mean(),
        }
        for kind, want in cases.items():
            got = gk.g_loss(f, kind, real_logits=r, ls_target=0.5, backend=backend)
            torch.testing.assert_close(got, want, msg=lambda m, k=kind: f"{k}: {m}")

    def test_relativistic_gradient_reaches_real_logits(self, backend):
        f = torch.randn(5, dtype=torch.float64, requires_grad=True)
        r = torch.randn(5, dtype=torch.float64, requires_grad=True)
        gk.g_loss(f, "relativistic", real_logits=r, backend=backend).backward()
        f2, r2 = f.detach().clone().requires_grad_(), r.detach().clone().requires_grad_()
        (_bce(f2 - r2.mean(), 1.0).mean() + _bce(r2 - f2.mean(), 0.0).mean()).backward()
        torch.testing.assert_close(f.grad, f2.grad)
        torch.testing.assert_close(r.grad, r2.grad)


@pytest.mark.parametrize("backend", BACKENDS)
class TestInterpolate:
    def test_one_alpha_per_sample(self, backend):
        real, fake = torch.randn(4, 3, 5, 5), torch.randn(4, 3, 5, 5)
        alpha = torch.rand(4)
        got = gk.interpolate(real, fake, alpha, backend=backend)
        a = alpha.view(4, 1, 1, 1)
        torch.testing.assert_close(got, a * real + (1 - a) * fake)

    def test_drawn_alpha_is_per_sample_and_seeded(self, backend):
        real, fake = torch.zeros(6, 2, 3), torch.ones(6, 2, 3)
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        x1 = gk.interpolate(real, fake, generator=g1, backend=backend)
        x2 = gk.interpolate(real, fake, generator=g2, backend=backend)
        torch.testing.assert_close(x1, x2)
        # x = 1 - alpha: constant within a sample, different across samples
        per_sample = x1.flatten(1)
        assert torch.equal(per_sample.min(1).values, per_sample.max(1).values)
        assert per_sample[:, 0].unique().numel() == 6

    def test_gradients_and_channels_last(self, backend):
        real = torch.randn(3, 4, 5, 6).to(memory_format=torch.channels_last).requires_grad_()
        fake = torch.randn(3, 4, 5, 6).requires_grad_()
        alpha = torch.rand(3)
        out = gk.interpolate(real, fake, alpha, backend=backend)
        assert out.is_contiguous(memory_format=torch.channels_last)
        g = torch.randn_like(out)
        out.backward(g)
        a = alpha.view(3, 1, 1, 1)
        torch.testing.assert_close(real.grad, a * g)
        torch.testing.assert_close(fake.grad, (1 - a) * g)


def _norms(g):
    return torch.linalg.vector_norm(g.double().flatten(1), dim=1)


@pytest.mark.parametrize("backend", BACKENDS)
class TestGradPenalty:
    def test_kinds_match_vector_norm(self, backend):
        g = torch.randn(5, 3, 4, 4, dtype=torch.float64) * 0.3
        n = _norms(g)
        torch.testing.assert_close(gk.grad_penalty(g, "wgan-gp", backend=backend), ((n - 1) ** 2).mean())
        torch.testing.assert_close(gk.grad_penalty(g, "wgan-lp", center=1.2, backend=backend), (torch.relu(n - 1.2) ** 2).mean())
        torch.testing.assert_close(gk.grad_penalty(g, "r1", weight=5.0, backend=backend), 5.0 * (n**2).mean())
        torch.testing.assert_close(gk.grad_penalty(g, "wgan-gp", reduction="sum", weight=2.0, backend=backend), 2.0 * ((n - 1) ** 2).sum())
        torch.testing.assert_close(gk.grad_penalty(g, "wgan-gp", reduction="none", backend=backend), (n - 1) ** 2)

    def test_gradient_matches_vector_norm_autograd(self, backend):
        g = (torch.randn(4, 2, 3, 5, dtype=torch.float64) * 0.5).requires_grad_()
        gk.grad_penalty(g, "wgan-gp", weight=10.0, backend=backend).backward()
        g2 = g.detach().clone().requires_grad_()
        (10.0 * ((torch.linalg.vector_norm(g2.flatten(1), dim=1) - 1) ** 2).mean()).backward()
        torch.testing.assert_close(g.grad, g2.grad)

    def test_zero_gradient_is_finite(self, backend):
        g = torch.randn(4, 3, 6, 6)
        g[1] = 0  # the deliberate zero-gradient sample
        g.requires_grad_(True)
        for kind in ("wgan-gp", "wgan-lp", "r1"):
            g.grad = None
            p = gk.grad_penalty(g, kind, weight=10.0, backend=backend)
            p.backward()
            assert torch.isfinite(p) and torch.isfinite(g.grad).all(), kind
            assert torch.equal(g.grad[1], torch.zeros_like(g.grad[1])), kind
        z = torch.zeros(3, 8, requires_grad=True)
        p = gk.grad_penalty(z, "wgan-gp", backend=backend)
        p.backward()
        assert p.item() == 1.0 and torch.equal(z.grad, torch.zeros_like(z))

    def test_float16_sum_of_squares_overflow(self, backend):
        # |g| = 300 over 3*32*32 elements: sum of squares 2.8e8, far beyond float16's 65504.
        g = (torch.full((2, 3, 32, 32), 300.0) * torch.sign(torch.randn(2, 3, 32, 32))).half().requires_grad_()
        p = gk.grad_penalty(g, "wgan-gp", backend=backend)
        want = ((_norms(g) - 1) ** 2).mean()
        assert p.dtype == torch.float32 and torch.isfinite(p)
        torch.testing.assert_close(p.double(), want, rtol=1e-5, atol=0)
        p.backward()
        assert torch.isfinite(g.grad).all()

    def test_inv_scale_unscales(self, backend):
        g = torch.randn(3, 7, dtype=torch.float64)
        want = gk.grad_penalty(g, "wgan-gp", backend="reference")
        got = gk.grad_penalty(g * 1024.0, "wgan-gp", inv_scale=1 / 1024.0, backend=backend)
        torch.testing.assert_close(got, want)
        got_t = gk.grad_penalty(g * 1024.0, "wgan-gp", inv_scale=torch.tensor(1 / 1024.0), backend=backend)
        torch.testing.assert_close(got_t, want)

    def test_nan_propagates(self, backend):
        g = torch.randn(3, 5)
        g[0, 2] = float("nan")
        p = gk.grad_penalty(g, "wgan-gp", reduction="none", backend=backend)
        assert torch.isnan(p[0]) and torch.isfinite(p[1:]).all()


def _mlp():
    return torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()


@pytest.mark.parametrize("backend", BACKENDS)
def test_wgan_gp_critic_step_matches_hand_written(backend):
    critic = _mlp()
    real, fake = torch.randn(8, 2, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    alpha = torch.rand(8, dtype=torch.float64)
    loss = gk.d_loss(critic(real), critic(fake), "wasserstein", backend=backend)
    loss = loss + gk.gradient_penalty(critic, real, fake, alpha=alpha, weight=10.0, backend=backend)
    grads = torch.autograd.grad(loss, list(critic.parameters()))

    # the textbook eager recipe
    x = (alpha[:, None] * real + (1 - alpha[:, None]) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    gp = 10.0 * ((g.norm(2, dim=1) - 1) ** 2).mean()
    ref_loss = critic(fake).mean() - critic(real).mean() + gp
    ref_grads = torch.autograd.grad(ref_loss, list(critic.parameters()))
    torch.testing.assert_close(loss, ref_loss)
    assert all(b.abs().sum() > 0 for b in ref_grads[:-1])  # (the last bias cancels out exactly)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_r1_penalty_matches_hand_written(backend):
    critic = _mlp()
    real = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    logits = critic(real)
    r1 = gk.r1_penalty(logits, real, gamma=4.0, backend=backend)
    params = list(critic.parameters())[:-1]  # the last bias does not move d logits / d real
    grads = torch.autograd.grad(r1, params)
    (g,) = torch.autograd.grad(critic(real).sum(), real, create_graph=True)
    ref = 2.0 * g.pow(2).sum(1).mean()
    torch.testing.assert_close(r1, ref)
    for a, b in zip(grads, torch.autograd.grad(ref, params)):
        torch.testing.assert_close(a, b)
    # gradient_penalty(kind="r1", fake=None) is the same penalty with weight gamma/2
    r1b = gk.gradient_penalty(critic, real.detach(), None, "r1", weight=2.0, backend=backend)
    torch.testing.assert_close(r1b, ref)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["wgan-gp", "wgan-lp", "r1"])
def test_nan_gradient_gives_nan_penalty_for_every_kind(backend, kind):
    g = torch.randn(3, 6)
    g[1, 4] = float("nan")
    p = gk.grad_penalty(g, kind, reduction="none", backend=backend)
    assert torch.isnan(p[1]) and torch.isfinite(p[[0, 2]]).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["wgan-gp", "r1"])
def test_penalty_gradient_keeps_channels_last(backend, kind):
    """d penalty / d grad comes back in the gradient's own layout (the reference included: it is
    the fallback), with the values of the contiguous computation."""
    g = torch.randn(4, 3, 5, 6, dtype=torch.float64) / 5
    gcl = g.contiguous(memory_format=torch.channels_last).requires_grad_()
    gc = g.clone().requires_grad_()
    (dcl,) = torch.autograd.grad(gk.grad_penalty(gcl, kind, weight=3.0, backend=backend), gcl)
    (dc,) = torch.autograd.grad(gk.grad_penalty(gc, kind, weight=3.0, backend=backend), gc)
    assert dcl.is_contiguous(memory_format=torch.channels_last) and not dcl.is_contiguous()
    torch.testing.assert_close(dcl, dc)


# --------------------------------------------------------------------------- every dtype, every kind
# The checks above run in float64, where the cpu back end takes its scalar path. Below, float32 /
# float16 / bfloat16 (the vectorised CPU loops) against the same independent float64 formulas,
# evaluated on the already-rounded inputs, values *and* gradients, with non-default parameters,
# and at sizes past the CPU kernels' thread-split chunks (4096 logits, 16384 penalty elements,
# 32768 streamed elements) with odd tails.
VEC_DTYPES = [("f32", torch.float32), ("f16", torch.float16), ("bf16", torch.bfloat16), ("f64", torch.float64)]
SIZES = [("small", 37), ("split", 3 * 4096 + 37)]
REAL_LABEL, DRIFT, LS_TARGETS, LS_TARGET = 0.8, 0.05, (0.3, 0.8), 0.6


def _runs(backend, dtype, size="small"):
    if backend == "triton":
        # the interpreter has no bfloat16; the large sizes are the CPU kernels' concern (time)
        return dtype != torch.bfloat16 and size == "small"
    return True


def _d_terms(kind, r, f):
    """Per-element real and fake terms of d_loss (fake None for the paired kind), float64."""
    drift = DRIFT * r * r
    if kind == "logistic":
        return _bce(r, REAL_LABEL) + drift, _bce(f, 0.0)
    if kind == "hinge":
        return F.relu(1 - r) + drift, F.relu(1 + f)
    if kind == "wasserstein":
        return -r + drift, f.clone()
    if kind == "least_squares":
        a, b = LS_TARGETS
        return 0.5 * F.mse_loss(r, torch.full_like(r, b), reduction="none") + drift, 0.5 * (f - a) ** 2
    if kind == "relativistic":
        return _bce(r - f.mean(), 1.0) + drift, _bce(f - r.mean(), 0.0)
    if kind == "rpgan":
        return F.softplus(f - r) + drift, None
    raise AssertionError(kind)


def _g_terms(kind, f, r):
    if kind == "logistic":
        return _bce(f, 1.0), None
    if kind == "minimax":
        return -_bce(f, 0.0), None
    if kind in ("hinge", "wasserstein"):
        return -f, None
    if kind == "least_squares":
        return 0.5 * F.mse_loss(f, torch.full_like(f, LS_TARGET), reduction="none"), None
    if kind == "relativistic":
        return _bce(f - r.mean(), 1.0), _bce(r - f.mean(), 0.0)
    if kind == "rpgan":
        return F.softplus(r - f), None
    raise AssertionError(kind)


def _reduce(t, reduction):
    return {"mean": t.mean, "sum": t.sum}[reduction]() if reduction != "none" else t


def _check_against_formula(got, inputs, terms_fn, reduction, dtype, what):
    """got: the library's loss of ``inputs`` (input dtype, requires_grad); terms_fn: the float64
    formula's per-element terms. Compares the loss and d loss / d inputs for an upstream gradient."""
    xs = [x.detach().double().requires_grad_() for x in inputs]
    terms = [t for t in terms_fn(*xs) if t is not None]
    want = sum(_reduce(t, reduction) for t in terms)
    # the rounding error of a sum lives on the scale of its terms, not of the (cancelling) result
    scale = float(sum(_reduce(t.detach().abs(), reduction).max() for t in terms))
    assert got.dtype == (torch.float64 if dtype == torch.float64 else torch.float32), f"{what}: loss dtype {got.dtype}"
    # the loss is computed (and returned) in float32 from the rounded inputs, whatever their dtype
    assert_close(got.double(), want.detach(), got.dtype, f"{what} value", scale=scale)
    go = torch.rand_like(want) + 0.5
    got.backward(go.to(got.dtype))
    for i, (x, x64) in enumerate(zip(inputs, xs)):
        (g64,) = torch.autograd.grad(want, x64, go, retain_graph=True, allow_unused=True)
        if g64 is None:
            assert x.grad is None or not x.grad.any(), f"{what}: gradient for an unused input {i}"
            continue
        assert x.grad is not None and x.grad.dtype == dtype, f"{what}: gradient {i} missing or of the wrong dtype"
        assert_close(x.grad.double(), g64, dtype, f"{what} d/d input {i}")


def _loss_inputs(n, m, dtype):
    r = (torch.randn(n, dtype=torch.float64) * 2).to(dtype).requires_grad_()
    f = (torch.randn(m, dtype=torch.float64) * 2).to(dtype).requires_grad_()
    return r, f


@pytest.mark.parametrize(*matrix({
    "kind": [(k, k) for k in D_LOSS_KINDS], "reduction": [(r, r) for r in ("mean", "sum", "none")],
    "size": SIZES, "dtype": VEC_DTYPES, "backend": [(b, b) for b in BACKENDS],
}, lambda kind, reduction, size, dtype, backend: _runs(backend, dtype, "split" if size > 100 else "small")))
def test_d_loss_every_kind_matches_formula(kind, reduction, size, dtype, backend):
    unequal = reduction != "none" and kind not in PAIRED_KINDS
    r, f = _loss_inputs(size, size + 19 if unequal else size, dtype)
    got = gk.d_loss(r, f, kind, reduction=reduction, real_label=REAL_LABEL, drift=DRIFT, ls_targets=LS_TARGETS,
                    backend=backend)
    _check_against_formula(got, [r, f], lambda a, b: _d_terms(kind, a, b), reduction, dtype, f"d_loss {kind}")


@pytest.mark.parametrize(*matrix({
    "kind": [(k, k) for k in G_LOSS_KINDS], "reduction": [(r, r) for r in ("mean", "sum", "none")],
    "size": SIZES, "dtype": VEC_DTYPES, "backend": [(b, b) for b in BACKENDS],
}, lambda kind, reduction, size, dtype, backend: _runs(backend, dtype, "split" if size > 100 else "small")))
def test_g_loss_every_kind_matches_formula(kind, reduction, size, dtype, backend):
    unequal = reduction != "none" and kind not in PAIRED_KINDS
    f, r = _loss_inputs(size, size + 19 if unequal else size, dtype)
    got = gk.g_loss(f, kind, real_logits=r, reduction=reduction, ls_target=LS_TARGET, backend=backend)
    _check_against_formula(got, [f, r], lambda a, b: _g_terms(kind, a, b), reduction, dtype, f"g_loss {kind}")


GP_FORMULA_SHAPES = [("small", (6, 3, 4, 5)), ("split", (3, 2, 129, 129))]  # 2 chunks of 16384 + 514
GP_CENTER, GP_WEIGHT = 0.7, 2.5


@pytest.mark.parametrize(*matrix({
    "kind": [(k, k) for k in ("wgan-gp", "wgan-lp", "r1")], "reduction": [(r, r) for r in ("mean", "sum", "none")],
    "shape": GP_FORMULA_SHAPES, "dtype": VEC_DTYPES, "backend": [(b, b) for b in BACKENDS],
}, lambda kind, reduction, shape, dtype, backend: _runs(backend, dtype, "split" if shape[0] == 3 else "small")))
def test_grad_penalty_every_kind_matches_vector_norm(kind, reduction, shape, dtype, backend):
    g = with_norms(shape, straddling_norms(shape[0], GP_CENTER), dtype).requires_grad_()
    got = gk.grad_penalty(g, kind, center=GP_CENTER, weight=GP_WEIGHT, reduction=reduction, backend=backend)

    def terms(x):
        n = torch.linalg.vector_norm(x.flatten(1), dim=1)
        if kind == "wgan-gp":
            p = (n - GP_CENTER) ** 2
        elif kind == "wgan-lp":
            p = torch.clamp(n - GP_CENTER, min=0) ** 2
        else:
            p = n**2
        return (GP_WEIGHT * p,)

    _check_against_formula(got, [g], terms, reduction, dtype, f"grad_penalty {kind}")


@pytest.mark.parametrize(*matrix({
    "shape": [("small", (3, 4, 5)), ("split", (3, 5, 67, 71))], "dtype": VEC_DTYPES, "backend": [(b, b) for b in BACKENDS],
}, lambda shape, dtype, backend: _runs(backend, dtype, "split" if len(shape) == 4 else "small")))
def test_interpolate_matches_formula(shape, dtype, backend):
    real = torch.randn(shape, dtype=torch.float64).to(dtype).requires_grad_()
    fake = torch.randn(shape, dtype=torch.float64).to(dtype).requires_grad_()
    alpha = torch.rand(shape[0], dtype=torch.float64)
    got = gk.interpolate(real, fake, alpha.to(torch.float64 if dtype == torch.float64 else torch.float32), backend=backend)
    a = alpha.reshape((-1,) + (1,) * (len(shape) - 1))
    want = a * real.detach().double() + (1 - a) * fake.detach().double()
    assert got.dtype == dtype
    assert_close(got.double(), want, dtype, "interpolate")
    go = torch.randn(shape, dtype=torch.float64).to(dtype)
    got.backward(go)
    assert_close(real.grad.double(), a * go.double(), dtype, "d/d real")
    assert_close(fake.grad.double(), (1 - a) * go.double(), dtype, "d/d fake")
