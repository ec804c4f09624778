"""Training-loop integration: lazy regularisation, torch.compile of the loss steps, the example trainers."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

import gan_kernels as gk
from gan_kernels.models import (
    DCGANCritic,
    DCGANGenerator,
    MLPCritic,
    MLPGenerator,
    eight_gaussians,
    eight_gaussians_centres,
    procedural_shapes,
)
from gan_kernels.training import LazyRegularizer, lazy_adam_hparams

ROOT = Path(__file__).resolve().parents[1]


def _cpu_backends(candidates=("reference", "cpu")):
    return [b for b in candidates if b in gk.available_backends()]


def _need(backend):
    if backend not in gk.available_backends():
        pytest.skip(f"back end {backend!r} is not available here ({gk.available_backends()})")


# --------------------------------------------------------------------------- models and data
def test_model_shapes():
    for size in (32, 64):
        g = DCGANGenerator(z_dim=8, channels=3, size=size, width=4)
        d = DCGANCritic(channels=3, size=size, width=4, norm="layer")
        x = g(torch.randn(2, 8))
        assert x.shape == (2, 3, size, size) and x.abs().max() <= 1
        assert d(x).shape == (2,)
    assert MLPCritic(2, 8, 2)(torch.randn(5, 2)).shape == (5,)
    assert MLPGenerator(2, 2, 8, 2)(torch.randn(5, 2)).shape == (5, 2)
    with pytest.raises(ValueError, match="batch norm"):
        DCGANCritic(norm="batch")
    with pytest.raises(ValueError, match="size"):
        DCGANCritic(size=48)


def test_critic_has_no_cross_sample_coupling():
    """A per-sample penalty needs critic(x)_i to depend on x_i only (why the critic has no batch norm)."""
    for norm in ("none", "layer"):
        d = DCGANCritic(channels=3, size=32, width=4, norm=norm)
        x = torch.randn(3, 3, 32, 32, requires_grad=True)
        (g,) = torch.autograd.grad(d(x)[0], x)
        assert g[0].abs().sum() > 0 and g[1:].abs().sum() == 0


def test_data_helpers():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = procedural_shapes(16, 32, generator=g1), procedural_shapes(16, 32, generator=g2)
    assert torch.equal(a, b) and a.shape == (16, 3, 32, 32)
    assert a.min() >= -1 and a.max() <= 1
    # Every image holds a shape: at least two distinct colours per image.
    flat = a.flatten(2)
    assert ((flat.max(-1).values - flat.min(-1).values).amax(1) > 0.05).all()
    x = eight_gaussians(4000, generator=torch.Generator().manual_seed(0))
    d, idx = torch.cdist(x, eight_gaussians_centres()).min(1)
    assert d.max() < 0.1 and torch.bincount(idx, minlength=8).min() > 350


# --------------------------------------------------------------------------- lazy regularisation
def test_lazy_regularizer_schedule():
    calls = []

    def pen(v):
        calls.append(v)
        return torch.tensor(float(v))

    lazy = LazyRegularizer(every=4)
    out = [lazy(pen, i) for i in range(10)]
    assert [o is not None for o in out] == [i % 4 == 0 for i in range(10)]
    assert calls == [0, 4, 8]  # the penalty is not even evaluated on skipped steps
    assert [o.item() for o in out if o is not None] == [0.0, 16.0, 32.0]  # x every
    assert lazy.steps == 10 and lazy.scale == 4

    shifted = LazyRegularizer(every=3, offset=2)
    assert [shifted.step() for _ in range(7)] == [False, False, True, False, False, True, False]

    resumed = LazyRegularizer(every=99)
    resumed.load_state_dict(lazy.state_dict())
    assert resumed.every == 4 and resumed.due() == lazy.due() and resumed.steps == 10

    assert all(LazyRegularizer(every=1)(pen, 1) is not None for _ in range(3))
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError):
            LazyRegularizer(every=bad)


def test_lazy_adam_hparams():
    lr, (b1, b2) = lazy_adam_hparams(0.002, (0.0, 0.99), 16)
    c = 16 / 17
    assert math.isclose(lr, 0.002 * c) and b1 == 0.0 and math.isclose(b2, 0.99**c)
    assert lazy_adam_hparams(1e-4, (0.5, 0.9), 1) == (1e-4, (0.5, 0.9))


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_lazy_r1_gradient_is_every_times_eager(backend):
    """On a due step the lazy R1 gradient is `every` times the eager R1 gradient; skipped steps add none."""
    _need(backend)
    torch.manual_seed(0)
    critic = MLPCritic(2, 16, 2)
    lazy_critic = copy.deepcopy(critic)
    real = torch.randn(12, 2)
    lazy = LazyRegularizer(every=4)

    x = real.clone().requires_grad_(True)
    gk.r1_penalty(critic(x), x, gamma=3.0, backend=backend).backward()
    eager = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in critic.parameters()]

    totals = [torch.zeros_like(p) for p in lazy_critic.parameters()]
    for _ in range(8):  # two intervals
        x = real.clone().requires_grad_(lazy.due())
        logits = lazy_critic(x)
        r1 = lazy(gk.r1_penalty, logits, x, gamma=3.0, backend=backend)
        if r1 is None:
            continue
        lazy_critic.zero_grad(set_to_none=True)
        r1.backward()
        for t, p in zip(totals, lazy_critic.parameters()):
            if p.grad is not None:
                t += p.grad
    # Over two intervals of 4 steps the lazy schedule pulls as hard as 8 eager steps.
    for t, e in zip(totals, eager):
        torch.testing.assert_close(t, 8 * e, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- torch.compile
def _compile_models():
    torch.manual_seed(0)
    return MLPCritic(2, 16, 2), MLPGenerator(2, 2, 16, 2)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_compile_generator_and_critic_loss_steps(backend):
    """A generator step and a critic loss step (no penalty) compile with fullgraph=True and match eager."""
    _need(backend)
    torch._dynamo.reset()
    critic, gen = _compile_models()
    z, real = torch.randn(8, 2), torch.randn(8, 2)

    def g_step(z):
        return gk.g_loss(critic(gen(z)), "logistic", backend=backend)

    def d_step(real, z):
        fake = gen(z).detach()
        return gk.d_loss(critic(real), critic(fake), "hinge", drift=1e-3, backend=backend)

    def grads_of(fn, *args):
        critic.zero_grad(set_to_none=True)
        gen.zero_grad(set_to_none=True)
        loss = fn(*args)
        loss.backward()
        ps = list(critic.parameters()) + list(gen.parameters())
        return loss.detach(), [p.grad.clone() if p.grad is not None else None for p in ps]

    for fn, args in ((g_step, (z,)), (d_step, (real, z))):
        loss_e, grads_e = grads_of(fn, *args)
        loss_c, grads_c = grads_of(torch.compile(fn, fullgraph=True), *args)
        torch.testing.assert_close(loss_c, loss_e, rtol=1e-5, atol=1e-6)
        for gc, ge in zip(grads_c, grads_e):
            assert (gc is None) == (ge is None)
            if gc is not None:
                torch.testing.assert_close(gc, ge, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_compiled_critic_with_eager_penalty():
    """The documented recipe: compile the critic for the loss terms, run the penalty on the eager module."""
    backend = _cpu_backends()[-1]
    torch._dynamo.reset()
    critic, _ = _compile_models()
    critic_c = torch.compile(critic, fullgraph=True)  # shares critic's parameters
    ref = copy.deepcopy(critic)
    real, fake, alpha = torch.randn(8, 2), torch.randn(8, 2), torch.rand(8)

    def loss(c_loss, c_pen):
        adv = gk.d_loss(c_loss(real), c_loss(fake), "wasserstein", backend=backend)
        return adv + gk.gradient_penalty(c_pen, real, fake, alpha=alpha, backend=backend)

    loss(critic_c, critic).backward()
    loss(ref, ref).backward()
    for p, q in zip(critic.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6)
    # And why the penalty stays eager: AOT autograd has no double backward.
    with pytest.raises(RuntimeError, match="double backward"):
        gk.gradient_penalty(critic_c, real, fake, alpha=alpha, backend=backend).backward()


# --------------------------------------------------------------------------- example trainers
def _load_example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


TOY_TINY = ["--hidden", "32", "--depth", "2", "--batch", "32", "--critic-iters", "2", "--device", "cpu", "--quiet"]


TOY_LEARN = ["--hidden", "64", "--depth", "2", "--batch", "128", "--critic-iters", "5", "--lr", "5e-4",
             "--device", "cpu", "--quiet"]


def _energy_distance(gen, data):
    """Energy distance between the generator's samples and ``data`` (0 iff the laws agree)."""
    with torch.no_grad():
        x = gen(torch.randn(1000, 2, generator=torch.Generator().manual_seed(5)))
    return float(2 * torch.cdist(x, data).mean() - torch.cdist(x, x).mean() - torch.cdist(data, data).mean())


