"""GRPO on datasets, TRL's way: a ``prompt`` column of text or chat messages (rendered by the tokenizer's chat
template), every other column passed to reward functions, reward functions with TRL's batched signature (None: no
score), local files and save_to_disk folders, an eval dataset's held-out accuracy, and resuming."""

from __future__ import annotations

import json

import pytest
import torch

import proxrl.lm.datasets as lm_data
from proxrl import GRPO, lm
from proxrl.config import ConfigError
from proxrl.lm import text_tasks

datasets = pytest.importorskip("datasets")

TEMPLATE = (
    "{% for m in messages %}{{ m['role'][0] }}:{{ m['content'] }}|{% endfor %}"
    "{% if add_generation_prompt %}a:{% endif %}"
)
SMALL = dict(
    warmup_steps=0,
    prompts_per_step=2,
    group_size=3,
    max_new_tokens=3,
    beta=0.0,
    eval_every=0,
    eval_examples=4,
    tensorboard=False,
    progress=False,
    torch_threads=1,
)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A tiny Qwen2 model and a character tokenizer with a chat template, saved and loaded back like any model."""
    folder = tmp_path_factory.mktemp("chat_model")
    tok = text_tasks.char_tokenizer("0123456789+=uas:|")
    tok.chat_template = TEMPLATE
    torch.manual_seed(0)
    lm.tiny_causal_lm(tok, "qwen2", hidden_size=16, num_layers=1, num_heads=2).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def rows(n: int, chat: bool) -> list[dict]:
    out = []
    for i in range(n):
        question = f"{i}+{i + 1}="
        prompt = [{"role": "user", "content": question}] if chat else question
        out.append({"prompt": prompt, "answer": str(2 * i + 1), "level": i % 3})
    return out


CALLS: list[dict] = []


def trl_reward(prompts, completions, completion_ids, answer, level, **kwargs):
    """A reward function written for TRL: batched, columns as lists, chat completions as assistant messages."""
    CALLS.append(
        dict(prompts=prompts, completions=completions, completion_ids=completion_ids, answer=answer, level=level)
    )
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [float(t.strip() == a) + 0.1 * lv for t, a, lv in zip(texts, answer, level, strict=True)]


def only_level_one(prompts, completions, level, **kwargs):
    """Scores only level-1 rows (None elsewhere: no score from this function)."""
    return [2.0 if lv == 1 else None for lv in level]


def test_chat_prompts_go_through_the_template_and_columns_reach_a_trl_reward_function(model_folder):
    CALLS.clear()
    train = datasets.Dataset.from_list(rows(6, chat=True))
    agent = GRPO(model=model_folder, train_dataset=train, reward_funcs=[trl_reward, only_level_one], **SMALL)
    examples, gens, (rewards, parts), _ = agent.sample_batch()
    for ex in examples:
        question = ex["_messages"][0]["content"]
        assert ex["prompt"] == f"u:{question}|a:"  # the chat template, with the assistant's turn opened
    (call,) = CALLS
    G = 3
    assert call["prompts"] == [examples[k // G]["_messages"] for k in range(6)]  # TRL passes the messages
    assert call["completions"] == [[{"role": "assistant", "content": t}] for t in gens.texts]
    expected_ids = [
        row[m.bool()].tolist() for row, m in zip(gens.input_ids[:, gens.prompt_len :], gens.mask, strict=True)
    ]
    assert call["completion_ids"] == expected_ids
    assert call["answer"] == [examples[k // G]["answer"] for k in range(6)]
    assert call["level"] == [examples[k // G]["level"] for k in range(6)]
    trl = torch.tensor(trl_reward(call["prompts"], call["completions"], None, call["answer"], call["level"]))
    level_one = torch.tensor([2.0 if lv == 1 else float("nan") for lv in call["level"]])
    torch.testing.assert_close(parts["reward/trl_reward"], trl)
    torch.testing.assert_close(parts["reward/only_level_one"], level_one, equal_nan=True)
    torch.testing.assert_close(rewards, trl + torch.nan_to_num(level_one))  # None adds nothing (TRL's nansum)
    _, stats = agent.update(examples, gens, (rewards, parts))
    if level_one.isnan().all():
        assert stats["reward/only_level_one"] != stats["reward/only_level_one"]  # no score at all: NaN
    else:
        assert stats["reward/only_level_one"] == 2.0  # the mean of the scores given


@pytest.mark.parametrize("kind", ["jsonl", "csv", "parquet", "folder"])
def test_local_dataset_files_and_folders_train_and_evaluate(model_folder, tmp_path, kind):
    train, held = rows(8, chat=False), rows(4, chat=False)
    if kind == "jsonl":
        path = tmp_path / "train.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in train))
        eval_path = tmp_path / "eval.jsonl"
        eval_path.write_text("".join(json.dumps(r) + "\n" for r in held))
        keys = {"dataset": str(path), "eval_dataset": str(eval_path)}
    elif kind in ("csv", "parquet"):
        path, eval_path = tmp_path / f"train.{kind}", tmp_path / f"eval.{kind}"
        for data, p in ((train, path), (held, eval_path)):
            getattr(datasets.Dataset.from_list(data), f"to_{kind}")(str(p))
        keys = {"dataset": str(path), "eval_dataset": str(eval_path)}
    else:  # a DatasetDict folder: its test split is the held-out set
        folder = tmp_path / "dd"
        datasets.DatasetDict(
            {"train": datasets.Dataset.from_list(train), "test": datasets.Dataset.from_list(held)}
        ).save_to_disk(str(folder))
        keys = {"dataset": str(folder)}
    agent = GRPO(model=model_folder, reward_funcs=("test_grpo_datasets:trl_reward",), **SMALL, **keys)
    assert [ex["prompt"] for ex in agent.task.held_out()] == [r["prompt"] for r in held]
    result = agent.evaluate()
    assert result["examples"] == 4 and 0.0 <= result["accuracy"] <= 1.0
    agent.learn(1)
    assert agent.global_step == 1


def test_an_arrow_dataset_stays_on_disk_and_only_the_rows_drawn_are_rendered(model_folder, tmp_path, monkeypatch):
    # a save_to_disk folder is memory-mapped: the processes of a data-parallel run share it through the page cache,
    # and each renders (chat template) only the rows it reads, not a whole copy up front
    folder = tmp_path / "big"
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows(2000, chat=True)), "test": datasets.Dataset.from_list(rows(50, True))}
    ).save_to_disk(str(folder))
    rendered = []
    render = lm_data.render_prompt
    monkeypatch.setattr(lm_data, "render_prompt", lambda row, tok: rendered.append(row) or render(row, tok))
    agent = GRPO(model=model_folder, dataset=str(folder), reward_funcs=[trl_reward], **SMALL)
    assert len(agent.task.train) == 2000 and agent.task.train.dataset.cache_files  # read from the folder's files
    at_start = len(rendered)
    assert 2 <= at_start <= 3  # the first row of each split (the format checked before training), not 2,050 rows
    examples, _, _, _ = agent.sample_batch()
    assert len(rendered) == at_start + SMALL["prompts_per_step"]
    assert all(ex["prompt"].endswith("a:") and ex["_messages"][0]["role"] == "user" for ex in examples)
    held = agent.task.held_out()[:3]
    assert [ex["answer"] for ex in held] == ["1", "3", "5"]
    assert len(rendered) == at_start + SMALL["prompts_per_step"] + 3  # the 3 rows read


def test_held_out_accuracy_is_exact_match_with_the_answer_column_or_the_eval_metric(model_folder):
    held = rows(4, chat=False)
    agent = GRPO(
        model=model_folder,
        train_dataset=rows(4, chat=False),
        eval_dataset=held,
        reward_funcs=[trl_reward],
        **SMALL,
    )
    greedy = lm.generate(agent.policy, agent.tokenizer, [r["prompt"] for r in held], 1, 3, greedy=True)
    exact = sum(t.strip() == r["answer"] for t, r in zip(greedy.texts, held, strict=True)) / 4
    assert agent.evaluate()["accuracy"] == pytest.approx(exact)
    # a TRL-signature function as the metric: scored on each greedy completion
    agent = GRPO(
        model=model_folder,
        train_dataset=rows(4, chat=False),
        eval_dataset=held,
        reward_funcs=[trl_reward],
        eval_metric="test_grpo_datasets:trl_reward",
        **SMALL,
    )
    by_hand = sum(float(t.strip() == r["answer"]) + 0.1 * r["level"] for t, r in zip(greedy.texts, held, strict=True))
    assert agent.evaluate()["accuracy"] == pytest.approx(by_hand / 4)
    # chat rows: the metric sees the messages and assistant-message completions, as reward functions do in training
    CALLS.clear()
    chat = GRPO(
        model=model_folder,
        train_dataset=rows(4, chat=True),
        eval_dataset=rows(2, chat=True),
        reward_funcs=[trl_reward],
        eval_metric="test_grpo_datasets:trl_reward",
        **SMALL,
    )
    chat.evaluate()
    assert [c["prompts"][0] for c in CALLS] == [r["prompt"] for r in rows(2, chat=True)]
    assert all(isinstance(c["completions"][0], list) and c["completions"][0][0]["role"] == "assistant" for c in CALLS)
    no_eval = GRPO(model=model_folder, train_dataset=rows(4, chat=False), reward_funcs=[trl_reward], **SMALL)
    assert no_eval.evaluate() == {"accuracy": None, "examples": 0}


def test_what_a_dataset_cannot_do_is_refused_in_one_line(model_folder, tmp_path):
    with pytest.raises(ConfigError, match="dataset needs model"):
        GRPO(dataset=str(tmp_path / "x.jsonl"), reward_funcs=("test_grpo_datasets:trl_reward",), **SMALL)
    with pytest.raises(ConfigError, match="a dataset needs model="):
        GRPO(train_dataset=rows(2, chat=False), reward_funcs=[trl_reward], **SMALL)
    with pytest.raises(ConfigError, match="nothing scores the completions: set reward_funcs"):
        GRPO(model=model_folder, train_dataset=rows(2, chat=False), **SMALL)
    with pytest.raises(ConfigError, match="no 'prompt' column"):
        GRPO(model=model_folder, train_dataset=[{"question": "1+1="}], reward_funcs=[trl_reward], **SMALL)
    with pytest.raises(ConfigError, match="does not exist"):
        GRPO(model=model_folder, dataset=str(tmp_path / "missing.jsonl"), reward_funcs=[trl_reward], **SMALL)
    plain = tmp_path / "plain"
    text_tasks.char_tokenizer("0123456789+=").save_pretrained(plain)  # no chat template
    lm.tiny_causal_lm(text_tasks.char_tokenizer("0123456789+="), "qwen2", 16, 1, 2).save_pretrained(plain)
    with pytest.raises(ConfigError, match="the tokenizer has no chat template"):
        GRPO(model=str(plain), train_dataset=rows(2, chat=True), reward_funcs=[trl_reward], **SMALL)


def test_a_run_on_a_python_dataset_resumes_only_with_the_dataset_given_again(model_folder, tmp_path):
    train = datasets.Dataset.from_list(rows(6, chat=True))
    agent = GRPO(
        model=model_folder,
        train_dataset=train,
        reward_funcs=[trl_reward],
        run_dir=tmp_path / "run",
        total_steps=2,
        checkpoint_every=1,
        **SMALL,
    )
    agent.learn()
    with pytest.raises(ConfigError, match="pass it again"):
        GRPO.load(tmp_path / "run")
    resumed = GRPO.load(tmp_path / "run", train_dataset=train)
    assert resumed.global_step == 2
    resumed.learn(1)
    assert resumed.global_step == 3


def test_the_command_line_reads_dataset_files_and_names_a_missing_model(model_folder, tmp_path, capsys):
    from proxrl.cli import main

    for name, data in (("train.jsonl", rows(6, chat=True)), ("eval.jsonl", rows(3, chat=True))):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in data))
    run = tmp_path / "run"
    args = ["train", "grpo", "--dataset", str(tmp_path / "train.jsonl"), "--eval-dataset", str(tmp_path / "eval.jsonl")]
    flags = [f"{k}={v}" for k, v in SMALL.items() if k not in ("tensorboard", "progress")]
    flags += [
        f"model={model_folder}",
        "reward_funcs=[test_grpo_datasets:trl_reward]",
        "eval_metric=test_grpo_datasets:trl_reward",
    ]
    code = main(
        [*args, *(a for f in flags for a in ("--set", f)), "--total-steps", "1", "--run-dir", str(run), "--quiet"]
    )
    assert code == 0
    saved = (run / "config.yaml").read_text()
    assert f"dataset: {tmp_path / 'train.jsonl'}" in saved and f"eval_dataset: {tmp_path / 'eval.jsonl'}" in saved
    out = capsys.readouterr().out
    assert "training grpo on train.jsonl" in out and "held-out accuracy (trl_reward) (greedy)" in out
    assert main(["train", "grpo", "--dataset", str(tmp_path / "train.jsonl"), "--quiet"]) == 2
    assert "dataset needs model" in capsys.readouterr().err
