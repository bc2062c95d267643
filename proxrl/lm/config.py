"""Settings every language-model trainer shares (GRPO's config derives from them): the text task, the starting
model (a local folder, or the task's tiny model and its warm-up), rewards, sampling, LoRA, dtype and held-out
evaluation. The algorithm's own hyperparameters live in its config (``algos.grpo_config.GRPOConfig``)."""

from __future__ import annotations

from pathlib import Path

from dataclasses import dataclass

from ..config import RunConfig, param
from ..errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class LanguageModelConfig(RunConfig):
    """Settings of a trainer of causal language models on a text task."""

    env: str = param(
        "addition",
        "text task: addition | reverse | sort (proxrl.lm.text_tasks), or "
        "'module:function' returning a TextTask; env_kwargs go to it",
    )
    dataset: str | None = param(
        None,
        "prompts from a local dataset instead of the text task: a .jsonl/.json/.parquet/.csv file or a save_to_disk "
        "folder with a 'prompt' column (text, or chat messages rendered by the tokenizer's chat template); other "
        "columns reach the reward functions; needs model and reward_funcs",
    )
    eval_dataset: str | None = param(
        None, "held-out prompts from a local dataset, the same way (default: the dataset folder's 'test' split)"
    )
    eval_metric: str | None = param(
        None,
        "held-out accuracy on a dataset: 'module:function' scoring each greedy completion (proxrl's or TRL's reward "
        "signature); default: exact match with an 'answer' column",
    )
    torch_threads: int = param(2, "torch intra-op threads", low=1)
    model: str | None = param(
        None,
        "local causal-LM folder (from_pretrained); None: build the task's tiny model "
        "(tiny_*) and warm it up with warmup_steps of supervised training",
    )
    tiny_arch: str = param("llama", "architecture of the tiny model", choices=("llama", "qwen2"))
    tiny_hidden_size: int = param(64, "width of the tiny model", low=8)
    tiny_layers: int = param(2, "layers of the tiny model", low=1)
    tiny_heads: int = param(4, "attention heads of the tiny model", low=1)
    warmup_steps: int = param(600, "supervised warm-up steps of the tiny model before GRPO", low=0)
    warmup_lr: float = param(3e-3, "learning rate of the warm-up", low=0.0, low_open=True)
    warmup_target: float = param(
        0.0,
        "end the warm-up early once greedy exact match on 200 fresh training prompts (never held-out ones) reaches "
        "this, checked every 50 steps (0: all warmup_steps, which then only cap it)",
        low=0.0,
        high=1.0,
    )
    reward_funcs: tuple[str, ...] = param(
        (),
        "reward functions 'module:function', f(prompt, completion, **example) -> float; empty: the task's own",
        factory=tuple,
    )
    reward_weights: tuple[float, ...] = param((), "weight of each reward function (default 1 each)", factory=tuple)
    reward_model: str | None = param(
        None, "local AutoModelForSequenceClassification folder scoring prompt + completion (one more reward component)"
    )
    reward_model_weight: float = param(1.0, "weight of the reward model's score")
    max_new_tokens: int = param(8, "longest completion, in tokens", low=1)
    temperature: float = param(
        1.0, "sampling temperature (the policy optimised is π at this temperature)", low=0.0, low_open=True
    )
    top_p: float = param(1.0, "nucleus sampling threshold", low=0.0, high=1.0, low_open=True)
    lora: bool = param(
        False,
        "train LoRA adapters (peft) instead of every weight; the reference model is then "
        "the base with adapters disabled (no copy)",
    )
    lora_r: int = param(8, "LoRA rank", low=1)
    lora_alpha: int = param(16, "LoRA α", low=1)
    dtype: str = param(
        "float32", "weights' dtype (bfloat16 halves memory; log-probs stay float32)", choices=("float32", "bfloat16")
    )
    eval_every: int = param(
        10,
        "greedy exact-match accuracy on the held-out prompts every this many steps (0: only before and after)",
        low=0,
    )
    eval_examples: int = param(200, "held-out prompts evaluated", low=1)
    eval_samples: int = param(
        0,
        "k: also evaluate k sampled completions per held-out prompt at the training "
        "temperature (pass@1 of the policy GRPO optimises; 0: greedy only)",
        low=0,
    )
    fsdp: bool = param(
        False,
        "under torchrun: shard the policy's and reference's weights, gradients and Adam state over the processes "
        "(torch FSDP2; for a model whose training state does not fit one device)",
    )

    def subject(self) -> str:
        """What the run trains on: the dataset file's name, else the text task."""
        return Path(self.dataset).name if self.dataset else self.env

    def validate(self) -> None:
        if self.dataset is not None and self.model is None:
            raise ConfigError(
                "dataset needs model (a local model folder with its tokenizer): the tiny model is built for a text task"
            )
        # without reward_funcs the weights are for the task's own functions, counted once the task is loaded
        if self.reward_funcs and self.reward_weights and len(self.reward_weights) != len(self.reward_funcs):
            raise ConfigError(
                f"reward_weights has {len(self.reward_weights)} entries for "
                f"{len(self.reward_funcs)} reward_funcs; give one weight per function"
            )
