#!/usr/bin/env bash
# Set up, then run the test suite (real sockets and processes on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m mypy  # the types ([tool.mypy] in pyproject.toml): a mismatch fails before the tests run
exec .venv/bin/python -m pytest -q "$@"
