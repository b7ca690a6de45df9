#!/usr/bin/env bash
# Create .venv with nbfl, what the notebooks need (jupyterlab, ipywidgets, torch,
# matplotlib) and the test tools. torch is installed first, pinned, so that pip does
# not pull a multi-GB CUDA build for the open "torch>=2.0" requirement; choose another
# build with TORCH_SPEC (for example TORCH_SPEC="torch==2.5.1").
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
pip() {  # quiet, minus the notes some machines print about local package folders they lack
  .venv/bin/python -m pip install -q "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || pip "${TORCH_SPEC:-torch==2.13.0}"
pip -e ".[test]"
