"""Causal language models for GRPO. This module: loading a local folder, tiny models from a config, sampling G
completions per prompt, the completion mask, per-token log-probs, a supervised warm-up and exact-match accuracy.
Beside it: :mod:`.config` (the LM run settings GRPO's config extends), :mod:`.starting` (the starting policy:
a folder, or the task's warmed-up tiny model), :mod:`.decoder` (the lean sampling/scoring pass), :mod:`.rewards`,
:mod:`.reference` (π_ref and its save/restore), :mod:`.critic` (the token critic of ``advantage: gae``),
:mod:`.evaluation` (held-out accuracy), :mod:`.step_stats` (a step's logged row), :mod:`.trainer` (what a trainer of
language models shares: evaluation, summary, its folder checkpoint and load), :mod:`.migrations` (GRPO's checkpoint
migrations).

Everything runs offline: models and tokenizers come from local folders (``from_pretrained(path)``) or are built
from a config; nothing is fetched from a hub. ``transformers`` is the ``lm`` extra (``pip install proxrl[lm]``).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import ConfigError
from .decoder import lean_decoder
from .distributed import SINGLE, World


def require_transformers() -> Any:
    """The ``transformers`` module, or a ConfigError saying how to install it."""
    try:
        import transformers
    except ImportError:
        raise ConfigError("GRPO needs transformers: pip install 'proxrl[lm]' (or pip install transformers)") from None
    transformers.utils.logging.disable_progress_bar()  # per-shard loading bars drown proxrl's own progress
    return transformers


def load_causal_lm(path: str | Path, dtype: torch.dtype = torch.float32, device: str = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer) from a local folder written by ``save_pretrained``; a clear error if it is not one.
    A tokenizer without a pad token pads with EOS; padding is on the left for batched generation."""
    model = load_model(path, dtype, device)
    tokenizer = load_tokenizer(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model, tokenizer


def load_tokenizer(path: str | Path) -> Any:
    """The tokenizer of a local folder. One saved from a bare ``tokenizer.json`` (``tokenizer_class``
    TokenizersBackend or PreTrainedTokenizerFast, as proxrl's task tokenizers are) is read back as exactly that:
    transformers 5's AutoTokenizer would pick the model type's class (Qwen2Tokenizer beside a qwen2 config.json),
    which rebuilds the pre-tokenizer and gives other ids (measured on the gsm8k_style BPE)."""
    transformers = require_transformers()
    config = Path(path) / "tokenizer_config.json"
    saved = json.loads(config.read_text()).get("tokenizer_class") if config.is_file() else None
    if saved in ("TokenizersBackend", "PreTrainedTokenizerFast"):
        return transformers.PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True)
    return transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)


def load_model(path: str | Path, dtype: torch.dtype = torch.float32, device: str = "cpu") -> Any:
    """The causal LM of a local ``save_pretrained`` folder (no tokenizer); a clear error if it is not one."""
    transformers = require_transformers()
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"model={str(path)!r} is not a local model folder (no config.json); give a folder "
            "written by save_pretrained, or leave model unset to build the task's tiny model"
        )
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    except (ValueError, OSError, KeyError) as e:  # no model_type, an architecture transformers does not know, …
        raise ConfigError(
            f"model={str(path)!r}: transformers cannot load it as a causal LM: {_first_line(e)}"
        ) from None
    return model.to(device)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def tiny_causal_lm(
    tokenizer: Any,
    arch: str = "llama",
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    max_length: int = 64,
) -> Any:
    """A randomly initialised Llama- or Qwen2-style causal LM sized for a CPU, for ``tokenizer``'s vocabulary."""
    transformers = require_transformers()
    configs = {
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
        "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
    }
    if arch not in configs:
        raise ConfigError(f"tiny_arch={arch!r}; allowed: {', '.join(configs)}")
    config_cls, model_cls = configs[arch]
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        intermediate_size=4 * hidden_size,
        max_position_embeddings=max_length,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    return model_cls(config)


