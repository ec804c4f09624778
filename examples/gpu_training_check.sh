#!/usr/bin/env bash
# The training examples on a CUDA GPU, in one short run (about 2-3 minutes on an H100/H200 once the
# extension is built): CUDA-graph capture of a critic step per back end, the 8-Gaussians toy with
# every back end from one seed (per-step loss differences, step times), the DCGAN critic step time.
# Usage: OUT=/some/dir bash examples/gpu_training_check.sh    (builds gan_kernels._C if needed)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
LOG=$OUT/training_check.txt
WORK=$(mktemp -d)   # per-run outputs; only the summaries are copied to $OUT (few files come back)
export GAN_KERNELS_STRICT=1   # a missing back end is an error, not a silent reference run
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-16}
if [ -z "${CUDA_HOME:-}" ] && [ -d /usr/local/cuda ]; then export CUDA_HOME=/usr/local/cuda; fi
PY=${PYTHON:-python3}
say() { echo "== $(date +%T) $*" | tee -a "$LOG"; }

say "device"
$PY -c "import torch, triton; print(torch.cuda.get_device_name(), 'torch', torch.__version__, 'triton', triton.__version__)" >> "$LOG" 2>&1
if ! $PY -c "import gan_kernels as gk, sys; sys.exit('cuda' not in gk.available_backends())" 2>/dev/null; then
  say "build"
  GAN_KERNELS_CUDA=1 $PY setup.py build_ext --inplace > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log" >> "$LOG"; say "BUILD FAILED"; }
fi
$PY -c "import gan_kernels as gk; print('back ends:', gk.available_backends())" >> "$LOG" 2>&1

say "CUDA graph capture of a WGAN-GP critic step (B=64, 32x32, width 64)"
for b in cuda triton reference; do
  timeout 60 $PY examples/cuda_graph_critic_step.py --backend $b --steps 100 --out "$OUT" >> "$LOG" 2>&1 || echo "cuda_graph $b: exit $?" >> "$LOG"
done

say "8 Gaussians, paper sizes (512 wide, batch 256, 5 critic iters), 300 generator steps per back end"
timeout 100 $PY examples/toy_8gaussians.py --device cuda --steps 300 --quiet --out "$OUT" \
  --compare-backends reference,cuda,triton >> "$LOG" 2>&1 || echo "toy compare: exit $?" >> "$LOG"

say "DCGAN shapes critic step (B=64, 32x32, width 64)"
for run in "wgan-gp reference none" "wgan-gp cuda none" "r1 cuda none" "wgan-gp cuda fp16"; do
  set -- $run
  timeout 45 $PY examples/dcgan_shapes.py --device cuda --steps 15 --penalty $1 --backend $2 --amp $3 --quiet \
    --out "$WORK/dcgan_$1_$2_$3" >> "$LOG" 2>&1 || echo "dcgan $run: exit $?" >> "$LOG"
done
rm -rf "$WORK"
say "done"