@pytest.fixture
def one_thread():
    # Small MLPs gain nothing from threads; on a busy machine, oversubscription only slows them.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.slow
def test_toy_8gaussians_learns(tmp_path, one_thread):
    """200 generator steps of WGAN-GP (about 5 s): what this much training achieves, calibrated over
    seeds 0-3 (energy distance to the data 0.89-1.00 -> 0.19-0.39; mean W-estimate 0.45-0.85 with
    60-85 % of steps positive; the penalty's last fifth 0.10-0.56 of its first). Covering the modes
    takes thousands of steps (the example's docstring: 4000 for all 8), so coverage is not asserted."""
    toy = _load_example("toy_8gaussians")
    captured = {}
    train = toy.train

    def keep_generator(args, backend):
        hist = train(args, backend)
        captured["gen"] = hist["generator"]
        return hist

    toy.train = keep_generator
    steps = 200
    metrics = toy.main(["--steps", str(steps), "--out", str(tmp_path), *TOY_LEARN])
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["steps"] == steps and saved["losses"] == metrics["losses"]
    assert (tmp_path / "toy_8gaussians.png").stat().st_size > 1000
    losses = metrics["losses"]
    assert all(len(v) == steps and all(math.isfinite(x) for x in v) for v in losses.values())

    # The generator moved toward the data: compare with the same seed's untrained generator.
    init = train(toy.parse_args(["--steps", "0", *TOY_LEARN]), "auto")["generator"]
    data = eight_gaussians(1000, generator=torch.Generator().manual_seed(11))
    before, after = _energy_distance(init, data), _energy_distance(captured["gen"], data)
    assert after < 0.6 * before, (before, after)
    # The critic separates real from fake: E critic(real) - E critic(fake) > 0 on most steps.
    w = losses["w_dist"]
    assert sum(w) / steps > 0.1 and sum(v > 0 for v in w) > 0.5 * steps, w
    # The penalty pulls the critic toward unit gradient norm: it falls as training goes on.
    q = steps // 5
    gp = losses["gp"]
    assert all(v > 0 for v in gp) and sum(gp[-q:]) < 0.8 * sum(gp[:q]), (gp[:q], gp[-q:])


