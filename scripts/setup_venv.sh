#!/usr/bin/env bash
# Creates .venv with Python 3.11, installs torch==2.13.0 (a CPU wheel) before the project, then the project
# with its dev extras. torch goes first so that the project's looser `torch>=2.4` is already satisfied and pip
# does not pull a multi-gigabyte CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
VENV="${VENV:-.venv}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip 2>/dev/null || true
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/python" -m pip install -q -e ".[dev]"
touch "$VENV/.installed"
echo "proxrl installed in $VENV"
