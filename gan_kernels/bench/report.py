"""Run metadata, the terminal / markdown tables, and the JSON and CSV files."""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import platform
import re
import sys
from typing import Dict, List, Optional

import torch

from . import cases as C

ROW_FIELDS = [
    "op", "kind", "name", "size", "numel", "dtype", "impl", "mode", "median_ms", "p20_ms", "p80_ms",
    "speedup_vs_eager", "speedup_vs_compiled", "bytes", "gbps", "pct_copy",
    # CUDA only (empty on CPU): the same calls timed as CUDA-graph replays, and ratios between those
    "graph_median_ms", "graph_p20_ms", "graph_p80_ms", "graph_speedup_vs_eager", "graph_speedup_vs_compiled",
    "graph_gbps", "graph_pct_copy",
    "ops_dispatched", "gpu_kernels", "peak_mem_mib", "input_sets", "first_call_s", "error", "graph_error",
]
E2E_FIELDS = ["model", "input", "impl", "median_ms", "p20_ms", "p80_ms", "speedup_vs_eager", "first_loss", "error"]
META_KEYS = ["device", "torch", "triton", "date"]  # repeated on every CSV line, so files concatenate


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_name()} ({os.cpu_count()} cores)"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def metadata(device: torch.device, backends: List[str], dtypes, args) -> Dict:
    import gan_kernels

    try:
        import triton

        triton_version: Optional[str] = triton.__version__
    except ImportError:
        triton_version = None
    name = device_name(device)
    return {
        "device": name,
        "device_type": device.type,
        "device_slug": slug(name.replace("(R)", "").replace("(TM)", "")),
        "torch": torch.__version__,
        "triton": triton_version,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "gan_kernels": gan_kernels.__version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "torch_threads": torch.get_num_threads(),
        "backends": backends,
        "dtypes": [C.DTYPE_NAMES[d] for d in dtypes],
        "quick": bool(getattr(args, "quick", False)),
        "command": " ".join(["python -m gan_kernels"] + sys.argv[1:]),
    }


# --------------------------------------------------------------------------- formatting
def _us(ms: Optional[float]) -> str:
    if ms is None:
        return "-"
    us = ms * 1e3
    return f"{us:.1f}" if us < 100 else f"{us:.0f}"


def _x(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _num(v, fmt: str = "{:.1f}", none: str = "-") -> str:
    return none if v is None else fmt.format(v)


def _md_table(header: List[str], lines: List[List[str]]) -> str:
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(header)]
    def fmt(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(header), sep] + [fmt(l) for l in lines])


def op_table(rows: List[Dict], device_type: str) -> str:
    """One line per (case, implementation); fwd+bwd is the headline, fwd and bwd alongside."""
    by = {}
    order = []
    for r in rows:
        key = (r["name"], r["size"], r["dtype"], r["impl"])
        if key not in by:
            by[key] = {}
            order.append(key)
        by[key][r["mode"]] = r
    mem_na = "n/a" if device_type != "cuda" else "-"
    # gpu µs / vs eager (gpu) stay on CPU as "-": one layout for every device's table.
    header = ["op", "size", "dtype", "impl", "fwd+bwd µs (p20-p80)", "fwd µs", "bwd µs", "vs eager",
              "vs compiled", "gpu µs", "vs eager (gpu)", "GB/s", "% copy", "ops"]
    header += (["kernels"] if device_type == "cuda" else []) + ["peak MiB"]
    lines = []
    for key in order:
        m = by[key]
        fb = m.get("fwdbwd", {})
        if fb.get("error"):
            time_cell = "failed: " + fb["error"][:60]
        else:
            time_cell = f"{_us(fb.get('median_ms'))} ({_us(fb.get('p20_ms'))}-{_us(fb.get('p80_ms'))})"
        line = [key[0], key[1], key[2], key[3], time_cell,
                _us(m.get("fwd", {}).get("median_ms")), _us(m.get("bwd", {}).get("median_ms")),
                _x(fb.get("speedup_vs_eager")), _x(fb.get("speedup_vs_compiled")),
                "failed" if fb.get("graph_error") else _us(fb.get("graph_median_ms")),
                _x(fb.get("graph_speedup_vs_eager")),
                _num(fb.get("gbps"), "{:.3g}"), _num(fb.get("pct_copy"), "{:.0f}%"),
                _num(fb.get("ops_dispatched"), "{:d}", "n/a" if key[3] == "compiled" else "-")]
        if device_type == "cuda":
            line.append(_num(fb.get("gpu_kernels"), "{:d}"))
        line.append(_num(fb.get("peak_mem_mib"), "{:.2f}", mem_na))
        lines.append(line)
    return _md_table(header, lines)


