"""The device ops' contract (docs/kernel_contract.md), checked alike for every implementation of it.

The six device ops -- loss_forward, loss_backward, interpolate_forward, interpolate_backward,
grad_penalty_forward, grad_penalty_backward -- have one schema in two namespaces:
``torch.ops.gan_kernels`` (the compiled CPU and CUDA kernels) and ``torch.ops.gan_kernels_triton``.
Every test runs on each (namespace, device) pair that can run here, named by back end:

* ``cpu-cpu``: gan_kernels on CPU tensors (when gan_kernels._C is built);
* ``triton-cpu``: gan_kernels_triton under the Triton interpreter (TRITON_INTERPRET=1, set by
  tests/conftest.py on a machine without a GPU): small shapes, no bfloat16;
* ``cuda-cuda`` and ``triton-cuda``: both namespaces on CUDA tensors, GPU-marked.

Checked for each op: outputs against gan_kernels.reference on fresh random data (tolerances per
dtype), output metadata (shape, dtype, strides) equal to the fake kernel's, input layouts
(contiguous, channels_last, batch not outermost, sliced, misaligned, stride-0 upstream
gradients and alphas), the empty-output conventions, and inputs on two devices rejected. On CUDA
the caching allocator's free memory is filled with NaN before each call, so an output element a
kernel forgot to write shows up. The list ops (loss_list_*, feature_matching_*) get the device
and fake-metadata checks here; their values, opcheck and gradients are in tests/test_multi.py.
The public API over these ops: tests/test_backends.py; opcheck of the compiled ops on CPU:
tests/test_opcheck.py.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import pytest
import torch

import gan_kernels  # noqa: F401  (registers both namespaces)
from gan_kernels import _fake, _kinds, reference

from ._helpers import assert_close, require

F32, F64, F16, BF16 = torch.float32, torch.float64, torch.float16, torch.bfloat16
DT_ID = {F32: "f32", F64: "f64", F16: "f16", BF16: "bf16"}
R = _kinds.REDUCTIONS
P = _kinds.PENALTY_KINDS


class Target(NamedTuple):
    """One implementation of the device ops: a back end's namespace on one device."""

    backend: str  # "cpu" / "cuda": torch.ops.gan_kernels; "triton": torch.ops.gan_kernels_triton
    device: str

    @property
    def interpreted(self) -> bool:
        return self.backend == "triton" and self.device == "cpu"

    @property
    def other_device(self) -> str:
        """A second device for the mixed-device checks (the meta device stands in for one on CPU)."""
        return "cpu" if self.device == "cuda" else "meta"

    @property
    def dtypes(self):
        return (F32, F64, F16) if self.interpreted else (F32, F64, F16, BF16)


TARGETS = (Target("cpu", "cpu"), Target("triton", "cpu"), Target("cuda", "cuda"), Target("triton", "cuda"))


def _tid(t: Target) -> str:
    return f"{t.backend}-{t.device}"


def _marks(t: Target):
    return [pytest.mark.gpu] if t.device == "cuda" else []


T = [pytest.param(t, id=_tid(t), marks=_marks(t)) for t in TARGETS]
TD = [pytest.param(t, d, id=f"{_tid(t)}-{DT_ID[d]}", marks=_marks(t)) for t in TARGETS for d in t.dtypes]
TRITON = [p for p in T if p.values[0].backend == "triton"]


def _ops(t: Target):
    """The target's op namespace; skips when it cannot run here."""
    require(t.backend, t.device)
    return torch.ops.gan_kernels_triton if t.backend == "triton" else torch.ops.gan_kernels


def _acc(dtype):
    return reference.acc_dtype(dtype)


# --------------------------------------------------------------------------- inputs and checks
def _in_layout(x, layout):
    """x's values in ``layout``: contiguous; channels_last (4-D); batch_inner (the batch is not the
    outermost dimension: not batch-major); sliced (every other element of the last dimension: not
    dense); offset (dense and batch-major, but one element into its storage: not 16-byte aligned,
    which sends the CUDA kernels down their scalar paths); expanded (x's first value only)."""
    if layout == "contiguous":
        return x
    if layout == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    if layout == "expanded":  # one value, every stride 0: what autograd sends for out.sum()
        return x.flatten()[0].expand(x.shape)
    shape = tuple(x.shape)
    if layout == "batch_inner":
        out = x.new_empty((shape[1], shape[0]) + shape[2:]).transpose(0, 1)
    elif layout == "sliced":
        out = x.new_empty(shape[:-1] + (2 * shape[-1],))[..., ::2]
    elif layout == "offset":
        out = x.new_empty((x.numel() + 1,))[1:].view(shape)
    else:
        raise ValueError(layout)
    return out.copy_(x)


