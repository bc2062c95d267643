"""proxrl's GRPO loss (the ``objectives.GRPOLoss`` that ``make_grpo_loss`` builds for each ``loss_type``) against
TRL's own ``GRPOTrainer._compute_loss``, number for number (issue 35).

Both get the same float64 log-probs, advantages, masks, reference log-probs and sampler weights; TRL's method runs
on a stand-in trainer that holds only the attributes it reads (its model pass returns the given log-probs). For
each loss type × ratio level × β × ``use_bias_correction_kl`` × sampler correction, it prints the largest
difference in the loss and in its gradient with respect to the log-probs, and the count of cases within 1e-12.

    python benchmarks/grpo_loss_vs_trl.py --trl-src DIR

``DIR`` holds TRL's package (``DIR/trl``), e.g. ``pip download --no-deps trl==1.16.0`` unzipped; TRL's other needs
(transformers, accelerate, datasets) are proxrl's own. Or run it with the interpreter of
``benchmarks/setup_trl_venv.sh``, which has TRL installed, and no ``--trl-src``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import torch

from proxrl.objectives import LOSS_TYPES, GRPOBatch, make_grpo_loss, sampling_correction

B, L = 6, 5


def case_inputs(seed: int) -> dict[str, torch.Tensor]:
    """Random log-probs off-policy (|ln ρ| up to ~0.6), a reference, advantages of both signs, ragged masks and a
    sampler's log-probs with one NaN (a token it did not give), in float64."""
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(B, L, generator=g, dtype=torch.float64) * 3
    old = logp + (torch.rand(B, L, generator=g, dtype=torch.float64) - 0.5) * 1.2
    ref = logp + (torch.rand(B, L, generator=g, dtype=torch.float64) - 0.5)
    sampler = old + (torch.rand(B, L, generator=g, dtype=torch.float64) - 0.5) * 0.4
    sampler[1, 0] = float("nan")
    lengths = torch.tensor([5, 3, 1, 4, 5, 2])
    mask = (torch.arange(L)[None, :] < lengths[:, None]).to(torch.float64)
    adv = torch.randn(B, generator=g, dtype=torch.float64)
    return {"logp": logp, "old": old, "ref": ref, "sampler": sampler, "mask": mask, "adv": adv}


def trl_stand_in(trainer_cls: Any, loss_type: str, level: str, beta: float, bias_kl: bool, logp: torch.Tensor) -> Any:
    """An object with the attributes TRL's ``_compute_loss`` reads, its model pass returning ``logp``."""
    accelerator = SimpleNamespace(
        num_processes=1,
        gather=lambda x: x,
        gather_for_metrics=lambda x: x,
        reduce=lambda x, reduction="sum": x,
        sync_gradients=True,
    )
    args = SimpleNamespace(
        use_bias_correction_kl=bias_kl,
        delta=None,
        sapo_temperature_pos=1.0,
        sapo_temperature_neg=1.05,
        vespo_k_pos=2.0,
        vespo_lambda_pos=3.0,
        vespo_k_neg=3.0,
        vespo_lambda_neg=2.0,
        steps_per_generation=1,
    )
    stand_in = SimpleNamespace(
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level=level,
        beta=beta,
        args=args,
        loss_type=loss_type,
        epsilon_low=0.2,
        epsilon_high=5.0 if loss_type == "cispo" else 0.28,
        use_vllm=True,
        vllm_importance_sampling_correction=True,
        max_completion_length=L,
        current_gradient_accumulation_steps=1,
        accelerator=accelerator,
        _entropy_bonus_enabled=False,
        aux_loss_enabled=False,
        _metrics={"train": defaultdict(list)},
        model=SimpleNamespace(training=True),
        _get_per_token_logps_and_entropies=lambda *a, **k: (logp, torch.zeros_like(logp), None),
    )
    stand_in.get_gamma_weights = trainer_cls.get_gamma_weights  # a staticmethod
    return stand_in


def compare(trainer_cls: Any, x: dict[str, torch.Tensor], setting: tuple[str, str, float, bool]) -> tuple[float, float]:
    """(|Δ loss|, max |Δ ∂loss/∂ln π|) between TRL and proxrl on one case."""
    loss_type, level, beta, bias_kl = setting
    weight = sampling_correction(x["old"], x["sampler"], x["mask"], "token_truncate", 3.0)
    losses, grads = [], []
    for side in ("trl", "proxrl"):
        logp = x["logp"].clone().requires_grad_(True)
        if side == "trl":
            stand_in = trl_stand_in(trainer_cls, loss_type, level, beta, bias_kl, logp)
            inputs = {
                "prompt_ids": torch.zeros(B, 1, dtype=torch.long),
                "prompt_mask": torch.ones(B, 1, dtype=torch.long),
                "completion_ids": torch.zeros(B, L, dtype=torch.long),
                "completion_mask": x["mask"],
                "advantages": x["adv"],
                "old_per_token_logps": x["old"],
                "ref_per_token_logps": x["ref"],
                "importance_sampling_ratio": weight,
                "num_items_in_batch": x["mask"].sum(),
            }
            loss = trainer_cls._compute_loss(stand_in, None, inputs)
        else:
            loss_fn = make_grpo_loss(
                loss_type,
                clip_low=0.2,
                clip_high=5.0 if loss_type == "cispo" else 0.28,
                beta=beta,
                importance_sampling_level=level,
                kl_importance_weighted=bias_kl,
                max_len=L,
            )
            loss, _ = loss_fn(GRPOBatch(logp, x["old"], x["adv"][:, None], x["mask"], x["ref"], weight))
        loss.backward()
        losses.append(loss.detach())
        grads.append(logp.grad)
    return float((losses[0] - losses[1]).abs()), float((grads[0] - grads[1]).abs().max())


def main() -> int:
    """Every setting on three random cases; prints the worst differences and the count within 1e-12."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trl-src", help="a folder holding TRL's package (trl/); default: the installed trl")
    args = p.parse_args()
    if args.trl_src:
        sys.path.insert(0, args.trl_src)
    import trl
    from trl.trainer.grpo_trainer import GRPOTrainer

    settings = list(itertools.product(LOSS_TYPES, ("token", "sequence"), (0.0, 0.04), (False, True)))
    worst, within, total = (0.0, 0.0), 0, 0
    for setting in settings:
        for seed in range(3):
            d_loss, d_grad = compare(GRPOTrainer, case_inputs(seed), setting)
            worst = (max(worst[0], d_loss), max(worst[1], d_grad))
            total += 1
            within += d_loss <= 1e-12 and d_grad <= 1e-12
            if d_loss > 1e-12 or d_grad > 1e-12:
                print(f"differs: {setting} seed {seed}: loss {d_loss:.3g}, gradient {d_grad:.3g}")
    print(f"TRL {trl.__version__}: {within} of {total} cases within 1e-12 (float64)")
    print(f"largest difference: loss {worst[0]:.3g}, gradient {worst[1]:.3g}")
    return 0 if within == total else 1


if __name__ == "__main__":
    raise SystemExit(main())
