#!/usr/bin/env bash
# One short check that training runs on CUDA: 2 built-in and 2 seed-trainer clients, 3 rounds
# each; exits non-zero unless the client table shows cuda devices and accuracy rose. On a
# machine without a GPU it runs in CPU mode and says so (scripts/gpu_check.py).
# On a GPU machine, give setup a CUDA build of torch: TORCH_SPEC="torch" (PyPI's is CUDA on Linux).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
exec .venv/bin/python scripts/gpu_check.py
