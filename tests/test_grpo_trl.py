"""GRPO for TRL users (issue 35): TRL's quick start and its documented reward-function examples run on proxrl as
written (the import, the model and the dataset aside), and TRL's GRPOConfig names are other names of proxrl's keys,
in the trainer's keywords, a YAML file and ``--set`` alike (``proxrl/lm/trl_names.py``: one table, shown in
docs/grpo.md).

The TRL texts below are TRL's (the GRPOTrainer docstring of TRL 1.16.0, ``trl/trainer/grpo_trainer.py``; the
reward-function examples of ``docs/source/grpo_trainer.md``, whose newest copy here is of 1.10.0.dev0; the
issue's ``reward_num_unique_chars`` quick start of earlier releases), with only the hub names of the model and
dataset replaced by local ones, and ``GRPOTrainer`` bound to ``GRPO`` with a small budget given in TRL's names
(TRL's defaults would train for 200 steps here)."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest
import torch

import proxrl.trl
from proxrl import GRPO, GRPOConfig
from proxrl.config import ConfigError, resolve
from proxrl.lm import trl_names
from test_grpo_datasets import model_folder  # noqa: F401 - the fixture: a tiny Qwen2 and a chat template

datasets = pytest.importorskip("datasets")

# a budget in TRL's names: 2 steps of 2 prompts × 3 completions of ≤ 3 tokens, β = 0 (TRL's default)
FAST = dict(
    max_steps=2,
    per_device_train_batch_size=6,
    num_generations=3,
    max_completion_length=3,
    learning_rate=1e-3,
    beta=0.0,
    warmup_steps=0,
    eval_every=0,
    eval_examples=2,
    tensorboard=False,
    progress=False,
    torch_threads=1,
)

QUICK_START_UNIQUE_CHARS = """
from datasets import load_dataset

dataset = load_dataset("trl-lib/tldr", split="train")

def reward_num_unique_chars(completions, **kwargs):
    return [len(set(c)) for c in completions]

trainer = GRPOTrainer(
    model="Qwen/Qwen2-0.5B-Instruct",
    reward_funcs=reward_num_unique_chars,
    train_dataset=dataset,
)
trainer.train()
"""

QUICK_START_1_16 = """
from datasets import load_dataset

dataset = load_dataset("trl-lib/DeepMath-103K", split="train")

