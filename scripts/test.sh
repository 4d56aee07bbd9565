#!/usr/bin/env bash
# Installs everything, then runs the whole test suite (slow end-to-end tests included).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/install.sh
export MPLBACKEND=Agg TF_CPP_MIN_LOG_LEVEL=2
exec "$PY" -m pytest -q -p no:cacheprovider --durations=10 "$@"
