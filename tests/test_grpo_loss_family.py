"""The GRPO loss family as objects (issue 32): the table from ``loss_type`` to a :class:`GRPOLoss` built once, fed one
named :class:`GRPOBatch`, gives bit for bit what the 13-argument ``grpo_loss`` gave before it was replaced, for
every loss type, on fixed random tensors: the loss, its stats and the gradient of ln π. The expected values were
computed with that function (proxrl at 777e583) and are written here as exact float32 values (``float.hex``) and the
first 16 hex digits of the SHA-256 of the gradient's bytes."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
import torch

from proxrl.objectives import LOSS_TYPES, GRPOBatch, GRPOLoss, make_grpo_loss

# name: (level, β, kl_importance_weighted, sampling weight, adv per token, ε_high, the batch's counts)
VARIANTS = {
    "plain": ("token", 0.0, False, None, False, 0.28, False),
    "kl-tis-counts": ("token", 0.1, False, "token", False, 1.25, True),
    "seq-klw-seqw": ("sequence", 0.04, True, "sequence", False, 0.2, True),
    "token-adv-klw": ("token", 0.05, True, None, True, 0.3, False),
}

# loss_type/variant: (loss, clip_frac_low, clip_frac_high, kl, sha256(grad)[:16]) of the function before the change
EXPECTED = {
    "grpo/plain": ("-0x1.2bb9400000000p-2", "0x1.745d180000000p-3", "0x0.0p+0", "0x0.0p+0", "7530200db3e95a06"),
    "grpo/kl-tis-counts": (
        "-0x1.b522fa0000000p-3",
        "0x1.745d180000000p-3",
        "0x0.0p+0",
        "0x1.6f76320000000p-6",
        "9b8e622d887caed7",
    ),
    "grpo/seq-klw-seqw": (
        "-0x1.ab508a0000000p-3",
        "0x1.0000000000000p-2",
        "0x1.0000000000000p-2",
        "0x1.4bd53a0000000p-6",
        "a75d3217ea921c01",
    ),
    "grpo/token-adv-klw": (
        "-0x1.0c87f60000000p-2",
        "0x1.1745d20000000p-2",
        "0x0.0p+0",
        "0x1.31a30a0000000p-6",
        "c600eddae01d1f81",
    ),
    "bnpo/plain": ("-0x1.f576e20000000p-3", "0x1.745d180000000p-3", "0x0.0p+0", "0x0.0p+0", "ae63d7bbe1c0a249"),
    "bnpo/kl-tis-counts": (
        "-0x1.1616c20000000p-3",
        "0x1.745d180000000p-3",
        "0x0.0p+0",
        "0x1.6f76320000000p-6",
        "51c6c15cc4cd5034",
    ),
    "bnpo/seq-klw-seqw": (
        "-0x1.b08f7a0000000p-4",
        "0x1.0000000000000p-2",
        "0x1.0000000000000p-2",
        "0x1.4bd53a0000000p-6",
        "b41b47d9f95f3276",
    ),
    "bnpo/token-adv-klw": (
        "-0x1.7dc2d20000000p-2",
        "0x1.1745d20000000p-2",
        "0x0.0p+0",
        "0x1.31a30a0000000p-6",
        "a28fb7e9b023f557",
    ),
    "dr_grpo/plain": ("-0x1.13ce300000000p-3", "0x1.745d180000000p-3", "0x0.0p+0", "0x0.0p+0", "720a80550d1b850c"),
    "dr_grpo/kl-tis-counts": (
        "-0x1.fdd4620000000p-5",
        "0x1.745d180000000p-3",
        "0x0.0p+0",
        "0x1.6f76320000000p-6",
        "86b9afb5bf4a11b2",
    ),
    "dr_grpo/seq-klw-seqw": (
        "-0x1.8c83860000000p-5",
        "0x1.0000000000000p-2",
        "0x1.0000000000000p-2",
        "0x1.4bd53a0000000p-6",
        "96ce13e06c74b450",
    ),
    "dr_grpo/token-adv-klw": (
        "-0x1.a3efe60000000p-3",
        "0x1.1745d20000000p-2",
        "0x0.0p+0",
        "0x1.31a30a0000000p-6",
        "0d54d98b971cb193",
    ),
    "dapo/plain": ("-0x1.f576e20000000p-3", "0x1.745d180000000p-3", "0x0.0p+0", "0x0.0p+0", "ae63d7bbe1c0a249"),
    "dapo/kl-tis-counts": (
        "-0x1.67e1360000000p-3",
        "0x1.745d180000000p-3",
        "0x0.0p+0",
        "0x1.6f76320000000p-6",
        "de9713c55ca9ef51",
    ),
    "dapo/seq-klw-seqw": (
        "-0x1.17e45e0000000p-3",
        "0x1.0000000000000p-2",
        "0x1.0000000000000p-2",
        "0x1.4bd53a0000000p-6",
        "acc5706819908a9e",
    ),
    "dapo/token-adv-klw": (
        "-0x1.7dc2d20000000p-2",
        "0x1.1745d20000000p-2",
        "0x0.0p+0",
        "0x1.31a30a0000000p-6",
        "a28fb7e9b023f557",
    ),
    "cispo/plain": ("0x1.2276880000000p-4", "0x0.0p+0", "0x1.45d1740000000p-1", "0x0.0p+0", "319a1e25c8cb4323"),
    "cispo/kl-tis-counts": ("0x1.f448b40000000p-3", "0x0.0p+0", "0x0.0p+0", "0x1.6f76320000000p-6", "053e80452e22985b"),
    "cispo/seq-klw-seqw": (
        "0x1.ca5b740000000p-6",
        "0x0.0p+0",
        "0x1.0000000000000p-1",
        "0x1.4bd53a0000000p-6",
        "7e05094e3b354164",
    ),
    "cispo/token-adv-klw": (
        "0x1.44126c0000000p-4",
        "0x0.0p+0",
        "0x1.1745d20000000p-1",
        "0x1.31a30a0000000p-6",
        "71357e4de8df4aa9",
    ),
    "sapo/plain": ("-0x1.6d52f00000000p-1", "0x0.0p+0", "0x0.0p+0", "0x0.0p+0", "91fd97c12d3527ae"),
    "sapo/kl-tis-counts": ("-0x1.02e8200000000p-1", "0x0.0p+0", "0x0.0p+0", "0x1.6f76320000000p-6", "cb171602e59a9b1e"),
    "sapo/seq-klw-seqw": ("-0x1.01e1400000000p-1", "0x0.0p+0", "0x0.0p+0", "0x1.4bd53a0000000p-6", "71503a429944b77f"),
    "sapo/token-adv-klw": ("-0x1.7d29fe0000000p-1", "0x0.0p+0", "0x0.0p+0", "0x1.31a30a0000000p-6", "5f5f8a11c0886611"),
    "luspo/plain": ("-0x1.58c1bc0000000p-1", "0x1.745d180000000p-3", "0x0.0p+0", "0x0.0p+0", "0ede18103b9ff297"),
    "luspo/kl-tis-counts": (
        "-0x1.fdd4620000000p-2",
        "0x1.745d180000000p-3",
        "0x0.0p+0",
        "0x1.6f76320000000p-6",
        "c2c36ffd01116851",
    ),
    "luspo/seq-klw-seqw": (
        "-0x1.8c83860000000p-2",
        "0x1.0000000000000p-2",
        "0x1.0000000000000p-2",
        "0x1.4bd53a0000000p-6",
        "066d71fde508ed91",
    ),
    "luspo/token-adv-klw": (
        "-0x1.0675f00000000p+0",
        "0x1.1745d20000000p-2",
        "0x0.0p+0",
        "0x1.31a30a0000000p-6",
        "a80ecb1006fd0071",
    ),
    "vespo/plain": ("0x1.d65c460000000p-4", "0x0.0p+0", "0x0.0p+0", "0x0.0p+0", "88bbdc3eaea604ad"),
    "vespo/kl-tis-counts": ("0x1.a042740000000p-3", "0x0.0p+0", "0x0.0p+0", "0x1.6f76320000000p-6", "410fd9f835636eca"),
    "vespo/seq-klw-seqw": ("-0x1.39aa900000000p-4", "0x0.0p+0", "0x0.0p+0", "0x1.4bd53a0000000p-6", "89acfafd8eaa9d1a"),
}


def tensors() -> dict[str, torch.Tensor]:
    """B = 4 completions of 1 to 5 tokens (L = 5), drawn from a seeded CPU generator."""
    g = torch.Generator().manual_seed(32)
    B, L = 4, 5
    logp = torch.randn(B, L, generator=g) * 0.3 - 1.0
    old = logp + torch.randn(B, L, generator=g) * 0.25
    ref = logp + torch.randn(B, L, generator=g) * 0.3
    adv = torch.randn(B, 1, generator=g)
    adv_tokens = torch.randn(B, L, generator=g)
    mask = (torch.arange(L) < torch.tensor([5, 3, 1, 2])[:, None]).float()
    w_token = (torch.randn(B, L, generator=g) * 0.4).exp()
    w_seq = (torch.randn(B, 1, generator=g) * 0.4).exp()
    return {"logp": logp, "old": old, "ref": ref, "adv": adv, "adv_tokens": adv_tokens, "mask": mask,
            "w_token": w_token, "w_seq": w_seq}  # fmt: skip


def run(loss_type: str, variant: str) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    level, beta, weighted, weight, per_token_adv, clip_high, counts = VARIANTS[variant]
    t = tensors()
    loss_fn = make_grpo_loss(
        loss_type,
        clip_low=0.2,
        clip_high=clip_high,
        beta=beta,
        importance_sampling_level=level,
        kl_importance_weighted=weighted,
        sapo_temperatures=(0.9, 1.2),
        vespo_shape=(2.0, 3.0, 3.0, 2.0) if variant != "plain" else (1.5, 2.5, 2.5, 1.5),
        max_len=8 if counts else None,
    )
    logp = t["logp"].clone().requires_grad_(True)
    batch = GRPOBatch(
        logp,
        t["old"],
        t["adv_tokens"] if per_token_adv else t["adv"],
        t["mask"],
        ref_logp=t["ref"] if beta else None,
        sampling_weight={None: None, "token": t["w_token"], "sequence": t["w_seq"]}[weight],
        **({"num_sequences": 6, "num_tokens": torch.tensor(17.0), "num_micro_batches": 2} if counts else {}),
    )
    loss, stats = loss_fn(batch)
    (grad,) = torch.autograd.grad(loss, logp)
    return loss, stats, grad


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_each_loss_object_gives_bit_for_bit_what_grpo_loss_gave(case):
    loss, stats, grad = run(*case.split("/"))
    got = (
        float(loss.detach()).hex(),
        *(float(stats[k]).hex() for k in ("clip_frac_low", "clip_frac_high", "kl")),
        hashlib.sha256(grad.numpy().tobytes()).hexdigest()[:16],
    )
    assert got == EXPECTED[case]
    assert all(not v.requires_grad for v in stats.values())  # detached stats (house rule 5)
    assert stats["clip_frac"].item() == (stats["clip_frac_low"] + stats["clip_frac_high"]).item()


def test_every_loss_type_and_variant_is_pinned():
    assert {case.split("/")[0] for case in EXPECTED} == set(LOSS_TYPES)
    assert all(f"{lt}/{v}" in EXPECTED for lt in LOSS_TYPES for v in VARIANTS if lt != "vespo" or v != "token-adv-klw")


def test_the_loss_is_picked_once_as_a_frozen_object_and_refuses_unknown_names():
    loss = make_grpo_loss("dr_grpo", clip_low=0.2, clip_high=0.28, max_len=64)
    assert isinstance(loss, GRPOLoss)
    with pytest.raises(dataclasses.FrozenInstanceError):
        loss.beta = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown loss_type 'sequence'; allowed: grpo, bnpo, dr_grpo, dapo"):
        make_grpo_loss("sequence", clip_low=0.2, clip_high=0.2)
    with pytest.raises(ValueError, match="unknown importance_sampling_level 'seq'"):
        make_grpo_loss("grpo", clip_low=0.2, clip_high=0.2, importance_sampling_level="seq")
