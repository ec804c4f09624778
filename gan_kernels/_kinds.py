"""Names and integer codes of the loss kinds, penalty kinds and reductions.

The integers are the ``int`` arguments of the ``torch.ops.gan_kernels.*`` schemas and mirror
``csrc/include/gan_kernels/codes.h`` (``tests/test_codes.py`` parses the header and checks both
agree). The term table (``D_LOSS_SPECS``/``G_LOSS_SPECS``) mirrors ``math.h``'s ``d_loss_spec`` /
``g_loss_spec`` for the Triton back end, which cannot include the C++ header.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}

D_LOSS_KINDS = {
    "logistic": 0,
    "hinge": 1,
    "wasserstein": 2,
    "least_squares": 3,
    "relativistic": 4,
    "rpgan": 5,
}

G_LOSS_KINDS = {
    "logistic": 0,
    "minimax": 1,
    "hinge": 2,
    "wasserstein": 3,
    "least_squares": 4,
    "relativistic": 5,
    "rpgan": 6,
}

PENALTY_KINDS = {"wgan-gp": 0, "wgan-lp": 1, "r1": 2}

# Kinds whose real and fake logits are paired element by element.
PAIRED_KINDS = frozenset({"rpgan"})
# Kinds whose every term depends on the other tensor's batch mean.
RELATIVISTIC_KINDS = frozenset({"relativistic"})

# Term shapes (math.h TermType) and combination modes (math.h LossMode).
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


_NONE = Term(TERM_NONE)


@functools.lru_cache(maxsize=256)  # called per Triton launch with a few recurring values
def d_loss_spec(kind: str, real_label: float, drift: float, ls_fake: float, ls_real: float) -> LossSpec:
    """Python twin of ``math.h``'s ``d_loss_spec``."""
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
    """Python twin of ``math.h``'s ``g_loss_spec``."""
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