trainer = GRPOTrainer(
    model="Qwen/Qwen2.5-0.5B-Instruct",
    reward_funcs=accuracy_reward,
    train_dataset=dataset,
)
trainer.train()
"""


def accuracy_reward(completions, solution, **kwargs):
    """Stands in for ``trl.rewards.accuracy_reward`` (TRL's, built on math_verify, which proxrl does not ship):
    its signature, conversational completions and the dataset's ``solution`` column; exact match here."""
    return [float(c[0]["content"].strip() == s) for c, s in zip(completions, solution, strict=True)]


def run_trl_text(text: str, model: str, data: dict[str, str], **names: object) -> dict:
    """Execute TRL's ``text`` with the hub names replaced (``model``, ``data``: hub dataset → local folder) and
    ``GRPOTrainer`` bound to proxrl's GRPO with :data:`FAST`; returns the namespace."""
    for hub, local in data.items():
        text = text.replace(f'"{hub}"', repr(local))
    text = re.sub(r'model="[^"]+"', f"model={model!r}", text)
    namespace: dict = {"GRPOTrainer": functools.partial(GRPO, **FAST), **names}
    exec(compile(text, "<TRL's text>", "exec"), namespace)
    return namespace


def local_dataset(folder: Path, rows: list[dict]) -> str:
    """A local folder of one ``train.jsonl`` that ``datasets.load_dataset(folder, split="train")`` reads."""
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(folder)


def test_the_quick_start_with_one_reward_function_and_train_runs(model_folder, tmp_path):  # noqa: F811
    data = local_dataset(tmp_path / "tldr", [{"prompt": f"{i}+{i}=", "completion": str(2 * i)} for i in range(6)])
    ns = run_trl_text(QUICK_START_UNIQUE_CHARS, model_folder, {"trl-lib/tldr": data})
    trainer = ns["trainer"]
    assert trainer.global_step == 2  # train() ran max_steps
    assert trainer.config.reward_funcs[0].endswith("reward_num_unique_chars")  # one function, not a list
    texts = ["ab", "aab", "", "a<pad>"]
    scored, parts = trainer.rewards.score([{"prompt": "p"}] * 4, texts)
    torch.testing.assert_close(scored, torch.tensor([2.0, 2.0, 0.0, 5.0]))  # len(set(c)) of each


def test_trl_1_16s_quick_start_runs_with_conversational_prompts(model_folder, tmp_path):  # noqa: F811
    rows = [{"prompt": [{"role": "user", "content": f"{i}+1="}], "solution": str(i + 1)} for i in range(6)]
    data = local_dataset(tmp_path / "deepmath", rows)
    ns = run_trl_text(QUICK_START_1_16, model_folder, {"trl-lib/DeepMath-103K": data}, accuracy_reward=accuracy_reward)
    trainer = ns["trainer"]
    assert trainer.global_step == 2
    assert trainer.config.group_size == 3 and trainer.config.prompts_per_step == 2 and trainer.config.lr == 1e-3
    examples, gens, (rewards, _), _ = trainer.sample_batch()
    assert examples[0]["prompt"].startswith("u:") and examples[0]["prompt"].endswith("|a:")  # the chat template
    hand = [float(t.strip() == examples[k // 3]["solution"]) for k, t in enumerate(gens.texts)]
    torch.testing.assert_close(rewards, torch.tensor(hand))


# TRL's GRPO docs' quick start until November 2025 (docs/source/grpo_trainer.md before e62219609): a GRPOConfig
# given as args=, in TRL's names
QUICK_START_WITH_ARGS = """
# train_grpo.py
from datasets import load_dataset
from trl import GRPOConfig, GRPOTrainer

dataset = load_dataset("trl-lib/ultrafeedback-prompt", split="train")

# Dummy reward function for demonstration purposes
def reward_num_unique_letters(completions, **kwargs):
    \"\"\"Reward function that rewards completions with more unique letters.\"\"\"
    completion_contents = [completion[0]["content"] for completion in completions]
    return [float(len(set(content))) for content in completion_contents]

training_args = GRPOConfig(output_dir="Qwen2-0.5B-GRPO")
trainer = GRPOTrainer(
    model="Qwen/Qwen2-0.5B-Instruct",
    reward_funcs=reward_num_unique_letters,
    args=training_args,
    train_dataset=dataset,
)
trainer.train()
"""


def test_trls_quick_start_with_a_grpoconfig_as_args_runs_with_only_the_import_changed(
    model_folder,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    rows = [{"prompt": [{"role": "user", "content": f"Say {i}."}]} for i in range(6)]
    data = local_dataset(tmp_path / "ultrafeedback", rows)
    text = QUICK_START_WITH_ARGS.replace("from trl import", "from proxrl.trl import")
    text = text.replace('"trl-lib/ultrafeedback-prompt"', repr(data))
    text = re.sub(r'model="[^"]+"', f"model={model_folder!r}", text)
    monkeypatch.chdir(tmp_path)  # output_dir is relative, as in TRL's text
    monkeypatch.setattr(proxrl.trl, "GRPO", functools.partial(GRPO, **FAST))  # the small budget, in TRL's names
    namespace: dict = {}
    exec(compile(text, "<TRL's text>", "exec"), namespace)
    trainer = namespace["trainer"]
    assert trainer.global_step == 2 and trainer.run_dir.resolve() == (tmp_path / "Qwen2-0.5B-GRPO").resolve()
    assert (tmp_path / "Qwen2-0.5B-GRPO" / "progress.csv").exists()
    assert repr(namespace["training_args"]) == "GRPOConfig(output_dir='Qwen2-0.5B-GRPO')"


def test_trls_grpoconfig_and_trainer_arguments_map_to_proxrls_or_are_refused_in_one_line(model_folder):  # noqa: F811
    peft = pytest.importorskip("peft")
    args = proxrl.trl.GRPOConfig(num_generations=3, logging_steps=5, epsilon=0.3, max_steps=7)
    trainer = proxrl.trl.GRPOTrainer(
        model=model_folder,
        reward_funcs=lambda completions, **kw: [0.0] * len(completions),
        args=args,
        train_dataset=[{"prompt": "1+1="}] * 4,
        peft_config=peft.LoraConfig(r=4, lora_alpha=8),
        learning_rate=1e-3,  # a keyword over args, as a config key
        warmup_steps=0,
        progress=False,
        tensorboard=False,
    )
    cfg = trainer.config
    assert (cfg.group_size, cfg.log_every, cfg.clip_eps, cfg.total_steps, cfg.lr) == (3, 5, 0.3, 7, 1e-3)
    assert cfg.lora and (cfg.lora_r, cfg.lora_alpha) == (4, 8)
    with pytest.raises(ConfigError, match="'num_generation'.*did you mean 'num_generations'"):
        proxrl.trl.GRPOConfig(num_generation=3)  # refused when made, as TRL's dataclass refuses a field
    with pytest.raises(ConfigError, match=r"GRPOTrainer\(processing_class=...\) has no counterpart"):
        proxrl.trl.GRPOTrainer(model=model_folder, processing_class=object())
    with pytest.raises(ConfigError, match="args must be proxrl.trl.GRPOConfig"):
        proxrl.trl.GRPOTrainer(model=model_folder, args={"max_steps": 1})


# --- the reward-function examples of TRL's GRPO docs ("Using a custom reward function"), as written ---------------
EXAMPLE_1 = '''
def reward_func(completion_ids, **kwargs):
    """Reward function that assigns higher scores to longer completions (in terms of token count)."""
    return [float(len(ids)) for ids in completion_ids]
'''
EXAMPLE_1_1 = '''
def reward_func(completions, **kwargs):
    """Reward function that assigns higher scores to longer completions (in terms of character count)."""
    return [float(len(completion)) for completion in completions]
'''
EXAMPLE_2 = '''
import re

def format_reward_func(completions, **kwargs):
    """Reward function that checks if the completion has a specific format."""
    pattern = r"^<think>.*?</think><answer>.*?</answer>$"
    completion_contents = [completion[0]["content"] for completion in completions]
    matches = [re.match(pattern, content) for content in completion_contents]
    return [1.0 if match else 0.0 for match in matches]
'''
EXAMPLE_3 = """
import re

def reward_func(completions, ground_truth, **kwargs):
    # Regular expression to capture content inside \\boxed{}
    matches = [re.search(r"\\\\boxed\\{(.*?)\\}", completion) for completion in completions]
    contents = [match.group(1) if match else "" for match in matches]
    # Reward 1 if the content is the same as the ground truth, 0 otherwise
    return [1.0 if c == gt else 0.0 for c, gt in zip(contents, ground_truth)]
"""
EXAMPLE_4 = """
from datasets import Dataset
from trl import GRPOTrainer

# Define a dataset that contains both math and coding problems
dataset = Dataset.from_list(
    [
        {"prompt": "What is 2+2?", "task": "math"},
        {"prompt": "Write a function that returns the sum of two numbers.", "task": "code"},
        {"prompt": "What is 3*4?", "task": "math"},
        {"prompt": "Write a function that returns the product of two numbers.", "task": "code"},
    ]
)

# Math-specific reward function
def math_reward_func(prompts, completions, task, **kwargs):
    rewards = []
    for prompt, completion, t in zip(prompts, completions, task):
        if t == "math":
            # Calculate math-specific reward
            correct = check_math_solution(prompt, completion)
            reward = 1.0 if correct else -1.0
            rewards.append(reward)
        else:
            # Return None for non-math tasks
            rewards.append(None)
    return rewards

# Coding-specific reward function
def coding_reward_func(prompts, completions, task, **kwargs):
    rewards = []
    for prompt, completion, t in zip(prompts, completions, task):
        if t == "coding":
            # Calculate coding-specific reward
            works = test_code_solution(prompt, completion)
            reward = 1.0 if works else -1.0
            rewards.append(reward)
        else:
            # Return None for non-coding tasks
            rewards.append(None)
    return rewards

# Use both task-specific reward functions
trainer = GRPOTrainer(
    model="Qwen/Qwen2.5-0.5B-Instruct",
    reward_funcs=[math_reward_func, coding_reward_func],
    train_dataset=dataset,
)

trainer.train()
"""
EXAMPLE_5 = """
import asyncio

async def async_reward_func(prompts, completions, **kwargs):
    # Simulate an I/O-bound call (e.g., HTTP request, database lookup)
    await asyncio.sleep(0.01)
    # Simple toy reward: 1.0 if the completion is non-empty, else 0.0
    return [1.0 if completion else 0.0 for completion in completions]
"""
EXAMPLE_6 = """
import re

def reward_func(completions, ground_truth, log_extra=None, log_metric=None, **kwargs):
    extracted = [re.search(r"\\\\boxed\\{(.*?)\\}", c) for c in completions]
    extracted = [m.group(1) if m else None for m in extracted]
    rewards = [1.0 if e == gt else 0.0 for e, gt in zip(extracted, ground_truth)]

    if log_extra:
        log_extra("golden_answer", list(ground_truth))
        log_extra("extracted_answer", [e or "[none]" for e in extracted])

    if log_metric:
        log_metric("accuracy", sum(rewards) / len(rewards))

    return rewards
"""
PASSING = """
trainer = GRPOTrainer(
    reward_funcs=reward_func,
    model="Qwen/Qwen2.5-0.5B-Instruct",
    train_dataset=dataset,
)
trainer.train()
"""


def define(text: str) -> dict:
    namespace: dict = {}
    exec(compile(text, "<TRL's example>", "exec"), namespace)
    return namespace


@pytest.mark.parametrize(
    ("example", "name", "dataset_rows", "expected"),
    [
        ("1", "reward_func", None, lambda texts, ids, rows: [float(len(i)) for i in ids]),
        ("1.1", "reward_func", None, lambda texts, ids, rows: [float(len(t)) for t in texts]),
        ("3", "reward_func", "ground_truth", lambda texts, ids, rows: [float(f"\\boxed{{{r}}}" in t) for t, r in rows]),
        ("6", "reward_func", "ground_truth", lambda texts, ids, rows: [float(f"\\boxed{{{r}}}" in t) for t, r in rows]),
        ("5", "async_reward_func", None, lambda texts, ids, rows: [float(bool(t)) for t in texts]),
    ],
)
def test_trls_documented_reward_functions_train_on_proxrl(
    model_folder,  # noqa: F811
    example,
    name,
    dataset_rows,
    expected,
):
    text = {"1": EXAMPLE_1, "1.1": EXAMPLE_1_1, "3": EXAMPLE_3, "5": EXAMPLE_5, "6": EXAMPLE_6}[example]
    func = define(text)[name]
    dataset = datasets.Dataset.from_list([{"prompt": f"{i}+1=", "ground_truth": str(i + 1)} for i in range(6)])
    passing = PASSING.replace("reward_funcs=reward_func", f"reward_funcs={name}")
    trainer = run_trl_text(passing, model_folder, {}, dataset=dataset, **{name: func})["trainer"]
    assert trainer.global_step == 2
    examples, gens, (rewards, _), _ = trainer.sample_batch()
    ids = [row[m.bool()].tolist() for row, m in zip(gens.input_ids[:, gens.prompt_len :], gens.mask, strict=True)]
    truth = [(t, examples[k // 3]["ground_truth"]) for k, t in enumerate(gens.texts)]
    torch.testing.assert_close(rewards, torch.tensor(expected(gens.texts, ids, truth), dtype=torch.float32))


def test_trls_format_reward_sees_conversational_completions(model_folder):  # noqa: F811
    func = define(EXAMPLE_2)["format_reward_func"]
    dataset = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": f"{i}+1="}]} for i in range(6)])
    passing = PASSING.replace("reward_funcs=reward_func", "reward_funcs=format_reward_func")
    trainer = run_trl_text(passing, model_folder, {}, dataset=dataset, format_reward_func=func)["trainer"]
    assert trainer.global_step == 2
    shaped = "<think>x</think><answer>2</answer>"
    scored, _ = trainer.rewards.score(
        [{"prompt": "u:1|a:", "_messages": [{"role": "user", "content": "1"}]}] * 2, [shaped, "2"]
    )
    torch.testing.assert_close(scored, torch.tensor([1.0, 0.0]))


def test_trls_multi_task_example_scores_each_row_by_its_own_function(model_folder):  # noqa: F811
    def check_math_solution(prompt, completion):  # the helpers the example leaves to the user
        return completion.strip() == {"What is 2+2?": "4", "What is 3*4?": "12"}[prompt]

    def test_code_solution(prompt, completion):
        return "def" in completion

    text = EXAMPLE_4.replace("from trl import GRPOTrainer\n", "")
    ns = run_trl_text(
        text, model_folder, {}, check_math_solution=check_math_solution, test_code_solution=test_code_solution
    )
    trainer = ns["trainer"]
    assert trainer.global_step == 2
    examples, gens, (rewards, parts), _ = trainer.sample_batch()
    for k, text_k in enumerate(gens.texts):
        ex = examples[k // 3]
        if ex["task"] == "math":  # the math function's ±1; the coding function gives None (nothing added)
            assert rewards[k] == (1.0 if check_math_solution(ex["prompt"], text_k) else -1.0)
        else:  # "code" rows: the example's coding function checks t == "coding", so neither scores them
            assert rewards[k] == 0.0 and parts["reward/math_reward_func"][k].isnan()


# --- TRL's GRPOConfig names ------------------------------------------------------------------------------------------
def test_trls_names_are_proxrls_keys_in_the_constructor_yaml_and_the_command_line(tmp_path):
    trl = dict(
        max_steps=7,
        learning_rate=3e-5,
        gradient_accumulation_steps=2,
        logging_steps=5,
        save_steps=25,
        num_generations=4,
        max_completion_length=16,
        epsilon=0.1,
        epsilon_high=0.28,
        adam_epsilon=1e-6,
        scale_rewards=False,
        per_device_train_batch_size=8,
    )
    proxrl_keys = dict(
        total_steps=7,
        lr=3e-5,
        grad_accum_steps=2,
        log_every=5,
        checkpoint_every=25,
        group_size=4,
        max_new_tokens=16,
        clip_eps=0.1,
        clip_eps_high=0.28,
        adam_eps=1e-6,
        scale_rewards="none",
        prompts_per_step=4,  # 8 completions × 2 micro-batches / 4 per group
    )
    expected = resolve(GRPOConfig, overrides=proxrl_keys)
    assert resolve(GRPOConfig, overrides=trl) == expected  # the keywords GRPO(...) takes
    yaml_file = tmp_path / "trl.yaml"
    yaml_file.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in trl.items()))
    assert resolve(GRPOConfig, yaml_file) == expected
    from proxrl.cli import _build_config
    from proxrl.config import parse_overrides

    _, from_cli = _build_config("grpo", None, parse_overrides(f"{k}={json.dumps(v)}" for k, v in trl.items()))
    assert from_cli == expected  # --set
    assert resolve(GRPOConfig, overrides={"scale_rewards": True}).scale_rewards == "group"


def test_a_later_layer_of_either_name_wins_and_one_layer_with_two_values_is_refused(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("num_generations: 4\nper_device_train_batch_size: 8\n")
    cfg = resolve(GRPOConfig, yaml_file, {"group_size": 2, "prompts_per_step": 3})
    assert (cfg.group_size, cfg.prompts_per_step) == (2, 3)
    assert resolve(GRPOConfig, yaml_file, {"group_size": 2}).prompts_per_step == 4  # 8 × 1 / 2
    with pytest.raises(ConfigError, match="'num_generations' and 'group_size' both set group_size"):
        resolve(GRPOConfig, overrides={"group_size": 2, "num_generations": 4})
    with pytest.raises(ConfigError, match="must be a multiple of num_generations"):
        resolve(GRPOConfig, overrides={"per_device_train_batch_size": 5, "num_generations": 2})


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("num_generation", "did you mean 'num_generations' (another name of 'group_size')?"),
        ("max_completion_len", "did you mean 'max_completion_length' (another name of 'max_new_tokens')?"),
        ("mask_truncated_completion", "did you mean 'mask_truncated_completions'?"),
        ("use_vllm", "'use_vllm' is a TRL setting with no meaning in proxrl: no vLLM backend here"),
        ("num_train_epochs", "'num_train_epochs' is a TRL setting with no meaning in proxrl: proxrl counts GRPO"),
        ("output_dir", "'output_dir' is the run directory, not a config key"),
    ],
)
def test_a_trl_name_proxrl_lacks_or_a_misspelt_one_is_refused_in_one_line(key, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        resolve(GRPOConfig, overrides={key: 1})
    assert "\n" not in str(caught.value)


def test_the_command_line_takes_trls_names_and_output_dir(model_folder, tmp_path, capsys):  # noqa: F811
    from proxrl.cli import main

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"{i}+1="}) + "\n" for i in range(4)))
    run = tmp_path / "out"
    config = tmp_path / "trl.yaml"
    config.write_text(f"output_dir: {run}\nmax_steps: 2\nlogging_steps: 2\nsave_steps: 1\n")
    sets = {**{k: v for k, v in FAST.items() if k not in ("progress", "max_steps")}, "model": model_folder}
    sets["reward_funcs"] = "[test_grpo_trl:length_reward]"
    args = ["train", "grpo", "--config", str(config), "--dataset", str(data), "--quiet"]
    assert main([*args, *(a for k, v in sets.items() for a in ("--set", f"{k}={v}"))]) == 0, capsys.readouterr().err
    rows = (run / "progress.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("2,")  # logging_steps=2: the header and step 2's row
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step_000000001",
        "step_000000002",
    ]  # save_steps=1
    assert main(["train", "grpo", "--set", "use_vllm=true", "--quiet"]) == 2
    assert "'use_vllm' is a TRL setting with no meaning in proxrl" in capsys.readouterr().err
    # a resume takes TRL's names too (over the saved config's proxrl keys), and logs its last step's row
    assert main(["train", "--resume", str(run), "--set", "max_steps=3", "--quiet"]) == 0, capsys.readouterr().err
    assert (run / "progress.csv").read_text().splitlines()[-1].startswith("3,")
    resumed = GRPO.load(run, learning_rate=2e-3, logging_steps=5, progress=False)
    assert (resumed.config.lr, resumed.config.log_every, resumed.config.total_steps) == (2e-3, 5, 3)
    # --run-dir and another output_dir name two directories: refused, as in Python
    assert main(["train", "grpo", "--run-dir", str(tmp_path / "a"), "--set", f"output_dir={tmp_path / 'b'}"]) == 2
    assert "name two run directories" in capsys.readouterr().err


def test_grpotrainers_keywords_replace_what_args_set_name_by_name(model_folder):  # noqa: F811
    args = proxrl.trl.GRPOConfig(learning_rate=1e-5, per_device_train_batch_size=6, num_generations=3)
    data = [{"prompt": "1+1="}] * 4
    fast = {k: v for k, v in FAST.items() if k not in ("learning_rate", "per_device_train_batch_size")}
    trainer = proxrl.trl.GRPOTrainer(
        model=model_folder,
        reward_funcs=length_reward,
        args=args,
        train_dataset=data,
        lr=2e-5,
        prompts_per_step=4,
        **fast,
    )
    assert (trainer.config.lr, trainer.config.prompts_per_step, trainer.config.group_size) == (2e-5, 4, 3)


def length_reward(completions, **kwargs):
    return [float(len(c)) for c in completions]


def test_output_dir_is_the_run_directory_and_a_reward_model_folder_is_a_reward(model_folder, tmp_path):  # noqa: F811
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    scorer = tmp_path / "scorer"
    config = AutoConfig.from_pretrained(model_folder, num_labels=1)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(scorer)
    AutoTokenizer.from_pretrained(model_folder).save_pretrained(scorer)
    dataset = datasets.Dataset.from_list([{"prompt": f"{i}+1="} for i in range(4)])
    trainer = GRPO(
        model=model_folder,
        train_dataset=dataset,
        reward_funcs=[length_reward, str(scorer)],
        reward_weights=[0.0, 2.0],
        output_dir=str(tmp_path / "run"),
        **{**FAST, "max_steps": 1},
    ).train()
    assert (tmp_path / "run" / "model" / "config.json").is_file()
    examples, gens, (rewards, parts), _ = trainer.sample_batch()
    model_scores = parts["reward/scorer"]
    assert model_scores.abs().sum() > 0 and parts["reward/length_reward"].sum() > 0
    torch.testing.assert_close(rewards, 2.0 * model_scores)  # the weights apply in reward_funcs' order
    with pytest.raises(ConfigError, match="name two run directories: give one"):
        GRPO(model=model_folder, train_dataset=dataset, run_dir=tmp_path / "a", output_dir=str(tmp_path / "b"))
    with pytest.raises(ConfigError, match="neither 'package.module:function' nor a local reward-model folder"):
        GRPO(model=model_folder, train_dataset=dataset, reward_funcs="Qwen/some-reward-model", **FAST)


def test_the_docs_mapping_shows_the_table():
    text = (Path(__file__).parents[1] / "docs" / "grpo.md").read_text()
    section = text[text.index("## Coming from TRL") :]
    for entry in trl_names.TRL_NAMES:
        key = "run_dir" if entry.key == trl_names.RUN_DIR else entry.key
        assert re.search(rf"\| `{entry.name}` \| `{key}`", section), entry.name
