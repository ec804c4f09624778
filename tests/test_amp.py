"""Mixed precision: autocast + GradScaler through the losses and the fused-unscale penalties (CPU).

What AMP must not break:
* a critic step under autocast with a GradScaler gives the fp32 step's gradients (within the low
  precision's tolerance), and the penalty returned with ``scaler=`` is the *unscaled* penalty;
* every loss and penalty comes back float32 under autocast;
* an overflow (an inf in the critic output, or a scale too large for fp16) reaches the parameter
  gradients as inf/NaN, so ``scaler.step`` skips the update and the scale drops. A penalty kernel that
  clamped or zeroed non-finite norms would hide the overflow and corrupt the weights instead.
"""

from __future__ import annotations

import copy

import pytest
import torch

import gan_kernels as gk
from gan_kernels.models import DCGANCritic, MLPCritic

BACKENDS = ("reference", "cpu", "triton")
LOW_DTYPES = (torch.bfloat16, torch.float16)


def _runs_on_cpu(backend: str) -> bool:
    if backend not in gk.available_backends():
        return False
    b = getattr(gk._registry, "_BACKENDS", {}).get(backend)
    return b is None or b.runs_on("cpu")


def _autocast_ok(dtype: torch.dtype) -> bool:
    try:
        with torch.autocast("cpu", dtype=dtype):
            y = torch.nn.functional.linear(torch.ones(2, 2), torch.ones(2, 2))
        return y.dtype == dtype
    except (RuntimeError, ValueError):
        return False


def _skip_unless(backend: str, dtype: torch.dtype = None) -> None:
    if not _runs_on_cpu(backend):
        pytest.skip(f"back end {backend!r} is not available on CPU here ({gk.available_backends()})")
    if dtype is not None:
        if not _autocast_ok(dtype):
            pytest.skip(f"CPU autocast does not support {dtype} in this torch")
        if backend == "triton" and dtype == torch.bfloat16:
            pytest.skip("the Triton interpreter has no bfloat16")
    if not hasattr(torch.amp, "GradScaler"):
        pytest.skip("this torch has no device-generic torch.amp.GradScaler")


def _scaler(init_scale: float = 2.0**10, device: str = "cpu") -> "torch.amp.GradScaler":
    # growth_interval large so no scale growth happens inside a test; backoff 0.5 is the default.
    return torch.amp.GradScaler(device, init_scale=init_scale, growth_interval=10_000)


def _tiny(backend: str) -> bool:
    return backend == "triton"  # the interpreter is slow: smallest shapes


def _setup(backend: str, seed: int = 0, conv: bool = False):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if conv:
        critic = DCGANCritic(channels=3, size=32, width=4)
        b = 3
        real = torch.randn(b, 3, 32, 32, generator=g)
        fake = torch.randn(b, 3, 32, 32, generator=g)
    else:
        critic = MLPCritic(in_dim=2, hidden=8 if _tiny(backend) else 32, depth=2)
        b = 4 if _tiny(backend) else 16
        real = torch.randn(b, 2, generator=g)
        fake = torch.randn(b, 2, generator=g) * 0.5 + 1.0
    alpha = torch.rand(b, generator=g)
    return critic, real, fake, alpha


def _critic_loss(critic, real, fake, alpha, backend, scaler=None):
    adv = gk.d_loss(critic(real), critic(fake), "wasserstein", backend=backend)
    gp = gk.gradient_penalty(critic, real, fake, alpha=alpha, weight=10.0, scaler=scaler, backend=backend)
    return adv, gp


def _grads(module):
    # The last bias never reaches the input gradient, so a penalty alone leaves its .grad None.
    return [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in module.parameters()]


def _rel_err(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12)).item()


