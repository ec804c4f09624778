"""The C++ ops on CPU tensors under ``torch.library.opcheck``, and torch.compile of the API.

opcheck runs each ``torch.ops.gan_kernels.*`` op -- the six device ops and the three public
differentiable ops -- through its schema check, the fake (meta) kernel (output shapes, dtypes and
strides must equal the CPU kernel's), autograd-registration check and AOT dispatch with dynamic
shapes (for the public ops: through their C++ autograd kernels, forward and backward). It does
not prove a value right: tests/test_device_ops.py (the device ops) and tests/test_backends.py
(the public API) do that against the reference. The inputs cover float32 and float64, several
kinds and reductions, channels_last and non-batch-major layouts, an expanded (stride-0) upstream
gradient, and inputs with and without requires_grad.
"""

from __future__ import annotations

import pytest
import torch

import gan_kernels as gk
from gan_kernels import _cpp, _fake, _kinds

if _cpp.LOAD_ERROR is not None:
    pytest.skip(f"gan_kernels._C is not loaded ({_cpp.LOAD_ERROR})", allow_module_level=True)
if not _cpp.has_kernel("loss_forward", "CPU"):
    pytest.skip("gan_kernels._C was built without the CPU kernels", allow_module_level=True)

OPS = torch.ops.gan_kernels
P, R = _kinds.PENALTY_KINDS, _kinds.REDUCTIONS


def D(kind, real_label=1.0, drift=0.0, ls=(0.0, 1.0)):
    return _kinds.d_loss_args(kind, real_label, drift, *ls)


def G(kind, ls_target=1.0):
    return _kinds.g_loss_args(kind, ls_target)
DTYPES = [torch.float32, torch.float64]


def _t(shape, dtype, grad=False, scale=2.0):
    return (torch.randn(shape, dtype=torch.float64) * scale).to(dtype).requires_grad_(grad)


def _cases(dtype, grad):
    """op name -> list of argument tuples."""
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    r, f = _t((6, 1, 3, 4), dtype, grad), _t((6, 1, 3, 4), dtype, grad)
    r1, f1 = _t((5,), dtype, grad), _t((9, 1), dtype, grad)  # unequal batches
    g = _t((3, 2, 5, 6), dtype, grad).contiguous(memory_format=torch.channels_last)
    g_t = _t((4, 3, 5), dtype, grad).transpose(0, 1)  # batch not outermost: read through a copy
    alpha = torch.rand(3, dtype=acc)
    with torch.no_grad():
        _, norms = OPS.grad_penalty_forward(g, P["wgan-gp"], 1.0, 1.0, R["mean"], 1.0, None)
        _, norms_t = OPS.grad_penalty_forward(g_t, P["wgan-lp"], 1.0, 1.0, R["none"], 1.0, None)
    saved = torch.randn(6, 1, 3, 4, dtype=acc)
    return {
        "loss_forward": [
            (r, f, *D("logistic", 0.9, 0.1), R["mean"], True),
            (r1, f1, *D("hinge"), R["sum"], True),
            (r, f, *D("relativistic", drift=0.05), R["mean"], True),
            (r, f, *D("relativistic"), R["none"], True),
            (r, f, *D("rpgan"), R["none"], False),
            (r1, f1, *D("least_squares", ls=(-0.5, 0.5)), R["mean"], False),
            (None, f, *G("logistic"), R["mean"], True),
            (None, f1, *G("least_squares", 0.7), R["none"], True),
            (r, f, *G("relativistic"), R["sum"], True),
            (r, f, *G("rpgan"), R["none"], True),
            (r, f, *G("hinge"), R["mean"], True),  # real given but unused by the kind: ignored
        ],
        "loss_backward": [
            (torch.randn((), dtype=acc), saved, saved[:2].clone(), dtype, acc),
            (torch.randn((), dtype=acc).expand(6, 1, 3, 4), saved, saved.new_empty((0,)), dtype, dtype),
            (torch.randn(6, 1, 3, 4, dtype=acc), saved, saved, torch.float16, torch.bfloat16),
        ],
        "interpolate_forward": [
            (g, _t(g.shape, dtype, grad), alpha),
            (g, _t(g.shape, dtype, grad), alpha[:1].expand(3)),  # fake in another layout
            (g_t, _t(g_t.shape, dtype, grad), torch.rand(3, dtype=acc)),
        ],
        "interpolate_backward": [
            (g.detach(), alpha, True, True),
            (g.detach(), alpha, False, True),
            (g_t.detach(), torch.rand(3, dtype=acc), True, False),
        ],
        "grad_penalty_forward": [
            (g, P["wgan-gp"], 1.0, 10.0, R["mean"], 1.0, None),
            (g, P["r1"], 0.0, 5.0, R["none"], 0.5, torch.tensor(0.25)),
            (g_t, P["wgan-lp"], 0.5, 1.0, R["sum"], 1.0, None),
        ],
        "grad_penalty_backward": [
            (torch.tensor(1.5, dtype=acc), g, norms, P["wgan-gp"], 1.0, 10.0, R["mean"], 1.0, None),
            (torch.randn(3, dtype=acc), g, norms, P["r1"], 0.0, 1.0, R["none"], 2.0, torch.tensor(0.5)),
            (torch.randn((), dtype=acc).expand(3), g_t, norms_t, P["wgan-lp"], 0.5, 1.0, R["none"], 1.0, None),
        ],
    }


