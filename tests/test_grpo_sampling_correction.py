"""The sampler's log-probabilities and the correction for a sampler that differs from the trainer (issue 18): each
generator (the lean decoder, ``model.generate``) returns the log-probability of every token it drew under the
distribution it drew from, and ``sampling_correction`` weights each token's surrogate by π_old/μ, truncated (TIS)
or masked (MIS), as TRL's ``vllm_importance_sampling_mode``."""

from __future__ import annotations

import math

import pytest
import torch

transformers = pytest.importorskip("transformers")

from proxrl import GRPO, lm  # noqa: E402
from proxrl.config import ConfigError  # noqa: E402
from proxrl.lm import text_tasks  # noqa: E402
from proxrl.objectives import GRPOBatch, make_grpo_loss, sampling_correction  # noqa: E402
from test_decoder import VOCAB, tiny, tiny_gpt2  # noqa: E402
from test_grpo_sampling import TINY  # noqa: E402
from test_grpo_equations import completion_logps  # noqa: E402


def test_each_mode_weights_tokens_and_completions_as_written():
    # two completions: 3 tokens and 1 token (then padding, whose values must not count)
    old = torch.tensor([[-1.0, -2.0, -0.5, -9.0], [-0.1, -7.0, -7.0, -7.0]])
    sampler = torch.tensor([[-1.5, -1.0, -0.5, 3.0], [-2.1, 5.0, 5.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    # π_old/μ per token: e^0.5, e^-1, 1 | e^2
    per_token = torch.tensor([[math.exp(0.5), math.exp(-1.0), 1.0, 1.0], [math.exp(2.0), 1.0, 1.0, 1.0]])
    w = sampling_correction(old, sampler, mask, "token_truncate", 3.0)
    torch.testing.assert_close(w, per_token.clamp(max=3.0))  # e^2 = 7.39 truncated at 3
    w = sampling_correction(old, sampler, mask, "token_truncate", 3.0, 0.5)
    torch.testing.assert_close(w, per_token.clamp(0.5, 3.0))  # e^-1 = 0.37 raised to 0.5
    w = sampling_correction(old, sampler, mask, "token_mask", 3.0, 0.5)
    expected = per_token.clone()
    expected[0, 1] = expected[1, 0] = 0.0  # outside [0.5, 3]: dropped
    torch.testing.assert_close(w, expected)
    # sequence: the product over the completion's tokens (e^-0.5 and e^2), as one weight per completion
    w = sampling_correction(old, sampler, mask, "sequence_truncate", 3.0)
    torch.testing.assert_close(w, torch.tensor([[math.exp(-0.5)], [3.0]]))
    w = sampling_correction(old, sampler, mask, "sequence_mask", 3.0, None)
    torch.testing.assert_close(w, torch.tensor([[math.exp(-0.5)], [0.0]]))
    torch.testing.assert_close(sampling_correction(old, sampler, mask, "token_truncate", None), per_token)
    with pytest.raises(ValueError, match="unknown sampling correction 'tis'"):
        sampling_correction(old, sampler, mask, "tis")


def test_the_weight_multiplies_each_tokens_surrogate_and_not_the_kl_term():
    torch.manual_seed(0)
    logp = torch.randn(2, 3, requires_grad=True)
    old, ref = torch.randn(2, 3), torch.randn(2, 3)
    adv, mask = torch.tensor([[1.0], [-0.5]]), torch.ones(2, 3)
    w = torch.tensor([[0.2, 1.0, 3.0], [0.0, 2.0, 0.5]])
    dapo = make_grpo_loss("dapo", clip_low=0.2, clip_high=0.2, beta=0.1)
    loss, _ = dapo(GRPOBatch(logp, old, adv, mask, ref_logp=ref, sampling_weight=w))
    ratio = (logp - old).exp()
    surrogate = torch.minimum(ratio * adv, ratio.clamp(0.8, 1.2) * adv)
    k3 = (ref - logp).exp() - (ref - logp) - 1
    torch.testing.assert_close(loss, (-(surrogate * w) + 0.1 * k3).sum() / 6)


@pytest.mark.parametrize("top_p", [1.0, 0.7])
def test_the_lean_decoder_returns_the_log_prob_of_each_draw_under_its_sampling_distribution(top_p, tmp_path):
    """μ(o_t) = π(o_t)/Z_t on the top-p nucleus (Z_t its mass under softmax(logits/T)), π with p = 1; the draws
    are the ones made without asking for the log-probs."""
    model, tok = tiny("llama", tmp_path)
    prompts = ["3+4=", "12+34="]
    torch.manual_seed(3)
    plain = lm.generate(model, tok, prompts, group_size=4, max_new_tokens=5, temperature=0.8, top_p=top_p)
    torch.manual_seed(3)
    gens = lm.generate(model, tok, prompts, 4, 5, 0.8, top_p, sampling_logps=True)
    assert gens.input_ids.tolist() == plain.input_ids.tolist() and plain.sampling_logps is None
    with torch.no_grad():
        pi = completion_logps(model, gens, 0.8)
        positions = (gens.attention_mask.cumsum(1) - 1).clamp(min=0)
        logits = model(input_ids=gens.input_ids, attention_mask=gens.attention_mask, position_ids=positions).logits
    logits = logits[:, gens.prompt_len - 1 : -1].float() / 0.8
    probs = logits.softmax(-1)
    mu = pi.clone()
    if top_p < 1.0:  # the nucleus: tokens whose more likely tokens' mass is below p
        above = (probs[..., None, :] > probs[..., :, None]).float()  # [B, L, V, V]: token j more likely than i
        before = (above * probs[..., None, :]).sum(-1)
        mass = (probs * (before < top_p)).sum(-1)
        mu = pi - mass.log()
    m = gens.mask.bool()
    torch.testing.assert_close(gens.sampling_logps[m], mu[m], rtol=1e-4, atol=1e-4)
    assert (gens.sampling_logps[~m] == 0).all()
    if top_p < 1.0:
        assert (gens.sampling_logps[m] - pi[m]).max() > 0.05  # the nucleus changed some draw's probability


def test_model_generate_returns_its_log_probs_too(tmp_path):
    tok = text_tasks.char_tokenizer(VOCAB)
    gpt2 = tiny_gpt2(tok)
    gpt2.eval()
    assert lm.lean_decoder(gpt2) is None
    torch.manual_seed(0)
    gens = lm.generate(gpt2, tok, ["3+4=", "1+2="], 3, 4, temperature=1.3, sampling_logps=True)
    with torch.no_grad():
        logits = gpt2(input_ids=gens.input_ids, attention_mask=gens.attention_mask).logits
    logits = logits[:, gens.prompt_len - 1 : -1].float() / 1.3
    pi = logits.log_softmax(-1).gather(-1, gens.input_ids[:, gens.prompt_len :, None]).squeeze(-1)
    m = gens.mask.bool()
    torch.testing.assert_close(gens.sampling_logps[m], pi[m], rtol=1e-4, atol=1e-4)


def test_a_step_with_tis_weights_the_tokens_and_logs_the_mismatch(tmp_path):
    """top_p = 0.8: μ ≥ π on every token (renormalised nucleus), so π_old/μ ≤ 1 and some weights < 1; the logged
    gap is the mean |ln π_old − ln μ|. top_p = 1: the sampler is the policy, the weights are 1 to float precision
    and the step equals the uncorrected step."""
    agent = GRPO("addition", **TINY, top_p=0.8, sampling_correction="token_truncate", seed=0)
    seen = {}
    real = agent.loss

    def spy(batch):
        seen["weight"] = batch.sampling_weight
        return real(batch)

    agent.loss = spy
    rows = []
    agent.learn(1, callback=lambda _a, row: rows.append(row))
    w = seen["weight"]
    assert w is not None and (w <= 1 + 1e-5).all() and (w < 0.99).any()
    assert rows[0]["sampling/logp_gap_mean"] > 0.01
    assert rows[0]["sampling/logp_gap_max"] >= rows[0]["sampling/logp_gap_mean"]
    assert 0 < rows[0]["sampling/is_weight_mean"] < 1
    assert rows[0]["sampling/is_weight_corrected"] == 0.0  # no weight above the cap of 3

    def one_step(**extra):
        a = GRPO("addition", **TINY, seed=1, **extra)
        out = []
        a.learn(1, callback=lambda _a, row: out.append(row))
        return a, out[0]

    corrected, row = one_step(sampling_correction="sequence_mask")
    plain, plain_row = one_step()
    assert row["sampling/logp_gap_max"] < 1e-4 and abs(row["sampling/is_weight_mean"] - 1) < 1e-4
    assert abs(row["loss"] - plain_row["loss"]) < 1e-5
    for p, q in zip(corrected.policy.parameters(), plain.policy.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_a_correction_bound_below_zero_is_refused():
    with pytest.raises(ConfigError, match="sampling_correction_max"):
        GRPO("addition", **TINY, sampling_correction="token_truncate", sampling_correction_max=-1.0)
