"""gan_kernels: fused kernels for GAN losses, interpolation and gradient penalties.

    import gan_kernels as gk
    loss_d = gk.d_loss(real_logits, fake_logits, "hinge") + gk.gradient_penalty(critic, real, fake)

Back ends: "cuda" and "cpu" (the compiled gan_kernels._C), "triton", and "reference" (pure
PyTorch, always there). See the README for how each is chosen and built.
"""

from __future__ import annotations

from . import _cpp  # noqa: F401  (registers the "cpu" and "cuda" back ends)
from . import _registry
from .functional import (  # noqa: F401
    d_loss, feature_matching_loss, g_loss, gradient_penalty, grad_penalty, interpolate, r1_penalty,
)

try:
    from . import triton as _triton  # noqa: F401  (registers the "triton" back end)
except ImportError as _e:  # triton, or a module its kernels need, missing; or triton too old
    # Name what is actually missing: a fresh environment can have triton (torch's CUDA builds bring
    # it) and still lack numpy, and "install triton" would then send the user the wrong way.
    _missing = _e.name if isinstance(_e, ModuleNotFoundError) and _e.name else None
    _fix = f"pip install {_missing.split('.')[0]}" if _missing else "pip install -U 'triton>=3.6'"
    _TRITON_ERROR = f"the Triton back end cannot be imported ({type(_e).__name__}: {_e}); fix: `{_fix}`"
    del _missing, _fix
    _registry.register_backend("triton", lambda: _TRITON_ERROR, lambda dev: dev == "cuda")

from . import models, nn, training  # noqa: E402,F401
from ._registry import available_backends, get_backend, set_backend  # noqa: E402,F401
from .training import LazyRegularizer, lazy_adam_hparams  # noqa: E402,F401

__version__ = "0.1.0"
__all__ = [
    "d_loss", "g_loss", "feature_matching_loss", "interpolate", "grad_penalty", "gradient_penalty", "r1_penalty",
    "available_backends", "set_backend", "get_backend", "nn", "models", "training",
    "LazyRegularizer", "lazy_adam_hparams",
]
