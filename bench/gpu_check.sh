#!/usr/bin/env bash
# The whole GPU check in one run, for a machine with a CUDA GPU (e.g. the lent H100/H200):
# build in place, run every GPU-marked test, compute-sanitizer on each kernel, the benchmarks.
# Everything lands in $OUT (default ./out): logs, the benchmark JSON/CSV/plots, a summary.
# Usage: OUT=/some/dir bash bench/gpu_check.sh   (needs torch with CUDA, triton, pytest, ninja)
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
T_TESTS=${T_TESTS:-240}
T_BENCH=${T_BENCH:-200}

step() { echo "== $(date +%T) $*" | tee -a "$L/summary.txt"; }

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv >> "$L/summary.txt" 2>&1
$PY -c "import torch, triton, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())" >> "$L/summary.txt" 2>&1

step "build (GAN_KERNELS_CUDA=1, arch $TORCH_CUDA_ARCH_LIST)"
start=$(date +%s)
if ! GAN_KERNELS_CUDA=1 $PY setup.py build_ext --inplace > "$L/build.log" 2>&1; then
  tail -40 "$L/build.log" | tee -a "$L/summary.txt"
  step "BUILD FAILED"
  exit 1
fi
echo "build took $(( $(date +%s) - start )) s" >> "$L/summary.txt"
$PY -c "import gan_kernels as gk; print('available back ends:', gk.available_backends())" >> "$L/summary.txt" 2>&1

step "GPU-marked tests (timeout ${T_TESTS}s)"
timeout "$T_TESTS" $PY -m pytest -q -ra -m gpu -p no:cacheprovider tests > "$L/tests.log" 2>&1
echo "pytest exit code $?" >> "$L/summary.txt"
tail -25 "$L/tests.log" >> "$L/summary.txt"

step "compute-sanitizer memcheck"
if command -v compute-sanitizer >/dev/null 2>&1 && [ -f bench/sanitize.py ]; then
  timeout 120 compute-sanitizer --tool memcheck --error-exitcode 3 $PY bench/sanitize.py > "$L/sanitize.log" 2>&1
  echo "compute-sanitizer exit code $?" >> "$L/summary.txt"
  tail -5 "$L/sanitize.log" >> "$L/summary.txt"
else
  echo "compute-sanitizer or bench/sanitize.py not found: skipped" >> "$L/summary.txt"
fi

step "benchmarks (timeout ${T_BENCH}s)"
timeout "$T_BENCH" $PY -m gan_kernels bench --device cuda --out "$OUT/bench" ${BENCH_ARGS:-} > "$L/bench.log" 2>&1
echo "bench exit code $?" >> "$L/summary.txt"
step "done"
tar czf "$OUT/results.tar.gz" -C "$OUT" logs bench 2>/dev/null
cp "$L/summary.txt" "$OUT/summary.txt"
