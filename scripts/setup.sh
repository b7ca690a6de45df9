#!/usr/bin/env bash
# Create .venv with nbfl, what the notebooks need (jupyterlab, ipywidgets, torch,
# matplotlib) and the test tools. torch is installed first, pinned, so that pip does
# not pull a multi-GB CUDA build for the open "torch>=2.0" requirement; choose another
# build with TORCH_SPEC (for example TORCH_SPEC="torch==2.5.1").
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e ".[test]"
