"""Shared pytest setup: the Triton interpreter on CPU-only machines, the gpu marker, fresh seeds,
and a closing summary of what ran and what was left for a GPU machine."""

import os
import zlib
from collections import Counter

import torch

# Triton reads TRITON_INTERPRET when it is imported (gan_kernels imports it): set it first, and only
# where there is no GPU, so a GPU machine runs the compiled Triton kernels.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

import gan_kernels  # noqa: E402,F401


def pytest_addoption(parser):
    parser.addoption(
        "--shard", default=None, metavar="I/N",
        help="run only shard I (0-based) of N of the selected tests, for N pytest processes side by side "
        "(bench/gpu_check.sh: Triton's JIT compiles then use every core). Tests that build the same "
        "kernel variants (same test function, kind and dtype) stay in one shard.",
    )


def _parse_shard(text: str):
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise pytest.UsageError(f"--shard expects I/N with integers, got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise pytest.UsageError(f"--shard {text}: need N >= 1 and 0 <= I < N")
    return i, n


def shard_group(item) -> str:
    """Tests of one group share their compiled kernels: one test function, one kind, one dtype."""
    name = getattr(item, "originalname", None) or item.name
    params = getattr(getattr(item, "callspec", None), "params", {})
    return f"{item.path.name}::{name}[{params.get('kind', '')}|{params.get('dtype', '')}]"


def shard_items(items, i: int, n: int):
    """The items of shard ``i`` of ``n``: whole groups, largest first, each to the lightest shard.

    Every process computes the same assignment from the same collection, so the shards are
    disjoint and together hold every item.
    """
    groups = {}
    for item in items:
        groups.setdefault(shard_group(item), []).append(item)
    load = [0] * n
    mine = set()
    for key in sorted(groups, key=lambda k: (-len(groups[k]), k)):
        s = min(range(n), key=lambda j: (load[j], j))
        load[s] += len(groups[key])
        if s == i:
            mine.add(key)
    return [item for item in items if shard_group(item) in mine]


@pytest.hookimpl(trylast=True)  # after -k / -m deselection: shard what will actually run
def pytest_collection_modifyitems(config, items):
    shard = config.getoption("--shard")
    if shard:
        i, n = _parse_shard(shard)
        keep = shard_items(items, i, n)
        kept = set(map(id, keep))
        dropped = [item for item in items if id(item) not in kept]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run bench/gpu_check.sh on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed(request):
    # A different but reproducible seed per test: fresh random data without flaky reruns.
    torch.manual_seed(zlib.crc32(request.node.nodeid.encode()))
    yield


def _skip_reason(report) -> str:
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """What ran, and what did not: GPU-marked tests apart from the other skips, so a CPU run's
    skip count does not read as a gap in what the CPU checks."""
    stats = terminalreporter.stats
    reports = [r for key in ("skipped", "passed", "failed", "xfailed", "xpassed", "error") for r in stats.get(key, [])]
    if not reports:
        return
    ran = len([r for r in stats.get("passed", []) if r.when == "call"])
    skipped = [r for r in stats.get("skipped", []) if r.when in ("setup", "call")]
    gpu = [r for r in skipped if "gpu" in r.keywords]
    other = [r for r in skipped if "gpu" not in r.keywords]
    tr = terminalreporter
    tr.section("what ran", sep="-")
    tr.write_line(f"{ran} passed on {'a CUDA device and the CPU' if torch.cuda.is_available() else 'the CPU'}"
                  f" ({len(stats.get('failed', []))} failed, {len(stats.get('xfailed', []))} expected failures)")
    tr.write_line(f"{len(gpu)} skipped that need a GPU (the gpu mark; bench/gpu_check.sh runs them)")
    tr.write_line(f"{len(other)} skipped for other reasons" + (":" if other else ""))
    for reason, n in Counter(_skip_reason(r) for r in other).most_common(8):
        tr.write_line(f"  {n:5d}  {reason[:150]}")
