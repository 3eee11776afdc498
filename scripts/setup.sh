#!/usr/bin/env bash
# One-time set-up of a fresh machine for twinviz: Python packages, and Chromium for the
# browser tests. Safe to run again (it skips what is already there).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# PyTorch first: on this project's machines `torch==2.13.0` is a local CPU build; a bare
# `torch` requirement would otherwise pull a multi-GB CUDA build. Elsewhere, install the
# torch you want before running this script.
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install --quiet "torch==2.13.0"
fi
"$PY" -m pip install --quiet -e ".[test]"

# Debian's Chromium for the Playwright browser tests (Playwright never downloads a browser here).
if [ "${TWINVIZ_SKIP_BROWSER:-0}" != "1" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: /usr/bin/chromium is missing; install Debian's 'chromium' package for the browser tests" >&2
  fi
fi
echo "setup: done"
