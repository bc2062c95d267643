"""The command line both GRPO benchmark runners share (proxrl's and TRL's run in different interpreters, so this
module imports nothing beyond the standard library)."""

from __future__ import annotations

import argparse


def runner_parser(doc: str | None) -> argparse.ArgumentParser:
    """MODEL_DIR and the workload every contender runs: steps, G, prompts per step, new tokens, seed, β."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--prompts-per-step", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--beta", type=float, default=0.0, help="KL coefficient (TRL's default 0.0 loads no reference)")
    return p
