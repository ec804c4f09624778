"""Multi-discriminator training: losses over lists of logits, and feature matching.

Every back end that runs on CPU tensors here against the reference (lists of mixed shapes,
dtypes and strides; outputs and gradients), a list of one against the single-tensor call, bad
inputs, gradcheck, opcheck, torch.compile and the op count of the compiled back end.
"""

from __future__ import annotations

import warnings
from collections import Counter

import pytest
import torch

import gan_kernels as gk
from gan_kernels import _kinds, _registry, reference
from gan_kernels.bench.timing import DispatchCounter

from ._helpers import assert_close, cpu_backends, dtypes_for

BACKENDS = cpu_backends()
HAS_CPU = "cpu" in BACKENDS and "d_loss_list" in {op for op, b in _registry._IMPLS if b == "cpu"}
needs_cpu = pytest.mark.skipif(not HAS_CPU, reason="the compiled cpu back end with list ops is not built")
OPS = torch.ops.gan_kernels if HAS_CPU else None

# (real shape, fake shape) per discriminator: a multi-period set (B, 1, T/p, p), a multi-scale one
# (B, 1, T), plus a plain (B,) head and a PatchGAN map with different real / fake batch sizes.
SHAPES = [((2, 1, 6, 2), (2, 1, 6, 2)), ((2, 1, 4, 3), (2, 1, 4, 3)), ((2, 1, 17), (2, 1, 17)), ((5,), (3,)),
          ((2, 1, 3, 3), (4, 1, 3, 3))]
PAIRED_SHAPES = [(s, s) for s, _ in SHAPES]


def _pairs(kind, dtype, paired=False):
    shapes = PAIRED_SHAPES if (paired or kind == "rpgan") else SHAPES
    reals = [(torch.randn(r, dtype=torch.float64) * 2).to(dtype) for r, _ in shapes]
    fakes = [(torch.randn(f, dtype=torch.float64) * 2).to(dtype) for _, f in shapes]
    return reals, fakes


def _strided(x):
    """x with unusual strides: a channels_last copy (4-d) or a non-contiguous view of a wider tensor."""
    if x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    wide = torch.empty(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype)
    view = wide[..., ::2]
    view.copy_(x)
    assert not view.is_contiguous()
    return view


def _leaves(xs):
    return [x.detach().clone().requires_grad_() for x in xs]


def _grads(xs):
    return [x.grad for x in xs]


def _check_grads(got, want, dtype, what):
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype and g.shape == w.shape, f"{what}[{i}]"
        assert_close(g.float() if g.dtype in (torch.float16, torch.bfloat16) else g,
                     w.float() if w.dtype in (torch.float16, torch.bfloat16) else w, dtype, f"{what}[{i}]")


# --------------------------------------------------------------------------- lists of logits
_DTYPE_IDS = {torch.float32: "f32", torch.float64: "f64", torch.float16: "f16", torch.bfloat16: "bf16"}
# (back end, dtype) pairs that run here (the Triton interpreter has no bfloat16).
BACKEND_DTYPES = [pytest.param(b, d, id=f"{b}-{_DTYPE_IDS[d]}") for b in BACKENDS for d in dtypes_for(b, "cpu")]


