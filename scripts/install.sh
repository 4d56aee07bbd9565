#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian/Ubuntu machine (root or sudo): espeak-ng,
# requirements.txt, then this package (pip install -e .). Prints nothing but progress.
# Source it to get $PY, the Python to run the project with:
#   source scripts/install.sh
# System packages: espeak-ng (demo voices); chromium and chromium-driver (the browser test of
# `agegender serve`, driven by selenium: Debian's browser, no browser download). libsndfile
# with MP3 comes inside the soundfile wheel.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v espeak-ng >/dev/null 2>&1; then
  echo "[install] apt-get install espeak-ng"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null
fi

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "[install] apt-get install chromium chromium-driver"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
    >/dev/null
fi

PY="${PYTHON:-python3}"
# Debian's own Python refuses system-wide pip installs (PEP 668): use a venv there.
if "$PY" -c 'import os, sys, sysconfig; sys.exit(0 if sys.prefix == sys.base_prefix and os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
  if [ ! -x "$ROOT/.venv/bin/python" ]; then
    if ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
      echo "[install] apt-get install python3-venv"
      as_root apt-get update -qq
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    echo "[install] creating $ROOT/.venv (this Python is externally managed)"
    "$PY" -m venv "$ROOT/.venv"
  fi
  PY="$ROOT/.venv/bin/python"
fi
echo "[install] pip install -r requirements.txt into $("$PY" -c 'import sys; print(sys.prefix)')"
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
  -r "$ROOT/requirements.txt"
# The package itself, editable: `import agegender` then works from any folder, and edits
# under src/ take effect without reinstalling. --no-deps: requirements.txt was just installed.
echo "[install] pip install -e $ROOT (the agegender package, editable)"
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps \
  -e "$ROOT"
export PY
