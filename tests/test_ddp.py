"""DistributedDataParallel with a gradient penalty (double backward), 2 CPU processes over gloo.

The check: a WGAN-GP critic step on a DDP-wrapped critic, each rank on half the batch, gives exactly
the parameter gradients of one process on the whole batch (alpha fixed so both draw the same), with
no "marked ready twice" or unused-parameter error, for the DDP settings we document:

* default DDP (``find_unused_parameters=False``, ``static_graph=False``) with the *wrapped* critic
  passed to ``gk.gradient_penalty``: works;
* ``find_unused_parameters=True``: works (one extra graph traversal per step, and a warning);
* ``static_graph=True``: gives wrong gradients (torch 2.14) when the penalty's critic forward goes
  through the DDP wrapper, because the wrapper's output node also runs inside the penalty's
  ``autograd.grad``; passing ``ddp.module`` to the penalty fixes it, and that is what is tested.

All configurations run in one pair of processes (one spawn: starting Python + torch is the cost).
"""

from __future__ import annotations

import datetime
import os
import socket
import time
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2
BATCH = 8
STEPS = 3
TIMEOUT_S = 180
CONFIGS = {
    # name: (DDP kwargs, whether the penalty's critic is ddp.module instead of the wrapper)
    "default": ({}, False),
    "find_unused": ({"find_unused_parameters": True}, False),
    "static_graph_module": ({"static_graph": True}, True),
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batches(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(STEPS):
        real = torch.randn(BATCH, 2, generator=g)
        fake = torch.randn(BATCH, 2, generator=g) * 0.7 + 0.5
        alpha = torch.rand(BATCH, generator=g)
        out.append((real, fake, alpha))
    return out


def _make_critic():
    from gan_kernels.models import MLPCritic

    torch.manual_seed(0)
    return MLPCritic(in_dim=2, hidden=16, depth=2)


def _train(critic, penalty_critic, rank: int, world: int, backend: str):
    """STEPS critic updates on this rank's shard; returns each step's gradients and the final weights."""
    import gan_kernels as gk

    opt = torch.optim.SGD(critic.parameters(), lr=0.05)
    shard = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    grads = []
    for real, fake, alpha in _batches():
        real, fake, alpha = real[shard], fake[shard], alpha[shard]
        loss = gk.d_loss(critic(real), critic(fake), "wasserstein", backend=backend)
        loss = loss + gk.gradient_penalty(penalty_critic, real, fake, alpha=alpha, weight=10.0, backend=backend)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grads.append([torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in critic.parameters()])
        opt.step()
    return grads


def _worker(rank: int, port: int, backend: str, result_dir: str) -> None:
    import warnings

    from torch.nn.parallel import DistributedDataParallel as DDP

    warnings.filterwarnings("ignore")  # find_unused_parameters' "no unused parameters" warning
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    try:
        dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=60))
        results = {}
        for name, (kwargs, use_module) in CONFIGS.items():
            ddp = DDP(_make_critic(), **kwargs)
            results[name] = _train(ddp, ddp.module if use_module else ddp, rank, WORLD, backend)
        torch.save(results, os.path.join(result_dir, f"rank{rank}.pt"))
        # Everyone finishes its collectives before anyone tears the group down (gloo aborted at
        # exit now and then without this barrier).
        dist.barrier()
        dist.destroy_process_group()
    except Exception:
        with open(os.path.join(result_dir, f"rank{rank}.err"), "w") as f:
            f.write(traceback.format_exc())
        raise


def _backends():
    import gan_kernels as gk

    return [b for b in ("reference", "cpu") if b in gk.available_backends()]


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed with gloo is missing")
@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_ddp_gradient_penalty_matches_single_process(backend, tmp_path):
    if backend not in _backends():
        pytest.skip(f"back end {backend!r} is not available")
    # "cpu" exercises the C++ kernels; reference is the fallback everyone has. Running both doubles
    # the cost, so the reference case only runs when the C++ back end is missing.
    if backend == "reference" and "cpu" in _backends():
        pytest.skip("covered by the 'cpu' case (the reference runs when the C++ back end is missing)")

    ctx = mp.start_processes(
        _worker, args=(_free_port(), backend, str(tmp_path)), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not ctx.join(timeout=5):
            if time.monotonic() > deadline:
                for p in ctx.processes:
                    if p.is_alive():
                        p.kill()
                pytest.fail(f"DDP workers did not finish within {TIMEOUT_S} s (a hung collective?)")
    except mp.ProcessRaisedException as e:  # a worker raised: show its traceback
        pytest.fail(f"DDP worker failed:\n{e}")
    except mp.ProcessExitedException as e:
        errs = "".join(p.read_text() for p in tmp_path.glob("*.err"))
        pytest.fail(f"DDP worker exited abnormally: {e}\n{errs}")

    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    critic = _make_critic()
    single = _train(critic, critic, 0, 1, backend)
    for name in CONFIGS:
        for step in range(STEPS):
            for r in range(WORLD):
                for g_ddp, g_one in zip(ranks[r][name][step], single[step]):
                    torch.testing.assert_close(
                        g_ddp, g_one, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}, step {step}, rank {r}: {m}"
                    )
