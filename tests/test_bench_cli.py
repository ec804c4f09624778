"""The bench and demo commands: they run, write sane files, and derive their columns correctly."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest
import torch

import gan_kernels as gk
from gan_kernels.bench import cases as C
from gan_kernels.bench import run as R
from gan_kernels.bench.timing import TimerConfig, count_dispatches

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run_cli(*args, timeout=240):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "gan_kernels", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    # The compiled baseline is left out here (a cold Inductor cache costs ~30 s of C++ compiles on
    # 2 cores); test_compiled_baseline_* cover it in-process. One thread: stable on a shared machine.
    out = tmp_path_factory.mktemp("bench")
    stdout = _run_cli("bench", "--quick", "--device", "cpu", "--no-compile", "--threads", "1", "--out", str(out))
    with open(out / "results.json") as f:
        return out, json.load(f), stdout


def test_quick_writes_every_file(quick_run):
    out, res, stdout = quick_run
    for name in ("results.json", "results.csv", "e2e.csv", "table.md"):
        assert (out / name).stat().st_size > 0, name
    if importlib.util.find_spec("matplotlib") is not None:  # plots are optional (the "bench" extra)
        for name in ("speedup.png", "bandwidth.png"):
            assert (out / name).read_bytes()[:8] == PNG_MAGIC
            assert (out / name).stat().st_size > 10_000  # panels with lines, not an empty canvas
    meta = res["meta"]
    assert meta["device_type"] == "cpu" and meta["torch"] == torch.__version__
    assert meta["date"][:4].isdigit() and meta["copy_gbps"] > 0
    assert meta["backends"] == C.backends_for("cpu")
    assert "| op " in stdout and "grad_penalty/wgan-gp" in stdout


def test_quick_covers_every_case_with_positive_times(quick_run):
    _, res, _ = quick_run
    rows = res["results"]
    impls = ["eager"] + C.backends_for("cpu")
    expected = {(c.name, c.size, c.dtype_name, impl, mode)
                for c in C.cases_for("cpu", quick=True) for impl in impls for mode in C.MODES}
    got = {(r["name"], r["size"], r["dtype"], r["impl"], r["mode"]) for r in rows}
    assert got == expected
    for r in rows:
        assert r["error"] is None, r
        assert 0 < r["p20_ms"] <= r["median_ms"] <= r["p80_ms"], r
        assert r["median_ms"] < 1e4  # an hour-long call means a broken timer, not a slow op


def test_quick_derived_columns(quick_run):
    _, res, _ = quick_run
    rows = res["results"]
    eager = {(r["name"], r["size"], r["dtype"], r["mode"]): r["median_ms"] for r in rows if r["impl"] == "eager"}
    copy = res["meta"]["copy_gbps"]
    for r in rows:
        case = C.Case(r["op"], r["kind"], tuple(int(s) for s in r["size"].split("x")), C.DTYPES[r["dtype"]])
        assert r["numel"] == math.prod(case.shape)
        assert r["bytes"] == case.bytes(r["mode"])
        assert r["speedup_vs_eager"] == pytest.approx(eager[(r["name"], r["size"], r["dtype"], r["mode"])] / r["median_ms"], rel=1e-9)
        assert r["speedup_vs_compiled"] is None  # --no-compile
        assert r["gbps"] == pytest.approx(r["bytes"] / (r["median_ms"] * 1e-3) / 1e9, rel=1e-9)
        assert r["pct_copy"] == pytest.approx(100 * r["gbps"] / copy, rel=1e-9)
        if r["mode"] == "fwdbwd":
            assert r["ops_dispatched"] > 0 and r["peak_mem_mib"] is None  # CPU: peak memory is n/a
        if r["impl"] == "eager":
            assert r["speedup_vs_eager"] == pytest.approx(1.0)


def test_quick_kernel_backend_dispatches_fewer_ops(quick_run):
    # The point of fusing: a penalty fwd+bwd is a handful of ops, not the reference's ~30.
    _, res, _ = quick_run
    if "cpu" not in res["meta"]["backends"]:
        pytest.skip("the C++ CPU back end is not built here")
    ops = {(r["name"], r["size"], r["impl"]): r["ops_dispatched"] for r in res["results"] if r["mode"] == "fwdbwd"}
    for (name, size, impl), n in ops.items():
        if impl == "cpu" and name.startswith("grad_penalty"):
            assert n < ops[(name, size, "eager")], (name, size, n)


def test_quick_csv_matches_json(quick_run):
    out, res, _ = quick_run
    with open(out / "results.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == len(res["results"])
    for line, r in zip(lines, res["results"]):
        assert line["device"] == res["meta"]["device"] and line["torch"] == res["meta"]["torch"]
        assert (line["name"], line["impl"], line["mode"]) == (r["name"], r["impl"], r["mode"])
        assert float(line["median_ms"]) == pytest.approx(r["median_ms"])


def test_quick_e2e_steps_agree(quick_run):
    # Same weights, same batch, same alpha: every implementation's first critic loss must match the
    # hand-written recipe (an independent formulation of WGAN-GP) to float32 rounding.
    out, res, _ = quick_run
    e2e = res["e2e"]
    assert {r["model"] for r in e2e} == {"dcgan", "8gaussians"}
    for model in ("dcgan", "8gaussians"):
        rows = [r for r in e2e if r["model"] == model]
        assert [r["impl"] for r in rows] == ["hand-written"] + res["meta"]["backends"]
        base = rows[0]
        for r in rows:
            assert r["error"] is None and r["median_ms"] > 0, r
            assert r["speedup_vs_eager"] == pytest.approx(base["median_ms"] / r["median_ms"], rel=1e-9)
            assert r["first_loss"] == pytest.approx(base["first_loss"], rel=1e-4, abs=1e-4)
    assert (out / "e2e.csv").read_text().count("\n") == len(e2e) + 1


def test_compile_failure_is_recorded_not_raised(monkeypatch):
    def broken(case):
        def fn(inp):
            raise RuntimeError("aot_autograd does not currently support double backward")
        return fn

    monkeypatch.setattr(C, "compiled_fn", broken)
    case = C.Case("grad_penalty", "wgan-gp", (8, 3, 4, 4), torch.float32)
    rows = R.measure_case(case, ["eager", "compiled"], torch.device("cpu"), TimerConfig.quick())
    R.add_derived(rows, 10.0, {(case.name, case.size, case.dtype_name): case})
    failed = [r for r in rows if r["impl"] == "compiled"]
    assert len(failed) == 3 and all("double backward" in r["error"] and r["median_ms"] is None for r in failed)
    for r in rows:
        if r["impl"] == "eager":
            assert r["median_ms"] > 0 and r["speedup_vs_compiled"] is None


def test_byte_counts():
    n, s = 64 * 3 * 8 * 8, 2
    g = C.Case("grad_penalty", "r1", (64, 3, 8, 8), torch.bfloat16)
    assert (g.bytes("fwd"), g.bytes("bwd"), g.bytes("fwdbwd")) == (n * s, 2 * n * s, 3 * n * s)
    i = C.Case("interpolate", None, (64, 3, 8, 8), torch.float32)
    assert i.bytes("fwdbwd") == 6 * n * 4
    d = C.Case("d_loss", "hinge", (16,), torch.float32)
    assert d.bytes("fwdbwd") == 6 * 16 * 4


def test_dispatch_counter_counts_aten_ops():
    x = torch.randn(4, 5, requires_grad=True)
    assert count_dispatches(lambda: (x * 2).sum()) == 2


@pytest.mark.slow
def test_compiled_baseline_runs_and_matches():
    case = C.Case("grad_penalty", "wgan-gp", (8, 3, 4, 4), torch.float32)
    inp = C.make_inputs(case, torch.device("cpu"), torch.Generator().manual_seed(0))
    R._reset_compiler()
    got = C.compiled_fn(case)(inp)
    want = C.reference_fn(case)(inp)
    torch.testing.assert_close(got, want)
    rows = R.measure_case(case, ["eager", "compiled"], torch.device("cpu"), TimerConfig.quick())
    assert all(r["error"] is None and r["median_ms"] > 0 for r in rows)


def test_demo_runs_and_losses_agree():
    out = _run_cli("demo", "--device", "cpu", "--iters", "2", "--n-critic", "2", "--batch", "64", timeout=180)
    rows = [l for l in out.splitlines() if l.strip()[:1].isdigit() and "|" in l]
    assert len(rows) == 2
    for line in rows:
        cells = [c.split() for c in line.split("|")[1:]]
        for pair in cells:  # (fast back end, reference) per column
            a, b = map(float, pair)
            assert a == pytest.approx(b, rel=1e-3, abs=1e-4), line
    assert out.count("critic step with") == 2


# --------------------------------------------------------------------------- CUDA-graph column
# The capture itself needs a GPU (not here); these pin everything around it: the CPU output keeps
# the columns empty, the ratios compare graph with graph, and a failed capture never loses a row.
def test_quick_graph_columns_empty_on_cpu(quick_run):
    out, res, stdout = quick_run
    assert res["meta"]["graph"] is None
    for r in res["results"]:
        for f in ("graph_median_ms", "graph_p20_ms", "graph_p80_ms", "graph_speedup_vs_eager",
                  "graph_speedup_vs_compiled", "graph_gbps", "graph_pct_copy", "graph_error"):
            assert r[f] is None, (f, r)
    with open(out / "results.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    assert "graph_median_ms" in lines[0] and "graph_speedup_vs_eager" in lines[0] and "graph_error" in lines[0]
    assert all(line["graph_median_ms"] == "" and line["graph_speedup_vs_eager"] == "" for line in lines)
    table = (out / "table.md").read_text()
    header = next(l for l in table.splitlines() if l.startswith("| op "))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert "gpu µs" in cols and "vs eager (gpu)" in cols and "kernels" not in cols
    gi, ri = cols.index("gpu µs"), cols.index("vs eager (gpu)")
    op_lines = table.split("\n\n")[1].splitlines()  # the op table; the critic-step table follows
    body = [l for l in op_lines if l.startswith("| ") and not l.startswith("| op ")]
    assert len(body) == len({(r["name"], r["size"], r["impl"]) for r in res["results"]})
    for line in body:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == len(cols) and cells[gi] == "-" and cells[ri] == "-", line
    assert "CUDA-graph" not in stdout


def test_no_graph_flag_parses():
    import argparse

    p = argparse.ArgumentParser()
    R.add_arguments(p)
    assert p.parse_args(["--no-graph"]).no_graph is True
    assert p.parse_args([]).no_graph is False


def test_ratio():
    assert R.ratio(3.0, 1.5) == pytest.approx(2.0)
    assert R.ratio(None, 1.0) is None and R.ratio(1.0, None) is None and R.ratio(0.0, 1.0) is None


def _row(impl, mode, wall, gpu, case, err=None):
    return {"op": case.op, "kind": case.kind, "name": case.name, "size": case.size, "numel": case.numel,
            "dtype": case.dtype_name, "impl": impl, "mode": mode, "median_ms": wall, "p20_ms": wall,
            "p80_ms": wall, "error": None, "graph_median_ms": gpu, "graph_p20_ms": gpu, "graph_p80_ms": gpu,
            "graph_error": err}


def test_add_derived_graph_ratios_compare_graph_with_graph():
    case = C.Case("d_loss", "hinge", (256,), torch.float32)
    rng = torch.Generator().manual_seed(7)
    wall = {i: 0.1 + torch.rand(1, generator=rng).item() for i in ("eager", "compiled", "cuda", "triton")}
    gpu = {i: 0.001 + torch.rand(1, generator=rng).item() / 100 for i in ("eager", "compiled", "cuda")}
    rows = [_row(i, "fwdbwd", wall[i], gpu.get(i), case, None if i in gpu else "RuntimeError: capture")
            for i in wall]
    copy = 3000.0
    R.add_derived(rows, copy, {(case.name, case.size, case.dtype_name): case})
    by = {r["impl"]: r for r in rows}
    for i, r in by.items():
        assert r["speedup_vs_eager"] == pytest.approx(wall["eager"] / wall[i], rel=1e-12)
        assert r["speedup_vs_compiled"] == pytest.approx(wall["compiled"] / wall[i], rel=1e-12)
        if i in gpu:
            assert r["graph_speedup_vs_eager"] == pytest.approx(gpu["eager"] / gpu[i], rel=1e-12)
            assert r["graph_speedup_vs_compiled"] == pytest.approx(gpu["compiled"] / gpu[i], rel=1e-12)
            gbps = case.bytes("fwdbwd") / (gpu[i] * 1e-3) / 1e9
            assert r["graph_gbps"] == pytest.approx(gbps, rel=1e-12)
            assert r["graph_pct_copy"] == pytest.approx(100 * gbps / copy, rel=1e-12)
        else:  # failed capture: no graph numbers, wall-clock ones intact
            assert r["graph_speedup_vs_eager"] is None and r["graph_gbps"] is None
            assert r["speedup_vs_eager"] is not None

    # No eager graph time (its capture failed): nobody gets a graph ratio, wall ratios are unaffected.
    rows = [_row(i, "fwdbwd", wall[i], None if i == "eager" else 0.01, case) for i in ("eager", "cuda")]
    R.add_derived(rows, copy, {(case.name, case.size, case.dtype_name): case})
    assert all(r["graph_speedup_vs_eager"] is None and r["speedup_vs_eager"] for r in rows)


def test_graph_timing_plumbing_and_failure(monkeypatch):
    # Stand-in for the capture: runs the closures as a capture would (prepare first, then the calls),
    # and fails like a real failed capture (an error raised while ending the broken capture).
    from gan_kernels.bench.timing import Timing

    seen = []

    def fake_graph(fn, cfg, prepare=None):
        impl = current[0]
        keep = prepare() if prepare else None  # noqa: F841 (the bwd closure needs the built outputs)
        for _ in range(cfg.graph_calls):
            fn()
        seen.append((impl, prepare is not None))
        if impl == "reference" and prepare is not None:
            try:
                raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore text")
            except RuntimeError:
                raise RuntimeError("CUDA error: operation failed due to a previous error during capture")
        return Timing(0.005, 0.004, 0.006, cfg.graph_replays)

    current = [None]
    monkeypatch.setattr(R, "time_cuda_graph", fake_graph)
    case = C.Case("grad_penalty", "r1", (8, 3, 4, 4), torch.float32)
    impls = ["eager", "reference"]
    rows = R.measure_case(case, impls, torch.device("cpu"), TimerConfig.quick(),
                          on_impl=lambda impl: current.__setitem__(0, impl), graph=True)
    R.add_derived(rows, 10.0, {(case.name, case.size, case.dtype_name): case})
    assert seen == [(i, m == "bwd") for i in impls for m in C.MODES]
    assert len(rows) == len(impls) * len(C.MODES)
    for r in rows:
        assert r["error"] is None and r["median_ms"] > 0  # wall-clock never lost to a capture failure
        if r["impl"] == "reference" and r["mode"] == "bwd":
            assert r["graph_median_ms"] is None and r["graph_speedup_vs_eager"] is None
            assert r["graph_error"].startswith("RuntimeError: CUDA error: operation not permitted")
            assert "previous error during capture" in r["graph_error"]
        else:
            assert r["graph_error"] is None and r["graph_median_ms"] == 0.005
            assert r["graph_speedup_vs_eager"] == pytest.approx(1.0)

    # Default on CPU: no graph timing at all.
    seen.clear()
    rows = R.measure_case(case, ["eager"], torch.device("cpu"), TimerConfig.quick())
    assert seen == [] and all(r["graph_median_ms"] is None and r["graph_error"] is None for r in rows)


def test_cuda_table_shows_graph_columns_and_failures():
    from gan_kernels.bench import report

    case = C.Case("d_loss", "hinge", (256,), torch.float32)
    rows = [_row("eager", m, 0.2, 0.012, case) for m in C.MODES]
    rows += [_row("cuda", m, 0.18, 0.003, case) for m in C.MODES]
    rows += [_row("compiled", m, 0.3, None, case, "RuntimeError: cannot capture") for m in C.MODES]
    R.add_derived(rows, 4000.0, {(case.name, case.size, case.dtype_name): case})
    meta = {"device": "Test GPU", "torch": "x", "triton": "y", "date": "2026-01-01T00:00:00", "copy_gbps": 4000.0,
            "device_type": "cuda", "graph": {"calls_per_graph": 20, "replays": 20}}
    text = report.format_tables({"meta": meta, "results": rows, "e2e": []})
    lines = text.splitlines()
    header = next(l for l in lines if l.startswith("| op "))
    cols = [c.strip() for c in header.strip("|").split("|")]
    gi, ri = cols.index("gpu µs"), cols.index("vs eager (gpu)")
    assert "kernels" in cols
    cells = {c[3]: c for c in ([x.strip() for x in l.strip("|").split("|")] for l in lines
                                if l.startswith("| d_loss"))}
    assert (cells["eager"][gi], cells["eager"][ri]) == ("12.0", "1.00x")
    assert (cells["cuda"][gi], cells["cuda"][ri]) == ("3.0", "4.00x")
    assert (cells["compiled"][gi], cells["compiled"][ri]) == ("failed", "-")
    assert "CUDA-graph replay of 20 calls" in text
    assert "* d_loss/hinge 256 float32 compiled (fwd): RuntimeError: cannot capture" in text


# --------------------------------------------------------------------------- speed targets
def _target_rows(gpu_times, wall_times, capture_error=None):
    """fwd+bwd rows (plus fwd/bwd for the capture check) of the three target cases, derived."""
    from gan_kernels.bench import targets as T

    cases = T.target_cases()
    rows = []
    for case in cases:
        for impl in gpu_times:
            g, w = gpu_times[impl][case.op], wall_times[impl][case.op]
            for mode in C.MODES:
                err = capture_error if (impl == "triton" and mode == "bwd" and case.op == "d_loss") else None
                rows.append(_row(impl, mode, w, None if err else g, case, err))
    R.add_derived(rows, 4000.0, {(c.name, c.size, c.dtype_name): c for c in cases})
    return rows


def test_targets_judge_graph_times_on_cuda():
    from gan_kernels.bench import targets as T

    # Penalty: 3 passes over 64*3*256*256 float32 = 150.99 MB; at 4000 GB/s that is 37.7 us.
    floor_ms = 3 * 64 * 3 * 256 * 256 * 4 / 4000e9 * 1e3
    gpu = {"eager": {"d_loss": 0.030, "grad_penalty": 0.200},
           "cuda": {"d_loss": 0.005, "grad_penalty": floor_ms / 0.9},  # 6x, 90 % of copy, 4.8x
           "triton": {"d_loss": 0.0075, "grad_penalty": floor_ms / 0.8}}  # 4x, 80 % of copy
    wall = {"eager": {"d_loss": 0.2, "grad_penalty": 0.3},
            "cuda": {"d_loss": 0.15, "grad_penalty": 0.25},
            "triton": {"d_loss": 0.10, "grad_penalty": 0.5}}  # triton faster in wall-clock for d_loss
    rows = _target_rows(gpu, wall, capture_error="RuntimeError: operation not permitted when stream is capturing")
    v = T.evaluate(rows, "cuda", auto_order={"d_loss": ("cuda", "triton"), "grad_penalty": ("cuda", "triton")})
    pct = {x["impl"]: x for x in v if "% of copy" in x["target"]}
    assert pct["cuda"]["value"] == pytest.approx(90.0) and pct["cuda"]["ok"] is True
    assert pct["triton"]["value"] == pytest.approx(80.0) and pct["triton"]["ok"] is False
    assert pct["cuda"]["wall_value"] == pytest.approx(100 * floor_ms / 0.25)  # wall-clock shown beside
    pen = {x["impl"]: x for x in v if x["target"].startswith("grad_penalty") and "x eager" in x["target"]}
    assert pen["cuda"]["value"] == pytest.approx(0.200 / (floor_ms / 0.9)) and pen["cuda"]["ok"]
    dl = {(x["impl"], x["target"].split()[1]): x for x in v if x["target"].startswith("d_loss")}
    assert dl[("cuda", "hinge")]["value"] == pytest.approx(6.0) and dl[("cuda", "hinge")]["ok"]
    assert dl[("triton", "logistic")]["value"] == pytest.approx(4.0) and not dl[("triton", "logistic")]["ok"]
    assert dl[("cuda", "hinge")]["wall_value"] == pytest.approx(0.2 / 0.15)
    cap = {x["impl"]: x for x in v if x["target"].startswith("no host sync")}
    assert cap["cuda"]["ok"] is True and cap["cuda"]["value"] == 9
    assert cap["triton"]["ok"] is False and len(cap["triton"]["failed"]) == 2  # hinge and logistic bwd
    auto = {x["target"].split(": ")[1]: x for x in v if x["target"].startswith("auto")}
    assert set(auto) == {"d_loss/hinge 256 float32", "d_loss/logistic 256 float32",
                         "grad_penalty/wgan-gp 64x3x256x256 float32"}
    assert auto["d_loss/hinge 256 float32"]["ok"] is False  # auto says cuda, triton was faster
    assert auto["d_loss/hinge 256 float32"]["faster_gpu"] == "cuda"
    assert auto["grad_penalty/wgan-gp 64x3x256x256 float32"]["ok"] is True
    text = T.format_verdicts(v, "cuda")
    assert text.count("PASS") + text.count("FAIL") == len(v)
    assert "info: GPU target" not in text


def test_targets_on_cpu_are_wall_clock_information():
    from gan_kernels.bench import targets as T

    case = C.Case("d_loss", "hinge", (256,), torch.float32)
    rows = [_row("eager", "fwdbwd", 0.09, None, case), _row("cpu", "fwdbwd", 0.03, None, case)]
    R.add_derived(rows, 10.0, {(case.name, case.size, case.dtype_name): case})
    v = T.evaluate(rows, "cpu")
    assert [(x["impl"], x["measure"]) for x in v] == [("cpu", "wall-clock")]
    assert v[0]["value"] == pytest.approx(3.0) and v[0]["ok"] is False
    assert "FAIL (info: GPU target)" in T.format_verdicts(v, "cpu")


def test_targets_cli_on_cpu(tmp_path):
    stdout = _run_cli("bench", "--targets", "--device", "cpu", "--no-compile", "--no-plots", "--threads", "1",
                      "--out", str(tmp_path))
    res = json.loads((tmp_path / "results.json").read_text())
    cases = {(r["name"], r["size"]) for r in res["results"]}
    assert cases == {("d_loss/hinge", "256"), ("d_loss/logistic", "256"), ("grad_penalty/wgan-gp", "64x3x256x256")}
    assert res["e2e"] == []
    judged = {(v["impl"], v["target"]) for v in res["targets"]}
    assert len(judged) == 4 and all(i == "cpu" for i, _ in judged)
    for v in res["targets"]:
        assert v["value"] > 0 and v["ok"] == (v["value"] >= v["threshold"])
    assert "### Speed targets of the GPU back ends" in stdout


def test_host_profile_script_runs():
    proc = subprocess.run([sys.executable, "bench/host_profile.py", "--calls", "5", "--top", "3"], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    heads = [l for l in proc.stdout.splitlines() if l.startswith("===")]
    assert len(heads) == 4, proc.stdout[-2000:]  # 2 cases x (cpu, reference)
    assert all(float(l.split(": ")[-1].split()[0]) > 0 for l in heads)
    assert proc.stdout.count("own us") == 4


def test_suggest_auto_order_and_results_file_cli(tmp_path):
    from gan_kernels.bench import targets as T

    a = C.Case("d_loss", "hinge", (256,), torch.float32)
    b = C.Case("d_loss", "hinge", (4096,), torch.float32)
    g = C.Case("grad_penalty", "wgan-gp", (64, 3, 256, 256), torch.float32)
    # d_loss: cuda faster at 256 (0.1 vs 0.3), triton faster at 4096 (0.2 vs 0.1): geometric means
    # sqrt(0.1 * 0.2) = 0.141 < sqrt(0.3 * 0.1) = 0.173, so cuda first. Penalty: triton faster.
    rows = [_row("cuda", "fwdbwd", 0.1, 0.004, a), _row("triton", "fwdbwd", 0.3, 0.003, a),
            _row("cuda", "fwdbwd", 0.2, None, b), _row("triton", "fwdbwd", 0.1, None, b),
            _row("cuda", "fwdbwd", 0.5, 0.05, g), _row("triton", "fwdbwd", 0.4, 0.045, g),
            _row("eager", "fwdbwd", 0.9, 0.2, g)]
    s = T.suggest_auto_order(rows)
    assert s["d_loss"]["order"] == ("cuda", "triton")
    assert s["grad_penalty"]["order"] == ("triton", "cuda")
    assert s["d_loss"]["cases"][0] == "d_loss/hinge 256: 100 vs 300 us (gpu 4.0 vs 3.0 us)"
    R.add_derived(rows, 4000.0, {(c.name, c.size, c.dtype_name): c for c in (a, b, g)})
    meta = {"device": "Test GPU", "torch": "x", "triton": "y", "date": "2026-01-01", "device_type": "cuda"}
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"meta": meta, "results": rows, "e2e": []}))
    proc = subprocess.run([sys.executable, "-m", "gan_kernels.bench.targets", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"grad_penalty": (\'triton\', \'cuda\'),' in proc.stdout
    assert "grad_penalty wgan-gp 64x3x256x256 fwd+bwd, x eager" in proc.stdout


def test_triton_host_overhead_script_counts_launches():
    """Runs the Triton host-time script (stand-in driver, kernels compiled for sm_90, launches
    counted instead of run): every row is timed, and fwd+bwd launch exactly the kernels the
    design promises -- d_loss one forward + one backward, the penalty two + one."""
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "bench/triton_host_overhead.py", "--calls", "3", "--repeats", "1"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {}
    for line in proc.stdout.splitlines()[2:]:
        us, launches = line[53:].split()  # columns: call 40, variant 12, us, launches
        rows[(line[:40].strip(), line[41:53].strip())] = (float(us), int(launches))
    assert len(rows) == 14, proc.stdout
    assert all(us > 0 for us, _ in rows.values())
    assert rows[("d_loss logistic B=256 fwd+bwd", "direct")][1] == 2
    assert rows[("d_loss logistic B=256 fwd+bwd", "dispatcher")][1] == 2
    assert rows[("grad_penalty wgan-gp 64x3x64x64 fwd+bwd", "direct")][1] == 3
    assert rows[("d_loss_forward logistic B=256", "launch only")][1] == 1


def test_host_profile_dispatcher_variant_swaps_and_restores_the_triton_ops():
    """host_profile's "triton:dispatcher" runs the triton Functions over the registered ops, then
    puts the direct eager path back (on a GPU; checked here on the interpreter's back end)."""
    if "triton" not in gk.available_backends():
        pytest.skip("needs the triton back end (TRITON_INTERPRET=1 on CPU)")
    import gan_kernels.triton as gt

    spec = importlib.util.spec_from_file_location("host_profile", os.path.join(ROOT, "bench", "host_profile.py"))
    hp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hp)
    direct = vars(gt.OPS).copy()
    with hp._ops("triton:dispatcher") as backend:
        assert backend == "triton"
        assert all(getattr(gt.OPS, op) is getattr(torch.ops.gan_kernels_triton, op) for op in direct)
        r, f = torch.randn(9, requires_grad=True), torch.randn(9)
        gk.d_loss(r, f, "hinge", backend="triton").backward()  # runs through the registered ops
        assert r.grad is not None
    assert vars(gt.OPS) == direct
    with hp._ops("cuda") as backend:
        assert backend == "cuda" and vars(gt.OPS) == direct
