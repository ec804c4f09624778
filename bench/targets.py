"""This project's own speed targets for its GPU back ends, judged on benchmark rows (development tool).

    python bench/targets.py [--device cuda] [--out DIR]     # run the target cases, print PASS / FAIL
    python bench/targets.py --results results.json          # judge a saved `gan_kernels bench` run

Not part of the installed package: users get the measurements from ``python -m gan_kernels bench``;
whether they meet the goals this project set itself is a question for its developers.

The targets (float32, forward+backward, ratios from one run):

* gradient penalty (wgan-gp) at 64x3x256x256: at least 85 % of the measured device copy bandwidth,
  counting 3 passes over the gradient (read g for the norms, read g again and write dg), and at
  least 3x the eager reference;
* d_loss at B=256: at least 5x the eager reference;
* no host synchronisation: every call of every kernel back end captured in a CUDA graph;
* ``backend="auto"`` picks the faster of cuda / triton for each op.

On a CUDA device the speed verdicts use the CUDA-graph replay times (``graph_*`` fields): kernel
time without Python, autograd or launch overhead, which is what a captured training step pays and
what "one launch forward, one backward" promises. The wall-clock value is shown next to it. On a
CPU there is no graph time: the wall-clock values are shown for information (the targets are GPU
targets).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Dict, List, Optional, Sequence

import torch

from gan_kernels.bench import cases as C
from gan_kernels.bench.report import md_table

PENALTY_SHAPE = (64, 3, 256, 256)
LOSS_SHAPE = (256,)
PENALTY_PCT_COPY = 85.0
PENALTY_VS_EAGER = 3.0
D_LOSS_VS_EAGER = 5.0
KERNEL_IMPLS = ("cuda", "triton", "cpu")


def target_cases(dtypes: Sequence[torch.dtype] = (torch.float32,)) -> List[C.Case]:
    """The benchmark cases the targets are judged on."""
    out = []
    for dtype in dtypes:
        out.append(C.Case("d_loss", "hinge", LOSS_SHAPE, dtype))
        out.append(C.Case("d_loss", "logistic", LOSS_SHAPE, dtype))
        out.append(C.Case("grad_penalty", "wgan-gp", PENALTY_SHAPE, dtype))
    return out


def _pick(row: Dict, field: str, use_graph: bool):
    """(judged value, wall-clock value): the graph field where graph times exist, else wall-clock."""
    wall = row.get(field)
    return (row.get("graph_" + field) if use_graph else wall), wall


def _verdict(target: str, impl: str, value, wall, threshold: float, unit: str, measure: str) -> Dict:
    return {"target": target, "impl": impl, "measure": measure, "value": value, "wall_value": wall,
            "threshold": threshold, "unit": unit, "ok": None if value is None else bool(value >= threshold)}


def evaluate(rows: List[Dict], device_type: str, auto_order: Optional[Dict[str, Sequence[str]]] = None) -> List[Dict]:
    """One verdict dict per (target, implementation) whose case is among ``rows``."""
    use_graph = device_type == "cuda"
    measure = "gpu (graph replay)" if use_graph else "wall-clock"
    fb = {(r["name"], r["size"], r["dtype"], r["impl"]): r for r in rows if r["mode"] == "fwdbwd"}
    impls = [i for i in KERNEL_IMPLS if any(k[3] == i for k in fb)]
    size_p, size_l = C.shape_label(PENALTY_SHAPE), C.shape_label(LOSS_SHAPE)
    out: List[Dict] = []
    for impl in impls:
        r = fb.get(("grad_penalty/wgan-gp", size_p, "float32", impl))
        if r is not None:
            out.append(_verdict(f"grad_penalty wgan-gp {size_p} fwd+bwd, % of copy bandwidth", impl,
                                *_pick(r, "pct_copy", use_graph), PENALTY_PCT_COPY, "%", measure))
            out.append(_verdict(f"grad_penalty wgan-gp {size_p} fwd+bwd, x eager", impl,
                                *_pick(r, "speedup_vs_eager", use_graph), PENALTY_VS_EAGER, "x", measure))
        for kind in ("hinge", "logistic"):
            r = fb.get((f"d_loss/{kind}", size_l, "float32", impl))
            if r is not None:
                out.append(_verdict(f"d_loss {kind} B={size_l} fwd+bwd, x eager", impl,
                                    *_pick(r, "speedup_vs_eager", use_graph), D_LOSS_VS_EAGER, "x", measure))
    if use_graph:
        for impl in impls:
            mine = [r for r in rows if r["impl"] == impl]
            if mine:
                failed = sorted({f"{r['name']} {r['size']} {r['dtype']} {r['mode']}" for r in mine if r.get("graph_error")})
                timed = sum(1 for r in mine if r.get("graph_median_ms"))
                v = {"target": "no host sync: every call captured in a CUDA graph", "impl": impl,
                     "measure": "capture", "value": timed, "wall_value": None, "threshold": len(mine),
                     "unit": " captured", "ok": not failed and timed == len(mine)}
                if failed:
                    v["failed"] = failed
                out.append(v)
        out += _auto_verdicts(fb, auto_order)
    return out


def _ms(row: Dict) -> Optional[float]:
    """The row's wall-clock estimate (``ms``; ``median_ms`` in results written before it existed)."""
    return row.get("ms", row.get("median_ms"))


