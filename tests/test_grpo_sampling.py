"""DAPO's sampling-side options on GRPO: dynamic sampling (equal-reward groups dropped, more prompts sampled, a cap),
overlong filtering (truncated completions out of the loss), the soft overlong punishment, and the metrics a step
logs about its completions."""

from __future__ import annotations

import csv

import pytest
import torch

from proxrl import GRPO, lm
from proxrl.config import ConfigError
from proxrl.lm.rewards import soft_overlong_penalty

TINY = dict(
    tiny_hidden_size=16,
    tiny_layers=1,
    tiny_heads=2,
    warmup_steps=0,
    prompts_per_step=4,
    group_size=3,
    max_new_tokens=4,
    lr=1e-3,
    beta=0.0,
    eval_every=0,
    eval_examples=4,
    tensorboard=False,
    progress=False,
    torch_threads=1,
)


def test_soft_overlong_penalty_is_dapos_piecewise_linear_punishment():
    # L_max = 20, L_cache = 5: free up to 15 tokens, then −1/5 per token, −1 at 20
    lengths = torch.tensor([1, 10, 15, 16, 18, 20])
    expected = torch.tensor([0.0, 0.0, 0.0, -0.2, -0.6, -1.0])
    torch.testing.assert_close(soft_overlong_penalty(lengths, 20, 5), expected)


def test_the_soft_overlong_penalty_is_added_to_the_reward_as_its_own_component():
    agent = GRPO("addition", **{**TINY, "max_new_tokens": 6}, soft_overlong_cache=3, seed=1)
    examples, gens, (rewards, parts), _ = agent.sample_batch()
    base, _ = agent.rewards.score(examples, gens.texts)
    lengths = gens.mask.sum(1)
    assert lengths.max() > 3  # some completion is inside the cache, so the penalty is not zero everywhere
    penalty = soft_overlong_penalty(lengths, 6, 3)
    torch.testing.assert_close(parts["reward/soft_overlong"], penalty)
    torch.testing.assert_close(rewards, base + penalty)
    with pytest.raises(ConfigError, match="soft_overlong_cache=8 must be below max_new_tokens=6"):
        GRPO("addition", **{**TINY, "max_new_tokens": 6}, soft_overlong_cache=8)


def test_overlong_filtering_leaves_truncated_completions_out_of_the_loss(monkeypatch):
    """With mask_truncated_completions the loss sees a mask that is 0 on every token of a completion that reached
    max_new_tokens without an end token, and the generation's own mask elsewhere."""
    agent = GRPO("addition", **{**TINY, "max_new_tokens": 2}, mask_truncated_completions=True, seed=0)
    examples, gens, scored, _ = agent.sample_batch()
    assert gens.truncated.any() and not gens.truncated.all(), gens.truncated  # 2 tokens: some end, some do not
    ended = torch.isin(
        gens.input_ids[:, gens.prompt_len :], torch.tensor(lm.end_token_ids(agent.policy, agent.tokenizer))
    )
    assert torch.equal(gens.truncated, ~ended.any(1))
    seen = []
    real = agent.loss
    monkeypatch.setattr(agent, "loss", lambda batch: seen.append(batch.mask) or real(batch))
    agent.update(examples, gens, scored)
    expected = gens.mask.float() * (~gens.truncated).float().unsqueeze(1)
    assert torch.equal(seen[0], expected) and not torch.equal(seen[0], gens.mask.float())


