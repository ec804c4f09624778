#!/usr/bin/env bash
# Create .venv (if missing), install the pinned dev dependencies and build gan_kernels in place.
# Used by scripts/run_tests.sh, scripts/run_main.sh and .ci/run. Idempotent: a second run only
# rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if "$PY" -c "import torch" 2>/dev/null; then
    # This Python already has torch (e.g. a GPU machine's own CUDA build): build against it
    # instead of downloading another one.
    echo "== creating .venv on top of $("$PY" -c 'import torch; print("torch", torch.__version__)')"
    "$PY" -m venv --system-site-packages .venv
  else
    echo "== creating .venv"
    "$PY" -m venv .venv
  fi
fi
# torch is pinned for development and CI (this machine's wheel cache has 2.14.1, a CUDA 13.0
# build); the package itself asks for torch>=2.11, the oldest version its tests run on.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "== installing torch==${GAN_KERNELS_TORCH:-2.14.1} and the test tools"
  .venv/bin/pip install -q "torch==${GAN_KERNELS_TORCH:-2.14.1}"
fi
# Only what is missing (a machine without network but with these preinstalled still works).
.venv/bin/python - <<'PY' || .venv/bin/pip install -q pytest pytest-benchmark numpy ninja matplotlib tqdm setuptools wheel
import importlib.util, sys
need = ["pytest", "pytest_benchmark", "numpy", "ninja", "matplotlib", "tqdm", "setuptools", "wheel"]
sys.exit(1 if [m for m in need if importlib.util.find_spec(m) is None] else 0)
PY

source scripts/build_env.sh
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
# The build is keyed by a hash of everything it compiles plus the switches that change it: a second
# run (tests, then the main job) skips the several-minute CUDA compile when nothing changed.
KEY=$( { find csrc -type f -print0 | sort -z | xargs -0 sha256sum; sha256sum setup.py;
         env | grep -E '^(GAN_KERNELS_CUDA|GAN_KERNELS_NO_EXT|TORCH_CUDA_ARCH_LIST|CUDA_HOME)=' | sort; } | sha256sum | cut -c1-16)
if [ "$(cat .venv/.gan_kernels_build 2>/dev/null)" = "$KEY" ] && .venv/bin/python -c "import gan_kernels._C" 2>/dev/null; then
  echo "== gan_kernels already built from these sources ($KEY)"
else
  echo "== building gan_kernels (CUDA_HOME=${CUDA_HOME:-unset}, TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-default})"
  # Compile in place with the objects kept under build/, where the wheel and the regular install of
  # scripts/check_install.sh find them up to date (they only link): one compile per source change.
  # The editable install then only registers the package (gan_kernels._C is already in place).
  # The compiler's output goes to a log, shown only when the build fails.
  if ! .venv/bin/python setup.py -q build_ext --inplace > .venv/build.log 2>&1; then
    tail -n 60 .venv/build.log; echo "== the build failed; full log: .venv/build.log"; exit 1
  fi
  grep '^gan_kernels:' .venv/build.log || true
  GAN_KERNELS_NO_EXT=1 .venv/bin/pip install -q --no-build-isolation --no-deps -e .
  echo "$KEY" > .venv/.gan_kernels_build
fi
.venv/bin/python -c "import gan_kernels as gk; print('gan_kernels back ends available here:', gk.available_backends())"
