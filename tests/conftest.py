"""Shared pytest setup: the Triton interpreter on CPU-only machines, the gpu marker, fresh seeds."""

import os
import zlib

import torch

# Triton reads TRITON_INTERPRET when it is imported (gan_kernels imports it): set it first, and only
# where there is no GPU, so a GPU machine runs the compiled Triton kernels.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

import gan_kernels  # noqa: E402,F401


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run bench/gpu_check.sh on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed(request):
    # A different but reproducible seed per test: fresh random data without flaky reruns.
    torch.manual_seed(zlib.crc32(request.node.nodeid.encode()))
    yield
