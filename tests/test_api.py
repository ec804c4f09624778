"""The public API's contract: names, bad input, back-end selection and fallback, nn modules."""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
import warnings

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import gan_kernels as gk
from gan_kernels import _cpp, _kinds, _registry

from ._helpers import expected_backends

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_public_names():
    for name in ("d_loss", "g_loss", "interpolate", "grad_penalty", "gradient_penalty", "r1_penalty",
                 "available_backends", "set_backend"):
        assert callable(getattr(gk, name)), name
    for name in ("DiscriminatorLoss", "GeneratorLoss", "GradientPenalty"):
        assert issubclass(getattr(gk.nn, name), torch.nn.Module)
    backends = gk.available_backends()
    assert "reference" in backends and set(backends) <= {"cuda", "triton", "cpu", "reference"}


def test_codes_match_the_cpp_header():
    header = open(os.path.join(ROOT, "csrc", "include", "gan_kernels", "codes.h")).read()
    enum = dict((k, int(v)) for k, v in re.findall(r"\bk(\w+) = (\d+)", header))
    camel = lambda s: "".join(p.capitalize() for p in re.split(r"[-_]", s))  # noqa: E731
    for name in ("none", "bce", "hinge", "linear", "square"):
        assert enum["Term" + camel(name)] == getattr(_kinds, "TERM_" + name.upper()), name
    for name in ("separate", "relativistic", "paired"):
        assert enum["Mode" + camel(name)] == getattr(_kinds, "MODE_" + name.upper()), name
    for name, code in _kinds.PENALTY_KINDS.items():
        assert enum[camel(name)] == code, name
    for name, code in _kinds.REDUCTIONS.items():
        assert enum["Reduce" + camel(name)] == code, name