@pytest.mark.slow
def test_toy_8gaussians_backends_agree(tmp_path, capsys):
    """--compare-backends: the C++ back end reproduces the reference run's losses step for step."""
    names = _cpu_backends()
    if len(names) < 2:
        pytest.skip("needs the 'cpu' back end next to the reference")
    toy = _load_example("toy_8gaussians")
    report = toy.main(["--steps", "8", "--out", str(tmp_path), "--compare-backends", ",".join(names), *TOY_TINY])
    diffs = report["max_abs_diff_per_step"]["cpu-vs-reference"]
    assert len(diffs) == 8
    # Same seed, same data and alpha: only float rounding differs (a few ulps of O(1) losses, which
    # Adam may amplify slightly over 8 x 2 critic updates).
    assert max(diffs) < 1e-4, diffs
    losses = report["losses"]
    assert losses["cpu"]["d_loss"] != [0.0] * 8 and losses["cpu"]["d_loss"][0] != losses["cpu"]["d_loss"][-1]
    assert (tmp_path / "compare.json").exists()
    out = capsys.readouterr().out
    assert "cpu-vs-reference" in out and "mean step" in out


@pytest.mark.slow
@pytest.mark.parametrize("penalty,extra", [("wgan-gp", []), ("r1", ["--reg-every", "2"])])
def test_dcgan_shapes_trains(tmp_path, penalty, extra, one_thread):
    """10 generator steps of the DCGAN example (2 critic steps each, about 2 s). Calibrated over
    seeds 0-3: with R1 (lazy, every 2) the logistic critic loss falls from chance (2 ln 2) by 0.015-0.045, the critic
    telling real from fake apart; with WGAN-GP the critic starts with near-zero input gradients
    (penalty ~ lambda = 10) and the penalty falls as its gradient norm grows toward 1 (seeds 0-4)."""
    dc = _load_example("dcgan_shapes")
    steps = 10
    metrics = dc.main([
        "--steps", str(steps), "--penalty", penalty, "--critic-iters", "2", "--batch", "8", "--width", "4",
        "--z-dim", "8", "--device", "cpu", "--out", str(tmp_path), "--quiet", *extra,
    ])
    assert (tmp_path / "samples.png").stat().st_size > 1000
    assert json.loads((tmp_path / "metrics.json").read_text())["losses"] == metrics["losses"]
    losses = metrics["losses"]
    assert metrics["finite"] and all(len(v) == steps for v in losses.values())
    half = steps // 2
    if penalty == "r1":
        d = losses["d_adv"]
        assert d[0] < 2 * math.log(2) + 0.02 and d[-1] < d[0] - 0.005, d
        assert sum(d[half:]) < sum(d[:half]), d
        # lazy R1: half of the 20 critic steps ran it, and it is a positive penalty
        assert metrics["critic_step_ms_with_penalty"] is not None and metrics["critic_step_ms_without_penalty"] is not None
        assert all(v > 0 for v in losses["penalty"])
    else:
        pen = losses["penalty"]
        assert all(5.0 < v < 10.0 for v in pen), pen  # lambda * (||grad|| - 1)^2 with ||grad|| in (0, 1)
        assert sum(pen[half:]) < sum(pen[:half]), pen
