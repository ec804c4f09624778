"""The functional API: check names and numbers, pick a back end, run its op.

Every function raises ``TypeError`` (wrong type or dtype) or ``ValueError`` (wrong shape, device,
kind, reduction, back end, empty batch) with a message that names the argument. The names and
numbers are checked here; the tensors are checked by the op that runs -- in C++ for the
compiled back ends, by :mod:`gan_kernels._checks` for the others, with the same messages -- so
the common call costs a few dictionary lookups before its op. Formulas: docs/contract.md.
"""

from __future__ import annotations

import numbers
import warnings
import weakref
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor

from . import _checks, _kinds, _multi, _registry, reference

__all__ = [
    "d_loss", "g_loss", "feature_matching_loss", "interpolate", "grad_penalty", "gradient_penalty", "r1_penalty",
]

_D_KINDS = frozenset(_kinds.D_LOSS_KINDS)
_G_KINDS = frozenset(_kinds.G_LOSS_KINDS)
_PENALTY_KINDS = frozenset(_kinds.PENALTY_KINDS)
_REDUCTIONS = frozenset(_kinds.REDUCTIONS)
_BACKEND_NAMES = frozenset(("auto",) + _registry.BACKENDS)
_PAIRED = frozenset(_kinds.PAIRED_KINDS)
_NEEDS_REAL = frozenset(_kinds.PAIRED_KINDS | _kinds.RELATIVISTIC_KINDS)
_DEFAULT_LS = (0.0, 1.0)
_SEQUENCES = (list, tuple)  # per-discriminator lists of logits
_device_type = _registry.device_type
_resolve = _registry.resolve


# --------------------------------------------------------------------------- the reference back end
def _reference_d_loss(real, fake, kind, reduction, real_label, drift, ls_targets, weight):
    real, fake = _checks.logits(real, fake)
    return reference.d_loss(real, fake, kind, reduction, real_label, drift, ls_targets, weight)


def _reference_g_loss(fake, kind, real, reduction, ls_target, weight):
    real, fake = _checks.logits(real, fake)
    return reference.g_loss(fake, kind, real, reduction, ls_target, weight)


def _reference_interpolate(real, fake, alpha):
    real, fake = _checks.samples(real, fake)
    return reference.interpolate(real, fake, alpha)


def _reference_grad_penalty(grad, kind, center, weight, reduction, inv_scale):
    _checks.batch(grad, "grad")
    return reference.grad_penalty(grad, kind, center, weight, reduction, _checks.inv_scale(inv_scale, grad.device))


for _op, _fn in (
    ("d_loss", _reference_d_loss),
    ("g_loss", _reference_g_loss),
    ("interpolate", _reference_interpolate),
    ("grad_penalty", _reference_grad_penalty),
):
    _registry.register(_op, "reference", _fn)
_registry.register_backend("reference", lambda: None, lambda dev: True)


# --------------------------------------------------------------------------- argument helpers
def _check_backend(backend) -> None:
    if backend != "auto" and (type(backend) is not str or backend not in _BACKEND_NAMES):
        _registry.check_backend_name(backend)  # raises, naming the accepted values


def _device_of(x, name: str) -> str:
    if isinstance(x, Tensor):
        return _device_type(x)
    _checks.not_a_tensor(x, name)


