"""What the benchmark measures: the op cases, their size sweeps, inputs, implementations and bytes.

One :class:`Case` is (op, kind, shape, dtype). Each case can be run by several *implementations*:

* ``"eager"``    -- the op written out in plain PyTorch (:mod:`.eager`): what a user runs without
  this library, the baseline of every ratio;
* ``"compiled"`` -- ``torch.compile`` of that same formula (for the penalty this is the penalty
  *head*, the part after ``autograd.grad``: a whole penalty step cannot be compiled because
  aot_autograd has no double backward);
* any back end name (``"cpu"``, ``"cuda"``, ``"triton"``, ``"reference"``) -- the public functional
  API with ``backend=<name>``, argument checks included, as a training loop would call it.

The bench CLI (:mod:`gan_kernels.bench.run`) and the pytest-benchmark suite (``bench/test_bench_ops.py``)
both take their cases from here, so the two always measure the same thing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

import gan_kernels as gk
from gan_kernels import _kinds, reference

from . import eager

# (op, kind): every op and kind the library has, each selectable with --ops.
ALL_OP_KINDS: Tuple[Tuple[str, Optional[str]], ...] = (
    tuple(("d_loss", k) for k in _kinds.D_LOSS_KINDS)
    + tuple(("g_loss", k) for k in _kinds.G_LOSS_KINDS)
    + (("interpolate", None),)
    + tuple(("grad_penalty", k) for k in _kinds.PENALTY_KINDS)
)
# The default selection: the kinds a GAN codebase runs most often. The others share their kernels
# (a kind only changes the per-element formula), so they time about the same.
OP_KINDS: Tuple[Tuple[str, Optional[str]], ...] = (
    ("d_loss", "hinge"),
    ("d_loss", "logistic"),
    ("d_loss", "relativistic"),
    ("g_loss", "logistic"),
    ("interpolate", None),
    ("grad_penalty", "wgan-gp"),
    ("grad_penalty", "r1"),
)
# g_loss kinds that compare fake logits with real ones (they take real_logits too).
G_NEEDS_REAL = frozenset(_kinds.PAIRED_KINDS | _kinds.RELATIVISTIC_KINDS)

MODES = ("fwd", "bwd", "fwdbwd")
BASELINES = ("eager", "compiled")

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}

# Size sweeps: launch-bound (a 16- or 256-sample batch of logits; the 8-Gaussians toy's 256x2 gradient)
# up to bandwidth-bound (PatchGAN logit maps; 64x3x256x256 image gradients on a GPU). CPU sweeps stop
# at 64x3x64x64: past that a 2-core machine spends minutes per case and learns nothing new.
LOGIT_SIZES = {
    "cpu": [(16,), (256,), (4096,), (64, 1, 32, 32), (64, 1, 64, 64)],
    "cpu-quick": [(256,), (64, 1, 32, 32)],
    "cuda": [(16,), (256,), (4096,), (64, 1, 32, 32), (64, 1, 64, 64), (64, 1, 256, 256)],
    "cuda-quick": [(256,), (64, 1, 64, 64), (64, 1, 256, 256)],
}
IMAGE_SIZES = {
    "cpu": [(256, 2), (16, 3, 32, 32), (64, 3, 32, 32), (64, 3, 64, 64)],
    "cpu-quick": [(256, 2), (64, 3, 32, 32)],
    "cuda": [(256, 2), (16, 3, 32, 32), (64, 3, 32, 32), (64, 3, 64, 64), (64, 3, 128, 128), (64, 3, 256, 256)],
    "cuda-quick": [(256, 2), (64, 3, 64, 64), (64, 3, 256, 256)],
}


def op_name(op: str, kind: Optional[str]) -> str:
    return op if kind is None else f"{op}/{kind}"


def shape_label(shape: Sequence[int]) -> str:
    return "x".join(str(s) for s in shape)


@dataclass(frozen=True)
class Case:
    op: str
    kind: Optional[str]
    shape: Tuple[int, ...]
    dtype: torch.dtype

    @property
    def name(self) -> str:
        return op_name(self.op, self.kind)

    @property
    def size(self) -> str:
        return shape_label(self.shape)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES[self.dtype]

    @property
    def id(self) -> str:
        return f"{self.name}-{self.size}-{self.dtype_name}"

    def bytes(self, mode: str) -> int:
        """Memory traffic the op cannot avoid, in bytes (see bench/README.md, "How bytes are counted").

        Every tensor the op must read or write crosses memory once per pass that needs it:
        * losses: fwd reads r and f; bwd reads them again and writes dr, df; fwd+bwd = 3 passes;
        * interpolate: fwd reads real, fake and writes x; bwd reads dx and writes d real, d fake;
        * grad_penalty: fwd reads g (norms); bwd reads g again and writes dg; fwd+bwd = read g twice +
          write dg once (the norm must be complete before any element of dg is known).
        Per-sample scalars (alpha, norms) and the 0-dim loss are left out: they are B numbers.
        """
        s = self.dtype.itemsize
        n = self.numel
        if self.op == "d_loss" or (self.op == "g_loss" and self.kind in G_NEEDS_REAL):
            per = {"fwd": 2, "bwd": 4, "fwdbwd": 6}  # two tensors of n elements
        elif self.op == "g_loss":
            per = {"fwd": 1, "bwd": 2, "fwdbwd": 3}
        elif self.op == "interpolate":
            per = {"fwd": 3, "bwd": 3, "fwdbwd": 6}
        elif self.op == "grad_penalty":
            per = {"fwd": 1, "bwd": 2, "fwdbwd": 3}
        else:  # pragma: no cover - ALL_OP_KINDS is closed
            raise ValueError(self.op)
        return per[mode] * n * s


def parse_shape(text: str) -> Tuple[int, ...]:
    """"64x3x32x32" -> (64, 3, 32, 32); ValueError for anything else."""
    try:
        shape = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"shape {text!r}: expected sizes joined by 'x', e.g. 256 or 64x3x32x32") from None
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f"shape {text!r}: every size must be a positive integer")
    return shape


def select(ops: Optional[Sequence[str]]) -> List[Tuple[str, Optional[str]]]:
    """The (op, kind) pairs ``--ops`` names: "d_loss" (every d_loss kind) or "d_loss/hinge";
    None gives the default selection. ValueError names an unknown entry and lists the accepted ones."""
    if not ops:
        return list(OP_KINDS)
    unknown = [o for o in ops if o not in known_op_names()]
    if unknown:
        raise ValueError(f"unknown --ops {' '.join(unknown)}; accepted: {' '.join(known_op_names())}")
    return [(op, kind) for op, kind in ALL_OP_KINDS if any(sel in (op, op_name(op, kind)) for sel in ops)]


def with_batch(shape: Tuple[int, ...], batch: Optional[int]) -> Tuple[int, ...]:
    return shape if batch is None else (batch,) + tuple(shape[1:])


def cases_for(device: str, quick: bool, ops: Optional[Sequence[str]] = None,
              dtypes: Sequence[torch.dtype] = (torch.float32,), shapes: Optional[Sequence[Tuple[int, ...]]] = None,
              batch: Optional[int] = None) -> List[Case]:
    """The sweep for ``device`` ("cpu"/"cuda") and the ops ``--ops`` selects (see :func:`select`).

    ``shapes`` replaces every op's size sweep (a loss reads a shape as its logit map); ``batch``
    replaces the first size of every shape. Shapes a batch change makes equal are run once."""
    key = device + ("-quick" if quick else "")
    out: List[Case] = []
    for op, kind in select(ops):
        sizes = shapes or (IMAGE_SIZES[key] if op in ("interpolate", "grad_penalty") else LOGIT_SIZES[key])
        sizes = list(dict.fromkeys(with_batch(tuple(s), batch) for s in sizes))
        for dtype in dtypes:
            for shape in sizes:
                out.append(Case(op, kind, shape, dtype))
    return out


def known_op_names() -> List[str]:
    names: List[str] = []
    for op, kind in ALL_OP_KINDS:
        for n in (op, op_name(op, kind)):
            if n not in names:
                names.append(n)
    return names


# --------------------------------------------------------------------------- inputs
@dataclass
class Inputs:
    """One input set: the differentiable leaves, fixed extras, and the upstream gradient."""

    leaves: List[Tensor]
    extra: Dict[str, Tensor]
    grad_out: Optional[Tensor]  # None for a 0-dim loss (autograd uses 1)


def make_inputs(case: Case, device: torch.device, generator: torch.Generator) -> Inputs:
    def rand(shape, scale=1.0):
        x = torch.randn(shape, generator=generator, device=device, dtype=torch.float32) * scale
        return x.to(case.dtype).requires_grad_(True)

    if case.op == "d_loss":
        return Inputs([rand(case.shape), rand(case.shape)], {}, None)
    if case.op == "g_loss":
        if case.kind in G_NEEDS_REAL:
            return Inputs([rand(case.shape), rand(case.shape)], {}, None)  # fake, real
        return Inputs([rand(case.shape)], {}, None)
    if case.op == "interpolate":
        acc = reference.acc_dtype(case.dtype)
        alpha = torch.rand(case.shape[0], generator=generator, device=device, dtype=torch.float32).to(acc)
        go = torch.randn(case.shape, generator=generator, device=device, dtype=torch.float32).to(case.dtype)
        return Inputs([rand(case.shape), rand(case.shape)], {"alpha": alpha}, go)
    if case.op == "grad_penalty":
        # Scale so per-sample norms sit near the WGAN-GP centre 1 (as a trained critic's do).
        d = case.numel // case.shape[0]
        return Inputs([rand(case.shape, 1.0 / math.sqrt(d))], {}, None)
    raise ValueError(f"unknown op {case.op!r}")


# --------------------------------------------------------------------------- implementations
PENALTY_WEIGHT = 10.0


def _eager_formula(case: Case) -> Callable[..., Tensor]:
    """The plain-PyTorch formula over plain tensors (torch.compile sees no dataclass to guard on)."""
    kind = case.kind
    if case.op == "d_loss":
        return eager.D_LOSS[kind]
    if case.op == "g_loss":
        return eager.G_LOSS[kind]
    if case.op == "interpolate":
        return eager.interpolate
    if case.op == "grad_penalty":
        fn = eager.PENALTY[kind]
        return lambda g: fn(g, PENALTY_WEIGHT)
    raise ValueError(case.op)


def _call_with(fn: Callable[..., Tensor], case: Case) -> Callable[[Inputs], Tensor]:
    if case.op == "interpolate":
        return lambda inp: fn(inp.leaves[0], inp.leaves[1], inp.extra["alpha"])
    return lambda inp: fn(*inp.leaves)


def eager_fn(case: Case) -> Callable[[Inputs], Tensor]:
    """The baseline: the op as a user writes it in plain PyTorch (:mod:`.eager`)."""
    return _call_with(_eager_formula(case), case)


def reference_fn(case: Case) -> Callable[[Inputs], Tensor]:
    """The library's reference formula called directly (the oracle the results are checked against)."""
    kind = case.kind
    if case.op == "d_loss":
        return lambda inp: reference.d_loss(inp.leaves[0], inp.leaves[1], kind)
    if case.op == "g_loss":
        return lambda inp: reference.g_loss(inp.leaves[0], kind, inp.leaves[1] if len(inp.leaves) > 1 else None)
    if case.op == "interpolate":
        return lambda inp: reference.interpolate(inp.leaves[0], inp.leaves[1], inp.extra["alpha"])
    if case.op == "grad_penalty":
        return lambda inp: reference.grad_penalty(inp.leaves[0], kind, 1.0, PENALTY_WEIGHT)
    raise ValueError(case.op)


