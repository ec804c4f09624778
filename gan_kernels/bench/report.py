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
    "op", "kind", "name", "size", "numel", "dtype", "impl", "mode", "ms", "median_ms", "p20_ms", "p80_ms",
    "rounds", "noisy",
    "speedup_vs_eager", "speedup_vs_compiled", "bytes", "gbps", "pct_copy",
    # CUDA only (empty on CPU): the same calls timed as CUDA-graph replays, and ratios between those
    "graph_median_ms", "graph_p20_ms", "graph_p80_ms", "graph_speedup_vs_eager", "graph_speedup_vs_compiled",
    "graph_gbps", "graph_pct_copy",
    "ops_dispatched", "gpu_kernels", "peak_mem_mib", "input_sets", "first_call_s", "error", "graph_error",
]
E2E_FIELDS = ["model", "input", "impl", "ms", "median_ms", "p20_ms", "p80_ms", "rounds", "noisy", "speedup_vs_eager",
              "first_loss", "error"]
MULTI_FIELDS = ["case", "size", "loss", "impl", "discriminators", "feature_maps", "elements", "ms", "median_ms",
                "p20_ms", "p80_ms", "rounds", "noisy", "speedup_vs_loop", "ops_dispatched", "bytes", "gbps",
                "pct_copy", "first_loss", "error"]
HOST_FIELDS = ["op", "kind", "name", "size", "candidate", "backend", "ms", "median_ms", "p20_ms", "p80_ms", "rounds",
               "noisy", "error"]
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
NOISY_MARK = " (noisy)"


def _us(ms: Optional[float]) -> str:
    if ms is None:
        return "-"
    us = ms * 1e3
    return f"{us:.1f}" if us < 100 else f"{us:.0f}"


def _x(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _num(v, fmt: str = "{:.1f}", none: str = "-") -> str:
    return none if v is None else fmt.format(v)


def _spread(r: Dict) -> str:
    return "-" if not (r.get("p20_ms") and r.get("p80_ms")) else f"{r['p80_ms'] / r['p20_ms']:.2f}"


def md_table(header: List[str], lines: List[List[str]]) -> str:
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(header)]

    def fmt(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(header), sep] + [fmt(l) for l in lines])


def _time_cell(r: Dict) -> str:
    if r.get("error"):
        return "failed: " + r["error"][:60]
    return _us(r.get("ms")) + (NOISY_MARK if r.get("noisy") else "")


def op_table(rows: List[Dict], device_type: str) -> str:
    """One line per (case, implementation); fwd+bwd is the headline, fwd and bwd alongside.

    Only columns that apply: the compiled ratio where the compiled baseline ran, the CUDA columns
    (CUDA-graph time, kernels, peak memory) on a CUDA run."""
    by: Dict = {}
    order = []
    for r in rows:
        key = (r["name"], r["size"], r["dtype"], r["impl"])
        if key not in by:
            by[key] = {}
            order.append(key)
        by[key][r["mode"]] = r
    has_compiled = any(r["impl"] == "compiled" for r in rows)
    has_graph = device_type == "cuda" and any(r.get("graph_median_ms") or r.get("graph_error") for r in rows)
    cuda = device_type == "cuda"
    header = ["op", "size", "dtype", "impl", "fwd+bwd µs", "p80/p20", "fwd µs", "bwd µs", "vs eager"]
    header += ["vs compiled"] if has_compiled else []
    header += ["gpu µs", "vs eager (gpu)"] if has_graph else []
    header += ["GB/s", "% copy", "ops"] + (["kernels", "peak MiB"] if cuda else [])
    lines = []
    for key in order:
        m = by[key]
        fb = m.get("fwdbwd", {})
        line = [key[0], key[1], key[2], key[3], _time_cell(fb), _spread(fb),
                _us(m.get("fwd", {}).get("ms")), _us(m.get("bwd", {}).get("ms")), _x(fb.get("speedup_vs_eager"))]
        if has_compiled:
            line.append(_x(fb.get("speedup_vs_compiled")))
        if has_graph:
            line += ["failed" if fb.get("graph_error") else _us(fb.get("graph_median_ms")),
                     _x(fb.get("graph_speedup_vs_eager"))]
        line += [_num(fb.get("gbps"), "{:.3g}"), _num(fb.get("pct_copy"), "{:.0f}%"),
                 _num(fb.get("ops_dispatched"), "{:d}")]
        if cuda:
            line += [_num(fb.get("gpu_kernels"), "{:d}"), _num(fb.get("peak_mem_mib"), "{:.2f}")]
        lines.append(line)
    return md_table(header, lines)


