"""An exported ensemble member's models, loaded once: the segmentation predictor's and the classifier's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from core.config import TrialConfig, from_flat
from core.contract import check_weights
from core.models import build_model, load_weights
from ensembling.runtime.manifest import MemberEntry


@dataclass
class Member:
    weight: float
    tta: str
    input_size: tuple[int, int]
    models: list[torch.nn.Module]


def load_member(folder: Path, member: MemberEntry, num_classes: int, device: torch.device) -> Member:
    """A manifest member's checkpoints (paths relative to ``folder``) as eval models on ``device``."""
    config = from_flat(TrialConfig, member.config, where=f"{folder}: member {member.trial_id}: ")
    models = []
    for checkpoint in member.checkpoints:
        check_weights(folder / checkpoint)  # DamagedFile: one line naming the file
        model = build_model(config.model, num_classes, load_weights=False)
        models.append(load_weights(model, folder / checkpoint).to(device).eval())
    return Member(weight=member.weight, tta=member.tta, input_size=member.input_size, models=models)
