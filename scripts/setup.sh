#!/usr/bin/env bash
# Create .venv with nbfl, what the notebooks need (its "course" extra: jupyterlab,
# ipywidgets, torch, matplotlib, tenseal) and the test tools. torch is installed first, pinned, so that pip does
# not pull another build for the open "torch>=2.0" requirement. On this project's
# machines torch==2.13.0 is a CPU build on local disk; from PyPI on Linux it is a CUDA
# build of several GB, so elsewhere choose with TORCH_SPEC (pip arguments), for example
# TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu" for PyTorch's CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
pip() {  # quiet, minus the notes some machines print about local package folders they lack
  .venv/bin/python -m pip install -q "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}
step() { echo "setup: $*" >&2; }  # one line per step: a first install takes minutes, and says so
if [ -x .venv/bin/python ]; then
  step "using the existing .venv"
else
  step "creating .venv with $("$python" --version 2>&1)"
  "$python" -m venv .venv
fi
step "updating pip"
pip --upgrade pip
if .venv/bin/python -c "import torch" 2>/dev/null; then
  step "torch $(.venv/bin/python -c 'import torch; print(torch.__version__)') is installed"
else
  step "installing ${TORCH_SPEC:-torch==2.13.0} (the largest download, a minute or more)"
  # shellcheck disable=SC2086  # TORCH_SPEC is pip arguments: split into words on purpose
  pip ${TORCH_SPEC:-torch==2.13.0}
fi
# The Federation panel (extensions/federation, TypeScript) is committed prebuilt in
# nbfl/labextension; it is rebuilt (with node) only if its sources changed since.
if .venv/bin/python scripts/panel_source.py --check; then
  step "the JupyterLab Federation panel is built (nbfl/labextension matches its sources)"
else
  step "the Federation panel's sources changed: rebuilding it (scripts/build_panel.sh; commit nbfl/labextension after)"
  bash scripts/build_panel.sh
fi
step "installing nbfl with the course's packages (jupyterlab, ipywidgets, matplotlib, tenseal) and the test tools (a minute or two the first time)"
pip -e ".[test]"
step "ready: .venv/bin/python $(.venv/bin/python -c 'import nbfl; print("nbfl", nbfl.__version__)')"
