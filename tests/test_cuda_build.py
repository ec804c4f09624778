"""The C++/CUDA back end (csrc/cuda): registration checks that run anywhere, kernel checks on a GPU.

Without a GPU only the first tests run: when gan_kernels._C was compiled with nvcc, every op must
have a CUDA kernel. The GPU-marked tests call the ops directly (``torch.ops.gan_kernels.*``) and
through the functional API on CUDA tensors and compare with gan_kernels.reference, outputs and
gradients, with the caching allocator's free memory filled with NaN first so an output element a
kernel forgot to write shows up. They also pin what only a GPU can show: the 16-byte vector paths
and their scalar fallbacks, the chunked penalty reduction, output layouts equal to the fake
kernels', bitwise determinism and CUDA-graph capture of a critic step.
"""

from __future__ import annotations

import math

import pytest
import torch

import gan_kernels as gk
from gan_kernels import _cpp, _fake, _kinds, _layout, reference

from ._helpers import assert_close

OPS = _cpp.OP_NAMES
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
DTYPE_IDS = ("f32", "f64", "f16", "bf16")


def _cuda_build_state():
    """(built with CUDA?, why not)."""
    if torch.version.cuda is None:
        return False, "torch is a CPU-only build, so gan_kernels._C has no CUDA kernels"
    if _cpp.LOAD_ERROR is not None:
        return False, f"gan_kernels._C did not load: {_cpp.LOAD_ERROR}"
    import gan_kernels._C as ext

    with open(ext.__file__, "rb") as f:
        linked = b"libcudart" in f.read()
    if not linked:
        return False, "gan_kernels._C was built CPU-only (GAN_KERNELS_CUDA=0, or no nvcc at build time)"
    return True, ""


BUILT, WHY_NOT = _cuda_build_state()
needs_build = pytest.mark.skipif(not BUILT, reason=WHY_NOT)


# --------------------------------------------------------------------------- anywhere
@needs_build
@pytest.mark.parametrize("op", OPS)
def test_every_op_has_a_cuda_kernel(op):
    assert _cpp.has_kernel(op, "CUDA"), f"gan_kernels::{op} has no CUDA kernel although _C links libcudart"
    assert _cpp.has_kernel(op, "CPU"), f"gan_kernels::{op} has no CPU kernel"


@needs_build
def test_cuda_backend_reason_names_the_device_not_the_build():
    reason = _cpp._cuda_reason()
    if torch.cuda.is_available():
        assert reason is None
        assert "cuda" in gk.available_backends()
    else:
        assert reason == "no CUDA device is available"


