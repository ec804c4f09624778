#!/usr/bin/env bash
# The whole GPU check in one run, for a machine with a CUDA GPU (e.g. the lent H100/H200):
# build in place, compute-sanitizer on every kernel, every GPU-marked test, the benchmarks.
# Everything lands in $OUT (default ./out): logs, the benchmark JSON/CSV/plots, a summary.
# The steps share one time budget, BUDGET seconds (default 540), most important first, so a
# short device lease still yields the build, the sanitizer and the correctness tests.
# Usage: OUT=/some/dir BUDGET=300 bash bench/gpu_check.sh   (needs torch with CUDA, triton, pytest, ninja)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT/logs"
L=$OUT/logs
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export MAX_JOBS=${MAX_JOBS:-16}
if [ -z "${CUDA_HOME:-}" ] && [ -d /usr/local/cuda ]; then export CUDA_HOME=/usr/local/cuda; fi
PY=${PYTHON:-python3}
BUDGET=${BUDGET:-540}
START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
step() { echo "== $(date +%T) (+$(( $(date +%s) - START ))s) $*" | tee -a "$L/summary.txt"; }
finish() {
  step "done"
  tar czf "$OUT/results.tar.gz" -C "$OUT" logs $( [ -d "$OUT/bench" ] && echo bench ) 2>/dev/null
  cp "$L/summary.txt" "$OUT/summary.txt"
  exit "${1:-0}"
}

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$L/summary.txt" 2>&1
$PY -c "import torch, triton, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())" >> "$L/summary.txt" 2>&1

step "build (GAN_KERNELS_CUDA=1, arch $TORCH_CUDA_ARCH_LIST)"
if ! GAN_KERNELS_CUDA=1 timeout "$(left)" $PY setup.py build_ext --inplace > "$L/build.log" 2>&1; then
  tail -40 "$L/build.log" >> "$L/summary.txt"
  step "BUILD FAILED"
  finish 1
fi
$PY -c "import gan_kernels as gk; print('available back ends:', gk.available_backends())" >> "$L/summary.txt" 2>&1

step "compute-sanitizer memcheck"
if command -v compute-sanitizer >/dev/null 2>&1 && [ -f bench/sanitize.py ]; then
  timeout "$(( $(left) < 90 ? $(left) : 90 ))" compute-sanitizer --tool memcheck --error-exitcode 3 $PY bench/sanitize.py > "$L/sanitize.log" 2>&1
  echo "compute-sanitizer exit code $?" >> "$L/summary.txt"
  tail -3 "$L/sanitize.log" >> "$L/summary.txt"
else
  echo "compute-sanitizer or bench/sanitize.py not found: skipped" >> "$L/summary.txt"
fi

# CUDA back end first (the default), then Triton, then the rest of the GPU-marked tests.
for sel in "tests/test_cuda_build.py tests/test_backends.py -k cuda-cuda" "tests/test_triton_ops.py" \
           "tests/test_backends.py -k triton-cuda" "tests --ignore=tests/test_backends.py --ignore=tests/test_triton_ops.py --ignore=tests/test_cuda_build.py"; do
  [ "$(left)" -gt 20 ] || { step "out of time before: $sel"; continue; }
  step "pytest $sel"
  name=$(echo "$sel" | tr -c 'a-z0-9' '_' | cut -c1-40)
  # shellcheck disable=SC2086
  timeout "$(left)" $PY -m pytest -q -ra -m gpu -p no:cacheprovider $sel > "$L/t_$name.log" 2>&1
  echo "exit code $?" >> "$L/summary.txt"
  tail -4 "$L/t_$name.log" >> "$L/summary.txt"
done

if [ "$(left)" -gt 60 ]; then
  step "benchmarks (${BENCH_ARGS:---quick})"
  timeout "$(left)" $PY -m gan_kernels bench --device cuda --out "$OUT/bench" ${BENCH_ARGS:---quick} > "$L/bench.log" 2>&1
  echo "bench exit code $?" >> "$L/summary.txt"
  tail -40 "$L/bench.log" >> "$L/summary.txt"
else
  step "no time left for the benchmarks"
fi
finish 0
