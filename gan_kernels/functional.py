"""The functional API (DESIGN.md section 3): validate, pick a back end, run it.

Every function checks its arguments first and raises ``TypeError`` (wrong type or dtype) or
``ValueError`` (wrong shape, device, kind, reduction, back end, empty batch) with a message that
names the argument; then :func:`gan_kernels._registry.resolve` picks the implementation.
"""

from __future__ import annotations

import numbers
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor

from . import _kinds, _registry, reference

__all__ = ["d_loss", "g_loss", "interpolate", "grad_penalty", "gradient_penalty", "r1_penalty"]

for _op, _fn in (
    ("d_loss", reference.d_loss),
    ("g_loss", reference.g_loss),
    ("interpolate", reference.interpolate),
    ("grad_penalty", reference.grad_penalty),
):
    _registry.register(_op, "reference", _fn)
_registry.register_backend("reference", lambda: None, lambda dev: True)


# --------------------------------------------------------------------------- validation helpers
def _check_choice(value, accepted: Sequence[str], what: str) -> str:
    if not isinstance(value, str) or value not in accepted:
        raise ValueError(f"unknown {what} {value!r}; expected one of {list(accepted)}")
    return value


def _check_tensor(x, name: str, *, min_dim: int = 1) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (float16, bfloat16, float32, float64), got {x.dtype}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have a batch dimension (shape (B, ...)), got a {x.dim()}-dim tensor")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}): an empty batch has no loss to compute")
    return x


def _check_same_device(**tensors: Optional[Tensor]) -> torch.device:
    items = [(n, t) for n, t in tensors.items() if t is not None]
    dev = items[0][1].device
    for n, t in items[1:]:
        if t.device != dev:
            raise ValueError(f"{items[0][0]} is on {dev} but {n} is on {t.device}; move them to one device")
    return dev


def _promote(*tensors: Tensor):
    if all(t.dtype == tensors[0].dtype for t in tensors[1:]):
        return tensors
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return tuple(t if t.dtype == dtype else t.to(dtype) for t in tensors)