def _pair_shapes(op: str, kind: str, reduction: str, r: Tensor, f: Tensor) -> None:
    """Real and fake logits may differ in size unless the kind pairs them or "none" adds them."""
    if r.shape == f.shape:
        return
    if kind in _kinds.PAIRED_KINDS:
        raise ValueError(
            f"{op} kind {kind!r} pairs real and fake logits: shapes must match, got {tuple(r.shape)} and {tuple(f.shape)}"
        )
    if reduction == "none" and (op == "d_loss" or kind in _NEEDS_REAL):
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
    ls_targets: Sequence[float] = _DEFAULT_LS,
    weight: float = 1.0,
    backend: str = "auto",
    return_terms: bool = False,
):
    """Discriminator loss from real and fake logits (each kind's formula: docs/contract.md).

    ``weight`` multiplies the loss (and its gradients) inside the kernel: ``d_loss(..., weight=w)``
    equals ``w * d_loss(...)`` without the extra graph node a separate multiplication costs.
    Lists (or tuples) of logits, one tensor per discriminator, give the sum over discriminators of
    the per-tensor loss; with ``return_terms=True`` the result is ``(total, terms)``, ``terms`` the
    detached per-discriminator losses of shape (D,).
    """
    # The common call costs a handful of type tests and dictionary lookups: everything the op
    # itself checks (dtypes, shapes, devices) is left to it.
    if return_terms or type(real_logits) in _SEQUENCES or type(fake_logits) in _SEQUENCES:
        return _d_loss_list(real_logits, fake_logits, kind, reduction, real_label, drift, ls_targets, weight,
                            backend, return_terms)
    if type(kind) is not str or kind not in _D_KINDS:
        _checks.bad_choice(kind, _kinds.D_LOSS_KINDS, "d_loss kind")
    if type(reduction) is not str or reduction not in _REDUCTIONS:
        _checks.bad_choice(reduction, tuple(_kinds.REDUCTIONS), "reduction")
    if backend != "auto" and (type(backend) is not str or backend not in _BACKEND_NAMES):
        _registry.check_backend_name(backend)
    if not isinstance(real_logits, Tensor):
        _checks.not_a_tensor(real_logits, "real_logits")
    if not isinstance(fake_logits, Tensor):
        _checks.not_a_tensor(fake_logits, "fake_logits")
    if type(real_label) is not float:
        real_label = _checks.number(real_label, "real_label")
    if type(drift) is not float:
        drift = _checks.number(drift, "drift")
    ls = ls_targets if ls_targets is _DEFAULT_LS else _checks.ls_targets(ls_targets)
    if type(weight) is not float:
        weight = _checks.number(weight, "weight")
    if reduction == "none" or kind in _PAIRED:
        _pair_shapes("d_loss", kind, reduction, real_logits, fake_logits)
    try:
        impl = _resolve("d_loss", backend, _device_type(real_logits))
    except ValueError:  # e.g. a back end that cannot run on real's device: mixed devices first
        _checks.same_device(real_logits, "real_logits", fake_logits, "fake_logits")
        raise
    return impl(real_logits, fake_logits, kind, reduction, real_label, drift, ls, weight)


def g_loss(
    fake_logits: Tensor,
    kind: str = "logistic",
    *,
    real_logits: Optional[Tensor] = None,
    reduction: str = "mean",
    ls_target: float = 1.0,
    weight: float = 1.0,
    backend: str = "auto",
    return_terms: bool = False,
):
    """Generator loss from fake logits (the relativistic kinds also need real logits).

    ``weight`` multiplies the loss inside the kernel, as for :func:`d_loss`. Lists of logits, one
    per discriminator, give the sum of the per-tensor losses (see :func:`d_loss`, also for
    ``return_terms``).
    """
    if return_terms or type(fake_logits) in _SEQUENCES or type(real_logits) in _SEQUENCES:
        return _g_loss_list(fake_logits, kind, real_logits, reduction, ls_target, weight, backend, return_terms)
    if type(kind) is not str or kind not in _G_KINDS:
        _checks.bad_choice(kind, _kinds.G_LOSS_KINDS, "g_loss kind")
    if type(reduction) is not str or reduction not in _REDUCTIONS:
        _checks.bad_choice(reduction, tuple(_kinds.REDUCTIONS), "reduction")
    _check_backend(backend)
    dev = _device_of(fake_logits, "fake_logits")
    ls_target = _checks.number(ls_target, "ls_target")
    if type(weight) is not float:
        weight = _checks.number(weight, "weight")
    r = None
    if kind in _NEEDS_REAL:
        if real_logits is None:
            raise ValueError(f"g_loss kind {kind!r} needs real_logits (it compares fake against real logits)")
        if _device_of(real_logits, "real_logits") != dev:
            _checks.same_device(real_logits, "real_logits", fake_logits, "fake_logits")
        _pair_shapes("g_loss", kind, reduction, real_logits, fake_logits)
        r = real_logits
    elif real_logits is not None:
        # Accepted (so a training loop can always pass it) but unused by this kind.
        _checks.batch(real_logits, "real_logits")
        _checks.same_device(real_logits, "real_logits", fake_logits, "fake_logits")
    return _resolve("g_loss", backend, dev)(fake_logits, kind, r, reduction, ls_target, weight)


