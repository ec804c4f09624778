"""The compiled back ends ("cpu" and "cuda"): load gan_kernels._C, register fakes, add to the registry.

``gan_kernels._C`` registers the schemas (``TORCH_LIBRARY(gan_kernels, m)``), the CPU / CUDA
kernels of the device ops and the C++ autograd kernels of the public ops as it loads. A call of
``gk.d_loss`` on this back end is one call of ``torch.ops.gan_kernels.loss``: argument checks,
the kernels and the graph node are C++ from there on, in both directions. The package still
imports without ``_C``: the registry then reports "cpu" and "cuda" unavailable, with the reason,
and falls back to the reference.
"""

from __future__ import annotations

import importlib
from typing import Optional

import torch

from . import _fake, _kinds, _registry

DEVICE_OPS = tuple(_fake.FAKES)
PUBLIC_OPS = tuple(_fake.PUBLIC_FAKES)
# The ops over lists of tensors (multi-discriminator training): registered per device only where
# the library has their kernels, so a build without them still serves the single-tensor ops.
LIST_DEVICE_OPS = tuple(_fake.LIST_FAKES)
LIST_PUBLIC_OPS = tuple(_fake.LIST_PUBLIC_FAKES)
OP_NAMES = DEVICE_OPS + PUBLIC_OPS + LIST_DEVICE_OPS + LIST_PUBLIC_OPS

try:
    importlib.import_module("gan_kernels._C")  # loading it registers the ops

    LOAD_ERROR: Optional[str] = None
except ImportError as e:  # not built, or built against another torch
    LOAD_ERROR = f"{type(e).__name__}: {e}"


def has_kernel(op: str, dispatch_key: str) -> bool:
    """Whether ``gan_kernels::<op>`` has a kernel for ``dispatch_key`` ("CPU", "CUDA", "Autograd")."""
    if LOAD_ERROR is not None:
        return False
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key(f"gan_kernels::{op}", dispatch_key)
    except RuntimeError:
        return False


_BUILD_HINT = "build it with `pip install --no-build-isolation -e .` (see README, 'Build switches')"


# Which kernels the loaded library has cannot change after it loads: ask the dispatcher once, here,
# so that choosing a back end inside a torch.compile trace is plain Python (no graph break).
_MISSING = {key: [op for op in DEVICE_OPS if not has_kernel(op, key)] for key in ("CPU", "CUDA")}


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


def _register_native() -> None:
    for name, fn in _fake.FAKES.items():
        torch.library.register_fake(f"gan_kernels::{name}")(fn)
    loss_op = torch.ops.gan_kernels.loss.default
    interpolate_op = torch.ops.gan_kernels.interpolate.default
    penalty_op = torch.ops.gan_kernels.grad_penalty.default
    reductions, penalty_kinds = _kinds.REDUCTIONS, _kinds.PENALTY_KINDS
    d_args, g_args = _kinds.d_loss_args, _kinds.g_loss_args

    # The registry's signatures (see gan_kernels.reference); the op checks the tensors.
    def d_loss(real, fake, kind, reduction, real_label, drift, ls_targets, weight):
        return loss_op(real, fake, *d_args(kind, real_label, drift, ls_targets[0], ls_targets[1], weight),
                       reductions[reduction])

    def g_loss(fake, kind, real, reduction, ls_target, weight):
        return loss_op(real, fake, *g_args(kind, ls_target, weight), reductions[reduction])

    def grad_penalty(grad, kind, center, weight, reduction, inv_scale):
        if inv_scale is None or type(inv_scale) is float:
            value, tensor = (1.0 if inv_scale is None else inv_scale), None
        else:
            value, tensor = 1.0, inv_scale
        return penalty_op(grad, penalty_kinds[kind], center, weight, reductions[reduction], value, tensor)

    for backend in ("cpu", "cuda"):
        _registry.register("d_loss", backend, d_loss)
        _registry.register("g_loss", backend, g_loss)
        _registry.register("interpolate", backend, interpolate_op)
        _registry.register("grad_penalty", backend, grad_penalty)
    _register_lists()


def _register_lists() -> None:
    for name, fn in _fake.LIST_FAKES.items():
        if has_kernel(name, "CPU") or has_kernel(name, "CUDA"):
            torch.library.register_fake(f"gan_kernels::{name}")(fn)
    loss_list_op = torch.ops.gan_kernels.loss_list.default
    fm_op = torch.ops.gan_kernels.feature_matching.default
    reductions = _kinds.REDUCTIONS
    d_args, g_args = _kinds.d_loss_args, _kinds.g_loss_args

    # The registry's list signatures (gan_kernels._multi): the lists are checked for type and
    # length already; the op checks every tensor, naming its index.
    def d_loss_list(reals, fakes, kind, reduction, real_label, drift, ls_targets, weight, return_terms):
        total, terms = loss_list_op(reals, fakes,
                                    *d_args(kind, real_label, drift, ls_targets[0], ls_targets[1], weight),
                                    reductions[reduction])
        return (total, terms) if return_terms else total

    def g_loss_list(fakes, kind, reals, reduction, ls_target, weight, return_terms):
        total, terms = loss_list_op(reals if reals is not None else [], fakes, *g_args(kind, ls_target, weight),
                                    reductions[reduction])
        return (total, terms) if return_terms else total

    def feature_matching(reals, fakes, weights, reduction):
        return fm_op(reals, fakes, weights, reductions[reduction])

    for backend, key in (("cpu", "CPU"), ("cuda", "CUDA")):
        if all(has_kernel(op, key) for op in ("loss_list_forward", "loss_list_backward")):
            _registry.register("d_loss_list", backend, d_loss_list)
            _registry.register("g_loss_list", backend, g_loss_list)
        if all(has_kernel(op, key) for op in ("feature_matching_forward", "feature_matching_backward")):
            _registry.register("feature_matching", backend, feature_matching)


if LOAD_ERROR is None:
    _register_native()