def graph_failures(rows: List[Dict]) -> List[str]:
    """One line per (case, implementation) whose CUDA-graph capture failed, with the first error."""
    seen, out = set(), []
    for r in rows:
        key = (r["name"], r["size"], r["dtype"], r["impl"])
        if r.get("graph_error") and key not in seen:
            seen.add(key)
            out.append(f"* {r['name']} {r['size']} {r['dtype']} {r['impl']} ({r['mode']}): {r['graph_error']}")
    return out


def noisy_rows(result: Dict) -> List[str]:
    """One line per measurement flagged for its spread (with the reason); measurements flagged only
    for the machine's load are counted in one line, as they share the one cause."""
    flagged = []
    for r in result.get("results", []):
        if r.get("noisy") and r["mode"] == "fwdbwd":
            flagged.append((f"{r['name']} {r['size']} {r['dtype']} {r['impl']}", r["noisy"]))
    for r in result.get("host", []):
        if r.get("noisy"):
            who = r["candidate"] + (f" {r['backend']}" if r.get("backend") else "")
            flagged.append((f"host {r['name']} {r['size']} {who}", r["noisy"]))
    for r in result.get("e2e", []):
        if r.get("noisy"):
            flagged.append((f"critic step {r['model']} {r['impl']}", r["noisy"]))
    for r in result.get("multi", []):
        if r.get("noisy"):
            flagged.append((f"multi {r['case']} {r['size']} {r['loss']} {r['impl']}", r["noisy"]))
    out = [f"* {what}: {why}" for what, why in flagged if "p80/p20" in why]
    load_only = [why for _, why in flagged if "p80/p20" not in why]
    if load_only:
        out.append(f"* {len(load_only)} more measured while the machine had more runnable threads than cores "
                   f"({load_only[-1]}), with a narrow spread")
    return out


def host_table(rows: List[Dict]) -> str:
    """One line per (case, back end): eager formula, the public call, the floor, and their ratios."""
    cases: Dict = {}
    for r in rows:
        c = cases.setdefault((r["name"], r["size"]), {})
        c[(r["candidate"], r["backend"])] = r
    header = ["case", "back end", "eager µs", "gk µs", "floor µs", "vs eager", "gk / floor"]
    lines = []
    for (name, size), c in cases.items():
        eager = c.get(("eager", None), {})
        for (what, backend), r in c.items():
            if what != "gk":
                continue
            fl = c.get(("floor", backend), {})
            gk_ms, e_ms, f_ms = r.get("ms"), eager.get("ms"), fl.get("ms")
            lines.append([f"{name} {size}", backend, _time_cell(eager), _time_cell(r),
                          _time_cell(fl) if fl else "-",
                          _x(e_ms / gk_ms if (e_ms and gk_ms) else None),
                          _x(gk_ms / f_ms if (gk_ms and f_ms) else None)])
    return md_table(header, lines)


def e2e_table(rows: List[Dict]) -> str:
    header = ["critic step", "input", "impl", "step ms", "p80/p20", "vs hand-written", "first loss"]
    lines = []
    for r in rows:
        t = "failed: " + r["error"][:60] if r.get("error") else f"{r['ms']:.2f}" + (NOISY_MARK if r.get("noisy") else "")
        lines.append([r["model"], r["input"], r["impl"], t, _spread(r), _x(r.get("speedup_vs_eager")),
                      _num(r.get("first_loss"), "{:.5f}")])
    return md_table(header, lines)


