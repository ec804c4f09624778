"""The back-end registry: (op name x back end) -> implementation, and the choice between them.

Back ends add themselves at import (``_cpp.py`` registers "cpu" and "cuda", ``triton/`` registers
"triton", ``functional.py`` registers "reference"); the functional API only ever calls
:func:`resolve`. An implementation is a callable taking the op's arguments in the order of the
matching :mod:`gan_kernels.reference` function, its names and numbers already validated and
normalised; it checks its tensors itself (the compiled back ends in C++, the others with
:mod:`gan_kernels._checks`), so a call goes from the functional API to its op in one frame.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import torch

BACKENDS = ("cuda", "triton", "cpu", "reference")
OPS = ("d_loss", "g_loss", "interpolate", "grad_penalty", "d_loss_list", "g_loss_list", "feature_matching")

# backend="auto" on a CUDA tensor: the GPU back ends in order of preference per op, fastest first;
# a missing back end is skipped. cuda leads for every op because it was faster in every case
# measured (NVIDIA H200, forward+backward wall-clock, e.g. the wgan-gp penalty at 64x3x256x256
# 261 vs 925 us, d_loss at B=256 182 vs 604 us; docs/performance.md has the table and its date).
# `python bench/targets.py --device cuda` re-measures and suggests this table.
AUTO_GPU_ORDER: Dict[str, Tuple[str, ...]] = {
    "d_loss": ("cuda", "triton"),
    "g_loss": ("cuda", "triton"),
    "interpolate": ("cuda", "triton"),
    "grad_penalty": ("cuda", "triton"),
    # Lists (multi-discriminator training): no GPU measurement yet; both GPU back ends run each
    # direction as one launch over a table of the list's tensors (the relativistic kind: one loss
    # per discriminator).
    "d_loss_list": ("cuda", "triton"),
    "g_loss_list": ("cuda", "triton"),
    "feature_matching": ("cuda", "triton"),
}


@dataclass
class Backend:
    name: str
    # None when usable, else why not and how to fix it (shown in the fallback warning).
    unavailable_reason: Callable[[], Optional[str]]
    # Whether this back end can run on tensors of a device type ("cpu", "cuda").
    runs_on: Callable[[str], bool]


_BACKENDS: Dict[str, Backend] = {}
_IMPLS: Dict[Tuple[str, str], Callable] = {}
_default_backend: Optional[str] = None
_warned: set = set()
# resolve() results: availability does not change within a process, and asking the dispatcher
# for every op's kernels costs more than a small loss kernel itself. The key holds the raw
# values of the two environment switches, so changing them at run time still takes effect.
_resolved: Dict[tuple, Callable] = {}
# os.environ's own mapping (bytes on POSIX): a lookup there is ~25 ns, os.environ.get ~700 ns,
# because the latter encodes the key on every call.
_ENV_DATA = getattr(os.environ, "_data", None)
_ENV_KEYS = {name: os.environ.encodekey(name) for name in ("GAN_KERNELS_BACKEND", "GAN_KERNELS_STRICT")} \
    if _ENV_DATA is not None and hasattr(os.environ, "encodekey") else None


def _env_raw(name: str):
    if _ENV_KEYS is not None:
        return _ENV_DATA.get(_ENV_KEYS[name])
    return os.environ.get(name)


def register_backend(name: str, unavailable_reason: Callable[[], Optional[str]], runs_on: Callable[[str], bool]) -> None:
    if name not in BACKENDS:
        raise ValueError(f"unknown back end {name!r}; expected one of {list(BACKENDS)}")
    _BACKENDS[name] = Backend(name, unavailable_reason, runs_on)
    _resolved.clear()


def register(op: str, backend: str, impl: Callable) -> None:
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; expected one of {list(OPS)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown back end {backend!r}; expected one of {list(BACKENDS)}")
    _IMPLS[(op, backend)] = impl
    _resolved.clear()


def _reason(name: str) -> Optional[str]:
    # Every back end registers itself at import, with its own reason when it cannot run
    # (_cpp.py: _C missing; gan_kernels/__init__.py: triton missing).
    b = _BACKENDS.get(name)
    return "it is not registered" if b is None else b.unavailable_reason()


def available_backends() -> list:
    """Back ends that can run here now, in preference order (a subset of BACKENDS)."""
    return [name for name in BACKENDS if name in _BACKENDS and _BACKENDS[name].unavailable_reason() is None]


def check_backend_name(name: str, allow_auto: bool = True) -> str:
    accepted = (("auto",) if allow_auto else ()) + BACKENDS
    if name not in accepted:
        raise ValueError(f"unknown backend {name!r}; expected one of {list(accepted)}")
    return name


def set_backend(name: Optional[str]) -> None:
    """Set the process-wide default used by ``backend="auto"`` (None or "auto" restores auto)."""
    global _default_backend
    _resolved.clear()
    if name is None:
        _default_backend = None
        return
    check_backend_name(name)
    _default_backend = None if name == "auto" else name
    _resolved.clear()


def get_backend() -> str:
    """The process-wide default: set_backend(), else $GAN_KERNELS_BACKEND, else "auto"."""
    if _default_backend is not None:
        return _default_backend
    env = os.environ.get("GAN_KERNELS_BACKEND", "").strip()
    if env:
        try:
            return check_backend_name(env)
        except ValueError as e:
            raise ValueError(f"GAN_KERNELS_BACKEND: {e}") from None
    return "auto"


def _strict() -> bool:
    return os.environ.get("GAN_KERNELS_STRICT", "0").strip() not in ("", "0", "false", "False")


def _fallback(op: str, name: str, reason: str) -> Callable:
    # Resolved once per (op, back end, device, switches): the warning shows once per process.
    msg = (
        f"gan_kernels: back end {name!r} is not available for {op} ({reason}); "
        "using the pure-PyTorch reference instead. Set GAN_KERNELS_STRICT=1 to make this an error."
    )
    if _strict():
        raise RuntimeError(msg.replace("using the pure-PyTorch reference instead. ", "").replace(
            "Set GAN_KERNELS_STRICT=1 to make this an error.", "GAN_KERNELS_STRICT=1 is set."))
    if name not in _warned:
        _warned.add(name)
        warnings.warn(msg, RuntimeWarning, stacklevel=5)  # the user's call site
    return _IMPLS[(op, "reference")]


def device_type(x: torch.Tensor) -> str:
    """``x.device.type`` without building a torch.device (the common cases first)."""
    return "cuda" if x.is_cuda else "cpu" if x.is_cpu else x.device.type


def resolve(op: str, backend: str, dev: str) -> Callable:
    """The implementation of ``op`` to run on tensors of device type ``dev`` for a requested back end."""
    key = (op, backend, dev, _default_backend, _env_raw("GAN_KERNELS_BACKEND"), _env_raw("GAN_KERNELS_STRICT"))
    impl = _resolved.get(key)
    if impl is None:
        impl = _resolve(op, get_backend() if backend == "auto" else backend, dev)
        _resolved[key] = impl
    return impl


def _resolve(op: str, backend: str, dev: str) -> Callable:
    check_backend_name(backend)
    if backend == "auto":
        if dev == "cuda":
            candidates = AUTO_GPU_ORDER[op]
        elif dev == "cpu":
            candidates = ("cpu",)
        else:
            return _IMPLS[(op, "reference")]
        for name in candidates:
            if (op, name) in _IMPLS and _reason(name) is None and _BACKENDS[name].runs_on(dev):
                return _IMPLS[(op, name)]
        name = candidates[0]
        return _fallback(op, name, _reason(name) or f"it has no {op} kernel")
    if backend == "reference":
        return _IMPLS[(op, "reference")]
    b = _BACKENDS.get(backend)
    if b is not None and not b.runs_on(dev):
        hint = {
            "cuda": "it needs CUDA tensors",
            "cpu": "it needs CPU tensors",
            "triton": "it needs CUDA tensors (or TRITON_INTERPRET=1 for CPU tensors)",
        }[backend]
        raise ValueError(f"backend={backend!r} cannot run on {dev} tensors: {hint}")
    reason = _reason(backend)
    if reason is None and (op, backend) not in _IMPLS:
        reason = f"it has no {op} kernel"
    if reason is not None:
        return _fallback(op, backend, reason)
    return _IMPLS[(op, backend)]


def reset_warnings() -> None:
    """Forget which fallback warnings were shown (for tests)."""
    _warned.clear()
    _resolved.clear()
