"""Build gan_kernels and its compiled operator library gan_kernels._C.

Environment switches (also in the README):

* ``GAN_KERNELS_CUDA=auto|1|0`` -- ``auto`` (default) compiles the CUDA kernels when torch is a
  CUDA build and nvcc is found (no GPU is needed to compile); ``1`` requires them (a missing nvcc
  is an error); ``0`` builds the C++ CPU kernels only.
* ``GAN_KERNELS_NO_EXT=1`` -- build no extension at all (pure Python: reference and Triton).
* ``TORCH_CUDA_ARCH_LIST`` -- GPU architectures, e.g. ``9.0``. Default: the visible GPUs' when there
  are any (torch's own choice); with none visible, every architecture the installed torch was built
  for (:func:`default_cuda_arch_list`), so a wheel built on a login node or CI runner runs on any
  GPU that torch itself runs on.
* ``MAX_JOBS`` -- parallel compile jobs (ninja).
* ``CUDA_HOME`` -- the CUDA toolkit; when unset and ``/usr/local/cuda`` exists, that is used.
"""

from __future__ import annotations

import glob
import os
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


# The oldest torch and triton the tests run on: torch 2.14 in CI, torch 2.11 with triton 3.6 on the
# GPU check (README, "Supported versions"). numpy is what the Triton back end splits float64
# scalars with; torch's CUDA builds bring triton but not numpy, so numpy is required.
# tests/test_install.py checks that these match the package's imports.
INSTALL_REQUIRES = ["torch>=2.11", "numpy"]
EXTRAS_REQUIRE = {
    "triton": ["triton>=3.6"],
    "bench": ["matplotlib", "tqdm", "pytest-benchmark"],  # plots, progress bars, the bench/ suites
    "test": ["pytest"],
}


def _env_flag(name: str, default: str) -> str:
    value = os.environ.get(name, default).strip().lower()
    if value not in ("auto", "0", "1"):
        sys.exit(f"{name} must be auto, 0 or 1, got {value!r}")
    return value


# Only used if torch lists no architectures (its CUDA builds always list some): Ampere and Hopper,
# plus PTX that the driver compiles for anything newer.
FALLBACK_CUDA_ARCHS = "8.0;9.0+PTX"


def _arch_number(name: str):
    """'sm_90' -> '9.0', 'sm_120' -> '12.0'; None for anything else (compute_*, sm_90a, ...)."""
    if not name.startswith("sm_") or not name[3:].isdigit():
        return None
    sm = int(name[3:])
    return f"{sm // 10}.{sm % 10}"


def default_cuda_arch_list(env, visible_gpus: int, torch_arch_list):
    """The TORCH_CUDA_ARCH_LIST to build with when the user set none, or None to leave it to torch.

    With a visible GPU torch compiles for that card. Without one, torch's own default fails
    (``_get_cuda_arch_flags`` indexes an empty list), which is exactly the machine wheels are
    built on: there, build for every architecture the installed torch ships kernels for
    (``torch.cuda.get_arch_list()``), PTX on the newest, so the extension runs wherever torch does.
    """
    if env.get("TORCH_CUDA_ARCH_LIST", "").strip() or visible_gpus > 0:
        return None
    numbers = {a for a in map(_arch_number, torch_arch_list) if a}
    archs = sorted(numbers, key=lambda a: tuple(int(p) for p in a.split(".")))
    if not archs:
        return FALLBACK_CUDA_ARCHS
    return ";".join(archs[:-1] + [archs[-1] + "+PTX"])


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
        archs = default_cuda_arch_list(os.environ, torch.cuda.device_count(), torch.cuda.get_arch_list())
        if archs is not None:
            os.environ["TORCH_CUDA_ARCH_LIST"] = archs
            print(
                f"gan_kernels: no GPU visible and TORCH_CUDA_ARCH_LIST unset: compiling for torch's own "
                f"architectures {archs} (set TORCH_CUDA_ARCH_LIST=9.0, say, for a faster build)"
            )
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


def main():
    ext_modules, cmdclass = _extensions()
    setup(
        name="gan_kernels",
        version="0.1.0",
        description="Fused Triton / CUDA / C++ kernels for GAN losses and gradient penalties",
        packages=find_packages(include=["gan_kernels", "gan_kernels.*"]),
        python_requires=">=3.9",
        install_requires=INSTALL_REQUIRES,
        extras_require=EXTRAS_REQUIRE,
        entry_points={"console_scripts": ["gan-kernels=gan_kernels.__main__:main"]},
        ext_modules=ext_modules,
        cmdclass=cmdclass,
        zip_safe=False,
    )


if __name__ == "__main__":  # also how pip's build backend runs this file
    main()