# --------------------------------------------------------------------------- lists (several discriminators)
def _logits_lists(real, fake, need_real: bool):
    """(reals or None, fakes) of a list call; a lone tensor on both sides is a list of one."""
    both_tensors = isinstance(fake, Tensor) and (real is None or isinstance(real, Tensor))
    if both_tensors:
        return ([real] if real is not None else None), [fake]
    if real is not None and _multi.is_list(real) != _multi.is_list(fake):
        bad, other = ("real_logits", "fake_logits") if _multi.is_list(real) else ("fake_logits", "real_logits")
        raise TypeError(
            f"{bad} must be a torch.Tensor like {other}, or both must be lists of tensors (one per "
            f"discriminator); got {type(real).__name__} and {type(fake).__name__}"
        )
    fakes = _multi.tensor_list(fake, "fake_logits")
    if real is None:
        return None, fakes
    reals = _multi.tensor_list(real, "real_logits")
    _multi.same_count(reals, fakes, "logits")
    return reals, fakes


def _list_reduction(reduction) -> None:
    if type(reduction) is not str or reduction not in _REDUCTIONS:
        _checks.bad_choice(reduction, tuple(_kinds.REDUCTIONS), "reduction")
    if reduction == "none":
        raise ValueError(
            "reduction='none' is not defined for lists of logits (their shapes differ between discriminators); "
            "use 'mean' or 'sum', and return_terms=True for the per-discriminator losses"
        )


def _d_loss_list(real, fake, kind, reduction, real_label, drift, ls_targets, weight, backend, return_terms):
    if type(kind) is not str or kind not in _D_KINDS:
        _checks.bad_choice(kind, _kinds.D_LOSS_KINDS, "d_loss kind")
    _list_reduction(reduction)
    _check_backend(backend)
    if real is None:
        raise ValueError("d_loss needs real_logits")
    reals, fakes = _logits_lists(real, fake, True)
    real_label = _checks.number(real_label, "real_label")
    drift = _checks.number(drift, "drift")
    ls = ls_targets if ls_targets is _DEFAULT_LS else _checks.ls_targets(ls_targets)
    weight = _checks.number(weight, "weight")
    impl = _resolve("d_loss_list", backend, _device_type(fakes[0]))
    return impl(reals, fakes, kind, reduction, real_label, drift, ls, weight, bool(return_terms))


def _g_loss_list(fake, kind, real, reduction, ls_target, weight, backend, return_terms):
    if type(kind) is not str or kind not in _G_KINDS:
        _checks.bad_choice(kind, _kinds.G_LOSS_KINDS, "g_loss kind")
    _list_reduction(reduction)
    _check_backend(backend)
    ls_target = _checks.number(ls_target, "ls_target")
    weight = _checks.number(weight, "weight")
    if kind in _NEEDS_REAL and real is None:
        raise ValueError(f"g_loss kind {kind!r} needs real_logits (it compares fake against real logits)")
    reals, fakes = _logits_lists(real, fake, kind in _NEEDS_REAL)
    if kind not in _NEEDS_REAL:
        # Accepted (so a training loop can always pass it) but unused by this kind.
        for i, r in enumerate(reals or ()):
            _checks.batch(r, f"real_logits[{i}]")
        reals = None
    impl = _resolve("g_loss_list", backend, _device_type(fakes[0]))
    return impl(fakes, kind, reals, reduction, ls_target, weight, bool(return_terms))


