"""GRPO: closed forms of the group advantage, k3, the loss types and the loss's gradient; text tasks; the
tiny-model plumbing through from_pretrained; a short end-to-end run (tiny models, no downloads)."""

import copy
import math
import shutil
from pathlib import Path

import pytest
import torch

from proxrl import kl
from proxrl.advantages import group_relative
from proxrl.checkpoint import CheckpointError
from proxrl.config import ConfigError
from proxrl.lm import tasks, text_tasks
from proxrl.objectives import GRPOBatch, make_grpo_loss

transformers = pytest.importorskip("transformers")

from proxrl import lm  # noqa: E402
from proxrl.lm.decoder import lean_decoder  # noqa: E402
from proxrl.algos.grpo import GRPO, RewardError  # noqa: E402


# --- closed forms ------------------------------------------------------------------------------------------
def test_group_relative_advantage_by_hand():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [2.0, 2.0, 2.0, 2.0]])
    adv = group_relative(r, "group", eps=0.0 + 1e-4)
    std = math.sqrt(1 / 3)  # unbiased std of [1, 0, 0, 1]
    assert adv[0].tolist() == pytest.approx(
        [0.5 / (std + 1e-4), -0.5 / (std + 1e-4)] * 1 + [-0.5 / (std + 1e-4), 0.5 / (std + 1e-4)], rel=1e-6
    )
    assert adv[1].tolist() == [0.0, 0.0, 0.0, 0.0]  # a flat group gives no gradient
    batch_std = r.std().item()
    assert group_relative(r, "batch")[0, 0].item() == pytest.approx(0.5 / (batch_std + 1e-4), rel=1e-6)
    assert group_relative(r, "none")[0].tolist() == [0.5, -0.5, -0.5, 0.5]
    with pytest.raises(ValueError, match="allowed"):
        group_relative(r, "median")


def test_k3_is_nonnegative_and_zero_where_policies_agree():
    gen = torch.Generator().manual_seed(0)
    logp, ref = torch.randn(1000, generator=gen), torch.randn(1000, generator=gen)
    k = kl.k3(ref, logp)  # GRPO's D_KL(π_θ‖π_ref) estimate π_ref/π − ln(π_ref/π) − 1
    assert (k >= 0).all()
    torch.testing.assert_close(k, torch.exp(ref - logp) - (ref - logp) - 1, rtol=1e-5, atol=1e-6)
    assert kl.k3(logp, logp).abs().max().item() == 0.0


def reduce(loss_type, values, mask, max_len=None, **counts):
    """The reduction over tokens that ``make_grpo_loss`` pairs with ``loss_type``, of per-token ``values``."""
    batch = GRPOBatch(values, values, torch.zeros(values.shape[0], 1), mask, **counts)
    return make_grpo_loss(loss_type, clip_low=0.2, clip_high=0.2, max_len=max_len).reduction(values, batch)


def test_each_loss_type_on_a_hand_example():
    values = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    assert reduce("grpo", values, mask).item() == pytest.approx((2.0 + 4.0) / 2)
    assert reduce("bnpo", values, mask).item() == pytest.approx(10.0 / 4)
    assert reduce("dapo", values, mask).item() == pytest.approx(10.0 / 4)
    assert reduce("dr_grpo", values, mask).item() == pytest.approx(10.0 / (2 * 4))
    assert reduce("dr_grpo", values, mask, max_len=8).item() == pytest.approx(10.0 / 16)
    # micro-batches with the whole batch's normalisers add up to the batch's value; bnpo's micro-batches are each
    # normalised by their own tokens: (6 / 3 + 4 / 1) / 2
    for loss_type, whole in (("grpo", 3.0), ("bnpo", 3.0), ("dapo", 2.5), ("dr_grpo", 10.0 / 8)):
        parts = sum(
            reduce(
                loss_type,
                values[i : i + 1],
                mask[i : i + 1],
                max_len=4,
                num_sequences=2,
                num_tokens=mask.sum().float(),
                num_micro_batches=2,
            )
            for i in range(2)
        )
        assert parts.item() == pytest.approx(whole), loss_type
    with pytest.raises(ValueError, match="unknown loss_type 'sequence'; allowed: grpo, bnpo, dr_grpo, dapo"):
        reduce("sequence", values, mask)