def _cuobjdump(*args: str) -> str:
    """cuobjdump (Triton bundles one; else the toolkit's) on the built extension."""
    import os
    import shutil
    import subprocess

    import gan_kernels._C as ext

    tool = None
    try:
        import triton

        tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    except ImportError:
        pass
    if tool is None or not os.access(tool, os.X_OK):
        tool = shutil.which("cuobjdump")
    if tool is None:
        pytest.skip("no cuobjdump (neither Triton's bundled one nor the CUDA toolkit's)")
    out = subprocess.run([tool, *args, ext.__file__], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


# Template instances with VEC > 1 stream their tensors in 16-byte vectors (VEC elements of 16, 32
# or 64 bits): their machine code must hold 128-bit global loads, and stores where they write the
# large tensor (the penalty's partial sums write only B x chunks numbers).
VECTOR_KERNELS = {"interpolate_forward_kernel": True, "interpolate_backward_kernel": True,
                  "penalty_backward_kernel": True, "sumsq_partials_kernel": False}


@needs_build
def test_cuda_machine_code_no_spills_and_vector_accesses():
    """Static facts of the compiled sm_90 code, checkable without a GPU."""
    import re

    usage = _cuobjdump("--dump-resource-usage")
    funcs = re.findall(r"Function (\S+):\s*\n\s*REG:(\d+) STACK:(\d+) SHARED:\d+ LOCAL:(\d+)", usage)
    assert len(funcs) >= 40, usage[:2000]  # every op x dtype x vector width instance
    # float64 instances (mangled "Idd"/"Id") call the double division / square-root slow paths as
    # subroutines and may save a few registers around those rare calls (seen: 16 bytes); nothing
    # else may touch local memory.
    spills = [(name, stack, local) for name, _, stack, local in funcs
              if int(local) or int(stack) > (32 if re.search(r"kernelId", name) else 0)]
    assert not spills, f"kernels using stack / local memory (register spills): {spills}"
    assert all(0 < int(regs) <= 255 for _, regs, _, _ in funcs)

    sass = _cuobjdump("-sass")
    parts = re.split(r"\n\s*Function : (\S+)\n", sass)
    seen = set()
    for name, body in zip(parts[1::2], parts[2::2]):
        kernel = next((k for k in VECTOR_KERNELS if k in name), None)
        vec = re.search(r"Li(\d+)EE", name)
        if kernel is None or vec is None or int(vec.group(1)) == 1:
            continue
        seen.add(kernel)
        assert "LDG.E.128" in body, f"{kernel} (VEC={vec.group(1)}): no 128-bit global load"
        if VECTOR_KERNELS[kernel]:
            assert "STG.E.128" in body, f"{kernel} (VEC={vec.group(1)}): no 128-bit global store"
    assert seen == set(VECTOR_KERNELS), f"vector instances not found: {set(VECTOR_KERNELS) - seen}"


# --------------------------------------------------------------------------- GPU helpers
def _require_gpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    if not BUILT or not all(_cpp.has_kernel(op, "CUDA") for op in OPS):
        pytest.skip(WHY_NOT or "gan_kernels._C has no CUDA kernels")


def _poison(*nbytes: int) -> None:
    """Leave the caching allocator's free blocks full of NaN, so unwritten output elements are NaN.

    Empties the cache, then fills a whole small-pool segment (2 x 1 MiB) and a 20 MiB large-pool
    segment (plus one block per requested size) with NaN and frees them: the next allocations on
    this stream are carved from those blocks.
    """
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    nan = float("nan")
    keep = [torch.full((1 << 18,), nan, device="cuda") for _ in range(2)]
    keep.append(torch.full((5 << 20,), nan, device="cuda"))
    for n in nbytes:
        keep.append(torch.full((max(n, 4) // 4 + 256,), nan, device="cuda"))
    del keep


def _nbytes(x: torch.Tensor) -> int:
    return x.numel() * x.element_size() * 2  # room for the acc-dtype copies of half inputs


def _same_meta(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != fake {tuple(expected.shape)}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != fake {expected.dtype}"
    if actual.numel() > 1:
        assert actual.stride() == expected.stride(), f"{what}: strides {actual.stride()} != fake {expected.stride()}"


def _finite(x: torch.Tensor, what: str) -> None:
    assert bool(torch.isfinite(x).all()), f"{what}: non-finite values (an unwritten element?)"


def _make(shape, dtype, layout="contiguous", scale=1.0):
    """A CUDA tensor of `shape` in `layout`: contiguous, channels_last, strided (not batch-major,
    read through a copy) or offset (batch-major but not 16-byte aligned: the scalar paths)."""
    if layout == "contiguous":
        return (torch.randn(shape, device="cuda") * scale).to(dtype)
    if layout == "channels_last":
        return (torch.randn(shape, device="cuda") * scale).to(dtype).contiguous(memory_format=torch.channels_last)
    if layout == "strided":  # every other element of the last dim
        big = (torch.randn(*shape[:-1], 2 * shape[-1], device="cuda") * scale).to(dtype)
        return big[..., ::2]
    if layout == "offset":  # storage offset of one element
        n = math.prod(shape)
        return (torch.randn(n + 1, device="cuda") * scale).to(dtype)[1:].view(shape)
    raise ValueError(layout)


# --------------------------------------------------------------------------- losses
D_KINDS = list(_kinds.D_LOSS_KINDS)
G_KINDS = list(_kinds.G_LOSS_KINDS)
LOSS_SHAPES = [((1,), (1,)), ((16, 1), (16, 1)), ((4, 1, 5, 7), (4, 1, 5, 7)), ((37,), (13,)), ((3000,), (3000,))]


def _untie(r, f):
    """f with no element equal to r's: at r == f the reference's autograd of its softplus
    (clamp_min + abs) gives the subgradient 1 where the kernels give the derivative 0.5, and low
    precision logits tie often enough to hit that."""
    if r is None or r.shape != f.shape:
        return f
    return torch.where(f == r, f + 0.25, f)


def _d_args(kind):
    if kind == "logistic":
        return dict(real_label=0.9, drift=0.01, ls_targets=(0.0, 1.0))
    if kind == "least_squares":
        return dict(real_label=1.0, drift=0.0, ls_targets=(-1.0, 1.0))
    return dict(real_label=1.0, drift=0.001 if kind in ("hinge", "relativistic", "rpgan") else 0.0, ls_targets=(0.0, 1.0))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kind", D_KINDS)
def test_d_loss_forward_op(kind, reduction, dtype):
    _require_gpu()
    for rs, fs in LOSS_SHAPES:
        if rs != fs and (kind == "rpgan" or reduction == "none"):
            continue
        r = _make(rs, dtype, scale=2.0)
        f = _untie(r, _make(fs, dtype, scale=2.0))
        a = _d_args(kind)
        args = (_kinds.D_LOSS_KINDS[kind], _kinds.REDUCTIONS[reduction], a["real_label"], a["drift"], *a["ls_targets"], True)
        _poison(_nbytes(r) * 4, _nbytes(f) * 4)
        loss, g_r, g_f = torch.ops.gan_kernels.d_loss_forward(r, f, *args)
        fl, fr, ff = _fake.d_loss_forward(r, f, *args)
        for out, fk, what in ((loss, fl, "loss"), (g_r, fr, "grad_real"), (g_f, ff, "grad_fake")):
            _same_meta(out, fk, f"{kind}/{reduction} {rs}: {what}")
        rr = r.detach().double().requires_grad_()
        ff_ = f.detach().double().requires_grad_()
        ref = reference.d_loss(rr, ff_, kind, reduction, **a)
        _finite(loss, "loss")
        assert_close(loss.double(), ref.detach(), torch.float32 if dtype != torch.float64 else dtype, f"{kind} loss")
        if g_r.numel():  # gradients for a unit upstream gradient (empty: relativistic + none)
            ref_gr, ref_gf = torch.autograd.grad(ref.sum(), (rr, ff_))
            _finite(g_r, "grad_real")
            _finite(g_f, "grad_fake")
            tol_dtype = torch.float32 if dtype != torch.float64 else dtype
            assert_close(g_r.double(), ref_gr, tol_dtype, f"{kind} grad_real")
            assert_close(g_f.double(), ref_gf, tol_dtype, f"{kind} grad_fake")
        else:
            assert kind == "relativistic" and reduction == "none"


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kind", G_KINDS)
def test_g_loss_forward_op(kind, reduction, dtype):
    _require_gpu()
    needs_real = kind in ("relativistic", "rpgan")
    for rs, fs in LOSS_SHAPES:
        if rs != fs and (kind == "rpgan" or (reduction == "none" and needs_real)):
            continue
        f = _make(fs, dtype, scale=2.0)
        r = _make(rs, dtype, scale=2.0) if needs_real else None
        f = _untie(r, f)
        args = (_kinds.G_LOSS_KINDS[kind], _kinds.REDUCTIONS[reduction], 0.7, True)
        _poison(_nbytes(f) * 4, _nbytes(f) * 4)
        loss, g_f, g_r = torch.ops.gan_kernels.g_loss_forward(f, r, *args)
        fl, ff, fr = _fake.g_loss_forward(f, r, *args)
        for out, fk, what in ((loss, fl, "loss"), (g_f, ff, "grad_fake"), (g_r, fr, "grad_real")):
            _same_meta(out, fk, f"{kind}/{reduction} {fs}: {what}")
        ff_ = f.detach().double().requires_grad_()
        rr = r.detach().double().requires_grad_() if r is not None else None
        ref = reference.g_loss(ff_, kind, rr, reduction, 0.7)
        tol_dtype = torch.float32 if dtype != torch.float64 else dtype
        _finite(loss, "loss")
        assert_close(loss.double(), ref.detach(), tol_dtype, f"{kind} loss")
        if g_f.numel():
            wrt = (ff_,) if rr is None else (ff_, rr)
            grads = torch.autograd.grad(ref.sum(), wrt)
            _finite(g_f, "grad_fake")
            assert_close(g_f.double(), grads[0], tol_dtype, f"{kind} grad_fake")
            if rr is not None:
                _finite(g_r, "grad_real")
                assert_close(g_r.double(), grads[1], tol_dtype, f"{kind} grad_real")


@pytest.mark.gpu
@pytest.mark.parametrize("out_dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("acc", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_loss_backward_op(acc, out_dtype):
    _require_gpu()
    a = torch.randn(5, 1, 3, 3, device="cuda", dtype=acc)
    b = torch.randn(5, 1, 3, 3, device="cuda", dtype=acc)
    empty = torch.empty(0, device="cuda", dtype=acc)
    cases = [
        (torch.tensor(0.75, device="cuda", dtype=acc), a, b),  # mean / sum: a scalar upstream gradient
        (torch.randn(5, 1, 3, 3, device="cuda", dtype=acc), a, b),  # none
        (torch.tensor(2.0, device="cuda", dtype=acc).expand(5, 1, 3, 3), a, b),  # none, expanded (stride 0)
        (torch.randn(5, 1, 3, 3, device="cuda", dtype=acc), a, empty),  # g_loss without real logits
    ]
    for go, sa, sb in cases:
        _poison(4096)
        da, db = torch.ops.gan_kernels.loss_backward(go, sa, sb, out_dtype, out_dtype)
        fa, fb = _fake.loss_backward(go, sa, sb, out_dtype, out_dtype)
        _same_meta(da, fa, "a")
        _same_meta(db, fb, "b")
        assert_close(da, (go * sa).to(out_dtype), out_dtype, "a")
        if sb.numel():
            assert_close(db, (go * sb).to(out_dtype), out_dtype, "b")


# --------------------------------------------------------------------------- interpolation
# (shape, layout): B = 1; D = 3*17*19 = 969, not a multiple of any vector width (vectors straddle
# samples and the tail runs); D = 2 < every vector width; channels_last; a strided input; an
# offset (misaligned) input for the scalar path.
INTERP_CASES = [
    ((1, 3, 8, 8), "contiguous"),
    ((4, 3, 8, 8), "contiguous"),
    ((3, 3, 17, 19), "contiguous"),
    ((257, 2), "contiguous"),
    ((2, 3, 16, 16), "channels_last"),
    ((3, 3, 17, 19), "channels_last"),
    ((3, 4, 10), "strided"),
    ((3, 3, 17, 19), "offset"),
]
INTERP_IDS = [f"{'x'.join(map(str, s))}-{lay}" for s, lay in INTERP_CASES]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape,layout", INTERP_CASES, ids=INTERP_IDS)
def test_interpolate_ops(shape, layout, dtype):
    _require_gpu()
    real = _make(shape, dtype, layout)
    fake = _make(shape, dtype, layout)
    acc = reference.acc_dtype(dtype)
    alpha = torch.rand(shape[0], device="cuda", dtype=acc)
    _poison(_nbytes(real) * 3)
    out = torch.ops.gan_kernels.interpolate_forward(real, fake, alpha)
    _same_meta(out, _fake.interpolate_forward(real, fake, alpha), "interpolate_forward")
    _finite(out, "interpolate_forward")
    # x_hat is computed in exactly the reference's form and rounding: equal, not merely close.
    torch.testing.assert_close(out, reference.interpolate(real, fake, alpha), rtol=0, atol=0)

    g = _make(shape, dtype, layout)
    a_b = alpha.view((-1,) + (1,) * (len(shape) - 1))
    for need_r, need_f in ((True, True), (True, False), (False, True)):
        _poison(_nbytes(g) * 3)
        dr, df = torch.ops.gan_kernels.interpolate_backward(g, alpha, need_r, need_f)
        fr, ff = _fake.interpolate_backward(g, alpha, need_r, need_f)
        _same_meta(dr, fr, "d_real")
        _same_meta(df, ff, "d_fake")
        if need_r:
            _finite(dr, "d_real")
            assert_close(dr, (a_b * g.to(acc)).to(dtype), dtype, "d_real")
        if need_f:
            _finite(df, "d_fake")
            assert_close(df, ((1 - a_b) * g.to(acc)).to(dtype), dtype, "d_fake")


@pytest.mark.gpu
def test_interpolate_expanded_alpha_and_autograd():
    _require_gpu()
    real = torch.randn(6, 3, 9, 9, device="cuda", requires_grad=True)
    fake = torch.randn(6, 3, 9, 9, device="cuda", requires_grad=True)
    alpha = torch.tensor(0.3, device="cuda").expand(6)  # stride 0
    out = gk.interpolate(real, fake, alpha, backend="cuda")
    up = torch.randn_like(out)
    dr, df = torch.autograd.grad(out, (real, fake), up)
    rr, ff = real.detach().requires_grad_(), fake.detach().requires_grad_()
    ref = reference.interpolate(rr, ff, alpha.contiguous())
    er, ef = torch.autograd.grad(ref, (rr, ff), up)
    assert_close(out, ref, torch.float32, "out")
    assert_close(dr, er, torch.float32, "d_real")
    assert_close(df, ef, torch.float32, "d_fake")


# --------------------------------------------------------------------------- gradient penalty
# Chunks (grad_penalty.cu chunk_elems: 4096 float32, 8192 half, 2048 float64 elements): D = 3*8*8
# one chunk; 3*40*40 = 4800 one or more, the last partial; 3*64*64 = 12288 several (vector
# path); 3*101*67 = 20301 several (scalar path: not a multiple of any vector width).
GP_CASES = [
    ((1, 3, 8, 8), "contiguous"),
    ((5, 3, 40, 40), "contiguous"),
    ((2, 3, 64, 64), "contiguous"),
    ((2, 3, 101, 67), "contiguous"),
    ((3, 3, 17, 19), "contiguous"),
    ((2, 3, 64, 64), "channels_last"),
    ((3, 4, 300), "strided"),
    ((2, 3, 64, 64), "offset"),
    ((300, 2), "contiguous"),
]
GP_IDS = [f"{'x'.join(map(str, s))}-{lay}" for s, lay in GP_CASES]


def _gp_reference(g, kind, center, weight, reduction, scale):
    g64 = g.detach().double().requires_grad_()
    loss = reference.grad_penalty(g64, kind, center, weight, reduction, scale)
    return g64, loss


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape,layout", GP_CASES, ids=GP_IDS)
def test_grad_penalty_ops(shape, layout, dtype):
    _require_gpu()
    g = _make(shape, dtype, layout, scale=1.5 / math.sqrt(math.prod(shape[1:])))
    tol_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    for kind in _kinds.PENALTY_KINDS:
        for reduction in ("mean", "sum", "none"):
            for inv_scale, ist in ((1.0, None), (0.5, torch.tensor(0.25, device="cuda"))):
                args = (_kinds.PENALTY_KINDS[kind], 1.0, 10.0, _kinds.REDUCTIONS[reduction], inv_scale, ist)
                _poison(_nbytes(g) * 3)
                loss, norms = torch.ops.gan_kernels.grad_penalty_forward(g, *args)
                fl, fn = _fake.grad_penalty_forward(g, *args)
                _same_meta(loss, fl, "loss")
                _same_meta(norms, fn, "norms")
                _finite(loss, "loss")
                expect_norms = torch.linalg.vector_norm(g.double().reshape(shape[0], -1), dim=1)
                assert_close(norms.double(), expect_norms, tol_dtype, f"{kind} norms")
                scale = inv_scale * (0.25 if ist is not None else 1.0)
                g64, ref = _gp_reference(g, kind, 1.0, 10.0, reduction, scale)
                assert_close(loss.double(), ref.detach(), tol_dtype, f"{kind}/{reduction} loss")

                go = torch.rand(shape[0], device="cuda", dtype=loss.dtype) if reduction == "none" else torch.tensor(
                    1.7, device="cuda", dtype=loss.dtype)
                _poison(_nbytes(g) * 3)
                dg = torch.ops.gan_kernels.grad_penalty_backward(go, g, norms, args[0], 1.0, 10.0, args[3], inv_scale, ist)
                _same_meta(dg, _fake.grad_penalty_backward(go, g, norms, *args), "d_grad")
                _finite(dg, "d_grad")
                (expect,) = torch.autograd.grad(ref, g64, go.double())
                assert_close(dg, expect.to(dtype), dtype, f"{kind}/{reduction} d_grad")


@pytest.mark.gpu
def test_grad_penalty_expanded_grad_out_and_zero_sample():
    _require_gpu()
    g = torch.randn(4, 3, 11, 13, device="cuda")
    g[1] = 0  # an all-zero sample: norm 0, wgan-gp gradient defined as 0 there
    for kind in ("wgan-gp", "wgan-lp", "r1"):
        k = _kinds.PENALTY_KINDS[kind]
        loss, norms = torch.ops.gan_kernels.grad_penalty_forward(g, k, 1.0, 1.0, 0, 1.0, None)
        go = torch.tensor(1.0, device="cuda").expand(4)  # what loss.sum().backward() sends
        dg = torch.ops.gan_kernels.grad_penalty_backward(go, g, norms, k, 1.0, 1.0, 0, 1.0, None)
        _finite(loss, "loss")
        _finite(dg, "d_grad")
        assert float(norms[1]) == 0.0
        assert bool((dg[1] == 0).all())
        g64, ref = _gp_reference(g, kind, 1.0, 1.0, "none", None)
        (expect,) = torch.autograd.grad(ref.sum(), g64)
        assert_close(dg, expect.float(), torch.float32, kind)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_grad_penalty_functional_autograd(dtype):
    _require_gpu()
    g = (torch.randn(6, 3, 20, 20, device="cuda") * 0.05).to(dtype).requires_grad_()
    for kind in _kinds.PENALTY_KINDS:
        out = gk.grad_penalty(g, kind, weight=10.0, backend="cuda")
        (dg,) = torch.autograd.grad(out, g)
        g64, ref = _gp_reference(g, kind, 1.0, 10.0, "mean", None)
        (expect,) = torch.autograd.grad(ref, g64)
        tol_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        assert_close(out.double(), ref.detach(), tol_dtype, f"{kind} loss")
        assert_close(dg, expect.to(dtype), dtype, f"{kind} d_grad")


# --------------------------------------------------------------------------- determinism
@pytest.mark.gpu
def test_bitwise_deterministic():
    _require_gpu()
    g = torch.randn(8, 3, 128, 128, device="cuda")
    go = torch.tensor(1.0, device="cuda")
    alpha = torch.rand(8, device="cuda")
    r, f = torch.randn(4096, device="cuda"), torch.randn(4096, device="cuda")

    def run():
        loss, norms = torch.ops.gan_kernels.grad_penalty_forward(g, 0, 1.0, 10.0, 1, 1.0, None)
        dg = torch.ops.gan_kernels.grad_penalty_backward(go, g, norms, 0, 1.0, 10.0, 1, 1.0, None)
        x = torch.ops.gan_kernels.interpolate_forward(g, g.flip(0), alpha)
        dl = torch.ops.gan_kernels.d_loss_forward(r, f, _kinds.D_LOSS_KINDS["relativistic"], 1, 1.0, 0.0, 0.0, 1.0, True)
        return [loss, norms, dg, x, *dl]

    first = run()
    for _ in range(2):
        _poison()
        for a, b in zip(first, run()):
            assert torch.equal(a, b)


# --------------------------------------------------------------------------- CUDA graphs
class _Critic(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(8, 8, 4, stride=2, padding=1), torch.nn.LeakyReLU(0.2),
            torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 8, 1),
        )

    def forward(self, x):
        return self.net(x)


@pytest.mark.gpu
def test_cuda_graph_capture_of_a_critic_step():
    _require_gpu()
    critic = _Critic().cuda()
    params = list(critic.parameters())
    real = torch.randn(4, 3, 16, 16, device="cuda")
    fake = torch.randn(4, 3, 16, 16, device="cuda")
    alpha = torch.rand(4, device="cuda")

    def step():
        gp = gk.gradient_penalty(critic, real, fake, "wgan-gp", weight=10.0, alpha=alpha, backend="cuda")
        adv = gk.d_loss(critic(real), critic(fake), "wasserstein", backend="cuda")
        return gp + adv

    def eager():
        loss = step()
        return loss.detach(), [g.detach() for g in torch.autograd.grad(loss, params)]

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture (cudnn picks its algorithms here)
        for _ in range(3):
            critic.zero_grad(set_to_none=True)
            step().backward()
    torch.cuda.current_stream().wait_stream(side)

    graph = torch.cuda.CUDAGraph()
    critic.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = step()
        static_loss.backward()

    for trial in range(2):
        if trial:  # new data in the captured inputs: the replay must follow it
            real.copy_(torch.randn_like(real))
            fake.copy_(torch.randn_like(fake))
            alpha.copy_(torch.rand_like(alpha))
        graph.replay()
        torch.cuda.synchronize()
        loss_e, grads_e = eager()
        torch.testing.assert_close(static_loss, loss_e, rtol=1e-4, atol=1e-5)
        for p, ge in zip(params, grads_e):
            torch.testing.assert_close(p.grad, ge, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_cuda_graph_capture_of_grid_losses(backend):
    """Past 8192 logits both GPU back ends run their grid path (partials in a scratch tensor, one-block
    finishers, 5 launches for relativistic): captured in a graph and replayed on new data."""
    _require_gpu()
    if backend not in gk.available_backends():
        pytest.skip(f"back end {backend!r} is not available")
    static = [torch.randn(n, device="cuda", requires_grad=True) for n in (9000, 12000, 70_000, 70_000)]

    def losses(t, b):
        return (gk.d_loss(t[0], t[1], "relativistic", drift=1e-3, backend=b)
                + gk.d_loss(t[2], t[3], "rpgan", backend=b)
                + gk.g_loss(t[3], "logistic", reduction="sum", backend=b))

    def step():
        for x in static:
            x.grad = None
        loss = losses(static, backend)
        loss.backward()
        return loss

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = step()
    for x in static:
        x.data.copy_(torch.randn_like(x) * 2)
    graph.replay()
    torch.cuda.synchronize()
    ref = [x.detach().clone().requires_grad_() for x in static]
    expected = losses(ref, "reference")
    expected.backward()
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    for x, y in zip(static, ref):
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-4, atol=1e-7)


# --------------------------------------------------------------------------- opcheck
@pytest.mark.gpu
def test_opcheck_on_cuda():
    _require_gpu()
    g = torch.randn(3, 3, 9, 9, device="cuda").contiguous(memory_format=torch.channels_last)
    r, f = torch.randn(8, 1, device="cuda"), torch.randn(8, 1, device="cuda")
    alpha = torch.rand(3, device="cuda")
    ops = torch.ops.gan_kernels
    cases = [
        (ops.d_loss_forward.default, (r, f, 0, 1, 1.0, 0.0, 0.0, 1.0, True)),
        (ops.g_loss_forward.default, (f, r, 5, 2, 1.0, True)),
        (ops.loss_backward.default, (torch.tensor(1.0, device="cuda"), r, f, torch.float16, torch.float32)),
        (ops.interpolate_forward.default, (g, g * 2, alpha)),
        (ops.interpolate_backward.default, (g, alpha, True, False)),
        (ops.grad_penalty_forward.default, (g, 0, 1.0, 1.0, 1, 1.0, torch.tensor(0.5, device="cuda"))),
    ]
    loss, norms = ops.grad_penalty_forward(g, 0, 1.0, 1.0, 0, 1.0, None)
    cases.append((ops.grad_penalty_backward.default, (torch.ones(3, device="cuda"), g, norms, 0, 1.0, 1.0, 0, 1.0, None)))
    for op, args in cases:
        torch.library.opcheck(op, args, test_utils=("test_schema", "test_faketensor"))
    assert _layout.is_batch_major(g)
