"""The op sweep: every case x implementation x mode, timed, counted and written out.

``python -m gan_kernels bench`` lands here (:func:`main`). Rows are *long format*: one dict per
(case, implementation, mode) with the time, the speed-ups against the two baselines and the
bandwidth; :mod:`.report` turns them into the terminal table, JSON and CSV, :mod:`.plots` into PNGs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import itertools
import math
import os
import sys
import time
import zlib
from typing import Callable, Dict, List, Optional, Sequence

import torch

from . import cases as C
from . import report
from .timing import (
    TimerConfig,
    busy_cpu_note,
    copy_bandwidth_gbps,
    count_dispatches,
    count_gpu_kernels,
    error_text,
    peak_memory_mib,
    time_cuda_graph,
    time_interleaved,
    timing_fields,
)

MAX_SETS = 16


def _cache_bytes(device: torch.device) -> int:
    """The cache an input set should not fit in: GPU L2, or one CPU core's L2."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return int(getattr(props, "L2_cache_size", 50 << 20))
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index2/size") as f:
            text = f.read().strip().upper()
        mult = {"K": 1 << 10, "M": 1 << 20}.get(text[-1], 1)
        return int(text.rstrip("KM")) * mult
    except (OSError, ValueError):
        return 2 << 20


def n_input_sets(case: C.Case, device: torch.device) -> int:
    """How many input sets to rotate so that consecutive calls do not hit warm cache."""
    per_set = max(case.bytes("fwdbwd"), 1)
    return int(min(MAX_SETS, max(1, math.ceil(2 * _cache_bytes(device) / per_set))))


def _cycle(n: int) -> Callable[[], int]:
    it = itertools.cycle(range(n))
    return lambda: next(it)


def _reset_compiler() -> None:
    # Each case gets fresh compiled code for its own static shapes, and no case is starved by
    # dynamo's per-function recompile limit (all cases share the reference functions' code objects).
    with contextlib.suppress(Exception):
        torch._dynamo.reset()
    # Donated buffers let compiled backward reuse saved tensors for its outputs, which forbids
    # retain_graph=True -- and timing the backward alone needs retained graphs. It is a memory
    # optimisation: compiled rows' peak memory is measured without it (see bench/README.md).
    with contextlib.suppress(Exception):
        torch._functorch.config.donated_buffer = False


def _optional(measure, *args):
    """A secondary measurement (counts, memory): None rather than a lost row when it fails."""
    try:
        return measure(*args)
    except Exception:
        return None


def _graph_error_text(e: BaseException) -> str:
    """The first error of a failed capture: ending a broken capture raises a second, vaguer one."""
    chain = [e]
    while chain[-1].__context__ is not None and len(chain) < 5:
        chain.append(chain[-1].__context__)
    root = error_text(chain[-1])
    return root if len(chain) == 1 else f"{root} (then {error_text(e)})"[:300]


TIME_FIELDS = ("ms", "median_ms", "p20_ms", "p80_ms", "rounds", "noisy")
GRAPH_FIELDS = ("graph_median_ms", "graph_p20_ms", "graph_p80_ms", "graph_error")