def multi_table(rows: List[Dict]) -> str:
    """One line per (case, loss, candidate); bandwidth only where the loss moves real data."""
    header = ["case", "size", "loss", "impl", "fwd+bwd µs", "p80/p20", "vs loop", "ops", "GB/s", "% copy", "loss"]
    lines = []
    for r in rows:
        big = r["loss"] == "feature_matching"
        lines.append([r["case"], r["size"], r["loss"], r["impl"], _time_cell(r), _spread(r),
                      _x(r.get("speedup_vs_loop")), _num(r.get("ops_dispatched"), "{:d}"),
                      _num(r.get("gbps"), "{:.3g}") if big else "-", _num(r.get("pct_copy"), "{:.0f}%") if big else "-",
                      _num(r.get("first_loss"), "{:.5g}")])
    return md_table(header, lines)


def format_tables(result: Dict) -> str:
    meta = result["meta"]
    timer = meta.get("timer") or {}
    parts = [f"## {meta['device']} -- torch {meta['torch']}, triton {meta['triton']}, {meta['date']}, "
             f"{meta.get('torch_threads')} thread(s)"]
    how = (f"Times: per call, the 20th percentile of {timer.get('min_rounds', '?')}-{timer.get('max_rounds', '?')} "
           "rounds that interleave the candidates; p80/p20 = their spread; '(noisy)': the spread ended above "
           f"{timer.get('noisy_spread', '?')} or the machine had more runnable threads than cores -- do not trust "
           "that row's ratios.")
    if result.get("results"):
        line = (f"copy bandwidth {meta['copy_gbps']:.1f} GB/s; 'vs' = baseline time / this time, fwd+bwd "
                "(eager = the op written out in plain PyTorch); ops = ops dispatched per fwd+bwd")
        graph = meta.get("graph")
        if graph:
            line += (f"; gpu µs = fwd+bwd kernel time from a CUDA-graph replay of {graph['calls_per_graph']} calls "
                     "(no host overhead), 'vs eager (gpu)' compares those")
        parts += [how, line, "", op_table(result["results"], meta["device_type"])]
        failures = graph_failures(result["results"])
        if failures:
            parts += ["", "CUDA-graph capture failed (gpu µs 'failed'):"] + failures
    else:
        parts += [how]
    if result.get("host"):
        parts += ["", "### Host time per call (forward + autograd.grad, one thread)", "",
                  "eager = the formula written out in plain PyTorch; gk = the library call with that back end; "
                  "floor = the back end's raw forward and backward ops under one autograd node (no library "
                  "overhead). vs eager = eager / gk (> 1: gk faster); gk / floor = the library's own overhead.",
                  "", host_table(result["host"])]
    if result.get("e2e"):
        parts += ["", "### WGAN-GP critic step (d_loss + penalty + backward + Adam)", "", e2e_table(result["e2e"])]
    if result.get("multi"):
        parts += ["", "### Multi-discriminator losses (forward + autograd.grad)", "",
                  "HiFi-GAN V1: 5 period + 3 scale discriminators, 54 feature maps; pix2pixHD: 3 PatchGAN scales, "
                  "12 feature maps; shapes from the architectures. loop = the loss as those projects write it "
                  "(loop+item: with the per-discriminator .item() of HiFi-GAN's logging); gk = the library call "
                  "computing the same value. vs loop = loop / this; ops = ops dispatched per fwd+bwd; GB/s against "
                  "the bytes the loss must move (inputs read forward and backward, gradients written once)"
                  + (f", % of the {result['meta']['copy_gbps']:.1f} GB/s copy bandwidth"
                     if result["meta"].get("copy_gbps") else "") + ".",
                  "", multi_table(result["multi"])]
    noisy = noisy_rows(result)
    if noisy:
        parts += ["", "Noisy measurements -- the machine was busy or the times spread widely; rerun on a quiet "
                  "machine (--threads 1 helps on a shared one):"] + noisy
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

    if result.get("results"):
        write_csv("results.csv", ROW_FIELDS, result["results"])
    if result.get("host"):
        write_csv("host.csv", HOST_FIELDS, result["host"])
    if result.get("e2e"):
        write_csv("e2e.csv", E2E_FIELDS, result["e2e"])
    if result.get("multi"):
        write_csv("multi.csv", MULTI_FIELDS, result["multi"])

    p = os.path.join(out_dir, "table.md")
    with open(p, "w") as f:
        f.write(table + "\n")
    paths.append(p)
    return paths
