"""The Triton back end's seven custom ops against the reference, and their op-level contract.

Runs in CI on CPU tensors under the Triton interpreter (TRITON_INTERPRET=1, float32 and float16
only, small shapes: the interpreter is slow), and on CUDA tensors with the compiled kernels
where a GPU is present (then also float64 and bfloat16). The interpreter uses tiny block sizes,
so the shapes here span several blocks / chunks and exercise every loop and mask.
"""

from __future__ import annotations

import os

import torch

# Triton picks the interpreter when it is imported: set it before gan_kernels imports triton
# (tests/conftest.py does the same, earlier, for the whole session).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

pytest.importorskip("triton")

import gan_kernels as gk  # noqa: E402
from gan_kernels import _fake, _kinds, _registry, reference  # noqa: E402

from ._helpers import assert_close  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("triton on CPU tensors needs TRITON_INTERPRET=1 before triton is imported", allow_module_level=True)
# triton imports, so the back end must be there: a broken kernel module fails here, loudly.
assert "triton" in gk.available_backends(), _registry._reason("triton")

OPS = torch.ops.gan_kernels_triton
# On a GPU machine every test here runs the compiled kernels on CUDA tensors: mark them so the
# GPU check (`pytest -m gpu`) selects them; on CPU they run in CI under the interpreter.
pytestmark = [pytest.mark.gpu] if DEVICE == "cuda" else []
DTYPES = [torch.float32, torch.float16] + ([torch.float64, torch.bfloat16] if DEVICE == "cuda" else [])
DT_IDS = {torch.float32: "f32", torch.float16: "f16", torch.float64: "f64", torch.bfloat16: "bf16"}
REDUCTIONS = list(_kinds.REDUCTIONS)


def _rand(shape, dtype, scale=2.0):
    return (torch.randn(shape, device=DEVICE, dtype=torch.float64) * scale).to(dtype)


def _untie(a, b):
    """b with no element equal to a's: at r == f the reference's softplus (max(x, 0) + ...) has an
    autograd kink and returns 0 instead of the true slope 1/2, which low precision hits often."""
    return torch.where(a == b, b + 0.5, b)


def _compare(fn, inputs, dtype, what, upstream=None):
    """fn(backend, *inputs) on triton and on the reference: outputs and input gradients."""
    results = []
    for backend in ("triton", "reference"):
        ins = [x.detach().clone().requires_grad_(True) for x in inputs]
        out = fn(backend, *ins)
        if upstream is None:
            upstream = torch.randn(out.shape, device=DEVICE, dtype=out.dtype)
        grads = torch.autograd.grad(out, ins, upstream, allow_unused=True)
        results.append((out, grads))
    (out_t, g_t), (out_r, g_r) = results
    assert out_t.dtype == out_r.dtype and out_t.shape == out_r.shape, what
    assert_close(out_t, out_r, dtype, f"{what}: output")
    for i, (a, b) in enumerate(zip(g_t, g_r)):
        assert a.dtype == b.dtype == dtype, what
        assert_close(a, b, dtype, f"{what}: grad of input {i}")


# --------------------------------------------------------------------------- losses
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS.get)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", list(_kinds.D_LOSS_KINDS))
def test_d_loss_matches_reference(kind, reduction, dtype):
    paired = reduction == "none" or kind in _kinds.PAIRED_KINDS
    # Unequal batch sizes where the kind allows them; a PatchGAN-shaped map otherwise.
    r_shape, f_shape = ((3, 1, 5, 7), (3, 1, 5, 7)) if paired else ((37,), (53, 1))
    opts = dict(drift=0.01, real_label=0.9) if kind in ("logistic", "relativistic") else {}
    if kind == "least_squares":
        opts = dict(ls_targets=(-0.5, 0.75))
    r = _rand(r_shape, dtype)
    f = _untie(r, _rand(f_shape, dtype)) if r_shape == f_shape else _rand(f_shape, dtype)
    _compare(
        lambda b, r, f: gk.d_loss(r, f, kind, reduction=reduction, backend=b, **opts),
        [r, f], dtype, f"d_loss {kind} {reduction}",
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS.get)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", list(_kinds.G_LOSS_KINDS))
def test_g_loss_matches_reference(kind, reduction, dtype):
    needs_real = kind in _kinds.PAIRED_KINDS or kind in _kinds.RELATIVISTIC_KINDS
    f_shape = (2, 1, 4, 9)
    r_shape = f_shape if (reduction == "none" or kind in _kinds.PAIRED_KINDS) else (45,)
    opts = dict(ls_target=0.25) if kind == "least_squares" else {}
    if needs_real:
        fn = lambda b, f, r: gk.g_loss(f, kind, real_logits=r, reduction=reduction, backend=b, **opts)  # noqa: E731
        f = _rand(f_shape, dtype)
        inputs = [f, _untie(f, _rand(r_shape, dtype)) if r_shape == f_shape else _rand(r_shape, dtype)]
    else:
        fn = lambda b, f: gk.g_loss(f, kind, reduction=reduction, backend=b, **opts)  # noqa: E731
        inputs = [_rand(f_shape, dtype)]
    _compare(fn, inputs, dtype, f"g_loss {kind} {reduction}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", ["d", "g"])