def compiled_fn(case: Case) -> Callable[[Inputs], Tensor]:
    """``torch.compile`` of the eager formula (static shapes: the compiler's best case for each size).

    Compilation happens on the first call; the caller catches and records its failure.
    """
    return _call_with(torch.compile(_eager_formula(case), dynamic=False), case)


def library_fn(case: Case, backend: str) -> Callable[[Inputs], Tensor]:
    """The public API with an explicit back end, as user code calls it."""
    kind = case.kind
    if case.op == "d_loss":
        return lambda inp: gk.d_loss(inp.leaves[0], inp.leaves[1], kind, backend=backend)
    if case.op == "g_loss":
        if kind in G_NEEDS_REAL:
            return lambda inp: gk.g_loss(inp.leaves[0], kind, real_logits=inp.leaves[1], backend=backend)
        return lambda inp: gk.g_loss(inp.leaves[0], kind, backend=backend)
    if case.op == "interpolate":
        return lambda inp: gk.interpolate(inp.leaves[0], inp.leaves[1], inp.extra["alpha"], backend=backend)
    if case.op == "grad_penalty":
        return lambda inp: gk.grad_penalty(inp.leaves[0], kind, weight=PENALTY_WEIGHT, backend=backend)
    raise ValueError(case.op)


def impl_fn(case: Case, impl: str) -> Callable[[Inputs], Tensor]:
    if impl == "eager":
        return eager_fn(case)
    if impl == "compiled":
        return compiled_fn(case)
    return library_fn(case, impl)


