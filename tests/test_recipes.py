"""Guard rails of `gradient_penalty` for the two mistakes the recipe cannot fix by itself.

* A critic with batch norm in training mode couples the samples of a batch, so the per-sample
  gradient norm the penalty constrains is not the critic's gradient at that sample (the caveat of
  the WGAN-GP paper): `gradient_penalty` warns, once.
* Under `torch.no_grad()` the critic's output has no graph to differentiate: `gradient_penalty`
  raises a RuntimeError that names `no_grad` and the fix, instead of autograd's
  "element 0 of tensors does not require grad".
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from torch import nn

import gan_kernels as gk

# Until functional.py implements these two guard rails, their tests are expected to fail; strict, so
# the marker has to go (an unexpected pass fails) the moment the behaviour lands.

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A fresh process, so that "once" is not spoiled by an earlier test having seen the warning.
_COUNT_WARNINGS = """
import sys, warnings
import torch
from torch import nn
import gan_kernels as gk

def count(critic, calls):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # count every emission, not Python's deduplicated ones
        for _ in range(calls):
            gk.gradient_penalty(critic, torch.randn(8, 3, 8, 8), torch.randn(8, 3, 8, 8), backend="reference")
    return sum(1 for w in seen if "batchnorm" in str(w.message).lower().replace(" ", "").replace("_", ""))

torch.manual_seed(0)
plain = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(256, 1))
print("plain", count(plain, 2))
# Before the training-mode critic, so that a warning given once per process cannot hide here.
frozen = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(256, 1)).eval()
print("eval", count(frozen, 1))
inner = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.LeakyReLU(0.2))
with_bn = nn.Sequential(nn.Sequential(inner), nn.Flatten(), nn.Linear(256, 1))  # nested: found anyway
print("batchnorm", count(with_bn, 3))
"""


def _warning_counts():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, "-c", _COUNT_WARNINGS], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return dict((k, int(v)) for k, v in (ln.split() for ln in run.stdout.splitlines() if ln.split()[:1] in (["plain"], ["batchnorm"], ["eval"])))


@pytest.fixture(scope="module")
def warning_counts():
    return _warning_counts()


def test_gradient_penalty_warns_once_for_a_batchnorm_critic(warning_counts):
    assert warning_counts["plain"] == 0, warning_counts
    assert warning_counts["batchnorm"] == 1, warning_counts


def test_gradient_penalty_does_not_warn_for_batchnorm_in_eval_mode(warning_counts):
    # Running statistics do not couple samples: the penalty is valid there
    # and a warning would be a false alarm.
    assert warning_counts["eval"] == 0, warning_counts


def _critic():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))


def test_gradient_penalty_under_no_grad_raises_a_clear_error():
    critic = _critic()
    real, fake = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    with torch.no_grad():
        with pytest.raises(RuntimeError, match=r"no_grad") as info:
            gk.gradient_penalty(critic, real, fake)
    assert "enable_grad" in str(info.value), str(info.value)  # the message says how to fix it


def test_gradient_penalty_inside_enable_grad_within_no_grad_works():
    """An evaluation loop under no_grad can still compute the penalty in an enable_grad block."""
    critic = _critic()
    real, fake = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    alpha = torch.rand(4)
    with torch.no_grad():
        with torch.enable_grad():
            p = gk.gradient_penalty(critic, real, fake, alpha=alpha, backend="reference")
    # Independent value: the input gradient of a linear-leaky-linear critic via autograd directly.
    x = (alpha.view(4, 1, 1, 1) * real + (1 - alpha.view(4, 1, 1, 1)) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x)
    expected = 10.0 * ((g.flatten(1).norm(dim=1) - 1.0) ** 2).mean()
    torch.testing.assert_close(p, expected)
    assert p.requires_grad