def feature_matching_loss(
    real_feats,
    fake_feats,
    *,
    weight: Union[float, Sequence[float]] = 1.0,
    reduction: str = "mean",
    backend: str = "auto",
) -> Tensor:
    """Feature matching: sum over pairs k of w_k * mean|real_k - fake_k| (L1), in one fused call.

    ``real_feats`` / ``fake_feats``: lists of feature maps, or lists of lists (one list per
    discriminator, flattened in order); pair k is (real_feats[k], fake_feats[k]), both of one shape.
    ``weight``: one number for every pair, or one weight per pair. Gradients flow to whichever side
    requires grad (detach the real features to train the generator only, as pix2pixHD does).
    ``reduction="sum"`` sums |real_k - fake_k| instead of averaging it; ``"none"`` returns the (K,)
    weighted per-pair terms. The result is float32 (float64 when any pair is float64).
    """
    if type(reduction) is not str or reduction not in _REDUCTIONS:
        _checks.bad_choice(reduction, tuple(_kinds.REDUCTIONS), "reduction")
    _check_backend(backend)
    reals = _multi.tensor_list(real_feats, "real_feats", nested=True)
    fakes = _multi.tensor_list(fake_feats, "fake_feats", nested=True)
    if len(reals) != len(fakes):
        raise ValueError(
            f"feature_matching_loss: real_feats has {len(reals)} feature maps but fake_feats has {len(fakes)} "
            "(after flattening): give the features of the same layers on both sides"
        )
    weights = _multi.weights_of(weight, len(reals))
    return _resolve("feature_matching", backend, _device_type(reals[0]))(reals, fakes, weights, reduction)


# --------------------------------------------------------------------------- interpolation
def _alpha_tensor(alpha, real: Tensor, dtype: torch.dtype, generator) -> Tensor:
    """alpha as a (B,) tensor of the accumulation dtype on real's device."""
    batch = real.shape[0]
    if alpha is None:
        return torch.rand(batch, generator=generator, device=real.device, dtype=dtype)
    if isinstance(alpha, Tensor):
        if (alpha.dtype == dtype and alpha.dim() == 1 and alpha.shape[0] == batch
                and alpha.get_device() == real.get_device() and alpha.is_cpu == real.is_cpu):
            return alpha  # already one value per sample on real's device (the op checks it again)
        if not alpha.is_floating_point():
            raise TypeError(f"alpha must be a floating-point tensor, got {alpha.dtype}")
        if alpha.device != real.device:
            raise ValueError(f"alpha is on {alpha.device} but real is on {real.device}")
        if alpha.numel() == 1:
            return alpha.reshape(()).expand(batch).to(dtype)
        if alpha.numel() != batch or (alpha.dim() > 0 and alpha.shape[0] != batch):
            raise ValueError(
                f"alpha must hold one value per sample (shape ({batch},) or ({batch}, 1, ...)), got shape {tuple(alpha.shape)}"
            )
        return alpha.reshape(batch).to(dtype)
    if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
        return torch.full((batch,), float(alpha), dtype=dtype, device=real.device)
    raise TypeError(f"alpha must be None, a number or a tensor, got {type(alpha).__name__}")


def interpolate(
    real: Tensor,
    fake: Tensor,
    alpha: Union[None, float, Tensor] = None,
    *,
    generator: Optional[torch.Generator] = None,
    backend: str = "auto",
) -> Tensor:
    """x_hat_i = alpha_i real_i + (1 - alpha_i) fake_i, one alpha_i ~ U[0, 1) per sample by default."""
    _check_backend(backend)
    dev = _device_of(real, "real")
    if _device_of(fake, "fake") != dev:
        _checks.same_device(real, "real", fake, "fake")
    if real.dim() == 0 or real.numel() == 0 or not real.is_floating_point():
        _checks.batch(real, "real")  # raises, before alpha is drawn for a batch that is not one
    acc = torch.float64 if real.dtype == torch.float64 else torch.float32
    a = _alpha_tensor(alpha, real, acc, generator)
    return _resolve("interpolate", backend, dev)(real, fake, a)


