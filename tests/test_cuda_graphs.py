"""CUDA-graph capture of training steps on the GPU back ends (GPU-marked, skipped without a GPU).

Nothing on the back ends' paths reads a number back to the host (inv_scale is read on the device,
the losses' multi-block paths keep their partial sums in device scratch memory), so a whole step
captures into a graph, and a replay on new data in the captured inputs gives what eager gives.
Ids name the back end as tests/test_backends.py does ("cuda-cuda", "triton-cuda").
"""

from __future__ import annotations

import pytest
import torch

import gan_kernels as gk

from ._helpers import require

BACKENDS = [pytest.param(b, id=f"{b}-cuda", marks=pytest.mark.gpu) for b in ("cuda", "triton")]


def _warm_up(step, n):
    """Run ``step`` n times on a side stream (cuDNN and Triton pick or compile their kernels here)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(n):
            step()
    torch.cuda.current_stream().wait_stream(side)


class _Critic(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(8, 8, 4, stride=2, padding=1), torch.nn.LeakyReLU(0.2),
            torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 8, 1),
        )

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize("backend", [BACKENDS[0]])
def test_capture_of_a_critic_step(backend):
    """A WGAN-GP critic step: interpolation, the penalty through a double backward, the loss."""
    require(backend, "cuda")
    critic = _Critic().cuda()
    params = list(critic.parameters())
    real = torch.randn(4, 3, 16, 16, device="cuda")
    fake = torch.randn(4, 3, 16, 16, device="cuda")
    alpha = torch.rand(4, device="cuda")

    def step():
        gp = gk.gradient_penalty(critic, real, fake, "wgan-gp", weight=10.0, alpha=alpha, backend=backend)
        adv = gk.d_loss(critic(real), critic(fake), "wasserstein", backend=backend)
        return gp + adv

    def eager():
        loss = step()
        return loss.detach(), [g.detach() for g in torch.autograd.grad(loss, params)]

    def train_step():
        critic.zero_grad(set_to_none=True)
        step().backward()

    _warm_up(train_step, 3)
    graph = torch.cuda.CUDAGraph()
    critic.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = step()
        static_loss.backward()

    for trial in range(2):
        if trial:  # new data in the captured inputs: the replay must follow it
            real.copy_(torch.randn_like(real))
            fake.copy_(torch.randn_like(fake))
            alpha.copy_(torch.rand_like(alpha))
        graph.replay()
        torch.cuda.synchronize()
        loss_e, grads_e = eager()
        torch.testing.assert_close(static_loss, loss_e, rtol=1e-4, atol=1e-5)
        for p, ge in zip(params, grads_e):
            torch.testing.assert_close(p.grad, ge, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_capture_of_losses_and_penalty(backend):
    """Small losses (one block), losses past 8192 logits (the multi-block path: scratch partials
    allocated inside the op from the graph's pool, several launches) and a penalty scaled by a
    device tensor, captured forward and backward, replayed on new data."""
    require(backend, "cuda")
    sizes = ((64,), (64,), (9000,), (12000,), (70_000,), (70_000,), (8, 3, 16, 16))
    static = [torch.randn(s, device="cuda", requires_grad=True) for s in sizes]
    inv = torch.tensor(0.5, device="cuda")

    def losses(t, b):
        return (gk.d_loss(t[0], t[1], "logistic", backend=b)
                + gk.d_loss(t[2], t[3], "relativistic", drift=1e-3, backend=b)
                + gk.d_loss(t[4], t[5], "rpgan", backend=b)
                + gk.g_loss(t[5], "logistic", reduction="sum", backend=b)
                + gk.grad_penalty(t[6] / 40, "wgan-gp", inv_scale=inv, backend=b))

    def step():
        for x in static:
            x.grad = None
        loss = losses(static, backend)
        loss.backward()
        return loss

    _warm_up(step, 2)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = step()
    for x in static:
        x.data.copy_(torch.randn_like(x) * 2)
    inv.fill_(0.25)
    graph.replay()
    torch.cuda.synchronize()
    ref = [x.detach().clone().requires_grad_() for x in static]
    expected = losses(ref, "reference")
    expected.backward()
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    for x, y in zip(static, ref):
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-4, atol=1e-6)