def _scripted_rewards(agent: GRPO, rounds: list[list[bool]], monkeypatch) -> list[list[str]]:
    """Make round k's group p flat (all G rewards 1) or varied (0, 1, 2, ...) as ``rounds[k][p]`` says; returns each
    round's completion texts."""
    texts: list[list[str]] = []
    calls = iter(rounds)

    def score(examples, gens):
        flat = next(calls)
        G = agent.config.group_size
        rewards = torch.tensor([1.0 if flat[r // G] else float(r % G) for r in range(len(gens.texts))])
        texts.append(list(gens.texts))
        return rewards, {"reward/scripted": rewards}

    monkeypatch.setattr(agent, "score", score)
    return texts


def test_dynamic_sampling_drops_equal_reward_groups_and_samples_until_the_batch_is_full(monkeypatch):
    agent = GRPO("addition", **TINY, dynamic_sampling=True, max_sampling_rounds=5, seed=0)
    texts = _scripted_rewards(agent, [[True, False, True, False], [False, True, False, True]], monkeypatch)
    examples, gens, (rewards, parts), stats = agent.sample_batch()
    G = 3
    assert stats == {
        "sampling/flat_groups_generated": 0.5,
        "sampling/rounds": 2.0,
        "sampling/groups_dropped": 4.0,
        "sampling/flat_groups_kept": 0.0,
    }
    # the kept groups: round 0's groups 1 and 3, then round 1's groups 0 and 2, in that order
    chosen = [(0, 1), (0, 3), (1, 0), (1, 2)]
    assert gens.texts == [texts[r][p * G + g] for r, p in chosen for g in range(G)]
    assert len(examples) == 4 and rewards.shape == (12,) and torch.equal(parts["reward/scripted"], rewards)
    assert all(len(set(rewards[i * G : (i + 1) * G].tolist())) == G for i in range(4))  # no flat group left
    assert gens.input_ids.shape[0] == gens.mask.shape[0] == gens.truncated.shape[0] == 12


def test_dynamic_sampling_stops_at_its_cap_and_fills_the_batch_with_flat_groups(monkeypatch):
    agent = GRPO("addition", **TINY, dynamic_sampling=True, max_sampling_rounds=2, seed=0)
    _scripted_rewards(agent, [[True, True, False, True], [True, True, True, True]], monkeypatch)
    examples, gens, (rewards, _), stats = agent.sample_batch()
    assert stats["sampling/rounds"] == 2.0  # the cap
    assert stats["sampling/flat_groups_kept"] == 3.0 and stats["sampling/groups_dropped"] == 4.0
    assert stats["sampling/flat_groups_generated"] == 7 / 8
    assert rewards.tolist()[:3] == [0.0, 1.0, 2.0] and rewards.tolist()[3:] == [1.0] * 9  # the varied group first


def test_groups_from_different_rounds_keep_their_log_probs_when_batched_together():
    """Generations.concat re-pads prompts on the left and completions on the right; the policy's log-probs of every
    completion token, and which tokens count, are those of the round it came from."""
    agent = GRPO("addition", **TINY, seed=0)
    a = lm.generate(agent.policy, agent.tokenizer, ["1+2=", "33+44="], 3, 4, 1.0)
    b = lm.generate(agent.policy, agent.tokenizer, ["5+67="], 3, 2, 1.0)  # other prompt and completion lengths
    both = lm.Generations.concat([a.groups([1]), b], agent.tokenizer.pad_token_id)
    with torch.no_grad():
        logp_both, _ = agent._logps(agent.policy, both)
        logp_a, _ = agent._logps(agent.policy, a)
        logp_b, _ = agent._logps(agent.policy, b)
    mask_a, mask_b = a.mask[3:6].bool(), b.mask.bool()
    torch.testing.assert_close(logp_both[:3][both.mask[:3].bool()], logp_a[3:6][mask_a], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logp_both[3:][both.mask[3:].bool()], logp_b[mask_b], rtol=1e-5, atol=1e-5)
    assert both.texts == a.texts[3:6] + b.texts
    assert torch.equal(both.truncated, torch.cat([a.truncated[3:6], b.truncated]))


def test_a_step_logs_completion_lengths_the_truncated_share_and_dynamic_samplings_counts(tmp_path):
    agent = GRPO("addition", **TINY, dynamic_sampling=True, max_sampling_rounds=3, run_dir=tmp_path / "run")
    agent.learn(2)
    rows = list(csv.DictReader(open(tmp_path / "run" / "progress.csv")))
    assert len(rows) == 2
    for row in rows:
        lo, mean, hi = (float(row[k]) for k in ("completion_length_min", "completion_length", "completion_length_max"))
        assert 1 <= lo <= mean <= hi <= 4
        assert 0.0 <= float(row["truncated_frac"]) <= 1.0
        assert 1 <= float(row["sampling/rounds"]) <= 3
        for key in ("sampling/groups_dropped", "sampling/flat_groups_kept", "clip_frac_low", "clip_frac_high"):
            assert key in row
