"""The CUDA back end's list ops (multi-discriminator losses, feature matching) on a GPU.

GPU-marked: skipped without a CUDA device. The list ops run each direction as one launch per
element dtype over a pointer table of the whole list, cut into several launches when the list
outgrows one table. Checked here against the reference back end and against the CUDA single-tensor
op: lists of mixed shapes, dtypes and strides (channels_last included), tensors large enough for
many chunks, a list of one (bitwise the single op), lists of 200 tensors (several tables: each
term and gradient is the same bits as in a short list, so where the cuts fall does not matter),
both sides or one side of the feature-matching gradients, CUDA-graph capture and replay, and
bitwise equality of two calls.
"""

from __future__ import annotations

import pytest
import torch

import gan_kernels as gk
from gan_kernels import _kinds, reference

from ._helpers import assert_close, require

pytestmark = pytest.mark.gpu

OPS = torch.ops.gan_kernels
MEAN, NONE = _kinds.REDUCTIONS["mean"], _kinds.REDUCTIONS["none"]
DTYPES = [pytest.param(d, id=i) for d, i in ((torch.float32, "f32"), (torch.float64, "f64"),
                                             (torch.float16, "f16"), (torch.bfloat16, "bf16"))]
# Kinds whose per-element terms are independent: the ones that take the table kernels.
INDEPENDENT_D_KINDS = [k for k in _kinds.D_LOSS_KINDS if k not in _kinds.RELATIVISTIC_KINDS]

# (real shape, fake shape) per discriminator: multi-period heads (B, 1, T/p, p), multi-scale heads
# (B, 1, T), a plain (B,) head with other real / fake batch sizes, a channels-first map with C > 1,
# and heads past 8192 logits (several chunks each; the last one a tail chunk).
SHAPES = [((2, 1, 100, 2), (2, 1, 100, 2)), ((2, 1, 67, 3), (2, 1, 67, 3)), ((2, 1, 1500), (2, 1, 1500)),
          ((5,), (3,)), ((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 1, 9001), (2, 1, 9001)),
          ((3, 1, 150, 100), (2, 1, 150, 100))]


@pytest.fixture(autouse=True)
def _cuda_backend():
    require("cuda", "cuda")


def _randn(shape, dtype, scale=2.0):
    return (torch.randn(shape, dtype=torch.float64, device="cuda") * scale).to(dtype)


def _strided(x):
    """x in another layout with the same values: channels_last (4-d) or a non-contiguous view."""
    if x.dim() == 4:
        y = x.contiguous(memory_format=torch.channels_last)
        assert x.size(1) == 1 or not y.is_contiguous()
        return y
    wide = torch.empty(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype, device=x.device)
    view = wide[..., ::2]
    view.copy_(x)
    assert not view.is_contiguous()
    return view


def _logits(kind, dtype, shapes=SHAPES):
    paired = kind in _kinds.PAIRED_KINDS
    reals = [_randn(r, dtype) for r, _ in shapes]
    fakes = [_randn(r if paired else f, dtype) for r, f in shapes]
    reals[4], fakes[6] = _strided(reals[4]), _strided(fakes[6])
    reals[2] = _strided(reals[2])
    return reals, fakes


def _leaves(xs):
    return [x.detach().clone().requires_grad_() for x in xs]


def _up(x):
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_grads(got, want, dtype, what):
    for i, (g, w) in enumerate(zip(got, want)):
        assert g is not None, f"{what}[{i}] has no gradient"
        assert g.dtype == w.dtype and g.shape == w.shape, f"{what}[{i}]"
        assert_close(_up(g), _up(w), dtype, f"{what}[{i}]")


