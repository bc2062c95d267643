"""proxrl side of the GRPO speed benchmark: GRPO on two-number addition from a local model folder, timed.

    python benchmarks/_proxrl_grpo_runner.py MODEL_DIR --steps 20 --group-size 8 --prompts-per-step 4 \
        --max-new-tokens 8 --seed 0 [--beta 0.04] [--threads N]

Same work per step as benchmarks/_trl_grpo_runner.py: P prompts × G sampled completions, one forward/backward
and one optimizer step (μ = 1), lr 1e-4. The first step is warm-up and not timed; held-out evaluation is off.
The last line printed is ``RESULT {json}``.
"""

from __future__ import annotations

import json
import resource
import time

import torch

from _grpo_bench_args import runner_parser
from proxrl import GRPO


def main() -> None:
    p = runner_parser(__doc__)
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: torch's)")
    a = p.parse_args()
    agent = GRPO(
        "addition",
        model=a.model_dir,
        group_size=a.group_size,
        prompts_per_step=a.prompts_per_step,
        max_new_tokens=a.max_new_tokens,
        beta=a.beta,
        lr=1e-4,
        seed=a.seed,
        torch_threads=a.threads,
        reward_funcs=("proxrl.envs.text_tasks:exact_match",),  # TRL's runner scores exact match only
        eval_every=0,
        eval_examples=1,
        tensorboard=False,
        progress=False,
    )
    times: list[float] = []
    tokens: list[float] = []

    def on_step(_agent: GRPO, row: dict) -> None:
        times.append(time.perf_counter())  # the last step also runs a 1-prompt greedy evaluation (~10 ms)
        tokens.append(row["completion_tokens"])

    agent.learn(a.steps, callback=on_step)
    seconds = times[-1] - times[0]
    # under torchrun: the row's counts are the whole batch's; peak RSS is the sum of the processes'
    rss = agent.world.all_sum(torch.tensor([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0]), "RSS")
    agent.close()
    if not agent.world.main:
        return
    result = {
        "completions_per_s": (len(times) - 1) * a.prompts_per_step * a.group_size / seconds,
        "tokens_per_s": sum(tokens[1:]) / seconds,
        "peak_rss_mib": float(rss.item()),
        "processes": agent.world.size,
        "steps": len(times),
        "seconds": seconds,
        "torch_threads": torch.get_num_threads(),
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
