"""The GSM8K-format task: answer extraction (strict and lenient), its rewards and metrics, problems whose worked
solutions are right, the BPE tokenizer trained on the task's text with a chat template, and a short GRPO run on a
tiny Qwen2 that goes through a saved tokenizer and model folder."""

from __future__ import annotations

import csv
import random
import re

import pytest

pytest.importorskip("transformers")

from proxrl import GRPO  # noqa: E402
from proxrl.lm import math_tasks  # noqa: E402
from proxrl.lm.math_tasks import (  # noqa: E402
    correctness_reward,
    format_compliance,
    lenient_accuracy,
    lenient_answer,
    strict_accuracy,
    strict_answer,
)


def test_strict_and_lenient_extraction_as_gsm8k_evaluations_read_answers():
    assert strict_answer("3+4=7.\n#### 7") == "7"
    assert strict_answer("#### 1,234") == "1234" and strict_answer("#### -3") == "-3"
    assert strict_answer("the answer is 7") is None and strict_answer("####7") is None
    assert lenient_answer("3+4=7. 7+2=9, so 9 apples") == "9"
    assert lenient_answer("no number") is None
    completion = "5+3=8. 8-2=6.\n#### 6"
    assert strict_accuracy("", completion, "6") == lenient_accuracy("", completion, "6") == 1.0
    assert strict_accuracy("", "5+3=8. 8-2=6", "6") == 0.0 and lenient_accuracy("", "5+3=8. 8-2=6", "6") == 1.0
    assert format_compliance("", "#### 5") == 1.0 and format_compliance("", "5") == 0.0
    assert correctness_reward("", "#### 6", "6") == 1.0
    assert correctness_reward("", "#### 5", "6") == pytest.approx(0.1)  # the format without the answer
    assert correctness_reward("", "6", "6") == 0.0


def test_every_problem_has_a_worked_solution_that_is_right():
    task = math_tasks.gsm8k_style(num_held_out=50)
    for ex in task.sample(random.Random(3), 300):
        assert ex["prompt"].startswith("<|im_start|>user\n") and ex["prompt"].endswith("<|im_start|>assistant\n")
        assert strict_answer(ex["target"]) == ex["answer"] and int(ex["answer"]) >= 0
        for a, op, b, c in re.findall(r"(\d+)([-+*])(\d+)=(\d+)", ex["target"]):
            assert eval(f"{a}{op}{b}") == int(c)  # noqa: S307 - digits and one operator
    held = {ex["prompt"] for ex in task.held_out()}
    assert len(held) == 50 and not held & {ex["prompt"] for ex in task.sample(random.Random(4), 500)}


def test_the_bpe_tokenizer_is_trained_on_the_task_deterministically_and_saves_with_its_chat_template(tmp_path):
    from transformers import AutoTokenizer

    tok = math_tasks.math_tokenizer()
    assert type(tok.backend_tokenizer.model).__name__ == "BPE" and len(tok) == 400
    text = "Ann has 12 apples.\n#### 12"
    ids = tok(text, add_special_tokens=False).input_ids
    assert len(ids) < len(text) / 2 and tok.decode(ids) == text  # merges learned from the task's text
    math_tasks.math_tokenizer.cache_clear()
    assert math_tasks.math_tokenizer().get_vocab() == tok.get_vocab()  # the same tokenizer every time
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    messages = [{"role": "user", "content": "Ann has 3 pens."}]
    rendered = loaded.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == "<|im_start|>user\nAnn has 3 pens.<|im_end|>\n<|im_start|>assistant\n"
    assert loaded.eos_token == "<|im_end|>" and loaded.padding_side == "left"


def test_a_short_grpo_run_on_the_task_saves_and_reloads_its_tokenizer_and_logs_the_task_metrics(tmp_path):
    agent = GRPO(
        "gsm8k_style",
        tiny_arch="qwen2",
        tiny_hidden_size=16,
        tiny_layers=1,
        tiny_heads=2,
        warmup_steps=2,
        max_new_tokens=6,
        prompts_per_step=2,
        group_size=2,
        eval_examples=4,
        eval_every=1,
        run_dir=tmp_path / "run",
        tensorboard=False,
        progress=False,
    )
    assert agent.policy.config.model_type == "qwen2" and agent.policy.config.max_position_embeddings == 128
    assert agent.tokenizer.chat_template == math_tasks.CHAT_TEMPLATE  # read back from run/init_model
    assert (tmp_path / "run" / "init_model" / "tokenizer.json").is_file()
    agent.learn(1)
    row = list(csv.DictReader(open(tmp_path / "run" / "progress.csv")))[-1]
    for key in ("accuracy", "eval/lenient_accuracy", "eval/format_compliance", "reward/correctness"):
        assert 0.0 <= float(row[key]) <= 1.0, key
