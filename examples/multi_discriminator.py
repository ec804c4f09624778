#!/usr/bin/env python
"""A multi-discriminator GAN on synthetic waveforms, with HiFi-GAN-style losses through gan_kernels.

The data: 1024-sample segments, each a sum of 2-3 sinusoids of random frequency, amplitude and phase.
A tiny generator (noise -> three ConvTranspose1d upsamplings -> waveform) trains against a
multi-period discriminator set (periods 2, 3, 5: the waveform read as a (T/p, p) image, Conv2d
layers along time) and a multi-scale set (2 scales: the waveform and its 2x average-pooled copy,
grouped Conv1d layers), five discriminators that each return logits and feature maps. The losses are
HiFi-GAN's, each one call over the whole list of discriminators:

    D:  sum_d mean((1 - r_d)^2) + mean(f_d^2)                 = gk.d_loss(rs, fs, "least_squares", weight=2.0)
    G:  sum_d mean((1 - f_d)^2) + 2 sum_dl mean|r_dl - f_dl|  = gk.g_loss(fs, "least_squares", weight=2.0)
                                                                + gk.feature_matching_loss(r_fm, f_fm, weight=2.0)

    python examples/multi_discriminator.py                  # 1-2 minutes on 2 free CPU cores (60-120 ms a step)
    python examples/multi_discriminator.py --steps 3 --timing-steps 2 --out /tmp/md

Writes ``multi_disc.png`` (real vs generated waveforms and magnitude spectra, loss curves) and
``metrics.json`` to ``--out``, then times training steps of the same models from the same seed with
the losses written as the usual Python loops and with gan_kernels, interleaved, and prints both mean
step times (the step is mostly the discriminators' convolutions: the losses are a part of it).
examples/results/cpu-multi_disc-1000steps.png is a default run on 2 busy CPU cores (10 minutes):
the generated spectrum moves into the data's 8-120 cycle band, but the samples have collapsed to
one waveform and carry upsampling harmonics above the band -- a loss demonstration, not a vocoder.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

import gan_kernels as gk

SEGMENT = 1024
NOISE_CH, NOISE_LEN = 32, 16  # three 4x upsamplings: 16 -> 1024 samples


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=1000, help="training steps (one D and one G update each)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--fm-weight", type=float, default=2.0, help="feature-matching weight (HiFi-GAN: 2)")
    p.add_argument("--backend", default="auto", help="gan_kernels back end: auto, cuda, triton, cpu, reference")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timing-steps", type=int, default=10,
                   help="steps per implementation in the step-time comparison (0: skip it)")
    p.add_argument("--out", default="runs/multi_disc")
    p.add_argument("--no-plot", action="store_true")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- data
def waveforms(n: int, generator: torch.Generator, length: int = SEGMENT) -> Tensor:
    """(n, 1, length) segments: sums of 2 or 3 sinusoids, 8-120 cycles per segment, peak below 1."""
    t = torch.arange(length, dtype=torch.float32) / length
    k = 3
    freq = 8 + 112 * torch.rand(n, k, 1, generator=generator)
    amp = 0.2 + 0.8 * torch.rand(n, k, 1, generator=generator)
    amp[:, 2] *= (torch.rand(n, 1, generator=generator) < 0.5).float()  # the third tone half of the time
    phase = 2 * math.pi * torch.rand(n, k, 1, generator=generator)
    x = (amp * torch.sin(2 * math.pi * freq * t + phase)).sum(1, keepdim=True)
    return 0.9 * x / amp.sum(1, keepdim=True)


# --------------------------------------------------------------------------- models
class Generator(nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv1d(NOISE_CH, w, 3, padding=1), nn.LeakyReLU(0.1),
            nn.ConvTranspose1d(w, w // 2, 8, stride=4, padding=2), nn.LeakyReLU(0.1),
            nn.ConvTranspose1d(w // 2, w // 4, 8, stride=4, padding=2), nn.LeakyReLU(0.1),
            nn.ConvTranspose1d(w // 4, w // 8, 8, stride=4, padding=2), nn.LeakyReLU(0.1),
            nn.Conv1d(w // 8, 1, 7, padding=3), nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class PeriodDiscriminator(nn.Module):
    """The waveform read as a (T/p, p) image; convolutions along time only, so columns stay apart."""

    def __init__(self, period: int, width: int = 8):
        super().__init__()
        self.period = period
        chans = [1, width, 2 * width, 4 * width]
        self.convs = nn.ModuleList([nn.Conv2d(a, b, (5, 1), (3, 1), padding=(2, 0)) for a, b in zip(chans, chans[1:])])
        self.convs.append(nn.Conv2d(chans[-1], chans[-1], (5, 1), 1, padding=(2, 0)))
        self.post = nn.Conv2d(chans[-1], 1, (3, 1), 1, padding=(1, 0))

    def forward(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        b, c, t = x.shape
        pad = (self.period - t % self.period) % self.period
        if pad:
            x = F.pad(x, (0, pad), mode="reflect")
        x = x.view(b, c, -1, self.period)
        fmaps = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
            fmaps.append(x)
        x = self.post(x)
        fmaps.append(x)
        return x.flatten(1), fmaps


class ScaleDiscriminator(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.convs = nn.ModuleList([
            nn.Conv1d(1, w, 15, 1, padding=7),
            nn.Conv1d(w, 2 * w, 41, 4, groups=4, padding=20),
            nn.Conv1d(2 * w, 4 * w, 41, 4, groups=8, padding=20),
            nn.Conv1d(4 * w, 4 * w, 5, 1, padding=2),
        ])
        self.post = nn.Conv1d(4 * w, 1, 3, 1, padding=1)

    def forward(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        fmaps = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
            fmaps.append(x)
        x = self.post(x)
        fmaps.append(x)
        return x.flatten(1), fmaps


class Discriminators(nn.Module):
    """Multi-period (2, 3, 5) + multi-scale (x1, x1/2): five (logits, feature maps) per input."""

    def __init__(self, periods=(2, 3, 5), scales: int = 2):
        super().__init__()
        self.discs = nn.ModuleList([PeriodDiscriminator(p) for p in periods]
                                   + [ScaleDiscriminator() for _ in range(scales)])
        self.n_periods = len(periods)
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, x: Tensor) -> Tuple[List[Tensor], List[List[Tensor]]]:
        logits, fmaps = [], []
        scaled = x
        for i, d in enumerate(self.discs):
            if i > self.n_periods:
                scaled = self.pool(scaled)
            y, f = d(x if i < self.n_periods else scaled)
            logits.append(y)
            fmaps.append(f)
        return logits, fmaps


# --------------------------------------------------------------------------- the losses, two ways
def loop_losses(fm_weight: float):
    """The losses as vocoder code writes them: a Python loop per discriminator and per feature map."""

    def d_loss(rs, fs):
        loss = 0
        for dr, dg in zip(rs, fs):
            loss += torch.mean((1 - dr) ** 2) + torch.mean(dg ** 2)
        return loss

    def g_loss(fs, r_fm, f_fm):
        adv = 0
        for dg in fs:
            adv += torch.mean((1 - dg) ** 2)
        fm = 0
        for dr, dg in zip(r_fm, f_fm):
            for rl, gl in zip(dr, dg):
                fm += torch.mean(torch.abs(rl - gl))
        return adv, fm * fm_weight

    return d_loss, g_loss


def gk_losses(fm_weight: float, backend: str):
    """The same sums, one gan_kernels call each (the library's LS kind halves each term)."""

    def d_loss(rs, fs):
        return gk.d_loss(rs, fs, "least_squares", weight=2.0, backend=backend)

    def g_loss(fs, r_fm, f_fm):
        return (gk.g_loss(fs, "least_squares", weight=2.0, backend=backend),
                gk.feature_matching_loss(r_fm, f_fm, weight=fm_weight, backend=backend))

    return d_loss, g_loss


class Trainer:
    def __init__(self, args: argparse.Namespace, losses, device: torch.device):
        torch.manual_seed(args.seed)
        self.gen = Generator().to(device)
        self.disc = Discriminators().to(device)
        self.opt_g = torch.optim.AdamW(self.gen.parameters(), args.lr, betas=(0.5, 0.9))
        self.opt_d = torch.optim.AdamW(self.disc.parameters(), args.lr, betas=(0.5, 0.9))
        self.d_loss, self.g_loss = losses
        self.device = device

    def step(self, real: Tensor, z: Tensor) -> Dict[str, float]:
        fake = self.gen(z)
        rs, _ = self.disc(real)
        fs, _ = self.disc(fake.detach())
        loss_d = self.d_loss(rs, fs)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        rs, r_fm = self.disc(real)  # HiFi-GAN keeps the real features attached
        fs, f_fm = self.disc(fake)
        adv, fm = self.g_loss(fs, r_fm, f_fm)
        self.opt_g.zero_grad(set_to_none=True)
        (adv + fm).backward()
        self.opt_g.step()
        return {"d": loss_d.detach(), "g_adv": adv.detach(), "fm": fm.detach()}


def batches(args: argparse.Namespace, device: torch.device) -> Callable[[int], Tuple[Tensor, Tensor]]:
    """Batch i, the same for every trainer: a data and a noise generator seeded from the step."""

    def batch(i: int):
        g = torch.Generator().manual_seed(args.seed * 100_003 + i)
        real = waveforms(args.batch, g)
        z = torch.randn(args.batch, NOISE_CH, NOISE_LEN, generator=g)
        return real.to(device), z.to(device)

    return batch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train(args: argparse.Namespace, device: torch.device) -> Tuple[Trainer, Dict[str, List[float]]]:
    trainer = Trainer(args, gk_losses(args.fm_weight, args.backend), device)
    batch = batches(args, device)
    hist: Dict[str, List[float]] = {"d": [], "g_adv": [], "fm": []}
    pending = []
    for i in range(args.steps):
        pending.append(trainer.step(*batch(i)))
        if len(pending) == 50 or i == args.steps - 1:  # one host read per 50 steps
            for rec in pending:
                for k, v in rec.items():
                    hist[k].append(float(v))
            pending = []
            print(f"step {i + 1}/{args.steps}: D {hist['d'][-1]:.4f}  G adv {hist['g_adv'][-1]:.4f}  "
                  f"FM {hist['fm'][-1]:.4f}", flush=True)
    return trainer, hist


def compare_step_times(args: argparse.Namespace, device: torch.device) -> Dict:
    """The same models from the same seed, stepped with the loop losses and with gan_kernels,
    alternating step by step (a burst of load from elsewhere hits both); first-step losses and
    mean step times (the first step of each, warm-up, left out of the mean)."""
    trainers = {"loops": Trainer(args, loop_losses(args.fm_weight), device),
                "gan_kernels": Trainer(args, gk_losses(args.fm_weight, args.backend), device)}
    batch = batches(args, device)
    times: Dict[str, List[float]] = {k: [] for k in trainers}
    first: Dict[str, Dict[str, float]] = {}
    for i in range(args.timing_steps):
        names = list(trainers) if i % 2 == 0 else list(trainers)[::-1]
        real, z = batch(i)
        for name in names:
            _sync(device)
            t0 = time.perf_counter()
            rec = trainers[name].step(real, z)
            _sync(device)
            times[name].append(time.perf_counter() - t0)
            if i == 0:
                first[name] = {k: float(v) for k, v in rec.items()}
    mean_ms = {k: 1e3 * sum(v[1:] or v) / len(v[1:] or v) for k, v in times.items()}
    return {"first_step_losses": first, "mean_step_ms": mean_ms, "steps": args.timing_steps}


# --------------------------------------------------------------------------- output
def spectrum(x: Tensor) -> Tensor:
    """Mean magnitude spectrum (dB) of a batch of (n, 1, T) waveforms, Hann-windowed."""
    win = torch.hann_window(x.shape[-1])
    mag = torch.fft.rfft(x[:, 0].cpu() * win).abs().mean(0)
    return 20 * torch.log10(mag + 1e-4)


def plot(hist: Dict[str, List[float]], real: Tensor, fake: Tensor, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(11, 7))
    for i in range(2):
        ax[0, 0].plot(real[i, 0, :256].cpu(), lw=1, label=f"real {i}")
        ax[0, 1].plot(fake[i, 0, :256].cpu(), lw=1, label=f"generated {i}")
    ax[0, 0].set_title("real waveforms (first 256 samples)")
    ax[0, 1].set_title("generated waveforms (first 256 samples)")
    for a in ax[0]:
        a.set_ylim(-1.05, 1.05)
        a.legend(loc="upper right", fontsize=7)
    ax[1, 0].plot(spectrum(real), label="real")
    ax[1, 0].plot(spectrum(fake), label="generated")
    ax[1, 0].set_xlim(0, 200)
    ax[1, 0].set_xlabel("cycles per segment")
    ax[1, 0].set_ylabel("dB")
    ax[1, 0].set_title("mean magnitude spectrum")
    ax[1, 0].legend()
    for k, label in (("d", "D loss"), ("g_adv", "G adversarial"), ("fm", "feature matching")):
        ax[1, 1].plot(hist[k], label=label, lw=1)
    ax[1, 1].set_xlabel("step")
    ax[1, 1].set_title("losses")
    ax[1, 1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.perf_counter()
    trainer, hist = train(args, device)
    train_s = time.perf_counter() - t0
    report: Dict = {"steps": args.steps, "batch": args.batch, "device": str(device), "backend": args.backend,
                    "train_s": round(train_s, 1), "final": {k: v[-1] for k, v in hist.items() if v}}
    g = torch.Generator().manual_seed(12345)
    with torch.no_grad():
        real = waveforms(64, g).to(device)
        fake = trainer.gen(torch.randn(64, NOISE_CH, NOISE_LEN, generator=g).to(device))
    if not args.no_plot:
        try:
            path = os.path.join(args.out, "multi_disc.png")
            plot(hist, real, fake, path)
            report["png"] = path
        except ImportError as e:
            print(f"note: no plot ({e}); `pip install matplotlib` adds it")
    if args.timing_steps > 0:
        report["timing"] = compare_step_times(args, device)
        ms = report["timing"]["mean_step_ms"]
        print(f"mean step time over {args.timing_steps} steps each (interleaved, same models and seed): "
              f"loops {ms['loops']:.1f} ms, gan_kernels {ms['gan_kernels']:.1f} ms "
              f"({ms['loops'] / ms['gan_kernels']:.2f}x)")
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(f"trained {args.steps} steps in {train_s:.0f} s; wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
