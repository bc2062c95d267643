"""Causal language models from local folders (``from_pretrained(path)``, nothing fetched from a hub), tiny ones built
from a config for the CPU, and LoRA adapters (peft). ``transformers`` is the ``lm`` extra (``pip install
proxrl[lm]``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError


def require_transformers() -> Any:
    """The ``transformers`` module, or a ConfigError saying how to install it."""
    try:
        import transformers
    except ImportError:
        raise ConfigError("GRPO needs transformers: pip install 'proxrl[lm]' (or pip install transformers)") from None
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # per-shard loading bars drown proxrl's own progress
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
