"""Small reference networks and download-free data for the examples, tests and benchmarks.

These are not part of the kernel API: they exist so that every example, test and benchmark trains the
same, well-known networks on the same data.

* :class:`MLPCritic` / :class:`MLPGenerator` are the 8-Gaussians toy networks of the WGAN-GP paper
  (Gulrajani et al. 2017): ReLU MLPs, 512 wide, 3 hidden layers, a 2-D noise input.
* :class:`DCGANCritic` / :class:`DCGANGenerator` are DCGAN-shaped conv nets for 32x32 or 64x64 images.
  The critic has **no batch norm**: a gradient penalty constrains the gradient of each output with
  respect to its own input, and batch norm makes each output depend on the whole batch, so the
  per-sample penalty no longer means what it should (the WGAN-GP paper replaces it by layer norm).
* :func:`eight_gaussians` and :func:`procedural_shapes` generate data with torch ops on any device.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import Tensor, nn

__all__ = [
    "MLPCritic",
    "MLPGenerator",
    "DCGANCritic",
    "DCGANGenerator",
    "eight_gaussians",
    "eight_gaussians_centres",
    "procedural_shapes",
]

Device = Union[str, torch.device, None]


# --------------------------------------------------------------------------- MLPs (8 Gaussians)
def _mlp(in_dim: int, hidden: int, depth: int, out_dim: int) -> nn.Sequential:
    if depth < 1:
        raise ValueError(f"depth must be >= 1 (the number of hidden layers), got {depth}")
    layers = []
    d = in_dim
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.ReLU()]
        d = hidden
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class MLPCritic(nn.Module):
    """ReLU MLP critic ``in_dim -> hidden x depth -> 1``; returns logits of shape (B,)."""

    def __init__(self, in_dim: int = 2, hidden: int = 512, depth: int = 3):
        super().__init__()
        self.net = _mlp(in_dim, hidden, depth, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)


class MLPGenerator(nn.Module):
    """ReLU MLP generator ``z_dim -> hidden x depth -> out_dim`` (the paper's toy generator)."""

    def __init__(self, z_dim: int = 2, out_dim: int = 2, hidden: int = 512, depth: int = 3):
        super().__init__()
        self.z_dim = z_dim
        self.net = _mlp(z_dim, hidden, depth, out_dim)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


# --------------------------------------------------------------------------- DCGAN-style conv nets
def _check_size(size: int) -> int:
    if size not in (32, 64):
        raise ValueError(f"size must be 32 or 64, got {size}")
    return size


def _critic_norm(norm: str, channels: int) -> nn.Module:
    if norm == "layer":
        # GroupNorm with one group normalises each sample over (C, H, W): layer norm that keeps
        # every sample independent of the others, so the per-sample penalty stays per sample.
        return nn.GroupNorm(1, channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown critic norm {norm!r}; expected one of ['none', 'layer'] (batch norm is not "
                     "offered: it couples the samples of a batch, which breaks a per-sample gradient penalty)")


class DCGANCritic(nn.Module):
    """DCGAN-shaped critic: 4x4 stride-2 convs + LeakyReLU(0.2) down to 4x4, then a 4x4 conv to one logit.

    ``size`` 32 uses three stride-2 convs (width, 2w, 4w channels), 64 uses four (up to 8w).
    ``norm`` is ``"none"`` (default) or ``"layer"``; never batch norm (see the module docstring).
    Returns logits of shape (B,).
    """

    def __init__(self, channels: int = 3, size: int = 32, width: int = 64, norm: str = "none"):
        super().__init__()
        n_down = int(math.log2(_check_size(size))) - 2  # down to 4x4
        layers = []
        c_in, c_out = channels, width
        for i in range(n_down):
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1))
            if i > 0:  # as in DCGAN, the first layer sees raw pixels and is left unnormalised
                layers.append(_critic_norm(norm, c_out))
            layers.append(nn.LeakyReLU(0.2))
            c_in, c_out = c_out, c_out * 2
        layers.append(nn.Conv2d(c_in, 1, 4, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1).squeeze(1)


class DCGANGenerator(nn.Module):
    """DCGAN-shaped generator: z -> 4x4 feature map -> 4x4 stride-2 transposed convs -> tanh image.

    Batch norm is fine here (the penalty differentiates the critic only); ``norm="none"`` removes it
    (useful where per-sample determinism across batch splits matters, e.g. DDP comparisons).
    """

    def __init__(self, z_dim: int = 128, channels: int = 3, size: int = 32, width: int = 64, norm: str = "batch"):
        super().__init__()
        if norm not in ("batch", "none"):
            raise ValueError(f"unknown generator norm {norm!r}; expected one of ['batch', 'none']")
        self.z_dim = z_dim
        n_up = int(math.log2(_check_size(size))) - 2
        c = width * 2 ** (n_up - 1)

        def bn(ch: int) -> nn.Module:
            return nn.BatchNorm2d(ch) if norm == "batch" else nn.Identity()

        self.fc = nn.Linear(z_dim, c * 16)
        self.fc_norm = bn(c)
        layers = []
        for _ in range(n_up - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1), bn(c // 2), nn.ReLU()]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        h = self.fc(z).view(z.shape[0], -1, 4, 4)
        return self.net(torch.relu(self.fc_norm(h)))


# --------------------------------------------------------------------------- data
def _draw_device(generator: Optional[torch.Generator], device: Device) -> torch.device:
    # Random numbers are drawn where the generator lives (a CPU generator cannot fill a CUDA tensor),
    # then moved: the same seed gives the same data on every device.
    if generator is not None:
        return generator.device
    return torch.device(device) if device is not None else torch.device("cpu")


def eight_gaussians(
    n: int,
    generator: Optional[torch.Generator] = None,
    device: Device = "cpu",
    *,
    std: float = 0.02,
    radius: float = 2.0,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``n`` points from 8 Gaussians on a circle (the WGAN-GP toy set), shape (n, 2).

    Centres at ``radius`` on the 8 compass directions, isotropic noise ``std``, then the whole set
    divided by 1.414 as in the paper's code, so the modes sit at about 1.41 from the origin.
    """
    src = _draw_device(generator, device)
    k = torch.randint(0, 8, (n,), generator=generator, device=src)
    angle = k.to(dtype) * (2 * math.pi / 8)
    centres = radius * torch.stack((torch.cos(angle), torch.sin(angle)), dim=1)
    noise = torch.randn(n, 2, generator=generator, device=src, dtype=dtype) * std
    return ((centres + noise) / 1.414).to(device)


def eight_gaussians_centres(radius: float = 2.0) -> Tensor:
    """The 8 mode centres of :func:`eight_gaussians` (8, 2), for mode-coverage checks."""
    angle = torch.arange(8, dtype=torch.float32) * (2 * math.pi / 8)
    return radius * torch.stack((torch.cos(angle), torch.sin(angle)), dim=1) / 1.414


def procedural_shapes(
    n: int,
    size: int = 32,
    generator: Optional[torch.Generator] = None,
    device: Device = "cpu",
    *,
    channels: int = 3,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``n`` images (n, channels, size, size) in [-1, 1]: one coloured circle, square or triangle each.

    Shape kind, centre, radius, rotation (triangles), shape colour and a dark background colour are
    drawn per image; edges are hard. Everything is torch ops, so it runs on the GPU and needs no
    download.
    """
    src = _draw_device(generator, device)

    def rand(*shape):
        return torch.rand(*shape, generator=generator, device=src, dtype=dtype)

    kind = torch.randint(0, 3, (n,), generator=generator, device=src)
    radius = (0.18 + 0.17 * rand(n)).view(n, 1, 1)  # fraction of the image side
    centre = 0.25 + 0.5 * rand(n, 2)
    theta = 2 * math.pi * rand(n).view(n, 1, 1)
    colour = (0.2 + 0.8 * rand(n, channels)) * 2 - 1  # bright-ish shape
    background = rand(n, channels) * 0.5 - 1  # dark background in [-1, -0.5]

    coords = (torch.arange(size, device=src, dtype=dtype) + 0.5) / size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    dx = xx.unsqueeze(0) - centre[:, 0].view(n, 1, 1)
    dy = yy.unsqueeze(0) - centre[:, 1].view(n, 1, 1)

    circle = dx * dx + dy * dy <= radius * radius
    half = radius / math.sqrt(2.0)
    square = (dx.abs() <= half) & (dy.abs() <= half)
    # Triangle: inside all three half-planes whose outward normals point at the rotated edge midpoints;
    # an equilateral triangle with circumradius r has its edges at distance r/2 from the centre.
    tri = torch.ones_like(circle)
    for j in range(3):
        a = theta + (2 * math.pi / 3) * j
        tri &= dx * torch.cos(a) + dy * torch.sin(a) <= radius / 2
    mask = torch.where(kind.view(n, 1, 1) == 0, circle, torch.where(kind.view(n, 1, 1) == 1, square, tri))

    img = torch.where(mask.unsqueeze(1), colour.view(n, channels, 1, 1), background.view(n, channels, 1, 1))
    return img.to(device)