# --------------------------------------------------------------------------- fused unscale, fp32
@pytest.mark.parametrize("backend", BACKENDS)
def test_scaled_penalty_equals_unscaled(backend):
    """With scaler=, the penalty value is the unscaled one and scaled backward is scale x fp32 backward."""
    _skip_unless(backend)
    critic, real, fake, alpha = _setup(backend, seed=1)
    critic_s = copy.deepcopy(critic)
    scaler = _scaler(2.0**16)

    gp = gk.gradient_penalty(critic, real, fake, alpha=alpha, backend=backend)
    gp.backward()
    gp_s = gk.gradient_penalty(critic_s, real, fake, alpha=alpha, scaler=scaler, backend=backend)
    scaler.scale(gp_s).backward()

    torch.testing.assert_close(gp_s, gp, rtol=1e-5, atol=1e-6)
    for g_s, g in zip(_grads(critic_s), _grads(critic)):
        torch.testing.assert_close(g_s / 2.0**16, g, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_scaled_r1_equals_unscaled(backend):
    _skip_unless(backend)
    critic, real, _, _ = _setup(backend, seed=2)
    critic_s = copy.deepcopy(critic)
    scaler = _scaler(2.0**12)

    x = real.clone().requires_grad_(True)
    r1 = gk.r1_penalty(critic(x), x, gamma=4.0, backend=backend)
    xs = real.clone().requires_grad_(True)
    r1_s = gk.r1_penalty(critic_s(xs), xs, gamma=4.0, scaler=scaler, backend=backend)
    # Independent formula: gamma/2 * mean_i ||d D(x)_i / d x_i||^2.
    xr = real.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(xr).sum(), xr)
    torch.testing.assert_close(r1, 2.0 * g.pow(2).sum(1).mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(r1_s, r1, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- autocast step
@pytest.mark.parametrize("dtype", LOW_DTYPES, ids=["bf16", "fp16"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_autocast_critic_step_matches_fp32(backend, dtype):
    _skip_unless(backend, dtype)
    critic, real, fake, alpha = _setup(backend, seed=3)
    critic_amp = copy.deepcopy(critic)
    critic_ref = copy.deepcopy(critic)

    adv, gp = _critic_loss(critic, real, fake, alpha, backend)
    (adv + gp).backward()
    ref_grads = _grads(critic)
    # The float32 run this back end's AMP run is compared with is itself pinned to the reference,
    # so a back end wrong in both precisions cannot pass by agreeing with itself.
    adv_r, gp_r = _critic_loss(critic_ref, real, fake, alpha, "reference")
    (adv_r + gp_r).backward()
    torch.testing.assert_close(adv, adv_r, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gp, gp_r, rtol=1e-5, atol=1e-6)
    for g, g_r in zip(ref_grads, _grads(critic_ref)):
        torch.testing.assert_close(g, g_r, rtol=1e-4, atol=1e-6)

    opt = torch.optim.SGD(critic_amp.parameters(), lr=1e-2)
    scaler = _scaler(2.0**10)
    with torch.autocast("cpu", dtype=dtype):
        adv_a, gp_a = _critic_loss(critic_amp, real, fake, alpha, backend, scaler=scaler)
        loss_a = adv_a + gp_a
    assert adv_a.dtype == gp_a.dtype == torch.float32
    scaler.scale(loss_a).backward()
    scaler.unscale_(opt)

    tol = 3e-2 if dtype == torch.bfloat16 else 1e-2
    assert abs(adv_a.item() - adv.item()) <= tol * (1 + abs(adv.item()))
    assert abs(gp_a.item() - gp.item()) <= tol * (1 + abs(gp.item()))
    for g_a, g in zip(_grads(critic_amp), ref_grads):
        assert torch.isfinite(g_a).all()
        assert _rel_err(g_a, g) < 3 * tol, (_rel_err(g_a, g), dtype)

    before = [p.detach().clone() for p in critic_amp.parameters()]
    scaler.step(opt)
    scaler.update()
    assert scaler.get_scale() == 2.0**10  # no overflow: the scale is kept
    assert any(not torch.equal(b, p) for b, p in zip(before, critic_amp.parameters()))


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_autocast_conv_critic_bf16(backend):
    """An NCHW critic: the penalty's norm runs over (C, H, W) under autocast too."""
    _skip_unless(backend, torch.bfloat16)
    critic, real, fake, alpha = _setup(backend, seed=4, conv=True)
    critic_amp = copy.deepcopy(critic)
    adv, gp = _critic_loss(critic, real, fake, alpha, backend)
    (adv + gp).backward()
    critic_ref = copy.deepcopy(critic_amp)
    _, gp_r = _critic_loss(critic_ref, real, fake, alpha, "reference")
    torch.testing.assert_close(gp, gp_r, rtol=1e-5, atol=1e-6)  # the float32 anchor is the reference's
    scaler = _scaler(2.0**8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        adv_a, gp_a = _critic_loss(critic_amp, real, fake, alpha, backend, scaler=scaler)
    scaler.scale(adv_a + gp_a).backward()
    assert gp_a.dtype == torch.float32
    assert abs(gp_a.item() - gp.item()) <= 5e-2 * (1 + gp.item())
    for g_a, g in zip(_grads(critic_amp), _grads(critic)):
        assert _rel_err(g_a / 2.0**8, g) < 0.1


@pytest.mark.parametrize("dtype", LOW_DTYPES, ids=["bf16", "fp16"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_losses_are_float32_under_autocast(backend, dtype):
    _skip_unless(backend, dtype)
    critic, real, fake, alpha = _setup(backend, seed=5)
    with torch.autocast("cpu", dtype=dtype):
        x = real.clone().requires_grad_(True)
        r, f = critic(x), critic(fake)
        assert r.dtype == dtype  # the critic really runs in low precision
        outs = {
            "d_loss": gk.d_loss(r, f, "logistic", backend=backend),
            "d_loss_hinge": gk.d_loss(r, f, "hinge", backend=backend),
            "g_loss": gk.g_loss(f, "logistic", backend=backend),
            "gradient_penalty": gk.gradient_penalty(critic, real, fake, alpha=alpha, backend=backend),
            "r1_penalty": gk.r1_penalty(r, x, gamma=1.0, backend=backend),
        }
    for name, v in outs.items():
        assert v.dtype == torch.float32, (name, v.dtype)
        assert torch.isfinite(v), name
    # Same value as the fp32 formula on the very same low-precision logits.
    rf, ff = r.float(), f.float()
    expect = torch.nn.functional.softplus(-rf).mean() + torch.nn.functional.softplus(ff).mean()
    torch.testing.assert_close(outs["d_loss"], expect, rtol=1e-5, atol=1e-6)
    # Gradients come back in the logits' dtype.
    (gr,) = torch.autograd.grad(outs["d_loss"], r, retain_graph=True)
    assert gr.dtype == dtype


# --------------------------------------------------------------------------- overflow -> skipped step
def _overflow_step(critic, real, fake, alpha, backend, scaler, dtype, poison):
    opt = torch.optim.SGD(critic.parameters(), lr=1e-1)
    before = [p.detach().clone() for p in critic.parameters()]

    def poisoned(x):
        return critic(x) * poison

    opt.zero_grad(set_to_none=True)
    with torch.autocast(real.device.type, dtype=dtype):
        adv = gk.d_loss(poisoned(real), poisoned(fake), "wasserstein", backend=backend)
        gp = gk.gradient_penalty(poisoned, real, fake, alpha=alpha, scaler=scaler, backend=backend)
    scaler.scale(adv + gp).backward()
    scale = scaler.get_scale()
    scaler.step(opt)
    scaler.update()
    changed = any(not torch.equal(b, p) for b, p in zip(before, critic.parameters()))
    return changed, scale, scaler.get_scale(), gp.detach()


@pytest.mark.parametrize("dtype", LOW_DTYPES, ids=["bf16", "fp16"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_injected_inf_skips_step(backend, dtype):
    _skip_unless(backend, dtype)
    critic, real, fake, alpha = _setup(backend, seed=6)
    scaler = _scaler(2.0**10)
    # An inf in one sample's critic output: the adversarial term and that sample's input gradient
    # (hence its penalty term) overflow.
    poison = torch.ones(real.shape[0])
    poison[1] = float("inf")
    changed, scale_before, scale_after, _ = _overflow_step(critic, real, fake, alpha, backend, scaler, dtype, poison)
    assert not changed, "scaler.step must skip an update whose gradients are not finite"
    assert scale_after == scale_before * 0.5

    # The next, finite step goes through with the reduced scale.
    changed, _, scale_after2, gp = _overflow_step(
        critic, real, fake, alpha, backend, scaler, dtype, torch.ones(real.shape[0])
    )
    assert changed and scale_after2 == scale_after and torch.isfinite(gp)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fp16_scale_overflow_skips_step(backend):
    """A scale too large for fp16 overflows the critic's input gradient inside the penalty."""
    _skip_unless(backend, torch.float16)
    critic, real, fake, alpha = _setup(backend, seed=7)
    scaler = _scaler(2.0**40)  # scaled fp16 backward: 2^40 > 65504
    changed, scale_before, scale_after, gp = _overflow_step(
        critic, real, fake, alpha, backend, scaler, torch.float16, torch.ones(real.shape[0])
    )
    assert not torch.isfinite(gp), "the overflowed input gradient must not give a finite penalty"
    assert not changed
    assert scale_after == scale_before * 0.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_penalty_inv_scale_tensor_propagates_nonfinite(backend):
    """grad_penalty with a tensor inv_scale: finite in, finite out; inf in, non-finite out and grads."""
    _skip_unless(backend)
    g = torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(8)) * 100
    inv = torch.tensor(1 / 128.0)
    p = gk.grad_penalty(g.clone(), "wgan-gp", inv_scale=inv, backend=backend)
    expect = ((g / 128.0).flatten(1).norm(dim=1) - 1).pow(2).mean()
    torch.testing.assert_close(p, expect, rtol=1e-5, atol=1e-6)

    bad = g.clone()
    bad[2, 1, 3] = float("inf")
    bad.requires_grad_(True)
    p = gk.grad_penalty(bad, "wgan-gp", inv_scale=inv, backend=backend)
    (dg,) = torch.autograd.grad(p, bad)
    assert not torch.isfinite(p) or not torch.isfinite(dg).all()
    assert not torch.isfinite(dg[2]).all()


# --------------------------------------------------------------------------- CUDA (bench/gpu_check.sh)
CUDA_BACKENDS = ("cuda", "triton", "reference")


def _cuda_setup(backend: str, seed: int):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    if backend not in gk.available_backends():
        pytest.skip(f"back end {backend!r} is not available here ({gk.available_backends()})")
    critic, real, fake, alpha = _setup(backend, seed=seed, conv=True)
    return critic.cuda(), real.cuda(), fake.cuda(), alpha.cuda()


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", LOW_DTYPES, ids=["bf16", "fp16"])
@pytest.mark.parametrize("backend", CUDA_BACKENDS)
def test_cuda_autocast_critic_step_matches_fp32(backend, dtype):
    """CUDA autocast + GradScaler through d_loss and the fused-unscale penalty of a conv critic."""
    critic, real, fake, alpha = _cuda_setup(backend, seed=9)
    critic_amp = copy.deepcopy(critic)
    adv, gp = _critic_loss(critic, real, fake, alpha, backend)
    (adv + gp).backward()
    opt = torch.optim.SGD(critic_amp.parameters(), lr=1e-2)
    scaler = _scaler(2.0**10, "cuda")
    with torch.autocast("cuda", dtype=dtype):
        adv_a, gp_a = _critic_loss(critic_amp, real, fake, alpha, backend, scaler=scaler)
    assert adv_a.dtype == gp_a.dtype == torch.float32
    scaler.scale(adv_a + gp_a).backward()
    scaler.unscale_(opt)
    assert abs(adv_a.item() - adv.item()) <= 5e-2 * (1 + abs(adv.item()))
    assert abs(gp_a.item() - gp.item()) <= 5e-2 * (1 + abs(gp.item()))
    for g_a, g in zip(_grads(critic_amp), _grads(critic)):
        assert torch.isfinite(g_a).all()
        assert _rel_err(g_a, g) < 0.1, (_rel_err(g_a, g), dtype)
    scaler.step(opt)
    scaler.update()
    assert scaler.get_scale() == 2.0**10


@pytest.mark.gpu
@pytest.mark.parametrize("backend", CUDA_BACKENDS)
def test_cuda_injected_inf_skips_step(backend):
    critic, real, fake, alpha = _cuda_setup(backend, seed=10)
    scaler = _scaler(2.0**10, "cuda")
    poison = torch.ones(real.shape[0], device="cuda")
    poison[1] = float("inf")
    changed, scale_before, scale_after, _ = _overflow_step(
        critic, real, fake, alpha, backend, scaler, torch.float16, poison)
    assert not changed, "scaler.step must skip an update whose gradients are not finite"
    assert scale_after == scale_before * 0.5
    changed, _, scale_after2, gp = _overflow_step(
        critic, real, fake, alpha, backend, scaler, torch.float16, torch.ones_like(poison))
    assert changed and scale_after2 == scale_after and torch.isfinite(gp)