def _public_cases(dtype, grad):
    """The public differentiable ops (their Autograd kernels are C++ Functions)."""
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    r, f = _t((6, 1, 3, 4), dtype, grad), _t((6, 1, 3, 4), dtype, grad)
    r1, f1 = _t((5,), dtype, grad), _t((9, 1), dtype, grad)
    g = _t((3, 2, 5, 6), dtype, grad).contiguous(memory_format=torch.channels_last)
    return {
        "loss": [
            (r, f, *D("logistic", 0.9, 0.1), R["mean"]),
            (r1, f1, *D("hinge"), R["sum"]),
            (r, f, *D("relativistic"), R["none"]),  # backward through the ATen formula
            (r, f, *D("rpgan"), R["mean"]),
            (None, f1, *G("least_squares", 0.7), R["none"]),
            (r, f, *G("relativistic"), R["mean"]),
            (r1.detach(), f1, *D("wasserstein"), R["mean"]),  # one side without requires_grad
        ],
        "interpolate": [
            (g, _t(g.shape, dtype, grad), torch.rand(3, dtype=acc)),
            (r, f, torch.rand(6, dtype=acc, requires_grad=grad)),  # alpha's own gradient too
        ],
        "grad_penalty": [
            (g, P["wgan-gp"], 1.0, 10.0, R["mean"], 1.0, None),
            (g, P["r1"], 0.0, 5.0, R["none"], 0.5, torch.tensor(0.25)),
            (_t((4, 3), dtype, grad), P["wgan-lp"], 0.5, 1.0, R["sum"], 1.0, None),
        ],
    }


# The device ops are not differentiable (the public ops' autograd kernels call them), so opcheck's
# AOT-dispatch test backpropagating through them with requires_grad inputs meets torch's "no
# autograd kernel registered" fallback, which warns; the check itself must still pass.
@pytest.mark.filterwarnings("ignore:.*an autograd kernel was not registered:UserWarning")
@pytest.mark.parametrize("grad", [False, True], ids=["nograd", "requires_grad"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", list(_fake.FAKES))
def test_opcheck(op, dtype, grad):
    for args in _cases(dtype, grad)[op]:
        torch.library.opcheck(getattr(OPS, op), args)


@pytest.mark.parametrize("grad", [False, True], ids=["nograd", "requires_grad"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", list(_fake.PUBLIC_FAKES))
def test_opcheck_public(op, dtype, grad):
    for args in _public_cases(dtype, grad)[op]:
        torch.library.opcheck(getattr(OPS, op), args)


def test_torch_compile_fullgraph_cpu():
    """fullgraph=True raises on any graph break; the compiled step must equal eager, values and grads."""
    torch._dynamo.reset()

    def step(r, f, x_real, x_fake, alpha):
        x_hat = gk.interpolate(x_real, x_fake, alpha, backend="cpu")
        loss = gk.d_loss(r, f, "hinge", backend="cpu") + gk.g_loss(f, "logistic", backend="cpu")
        return loss + gk.grad_penalty(x_hat, "wgan-gp", weight=10.0, backend="cpu")

    ins = [_t((8,), torch.float32), _t((8, 1), torch.float32), _t((4, 3, 5), torch.float32, scale=0.3),
           _t((4, 3, 5), torch.float32, scale=0.3)]
    alpha = torch.rand(4)
    compiled = torch.compile(step, fullgraph=True)
    a = [x.clone().requires_grad_() for x in ins]
    b = [x.clone().requires_grad_() for x in ins]
    out_c, out_e = compiled(*a, alpha), step(*b, alpha)
    torch.testing.assert_close(out_c, out_e)
    out_c.backward()
    out_e.backward()
    for x, y in zip(a, b):
        torch.testing.assert_close(x.grad, y.grad)
    torch._dynamo.reset()


def test_cpu_kernels_independent_of_thread_count():
    """Reductions split samples into fixed-size chunks: the same bits with 1 thread as with all."""
    g = _t((3, 5, 100, 70), torch.float32)  # 35,000 elements a sample: several chunks each
    r, f = _t((20000,), torch.float32), _t((20000,), torch.float32)
    go = torch.tensor(1.3)

    def run():
        loss, norms = OPS.grad_penalty_forward(g, P["wgan-gp"], 1.0, 10.0, R["mean"], 1.0, None)
        d = OPS.grad_penalty_backward(go, g, norms, P["wgan-gp"], 1.0, 10.0, R["mean"], 1.0, None)
        return (loss, norms, d) + tuple(OPS.loss_forward(r, f, *D("relativistic"), R["mean"], True))

    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run()
    finally:
        torch.set_num_threads(n)
    for a, b in zip(one, run()):
        assert torch.equal(a, b)
