"""The lean decoder (proxrl/lm/decoder.py): the same logits, log-probs, gradients and greedy completions as the
Hugging Face model it runs, for each supported architecture; prefix sharing changes nothing; sampling follows
softmax(logits / T) within the top-p nucleus; anything it cannot reproduce falls back to transformers."""

import pytest
import torch

from proxrl.lm import text_tasks

transformers = pytest.importorskip("transformers")

from proxrl import lm  # noqa: E402
from proxrl.lm.decoder import LeanDecoder, lean_decoder, next_token  # noqa: E402

VOCAB = "0123456789+="


def tiny(arch: str, tmp_path, dtype=torch.float32):
    """A random tiny model of ``arch`` (grouped-query attention: 4 heads, 2 key/value heads), saved and loaded
    back through lm.load_causal_lm."""
    tok = text_tasks.char_tokenizer(VOCAB)
    configs = {
        "llama": transformers.LlamaConfig,
        "mistral": transformers.MistralConfig,
        "qwen2": transformers.Qwen2Config,
        "qwen3": transformers.Qwen3Config,
    }
    config = configs[arch](
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        head_dim=8,
        max_position_embeddings=64,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    for name, p in model.named_parameters():  # random norms and biases too, so that each one matters
        if "norm" in name or "bias" in name:
            p.data.uniform_(0.5, 1.5)
    model.save_pretrained(tmp_path / arch)
    tok.save_pretrained(tmp_path / arch)
    return lm.load_causal_lm(tmp_path / arch, dtype=dtype)


def reference_logps(model, ids, mask, prompt_len):
    """log π of the completion tokens from the model's own forward."""
    logits = model(input_ids=ids, attention_mask=mask).logits[:, prompt_len - 1 : -1].float()
    return logits.log_softmax(-1).gather(-1, ids[:, prompt_len:, None]).squeeze(-1)


def batch(tok, prompts, group_size, completion_len=5, seed=0):
    """Left-padded prompts, each repeated G times, followed by random completion tokens."""
    enc = tok(prompts, return_tensors="pt", padding=True)
    gen = torch.Generator().manual_seed(seed)
    rows = len(prompts) * group_size
    completion = torch.randint(3, len(tok), (rows, completion_len), generator=gen)
    ids = torch.cat([enc.input_ids.repeat_interleave(group_size, 0), completion], 1)
    mask = torch.cat([enc.attention_mask.repeat_interleave(group_size, 0), torch.ones_like(completion)], 1)
    return ids, mask, enc.input_ids.shape[1]


@pytest.mark.parametrize("arch", ["llama", "mistral", "qwen2", "qwen3"])
def test_lean_logps_and_gradients_equal_the_models_own_with_and_without_prefix_sharing(arch, tmp_path):
    model, tok = tiny(arch, tmp_path)
    assert lean_decoder(model) is not None
    ids, mask, prompt_len = batch(tok, ["3+4=", "12+34=", "5="], group_size=3)
    ref = reference_logps(model, ids, mask, prompt_len)
    with torch.no_grad():  # the fused-weight pass (reference model; llama, mistral, qwen2) and the module pass
        for group in (1, 3):
            torch.testing.assert_close(
                lm.token_logps(model, ids, mask, prompt_len, group_size=group)[0], ref, rtol=1e-5, atol=1e-5
            )
    (ref.sum()).backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    for group in (1, 3):
        model.zero_grad()
        logp, _ = lm.token_logps(model, ids, mask, prompt_len, group_size=group)
        torch.testing.assert_close(logp, ref, rtol=1e-5, atol=1e-5)
        logp.sum().backward()
        for p, g in zip(model.parameters(), ref_grads, strict=True):
            torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)


def test_long_sequences_use_sdpa_and_sliding_windows_fall_back(tmp_path):
    model, tok = tiny("mistral", tmp_path)
    ids, mask, prompt_len = batch(tok, ["1+2=" * 40, "3="], group_size=2)  # 160-token prompts: SDPA path
    with torch.no_grad():
        torch.testing.assert_close(
            lm.token_logps(model, ids, mask, prompt_len, group_size=2)[0],
            reference_logps(model, ids, mask, prompt_len),
            rtol=1e-5,
            atol=1e-5,
        )
    assert lean_decoder(model).max_length == model.config.sliding_window == 4096
    model.config.sliding_window = 100  # Mistral keeps its window in the config: longer sequences use transformers
    assert LeanDecoder(model).max_length == 100


