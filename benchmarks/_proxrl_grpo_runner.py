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


def training_state_mib(agent: GRPO) -> float:
    """MiB this process holds of the policy's weights and gradients, Adam's state and the reference's weights
    (its shards only, under fsdp)."""

    def size(t: torch.Tensor | None) -> int:
        if t is None or not isinstance(t, torch.Tensor):
            return 0
        local = t.to_local() if hasattr(t, "to_local") else t
        return local.numel() * local.element_size()

    tensors = [p for p in agent.policy.parameters()] + [p.grad for p in agent.policy.parameters()]
    tensors += [v for st in agent.optimizer.state.values() for v in st.values()]
    if agent.reference.model is not None:
        tensors += list(agent.reference.model.parameters())
    return sum(size(t) for t in tensors) / 2**20


def main() -> None:
    p = runner_parser(__doc__)
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: torch's)")
    p.add_argument("--fsdp", action="store_true", help="under torchrun: shard the model (fsdp: true)")
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
        fsdp=a.fsdp,
        reward_funcs=("proxrl.lm.text_tasks:exact_match",),  # TRL's runner scores exact match only
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
    rss_own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    rss = agent.world.all_sum(torch.tensor([rss_own]), "RSS")
    per_process = agent.world.gather(torch.tensor([rss_own]), "RSS").tolist()
    state = agent.world.gather(torch.tensor([training_state_mib(agent)]), "state").tolist()
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
        "fsdp": a.fsdp,
        "peak_rss_per_process_mib": [round(x) for x in per_process],
        "training_state_per_process_mib": [round(x) for x in state],
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
