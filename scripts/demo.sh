#!/usr/bin/env bash
# Set up, then run the main demo: a controller and 4 local client processes doing
# 10 FedAvg rounds on digits split Dirichlet(0.5); prints accuracy per round.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/nbfl demo --clients 4 --rounds 10 "$@"
