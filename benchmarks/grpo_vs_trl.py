"""GRPO speed, side by side: proxrl vs TRL's GRPOTrainer on the same tiny model, G, prompts and lengths.

Builds a from-config 4-layer, 128-wide Llama with a character tokenizer (the task's, `proxrl.lm`), saves it to a
temporary folder, and trains each contender from that folder in its own process, alternating who goes first.
Per run: completions/s and generated tokens/s over the steps after the first, and peak RSS. Prints a Markdown
table with medians and the ratios.

    bash benchmarks/setup_trl_venv.sh                 # once: TRL's interpreter (.venv-trl)
    python benchmarks/grpo_vs_trl.py [--seeds 0 1 2 3 4 5 6] [--steps 60] [--beta 0.04]

``--model qwen2-bpe`` trains a 34M-parameter Qwen2 (8 layers, width 512, 8 heads) with the GSM8K-format task's BPE
tokenizer (``proxrl.lm.math_tasks.math_tokenizer``) instead; ``--processes 1 2`` runs each contender on 1 and
on 2 data-parallel processes (proxrl under ``torchrun``, TRL's Trainer under ``torchrun`` too: gloo on the CPU,
loopback only), the same global batch, ``--threads`` torch threads split over the processes. Peak RSS is then the
sum of the processes' peaks:

    python benchmarks/grpo_vs_trl.py --model qwen2-bpe --max-new-tokens 64 --steps 6 --seeds 0 1 2 \
        --processes 1 2 --beta 0.04
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from proxrl import lm
from proxrl.lm.text_tasks import addition, char_tokenizer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def make_qwen2(folder: Path) -> None:
    """A Qwen2-architecture model of 34M parameters (8 layers, width 512, 8 heads, MLP 2048, tied embeddings) with
    the GSM8K-format task's BPE tokenizer (vocabulary 400, ChatML end token), built from a config."""
    from proxrl.lm.math_tasks import math_tokenizer

    torch.manual_seed(0)
    tok = math_tokenizer()
    model = lm.tiny_causal_lm(tok, "qwen2", hidden_size=512, num_layers=8, num_heads=8, max_length=256)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)


def launcher(python: str, processes: int) -> list[str]:
    """``python`` itself, or torchrun of that interpreter's torch on a free loopback port."""
    if processes == 1:
        return [python]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [python, "-m", "torch.distributed.run", f"--nproc-per-node={processes}", "--nnodes=1"] + [
        "--master-addr=127.0.0.1",
        f"--master-port={port}",
    ]


def make_model(folder: Path) -> None:
    """The issue's reference model: 4 layers, width 128, 4 heads, character tokenizer of the addition task."""
    torch.manual_seed(0)
    tok = char_tokenizer(addition().alphabet)
    model = lm.tiny_causal_lm(tok, "llama", hidden_size=128, num_layers=4, num_heads=4)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)


def run(cmd: list[str], threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), GLOO_SOCKET_IFNAME="lo", MASTER_ADDR="127.0.0.1")
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
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
    p.add_argument("--model", choices=("llama-char", "qwen2-bpe"), default="llama-char")
    p.add_argument("--processes", type=int, nargs="+", default=[1], help="data-parallel process counts to run")
    p.add_argument("--threads", type=int, default=2, help="torch threads in all, split over the processes")
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
    names = [f"{lib}{'' if n == 1 else f' ×{n}'}" for n in args.processes for lib in ("proxrl", "TRL")]
    results: dict[str, list[dict]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        (make_qwen2 if args.model == "qwen2-bpe" else make_model)(model_dir)
        for seed in args.seeds:
            for n in args.processes:
                threads = max(1, args.threads // n)
                jobs = [
                    ("proxrl", launcher(sys.executable, n) + [str(HERE / "_proxrl_grpo_runner.py")]),
                    ("TRL", launcher(args.trl_python, n) + [str(HERE / "_trl_grpo_runner.py")]),
                ]
                if seed % 2:
                    jobs.reverse()
                for lib, cmd in jobs:
                    name = f"{lib}{'' if n == 1 else f' ×{n}'}"
                    extra = ["--threads", str(threads)] if lib == "proxrl" else []
                    r = run([*cmd, str(model_dir), *common, "--seed", str(seed), *extra], threads)
                    r["seed"] = seed
                    results[name].append(r)
                    print(
                        f"{name} seed {seed}: {r['completions_per_s']:.1f} completions/s, {r['tokens_per_s']:.0f} "
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
                f"| {name} | {r['seed']} | {r['completions_per_s']:,.1f} | {r['tokens_per_s']:,.0f} | "
                f"{r['peak_rss_mib']:.0f} | {r['torch_threads']} |"
            )
        med[name] = {
            k: statistics.median(r[k] for r in runs) for k in ("completions_per_s", "tokens_per_s", "peak_rss_mib")
        }
        m = med[name]
        lines.append(
            f"| **{name}** | median | **{m['completions_per_s']:,.1f}** | **{m['tokens_per_s']:,.0f}** | "
            f"**{m['peak_rss_mib']:.0f}** | |"
        )
    print("\n".join(lines) + "\n")
    for n in args.processes:
        ours, theirs = med[f"proxrl{'' if n == 1 else f' ×{n}'}"], med[f"TRL{'' if n == 1 else f' ×{n}'}"]
        print(
            f"- {n} process{'es' if n > 1 else ''}: completions/s, proxrl / TRL "
            f"{ours['completions_per_s'] / theirs['completions_per_s']:.2f}; generated tokens/s "
            f"{ours['tokens_per_s'] / theirs['tokens_per_s']:.2f}; "
            f"peak RSS {ours['peak_rss_mib'] / theirs['peak_rss_mib']:.2f}"
        )


if __name__ == "__main__":
    main()