def _auto_verdicts(fb: Dict, auto_order: Optional[Dict[str, Sequence[str]]]) -> List[Dict]:
    """Per target case timed on both GPU back ends: is auto's first choice the faster one?"""
    if auto_order is None:
        from gan_kernels._registry import AUTO_GPU_ORDER as auto_order
    out = []
    cases = sorted({k[:3] for k in fb if k[3] == "cuda"} & {k[:3] for k in fb if k[3] == "triton"})
    for name, size, dtype in cases:
        op = name.split("/")[0]
        first = auto_order[op][0]
        times = {impl: fb[(name, size, dtype, impl)] for impl in ("cuda", "triton")}
        wall = {i: _ms(r) for i, r in times.items()}
        gpu = {i: r.get("graph_median_ms") for i, r in times.items()}
        faster = min(wall, key=lambda i: wall[i] if wall[i] else float("inf"))
        faster_gpu = min(gpu, key=lambda i: gpu[i] if gpu[i] else float("inf"))
        out.append({"target": f"auto picks the faster back end: {name} {size} {dtype}", "impl": first,
                    "measure": "wall-clock", "value": wall[first], "wall_value": wall[first],
                    "threshold": wall["triton" if first == "cuda" else "cuda"], "unit": " ms",
                    "ok": None if not all(wall.values()) else faster == first,
                    "faster_wall": faster, "faster_gpu": faster_gpu, "wall_ms": wall, "gpu_ms": gpu})
    return out


