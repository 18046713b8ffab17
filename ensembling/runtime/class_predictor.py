"""The offline predictor of a class ensemble: image probabilities from timm members, folds and TTA.

Each member sees the image at its own training size; every TTA view of a batch goes through a model in
one forward pass (bf16 autocast on a GPU); softmax (single-label) or sigmoid (multi-label) probabilities
are averaged over views and fold models, blended by the members' weights, then the tuned temperature is
applied (``ensembling.scoring.class_knobs``), and decisions use the tuned per-class thresholds (or the argmax).
The same class serves a segmentation ensemble's gate (its ``gate`` section). Needs torch, timm, numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core.preprocess import resize_image, to_tensor
from core.tta import views
from ensembling.runtime.decide import apply_temperature, decisions
from ensembling.runtime.manifest import ClassSection, Manifest
from ensembling.runtime.members import Member, load_member


class ClassPredictor:
    """Load a class ensemble (a classification manifest, or a segmentation manifest's ``gate``) once."""

    def __init__(self, folder: str | Path, section: ClassSection, device: torch.device, bf16: bool = False) -> None:
        self.folder, self.section, self.device, self.bf16 = Path(folder), section, device, bf16
        self.multi_label = section.multi_label
        self.num_classes = section.num_classes
        self.temperature = section.calibration.temperature
        self.thresholds = section.calibration.thresholds
        self.class_weights = section.calibration.class_weights  # single-label macro F1: weights on the argmax
        self.members = [load_member(self.folder, m, self.num_classes, self.device) for m in section.members]

    @torch.no_grad()
    def _member_probs(self, member: Member, batch: torch.Tensor) -> torch.Tensor:
        """Mean probability (N, K) over the member's models and TTA views; all views in one pass."""
        policy = views(member.tta)
        stacked = torch.cat([forward(batch) for forward, _ in policy])
        total = None
        for model in member.models:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                logits = model(stacked).float()
            probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)
            probs = probs.reshape(len(policy), len(batch), -1).sum(dim=0)  # a label needs no inverse view
            total = probs if total is None else total + probs
        return total / (len(policy) * len(member.models))

    @torch.no_grad()
    def probabilities(self, images: list[np.ndarray]) -> np.ndarray:
        """Blended, calibrated probabilities (N, K) for RGB uint8 images (H, W, 3) of any sizes."""
        total = torch.zeros((len(images), self.num_classes), device=self.device)
        for member in self.members:
            batch = to_tensor(np.stack([resize_image(image, member.input_size) for image in images])).to(self.device)
            total += member.weight * self._member_probs(member, batch)
        return apply_temperature(total.cpu().numpy(), self.temperature, self.multi_label)

    def decisions(self, probs: np.ndarray) -> np.ndarray:
        """0/1 (N, K): the (weighted) argmax, or each class's tuned threshold (0.5 without one)."""
        return decisions(probs, self.multi_label, self.thresholds, self.class_weights)


def load_class_predictor(folder: str | Path, manifest: Manifest, device: str | None = None) -> ClassPredictor:
    """The predictor of a classification export (``kind: classification``)."""
    chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    bf16 = chosen.type == "cuda" and torch.cuda.is_bf16_supported()
    return ClassPredictor(folder, manifest.class_section(), chosen, bf16)
