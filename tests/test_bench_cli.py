"""The bench and demo commands: they run, write sane files, measure honestly and derive their columns correctly."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
import time

import pytest
import torch

import gan_kernels as gk
from gan_kernels import _kinds
from gan_kernels.bench import cases as C
from gan_kernels.bench import eager as E
from gan_kernels.bench import run as R
from gan_kernels.bench import timing as T
from gan_kernels.bench.timing import TimerConfig, count_dispatches

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load_tool(name):
    """A development script of bench/ (not part of the package), imported as a module."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "bench", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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
    for name in ("results.json", "results.csv", "host.csv", "e2e.csv", "table.md"):
        assert (out / name).stat().st_size > 0, name
    if importlib.util.find_spec("matplotlib") is not None:  # plots are optional (the "bench" extra)
        for name in ("speedup.png", "bandwidth.png"):
            assert (out / name).read_bytes()[:8] == PNG_MAGIC
            assert (out / name).stat().st_size > 10_000  # panels with lines, not an empty canvas
    meta = res["meta"]
    assert meta["device_type"] == "cpu" and meta["torch"] == torch.__version__
    assert meta["date"][:4].isdigit() and meta["copy_gbps"] > 0
    assert meta["backends"] == C.backends_for("cpu")
    assert meta["parts"] == ["ops", "host", "steps", "multi"]
    assert "### Multi-discriminator losses" in stdout and (out / "multi.csv").stat().st_size > 0
    assert "| op " in stdout and "grad_penalty/wgan-gp" in stdout and "### Host time per call" in stdout
    assert "PASS" not in stdout and "FAIL" not in stdout  # the project's own targets are not the user's business


def test_quick_covers_every_case_with_positive_times(quick_run):
    _, res, _ = quick_run
    rows = res["results"]
    impls = ["eager"] + C.backends_for("cpu")
    expected = {(c.name, c.size, c.dtype_name, impl, mode)
                for c in C.cases_for("cpu", quick=True) for impl in impls for mode in C.MODES}
    got = {(r["name"], r["size"], r["dtype"], r["impl"], r["mode"]) for r in rows}
    assert got == expected
    quick = TimerConfig.quick()
    for r in rows:
        assert r["error"] is None, r
        assert 0 < r["p20_ms"] <= r["median_ms"] <= r["p80_ms"], r
        assert r["ms"] == pytest.approx(r["p20_ms"])  # the estimate is the low percentile
        assert quick.min_rounds <= r["rounds"] <= quick.max_rounds
        assert r["noisy"] is None or isinstance(r["noisy"], str)
        assert r["median_ms"] < 1e4  # an hour-long call means a broken timer, not a slow op


def test_quick_derived_columns(quick_run):
    _, res, _ = quick_run
    rows = res["results"]
    eager = {(r["name"], r["size"], r["dtype"], r["mode"]): r["ms"] for r in rows if r["impl"] == "eager"}
    copy = res["meta"]["copy_gbps"]
    for r in rows:
        case = C.Case(r["op"], r["kind"], tuple(int(s) for s in r["size"].split("x")), C.DTYPES[r["dtype"]])
        assert r["numel"] == math.prod(case.shape)
        assert r["bytes"] == case.bytes(r["mode"])
        assert r["speedup_vs_eager"] == pytest.approx(eager[(r["name"], r["size"], r["dtype"], r["mode"])] / r["ms"], rel=1e-9)
        assert r["speedup_vs_compiled"] is None  # --no-compile
        assert r["gbps"] == pytest.approx(r["bytes"] / (r["ms"] * 1e-3) / 1e9, rel=1e-9)
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
        assert float(line["ms"]) == pytest.approx(r["ms"])


