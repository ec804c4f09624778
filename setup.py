"""Build gan_kernels and its compiled operator library gan_kernels._C.

Environment switches (also in the README):

* ``GAN_KERNELS_CUDA=auto|1|0`` -- ``auto`` (default) compiles the CUDA kernels when torch is a
  CUDA build and nvcc is found (no GPU is needed to compile); ``1`` requires them (a missing nvcc
  is an error); ``0`` builds the C++ CPU kernels only.
* ``GAN_KERNELS_NO_EXT=1`` -- build no extension at all (pure Python: reference and Triton).
* ``TORCH_CUDA_ARCH_LIST`` -- GPU architectures, e.g. ``9.0``; default: torch's own choice.
* ``MAX_JOBS`` -- parallel compile jobs (ninja).
* ``CUDA_HOME`` -- the CUDA toolkit; when unset and ``/usr/local/cuda`` exists, that is used.
"""

from __future__ import annotations

import glob
import os
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _env_flag(name: str, default: str) -> str:
    value = os.environ.get(name, default).strip().lower()
    if value not in ("auto", "0", "1"):
        sys.exit(f"{name} must be auto, 0 or 1, got {value!r}")
    return value


def _extensions():
    if os.environ.get("GAN_KERNELS_NO_EXT", "0") == "1":
        return [], {}
    if not os.environ.get("CUDA_HOME") and os.path.isdir("/usr/local/cuda"):
        # nvcc may sit in /usr/local/bin, from which torch would guess /usr/local as CUDA_HOME
        # and then fail to find libcudart; the toolkit's own folder is the right one.
        os.environ["CUDA_HOME"] = "/usr/local/cuda"

    import torch
    from torch.utils import cpp_extension as ext

    want_cuda = _env_flag("GAN_KERNELS_CUDA", "auto")
    has_nvcc = ext.CUDA_HOME is not None and os.path.exists(os.path.join(ext.CUDA_HOME, "bin", "nvcc"))
    cuda_torch = torch.version.cuda is not None
    if want_cuda == "1" and not (has_nvcc and cuda_torch):
        sys.exit(
            "GAN_KERNELS_CUDA=1 but the CUDA part cannot be built: "
            + ("torch is not a CUDA build" if not cuda_torch else "nvcc not found (set CUDA_HOME)")
        )
    use_cuda = want_cuda != "0" and has_nvcc and cuda_torch

    sources = [os.path.join("csrc", "gan_kernels.cpp")] + sorted(
        glob.glob(os.path.join("csrc", "autograd", "*.cpp")) + glob.glob(os.path.join("csrc", "cpu", "*.cpp"))
    )
    include_dirs = [os.path.join(ROOT, "csrc", "include")]
    cxx = ["-O3", "-fopenmp"]  # the C++ standard is left to torch (C++17 up to 2.12, C++20 after)
    extra = {"cxx": cxx}
    define_macros = []
    if use_cuda:
        sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
        # torch's ATen/cuda headers include cusparse.h etc., shipped in the nvidia pip wheels.
        for site in sys.path:
            for cand in glob.glob(os.path.join(site, "nvidia", "cu*", "include")):
                include_dirs.append(cand)
        extra["nvcc"] = ["-O3", "-lineinfo"]
        define_macros.append(("GAN_KERNELS_WITH_CUDA", "1"))
        cls = ext.CUDAExtension
    else:
        cls = ext.CppExtension
    module = cls(
        name="gan_kernels._C",
        sources=sources,
        include_dirs=include_dirs,
        define_macros=define_macros,
        extra_compile_args=extra,
        extra_link_args=["-fopenmp"],
    )
    print(f"gan_kernels: building _C with {'CUDA + CPU' if use_cuda else 'CPU only'} kernels")
    return [module], {"build_ext": ext.BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = _extensions()

setup(
    name="gan_kernels",
    version="0.1.0",
    description="Fused Triton / CUDA / C++ kernels for GAN losses and gradient penalties",
    packages=find_packages(include=["gan_kernels", "gan_kernels.*"]),
    python_requires=">=3.9",
    install_requires=["torch>=2.6", "packaging"],
    extras_require={
        "triton": ["triton>=3.2"],
        "bench": ["matplotlib", "tqdm", "pytest-benchmark"],
        "test": ["pytest", "pytest-benchmark", "numpy"],
    },
    entry_points={"console_scripts": ["gan-kernels=gan_kernels.__main__:main"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    zip_safe=False,
)
