"""Timers, the copy-bandwidth probe, dispatch counting and peak memory.

Wall-clock (:func:`time_interleaved`): the candidates of one comparison (every implementation and
mode of a case, every row of a host-time line) are timed *round by round*: each round times one
sample of every candidate, in a rotating order, so a burst of load from elsewhere hits all of them
alike instead of one candidate's whole measurement. A sample is a batch of back-to-back calls long
enough to dwarf the clock (``min_sample_ms``), bracketed by a device synchronisation on a GPU. The
estimate is a low percentile of the rounds (``ESTIMATE_Q``): the time of a call the machine did not
disturb. Rounds continue until every candidate's spread (p80 / p20 of its rounds) is small or the
round limit is reached; a candidate that ends with a wide spread, or that was measured while more
threads were runnable than there are cores, is flagged ``noisy`` with the reason.

GPU, second number (:func:`time_cuda_graph`): the same calls captured once in a CUDA graph and
replayed. Wall-clock of a small op is mostly host time (Python, autograd, launches); the replay
leaves only the kernels, which is what a training step captured in a CUDA graph pays.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ESTIMATE_Q = 0.2  # the estimate: the 20th percentile of the rounds


@dataclass
class Timing:
    ms: float  # the estimate (ESTIMATE_Q quantile of the rounds)
    median_ms: float
    p20_ms: float
    p80_ms: float
    samples: int
    noisy: Optional[str] = None  # why this time cannot be trusted, or None

    @property
    def spread(self) -> float:
        return self.p80_ms / self.p20_ms if self.p20_ms > 0 else float("inf")


@dataclass
class TimerConfig:
    """How long to measure. ``quick`` trades precision for a short run."""

    warmup_ms: float = 25.0
    min_sample_ms: float = 2.0  # one sample is a batch of calls at least this long
    min_rounds: int = 15
    max_rounds: int = 61
    max_ms: float = 4000.0  # per comparison: no more rounds once this much time is spent
    stable_spread: float = 1.1  # stop adding rounds once every candidate's p80/p20 is below this
    noisy_spread: float = 1.5  # flag a candidate whose p80/p20 ends above this
    graph_calls: int = 20  # calls captured in one CUDA graph; the replay time is divided by this
    graph_replays: int = 20  # timed replays (one sample each)

    @classmethod
    def quick(cls) -> "TimerConfig":
        return cls(warmup_ms=10.0, min_sample_ms=1.0, min_rounds=7, max_rounds=21, max_ms=1500.0,
                   graph_calls=10, graph_replays=5)

    @classmethod
    def host(cls, rounds: int = 41) -> "TimerConfig":
        """Per-call host time of small ops: many rounds of short samples."""
        return cls(warmup_ms=20.0, min_sample_ms=0.5, min_rounds=rounds, max_rounds=max(rounds, 81), max_ms=8000.0)


def timing_fields(t: Optional[Timing]) -> Dict[str, object]:
    """A result row's timing columns (all None for a candidate that did not run)."""
    return dict(ms=t and t.ms, median_ms=t and t.median_ms, p20_ms=t and t.p20_ms, p80_ms=t and t.p80_ms,
                rounds=t and t.samples, noisy=t and t.noisy)


def quantile(xs, q: float) -> float:
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    pos = q * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarise(samples_ms: List[float], noisy: Optional[str] = None) -> Timing:
    return Timing(quantile(samples_ms, ESTIMATE_Q), statistics.median(samples_ms), quantile(samples_ms, 0.2),
                  quantile(samples_ms, 0.8), len(samples_ms), noisy)


def oversubscribed() -> Optional[str]:
    """Why the CPU is too busy for trustworthy wall-clock, or None.

    The 1-minute load average counts this process's runnable threads too: more runnable threads
    than cores means ours are being descheduled, and a descheduled call costs a scheduler tick
    (milliseconds), not microseconds.
    """
    if not hasattr(os, "getloadavg"):
        return None
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    return f"load {load:.1f} on {cores} cores" if load > cores else None