@pytest.mark.parametrize("micro_batches", [1, 2])
@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_each_loss_type_gives_each_token_of_a_10_and_a_1000_token_completion_its_weight(loss_type, micro_batches):
    """At ρ = 1 (μ = 1) and β = 0, ∂loss/∂ln π(o_{i,t}) = −Â_i w_{i,t}. With a 10-token and a 1,000-token completion
    (L_max = 1,000): grpo w = 1/(2·|o_i|) (0.05 and 0.0005), dr_grpo 1/(2·1000), dapo 1/1010 for every token,
    bnpo 1/1010 in one micro-batch but 1/(2·|o_i|) when each completion is its own micro-batch."""
    mask = torch.zeros(2, 1000)
    mask[0, :10] = 1
    mask[1, :] = 1
    adv = torch.tensor([[2.0], [-1.0]])
    logp = torch.randn(2, 1000, generator=torch.Generator().manual_seed(0)).requires_grad_()
    rows = [slice(0, 2)] if micro_batches == 1 else [slice(0, 1), slice(1, 2)]
    loss_fn = make_grpo_loss(loss_type, clip_low=0.2, clip_high=0.2, max_len=1000)
    loss = sum(
        loss_fn(
            GRPOBatch(
                logp[r],
                logp[r].detach(),
                adv[r],
                mask[r],
                num_sequences=2,
                num_tokens=mask.sum(),
                num_micro_batches=micro_batches,
            )
        )[0]
        for r in rows
    )
    (grad,) = torch.autograd.grad(loss, logp)
    short, long = {
        "grpo": (1 / 20, 1 / 2000),
        "dr_grpo": (1 / 2000, 1 / 2000),
        "dapo": (1 / 1010, 1 / 1010),
        "bnpo": (1 / 1010, 1 / 1010) if micro_batches == 1 else (1 / 20, 1 / 2000),
    }[loss_type]
    expected = torch.zeros(2, 1000)
    expected[0, :10] = -2.0 * short
    expected[1, :] = 1.0 * long
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-9)


def test_gspo_uses_one_length_normalised_ratio_per_completion_and_clips_whole_completions():
    """importance_sampling_level=sequence: s_i = exp(mean_t ln(π_θ/π_old)) over completion i's tokens; every token of
    i gets the term min(s_i Â_i, clip(s_i) Â_i), so ∂loss/∂ln π(o_{i,t}) = −Â_i s_i / |o_i| / B (grpo) while s_i is
    inside the clip range, and 0 for all of i's tokens once s_i is clipped, whatever each token's own ratio."""
    mask = torch.zeros(3, 1000)
    mask[0, :10] = 1
    mask[1, :] = 1
    mask[2, :4] = 1
    old = torch.zeros(3, 1000)
    logp = torch.zeros(3, 1000)
    logp[0, :10] = torch.linspace(-0.3, 0.3, 10) + 0.02  # s_0 = e^0.02, tokens from e^-0.28 to e^0.32
    logp[1, :] = 0.5 * torch.sin(torch.arange(1000.0))  # s_1 ≈ 1, tokens far outside [0.8, 1.2]
    logp[2, :4] = torch.tensor([0.4, 0.4, 0.4, -0.4])  # s_2 = e^0.2 > 1.2 with Â > 0: the whole completion clipped
    logp.requires_grad_()
    adv = torch.tensor([[1.0], [-2.0], [3.0]])
    gspo = make_grpo_loss("grpo", clip_low=0.2, clip_high=0.2, importance_sampling_level="sequence")
    loss, stats = gspo(GRPOBatch(logp, old, adv, mask))
    (grad,) = torch.autograd.grad(loss, logp)
    s = ((logp.detach() * mask).sum(1) / mask.sum(1)).exp()
    assert s[2] > 1.2 and 0.8 < s[0] < 1.2 and 0.8 < s[1] < 1.2
    expected = -adv * s.unsqueeze(1) / mask.sum(1, keepdim=True) / 3 * mask
    expected[2] = 0.0
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-9)
    clipped = torch.minimum(s * adv.squeeze(1), s.clamp(0.8, 1.2) * adv.squeeze(1))
    assert loss.item() == pytest.approx(-clipped.mean().item(), rel=1e-6)
    assert stats["clip_frac"].item() == pytest.approx(1 / 3)  # one completion of three
    assert stats["clip_frac_high"].item() == pytest.approx(1 / 3) and stats["clip_frac_low"].item() == 0.0
    token_level, _ = make_grpo_loss("grpo", clip_low=0.2, clip_high=0.2)(GRPOBatch(logp, old, adv, mask))
    assert abs(token_level.item() - loss.item()) > 1e-3  # the per-token ratios give another loss


