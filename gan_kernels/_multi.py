"""Lists of tensors for multi-discriminator training: argument checks and the Python back ends.

``gk.d_loss`` / ``gk.g_loss`` given lists (one logits tensor per discriminator) and
``gk.feature_matching_loss`` land here after the functional API has checked names and numbers.
:func:`tensor_list` checks the containers (type, length, items); every tensor is then checked by
the op that runs -- in C++ for the compiled back ends (one op call per direction for the whole
list), by :func:`_pair` below for the reference, with the same messages naming the index.

The reference sums the per-tensor reference losses in list order. The Triton back end has list
kernels of its own (``gan_kernels/triton/lists.py``) behind the Functions of ``_autograd``, which
check their lists with :func:`checked_logit_lists` and :func:`checked_features` below.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import Tensor

from . import _checks, _registry, reference


def is_list(x) -> bool:
    return type(x) is list or type(x) is tuple


def tensor_list(x, name: str, nested: bool = False) -> List[Tensor]:
    """``x`` as a list of tensors; with ``nested`` a list of lists is flattened in order."""
    if not is_list(x):
        raise TypeError(f"{name} must be a list or tuple of tensors, got {type(x).__name__}")
    if nested and any(is_list(item) for item in x):
        x = [t for item in x for t in (item if is_list(item) else (item,))]
    if len(x) == 0:
        raise ValueError(f"{name} is an empty list: give at least one tensor")
    for i, t in enumerate(x):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}[{i}] must be a torch.Tensor, got {type(t).__name__}")
    return list(x)


def same_count(reals: Sequence[Tensor], fakes: Sequence[Tensor], what: str) -> None:
    if len(reals) != len(fakes):
        raise ValueError(
            f"real_{what} has {len(reals)} tensors but fake_{what} has {len(fakes)}: "
            "give one real and one fake tensor per discriminator"
        )


def weights_of(weight, k: int) -> List[float]:
    """One float weight per feature-map pair, from a number or a sequence of k numbers."""
    if is_list(weight):
        if len(weight) != k:
            raise ValueError(f"feature_matching_loss: {len(weight)} weights for {k} feature-map pairs; "
                             "give one number or one weight per pair")
        return [_checks.number(w, f"weight[{i}]") for i, w in enumerate(weight)]
    return [_checks.number(weight, "weight")] * k


def terms_tensor(terms: Sequence[Tensor]) -> Tensor:
    """The per-discriminator losses as one detached (D,) tensor in the total's dtype."""
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in terms) else torch.float32
    return torch.stack([t.detach().to(dtype) for t in terms])


def _sum(terms: Sequence[Tensor]) -> Tensor:
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def _finish(terms: List[Tensor], return_terms: bool):
    total = _sum(terms)
    return (total, terms_tensor(terms)) if return_terms else total


def _loss_pair(r: Optional[Tensor], f: Tensor, i: int, paired: bool):
    """The checks of one discriminator's logits, as the C++ list op makes them."""
    if r is None:
        return None, _checks.batch(f, f"fake_logits[{i}]")
    r, f = _checks.pair(r, f"real_logits[{i}]", f, f"fake_logits[{i}]")
    if paired and r.shape != f.shape:
        raise ValueError(f"discriminator {i}: the rpgan kind pairs real and fake logits element by element: "
                         f"shapes must match, got {tuple(r.shape)} and {tuple(f.shape)}")
    return r, f


def _check_devices(tensors: Sequence[Tensor], name: str) -> None:
    for i, t in enumerate(tensors[1:], 1):
        _checks.same_device(t, f"{name}[{i}]", tensors[0], f"{name}[0]")


def checked_logit_lists(reals: Optional[Sequence[Tensor]], fakes: Sequence[Tensor], kind: str):
    """(reals or None, fakes) with every pair checked and brought to one dtype, naming the index."""
    _check_devices(fakes, "fake_logits")
    out_r, out_f = [], []
    for i, f in enumerate(fakes):
        r, f = _loss_pair(None if reals is None else reals[i], f, i, kind == "rpgan")
        out_r.append(r)
        out_f.append(f)
    return (out_r if reals is not None else None), out_f


# --------------------------------------------------------------------------- looped losses
def looped_d_loss(single):
    """A list d_loss from a back end's single-tensor d_loss implementation."""

    def d_loss_list(reals, fakes, kind, reduction, real_label, drift, ls_targets, weight, return_terms):
        reals, fakes = checked_logit_lists(reals, fakes, kind)
        terms = [single(r, f, kind, reduction, real_label, drift, ls_targets, weight) for r, f in zip(reals, fakes)]
        return _finish(terms, return_terms)

    return d_loss_list


def looped_g_loss(single):
    """A list g_loss from a back end's single-tensor g_loss implementation."""

    def g_loss_list(fakes, kind, reals, reduction, ls_target, weight, return_terms):
        reals, fakes = checked_logit_lists(reals, fakes, kind)
        terms = [single(f, kind, None if reals is None else reals[i], reduction, ls_target, weight)
                 for i, f in enumerate(fakes)]
        return _finish(terms, return_terms)

    return g_loss_list


# --------------------------------------------------------------------------- feature matching
def _feature_pair(r: Tensor, f: Tensor, k: int):
    for x, name in ((r, f"real_feats[{k}]"), (f, f"fake_feats[{k}]")):
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor (float16, bfloat16, float32, float64), got {x.dtype}")
    _checks.same_device(r, f"real_feats[{k}]", f, f"fake_feats[{k}]")
    if r.shape != f.shape:
        raise ValueError(f"feature_matching_loss pair {k}: real {tuple(r.shape)} vs fake {tuple(f.shape)}: "
                         "the two feature maps of a pair must have the same shape")
    if r.numel() == 0:
        raise ValueError(f"feature_matching_loss pair {k}: the feature maps are empty (shape {tuple(r.shape)})")
    return _checks.promote(r, f)


def checked_features(reals: Sequence[Tensor], fakes: Sequence[Tensor]):
    """(reals, fakes) with every pair checked and brought to one dtype, naming the index."""
    _check_devices(reals, "real_feats")
    pairs = [_feature_pair(r, f, k) for k, (r, f) in enumerate(zip(reals, fakes))]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def reference_feature_matching(reals, fakes, weights, reduction):
    reals, fakes = checked_features(reals, fakes)
    return reference.feature_matching_loss(reals, fakes, weights, reduction)


def register_reference() -> None:
    """The reference's list ops: its single-tensor losses looped, and plain feature matching."""
    _registry.register("d_loss_list", "reference", looped_d_loss(_registry._IMPLS[("d_loss", "reference")]))
    _registry.register("g_loss_list", "reference", looped_g_loss(_registry._IMPLS[("g_loss", "reference")]))
    _registry.register("feature_matching", "reference", reference_feature_matching)
