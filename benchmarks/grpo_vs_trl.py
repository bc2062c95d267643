"""GRPO speed, side by side: proxrl vs TRL's GRPOTrainer on the same tiny model, G, prompts and lengths.

Builds a from-config 4-layer, 128-wide Llama with a character tokenizer (the task's, `proxrl.lm`), saves it to a
temporary folder, and trains each contender from that folder in its own process, alternating who goes first.
Per run: completions/s and generated tokens/s over the steps after the first, and peak RSS. Prints a Markdown
table with medians and the ratios.

    bash benchmarks/setup_trl_venv.sh                 # once: TRL's interpreter (.venv-trl)
    python benchmarks/grpo_vs_trl.py [--seeds 0 1 2 3 4 5 6] [--steps 60] [--beta 0.04]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from proxrl import lm
from proxrl.envs.text_tasks import addition, char_tokenizer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def make_model(folder: Path) -> None:
    """The issue's reference model: 4 layers, width 128, 4 heads, character tokenizer of the addition task."""
    torch.manual_seed(0)
    tok = char_tokenizer(addition().alphabet)
    model = lm.tiny_causal_lm(tok, "llama", hidden_size=128, num_layers=4, num_heads=4)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)


def run(cmd: list[str]) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{out.stderr[-3000:]}")
    return json.loads([line for line in out.stdout.splitlines() if line.startswith("RESULT ")][-1][7:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5, 6])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--prompts-per-step", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--beta", type=float, default=0.04)
    p.add_argument("--trl-python", default=str(ROOT / ".venv-trl" / "bin" / "python"))
    args = p.parse_args()
    common = [
        "--steps",
        str(args.steps),
        "--group-size",
        str(args.group_size),
        "--prompts-per-step",
        str(args.prompts_per_step),
        "--max-new-tokens",
        str(args.max_new_tokens),
        "--beta",
        str(args.beta),
    ]
    results: dict[str, list[dict]] = {"proxrl": [], "TRL": []}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        make_model(model_dir)
        for seed in args.seeds:
            jobs = [
                ("proxrl", [sys.executable, str(HERE / "_proxrl_grpo_runner.py")]),
                ("TRL", [args.trl_python, str(HERE / "_trl_grpo_runner.py")]),
            ]
            if seed % 2:
                jobs.reverse()
            for name, cmd in jobs:
                r = run([*cmd, str(model_dir), *common, "--seed", str(seed)])
                r["seed"] = seed
                results[name].append(r)
                print(
                    f"{name} seed {seed}: {r['completions_per_s']:.0f} completions/s, {r['tokens_per_s']:.0f} "
                    f"tokens/s, peak RSS {r['peak_rss_mib']:.0f} MiB",
                    file=sys.stderr,
                )
    lines = [
        "| contender | seed | completions/s | generated tokens/s | peak RSS (MiB) | torch threads |",
        "|---|---|---|---|---|---|",
    ]
    med: dict[str, dict[str, float]] = {}
    for name, runs in results.items():
        for r in runs:
            lines.append(
                f"| {name} | {r['seed']} | {r['completions_per_s']:,.0f} | {r['tokens_per_s']:,.0f} | "
                f"{r['peak_rss_mib']:.0f} | {r['torch_threads']} |"
            )
        med[name] = {
            k: statistics.median(r[k] for r in runs) for k in ("completions_per_s", "tokens_per_s", "peak_rss_mib")
        }
        m = med[name]
        lines.append(
            f"| **{name}** | median | **{m['completions_per_s']:,.0f}** | **{m['tokens_per_s']:,.0f}** | "
            f"**{m['peak_rss_mib']:.0f}** | |"
        )
    print("\n".join(lines))
    ratio = med["proxrl"]["completions_per_s"] / med["TRL"]["completions_per_s"]
    print(f"\n- completions/s, proxrl / TRL: {ratio:.2f}")
    print(f"- generated tokens/s, proxrl / TRL: {med['proxrl']['tokens_per_s'] / med['TRL']['tokens_per_s']:.2f}")
    print(f"- peak RSS, proxrl / TRL: {med['proxrl']['peak_rss_mib'] / med['TRL']['peak_rss_mib']:.2f}")


if __name__ == "__main__":
    main()