def end_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The ids that end a completion: the tokenizer's EOS and every EOS of the model's generation config (chat
    models often end turns on another token, e.g. Llama 3's <|eot_id|>, Qwen2.5's <|im_end|>)."""
    ids = [tokenizer.eos_token_id]
    extra = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids += extra if isinstance(extra, (list, tuple)) else [extra]
    return sorted({int(i) for i in ids if i is not None})


def completion_mask(completion_ids: Tensor, eos_token_id: int | list[int]) -> Tensor:
    """1 for each generated token up to and including the first end token (``eos_token_id``: one id or several),
    0 after it (padding) ``[B, L]``."""
    is_eos = torch.isin(completion_ids, torch.as_tensor(eos_token_id, device=completion_ids.device))
    length = completion_ids.shape[1]
    first = torch.where(is_eos.any(1), is_eos.int().argmax(1), torch.full_like(is_eos[:, 0], length, dtype=torch.long))
    return (torch.arange(length, device=completion_ids.device)[None] <= first[:, None]).long()


def token_logps(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor,
    prompt_len: int,
    temperature: float = 1.0,
    with_hidden: bool = False,
    group_size: int = 1,
) -> tuple[Tensor, Tensor | None]:
    """log π(token_t | prefix) for every completion token ``[B, L]`` from one forward pass over prompt +
    completion (logits divided by the sampling temperature, as the policy that sampled them); with
    ``with_hidden`` also the last hidden states that predicted them ``[B, L, H]`` (for a value head).
    ``group_size`` G > 1 says rows come in runs of G completions of one prompt (``Generations``' order), so the
    lean decoder runs each prompt once."""
    decoder = lean_decoder(model)
    if decoder is not None and input_ids.shape[1] <= decoder.max_length:
        hidden = decoder.completion_hidden(input_ids, attention_mask, prompt_len, group_size)
        logits = decoder.logits(hidden).float()  # the LM head on completion positions only
    else:
        out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=with_hidden)
        logits = out.logits[:, prompt_len - 1 : -1].float()
        hidden = out.hidden_states[-1][:, prompt_len - 1 : -1] if with_hidden else None
    if temperature != 1.0:
        logits = logits / temperature
    targets = input_ids[:, prompt_len:]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return logp, hidden if with_hidden else None


@dataclass
class Generations:
    """G completions for each of P prompts, rows ordered prompt-major (row i·G + g)."""

    input_ids: Tensor  # [P·G, prompt_len + L] prompt (left-padded) + completion
    attention_mask: Tensor  # [P·G, prompt_len + L], 0 on prompt padding and after each completion's EOS
    prompt_len: int
    mask: Tensor  # [P·G, L] completion tokens that count (up to and including the first EOS)
    texts: list[str]  # decoded completions: the tokens before the end token (see completion_texts)
    group_size: int = 1  # G: rows i·G … i·G + G − 1 share prompt i
    truncated: Tensor | None = None  # [P·G] bool: no end token within max_new_tokens (None: not recorded)
    # [P·G, L] log-probability of each completion token under the distribution the sampler drew it from (after
    # temperature and top-p; 0 after the end), for truncated importance sampling; None: not asked for
    sampling_logps: Tensor | None = None

    def groups(self, indices: list[int]) -> Generations:
        """The groups (prompts) ``indices``, in that order."""
        rows = torch.tensor([i * self.group_size + g for i in indices for g in range(self.group_size)])
        return Generations(
            self.input_ids[rows],
            self.attention_mask[rows],
            self.prompt_len,
            self.mask[rows],
            [self.texts[r] for r in rows.tolist()],
            self.group_size,
            None if self.truncated is None else self.truncated[rows],
            None if self.sampling_logps is None else self.sampling_logps[rows],
        )

    def to(self, device: torch.device | str) -> Generations:
        """The same generations with their tensors on ``device``."""
        return replace(
            self,
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            mask=self.mask.to(device),
            truncated=None if self.truncated is None else self.truncated.to(device),
            sampling_logps=None if self.sampling_logps is None else self.sampling_logps.to(device),
        )

    @staticmethod
    def concat(parts: list[Generations], pad_token_id: int) -> Generations:
        """One batch of ``parts`` (generated from different prompts, e.g. in rounds of dynamic sampling): prompts
        re-padded on the left and completions on the right to the longest of each."""
        prompt_len = max(p.prompt_len for p in parts)
        length = max(p.mask.shape[1] for p in parts)
        ids, attention, masks = [], [], []
        for p in parts:
            left, right = prompt_len - p.prompt_len, length - p.mask.shape[1]
            ids.append(F.pad(p.input_ids, (left, right), value=pad_token_id))
            attention.append(F.pad(p.attention_mask, (left, right), value=0))
            masks.append(F.pad(p.mask, (0, right), value=0))
        truncated = None if any(p.truncated is None for p in parts) else torch.cat([p.truncated for p in parts])
        logps = None
        if all(p.sampling_logps is not None for p in parts):
            logps = torch.cat([F.pad(p.sampling_logps, (0, length - p.mask.shape[1])) for p in parts])
        texts = [t for p in parts for t in p.texts]
        return Generations(
            torch.cat(ids),
            torch.cat(attention),
            prompt_len,
            torch.cat(masks),
            texts,
            parts[0].group_size,
            truncated,
            logps,
        )


@torch.no_grad()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    group_size: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    greedy: bool = False,
    world: World = SINGLE,
    sampling_logps: bool = False,
) -> Generations:
    """Sample ``group_size`` completions per prompt (or one greedy completion each with ``greedy``). With a
    data-parallel ``world`` the prompts are this process's equal share of the batch, and the lean decoder draws
    what one process would for the whole batch (the result and the random state do not depend on the number of
    processes); ``model.generate`` draws a stream of its own per process instead. ``sampling_logps``: also
    return each sampled token's log-probability under the sampler's distribution (``Generations.sampling_logps``),
    from whichever generator ran: the lean decoder or ``model.generate``."""
    transformers = require_transformers()
    device = next(model.parameters()).device
    enc = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left").to(device)
    prompt_len = enc.input_ids.shape[1]
    repeat = 1 if greedy else group_size
    decoder = lean_decoder(model)
    end_ids = end_token_ids(model, tokenizer)
    if decoder is not None and prompt_len + max_new_tokens <= decoder.max_length:
        was_training = model.training
        if decoder.has_dropout:  # toggling train/eval visits every module (~1 ms): only when it matters
            model.eval()
        rows = len(prompts) * repeat
        rows_of = (world.rank * rows, world.size * rows) if world.active and not greedy else None
        completion, logps = decoder.sample(
            enc.input_ids,
            enc.attention_mask,
            repeat,
            max_new_tokens,
            end_ids,
            tokenizer.pad_token_id,
            temperature,
            top_p,
            greedy,
            rows_of,
            with_logps=sampling_logps,
        )
        logps = None if logps is None else logps.clone()  # an inference tensor into a normal one
        if rows_of is not None:  # the draws of the steps other processes still took: the random states stay equal
            for _ in range(world.all_max(completion.shape[1], "sampling") - completion.shape[1]):
                torch.rand(rows_of[1], 1, device=completion.device)
        if decoder.has_dropout:
            model.train(was_training)
        out = torch.cat([enc.input_ids.repeat_interleave(repeat, 0), completion], dim=1)
    else:
        gen_config = transformers.GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=not greedy,
            num_return_sequences=repeat,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=end_ids,
            **({} if greedy else {"temperature": temperature, "top_p": top_p, "top_k": 0}),
            output_scores=sampling_logps and not greedy,  # the processed (temperature, top-p) scores
            return_dict_in_generate=True,
        )
        was_training = model.training
        model.eval()
        if world.active and not greedy:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                world.seed_own_stream()
                result = model.generate(**enc, generation_config=gen_config)
        else:
            result = model.generate(**enc, generation_config=gen_config)
        model.train(was_training)
        out = result.sequences
        completion = out[:, prompt_len:]
        logps = None
        if gen_config.output_scores:
            logps = torch.stack(result.scores, 1).log_softmax(-1).gather(-1, completion[..., None]).squeeze(-1)
    mask = completion_mask(completion, end_ids)
    attention = torch.cat([enc.attention_mask.repeat_interleave(repeat, 0), mask], dim=1)
    texts = completion_texts(tokenizer, completion, mask, end_ids)
    truncated = ~torch.isin(completion, torch.tensor(end_ids, device=completion.device)).any(1)
    if logps is not None:
        logps = logps.float().masked_fill(mask == 0, 0.0)  # -inf where a pad fell outside the nucleus
    return Generations(out, attention, prompt_len, mask, texts, repeat, truncated, logps)


def completion_texts(tokenizer: Any, completion: Tensor, mask: Tensor, end_ids: list[int]) -> list[str]:
    """The text rewards see of each completion ``[B, L]``: every token before its end token, special tokens
    included: a sampled <pad> or <unk> is part of the answer, not dropped (dropped, it would earn the reward of
    the answer without it, and GRPO would learn to emit it)."""
    before_end = (mask.bool() & ~torch.isin(completion, torch.tensor(end_ids, device=completion.device))).cpu()
    return tokenizer.batch_decode(
        [row[keep].tolist() for row, keep in zip(completion.cpu(), before_end, strict=True)], skip_special_tokens=False
    )


def supervised_warmup(
    model: Any,
    tokenizer: Any,
    sample: Callable[[random.Random, int], list[dict[str, str]]],
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    target: float = 0.0,
    score: Callable[..., float] | None = None,
    max_new_tokens: int = 8,
    check_every: int = 50,
) -> list[float]:
    """Cross-entropy on ``target + <eos>`` (an example's ``target``, else its ``answer``) given ``prompt`` for
    ``steps`` Adam steps on freshly sampled examples, so that GRPO starts from a policy whose early rewards are not
    all zero. Returns the losses."""
    rng = random.Random(seed)
    # probe prompts for ``target``: their own stream, so the training batches are those of a warm-up without it
    probe = sample(random.Random(seed + 7919), 200) if target > 0 and score is not None else None
    device = next(model.parameters()).device
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    losses = []
    for step in range(steps):
        batch = sample(rng, batch_size)
        prompts = tokenizer([ex["prompt"] for ex in batch], add_special_tokens=False)["input_ids"]
        answers = tokenizer([ex.get("target", ex["answer"]) for ex in batch], add_special_tokens=False)["input_ids"]
        rows = [p + a + [tokenizer.eos_token_id] for p, a in zip(prompts, answers, strict=True)]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full_like(ids, -100)
        attn = torch.zeros_like(ids)
        for i, (row, p) in enumerate(zip(rows, prompts, strict=True)):  # right-padded; loss on the answer only
            ids[i, : len(row)] = torch.tensor(row)
            labels[i, len(p) : len(row)] = ids[i, len(p) : len(row)]
            attn[i, : len(row)] = 1
        for group in opt.param_groups:  # cosine decay to 10 %
            group["lr"] = lr * (0.1 + 0.45 * (1 + math.cos(math.pi * step / max(1, steps))))
        loss = model(input_ids=ids.to(device), attention_mask=attn.to(device), labels=labels.to(device)).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if probe is not None and (step + 1) % check_every == 0:
            with torch.random.fork_rng():
                reached = accuracy(model, tokenizer, probe, max_new_tokens, score) >= target
            model.train()
            if reached:
                break
    opt.zero_grad(set_to_none=True)  # the model goes on to other training: leave it no gradient of ours
    return losses


@torch.no_grad()
def mean_scores(
    model: Any,
    tokenizer: Any,
    examples: list[dict[str, str]],
    max_new_tokens: int,
    scores: dict[str, Callable[..., float]],
    batch_size: int = 100,
    samples: int = 0,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> dict[str, float]:
    """The mean of each ``score(prompt, completion, **example)`` of ``scores`` over greedy completions of
    ``examples`` (exact-match accuracy for ``text_tasks.exact_match``); with ``samples`` k > 0, over k completions
    per prompt sampled at ``temperature`` and ``top_p`` instead (pass@1 of the sampling policy, from k draws)."""
    totals = dict.fromkeys(scores, 0.0)
    repeat = max(1, samples)
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        gens = generate(
            model,
            tokenizer,
            [ex["prompt"] for ex in chunk],
            repeat,
            max_new_tokens,
            temperature,
            top_p,
            greedy=samples == 0,
        )
        for name, score in scores.items():
            totals[name] += sum(score(completion=text, **chunk[k // repeat]) for k, text in enumerate(gens.texts))
    return {name: total / max(1, len(examples) * repeat) for name, total in totals.items()}


def accuracy(
    model: Any,
    tokenizer: Any,
    examples: list[dict[str, str]],
    max_new_tokens: int,
    score: Callable[..., float],
    batch_size: int = 100,
    samples: int = 0,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> float:
    """:func:`mean_scores` of the one ``score``."""
    args = (model, tokenizer, examples, max_new_tokens, {"score": score}, batch_size, samples, temperature, top_p)
    return mean_scores(*args)["score"]


def with_lora(model: Any, r: int, alpha: int) -> Any:
    """``model`` with LoRA adapters (rank ``r``, scale ``alpha``) on every linear layer (peft)."""
    try:
        import peft
    except ImportError:
        raise ConfigError("lora=true needs peft: pip install 'proxrl[lm]' (or pip install peft)") from None
    config = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules="all-linear", task_type="CAUSAL_LM")
    return peft.get_peft_model(model, config)


def load_adapter(model: Any, folder: str | Path) -> None:
    """Load the LoRA adapter weights saved in ``folder`` into a peft ``model``."""
    import peft

    weights = peft.utils.load_peft_weights(str(folder))
    peft.set_peft_model_state_dict(model, weights)
