"""Multi-discriminator losses: the hand-written loops of vocoder and image-to-image code against gk.

Two real discriminator sets, their feature-map shapes derived from the architectures' convolution
arithmetic (no network is built: random feature maps of those shapes stand in for the outputs):

* **HiFi-GAN V1** (the set HiFi-GAN, BigVGAN and the codecs built on them train against):
  a multi-period discriminator per period 2, 3, 5, 7, 11 -- the waveform (B, 1, T) reflect-padded
  to a multiple of p and read as (B, 1, T/p, p); four Conv2d (5, 1) stride (3, 1) padding (2, 0)
  layers 1 -> 32 -> 128 -> 512 -> 1024, one more 1024 -> 1024 at stride 1, a (3, 1) post conv to
  one channel: 6 feature maps each -- and a multi-scale discriminator at three scales (the raw
  waveform, then twice AvgPool1d(4, 2, padding=2)), each seven Conv1d layers 1 -> 128 -> 128 ->
  256 -> 512 -> 1024 -> 1024 -> 1024 (kernel / stride / groups 15/1/1, 41/2/4, 41/2/16, 41/4/16,
  41/4/16, 41/1/16, 5/1/1, "same" padding) and a kernel-3 post conv: 8 feature maps each.
  8 discriminators, 54 feature maps; the logits are the flattened post-conv output.
* **pix2pixHD**: three PatchGAN discriminators at 256x256, 128x128, 64x64 (AvgPool2d(3, 2,
  padding=1) between scales), each four k=4 padding-2 convs 64, 128, 256 channels at stride 2 and
  512 at stride 1, then the logits conv (one channel, stride 1): 4 feature maps and the logits.

Per case and loss -- the D loss, the G adversarial loss and feature matching -- one fwd+bwd is the
loss and ``torch.autograd.grad`` to the sides the training step differentiates (both sides of the
D loss; the fake logits for the G loss; both feature sides for HiFi-GAN, whose reference code
leaves the real features attached; the fake side only for pix2pixHD, which detaches them).
Candidates, timed in interleaved rounds: the loops as those projects write them (HiFi-GAN's D loss
also with the ``.item()`` per discriminator its reference code logs with) and the gk call per
back end, computing the same value.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

import gan_kernels as gk

from .timing import TimerConfig, count_dispatches, error_text, time_interleaved, timing_fields

Shape = Tuple[int, ...]


# --------------------------------------------------------------------------- shapes
def conv_out(n: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution or pooling window along one axis (no dilation)."""
    return (n + 2 * padding - kernel) // stride + 1


@dataclass
class Discriminator:
    name: str
    fmaps: List[Shape]  # the feature maps feature matching compares (HiFi-GAN's include the post conv's output)
    logits: Shape  # the post conv's output flattened per sample


MPD_PERIODS = (2, 3, 5, 7, 11)
# (out channels, kernel, stride) of each Conv2d along the time axis; padding (kernel - 1) / 2.
MPD_LAYERS = ((32, 5, 3), (128, 5, 3), (512, 5, 3), (1024, 5, 3), (1024, 5, 1), (1, 3, 1))
# (out channels, kernel, stride) of each Conv1d; padding (kernel - 1) / 2; groups do not change shapes.
MSD_LAYERS = ((128, 15, 1), (128, 41, 2), (256, 41, 2), (512, 41, 4), (1024, 41, 4), (1024, 41, 1),
              (1024, 5, 1), (1, 3, 1))
MSD_SCALES = 3