def test_grpo_loss_clips_asymmetrically_and_adds_beta_k3():
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.25]]))  # old log-probs 0: ratios 1.5, 0.5, 1.25
    old, mask = torch.zeros(1, 3), torch.ones(1, 3)
    pos, neg = torch.ones(1, 1), -torch.ones(1, 1)
    # Â > 0: ratios above 1 + ε_high = 1.3 are clipped to 1.3 → min(1.5, 1.3), 0.5, min(1.25, 1.3)
    dapo = make_grpo_loss("dapo", clip_low=0.2, clip_high=0.3)
    loss, stats = dapo(GRPOBatch(logp, old, pos, mask))
    assert loss.item() == pytest.approx(-(1.3 + 0.5 + 1.25) / 3)
    assert stats["clip_frac"].item() == pytest.approx(1 / 3)
    # Â < 0: ratios below 1 − ε_low = 0.8 are clipped → −min(−1.5, −1.3) etc.
    loss, _ = dapo(GRPOBatch(logp, old, neg, mask))
    assert loss.item() == pytest.approx((1.5 + 0.8 + 1.25) / 3)
    ref = torch.zeros(1, 3)
    with_beta = make_grpo_loss("dapo", clip_low=0.2, clip_high=0.3, beta=0.5)
    with_kl, stats = with_beta(GRPOBatch(logp, old, pos, mask, ref_logp=ref))
    k3 = (torch.exp(ref - logp) - (ref - logp) - 1).mean().item()
    assert with_kl.item() == pytest.approx(-(1.3 + 0.5 + 1.25) / 3 + 0.5 * k3, rel=1e-6)
    assert stats["kl"].item() == pytest.approx(k3, rel=1e-6)


# --- tasks and models --------------------------------------------------------------------------------------
def test_text_tasks_hold_out_prompts_and_score_completions():
    for name in tasks.TASKS:
        task = tasks.load_task(name)
        held = {ex["prompt"] for ex in task.held_out()}
        assert len(held) == 200
        train = task.sample(__import__("random").Random(0), 500)
        assert not held & {ex["prompt"] for ex in train}
        ex = train[0]
        assert text_tasks.exact_match(completion=ex["answer"], **ex) == 1.0
        assert text_tasks.exact_match(completion=ex["answer"] + "0", **ex) == 0.0
        assert -1.0 <= text_tasks.char_match(completion="x", **ex) < 1.0
    assert tasks.load_task("addition").sample(__import__("random").Random(1), 1)[0]["prompt"].endswith("=")
    with pytest.raises(ConfigError, match="allowed: addition"):
        tasks.load_task("multiplication")
    with pytest.raises(ConfigError, match="do not fit"):
        tasks.load_task("addition", {"width": 3})


def test_the_text_tasks_former_module_paths_still_resolve():
    """The tasks moved from proxrl.envs to proxrl.lm (issue 32): a ``module:function`` string naming the old module
    (a YAML config's reward_funcs or env, or the path a saved run's config holds for a function passed as an
    object) still finds the same function, and a user task built on the old path's TextTask is still a TextTask."""
    from proxrl.envs.text_tasks import TextTask as OldTextTask
    from proxrl.lm import math_tasks

    assert tasks.load_callable("proxrl.envs.text_tasks:exact_match", "reward") is text_tasks.exact_match
    assert tasks.load_callable("proxrl.envs.text_tasks:char_match", "reward") is text_tasks.char_match
    assert tasks.load_callable("proxrl.envs.math_tasks:correctness_reward", "reward") is math_tasks.correctness_reward
    assert tasks.load_task("proxrl.envs.text_tasks:reverse").name == "reverse"
    assert OldTextTask is text_tasks.TextTask


def test_char_tokenizer_round_trips_and_tiny_model_reloads_with_the_same_outputs(tmp_path):
    tok = text_tasks.char_tokenizer("0123456789+=")
    ids = tok("12+34=")["input_ids"]
    assert len(ids) == 6 and tok.decode(ids) == "12+34="
    torch.manual_seed(0)
    model = lm.tiny_causal_lm(tok, "qwen2", hidden_size=16, num_layers=1, num_heads=2)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, loaded_tok = lm.load_causal_lm(tmp_path)
    enc = loaded_tok(["1+2=", "12+34="], return_tensors="pt", padding=True)
    assert loaded_tok.padding_side == "left" and enc.attention_mask[0, 0] == 0
    with torch.no_grad():
        torch.testing.assert_close(model(**enc).logits, loaded(**enc).logits)
    with pytest.raises(ConfigError, match="not a local model folder"):
        lm.load_causal_lm(tmp_path / "missing")


