#!/usr/bin/env bash
# A separate interpreter for CleanRL's ppo.py, which pins gymnasium 0.29 (its episode logging reads the
# `final_info` key that gymnasium 1.x no longer returns). CleanRL's own code is not installed: pass its ppo.py
# to benchmarks/cartpole_vs_sb3.py with --cleanrl.
# MUJOCO=1 also installs MuJoCo for CleanRL's ppo_continuous_action.py (benchmarks/mujoco_vs_cleanrl.py):
# mujoco==2.3.3, CleanRL's own pin (its published MuJoCo returns were run with it). It also runs gymnasium 1.x's
# v5 envs; install the same version in proxrl's interpreter so both sides step identical physics (mujoco 4.0
# steps differently: the same actions give another HalfCheetah trajectory).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
[ -x .venv-cleanrl/bin/python ] || "$PY" -m venv .venv-cleanrl
.venv-cleanrl/bin/python -m pip install -q "torch==2.13.0"
.venv-cleanrl/bin/python -m pip install -q "gymnasium==0.29.1" "numpy<2" tyro tensorboard
# ATARI=1: ale-py (proxrl's version: its ROMs ship with it) and OpenCV for ppo_atari.py, and for
# ppo_atari_envpool.py EnvPool 0.8.4 with gym 0.23.1 (with gym < 0.26 it keeps the 4-value step API that file uses;
# EnvPool 1.x and gym 0.26 give the 5-value one). benchmarks/atari_vs_cleanrl.py runs both.
if [ "${ATARI:-0}" = 1 ]; then
    ALE=$(.venv/bin/python -c "from importlib.metadata import version; print(version('ale-py'))" 2>/dev/null || echo 0.12.1)
    .venv-cleanrl/bin/python -m pip install -q "ale-py==$ALE" opencv-python-headless "envpool==0.8.4" "gym==0.23.1"
fi
if [ "${MUJOCO:-0}" = 1 ]; then
    .venv-cleanrl/bin/python -m pip install -q "gymnasium[mujoco]==0.29.1" "mujoco==2.3.3"
fi
echo "CleanRL interpreter: .venv-cleanrl/bin/python"
