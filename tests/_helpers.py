"""Helpers shared by the tests: which back ends run here, tolerances, parameter matrices, inputs."""

from __future__ import annotations

import itertools
import os

import pytest
import torch

import gan_kernels as gk
from gan_kernels import _registry

HALF = (torch.float16, torch.bfloat16)


def expected_backends() -> set:
    """Back ends the build promises (GAN_KERNELS_EXPECT="cpu,triton"): missing ones fail, not skip."""
    return {b.strip() for b in os.environ.get("GAN_KERNELS_EXPECT", "").split(",") if b.strip()}


def backend_runs_on(backend: str, device: str) -> bool:
    b = _registry._BACKENDS.get(backend)
    return b is not None and b.runs_on(device) and backend in gk.available_backends()


def cpu_backends():
    """Back ends that run on CPU tensors here (reference always; cpu if built; triton interpreted)."""
    return [b for b in ("reference", "cpu", "triton") if backend_runs_on(b, "cpu")]


def kernel_backend_params():
    """(backend, device) pairs for the kernel back ends, as pytest params with the right marks."""
    params = []
    for backend, device in (("cpu", "cpu"), ("triton", "cpu"), ("cuda", "cuda"), ("triton", "cuda")):
        marks = [pytest.mark.gpu] if device == "cuda" else []
        params.append(pytest.param((backend, device), id=f"{backend}-{device}", marks=marks))
    return params


def require(backend: str, device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    if device == "cpu" and backend == "triton" and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("triton on CPU tensors needs TRITON_INTERPRET=1")
    if not backend_runs_on(backend, device):
        reason = _registry._reason(backend)
        if backend in expected_backends():
            pytest.fail(f"back end {backend!r} is expected by this build (GAN_KERNELS_EXPECT) but missing: {reason}")
        pytest.skip(f"back end {backend!r} not available on {device}: {reason}")


def dtypes_for(backend: str, device: str):
    if backend == "triton" and device == "cpu":
        return (torch.float32, torch.float64, torch.float16)  # the interpreter has no bfloat16
    return (torch.float32, torch.float64, torch.float16, torch.bfloat16)


# --------------------------------------------------------------------------- parameter matrices
def matrix(axes: dict, keep=None):
    """``@pytest.mark.parametrize(*matrix({...}, keep))``: the product of the axes, minus the
    combinations ``keep(**values)`` rejects, dropped here at collection rather than skipped.

    Each axis is a list of ``pytest.param(value, id=...)`` or ``(id, value)`` pairs; marks carry over.
    """
    names = list(axes)
    norm = []
    for name in names:
        entries = []
        for e in axes[name]:
            if isinstance(e, tuple) and not hasattr(e, "values"):
                entries.append((e[0], e[1], ()))
            else:
                entries.append((e.id, e.values[0], tuple(e.marks)))
        norm.append(entries)
    params = []
    for combo in itertools.product(*norm):
        values = {n: c[1] for n, c in zip(names, combo)}
        if keep is not None and not keep(**values):
            continue
        marks = [m for c in combo for m in c[2]]
        params.append(pytest.param(*values.values(), id="-".join(c[0] for c in combo), marks=marks))
    return ",".join(names), params


DTYPE_AXIS = [
    ("f32", torch.float32), ("f64", torch.float64), ("f16", torch.float16), ("bf16", torch.bfloat16),
]


# --------------------------------------------------------------------------- tolerances
# Relative error allowed per input dtype: a few roundings of the stored dtype (float16 / bfloat16
# gradients are stored in the input dtype), and float32 transcendental polynomials of 1-2 ulp.
_RTOL = {
    torch.float64: 1e-10,
    torch.float32: 2e-5,
    torch.float16: 2e-3,
    torch.bfloat16: 1e-2,  # one ulp of a stored bfloat16 is up to 0.78 % of its value
}


def tol(dtype: torch.dtype, scale: float = 1.0):
    """(rtol, atol) for values of magnitude ``scale`` computed from inputs of ``dtype``."""
    rtol = _RTOL[dtype]
    return rtol, rtol * scale


def magnitude(t: torch.Tensor) -> float:
    """The largest finite |value| of ``t`` (0 for none): the scale its rounding errors live on."""
    t = t.detach()
    if t.is_complex() or not t.is_floating_point():
        t = t.double()
    finite = t[torch.isfinite(t)]
    return float(finite.abs().max()) if finite.numel() else 0.0


def assert_close(actual, expected, dtype, what="", scale=None):
    """``actual`` matches ``expected`` within ``dtype``'s relative error, taken of the magnitude of
    what is compared (its largest |value|, or ``scale``): an absolute floor would let a 2x error
    through wherever the values are small, e.g. the 1/N gradients of a mean over N logits.

    Elements far below the magnitude are held to ``rtol * magnitude``: their absolute rounding
    error is that of the large ones they were computed with.
    """
    if scale is None:
        scale = magnitude(expected)
    rtol, atol = tol(dtype, scale)
    # an all-zero expectation (a deliberate zero gradient) must be matched to the last bit's noise
    atol = max(atol, 1e-30)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


# --------------------------------------------------------------------------- inputs
def with_norms(shape, norms, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """A random tensor of ``shape`` whose per-sample L2 norms (over all non-batch dims) are ``norms``."""
    g = torch.randn(shape, dtype=torch.float64, device=device)
    n = torch.linalg.vector_norm(g.flatten(1), dim=1)
    target = torch.as_tensor(norms, dtype=torch.float64, device=device)
    g = g * (target / n).reshape((-1,) + (1,) * (len(shape) - 1))
    return g.to(dtype)


def straddling_norms(batch: int, center: float, flip: bool = False):
    """Per-sample norms alternating well below and well above ``center`` (0.6x / 1.5x and
    0.8x / 1.25x), so wgan-lp's clipped and active branches both run in every batch of two or more.
    ``flip`` swaps the sides (a batch of one needs two calls to see both)."""
    pattern = [0.6, 1.5, 1.25, 0.8] if not flip else [1.5, 0.6, 0.8, 1.25]
    return [center * pattern[i % 4] for i in range(batch)]
