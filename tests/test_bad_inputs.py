"""Bad input at every entry: each public function and module on every back end that runs here, and
the registered ``torch.ops.gan_kernels`` ops themselves.

The meta device stands in for a second device on a CPU-only machine: a tensor there has no data,
so an op that reads it anyway has skipped its device check (and, with a real second device, would
read another device's memory as if it were its own).
"""

from __future__ import annotations

import pytest
import torch

import gan_kernels as gk
from gan_kernels import _kinds

from ._helpers import require

BACKENDS = ["reference", "cpu", "triton"]
# the message names both devices, as "<arg> is on cpu but <arg> is on meta"
BOTH_DEVICES = r"is on (cpu but \S+ is on meta|meta but \S+ is on cpu)"


def c(*shape):
    return torch.randn(*shape)


def m(*shape):
    return torch.randn(*shape, device="meta")


def _critic():
    return torch.nn.Linear(3, 1)


def _r1_inputs(real_device="cpu"):
    """(real_logits, real) of one critic forward; with real_device="meta", real_logits stay on the
    CPU while real is on meta (as if the caller mixed up two devices)."""
    x = torch.randn(2, 3, requires_grad=True)
    logits = _critic()(x).squeeze(1)
    return logits, (x if real_device == "cpu" else torch.randn(2, 3, device=real_device, requires_grad=True))


D_KINDS = list(_kinds.D_LOSS_KINDS)
G_KINDS = list(_kinds.G_LOSS_KINDS)
P_KINDS = list(_kinds.PENALTY_KINDS)
REDS = list(_kinds.REDUCTIONS)


def _accepted(values):
    """A regex matching a message that lists every accepted value."""
    return "".join(f"(?=.*'{v}')" for v in values)


