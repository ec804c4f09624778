"""The --shard option of tests/conftest.py: N pytest processes side by side run every test once.

bench/gpu_check.sh runs the Triton GPU tests as parallel shards so the JIT compiles use all cores;
a shard that lost or duplicated tests would silently shrink or pad that run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from types import SimpleNamespace
from pathlib import Path

import pytest
import torch

from .conftest import shard_group, shard_items

ROOT = Path(__file__).resolve().parent.parent


def _item(fn: str, kind, dtype, shape: str):
    params = {"kind": kind, "dtype": dtype, "shape": shape}
    return SimpleNamespace(path=Path("test_x.py"), name=f"{fn}[{kind}-{shape}]", originalname=fn,
                           callspec=SimpleNamespace(params=params))


def test_shards_partition_and_keep_groups_together():
    items = [
        _item(fn, kind, dtype, shape)
        for fn in ("test_a", "test_b")
        for kind in ("hinge", "logistic", "rpgan")
        for dtype in (torch.float32, torch.float16)
        for shape in ("vec", "big", "huge", "odd")
    ]
    for n in (1, 2, 3, 5, 40):
        shards = [shard_items(items, i, n) for i in range(n)]
        ids = [id(x) for s in shards for x in s]
        assert sorted(ids) == sorted(map(id, items)), f"n={n}: shards must hold every item exactly once"
        owner = {}
        for i, s in enumerate(shards):
            for x in s:
                assert owner.setdefault(shard_group(x), i) == i, f"n={n}: group {shard_group(x)} split"
        if n <= 12:  # 12 groups: with fewer shards than groups, none is left empty
            assert all(shards), f"n={n}: an empty shard"
        sizes = [len(s) for s in shards]
        assert max(sizes) - min(sizes) <= 4, f"n={n}: unbalanced {sizes}"  # a group holds 4 items


def _collect(*args: str):
    env = dict(os.environ, TRITON_INTERPRET=os.environ.get("TRITON_INTERPRET", "1"))
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/test_backends.py", "-k", "d_loss", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return [line for line in out.stdout.splitlines() if re.match(r"tests/\S+::", line)]


@pytest.mark.slow
def test_shard_option_on_the_real_collection():
    full = _collect()
    shards = [_collect("--shard", f"{i}/3") for i in range(3)]
    assert len(full) > 100
    assert sorted(sum(shards, [])) == sorted(full)
    assert all(len(s) > len(full) // 6 for s in shards), [len(s) for s in shards]


def test_bad_shard_is_a_usage_error():
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/test_formulas.py", "--shard", "3/3"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode != 0 and "--shard 3/3" in out.stderr + out.stdout
