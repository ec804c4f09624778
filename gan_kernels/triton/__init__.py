"""The Triton back end: the device ops of docs/kernel_contract.md as Triton kernels.

Each op is a ``torch.library.custom_op`` in the ``gan_kernels_triton`` namespace with the C++
op's schema and an explicit fake kernel (``gan_kernels._fake``), so opcheck and
``torch.compile(fullgraph=True)`` see through it; the autograd Functions are the shared ones
of ``gan_kernels._autograd``, the list ops' included. (``triton_op`` + ``wrap_triton`` would let
Inductor fuse around the kernels on GPU, but fails under ``TRITON_INTERPRET=1``, where CI runs
these kernels.)

A plain eager call runs the op's Python implementation directly (:func:`_direct`): small ops on a
GPU are host-bound, and the Python custom-op dispatch cost ~10 us per op call, ~40 us per loss
forward+backward, about as much as Triton's own launch path (``bench/triton_host_overhead.py``).

Files, one per op family: ``losses.py`` (d_loss, g_loss, their backward), ``interpolate.py``,
``grad_penalty.py``, ``lists.py`` (losses over lists of logits, feature matching); ``_utils.py``
holds the shared math and launch configurations.

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
from ._utils import IMPLS

try:
    from . import grad_penalty, interpolate, lists, losses  # noqa: F401  (registers the custom ops)
except (AttributeError, TypeError) as e:  # a triton too old for these kernels' language features
    raise ImportError(f"the installed triton {getattr(triton, '__version__', '?')} lacks what the kernels use: {e}") from e

OP_NAMES = tuple(_fake.FAKES) + tuple(_fake.LIST_FAKES)


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


def _plain_eager(args) -> bool:
    """Whether a call may skip the dispatcher: eager mode, plain tensors, nobody watching.

    Anything that has to see the op itself takes the registered op instead: torch.compile /
    export tracing, a dispatch or function mode (fake tensors, make_fx, ``with torch.device``),
    functorch transforms, the profiler (which then shows the op's name), tensor subclasses.
    The two paths run the same implementation, so they give the same bits.
    """
    if (torch.compiler.is_compiling() or torch._C._len_torch_dispatch_stack()
            or torch._C._is_torch_function_mode_enabled() or torch._C._are_functorch_transforms_active()
            or torch._C._autograd._profiler_enabled()):
        return False
    for a in args:
        if type(a) is list:  # the list ops' Tensor[] arguments
            if any(type(t) is not torch.Tensor for t in a if isinstance(t, torch.Tensor)):
                return False
        elif isinstance(a, torch.Tensor) and type(a) is not torch.Tensor:
            return False
    return True


# The registered custom ops themselves (what torch.compile and opcheck see).
REGISTERED_OPS = SimpleNamespace(**{name: getattr(torch.ops.gan_kernels_triton, name) for name in OP_NAMES})


def _direct(name: str):
    """The callable the autograd Functions use for op ``name``: see _plain_eager."""
    op, impl = getattr(REGISTERED_OPS, name), IMPLS[name]

    def call(*args):
        return impl(*args) if _plain_eager(args) else op(*args)

    call.__name__ = call.__qualname__ = name
    return call


OPS = SimpleNamespace(**{name: _direct(name) for name in OP_NAMES})

_registry.register_backend("triton", _unavailable_reason, _runs_on)
FUNCTIONS = _autograd.register_kernel_backend("triton", OPS)
LIST_FUNCTIONS = _autograd.register_list_backend("triton", OPS)
