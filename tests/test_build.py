"""Facts of the compiled extension that hold without a GPU: registered kernels and the machine code.

When gan_kernels._C was compiled with nvcc (it then links libcudart), every device op must have a
CUDA kernel next to its CPU kernel and every public op a kernel for CUDA tensors, and the sm_90
machine code must keep its registers (no spills) and move the large tensors in 16-byte vectors.
A CPU-only build skips these with the reason. What the kernels compute: tests/test_device_ops.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import torch

import gan_kernels as gk
from gan_kernels import _cpp


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
needs_ext = pytest.mark.skipif(_cpp.LOAD_ERROR is not None, reason=f"gan_kernels._C did not load: {_cpp.LOAD_ERROR}")


def _computed_kernel(op: str, key: str) -> bool:
    """Whether a call with ``key`` finds a kernel (directly registered, or through an alias key)."""
    return torch._C._dispatch_has_computed_kernel_for_dispatch_key(f"gan_kernels::{op}", key)


@needs_ext
@pytest.mark.parametrize("op", _cpp.DEVICE_OPS)
def test_every_device_op_has_a_cpu_kernel(op):
    assert _cpp.has_kernel(op, "CPU"), f"gan_kernels::{op} has no CPU kernel"


@needs_ext
@pytest.mark.parametrize("op", _cpp.PUBLIC_OPS)
def test_every_public_op_has_autograd_and_plain_kernels(op):
    """The public ops run through their C++ autograd kernel, and without autograd on any device."""
    for key in ("AutogradCPU", "AutogradCUDA", "CPU", "CUDA"):
        assert _computed_kernel(op, key), f"gan_kernels::{op} has no kernel for {key}"


@needs_build
@pytest.mark.parametrize("op", _cpp.DEVICE_OPS)
def test_every_device_op_has_a_cuda_kernel(op):
    assert _cpp.has_kernel(op, "CUDA"), f"gan_kernels::{op} has no CUDA kernel although _C links libcudart"


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
