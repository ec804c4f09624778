#!/usr/bin/env bash
# The test command: set up .venv, build the extension, run the whole suite (CPU; GPU tests skip
# without a device), then check that a wheel and a regular install carry the compiled _C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# The back ends this build must provide: a test fails (not skips) when one of them is missing.
export GAN_KERNELS_EXPECT="${GAN_KERNELS_EXPECT:-cpu,triton}"
.venv/bin/python -m pytest -q -ra tests "$@"
bash scripts/check_install.sh