# --------------------------------------------------------------------------- losses over lists
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", _kinds.D_LOSS_KINDS)
def test_d_loss_list_matches_reference(kind, dtype):
    reals, fakes = _logits(kind, dtype)
    kw = dict(reduction="sum" if kind == "hinge" else "mean", drift=0.01 if kind == "wasserstein" else 0.0)
    r1, f1, r2, f2 = _leaves(reals), _leaves(fakes), _leaves(reals), _leaves(fakes)
    total, terms = gk.d_loss(r1, f1, kind, backend="cuda", return_terms=True, **kw)
    want = reference.d_loss_list(r2, f2, kind, kw["reduction"], drift=kw["drift"])
    assert total.dtype == want.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert_close(total, want, dtype, "total")
    want_terms = torch.stack([reference.d_loss(r, f, kind, kw["reduction"], drift=kw["drift"]).detach()
                              for r, f in zip(reals, fakes)])
    assert terms.shape == (len(reals),) and terms.device.type == "cuda"
    assert_close(terms, want_terms, dtype, "terms")
    total.backward()
    want.backward()
    _check_grads([x.grad for x in r1], [x.grad for x in r2], dtype, "d real")
    _check_grads([x.grad for x in f1], [x.grad for x in f2], dtype, "d fake")


@pytest.mark.parametrize("kind", _kinds.G_LOSS_KINDS)
def test_g_loss_list_matches_reference(kind):
    dtype = torch.float32
    reals, fakes = _logits(kind, dtype)
    needs_real = kind in _kinds.PAIRED_KINDS or kind in _kinds.RELATIVISTIC_KINDS
    if needs_real and kind in _kinds.PAIRED_KINDS:
        reals = [_randn(f.shape, dtype) for f in fakes]
    f1, f2, r1, r2 = _leaves(fakes), _leaves(fakes), _leaves(reals), _leaves(reals)
    total, terms = gk.g_loss(f1, kind, real_logits=r1 if needs_real else None, backend="cuda", return_terms=True)
    want = reference.g_loss_list(f2, kind, r2 if needs_real else None)
    assert_close(total, want, dtype, "total")
    assert terms.shape == (len(fakes),)
    total.backward()
    want.backward()
    _check_grads([x.grad for x in f1], [x.grad for x in f2], dtype, "d fake")
    if needs_real:
        _check_grads([x.grad for x in r1], [x.grad for x in r2], dtype, "d real")


def test_mixed_dtypes_in_one_list():
    """One launch per dtype, one finisher over the whole list in list order; a float64 member
    makes the terms and the total float64, each gradient keeps its tensor's dtype."""
    dtypes = [torch.float16, torch.float32, torch.bfloat16, torch.float64, torch.float32, torch.float16]
    shapes = [(4, 1, 30), (4, 1, 9000), (2, 1, 40), (3, 1, 20), (2, 1, 7), (2, 1, 20000)]
    reals = [_randn(s, d) for s, d in zip(shapes, dtypes)]
    fakes = [_randn(s, d) for s, d in zip(shapes, dtypes)]
    r1, f1, r2, f2 = _leaves(reals), _leaves(fakes), _leaves(reals), _leaves(fakes)
    total, terms = gk.d_loss(r1, f1, "least_squares", backend="cuda", return_terms=True)
    want = reference.d_loss_list(r2, f2, "least_squares")
    assert total.dtype == terms.dtype == torch.float64
    torch.testing.assert_close(total, want, rtol=2e-3, atol=1e-4)
    for i, (r, f) in enumerate(zip(reals, fakes)):
        torch.testing.assert_close(terms[i], reference.d_loss(r, f, "least_squares").double(), rtol=2e-3, atol=1e-4)
    total.backward()
    want.backward()
    for xs, ys in ((r1, r2), (f1, f2)):
        for x, y in zip(xs, ys):
            assert x.grad.dtype == y.grad.dtype == x.dtype
            torch.testing.assert_close(x.grad.double(), y.grad.double(), rtol=2e-3, atol=1e-4)


