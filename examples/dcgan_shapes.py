#!/usr/bin/env python
"""A small DCGAN-style GAN on procedurally drawn shapes (32x32, no download), with gan_kernels.

Two recipes (``--penalty``):

* ``wgan-gp``: Wasserstein loss + gradient penalty (lambda 10) at random interpolates, 5 critic
  steps per generator step, Adam(1e-4, (0.5, 0.9)), a small drift term keeping the critic centred;
* ``r1``: non-saturating logistic loss + R1 on real data (StyleGAN2), 1 critic step per generator
  step, optionally lazy (``--reg-every 16`` runs R1 every 16th critic step with 16x the weight and
  adjusts Adam as StyleGAN2 does).

``--amp bf16|fp16`` runs the networks under autocast (fp16 with a GradScaler whose scale the
penalties unscale inside the kernel). Prints the mean critic step time; writes ``samples.png`` and
``metrics.json`` to ``--out``.

    python examples/dcgan_shapes.py --steps 2000 --penalty r1 --reg-every 16 --device cuda
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from typing import Dict, List, Optional

import torch

import gan_kernels as gk
from gan_kernels.models import DCGANCritic, DCGANGenerator, procedural_shapes
from gan_kernels.training import LazyRegularizer, lazy_adam_hparams

try:
    from tqdm import tqdm
except ImportError:
    def tqdm(it, **_):
        return it


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=2000, help="generator steps")
    p.add_argument("--penalty", choices=("wgan-gp", "r1"), default="wgan-gp")
    p.add_argument("--critic-iters", type=int, default=None, help="critic steps per generator step (5 for wgan-gp, 1 for r1)")
    p.add_argument("--gamma", type=float, default=0.5, help="R1 weight gamma (the penalty is gamma/2 * E||grad||^2)")
    p.add_argument("--lam", type=float, default=10.0, help="WGAN-GP weight lambda")
    p.add_argument("--reg-every", type=int, default=1, help="lazy regularisation interval (R1 only; StyleGAN2 uses 16)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=32, choices=(32, 64))
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--z-dim", type=int, default=128)
    p.add_argument("--lr", type=float, default=None, help="Adam lr (1e-4 for wgan-gp, 2e-4 for r1)")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    p.add_argument("--backend", default="auto", help="gan_kernels back end: auto, cuda, triton, cpu, reference")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/dcgan_shapes")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.critic_iters is None:
        args.critic_iters = 5 if args.penalty == "wgan-gp" else 1
    if args.lr is None:
        args.lr = 1e-4 if args.penalty == "wgan-gp" else 2e-4
    if args.reg_every != 1 and args.penalty != "r1":
        p.error("--reg-every applies to --penalty r1 (lazy regularisation of WGAN-GP is not a standard recipe)")
    return args


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu" and args.backend == "triton" and os.environ.get("TRITON_INTERPRET") != "1":
        raise SystemExit("the triton back end runs on CPU tensors only with TRITON_INTERPRET=1 set (slow; for testing)")
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    gen = DCGANGenerator(z_dim=args.z_dim, channels=3, size=args.size, width=args.width).to(device)
    critic = DCGANCritic(channels=3, size=args.size, width=args.width).to(device)
    betas = (0.5, 0.9) if args.penalty == "wgan-gp" else (0.0, 0.99)
    d_lr, d_betas = lazy_adam_hparams(args.lr, betas, args.reg_every)
    opt_g = torch.optim.Adam(gen.parameters(), lr=args.lr, betas=betas)
    opt_d = torch.optim.Adam(critic.parameters(), lr=d_lr, betas=d_betas)
    lazy = LazyRegularizer(every=args.reg_every)
    rng = torch.Generator().manual_seed(args.seed + 1)
    # Alpha for WGAN-GP is drawn on the device from its own generator (no host round trip).
    rng_dev = torch.Generator(device=device).manual_seed(args.seed + 2)

    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)

    def autocast():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=amp_dtype)

    # fp16 needs loss scaling; bf16 has fp32's range and does not.
    use_scaler = amp_dtype == torch.float16
    scaler_d = torch.amp.GradScaler(device.type, enabled=use_scaler)
    scaler_g = torch.amp.GradScaler(device.type, enabled=use_scaler)
    pen_scaler = scaler_d if use_scaler else None

    d_kind = "wasserstein" if args.penalty == "wgan-gp" else "logistic"

    def critic_step(real: torch.Tensor, fake: torch.Tensor):
        reg = args.penalty == "wgan-gp" or lazy.due()
        with autocast():
            if args.penalty == "wgan-gp":
                adv = gk.d_loss(critic(real), critic(fake), d_kind, drift=1e-3, backend=args.backend)
                pen = gk.gradient_penalty(critic, real, fake, weight=args.lam, generator=rng_dev,
                                          scaler=pen_scaler, backend=args.backend)
            else:
                # One critic forward on the real batch serves both the loss and R1 (StyleGAN2).
                real = real.detach().requires_grad_(reg)
                real_logits = critic(real)
                adv = gk.d_loss(real_logits, critic(fake), d_kind, backend=args.backend)
                pen = lazy(gk.r1_penalty, real_logits, real, gamma=args.gamma, scaler=pen_scaler, backend=args.backend)
            loss = adv if pen is None else adv + pen
        opt_d.zero_grad(set_to_none=True)
        scaler_d.scale(loss).backward()
        scaler_d.step(opt_d)
        scaler_d.update()
        return adv.detach(), (pen.detach() if pen is not None else None), reg

    hist = {"d_adv": [], "penalty": [], "g_loss": []}
    times = {True: [], False: []}  # critic step seconds, with / without the penalty
    bar = tqdm(range(args.steps), desc=f"dcgan-shapes[{args.penalty},{args.backend}]", disable=args.quiet, leave=False)
    last_pen = torch.zeros((), device=device)
    for step in bar:
        for _ in range(args.critic_iters):
            real = procedural_shapes(args.batch, args.size, generator=rng, device=device)
            z = torch.randn(args.batch, args.z_dim, generator=rng).to(device)
            with torch.no_grad(), autocast():
                fake = gen(z)
            _sync(device)
            t0 = time.perf_counter()
            adv, pen, reg = critic_step(real, fake)
            _sync(device)
            times[reg].append(time.perf_counter() - t0)
            if pen is not None:
                last_pen = pen
        for p in critic.parameters():
            p.requires_grad_(False)
        z = torch.randn(args.batch, args.z_dim, generator=rng).to(device)
        with autocast():
            loss_g = gk.g_loss(critic(gen(z)), d_kind, backend=args.backend)
        opt_g.zero_grad(set_to_none=True)
        scaler_g.scale(loss_g).backward()
        scaler_g.step(opt_g)
        scaler_g.update()
        for p in critic.parameters():
            p.requires_grad_(True)
        vals = torch.stack([adv.float(), last_pen.float(), loss_g.detach().float()]).cpu().tolist()
        for k, v in zip(("d_adv", "penalty", "g_loss"), vals):
            hist[k].append(v)
        if hasattr(bar, "set_postfix") and step % 20 == 0:
            bar.set_postfix(d=f"{vals[0]:.3f}", pen=f"{vals[1]:.3f}", g=f"{vals[2]:.3f}")

    def mean_ms(ts: List[float]) -> Optional[float]:
        ts = ts[min(len(ts) - 1, max(1, len(ts) // 10)):] if len(ts) > 1 else ts  # drop warm-up steps
        return 1e3 * sum(ts) / len(ts) if ts else None

    t_reg, t_plain = mean_ms(times[True]), mean_ms(times[False])
    all_t = times[True] + times[False]
    metrics = {
        "penalty": args.penalty, "backend": args.backend, "device": args.device, "amp": args.amp,
        "steps": args.steps, "critic_iters": args.critic_iters, "reg_every": args.reg_every,
        "critic_step_ms": 1e3 * sum(all_t) / len(all_t),
        "critic_step_ms_with_penalty": t_reg, "critic_step_ms_without_penalty": t_plain,
        "losses": hist,
        "finite": all(math.isfinite(v) for k in hist for v in hist[k]),
    }
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f)
    save_samples(gen, args, device, os.path.join(args.out, "samples.png"))

    msg = f"dcgan-shapes [{args.penalty}, {args.backend}, {args.device}, amp={args.amp}]: critic step "
    if t_reg is not None:
        msg += f"{t_reg:.2f} ms with penalty"
    if t_plain is not None:
        msg += f", {t_plain:.2f} ms without (lazy, every {args.reg_every})"
    print(msg + f"; final d_adv {hist['d_adv'][-1]:.4f}, g_loss {hist['g_loss'][-1]:.4f}")
    return metrics


@torch.no_grad()
def save_samples(gen, args, device, path: str, n: int = 32) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gen.eval()
    z = torch.randn(n, args.z_dim, generator=torch.Generator().manual_seed(args.seed + 99)).to(device)
    fake = gen(z).float().cpu()
    gen.train()
    real = procedural_shapes(n, args.size, generator=torch.Generator().manual_seed(args.seed + 98))
    # One image of an 8x8 grid (one imshow is much faster than 64 subplots).
    imgs = torch.cat([real, fake]).add(1).div(2).clamp(0, 1)  # (2n, 3, S, S)
    pad = torch.nn.functional.pad(imgs, (1, 1, 1, 1), value=1.0)
    s = pad.shape[-1]
    grid = pad.view(8, 2 * n // 8, 3, s, s).permute(0, 3, 1, 4, 2).reshape(8 * s, (2 * n // 8) * s, 3)
    fig, ax = plt.subplots(figsize=(6, 6.3))
    ax.imshow(grid.numpy())
    ax.axis("off")
    ax.set_title("top 4 rows: real, bottom 4 rows: generated")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
    sys.exit(0)