def test_quick_e2e_steps_agree(quick_run):
    # Same weights, same batch, same alpha: every implementation's first critic loss must match the
    # hand-written recipe (an independent formulation of WGAN-GP) to float32 rounding.
    out, res, _ = quick_run
    e2e = res["e2e"]
    assert [r["model"] for r in e2e if r["impl"] == "hand-written"] == ["mlp64", "conv-small"]
    for model in ("mlp64", "conv-small"):
        rows = [r for r in e2e if r["model"] == model]
        assert [r["impl"] for r in rows] == ["hand-written"] + res["meta"]["backends"]
        base = rows[0]
        for r in rows:
            assert r["error"] is None and r["ms"] > 0, r
            assert r["speedup_vs_eager"] == pytest.approx(base["ms"] / r["ms"], rel=1e-9)
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
    assert out.strip().splitlines()[-1].startswith("conclusion: ")


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
    # Only columns that apply to a CPU: no GPU columns, no compiled ratio without the compiled
    # baseline, and no column that is "n/a" or "-" on every line.
    table = (out / "table.md").read_text()
    header = next(l for l in table.splitlines() if l.startswith("| op "))
    cols = [c.strip() for c in header.strip("|").split("|")]
    for gpu_col in ("gpu µs", "vs eager (gpu)", "kernels", "peak MiB", "vs compiled"):
        assert gpu_col not in cols
    op_lines = table.split("\n\n")[1].splitlines()  # the op table; the host and critic-step tables follow
    body = [[c.strip() for c in l.strip("|").split("|")] for l in op_lines
            if l.startswith("| ") and not l.startswith("| op ")]
    assert len(body) == len({(r["name"], r["size"], r["impl"]) for r in res["results"]})
    assert all(len(cells) == len(cols) for cells in body)
    for i, col in enumerate(cols):
        assert any(cells[i] not in ("-", "n/a") for cells in body), f"column {col!r} is empty on every line"
    assert "n/a" not in table and "CUDA-graph" not in stdout


def test_quick_host_table(quick_run):
    # Every default host case has the eager formula, each back end's public call and, for a kernel
    # back end, its floor; all timed from at least 41 interleaved rounds at B=64.
    _, res, stdout = quick_run
    host = res["host"]
    backends = res["meta"]["backends"]
    want = ["eager"] + [f"gk {b}" for b in backends] + [f"floor {b}" for b in backends if b in ("cpu", "cuda", "triton")]
    cases = {}
    for r in host:
        cases.setdefault((r["name"], r["size"]), []).append(r["candidate"] + (f" {r['backend']}" if r["backend"] else ""))
    assert set(cases) == {("d_loss/logistic", "64"), ("d_loss/hinge", "64"), ("g_loss/logistic", "64"),
                          ("grad_penalty/wgan-gp", "64x2"), ("interpolate", "64x2")}
    assert all(c == want for c in cases.values()), cases
    for r in host:
        assert r["error"] is None and r["ms"] > 0 and r["rounds"] >= 41, r
    lines = [l for l in stdout.split("### Host time per call")[1].splitlines() if l.startswith("| d_loss/hinge 64")]
    assert len(lines) == len(backends)


def test_eager_formulas_compute_what_the_library_does():
    # The baseline must be the same computation as the library call it is compared with: value and
    # gradients of every kind, written independently in plain PyTorch (bench/eager.py).
    gen = torch.Generator().manual_seed(3)
    r = torch.randn(37, generator=gen, dtype=torch.float64, requires_grad=True)
    f = torch.randn(37, generator=gen, dtype=torch.float64, requires_grad=True)
    for kind in _kinds.D_LOSS_KINDS:
        want = gk.d_loss(r, f, kind, backend="reference")
        got = E.D_LOSS[kind](r, f)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(torch.autograd.grad(got, (r, f)), torch.autograd.grad(want, (r, f)))
    for kind in _kinds.G_LOSS_KINDS:
        needs = kind in C.G_NEEDS_REAL
        want = gk.g_loss(f, kind, real_logits=r if needs else None, backend="reference")
        got = E.G_LOSS[kind](f, r) if needs else E.G_LOSS[kind](f)
        torch.testing.assert_close(got, want)
        wrt = (f, r) if needs else (f,)
        torch.testing.assert_close(torch.autograd.grad(got, wrt), torch.autograd.grad(want, wrt))
    g = (torch.randn(9, 3, 4, generator=gen, dtype=torch.float64) * 0.5).requires_grad_()
    for kind in _kinds.PENALTY_KINDS:
        want = gk.grad_penalty(g, kind, weight=10.0, backend="reference")
        got = E.PENALTY[kind](g, 10.0)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(torch.autograd.grad(got, g), torch.autograd.grad(want, g))
    a = torch.rand(37, generator=gen, dtype=torch.float64)
    real, fake = r.detach().view(37, 1).repeat(1, 3), f.detach().view(37, 1).repeat(1, 3)
    torch.testing.assert_close(E.interpolate(real, fake, a), gk.interpolate(real, fake, a, backend="reference"))