@pytest.mark.parametrize("n", [30, 9001, 70_000], ids=["one-block", "grid", "large-grid"])
@pytest.mark.parametrize("kind", _kinds.D_LOSS_KINDS)
def test_list_of_one_is_bitwise_the_single_call(kind, n):
    r = _randn((2, 1, n), torch.float32)
    f = _randn((2, 1, n), torch.float32)
    r1, f1, r2, f2 = (x.clone().requires_grad_() for x in (r, f, r, f))
    single = gk.d_loss(r1, f1, kind, backend="cuda")
    listed = gk.d_loss([r2], [f2], kind, backend="cuda")
    single.backward()
    listed.backward()
    assert torch.equal(single, listed)
    assert torch.equal(r1.grad, r2.grad) and torch.equal(f1.grad, f2.grad)


def _device_list_forward(reals, fakes, spec, reduction=MEAN, compute_grad=True):
    return OPS.loss_list_forward(reals if spec.uses_real else [], fakes, *spec.args(), reduction, compute_grad)


@pytest.mark.parametrize("kind", INDEPENDENT_D_KINDS)
def test_device_op_terms_match_the_single_op(kind):
    """Each term and per-element gradient of loss_list_forward against loss_forward on the same
    pair, including an empty real side (different real and fake sizes) and a float64 member."""
    spec = _kinds.d_loss_spec(kind, 1.0, 0.01, 0.0, 1.0)
    shapes = SHAPES if kind not in _kinds.PAIRED_KINDS else [(r, r) for r, _ in SHAPES]
    reals = [_randn(r, torch.float32) for r, _ in shapes]
    fakes = [_randn(f, torch.float32) for _, f in shapes]
    if kind not in _kinds.PAIRED_KINDS:
        reals[3] = torch.empty(0, device="cuda")
    reals[1], fakes[1] = reals[1].double(), fakes[1].double()
    total, terms, g_real, g_fake = _device_list_forward(reals, fakes, spec)
    assert terms.dtype == total.dtype == torch.float64 and len(g_real) == len(g_fake) == len(fakes)
    for i, (r, f) in enumerate(zip(reals, fakes)):
        loss, gr, gf = OPS.loss_forward(r, f, *spec.args(), MEAN, True)
        torch.testing.assert_close(terms[i], loss.double(), rtol=1e-5, atol=1e-6, msg=f"term {i}")
        assert g_real[i].dtype == gr.dtype and g_fake[i].dtype == gf.dtype
        torch.testing.assert_close(g_real[i], gr, rtol=1e-6, atol=0, msg=f"grad real {i}")
        torch.testing.assert_close(g_fake[i], gf, rtol=1e-6, atol=0, msg=f"grad fake {i}")
    want_total = terms[0]
    for t in terms[1:]:
        want_total = want_total + t
    assert torch.equal(total, want_total)  # the terms added in list order
    _, _, no_r, no_f = _device_list_forward(reals, fakes, spec, compute_grad=False)
    assert no_r == [] and no_f == []


def _long_list(n_tensors, dtype=torch.float32):
    # Sizes cycle through one chunk, several chunks and a tail: 200 entries need several tables.
    sizes = [(2, 1, 40 + 37 * (i % 7)) if i % 9 else (2, 1, 5000 + 11 * i) for i in range(n_tensors)]
    reals = [_randn(s, dtype) for s in sizes]
    fakes = [_randn(s, dtype) for s in sizes]
    return reals, fakes


