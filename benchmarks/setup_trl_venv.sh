#!/usr/bin/env bash
# A separate interpreter for TRL's GRPOTrainer (benchmarks/_trl_grpo_runner.py), the reference side of the GRPO
# speed benchmark. TRL pins its own transformers/accelerate/datasets ranges, which proxrl's interpreter need not
# share. torch goes in first, pinned to the CPU build proxrl uses: installed after trl, an unpinned torch would
# pull the CUDA wheels and their nvidia-* packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
[ -x .venv-trl/bin/python ] || "$PY" -m venv .venv-trl
.venv-trl/bin/python -m pip install -q "torch==2.13.0"
.venv-trl/bin/python -m pip install -q "trl==1.16.0" transformers accelerate datasets psutil
echo "TRL interpreter: .venv-trl/bin/python"