def test_loss_grid_path(loss, reduction, monkeypatch):
    """Past the one-program limit every kind runs on the grid path and still matches the reference."""
    from gan_kernels.triton import _utils, losses

    calls = []
    grid_launch = losses._launch_loss_grid
    monkeypatch.setattr(losses, "_launch_loss_grid", lambda *a: calls.append(a[4]) or grid_launch(*a))
    limit = _utils.loss_one_program_max(torch.device(DEVICE))
    # Two sizes over the limit, neither a multiple of the tile: the tensors run out at different chunks.
    n_small, n_big = limit + 45, 2 * limit + 301
    kinds = _kinds.D_LOSS_KINDS if loss == "d" else _kinds.G_LOSS_KINDS
    for kind in kinds:
        same = reduction == "none" or kind in _kinds.PAIRED_KINDS
        a = _rand((n_big,), torch.float32)
        b = _untie(a, _rand((n_big,), torch.float32)) if same else _rand((n_small,), torch.float32)
        if loss == "d":
            opts = dict(drift=0.01) if kind != "least_squares" else dict(ls_targets=(-0.5, 0.75))
            fn = lambda be, r, f: gk.d_loss(r, f, kind, reduction=reduction, backend=be, **opts)  # noqa: E731
        elif kind in _kinds.PAIRED_KINDS or kind in _kinds.RELATIVISTIC_KINDS:
            fn = lambda be, f, r: gk.g_loss(f, kind, real_logits=r, reduction=reduction, backend=be)  # noqa: E731
        else:
            fn = lambda be, f: gk.g_loss(f, kind, reduction=reduction, backend=be)  # noqa: E731
            b = None
        n_calls = len(calls)
        _compare(fn, [a] if b is None else [a, b], torch.float32, f"{loss}_loss {kind} {reduction} (grid path)")
        assert len(calls) > n_calls, f"{loss}_loss {kind}: the grid path did not run"


def test_losses_extreme_logits():
    # softplus far out in both tails: exact zeros would mean log(1 + e) lost e (log1p matters).
    x = torch.tensor([-120.0, -40.0, -20.0, -1e-3, 0.0, 1e-3, 20.0, 40.0, 120.0], device=DEVICE)
    out = gk.g_loss(x, "minimax", reduction="none", backend="triton")
    ref = -reference.softplus(x.double()).float()
    torch.testing.assert_close(out, ref, rtol=2e-6, atol=0)
    assert torch.isfinite(gk.d_loss(x, x, "logistic", backend="triton"))


def test_loss_ops_direct():
    r, f = _rand((11,), torch.float32), _rand((6,), torch.float32)
    loss, gr, gf = OPS.d_loss_forward(r, f, 0, 1, 1.0, 0.0, 0.0, 1.0, False)
    assert loss.shape == () and gr.shape == (0,) and gf.shape == (0,)
    # Relativistic + "none": the Jacobian is not diagonal, the op returns no gradients.
    loss, gr, gf = OPS.d_loss_forward(r, r.flip(0), 4, 0, 1.0, 0.0, 0.0, 1.0, True)
    assert loss.shape == (11,) and gr.numel() == 0 and gf.numel() == 0
    loss, gf, gr = OPS.g_loss_forward(f, None, 0, 2, 1.0, True)
    assert gr.shape == (0,) and gf.shape == f.shape
    torch.testing.assert_close(gf, torch.sigmoid(f) - 1)  # d softplus(-f) / d f, sum reduction


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=DT_IDS.get)
def test_loss_backward_op(dtype):
    a = torch.randn(3, 5, device=DEVICE)
    b = torch.randn(3, 5, device=DEVICE)
    go = torch.randn((), device=DEVICE)
    # 0-dim, expanded (all strides 0) and transposed grad_out.
    for g in (go, go.expand(3, 5), torch.randn(5, 3, device=DEVICE).t()):
        da, db = OPS.loss_backward(g, a, b, dtype, torch.float32)
        assert da.dtype == dtype and db.dtype == torch.float32 and da.is_contiguous()
        torch.testing.assert_close(da, (g * a).to(dtype))
        torch.testing.assert_close(db, g * b)
    da, db = OPS.loss_backward(go, a, a.new_empty((0,)), dtype, torch.float32)
    assert db.shape == (0,)
    torch.testing.assert_close(da, (go * a).to(dtype))