def _rand(t: Target, shape, dtype, scale=1.0, layout="contiguous"):
    """Random values (normal, times ``scale``) of ``dtype`` on the target's device, in ``layout``."""
    return _in_layout((torch.randn(shape, device=t.device, dtype=F64) * scale).to(dtype), layout)


def _poison(t: Target) -> None:
    """On CUDA: leave the caching allocator's free blocks full of NaN, so unwritten outputs are NaN.

    Empties the cache, then fills two small-pool segments (2 x 1 MiB) and a 20 MiB large-pool
    segment with NaN and frees them: the next allocations on this stream are carved from them.
    """
    if t.device != "cuda":
        return
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    keep = [torch.full((1 << 18,), float("nan"), device="cuda") for _ in range(2)]
    keep.append(torch.full((5 << 20,), float("nan"), device="cuda"))
    del keep


def _same_meta(outs, fakes, what: str) -> None:
    """The real outputs have the fake kernel's shapes, dtypes and strides."""
    outs = outs if isinstance(outs, tuple) else (outs,)
    fakes = fakes if isinstance(fakes, tuple) else (fakes,)
    assert len(outs) == len(fakes), what
    for i, (a, b) in enumerate(zip(outs, fakes)):
        assert a.shape == b.shape, f"{what}: output {i} shape {tuple(a.shape)} != fake {tuple(b.shape)}"
        assert a.dtype == b.dtype, f"{what}: output {i} dtype {a.dtype} != fake {b.dtype}"
        assert a.device == b.device, f"{what}: output {i} device {a.device} != fake {b.device}"
        if a.numel() > 1:
            assert a.stride() == b.stride(), f"{what}: output {i} strides {a.stride()} != fake {b.stride()}"


def _empty(x, dtype, what: str) -> None:
    assert x.shape == (0,) and x.dtype == dtype, f"{what}: want an empty (0,) {dtype} tensor, got {x.shape} {x.dtype}"


def _finite(x, what: str) -> None:
    assert bool(torch.isfinite(x).all()), f"{what}: non-finite values (an element left unwritten?)"


def _by_batch(v, like):
    """A (B,) tensor viewed to broadcast over ``like``'s sample dimensions."""
    return v.reshape((-1,) + (1,) * (like.dim() - 1))


# --------------------------------------------------------------------------- losses
# (side, kind, options): every D and G kind once; the options pick non-default spec numbers
# (0.9, 0.01, 0.7 are not float32 numbers: a float64 kernel that rounds them fails).
LOSS_CASES = {
    "d-logistic": ("d", "logistic", dict(real_label=0.9, drift=0.01)),
    "d-hinge": ("d", "hinge", {}),
    "d-wasserstein": ("d", "wasserstein", dict(drift=1e-3)),
    "d-least_squares": ("d", "least_squares", dict(ls_targets=(-0.5, 0.75))),
    "d-relativistic": ("d", "relativistic", dict(drift=0.01)),
    "d-rpgan": ("d", "rpgan", {}),
    "g-logistic": ("g", "logistic", {}),
    "g-minimax": ("g", "minimax", {}),
    "g-hinge": ("g", "hinge", {}),
    "g-least_squares": ("g", "least_squares", dict(ls_target=0.7)),
    "g-relativistic": ("g", "relativistic", {}),
    "g-rpgan": ("g", "rpgan", {}),
}


class LossCase(NamedTuple):
    spec: tuple  # the eight spec numbers of the loss_forward schema
    reference: object  # (real, fake, reduction) -> loss

    @property
    def uses_real(self) -> bool:
        return self.spec[0] != _kinds.MODE_SEPARATE or self.spec[1] != _kinds.TERM_NONE

    def same_shapes(self, reduction: str) -> bool:
        """Whether real and fake must have one shape (the kernels pair or add them elementwise)."""
        both_terms = self.spec[1] != _kinds.TERM_NONE and self.spec[4] != _kinds.TERM_NONE
        return self.spec[0] == _kinds.MODE_PAIRED or (reduction == "none" and both_terms)


def _loss_case(name: str) -> LossCase:
    side, kind, o = LOSS_CASES[name]
    if side == "d":
        label, drift, ls = o.get("real_label", 1.0), o.get("drift", 0.0), o.get("ls_targets", (0.0, 1.0))
        return LossCase(_kinds.d_loss_args(kind, label, drift, *ls),
                        lambda r, f, red: reference.d_loss(r, f, kind, red, label, drift, ls))
    target = o.get("ls_target", 1.0)
    return LossCase(_kinds.g_loss_args(kind, target), lambda r, f, red: reference.g_loss(f, kind, r, red, target))