def test_value_head_hidden_states_equal_the_models_last_hidden_states(tmp_path):
    model, tok = tiny("llama", tmp_path)
    ids, mask, prompt_len = batch(tok, ["3+4=", "12+34="], group_size=2)
    hidden = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
    _, lean = lm.token_logps(model, ids, mask, prompt_len, with_hidden=True, group_size=2)
    torch.testing.assert_close(lean, hidden[:, prompt_len - 1 : -1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_greedy_completions_equal_transformers_generate(arch, tmp_path):
    model, tok = tiny(arch, tmp_path)
    prompts = ["3+4=", "12+34=", "5=", "99+1="]
    ours = lm.generate(model, tok, prompts, group_size=1, max_new_tokens=6, greedy=True)
    enc = tok(prompts, return_tensors="pt", padding=True)
    theirs = model.generate(
        **enc,
        generation_config=transformers.GenerationConfig(
            max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id
        ),
    )
    width = ours.input_ids.shape[1]
    assert ours.input_ids.tolist() == theirs[:, :width].tolist()
    assert (theirs[:, width:] == tok.pad_token_id).all()  # generate may run on after every row ended


def test_sampling_follows_the_policy_and_stops_at_eos(tmp_path):
    model, tok = tiny("llama", tmp_path)
    torch.manual_seed(1)
    gens = lm.generate(model, tok, ["3+4="], group_size=4000, max_new_tokens=3, temperature=0.7)
    first = gens.input_ids[:, gens.prompt_len]
    with torch.no_grad():
        probs = (model(**tok(["3+4="], return_tensors="pt")).logits[0, -1] / 0.7).softmax(-1)
    freq = torch.bincount(first, minlength=probs.numel()).float() / first.numel()
    assert (freq - probs).abs().max().item() < 0.03  # 4000 draws: standard error ≤ 0.008
    ended = gens.input_ids[:, gens.prompt_len :] == tok.eos_token_id
    after_eos = ended.int().cumsum(1) - ended.int() > 0
    assert (gens.input_ids[:, gens.prompt_len :][after_eos] == tok.pad_token_id).all()
    assert (gens.mask.sum(1) == (~after_eos).sum(1)).all()


def test_top_p_keeps_the_smallest_nucleus_reaching_p():
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log().repeat(3000, 1)
    torch.manual_seed(0)
    assert set(next_token(logits, 1.0, 0.8, False).tolist()) == {0, 1}  # 0.5 + 0.3 reaches 0.8
    assert set(next_token(logits, 1.0, 0.81, False).tolist()) == {0, 1, 2}
    assert set(next_token(logits, 1.0, 0.3, False).tolist()) == {0}  # the most likely token always stays
    assert next_token(logits[:1], 1.0, 1.0, True).tolist() == [0]


def test_lora_adapters_are_applied_and_disabled_as_in_peft(tmp_path):
    peft = pytest.importorskip("peft")
    base, tok = tiny("llama", tmp_path)
    model = peft.get_peft_model(base, peft.LoraConfig(r=2, target_modules="all-linear", lora_dropout=0.0))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_()  # peft starts B at zero: make the adapters change the output
    assert lean_decoder(model) is not None
    ids, mask, prompt_len = batch(tok, ["3+4=", "12+34="], group_size=2)
    with torch.no_grad():
        torch.testing.assert_close(
            lm.token_logps(model, ids, mask, prompt_len)[0],
            reference_logps(model, ids, mask, prompt_len),
            rtol=1e-5,
            atol=1e-5,
        )
        with model.disable_adapter():
            off = lm.token_logps(model, ids, mask, prompt_len, group_size=2)[0]
            torch.testing.assert_close(off, reference_logps(model, ids, mask, prompt_len), rtol=1e-5, atol=1e-5)
        assert (off - lm.token_logps(model, ids, mask, prompt_len)[0]).abs().max() > 1e-3


def test_bfloat16_models_match_within_bfloat16_precision(tmp_path):
    model, tok = tiny("qwen2", tmp_path, dtype=torch.bfloat16)
    assert lean_decoder(model) is not None
    ids, mask, prompt_len = batch(tok, ["3+4=", "12+34="], group_size=2)
    with torch.no_grad():
        torch.testing.assert_close(
            lm.token_logps(model, ids, mask, prompt_len, group_size=2)[0],
            reference_logps(model, ids, mask, prompt_len),
            rtol=0.05,
            atol=0.05,
        )


def tiny_gpt2(tok):
    """A random one-layer GPT-2: an architecture the lean decoder does not cover."""
    return transformers.GPT2LMHeadModel(
        transformers.GPT2Config(
            vocab_size=len(tok),
            n_embd=16,
            n_layer=1,
            n_head=2,
            n_positions=32,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            bos_token_id=tok.eos_token_id,
        )
    )


def test_other_architectures_and_mismatching_models_use_transformers(tmp_path):
    tok = text_tasks.char_tokenizer(VOCAB)
    gpt2 = tiny_gpt2(tok)
    assert lean_decoder(gpt2) is None
    gens = lm.generate(gpt2, tok, ["3+4="], group_size=2, max_new_tokens=3)
    assert gens.input_ids.shape[0] == 2
    model, tok = tiny("llama", tmp_path)
    model.model.norm.register_forward_hook(lambda module, args, out: out * 1.5)  # the lean pass skips norm hooks
    assert lean_decoder(model) is None  # so it no longer reproduces this model: transformers runs it
    ids, mask, prompt_len = batch(tok, ["3+4="], group_size=2)
    with torch.no_grad():
        torch.testing.assert_close(
            lm.token_logps(model, ids, mask, prompt_len)[0], reference_logps(model, ids, mask, prompt_len)
        )


def test_a_decoder_does_not_keep_its_model_alive_and_dynamic_rope_falls_back(tmp_path):
    import gc
    import weakref

    model, _ = tiny("llama", tmp_path)
    assert lean_decoder(model) is not None
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None  # the cache holds the model weakly, and so does its decoder
    dynamic, _ = tiny("llama", tmp_path)
    dynamic.config.rope_parameters = {**dynamic.config.rope_parameters, "rope_type": "dynamic", "factor": 2.0}
    assert lean_decoder(dynamic) is None