def measure_case(case: C.Case, impls: Sequence[str], device: torch.device, cfg: TimerConfig,
                 on_impl: Optional[Callable[[str], None]] = None, graph: Optional[bool] = None) -> List[Dict]:
    """Rows for every (impl, mode) of ``case``; all of them timed in one interleaved measurement.

    ``graph`` (default: on for CUDA, off on CPU) adds the CUDA-graph replay time of the same calls
    (``graph_*`` fields); a failed capture is recorded in ``graph_error``, the row stays.
    """
    graph = device.type == "cuda" if graph is None else graph
    gen = torch.Generator(device=device).manual_seed(zlib.crc32(case.id.encode()))
    k = n_input_sets(case, device)
    sets = [C.make_inputs(case, device, gen) for _ in range(k)]
    base: Dict[str, Dict] = {}
    fns: Dict[str, Callable] = {}
    first_errors: Dict[str, str] = {}
    for impl in impls:
        if on_impl:
            on_impl(impl)
        if impl == "compiled":
            _reset_compiler()
        base[impl] = {"op": case.op, "kind": case.kind, "name": case.name, "size": case.size, "numel": case.numel,
                      "dtype": case.dtype_name, "impl": impl, "input_sets": k}
        try:
            t0 = time.perf_counter()
            fn = C.impl_fn(case, impl)
            C.backward(fn(sets[0]), sets[0])  # first call: compiles, loads, warms every path
            base[impl]["first_call_s"] = round(time.perf_counter() - t0, 3)  # for "compiled": compile time
            fns[impl] = fn
        except Exception as e:  # e.g. a torch.compile failure: record it, keep benchmarking
            first_errors[impl] = error_text(e)

    held: Dict[str, list] = {}

    def calls_for(impl: str, fn: Callable) -> Dict[str, Callable[[], object]]:
        nxt = _cycle(k)

        def bwd_only(i):
            return C.backward(held[impl][i], sets[i], retain_graph=True)

        return {
            "fwd": lambda: fn(sets[nxt()]),
            # The backward alone, on graphs built beforehand and kept (retain_graph).
            "bwd": lambda: bwd_only(nxt()),
            "fwdbwd": lambda: (lambda s: C.backward(fn(s), s))(sets[nxt()]),
        }

    def build_outs(impl: str) -> Callable[[], list]:
        def build():
            held[impl] = [fns[impl](s) for s in sets]
            return held[impl]
        return build

    calls = {impl: calls_for(impl, fn) for impl, fn in fns.items()}
    errors: Dict[tuple, str] = {}
    timings: Dict[tuple, object] = {}
    try:
        for impl in fns:
            build_outs(impl)()
        named = {(impl, mode): c for impl, cs in calls.items() for mode, c in cs.items()}
        errs: Dict = {}
        timings = time_interleaved(named, device, cfg, errs)
        errors.update(errs)
    finally:
        held.clear()

    graph_timings: Dict[tuple, object] = {}
    graph_errors: Dict[tuple, str] = {}
    if graph:
        for impl in fns:
            for mode in C.MODES:
                if (impl, mode) in errors:
                    continue
                try:
                    graph_timings[(impl, mode)] = time_cuda_graph(
                        calls[impl][mode], cfg, build_outs(impl) if mode == "bwd" else None)
                except Exception as e:  # e.g. an op that syncs with the host: record, keep going
                    graph_errors[(impl, mode)] = _graph_error_text(e)
                finally:
                    held.clear()

    rows: List[Dict] = []
    for impl in impls:
        if impl in first_errors:
            rows += [dict(base[impl], mode=m, error=first_errors[impl], **{f: None for f in TIME_FIELDS + GRAPH_FIELDS})
                     for m in C.MODES]
            continue
        fn = fns[impl]

        def once(fn=fn):
            return C.backward(fn(sets[0]), sets[0])

        extra = {
            # Dispatch modes and compiled graphs do not mix; the kernel count below covers compiled code.
            "ops_dispatched": None if impl == "compiled" else _optional(count_dispatches, once),
            "gpu_kernels": _optional(count_gpu_kernels, once) if device.type == "cuda" else None,
            "peak_mem_mib": _optional(peak_memory_mib, once, device),
        }
        for mode in C.MODES:
            t = timings.get((impl, mode))
            g = graph_timings.get((impl, mode))
            row = dict(base[impl], mode=mode, **timing_fields(t), error=errors.get((impl, mode)),
                       graph_median_ms=g and g.median_ms, graph_p20_ms=g and g.p20_ms, graph_p80_ms=g and g.p80_ms,
                       graph_error=graph_errors.get((impl, mode)))
            if mode == "fwdbwd":
                row.update(extra)
            rows.append(row)
    return rows


