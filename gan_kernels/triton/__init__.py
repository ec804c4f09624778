"""The Triton back end: the seven custom ops of docs/kernel_contract.md as Triton kernels.

Each op is a ``torch.library.custom_op`` in the ``gan_kernels_triton`` namespace with the C++
op's schema and an explicit fake kernel (``gan_kernels._fake``), so opcheck and
``torch.compile(fullgraph=True)`` see through it; the autograd Functions are the shared ones
of ``gan_kernels._autograd``. (``triton_op`` + ``wrap_triton`` would let Inductor fuse around
the kernels on GPU, but fails under ``TRITON_INTERPRET=1``, where CI runs these kernels.)

Files, one per op family: ``losses.py`` (d_loss, g_loss, their backward), ``interpolate.py``,
``grad_penalty.py``; ``_utils.py`` holds the shared math and launch configurations.

Importing this package raises ImportError when triton is missing, which ``gan_kernels``
catches to report the back end as unavailable.
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Optional

import triton  # noqa: F401  (ImportError here means: no triton back end)
import triton.language  # noqa: F401

import torch

from .. import _autograd, _fake, _registry

try:
    from . import grad_penalty, interpolate, losses  # noqa: F401  (registers the custom ops)
except (AttributeError, TypeError) as e:  # a triton too old for these kernels' language features
    raise ImportError(f"the installed triton {getattr(triton, '__version__', '?')} lacks what the kernels use: {e}") from e

OP_NAMES = tuple(_fake.FAKES)


def _interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _unavailable_reason() -> Optional[str]:
    if torch.cuda.is_available() or _interpret():
        return None
    return "no CUDA device is available (set TRITON_INTERPRET=1 before importing gan_kernels to run the Triton kernels on CPU tensors, slowly)"


def _runs_on(device_type: str) -> bool:
    if device_type == "cuda":
        return True
    return device_type == "cpu" and _interpret()


OPS = SimpleNamespace(**{name: getattr(torch.ops.gan_kernels_triton, name) for name in OP_NAMES})

_registry.register_backend("triton", _unavailable_reason, _runs_on)
FUNCTIONS = _autograd.register_kernel_backend("triton", OPS)
