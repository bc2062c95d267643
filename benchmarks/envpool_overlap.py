"""Does overlapping EnvPool's stepping with acting speed up Atari collection here? One 8-env pool stepped in
sync with the Nature CNN's acting forward, against two 4-env pools pipelined (one half steps in EnvPool's threads
while the policy acts for the other: ``send``/``recv``). 1,024 env steps of Pong per measurement.

    python benchmarks/envpool_overlap.py [--rounds 3] [--envpool-threads 0 1 2] [--threads 2]

Needs the atari and envpool extras. Prints seconds per 1,024 steps for each form, alternating.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from proxrl.algos.ppo import PPO

OPTIONS = {"episodic_life": True, "reward_clip": True, "repeat_action_probability": 0.0}


def main() -> None:
    """Time both forms ``--rounds`` times for each EnvPool thread count."""
    import envpool

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--envpool-threads", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    agent = PPO("ALE/Pong-v5", hidden_sizes=[], env_kwargs={"repeat_action_probability": 0.0}, torch_threads=a.threads)
    policy = agent.policy

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return policy.act(torch.from_numpy(obs))[0].numpy()

    def pool(n: int, seed: int, threads: int):  # noqa: ANN202 - EnvPool's own class
        return envpool.make("Pong-v5", env_type="gymnasium", num_envs=n, seed=seed, num_threads=threads, **OPTIONS)

    def sync(threads: int) -> float:
        env = pool(8, 0, threads)
        obs, _ = env.reset()
        start = time.perf_counter()
        for _ in range(128):
            obs = env.step(act(obs))[0]
        return time.perf_counter() - start

    def pipelined(threads: int) -> float:
        first, second = pool(4, 0, threads), pool(4, 1, threads)
        obs_a, obs_b = first.reset()[0], second.reset()[0]
        ids = np.arange(4)
        start = time.perf_counter()
        first.send(act(obs_a), ids)
        for _ in range(128):
            second.send(act(obs_b), ids)  # acting for the second half while the first steps
            obs_a = first.recv()[0]
            first.send(act(obs_a), ids)
            obs_b = second.recv()[0]
        first.recv()
        return time.perf_counter() - start

    for threads in a.envpool_threads:
        for _ in range(a.rounds):
            print(f"envpool threads {threads}: sync {sync(threads):.3f} s, pipelined {pipelined(threads):.3f} s")


if __name__ == "__main__":
    main()
