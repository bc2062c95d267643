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
# pip byte-compiles every file it installs on one core; compileall does the same on every core afterwards
# (109 s -> 81 s for the whole install on 2 cores). Compiled files matter where PYTHONDONTWRITEBYTECODE is set:
# without them each process spends ~8 s more importing transformers, ray and torch.
"$VENV/bin/python" -m pip install -q --no-compile "torch==2.13.0"
"$VENV/bin/python" -m pip install -q --no-compile -e ".[dev]"
"$VENV/bin/python" -m compileall -q -j 0 "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
  > /dev/null 2>&1 || true  # a few packages ship files that are not Python 3 (templates): not ours to compile
touch "$VENV/.installed"
echo "proxrl installed in $VENV"
