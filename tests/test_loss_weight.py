"""The ``weight`` of d_loss / g_loss, and gradients the loss backward hands out as they are.

``weight`` scales every term and the drift inside the kernel; each back end is held to
``w * (its own unweighted loss)`` and to the reference, values and gradients, single tensors and
lists. The compiled loss backward returns its saved per-element gradients without a copy when the
upstream gradient is exactly 1 and the graph is not kept: the tests below change returned
gradients in place and check that no later backward sees it.
"""

from __future__ import annotations

import pytest
import torch

import gan_kernels as gk

from ._helpers import assert_close, cpu_backends, dtypes_for

BACKENDS = cpu_backends()
BACKEND_DTYPES = [pytest.param(b, d, id=f"{b}-{str(d).split('.')[-1]}") for b in BACKENDS for d in dtypes_for(b, "cpu")]
D_KINDS = ("logistic", "hinge", "wasserstein", "least_squares", "relativistic", "rpgan")
G_KINDS = ("logistic", "minimax", "hinge", "wasserstein", "least_squares", "relativistic", "rpgan")
WEIGHTS = (2.5, -0.75)


def _kinds_for(backend, kinds):
    # The Triton interpreter is slow: the kinds that exercise distinct kernel paths.
    return [k for k in kinds if k in ("logistic", "relativistic", "rpgan")] if backend == "triton" else list(kinds)


def _logits(n, dtype=torch.float32):
    return (torch.randn(n, dtype=torch.float64) * 2).to(dtype).requires_grad_()


def _value_and_grads(fn, inputs):
    out = fn()
    grads = torch.autograd.grad(out.sum(), inputs, allow_unused=True)
    return out.detach(), [torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs)]


