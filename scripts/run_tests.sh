#!/usr/bin/env bash
# The test command: set up .venv, build the extension, run the whole suite (CPU; GPU tests skip
# without a device), then check that a wheel and a regular install carry the compiled _C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/python -m pytest -q -ra tests "$@"
bash scripts/check_install.sh