def _fmt(v, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "x":
        return f"{v:.2f}x"
    if unit == "%":
        return f"{v:.0f}%"
    if unit == " ms":
        return f"{v * 1e3:.1f} µs"
    return f"{v}{unit}"


def format_verdicts(verdicts: List[Dict], device_type: str) -> str:
    """A markdown table: target, implementation, judged value, wall-clock value, threshold, verdict."""
    lines = []
    for v in verdicts:
        verdict = "n/a" if v["ok"] is None else ("PASS" if v["ok"] else "FAIL")
        if device_type != "cuda" and v["ok"] is not None:
            verdict += " (info: GPU target)"
        if v["unit"] == " ms":
            other = "triton" if v["impl"] == "cuda" else "cuda"
            need = f"auto = {v['impl']}; {other} {_fmt(v['threshold'], ' ms')}; gpu-time winner {v['faster_gpu']}"
            value = f"{v['impl']} {_fmt(v['value'], ' ms')}"
        else:
            need = (">= " if v["unit"] != " captured" else "all ") + _fmt(v["threshold"], v["unit"])
            value = _fmt(v["value"], v["unit"])
        extra = ("; failed: " + ", ".join(v["failed"][:4])) if v.get("failed") else ""
        wall = _fmt(v["wall_value"], v["unit"]) if v["unit"] in ("x", "%") else ""
        lines.append([v["target"], v["impl"], v["measure"], value, wall, need + extra, verdict])
    header = ["target", "impl", "judged on", "value", "wall-clock", "needs", "verdict"]
    return md_table(header, lines)


# --------------------------------------------------------------------------- auto order from a run
def suggest_auto_order(rows: List[Dict]) -> Dict[str, Dict]:
    """Per op, the GPU back ends ordered by the geometric mean of their fwd+bwd wall-clock over the
    run's float32 cases (what ``AUTO_GPU_ORDER`` in gan_kernels/_registry.py is decided by), with the
    per-case wall-clock and graph times behind it."""
    import math

    fb = [r for r in rows if r["mode"] == "fwdbwd" and r["impl"] in ("cuda", "triton") and r["dtype"] == "float32"]
    out: Dict[str, Dict] = {}
    for op in sorted({r["op"] for r in fb}):
        cases = sorted({(r["name"], r["size"], r["numel"]) for r in fb if r["op"] == op}, key=lambda c: (c[0], c[2]))
        times = {(r["name"], r["size"], r["impl"]): r for r in fb if r["op"] == op}
        both = [c for c in cases if all((c[0], c[1], i) in times and _ms(times[(c[0], c[1], i)])
                                        for i in ("cuda", "triton"))]
        if not both:
            continue
        logs = {i: sum(math.log(_ms(times[(c[0], c[1], i)])) for c in both) / len(both)
                for i in ("cuda", "triton")}
        order = tuple(sorted(logs, key=logs.get))
        lines = []
        for name, size, _ in both:
            cu, tr = times[(name, size, "cuda")], times[(name, size, "triton")]
            gpu = ""
            if cu.get("graph_median_ms") and tr.get("graph_median_ms"):
                gpu = f" (gpu {cu['graph_median_ms'] * 1e3:.1f} vs {tr['graph_median_ms'] * 1e3:.1f} us)"
            lines.append(f"{name} {size}: {_ms(cu) * 1e3:.0f} vs {_ms(tr) * 1e3:.0f} us{gpu}")
        out[op] = {"order": order, "cases": lines}
    return out


def run_targets(device_name: Optional[str], out: Optional[str], no_compile: bool) -> Dict:
    """Measure the target cases (float32) as the bench command would, and judge them."""
    from gan_kernels.bench import report
    from gan_kernels.bench.run import _pick_device, add_derived, measure_case, out_dir_for
    from gan_kernels.bench.timing import TimerConfig, copy_bandwidth_gbps

    device = _pick_device(device_name)
    backends = C.backends_for(device.type)
    impls = ["eager"] + ([] if no_compile else ["compiled"]) + backends
    cases = target_cases()
    meta = report.metadata(device, backends, [torch.float32], argparse.Namespace(quick=False))
    out_dir = out_dir_for(out, meta["device_slug"] + "-targets")
    meta["copy_gbps"] = copy_bandwidth_gbps(device)
    graph = device.type == "cuda"
    cfg = TimerConfig()
    meta["graph"] = {"calls_per_graph": cfg.graph_calls, "replays": cfg.graph_replays} if graph else None
    rows: List[Dict] = []
    for case in cases:
        rows += measure_case(case, impls, device, cfg, graph=graph)
    add_derived(rows, meta["copy_gbps"], {(c.name, c.size, c.dtype_name): c for c in cases})
    result = {"meta": meta, "results": rows, "host": [], "e2e": []}
    result["targets"] = evaluate(rows, device.type)
    text = report.format_tables(result) + "\n\n" + _verdict_section(result)
    report.write(result, out_dir, text)
    print(text)
    print(f"wrote {out_dir}")
    return result


def _verdict_section(result: Dict) -> str:
    meta = result["meta"]
    judged = "CUDA-graph replay (kernel time)" if meta["device_type"] == "cuda" else "wall-clock, for information"
    return (f"### Speed targets of the GPU back ends (float32; judged on {judged})\n\n"
            + format_verdicts(result.get("targets") or evaluate(result["results"], meta["device_type"]),
                              meta["device_type"]))


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description="This project's speed targets: run the target cases, or judge a saved run")
    p.add_argument("--results", default=None, help="results.json written by `python -m gan_kernels bench`: judge it "
                                                   "and print the AUTO_GPU_ORDER its times suggest")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument("--out", default=None, help="output folder of the run (default: a new one under ./gan_kernels_bench/)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile baseline")
    args = p.parse_args(argv)
    if args.results is None:
        run_targets(args.device, args.out, args.no_compile)
        return 0
    with open(args.results) as f:
        result = json.load(f)
    meta, rows = result["meta"], result["results"]
    print(f"{meta['device']} -- torch {meta['torch']}, triton {meta['triton']}, {meta['date']}\n")
    print(format_verdicts(evaluate(rows, meta["device_type"]), meta["device_type"]))
    suggestion = suggest_auto_order(rows)
    if suggestion:
        print("\nSuggested AUTO_GPU_ORDER (cuda vs triton fwd+bwd wall-clock, float32):")
        for op, s in suggestion.items():
            print(f'    "{op}": {s["order"]!r},')
            for line in s["cases"]:
                print(f"        # {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