def _one_program_max(t: Target) -> int:
    """Logits past which a loss kernel runs its multi-block (grid) path."""
    if t.backend == "triton":
        from gan_kernels.triton._utils import loss_one_program_max

        return loss_one_program_max(torch.device(t.device))
    return 8192  # csrc/cuda/losses.cu; the CPU kernels split into chunks well below it


def _loss_shapes(t: Target):
    """(real shape, fake shape, real layout, fake layout): one logit; a PatchGAN map; two
    non-contiguous ones; unequal batches; both past the one-block limit, neither a multiple of a
    tile (the tensors run out in different blocks)."""
    n = _one_program_max(t)
    big = ((n + 37,), (n + 5,)) if t.interpreted else ((n + 301,), (n + 45,))
    plain = "contiguous", "contiguous"
    return [((1,), (1,), *plain), ((3, 1, 5, 7), (3, 1, 5, 7), *plain),
            ((4, 6), (4, 6), "batch_inner", "sliced"), ((3, 1, 5, 7), (3, 1, 5, 7), "offset", "sliced"),
            ((37,), (13, 1), *plain), (*big, *plain)]


def _untie(r, f):
    """f with no element equal to r's: at r == f the reference's softplus (clamp + abs) has an
    autograd kink and gives the subgradient 1 where the kernels give the derivative 1/2, and low
    precision logits tie often enough to hit it."""
    if r is None or r.shape != f.shape:
        return f
    return torch.where(f == r, f + 0.25, f)


@pytest.mark.parametrize("reduction", list(R))
@pytest.mark.parametrize("case", list(LOSS_CASES))
@pytest.mark.parametrize("target,dtype", TD)
def test_loss_forward(target, dtype, case, reduction):
    ops = _ops(target)
    lc = _loss_case(case)
    tol = F64 if dtype == F64 else F32  # outputs are acc: exact inputs, acc arithmetic
    for rs, fs, r_layout, f_layout in _loss_shapes(target):
        fs = rs if lc.same_shapes(reduction) else fs
        real = _rand(target, rs, dtype, 2.0, r_layout) if lc.uses_real else None
        fake = _in_layout(_untie(real, _rand(target, fs, dtype, 2.0)), f_layout)
        args = (real, fake, *lc.spec, R[reduction], True)
        what = f"{case}/{reduction} {rs} {r_layout}, {fs} {f_layout}"
        _poison(target)
        loss, g_real, g_fake = ops.loss_forward(*args)
        _same_meta((loss, g_real, g_fake), _fake.loss_forward(*args), what)
        r64 = real.double().requires_grad_() if real is not None else None
        f64 = fake.double().requires_grad_()
        expected = lc.reference(r64, f64, reduction)
        _finite(loss, what)
        assert_close(loss.double(), expected.detach(), tol, f"{what}: loss")
        if lc.spec[0] == _kinds.MODE_RELATIVISTIC and reduction == "none":
            # The Jacobian is not diagonal: no per-element gradients.
            _empty(g_real, _acc(dtype), what)
            _empty(g_fake, _acc(dtype), what)
            continue
        # The gradients are for a unit upstream gradient: d sum(loss) / d input.
        if r64 is None:
            (e_fake,) = torch.autograd.grad(expected.sum(), (f64,))
            _empty(g_real, _acc(dtype), what)
        else:
            e_real, e_fake = torch.autograd.grad(expected.sum(), (r64, f64))
            _finite(g_real, what)
            assert_close(g_real.double(), e_real, tol, f"{what}: grad_real")
        _finite(g_fake, what)
        assert_close(g_fake.double(), e_fake, tol, f"{what}: grad_fake")


@pytest.mark.parametrize("target", T)
def test_loss_forward_empty_outputs(target):
    """compute_grad=False, relativistic "none", an absent or unused real: empty (0,) acc gradients."""
    ops = _ops(target)
    for dtype in (F32, F16):
        acc = _acc(dtype)
        r, f = _rand(target, (6, 1), dtype, 2.0), _rand(target, (6, 1), dtype, 2.0)
        for name, args in {
            "no grad": (r, f, *_loss_case("d-logistic").spec, R["mean"], False),
            "relativistic none": (r, f, *_loss_case("d-relativistic").spec, R["none"], True),
            "g without real": (None, f, *_loss_case("g-logistic").spec, R["sum"], True),
            "g ignores real": (r[:4], f, *_loss_case("g-logistic").spec, R["sum"], True),
        }.items():
            what = f"{name} {dtype}"
            loss, g_real, g_fake = ops.loss_forward(*args)
            _same_meta((loss, g_real, g_fake), _fake.loss_forward(*args), what)
            _empty(g_real, acc, what)
            if name in ("no grad", "relativistic none"):
                _empty(g_fake, acc, what)
            else:
                assert g_fake.shape == f.shape and g_fake.dtype == acc, what
        # A real the spec does not read changes nothing: same bits as without it.
        g_spec = _loss_case("g-logistic").spec
        with_real = ops.loss_forward(r[:4], f, *g_spec, R["sum"], True)
        without = ops.loss_forward(None, f, *g_spec, R["sum"], True)
        assert torch.equal(with_real[0], without[0]) and torch.equal(with_real[2], without[2])


