#!/usr/bin/env bash
# The main job: set up .venv, build, run the short training demo, then benchmark every op and back
# end on whatever device is here (a GPU if torch sees one, else the CPU). Each benchmark run writes
# a new folder ./gan_kernels_bench/<machine>-<YYYYmmdd-HHMMSS>/.
# Extra arguments go to the bench command, e.g. `bash scripts/run_main.sh --quick`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/python -m gan_kernels demo
.venv/bin/python -m gan_kernels bench "$@"