# (id, call(backend), exception, message regex)
CASES = [
    # ------------------------------------------------------------------ d_loss
    ("d_loss-device", lambda b: gk.d_loss(c(4), m(4), backend=b), ValueError, BOTH_DEVICES),
    ("d_loss-device-real", lambda b: gk.d_loss(m(4), c(4), "hinge", backend=b), ValueError, BOTH_DEVICES),
    ("d_loss-int-real", lambda b: gk.d_loss(torch.arange(4), c(4), backend=b), TypeError, r"real_logits.*int64"),
    ("d_loss-int-fake", lambda b: gk.d_loss(c(4), torch.ones(4, dtype=torch.int32), backend=b), TypeError, r"fake_logits.*int32"),
    ("d_loss-bool-fake", lambda b: gk.d_loss(c(4), torch.ones(4, dtype=torch.bool), backend=b), TypeError, r"fake_logits.*bool"),
    ("d_loss-empty-real", lambda b: gk.d_loss(c(0), c(4), backend=b), ValueError, r"real_logits is empty"),
    ("d_loss-empty-fake", lambda b: gk.d_loss(c(4), c(0, 1), backend=b), ValueError, r"fake_logits is empty"),
    ("d_loss-0dim", lambda b: gk.d_loss(c(4), torch.tensor(0.5), backend=b), ValueError, r"fake_logits must have a batch dimension"),
    ("d_loss-rpgan-shapes", lambda b: gk.d_loss(c(4), c(5), "rpgan", backend=b), ValueError, r"\(4,\) and \(5,\)"),
    ("d_loss-none-shapes", lambda b: gk.d_loss(c(4, 1), c(4, 2), reduction="none", backend=b), ValueError, r"same shape.*\(4, 1\) and \(4, 2\)"),
    ("d_loss-kind", lambda b: gk.d_loss(c(4), c(4), "minimax", backend=b), ValueError, r"d_loss kind 'minimax'" + _accepted(D_KINDS)),
    ("d_loss-kind-none", lambda b: gk.d_loss(c(4), c(4), None, backend=b), ValueError, r"d_loss kind None" + _accepted(D_KINDS)),
    ("d_loss-reduction", lambda b: gk.d_loss(c(4), c(4), reduction="avg", backend=b), ValueError, r"reduction 'avg'" + _accepted(REDS)),
    ("d_loss-backend", lambda b: gk.d_loss(c(4), c(4), backend="metal"), ValueError,
     r"unknown backend 'metal'" + _accepted(["auto", "cuda", "triton", "cpu", "reference"])),
    ("d_loss-list", lambda b: gk.d_loss([0.1, 0.2], c(2), backend=b), TypeError, r"real_logits must be a torch.Tensor.*list"),
    ("d_loss-numpy", lambda b: gk.d_loss(c(2), c(2).numpy(), backend=b), TypeError, r"fake_logits must be a torch.Tensor.*ndarray"),
    ("d_loss-real_label", lambda b: gk.d_loss(c(4), c(4), real_label="0.9", backend=b), TypeError, r"real_label must be a real number"),
    ("d_loss-drift-tensor", lambda b: gk.d_loss(c(4), c(4), drift=torch.tensor(0.1), backend=b), TypeError, r"drift must be a real number"),
    ("d_loss-ls_targets", lambda b: gk.d_loss(c(4), c(4), "least_squares", ls_targets=(0.0, 1.0, 2.0), backend=b), ValueError, r"ls_targets must be a pair"),
    ("d_loss-ls_targets-str", lambda b: gk.d_loss(c(4), c(4), ls_targets=("a", 1.0), backend=b), TypeError, r"ls_targets\[0\] must be a real number"),
    # ------------------------------------------------------------------ g_loss
    ("g_loss-device", lambda b: gk.g_loss(c(4), "relativistic", real_logits=m(4), backend=b), ValueError, BOTH_DEVICES),
    ("g_loss-device-rpgan", lambda b: gk.g_loss(m(4), "rpgan", real_logits=c(4), backend=b), ValueError, BOTH_DEVICES),
    ("g_loss-device-unused-real", lambda b: gk.g_loss(c(4), "logistic", real_logits=m(4), backend=b), ValueError, BOTH_DEVICES),
    ("g_loss-int", lambda b: gk.g_loss(torch.arange(4), backend=b), TypeError, r"fake_logits.*int64"),
    ("g_loss-int-real", lambda b: gk.g_loss(c(4), "rpgan", real_logits=torch.arange(4), backend=b), TypeError, r"real_logits.*int64"),
    ("g_loss-empty", lambda b: gk.g_loss(c(0, 3), backend=b), ValueError, r"fake_logits is empty"),
    ("g_loss-empty-real", lambda b: gk.g_loss(c(4), "relativistic", real_logits=c(0), backend=b), ValueError, r"real_logits is empty"),
    ("g_loss-0dim", lambda b: gk.g_loss(torch.tensor(1.0), backend=b), ValueError, r"fake_logits must have a batch dimension"),
    ("g_loss-rpgan-shapes", lambda b: gk.g_loss(c(4), "rpgan", real_logits=c(3), backend=b), ValueError, r"shapes must match"),
    ("g_loss-none-shapes", lambda b: gk.g_loss(c(4), "relativistic", real_logits=c(5), reduction="none", backend=b), ValueError, r"same shape"),
    ("g_loss-needs-real", lambda b: gk.g_loss(c(4), "rpgan", backend=b), ValueError, r"needs real_logits"),
    ("g_loss-kind", lambda b: gk.g_loss(c(4), "nope", backend=b), ValueError, r"g_loss kind 'nope'" + _accepted(G_KINDS)),
    ("g_loss-reduction", lambda b: gk.g_loss(c(4), reduction="max", backend=b), ValueError, r"reduction 'max'" + _accepted(REDS)),
    ("g_loss-backend", lambda b: gk.g_loss(c(4), backend="gpu"), ValueError, r"unknown backend 'gpu'" + _accepted(["auto", "reference"])),
    # a tuple is a list of per-discriminator logits: its items must be tensors
    ("g_loss-tuple", lambda b: gk.g_loss((1.0, 2.0), backend=b), TypeError, r"fake_logits\[0\] must be a torch.Tensor"),
    ("g_loss-ls_target", lambda b: gk.g_loss(c(4), "least_squares", ls_target=None, backend=b), TypeError, r"ls_target must be a real number"),
    # ------------------------------------------------------------------ interpolate
    ("interpolate-device", lambda b: gk.interpolate(c(2, 3), m(2, 3), backend=b), ValueError, BOTH_DEVICES),
    ("interpolate-device-alpha", lambda b: gk.interpolate(c(2, 3), c(2, 3), m(2), backend=b), ValueError, BOTH_DEVICES),
    ("interpolate-int", lambda b: gk.interpolate(torch.ones(2, 3, dtype=torch.int64), c(2, 3), backend=b), TypeError, r"real must be a floating-point"),
    ("interpolate-int-alpha", lambda b: gk.interpolate(c(2, 3), c(2, 3), torch.arange(2), backend=b), TypeError, r"alpha must be a floating-point"),
    ("interpolate-empty", lambda b: gk.interpolate(c(0, 3), c(0, 3), backend=b), ValueError, r"real is empty"),
    ("interpolate-empty-sample", lambda b: gk.interpolate(c(2, 0), c(2, 0), backend=b), ValueError, r"real is empty"),
    ("interpolate-0dim", lambda b: gk.interpolate(torch.tensor(1.0), torch.tensor(2.0), backend=b), ValueError, r"real must have a batch dimension"),
    ("interpolate-shapes", lambda b: gk.interpolate(c(2, 3, 4), c(2, 4, 3), backend=b), ValueError, r"\(2, 3, 4\) and \(2, 4, 3\)"),
    ("interpolate-alpha-shape", lambda b: gk.interpolate(c(2, 3), c(2, 3), torch.rand(3), backend=b), ValueError, r"one value per sample"),
    ("interpolate-alpha-str", lambda b: gk.interpolate(c(2, 3), c(2, 3), "half", backend=b), TypeError, r"alpha must be None, a number or a tensor"),
    ("interpolate-backend", lambda b: gk.interpolate(c(2, 3), c(2, 3), backend="tpu"), ValueError, r"unknown backend 'tpu'" + _accepted(["reference"])),
    ("interpolate-nontensor", lambda b: gk.interpolate(c(2, 3), 1.0, backend=b), TypeError, r"fake must be a torch.Tensor"),
    # ------------------------------------------------------------------ grad_penalty
    ("grad_penalty-device-inv_scale", lambda b: gk.grad_penalty(c(2, 3), inv_scale=m(()), backend=b), ValueError, BOTH_DEVICES),
    ("grad_penalty-int", lambda b: gk.grad_penalty(torch.ones(2, 3, dtype=torch.int16), backend=b), TypeError, r"grad must be a floating-point.*int16"),
    ("grad_penalty-empty", lambda b: gk.grad_penalty(c(0, 3), backend=b), ValueError, r"grad is empty"),
    ("grad_penalty-empty-sample", lambda b: gk.grad_penalty(c(3, 0), "r1", backend=b), ValueError, r"grad is empty"),
    ("grad_penalty-0dim", lambda b: gk.grad_penalty(torch.tensor(2.0), backend=b), ValueError, r"grad must have a batch dimension"),
    ("grad_penalty-inv_scale-shape", lambda b: gk.grad_penalty(c(2, 3), inv_scale=torch.ones(2), backend=b), ValueError, r"inv_scale must be a number"),
    ("grad_penalty-inv_scale-str", lambda b: gk.grad_penalty(c(2, 3), inv_scale="1/1024", backend=b), TypeError, r"inv_scale must be a real number"),
    ("grad_penalty-kind", lambda b: gk.grad_penalty(c(2, 3), "gp", backend=b), ValueError, r"grad_penalty kind 'gp'" + _accepted(P_KINDS)),
    ("grad_penalty-reduction", lambda b: gk.grad_penalty(c(2, 3), reduction=None, backend=b), ValueError, r"reduction None" + _accepted(REDS)),
    ("grad_penalty-backend", lambda b: gk.grad_penalty(c(2, 3), backend="auto-ish"), ValueError, r"unknown backend 'auto-ish'"),
    ("grad_penalty-center", lambda b: gk.grad_penalty(c(2, 3), center=True, backend=b), TypeError, r"center must be a real number"),
    ("grad_penalty-weight", lambda b: gk.grad_penalty(c(2, 3), weight="10", backend=b), TypeError, r"weight must be a real number"),
    ("grad_penalty-list", lambda b: gk.grad_penalty([[1.0, 2.0]], backend=b), TypeError, r"grad must be a torch.Tensor"),
    # ------------------------------------------------------------------ gradient_penalty
    ("gradient_penalty-device", lambda b: gk.gradient_penalty(_critic(), c(2, 3), m(2, 3), backend=b), ValueError, BOTH_DEVICES),
    ("gradient_penalty-device-alpha", lambda b: gk.gradient_penalty(_critic(), c(2, 3), c(2, 3), alpha=m(2), backend=b), ValueError, BOTH_DEVICES),
    ("gradient_penalty-int", lambda b: gk.gradient_penalty(_critic(), torch.ones(2, 3, dtype=torch.int64), c(2, 3), backend=b), TypeError, r"real must be a floating-point"),
    ("gradient_penalty-empty", lambda b: gk.gradient_penalty(_critic(), c(0, 3), c(0, 3), backend=b), ValueError, r"real is empty"),
    ("gradient_penalty-0dim", lambda b: gk.gradient_penalty(_critic(), torch.tensor(1.0), c(2, 3), backend=b), ValueError, r"real must have a batch dimension"),
    ("gradient_penalty-shapes", lambda b: gk.gradient_penalty(_critic(), c(2, 3), c(3, 3), backend=b), ValueError, r"\(2, 3\) and \(3, 3\)"),
    ("gradient_penalty-no-fake", lambda b: gk.gradient_penalty(_critic(), c(2, 3), None, backend=b), ValueError, r"needs fake samples"),
    ("gradient_penalty-kind", lambda b: gk.gradient_penalty(_critic(), c(2, 3), c(2, 3), "wgan", backend=b), ValueError, r"grad_penalty kind 'wgan'" + _accepted(P_KINDS)),
    ("gradient_penalty-backend", lambda b: gk.gradient_penalty(_critic(), c(2, 3), c(2, 3), backend="npu"), ValueError, r"unknown backend 'npu'"),
    ("gradient_penalty-critic", lambda b: gk.gradient_penalty("critic", c(2, 3), c(2, 3), backend=b), TypeError, r"critic must be callable"),
    ("gradient_penalty-critic-output", lambda b: gk.gradient_penalty(lambda x: x.sum().item(), c(2, 3), c(2, 3), backend=b), TypeError, r"critic must return a tensor"),
    ("gradient_penalty-weight", lambda b: gk.gradient_penalty(_critic(), c(2, 3), c(2, 3), weight=[10.0], backend=b), TypeError, r"weight must be a real number"),
    # ------------------------------------------------------------------ feature_matching_loss
    ("feature_matching_loss-count", lambda b: gk.feature_matching_loss([c(2, 3)], [c(2, 3), c(2, 3)], backend=b), ValueError, r"1 feature maps but fake_feats has 2"),
    ("feature_matching_loss-shapes", lambda b: gk.feature_matching_loss([c(2, 3), c(2, 8)], [c(2, 3), c(2, 9)], backend=b), ValueError, r"pair 1: real \(2, 8\) vs fake \(2, 9\)"),
    ("feature_matching_loss-item", lambda b: gk.feature_matching_loss([c(2, 3), 1.0], [c(2, 3), c(2, 3)], backend=b), TypeError, r"real_feats\[1\] must be a torch.Tensor"),
    ("feature_matching_loss-empty", lambda b: gk.feature_matching_loss([], [], backend=b), ValueError, r"real_feats is an empty list"),
    ("feature_matching_loss-device", lambda b: gk.feature_matching_loss([c(2, 3)], [m(2, 3)], backend=b), ValueError, BOTH_DEVICES),
    ("feature_matching_loss-int", lambda b: gk.feature_matching_loss([torch.arange(3)], [torch.arange(3)], backend=b), TypeError, r"real_feats\[0\] must be a floating-point tensor.*int64"),
    ("feature_matching_loss-weights", lambda b: gk.feature_matching_loss([c(2, 3)], [c(2, 3)], weight=[1.0, 2.0], backend=b), ValueError, r"2 weights for 1 feature-map pairs"),
    ("feature_matching_loss-reduction", lambda b: gk.feature_matching_loss([c(2, 3)], [c(2, 3)], reduction="avg", backend=b), ValueError, r"reduction 'avg'.*mean"),
    ("FeatureMatchingLoss-weight", lambda b: gk.nn.FeatureMatchingLoss(weight="x", backend=b), TypeError, r"weight must be a real number"),
    # ------------------------------------------------------------------ r1_penalty
    ("r1_penalty-device", lambda b: gk.r1_penalty(*_r1_inputs("meta"), backend=b), ValueError, BOTH_DEVICES),
    ("r1_penalty-int", lambda b: gk.r1_penalty(c(2, 1), torch.arange(3), backend=b), TypeError, r"real must be a floating-point"),
    ("r1_penalty-int-logits", lambda b: gk.r1_penalty(torch.arange(2), c(2, 3), backend=b), TypeError, r"real_logits must be a floating-point"),
    ("r1_penalty-empty", lambda b: gk.r1_penalty(c(0, 1), c(0, 3), backend=b), ValueError, r"real_logits is empty"),
    ("r1_penalty-0dim", lambda b: gk.r1_penalty(torch.tensor(1.0), c(2, 3), backend=b), ValueError, r"real_logits must have a batch dimension"),
    ("r1_penalty-no-grad", lambda b: gk.r1_penalty(c(2, 1), c(2, 3), backend=b), ValueError, r"requires_grad_\(True\)"),
    ("r1_penalty-gamma", lambda b: gk.r1_penalty(*_r1_inputs(), gamma="10", backend=b), TypeError, r"gamma must be a real number"),
    ("r1_penalty-backend", lambda b: gk.r1_penalty(*_r1_inputs(), backend="xla"), ValueError, r"unknown backend 'xla'"),
    ("r1_penalty-nontensor", lambda b: gk.r1_penalty(*_r1_inputs()[:1], [1.0], backend=b), TypeError, r"real must be a torch.Tensor"),
    # ------------------------------------------------------------------ nn modules
    ("DiscriminatorLoss-device", lambda b: gk.nn.DiscriminatorLoss("hinge", backend=b)(c(4), m(4)), ValueError, BOTH_DEVICES),
    ("DiscriminatorLoss-int", lambda b: gk.nn.DiscriminatorLoss(backend=b)(torch.arange(4), c(4)), TypeError, r"real_logits.*int64"),
    ("DiscriminatorLoss-empty", lambda b: gk.nn.DiscriminatorLoss(backend=b)(c(4), c(0)), ValueError, r"fake_logits is empty"),
    ("DiscriminatorLoss-0dim", lambda b: gk.nn.DiscriminatorLoss(backend=b)(torch.tensor(1.0), c(4)), ValueError, r"batch dimension"),
    ("DiscriminatorLoss-shapes", lambda b: gk.nn.DiscriminatorLoss("rpgan", backend=b)(c(4), c(2)), ValueError, r"shapes must match"),
    ("DiscriminatorLoss-kind", lambda b: gk.nn.DiscriminatorLoss("nope", backend=b), ValueError, r"d_loss kind 'nope'" + _accepted(D_KINDS)),
    ("DiscriminatorLoss-reduction", lambda b: gk.nn.DiscriminatorLoss(reduction="mean ", backend=b), ValueError, r"reduction 'mean '" + _accepted(REDS)),
    ("DiscriminatorLoss-backend", lambda b: gk.nn.DiscriminatorLoss(backend="tpu"), ValueError, r"unknown backend 'tpu'"),
    ("DiscriminatorLoss-drift", lambda b: gk.nn.DiscriminatorLoss(drift=None, backend=b), TypeError, r"drift must be a real number"),
    ("DiscriminatorLoss-nontensor", lambda b: gk.nn.DiscriminatorLoss(backend=b)(c(4), 0.5), TypeError, r"fake_logits must be a torch.Tensor"),
    ("GeneratorLoss-device", lambda b: gk.nn.GeneratorLoss("relativistic", backend=b)(m(4), c(4)), ValueError, BOTH_DEVICES),
    ("GeneratorLoss-int", lambda b: gk.nn.GeneratorLoss(backend=b)(torch.arange(4)), TypeError, r"fake_logits.*int64"),
    ("GeneratorLoss-empty", lambda b: gk.nn.GeneratorLoss(backend=b)(c(0)), ValueError, r"fake_logits is empty"),
    ("GeneratorLoss-0dim", lambda b: gk.nn.GeneratorLoss(backend=b)(torch.tensor(1.0)), ValueError, r"batch dimension"),
    ("GeneratorLoss-shapes", lambda b: gk.nn.GeneratorLoss("rpgan", backend=b)(c(4), c(5)), ValueError, r"shapes must match"),
    ("GeneratorLoss-kind", lambda b: gk.nn.GeneratorLoss("gan", backend=b), ValueError, r"g_loss kind 'gan'" + _accepted(G_KINDS)),
    ("GeneratorLoss-reduction", lambda b: gk.nn.GeneratorLoss(reduction="avg", backend=b), ValueError, r"reduction 'avg'" + _accepted(REDS)),
    ("GeneratorLoss-backend", lambda b: gk.nn.GeneratorLoss(backend="c++"), ValueError, r"unknown backend 'c\+\+'"),
    ("GeneratorLoss-nontensor", lambda b: gk.nn.GeneratorLoss(backend=b)("logits"), TypeError, r"fake_logits must be a torch.Tensor"),
    ("GradientPenalty-grad-device", lambda b: gk.nn.GradientPenalty(backend=b)(_critic(), c(2, 3), m(2, 3)), ValueError, BOTH_DEVICES),
    ("GradientPenalty-grad-int", lambda b: gk.nn.GradientPenalty(backend=b)(torch.ones(2, 3, dtype=torch.int64)), TypeError, r"grad must be a floating-point"),
    ("GradientPenalty-grad-empty", lambda b: gk.nn.GradientPenalty(backend=b)(c(0, 3)), ValueError, r"grad is empty"),
    ("GradientPenalty-grad-0dim", lambda b: gk.nn.GradientPenalty(backend=b)(torch.tensor(1.0)), ValueError, r"batch dimension"),
    ("GradientPenalty-grad-extra", lambda b: gk.nn.GradientPenalty(backend=b)(c(2, 3), c(2, 3)), ValueError, r"takes a gradient alone"),
    ("GradientPenalty-shapes", lambda b: gk.nn.GradientPenalty(backend=b)(_critic(), c(2, 3), c(4, 3)), ValueError, r"same shape"),
    ("GradientPenalty-no-real", lambda b: gk.nn.GradientPenalty(backend=b)(_critic()), ValueError, r"real samples are required"),
    ("GradientPenalty-kind", lambda b: gk.nn.GradientPenalty("lp", backend=b), ValueError, r"grad_penalty kind 'lp'" + _accepted(P_KINDS)),
    ("GradientPenalty-weight", lambda b: gk.nn.GradientPenalty(weight="ten", backend=b), TypeError, r"weight must be a real number"),
    ("GradientPenalty-center", lambda b: gk.nn.GradientPenalty(center=None, backend=b), TypeError, r"center must be a real number"),
    ("GradientPenalty-backend", lambda b: gk.nn.GradientPenalty(backend="rocm"), ValueError, r"unknown backend 'rocm'"),
    ("GradientPenalty-critic", lambda b: gk.nn.GradientPenalty(backend=b)(42, c(2, 3), c(2, 3)), TypeError, r"critic must be callable"),
]


