"""Sampling and scoring completions: G completions per prompt (:func:`generate`, by the lean decoder or
``model.generate``), the completion mask up to the end token, per-token log-probs, and the texts rewards see."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .decoder import LeanDecoder, lean_decoder
from .distributed import SINGLE, World
from .models import require_transformers


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
    hidden: Tensor | None
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
        # each optional tensor joined when every part has it, else None
        flags = [p.truncated for p in parts if p.truncated is not None]
        truncated = torch.cat(flags) if len(flags) == len(parts) else None
        sampled = [p.sampling_logps for p in parts if p.sampling_logps is not None]
        logps = None
        if len(sampled) == len(parts):
            logps = torch.cat([F.pad(lp, (0, length - p.mask.shape[1])) for lp, p in zip(sampled, parts, strict=True)])
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


@dataclass(frozen=True)
class _Sampling:
    """What one :func:`generate` call draws: ``repeat`` completions per prompt of at most ``max_new_tokens`` tokens,
    ending at any of ``end_ids``, at ``temperature`` and ``top_p`` (or greedy), with their sampling log-probs or
    not."""

    repeat: int
    max_new_tokens: int
    end_ids: list[int]
    pad_token_id: int
    temperature: float
    top_p: float
    greedy: bool
    with_logps: bool


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
    device = next(model.parameters()).device
    enc = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left").to(device)
    prompt_len = enc.input_ids.shape[1]
    repeat = 1 if greedy else group_size
    end_ids = end_token_ids(model, tokenizer)
    sampling = _Sampling(
        repeat, max_new_tokens, end_ids, tokenizer.pad_token_id, temperature, top_p, greedy, sampling_logps
    )
    decoder = lean_decoder(model)
    if decoder is not None and prompt_len + max_new_tokens <= decoder.max_length:
        out, completion, logps = _sample_lean(decoder, model, enc, sampling, world)
    else:
        out, completion, logps = _sample_hf(model, enc, sampling, world)
    mask = completion_mask(completion, end_ids)
    attention = torch.cat([enc.attention_mask.repeat_interleave(repeat, 0), mask], dim=1)
    texts = completion_texts(tokenizer, completion, mask, end_ids)
    truncated = ~torch.isin(completion, torch.tensor(end_ids, device=completion.device)).any(1)
    if logps is not None:
        logps = logps.float().masked_fill(mask == 0, 0.0)  # -inf where a pad fell outside the nucleus
    return Generations(out, attention, prompt_len, mask, texts, repeat, truncated, logps)


def _sample_lean(
    decoder: LeanDecoder, model: Any, enc: Any, s: _Sampling, world: World
) -> tuple[Tensor, Tensor, Tensor | None]:
    """(prompt + completion ``[B, P + L]``, completion ``[B, L]``, sampling log-probs or None) from the lean
    decoder; in a data-parallel ``world`` it draws for every process's rows, this one's kept."""
    was_training = model.training
    if decoder.has_dropout:  # toggling train/eval visits every module (~1 ms): only when it matters
        model.eval()
    rows = enc.input_ids.shape[0] * s.repeat
    rows_of = (world.rank * rows, world.size * rows) if world.active and not s.greedy else None
    completion, logps = decoder.sample(
        enc.input_ids,
        enc.attention_mask,
        s.repeat,
        s.max_new_tokens,
        s.end_ids,
        s.pad_token_id,
        s.temperature,
        s.top_p,
        s.greedy,
        rows_of,
        with_logps=s.with_logps,
    )
    logps = None if logps is None else logps.clone()  # an inference tensor into a normal one
    if rows_of is not None:  # the draws of the steps other processes still took: the random states stay equal
        for _ in range(world.all_max(completion.shape[1], "sampling") - completion.shape[1]):
            torch.rand(rows_of[1], 1, device=completion.device)
    if decoder.has_dropout:
        model.train(was_training)
    return torch.cat([enc.input_ids.repeat_interleave(s.repeat, 0), completion], dim=1), completion, logps


def _sample_hf(model: Any, enc: Any, s: _Sampling, world: World) -> tuple[Tensor, Tensor, Tensor | None]:
    """(prompt + completion ``[B, P + L]``, completion ``[B, L]``, sampling log-probs or None) from
    ``model.generate`` (in a data-parallel ``world``, in a random stream of this process's own)."""
    transformers = require_transformers()
    gen_config = transformers.GenerationConfig(
        max_new_tokens=s.max_new_tokens,
        do_sample=not s.greedy,
        num_return_sequences=s.repeat,
        pad_token_id=s.pad_token_id,
        eos_token_id=s.end_ids,
        **({} if s.greedy else {"temperature": s.temperature, "top_p": s.top_p, "top_k": 0}),
        output_scores=s.with_logps and not s.greedy,  # the processed (temperature, top-p) scores
        return_dict_in_generate=True,
    )
    was_training = model.training
    model.eval()
    device = enc.input_ids.device
    if world.active and not s.greedy:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            world.seed_own_stream()
            result = model.generate(**enc, generation_config=gen_config)
    else:
        result = model.generate(**enc, generation_config=gen_config)
    model.train(was_training)
    out: Tensor = result.sequences
    completion = out[:, enc.input_ids.shape[1] :]
    logps = None
    if gen_config.output_scores:
        logps = torch.stack(result.scores, 1).log_softmax(-1).gather(-1, completion[..., None]).squeeze(-1)
    return out, completion, logps


def completion_texts(tokenizer: Any, completion: Tensor, mask: Tensor, end_ids: list[int]) -> list[str]:
    """The text rewards see of each completion ``[B, L]``: every token before its end token, special tokens
    included: a sampled <pad> or <unk> is part of the answer, not dropped (dropped, it would earn the reward of
    the answer without it, and GRPO would learn to emit it)."""
    before_end = (mask.bool() & ~torch.isin(completion, torch.tensor(end_ids, device=completion.device))).cpu()
    texts: list[str] = tokenizer.batch_decode(
        [row[keep].tolist() for row, keep in zip(completion.cpu(), before_end, strict=True)], skip_special_tokens=False
    )
    return texts