# --------------------------------------------------------------------------- bad input
def _v():
    return torch.randn(4)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: gk.d_loss(_v(), _v(), "nope"), ValueError, r"d_loss kind 'nope'.*logistic"),
        (lambda: gk.g_loss(_v(), "nope"), ValueError, r"g_loss kind 'nope'.*minimax"),
        (lambda: gk.d_loss(_v(), _v(), "minimax"), ValueError, r"d_loss kind 'minimax'"),
        (lambda: gk.d_loss(_v(), _v(), reduction="avg"), ValueError, r"reduction 'avg'.*mean"),
        (lambda: gk.grad_penalty(torch.randn(2, 3), "gp"), ValueError, r"grad_penalty kind 'gp'.*wgan-gp"),
        (lambda: gk.grad_penalty(torch.randn(2, 3), reduction="max"), ValueError, r"reduction 'max'"),
        (lambda: gk.d_loss(_v(), _v(), backend="metal"), ValueError, r"unknown backend 'metal'.*reference"),
        (lambda: gk.set_backend("gpu"), ValueError, r"unknown backend 'gpu'"),
        (lambda: gk.d_loss(_v(), _v(), backend=None), ValueError, r"unknown backend None"),
        (lambda: gk.d_loss(torch.arange(4), _v()), TypeError, r"real_logits must be a floating-point tensor.*int64"),
        (lambda: gk.d_loss([1.0, 2.0], _v()), TypeError, r"real_logits must be a torch.Tensor"),
        (lambda: gk.d_loss(torch.tensor(1.0), _v()), ValueError, r"real_logits must have a batch dimension"),
        (lambda: gk.d_loss(torch.randn(0), _v()), ValueError, r"real_logits is empty"),
        (lambda: gk.d_loss(_v(), torch.randn(0, 1)), ValueError, r"fake_logits is empty"),
        (lambda: gk.d_loss(_v(), torch.randn(5), "rpgan"), ValueError, r"pairs real and fake.*\(4,\) and \(5,\)"),
        (lambda: gk.d_loss(_v(), torch.randn(5), reduction="none"), ValueError, r"same shape"),
        (lambda: gk.g_loss(_v(), "relativistic"), ValueError, r"needs real_logits"),
        (lambda: gk.g_loss(_v(), "rpgan", real_logits=torch.randn(3)), ValueError, r"shapes must match"),
        (lambda: gk.d_loss(_v(), _v(), ls_targets=(1.0,)), ValueError, r"ls_targets must be a pair"),
        (lambda: gk.d_loss(_v(), _v(), drift="x"), TypeError, r"drift must be a real number"),
        (lambda: gk.interpolate(torch.randn(2, 3), torch.randn(3, 3)), ValueError, r"real and fake must have the same shape"),
        (lambda: gk.interpolate(torch.randn(2, 3), torch.randn(2, 3), torch.rand(3)), ValueError, r"alpha must hold one value per sample"),
        (lambda: gk.interpolate(torch.randn(2, 3), torch.randn(2, 3), "a"), TypeError, r"alpha must be"),
        (lambda: gk.interpolate(torch.randn(0, 3), torch.randn(0, 3)), ValueError, r"real is empty"),
        (lambda: gk.grad_penalty(torch.randint(0, 3, (2, 3))), TypeError, r"grad must be a floating-point tensor"),
        (lambda: gk.grad_penalty(torch.randn(2, 3), inv_scale=torch.ones(2)), ValueError, r"inv_scale must be a number"),
        (lambda: gk.gradient_penalty(torch.nn.Identity(), torch.randn(2, 3), None), ValueError, r"needs fake samples"),
        (lambda: gk.gradient_penalty("critic", torch.randn(2, 3), torch.randn(2, 3)), TypeError, r"critic must be callable"),
        (lambda: gk.r1_penalty(torch.randn(2, 1), torch.randn(2, 3)), ValueError, r"requires_grad_\(True\)"),
        (lambda: gk.nn.DiscriminatorLoss("nope"), ValueError, r"d_loss kind 'nope'"),
        (lambda: gk.nn.GeneratorLoss(reduction="avg"), ValueError, r"reduction 'avg'"),
        (lambda: gk.nn.GradientPenalty("wgan"), ValueError, r"grad_penalty kind 'wgan'"),
        (lambda: gk.nn.GradientPenalty(weight="ten"), TypeError, r"weight must be a real number"),
        (lambda: gk.nn.DiscriminatorLoss(backend="tpu"), ValueError, r"unknown backend 'tpu'"),
    ],
)
def test_bad_input_names_the_problem(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device for a second device")
@pytest.mark.gpu
def test_mixed_devices_rejected():
    with pytest.raises(ValueError, match="real_logits is on cpu but fake_logits is on cuda"):
        gk.d_loss(torch.randn(3), torch.randn(3, device="cuda"))


def test_mixed_devices_rejected_meta():
    # The meta device stands in for a second device on a CPU-only machine.
    with pytest.raises(ValueError, match="real is on cpu but fake is on meta"):
        gk.interpolate(torch.randn(2, 3), torch.randn(2, 3, device="meta"))


@pytest.mark.parametrize("backend", ["reference", "cpu", "triton"])
def test_nonfinite_logits_propagate(backend):
    if backend not in gk.available_backends():
        pytest.skip(f"{backend} not available here")
    r = torch.tensor([float("nan"), 0.5, 1.0])
    f = torch.tensor([0.1, float("inf"), 1.0])
    for kind in ("logistic", "hinge", "wasserstein", "least_squares", "relativistic", "rpgan"):
        assert torch.isnan(gk.d_loss(r, f, kind, reduction="none", backend=backend)[0]), kind
        assert torch.isnan(gk.d_loss(r, f, kind, backend=backend)), kind
    assert torch.isinf(gk.d_loss(r, f, "wasserstein", reduction="none", backend=backend)[1])
    assert torch.isnan(gk.g_loss(r, "hinge", backend=backend))


def test_dtype_rules_mixed_and_half():
    r = torch.randn(6, dtype=torch.float16, requires_grad=True)
    f = torch.randn(6, dtype=torch.float32)
    loss = gk.d_loss(r, f, "logistic")
    assert loss.dtype == torch.float32
    loss.backward()
    assert r.grad.dtype == torch.float16
    out = gk.d_loss(torch.randn(4, dtype=torch.bfloat16), torch.randn(4, dtype=torch.bfloat16), "hinge")
    assert out.dtype == torch.float32
    assert gk.d_loss(torch.randn(4).double(), torch.randn(4).double()).dtype == torch.float64


def test_expected_backends_are_present():
    """A build that promises a back end must deliver it: a _C that fails to load would otherwise
    turn every cpu / cuda test into a skip. GAN_KERNELS_EXPECT (e.g. "cpu,triton", set by the test
    script) names what must be there; a built _C next to the package must load in any case."""
    pkg = os.path.dirname(gk.__file__)
    built = glob.glob(os.path.join(pkg, "_C*.so")) + glob.glob(os.path.join(pkg, "_C*.pyd"))
    expected = expected_backends()
    unknown = expected - set(_registry.BACKENDS)
    assert not unknown, f"GAN_KERNELS_EXPECT names unknown back ends {sorted(unknown)}"
    if not expected and not built:
        pytest.skip("no compiled back end expected here (GAN_KERNELS_EXPECT unset, no _C built)")
    if built or expected & {"cpu", "cuda"}:
        assert _cpp.LOAD_ERROR is None, f"gan_kernels._C ({built}) did not load: {_cpp.LOAD_ERROR}"
    for name in sorted(expected):
        assert name in gk.available_backends(), f"expected back end {name!r} is missing: {_registry._reason(name)}"


# --------------------------------------------------------------------------- back-end selection
@pytest.fixture
def clean_registry(monkeypatch):
    monkeypatch.delenv("GAN_KERNELS_BACKEND", raising=False)
    monkeypatch.delenv("GAN_KERNELS_STRICT", raising=False)
    gk.set_backend(None)
    _registry.reset_warnings()
    yield
    gk.set_backend(None)
    _registry.reset_warnings()


def test_set_backend_and_env(clean_registry, monkeypatch):
    assert _registry.get_backend() == "auto"
    gk.set_backend("reference")
    assert _registry.get_backend() == "reference"
    assert _registry.resolve("d_loss", "auto", "cpu") is _registry._IMPLS[("d_loss", "reference")]
    gk.set_backend("auto")
    monkeypatch.setenv("GAN_KERNELS_BACKEND", "reference")
    assert _registry.get_backend() == "reference"
    monkeypatch.setenv("GAN_KERNELS_BACKEND", "bogus")
    with pytest.raises(ValueError, match="GAN_KERNELS_BACKEND"):
        gk.d_loss(_v(), _v())


def test_auto_on_cpu_uses_cpu_backend_when_built(clean_registry):
    impl = _registry.resolve("grad_penalty", "auto", "cpu")
    if "cpu" in gk.available_backends():
        assert impl is _registry._IMPLS[("grad_penalty", "cpu")]
    else:
        assert impl is _registry._IMPLS[("grad_penalty", "reference")]


def test_explicit_backend_on_wrong_device_raises(clean_registry):
    with pytest.raises(ValueError, match=r"backend='cuda' cannot run on cpu tensors"):
        gk.d_loss(_v(), _v(), backend="cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU fallback")
def test_fallback_warns_once_and_strict_raises(clean_registry, monkeypatch):
    # A back end that is registered but unavailable: warn once, then use the reference.
    monkeypatch.setitem(_registry._BACKENDS, "cpu", _registry.Backend("cpu", lambda: "pretend it is not built", lambda d: d == "cpu"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = gk.d_loss(_v(), _v(), backend="cpu")
        gk.d_loss(_v(), _v(), backend="cpu")
    msgs = [str(w.message) for w in caught if "gan_kernels" in str(w.message)]
    assert len(msgs) == 1 and "'cpu'" in msgs[0] and "pretend it is not built" in msgs[0]
    assert a.dtype == torch.float32
    monkeypatch.setenv("GAN_KERNELS_STRICT", "1")
    with pytest.raises(RuntimeError, match="pretend it is not built"):
        gk.d_loss(_v(), _v(), backend="cpu")


def test_package_works_without_compiled_extension(tmp_path):
    # Hide gan_kernels._C: the package must import, list only what works, and compute.
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'gan_kernels._C': raise ImportError('hidden for the test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import warnings, torch, gan_kernels as gk\n"
        "assert 'cpu' not in gk.available_backends() and 'cuda' not in gk.available_backends(), gk.available_backends()\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    x = gk.grad_penalty(torch.ones(2, 3))\n"
        "assert any('hidden for the test' in str(m.message) for m in w), [str(m.message) for m in w]\n"
        "print(float(x))\n"
    )
    env = dict(os.environ, TRITON_INTERPRET="0", GAN_KERNELS_STRICT="0")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert abs(float(out.stdout.strip()) - (3**0.5 - 1) ** 2) < 1e-6


# --------------------------------------------------------------------------- nn modules
def test_modules_match_functional():
    r, f = torch.randn(5, 1), torch.randn(5, 1)
    torch.testing.assert_close(gk.nn.DiscriminatorLoss("hinge")(r, f), gk.d_loss(r, f, "hinge"))
    torch.testing.assert_close(
        gk.nn.GeneratorLoss("relativistic")(f, r), gk.g_loss(f, "relativistic", real_logits=r)
    )
    g = torch.randn(3, 4)
    torch.testing.assert_close(gk.nn.GradientPenalty("r1", weight=2.0)(g), gk.grad_penalty(g, "r1", weight=2.0))
    critic = torch.nn.Linear(4, 1)
    real, fake = torch.randn(3, 4), torch.randn(3, 4)
    alpha = torch.rand(3)
    torch.testing.assert_close(
        gk.nn.GradientPenalty()(critic, real, fake, alpha=alpha),
        gk.gradient_penalty(critic, real, fake, alpha=alpha),
    )
    assert "hinge" in repr(gk.nn.DiscriminatorLoss("hinge"))


# --------------------------------------------------------------------------- reference derivatives
def test_reference_gradcheck_and_gradgradcheck():
    r, f = (torch.randn(5, dtype=torch.float64, requires_grad=True) for _ in range(2))
    for kind in _kinds.D_LOSS_KINDS:
        fn = lambda a, b: gk.d_loss(a, b, kind, reduction="none", drift=0.1, backend="reference")  # noqa: E731
        assert gradcheck(fn, (r, f)) and gradgradcheck(fn, (r, f)), kind
    for kind in _kinds.G_LOSS_KINDS:
        fn = lambda a, b: gk.g_loss(a, kind, real_logits=b, backend="reference")  # noqa: E731
        assert gradcheck(fn, (f, r)) and gradgradcheck(fn, (f, r)), kind
    g = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    for kind in _kinds.PENALTY_KINDS:
        fn = lambda x: gk.grad_penalty(x, kind, center=0.5, backend="reference")  # noqa: E731
        assert gradcheck(fn, (g,)) and gradgradcheck(fn, (g,)), kind
    real, fake = (torch.randn(3, 4, dtype=torch.float64, requires_grad=True) for _ in range(2))
    alpha = torch.rand(3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda a, b, c: gk.interpolate(a, b, c, backend="reference"), (real, fake, alpha))


def test_infinite_logit_without_drift_is_not_nan():
    # drift=0 must add nothing: 0 * inf^2 would be NaN
    r = torch.tensor([float("inf"), 0.5])
    f = torch.tensor([0.1, 0.2])
    for backend in [b for b in gk.available_backends() if b in ("cpu", "reference")]:
        out = gk.d_loss(r, f, "wasserstein", reduction="none", backend=backend)
        assert torch.isinf(out[0]) and out[0] < 0, backend