def test_completion_mask_stops_after_the_first_eos():
    ids = torch.tensor([[5, 1, 7, 1], [5, 6, 7, 8], [1, 0, 0, 0]])
    assert lm.completion_mask(ids, eos_token_id=1).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]


def test_token_logps_match_the_generation_scores():
    tok = text_tasks.char_tokenizer("0123456789+=")
    torch.manual_seed(0)
    model = lm.tiny_causal_lm(tok, hidden_size=16, num_layers=1, num_heads=2)
    enc = tok(["3+4=", "12+34="], return_tensors="pt", padding=True)
    out = model.generate(
        **enc,
        generation_config=transformers.GenerationConfig(
            max_new_tokens=4,
            do_sample=True,
            top_k=0,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        ),
    )
    prompt_len = enc.input_ids.shape[1]
    completion = out.sequences[:, prompt_len:]
    scores = torch.stack(out.scores, 1).log_softmax(-1).gather(-1, completion.unsqueeze(-1)).squeeze(-1)
    mask = lm.completion_mask(completion, tok.eos_token_id)
    logp, _ = lm.token_logps(model, out.sequences, torch.cat([enc.attention_mask, mask], 1), prompt_len)
    torch.testing.assert_close(logp * mask, scores * mask, rtol=1e-4, atol=1e-5)


# --- the trainer -------------------------------------------------------------------------------------------
TINY = dict(
    tiny_hidden_size=16,
    tiny_layers=1,
    tiny_heads=2,
    warmup_steps=5,
    prompts_per_step=2,
    group_size=4,
    max_new_tokens=4,
    lr=1e-3,
    eval_every=0,
    eval_examples=8,
    tensorboard=False,
    progress=False,
    torch_threads=1,
)


def bad_reward(prompt, completion, **example):
    return "yes"


