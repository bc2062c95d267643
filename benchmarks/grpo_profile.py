"""Where a GRPO step's time goes: torch's profiler over a few steps, and the share spent in matrix products.

    python benchmarks/grpo_profile.py MODEL_DIR [--steps 2] [--max-new-tokens 64] [--threads 2]

MODEL_DIR is a local model folder (``grpo_vs_trl.py``'s ``make_qwen2`` builds the 34M Qwen2 of the speed
benchmark). The first step is a warm-up and is not profiled. Prints the ops by self CPU time and the share of
``mm``/``addmm``/``bmm``/``baddbmm``: the arithmetic both proxrl and TRL leave to torch, which bounds what any
per-step saving elsewhere can gain.
"""

from __future__ import annotations

import argparse
import time

from torch.profiler import ProfilerActivity, profile

from proxrl import GRPO

MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def main() -> None:
    """Profile ``--steps`` GRPO steps after one warm-up step; print the table and the matmul share."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    agent = GRPO(
        "addition",
        model=a.model_dir,
        group_size=8,
        prompts_per_step=4,
        max_new_tokens=a.max_new_tokens,
        beta=0.04,
        lr=1e-4,
        seed=0,
        torch_threads=a.threads,
        reward_funcs=("proxrl.lm.text_tasks:exact_match",),
        eval_every=0,
        eval_examples=1,
        tensorboard=False,
        progress=False,
    )
    agent.learn(1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        agent.learn(a.steps)
        seconds = time.perf_counter() - start
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=15))
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMULS)
    print(f"{a.steps} steps in {seconds:.1f} s; matrix products {matmul / total:.1%} of the ops' self CPU time")


if __name__ == "__main__":
    main()