@pytest.mark.parametrize("op,kind", C.ALL_OP_KINDS, ids=[C.op_name(o, k) for o, k in C.ALL_OP_KINDS])
def test_floor_computes_what_the_library_does(op, kind):
    # The floor runs the back end's raw ops; it must compute the op (value and gradients) exactly as
    # the public call on that back end does, or it is not the floor of that call.
    backend = "cpu"
    if backend not in gk.available_backends():
        pytest.skip("the C++ CPU back end is not built here")
    from gan_kernels.bench.floor import floor_fn

    case = C.Case(op, kind, (64, 2) if op in ("interpolate", "grad_penalty") else (64,), torch.float32)
    inp = C.make_inputs(case, torch.device("cpu"), torch.Generator().manual_seed(11))
    got = C._call_with(floor_fn(op, kind, backend, C.PENALTY_WEIGHT), case)(inp)
    want = C.library_fn(case, backend)(inp)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(C.backward(got, inp), C.backward(want, inp))


def _bench_main(*argv):
    from gan_kernels.__main__ import main

    return main(["bench", *argv])


@pytest.mark.parametrize("argv,needle,accepted", [
    (["--backends", "foo"], "unknown --backends foo", "cuda triton cpu reference"),
    (["--ops", "bar", "d_loss"], "unknown --ops bar", "d_loss/wasserstein"),
    (["--only", "kernels"], "unknown --only kernels", "ops host steps multi"),
    (["--shape", "64xq"], "shape '64xq'", "64x3x32x32"),
    (["--shape", "0x2"], "shape '0x2'", "positive"),
    (["--batch", "0"], "--batch 0", "positive"),
])
def test_bad_names_are_rejected_with_the_accepted_list(argv, needle, accepted, tmp_path, capsys):
    assert _bench_main(*argv, "--device", "cpu", "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert needle in err and accepted in err, err
    assert not (tmp_path / "results.json").exists()


def test_unusable_backend_is_rejected_with_the_reason(tmp_path, capsys):
    if "cuda" in gk.available_backends():
        pytest.skip("cuda is usable here")
    assert _bench_main("--backends", "cuda", "--device", "cpu", "--out", str(tmp_path)) == 2
    assert "--backends cuda: not usable on cpu here" in capsys.readouterr().err


def test_every_kind_is_selectable():
    assert C.known_op_names()[:2] == ["d_loss", "d_loss/logistic"]
    for op, kind in C.ALL_OP_KINDS:
        assert C.select([C.op_name(op, kind)]) == [(op, kind)]
    assert C.select(["d_loss"]) == [("d_loss", k) for k in _kinds.D_LOSS_KINDS]
    assert C.select(["grad_penalty"]) == [("grad_penalty", k) for k in _kinds.PENALTY_KINDS]
    assert C.select(None) == list(C.OP_KINDS)


def test_shape_and_batch_choose_the_sizes():
    got = C.cases_for("cpu", True, ["d_loss/wasserstein", "interpolate"], shapes=[(8, 3, 4, 4), (128,)], batch=5)
    assert [(c.name, c.shape) for c in got] == [("d_loss/wasserstein", (5, 3, 4, 4)), ("d_loss/wasserstein", (5,)),
                                               ("interpolate", (5, 3, 4, 4)), ("interpolate", (5,))]
    sweep = C.cases_for("cpu", False, ["grad_penalty/wgan-lp"], batch=32)
    assert {c.shape[0] for c in sweep} == {32} and len(sweep) == len(C.IMAGE_SIZES["cpu"]) - 1  # 16x and 64x3x32x32 merge
    assert C.parse_shape("64x3x32x32") == (64, 3, 32, 32)
    from gan_kernels.bench.host import host_cases

    assert [c.shape for c in host_cases(["g_loss/rpgan", "grad_penalty/r1"], batch=16)] == [(16,), (16, 2)]


def test_own_sizes_and_uncommon_kinds_run(tmp_path, capsys):
    # Kinds outside the default selection (a g_loss that takes real logits, wgan-lp) at the user's sizes.
    out = tmp_path / "run"
    assert _bench_main("--only", "ops", "--ops", "g_loss/rpgan", "grad_penalty/wgan-lp", "--shape", "8x2",
                       "--batch", "4", "--device", "cpu", "--no-compile", "--no-plots", "--quick",
                       "--out", str(out)) == 0
    res = json.loads((out / "results.json").read_text())
    assert {(r["name"], r["size"]) for r in res["results"]} == {("g_loss/rpgan", "4x2"), ("grad_penalty/wgan-lp", "4x2")}
    assert all(r["error"] is None and r["ms"] > 0 for r in res["results"])
    assert res["host"] == [] and res["e2e"] == []
    # The same folder again is refused: a result is never overwritten.
    assert _bench_main("--only", "ops", "--ops", "interpolate", "--device", "cpu", "--out", str(out)) == 2
    assert "already holds a benchmark result" in capsys.readouterr().err


def test_default_output_folders_are_new_and_outside_the_package(tmp_path, monkeypatch):
    import datetime

    monkeypatch.chdir(tmp_path)
    now = datetime.datetime(2031, 5, 6, 7, 8, 9)
    first = R.out_dir_for(None, "some-cpu-2-cores", now)
    second = R.out_dir_for(None, "some-cpu-2-cores", now)  # same second: a second folder, not the first again
    assert first == os.path.join("gan_kernels_bench", "some-cpu-2-cores-20310506-070809")
    assert second == first + "-2"
    assert os.path.isdir(first) and os.path.isdir(second)


def test_interleaved_rounds_and_the_noisy_flag(monkeypatch):
    calls = []
    state = {"n": 0}

    def steady():
        calls.append("steady")

    def erratic():  # every other call takes 3 ms: a p80/p20 far above any threshold
        calls.append("erratic")
        state["n"] += 1
        if state["n"] % 2:
            time.sleep(0.003)

    monkeypatch.setattr(T, "oversubscribed", lambda: None)
    cfg = TimerConfig(warmup_ms=1.0, min_sample_ms=1e-6, min_rounds=9, max_rounds=9, max_ms=1e9)
    calls.clear()
    got = T.time_interleaved({"steady": steady, "erratic": erratic}, torch.device("cpu"), cfg)
    timed = calls[-18:]  # nine rounds of one call each (the warm-up calls come first)
    assert sorted(timed[0::2] + timed[1::2]) == ["erratic"] * 9 + ["steady"] * 9
    assert all({timed[i], timed[i + 1]} == {"steady", "erratic"} for i in range(0, 18, 2)), timed
    assert got["erratic"].samples == 9 and got["erratic"].noisy.startswith("p80/p20")
    # A machine with more runnable threads than cores flags every candidate, whatever its spread.
    monkeypatch.setattr(T, "oversubscribed", lambda: "load 9.0 on 2 cores")
    got = T.time_interleaved({"steady": steady}, torch.device("cpu"), cfg)
    assert got["steady"].noisy.endswith("load 9.0 on 2 cores")


def test_a_failing_candidate_is_dropped_not_fatal():
    def broken():
        raise RuntimeError("kernel exploded\nsecond line")

    errors = {}
    cfg = TimerConfig(warmup_ms=1.0, min_sample_ms=0.01, min_rounds=3, max_rounds=3)
    got = T.time_interleaved({"ok": lambda: None, "broken": broken}, torch.device("cpu"), cfg, errors)
    assert set(got) == {"ok"} and errors == {"broken": "RuntimeError: kernel exploded"}


def test_noisy_rows_are_marked_in_tables_and_plots(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from gan_kernels.bench import plots, report

    cases = [C.Case("d_loss", "hinge", (n,), torch.float32) for n in (16, 256, 4096, 65536)]
    rows = []
    for case in cases:
        for impl, t in (("eager", 0.05), ("cpu", 0.02)):
            for mode in C.MODES:
                r = _row(impl, mode, t * case.numel ** 0.25, None, case)
                r["noisy"] = "p80/p20 2.40" if (impl == "cpu" and case.numel == 256) else None
                rows.append(r)
    R.add_derived(rows, 10.0, {(c.name, c.size, c.dtype_name): c for c in cases})
    meta = {"device": "Test CPU", "torch": "x", "triton": "y", "date": "2026-01-01T00:00:00", "copy_gbps": 10.0,
            "device_type": "cpu", "timer": {"min_rounds": 15, "max_rounds": 61, "noisy_spread": 1.5}}
    text = report.format_tables({"meta": meta, "results": rows, "host": [], "e2e": []})
    line = next(l for l in text.splitlines() if l.startswith("| d_loss/hinge | 256 ") and "| cpu " in l)
    assert "(noisy)" in line
    assert "* d_loss/hinge 256 float32 cpu: p80/p20 2.40" in text
    figs = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figs.append(fig))
    plots.write({"meta": meta, "results": rows}, str(tmp_path))
    speed = figs[0]
    ax = speed.axes[0]
    hollow = [l for l in ax.lines if l.get_markerfacecolor() == "none"]
    assert len(hollow) == 1 and list(hollow[0].get_xdata()) == [256]
    assert "hollow markers: noisy" in speed._suptitle.get_text()
    speed.canvas.draw()
    for axis in (ax.xaxis, ax.yaxis):
        lo, hi = sorted(axis.get_view_interval())
        labels = [t.get_text() for t in axis.get_ticklabels() if t.get_text() and lo <= t.get_position()[axis is ax.yaxis] <= hi]
        assert labels and len(labels) == len(set(labels)), labels


def test_demo_conclusion_says_what_happened_and_why():
    from gan_kernels.bench.demo import conclusion

    slower = conclusion("cpu", 0.012, 0.010, 256, 30)
    assert "took 20% longer" in slower and "pay off" in slower
    faster = conclusion("cpu", 0.0075, 0.010, 256, 30)
    assert "took 25% less time" in faster and "fused" in faster
    assert "about as long" in conclusion("cpu", 0.010, 0.0101, 256, 30)
    assert "no kernel back end" in conclusion("reference", 0.01, 0.01, 256, 30)
    assert "busy" in conclusion("cpu", 0.01, 0.02, 256, 30, busy="load 5.0 on 2 cores")


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
            "dtype": case.dtype_name, "impl": impl, "mode": mode, "ms": wall, "median_ms": wall, "p20_ms": wall,
            "p80_ms": wall, "rounds": 15, "noisy": None, "error": None, "graph_median_ms": gpu, "graph_p20_ms": gpu, "graph_p80_ms": gpu,
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
        keep = prepare() if prepare else None  # noqa: F841 (the bwd closure needs the built outputs)
        for _ in range(cfg.graph_calls):
            fn()
        impl = current[0]
        seen.append((impl, prepare is not None))
        if impl == "reference" and prepare is not None:
            try:
                raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore text")
            except RuntimeError:
                raise RuntimeError("CUDA error: operation failed due to a previous error during capture")
        return Timing(0.004, 0.005, 0.004, 0.006, cfg.graph_replays)

    current = [None]
    real_impl_fn = C.impl_fn

    def tracking_impl_fn(case, impl):  # every call says which implementation ran last
        fn = real_impl_fn(case, impl)

        def call(inp):
            current[0] = impl
            return fn(inp)
        return call

    monkeypatch.setattr(C, "impl_fn", tracking_impl_fn)
    monkeypatch.setattr(R, "time_cuda_graph", fake_graph)
    case = C.Case("grad_penalty", "r1", (8, 3, 4, 4), torch.float32)
    impls = ["eager", "reference"]
    rows = R.measure_case(case, impls, torch.device("cpu"), TimerConfig.quick(), graph=True)
    R.add_derived(rows, 10.0, {(case.name, case.size, case.dtype_name): case})
    assert seen == [(i, m == "bwd") for i in impls for m in C.MODES]
    assert len(rows) == len(impls) * len(C.MODES)
    for r in rows:
        assert r["error"] is None and r["ms"] > 0  # wall-clock never lost to a capture failure
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
    assert "kernels" in cols and "peak MiB" in cols and "vs compiled" in cols
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
    T = _load_tool("targets")

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
    T = _load_tool("targets")

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
    T = _load_tool("targets")

    case = C.Case("d_loss", "hinge", (256,), torch.float32)
    rows = [_row("eager", "fwdbwd", 0.09, None, case), _row("cpu", "fwdbwd", 0.03, None, case)]
    R.add_derived(rows, 10.0, {(case.name, case.size, case.dtype_name): case})
    v = T.evaluate(rows, "cpu")
    assert [(x["impl"], x["measure"]) for x in v] == [("cpu", "wall-clock")]
    assert v[0]["value"] == pytest.approx(3.0) and v[0]["ok"] is False
    assert "FAIL (info: GPU target)" in T.format_verdicts(v, "cpu")


def test_targets_tool_on_cpu(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "bench/targets.py", "--device", "cpu", "--no-compile",
                           "--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "results.json").read_text())
    cases = {(r["name"], r["size"]) for r in res["results"]}
    assert cases == {("d_loss/hinge", "256"), ("d_loss/logistic", "256"), ("grad_penalty/wgan-gp", "64x3x256x256")}
    assert res["e2e"] == [] and res["host"] == []
    judged = {(v["impl"], v["target"]) for v in res["targets"]}
    assert len(judged) == 4 and all(i == "cpu" for i, _ in judged)
    for v in res["targets"]:
        assert v["value"] > 0 and v["ok"] == (v["value"] >= v["threshold"])
    assert "### Speed targets of the GPU back ends" in proc.stdout


def test_host_profile_script_runs():
    proc = subprocess.run([sys.executable, "bench/host_profile.py", "--calls", "5", "--top", "3"], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    heads = [l for l in proc.stdout.splitlines() if l.startswith("===")]
    assert len(heads) == 4, proc.stdout[-2000:]  # 2 cases x (cpu, reference)
    assert all(float(l.split(": ")[-1].split()[0]) > 0 for l in heads)
    assert proc.stdout.count("own us") == 4


def test_suggest_auto_order_and_results_file_cli(tmp_path):
    T = _load_tool("targets")

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
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "bench/targets.py", "--results", str(path)], cwd=ROOT, env=env,
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
    assert rows[("loss_forward logistic B=256", "launch only")][1] == 1


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


# --------------------------------------------------------------------------- multi-discriminator cases
def _spatial_after(x, layers, conv):
    """Spatial size after a stack of single-channel convolutions with ones kernels (real torch ops)."""
    sizes = []
    for k, stride, pad in layers:
        x = conv(x, k, stride, pad)
        sizes.append(tuple(x.shape[2:]))
    return sizes


def test_hifigan_v1_shapes_match_real_convolutions():
    from gan_kernels.bench import multi as M
    import torch.nn.functional as F

    batch, samples = 1, 1024
    discs = M.hifigan_v1_shapes(batch, samples)
    assert len(discs) == 8 and sum(len(d.fmaps) for d in discs) == 54
    assert [len(d.fmaps) for d in discs] == [6] * 5 + [8] * 3
    wave = torch.randn(batch, 1, samples)

    def conv2d(x, k, s, p):
        return F.conv2d(x, torch.ones(1, 1, k, 1), stride=(s, 1), padding=(p, 0))

    def conv1d(x, k, s, p):
        return F.conv1d(x, torch.ones(1, 1, k), stride=s, padding=p)

    for d, p in zip(discs[:5], (2, 3, 5, 7, 11)):
        pad = (p - samples % p) % p
        x = F.pad(wave, (0, pad), mode="reflect").view(batch, 1, -1, p)
        layers = [(5, 3, 2)] * 4 + [(5, 1, 2), (3, 1, 1)]
        assert [s[2:] for s in d.fmaps] == _spatial_after(x, layers, conv2d), d.name
        assert [s[1] for s in d.fmaps] == [32, 128, 512, 1024, 1024, 1]
        assert d.logits == (batch, d.fmaps[-1][2] * p)
    x = wave
    for i, d in enumerate(discs[5:]):
        if i:
            x = F.avg_pool1d(x, 4, 2, padding=2)
        layers = [(15, 1, 7), (41, 2, 20), (41, 2, 20), (41, 4, 20), (41, 4, 20), (41, 1, 20), (5, 1, 2), (3, 1, 1)]
        assert [s[2:] for s in d.fmaps] == _spatial_after(x, layers, conv1d), d.name
        assert [s[1] for s in d.fmaps] == [128, 128, 256, 512, 1024, 1024, 1024, 1]
    # The training segment of the published recipe: about 15 M feature-map elements per side.
    big = M.MultiCase("hifigan-v1", "B=2 T=8192", M.hifigan_v1_shapes(2, 8192))
    assert 15e6 < big.fm_numel < 16e6


def test_pix2pixhd_shapes_match_real_convolutions():
    from gan_kernels.bench import multi as M
    import torch.nn.functional as F

    discs = M.pix2pixhd_shapes(1, 256)
    assert len(discs) == 3 and [len(d.fmaps) for d in discs] == [4, 4, 4]
    x = torch.randn(1, 1, 256, 256)

    def conv(x, k, s, p):
        return F.conv2d(x, torch.ones(1, 1, k, k), stride=s, padding=p)

    for i, d in enumerate(discs):
        if i:
            x = F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=False)
        sizes = _spatial_after(x, [(4, 2, 2), (4, 2, 2), (4, 2, 2), (4, 1, 2), (4, 1, 2)], conv)
        assert [s[2:] for s in d.fmaps] == sizes[:4] and d.logits[2:] == sizes[4]
        assert [s[1] for s in d.fmaps] == [64, 128, 256, 512]


def test_multi_cases_run_and_agree_at_the_launch_bound_size():
    from gan_kernels.bench import multi as M

    case = [c for c in M.multi_cases() if c.size == "B=1 T=1024"][0]
    backends = C.backends_for("cpu")
    cfg = TimerConfig(warmup_ms=1.0, min_sample_ms=0.2, min_rounds=2, max_rounds=2, max_ms=500.0)
    rows = M.run_multi(torch.device("cpu"), backends, [case], cfg, copy_gbps=10.0)
    expected = {("d_loss", "loop"), ("d_loss", "loop+item"), ("g_loss", "loop"), ("feature_matching", "loop")}
    expected |= {(loss, f"gk {b}") for loss in M.LOSSES for b in backends}
    assert {(r["loss"], r["impl"]) for r in rows} == expected
    for loss in M.LOSSES:
        mine = [r for r in rows if r["loss"] == loss]
        base = [r for r in mine if r["impl"] == "loop"][0]
        assert base["first_loss"] > 0
        for r in mine:
            assert r["error"] is None and r["ms"] > 0 and r["rounds"] == 2, r
            assert r["discriminators"] == 8 and r["feature_maps"] == 54
            # Every candidate computes the loop's value (an independent formulation of the same loss).
            assert r["first_loss"] == pytest.approx(base["first_loss"], rel=1e-5), r
            assert r["speedup_vs_loop"] == pytest.approx(base["ms"] / r["ms"], rel=1e-9)
            assert r["pct_copy"] == pytest.approx(100 * r["gbps"] / 10.0, rel=1e-9)
        # The loops dispatch several ops per discriminator or pair; the compiled back end a handful.
        assert base["ops_dispatched"] > 8 * 3
        if "cpu" in backends:
            gk_cpu = [r for r in mine if r["impl"] == "gk cpu"][0]
            assert gk_cpu["ops_dispatched"] < base["ops_dispatched"] / 10
    fm = [r for r in rows if r["loss"] == "feature_matching"][0]
    assert fm["bytes"] == 4 * case.fm_numel * 6  # both sides read twice, both gradients written
    assert "hifigan-v1" in R.report.multi_table(rows)