# --------------------------------------------------------------------------- penalties
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
    """weight * reduce_i p(||s grad_i||) over the per-sample gradient norms (docs/contract.md)."""
    if type(kind) is not str or kind not in _PENALTY_KINDS:
        _checks.bad_choice(kind, tuple(_kinds.PENALTY_KINDS), "grad_penalty kind")
    if type(reduction) is not str or reduction not in _REDUCTIONS:
        _checks.bad_choice(reduction, tuple(_kinds.REDUCTIONS), "reduction")
    _check_backend(backend)
    dev = _device_of(grad, "grad")
    center = _checks.number(center, "center")
    weight = _checks.number(weight, "weight")
    if inv_scale is not None and not isinstance(inv_scale, Tensor):
        inv_scale = _checks.number(inv_scale, "inv_scale")
    return _resolve("grad_penalty", backend, dev)(grad, kind, center, weight, reduction, inv_scale)


def _scale_tensor(scaler, device: torch.device) -> Tensor:
    # scaler.scale(1) is the current scale as a tensor: no .item(), so no host sync (CUDA graphs).
    return scaler.scale(torch.ones((), dtype=torch.float32, device=device))


# critic -> its BatchNorm modules (found once per critic; usually none).
_BATCHNORMS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_WARNED_BATCHNORM = False


def _warn_batchnorm(critic) -> None:
    """Warn once per process when a critic normalises over the batch while training."""
    global _WARNED_BATCHNORM
    if _WARNED_BATCHNORM or not isinstance(critic, torch.nn.Module):
        return
    bns = _BATCHNORMS.get(critic)
    if bns is None:
        bns = _BATCHNORMS[critic] = tuple(
            m for m in critic.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        )
    if any(m.training for m in bns):
        _WARNED_BATCHNORM = True
        warnings.warn(
            "gan_kernels.gradient_penalty: the critic contains BatchNorm in training mode, which mixes the "
            "samples of a batch, so each sample's gradient also depends on the others and the per-sample "
            "penalty no longer constrains what it should; WGAN-GP critics use LayerNorm / GroupNorm / no "
            "normalisation instead",
            UserWarning,
            stacklevel=3,
        )


def _need_grad_mode(what: str) -> None:
    if not torch.is_grad_enabled():
        raise RuntimeError(
            f"{what} differentiates the critic's output and backpropagates through that gradient, which needs "
            "autograd, but gradients are disabled here (torch.no_grad() or torch.inference_mode()); call it "
            "where the critic's loss is built, or wrap the call in torch.enable_grad()"
        )


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
    if type(kind) is not str or kind not in _PENALTY_KINDS:
        _checks.bad_choice(kind, tuple(_kinds.PENALTY_KINDS), "grad_penalty kind")
    _check_backend(backend)
    if not callable(critic):
        raise TypeError(f"critic must be callable (an nn.Module or function), got {type(critic).__name__}")
    _need_grad_mode("gradient_penalty")
    _warn_batchnorm(critic)
    _device_of(real, "real")
    if fake is None:
        if kind != "r1":
            raise ValueError(f"gradient_penalty kind {kind!r} needs fake samples to interpolate with (fake=None is for kind='r1')")
        x = _checks.batch(real, "real").detach().requires_grad_(True)
    else:
        _device_of(fake, "fake")
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
    _check_backend(backend)
    _checks.batch(real_logits, "real_logits")
    _checks.batch(real, "real")
    _checks.same_device(real_logits, "real_logits", real, "real")
    _need_grad_mode("r1_penalty")
    if not real.requires_grad or not real_logits.requires_grad:
        raise ValueError(
            "r1_penalty differentiates real_logits with respect to real: call real.requires_grad_(True) "
            "before running the critic on it"
        )
    gamma = _checks.number(gamma, "gamma")
    total = real_logits.sum()
    inv_scale = None
    if scaler is not None:
        total = scaler.scale(total)
        inv_scale = 1.0 / _scale_tensor(scaler, real.device)
    (g,) = torch.autograd.grad(total, real, create_graph=True)
    return grad_penalty(g, "r1", weight=gamma / 2, inv_scale=inv_scale, backend=backend)


_multi.register_reference()
