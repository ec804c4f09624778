#!/usr/bin/env python
"""Capture a whole WGAN-GP critic step (penalty and optimizer included) in a CUDA graph.

Follows docs/training.md, "CUDA graphs": static input buffers, warm-up on a side stream,
``zero_grad(set_to_none=True)`` before capture, ``Adam(capturable=True)``. Then checks that one
replay changes the weights exactly as one eager step does, and times eager vs replayed steps.

    python examples/cuda_graph_critic_step.py --backend cuda --steps 200

Needs a CUDA device.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from typing import Dict, List, Optional

import torch

import gan_kernels as gk
from gan_kernels.models import DCGANCritic, DCGANGenerator, procedural_shapes


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=100, help="timed steps per mode")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=32, choices=(32, 64))
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--z-dim", type=int, default=128)
    p.add_argument("--backend", default="cuda", help="cuda, triton or reference")
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default="runs/cuda_graph")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type != "cuda" or not torch.cuda.is_available():
        raise SystemExit("CUDA graphs need a CUDA device")
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    gen = DCGANGenerator(z_dim=args.z_dim, size=args.size, width=args.width, norm="none").to(device)
    critic = DCGANCritic(size=args.size, width=args.width).to(device)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.5, 0.9), capturable=True)

    static_real = torch.empty(args.batch, 3, args.size, args.size, device=device)
    static_z = torch.empty(args.batch, args.z_dim, device=device)
    static_alpha = torch.empty(args.batch, device=device)

    def refill(seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        static_real.copy_(procedural_shapes(args.batch, args.size, generator=g))
        static_z.copy_(torch.randn(args.batch, args.z_dim, generator=g))
        static_alpha.copy_(torch.rand(args.batch, generator=g))

    def critic_step(model, optimizer):
        with torch.no_grad():
            fake = gen(static_z)
        loss = gk.d_loss(model(static_real), model(fake), "wasserstein", backend=args.backend)
        loss = loss + gk.gradient_penalty(model, static_real, fake, alpha=static_alpha, weight=10.0, backend=args.backend)
        loss.backward()
        optimizer.step()
        return loss.detach()

    refill(0)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            critic_step(critic, opt)
    torch.cuda.current_stream().wait_stream(side)

    opt.zero_grad(set_to_none=True)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_loss = critic_step(critic, opt)
    # Capture records the kernels without running them: the weights are still the warmed-up ones.

    # One replay vs one eager step from the same weights, optimizer state and inputs.
    eager_critic = copy.deepcopy(critic)
    eager_opt = torch.optim.Adam(eager_critic.parameters(), lr=1e-4, betas=(0.5, 0.9), capturable=True)
    eager_opt.load_state_dict(opt.state_dict())
    refill(1)
    graph.replay()
    eager_opt.zero_grad(set_to_none=True)
    eager_loss = critic_step(eager_critic, eager_opt)
    torch.cuda.synchronize()
    loss_diff = (static_loss - eager_loss).abs().item()
    param_diff = max((p - q).abs().max().item() for p, q in zip(critic.parameters(), eager_critic.parameters()))
    grad_diff = max((p.grad - q.grad).abs().max().item() for p, q in zip(critic.parameters(), eager_critic.parameters())
                    if p.grad is not None and q.grad is not None)

    def timed(fn) -> float:
        for _ in range(5):
            fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            fn()
        torch.cuda.synchronize()
        return (time.perf_counter() - t0) / args.steps

    def eager_once():
        eager_opt.zero_grad(set_to_none=True)
        critic_step(eager_critic, eager_opt)

    t_eager = timed(eager_once)
    t_graph = timed(graph.replay)
    report = {
        "device": torch.cuda.get_device_name(device), "backend": args.backend, "batch": args.batch,
        "size": args.size, "width": args.width, "loss_diff": loss_diff, "grad_max_diff": grad_diff,
        "param_max_diff": param_diff, "eager_step_ms": t_eager * 1e3, "graph_step_ms": t_graph * 1e3,
        "torch": torch.__version__,
    }
    with open(os.path.join(args.out, f"cuda_graph_{args.backend}.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(f"[{report['device']}, backend={args.backend}] critic step (B={args.batch}, {args.size}x{args.size}, "
          f"width {args.width}): eager {t_eager * 1e3:.3f} ms, CUDA graph {t_graph * 1e3:.3f} ms; "
          f"replay vs eager: |loss| {loss_diff:.2e}, max |grad| {grad_diff:.2e}, max |param| {param_diff:.2e}")
    return report


if __name__ == "__main__":
    main()
    sys.exit(0)
