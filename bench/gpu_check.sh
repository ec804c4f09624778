#!/usr/bin/env bash
# The whole GPU check in one run, for a machine with a CUDA GPU (e.g. the lent H100/H200):
# build in place, the CUDA back end's GPU tests, the speed targets (`bench/targets.py`),
# compute-sanitizer on every kernel, the Triton back end's GPU tests (in SHARDS parallel pytest
# processes, so Triton's JIT compiles use every core), the other GPU-marked tests, then the
# benchmarks.
# The steps share one time budget, BUDGET seconds (default 540), most important first, so a
# short device lease still yields the build and the correctness tests.
# Results land in $OUT (default ./out): logs/summary.txt, logs/{build,tests,sanitize,bench,host_profile}.log
# and bench.tar.gz (the benchmark JSON/CSV/table/plots) -- few files, as a lent machine returns few.
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
SHARDS=${SHARDS:-8}
START=$(date +%s)
BENCH_DIR=$(mktemp -d)
SHARD_DIR=$(mktemp -d)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
step() { echo "== $(date +%T) (+$(( $(date +%s) - START ))s) $*" | tee -a "$L/summary.txt"; }
finish() {
  step "done"
  if [ -n "$(ls -A "$BENCH_DIR" 2>/dev/null)" ]; then tar czf "$OUT/bench.tar.gz" -C "$BENCH_DIR" .; fi
  exit "${1:-0}"
}
run_tests() {  # run_tests <pytest selection...>: GPU-marked tests only, appended to tests.log
  local sel="$*"
  if [ "$(left)" -le 20 ]; then step "out of time before: pytest $sel"; return; fi
  step "pytest $sel"
  echo "######## pytest $sel" >> "$L/tests.log"
  timeout "$(left)" $PY -m pytest -q -ra -m gpu -p no:cacheprovider "$@" >> "$L/tests.log" 2>&1
  echo "exit code $?" >> "$L/summary.txt"
  tail -4 "$L/tests.log" >> "$L/summary.txt"
}
run_sharded() {  # run_sharded <pytest selection...>: like run_tests, in $SHARDS processes side by side
  local sel="$*" i pids=()
  if [ "$(left)" -le 20 ]; then step "out of time before: pytest $sel"; return; fi
  step "pytest $sel ($SHARDS shards in parallel)"
  local T
  T=$(left)
  for ((i = 0; i < SHARDS; i++)); do
    timeout "$T" $PY -m pytest -q -ra -m gpu -p no:cacheprovider --shard "$i/$SHARDS" "$@" > "$SHARD_DIR/shard$i.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}"
    echo "shard $i/$SHARDS exit code $? -- $(tail -1 "$SHARD_DIR/shard$i.log")" >> "$L/summary.txt"
    { echo "######## shard $i/$SHARDS: pytest $sel"; cat "$SHARD_DIR/shard$i.log"; } >> "$L/tests.log"
    rm -f "$SHARD_DIR/shard$i.log"
  done
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

# The contract suites name each test's back end and device in its id ("cuda-cuda", "triton-cuda").
CONTRACT="tests/test_device_ops.py tests/test_cuda_graphs.py tests/test_backends.py"
# shellcheck disable=SC2086
run_tests $CONTRACT -k cuda-cuda
run_tests tests/test_multi_cuda.py

if [ "$(left)" -gt 60 ]; then
  step "speed targets (bench/targets.py)"
  T=$(left); [ "$T" -gt 240 ] && T=240
  timeout "$T" $PY bench/targets.py --device cuda --no-compile --out "$BENCH_DIR/targets" > "$L/bench.log" 2>&1
  echo "bench/targets.py exit code $?" >> "$L/summary.txt"
  sed -n '/### Speed targets/,$p' "$L/bench.log" >> "$L/summary.txt"
fi

if [ "$(left)" -gt 60 ]; then
  step "host profile (where a small call's wall-clock goes, per back end)"
  timeout 60 $PY bench/host_profile.py > "$L/host_profile.log" 2>&1
  echo "host_profile exit code $?" >> "$L/summary.txt"
  grep "^===" "$L/host_profile.log" >> "$L/summary.txt"
fi

if [ "$(left)" -gt 30 ] && command -v compute-sanitizer >/dev/null 2>&1; then
  step "compute-sanitizer memcheck"
  T=$(left); [ "$T" -gt 90 ] && T=90
  timeout "$T" compute-sanitizer --tool memcheck --error-exitcode 3 $PY bench/sanitize.py > "$L/sanitize.log" 2>&1
  echo "compute-sanitizer exit code $?" >> "$L/summary.txt"
  tail -3 "$L/sanitize.log" >> "$L/summary.txt"
fi

# shellcheck disable=SC2086
run_sharded $CONTRACT -k triton-cuda
run_tests tests --ignore=tests/test_backends.py --ignore=tests/test_device_ops.py --ignore=tests/test_cuda_graphs.py \
  --ignore=tests/test_multi_cuda.py

if [ "$(left)" -gt 150 ]; then
  step "Triton loss launch configurations (bench/triton_tune.py --only losses)"
  echo "######## bench/triton_tune.py --only losses" >> "$L/bench.log"
  timeout 90 $PY bench/triton_tune.py --only losses >> "$L/bench.log" 2>&1
  echo "tune exit code $?" >> "$L/summary.txt"
fi

if [ "$(left)" -gt 60 ]; then
  step "benchmarks (${BENCH_ARGS:---quick})"
  # shellcheck disable=SC2086
  timeout "$(left)" $PY -m gan_kernels bench --device cuda --out "$BENCH_DIR/sweep" ${BENCH_ARGS:---quick} >> "$L/bench.log" 2>&1
  echo "bench exit code $?" >> "$L/summary.txt"
  tail -40 "$L/bench.log" >> "$L/summary.txt"
else
  step "no time left for the benchmarks"
fi
finish 0
