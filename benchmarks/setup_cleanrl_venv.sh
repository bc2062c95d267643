#!/usr/bin/env bash
# A separate interpreter for CleanRL's ppo.py, which pins gymnasium 0.29 (its episode logging reads the
# `final_info` key that gymnasium 1.x no longer returns). CleanRL's own code is not installed: pass its ppo.py
# to benchmarks/cartpole_vs_sb3.py with --cleanrl.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
[ -x .venv-cleanrl/bin/python ] || "$PY" -m venv .venv-cleanrl
.venv-cleanrl/bin/python -m pip install -q "torch==2.13.0"
.venv-cleanrl/bin/python -m pip install -q "gymnasium==0.29.1" "numpy<2" tyro tensorboard
echo "CleanRL interpreter: .venv-cleanrl/bin/python"