@pytest.mark.parametrize("kind", _kinds.D_LOSS_KINDS)
@pytest.mark.parametrize("backend,dtype", BACKEND_DTYPES)
def test_d_loss_list_matches_reference(backend, kind, dtype):
    reals, fakes = _pairs(kind, dtype)
    if backend == "triton":  # the interpreter is slow: three discriminators
        reals, fakes = reals[:3], fakes[:3]
    reals[0], fakes[2] = _strided(reals[0]), _strided(fakes[2])
    kw = dict(reduction="sum" if kind == "hinge" else "mean", drift=0.01 if kind == "wasserstein" else 0.0)
    r1, f1, r2, f2 = _leaves(reals), _leaves(fakes), _leaves(reals), _leaves(fakes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no silent fallback to the reference
        total, terms = gk.d_loss(r1, f1, kind, backend=backend, return_terms=True, **kw)
    want = reference.d_loss_list(r2, f2, kind, kw["reduction"], drift=kw["drift"])
    assert total.dtype == want.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert_close(total, want, dtype, "total")
    want_terms = torch.stack([reference.d_loss(r, f, kind, kw["reduction"], drift=kw["drift"]).detach()
                              for r, f in zip(reals, fakes)])
    assert terms.shape == (len(reals),) and not terms.requires_grad
    assert_close(terms, want_terms, dtype, "terms")
    total.backward()
    want.backward()
    _check_grads(_grads(r1), _grads(r2), dtype, "d real")
    _check_grads(_grads(f1), _grads(f2), dtype, "d fake")


@pytest.mark.parametrize("kind", _kinds.G_LOSS_KINDS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_g_loss_list_matches_reference(backend, kind):
    dtype = torch.float32
    reals, fakes = _pairs(kind, dtype, paired=kind in ("relativistic", "rpgan"))
    if backend == "triton":
        reals, fakes = reals[:3], fakes[:3]
    fakes[1] = _strided(fakes[1])
    needs_real = kind in ("relativistic", "rpgan")
    f1, f2 = _leaves(fakes), _leaves(fakes)
    r1, r2 = _leaves(reals), _leaves(reals)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = gk.g_loss(f1, kind, real_logits=r1 if needs_real else None, backend=backend)
    want = reference.g_loss_list(f2, kind, r2 if needs_real else None)
    assert_close(got, want, dtype, "total")
    got.backward()
    want.backward()
    _check_grads(_grads(f1), _grads(f2), dtype, "d fake")
    if needs_real:
        _check_grads(_grads(r1), _grads(r2), dtype, "d real")


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixed_dtypes_in_one_list(backend):
    """Each discriminator keeps its own dtype; a float64 member makes the total float64."""
    dtypes = [torch.float16, torch.float32, torch.float64]
    reals = [torch.randn(4, 1, 3, dtype=torch.float64).to(d) for d in dtypes]
    fakes = [torch.randn(3, 1, 3, dtype=torch.float64).to(d) for d in dtypes]
    f1, f2 = _leaves(fakes), _leaves(fakes)
    total, terms = gk.d_loss(reals, f1, "least_squares", backend=backend, return_terms=True)
    want = reference.d_loss_list(reals, f2, "least_squares")
    assert total.dtype == terms.dtype == torch.float64
    torch.testing.assert_close(total, want, rtol=2e-3, atol=1e-4)
    total.backward()
    want.backward()
    for g, w in zip(_grads(f1), _grads(f2)):
        assert g.dtype == w.dtype
        torch.testing.assert_close(g.double(), w.double(), rtol=2e-3, atol=1e-4)


@pytest.mark.parametrize("kind", _kinds.D_LOSS_KINDS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_list_of_one_is_the_single_call(backend, kind):
    r = torch.randn(6, 1, 5)
    f = torch.randn(6, 1, 5)
    r1, f1, r2, f2 = (x.clone().requires_grad_() for x in (r, f, r, f))
    single = gk.d_loss(r1, f1, kind, backend=backend)
    listed = gk.d_loss([r2], (f2,), kind, backend=backend)
    single.backward()
    listed.backward()
    if backend in ("cpu", "triton"):  # the same kernel on the same data: the same bits
        assert torch.equal(single, listed)
        assert torch.equal(r1.grad, r2.grad) and torch.equal(f1.grad, f2.grad)
    else:
        torch.testing.assert_close(listed, single, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(r2.grad, r1.grad, rtol=1e-6, atol=1e-7)
    # A lone tensor with return_terms is a list of one.
    total, terms = gk.d_loss(r, f, kind, backend=backend, return_terms=True)
    torch.testing.assert_close(total, single.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(terms, single.detach().reshape(1), rtol=1e-6, atol=1e-7)


def test_list_sums_independent_formulas():
    """HiFi-GAN's D loss, written out by hand, is twice the least_squares kind over the list."""
    reals = [torch.randn(2, 1, n) for n in (7, 11, 30)]
    fakes = [torch.randn(2, 1, n) for n in (7, 11, 30)]
    hifigan = sum(torch.mean((1 - r) ** 2) + torch.mean(f ** 2) for r, f in zip(reals, fakes))
    for backend in BACKENDS:
        got = 2 * gk.d_loss(reals, fakes, "least_squares", backend=backend)
        torch.testing.assert_close(got, hifigan, rtol=1e-5, atol=1e-6)
        g = 2 * gk.g_loss(fakes, "least_squares", backend=backend)
        torch.testing.assert_close(g, sum(torch.mean((1 - f) ** 2) for f in fakes), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("backend", BACKENDS)
def test_list_errors(backend):
    r, f = [torch.randn(3), torch.randn(4)], [torch.randn(3), torch.randn(4)]
    with pytest.raises(ValueError, match="empty"):
        gk.d_loss([], [], backend=backend)
    with pytest.raises(ValueError, match="real_logits has 2 tensors but fake_logits has 1"):
        gk.d_loss(r, f[:1], backend=backend)
    with pytest.raises(TypeError, match=r"fake_logits\[1\] must be a torch.Tensor, got int"):
        gk.d_loss(r, [f[0], 3], backend=backend)
    with pytest.raises(TypeError, match="real_logits must be a torch.Tensor like fake_logits, or both must be lists"):
        gk.d_loss(r, f[0], backend=backend)
    with pytest.raises(ValueError, match="reduction='none' is not defined for lists"):
        gk.d_loss(r, f, reduction="none", backend=backend)
    with pytest.raises(ValueError, match=r"discriminator 1: the rpgan kind pairs.*\(4,\) and \(5,\)"):
        gk.d_loss(r, [f[0], torch.randn(5)], "rpgan", backend=backend)
    with pytest.raises(TypeError, match=r"real_logits\[1\] must be a floating-point tensor"):
        gk.d_loss([r[0], torch.ones(4, dtype=torch.long)], f, backend=backend)
    with pytest.raises(ValueError, match=r"fake_logits\[0\] is empty"):
        gk.g_loss([torch.empty(0)], backend=backend)
    with pytest.raises(ValueError, match="needs real_logits"):
        gk.g_loss(f, "relativistic", backend=backend)
    with pytest.raises(ValueError, match="unknown d_loss kind"):
        gk.d_loss(r, f, "nope", backend=backend)


# --------------------------------------------------------------------------- feature matching
def _features(dtype, nested=False):
    """Two discriminators' feature maps: conv maps of several sizes, one channels_last, one strided."""
    shapes = [[(2, 4, 9), (2, 8, 5), (2, 1, 3)], [(2, 3, 4, 5), (2, 6, 2, 3), (2, 1)]]
    real = [[(torch.randn(s, dtype=torch.float64)).to(dtype) for s in d] for d in shapes]
    fake = [[(torch.randn(s, dtype=torch.float64)).to(dtype) for s in d] for d in shapes]
    real[1][0] = real[1][0].contiguous(memory_format=torch.channels_last)
    fake[1][0] = fake[1][0].contiguous(memory_format=torch.channels_last)
    fake[0][1] = _strided(fake[0][1])
    # exact ties: d|x|/dx at 0 is 0, as torch.abs's gradient
    fake[0][2] = real[0][2].clone()
    if nested:
        return real, fake
    return [x for d in real for x in d], [x for d in fake for x in d]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("backend,dtype", BACKEND_DTYPES)
def test_feature_matching_matches_reference(backend, dtype, reduction):
    real, fake = _features(dtype)
    weights = [0.5 * (k + 1) for k in range(len(real))]
    r2, f2 = _leaves(real), _leaves(fake)
    # Leaves in the inputs' own layouts (clone keeps channels_last; the strided view is rebuilt).
    r1 = [x.detach().clone(memory_format=torch.preserve_format).requires_grad_() for x in real]
    f1 = [x.detach().clone(memory_format=torch.preserve_format).requires_grad_() for x in fake]
    f1[1] = _strided(fake[1].detach()).requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no silent fallback to the reference
        got = gk.feature_matching_loss(r1, f1, weight=weights, reduction=reduction, backend=backend)
    want = reference.feature_matching_loss(r2, f2, weights, reduction)
    assert got.shape == want.shape == ((len(real),) if reduction == "none" else ())
    assert_close(got, want, dtype, "loss")
    go = torch.linspace(0.5, 1.5, len(real), dtype=got.dtype) if reduction == "none" else torch.tensor(1.3, dtype=got.dtype)
    got.backward(go)
    want.backward(go)
    _check_grads(_grads(r1), _grads(r2), dtype, "d real")
    _check_grads(_grads(f1), _grads(f2), dtype, "d fake")
    assert r1[3].grad.stride() == real[3].stride()  # channels_last kept
    assert torch.count_nonzero(r1[2].grad) == 0  # exact ties: zero gradient


@pytest.mark.parametrize("backend,dtype", [p for p in BACKEND_DTYPES if p.values[0] != "triton"])
def test_feature_matching_every_tail_length(backend, dtype):
    """Pairs of 1..70 elements: every remainder after the vector loops (up to two vectors of 16
    float32 lanes, of 8 float64 ones), each pair's term and gradients against the reference."""
    real = [(torch.randn(n, dtype=torch.float64) * 3).to(dtype) for n in range(1, 71)]
    fake = [(torch.randn(n, dtype=torch.float64) * 3).to(dtype) for n in range(1, 71)]
    r1, f1, r2, f2 = _leaves(real), _leaves(fake), _leaves(real), _leaves(fake)
    got = gk.feature_matching_loss(r1, f1, reduction="none", backend=backend)
    want = reference.feature_matching_loss(r2, f2, [1.0] * len(real), "none")
    assert_close(got, want, dtype, "terms")
    got.sum().backward()
    want.sum().backward()
    _check_grads(_grads(r1), _grads(r2), dtype, "d real")
    _check_grads(_grads(f1), _grads(f2), dtype, "d fake")


@pytest.mark.parametrize("backend", BACKENDS)
def test_feature_matching_nested_lists_and_detached_real(backend):
    """pix2pixHD: lists per discriminator, weights per layer, the real side detached."""
    real, fake = _features(torch.float32, nested=True)
    n_layers, num_d, lam = 3, 2, 10.0
    weights = [4.0 / (n_layers + 1) / num_d * lam] * 6
    fl = [[x.detach().clone().requires_grad_() for x in d] for d in fake]
    real_det = [[x.detach() for x in d] for d in real]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every back end has its own feature matching
        got = gk.feature_matching_loss(real_det, fl, weight=weights, backend=backend)
    by_hand = sum(w * torch.mean(torch.abs(f - r)) for w, r, f in
                  zip(weights, [x for d in real_det for x in d], [x for d in fl for x in d]))
    torch.testing.assert_close(got, by_hand, rtol=1e-5, atol=1e-6)
    got.backward()
    fl2 = [[x.detach().clone().requires_grad_() for x in d] for d in fake]
    sum(w * torch.mean(torch.abs(f - r)) for w, r, f in
        zip(weights, [x for d in real_det for x in d], [x for d in fl2 for x in d])).backward()
    for a, b in zip([x for d in fl for x in d], [x for d in fl2 for x in d]):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)


def test_feature_matching_module_and_scalar_weight():
    real, fake = _features(torch.float32)
    mod = gk.nn.FeatureMatchingLoss(weight=2.0)
    want = 2 * sum(torch.mean(torch.abs(r - f)) for r, f in zip(real, fake))
    torch.testing.assert_close(mod(real, fake), want, rtol=1e-5, atol=1e-6)
    d = gk.nn.DiscriminatorLoss("hinge")
    rs, fs = [torch.randn(3), torch.randn(2, 1, 4)], [torch.randn(3), torch.randn(2, 1, 4)]
    torch.testing.assert_close(d(rs, fs), reference.d_loss_list(rs, fs, "hinge"), rtol=1e-5, atol=1e-6)
    g = gk.nn.GeneratorLoss("least_squares")
    torch.testing.assert_close(g(fs), reference.g_loss_list(fs, "least_squares"), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_feature_matching_errors(backend):
    a, b = [torch.randn(2, 8), torch.randn(2, 3)], [torch.randn(2, 8), torch.randn(2, 3)]
    with pytest.raises(ValueError, match="empty"):
        gk.feature_matching_loss([], [], backend=backend)
    with pytest.raises(ValueError, match="real_feats has 2 feature maps but fake_feats has 1"):
        gk.feature_matching_loss(a, b[:1], backend=backend)
    with pytest.raises(ValueError, match=r"pair 3: real \(2, 8\) vs fake \(2, 9\)"):
        gk.feature_matching_loss(a + a[::-1], b + [b[1], torch.randn(2, 9)], backend=backend)
    with pytest.raises(TypeError, match=r"fake_feats\[1\] must be a torch.Tensor, got str"):
        gk.feature_matching_loss(a, [b[0], "x"], backend=backend)
    with pytest.raises(ValueError, match="3 weights for 2 feature-map pairs"):
        gk.feature_matching_loss(a, b, weight=[1.0, 2.0, 3.0], backend=backend)
    with pytest.raises(TypeError, match="must be a list or tuple"):
        gk.feature_matching_loss(a[0], b[0], backend=backend)
    with pytest.raises(ValueError, match="unknown reduction"):
        gk.feature_matching_loss(a, b, reduction="max", backend=backend)


# --------------------------------------------------------------------------- compiled back end
@pytest.mark.parametrize("backend,g_kind,g_reduction", [
    pytest.param("cpu", "logistic", "mean", marks=needs_cpu),
    pytest.param("triton", "minimax", "sum",
                 marks=pytest.mark.skipif("triton" not in BACKENDS, reason="triton does not run on CPU tensors here")),
])
def test_gradcheck_lists_float64(backend, g_kind, g_reduction):
    reals = [torch.randn(3, 1, 2, dtype=torch.float64, requires_grad=True), torch.randn(4, dtype=torch.float64, requires_grad=True)]
    fakes = [torch.randn(3, 1, 2, dtype=torch.float64, requires_grad=True), torch.randn(4, dtype=torch.float64, requires_grad=True)]
    for kind in ("logistic", "relativistic", "rpgan", "least_squares"):
        fn = lambda *x: gk.d_loss(list(x[:2]), list(x[2:]), kind, backend=backend)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (*reals, *fakes))
        assert torch.autograd.gradgradcheck(fn, (*reals, *fakes))
    gfn = lambda *x: gk.g_loss(list(x), g_kind, reduction=g_reduction, backend=backend)  # noqa: E731
    assert torch.autograd.gradcheck(gfn, tuple(fakes))
    # Feature matching: keep |r - f| away from 0, where |x| has its kink.
    r = [torch.randn(2, 3, dtype=torch.float64, requires_grad=True), torch.randn(5, dtype=torch.float64, requires_grad=True)]
    f = [(x.detach() + torch.where(torch.rand_like(x) < 0.5, -1.0, 1.0) * (0.1 + torch.rand_like(x))).requires_grad_()
         for x in r]
    for reduction in ("mean", "sum", "none"):
        fm = lambda *x: gk.feature_matching_loss(list(x[:2]), list(x[2:]), weight=[2.0, 0.5], reduction=reduction,  # noqa: E731
                                                 backend=backend)
        assert torch.autograd.gradcheck(fm, (*r, *f))
        assert torch.autograd.gradgradcheck(fm, (*r, *f))


def _opcheck_cases(grad):
    def t(*shape, dtype=torch.float32):
        return torch.randn(*shape, dtype=dtype).requires_grad_(grad)

    spec_d = _kinds.d_loss_args("logistic", 1.0, 0.0, 0.0, 1.0)
    spec_rel = _kinds.d_loss_args("relativistic", 1.0, 0.0, 0.0, 1.0)
    spec_g = _kinds.g_loss_args("least_squares", 1.0)
    reals, fakes = [t(3), t(2, 1, 4)], [t(3), t(5, 1, 4)]
    return {
        "loss_list": [(reals, fakes, *spec_d, 1), ([], fakes, *spec_g, 2), ([t(3), t(4)], [t(2), t(4)], *spec_rel, 1)],
        "feature_matching": [([t(2, 3), t(2, 2, 2)], [t(2, 3), t(2, 2, 2)], [1.0, 2.0], 1),
                             ([t(2, 3, dtype=torch.float64)], [t(2, 3, dtype=torch.float64)], [0.5], 0)],
        "loss_list_forward": [([x.detach() for x in reals], [x.detach() for x in fakes], *spec_d, 1, True),
                              ([], [x.detach() for x in fakes], *spec_g, 2, False)],
        "loss_list_backward": [(torch.tensor(0.7), [torch.randn(3), torch.randn(2, 1, 4)],
                                [torch.randn(3, dtype=torch.float16), torch.randn(2, 1, 4)])],
        "feature_matching_forward": [([torch.randn(2, 3), torch.randn(4)], [torch.randn(2, 3), torch.randn(4)], [1.0, 3.0], 0),
                                     ([torch.randn(2, 3)], [torch.randn(2, 3)], [1.0], 2)],
        "feature_matching_backward": [(torch.tensor(1.5), [torch.randn(2, 3)], [torch.randn(2, 3)], [2.0], 1, True, True),
                                      (torch.randn(2), [torch.randn(2, 3), torch.randn(3)], [torch.randn(2, 3), torch.randn(3)],
                                       [1.0, 1.0], 0, False, True)],
    }


@needs_cpu
@pytest.mark.parametrize("grad", [False, True], ids=["nograd", "requires_grad"])
@pytest.mark.parametrize("op", ["loss_list", "feature_matching"])
def test_opcheck_public(op, grad):
    for args in _opcheck_cases(grad)[op]:
        torch.library.opcheck(getattr(OPS, op), args)


@needs_cpu
@pytest.mark.parametrize("op", ["loss_list_forward", "loss_list_backward", "feature_matching_forward",
                                "feature_matching_backward"])
def test_opcheck_device(op):
    for args in _opcheck_cases(False)[op]:
        torch.library.opcheck(getattr(OPS, op), args)


@pytest.mark.parametrize("backend", [
    pytest.param("cpu", marks=needs_cpu),
    pytest.param("triton", marks=pytest.mark.skipif("triton" not in BACKENDS, reason="triton does not run on CPU tensors here")),
])
def test_torch_compile_fullgraph_step(backend):
    torch._dynamo.reset()

    def step(reals, fakes, feats_r, feats_f):
        d = gk.d_loss(reals, fakes, "least_squares", weight=2.0, backend=backend)
        g = gk.g_loss(fakes, "hinge", backend=backend)
        return d + g + gk.feature_matching_loss(feats_r, feats_f, weight=2.0, backend=backend)

    reals = [torch.randn(2, 1, 8), torch.randn(2, 1, 5, 3)]
    fakes = [torch.randn(2, 1, 8), torch.randn(2, 1, 5, 3)]
    fr = [torch.randn(2, 4, 8), torch.randn(2, 3, 5, 3).contiguous(memory_format=torch.channels_last)]
    ff = [torch.randn(2, 4, 8), torch.randn(2, 3, 5, 3)]
    compiled = torch.compile(step, fullgraph=True, **({"backend": "aot_eager"} if backend == "triton" else {}))
    a = [_leaves(x) for x in (reals, fakes, fr, ff)]
    b = [_leaves(x) for x in (reals, fakes, fr, ff)]
    out_c, out_e = compiled(*a), step(*b)
    torch.testing.assert_close(out_c, out_e)
    out_c.backward()
    out_e.backward()
    for xs, ys in zip(a, b):
        for x, y in zip(xs, ys):
            torch.testing.assert_close(x.grad, y.grad)
    torch._dynamo.reset()


@needs_cpu
def test_deterministic_across_thread_counts():
    reals = [torch.randn(2, 1, 40000), torch.randn(3, 1, 300, 5)] + [torch.randn(2, 1, 700) for _ in range(6)]
    fakes = [torch.randn_like(r) for r in reals]
    feats = [torch.randn(2, 64, 3000), torch.randn(2, 8, 10)]
    feats_f = [torch.randn_like(x) for x in feats]

    def run():
        fl = _leaves(fakes)
        total, terms = gk.d_loss(reals, fl, "logistic", backend="cpu", return_terms=True)
        total.backward()
        ff = _leaves(feats_f)
        fm = gk.feature_matching_loss(feats, ff, backend="cpu")
        fm.backward()
        return [total, terms, fm] + _grads(fl) + _grads(ff)

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run()
        torch.set_num_threads(max(2, before))
        many = run()
    finally:
        torch.set_num_threads(before)
    for x, y in zip(one, many):
        assert torch.equal(x, y)


@needs_cpu
@pytest.mark.parametrize("which", ["d_loss", "feature_matching"])
def test_one_op_per_direction(which):
    """A list loss forward+backward dispatches a handful of ops; the Python loop dispatches many."""
    reals = [torch.randn(2, 1, 30) for _ in range(8)]
    fakes = [torch.randn(2, 1, 30) for _ in range(8)]

    f_fused, f_loop = _leaves(fakes), _leaves(fakes)

    def fused():
        f = f_fused
        if which == "d_loss":
            gk.d_loss(reals, f, "least_squares", backend="cpu").backward()
        else:
            gk.feature_matching_loss(reals, f, weight=2.0, backend="cpu").backward()

    def loop():
        f = f_loop
        if which == "d_loss":
            sum(torch.mean((1 - r) ** 2) + torch.mean(x ** 2) for r, x in zip(reals, f)).backward()
        else:
            (2 * sum(torch.mean(torch.abs(r - x)) for r, x in zip(reals, f))).backward()

    with DispatchCounter() as c_fused:
        fused()
    with DispatchCounter() as c_loop:
        loop()
    # Autograd stores each leaf's gradient with one aten.detach, whoever computed it: not the loss's.
    assert c_fused.by_op.get("aten.detach") == c_loop.by_op.get("aten.detach") == len(fakes)
    fused_ops = c_fused.count - len(fakes)
    gk_ops = [op for op in c_fused.by_op if op.startswith("gan_kernels.")]
    assert fused_ops <= 4, c_fused.by_op
    if which == "d_loss":
        # backward() hands the loss node exactly 1 and keeps no graph: the gradients saved by the
        # forward op are returned as they are, no backward op runs
        assert gk_ops == ["gan_kernels.loss_list_forward"], c_fused.by_op
    else:
        assert len(gk_ops) == 2, c_fused.by_op  # one forward, one backward op
    assert c_loop.count - len(fakes) > 10 * fused_ops, (c_loop.by_op, c_fused.by_op)


@needs_cpu
def test_public_op_checks_name_the_index():
    with pytest.raises(ValueError, match=r"feature_matching_loss pair 1: real \(2, 3\) vs fake \(2, 4\)"):
        OPS.feature_matching([torch.randn(1), torch.randn(2, 3)], [torch.randn(1), torch.randn(2, 4)], [1.0, 1.0], 1)
    spec = _kinds.d_loss_args("rpgan", 1.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="discriminator 1: the rpgan kind"):
        OPS.loss_list([torch.randn(2), torch.randn(3)], [torch.randn(2), torch.randn(4)], *spec, 1)
    with pytest.raises(TypeError, match=r"fake_logits\[0\] must be a floating-point tensor"):
        OPS.loss_list([], [torch.ones(3, dtype=torch.int32)], *_kinds.g_loss_args("logistic", 1.0), 1)


# --------------------------------------------------------------------------- the Triton back end
HAS_TRITON = "triton" in BACKENDS
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton does not run on CPU tensors here (TRITON_INTERPRET=1)")


class _CountingKernel:
    """A Triton kernel whose launches (``kernel[grid](...)``) are counted by name."""

    def __init__(self, kernel, name, counts):
        self.kernel, self.name, self.counts = kernel, name, counts

    def __getitem__(self, grid):
        launch = self.kernel[grid]

        def run(*args, **kwargs):
            self.counts[self.name] += 1
            return launch(*args, **kwargs)

        return run


@pytest.fixture
def triton_launches(monkeypatch):
    """Counter of the Triton loss and list kernels' launches, by kernel name."""
    from gan_kernels.triton import lists, losses

    counts = Counter()
    for mod in (lists, losses):
        for name, k in list(vars(mod).items()):
            if name.endswith("_kernel") and hasattr(k, "__getitem__"):
                monkeypatch.setattr(mod, name, _CountingKernel(k, name, counts))
    return counts


@needs_triton
def test_triton_feature_matching_runs_its_kernel(triton_launches):
    """One launch (plus the finisher) forward, one backward, for a list of maps; no fallback warning."""
    _registry.reset_warnings()
    real = [torch.randn(2, 3), torch.randn(2, 4, 5), torch.randn(3, 70)]
    fake = [torch.randn_like(x).requires_grad_() for x in real]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = gk.feature_matching_loss(real, fake, weight=[1.0, 2.0, 0.5], backend="triton")
    assert dict(triton_launches) == {"_fm_fwd_kernel": 1, "_fm_finish_kernel": 1}
    by_hand = sum(w * torch.mean(torch.abs(r - f.detach())) for w, r, f in zip([1.0, 2.0, 0.5], real, fake))
    torch.testing.assert_close(got, by_hand, rtol=1e-6, atol=1e-6)
    got.backward()
    assert triton_launches["_fm_bwd_kernel"] == 1
    for w, r, f in zip([1.0, 2.0, 0.5], real, fake):
        torch.testing.assert_close(f.grad, -w * torch.sign(r - f.detach()) / r.numel())


@needs_triton
def test_triton_one_launch_per_direction(triton_launches):
    """The independent-term kinds take the table kernels: one launch and one finisher forward, one
    launch backward, whatever the list's length; one op call per direction."""
    reals = [torch.randn(2, 1, n) for n in (3, 8, 40, 5, 17, 70)]
    fakes = [torch.randn(2, 1, n).requires_grad_() for n in (3, 8, 40, 5, 17, 70)]
    with DispatchCounter() as c:
        total = gk.d_loss(reals, fakes, "hinge", backend="triton")
        total.backward()
    assert dict(triton_launches) == {"_loss_list_fwd_kernel": 1, "_loss_list_finish_kernel": 1,
                                     "_loss_list_bwd_kernel": 1}
    assert {op: n for op, n in c.by_op.items() if op.startswith("gan_kernels")} == {
        "gan_kernels_triton.loss_list_forward": 1, "gan_kernels_triton.loss_list_backward": 1}
    # A list mixing dtypes: one launch (and finisher) per dtype, and one kernel adding the terms.
    triton_launches.clear()
    mixed = [f.detach().to(d) for f, d in zip(fakes, [torch.float16, torch.float32] * 3)]
    gk.g_loss(mixed, "least_squares", backend="triton")
    assert dict(triton_launches) == {"_loss_list_fwd_kernel": 2, "_loss_list_finish_kernel": 2,
                                     "_sum_in_order_kernel": 1}
    # Relativistic terms need the other side's mean: the single-tensor loss per discriminator.
    triton_launches.clear()
    gk.d_loss(reals, [f.detach() for f in fakes], "relativistic", backend="triton")
    assert triton_launches["_loss_fwd_kernel"] == len(fakes) and "_loss_list_fwd_kernel" not in triton_launches


def _long_list(n):
    """n discriminators: many tiny heads and a few maps past the interpreter's one-chunk size."""
    sizes = [(2,)] * (n - 3) + [(4, 1, 250), (37,), (3, 1, 11, 9)]
    reals = [torch.randn(s) for s in sizes]
    fakes = [torch.randn(s) for s in sizes]
    return reals, fakes


@needs_triton
@pytest.mark.parametrize("kind", ["least_squares", "rpgan"])
def test_triton_long_list_and_multi_chunk_tensors(kind):
    """More discriminators than one step of the row search (128) and tensors of several chunks."""
    reals, fakes = _long_list(131)
    r1, f1, r2, f2 = _leaves(reals), _leaves(fakes), _leaves(reals), _leaves(fakes)
    total, terms = gk.d_loss(r1, f1, kind, backend="triton", return_terms=True)
    want = reference.d_loss_list(r2, f2, kind)
    torch.testing.assert_close(total, want, rtol=1e-5, atol=1e-5)
    want_terms = torch.stack([reference.d_loss(r, f, kind).detach() for r, f in zip(reals, fakes)])
    torch.testing.assert_close(terms, want_terms, rtol=1e-6, atol=1e-6)
    total.backward()
    want.backward()
    _check_grads(_grads(r1), _grads(r2), torch.float32, "d real")
    _check_grads(_grads(f1), _grads(f2), torch.float32, "d fake")
    fr, ff = _leaves(reals), _leaves(fakes)
    weights = [0.5 + k % 3 for k in range(len(reals))]
    fm = gk.feature_matching_loss(fr, ff, weight=weights, backend="triton")
    fr2, ff2 = _leaves(reals), _leaves(fakes)
    want_fm = reference.feature_matching_loss(fr2, ff2, weights)
    torch.testing.assert_close(fm, want_fm, rtol=1e-5, atol=1e-5)
    fm.backward()
    want_fm.backward()
    _check_grads(_grads(fr) + _grads(ff), _grads(fr2) + _grads(ff2), torch.float32, "feature matching")


@needs_triton
def test_triton_lists_deterministic():
    """The same bits run after run: fixed chunks, partial sums added in a fixed order, no atomics."""
    reals, fakes = _long_list(6)
    fakes[1] = fakes[1].double()
    reals[1] = reals[1].double()
    feats_r = [torch.randn(2, 8, 60), torch.randn(3, 5).half(), torch.randn(2, 3, 4, 5)]
    feats_f = [torch.randn_like(x) for x in feats_r]

    def run():
        fl = _leaves(fakes)
        total, terms = gk.d_loss(reals, fl, "logistic", backend="triton", return_terms=True)
        total.backward()
        ff = _leaves(feats_f)
        fm = gk.feature_matching_loss(feats_r, ff, reduction="sum", backend="triton")
        fm.backward()
        return [total, terms, fm] + _grads(fl) + _grads(ff)

    first = run()
    for x, y in zip(first, run()):
        assert torch.equal(x, y)


@needs_triton
def test_triton_list_of_one_is_the_single_call_for_g_loss():
    f = torch.randn(3, 1, 4, 4)
    f1, f2 = f.clone().requires_grad_(), f.clone().requires_grad_()
    single = gk.g_loss(f1, "logistic", backend="triton")
    listed = gk.g_loss([f2], "logistic", backend="triton")
    single.backward()
    listed.backward()
    assert torch.equal(single, listed) and torch.equal(f1.grad, f2.grad)


def _triton_opcheck_cases():
    cases = _opcheck_cases(False)
    spec_p = _kinds.d_loss_args("rpgan", 1.0, 0.0, 0.0, 1.0)
    spec_d = _kinds.d_loss_args("hinge", 1.0, 0.1, 0.0, 1.0)
    cl = torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    # Several chunks per tensor, mixed dtypes, a paired kind, the relativistic loop, a list of one.
    cases["loss_list_forward"] += [
        ([torch.randn(300), torch.randn(5).double()], [torch.randn(290), torch.randn(7).double()], *spec_d, 2, True),
        ([torch.randn(4, 1, 3), torch.randn(2)], [torch.randn(4, 1, 3), torch.randn(2)], *spec_p, 1, True),
        ([torch.randn(4), torch.randn(3)], [torch.randn(2), torch.randn(3)],
         *_kinds.d_loss_args("relativistic", 1.0, 0.0, 0.0, 1.0), 1, True),
        ([torch.randn(6)], [torch.randn(6)], *spec_d, 1, True),
    ]
    cases["loss_list_backward"] += [(torch.tensor(2.0, dtype=torch.float64), [torch.randn(400), torch.randn(3).double()],
                                     [torch.randn(400).half(), torch.randn(3).double()])]
    cases["feature_matching_forward"] += [([cl, torch.randn(3, 90).half()], [torch.randn(2, 3, 4, 5), torch.randn(3, 90).half()],
                                           [0.5, 2.0], 2)]
    cases["feature_matching_backward"] += [(torch.randn(2), [cl, torch.randn(3, 90)], [torch.randn(2, 3, 4, 5), torch.randn(3, 90)],
                                            [0.5, 2.0], 0, True, True)]
    return cases


@needs_triton
@pytest.mark.parametrize("op", ["loss_list_forward", "loss_list_backward", "feature_matching_forward",
                                "feature_matching_backward"])
def test_triton_opcheck(op):
    """Schema, fake kernel (metadata equal to the real kernel's) and AOT dispatch of the Triton list ops."""
    for args in _triton_opcheck_cases()[op]:
        torch.library.opcheck(getattr(torch.ops.gan_kernels_triton, op), args)


