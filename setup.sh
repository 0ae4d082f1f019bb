#!/usr/bin/env bash
# Create .venv and install Vista with its pinned dependencies (about 4 minutes on a fresh machine).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# torch first and alone: the pinned build is resolved once, and nothing later can pull another one.
.venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
# the farm extra (Ray) too: its tests run in CI (tests/test_farm.py)
.venv/bin/pip install -q -e ".[test,farm]"
echo "Vista installed in .venv — try: .venv/bin/vista --help"