def ratio(baseline_ms: Optional[float], ms: Optional[float]) -> Optional[float]:
    """baseline time / this time (> 1: faster than the baseline); None when either is missing."""
    return baseline_ms / ms if (baseline_ms and ms) else None


def add_derived(rows: List[Dict], copy_gbps: Optional[float], cases_by_key: Dict) -> None:
    """Speed-ups against the eager and compiled rows of the same case and mode; GB/s; % of copy.

    Wall-clock times are compared with wall-clock, CUDA-graph times with CUDA-graph times
    (``graph_speedup_vs_*``): never one with the other.
    """
    base, gbase = {}, {}
    for r in rows:
        if r["impl"] in C.BASELINES:
            k = (r["name"], r["size"], r["dtype"], r["mode"], r["impl"])
            if r["ms"]:
                base[k] = r["ms"]
            if r.get("graph_median_ms"):
                gbase[k] = r["graph_median_ms"]
    for r in rows:
        key = (r["name"], r["size"], r["dtype"], r["mode"])
        t = r["ms"]
        case = cases_by_key[(r["name"], r["size"], r["dtype"])]
        r["bytes"] = case.bytes(r["mode"])
        for f in GRAPH_FIELDS:
            r.setdefault(f, None)
        gt = r["graph_median_ms"]
        for b in C.BASELINES:
            r[f"speedup_vs_{b}"] = ratio(base.get(key + (b,)), t)
            r[f"graph_speedup_vs_{b}"] = ratio(gbase.get(key + (b,)), gt)
        r["gbps"] = (r["bytes"] / (t * 1e-3) / 1e9) if t else None
        r["pct_copy"] = (100.0 * r["gbps"] / copy_gbps) if (r["gbps"] and copy_gbps) else None
        r["graph_gbps"] = (r["bytes"] / (gt * 1e-3) / 1e9) if gt else None
        r["graph_pct_copy"] = (100.0 * r["graph_gbps"] / copy_gbps) if (r["graph_gbps"] and copy_gbps) else None
        for k in ("ops_dispatched", "gpu_kernels", "peak_mem_mib"):
            r.setdefault(k, None)


# --------------------------------------------------------------------------- CLI
PARTS = ("ops", "host", "steps", "multi")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="fewer sizes, fewer rounds, smaller critic steps (about a minute on 2 CPU cores)")
    p.add_argument("--only", nargs="+", default=None, metavar="PART",
                   help=f"run only these parts: {' '.join(PARTS)} (ops: the op sweep; host: per-call host time "
                        "against the eager formula and the floor; steps: whole WGAN-GP critic steps; multi: the "
                        "losses over the HiFi-GAN V1 and pix2pixHD discriminator sets against their loops); "
                        "default: all")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available, else cpu")
    p.add_argument("--ops", nargs="+", default=None, metavar="OP",
                   help="ops by op (every kind of it) or op/kind; default: the kinds GAN code uses most. "
                        f"Accepted: {' '.join(C.known_op_names())}")
    p.add_argument("--shape", nargs="+", default=None, metavar="SHAPE",
                   help="your own sizes instead of the sweep, e.g. 256 or 64x3x32x32 (a loss reads one as its "
                        "logit map)")
    p.add_argument("--batch", type=int, default=None, metavar="B",
                   help="batch size: replaces the first size of every shape (the host table's too)")
    p.add_argument("--dtypes", nargs="+", default=None, choices=sorted(C.DTYPES),
                   help="default: float32 on CPU; float32 bfloat16 on CUDA (float32 only with --quick)")
    p.add_argument("--backends", nargs="+", default=None, metavar="BACKEND",
                   help="back ends to run (default: every available one that runs on the device)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: ./gan_kernels_bench/<machine>-<YYYYmmdd-HHMMSS>/, a new one "
                        "per run); an existing folder that holds a result is never overwritten")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (torch.set_num_threads); 1 gives stable numbers on a busy machine. "
                        "The host table always runs on one thread")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile baseline")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-graph", action="store_true",
                   help="CUDA: skip the second timing by CUDA-graph replay (kernel time without host overhead)")