@pytest.mark.parametrize("target", T)
def test_loss_forward_extreme_logits(target):
    """softplus far out in both tails: log(1 + e) must keep a tiny e (log1p), never overflow."""
    ops = _ops(target)
    x = torch.tensor([-120.0, -40.0, -20.0, -1e-3, 0.0, 1e-3, 20.0, 40.0, 120.0], device=target.device)
    loss, _, g = ops.loss_forward(None, x, *_loss_case("g-minimax").spec, R["none"], True)
    # Against the float64 values rounded to float32: e^-120 underflows there, and so may the kernel's.
    torch.testing.assert_close(loss, -reference.softplus(x.double()).float(), rtol=2e-6, atol=0)
    torch.testing.assert_close(g, -torch.sigmoid(x.double()).float(), rtol=2e-6, atol=0)
    loss, _, _ = ops.loss_forward(x, x.flip(0), *_loss_case("d-logistic").spec, R["mean"], True)
    _finite(loss, "logistic")


@pytest.mark.parametrize("target", TRITON)
def test_triton_large_losses_take_the_grid_path(target, monkeypatch):
    """The largest shape of test_loss_forward runs the Triton multi-program path, in every mode."""
    from gan_kernels.triton import losses

    ops = _ops(target)
    calls = []
    grid = losses._launch_loss_grid
    monkeypatch.setattr(losses, "_launch_loss_grid", lambda *a: calls.append(a[1]) or grid(*a))
    rs, fs, _, _ = _loss_shapes(target)[-1]
    for case in ("d-logistic", "d-relativistic", "d-rpgan"):
        lc = _loss_case(case)
        r = _rand(target, rs, F32, 2.0)
        f = _rand(target, rs if lc.same_shapes("mean") else fs, F32, 2.0)
        before = len(calls)
        ops.loss_forward(r, f, *lc.spec, R["mean"], True)
        assert len(calls) == before + 1, f"{case}: the grid path did not run"


def _saved(t, shape, dtype, layout):
    if layout == "permuted":  # not contiguous (the autograd Functions save contiguous ones)
        return _rand(t, shape[::-1], dtype).permute(*reversed(range(len(shape))))
    return _rand(t, shape, dtype)


@pytest.mark.parametrize("target,dtype", TD)
def test_loss_backward(target, dtype):
    ops = _ops(target)
    acc = _acc(dtype)
    shape = (5, 1, 3, 3)
    a, b = _saved(target, shape, acc, "contiguous"), _saved(target, shape, acc, "contiguous")
    none = torch.empty((0,), device=target.device, dtype=acc)

    def go(kind):
        if kind == "0-dim":  # reduction mean / sum
            return torch.randn((), device=target.device, dtype=acc)
        if kind == "expanded":  # "none" under loss.sum().backward(): all strides 0
            return torch.randn((), device=target.device, dtype=acc).expand(shape)
        return _saved(target, shape, acc, kind)  # "none": contiguous or permuted

    cases = {
        "0-dim": (go("0-dim"), a, b),
        "none": (go("contiguous"), a, b),
        "none permuted grad_out": (go("permuted"), a, b),
        "none expanded grad_out": (go("expanded"), a, b),
        "unequal batches": (go("0-dim"), a, _saved(target, (7, 1), acc, "contiguous")),
        "no b": (go("contiguous"), a, none),
        "no a": (go("0-dim"), none, b),
    }
    for name, (g, sa, sb) in cases.items():
        for dt_a, dt_b in ((dtype, acc), (acc, dtype)):
            _check_loss_backward(ops, target, g, sa, sb, dt_a, dt_b, f"{name} ({dt_a}, {dt_b})")


def _check_loss_backward(ops, t: Target, g, sa, sb, dt_a, dt_b, what):
    _poison(t)
    da, db = ops.loss_backward(g, sa, sb, dt_a, dt_b)
    _same_meta((da, db), _fake.loss_backward(g, sa, sb, dt_a, dt_b), what)
    for out, saved, dt, side in ((da, sa, dt_a, "a"), (db, sb, dt_b, "b")):
        if saved.numel() == 0:
            _empty(out, dt, f"{what}: {side}")
        else:
            assert_close(out, (g * saved).to(dt), dt, f"{what}: {side}")


