"""TRL side of the GRPO speed benchmark: trains with TRL's GRPOTrainer on two-number addition and times it.

Run with the interpreter made by benchmarks/setup_trl_venv.sh (trl==1.16.0, CPU torch):

    .venv-trl/bin/python benchmarks/_trl_grpo_runner.py MODEL_DIR --steps 20 --group-size 8 \
        --prompts-per-step 4 --max-new-tokens 8 --seed 0 [--beta 0.04]

MODEL_DIR holds a causal LM and its tokenizer as written by `save_pretrained` (a plain-text tokenizer with
pad and eos tokens set; no chat template or bos token is needed). Nothing is downloaded. Each optimizer step
samples prompts_per_step prompts x group_size completions with plain `model.generate` (no vLLM), in one
generation batch and one forward/backward (gradient_accumulation_steps=1). The first step is warm-up and not
timed. The last line printed is `RESULT {json}`.
"""

from __future__ import annotations

import json
import os
import random
import resource
import tempfile
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")

import torch  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from _grpo_bench_args import runner_parser  # noqa: E402  (benchmarks/, on sys.path as the script's folder)


def addition_dataset(n: int, seed: int) -> Dataset:
    """n prompts "a+b=" with a, b drawn uniformly from 0..99; the answer column holds str(a + b)."""
    rng = random.Random(seed)
    pairs = [(rng.randint(0, 99), rng.randint(0, 99)) for _ in range(n)]
    return Dataset.from_dict({"prompt": [f"{a}+{b}=" for a, b in pairs], "answer": [str(a + b) for a, b in pairs]})


class TokenCounter:
    """Exact-match reward; also counts the generated tokens (completion_ids stop at and include the first EOS)."""

    __name__ = "exact_match"  # TRL names the reward's log column after it

    def __init__(self) -> None:
        self.tokens = 0

    def __call__(
        self, prompts: list[str], completions: list[str], completion_ids: list[list[int]], answer: list[str], **_: Any
    ) -> list[float]:
        self.tokens += sum(len(ids) for ids in completion_ids)
        # TRL decodes with skip_special_tokens=True after cutting at the first EOS, so this is the text before it.
        return [1.0 if c.strip() == a else 0.0 for c, a in zip(completions, answer, strict=True)]


class StepTimer(TrainerCallback):
    """Records wall time and the generated-token count at the end of every optimizer step."""

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter
        self.times: list[float] = []
        self.tokens: list[int] = []

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.times.append(time.perf_counter())
        self.tokens.append(self.counter.tokens)


def main() -> None:
    p = runner_parser(__doc__)
    a = p.parse_args()
    if a.steps < 2:
        p.error("--steps must be at least 2 (the first step is warm-up)")

    tokenizer = AutoTokenizer.from_pretrained(a.model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(a.model_dir, local_files_only=True, dtype=torch.float32)
    counter = TokenCounter()
    timer = StepTimer(counter)
    completions_per_step = a.prompts_per_step * a.group_size
    processes = int(os.environ.get("WORLD_SIZE", "1"))  # under torchrun: the same global batch over the processes
    with tempfile.TemporaryDirectory(prefix="trl-grpo-bench-") as out_dir:
        config = GRPOConfig(
            output_dir=out_dir,
            num_generations=a.group_size,
            # Batch sizes count completions: one generation batch = one micro-batch = one optimizer step.
            per_device_train_batch_size=completions_per_step // processes,
            gradient_accumulation_steps=1,
            steps_per_generation=1,
            num_iterations=1,
            max_completion_length=a.max_new_tokens,  # TRL 1.16 has no max_prompt_length: prompts are not cut
            temperature=1.0,
            beta=a.beta,
            learning_rate=1e-4,
            max_steps=a.steps,
            use_cpu=True,
            bf16=False,  # TRL's configs default bf16 to True unless fp16 is set
            fp16=False,
            gradient_checkpointing=False,  # TRL's configs default it to True (recompute: ~20% slower)
            use_vllm=False,
            use_transformers_continuous_batching=False,
            logging_steps=1,
            logging_strategy="steps",
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=a.seed,
            data_seed=a.seed,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=counter,
            args=config,
            train_dataset=addition_dataset(a.steps * a.prompts_per_step, a.seed),
            processing_class=tokenizer,
            callbacks=[timer],
        )
        trainer.train()

    timed_steps = len(timer.times) - 1
    seconds = timer.times[-1] - timer.times[0]
    # each process counts its own tokens and peak RSS: summed over the processes (gloo) when there are several
    totals = torch.tensor(
        [float(timer.tokens[-1] - timer.tokens[0]), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]
    )
    if processes > 1:
        torch.distributed.all_reduce(totals)
        if torch.distributed.get_rank() != 0:
            return
    result = {
        "completions_per_s": timed_steps * completions_per_step / seconds,
        "tokens_per_s": float(totals[0]) / seconds,
        "peak_rss_mib": float(totals[1]),
        "processes": processes,
        "steps": len(timer.times),
        "seconds": seconds,
        "trl_version": trl.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
