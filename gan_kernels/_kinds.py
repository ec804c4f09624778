"""Loss kinds as data, penalty kinds and reductions, with their integer codes.

A loss kind is not a code the kernels know: :func:`d_loss_spec` / :func:`g_loss_spec` turn it
into a :class:`LossSpec` -- a combination mode and two per-element terms (BCE, hinge, linear,
square) with their targets and multipliers -- and every back end computes a LossSpec. This
table is the one place a kind's formula is chosen. The integer codes (term types, modes,
penalty kinds, reductions) are the ``int`` arguments of the ``torch.ops.gan_kernels.*`` schemas
and mirror ``csrc/include/gan_kernels/codes.h`` (``tests/test_api.py`` parses the header and
checks both agree).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}

D_LOSS_KINDS = ("logistic", "hinge", "wasserstein", "least_squares", "relativistic", "rpgan")
G_LOSS_KINDS = ("logistic", "minimax", "hinge", "wasserstein", "least_squares", "relativistic", "rpgan")

PENALTY_KINDS = {"wgan-gp": 0, "wgan-lp": 1, "r1": 2}

# Kinds whose real and fake logits are paired element by element.
PAIRED_KINDS = frozenset({"rpgan"})
# Kinds whose every term depends on the other tensor's batch mean.
RELATIVISTIC_KINDS = frozenset({"relativistic"})

# Term shapes (codes.h TermType) and combination modes (codes.h LossMode).
TERM_NONE, TERM_BCE, TERM_HINGE, TERM_LINEAR, TERM_SQUARE = 0, 1, 2, 3, 4
MODE_SEPARATE, MODE_RELATIVISTIC, MODE_PAIRED = 0, 1, 2


class Term(NamedTuple):
    type: int
    t: float = 0.0
    c: float = 1.0


class LossSpec(NamedTuple):
    mode: int
    real: Term
    fake: Term
    drift: float = 0.0

    @property
    def uses_real(self) -> bool:
        """Whether the loss reads the real logits (a separate-mode G loss does not)."""
        return self.mode != MODE_SEPARATE or self.real.type != TERM_NONE

    def scaled(self, weight: float) -> "LossSpec":
        """The spec of ``weight`` times this loss: every multiplier and the drift scaled."""
        if weight == 1.0:
            return self
        r, f = self.real, self.fake
        return LossSpec(self.mode, Term(r.type, r.t, r.c * weight), Term(f.type, f.t, f.c * weight),
                        self.drift * weight)

    def args(self) -> tuple:
        """The eight spec arguments of the ``loss`` / ``loss_forward`` schemas, in order."""
        r, f = self.real, self.fake
        return (self.mode, r.type, float(r.t), float(r.c), f.type, float(f.t), float(f.c), float(self.drift))


_NONE = Term(TERM_NONE)


@functools.lru_cache(maxsize=256)  # the same few kinds and constants every step
def d_loss_spec(kind: str, real_label: float, drift: float, ls_fake: float, ls_real: float) -> LossSpec:
    """The LossSpec of a discriminator loss kind (formulas: docs/contract.md)."""
    if kind == "logistic":
        return LossSpec(MODE_SEPARATE, Term(TERM_BCE, real_label), Term(TERM_BCE, 0.0), drift)
    if kind == "hinge":
        return LossSpec(MODE_SEPARATE, Term(TERM_HINGE, 1.0), Term(TERM_HINGE, -1.0), drift)
    if kind == "wasserstein":
        return LossSpec(MODE_SEPARATE, Term(TERM_LINEAR, 0.0, -1.0), Term(TERM_LINEAR, 0.0, 1.0), drift)
    if kind == "least_squares":
        return LossSpec(MODE_SEPARATE, Term(TERM_SQUARE, ls_real), Term(TERM_SQUARE, ls_fake), drift)
    if kind == "relativistic":
        return LossSpec(MODE_RELATIVISTIC, Term(TERM_BCE, 1.0), Term(TERM_BCE, 0.0), drift)
    if kind == "rpgan":
        return LossSpec(MODE_PAIRED, Term(TERM_BCE, 1.0), _NONE, drift)
    raise ValueError(f"unknown d_loss kind {kind!r}")


@functools.lru_cache(maxsize=256)
def g_loss_spec(kind: str, ls_target: float) -> LossSpec:
    """The LossSpec of a generator loss kind."""
    if kind == "logistic":
        return LossSpec(MODE_SEPARATE, _NONE, Term(TERM_BCE, 1.0))
    if kind == "minimax":
        return LossSpec(MODE_SEPARATE, _NONE, Term(TERM_BCE, 0.0, -1.0))
    if kind in ("hinge", "wasserstein"):
        return LossSpec(MODE_SEPARATE, _NONE, Term(TERM_LINEAR, 0.0, -1.0))
    if kind == "least_squares":
        return LossSpec(MODE_SEPARATE, _NONE, Term(TERM_SQUARE, ls_target))
    if kind == "relativistic":
        return LossSpec(MODE_RELATIVISTIC, Term(TERM_BCE, 0.0), Term(TERM_BCE, 1.0))
    if kind == "rpgan":
        return LossSpec(MODE_PAIRED, Term(TERM_BCE, 0.0), _NONE)
    raise ValueError(f"unknown g_loss kind {kind!r}")


# Memos of the two functions below: a plain dict rather than functools.lru_cache, which
# torch.compile traces through with a warning.
_D_ARGS: dict = {}
_G_ARGS: dict = {}


def d_loss_args(kind: str, real_label: float, drift: float, ls_fake: float, ls_real: float,
                weight: float = 1.0) -> tuple:
    """``d_loss_spec(...).scaled(weight).args()``, memoised (the same few arguments every step)."""
    key = (kind, real_label, drift, ls_fake, ls_real, weight)
    args = _D_ARGS.get(key)
    if args is None:
        if len(_D_ARGS) > 1024:  # a caller that varies them every step (a schedule, or NaN) stays bounded
            _D_ARGS.clear()
        args = _D_ARGS[key] = d_loss_spec(kind, real_label, drift, ls_fake, ls_real).scaled(weight).args()
    return args


def g_loss_args(kind: str, ls_target: float, weight: float = 1.0) -> tuple:
    """``g_loss_spec(...).scaled(weight).args()``, memoised."""
    key = (kind, ls_target, weight)
    args = _G_ARGS.get(key)
    if args is None:
        if len(_G_ARGS) > 1024:
            _G_ARGS.clear()
        args = _G_ARGS[key] = g_loss_spec(kind, ls_target).scaled(weight).args()
    return args
