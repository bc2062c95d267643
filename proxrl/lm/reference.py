"""GRPO's frozen reference model π_ref (the KL term's anchor) and where its weights are read back on resume.

β = 0 keeps no reference at all; with LoRA the reference is the base model with the adapters disabled (no copy).
Otherwise π_ref is a frozen copy of the starting policy, and a checkpoint names the folder it can be read from
(the model folder or the run's ``init_model``), or holds it in its own ``reference/`` folder once no other folder
does (after ``ref_sync_every``, or a tiny model trained without a run directory).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..checkpoint import CheckpointError
from .models import load_model

REFERENCE_FOLDER = "reference"  # a checkpoint's copy of the reference model, when no other folder holds it


class Reference:
    """π_ref for a policy: ``model`` (a frozen copy, or None), ``source`` (a folder holding its weights, or None
    when only checkpoints do) and ``adapters_off`` (LoRA: the base model is π_ref)."""

    def __init__(self, policy: Any, beta: float, lora: bool, source: str | None) -> None:
        self.active = beta > 0
        self.adapters_off = self.active and lora
        self.model = copy.deepcopy(policy).eval().requires_grad_(False) if self.active and not lora else None
        self.source = source if self.model is not None else None

    def logps(self, policy: Any, logps: Callable[[Any], Tensor]) -> Tensor | None:
        """log π_ref of the completion tokens (``logps(model)`` computes them), or None when β = 0."""
        if not self.active:
            return None
        with torch.inference_mode():  # cheaper per op than no_grad; cloned below into a normal tensor
            if self.model is not None:
                out = logps(self.model)
            else:
                with policy.disable_adapter():  # LoRA: the base model is the reference
                    out = logps(policy)
        return out.clone()

    def sync(self, policy: Any) -> None:
        """π_ref ← π_θ (``ref_sync_every``); from now on only checkpoints hold these weights."""
        if self.model is not None:
            self.model.load_state_dict(policy.state_dict())
            self.source = None

    def entry(self, folder: Path | None = None, run_dir: Path | None = None) -> str | None:
        """What a checkpoint in ``folder`` records: the folder π_ref is read from (relative to ``folder`` when it
        lies inside ``run_dir``, so that the run directory can be moved), ``reference`` (its own copy), or None."""
        if self.model is None:
            return None
        if self.source is None:
            return REFERENCE_FOLDER
        if folder is not None and run_dir is not None and Path(self.source).is_relative_to(run_dir.resolve()):
            return os.path.relpath(self.source, folder.resolve())
        return self.source

    def save_into(self, folder: Path, state_dict: dict[str, Tensor] | None = None) -> None:
        """Write π_ref into a checkpoint folder when no other folder holds it (``state_dict``: its whole weights,
        gathered from the processes of a sharded run)."""
        if self.model is not None and self.entry() == REFERENCE_FOLDER:
            self.model.save_pretrained(folder / REFERENCE_FOLDER, state_dict=state_dict)

    def restore(self, folder: Path, entry: str | None, dtype: torch.dtype, device: str) -> None:
        """Load the π_ref a checkpoint in ``folder`` points to (not the checkpointed policy)."""
        if self.model is None:
            return
        if entry is None:  # written without a reference (β = 0, or before checkpoints named it): the reference is
            self.source = None  # the copy made at load; later checkpoints hold it themselves
            return
        path = (folder / entry).resolve()  # an absolute entry stays as it is; a relative one is the checkpoint's
        if not (path / "config.json").is_file():
            raise CheckpointError(
                f"the reference model of {folder} was read from {path}, which is no longer a model "
                "folder; restore it there, or resume with beta=0 (no reference model)"
            )
        self.model = None  # free the copy made at load before reading the reference (no third model)
        self.model = load_model(path, dtype, device).eval().requires_grad_(False)
        self.source = None if entry == REFERENCE_FOLDER else str(path)