def graph_failures(rows: List[Dict]) -> List[str]:
    """One line per (case, implementation) whose CUDA-graph capture failed, with the first error."""
    seen, out = set(), []
    for r in rows:
        key = (r["name"], r["size"], r["dtype"], r["impl"])
        if r.get("graph_error") and key not in seen:
            seen.add(key)
            out.append(f"* {r['name']} {r['size']} {r['dtype']} {r['impl']} ({r['mode']}): {r['graph_error']}")
    return out


def e2e_table(rows: List[Dict]) -> str:
    header = ["critic step", "input", "impl", "step ms (p20-p80)", "vs hand-written", "first loss"]
    lines = []
    for r in rows:
        if r.get("error"):
            t = "failed: " + r["error"][:60]
        else:
            t = f"{r['median_ms']:.2f} ({r['p20_ms']:.2f}-{r['p80_ms']:.2f})"
        lines.append([r["model"], r["input"], r["impl"], t, _x(r.get("speedup_vs_eager")),
                      _num(r.get("first_loss"), "{:.5f}")])
    return _md_table(header, lines)


def format_tables(result: Dict) -> str:
    meta = result["meta"]
    parts = [
        f"## {meta['device']} -- torch {meta['torch']}, triton {meta['triton']}, {meta['date']}",
        f"copy bandwidth {meta['copy_gbps']:.1f} GB/s; times are medians of one call; 'vs' = baseline time / "
        "this time (fwd+bwd); ops = ops dispatched per fwd+bwd",
        "",
        op_table(result["results"], meta["device_type"]),
    ]
    graph = meta.get("graph")
    if graph:
        parts[1] += (f"; gpu µs = fwd+bwd kernel time from a CUDA-graph replay of {graph['calls_per_graph']} calls "
                     "(no host overhead), 'vs eager (gpu)' compares those")
    failures = graph_failures(result["results"])
    if failures:
        parts += ["", "CUDA-graph capture failed (gpu µs 'failed'):"] + failures
    if result.get("targets"):
        from .targets import format_verdicts

        judged = "CUDA-graph replay (kernel time)" if meta["device_type"] == "cuda" else "wall-clock, for information"
        parts += ["", f"### Speed targets of the GPU back ends (float32; judged on {judged})", "",
                  format_verdicts(result["targets"], meta["device_type"])]
    if result.get("e2e"):
        parts += ["", "### WGAN-GP critic step (d_loss + penalty + backward + Adam)", "", e2e_table(result["e2e"])]
    return "\n".join(parts)


# --------------------------------------------------------------------------- files
def write(result: Dict, out_dir: str, table: str) -> List[str]:
    meta = result["meta"]
    paths = []
    p = os.path.join(out_dir, "results.json")
    with open(p, "w") as f:
        json.dump(result, f, indent=1)
    paths.append(p)

    def write_csv(name, fields, rows):
        # Every row carries the run's metadata (device, versions, date) so files can be concatenated.
        p = os.path.join(out_dir, name)
        with open(p, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=META_KEYS + fields, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({**{k: meta[k] for k in META_KEYS}, **r})
        paths.append(p)

    write_csv("results.csv", ROW_FIELDS, result["results"])
    if result.get("e2e"):
        write_csv("e2e.csv", E2E_FIELDS, result["e2e"])

    p = os.path.join(out_dir, "table.md")
    with open(p, "w") as f:
        f.write(table + "\n")
    paths.append(p)
    return paths
