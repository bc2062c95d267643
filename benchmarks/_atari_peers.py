"""Registers ale-py's ``<Game>NoFrameskip-v4`` ids in CleanRL's interpreter (gymnasium 0.29), unchanged.

CleanRL's ``ppo_atari.py`` calls ``gym.make(env_id)`` without importing ale-py; gymnasium's ``module:EnvId`` syntax
imports this module first: ``--env-id _atari_peers:BreakoutNoFrameskip-v4``. ale-py 0.9 registers its ids on
import; ale-py >= 0.10 (the version proxrl and SB3 step here) skips that under gymnasium 0.29, because its vector
env needs gymnasium 1.x, so the v0/v4 ids are registered here with ale-py's own function. Also prints the torch
thread count of the process once, so the benchmark can check that OMP_NUM_THREADS reached CleanRL.
"""

from __future__ import annotations

import sys

import ale_py
import gymnasium as gym

if "BreakoutNoFrameskip-v4" not in gym.registry:
    from ale_py.registration import register_v0_v4_envs

    register_v0_v4_envs()

if "torch" in sys.modules:
    print(f"ATARI_PEERS torch_threads={sys.modules['torch'].get_num_threads()} ale_py={ale_py.__version__}", flush=True)
