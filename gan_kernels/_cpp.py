"""The C++ back ends ("cpu" and "cuda"): load gan_kernels._C, register fakes, add to the registry.

``gan_kernels._C`` registers the schemas (``TORCH_LIBRARY(gan_kernels, m)``) and the CPU / CUDA
kernels as it loads. The package still imports without it: the registry then reports "cpu" and
"cuda" unavailable, with the reason, and falls back to the reference.
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace
from typing import Optional

import torch

from . import _autograd, _fake, _registry

OP_NAMES = tuple(_fake.FAKES)

try:
    importlib.import_module("gan_kernels._C")  # loading it registers the ops

    LOAD_ERROR: Optional[str] = None
except ImportError as e:  # not built, or built against another torch
    LOAD_ERROR = f"{type(e).__name__}: {e}"


def has_kernel(op: str, dispatch_key: str) -> bool:
    """Whether ``gan_kernels::<op>`` has a kernel for ``dispatch_key`` ("CPU", "CUDA")."""
    if LOAD_ERROR is not None:
        return False
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key(f"gan_kernels::{op}", dispatch_key)
    except RuntimeError:
        return False


_BUILD_HINT = "build it with `pip install --no-build-isolation -e .` (see README, 'Build switches')"


# Which kernels the loaded library has cannot change after it loads: ask the dispatcher once, here,
# so that choosing a back end inside a torch.compile trace is plain Python (no graph break).
_MISSING = {key: [op for op in OP_NAMES if not has_kernel(op, key)] for key in ("CPU", "CUDA")}


def _cpu_reason() -> Optional[str]:
    if LOAD_ERROR is not None:
        return f"gan_kernels._C failed to load ({LOAD_ERROR}); {_BUILD_HINT}"
    missing = _MISSING["CPU"]
    return f"gan_kernels._C has no CPU kernel for {missing}" if missing else None


def _cuda_reason() -> Optional[str]:
    if LOAD_ERROR is not None:
        return f"gan_kernels._C failed to load ({LOAD_ERROR}); {_BUILD_HINT}"
    missing = _MISSING["CUDA"]
    if missing:
        return (
            "gan_kernels._C was built without CUDA kernels (needs nvcc and a CUDA build of torch at "
            "build time; GAN_KERNELS_CUDA=1 makes that an error)"
        )
    if not torch.cuda.is_available():
        return "no CUDA device is available"
    return None


_registry.register_backend("cpu", _cpu_reason, lambda dev: dev == "cpu")
_registry.register_backend("cuda", _cuda_reason, lambda dev: dev == "cuda")

FUNCTIONS = None
if LOAD_ERROR is None:
    for _name, _fn in _fake.FAKES.items():
        torch.library.register_fake(f"gan_kernels::{_name}")(_fn)
    _ops = SimpleNamespace(**{n: getattr(torch.ops.gan_kernels, n) for n in OP_NAMES})
    # One set of Functions serves both devices: the dispatcher picks the CPU or CUDA kernel.
    FUNCTIONS = _autograd.make_functions(_ops, "cpp")
    _autograd.register_kernel_backend("cpu", _ops, FUNCTIONS)
    _autograd.register_kernel_backend("cuda", _ops, FUNCTIONS)