# --------------------------------------------------------------------------- interpolation
def _layouts(shape, dtype):
    x = _rand(shape, dtype)
    yield "contiguous", x
    if len(shape) == 4:
        yield "channels_last", x.contiguous(memory_format=torch.channels_last)
    yield "sliced", _rand((shape[0],) + tuple(shape[1:-1]) + (shape[-1] * 2,), dtype)[..., ::2]


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS.get)
@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (3, 3, 5, 7), (9, 2)], ids=str)
def test_interpolate_matches_reference(shape, dtype):
    for name, real in _layouts(shape, dtype):
        fake = _rand(shape, dtype)
        alpha = torch.rand(shape[0], device=DEVICE)
        _compare(lambda b, r, f: gk.interpolate(r, f, alpha, backend=b), [real, fake], dtype, f"interpolate {name}")
        out = gk.interpolate(real, fake, alpha, backend="triton")
        if name == "channels_last":
            assert out.is_contiguous(memory_format=torch.channels_last)
            assert out.stride() == real.stride()


def test_interpolate_backward_op():
    g = _rand((4, 3, 6, 5), torch.float32).contiguous(memory_format=torch.channels_last)
    alpha = torch.rand(4, device=DEVICE)
    a4 = alpha.view(-1, 1, 1, 1)
    dr, df = OPS.interpolate_backward(g, alpha, True, False)
    assert df.shape == (0,) and dr.stride() == g.stride()
    torch.testing.assert_close(dr, a4 * g)
    dr, df = OPS.interpolate_backward(g, alpha, False, True)
    assert dr.shape == (0,) and df.stride() == g.stride()
    torch.testing.assert_close(df, (1 - a4) * g)
    # A scalar alpha expanded to (B,) has stride 0.
    out = OPS.interpolate_forward(g, g.flip(0), torch.tensor(0.25, device=DEVICE).expand(4))
    torch.testing.assert_close(out, 0.25 * g + 0.75 * g.flip(0))


# --------------------------------------------------------------------------- gradient penalty
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS.get)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", list(_kinds.PENALTY_KINDS))
def test_grad_penalty_matches_reference(kind, reduction, dtype):
    # center below the typical norm so wgan-lp has both active and clipped samples.
    for shape in [(3, 3, 5, 7), (1, 130), (37, 2)]:
        g = _rand(shape, dtype, scale=0.1)
        _compare(
            lambda b, x: gk.grad_penalty(x, kind, center=0.8, weight=3.0, reduction=reduction, backend=b),
            [g], dtype, f"grad_penalty {kind} {reduction} {shape}",
        )


@pytest.mark.parametrize("kind", list(_kinds.PENALTY_KINDS))
def test_grad_penalty_layouts_and_inv_scale(kind):
    for name, g in _layouts((3, 3, 5, 7), torch.float32):
        g = g * 0.1
        for inv in (None, 0.125, torch.tensor(2.0 ** -3, device=DEVICE)):
            _compare(
                lambda b, x: gk.grad_penalty(x, kind, weight=2.0, inv_scale=inv, backend=b),
                [g], torch.float32, f"grad_penalty {kind} {name} inv_scale={inv}",
            )
        x = g.detach().clone().requires_grad_()
        gk.grad_penalty(x, kind, backend="triton").backward()
        assert x.grad.stride() == x.stride() or name == "sliced"