@pytest.mark.parametrize("kind", INDEPENDENT_D_KINDS)
def test_long_list_beyond_one_table(kind):
    """200 discriminators: against the reference, and every term and gradient the same bits as in
    a list of just that pair and its neighbour (the cuts between tables change nothing)."""
    reals, fakes = _long_list(200)
    spec = _kinds.d_loss_spec(kind, 1.0, 0.0, 0.0, 1.0)
    total, terms, g_real, g_fake = _device_list_forward(reals, fakes, spec)
    want_terms = torch.stack([reference.d_loss(r, f, kind) for r, f in zip(reals, fakes)])
    assert_close(terms, want_terms, torch.float32, "terms")
    assert_close(total, reference.d_loss_list(reals, fakes, kind), torch.float32, "total")
    want_total = terms[0]
    for t in terms[1:]:
        want_total = want_total + t
    assert torch.equal(total, want_total)  # carried across the finisher's launches in list order
    for i in (0, 47, 48, 79, 80, 81, 159, 160, 199):
        j = i - 1 if i else 1
        _, pair_terms, pr, pf = _device_list_forward([reals[i], reals[j]], [fakes[i], fakes[j]], spec)
        assert torch.equal(pair_terms[0], terms[i]), f"term {i}"
        if spec.uses_real:
            assert torch.equal(pr[0], g_real[i]), f"grad real {i}"
        assert torch.equal(pf[0], g_fake[i]), f"grad fake {i}"
    # and through autograd: one backward launch over every gradient
    f1, f2 = _leaves(fakes), _leaves(fakes)
    gk.d_loss(reals, f1, kind, backend="cuda").backward()
    reference.d_loss_list(reals, f2, kind).backward()
    _check_grads([x.grad for x in f1], [x.grad for x in f2], torch.float32, "d fake")


@pytest.mark.parametrize("go_dtype", [torch.float32, torch.float64, torch.float16])
def test_loss_list_backward_device_op(go_dtype):
    """(grad_out * saved[i]).to(like[i].dtype): the product in float64 when grad_out or saved[i]
    is float64, else float32; saved tensors in other layouts, an empty one, an empty list."""
    go = torch.tensor(0.37, device="cuda", dtype=go_dtype)
    saved = [_randn((3, 1, 50), torch.float32), _randn((2, 9000), torch.float64),
             _randn((4, 3, 5, 6), torch.float32).contiguous(memory_format=torch.channels_last),
             _randn((6, 10), torch.float32).t(), _randn((5, 8), torch.float32)[:, ::2],
             torch.empty(0, 3, device="cuda"), _randn((70_000,), torch.float32)]
    like_dtypes = [torch.float16, torch.float64, torch.float32, torch.bfloat16, torch.float32, torch.float32,
                   torch.float32]
    like = [torch.empty(1, device="cuda", dtype=d) for d in like_dtypes]
    out = OPS.loss_list_backward(go, saved, like)
    assert len(out) == len(saved)
    for i, (o, s, d) in enumerate(zip(out, saved, like_dtypes)):
        acc = torch.float64 if torch.float64 in (s.dtype, go_dtype) else torch.float32
        want = (go.to(acc) * s.to(acc)).to(d)
        assert o.dtype == d and o.shape == s.shape, f"entry {i}"
        assert o.stride() == torch.empty_like(s, dtype=d).stride(), f"entry {i} layout"
        assert torch.equal(o, want), f"entry {i}"
    assert OPS.loss_list_backward(go, [], []) == []


# --------------------------------------------------------------------------- feature matching
def _features(dtype, n_pairs=None):
    """Conv feature maps of several sizes, one pair channels_last, one strided, one past a chunk,
    one pair with exact ties (sign 0); or n_pairs small pairs for a long list."""
    if n_pairs is not None:
        shapes = [(2, 1 + i % 5, 3 + (i * 7) % 40) if i % 13 else (2, 4, 5000) for i in range(n_pairs)]
    else:
        shapes = [(2, 4, 9), (2, 8, 5), (2, 1, 3), (2, 3, 4, 5), (2, 6, 2, 3), (2, 1), (2, 16, 1500)]
    real = [_randn(s, dtype, 1.0) for s in shapes]
    fake = [_randn(s, dtype, 1.0) for s in shapes]
    if n_pairs is None:
        real[3] = real[3].contiguous(memory_format=torch.channels_last)
        fake[3] = fake[3].contiguous(memory_format=torch.channels_last)
        fake[1] = _strided(fake[1])
        fake[2] = real[2].clone()
    return real, fake


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_feature_matching_matches_reference(dtype, reduction):
    real, fake = _features(dtype)
    weights = [0.5 + 0.25 * k for k in range(len(real))]
    r1, f1 = _leaves(real), _leaves(fake)
    r2, f2 = _leaves(real), _leaves(fake)
    got = gk.feature_matching_loss(r1, f1, weight=weights, reduction=reduction, backend="cuda")
    want = reference.feature_matching_loss(r2, f2, weights, reduction)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert_close(got, want, dtype, "loss")
    up = torch.linspace(0.5, 1.5, got.numel(), device="cuda", dtype=got.dtype).reshape(got.shape)
    (got * up).sum().backward()
    (want * up).sum().backward()
    _check_grads([x.grad for x in r1], [x.grad for x in r2], dtype, "d real")
    _check_grads([x.grad for x in f1], [x.grad for x in f2], dtype, "d fake")
    assert r1[3].grad.stride() == real[3].stride()  # channels_last kept
    assert torch.equal(f1[2].grad, torch.zeros_like(f1[2]))  # exact ties: sign 0