def backward(out: Tensor, inp: Inputs, retain_graph: bool = False):
    return torch.autograd.grad(out, inp.leaves, inp.grad_out, retain_graph=retain_graph)


def backends_for(device: str, requested: Optional[Sequence[str]] = None) -> List[str]:
    """Back ends to benchmark on ``device``: what gk.available_backends() lists and can run there.

    Triton on CPU tensors only runs under TRITON_INTERPRET=1, a correctness tool (thousands of times
    slower than a kernel), so it is left out on CPU unless asked for by name. A requested name that
    is unknown, or cannot run here, is a ValueError that says why.
    """
    from gan_kernels import _registry

    if requested:
        unknown = [n for n in requested if n not in _registry.BACKENDS]
        if unknown:
            raise ValueError(f"unknown --backends {' '.join(unknown)}; accepted: {' '.join(_registry.BACKENDS)}")
    out = []
    for name in _registry.BACKENDS:
        if requested and name not in requested:
            continue
        b = _registry._BACKENDS.get(name)
        reason = _registry._reason(name)
        if reason is None and (b is None or not b.runs_on(device)):
            reason = f"it does not run on {device} tensors"
        if reason is not None:
            if requested:
                raise ValueError(f"--backends {name}: not usable on {device} here: {reason}")
            continue
        if not requested and device == "cpu" and name == "triton":
            continue
        out.append(name)
    return out
