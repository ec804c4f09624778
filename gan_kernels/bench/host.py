"""Per-call host time at small sizes: the hand-written formula, each back end, and the floor.

At the sizes GAN losses usually have (a batch of 64 logits; the 8-Gaussians toy's 64x2 gradient)
a forward + backward is almost all host time: Python, autograd, dispatch, allocation. Per case,
one thread, forward + ``torch.autograd.grad``, candidates interleaved round by round (at least 41
rounds, the 20th percentile kept):

* ``eager``     -- the op written out in plain PyTorch (:mod:`.eager`);
* ``gk <b>``    -- the public call with ``backend=<b>``;
* ``floor <b>`` -- back end ``b``'s raw forward op + raw backward op + one autograd node
  (:mod:`.floor`): what the call would cost with no host work of the library's own.
"""

from __future__ import annotations

import zlib
from typing import Callable, Dict, List, Optional, Sequence

import torch

from . import cases as C
from .floor import floor_fn
from .timing import TimerConfig, time_interleaved

HOST_BATCH = 64
# The default cases; --ops replaces them with its own selection.
HOST_OP_KINDS = (("d_loss", "logistic"), ("d_loss", "hinge"), ("g_loss", "logistic"),
                 ("grad_penalty", "wgan-gp"), ("interpolate", None))


def host_cases(ops: Optional[Sequence[str]] = None, batch: Optional[int] = None) -> List[C.Case]:
    b = batch or HOST_BATCH
    pairs = C.select(ops) if ops else list(HOST_OP_KINDS)
    return [C.Case(op, kind, (b, 2) if op in ("interpolate", "grad_penalty") else (b,), torch.float32)
            for op, kind in pairs]


def _fwd_bwd(fn: Callable, inp: C.Inputs) -> Callable[[], object]:
    def call():
        return torch.autograd.grad(fn(inp), inp.leaves, inp.grad_out)
    return call


def candidates(case: C.Case, backends: Sequence[str], inp: C.Inputs) -> Dict[str, Callable[[], object]]:
    out = {"eager": _fwd_bwd(C.eager_fn(case), inp)}
    for b in backends:
        out[f"gk {b}"] = _fwd_bwd(C.library_fn(case, b), inp)
    for b in backends:
        raw = floor_fn(case.op, case.kind, b, C.PENALTY_WEIGHT)
        if raw is not None:
            out[f"floor {b}"] = _fwd_bwd(C._call_with(raw, case), inp)
    return out


def run_host(device: torch.device, backends: Sequence[str], cases: Sequence[C.Case], cfg: TimerConfig,
             progress: Optional[Callable[[str], None]] = None) -> List[Dict]:
    """One row per (case, candidate); one thread while measuring (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows: List[Dict] = []
    try:
        for case in cases:
            if progress:
                progress(f"host {case.name} {case.size}")
            gen = torch.Generator(device=device).manual_seed(zlib.crc32(case.id.encode()))
            inp = C.make_inputs(case, device, gen)
            errors: Dict[str, str] = {}
            cands = candidates(case, backends, inp)
            timings = time_interleaved(cands, device, cfg, errors)
            for name in cands:
                what, _, backend = name.partition(" ")
                t = timings.get(name)
                rows.append({"op": case.op, "kind": case.kind, "name": case.name, "size": case.size,
                             "candidate": what, "backend": backend or None,
                             "ms": t and t.ms, "median_ms": t and t.median_ms, "p20_ms": t and t.p20_ms,
                             "p80_ms": t and t.p80_ms, "rounds": t and t.samples, "noisy": t and t.noisy,
                             "error": errors.get(name)})
    finally:
        torch.set_num_threads(threads)
    return rows