@pytest.mark.parametrize("target", T)
def test_loss_backward_noncontiguous_saved(target):
    """Saved gradients that are not contiguous (the autograd callers never pass one): right values,
    outputs laid out like the saved tensors."""
    ops = _ops(target)
    shape = (5, 1, 3, 3)
    a, b = _saved(target, shape, F32, "permuted"), _saved(target, shape, F32, "contiguous")
    for g in (torch.randn((), device=target.device), _saved(target, shape, F32, "contiguous")):
        _check_loss_backward(ops, target, g, a, b, F16, F32, f"grad_out {tuple(g.shape)}")


# --------------------------------------------------------------------------- interpolation
LAYOUTS = ("contiguous", "channels_last", "batch_inner", "sliced", "offset")


def _image_shapes(t: Target):
    if t.interpreted:
        return [(1, 3, 5, 7), (3, 3, 5, 7), (9, 2)]
    # D = 3*17*19 = 969 is not a multiple of any vector width (vectors straddle samples, a tail
    # runs); D = 2 is below every vector width.
    return [(1, 3, 8, 8), (4, 3, 8, 8), (3, 3, 17, 19), (257, 2)]


def _other_layout(layout, shape):
    """A layout for the second input, different from the first's."""
    if layout != "contiguous":
        return "contiguous"
    return "channels_last" if len(shape) == 4 else "sliced"


def _layout_applies(layout, shape):
    return layout != "channels_last" or len(shape) == 4


def _alphas(t: Target, b: int, acc):
    return {"alpha": torch.rand(b, device=t.device, dtype=acc),
            "expanded alpha": torch.rand((), device=t.device, dtype=acc).expand(b)}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("target,dtype", TD)
