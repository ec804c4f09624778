"""How the Triton back end's Functions reach its ops: directly in plain eager calls, else the registered op.

``gan_kernels.triton.OPS`` runs an op's Python implementation without the custom-op dispatch when
nothing needs to see the op (``_plain_eager``); fake tensors, dispatch and function modes,
tensor subclasses and the profiler take the registered op. These tests check both directions and
that the two paths give the same bits, and that torch.compile (fullgraph) traces the registered
ops and, with Inductor, gives eager's values.
"""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import gan_kernels as gk
from gan_kernels import _kinds
from gan_kernels.bench.timing import DispatchCounter

from ._helpers import backend_runs_on

# tests/conftest.py sets TRITON_INTERPRET=1 on a machine without a GPU before triton is imported.
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if not backend_runs_on("triton", DEVICE):
    pytest.skip(f"the triton back end does not run on {DEVICE} tensors here", allow_module_level=True)

import gan_kernels.triton as gt  # noqa: E402

pytestmark = [pytest.mark.gpu] if DEVICE == "cuda" else []


def _logits(n=37):
    return torch.randn(n, device=DEVICE) * 2


MEAN, SUM = _kinds.REDUCTIONS["mean"], _kinds.REDUCTIONS["sum"]
LOGISTIC = _kinds.d_loss_args("logistic", 1.0, 0.0, 0.0, 1.0)


def test_plain_eager_call_runs_the_implementation_directly(monkeypatch):
    calls = []
    impl = gt.IMPLS["loss_forward"]
    monkeypatch.setitem(gt.IMPLS, "loss_forward", lambda *a: calls.append(1) or impl(*a))
    op = gt._direct("loss_forward")  # binds the patched implementation
    r, f = _logits(), _logits()
    op(r, f, *LOGISTIC, MEAN, True)
    assert calls == [1]
    with DispatchCounter() as seen:  # a dispatch mode must see the op: the registered one runs, not impl
        op(r, f, *LOGISTIC, MEAN, True)
    assert calls == [1]
    assert seen.by_op.get("gan_kernels_triton.loss_forward") == 1, seen.by_op


@pytest.mark.parametrize("context", ["fake tensors", "function mode", "subclass", "profiler"])
def test_calls_that_must_see_the_op_take_the_registered_op(context):
    r, f = _logits(), _logits()
    args = (r, f, *LOGISTIC, MEAN, True)
    if context == "fake tensors":
        with FakeTensorMode(allow_non_fake_inputs=False) as mode:
            fr, ff = mode.from_tensor(r), mode.from_tensor(f)
            assert not gt._plain_eager((fr, ff))
            loss = gk.d_loss(fr.requires_grad_(), ff.requires_grad_(), "logistic", backend="triton")
            assert loss.shape == () and type(loss).__name__ == "FakeTensor"
    elif context == "function mode":
        with torch.device(DEVICE):  # a TorchFunctionMode
            assert not gt._plain_eager(args)
    elif context == "subclass":
        assert not gt._plain_eager((torch.nn.Parameter(r), f))
    else:
        with torch.profiler.profile() as prof:
            assert not gt._plain_eager(args)
            gk.d_loss(r.requires_grad_(), f, "hinge", backend="triton").backward()
        names = {e.key for e in prof.key_averages()}
        assert "gan_kernels_triton::loss_forward" in names and "gan_kernels_triton::loss_backward" in names, names
    assert gt._plain_eager(args)  # and back to the direct path afterwards


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("name", ["d_loss", "g_loss", "interpolate_forward", "grad_penalty_forward"])
def test_direct_and_registered_paths_give_the_same_bits(name, layout):
    r, f = _logits(), _logits()
    g = torch.randn(5, 3, 7, 9, device=DEVICE)
    if layout == "strided":  # every-other logit; a channels_last and a permuted gradient
        r, f = _logits(74)[::2], _logits(74)[1::2]
        g = g.contiguous(memory_format=torch.channels_last) if name == "grad_penalty_forward" else g.transpose(2, 3)
    op, args = {
        "d_loss": ("loss_forward", (r, f, *_kinds.d_loss_args("relativistic", 1.0, 0.01, 0.0, 1.0), MEAN, True)),
        "g_loss": ("loss_forward", (r, f, *_kinds.g_loss_args("rpgan", 1.0), SUM, True)),
        "interpolate_forward": ("interpolate_forward", (g, g.flip(0), torch.rand(5, device=DEVICE))),
        "grad_penalty_forward": ("grad_penalty_forward", (g / 10, 0, 1.0, 10.0, MEAN, 1.0, None)),
    }[name]
    direct = getattr(gt.OPS, op)(*args)
    registered = getattr(torch.ops.gan_kernels_triton, op)(*args)
    direct = direct if isinstance(direct, tuple) else (direct,)
    registered = registered if isinstance(registered, tuple) else (registered,)
    assert len(direct) == len(registered)
    for a, b in zip(direct, registered):
        assert a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride()
        assert torch.equal(a, b)


def test_torch_compile_traces_the_registered_ops():
    """Under torch.compile the Functions' op calls are the registered custom ops in the graph (the
    direct path's Python never gets traced); fullgraph=True, and the values match eager."""
    torch._dynamo.reset()
    targets = []

    def record(gm, example_inputs):
        for _, mod in gm.named_modules():
            if isinstance(mod, torch.fx.GraphModule):
                targets.extend(str(n.target) for n in mod.graph.nodes if n.op == "call_function")
        return gm.forward

    def step(r, f):
        return gk.d_loss(r, f, "logistic", backend="triton")

    r, f = _logits().requires_grad_(), _logits()
    out = torch.compile(step, backend=record, fullgraph=True)(r, f)
    torch.testing.assert_close(out, step(r, f))
    assert any(t.startswith("gan_kernels_triton.loss_forward") for t in targets), targets


def test_torch_compile_fullgraph_with_inductor():
    """The whole step compiled by Inductor (fullgraph: no graph break) equals eager, values and grads."""
    torch._dynamo.reset()

    def step(r, f, g):
        return gk.d_loss(r, f, "hinge", backend="triton") + gk.grad_penalty(g, "wgan-gp", backend="triton")

    compiled = torch.compile(step, fullgraph=True)
    ins = [_logits(8), _logits(8), torch.randn(4, 3, 5, device=DEVICE) * 0.3]
    a = [x.clone().requires_grad_() for x in ins]
    b = [x.clone().requires_grad_() for x in ins]
    out_c, out_e = compiled(*a), step(*b)
    torch.testing.assert_close(out_c, out_e)
    out_c.backward()
    out_e.backward()
    for x, y in zip(a, b):
        torch.testing.assert_close(x.grad, y.grad)
    torch._dynamo.reset()