def test_feature_matching_mixed_dtypes_and_one_side():
    real, fake = _features(torch.float32)
    real[0], fake[0] = real[0].double(), fake[0].double()
    real[4], fake[4] = real[4].half(), fake[4].half()
    real[6], fake[6] = real[6].bfloat16(), fake[6].bfloat16()
    weights = [1.0 + k for k in range(len(real))]
    out = OPS.feature_matching_forward(real, fake, weights, MEAN)
    want = reference.feature_matching_loss(real, fake, weights, "mean")
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, want.double(), rtol=2e-3, atol=1e-5)
    grad = torch.tensor(0.75, device="cuda", dtype=torch.float64)
    both_r, both_f = OPS.feature_matching_backward(grad, real, fake, weights, MEAN, True, True)
    only_r, none_f = OPS.feature_matching_backward(grad, real, fake, weights, MEAN, True, False)
    none_r, only_f = OPS.feature_matching_backward(grad, real, fake, weights, MEAN, False, True)
    assert none_f == [] and none_r == []
    assert OPS.feature_matching_backward(grad, real, fake, weights, MEAN, False, False) == ([], [])
    for k, (r, f) in enumerate(zip(real, fake)):
        r_, f_ = _up(r).detach().requires_grad_(), _up(f).detach().requires_grad_()
        (weights[k] * (r_ - f_).abs().mean() * grad.to(_up(r).dtype)).backward()
        # every real map here is batch-major (contiguous or channels_last): its gradient keeps its strides
        assert both_r[k].dtype == r.dtype and both_r[k].stride() == r.stride(), f"d real {k} layout"
        assert_close(_up(both_r[k]), r_.grad, r.dtype, f"d real {k}")
        assert_close(_up(both_f[k]), f_.grad, r.dtype, f"d fake {k}")
        assert torch.equal(only_r[k], both_r[k]) and torch.equal(only_f[k], both_f[k])


def test_feature_matching_long_list():
    """200 pairs: several tables in each direction; per-pair terms ("none") and gradients the same
    bits as in a list of that pair alone, with a (K,) upstream gradient that autograd expands."""
    real, fake = _features(torch.float32, n_pairs=200)
    weights = [0.5 + (k % 3) for k in range(200)]
    terms = OPS.feature_matching_forward(real, fake, weights, NONE)
    total = OPS.feature_matching_forward(real, fake, weights, MEAN)
    want = reference.feature_matching_loss(real, fake, weights, "none")
    assert_close(terms, want, torch.float32, "terms")
    assert_close(total, reference.feature_matching_loss(real, fake, weights, "mean"), torch.float32, "total")
    grad = torch.rand(200, device="cuda") + 0.5
    d_real, d_fake = OPS.feature_matching_backward(grad, real, fake, weights, NONE, True, True)
    expanded = torch.tensor(0.8, device="cuda").expand(200)
    e_real, _ = OPS.feature_matching_backward(expanded, real, fake, weights, NONE, True, False)
    for k in (0, 13, 47, 48, 63, 64, 79, 80, 199):
        alone = OPS.feature_matching_forward([real[k]], [fake[k]], [weights[k]], NONE)
        assert torch.equal(alone[0], terms[k]), f"term {k}"
        a_r, a_f = OPS.feature_matching_backward(grad[k:k + 1], [real[k]], [fake[k]], [weights[k]], NONE, True, True)
        assert torch.equal(a_r[0], d_real[k]) and torch.equal(a_f[0], d_fake[k]), f"grads {k}"
        b_r, _ = OPS.feature_matching_backward(torch.tensor([0.8], device="cuda"), [real[k]], [fake[k]],
                                               [weights[k]], NONE, True, False)
        assert torch.equal(b_r[0], e_real[k]), f"expanded grad {k}"
        r_, f_ = real[k].clone().requires_grad_(), fake[k].clone().requires_grad_()
        (weights[k] * (r_ - f_).abs().mean() * grad[k]).backward()
        assert_close(d_real[k], r_.grad, torch.float32, f"d real {k}")


