# Sourced by setup_env.sh and check_install.sh so the editable build, the wheel and the regular
# install are compiled with the same settings.
# nvcc may live in /usr/local/bin while the toolkit is /usr/local/cuda (setup.py also knows this).
if [ -z "${CUDA_HOME:-}" ] && [ -d /usr/local/cuda ]; then export CUDA_HOME=/usr/local/cuda; fi
# Without a GPU, compile for one architecture (Hopper, sm_90) to keep the build short; with a GPU,
# torch targets the visible card unless TORCH_CUDA_ARCH_LIST says otherwise.
if ! command -v nvidia-smi >/dev/null 2>&1; then export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}; fi
