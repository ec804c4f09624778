"""Host time of the Triton back end's calls, measured on a machine without a GPU.

    env -u TRITON_INTERPRET python bench/triton_host_overhead.py [--calls 2000] [--repeats 7]

A small op on a GPU costs its host time: Python, the dispatcher, autograd, Triton's launcher.
This script measures that time without a GPU. It installs ``bench/triton_compile_check.py``'s
stand-in driver (an sm_90 target, so the kernels compile for real, with the GPU launch
configurations) and replaces the final C launch (``cuLaunchKernel`` and its argument packing, a
few microseconds on a real machine) by a Python no-op; everything before it runs as it would on
the GPU. Rows, per call, medians of ``--repeats`` rounds that interleave the variants:

* ``dispatcher``: ``torch.ops.gan_kernels_triton.<op>``, the registered custom op;
* ``direct``: what the autograd Functions call in eager mode (``gan_kernels.triton.OPS``), which
  runs the op's implementation without the Python custom-op dispatch (see ``_plain_eager``);
* ``launch only``: the op's Triton launch(es) alone, the floor of the Python side;
* ``... fwd+bwd``: the back end's autograd Function and ``torch.autograd.grad``, as a training
  step calls them, once over the registered ops (``dispatcher``), once as shipped (``direct``).

Times are this machine's CPU; the ratios carry over to a GPU host roughly, not exactly.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

if os.environ.get("TRITON_INTERPRET") == "1":
    raise SystemExit("run with TRITON_INTERPRET unset: env -u TRITON_INTERPRET python bench/triton_host_overhead.py")

import torch  # noqa: E402
from triton.compiler.compiler import CompiledKernel  # noqa: E402

import triton_compile_check as _compile_check  # noqa: E402  (bench/, beside this script)


def _install() -> list:
    """Stand-in driver, kernels compiled for real, the final C launch replaced by a counter."""
    _compile_check.install_driver()
    launches = [0]

    def no_launch(*args):
        launches[0] += 1

    def init_handles(self):  # normally loads the cubin and builds the C launcher
        self.module, self._run = "stand-in", no_launch

    CompiledKernel._init_handles = init_handles
    return launches


def _time(fn, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    launches = _install()
    import gan_kernels.triton as gt
    from gan_kernels import _autograd, _kinds, reference
    from gan_kernels.triton import _utils, grad_penalty, losses

    raw = gt.REGISTERED_OPS
    r = torch.randn(256, requires_grad=True)
    f = torch.randn(256, requires_grad=True)
    rd, fd = r.detach(), f.detach()
    g = (torch.randn(64, 3, 64, 64) / 110).requires_grad_()
    gd = g.detach()
    one = torch.ones(())
    _, norms = gt.OPS.grad_penalty_forward(gd, 0, 1.0, 10.0, 1, 1.0, None)
    spec = _kinds.d_loss_args("logistic", 1.0, 0.0, 0.0, 1.0)
    mean = _kinds.REDUCTIONS["mean"]
    lf, gr, gf = gt.OPS.loss_forward(rd, fd, *spec, mean, True)
    # The same Functions over the registered ops themselves: what every call paid before the direct path.
    via_ops = _autograd.make_functions(raw, "via_ops")

    _, consts, flags = losses._launch_args(_kinds.d_loss_spec("logistic", 1.0, 0.0, 0.0, 1.0), True, mean, True,
                                           torch.float32)
    block, warps = _utils.loss_config(256, rd.device)

    def loss_launch():
        losses._loss_fwd_kernel[(1,)](rd, fd, lf, gr, gf, 256, 256, 256, 256, *consts, **flags,
                                      BLOCK=block, num_warps=warps)

    out = torch.empty_like(gd)
    rows_gp, block_d, warps_gp = _utils.tile_config(64, 3 * 64 * 64, gd.device)
    n_col = _utils.cdiv(3 * 64 * 64, block_d)
    scalars, acc = grad_penalty._scalars(1.0, 10.0, 1.0), _utils.tl_acc(gd.dtype)

    def gp_bwd_launch():  # like loss_launch: the configuration is worked out once, outside the timing
        grad_penalty._gp_bwd_kernel[(_utils.cdiv(64, rows_gp) * n_col,)](
            one, gd, norms, out, norms, 64, 3 * 64 * 64, n_col, 0, *scalars,
            KIND=0, REDUCTION=1, HAS_IST=False, ACC=acc, ROWS=rows_gp, BLOCK_D=block_d,
            num_warps=warps_gp)

    def d_formula(a, b):  # what a second-order backward would differentiate (never runs here)
        return reference.d_loss(a, b, "logistic")

    def d_api(fns):
        return lambda: torch.autograd.grad(fns.Loss.apply(r, f, spec, mean, True, d_formula), (r, f))

    def gp_api(fns):
        return lambda: torch.autograd.grad(fns.GradPenalty.apply(g, "wgan-gp", 1.0, 10.0, "mean", 1.0, None), g)

    rows = {
        "loss_forward logistic B=256": {
            "dispatcher": lambda: raw.loss_forward(rd, fd, *spec, mean, True),
            "direct": lambda: gt.OPS.loss_forward(rd, fd, *spec, mean, True),
            "launch only": loss_launch,
        },
        "loss_backward B=256": {
            "dispatcher": lambda: raw.loss_backward(one, gr, gf, torch.float32, torch.float32),
            "direct": lambda: gt.OPS.loss_backward(one, gr, gf, torch.float32, torch.float32),
        },
        "grad_penalty_forward 64x3x64x64": {
            "dispatcher": lambda: raw.grad_penalty_forward(gd, 0, 1.0, 10.0, 1, 1.0, None),
            "direct": lambda: gt.OPS.grad_penalty_forward(gd, 0, 1.0, 10.0, 1, 1.0, None),
        },
        "grad_penalty_backward 64x3x64x64": {
            "dispatcher": lambda: raw.grad_penalty_backward(one, gd, norms, 0, 1.0, 10.0, 1, 1.0, None),
            "direct": lambda: gt.OPS.grad_penalty_backward(one, gd, norms, 0, 1.0, 10.0, 1, 1.0, None),
            "launch only": gp_bwd_launch,
        },
        "d_loss logistic B=256 fwd+bwd": {"dispatcher": d_api(via_ops), "direct": d_api(gt.FUNCTIONS)},
        "grad_penalty wgan-gp 64x3x64x64 fwd+bwd": {"dispatcher": gp_api(via_ops), "direct": gp_api(gt.FUNCTIONS)},
    }
    for variants in rows.values():  # compile every variant, warm the caches
        for fn in variants.values():
            for _ in range(20):
                fn()
    times = {(op, v): [] for op, variants in rows.items() for v in variants}
    counts = {}
    for _ in range(args.repeats):
        for op, variants in rows.items():
            for v, fn in variants.items():
                launches[0] = 0
                times[(op, v)].append(_time(fn, args.calls))
                counts[(op, v)] = launches[0] / args.calls
    print(f"Triton host time per call, us (median of {args.repeats} x {args.calls} calls; C launch not included), "
          f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    print(f"{'call':<40} {'variant':<12} {'us':>7} {'launches':>9}")
    for (op, v), ts in times.items():
        print(f"{op:<40} {v:<12} {statistics.median(ts):7.1f} {counts[(op, v)]:9.0f}")


if __name__ == "__main__":
    main()
