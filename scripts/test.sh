#!/usr/bin/env bash
# Set up, then run the test suite (real sockets and processes on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# lint, format and types first ([tool.ruff] and [tool.mypy] in pyproject.toml): a slip fails in seconds
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest -q "$@"
