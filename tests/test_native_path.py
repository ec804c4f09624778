"""The compiled back ends' host path: one C++ op per call, a C++ graph node, no Python in backward.

A call of the public API on the cpu back end must reach the kernels through one registered op
whose autograd node is C++ (``csrc/autograd/``), and the backward must run no Python at all --
that is what makes a small loss call cost little more than its kernels. These tests fail when a
Python autograd Function (or any Python callback) comes back into either path.
"""

from __future__ import annotations

import gc
import os
import sys
import weakref

import pytest
import torch

import gan_kernels as gk
from gan_kernels import _cpp

pytestmark = pytest.mark.skipif(
    "cpu" not in gk.available_backends(), reason=f"the cpu back end is not built ({_cpp.LOAD_ERROR})"
)

PKG = os.path.dirname(gk.__file__)


def _calls(fn):
    """Python functions of the gan_kernels package that run while fn() runs."""
    seen = []

    def hook(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(PKG):
            seen.append(f"{os.path.relpath(frame.f_code.co_filename, PKG)}:{frame.f_code.co_name}")

    sys.setprofile(hook)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return seen


def _cases():
    r = torch.randn(16, 1, requires_grad=True)
    f = torch.randn(16, 1, requires_grad=True)
    g = torch.randn(8, 3, 4, requires_grad=True)
    x = torch.randn(8, 3, 4, requires_grad=True)
    a = torch.rand(8)
    return {
        "d_loss": (lambda: gk.d_loss(r, f, "hinge", backend="cpu"), (r, f), "LossFunction"),
        "d_loss relativistic none": (
            lambda: gk.d_loss(r, f, "relativistic", reduction="none", backend="cpu").sum(), (r, f), None),
        "g_loss": (lambda: gk.g_loss(f, "logistic", backend="cpu"), (f,), "LossFunction"),
        "g_loss rpgan": (lambda: gk.g_loss(f, "rpgan", real_logits=r, backend="cpu"), (r, f), "LossFunction"),
        "interpolate": (lambda: gk.interpolate(x, g, a, backend="cpu").sum(), (x, g), None),
        "grad_penalty": (lambda: gk.grad_penalty(g, "wgan-gp", backend="cpu"), (g,), "GradPenaltyFunction"),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_graph_node_is_cpp_and_backward_runs_no_python(case):
    fwd, inputs, node = _cases()[case]
    out = fwd()
    if node is not None:
        assert not isinstance(out.grad_fn, torch.autograd.function.BackwardCFunction), type(out.grad_fn)
        assert node in out.grad_fn.name(), out.grad_fn.name()
    calls = _calls(lambda: torch.autograd.grad(out, inputs))
    assert calls == [], f"Python ran in the backward of {case}: {calls}"


def _max_depth(fn):
    """The deepest nesting of gan_kernels' own Python frames while fn() runs."""
    depth = deepest = 0

    def hook(frame, event, arg):
        nonlocal depth, deepest
        if not frame.f_code.co_filename.startswith(PKG):
            return
        if event == "call":
            depth += 1
            deepest = max(deepest, depth)
        elif event == "return":
            depth -= 1

    sys.setprofile(hook)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return deepest


@pytest.mark.parametrize("case", ["d_loss", "g_loss", "grad_penalty"])
def test_forward_is_a_shallow_python_call(case):
    """The public function, the back end's one-line wrapper, the op: no autograd.Function, no layers."""
    fwd, _, _ = _cases()[case]
    fwd()  # the first call resolves and caches the back end
    calls = _calls(fwd)
    assert not any(c.startswith(("_autograd.py", "reference.py")) for c in calls), calls
    assert _max_depth(fwd) <= 3, calls


def _freed_after(make_out):
    """Whether the input tensors of make_out are freed while its output's graph is still alive."""
    base = torch.randn(8, 3, 4, requires_grad=True)
    other = torch.randn(8, 3, 4, requires_grad=True)
    real, fake = base * 2.0, other * 3.0  # non-leaf: only a node that saves them keeps them alive
    refs = (weakref.ref(real), weakref.ref(fake))
    out = make_out(real, fake)
    del real, fake
    gc.collect()
    alive = [r() is not None for r in refs]
    out.sum().backward()  # the graph still works
    assert base.grad is not None and other.grad is not None
    return alive


def test_interpolate_saves_alpha_only():
    alpha = torch.rand(8)
    assert _freed_after(lambda r, f: gk.interpolate(r, f, alpha, backend="cpu")) == [False, False]
    # Only a gradient for alpha itself needs real and fake.
    alpha_g = torch.rand(8, requires_grad=True)
    assert _freed_after(lambda r, f: gk.interpolate(r, f, alpha_g, backend="cpu")) == [True, True]


def test_second_order_through_the_native_ops_matches_the_reference():
    """create_graph=True through a loss and a penalty: the gradient of the gradient is right."""
    torch.manual_seed(3)
    r = torch.randn(7, dtype=torch.float64, requires_grad=True)
    f = torch.randn(7, dtype=torch.float64, requires_grad=True)
    g = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)

    def second(backend):
        loss = gk.d_loss(r, f, "logistic", drift=0.1, backend=backend) + gk.grad_penalty(g, "wgan-gp", backend=backend)
        gr, gf, gg = torch.autograd.grad(loss, (r, f, g), create_graph=True)
        return torch.autograd.grad((gr * gr).sum() + gf.sum() + (gg * gg).sum(), (r, f, g))

    for a, b in zip(second("cpu"), second("reference")):
        torch.testing.assert_close(a, b)
