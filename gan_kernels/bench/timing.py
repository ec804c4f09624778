"""Timers, the copy-bandwidth probe, dispatch counting and peak memory.

GPU: ``triton.testing.do_bench`` (CUDA events around each call, L2 flushed before each call),
falling back to a CUDA-event loop of our own when triton is missing. CPU: ``time.perf_counter``
over batches of calls, several batches, after a warm-up.

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
from typing import Callable, Dict, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode


@dataclass
class Timing:
    median_ms: float
    p20_ms: float
    p80_ms: float
    samples: int


@dataclass
class TimerConfig:
    """How long to measure. ``quick`` trades precision for a short run."""

    warmup_ms: float = 25.0  # triton.testing.do_bench's defaults
    rep_ms: float = 100.0
    min_sample_ms: float = 2.0  # CPU: one sample is a batch of calls at least this long
    max_samples: int = 25
    graph_calls: int = 20  # calls captured in one CUDA graph; the replay time is divided by this
    graph_replays: int = 20  # timed replays (one sample each)

    @classmethod
    def quick(cls) -> "TimerConfig":
        return cls(warmup_ms=10.0, rep_ms=40.0, min_sample_ms=1.0, max_samples=9, graph_calls=10, graph_replays=5)


def _quantile(xs, q: float) -> float:
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    pos = q * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _summarise(samples_ms) -> Timing:
    return Timing(statistics.median(samples_ms), _quantile(samples_ms, 0.2), _quantile(samples_ms, 0.8), len(samples_ms))


def time_cpu(fn: Callable[[], object], cfg: TimerConfig) -> Timing:
    """Median and 20/80 % quantiles of one call, in ms, from batches of back-to-back calls."""
    fn()
    t0 = time.perf_counter()
    calls = 0
    while True:  # warm-up, which also estimates the per-call time
        fn()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed * 1e3 >= cfg.warmup_ms or calls >= 1000:
            break
    per_call_ms = elapsed * 1e3 / calls
    inner = max(1, math.ceil(cfg.min_sample_ms / per_call_ms))
    n_samples = int(max(3, min(cfg.max_samples, cfg.rep_ms / (inner * per_call_ms))))
    samples = []
    for _ in range(n_samples):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) * 1e3 / inner)
    return _summarise(samples)


def _time_cuda_events(fn: Callable[[], object], cfg: TimerConfig) -> Timing:
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(5):
        fn()
    end.record()
    torch.cuda.synchronize()
    est = max(start.elapsed_time(end) / 5, 1e-3)
    for _ in range(max(1, int(cfg.warmup_ms / est))):
        fn()
    n = max(3, min(1000, int(cfg.rep_ms / est)))
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    for i in range(n):
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()
    return _summarise([s.elapsed_time(e) for s, e in zip(starts, ends)])


def time_cuda(fn: Callable[[], object], cfg: TimerConfig) -> Timing:
    try:
        from triton.testing import do_bench
    except ImportError:
        return _time_cuda_events(fn, cfg)
    med, p20, p80 = do_bench(fn, warmup=int(cfg.warmup_ms), rep=int(cfg.rep_ms), quantiles=[0.5, 0.2, 0.8])
    return Timing(med, p20, p80, -1)


def time_fn(fn: Callable[[], object], device: torch.device, cfg: TimerConfig) -> Timing:
    return time_cuda(fn, cfg) if device.type == "cuda" else time_cpu(fn, cfg)


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
        return _summarise([s.elapsed_time(e) / calls for s, e in zip(starts, ends)])
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
    cfg = TimerConfig(warmup_ms=20.0 if quick else 100.0, rep_ms=100.0 if quick else 400.0, min_sample_ms=1.0)
    t = time_fn(lambda: dst.copy_(src), device, cfg)
    bytes_moved = 2 * n * src.element_size()
    del src, dst
    return bytes_moved / (t.median_ms * 1e-3) / 1e9


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