def test_interpolate_forward(target, dtype, layout):
    ops = _ops(target)
    for shape in _image_shapes(target):
        if not _layout_applies(layout, shape):
            continue
        real = _rand(target, shape, dtype, layout=layout)
        fake = _rand(target, shape, dtype, layout=_other_layout(layout, shape))
        for name, alpha in _alphas(target, shape[0], _acc(dtype)).items():
            what = f"{shape} {layout}, {name}"
            _poison(target)
            out = ops.interpolate_forward(real, fake, alpha)
            _same_meta(out, _fake.interpolate_forward(real, fake, alpha), what)
            _finite(out, what)
            expected = reference.interpolate(real, fake, alpha)
            if target.backend == "triton":
                # Triton's compiler may contract a * r + (1 - a) * f into a fused multiply-add.
                assert_close(out, expected, dtype, what)
            else:
                # The C++ kernels compute exactly the reference's expression: the same bits.
                torch.testing.assert_close(out, expected, rtol=0, atol=0, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("layout", LAYOUTS + ("expanded",))
@pytest.mark.parametrize("target,dtype", TD)
def test_interpolate_backward(target, dtype, layout):
    ops = _ops(target)
    acc = _acc(dtype)
    for shape in _image_shapes(target):
        if not _layout_applies(layout, shape):
            continue
        g = _rand(target, shape, dtype, layout=layout)
        for name, alpha in _alphas(target, shape[0], acc).items():
            a = _by_batch(alpha, g)
            expected = {"real": (a * g.to(acc)).to(dtype), "fake": ((1 - a) * g.to(acc)).to(dtype)}
            for need_real, need_fake in ((True, True), (True, False), (False, True), (False, False)):
                what = f"{shape} {layout}, {name}, need ({need_real}, {need_fake})"
                _poison(target)
                d_real, d_fake = ops.interpolate_backward(g, alpha, need_real, need_fake)
                _same_meta((d_real, d_fake), _fake.interpolate_backward(g, alpha, need_real, need_fake), what)
                for out, need, side in ((d_real, need_real, "real"), (d_fake, need_fake, "fake")):
                    if need:
                        _finite(out, what)
                        assert_close(out, expected[side], dtype, f"{what}: d_{side}")
                    else:
                        _empty(out, dtype, f"{what}: d_{side}")


# --------------------------------------------------------------------------- gradient penalty
CENTER, WEIGHT = 0.9, 2.7  # not float32 numbers: a float64 kernel that rounds them fails


def _scales(t: Target):
    """(inv_scale, inv_scale_tensor value): none, a number, a number times a device scalar."""
    return ((1.0, None), (1.25, 0.8)) if t.interpreted else ((1.0, None), (1.1, None), (1.25, 0.8))


def _penalty_shapes(t: Target):
    if t.interpreted:  # tiles of 64 elements there: D = 105 and 130 span several
        return [(4, 3, 5, 7), (1, 130), (37, 2)]
    # CUDA chunks (csrc/cuda/grad_penalty.cu: 4096 float32, 8192 half, 2048 float64 elements):
    # D = 192 one chunk; 4800 one or more, the last partial; 12288 several (vector path);
    # 20301 several (scalar path: not a multiple of any vector width); many tiny samples.
    return [(1, 3, 8, 8), (4, 3, 11, 13), (5, 3, 40, 40), (2, 3, 64, 64), (2, 3, 101, 67), (300, 2)]


def _penalty_grad(t: Target, shape, dtype, layout="contiguous"):
    """Per-sample norms spread over [0.5, 1.5] around CENTER (both signs of n - center); for
    shapes with 4 or more samples, sample 1 is all zero (norm 0: the defined zero gradient)."""
    g = _rand(t, shape, F64)
    factor = (0.5 + torch.rand(shape[0], device=t.device, dtype=F64)) / math.sqrt(math.prod(shape[1:]))
    if shape[0] >= 4:
        factor[1] = 0.0
    return _in_layout((g * _by_batch(factor, g)).to(dtype), layout)


def _upstream(t: Target, reduction: str, b: int, acc):
    """grad_out for the penalty's backward: 0-dim, or (B,) for "none" (random, and expanded)."""
    if reduction != "none":
        return {"0-dim": torch.randn((), device=t.device, dtype=acc) + 1.5}
    return {"(B,)": torch.randn(b, device=t.device, dtype=acc),
            "expanded": torch.randn((), device=t.device, dtype=acc).expand(b)}


def _check_penalty(ops, t: Target, g, kind, reduction, inv_scale, ist_value, what):
    """Both penalty ops on ``g`` against the reference (float64 on the same inputs)."""
    dtype, acc = g.dtype, _acc(g.dtype)
    tol = F64 if dtype == F64 else F32
    ist = None if ist_value is None else torch.tensor(ist_value, device=t.device)  # float32, as the API gives it
    args = (P[kind], CENTER, WEIGHT, R[reduction], inv_scale, ist)
    _poison(t)
    loss, norms = ops.grad_penalty_forward(g, *args)
    _same_meta((loss, norms), _fake.grad_penalty_forward(g, *args), what)
    _finite(loss, what)
    g64 = g.double().requires_grad_()
    assert_close(norms.double(), torch.linalg.vector_norm(g64.detach().flatten(1), dim=1), tol, f"{what}: norms")
    scale = inv_scale * (1.0 if ist is None else float(ist))
    expected = reference.grad_penalty(g64, kind, CENTER, WEIGHT, reduction, scale)
    assert_close(loss.double(), expected.detach(), tol, f"{what}: loss")
    for name, go in _upstream(t, reduction, g.shape[0], acc).items():
        _poison(t)
        d_grad = ops.grad_penalty_backward(go, g, norms, *args)
        _same_meta(d_grad, _fake.grad_penalty_backward(go, g, norms, *args), f"{what}, {name}")
        _finite(d_grad, f"{what}, {name}")
        (e_grad,) = torch.autograd.grad(expected, g64, go.double(), retain_graph=True)
        assert_close(d_grad, e_grad.to(dtype), dtype, f"{what}, {name}: d_grad")
        if g.shape[0] >= 4:
            assert bool((d_grad[1] == 0).all()), f"{what}: a zero sample must get a zero gradient"


@pytest.mark.parametrize("kind", list(P))
@pytest.mark.parametrize("target,dtype", TD)
def test_grad_penalty(target, dtype, kind):
    ops = _ops(target)
    for shape in _penalty_shapes(target):
        g = _penalty_grad(target, shape, dtype)
        for reduction in R:
            for inv_scale, ist in _scales(target):
                what = f"{kind}/{reduction} {shape} inv_scale {inv_scale}, {ist}"
                _check_penalty(ops, target, g, kind, reduction, inv_scale, ist, what)


@pytest.mark.parametrize("layout", [lay for lay in LAYOUTS if lay != "contiguous"])
@pytest.mark.parametrize("target", T)
def test_grad_penalty_layouts(target, layout):
    ops = _ops(target)
    shape = (3, 3, 5, 7) if target.interpreted else (2, 3, 64, 64)
    g = _penalty_grad(target, shape, F32, layout)
    for kind in P:
        for reduction in ("mean", "none"):
            _check_penalty(ops, target, g, kind, reduction, 1.25, 0.8, f"{kind}/{reduction} {layout}")


@pytest.mark.parametrize("target", T)
def test_grad_penalty_norms_in_acc(target):
    """A float16 gradient whose sum of squares overflows float16: norms and loss are acc numbers."""
    ops = _ops(target)
    g = _rand(target, (4, 2, 9, 11), F16, scale=30.0)
    loss, norms = ops.grad_penalty_forward(g, P["wgan-gp"], 1.0, 1.0, R["none"], 1.0, None)
    expected = torch.linalg.vector_norm(g.double().flatten(1), dim=1)
    assert norms.dtype == F32 and bool((expected > 255).all())  # sum of squares past float16's 65504
    assert_close(norms.double(), expected, F32, "norms")
    assert_close(loss.double(), (expected - 1) ** 2, F32, "loss")


# --------------------------------------------------------------------------- every op
def _small_args(t: Target):
    """op name -> one argument tuple on the target's device (every tensor argument present)."""
    r, f = _rand(t, (6, 1), F32, 2.0), _rand(t, (6, 1), F32, 2.0)
    g = _rand(t, (3, 2, 4, 5), F32) * 0.2
    alpha = torch.rand(3, device=t.device)
    ist = torch.tensor(0.5, device=t.device)
    one = torch.ones((), device=t.device)
    norms = torch.linalg.vector_norm(g.flatten(1), dim=1)
    return {
        "loss_forward": (r, f, *_loss_case("d-logistic").spec, R["mean"], True),
        "loss_backward": (one, r, f, F32, F32),
        "interpolate_forward": (g, _rand(t, g.shape, F32), alpha),
        "interpolate_backward": (g, alpha, True, True),
        "grad_penalty_forward": (g, P["wgan-gp"], 1.0, 10.0, R["mean"], 1.0, ist),
        "grad_penalty_backward": (one, g, norms, P["wgan-gp"], 1.0, 10.0, R["mean"], 1.0, ist),
    }


@pytest.mark.parametrize("op", list(_fake.FAKES))
@pytest.mark.parametrize("target", T)
def test_mixed_devices_raise(target, op):
    """Every tensor argument in turn on a second device: the op refuses (and says it is about devices)."""
    ops = _ops(target)
    args = _small_args(target)[op]
    fn = getattr(ops, op)
    fn(*args)  # the arguments themselves are fine
    moved_any = False
    for i, a in enumerate(args):
        if not isinstance(a, torch.Tensor):
            continue
        moved = list(args)
        moved[i] = a.to(target.other_device)
        with pytest.raises((RuntimeError, ValueError), match=r"(?i)cpu|cuda|meta|device"):
            fn(*moved)
        moved_any = True
    assert moved_any


@pytest.mark.parametrize("target", T)
def test_deterministic(target):
    """The same bits run after run (fixed-order reductions, no atomics), on the multi-block paths."""
    ops = _ops(target)
    shape = (3, 3, 5, 7) if target.interpreted else (8, 3, 128, 128)
    g = _rand(target, shape, F32) / math.sqrt(math.prod(shape[1:]))
    go = torch.tensor(1.0, device=target.device)
    alpha = torch.rand(shape[0], device=target.device)
    n = _one_program_max(target) + 77
    r, f = _rand(target, (n,), F32, 2.0), _rand(target, (n,), F32, 2.0)
    spec = _loss_case("d-relativistic").spec

    def run():
        loss, norms = ops.grad_penalty_forward(g, P["wgan-gp"], 1.0, 10.0, R["mean"], 1.0, None)
        d_grad = ops.grad_penalty_backward(go, g, norms, P["wgan-gp"], 1.0, 10.0, R["mean"], 1.0, None)
        x = ops.interpolate_forward(g, g.flip(0), alpha)
        return [loss, norms, d_grad, x, *ops.loss_forward(r, f, *spec, R["mean"], True)]

    first = run()
    for _ in range(2):
        _poison(target)
        for i, (a, b) in enumerate(zip(first, run())):
            assert torch.equal(a, b), f"output {i} changed between runs"


# opcheck of the compiled ops on CPU tensors runs in tests/test_opcheck.py (more cases, inputs
# with requires_grad, the public ops); here the other implementations.
OPCHECK_T = [p for p in T if p.values[0] != Target("cpu", "cpu")]


def _opcheck_cases(t: Target):
    r, f = _rand(t, (6, 1, 2, 3), F32, 2.0), _rand(t, (6, 1, 2, 3), F32, 2.0)
    g = _rand(t, (3, 2, 4, 5), F32).contiguous(memory_format=torch.channels_last)
    alpha = torch.rand(3, device=t.device)
    norms = torch.linalg.vector_norm(g.flatten(1), dim=1)
    # Past the one-program limit: the multi-block loss path (scratch partials, several launches).
    n = _one_program_max(t) + 37
    rb, fb = _rand(t, (n,), F32, 2.0), _rand(t, (n + 5,), F32, 2.0)

    def spec(case):
        return _loss_case(case).spec

    return {
        "loss_forward": [(r, f, *spec("d-logistic"), R["mean"], True), (r, f, *spec("d-relativistic"), R["none"], True),
                         (r.half(), f.half(), *spec("d-rpgan"), R["sum"], False),
                         (rb, fb, *spec("d-relativistic"), R["mean"], True),
                         (None, f, *spec("g-minimax"), R["mean"], True), (r, f, *spec("g-rpgan"), R["mean"], True)],
        "loss_backward": [(torch.randn((), device=t.device), r, f, F16, F32),
                          (torch.randn(6, 1, 2, 3, device=t.device), r, r.new_empty((0,)), F32, F32)],
        "interpolate_forward": [(g, torch.randn_like(g), alpha), (r, f, torch.rand(6, device=t.device))],
        "interpolate_backward": [(g, alpha, True, True), (g, alpha, False, True)],
        "grad_penalty_forward": [(g, P["wgan-gp"], 1.0, 10.0, R["mean"], 1.0, None),
                                 (g, P["r1"], 0.0, 5.0, R["none"], 1.0, torch.tensor(0.5, device=t.device)),
                                 (g.half(), P["wgan-lp"], 0.5, 1.0, R["sum"], 0.25, None)],
        "grad_penalty_backward": [
            (torch.tensor(1.5, device=t.device), g, norms, P["wgan-gp"], 1.0, 10.0, R["mean"], 1.0, None),
            (torch.randn(3, device=t.device), g, norms, P["wgan-lp"], 0.5, 1.0, R["none"], 2.0,
             torch.tensor(0.5, device=t.device)),
        ],
    }


@pytest.mark.parametrize("op", list(_fake.FAKES))
@pytest.mark.parametrize("target", OPCHECK_T)
def test_opcheck(target, op):
    """Schema, fake kernel (metadata equal to the real kernel's) and AOT dispatch, static and dynamic."""
    ops = _ops(target)
    for args in _opcheck_cases(target)[op]:
        torch.library.opcheck(getattr(ops, op), args)


# --------------------------------------------------------------------------- list ops
def _list_args(t: Target):
    """The list ops (multi-discriminator training), op name -> one argument tuple on the target's device."""
    def rand(*shape):
        return _rand(t, shape, F32, 2.0)

    spec = _loss_case("d-logistic").spec
    r, f = [rand(6, 1), rand(3, 4)], [rand(6, 1), rand(5, 4)]
    return {
        "loss_list_forward": (r, f, *spec, R["mean"], True),
        "loss_list_backward": (torch.ones((), device=t.device), [rand(6, 1), rand(5, 4)], [rand(6, 1), rand(5, 4)]),
        "feature_matching_forward": ([rand(2, 3), rand(4)], [rand(2, 3), rand(4)], [1.0, 0.5], R["mean"]),
        "feature_matching_backward": (torch.ones((), device=t.device), [rand(2, 3), rand(4)], [rand(2, 3), rand(4)],
                                      [1.0, 0.5], R["mean"], True, True),
    }


@pytest.mark.parametrize("op", list(_fake.LIST_FAKES))
@pytest.mark.parametrize("target", T)
def test_list_ops_mixed_devices_raise(target, op):
    """Every tensor of the lists (and grad_out) in turn on a second device: the op refuses; the
    real outputs have the fake kernel's metadata."""
    ops = _ops(target)
    fn = getattr(ops, op)
    if target.backend != "triton" and not torch._C._dispatch_has_kernel_for_dispatch_key(
            fn.default.name(), target.device.upper()):
        pytest.skip(f"this build has no {target.device} kernel of {op}")
    args = _list_args(target)[op]
    out = fn(*args)
    with torch._subclasses.fake_tensor.FakeTensorMode(allow_non_fake_inputs=True):
        want = getattr(_fake, op)(*args)
    flat = lambda x: [y for v in (x if isinstance(x, (tuple, list)) else (x,))  # noqa: E731
                      for y in (v if isinstance(v, (tuple, list)) else (v,))]
    _same_meta(tuple(flat(out)), tuple(flat(want)), op)
    moved_any = False
    for i, a in enumerate(args):
        items = a if isinstance(a, list) else [a]
        if op == "loss_list_backward" and i == 2:
            continue  # ``like`` only gives dtypes
        for j, x in enumerate(items):
            if not isinstance(x, torch.Tensor):
                continue
            moved = list(args)
            if isinstance(a, list):
                moved[i] = a[:j] + [x.to(target.other_device)] + a[j + 1:]
            else:
                moved[i] = x.to(target.other_device)
            with pytest.raises((RuntimeError, ValueError), match=r"(?i)cpu|cuda|meta|device"):
                fn(*moved)
            moved_any = True
    assert moved_any