def _pick_device(name: Optional[str]) -> torch.device:
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    return torch.device(name, torch.cuda.current_device()) if name == "cuda" else torch.device("cpu")


def out_dir_for(args_out: Optional[str], device_slug: str, now: Optional[_dt.datetime] = None) -> str:
    """The folder this run writes to: ``--out`` (refused if it already holds a result) or a new
    timestamped folder under ./gan_kernels_bench/ (suffixed -2, -3... rather than reusing one)."""
    if args_out:
        if os.path.exists(os.path.join(args_out, "results.json")):
            raise ValueError(f"--out {args_out} already holds a benchmark result; choose another folder")
        os.makedirs(args_out, exist_ok=True)
        return args_out
    now = now or _dt.datetime.now()
    base = os.path.join("gan_kernels_bench", f"{device_slug}-{now.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs("gan_kernels_bench", exist_ok=True)
    path, n = base, 1
    while True:
        try:
            os.mkdir(path)  # atomic: two runs started in the same second get two folders
            return path
        except FileExistsError:
            n += 1
            path = f"{base}-{n}"


class _PlainProgress:
    """Stand-in for tqdm where it is not installed: a line every few percent on stderr."""

    def __init__(self, total: int, **_):
        self.total, self.n, self.last = max(total, 1), 0, -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.text = text

    def update(self, k: int = 1) -> None:
        self.n += k
        pct = 100 * self.n // self.total
        if pct // 10 != self.last // 10:
            self.last = pct
            print(f"  {pct:3d}% ({self.n}/{self.total}) {getattr(self, 'text', '')}", file=sys.stderr, flush=True)


def _progress(total: int):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _PlainProgress(total)
    return tqdm(total=total, unit="run", disable=None, file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    try:
        return _main(args)
    except ValueError as e:  # a bad name or size on the command line: say which, and what is accepted
        print(f"gan_kernels bench: error: {e}", file=sys.stderr)
        return 2


def _parts(only: Optional[Sequence[str]]) -> List[str]:
    if not only:
        return list(PARTS)
    unknown = [p for p in only if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown --only {' '.join(unknown)}; accepted: {' '.join(PARTS)}")
    return [p for p in PARTS if p in only]


def _main(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    parts = _parts(args.only)
    device = _pick_device(args.device)
    shapes = [C.parse_shape(s) for s in args.shape] if args.shape else None
    if args.batch is not None and args.batch <= 0:
        raise ValueError(f"--batch {args.batch}: must be a positive integer")
    C.select(args.ops)  # rejects unknown names before anything runs
    backends = C.backends_for(device.type, args.backends)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.dtypes:
        dtypes = [C.DTYPES[d] for d in args.dtypes]
    elif device.type == "cuda" and not args.quick:
        dtypes = [torch.float32, torch.bfloat16]
    else:
        dtypes = [torch.float32]
    impls = ["eager"] + ([] if args.no_compile else ["compiled"]) + backends
    cfg = TimerConfig.quick() if args.quick else TimerConfig()
    graph = device.type == "cuda" and not args.no_graph and "ops" in parts

    meta = report.metadata(device, backends, dtypes, args)
    out_dir = out_dir_for(args.out, meta["device_slug"])
    print(f"gan_kernels bench on {meta['device']} (torch {meta['torch']}, triton {meta['triton']}); "
          f"implementations: {', '.join(impls)}; writing to {out_dir}", flush=True)
    meta["parts"] = parts
    meta["timer"] = {"estimate": "p20 of interleaved rounds", "min_rounds": cfg.min_rounds,
                     "max_rounds": cfg.max_rounds, "noisy_spread": cfg.noisy_spread}
    meta["graph"] = ({"calls_per_graph": cfg.graph_calls, "replays": cfg.graph_replays} if graph else None)
    meta["load_average"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    note = busy_cpu_note(device)
    if note:
        print(note, file=sys.stderr)

    t_cases = time.perf_counter()
    case_list = C.cases_for(device.type, args.quick, args.ops, dtypes, shapes, args.batch) if "ops" in parts else []
    if case_list or "multi" in parts:
        meta["copy_gbps"] = copy_bandwidth_gbps(device, quick=args.quick)
        print(f"measured copy bandwidth: {meta['copy_gbps']:.1f} GB/s", flush=True)
    else:
        meta["copy_gbps"] = None
    cases_by_key = {(c.name, c.size, c.dtype_name): c for c in case_list}
    if args.quick:
        # Compiling costs seconds per graph on a small CPU, more than all the timing of a quick run:
        # --quick compiles the baseline only at each op's largest size, where it matters most.
        largest = {}
        for c in case_list:
            k = (c.name, c.dtype_name)
            if k not in largest or c.numel > largest[k].numel:
                largest[k] = c
        compile_for = set(largest.values())
    else:
        compile_for = set(case_list)

    from .e2e import configs as e2e_configs
    from .host import host_cases
    from .multi import LOSSES as multi_losses, multi_cases

    h_cases = host_cases(args.ops, args.batch) if "host" in parts else []
    e_configs = e2e_configs(device, args.quick) if "steps" in parts else []
    m_cases = multi_cases(args.quick) if "multi" in parts else []
    rows: List[Dict] = []
    host_rows: List[Dict] = []
    e2e_rows: List[Dict] = []
    multi_rows: List[Dict] = []
    with _progress(len(case_list) * len(impls) + len(h_cases) + len(e_configs)
                   + len(multi_losses) * len(m_cases)) as bar:
        def tick(label):
            bar.set_postfix_str(label, refresh=False)
            bar.update(1)

        for case in case_list:
            case_impls = impls if case in compile_for else [i for i in impls if i != "compiled"]
            bar.update(len(impls) - len(case_impls))
            rows += measure_case(case, case_impls, device, cfg, lambda impl, case=case: tick(f"{case.id} {impl}"),
                                 graph=graph)
        add_derived(rows, meta["copy_gbps"], cases_by_key)
        t_ops = time.perf_counter()
        if h_cases:
            from .host import run_host

            host_rows = run_host(device, backends, h_cases, TimerConfig.host(), tick)
        t_host = time.perf_counter()
        if e_configs:
            from .e2e import run_e2e

            e2e_rows = run_e2e(device, backends, e_configs, cfg, tick)
        t_steps = time.perf_counter()
        if m_cases:
            from .multi import run_multi

            multi_rows = run_multi(device, backends, m_cases, cfg, meta["copy_gbps"], tick)

    t_end = time.perf_counter()
    meta["elapsed_s"] = round(t_end - t_start, 1)
    compile_s = sum(r.get("first_call_s") or 0 for r in rows if r["impl"] == "compiled" and r["mode"] == "fwd")
    meta["phase_s"] = {"setup_and_copy": round(t_cases - t_start, 1), "ops": round(t_ops - t_cases, 1),
                       "of_which_compile": round(compile_s, 1), "host": round(t_host - t_ops, 1),
                       "steps": round(t_steps - t_host, 1), "multi": round(t_end - t_steps, 1)}
    result = {"meta": meta, "results": rows, "host": host_rows, "e2e": e2e_rows, "multi": multi_rows}
    table = report.format_tables(result)
    print(table)
    paths = report.write(result, out_dir, table)
    if not args.no_plots and rows:
        try:
            from . import plots

            paths += plots.write(result, out_dir)
        except ImportError as e:  # matplotlib is an optional dependency (the "bench" extra)
            print(f"note: no plots ({e}); `pip install matplotlib` adds them", file=sys.stderr)
    print(f"wrote {', '.join(paths)} ({meta['elapsed_s']:.0f} s)")
    return 0