def _params():
    params = []
    for case in CASES:
        values, marks = (case.values, case.marks) if hasattr(case, "values") else (case, ())
        for backend in BACKENDS:
            params.append(pytest.param(backend, *values[1:], id=f"{values[0]}-{backend}", marks=marks))
    return params


@pytest.mark.parametrize("backend,call,exc,match", _params())
def test_bad_input_raises_and_names_the_problem(backend, call, exc, match):
    require(backend, "cpu")
    with pytest.raises(exc, match=match):
        call(backend)


def test_every_public_function_has_bad_input_cases():
    covered = {case.values[0] if hasattr(case, "values") else case[0] for case in CASES}
    covered = {name.split("-")[0] for name in covered}
    public = {"d_loss", "g_loss", "interpolate", "grad_penalty", "gradient_penalty", "r1_penalty",
              "feature_matching_loss"} | set(gk.nn.__all__)
    assert public <= covered, sorted(public - covered)


@pytest.mark.parametrize("backend", BACKENDS)
def test_valid_calls_next_to_the_bad_ones_work(backend):
    """The same calls with the device / dtype / shape fixed compute finite values (the cases above
    fail for the reason they name, not because the call itself is broken)."""
    require(backend, "cpu")
    outs = [
        gk.d_loss(c(4), c(4), backend=backend),
        gk.g_loss(c(4), "relativistic", real_logits=c(4), backend=backend),
        gk.interpolate(c(2, 3), c(2, 3), torch.rand(2), backend=backend),
        gk.grad_penalty(c(2, 3), inv_scale=torch.tensor(0.5), backend=backend),
        gk.gradient_penalty(_critic(), c(2, 3), c(2, 3), alpha=torch.rand(2), backend=backend),
        gk.r1_penalty(*_r1_inputs(), backend=backend),
        gk.nn.GradientPenalty(backend=backend)(c(2, 3)),
    ]
    for out in outs:
        assert torch.isfinite(out).all()