def _sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def time_interleaved(fns: Dict[str, Callable[[], object]], device: torch.device, cfg: TimerConfig,
                     errors: Optional[Dict[str, str]] = None) -> Dict[str, Timing]:
    """Per-call wall-clock of every candidate in ``fns``, measured in interleaved rounds (see above).

    A candidate that raises is dropped and its error text stored in ``errors``; the rest go on.
    """
    sync = _sync(device)
    live = dict(fns)
    inner: Dict[str, int] = {}
    for name, fn in list(live.items()):
        try:  # warm-up, which also estimates the per-call time
            fn()
            sync()
            calls, t0 = 0, time.perf_counter()
            while True:
                fn()
                calls += 1
                sync()
                elapsed = time.perf_counter() - t0
                if elapsed * 1e3 >= cfg.warmup_ms or calls >= 1000:
                    break
        except Exception as e:
            if errors is None:
                raise
            errors[name] = error_text(e)
            del live[name]
            continue
        inner[name] = max(1, min(100_000, math.ceil(cfg.min_sample_ms / (elapsed * 1e3 / calls))))
    samples: Dict[str, List[float]] = {n: [] for n in live}
    busy: Optional[str] = None
    names = list(live)
    t_start = time.perf_counter()
    rounds = 0
    while names:
        rounds += 1
        busy = busy or oversubscribed()
        order = names[rounds % len(names):] + names[:rounds % len(names)]  # rotate who goes first
        for name in order:
            fn, k = live[name], inner[name]
            try:
                sync()
                t0 = time.perf_counter()
                for _ in range(k):
                    fn()
                sync()
                samples[name].append((time.perf_counter() - t0) * 1e3 / k)
            except Exception as e:
                if errors is None:
                    raise
                errors[name] = error_text(e)
                names.remove(name)
                del samples[name]
        if rounds < cfg.min_rounds:
            continue
        spreads = [quantile(v, 0.8) / quantile(v, 0.2) for v in samples.values()]
        if (all(s <= cfg.stable_spread for s in spreads) or rounds >= cfg.max_rounds
                or (time.perf_counter() - t_start) * 1e3 >= cfg.max_ms):
            break
    out = {}
    for name, v in samples.items():
        t = summarise(v)
        reasons = [f"p80/p20 {t.spread:.2f}"] if t.spread > cfg.noisy_spread else []
        if busy:
            reasons.append(busy)
        t.noisy = "; ".join(reasons) or None
        out[name] = t
    return out


def time_fn(fn: Callable[[], object], device: torch.device, cfg: TimerConfig) -> Timing:
    """One candidate on its own (the copy-bandwidth probe)."""
    return time_interleaved({"fn": fn}, device, cfg)["fn"]


def error_text(e: BaseException) -> str:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first}"[:300]


GRAPH_WARMUP_CALLS = 3


def time_cuda_graph(fn: Callable[[], object], cfg: TimerConfig,
                    prepare: Optional[Callable[[], object]] = None) -> Timing:
    """GPU time of one call of ``fn``: ``cfg.graph_calls`` calls captured in one CUDA graph, replayed.

    What makes the capture valid:
    * every input ``fn`` touches exists before capture (the caller's input sets), so the graph
      reads fixed addresses; outputs come from the graph's private pool and are dropped;
    * gradients come from ``torch.autograd.grad``, never ``.backward()``: nothing accumulates into
      ``.grad`` (the first captured call would allocate it, the later ones add to it: work the
      eager timing does not do);
    * warm-up calls run on the capture stream first: lazy work (Triton compiles and autotuning,
      cuBLAS workspaces, compiled-graph guards) happens there, not during capture;
    * the capture stream is a side stream, and ``prepare`` (e.g. building the forward graphs the
      backward-alone mode differentiates) runs on it too: autograd launches a backward op on the
      stream its forward ran on, and the legacy default stream may not be used during a capture.

    ``prepare``'s result is kept alive until the timing is done. Capture errors (an op that syncs
    with the host, a kernel launched on the default stream) propagate: the caller records them.
    Unlike ``do_bench`` the L2 is not flushed between calls; the input-set rotation (several sets
    captured in turn) is what keeps small cases from replaying from warm cache.
    """
    calls, replays = max(1, cfg.graph_calls), max(1, cfg.graph_replays)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.stream(stream):
            keep = prepare() if prepare is not None else None  # noqa: F841  (alive until return)
            for _ in range(GRAPH_WARMUP_CALLS):
                fn()
        stream.synchronize()
        # Default "global" error mode, as in examples/cuda_graph_critic_step.py (checked on an H200):
        # autograd runs CUDA backward ops on its own device thread, and that must be checked too.
        with torch.cuda.graph(graph, stream=stream):
            for _ in range(calls):
                fn()
        graph.replay()  # the first launch uploads the graph; keep it out of the samples
        torch.cuda.synchronize()
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(replays)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(replays)]
        for i in range(replays):
            starts[i].record()
            graph.replay()
            ends[i].record()
        torch.cuda.synchronize()
        return summarise([s.elapsed_time(e) / calls for s, e in zip(starts, ends)])
    finally:
        del graph  # frees the graph's private memory pool before the next case allocates
        keep = None  # noqa: F841
        with contextlib.suppress(Exception):  # cleanup after a failed capture must not hide its error
            torch.cuda.synchronize()


