"""Helpers shared by the tests: which back ends run here, per-dtype tolerances, input makers."""

from __future__ import annotations

import os

import pytest
import torch

import gan_kernels as gk
from gan_kernels import _registry

HALF = (torch.float16, torch.bfloat16)


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
        pytest.skip(f"back end {backend!r} not available on {device}: {reason}")


def dtypes_for(backend: str, device: str):
    if backend == "triton" and device == "cpu":
        return (torch.float32, torch.float64, torch.float16)  # the interpreter has no bfloat16
    return (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def tol(dtype: torch.dtype):
    """(rtol, atol) for comparing a kernel with the reference at this input dtype."""
    return {
        torch.float64: (1e-10, 1e-12),
        torch.float32: (2e-5, 2e-6),
        torch.float16: (2e-3, 2e-4),
        torch.bfloat16: (1.6e-2, 2e-3),
    }[dtype]


def assert_close(actual, expected, dtype, what=""):
    rtol, atol = tol(dtype)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")