def test_grpo_steps_log_every_reward_component_and_save_through_save_pretrained(tmp_path):
    agent = GRPO(
        "addition",
        run_dir=tmp_path / "run",
        **TINY,
        total_steps=2,
        num_iterations=2,
        beta=0.1,
        clip_eps_high=0.3,
        loss_type="dapo",
        checkpoint_every=1,
        keep_checkpoints=1,
    )
    before = [p.detach().clone() for p in agent.policy.parameters()]
    rows = []
    agent.learn(callback=lambda a, row: rows.append(row))
    assert [r["global_step"] for r in rows] == [1, 2]
    assert {"reward/exact_match", "reward/char_match", "flat_groups", "kl", "clip_frac", "accuracy"} <= set(rows[0])
    assert any(not torch.equal(p, q) for p, q in zip(agent.policy.parameters(), before, strict=True))
    assert agent.reference.model is not None
    assert all(torch.equal(p, q) for p, q in zip(agent.reference.model.parameters(), before, strict=True))
    # the final model is a save_pretrained folder; loading it gives the same greedy outputs
    model, tok = lm.load_causal_lm(tmp_path / "run" / "model")
    prompts = [ex["prompt"] for ex in agent.task.held_out()[:8]]
    assert (
        lm.generate(model, tok, prompts, 1, 4, greedy=True).texts
        == lm.generate(agent.policy, agent.tokenizer, prompts, 1, 4, greedy=True).texts
    )
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step_000000002"]
    resumed = GRPO.load(tmp_path / "run")
    assert resumed.global_step == 2
    for p, q in zip(resumed.policy.parameters(), agent.policy.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_beta_zero_keeps_no_reference_model_and_gae_adds_a_value_head():
    agent = GRPO("reverse", **TINY, beta=0.0)
    assert agent.reference.model is None
    agent.learn(1)
    critic = GRPO("reverse", **TINY, advantage="gae")
    assert critic.critic is not None
    critic.learn(1)
    assert critic.critic.head.weight.abs().sum() > 0  # the value head was trained


def test_bfloat16_weights_train_with_float32_log_probs():
    from proxrl.lm.decoder import lean_decoder

    agent = GRPO("addition", **TINY, dtype="bfloat16", beta=0.1)
    assert lean_decoder(agent.policy) is not None  # bf16 runs the lean pass too (module path)
    before = [p.detach().clone() for p in agent.policy.parameters()]
    rows = []
    agent.learn(2, callback=lambda a, row: rows.append(row))
    assert all(p.dtype == torch.bfloat16 for p in agent.policy.parameters())
    assert all(math.isfinite(row["loss"]) and math.isfinite(row["kl"]) for row in rows)
    assert any((p.detach() != b).any() for p, b in zip(agent.policy.parameters(), before, strict=True))
    gens = lm.generate(agent.policy, agent.tokenizer, ["3+4="], 2, 4)
    logp, _ = lm.token_logps(agent.policy, gens.input_ids, gens.attention_mask, gens.prompt_len)
    assert logp.dtype == torch.float32


def test_reward_errors_and_bad_settings_are_clear():
    agent = GRPO("sort", **TINY, reward_funcs=("tests.test_grpo:bad_reward",))
    with pytest.raises(RewardError, match="bad_reward.*'yes'"):
        agent.learn(1)
    with pytest.raises(ConfigError, match="cannot be imported"):
        GRPO("sort", **TINY, reward_funcs=("nowhere:reward",))
    with pytest.raises(ConfigError, match="grad_accum_steps"):
        GRPO("sort", **{**TINY, "group_size": 3}, grad_accum_steps=4)
    assert GRPO("sort", **TINY, clip_eps_high=0.1).config.clip_eps_high == 0.1  # ε_high < ε_low: TRL takes it too
    with pytest.raises(ConfigError, match="clip_eps_high"):
        GRPO("sort", **TINY, clip_eps_high=-0.1)
    with pytest.raises(ConfigError, match="not a local model folder"):
        GRPO("sort", **TINY, model="/nonexistent/model")
    with pytest.raises(ConfigError, match="reward_weights has 1 entries for 2 reward_funcs"):
        GRPO("sort", **TINY, reward_funcs=("proxrl.lm.text_tasks:exact_match",) * 2, reward_weights=(1.0,))
    with pytest.raises(ConfigError, match="3 entries for the task's 2 reward functions"):
        GRPO("sort", **TINY, reward_weights=(1.0, 1.0, 1.0))
    weighted = GRPO("sort", **TINY, reward_weights=(1.0, 0.5))  # the task's exact_match and char_match
    assert [w for _, _, w in weighted.rewards.funcs] == [1.0, 0.5]


def test_reward_model_and_lora(tmp_path):
    pytest.importorskip("peft")
    tok = text_tasks.char_tokenizer("0123456789:")
    config = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=32,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
    )
    transformers.LlamaForSequenceClassification(config).save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    agent = GRPO(
        "sort",
        run_dir=tmp_path / "run",
        **TINY,
        reward_model=str(tmp_path / "rm"),
        lora=True,
        lora_r=2,
        beta=0.1,
        total_steps=1,
    )
    rows = []
    agent.learn(callback=lambda a, row: rows.append(row))
    assert "reward/reward_model" in rows[0]
    assert agent.reference.model is None  # LoRA: the reference is the base model with adapters off
    assert (tmp_path / "run" / "model" / "adapter_config.json").is_file()