def test_grad_penalty_norms_independent():
    g = _rand((4, 2, 9, 11), torch.float16, scale=30.0)  # sum of squares overflows float16
    loss, norms = OPS.grad_penalty_forward(g, 0, 1.0, 1.0, 0, 1.0, None)
    expected = torch.linalg.vector_norm(g.float().flatten(1), dim=1)
    torch.testing.assert_close(norms, expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(loss, (expected - 1) ** 2, rtol=1e-5, atol=0)


def test_grad_penalty_zero_and_nan_samples():
    g = _rand((3, 40), torch.float32)
    g[1] = 0
    for kind in _kinds.PENALTY_KINDS:
        x = g.clone().requires_grad_()
        loss = gk.grad_penalty(x, kind, backend="triton")
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
        assert (x.grad[1] == 0).all()
    g[2, 5] = float("nan")
    loss, norms = OPS.grad_penalty_forward(g, 0, 1.0, 1.0, 1, 1.0, None)
    d = OPS.grad_penalty_backward(torch.ones(()), g, norms, 0, 1.0, 1.0, 1, 1.0, None)
    assert torch.isnan(norms[2]) and torch.isnan(loss) and torch.isnan(d[2]).all()
    assert (d[1] == 0).all() and torch.isfinite(d[0]).all()


@pytest.mark.skipif(DEVICE != "cuda", reason="float64 on the interpreter is covered by test_float64_scalars_exact")
def test_float64_gpu():
    g = _rand((5, 300), torch.float64)
    _compare(lambda b, x: gk.grad_penalty(x, "wgan-gp", center=0.3, weight=0.7, backend=b), [g], torch.float64, "gp f64")


def test_float64_scalars_exact():
    # Triton passes Python floats as float32; the back end splits them so 0.3 stays 0.3 in float64.
    g = _rand((3, 50), torch.float64)
    out = gk.grad_penalty(g, "wgan-gp", center=0.3, weight=0.7, inv_scale=0.1, backend="triton")
    ref = reference.grad_penalty(g, "wgan-gp", 0.3, 0.7, "mean", 0.1)
    torch.testing.assert_close(out, ref, rtol=1e-13, atol=0)
    r, f = _rand((20,), torch.float64), _rand((20,), torch.float64)
    out = gk.d_loss(r, f, "logistic", real_label=0.9, drift=0.1, backend="triton")
    torch.testing.assert_close(out, reference.d_loss(r, f, "logistic", "mean", 0.9, 0.1), rtol=1e-13, atol=0)


# --------------------------------------------------------------------------- op-level properties
def test_deterministic():
    g = _rand((3, 3, 5, 7), torch.float32)
    r, f = _rand((77,), torch.float32), _rand((77,), torch.float32)
    runs = []
    for _ in range(2):
        loss, norms = OPS.grad_penalty_forward(g, 0, 1.0, 10.0, 1, 1.0, None)
        d = OPS.grad_penalty_backward(torch.ones(()), g, norms, 0, 1.0, 10.0, 1, 1.0, None)
        lr = OPS.d_loss_forward(r, f, 4, 1, 1.0, 0.0, 0.0, 1.0, True)
        runs.append((loss, norms, d) + tuple(lr))
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def _opcheck_cases():
    r, f = _rand((6, 1, 2, 3), torch.float32), _rand((6, 1, 2, 3), torch.float32)
    g = _rand((3, 2, 4, 5), torch.float32).contiguous(memory_format=torch.channels_last)
    alpha = torch.rand(3, device=DEVICE)
    _, norms = OPS.grad_penalty_forward(g, 0, 1.0, 1.0, 1, 1.0, None)
    # Past the one-program limit: the grid path (scratch partials, several launches) under opcheck too.
    from gan_kernels.triton._utils import loss_one_program_max

    n_big = loss_one_program_max(torch.device(DEVICE)) + 37
    rb, fb = _rand((n_big,), torch.float32), _rand((n_big + 5,), torch.float32)
    return {
        "d_loss_forward": [(r, f, 0, 1, 0.9, 0.1, 0.0, 1.0, True), (r, f, 4, 0, 1.0, 0.0, 0.0, 1.0, True),
                           (r.half(), f.half(), 5, 2, 1.0, 0.0, 0.0, 1.0, False),
                           (rb, fb, 4, 1, 1.0, 0.01, 0.0, 1.0, True)],
        "g_loss_forward": [(f, None, 1, 1, 1.0, True), (f, r, 5, 1, 1.0, True), (f, r, 6, 0, 1.0, True)],
        "loss_backward": [(torch.randn(()), r, f, torch.float16, torch.float32),
                          (torch.randn(6, 1, 2, 3), r, r.new_empty((0,)), torch.float32, torch.float32)],
        "interpolate_forward": [(g, torch.randn_like(g), alpha), (r, f, torch.rand(6))],
        "interpolate_backward": [(g, alpha, True, True), (g, alpha, False, True)],
        "grad_penalty_forward": [(g, 0, 1.0, 10.0, 1, 1.0, None), (g, 2, 0.0, 5.0, 0, 1.0, torch.tensor(0.5)),
                                 (g.half(), 1, 0.5, 1.0, 2, 0.25, None)],
        "grad_penalty_backward": [(torch.tensor(1.5), g, norms, 0, 1.0, 10.0, 1, 1.0, None),
                                  (torch.randn(3), g, norms, 1, 0.5, 1.0, 0, 2.0, torch.tensor(0.5))],
    }


@pytest.mark.parametrize("op", list(_fake.FAKES))
def test_opcheck(op):
    for args in _opcheck_cases()[op]:
        args = tuple(a.to(DEVICE) if isinstance(a, torch.Tensor) else a for a in args)
        torch.library.opcheck(getattr(OPS, op), args)


def test_torch_compile_fullgraph():
    torch._dynamo.reset()

    def step(r, f, g):
        return gk.d_loss(r, f, "hinge", backend="triton") + gk.grad_penalty(g, "wgan-gp", backend="triton")

    compiled = torch.compile(step, fullgraph=True)
    ins = [_rand((8,), torch.float32), _rand((8,), torch.float32), _rand((4, 3, 5), torch.float32)]
    a = [x.clone().requires_grad_() for x in ins]
    b = [x.clone().requires_grad_() for x in ins]
    out_c, out_e = compiled(*a), step(*b)
    torch.testing.assert_close(out_c, out_e)
    out_c.backward()
    out_e.backward()
    for x, y in zip(a, b):
        torch.testing.assert_close(x.grad, y.grad)


@pytest.mark.gpu
@pytest.mark.skipif(DEVICE != "cuda", reason="needs a CUDA device")
def test_cuda_graph_capture():
    # No host sync anywhere (inv_scale is read on the device): the whole step captures and replays.
    # The relativistic loss at 9000 / 12000 logits takes the grid path: 5 launches and a scratch
    # tensor allocated inside the op (from the graph's pool), nothing read back.
    r, f = _rand((64,), torch.float32), _rand((64,), torch.float32)
    g = _rand((8, 3, 16, 16), torch.float32)
    rb, fb = _rand((9000,), torch.float32), _rand((12000,), torch.float32)
    inv = torch.tensor(0.5, device=DEVICE)
    static = [x.clone().requires_grad_() for x in (r, f, g, rb, fb)]

    def losses(t, backend):
        loss = gk.d_loss(t[0], t[1], "logistic", backend=backend)
        loss = loss + gk.grad_penalty(t[2], "wgan-gp", inv_scale=inv, backend=backend)
        return loss + gk.d_loss(t[3], t[4], "relativistic", backend=backend)

    def step():
        for x in static:
            x.grad = None
        loss = losses(static, "triton")
        loss.backward()
        return loss

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):  # warm up: compile every kernel before capture
            step()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = step()
    new = [_rand(x.shape, torch.float32) for x in static]
    for x, y in zip(static, new):
        x.data.copy_(y)
    graph.replay()
    torch.cuda.synchronize()
    ref = [y.clone().requires_grad_() for y in new]
    expected = losses(ref, "reference")
    expected.backward()
    torch.testing.assert_close(out, expected)
    for x, y in zip(static, ref):
        torch.testing.assert_close(x.grad, y.grad)


def test_loss_backward_noncontiguous_saved():
    # The autograd Functions always save contiguous gradients; the op is still right for others.
    a = torch.randn(5, 3, device=DEVICE).t()
    b = torch.randn(4, device=DEVICE)
    go = torch.randn(3, 5, device=DEVICE)
    da, _ = OPS.loss_backward(go, a, torch.randn(3, 5, device=DEVICE), torch.float32, torch.float32)
    torch.testing.assert_close(da, go * a)
    da, db = OPS.loss_backward(torch.tensor(2.0, device=DEVICE), a, b, torch.float16, torch.float32)
    assert da.stride() == torch.empty_like(a).stride()
    torch.testing.assert_close(da, (2 * a).half())
    torch.testing.assert_close(db, 2 * b)