# --------------------------------------------------------------------------- graphs, determinism
def _hifigan_like():
    """8 discriminators' logits and 54 feature-map pairs, HiFi-GAN's list lengths."""
    logit_sizes = [(2, 1, 40 * (p + 3), p) for p in (2, 3, 5, 7, 11)] + [(2, 1, 2000), (2, 1, 1000), (2, 1, 500)]
    feat_sizes = [(2, 4 * (1 + k % 4), 30 + 17 * k) for k in range(54)]
    reals = [torch.randn(s, device="cuda") for s in logit_sizes]
    fakes = [torch.randn(s, device="cuda", requires_grad=True) for s in logit_sizes]
    fr = [torch.randn(s, device="cuda") for s in feat_sizes]
    ff = [torch.randn(s, device="cuda", requires_grad=True) for s in feat_sizes]
    return reals, fakes, fr, ff


def _list_losses(reals, fakes, fr, ff, backend):
    d = gk.d_loss(reals, [f.detach() for f in fakes], "least_squares", backend=backend)
    g = gk.g_loss(fakes, "least_squares", backend=backend)
    fm = gk.feature_matching_loss(fr, ff, weight=2.0, backend=backend)
    return d, g + fm


def test_cuda_graph_capture_and_replay_of_list_ops():
    reals, fakes, fr, ff = _hifigan_like()
    static = reals + fakes + fr + ff

    def step():
        for x in fakes + ff:
            x.grad = None
        d, g = _list_losses(reals, fakes, fr, ff, "cuda")
        g.backward()
        return d, g

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        d_out, g_out = step()
    with torch.no_grad():
        for x in static:
            x.copy_(torch.randn_like(x) * 1.5)
    graph.replay()
    torch.cuda.synchronize()
    rf = [x.detach().clone().requires_grad_() for x in fakes]
    rff = [x.detach().clone().requires_grad_() for x in ff]
    d_want, g_want = _list_losses(reals, rf, fr, rff, "reference")
    g_want.backward()
    torch.testing.assert_close(d_out, d_want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_out, g_want, rtol=1e-5, atol=1e-6)
    for x, y in zip(fakes + ff, rf + rff):
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-5, atol=1e-7)


def test_two_calls_give_the_same_bits():
    reals, fakes = _long_list(60)
    reals.append(_randn((4, 1, 300_000), torch.float32))  # 2048 chunks: the most partials per tensor
    fakes.append(_randn((4, 1, 300_000), torch.float32))
    fr, ff = _features(torch.float32, n_pairs=70)
    fr.append(_randn((2, 64, 30_000), torch.float32))
    ff.append(_randn((2, 64, 30_000), torch.float32))

    def run():
        f1, ff1 = _leaves(fakes), _leaves(ff)
        total, terms = gk.d_loss(reals, f1, "logistic", backend="cuda", return_terms=True)
        total.backward()
        fm = gk.feature_matching_loss(fr, ff1, backend="cuda")
        fm.backward()
        return [total, terms, fm] + [x.grad for x in f1] + [x.grad for x in ff1]

    one, two = run(), run()
    for i, (x, y) in enumerate(zip(one, two)):
        assert torch.equal(x, y), f"output {i}"
