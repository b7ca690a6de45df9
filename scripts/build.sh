#!/usr/bin/env bash
# Build the wheel to hand out: dist/nbfl_jupyter-VERSION-py3-none-any.whl, with the
# JupyterLab Federation panel inside. Installing it needs no node, and neither does this
# script unless the panel's sources changed since nbfl/labextension was built (then it
# rebuilds the panel first, which needs node: see scripts/build_panel.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if ! "$python" scripts/panel_source.py --check; then
  echo "build: the panel's sources changed since it was built: rebuilding it" >&2
  bash scripts/build_panel.sh
fi
rm -f dist/nbfl_jupyter-*.whl
"$python" -m pip wheel -q --no-deps -w dist . 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
wheel=$(ls dist/nbfl_jupyter-*.whl)
echo "build: $wheel ($(du -k "$wheel" | cut -f1) kB)"