# --------------------------------------------------------------------------- raw registered ops
# A wrong-device call to a registered op must raise, not read the other device's tensor as host
# memory. Each case passes one tensor on the meta device and the rest on the CPU.
_OPS = torch.ops.gan_kernels
_XFAIL_RAW = pytest.mark.xfail(strict=True, reason="raw op device check")
# logistic as the loss ops' flat spec: mode, real term/target/coef, fake term/target/coef, drift
_SPEC = (0, 1, 1.0, 1.0, 1, 0.0, 1.0, 0.0)

RAW_CASES = {
    "loss_backward": [
        ("saved_a", lambda: _OPS.loss_backward(c(()), m(4), c(4), torch.float32, torch.float32)),
        ("grad_out", lambda: _OPS.loss_backward(m(()), c(4), c(4), torch.float32, torch.float32)),
    ],
    "interpolate_forward": [
        ("fake", lambda: _OPS.interpolate_forward(c(2, 3), m(2, 3), c(2))),
        ("alpha", lambda: _OPS.interpolate_forward(c(2, 3), c(2, 3), m(2))),
    ],
    "interpolate_backward": [
        ("alpha", lambda: _OPS.interpolate_backward(c(2, 3), m(2), True, True)),
    ],
    "grad_penalty_forward": [
        ("inv_scale_tensor", lambda: _OPS.grad_penalty_forward(c(2, 3), 0, 1.0, 1.0, 1, 1.0, m(()))),
    ],
    "grad_penalty_backward": [
        ("norms", lambda: _OPS.grad_penalty_backward(c(()), c(2, 3), m(2), 0, 1.0, 1.0, 1, 1.0, None)),
        ("grad_out", lambda: _OPS.grad_penalty_backward(m(()), c(2, 3), c(2), 0, 1.0, 1.0, 1, 1.0, None)),
        ("inv_scale_tensor", lambda: _OPS.grad_penalty_backward(c(()), c(2, 3), c(2), 0, 1.0, 1.0, 1, 1.0, m(()))),
    ],
    # the loss device op (the kind as data) and the differentiable ops with a C++ autograd node
    "loss_forward": [
        ("fake", lambda: _OPS.loss_forward(c(4), m(4), *_SPEC, 1, True)),
        ("real", lambda: _OPS.loss_forward(m(4), c(4), *_SPEC, 1, True)),
    ],
    "loss": [
        ("fake", lambda: _OPS.loss(c(4), m(4), *_SPEC, 1)),
        ("real", lambda: _OPS.loss(m(4), c(4), *_SPEC, 1)),
    ],
    "interpolate": [
        ("fake", lambda: _OPS.interpolate(c(2, 3), m(2, 3), c(2))),
        ("alpha", lambda: _OPS.interpolate(c(2, 3), c(2, 3), m(2))),
    ],
    "grad_penalty": [
        ("inv_scale_tensor", lambda: _OPS.grad_penalty(c(2, 3), 0, 1.0, 1.0, 1, 1.0, m(()))),
    ],
}
# Ops that compute on mismatched devices with this build (none: every op checks its devices).
RAW_UNCHECKED: set = set()


def _has_op(name: str) -> bool:
    try:
        getattr(_OPS, name)
        return True
    except (AttributeError, RuntimeError):
        return False


def _raw_params():
    params = []
    for op, cases in RAW_CASES.items():
        if not _has_op(op):
            continue  # not in this build's schema set
        for which, call in cases:
            marks = [_XFAIL_RAW] if op in RAW_UNCHECKED else []
            params.append(pytest.param(call, id=f"{op}-{which}-on-meta", marks=marks))
    return params


def test_raw_ops_are_registered():
    """Some op of the table exists (else the raw-op checks would silently collect nothing)."""
    if "cpu" not in gk.available_backends():
        pytest.skip("gan_kernels._C is not loaded")
    assert _raw_params(), "none of the raw ops of RAW_CASES is registered"


@pytest.mark.parametrize("call", _raw_params())
def test_raw_op_rejects_mixed_devices(call):
    with pytest.raises((RuntimeError, ValueError), match=r"(?i)device|cpu|meta"):
        call()