def _check_number(value, name: str) -> float:
    if type(value) is float or type(value) is int:  # the common case, without the ABC check
        return float(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def _check_ls_targets(ls_targets) -> tuple:
    if not isinstance(ls_targets, (tuple, list)) or len(ls_targets) != 2:
        raise ValueError(f"ls_targets must be a pair (fake_target, real_target), got {ls_targets!r}")
    return (_check_number(ls_targets[0], "ls_targets[0]"), _check_number(ls_targets[1], "ls_targets[1]"))


def _check_pair_shapes(op: str, kind: str, reduction: str, r: Tensor, f: Tensor) -> None:
    """Real and fake logits may differ in size unless the kind pairs them or "none" adds them."""
    if r.shape == f.shape:
        return
    if kind in _kinds.PAIRED_KINDS:
        raise ValueError(
            f"{op} kind {kind!r} pairs real and fake logits: shapes must match, got {tuple(r.shape)} and {tuple(f.shape)}"
        )
    if reduction == "none":
        raise ValueError(
            "reduction='none' adds the real and fake terms elementwise: real_logits and fake_logits must have "
            f"the same shape, got {tuple(r.shape)} and {tuple(f.shape)}"
        )


# --------------------------------------------------------------------------- losses
def d_loss(
    real_logits: Tensor,
    fake_logits: Tensor,
    kind: str = "logistic",
    *,
    reduction: str = "mean",
    real_label: float = 1.0,
    drift: float = 0.0,
    ls_targets: Sequence[float] = (0.0, 1.0),
    backend: str = "auto",
) -> Tensor:
    """Discriminator loss from real and fake logits (see DESIGN.md section 4 for each kind)."""
    _check_choice(kind, tuple(_kinds.D_LOSS_KINDS), "d_loss kind")
    _check_choice(reduction, tuple(_kinds.REDUCTIONS), "reduction")
    _registry.check_backend_name(backend)
    r = _check_tensor(real_logits, "real_logits")
    f = _check_tensor(fake_logits, "fake_logits")
    dev = _check_same_device(real_logits=r, fake_logits=f)
    real_label = _check_number(real_label, "real_label")
    drift = _check_number(drift, "drift")
    ls = _check_ls_targets(ls_targets)
    _check_pair_shapes("d_loss", kind, reduction, r, f)
    r, f = _promote(r, f)
    impl = _registry.resolve("d_loss", backend, dev)
    return impl(r, f, kind, reduction, real_label, drift, ls)


def g_loss(
    fake_logits: Tensor,
    kind: str = "logistic",
    *,
    real_logits: Optional[Tensor] = None,
    reduction: str = "mean",
    ls_target: float = 1.0,
    backend: str = "auto",
) -> Tensor:
    """Generator loss from fake logits (the relativistic kinds also need real logits)."""
    _check_choice(kind, tuple(_kinds.G_LOSS_KINDS), "g_loss kind")
    _check_choice(reduction, tuple(_kinds.REDUCTIONS), "reduction")
    _registry.check_backend_name(backend)
    f = _check_tensor(fake_logits, "fake_logits")
    ls_target = _check_number(ls_target, "ls_target")
    needs_real = kind in _kinds.PAIRED_KINDS or kind in _kinds.RELATIVISTIC_KINDS
    r = None
    if needs_real:
        if real_logits is None:
            raise ValueError(f"g_loss kind {kind!r} needs real_logits (it compares fake against real logits)")
        r = _check_tensor(real_logits, "real_logits")
        _check_same_device(fake_logits=f, real_logits=r)
        _check_pair_shapes("g_loss", kind, reduction, r, f)
        f, r = _promote(f, r)
    elif real_logits is not None:
        # Accepted (so a training loop can always pass it) but unused by this kind.
        _check_tensor(real_logits, "real_logits")
    impl = _registry.resolve("g_loss", backend, f.device)
    return impl(f, kind, r, reduction, ls_target)


# --------------------------------------------------------------------------- interpolation
def _alpha_tensor(alpha, batch: int, dtype: torch.dtype, device: torch.device, generator) -> Tensor:
    if alpha is None:
        return torch.rand(batch, generator=generator, device=device, dtype=dtype)
    if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
        return torch.full((batch,), float(alpha), dtype=dtype, device=device)
    if not isinstance(alpha, Tensor):
        raise TypeError(f"alpha must be None, a number or a tensor, got {type(alpha).__name__}")
    if not alpha.is_floating_point():
        raise TypeError(f"alpha must be a floating-point tensor, got {alpha.dtype}")
    if alpha.device != device:
        raise ValueError(f"alpha is on {alpha.device} but real is on {device}")
    if alpha.numel() == 1:
        return alpha.reshape(()).expand(batch).to(dtype)
    if alpha.numel() != batch or (alpha.dim() > 0 and alpha.shape[0] != batch):
        raise ValueError(
            f"alpha must hold one value per sample (shape ({batch},) or ({batch}, 1, ...)), got shape {tuple(alpha.shape)}"
        )
    return alpha.reshape(batch).to(dtype)


def interpolate(
    real: Tensor,
    fake: Tensor,
    alpha: Union[None, float, Tensor] = None,
    *,
    generator: Optional[torch.Generator] = None,
    backend: str = "auto",
) -> Tensor:
    """x_hat_i = alpha_i real_i + (1 - alpha_i) fake_i, one alpha_i ~ U[0, 1) per sample by default."""
    _registry.check_backend_name(backend)
    real = _check_tensor(real, "real")
    fake = _check_tensor(fake, "fake")
    dev = _check_same_device(real=real, fake=fake)
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    real, fake = _promote(real, fake)
    a = _alpha_tensor(alpha, real.shape[0], reference.acc_dtype(real.dtype), dev, generator)
    impl = _registry.resolve("interpolate", backend, dev)
    return impl(real, fake, a)


# --------------------------------------------------------------------------- penalties
def _check_inv_scale(inv_scale, device: torch.device):
    if inv_scale is None:
        return None
    if isinstance(inv_scale, Tensor):
        if inv_scale.numel() != 1:
            raise ValueError(f"inv_scale must be a number or a one-element tensor, got shape {tuple(inv_scale.shape)}")
        if inv_scale.device != device:
            raise ValueError(f"inv_scale is on {inv_scale.device} but grad is on {device}")
        return inv_scale
    return _check_number(inv_scale, "inv_scale")


def grad_penalty(
    grad: Tensor,
    kind: str = "wgan-gp",
    *,
    center: float = 1.0,
    weight: float = 1.0,
    reduction: str = "mean",
    inv_scale: Union[None, float, Tensor] = None,
    backend: str = "auto",
) -> Tensor:
    """weight * reduce_i p(||s grad_i||) over the per-sample gradient norms (DESIGN.md section 4)."""
    _check_choice(kind, tuple(_kinds.PENALTY_KINDS), "grad_penalty kind")
    _check_choice(reduction, tuple(_kinds.REDUCTIONS), "reduction")
    _registry.check_backend_name(backend)
    g = _check_tensor(grad, "grad")
    center = _check_number(center, "center")
    weight = _check_number(weight, "weight")
    inv_scale = _check_inv_scale(inv_scale, g.device)
    impl = _registry.resolve("grad_penalty", backend, g.device)
    return impl(g, kind, center, weight, reduction, inv_scale)


def _scale_tensor(scaler, device: torch.device) -> Tensor:
    # scaler.scale(1) is the current scale as a tensor: no .item(), so no host sync (CUDA graphs).
    return scaler.scale(torch.ones((), dtype=torch.float32, device=device))


def gradient_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Optional[Tensor],
    kind: str = "wgan-gp",
    *,
    weight: float = 10.0,
    center: float = 1.0,
    alpha: Union[None, float, Tensor] = None,
    generator: Optional[torch.Generator] = None,
    scaler=None,
    backend: str = "auto",
) -> Tensor:
    """The whole WGAN-GP / R1 recipe: interpolate, run the critic, differentiate, penalise.

    Gradients reach the critic's parameters through the double backward. With ``kind="r1"`` and
    ``fake=None`` the penalty is taken at the real samples (pass ``weight=gamma/2`` for R1's usual
    convention, or use :func:`r1_penalty`).
    """
    _check_choice(kind, tuple(_kinds.PENALTY_KINDS), "grad_penalty kind")
    _registry.check_backend_name(backend)
    if not callable(critic):
        raise TypeError(f"critic must be callable (an nn.Module or function), got {type(critic).__name__}")
    real = _check_tensor(real, "real")
    if fake is None:
        if kind != "r1":
            raise ValueError(f"gradient_penalty kind {kind!r} needs fake samples to interpolate with (fake=None is for kind='r1')")
        x = real.detach().requires_grad_(True)
    else:
        fake = _check_tensor(fake, "fake")
        x = interpolate(real.detach(), fake.detach(), alpha, generator=generator, backend=backend)
        x.requires_grad_(True)
    out = critic(x)
    if not isinstance(out, Tensor):
        raise TypeError(f"critic must return a tensor, got {type(out).__name__}")
    inv_scale = None
    total = out.sum()
    if scaler is not None:
        total = scaler.scale(total)
        inv_scale = 1.0 / _scale_tensor(scaler, x.device)
    (g,) = torch.autograd.grad(total, x, create_graph=True)
    return grad_penalty(g, kind, center=center, weight=weight, inv_scale=inv_scale, backend=backend)


def r1_penalty(
    real_logits: Tensor,
    real: Tensor,
    *,
    gamma: float = 10.0,
    scaler=None,
    backend: str = "auto",
) -> Tensor:
    """R1 = gamma/2 * mean_i ||d real_logits / d real_i||^2, reusing the caller's critic forward.

    ``real`` must have had ``requires_grad_(True)`` before the critic ran on it.
    """
    _registry.check_backend_name(backend)
    real_logits = _check_tensor(real_logits, "real_logits")
    real = _check_tensor(real, "real")
    if not real.requires_grad or not real_logits.requires_grad:
        raise ValueError(
            "r1_penalty differentiates real_logits with respect to real: call real.requires_grad_(True) "
            "before running the critic on it"
        )
    gamma = _check_number(gamma, "gamma")
    total = real_logits.sum()
    inv_scale = None
    if scaler is not None:
        total = scaler.scale(total)
        inv_scale = 1.0 / _scale_tensor(scaler, real.device)
    (g,) = torch.autograd.grad(total, real, create_graph=True)
    return grad_penalty(g, "r1", weight=gamma / 2, inv_scale=inv_scale, backend=backend)