@pytest.mark.parametrize("backend,dtype", BACKEND_DTYPES)
@pytest.mark.parametrize("weight", WEIGHTS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_d_loss_weight_scales_value_and_gradients(backend, dtype, weight, reduction):
    for kind in _kinds_for(backend, D_KINDS):
        r, f = _logits(9, dtype), _logits(9, dtype)
        # label smoothing and drift on the logistic kind: the drift term must be scaled too
        extra = dict(real_label=0.9, drift=0.05) if kind == "logistic" else {}
        red = "mean" if reduction == "none" and kind == "rpgan" else reduction
        got, got_g = _value_and_grads(
            lambda: gk.d_loss(r, f, kind, reduction=red, weight=weight, backend=backend, **extra), [r, f])
        ref, ref_g = _value_and_grads(
            lambda: gk.d_loss(r, f, kind, reduction=red, backend="reference", **extra), [r, f])
        assert_close(got, weight * ref, dtype, f"{backend} {kind} {red} value")
        for name, g, e in zip(("real", "fake"), got_g, ref_g):
            assert g.dtype == dtype
            assert_close(g.double(), weight * e.double(), dtype, f"{backend} {kind} {red} d{name}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("weight", WEIGHTS)
def test_g_loss_weight_scales_value_and_gradients(backend, weight):
    for kind in _kinds_for(backend, G_KINDS):
        r, f = _logits(7), _logits(7)
        extra = dict(ls_target=0.5) if kind == "least_squares" else {}
        got, got_g = _value_and_grads(
            lambda: gk.g_loss(f, kind, real_logits=r, weight=weight, backend=backend, **extra), [r, f])
        ref, ref_g = _value_and_grads(
            lambda: gk.g_loss(f, kind, real_logits=r, backend="reference", **extra), [r, f])
        assert_close(got, weight * ref, torch.float32, f"{backend} {kind} value")
        for name, g, e in zip(("real", "fake"), got_g, ref_g):
            assert_close(g, weight * e, torch.float32, f"{backend} {kind} d{name}")


@pytest.mark.parametrize("backend,dtype", BACKEND_DTYPES)
def test_weight_on_lists_scales_the_total_and_every_term(backend, dtype):
    shapes = [(2, 1, 5, 2), (2, 1, 13), (3,)]
    reals = [_logits(s, dtype) for s in shapes]
    fakes = [_logits(s, dtype) for s in shapes]
    total, terms = gk.d_loss(reals, fakes, "least_squares", weight=2.0, backend=backend, return_terms=True)
    grads = torch.autograd.grad(total, reals + fakes)
    ref_total, ref_terms = gk.d_loss(reals, fakes, "least_squares", backend="reference", return_terms=True)
    ref_grads = torch.autograd.grad(ref_total, reals + fakes)
    # HiFi-GAN's discriminator loss, written out: sum_d mean((1 - r_d)^2) + mean(f_d^2)
    hifigan = sum(torch.mean((1 - r.double()) ** 2) + torch.mean(f.double() ** 2) for r, f in zip(reals, fakes))
    assert_close(total.detach().double(), hifigan.detach(), dtype, f"{backend} total vs HiFi-GAN's sum")
    assert_close(terms, 2.0 * ref_terms, dtype, f"{backend} terms")
    for i, (g, e) in enumerate(zip(grads, ref_grads)):
        assert g.dtype == dtype
        assert_close(g.double(), 2.0 * e.double(), dtype, f"{backend} grad {i}")
    g_total = gk.g_loss(fakes, "hinge", weight=-0.5, backend=backend)
    g_ref = gk.g_loss(fakes, "hinge", backend="reference")
    assert_close(g_total.detach(), -0.5 * g_ref.detach(), dtype, f"{backend} g_loss list")


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_weight_gives_zero_loss_and_zero_gradients(backend):
    # the deliberate zero-gradient case: finite logits, weight 0
    r, f = _logits(6), _logits(6)
    loss = gk.d_loss(r, f, "logistic", drift=0.1, weight=0.0, backend=backend)
    gr, gf = torch.autograd.grad(loss, [r, f])
    assert loss.item() == 0.0
    assert torch.count_nonzero(gr) == 0 and torch.count_nonzero(gf) == 0


def test_weight_float64_gradcheck_and_gradgradcheck():
    for backend in [b for b in BACKENDS if b != "triton"]:
        r = torch.randn(5, dtype=torch.float64, requires_grad=True)
        f = torch.randn(5, dtype=torch.float64, requires_grad=True)
        fn = lambda a, b: gk.d_loss(a, b, "relativistic", drift=0.01, weight=1.7, backend=backend)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (r, f))
        assert torch.autograd.gradgradcheck(fn, (r, f))
        gfn = lambda a, b: gk.g_loss([b, a], "least_squares", weight=3.0, backend=backend)  # noqa: E731
        assert torch.autograd.gradcheck(gfn, (r, f))


@pytest.mark.parametrize("bad", ["2", True, None, torch.tensor(2.0)])
def test_weight_must_be_a_real_number(bad):
    r, f = torch.randn(4), torch.randn(4)
    with pytest.raises(TypeError, match="weight"):
        gk.d_loss(r, f, weight=bad)
    with pytest.raises(TypeError, match="weight"):
        gk.g_loss(f, weight=bad)
    with pytest.raises(TypeError, match="weight"):
        gk.d_loss([r], [f], weight=bad)
    with pytest.raises(TypeError, match="weight"):
        gk.nn.GeneratorLoss(weight=bad)


def test_modules_pass_the_weight():
    r, f = torch.randn(6), torch.randn(6)
    d = gk.nn.DiscriminatorLoss("hinge", weight=3.0)
    g = gk.nn.GeneratorLoss("least_squares", weight=0.5)
    assert_close(d(r, f), 3.0 * gk.d_loss(r, f, "hinge", backend="reference"), torch.float32, "module d")
    assert_close(g(f), 0.5 * gk.g_loss(f, "least_squares", backend="reference"), torch.float32, "module g")
    assert "weight=3.0" in repr(d) and "weight" not in repr(gk.nn.DiscriminatorLoss("hinge"))


# --------------------------------------------------------------------------- returned gradients
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("as_list", [False, True], ids=["single", "list"])
def test_changing_a_returned_gradient_in_place_does_not_reach_a_later_backward(backend, as_list):
    r, f = _logits(8), _logits(8)

    def loss(b):
        return gk.d_loss([r] if as_list else r, [f] if as_list else f, "hinge", backend=b)

    want = torch.autograd.grad(loss("reference"), [r, f])
    out = loss(backend)
    first = torch.autograd.grad(out, [r, f], retain_graph=True)
    for g in first:
        g.mul_(0.0).add_(7.0)
    again = torch.autograd.grad(out, [r, f])
    for g, e in zip(again, want):
        assert_close(g, e, torch.float32, f"{backend} second backward")
    # without retain_graph: the returned gradients belong to the caller
    out = loss(backend)
    got = torch.autograd.grad(out, [r, f])
    for g, e in zip(got, want):
        assert_close(g, e, torch.float32, f"{backend} first backward")


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b == "cpu"])  # a C++ node can be called
def test_backward_called_on_the_node_twice_gives_fresh_gradients(backend):
    r, f = _logits(5), _logits(5)
    out = gk.d_loss(r, f, "least_squares", backend=backend)
    want = torch.autograd.grad(gk.d_loss(r, f, "least_squares", backend="reference"), [r, f])
    first = out.grad_fn(torch.ones(()))
    first[0].zero_()
    second = out.grad_fn(torch.ones(()))
    assert_close(second[0], want[0], torch.float32, f"{backend} node called directly")


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_accumulate_over_two_backward_passes(backend):
    r, f = _logits(6), _logits(6)
    want = torch.autograd.grad(gk.d_loss(r, f, "logistic", backend="reference"), [r, f])
    out = gk.d_loss(r, f, "logistic", backend=backend)
    out.backward(retain_graph=True)
    out.backward()
    assert_close(r.grad, 2 * want[0], torch.float32, f"{backend} accumulated d real")
    assert_close(f.grad, 2 * want[1], torch.float32, f"{backend} accumulated d fake")
