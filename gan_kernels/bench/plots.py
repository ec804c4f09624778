"""PNG plots of a bench run: speed-up vs size, and achieved bandwidth vs size against the copy line.

A point whose measurement was flagged noisy is drawn hollow (and named in the legend), so a number
the run could not pin down never looks like a measured one.
"""

from __future__ import annotations

import math
import os
from typing import Dict, List

from . import cases as C


def _grid(n: int):
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return plt, fig, list(axes.flat[:n])


def _series(rows: List[Dict], name: str, key: str, impls: List[str], noisy_of=None):
    """{(impl, dtype): [(numel, value, noisy), ...]} for the fwd+bwd rows of one op.

    ``noisy_of(row)`` says whether a point rests on a noisy measurement (default: the row's own flag)."""
    noisy_of = noisy_of or (lambda r: bool(r.get("noisy")))
    out: Dict = {}
    for r in rows:
        if r["name"] != name or r["mode"] != "fwdbwd" or r["impl"] not in impls or r.get(key) is None:
            continue
        out.setdefault((r["impl"], r["dtype"]), []).append((r["numel"], r[key], noisy_of(r)))
    return {k: sorted(v) for k, v in out.items()}


def _tick_label(v: float, _pos=None) -> str:
    """Plain numbers on a log axis (0.5, 2, 10, 3e+04), each label distinct."""
    return f"{v:g}"


def _names(rows: List[Dict]) -> List[str]:
    seen = []
    for r in rows:
        if r["name"] not in seen:
            seen.append(r["name"])
    return seen


# One colour per implementation in every panel and plot; one marker per dtype.
COLOURS = {"eager": "0.45", "compiled": "tab:purple", "reference": "tab:green", "cpu": "tab:blue",
           "cuda": "tab:orange", "triton": "tab:red"}
MARKERS = {"float32": "o", "bfloat16": "s", "float16": "^", "float64": "D"}


def _plot(result: Dict, key: str, impls_of, ylabel: str, title: str, path: str, hline=None, hlabel=None,
          noisy_of=None) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    rows = result["results"]
    names = _names(rows)
    plt, fig, axes = _grid(len(names))
    impls = [i for i in ("eager", "compiled", "reference", "cpu", "cuda", "triton") if any(r["impl"] == i for r in rows)]
    any_noisy = False
    for ax, name in zip(axes, names):
        for (impl, dtype), pts in sorted(_series(rows, name, key, impls_of(impls), noisy_of).items(),
                                         key=lambda kv: (impls.index(kv[0][0]), kv[0][1])):
            xs, ys, noisy = zip(*pts)
            colour, marker = COLOURS.get(impl), MARKERS.get(dtype, "o")
            ax.plot(xs, ys, color=colour, label=f"{impl} {dtype}", linestyle="--" if impl in C.BASELINES else "-")
            good = [(x, y) for x, y, n in pts if not n]
            bad = [(x, y) for x, y, n in pts if n]
            if good:
                ax.plot(*zip(*good), linestyle="none", marker=marker, color=colour)
            if bad:
                any_noisy = True
                ax.plot(*zip(*bad), linestyle="none", marker=marker, color=colour, markerfacecolor="none",
                        markersize=9)
        if hline is not None:
            ax.axhline(hline, color="k", linewidth=0.8, linestyle=":", label=hlabel)
        ax.set_xscale("log")
        ax.set_yscale("log")
        # Labelled ticks only where they fit: decades on x (sizes span several); on y 1-2-5 steps, or
        # every integer step where the data spans less than a factor 4. Plain numbers, no minor labels.
        lo, hi = ax.get_ylim()
        y_subs = (1.0, 2.0, 5.0) if hi / lo >= 4 else tuple(float(i) for i in range(1, 10))
        for axis, subs in ((ax.xaxis, (1.0,)), (ax.yaxis, y_subs)):
            axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
            axis.set_major_formatter(FuncFormatter(_tick_label))
            axis.set_minor_formatter(NullFormatter())
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("elements per input")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    meta = result["meta"]
    sup = f"{title} -- {meta['device']}, torch {meta['torch']}, {meta['date'][:10]}"
    if any_noisy:
        sup += "\nhollow markers: noisy measurement (machine busy or times spread widely)"
    fig.suptitle(sup, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(result: Dict, out_dir: str) -> List[str]:
    if not result["results"]:
        return []
    # A ratio is as noisy as either of its two times.
    eager_noisy = {(r["name"], r["size"], r["dtype"]) for r in result["results"]
                   if r["impl"] == "eager" and r["mode"] == "fwdbwd" and r.get("noisy")}

    def ratio_noisy(r):
        return bool(r.get("noisy")) or (r["name"], r["size"], r["dtype"]) in eager_noisy

    speed = os.path.join(out_dir, "speedup.png")
    _plot(result, "speedup_vs_eager", lambda impls: [i for i in impls if i != "eager"],
          "speed-up vs eager (fwd+bwd)", "Speed-up over the eager formula", speed, hline=1.0, hlabel="eager",
          noisy_of=ratio_noisy)
    bw = os.path.join(out_dir, "bandwidth.png")
    _plot(result, "gbps", lambda impls: impls, "achieved GB/s (fwd+bwd)", "Achieved bandwidth", bw,
          hline=result["meta"].get("copy_gbps"), hlabel="copy bandwidth")
    paths = [speed, bw]
    if any(r.get("graph_speedup_vs_eager") for r in result["results"]):  # CUDA runs without --no-graph
        gspeed = os.path.join(out_dir, "speedup_gpu.png")
        _plot(result, "graph_speedup_vs_eager", lambda impls: [i for i in impls if i != "eager"],
              "speed-up vs eager (gpu, fwd+bwd)",
              "Kernel-time (CUDA-graph replay) speed-up over the eager formula",
              gspeed, hline=1.0, hlabel="eager", noisy_of=lambda r: False)
        paths.append(gspeed)
    return paths