# --------------------------------------------------------------------------- copy bandwidth
def copy_bandwidth_gbps(device: torch.device, quick: bool = False) -> float:
    """GB/s of ``dst.copy_(src)`` on a tensor far bigger than the caches (read + write counted).

    This is the bandwidth ceiling an elementwise or reduction op can hope to reach on this machine.
    """
    if device.type == "cuda":
        n = (1 << 28) if not quick else (1 << 26)  # 1 GiB / 256 MiB of float32
    else:
        n = (1 << 25) if not quick else (1 << 24)  # 128 / 64 MiB: well past any per-core cache
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    cfg = TimerConfig(warmup_ms=20.0 if quick else 100.0, min_sample_ms=5.0 if quick else 20.0,
                      min_rounds=5 if quick else 11, max_rounds=15 if quick else 31)
    t = time_fn(lambda: dst.copy_(src), device, cfg)
    bytes_moved = 2 * n * src.element_size()
    del src, dst
    return bytes_moved / (t.ms * 1e-3) / 1e9


# --------------------------------------------------------------------------- counting and memory
class DispatchCounter(TorchDispatchMode):
    """Counts every op that reaches the dispatcher below autograd: aten ops and our custom ops."""

    def __init__(self):
        super().__init__()
        self.count = 0
        self.by_op: Dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        name = str(func.overloadpacket)
        self.by_op[name] = self.by_op.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


def count_dispatches(fn: Callable[[], object]) -> Optional[int]:
    with DispatchCounter() as c:
        fn()
    return c.count


def count_gpu_kernels(fn: Callable[[], object]) -> Optional[int]:
    """Number of GPU kernels (and memsets/copies) one call launches, from the profiler."""
    try:
        from torch.profiler import ProfilerActivity, profile

        torch.cuda.synchronize()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Profiler clears events at the end of each cycle"
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                fn()
                torch.cuda.synchronize()
        return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    except Exception:  # the profiler is optional information; never fail a run over it
        return None


def peak_memory_mib(fn: Callable[[], object], device: torch.device) -> Optional[float]:
    """Extra device memory (MiB) one call needs above what was allocated before it; None on CPU.

    On CPU there is no tensor-aware allocator statistic (tracemalloc does not see ATen's allocator),
    so the benchmark reports n/a rather than a misleading number.
    """
    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    keep = fn()  # noqa: F841  (outputs held until the peak is read)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated(device) - base
    del keep
    return peak / 2**20


def busy_cpu_note(device: torch.device) -> Optional[str]:
    """A warning when other processes load the CPU, else None.

    OpenMP threads spin at barriers: with other processes on the cores, one descheduled thread
    stalls every parallel op, and times grow 10-100x at random. One thread avoids the barriers.
    """
    if device.type != "cpu" or not hasattr(os, "getloadavg"):
        return None
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load <= 0.5 * cores:
        return None
    hint = "" if torch.get_num_threads() == 1 else "; --threads 1 (or OMP_NUM_THREADS=1) keeps them usable"
    return f"warning: load average {load:.1f} on {cores} cores -- CPU timings will be noisy{hint}"