def hifigan_v1_shapes(batch: int, samples: int) -> List[Discriminator]:
    out = []
    for p in MPD_PERIODS:
        t = samples + (p - samples % p) % p  # reflect padding up to a multiple of the period
        h, fmaps = t // p, []
        for ch, k, s in MPD_LAYERS:
            h = conv_out(h, k, s, (k - 1) // 2)
            fmaps.append((batch, ch, h, p))
        out.append(Discriminator(f"mpd{p}", fmaps, (batch, h * p)))
    t = samples
    for scale in range(MSD_SCALES):
        if scale:
            t = conv_out(t, 4, 2, 2)  # AvgPool1d(4, 2, padding=2)
        n, fmaps = t, []
        for ch, k, s in MSD_LAYERS:
            n = conv_out(n, k, s, (k - 1) // 2)
            fmaps.append((batch, ch, n))
        out.append(Discriminator(f"msd{scale}", fmaps, (batch, n)))
    return out


PIX2PIXHD_LAYERS = ((64, 2), (128, 2), (256, 2), (512, 1))  # (channels, stride); kernel 4, padding 2
PIX2PIXHD_SCALES = 3


def pix2pixhd_shapes(batch: int, size: int) -> List[Discriminator]:
    out = []
    s = size
    for scale in range(PIX2PIXHD_SCALES):
        if scale:
            s = conv_out(s, 3, 2, 1)  # AvgPool2d(3, stride=2, padding=1)
        n, fmaps = s, []
        for ch, stride in PIX2PIXHD_LAYERS:
            n = conv_out(n, 4, stride, 2)
            fmaps.append((batch, ch, n, n))
        n = conv_out(n, 4, 1, 2)
        out.append(Discriminator(f"patch{scale}", fmaps, (batch, 1, n, n)))
    return out


def numel(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


# --------------------------------------------------------------------------- cases
@dataclass
class MultiCase:
    name: str  # "hifigan-v1" or "pix2pixhd"
    size: str  # e.g. "B=2 T=8192"
    discs: List[Discriminator]

    @property
    def style(self) -> str:
        return self.name.split("-")[0]

    @property
    def feature_maps(self) -> int:
        return sum(len(d.fmaps) for d in self.discs)

    @property
    def fm_numel(self) -> int:
        """Feature-map elements per side: the maps feature matching compares."""
        return sum(numel(s) for d in self.discs for s in d.fmaps)

    @property
    def logits_numel(self) -> int:
        return sum(numel(d.logits) for d in self.discs)


def multi_cases(quick: bool = False) -> List[MultiCase]:
    """The HiFi-GAN V1 set at a training segment and at a launch-bound size, and pix2pixHD at 256x256.

    ``quick`` keeps all three (a quick run times fewer rounds instead)."""
    return [MultiCase("hifigan-v1", "B=2 T=8192", hifigan_v1_shapes(2, 8192)),
            MultiCase("hifigan-v1", "B=1 T=1024", hifigan_v1_shapes(1, 1024)),
            MultiCase("pix2pixhd", "B=1 256x256", pix2pixhd_shapes(1, 256))]


LOSSES = ("d_loss", "g_loss", "feature_matching")
PIX2PIXHD_LAMBDA_FEAT = 10.0


@dataclass
class MultiInputs:
    real_logits: List[Tensor]
    fake_logits: List[Tensor]
    real_fmaps: List[List[Tensor]]  # one list per discriminator
    fake_fmaps: List[List[Tensor]]


def make_inputs(case: MultiCase, device: torch.device, gen: torch.Generator,
                dtype: torch.dtype = torch.float32) -> MultiInputs:
    def rand(shape, grad=True):
        return torch.randn(shape, generator=gen, device=device, dtype=dtype).requires_grad_(grad)

    # pix2pixHD detaches the real features: they are no leaves of its generator step.
    real_grad = case.style == "hifigan"
    return MultiInputs([rand(d.logits) for d in case.discs], [rand(d.logits) for d in case.discs],
                       [[rand(s, real_grad) for s in d.fmaps] for d in case.discs],
                       [[rand(s) for s in d.fmaps] for d in case.discs])


# --------------------------------------------------------------------------- the loops, as written
def hifigan_discriminator_loss(disc_real_outputs, disc_generated_outputs, log_items: bool):
    loss = 0
    r_losses = []
    g_losses = []
    for dr, dg in zip(disc_real_outputs, disc_generated_outputs):
        r_loss = torch.mean((1 - dr) ** 2)
        g_loss = torch.mean(dg ** 2)
        loss += r_loss + g_loss
        if log_items:  # the reference code logs every term: one host synchronisation each
            r_losses.append(r_loss.item())
            g_losses.append(g_loss.item())
        else:
            r_losses.append(r_loss)
            g_losses.append(g_loss)
    return loss, r_losses, g_losses


def hifigan_generator_loss(disc_outputs):
    loss = 0
    gen_losses = []
    for dg in disc_outputs:
        l = torch.mean((1 - dg) ** 2)  # noqa: E741
        gen_losses.append(l)
        loss += l
    return loss, gen_losses


def hifigan_feature_loss(fmap_r, fmap_g):
    loss = 0
    for dr, dg in zip(fmap_r, fmap_g):
        for rl, gl in zip(dr, dg):
            loss += torch.mean(torch.abs(rl - gl))
    return loss * 2


def pix2pixhd_gan_loss(preds, target_is_real: bool):
    # Least-squares GAN loss over the scales: MSE against a target map of ones or zeros.
    loss = 0
    for pred in preds:
        target = torch.ones_like(pred) if target_is_real else torch.zeros_like(pred)
        loss += torch.nn.functional.mse_loss(pred, target)
    return loss


def pix2pixhd_feature_loss(pred_fake, pred_real, n_layers: int = 3, lambda_feat: float = PIX2PIXHD_LAMBDA_FEAT):
    feat_weights = 4.0 / (n_layers + 1)
    d_weights = 1.0 / len(pred_fake)
    loss = 0
    for i in range(len(pred_fake)):
        for j in range(len(pred_fake[i])):
            loss += d_weights * feat_weights * torch.nn.functional.l1_loss(
                pred_fake[i][j], pred_real[i][j].detach()) * lambda_feat
    return loss


def pix2pixhd_fm_weight(n_layers: int = 3, num_d: int = PIX2PIXHD_SCALES) -> float:
    return 4.0 / (n_layers + 1) / num_d * PIX2PIXHD_LAMBDA_FEAT


# --------------------------------------------------------------------------- candidates
def _leaves(loss: str, inp: MultiInputs, style: str) -> List[Tensor]:
    if loss == "d_loss":
        return inp.real_logits + inp.fake_logits
    if loss == "g_loss":
        return list(inp.fake_logits)
    fake = [t for d in inp.fake_fmaps for t in d]
    return ([t for d in inp.real_fmaps for t in d] + fake) if style == "hifigan" else fake


def loss_fns(case: MultiCase, loss: str, backends: Sequence[str]) -> Dict[str, Callable[[MultiInputs], Tensor]]:
    """Candidate name -> function of the inputs returning the scalar loss (all the same value)."""
    out: Dict[str, Callable[[MultiInputs], Tensor]] = {}
    hifi = case.style == "hifigan"
    if loss == "d_loss":
        if hifi:
            out["loop"] = lambda i: hifigan_discriminator_loss(i.real_logits, i.fake_logits, False)[0]
            out["loop+item"] = lambda i: hifigan_discriminator_loss(i.real_logits, i.fake_logits, True)[0]
        else:
            out["loop"] = lambda i: (pix2pixhd_gan_loss(i.fake_logits, False)
                                     + pix2pixhd_gan_loss(i.real_logits, True)) * 0.5
        for b in backends:
            # The library's LS kind halves each term: HiFi-GAN's sum is twice it (weight=2 scales it in
            # the kernel, one graph node fewer than `2 * loss`), pix2pixHD's is it.
            if hifi:
                out[f"gk {b}"] = lambda i, b=b: gk.d_loss(i.real_logits, i.fake_logits, "least_squares", weight=2.0,
                                                          backend=b)
            else:
                out[f"gk {b}"] = lambda i, b=b: gk.d_loss(i.real_logits, i.fake_logits, "least_squares", backend=b)
    elif loss == "g_loss":
        out["loop"] = ((lambda i: hifigan_generator_loss(i.fake_logits)[0]) if hifi
                       else (lambda i: pix2pixhd_gan_loss(i.fake_logits, True)))
        for b in backends:
            out[f"gk {b}"] = lambda i, b=b: gk.g_loss(i.fake_logits, "least_squares", weight=2.0, backend=b)
    else:
        if hifi:
            out["loop"] = lambda i: hifigan_feature_loss(i.real_fmaps, i.fake_fmaps)
            for b in backends:
                out[f"gk {b}"] = lambda i, b=b: gk.feature_matching_loss(i.real_fmaps, i.fake_fmaps, weight=2.0,
                                                                         backend=b)
        else:
            w = pix2pixhd_fm_weight()
            out["loop"] = lambda i: pix2pixhd_feature_loss(i.fake_fmaps, i.real_fmaps)
            for b in backends:
                out[f"gk {b}"] = lambda i, b=b, w=w: gk.feature_matching_loss(
                    [[t.detach() for t in d] for d in i.real_fmaps], i.fake_fmaps, weight=w, backend=b)
    return out


def fwd_bwd(fn: Callable[[MultiInputs], Tensor], inp: MultiInputs, leaves: List[Tensor]) -> Callable[[], object]:
    def call():
        return torch.autograd.grad(fn(inp), leaves)
    return call


def bytes_moved(case: MultiCase, loss: str, element_size: int = 4) -> int:
    """Bytes one fwd+bwd must move at the least: each input read by the forward and again by the
    backward, each gradient written once."""
    if loss == "feature_matching":
        n, sides_grad = case.fm_numel, (2 if case.style == "hifigan" else 1)
        return element_size * n * (2 + 2 + sides_grad)
    n = case.logits_numel
    if loss == "d_loss":
        return element_size * n * (2 + 2 + 2)
    return element_size * n * (1 + 1 + 1)


def run_multi(device: torch.device, backends: Sequence[str], cases: Sequence[MultiCase], cfg: TimerConfig,
              copy_gbps: Optional[float] = None, progress: Optional[Callable[[str], None]] = None) -> List[Dict]:
    """One row per (case, loss, candidate)."""
    rows: List[Dict] = []
    for case in cases:
        gen = torch.Generator(device=device).manual_seed(zlib.crc32(f"{case.name} {case.size}".encode()))
        inp = make_inputs(case, device, gen)
        for loss in LOSSES:
            if progress:
                progress(f"multi {case.name} {case.size} {loss}")
            leaves = _leaves(loss, inp, case.style)
            fns = loss_fns(case, loss, backends)
            calls, errors, mine = {}, {}, []
            nbytes = bytes_moved(case, loss)
            for impl, fn in fns.items():
                row = {"case": case.name, "size": case.size, "loss": loss, "impl": impl,
                       "discriminators": len(case.discs), "feature_maps": case.feature_maps,
                       "elements": case.fm_numel if loss == "feature_matching" else case.logits_numel,
                       "bytes": nbytes, "first_loss": None, "ops_dispatched": None, "error": None}
                try:
                    row["first_loss"] = float(fn(inp).detach())
                    call = fwd_bwd(fn, inp, leaves)
                    call()  # warm: first-call work stays out of the counts
                    row["ops_dispatched"] = count_dispatches(call)
                    calls[impl] = call
                except Exception as e:  # a failing candidate is a result, not a crash
                    errors[impl] = error_text(e)
                mine.append(row)
            timings = time_interleaved(calls, device, cfg, errors)
            base = timings.get("loop")
            for row in mine:
                t = timings.get(row["impl"])
                row.update(timing_fields(t), error=errors.get(row["impl"]))
                row["speedup_vs_loop"] = (base.ms / t.ms) if (base and t) else None
                row["gbps"] = (nbytes / (t.ms * 1e-3) / 1e9) if t else None
                row["pct_copy"] = (100.0 * row["gbps"] / copy_gbps) if (row["gbps"] and copy_gbps) else None
                rows.append(row)
        del inp
    return rows