def test_cli_trains_resumes_and_evaluates_grpo(tmp_path, capsys):
    from proxrl.cli import main

    run = tmp_path / "run"
    sets = [f"--set={k}={v}" for k, v in TINY.items() if k not in ("tensorboard", "progress")]
    assert (
        main(
            [
                "train",
                "grpo",
                "--env",
                "reverse",
                "--total-steps",
                "2",
                "--run-dir",
                str(run),
                "--quiet",
                *sets,
                "--set=checkpoint_every=1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "held-out exact-match accuracy" in out
    assert main(["train", "--resume", str(run), "--total-steps", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "resuming grpo from step 2" in out and "nan at the start" not in out
    assert main(["eval", str(run)]) == 0
    assert "greedy exact-match accuracy" in capsys.readouterr().out
    assert main(["train", "grpo", "--run-dir", str(tmp_path / "bad"), "--set=group_size=1"]) == 2
    assert "group_size" in capsys.readouterr().err


def test_malicious_trainer_state_is_refused(tmp_path):
    agent = GRPO("sort", **TINY)
    folder = agent.save(tmp_path / "saved")

    class Evil:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('pwned')" % str(tmp_path / "pwned"),))

    torch.save({"format_version": 2, "algo": "grpo", "x": Evil()}, folder / "trainer_state.pt")
    from proxrl import CheckpointError, load

    with pytest.raises(CheckpointError, match="only an unrestricted pickle load would rebuild, which proxrl refuses"):
        load(str(folder))
    assert not (tmp_path / "pwned").exists()


def test_a_crash_while_saving_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    agent = GRPO("sort", run_dir=run, **TINY, checkpoint_every=1)
    agent.learn(1)

    def dies(folder, *args, **kwargs):
        (Path(folder) / "half-written").parent.mkdir(parents=True, exist_ok=True)
        (Path(folder) / "half-written").write_text("x")
        raise OSError("disk full")

    monkeypatch.setattr(agent.policy, "save_pretrained", dies)
    with pytest.raises(OSError, match="disk full"):
        agent.learn(1)
    from proxrl import checkpoint

    latest = checkpoint.latest(run)
    assert not latest.parent.name.startswith(".") and checkpoint.load(latest)["global_step"] == 1
    assert GRPO.load(run).global_step == 1


def test_lr_warmup_rises_linearly_then_holds_and_resumes_where_it_was(tmp_path):
    agent = GRPO("addition", run_dir=tmp_path / "run", **TINY, lr_warmup_steps=4, total_steps=3, checkpoint_every=3)
    rows = []
    agent.learn(callback=lambda a, row: rows.append(row))
    assert [r["lr"] for r in rows] == pytest.approx([2.5e-4, 5e-4, 7.5e-4], rel=1e-12)
    assert agent.optimizer.param_groups[0]["lr"] == pytest.approx(7.5e-4, rel=1e-12)
    resumed, rows = GRPO.load(tmp_path / "run"), []
    resumed.learn(2, callback=lambda a, row: rows.append(row))
    assert [r["lr"] for r in rows] == pytest.approx([1e-3, 1e-3], rel=1e-12)


def test_sampled_accuracy_is_logged_and_tends_to_greedy_as_temperature_falls(tmp_path):
    agent = GRPO(
        "addition",
        run_dir=tmp_path / "run",
        **{**TINY, "warmup_steps": 60, "eval_examples": 40},
        eval_samples=3,
        total_steps=1,
    )
    rows = []
    agent.learn(callback=lambda a, row: rows.append(row))
    assert 0.0 <= rows[0]["sampled_accuracy"] <= 1.0 and agent.held_out.warmup_sampled is not None
    held_out = agent.task.held_out()[:40]
    greedy = dict(
        zip(
            [ex["prompt"] for ex in held_out],
            lm.generate(agent.policy, agent.tokenizer, [ex["prompt"] for ex in held_out], 1, 4, greedy=True).texts,
            strict=True,
        )
    )

    def same_as_greedy(prompt, completion, **_):
        return float(completion == greedy[prompt])

    # k samples per prompt are scored against their own prompt; near T = 0 every sample is the greedy completion
    cold = lm.accuracy(agent.policy, agent.tokenizer, held_out, 4, same_as_greedy, samples=3, temperature=1e-4)
    warm = lm.accuracy(agent.policy, agent.tokenizer, held_out, 4, same_as_greedy, samples=3, temperature=1.0)
    assert cold == 1.0 and warm < 0.9
    assert GRPO.load(tmp_path / "run").held_out == agent.held_out


def _same_weights(a, b) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_resume_keeps_the_reference_model_not_the_checkpointed_policy(tmp_path):
    agent = GRPO("addition", run_dir=tmp_path / "run", **TINY, beta=0.1, total_steps=2, checkpoint_every=2)
    start = copy.deepcopy(agent.policy)
    agent.learn()
    assert not _same_weights(agent.policy, start) and _same_weights(agent.reference.model, start)
    resumed = GRPO.load(tmp_path / "run")  # reads the reference from the run's init_model folder
    assert _same_weights(resumed.reference.model, start) and _same_weights(resumed.policy, agent.policy)
    assert not (tmp_path / "run" / "model" / "reference").exists()

    # without a run directory (no init_model) or once synced, the checkpoint holds the reference itself
    free = GRPO("addition", **TINY, beta=0.1, ref_sync_every=2)
    free.learn(1)
    assert _same_weights(GRPO.load(free.save(tmp_path / "free")).reference.model, free.reference.model)
    free.learn(1)  # step 2 syncs the reference to the policy
    assert _same_weights(free.reference.model, free.policy)
    reloaded = GRPO.load(free.save(tmp_path / "free"))
    assert _same_weights(reloaded.reference.model, free.policy)

    shutil.rmtree(tmp_path / "run" / "init_model")
    with pytest.raises(CheckpointError, match="init_model"):
        GRPO.load(tmp_path / "run")


def test_every_end_token_ends_a_completion_and_special_tokens_stay_in_the_text(tmp_path):
    tok = text_tasks.char_tokenizer("0123456789+=")
    eos, pad, unk = tok.eos_token_id, tok.pad_token_id, tok.unk_token_id
    one, two, nine = (tok.convert_tokens_to_ids(c) for c in "129")
    ids = torch.tensor([[one, pad, two, eos], [one, nine, two, two], [two, unk, eos, pad]])
    mask = lm.completion_mask(ids, [eos, nine])  # a second end token, as chat models' generation configs list
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]]
    assert lm.completion_texts(tok, ids, mask, [eos, nine]) == ["1<pad>2", "1", "2<unk>"]
    lean, plain = (lm.tiny_causal_lm(tok, hidden_size=16, num_layers=1, num_heads=2) for _ in range(2))
    plain.config.attention_dropout = 0.1  # not supported by the lean path: transformers' generate samples
    assert lean_decoder(lean) is not None and lean_decoder(plain) is None
    for model in (lean, plain):  # both stop at either end token
        model.generation_config.eos_token_id = [eos, nine]
        assert lm.end_token_ids(model, tok) == sorted({eos, nine})
        gens = lm.generate(model, tok, ["12+3="] * 4, 8, 6)
        completion = gens.input_ids[:, gens.prompt_len :]
        for row, m in zip(completion.tolist(), gens.mask.tolist(), strict=True):
            n = sum(m)
            assert all(t not in (eos, nine) for t in row[: n - 1])
            assert n == len(row) or row[n - 1] in (eos, nine)


def test_evaluation_does_not_change_the_training_trajectory():
    runs = []
    for eval_samples in (0, 3):
        agent = GRPO("addition", **{**TINY, "eval_every": 1}, eval_samples=eval_samples, total_steps=2)
        agent.learn()
        runs.append([p.detach().clone() for p in agent.policy.parameters()])
    assert all(torch.equal(p, q) for p, q in zip(*runs, strict=True))


def test_ref_sync_with_lora_is_refused():
    with pytest.raises(ConfigError, match="ref_sync_every"):
        GRPO("addition", **TINY, lora=True, ref_sync_every=5)


def test_a_checkpoint_without_a_reference_entry_resumes_into_checkpoints_that_hold_one(tmp_path):
    """A checkpoint saved with β = 0 (or by an older proxrl) names no reference: resumed with β > 0, the reference is
    the loaded policy, and the next checkpoint keeps a copy instead of pointing at the folder it was loaded from."""
    agent = GRPO("addition", **TINY, beta=0.0, total_steps=1)
    agent.learn()
    saved = agent.save(tmp_path / "b0")
    resumed = GRPO.load(saved, beta=0.1)
    assert resumed.reference.source is None and _same_weights(resumed.reference.model, agent.policy)
    resumed.save(tmp_path / "next")
    shutil.rmtree(saved)
    assert _same_weights(GRPO.load(tmp_path / "next").reference.model, agent.policy)


def test_importing_proxrl_leaves_the_hosts_environment_alone_and_loading_stays_local(tmp_path):
    # a library must not set HF_HUB_OFFLINE for its host process; proxrl passes local_files_only where it loads
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    code = (
        "import os, proxrl, proxrl.lm, proxrl.algos.grpo; print(sorted(k for k in os.environ if k.startswith('HF_')))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    with pytest.raises(ConfigError, match="not a local model folder"):
        lm.load_causal_lm(tmp_path / "missing")
    (tmp_path / "hub_like").mkdir()
    (tmp_path / "hub_like" / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ConfigError, match="no file named model.safetensors"):  # no download is attempted
        lm.load_causal_lm(tmp_path / "hub_like")


def test_a_version_2_grpo_checkpoint_is_migrated_and_version_1_refused(tmp_path):
    # one rule for every checkpoint: a format version; v2 GRPO states lack the keys v3 added (reference, warm-up
    # and sampled accuracies) and load with the meaning their absence had; a version without a migration is refused
    from proxrl import checkpoint

    agent = GRPO("sort", **TINY, beta=0.1)
    folder = agent.save(tmp_path / "saved")
    state = torch.load(folder / checkpoint.TRAINER_STATE, weights_only=True)
    assert state["format_version"] == checkpoint.FORMAT_VERSION == 5  # GRPO's state is the same in v3 and v4
    for key in ("reference", "warmup_accuracy", "last_sampled_accuracy", "warmup_sampled_accuracy"):
        del state[key]
    state["config"] += "num_envs: 8\nvectorization: auto\nstop_return: null\n"  # v2 configs held these, unused
    # before v5, loss_type was `aggregation` with proxrl's own names (token: one mean over the batch's tokens)
    state["config"] = state["config"].replace("loss_type: grpo\n", "aggregation: token\n")
    assert "aggregation: token" in state["config"]
    state["format_version"] = 2
    checkpoint.atomic_save(state, folder / checkpoint.TRAINER_STATE)
    resumed = GRPO.load(folder)
    assert resumed.reference.model is not None and resumed.held_out.warmup is None
    assert resumed.config.loss_type == "dapo"
    for p, q in zip(resumed.reference.model.parameters(), agent.policy.parameters(), strict=True):
        torch.testing.assert_close(p, q)  # the reference is the loaded policy's copy, as v2 meant
    state["format_version"] = 1
    checkpoint.atomic_save(state, folder / checkpoint.TRAINER_STATE)
    with pytest.raises(CheckpointError, match="format version 1, written by an older proxrl"):
        GRPO.load(folder)


def test_pruned_checkpoint_folders_leave_sight_before_they_are_deleted(tmp_path, monkeypatch):
    # a kill while an old checkpoint folder is being deleted must not leave a visible half folder: pruning renames
    # it to a hidden name first (here the delete "dies" right after), and the next checkpoint clears leftovers
    from proxrl import checkpoint

    agent = GRPO("sort", run_dir=tmp_path / "run", **TINY, total_steps=1, checkpoint_every=1, keep_checkpoints=1)
    agent.learn()
    real_rmtree = checkpoint.shutil.rmtree
    monkeypatch.setattr(checkpoint.shutil, "rmtree", lambda *a, **k: None)  # killed mid-prune
    agent.learn(1)
    root = tmp_path / "run" / "checkpoints"
    assert [p.name for p in root.glob("step_*")] == ["step_000000002"]
    assert [p.name for p in root.glob(".step_*.del")] == [".step_000000001.del"]
    monkeypatch.setattr(checkpoint.shutil, "rmtree", real_rmtree)
    agent.learn(1)
    assert [p.name for p in root.glob("step_*")] == ["step_000000003"] and not list(root.glob(".step_*.del"))
    assert GRPO.load(tmp_path / "run").global_step == 3


def test_the_warmup_stops_at_its_target_and_without_one_runs_every_step():
    """warmup_target ends the supervised warm-up once greedy exact match on fresh training prompts reaches it
    (checked every 50 steps); 0 keeps the fixed-length warm-up, batch for batch."""
    task = text_tasks.addition()
    tokenizer = text_tasks.char_tokenizer(task.alphabet)

    def warm(target: float, score: object = text_tasks.exact_match) -> list[float]:
        torch.manual_seed(0)
        model = lm.tiny_causal_lm(tokenizer, "llama", 16, 1, 2)
        return lm.supervised_warmup(model, tokenizer, task.sample, 120, seed=0, target=target, score=score)

    fixed = warm(0.0)
    assert len(fixed) == 120
    always_right = warm(0.5, score=lambda *a, **k: 1.0)  # the first check (step 50) finds the target reached
    assert always_right == fixed[:50]  # and the probe prompts did not change the training batches
    never_right = warm(0.5, score=lambda *a, **k: 0.0)  # checked at 50 and 100, never reached: every step runs
    assert never_right == fixed


def test_the_renamed_aggregation_key_says_what_replaced_it():
    with pytest.raises(ConfigError, match="config key 'aggregation' of grpo is now loss_type .*sequence is grpo"):
        GRPO("addition", aggregation="sequence")
    with pytest.raises(ConfigError, match="importance_sampling_level=sequence .*set advantage=group"):
        GRPO("addition", importance_sampling_level="sequence", advantage="gae")
