"""Training-loop helpers: lazy regularisation (StyleGAN2) and its optimiser correction.

A gradient penalty costs a double backward through the critic, often more than the rest of the
critic step. StyleGAN2 (Karras et al. 2020, appendix B) showed that R1 can be applied only every
``k``-th critic step, with its weight multiplied by ``k`` so that its average pull is unchanged,
without hurting quality ("lazy regularisation"). The penalty's gradient is then ``k`` times larger on
those steps; StyleGAN2 compensates by running the optimiser with ``lr * k/(k+1)`` and
``beta ** (k/(k+1))`` (:func:`lazy_adam_hparams`).

    lazy = gk.LazyRegularizer(every=16)
    for step in range(n):
        real.requires_grad_(lazy.due())          # only pay for input gradients when needed
        real_logits = critic(real)
        loss = gk.d_loss(real_logits, critic(fake), "logistic")
        r1 = lazy(gk.r1_penalty, real_logits, real, gamma=10.0)   # None on the skipped steps
        if r1 is not None:
            loss = loss + r1
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()

The helper only decides *when* and *how much*; it works for any penalty (``gradient_penalty``,
``r1_penalty``, ``grad_penalty``, or a user's function returning a tensor).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

from torch import Tensor

__all__ = ["LazyRegularizer", "lazy_adam_hparams"]


class LazyRegularizer:
    """Apply a penalty every ``every`` steps, scaled by ``every`` (StyleGAN2's lazy R1).

    Each call to the object (or to :meth:`step`) advances an internal step counter, so a training
    loop calls it exactly once per critic step. Step ``i`` (counting from 0) is a regularisation
    step when ``(i - offset) % every == 0``; ``offset`` shifts the phase (e.g. to regularise on the
    last step of each interval instead of the first). ``every=1`` is ordinary, non-lazy
    regularisation with weight 1.

    The counter is in :meth:`state_dict`, so a resumed run keeps its phase.
    """

    def __init__(self, every: int = 16, *, offset: int = 0):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise ValueError(f"offset must be an int, got {offset!r}")
        self.every = every
        self.offset = offset
        self.steps = 0

    @property
    def scale(self) -> int:
        """The factor a penalty is multiplied by on regularisation steps (``every``)."""
        return self.every

    def due(self, step: Optional[int] = None) -> bool:
        """Whether ``step`` (default: the current step, not yet advanced) is a regularisation step."""
        s = self.steps if step is None else step
        return (s - self.offset) % self.every == 0

    def step(self) -> bool:
        """Advance the counter by one step; returns whether the step just taken was due."""
        was_due = self.due()
        self.steps += 1
        return was_due

    def __call__(self, penalty: Callable[..., Tensor], *args: Any, **kwargs: Any) -> Optional[Tensor]:
        """``every * penalty(*args, **kwargs)`` on a due step, else ``None`` (the penalty is not run).

        Advances the step counter either way.
        """
        if not self.step():
            return None
        return penalty(*args, **kwargs) * self.every

    def state_dict(self) -> Dict[str, int]:
        return {"every": self.every, "offset": self.offset, "steps": self.steps}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self.every = int(state["every"])
        self.offset = int(state.get("offset", 0))
        self.steps = int(state["steps"])

    def __repr__(self) -> str:
        return f"LazyRegularizer(every={self.every}, offset={self.offset}, steps={self.steps})"


def lazy_adam_hparams(lr: float, betas: Tuple[float, float], every: int) -> Tuple[float, Tuple[float, float]]:
    """StyleGAN2's Adam correction for a model regularised lazily every ``every`` steps.

    Returns ``(lr * c, (beta1 ** c, beta2 ** c))`` with ``c = every / (every + 1)``: the optimiser then
    sees about the same effective step size and momentum horizon as with a penalty on every step,
    even though the regularised steps carry ``every`` times the penalty gradient. ``every=1`` (no
    lazy regularisation) gives ``c = 1/2`` in StyleGAN2's formula, which is *not* what one wants,
    so it returns the hyper-parameters unchanged instead.
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive int, got {every!r}")
    if every == 1:
        return lr, tuple(betas)
    c = every / (every + 1)
    return lr * c, (betas[0] ** c, betas[1] ** c)
